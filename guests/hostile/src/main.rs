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
//! - `instructions [for_ms=1000]`: on every vCPU, for `for_ms`: XSETBV with XCR0 = 0x27
//!   (AVX-512 opmask without the ZMM states: #GP, not a hypervisor crash), MOV CR8 = 15
//!   and HLT (the physical TPR must stay the host's: timers and IPIs on this pCPU keep
//!   working for the victims beside it), its own values in DR0-DR3, DR6, DR7,
//!   KERNEL_GS_BASE and TSC_AUX (which must never reach another domain), RDPMC (#GP),
//!   MONITOR (#UD) and the PAUSE spin loops; each refused instruction must fault as
//!   Xen's guests see it. Prints `hostile: instructions: PASS <n> rounds` and powers off.
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
        Some("instructions") => instructions(num("for_ms").unwrap_or(1000)),
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

/// Rounds of the instruction attacks, over all vCPUs.
static ROUNDS: AtomicU64 = AtomicU64::new(0);
static UNTIL: AtomicU64 = AtomicU64::new(0);
static WRONG: AtomicU64 = AtomicU64::new(0);

/// One round of the instruction attacks on vCPU `n`.
fn attack_round(n: u32, k: u64) {
    use core::arch::asm;
    use oxen_guest_rt::{arch, expect_fault};
    let wrong = |what: &str, got: Option<u8>| {
        WRONG.fetch_add(1, Ordering::Relaxed);
        println!("hostile: FAIL instructions: vcpu{n}: {what} gave {got:?}");
    };
    // XSETBV with an inconsistent XCR0 (needs CR4.OSXSAVE, which the runtime sets).
    if arch::read_cr4() & (1 << 18) != 0 {
        // SAFETY: the hypervisor refuses the value (#GP, caught); XCR0 stays.
        let v = expect_fault(|| unsafe {
            asm!("xsetbv", in("ecx") 0u32, in("eax") 0x27u32, in("edx") 0u32, options(nostack))
        });
        if v != Some(13) {
            wrong("XSETBV XCR0=0x27", v);
        }
    }
    // The highest task priority, then a halt: only a virtual TPR lets the pCPU's own
    // timer end it.
    // SAFETY: CR8 and HLT only affect this vCPU's own interrupt delivery.
    unsafe {
        asm!("mov cr8, {}", in(reg) 15u64, options(nomem, nostack));
        asm!("hlt", options(nomem, nostack));
        asm!("mov cr8, {}", in(reg) 0u64, options(nomem, nostack));
    }
    // Debug registers, KERNEL_GS_BASE and TSC_AUX of our own: a victim on the same
    // pCPU checks its own.
    let junk = 0x5a5a_0000_0000_0000u64 | (k << 12) | u64::from(n);
    // SAFETY: DR0-3 only hold addresses (no enable bit in DR7); DR6 is status.
    unsafe {
        asm!("mov dr0, {}", "mov dr1, {}", "mov dr2, {}", "mov dr3, {}",
             in(reg) junk & 0x7fff_ffff_fff8, in(reg) junk & 0x7fff_ffff_fff0,
             in(reg) junk & 0x7fff_ffff_ffe8, in(reg) junk & 0x7fff_ffff_ffe0,
             options(nomem, nostack));
        asm!("mov dr6, {}", in(reg) 0xffff_4ff0u64, options(nomem, nostack));
        asm!("mov dr7, {}", in(reg) 0x00ff_0400u64, options(nomem, nostack));
        arch::wrmsr(0xc000_0102, junk & 0x7fff_ffff_f000);
        arch::wrmsr(0xc000_0103, junk as u32 as u64);
    }
    // Performance counters and MONITOR are not offered.
    // SAFETY: faults (caught).
    let v = expect_fault(|| unsafe {
        asm!("rdpmc", in("ecx") 0u32, out("eax") _, out("edx") _, options(nomem, nostack))
    });
    if v != Some(13) {
        wrong("RDPMC", v);
    }
    let line = 0u64;
    // SAFETY: faults (caught).
    let v = expect_fault(|| unsafe {
        asm!("monitor", in("rax") &raw const line, in("ecx") 0u32, in("edx") 0u32, options(nostack))
    });
    if v != Some(6) {
        wrong("MONITOR", v);
    }
    // A PAUSE spin of its own (PAUSE-loop exiting hands the pCPU on).
    for _ in 0..20_000 {
        core::hint::spin_loop();
    }
    ROUNDS.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn attacker_vcpu(n: u32) -> ! {
    let mut k = 0;
    while time::now_ns() < UNTIL.load(Ordering::Relaxed) {
        attack_round(n, k);
        k += 1;
    }
    loop {
        vcpu::block();
    }
}

/// The instruction attacks: see the module documentation.
fn instructions(for_ms: u64) {
    UNTIL.store(time::now_ns() + for_ms * 1_000_000, Ordering::Relaxed);
    let n = vcpu::start_all(attacker_vcpu);
    println!("hostile: instructions: {n} vCPU(s) attacking for {for_ms} ms");
    let mut k = 0;
    while time::now_ns() < UNTIL.load(Ordering::Relaxed) {
        attack_round(0, k);
        k += 1;
    }
    let wrong = WRONG.load(Ordering::Relaxed);
    let rounds = ROUNDS.load(Ordering::Relaxed);
    if wrong != 0 {
        panic!("hostile: FAIL instructions: {wrong} wrong answers in {rounds} rounds");
    }
    println!("hostile: instructions: PASS {rounds} rounds");
    shutdown(sched_op::SHUTDOWN_POWEROFF);
}
