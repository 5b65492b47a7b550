//! Command-line parsing.

use std::path::PathBuf;

use oxen_xenstore::{DomId, Quotas};

/// Usage text.
pub const USAGE: &str = "usage: oxen-xenstored --unix-socket PATH [--ro-socket PATH] \
[--access-log FILE] [--quota NAME=VALUE]... [--guest-socket DOMID:PATH]...
quota names: nodes, value-size, watches, transactions, outstanding, watch-events, perms,
transaction-nodes, domain-transactions, transaction-timeout (seconds, 0: none), node-memory,
domain-watch-events, queue-memory, transaction-memory (bytes)
--guest-socket serves unprivileged connections acting as domain DOMID (a stand-in
for that guest's ring, for testing)";

/// Daemon settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Privileged (read-write) socket.
    pub unix_socket: PathBuf,
    /// Optional read-only socket.
    pub ro_socket: Option<PathBuf>,
    /// Optional access log, appended to.
    pub access_log: Option<PathBuf>,
    /// Quotas, defaults overridden by `--quota`.
    pub quotas: Quotas,
    /// Sockets whose connections act as an unprivileged guest domain.
    pub guest_sockets: Vec<(DomId, PathBuf)>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Serve.
    Run(Box<Args>),
    /// Print usage.
    Help,
}

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Parsed, String> {
        let mut unix_socket = None;
        let mut ro_socket = None;
        let mut access_log = None;
        let mut quotas = Quotas::default();
        let mut guest_sockets = Vec::new();
        while let Some(flag) = argv.next() {
            let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
            match flag.as_str() {
                "--unix-socket" => unix_socket = Some(PathBuf::from(value(&flag)?)),
                "--ro-socket" => ro_socket = Some(PathBuf::from(value(&flag)?)),
                "--access-log" => access_log = Some(PathBuf::from(value(&flag)?)),
                "--quota" => {
                    let setting = value(&flag)?;
                    let (name, number) = setting
                        .split_once('=')
                        .ok_or_else(|| format!("--quota wants NAME=VALUE, got {setting}"))?;
                    let number: usize = number
                        .parse()
                        .map_err(|_| format!("bad quota value {number}"))?;
                    quotas
                        .set(name, number)
                        .map_err(|_| format!("unknown quota {name}"))?;
                }
                "--guest-socket" => {
                    let setting = value(&flag)?;
                    let (domid, path) = setting
                        .split_once(':')
                        .ok_or_else(|| format!("--guest-socket wants DOMID:PATH, got {setting}"))?;
                    let domid: DomId = domid
                        .parse()
                        .ok()
                        .filter(|d| (1..0x7ff0).contains(d))
                        .ok_or_else(|| format!("bad guest domain id {domid}"))?;
                    guest_sockets.push((domid, PathBuf::from(path)));
                }
                "-h" | "--help" => return Ok(Parsed::Help),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        let unix_socket = unix_socket.ok_or("--unix-socket is required")?;
        Ok(Parsed::Run(Box::new(Self {
            unix_socket,
            ro_socket,
            access_log,
            quotas,
            guest_sockets,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[&str]) -> Result<Parsed, String> {
        Args::parse(s.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags() {
        let Parsed::Run(a) = parse(&[
            "--unix-socket",
            "/s",
            "--ro-socket",
            "/r",
            "--quota",
            "nodes=7",
        ])
        .unwrap() else {
            panic!("expected Run");
        };
        assert_eq!(a.unix_socket, PathBuf::from("/s"));
        assert_eq!(a.ro_socket, Some(PathBuf::from("/r")));
        assert_eq!(a.quotas.nodes_per_domain, 7);
        assert!(parse(&[]).is_err());
        assert!(parse(&["--unix-socket"]).is_err());
        assert!(parse(&["--unix-socket", "/s", "--quota", "bogus=1"]).is_err());
        assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
        let Parsed::Run(a) = parse(&["--unix-socket", "/s", "--guest-socket", "5:/g"]).unwrap()
        else {
            panic!("expected Run");
        };
        assert_eq!(a.guest_sockets, vec![(5, PathBuf::from("/g"))]);
        assert!(parse(&["--unix-socket", "/s", "--guest-socket", "0:/g"]).is_err());
        assert!(parse(&["--unix-socket", "/s", "--guest-socket", "/g"]).is_err());
    }
}
