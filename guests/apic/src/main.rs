//! `apic`: the local APIC as a Xen HVM/PVH guest finds it, in x2APIC mode (MSRs
//! 0x800–0x83F): APIC_BASE, the ID, version and logical ID; software enable; self-IPIs
//! through SELF_IPI and ICR with IRR/ISR/EOI and the task priority holding a lower
//! class back; the timer in one-shot and periodic mode; a fixed IPI to vCPU 1; INIT and
//! a start-up IPI that start vCPU 2 in real mode at a page of ours; reserved registers
//! fault. First it reads the ACPI tables `hvm_start_info` points to: RSDP, XSDT, a
//! hardware-reduced FADT, and a MADT with one enabled local APIC per vCPU whose ids
//! are the x2APIC ids. Needs 3 vCPUs. Prints `apic: PASS (<n> checks)` and powers off.
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use oxen_guest_rt::{
    ExceptionFrame, StartInfo, arch, expect_fault, println, route_vector, set_exception_hook, time,
    vcpu,
};

oxen_guest_rt::entry!(main);

const APIC_BASE: u32 = 0x1b;
const ID: u32 = 0x802;
const VERSION: u32 = 0x803;
const TPR: u32 = 0x808;
const PPR: u32 = 0x80a;
const EOI: u32 = 0x80b;
const LDR: u32 = 0x80d;
const SVR: u32 = 0x80f;
const ISR0: u32 = 0x810;
const IRR0: u32 = 0x820;
const ICR: u32 = 0x830;
const LVT_TIMER: u32 = 0x832;
const TIMER_INITIAL: u32 = 0x838;
const TIMER_CURRENT: u32 = 0x839;
const TIMER_DIVIDE: u32 = 0x83e;
const SELF_IPI: u32 = 0x83f;

/// Vectors: a self-IPI, one of a lower class, the timer, the IPI to vCPU 1.
const V_SELF: u8 = 0x71;
const V_LOW: u8 = 0x45;
const V_TIMER: u8 = 0x50;
const V_SIBLING: u8 = 0x60;

/// Interrupts taken, by vector class (vector >> 4), and on vCPU 1.
static TAKEN: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static SIBLING: AtomicU64 = AtomicU64::new(0);
/// ISR as the handler saw it for V_SELF (the word that holds it).
static ISR_IN_HANDLER: AtomicU64 = AtomicU64::new(0);
static FAILURES: AtomicU64 = AtomicU64::new(0);
static CHECKS: AtomicU64 = AtomicU64::new(0);

/// Where vCPU 2's real-mode code goes and what it writes where.
const TRAMPOLINE: u64 = 0x9000;
const MARKER: u64 = 0x7800;

fn check(ok: bool, what: &str) {
    CHECKS.fetch_add(1, Ordering::Relaxed);
    if !ok {
        FAILURES.fetch_add(1, Ordering::Relaxed);
        println!("apic: FAIL {what}");
    }
}

fn rd(msr: u32) -> u64 {
    // SAFETY: every MSR read here is an x2APIC register or APIC_BASE, which the
    // hypervisor provides; a fault would be caught by the runtime and crash us.
    unsafe { arch::rdmsr(msr) }
}

fn wr(msr: u32, v: u64) {
    // SAFETY: as for `rd`; the values are valid for the registers.
    unsafe { arch::wrmsr(msr, v) }
}

fn hook(f: &mut ExceptionFrame) -> bool {
    let v = f.vector;
    if !(0x40..0x100).contains(&v) {
        return false;
    }
    if v == u64::from(V_SELF) {
        ISR_IN_HANDLER.store(rd(ISR0 + 3), Ordering::SeqCst);
    }
    if v == u64::from(V_SIBLING) {
        SIBLING.fetch_add(1, Ordering::SeqCst);
    } else {
        TAKEN[(v >> 4) as usize].fetch_add(1, Ordering::SeqCst);
    }
    wr(EOI, 0);
    true
}

/// Lets interrupts in until `cond` holds or `ms` pass.
fn with_interrupts(ms: u64, cond: impl Fn() -> bool) -> bool {
    let end = time::now_ns() + ms * 1_000_000;
    while time::now_ns() < end {
        // SAFETY: the interrupts that come are the APIC's, handled by `hook`.
        unsafe { asm!("sti", "pause", "pause", "cli", options(nomem, nostack)) };
        if cond() {
            return true;
        }
    }
    cond()
}

fn taken(v: u8) -> u64 {
    TAKEN[usize::from(v >> 4)].load(Ordering::SeqCst)
}

fn main(info: &StartInfo) {
    acpi_tables(info);
    set_exception_hook(hook);
    for v in [V_SELF, V_LOW, V_TIMER, V_SIBLING] {
        route_vector(v);
    }
    registers();
    self_ipis();
    timer();
    sibling_ipi();
    init_sipi();
    let n = CHECKS.load(Ordering::Relaxed);
    match FAILURES.load(Ordering::Relaxed) {
        0 => println!("apic: PASS ({n} checks)"),
        f => panic!("apic: {f} of {n} checks failed"),
    }
}

fn registers() {
    let base = rd(APIC_BASE);
    check(
        base & 0xffff_f000 == 0xfee0_0000 && base & (3 << 10) == 3 << 10 && base & (1 << 8) != 0,
        "APIC_BASE is 0xFEE00000, enabled, x2APIC, BSP",
    );
    check(
        arch::cpuid(1, 0).ecx & (1 << 21) != 0,
        "CPUID offers x2APIC",
    );
    check(rd(ID) == 0, "vCPU 0's x2APIC id is 0");
    check(rd(VERSION) & 0xff == 0x14, "version 0x14");
    check(rd(LDR) == 1, "logical id: cluster 0, bit 0");
    wr(SVR, 0x1ff);
    check(rd(SVR) == 0x1ff, "software enabled");
    wr(TPR, 0x20);
    check(rd(TPR) == 0x20 && rd(PPR) == 0x20, "TPR and PPR");
    wr(TPR, 0);
    // Reserved or read-only registers and bad values fault.
    // SAFETY: each access faults (#GP, caught); nothing changes.
    let v = expect_fault(|| unsafe { arch::wrmsr(ID, 5) });
    check(v == Some(13), "writing the ID faults");
    // SAFETY: as above.
    let v = expect_fault(|| unsafe { arch::wrmsr(EOI, 1) });
    check(v == Some(13), "a non-zero EOI write faults");
    // SAFETY: as above.
    let v = expect_fault(|| unsafe {
        arch::rdmsr(0x809);
    });
    check(v == Some(13), "reading a reserved x2APIC register faults");
    // CR8 is TPR bits 7:4.
    // SAFETY: CR8 only gates interrupt delivery; interrupts are off here.
    unsafe { asm!("mov cr8, {}", in(reg) 3u64, options(nomem, nostack)) };
    check(rd(TPR) == 0x30, "CR8 = 3 is TPR 0x30");
    // SAFETY: as above.
    unsafe { asm!("mov cr8, {}", in(reg) 0u64, options(nomem, nostack)) };
}

fn self_ipis() {
    wr(SELF_IPI, u64::from(V_SELF));
    check(
        rd(IRR0 + 3) & (1 << (V_SELF % 32)) != 0,
        "the self-IPI waits in IRR",
    );
    check(
        with_interrupts(50, || taken(V_SELF) == 1),
        "the self-IPI is taken once interrupts are on",
    );
    check(
        ISR_IN_HANDLER.load(Ordering::SeqCst) & (1 << (V_SELF % 32)) != 0,
        "its vector is in service inside the handler",
    );
    check(rd(ISR0 + 3) == 0 && rd(IRR0 + 3) == 0, "EOI retired it");
    // A class at or below TPR waits; lowering TPR lets it in.
    wr(TPR, 0x40);
    wr(SELF_IPI, u64::from(V_LOW));
    check(
        !with_interrupts(5, || taken(V_LOW) > 0),
        "TPR 0x40 holds vector 0x45 back",
    );
    wr(TPR, 0);
    check(
        with_interrupts(50, || taken(V_LOW) == 1),
        "vector 0x45 comes in when TPR drops",
    );
    // Through ICR with the self shorthand.
    wr(ICR, (1 << 18) | u64::from(V_SELF));
    check(
        with_interrupts(50, || taken(V_SELF) == 2),
        "a self-IPI through ICR",
    );
}

fn timer() {
    wr(TIMER_DIVIDE, 0xb); // divide by 1: 1 count per ns
    wr(LVT_TIMER, u64::from(V_TIMER));
    let t0 = time::now_ns();
    wr(TIMER_INITIAL, 3_000_000);
    let c1 = rd(TIMER_CURRENT);
    check(
        c1 > 0 && c1 <= 3_000_000,
        "the current count runs down from the initial",
    );
    check(
        with_interrupts(100, || taken(V_TIMER) == 1),
        "a one-shot timer of 3 ms fires",
    );
    let dt = time::now_ns() - t0;
    check(dt >= 3_000_000, "not before its time");
    check(
        !with_interrupts(10, || taken(V_TIMER) > 1),
        "a one-shot timer fires once",
    );
    check(rd(TIMER_CURRENT) == 0, "and counts no more");
    // Periodic, 1 ms.
    wr(LVT_TIMER, (1 << 17) | u64::from(V_TIMER));
    let before = taken(V_TIMER);
    wr(TIMER_INITIAL, 1_000_000);
    with_interrupts(20, || false);
    wr(TIMER_INITIAL, 0);
    let ticks = taken(V_TIMER) - before;
    println!("apic: periodic timer: {ticks} ticks of 1 ms in 20 ms");
    check(
        (10..=21).contains(&ticks),
        "a 1 ms periodic timer ticks about 20 times in 20 ms",
    );
    // A tick already pending when the count was written may still come (as on
    // hardware); none may come after it.
    with_interrupts(1, || false);
    let after = taken(V_TIMER);
    with_interrupts(5, || false);
    check(taken(V_TIMER) == after, "an initial count of 0 stops it");
    wr(LVT_TIMER, 1 << 16);
}

extern "C" fn sibling(_n: u32) -> ! {
    wr(SVR, 0x1ff);
    SIBLING_READY.store(1, Ordering::SeqCst);
    loop {
        // SAFETY: waits for interrupts (the IPI), handled by `hook`.
        unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
}

static SIBLING_READY: AtomicU64 = AtomicU64::new(0);

fn sibling_ipi() {
    check(
        vcpu::initialise(1, sibling, vcpu::stack_top(1)) == 0 && vcpu::up(1) == 0,
        "vCPU 1 comes up",
    );
    check(
        with_interrupts(1000, || SIBLING_READY.load(Ordering::SeqCst) == 1),
        "vCPU 1 enabled its APIC",
    );
    for k in 1..=3 {
        wr(ICR, (1 << 32) | u64::from(V_SIBLING));
        check(
            with_interrupts(1000, || SIBLING.load(Ordering::SeqCst) == k),
            "a fixed IPI reaches vCPU 1 (halted)",
        );
    }
}

/// vCPU 2's start: real mode at `TRAMPOLINE`: `mov ax, 0x1234; mov [MARKER], ax; hlt`
/// (with IF clear, which takes it down).
fn init_sipi() {
    let code: [u8; 9] = [
        0xb8,
        0x34,
        0x12,
        0xa3,
        MARKER as u8,
        (MARKER >> 8) as u8,
        0xf4,
        0xeb,
        0xfd,
    ];
    // SAFETY: the page at TRAMPOLINE and the marker word are free RAM below 1 MiB,
    // identity-mapped, used by nothing else.
    unsafe {
        for (i, b) in code.iter().enumerate() {
            ((TRAMPOLINE + i as u64) as *mut u8).write_volatile(*b);
        }
        (MARKER as *mut u16).write_volatile(0);
    }
    check(vcpu::is_up(2) == 0, "vCPU 2 starts down");
    // INIT (level assert), then the start-up IPI with the trampoline's page.
    wr(ICR, (2 << 32) | (1 << 14) | (5 << 8));
    wr(ICR, (2 << 32) | (6 << 8) | (TRAMPOLINE >> 12));
    // SAFETY: reads the marker word vCPU 2 writes.
    let marker = || unsafe { (MARKER as *const u16).read_volatile() } == 0x1234;
    check(
        with_interrupts(1000, marker),
        "INIT and a start-up IPI start vCPU 2 in real mode at the trampoline",
    );
    // The trampoline ends in HLT with interrupts off (IF is clear after a start-up
    // IPI): as in Xen, that takes the vCPU down.
    check(
        with_interrupts(1000, || vcpu::is_up(2) == 0),
        "vCPU 2 went down at its HLT with interrupts off",
    );
}

/// Bytes of guest-physical memory (identity-mapped below 1 GiB).
fn phys(addr: u64, len: usize) -> &'static [u8] {
    // SAFETY: the runtime identity-maps the first GiB; the tables lie in RAM the
    // hypervisor filled before we started and nothing writes.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len) }
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

/// The ACPI tables: see the module documentation.
fn acpi_tables(info: &StartInfo) {
    let rsdp_at = info.rsdp_paddr();
    check(
        rsdp_at != 0 && rsdp_at < 0x1_0000_0000,
        "hvm_start_info has an RSDP",
    );
    if rsdp_at == 0 {
        return;
    }
    let reserved = info
        .memmap()
        .any(|e| e.addr <= rsdp_at && rsdp_at < e.end() && e.kind != 1);
    check(
        reserved,
        "the tables are not in RAM the memory map gives away",
    );
    let rsdp = phys(rsdp_at, 36);
    check(
        &rsdp[..8] == b"RSD PTR " && rsdp[15] == 2,
        "an RSDP, revision 2",
    );
    check(sum(&rsdp[..20]) == 0 && sum(rsdp) == 0, "RSDP checksums");
    let xsdt_at = le64(rsdp, 24);
    let head = phys(xsdt_at, 36);
    let xsdt = phys(xsdt_at, le32(head, 4) as usize);
    check(
        &xsdt[..4] == b"XSDT" && sum(xsdt) == 0,
        "an XSDT with its checksum",
    );
    let (mut madt_ok, mut fadt_ok) = (false, false);
    for i in 0..(xsdt.len() - 36) / 8 {
        let at = le64(xsdt, 36 + 8 * i);
        let t = phys(at, le32(phys(at, 36), 4) as usize);
        if sum(t) != 0 {
            check(false, "every table's checksum");
        }
        match &t[..4] {
            b"FACP" => fadt_ok = le32(t, 112) & (1 << 20) != 0,
            b"APIC" => {
                let mut ids = [false; 3];
                let mut n = 0;
                let mut off = 44;
                while off + 2 <= t.len() {
                    let (kind, len) = (t[off], usize::from(t[off + 1]));
                    if len < 2 {
                        break;
                    }
                    if kind == 0 && len == 8 {
                        let (uid, id, flags) = (t[off + 2], t[off + 3], le32(t, off + 4));
                        if uid == id && usize::from(id) < ids.len() && flags & 1 != 0 {
                            ids[usize::from(id)] = true;
                        }
                        n += 1;
                    }
                    off += len;
                }
                madt_ok = n == 3 && ids.iter().all(|&x| x);
            }
            _ => {}
        }
    }
    check(fadt_ok, "a hardware-reduced FADT");
    check(
        madt_ok,
        "a MADT with one enabled local APIC per vCPU, UID = APIC id = vCPU id",
    );
    println!(
        "apic: ACPI tables: RSDP at {rsdp_at:#x}, XSDT, FADT (hardware-reduced), MADT with 3 local APICs"
    );
}
