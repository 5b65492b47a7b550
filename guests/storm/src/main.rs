//! `storm`: binds to a peer's event channel and sends on it in a tight loop — an
//! event storm, to show one domain cannot flood another (or the hypervisor) with
//! notifications.
//!
//! Command line: `peer=<domid> port=<port>` (required; the peer allocated `port`
//! unbound for us, e.g. `pong sink=1`), `count=<n>` (stop after n sends; default 0 =
//! never). Binding is retried for 2 s while the port is not allocated yet. Prints
//! `storm: <n> sends` every 100000 sends; if a send fails it says so and powers off.
//!
//! Relies on the hypervisor for `EVTCHNOP_bind_interdomain` and `EVTCHNOP_send` (a send
//! whose peer has closed its end is dropped and succeeds, as in Xen).
#![no_std]
#![no_main]

use oxen_guest_rt::{StartInfo, events, println, xen};

oxen_guest_rt::entry!(main);

/// Sends between progress lines.
const REPORT_EVERY: u64 = 100_000;

fn main(info: &StartInfo) {
    let num = |k: &str| info.cmdline_arg(k).and_then(|v| v.parse::<u64>().ok());
    let (Some(peer), Some(rport)) = (num("peer"), num("port")) else {
        panic!("storm: need peer=<domid> port=<port> on the command line");
    };
    let (Ok(peer), Ok(rport)) = (u16::try_from(peer), u32::try_from(rport)) else {
        panic!("storm: bad peer or port");
    };
    let count = num("count").unwrap_or(0);
    let port = match events::connect(peer, rport, 2_000_000_000) {
        Ok(p) => p,
        Err(rc) => panic!("storm: FAIL cannot bind to port {rport} of dom {peer}: {rc}"),
    };
    println!("storm: bound to dom {peer} port {rport} (local port {port}); sending");
    let mut n = 0u64;
    loop {
        if let Err(rc) = xen::send(port) {
            println!("storm: send failed with {rc} after {n} sends; stopping");
            return;
        }
        n += 1;
        if n.is_multiple_of(REPORT_EVERY) {
            println!("storm: {n} sends");
        }
        if n == count {
            println!("storm: done, {n} sends");
            return;
        }
    }
}
