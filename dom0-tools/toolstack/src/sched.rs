//! `xl sched-credit`'s forms, as Xen's `xl` reads its options:
//!
//! ```text
//! xl sched-credit [-d DOMAIN [-w WEIGHT] [-c CAP]]
//! xl sched-credit -s [-t TSLICE] [-r RATELIMIT] [-m MIGRDELAY]
//! ```
//!
//! with `-p POOL` allowed everywhere (oxen has one cpupool, `Pool-0`), and the long
//! forms `--domain=`, `--weight=`, `--cap=`, `--schedparam`, `--tslice_ms=`,
//! `--ratelimit_us=`, `--migration_delay_us=`, `--cpupool=`.

use alloc::string::String;

/// What a `sched-credit` command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedCredit<'a> {
    /// Every domain's weight and cap, after the pool line.
    List,
    /// One domain's weight and cap.
    Show(&'a str),
    /// Changes a domain's weight and/or cap.
    Set {
        domain: &'a str,
        weight: Option<u16>,
        cap: Option<u16>,
    },
    /// The pool line alone.
    ShowPool,
    /// Changes the pool's time slice, rate limit and/or migration delay.
    SetPool {
        tslice_ms: Option<u32>,
        ratelimit_us: Option<u32>,
        migr_delay_us: Option<u32>,
    },
}

/// The usage line of `xl sched-credit`.
pub const USAGE: &str = "Usage: xl sched-credit [-d DOMAIN [-w WEIGHT] [-c CAP]] | -s [-t TSLICE] [-r RATELIMIT] [-m MIGRDELAY] [-p POOL]";

/// The one cpupool.
pub const POOL: &str = "Pool-0";

/// Reads the options after `sched-credit`; the error is the line `xl` prints (exit 2
/// for a usage error, which is every error here but an unknown pool).
pub fn parse<'a>(args: &[&'a str]) -> Result<SchedCredit<'a>, (i32, String)> {
    let usage = |why: &str| (2, alloc::format!("xl sched-credit: {why}\n{USAGE}"));
    let (mut domain, mut weight, mut cap, mut pool_params) = (None, None, None, false);
    let (mut tslice, mut ratelimit, mut delay) = (None, None, None);
    let mut it = args.iter();
    while let Some(&arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg, None),
        };
        let mut value = || inline.or_else(|| it.next().copied());
        let number = |v: Option<&str>, what: &str, max: u64| {
            v.and_then(|v| v.parse::<u64>().ok())
                .filter(|&n| n <= max)
                .ok_or_else(|| usage(&alloc::format!("{what} needs a number up to {max}")))
        };
        match flag {
            "-d" | "--domain" => domain = Some(value().ok_or_else(|| usage("-d needs a domain"))?),
            "-w" | "--weight" => {
                let w = number(value(), "-w", 65535)?;
                if w == 0 {
                    return Err(usage("a weight is 1..65535"));
                }
                weight = Some(w as u16);
            }
            "-c" | "--cap" => cap = Some(number(value(), "-c", 65535)? as u16),
            "-s" | "--schedparam" => pool_params = true,
            "-t" | "--tslice_ms" => {
                tslice = Some(number(value(), "-t", u64::from(u32::MAX))? as u32)
            }
            "-r" | "--ratelimit_us" => {
                ratelimit = Some(number(value(), "-r", u64::from(u32::MAX))? as u32)
            }
            "-m" | "--migration_delay_us" => {
                delay = Some(number(value(), "-m", u64::from(u32::MAX))? as u32)
            }
            "-p" | "--cpupool" => match value() {
                Some(POOL) => {}
                Some(other) => return Err((1, alloc::format!("unknown cpupool '{other}'"))),
                None => return Err(usage("-p needs a cpupool")),
            },
            _ => return Err(usage(&alloc::format!("unknown option '{arg}'"))),
        }
    }
    let domain_opts = domain.is_some() || weight.is_some() || cap.is_some();
    let pool_opts = tslice.is_some() || ratelimit.is_some() || delay.is_some();
    match (domain, pool_params) {
        (_, true) if domain_opts => Err(usage("-s cannot be combined with -d, -w or -c")),
        (_, true) if pool_opts => Ok(SchedCredit::SetPool {
            tslice_ms: tslice,
            ratelimit_us: ratelimit,
            migr_delay_us: delay,
        }),
        (_, true) => Ok(SchedCredit::ShowPool),
        _ if pool_opts => Err(usage("-t, -r and -m need -s")),
        (None, false) if domain_opts => Err(usage("-w and -c need -d DOMAIN")),
        (None, false) => Ok(SchedCredit::List),
        (Some(d), false) if weight.is_none() && cap.is_none() => Ok(SchedCredit::Show(d)),
        (Some(d), false) => Ok(SchedCredit::Set {
            domain: d,
            weight,
            cap,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form() {
        assert_eq!(parse(&[]), Ok(SchedCredit::List));
        assert_eq!(parse(&["-p", "Pool-0"]), Ok(SchedCredit::List));
        assert_eq!(parse(&["-d", "web"]), Ok(SchedCredit::Show("web")));
        assert_eq!(
            parse(&["-d", "web", "-w", "512"]),
            Ok(SchedCredit::Set {
                domain: "web",
                weight: Some(512),
                cap: None
            })
        );
        assert_eq!(
            parse(&["--domain=3", "--cap=50", "-w", "1"]),
            Ok(SchedCredit::Set {
                domain: "3",
                weight: Some(1),
                cap: Some(50)
            })
        );
        assert_eq!(parse(&["-s"]), Ok(SchedCredit::ShowPool));
        assert_eq!(
            parse(&["-s", "-t", "10", "-r", "500", "--migration_delay_us=20"]),
            Ok(SchedCredit::SetPool {
                tslice_ms: Some(10),
                ratelimit_us: Some(500),
                migr_delay_us: Some(20)
            })
        );
        assert_eq!(
            parse(&["--schedparam", "--ratelimit_us=0"]),
            Ok(SchedCredit::SetPool {
                tslice_ms: None,
                ratelimit_us: Some(0),
                migr_delay_us: None
            })
        );
    }

    #[test]
    fn wrong_lines_are_usage_errors() {
        for bad in [
            &["-w", "5"][..],
            &["-c", "5"],
            &["-t", "5"],
            &["-d", "x", "-r", "5"],
            &["-s", "-d", "x"],
            &["-d", "x", "-w", "0"],
            &["-d", "x", "-w", "65536"],
            &["-d", "x", "-c", "many"],
            &["-d"],
            &["-s", "-t"],
            &["-x"],
            &["-p"],
        ] {
            let (code, line) = parse(bad).expect_err("refused");
            assert_eq!(code, 2, "{bad:?}");
            assert!(line.starts_with("xl sched-credit: "), "{line}");
            assert!(line.ends_with(USAGE), "{line}");
        }
        assert_eq!(
            parse(&["-p", "Pool-1"]),
            Err((1, "unknown cpupool 'Pool-1'".into()))
        );
    }
}
