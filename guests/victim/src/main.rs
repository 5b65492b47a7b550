//! `victim`: the domain beside an attacker (`hostile`). It keeps secrets of its own (a
//! pattern in its memory) and checks, after the attack, that what the hypervisor
//! promises it still holds.
//!
//! Modes (`mode=` on the command line):
//! - `teardown peer=<attacker> for_ms=<ms>`: offers the attacker an unbound port (the
//!   first one it allocates: port 2, after the console's port 1) and sends on it for
//!   `for_ms`, by when the attacker has shut down. Then the port must be
//!   unbound again (the attacker's end was closed when it was torn down) and stay so;
//!   new grant-table frames (likely the attacker's freed pages) are filled with a
//!   pattern and must keep it while the victim sends on the port again; the secret in
//!   its RAM must be intact. Prints `victim: PASS teardown (...)` and powers off, or
//!   `victim: FAIL ...`.
#![no_std]
#![no_main]

use oxen_guest_rt::abi::evtchn::stat;
use oxen_guest_rt::abi::sched_op;
use oxen_guest_rt::{StartInfo, mm, println, shutdown, time, vcpu, xen};

oxen_guest_rt::entry!(main);

/// Bytes of the secret kept in RAM.
const SECRET_WORDS: usize = 16 * 1024;
static mut SECRET: [u64; SECRET_WORDS] = [0; SECRET_WORDS];

/// Grant-table frames the victim grows its table to after the attack.
const GRANT_FRAMES: usize = 8;
/// Where it maps frames 1.. (the reserved range above the runtime's pages).
const GRANT_GFN: u64 = 0xFEFF4;
/// Its own window slots for them.
const GRANT_SLOT: usize = 100;

fn main(info: &StartInfo) {
    let num = |k: &str| info.cmdline_arg(k).and_then(|v| v.parse::<u64>().ok());
    plant_secret();
    match info.cmdline_arg("mode") {
        Some("teardown") => {
            let (Some(peer), Some(ms)) = (num("peer"), num("for_ms")) else {
                panic!("victim: teardown needs peer=<domid> for_ms=<ms>");
            };
            teardown(peer as u16, time::now_ns() + ms * 1_000_000);
        }
        other => panic!("victim: unknown mode {other:?}"),
    }
    check_secret();
    shutdown(sched_op::SHUTDOWN_POWEROFF);
}

fn secret_word(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x005e_c2e7
}

fn plant_secret() {
    let s = &raw mut SECRET;
    for i in 0..SECRET_WORDS {
        // SAFETY: this vCPU alone touches the secret; volatile so the checks read memory.
        unsafe { (s as *mut u64).add(i).write_volatile(secret_word(i)) };
    }
}

fn check_secret() {
    let s = &raw const SECRET;
    for i in 0..SECRET_WORDS {
        // SAFETY: as in `plant_secret`.
        let v = unsafe { (s as *const u64).add(i).read_volatile() };
        if v != secret_word(i) {
            panic!("victim: FAIL the secret in RAM changed at word {i}: {v:#x}");
        }
    }
}

/// The teardown race: see the module documentation.
fn teardown(peer: u16, until_ns: u64) {
    let port = match xen::alloc_unbound(peer) {
        Ok(p) => p,
        Err(rc) => panic!("victim: FAIL EVTCHNOP_alloc_unbound(dom {peer}) = {rc}"),
    };
    println!("victim: teardown: port {port} offered to dom {peer}");
    let mut sends = 0u64;
    let mut connected = 0u64;
    while time::now_ns() < until_ns {
        if xen::send(port).is_ok() {
            sends += 1;
        }
        if xen::status(port).is_ok_and(|s| s.status == stat::INTERDOMAIN) {
            connected += 1;
        }
        // Leave the attacker's vCPUs a pCPU each: the race is theirs.
        vcpu::sleep_until(0, time::now_ns() + 200_000);
    }
    if connected == 0 {
        panic!("victim: FAIL the attacker never bound to port {port} (the race was not run)");
    }
    // The attacker is gone: its end was closed, ours is unbound (reserved for it).
    let after = time::now_ns() + 100_000_000;
    while time::now_ns() < after {
        match xen::status(port) {
            Ok(s) if s.status == stat::UNBOUND && s.unbound_dom() == peer => {}
            Ok(s) => panic!(
                "victim: FAIL port {port} is still {} after dom {peer} died (u {:#x} {:#x}): a binding outlived its domain",
                describe(s.status),
                s.u_word0,
                s.u_word1
            ),
            Err(rc) => panic!("victim: FAIL EVTCHNOP_status({port}) = {rc}"),
        }
        if let Err(rc) = xen::send(port) {
            panic!("victim: FAIL a send on the unbound port {port} = {rc}");
        }
        sends += 1;
    }
    // Fresh frames, probably pages the attacker gave back: they must stay ours.
    let mut list = [0u64; GRANT_FRAMES];
    match xen::setup_table(&mut list) {
        Ok(r) if r.status == 0 => {}
        Ok(r) => panic!(
            "victim: FAIL GNTTABOP_setup_table({GRANT_FRAMES}): status {}",
            r.status
        ),
        Err(rc) => panic!("victim: FAIL GNTTABOP_setup_table({GRANT_FRAMES}) = {rc}"),
    }
    let mut frames = [core::ptr::null_mut::<u64>(); GRANT_FRAMES];
    for (k, f) in frames.iter_mut().enumerate().skip(1) {
        let gfn = GRANT_GFN + k as u64 - 1;
        if let Err(rc) = xen::add_to_physmap(xen::mapspace::GRANT_TABLE, k as u64, gfn) {
            panic!("victim: FAIL add_to_physmap(grant frame {k}) = {rc}");
        }
        // SAFETY: the slot is this guest's own (below the runtime's) and the frame was
        // just mapped at that guest-physical address.
        *f = unsafe { mm::map_phys(GRANT_SLOT + k, gfn << 12, false) } as *mut u64;
        for i in 0..512 {
            // SAFETY: inside the mapped page; nobody else has a grant of ours to use.
            unsafe { f.add(i).write_volatile(pattern(k, i)) };
        }
    }
    for _ in 0..1000 {
        let _ = xen::send(port);
        sends += 1;
    }
    for (k, f) in frames.iter().enumerate().skip(1) {
        for i in 0..512 {
            // SAFETY: as above.
            let v = unsafe { f.add(i).read_volatile() };
            if v != pattern(k, i) {
                panic!(
                    "victim: FAIL grant frame {k} word {i} changed behind my back: {v:#x} (a freed page still written by the hypervisor)"
                );
            }
        }
    }
    println!(
        "victim: PASS teardown ({sends} sends, connected in {connected} checks, unbound after dom {peer} died, {} fresh frames intact)",
        GRANT_FRAMES - 1
    );
}

fn pattern(frame: usize, word: usize) -> u64 {
    0xa5a5_0000_0000_0000 | ((frame as u64) << 32) | word as u64
}

fn describe(status: u32) -> &'static str {
    match status {
        stat::CLOSED => "closed",
        stat::UNBOUND => "unbound for another domain",
        stat::INTERDOMAIN => "interdomain",
        stat::VIRQ => "a VIRQ",
        stat::IPI => "an IPI",
        _ => "in an unknown state",
    }
}
