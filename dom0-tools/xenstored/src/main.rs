//! `oxen-xenstored`: the host XenStore daemon.
//!
//! Serves the [`oxen_xenstore`] engine on Unix sockets. Connections on the
//! main socket are dom0's privileged toolstack; connections on the optional
//! read-only socket may read everything and write nothing. The daemon runs
//! in the foreground, serves any number of clients from one poll loop, and
//! on SIGTERM (or SIGINT) removes its sockets and exits 0.

mod args;
mod epoll;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(args::Parsed::Run(args)) => args,
        Ok(args::Parsed::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("oxen-xenstored: {message}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match server::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxen-xenstored: {e}");
            ExitCode::FAILURE
        }
    }
}
