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
//! - `ac [count=1000]`: alignment checks from user mode: it builds a GDT with user
//!   segments and a TSS, makes its memory user-accessible, sets CR0.AM, and `count`
//!   times drops to CPL 3 with RFLAGS.AC set and reads a misaligned word. Each #AC
//!   (which oxen intercepts, as every hypervisor must since CVE-2015-5307) must reach
//!   its handler with error code 0 and the user CS, which returns to the kernel.
//!   Prints `hostile: ac: PASS <n> alignment checks from CPL 3` and powers off.
//! - `console`: `console_io(CONSOLEIO_write, 4096)` in a loop, forever: a hypervisor
//!   that prints all of it, waiting for the UART with a lock held and without
//!   preemption, hands this domain most of a pCPU it shares with an equal-weight
//!   victim (the scenario measures the victim's share) and fills the log for everyone.
//! - `conin [hold_ms=3000]`: corrupts the input indices of its own console page
//!   (`in_prod` 5,000 ahead of `in_cons`) and lives on for `hold_ms`: what is typed for
//!   it must not make the hypervisor read or write outside the ring (it says once that
//!   the indices are impossible and ignores the console), and typing goes on for the
//!   other domains. Prints `hostile: conin: indices corrupted` once it has done so.
//! - `conout [hold_ms=3000]`: says `hostile: conout: corrupting the output index`, then
//!   sets its console's `out_prod` 5,000 ahead of `out_cons`, notifies the back end and
//!   lives on for `hold_ms` without writing again: the back end must say once that the
//!   indices are impossible and read nothing outside the ring.
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
        Some("ac") => alignment_checks(num("count").unwrap_or(1000)),
        Some("conin") => console_input(num("hold_ms").unwrap_or(3000)),
        Some("conout") => console_output(num("hold_ms").unwrap_or(3000)),
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
        asm!("sti", "hlt", "cli", options(nomem, nostack));
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

// ----------------------------------------------------------------- #AC from CPL 3

/// GDT: null, kernel code (0x08) and data (0x10) as the runtime's, user data (0x18,
/// selector 0x1b) and user 64-bit code (0x20, selector 0x23), then the TSS (0x28).
#[repr(C, align(16))]
struct Gdt([u64; 7]);
static mut GDT: Gdt = Gdt([
    0,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x00cf_f300_0000_ffff,
    0x00af_fb00_0000_ffff,
    0,
    0,
]);
/// The 64-bit TSS: RSP0 at offset 4 (the stack an exception from CPL 3 lands on).
#[repr(C, align(16))]
struct Tss([u8; 104]);
static mut TSS: Tss = Tss([0; 104]);
#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut RING0_STACK: Stack = Stack([0; 16384]);
static mut USER_STACK: Stack = Stack([0; 16384]);

/// What the kernel side saved before dropping to CPL 3 (RSP after the pushes).
static KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
static AC_TAKEN: AtomicU64 = AtomicU64::new(0);
static AC_WRONG: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(
    ".pushsection .text.hostile_user, \"ax\"",
    // hostile_to_user(user_rsp): saves the callee-saved registers, records RSP, and
    // IRETQs to hostile_user_code at CPL 3 with RFLAGS.AC (bit 18) set.
    ".global hostile_to_user",
    "hostile_to_user:",
    "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
    "mov [rip + {krsp}], rsp",
    "push 0x1b",
    "push rdi",
    "push 0x40002",
    "push 0x23",
    "lea rax, [rip + hostile_user_code]",
    "push rax",
    "iretq",
    // The handler sends the kernel back here, on the stack it left.
    ".global hostile_back_in_kernel",
    "hostile_back_in_kernel:",
    "mov rsp, [rip + {krsp}]",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
    "ret",
    // CPL 3: a misaligned load (#AC), and if that ever returned, UD2.
    ".global hostile_user_code",
    "hostile_user_code:",
    "mov eax, [rsp + 1]",
    "ud2",
    ".popsection",
    krsp = sym KERNEL_RSP,
);

unsafe extern "C" {
    fn hostile_to_user(user_rsp: u64);
    fn hostile_back_in_kernel();
    fn hostile_user_code();
}

fn ac_hook(f: &mut oxen_guest_rt::ExceptionFrame) -> bool {
    if f.cs & 3 != 3 {
        return false;
    }
    if f.vector == 17
        && f.error_code == 0
        && f.cs == 0x23
        && f.ss == 0x1b
        && f.rip == hostile_user_code as *const () as u64
    {
        AC_TAKEN.fetch_add(1, Ordering::SeqCst);
    } else {
        AC_WRONG.fetch_add(1, Ordering::SeqCst);
        println!(
            "hostile: FAIL ac: vector {} err {:#x} cs {:#x} rip {:#x}",
            f.vector, f.error_code, f.cs, f.rip
        );
    }
    // Back to the kernel side of `hostile_to_user`.
    f.cs = 0x08;
    f.ss = 0x10;
    f.rip = hostile_back_in_kernel as *const () as u64;
    f.rsp = KERNEL_RSP.load(Ordering::SeqCst);
    f.rflags = 0x2;
    true
}

/// The #AC test: see the module documentation.
fn alignment_checks(count: u64) {
    use core::arch::asm;
    use oxen_guest_rt::arch;
    // SAFETY: builds this vCPU's own descriptor tables and page-table bits before
    // anything uses them; the runtime's code and data selectors stay valid.
    unsafe {
        let tss = &raw mut TSS as u64;
        let stack_top = (&raw mut RING0_STACK as u64) + 16384;
        core::ptr::write_unaligned((tss + 4) as *mut u64, stack_top);
        core::ptr::write_unaligned((tss + 102) as *mut u16, 104); // no I/O bitmap
        let limit = 103u64;
        let low = limit | ((tss & 0xff_ffff) << 16) | (0x89 << 40) | (((tss >> 24) & 0xff) << 56);
        let gdt = &raw mut GDT as *mut u64;
        gdt.add(5).write_volatile(low);
        gdt.add(6).write_volatile(tss >> 32);
        let ptr: [u64; 2] = [(7 * 8 - 1) | ((gdt as u64) << 16), (gdt as u64) >> 48];
        // GDTR: 16-bit limit, then the 64-bit base (bytes 2..10 of `ptr`).
        asm!("lgdt [{}]", in(reg) &raw const ptr as u64, options(nostack));
        asm!("ltr {0:x}", in(reg) 0x28u16, options(nostack));
        // User access to the first GiB (PML4[0], PDPT[0], every 2 MiB PDE).
        let pml4 = arch::read_cr3() & !0xfff;
        let e = pml4 as *mut u64;
        e.write_volatile(e.read_volatile() | 4);
        let pdpt = (e.read_volatile() & 0x000f_ffff_ffff_f000) as *mut u64;
        pdpt.write_volatile(pdpt.read_volatile() | 4);
        let pd = (pdpt.read_volatile() & 0x000f_ffff_ffff_f000) as *mut u64;
        for i in 0..512 {
            pd.add(i).write_volatile(pd.add(i).read_volatile() | 4);
        }
        asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack));
        // CR0.AM: alignment checks at CPL 3 with RFLAGS.AC.
        asm!("mov {0}, cr0", "or {0}, {1}", "mov cr0, {0}", out(reg) _, in(reg) 1u64 << 18, options(nostack));
    }
    oxen_guest_rt::set_exception_hook(ac_hook);
    let user_rsp = ((&raw mut USER_STACK as u64) + 16384 - 64) & !15;
    for _ in 0..count {
        // SAFETY: the kernel side saves and restores every callee-saved register and
        // comes back on its own stack; the user side only reads its own stack.
        unsafe { hostile_to_user(user_rsp) };
    }
    let (taken, wrong) = (
        AC_TAKEN.load(Ordering::SeqCst),
        AC_WRONG.load(Ordering::SeqCst),
    );
    if taken != count || wrong != 0 {
        panic!("hostile: FAIL ac: {taken} of {count} alignment checks taken, {wrong} wrong");
    }
    println!("hostile: ac: PASS {taken} alignment checks from CPL 3");
    shutdown(sched_op::SHUTDOWN_POWEROFF);
}

// ------------------------------------------------------------ console input indices

/// See the module documentation (`conin`).
fn console_input(hold_ms: u64) {
    let base = oxen_guest_rt::xencons::interface();
    if base == 0 {
        panic!("hostile: conin: no PV console");
    }
    use oxen_guest_rt::abi::xencons::{IN_CONS, IN_PROD};
    // SAFETY: `base` is our own mapped console page; in_cons and in_prod are u32s in it.
    unsafe {
        let cons = ((base + IN_CONS) as *const u32).read_volatile();
        ((base + IN_PROD) as *mut u32).write_volatile(cons.wrapping_add(5000));
    }
    // Output still works: the hypervisor only looks at the input side when input comes.
    println!("hostile: conin: indices corrupted");
    vcpu::sleep_until(0, time::now_ns() + hold_ms * 1_000_000);
    shutdown(sched_op::SHUTDOWN_POWEROFF);
}

/// The `conout` attack: see the module documentation.
fn console_output(hold_ms: u64) {
    let base = oxen_guest_rt::xencons::interface();
    if base == 0 {
        panic!("hostile: conout: no PV console");
    }
    println!("hostile: conout: corrupting the output index");
    use oxen_guest_rt::abi::xencons::{OUT_CONS, OUT_PROD};
    // Let the back end take that line first.
    let deadline = time::now_ns() + 2_000_000_000;
    // SAFETY: `base` is our own mapped console page; out_cons and out_prod are u32s in it.
    let drained = || unsafe {
        ((base + OUT_CONS) as *const u32).read_volatile()
            == ((base + OUT_PROD) as *const u32).read_volatile()
    };
    while !drained() && time::now_ns() < deadline {
        vcpu::sleep_until(0, time::now_ns() + 1_000_000);
    }
    // SAFETY: as above.
    unsafe {
        let cons = ((base + OUT_CONS) as *const u32).read_volatile();
        ((base + OUT_PROD) as *mut u32).write_volatile(cons.wrapping_add(5000));
    }
    if let Ok(port) = xen::get_param(xen::hvm_param::CONSOLE_EVTCHN) {
        let _ = xen::send(port as u32);
    }
    vcpu::sleep_until(0, time::now_ns() + hold_ms * 1_000_000);
    shutdown(sched_op::SHUTDOWN_POWEROFF);
}
