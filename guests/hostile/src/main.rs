//! `hostile`: an unprivileged attacker. Each mode is one attack on the hypervisor or on
//! the domains beside it, as a guest would try it; the victims (`victim`) and the
//! hypervisor's own lines judge the outcome, this guest only says what it did.
//!
//! Modes (`mode=` on the command line):
//! - `teardown peer=<domid> port=<port> [after_ms=300]`: needs 2 vCPUs. vCPU 1 binds to
//!   the victim's unbound port in a tight loop (a bind fails while the channel is
//!   connected and succeeds again as soon as it is closed), while vCPU 0 shuts the
//!   domain down after `after_ms`. A hypervisor that tears the domain's event channels
//!   down while vCPU 1 still runs leaves the victim's port connected to a dead domain
//!   (whose pages go back to the allocator): the victim checks that it is not.
//!   First it tries to shut the victim down (`SCHEDOP_remote_shutdown`: `-EPERM`).
//!   Prints `hostile: teardown: shutting down after <n> binds` and powers off.
//! - `physmap [hold_ms=1500]`: tries to make the hypervisor spend memory on its
//!   physical map. It moves its shared-info page to a new 1 GiB-aligned frame 2,000
//!   times (the EPT tables each move needs must be given back: every move succeeds), asks
//!   for a frame beyond its physical address width (`-EINVAL`), then maps a page of its
//!   own through a grant at one new 2 MiB-aligned address after another until the
//!   hypervisor refuses (its EPT table quota: a few hundred frames, not the 8,192
//!   mappings its maptrack allows), unmaps them all and checks that mapping works
//!   again. Holds its mappings until `hold_ms` (the victims run meanwhile), prints
//!   `hostile: physmap: PASS ...` and powers off.
//! - `console`: `console_io(CONSOLEIO_write, 4096)` in a loop, forever: a hypervisor
//!   that prints all of it, waiting for the UART with a lock held and without
//!   preemption, hands this domain most of a pCPU it shares with an equal-weight
//!   victim (the scenario measures the victim's share) and fills the log for everyone.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use oxen_guest_rt::abi::errno::EPERM;
use oxen_guest_rt::abi::sched_op;
use oxen_guest_rt::hypercall::remote_shutdown;
use oxen_guest_rt::{StartInfo, println, shutdown, time, vcpu, xen};

oxen_guest_rt::entry!(main);

/// The victim's domain and port, for the secondary vCPUs.
static PEER: AtomicU32 = AtomicU32::new(0);
static PORT: AtomicU32 = AtomicU32::new(0);
/// Successful binds by vCPU 1.
static BINDS: AtomicU64 = AtomicU64::new(0);

fn main(info: &StartInfo) {
    let num = |k: &str| info.cmdline_arg(k).and_then(|v| v.parse::<u64>().ok());
    match info.cmdline_arg("mode") {
        Some("teardown") => {
            let (Some(peer), Some(port)) = (num("peer"), num("port")) else {
                panic!("hostile: teardown needs peer=<domid> port=<port>");
            };
            teardown(peer as u32, port as u32, num("after_ms").unwrap_or(300))
        }
        Some("console") => console(),
        Some("physmap") => physmap(num("hold_ms").unwrap_or(1500)),
        other => panic!("hostile: unknown mode {other:?}"),
    }
}

/// The teardown race: see the module documentation.
fn teardown(peer: u32, port: u32, after_ms: u64) {
    PEER.store(peer, Ordering::Relaxed);
    PORT.store(port, Ordering::Relaxed);
    // An unprivileged domain may not shut another down.
    let rc = remote_shutdown(peer as u16, sched_op::SHUTDOWN_POWEROFF);
    if rc != -EPERM {
        panic!("hostile: FAIL remote_shutdown of dom {peer} returned {rc}, not -EPERM");
    }
    let n = vcpu::start_all(binder);
    assert!(n >= 2, "hostile: teardown needs 2 vCPUs, has {n}");
    println!(
        "hostile: teardown: vcpu1 binds to dom {peer} port {port}; shutting down in {after_ms} ms"
    );
    vcpu::sleep_until(0, time::now_ns() + after_ms * 1_000_000);
    println!(
        "hostile: teardown: shutting down after {} binds",
        BINDS.load(Ordering::Relaxed)
    );
    shutdown(sched_op::SHUTDOWN_POWEROFF);
}

/// vCPU 1 of `teardown`: bind, bind, bind.
extern "C" fn binder(_n: u32) -> ! {
    let peer = PEER.load(Ordering::Relaxed) as u16;
    let port = PORT.load(Ordering::Relaxed);
    loop {
        if xen::bind_interdomain(peer, port).is_ok() {
            BINDS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The console storm: see the module documentation.
fn console() -> ! {
    let mut text = [b'x'; 4096];
    for (i, b) in text.iter_mut().enumerate() {
        *b = match i % 64 {
            63 => b'\n',
            k => b'a' + (k % 26) as u8,
        };
    }
    println!("hostile: console: writing 4096 bytes per console_io, forever");
    loop {
        // SAFETY: the hypervisor only reads the buffer.
        unsafe {
            oxen_guest_rt::hypercall(
                oxen_guest_rt::abi::hypercall::CONSOLE_IO,
                u64::from(oxen_guest_rt::abi::console_io::WRITE),
                text.len() as u64,
                text.as_ptr() as u64,
                0,
                0,
            )
        };
    }
}

/// Where the physmap attack's `i`th grant mapping goes: from 1 GiB up, one per 2 MiB,
/// so that each needs a page table of its own.
fn far(i: usize) -> u64 {
    (1 << 30) + ((i as u64) << 21)
}

/// Grant references the physmap attack maps (100 mappings each).
const GREFS: u32 = 10;

/// A page of our own to grant to ourselves.
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut GRANTED: Page = Page([0; 4096]);

/// The physical-memory attack: see the module documentation.
fn physmap(hold_ms: u64) {
    use oxen_guest_rt::abi::errno::EINVAL;
    use oxen_guest_rt::{arch, grant};
    let t0 = time::now_ns();
    let bits = arch::cpuid(0x8000_0008, 0).eax & 0xff;
    let limit_gfn = 1u64 << (bits - 12);
    // Shared info, moved far and wide.
    let moves = 2000u64;
    for k in 1..=moves {
        let gfn = (k % (limit_gfn >> 18).max(2)).max(1) << 18;
        if let Err(rc) = xen::add_to_physmap(xen::mapspace::SHARED_INFO, 0, gfn) {
            panic!("hostile: FAIL physmap: move {k} of shared info to gfn {gfn:#x} = {rc}");
        }
    }
    let rc = xen::add_to_physmap(xen::mapspace::SHARED_INFO, 0, limit_gfn);
    if rc != Err(-EINVAL) {
        panic!("hostile: FAIL physmap: a gfn at the {bits}-bit limit gave {rc:?}, not -EINVAL");
    }
    // Self-maps at far addresses until refused.
    if let Err(e) = grant::init() {
        panic!("hostile: FAIL physmap: grant table: {e:?}");
    }
    let me = xen::domid().unwrap_or(0);
    let gfn = (&raw const GRANTED) as u64 >> 12;
    // Xen allows 127 mappings of one grant: use several.
    for r in 0..GREFS {
        if grant::grant_access(grant::FIRST_FREE_REF + r, me, gfn, false).is_err() {
            panic!("hostile: FAIL physmap: cannot grant my own page");
        }
    }
    let mut handles = [0u32; GREFS as usize * 100];
    let mut n = 0;
    let refused = loop {
        if n == handles.len() {
            panic!("hostile: FAIL physmap: {n} far mappings and no refusal: no bound on the EPT");
        }
        let gpa = far(n);
        let gref = grant::FIRST_FREE_REF + (n / 100) as u32;
        match grant::map(me, gref, gpa, false) {
            Ok(h) => {
                handles[n] = h;
                n += 1;
            }
            Err(e) => break e,
        }
    };
    println!(
        "hostile: physmap: {moves} moves of shared info, then {n} far grant mappings before a refusal ({refused:?}; {bits}-bit physical addresses)"
    );
    for (i, &h) in handles[..n].iter().enumerate() {
        if let Err(e) = grant::unmap(far(i), h) {
            panic!("hostile: FAIL physmap: unmap {i}: {e:?}");
        }
    }
    // Everything is given back: mapping far away works again.
    match grant::map(me, grant::FIRST_FREE_REF, 5 << 30, false) {
        Ok(h) => {
            let _ = grant::unmap(5 << 30, h);
        }
        Err(e) => panic!("hostile: FAIL physmap: after unmapping everything a map fails: {e:?}"),
    }
    vcpu::sleep_until(0, t0 + hold_ms * 1_000_000);
    println!("hostile: physmap: PASS ({n} far mappings allowed)");
    shutdown(sched_op::SHUTDOWN_POWEROFF);
}
