//! Test guest: a XenStore client over the ring the control domain serves.
//!
//! Default mode: reads its own nodes (`domid`, `name`), writes and reads back under
//! `data/`, is refused another domain's node (`EACCES`) and a missing one (`ENOENT`),
//! sets a watch (fired at once, then on a write below it), and runs two transactions
//! on one node: the first commits, the second conflicts (`EAGAIN`) and changes nothing.
//! Prints `xenstore: PASS` with the count, or `xenstore: FAIL` and what failed. Then
//! it waits for a request in `control/shutdown` (`xl shutdown`), acknowledges it by
//! clearing the node, and powers off (or reboots, for a `reboot` request).
//!
//! `hostile=1`: publishes request indexes a ring cannot hold, then waits for the store
//! to say so in the page's `error` field (`XENSTORE_ERROR_RINGIDX`) and prints
//! `xenstore-hostile: PASS rejected` (or FAIL if the store keeps quiet), then keeps
//! notifying its port every 20 ms until it is destroyed. `hostile=2`: the same with a
//! header that announces 0xFFFFFFFF bytes (`XENSTORE_ERROR_PROTO` expected: the store
//! closes such a connection, as Xen's does). `hostile=3`: writes nodes under `data/`
//! until the store refuses one, which must be with `ENOSPC`, as Xen's store refuses a
//! domain's node beyond its quota (1,000 by default), checks that reads are still
//! answered, says `xenstore-quota: PASS refused node N (ENOSPC)`, and powers off.
#![no_std]
#![no_main]

use oxen_guest_rt::xenbus::{Error, ShutdownRequest, Xenbus};
use oxen_guest_rt::{StartInfo, events, println, time, xen};

oxen_guest_rt::entry!(main);

struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!("xenstore: FAIL {what}");
        }
    }
}

fn is_err(r: Result<impl Sized, Error>, name: &str) -> bool {
    matches!(r, Err(Error::Store(e)) if e.as_str() == name)
}

fn main(info: &StartInfo) {
    if let Err(e) = events::init() {
        println!("xenstore: FAIL no event channels ({e:?})");
        return;
    }
    let mut bus = match Xenbus::open() {
        Ok(b) => b,
        Err(e) => {
            println!("xenstore: FAIL {e}");
            return;
        }
    };
    match info.cmdline_arg("hostile") {
        Some("1") => return hostile(&mut bus, false),
        Some("2") => return hostile(&mut bus, true),
        Some("3") => return quota(&mut bus),
        _ => {}
    }
    let mut c = Checks {
        passed: 0,
        failed: 0,
    };
    let me = xen::domid().unwrap_or(u16::MAX);
    let mut buf = [0u8; 256];

    let n = bus.read(0, "domid", &mut buf);
    let mine = n
        .ok()
        .and_then(|n| core::str::from_utf8(&buf[..n]).ok()?.parse::<u16>().ok());
    c.check(mine == Some(me), "domid reads back this domain's id");
    let n = bus.read(0, "name", &mut buf).unwrap_or(0);
    let name = core::str::from_utf8(&buf[..n]).unwrap_or("?");
    println!("xenstore: I am domain {me}, named '{name}' in the store");

    c.check(
        bus.write(0, "data/greeting", b"hello, store").is_ok(),
        "write under data/",
    );
    let n = bus.read(0, "data/greeting", &mut buf);
    c.check(
        n.is_ok_and(|n| &buf[..n] == b"hello, store"),
        "the write reads back",
    );
    c.check(
        is_err(bus.write(0, "/local/domain/0/name", b"mine"), "EACCES"),
        "dom0's name is not ours to write (EACCES)",
    );
    c.check(
        is_err(bus.write(0, "name", b"other"), "EACCES"),
        "our own name is read-only (EACCES)",
    );
    c.check(
        is_err(bus.read(0, "data/nothing", &mut buf), "ENOENT"),
        "a missing node is ENOENT",
    );
    let n = bus.directory(0, "data", &mut buf);
    c.check(
        n.is_ok_and(|n| buf[..n].split(|&b| b == 0).any(|w| w == b"greeting")),
        "directory lists data/greeting",
    );

    // A watch fires once when set, then for each change below it.
    c.check(bus.watch("data/w", "tok").is_ok(), "watch");
    let deadline = time::now_ns() + 2_000_000_000;
    let first = bus.next_event(deadline);
    c.check(
        first.is_ok_and(|e| e.token() == "tok" && e.path().ends_with("data/w")),
        "the watch fires when set",
    );
    c.check(
        bus.write(0, "data/w/leaf", b"1").is_ok(),
        "write below the watch",
    );
    let ev = bus.next_event(time::now_ns() + 2_000_000_000);
    c.check(
        ev.is_ok_and(|e| e.token() == "tok" && e.path().ends_with("data/w/leaf")),
        "the watch fires for the write",
    );
    c.check(bus.unwatch("data/w", "tok").is_ok(), "unwatch");

    // Two transactions on one node: the later commit conflicts.
    c.check(bus.write(0, "data/x", b"0").is_ok(), "write data/x");
    let t1 = bus.transaction_start();
    let t2 = bus.transaction_start();
    c.check(
        t1.is_ok() && t2.is_ok() && t1 != t2,
        "two transactions start",
    );
    let (t1, t2) = (t1.unwrap_or(0), t2.unwrap_or(0));
    let r1 = bus.read(t1, "data/x", &mut buf).is_ok();
    let r2 = bus.read(t2, "data/x", &mut buf).is_ok();
    c.check(r1 && r2, "both read data/x");
    c.check(bus.write(t1, "data/x", b"one").is_ok(), "the first writes");
    c.check(bus.write(t2, "data/x", b"two").is_ok(), "the second writes");
    let n = bus.read(0, "data/x", &mut buf);
    c.check(
        n.is_ok_and(|n| &buf[..n] == b"0"),
        "outside them, nothing changed yet",
    );
    c.check(bus.transaction_end(t1, true).is_ok(), "the first commits");
    c.check(
        is_err(bus.transaction_end(t2, true), "EAGAIN"),
        "the second conflicts (EAGAIN)",
    );
    let n = bus.read(0, "data/x", &mut buf);
    c.check(
        n.is_ok_and(|n| &buf[..n] == b"one"),
        "the first's value stands",
    );
    c.check(
        bus.rm(0, "data/x").is_ok() && is_err(bus.read(0, "data/x", &mut buf), "ENOENT"),
        "rm",
    );

    if c.failed == 0 {
        println!("xenstore: PASS {} checks", c.passed);
    } else {
        println!(
            "xenstore: FAIL {} of {} checks",
            c.failed,
            c.passed + c.failed
        );
    }
    round_trips(&mut bus);
    await_shutdown(&mut bus);
}

/// Watches `control/shutdown` as Linux's xenbus does, acknowledges a request by
/// clearing the node, and returns (which powers the domain off).
fn await_shutdown(bus: &mut Xenbus) {
    if bus.watch_shutdown().is_err() {
        println!("xenstore: FAIL watch control/shutdown");
        return;
    }
    let deadline = time::now_ns() + 60_000_000_000;
    loop {
        if let Err(e) = bus.next_event(deadline) {
            println!("xenstore: FAIL no shutdown request ({e})");
            return;
        }
        let req = match bus.take_shutdown_request() {
            Ok(None) => continue,
            Ok(Some(req)) => req,
            Err(e) => {
                println!("xenstore: FAIL to acknowledge the shutdown request ({e})");
                return;
            }
        };
        println!(
            "xenstore: shutdown requested ({}); acknowledged",
            req.name()
        );
        if req == ShutdownRequest::Reboot {
            oxen_guest_rt::shutdown(oxen_guest_rt::abi::sched_op::SHUTDOWN_REBOOT);
        }
        return;
    }
}

/// Breaks the ring and waits to be told.
fn hostile(bus: &mut Xenbus, oversized: bool) {
    let ok = bus.write(0, "data/before", b"fine").is_ok();
    println!(
        "xenstore-hostile: a request before the attack: {}",
        if ok { "answered" } else { "failed" }
    );
    let deadline = time::now_ns() + 3_000_000_000;
    let (code, told) = if oversized {
        bus.send_header_for_test(u32::MAX, deadline)
    } else {
        bus.break_ring_for_test(deadline)
    };
    if told {
        println!("xenstore-hostile: PASS rejected (error {code})");
    } else {
        println!("xenstore-hostile: FAIL the store said nothing of the broken ring");
    }
    // Then keep ringing the bell until destroyed: the store must not serve us again,
    // nor let us slow the others down.
    loop {
        events::wait_timeout(bus.port(), time::now_ns() + 20_000_000);
        let _ = xen::send(bus.port());
    }
}

/// Fills the store until its per-domain quota refuses a node: see the module comment.
fn quota(bus: &mut Xenbus) {
    let mut path = [0u8; 32];
    for i in 0..4000u32 {
        let mut w = Cursor {
            buf: &mut path,
            at: 0,
        };
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!("data/q{i}"));
        let at = w.at;
        let p = core::str::from_utf8(&path[..at]).unwrap_or("data/q");
        match bus.write(0, p, b"x") {
            Ok(()) => {}
            Err(Error::Store(e)) if e.as_str() == "ENOSPC" => {
                let mut buf = [0u8; 8];
                let alive = bus.read(0, "domid", &mut buf).is_ok();
                if alive {
                    println!(
                        "xenstore-quota: PASS refused node {i} (ENOSPC); reads still answered"
                    );
                } else {
                    println!("xenstore-quota: FAIL no answer after the quota");
                }
                return;
            }
            Err(e) => {
                println!("xenstore-quota: FAIL node {i} refused with {e}, not ENOSPC");
                return;
            }
        }
    }
    println!("xenstore-quota: FAIL 4000 nodes and no quota");
}

/// Formats into a byte buffer (the guest has no heap).
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl core::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.at + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.at..end].copy_from_slice(s.as_bytes());
        self.at = end;
        Ok(())
    }
}

/// Times 200 reads of its own `domid` over the ring (TSC ticks: instructions under
/// Bochs), for `cargo xtask bench`.
fn round_trips(bus: &mut Xenbus) {
    const N: u32 = 200;
    let mut buf = [0u8; 8];
    let t0 = oxen_guest_rt::arch::rdtsc();
    for _ in 0..N {
        if bus.read(0, "domid", &mut buf).is_err() {
            println!("xenstore: FAIL a timed read was refused");
            return;
        }
    }
    let ticks = oxen_guest_rt::arch::rdtsc() - t0;
    println!(
        "xenstore: {N} reads over the ring in {ticks} ticks ({} per round trip)",
        ticks / u64::from(N)
    );
}
