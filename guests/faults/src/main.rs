//! `faults`: every vCPU takes thousands of exceptions, each raised with every general
//! register, eight vector registers and the x87/SSE control state set to values of its
//! own, while it is preempted, yields and migrates between pCPUs beside other domains
//! doing the same. The handlers check what a CPU guarantees: the vector, the error code,
//! the saved RIP, RSP, CS, SS and RFLAGS, where the frame is on the stack, every
//! register, and CR2 for page faults (also after a pause in the handler and in the main
//! loop long after: CR2 only changes on the vCPU's own page faults). After each return
//! the vCPU checks that every register came back, and between exceptions that its debug
//! registers and its `KERNEL_GS_BASE` (through `swapgs`) are still its own.
//!
//! Kinds: #DE (`div` by zero), #BP (`int3`), #UD (`ud2`), #UD injected by oxen
//! (`vmxoff`), #GP injected by oxen (`rdmsr` of an MSR that does not exist), #PF (a read
//! of an unmapped address, different per vCPU and iteration), #MF (`fwait` after an
//! unmasked x87 divide by zero), #XM (`divss` by zero with the exception unmasked),
//! `int 0x81`, and #DB from `int1` (ICEBP) and from general detect (DR7.GD, then a
//! MOV DR: DR6.BD set and GD cleared; oxen intercepts #DB and reflects it).
//!
//! Command line: `iterations=N` (per vCPU, default 3000), `seed=N` (default 1). Prints
//! `faults: PASS (...)` or `faults: FAIL ...` from vCPU 0 and powers off.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use oxen_guest_rt::hypercall::sched_yield;
use oxen_guest_rt::{
    ExceptionFrame, StartInfo, arch, println, route_vector, set_exception_hook, vcpu,
};

oxen_guest_rt::entry!(main);

/// Most vCPUs this guest runs.
const MAX_VCPUS: usize = vcpu::MAX_SECONDARY + 1;

/// What one vCPU's next exception must look like, and what it saw. Offsets are used by
/// the assembly below: keep them in step.
#[repr(C)]
struct Probe {
    expect_rip: u64,     // 0
    resume_rip: u64,     // 8
    expect_rsp: u64,     // 16
    expect_vector: u64,  // 24
    expect_err: u64,     // 32
    expect_cr2: u64,     // 40
    hits: u64,           // 48
    bad: u64,            // 56
    why: u64,            // 64: the first failure's bits (see `Why`)
    zero: u64,           // 72: the divisor of the #DE kind
    regs: [u64; 16],     // 80: loaded before the exception (SDM order; RSP unused)
    after: [u64; 16],    // 208: stored after the return
    xmm: [u64; 8],       // 336: XMM8..15 (low halves) loaded before
    xmm_after: [u64; 8], // 400: stored after
    mxcsr: u32,          // 464: MXCSR with #XM unmasked
    fcw: u32,            // 468: x87 control word with #Z unmasked
    first_vector: u64,   // 472: the vector of the first failure
    first_iter: u64,     // 480: the iteration of the first failure
    wrong_reg: u64,      // 488: the first register found wrong (SDM number)
    expect_bd: u64,      // 496: a #DB must report BD (general detect) in DR6
}

impl Probe {
    const fn new() -> Self {
        Probe {
            expect_rip: 0,
            resume_rip: 0,
            expect_rsp: 0,
            expect_vector: 0,
            expect_err: 0,
            expect_cr2: 0,
            hits: 0,
            bad: 0,
            why: 0,
            zero: 0,
            regs: [0; 16],
            after: [0; 16],
            xmm: [0; 8],
            xmm_after: [0; 8],
            mxcsr: 0x1f80 & !(1 << 9),
            fcw: 0x37f & !(1 << 2),
            first_vector: 0,
            first_iter: 0,
            wrong_reg: 0,
            expect_bd: 0,
        }
    }
}

/// Failure bits.
mod why {
    pub const VECTOR: u64 = 1 << 0;
    pub const ERROR_CODE: u64 = 1 << 1;
    pub const RIP: u64 = 1 << 2;
    pub const RSP: u64 = 1 << 3;
    pub const SEGMENTS: u64 = 1 << 4;
    pub const FRAME_PLACE: u64 = 1 << 5;
    pub const REGS_IN_HANDLER: u64 = 1 << 6;
    pub const CR2: u64 = 1 << 7;
    pub const CR2_LATER: u64 = 1 << 8;
    pub const REGS_AFTER: u64 = 1 << 9;
    pub const XMM_AFTER: u64 = 1 << 10;
    pub const NOT_TAKEN: u64 = 1 << 11;
    pub const CR2_IN_LOOP: u64 = 1 << 12;
    pub const DEBUG_REGS: u64 = 1 << 13;
    pub const KERNEL_GS_BASE: u64 = 1 << 14;
    pub const RFLAGS: u64 = 1 << 15;
    pub const DR6: u64 = 1 << 16;
    pub const NAMES: [&str; 17] = [
        "vector",
        "error code",
        "saved RIP",
        "saved RSP",
        "saved CS/SS",
        "frame place",
        "registers in the handler",
        "CR2 in the handler",
        "CR2 at the handler's end",
        "registers after the return",
        "XMM registers after the return",
        "exception not taken",
        "CR2 between exceptions",
        "debug registers",
        "KERNEL_GS_BASE",
        "saved RFLAGS",
        "DR6 (or DR7.GD) after #DB",
    ];
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Probe, zero) == 72);
    assert!(offset_of!(Probe, regs) == 80);
    assert!(offset_of!(Probe, after) == 208);
    assert!(offset_of!(Probe, xmm) == 336);
    assert!(offset_of!(Probe, xmm_after) == 400);
    assert!(offset_of!(Probe, mxcsr) == 464);
    assert!(offset_of!(Probe, fcw) == 468);
};

struct Probes([Probe; MAX_VCPUS]);

static mut PROBES: Probes = Probes([const { Probe::new() }; MAX_VCPUS]);

fn probe(n: u32) -> *mut Probe {
    // SAFETY: in bounds (callers pass a vCPU number below MAX_VCPUS); only the address
    // is taken here.
    unsafe { (&raw mut PROBES.0[n as usize]).cast() }
}

/// The general registers of a frame in the SDM's order (RSP, 4, as the saved RSP).
fn regs(f: &ExceptionFrame) -> [u64; 16] {
    [
        f.rax, f.rcx, f.rdx, f.rbx, f.rsp, f.rbp, f.rsi, f.rdi, f.r8, f.r9, f.r10, f.r11, f.r12,
        f.r13, f.r14, f.r15,
    ]
}

/// The vCPUs' probes, to recognise a frame's R15 as one.
fn is_probe(p: u64) -> bool {
    (0..MAX_VCPUS as u32).any(|n| probe(n) as u64 == p)
}

/// The exception hook (the runtime's stubs build the frame): checks the exception
/// against the probe in R15 and resumes past it. Anything that is not a probe's
/// exception is described and left to the runtime, which crashes the domain.
fn faults_handler(f: &mut ExceptionFrame) -> bool {
    if !is_probe(f.r15) {
        println!(
            "faults: FAIL unexpected exception {} at rip={:#x} err={:#x} cr2={:#x} rsp={:#x} rflags={:#x}",
            f.vector,
            f.rip,
            f.error_code,
            arch::read_cr2(),
            f.rsp,
            f.rflags
        );
        println!(
            "faults:   rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}",
            f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp
        );
        println!(
            "faults:   r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} r13={:#x} r14={:#x} r15={:#x}",
            f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15
        );
        return false;
    }
    // SAFETY: R15 is one of the probes (checked above); only its vCPU uses it, and it is
    // inside its trigger, which does not touch the probe until the handler returns.
    let p = unsafe { &mut *(f.r15 as *mut Probe) };
    let mut bad = 0;
    if f.vector != p.expect_vector {
        bad |= why::VECTOR;
    }
    if f.error_code != p.expect_err {
        bad |= why::ERROR_CODE;
    }
    if f.rip != p.expect_rip {
        bad |= why::RIP;
    }
    if f.rsp != p.expect_rsp {
        bad |= why::RSP;
    }
    if f.cs != 0x08 || f.ss != 0x10 {
        bad |= why::SEGMENTS;
    }
    // Arithmetic before the exception leaves its flags, IF is as the runtime left it
    // and faults may set RF: the other system bits (TF, DF, IOPL, NT, VM, AC, VIF, VIP
    // and the reserved upper half) must be clear, bit 1 set.
    if f.rflags & 0xffff_ffff_001e_7500 != 0 || f.rflags & 2 == 0 {
        bad |= why::RFLAGS;
    }
    // In 64-bit mode the CPU aligns RSP down to 16 bytes, then pushes SS, RSP, RFLAGS,
    // CS and RIP: the saved RIP sits 40 bytes below the aligned stack pointer.
    let rip_at = &raw const f.rip as u64;
    if rip_at != (p.expect_rsp & !15) - 40 {
        bad |= why::FRAME_PLACE;
    }
    let regs = regs(f);
    if let Some(k) = (0..16).find(|&k| k != 4 && k != 15 && regs[k] != p.regs[k]) {
        bad |= why::REGS_IN_HANDLER;
        p.wrong_reg = k as u64;
    }
    let page_fault = f.vector == 14;
    if page_fault && arch::read_cr2() != p.expect_cr2 {
        bad |= why::CR2;
    }
    // Linger with interrupts off, so exits (timer, IPIs) land inside the handler too.
    for _ in 0..200 {
        core::hint::spin_loop();
    }
    if page_fault && arch::read_cr2() != p.expect_cr2 {
        bad |= why::CR2_LATER;
    }
    match f.vector {
        1 => {
            // DR7.GD must be clear by now (or this read faults again), DR6.BD set for
            // general detect only.
            let dr6: u64;
            // SAFETY: reads DR6; with GD clear this has no side effects.
            unsafe { asm!("mov {}, dr6", out(reg) dr6, options(nomem, nostack)) };
            if (dr6 & (1 << 13) != 0) != (p.expect_bd != 0) {
                fail(p, why::DR6, 1);
            }
            // SAFETY: back to the reset DR6 and DR7 (no breakpoint enabled).
            unsafe {
                asm!("mov dr6, {}", in(reg) 0xffff_0ff0u64, options(nomem, nostack));
                asm!("mov dr7, {}", in(reg) 0x400u64, options(nomem, nostack));
            }
        }
        // SAFETY: clears the x87 exception flags the test raised (no other x87 state).
        16 => unsafe { asm!("fnclex", options(nomem, nostack)) },
        19 => {
            let masked: u32 = 0x1f80;
            // SAFETY: loads the reset MXCSR (all exceptions masked, flags clear).
            unsafe { asm!("ldmxcsr [{}]", in(reg) &masked, options(nostack, readonly)) };
        }
        _ => {}
    }
    p.hits += 1;
    if bad != 0 {
        fail(p, bad, f.vector);
    }
    f.rip = p.resume_rip;
    true
}

fn fail(p: &mut Probe, bad: u64, vector: u64) {
    if p.bad == 0 {
        p.first_vector = vector;
    }
    p.why |= bad;
    p.bad += 1;
}

/// One trigger per kind, `extern "C" fn(probe)`: saves the callee-saved registers,
/// records where the exception must be reported (`expect_rip`), where to resume
/// (`resume_rip`) and RSP, runs `$pre`, loads XMM8..15 and every general register but
/// R15 (the probe) from the probe, raises the exception with `$fault`, and after the
/// handler's return stores every register back into the probe.
macro_rules! trigger {
    ($name:ident, $pre:literal, $fault:literal, $trap:literal) => {
        global_asm!(concat!(
            ".pushsection .text.",
            stringify!($name),
            ", \"ax\"\n",
            ".global ",
            stringify!($name),
            "\n",
            stringify!($name),
            ":\n",
            "push rbx\npush rbp\npush r12\npush r13\npush r14\npush r15\n",
            "mov r15, rdi\n",
            "lea rax, [rip + ",
            $trap,
            "]\n",
            "mov [r15 + 0], rax\n",
            "lea rax, [rip + 2f]\n",
            "mov [r15 + 8], rax\n",
            "mov [r15 + 16], rsp\n",
            $pre,
            "\n",
            "movq xmm8, [r15 + 336]\nmovq xmm9, [r15 + 344]\nmovq xmm10, [r15 + 352]\n",
            "movq xmm11, [r15 + 360]\nmovq xmm12, [r15 + 368]\nmovq xmm13, [r15 + 376]\n",
            "movq xmm14, [r15 + 384]\nmovq xmm15, [r15 + 392]\n",
            "mov rax, [r15 + 80]\nmov rcx, [r15 + 88]\nmov rdx, [r15 + 96]\n",
            "mov rbx, [r15 + 104]\nmov rbp, [r15 + 120]\nmov rsi, [r15 + 128]\n",
            "mov rdi, [r15 + 136]\nmov r8, [r15 + 144]\nmov r9, [r15 + 152]\n",
            "mov r10, [r15 + 160]\nmov r11, [r15 + 168]\nmov r12, [r15 + 176]\n",
            "mov r13, [r15 + 184]\nmov r14, [r15 + 192]\n",
            "1:\n",
            $fault,
            "\n",
            "3:\n",
            "2:\n",
            "mov [r15 + 208], rax\nmov [r15 + 216], rcx\nmov [r15 + 224], rdx\n",
            "mov [r15 + 232], rbx\nmov [r15 + 240], rsp\nmov [r15 + 248], rbp\n",
            "mov [r15 + 256], rsi\nmov [r15 + 264], rdi\nmov [r15 + 272], r8\n",
            "mov [r15 + 280], r9\nmov [r15 + 288], r10\nmov [r15 + 296], r11\n",
            "mov [r15 + 304], r12\nmov [r15 + 312], r13\nmov [r15 + 320], r14\n",
            "movq [r15 + 400], xmm8\nmovq [r15 + 408], xmm9\nmovq [r15 + 416], xmm10\n",
            "movq [r15 + 424], xmm11\nmovq [r15 + 432], xmm12\nmovq [r15 + 440], xmm13\n",
            "movq [r15 + 448], xmm14\nmovq [r15 + 456], xmm15\n",
            "fninit\n",
            "pop r15\npop r14\npop r13\npop r12\npop rbp\npop rbx\n",
            "ret\n",
            ".popsection\n",
        ));
    };
}

// Faults report the faulting instruction (label 1), traps the next one (label 3).
trigger!(faults_de, "", "div qword ptr [r15 + 72]", "1f");
trigger!(faults_bp, "", "int3", "3f");
trigger!(faults_ud, "", "ud2", "1f");
trigger!(faults_udx, "", "vmxoff", "1f");
trigger!(faults_gp, "", "rdmsr", "1f");
trigger!(faults_pf, "", "mov al, byte ptr [r14]", "1f");
trigger!(
    faults_mf,
    "fninit\nfldcw [r15 + 468]\nfld1\nfldz\nfdivp st(1), st",
    "fwait",
    "1f"
);
trigger!(
    faults_xm,
    "mov eax, 0x3f800000\nmovd xmm0, eax\nxorps xmm1, xmm1\nldmxcsr [r15 + 464]",
    "divss xmm0, xmm1",
    "1f"
);
trigger!(faults_intn, "", "int 0x81", "3f");
// INT1 (ICEBP): a trap; oxen intercepts #DB and hands it back.
trigger!(faults_db, "", ".byte 0xf1", "3f");
// General detect: with DR7.GD set, any MOV DR faults with #DB (BD in DR6, GD cleared).
trigger!(
    faults_gd,
    "mov eax, 0x2400\nmov dr7, rax",
    "mov rax, dr6",
    "1f"
);

unsafe extern "C" {
    fn faults_de(p: *mut Probe);
    fn faults_bp(p: *mut Probe);
    fn faults_ud(p: *mut Probe);
    fn faults_udx(p: *mut Probe);
    fn faults_gp(p: *mut Probe);
    fn faults_pf(p: *mut Probe);
    fn faults_mf(p: *mut Probe);
    fn faults_xm(p: *mut Probe);
    fn faults_intn(p: *mut Probe);
    fn faults_db(p: *mut Probe);
    fn faults_gd(p: *mut Probe);
}

/// A kind: its trigger and vector (and, for #DB, whether DR6 must say BD).
struct Kind {
    trigger: unsafe extern "C" fn(*mut Probe),
    vector: u64,
    bd: bool,
}

const KINDS: [Kind; 11] = [
    Kind {
        trigger: faults_de,
        vector: 0,
        bd: false,
    },
    Kind {
        trigger: faults_bp,
        vector: 3,
        bd: false,
    },
    Kind {
        trigger: faults_ud,
        vector: 6,
        bd: false,
    },
    Kind {
        trigger: faults_udx,
        vector: 6,
        bd: false,
    },
    Kind {
        trigger: faults_gp,
        vector: 13,
        bd: false,
    },
    Kind {
        trigger: faults_pf,
        vector: 14,
        bd: false,
    },
    Kind {
        trigger: faults_mf,
        vector: 16,
        bd: false,
    },
    Kind {
        trigger: faults_xm,
        vector: 19,
        bd: false,
    },
    Kind {
        trigger: faults_intn,
        vector: 0x81,
        bd: false,
    },
    Kind {
        trigger: faults_db,
        vector: 1,
        bd: false,
    },
    Kind {
        trigger: faults_gd,
        vector: 1,
        bd: true,
    },
];

static ITERATIONS: AtomicU64 = AtomicU64::new(3000);
static SEED: AtomicU64 = AtomicU64::new(1);
static DONE: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];
static YIELDS: AtomicU64 = AtomicU64::new(0);

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn write_dr(n: u8, v: u64) {
    // SAFETY: DR0-DR3 only hold addresses; with DR7's enable bits clear they do nothing.
    unsafe {
        match n {
            0 => asm!("mov dr0, {}", in(reg) v, options(nomem, nostack)),
            1 => asm!("mov dr1, {}", in(reg) v, options(nomem, nostack)),
            2 => asm!("mov dr2, {}", in(reg) v, options(nomem, nostack)),
            _ => asm!("mov dr3, {}", in(reg) v, options(nomem, nostack)),
        }
    }
}

fn read_dr(n: u8) -> u64 {
    let v: u64;
    // SAFETY: reading a debug register has no side effects.
    unsafe {
        match n {
            0 => asm!("mov {}, dr0", out(reg) v, options(nomem, nostack)),
            1 => asm!("mov {}, dr1", out(reg) v, options(nomem, nostack)),
            2 => asm!("mov {}, dr2", out(reg) v, options(nomem, nostack)),
            _ => asm!("mov {}, dr3", out(reg) v, options(nomem, nostack)),
        }
    }
    v
}

const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// The GS base `swapgs` brings in (the vCPU's KERNEL_GS_BASE), swapped straight back.
fn kernel_gs_through_swapgs() -> u64 {
    let v: u64;
    // SAFETY: SWAPGS twice leaves both bases as they were; nothing uses GS meanwhile
    // (interrupts are taken by handlers that do not use it either).
    unsafe {
        asm!("swapgs", options(nomem, nostack));
        v = arch::rdmsr(MSR_GS_BASE);
        asm!("swapgs", options(nomem, nostack));
    }
    v
}

/// One vCPU's run: `iterations` exceptions over every kind in turn.
fn run(n: u32) {
    let p = probe(n);
    let mut x = SEED
        .load(Ordering::Relaxed)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (u64::from(n) + 1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    if x == 0 {
        x = 1;
    }
    // Debug registers and KERNEL_GS_BASE of its own, checked between exceptions.
    let drs: [u64; 4] = core::array::from_fn(|_| xorshift(&mut x) & 0x0000_7fff_ffff_fff8);
    for (i, &v) in drs.iter().enumerate() {
        write_dr(i as u8, v);
    }
    let kgs = xorshift(&mut x) & 0x0000_7fff_ffff_f000;
    // SAFETY: a canonical value; the runtime does not use KERNEL_GS_BASE.
    unsafe { arch::wrmsr(MSR_KERNEL_GS_BASE, kgs) };
    let mut last_cr2 = None;
    let iterations = ITERATIONS.load(Ordering::Relaxed);
    for i in 0..iterations {
        let kind = &KINDS[(i % KINDS.len() as u64) as usize];
        // SAFETY: the probe is this vCPU's own; the handler only touches it while the
        // trigger runs (below), so this is the only live reference.
        let pr = unsafe { &mut *p };
        for r in pr.regs.iter_mut() {
            *r = xorshift(&mut x);
        }
        for r in pr.xmm.iter_mut() {
            *r = xorshift(&mut x);
        }
        // An unmapped address (the runtime maps the first GiB only), unique per vCPU
        // and iteration.
        let pf_addr = 0x4000_0000 | (u64::from(n) << 24) | (xorshift(&mut x) & 0xff_fff8);
        pr.regs[14] = pf_addr;
        pr.expect_cr2 = pf_addr;
        // RDMSR of an MSR that does not exist.
        pr.regs[1] = 0x1234_5678;
        pr.expect_vector = kind.vector;
        pr.expect_err = 0;
        pr.expect_bd = u64::from(kind.bd);
        pr.zero = 0;
        let hits = pr.hits;
        if let Some(c) = last_cr2
            && arch::read_cr2() != c
        {
            fail(pr, why::CR2_IN_LOOP, kind.vector);
        }
        // SAFETY: the trigger follows the C ABI, raises one exception that the handler
        // checks and resumes past, and restores every callee-saved register.
        unsafe { (kind.trigger)(p) };
        // SAFETY: as above; the trigger has returned.
        let pr = unsafe { &mut *p };
        if pr.hits != hits + 1 {
            fail(pr, why::NOT_TAKEN, kind.vector);
        }
        if kind.vector == 14 {
            last_cr2 = Some(pf_addr);
        }
        let mut want = pr.regs;
        want[4] = pr.expect_rsp;
        if let Some(k) = (0..15).find(|&k| pr.after[k] != want[k]) {
            if pr.bad == 0 {
                pr.wrong_reg = k as u64;
            }
            fail(pr, why::REGS_AFTER, kind.vector);
        }
        if pr.xmm_after != pr.xmm {
            fail(pr, why::XMM_AFTER, kind.vector);
        }
        if (0..4).any(|i| read_dr(i) != drs[i as usize]) {
            fail(pr, why::DEBUG_REGS, kind.vector);
        }
        if kernel_gs_through_swapgs() != kgs {
            fail(pr, why::KERNEL_GS_BASE, kind.vector);
        }
        if pr.bad != 0 && pr.first_iter == 0 {
            pr.first_iter = i + 1;
        }
        if i % 37 == 36 {
            // Give the pCPU away now and then: other vCPUs run here, this one may
            // continue elsewhere.
            sched_yield();
            YIELDS.fetch_add(1, Ordering::Relaxed);
        }
    }
    DONE[n as usize].store(true, Ordering::Release);
}

extern "C" fn secondary(n: u32) -> ! {
    run(n);
    loop {
        vcpu::block();
    }
}

fn describe(bits: u64) -> heapless_line::Line {
    let mut l = heapless_line::Line::new();
    for (i, name) in why::NAMES.iter().enumerate() {
        if bits & (1 << i) != 0 {
            if !l.is_empty() {
                l.push(", ");
            }
            l.push(name);
        }
    }
    l
}

/// A fixed-size string buffer for the failure description (the guest has no heap).
mod heapless_line {
    pub struct Line {
        buf: [u8; 512],
        len: usize,
    }

    impl Line {
        pub fn new() -> Self {
            Line {
                buf: [0; 512],
                len: 0,
            }
        }

        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        pub fn push(&mut self, s: &str) {
            let n = s.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
        }

        pub fn as_str(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
        }
    }
}

fn main(info: &StartInfo) {
    if let Some(v) = info.cmdline_arg("iterations").and_then(|v| v.parse().ok()) {
        ITERATIONS.store(v, Ordering::Relaxed);
    }
    if let Some(v) = info.cmdline_arg("seed").and_then(|v| v.parse().ok()) {
        SEED.store(v, Ordering::Relaxed);
    }
    set_exception_hook(faults_handler);
    route_vector(0x81);
    let vcpus = vcpu::start_all(secondary).min(MAX_VCPUS as u32);
    println!(
        "faults: {vcpus} vCPU(s), {} exceptions each",
        ITERATIONS.load(Ordering::Relaxed)
    );
    run(0);
    while !(0..vcpus as usize).all(|n| DONE[n].load(Ordering::Acquire)) {
        sched_yield();
    }
    let mut total = 0;
    let mut failed = 0;
    for n in 0..vcpus {
        // SAFETY: every vCPU is done with its probe (DONE, acquired above).
        let p = unsafe { &*probe(n) };
        total += p.hits;
        if p.bad != 0 {
            failed += 1;
            println!(
                "faults: FAIL vcpu{n}: {} wrong checks in {} exceptions, first at iteration {} (vector {}); wrong: {} (register {})",
                p.bad,
                p.hits,
                p.first_iter,
                p.first_vector,
                describe(p.why).as_str(),
                p.wrong_reg
            );
        }
    }
    if failed == 0 {
        println!(
            "faults: PASS ({total} exceptions checked on {vcpus} vCPU(s), {} yields)",
            YIELDS.load(Ordering::Relaxed)
        );
    } else {
        println!("faults: FAIL ({failed} of {vcpus} vCPU(s) saw wrong state)");
    }
}
