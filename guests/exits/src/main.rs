//! `exits`: drives every VM exit oxen handles (CPUID, RDMSR/WRMSR, I/O, HLT, XSETBV,
//! WBINVD/INVD, MOV CR, VMCALL) and checks the results, including the error values of
//! bad hypercalls.
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use oxen_guest_rt::abi::{console_io, errno, hypercall as nr, sched_op, xen_version as xv};
use oxen_guest_rt::{StartInfo, arch, expect_fault, hypercall, println, vmcall};

oxen_guest_rt::entry!(main);

static CHECKS: AtomicU32 = AtomicU32::new(0);

/// Asserts a condition (panicking crashes the domain) and counts it.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {{
        assert!($cond, "exits: FAIL {}", format_args!($($msg)+));
        CHECKS.fetch_add(1, Ordering::Relaxed);
    }};
}

const GP: u8 = 13;
const UD: u8 = 6;

const IA32_PAT: u32 = 0x277;
const IA32_TSC_AUX: u32 = 0xc000_0103;
const IA32_GS_BASE: u32 = 0xc000_0101;
const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_SFMASK: u32 = 0xc000_0084;
const IA32_DEBUGCTL: u32 = 0x1d9;
const UNKNOWN_MSR: u32 = 0x1234_5678;
const UNHANDLED_PORT: u16 = 0x1234;

fn main(_info: &StartInfo) {
    println!("exits: started");
    self_test();
    cpuid();
    msrs();
    io();
    hlt();
    xcr0();
    caches();
    control_registers();
    own_state();
    hypercalls();
    println!("exits: PASS ({} checks)", CHECKS.load(Ordering::Relaxed));
}

/// The expected-fault mechanism itself (no exit involved).
fn self_test() {
    // SAFETY: UD2 raises #UD, which `expect_fault` catches.
    let v = expect_fault(|| unsafe { asm!("ud2", options(nomem, nostack)) });
    check!(v == Some(UD), "ud2 under expect_fault gave {v:?}");
    let v = expect_fault(|| {});
    check!(v.is_none(), "empty closure under expect_fault gave {v:?}");
    println!("exits: expected-fault mechanism ok");
}

fn cpuid() {
    let l1 = arch::cpuid(1, 0);
    check!(
        l1.ecx & (1 << 31) != 0,
        "CPUID.1:ECX.hypervisor clear (ecx={:#x})",
        l1.ecx
    );
    check!(
        l1.ecx & (1 << 5) == 0,
        "CPUID.1:ECX.VMX set (ecx={:#x})",
        l1.ecx
    );
    let base = arch::cpuid(0x4000_0000, 0);
    check!(
        base.eax >= 0x4000_0002,
        "CPUID 0x40000000 max leaf {:#x}",
        base.eax
    );
    println!(
        "exits: CPUID ok (leaf 1 ecx={:#x} edx={:#x})",
        l1.ecx, l1.edx
    );
}

fn msrs() {
    // IA32_PAT: write a different (valid) value to entry 7, read it back, restore.
    let pat = arch::try_rdmsr(IA32_PAT);
    check!(pat.is_ok(), "RDMSR IA32_PAT faulted: {pat:?}");
    let pat = pat.unwrap_or(0);
    let new = if pat >> 56 == 0 {
        pat | (6 << 56)
    } else {
        pat & !(0xff << 56)
    };
    // SAFETY: PAT entry 7 (PAT=PCD=PWT=1) is used by none of our mappings.
    let w = unsafe { arch::try_wrmsr(IA32_PAT, new) };
    check!(w.is_ok(), "WRMSR IA32_PAT={new:#x} faulted: {w:?}");
    let back = arch::try_rdmsr(IA32_PAT);
    check!(
        back == Ok(new),
        "IA32_PAT read back {back:x?}, wrote {new:#x}"
    );
    // SAFETY: restores the original value.
    let w = unsafe { arch::try_wrmsr(IA32_PAT, pat) };
    check!(
        w.is_ok() && arch::try_rdmsr(IA32_PAT) == Ok(pat),
        "IA32_PAT restore"
    );
    println!("exits: IA32_PAT {pat:#x} -> {new:#x} -> {pat:#x} ok");

    // IA32_TSC_AUX, if RDTSCP is offered.
    if arch::cpuid(0x8000_0001, 0).edx & (1 << 27) != 0 {
        let v = 0x0000_0000_1234_5678;
        // SAFETY: TSC_AUX is only read by RDTSCP/RDPID, which we do not rely on.
        let w = unsafe { arch::try_wrmsr(IA32_TSC_AUX, v) };
        check!(w.is_ok(), "WRMSR IA32_TSC_AUX faulted: {w:?}");
        let r = arch::try_rdmsr(IA32_TSC_AUX);
        check!(r == Ok(v), "IA32_TSC_AUX read back {r:x?}");
        println!("exits: IA32_TSC_AUX ok");
    } else {
        println!("exits: IA32_TSC_AUX skipped (no RDTSCP in CPUID)");
    }

    let r = arch::try_rdmsr(UNKNOWN_MSR);
    check!(r == Err(GP), "RDMSR {UNKNOWN_MSR:#x} gave {r:x?}, want #GP");
    // SAFETY: the MSR does not exist; the write must fault and is caught.
    let w = unsafe { arch::try_wrmsr(UNKNOWN_MSR, 1) };
    check!(w == Err(GP), "WRMSR {UNKNOWN_MSR:#x} gave {w:?}, want #GP");
    println!("exits: unknown MSR {UNKNOWN_MSR:#x} raises #GP ok");
}

fn io() {
    for &b in b"exits: hello through port 0xe9\n" {
        // SAFETY: port 0xE9 is the hypervisor's debug console.
        unsafe { arch::outb(0xe9, b) };
    }
    // SAFETY: nothing is behind this port; the hypervisor must ignore the write.
    unsafe { arch::outb(UNHANDLED_PORT, 0x5a) };
    // SAFETY: nothing is behind this port; reads must float high.
    let b = unsafe { arch::inb(UNHANDLED_PORT) };
    check!(b == 0xff, "IN byte from {UNHANDLED_PORT:#x} gave {b:#x}");
    // SAFETY: as above.
    let l = unsafe { arch::inl(UNHANDLED_PORT) };
    check!(
        l == 0xffff_ffff,
        "IN dword from {UNHANDLED_PORT:#x} gave {l:#x}"
    );
    println!("exits: port I/O ok (0xe9 out, {UNHANDLED_PORT:#x} reads all-ones)");
    string_io();
}

/// INS/OUTS with and without REP, both directions of RFLAGS.DF: the same port policy as
/// IN/OUT, and RSI/RDI/RCX as the CPU leaves them.
fn string_io() {
    let text = b"exits: hello through rep outsb\n";
    let (rsi, rcx): (u64, u64);
    // SAFETY: reads `text` (in bounds: RCX = its length) and writes it to port 0xE9.
    unsafe {
        asm!("cld", "rep outsb",
             inout("rsi") text.as_ptr() as u64 => rsi, inout("rcx") text.len() as u64 => rcx,
             in("dx") 0xe9u16, options(nostack, readonly));
    }
    check!(
        rsi == text.as_ptr() as u64 + text.len() as u64 && rcx == 0,
        "rep outsb left RSI {rsi:#x}, RCX {rcx}"
    );
    // 6,000 words in from a port nobody backs: all ones, over two continued exits.
    let mut buf = [0u16; 6000];
    let (rdi, rcx): (u64, u64);
    // SAFETY: writes exactly `buf` (RCX words from its start, DF clear).
    unsafe {
        asm!("cld", "rep insw",
             inout("rdi") buf.as_mut_ptr() as u64 => rdi, inout("rcx") buf.len() as u64 => rcx,
             in("dx") UNHANDLED_PORT, options(nostack));
    }
    check!(
        buf.iter().all(|&w| w == 0xffff),
        "rep insw did not read all ones"
    );
    check!(
        rdi == buf.as_ptr() as u64 + 2 * buf.len() as u64 && rcx == 0,
        "rep insw left RDI {rdi:#x}, RCX {rcx}"
    );
    // One INSB with DF set: one byte, RDI counts down, RCX untouched.
    let mut two = [0u8; 2];
    let (rdi, rcx): (u64, u64);
    // SAFETY: writes `two[1]` only; DF is cleared again at once.
    unsafe {
        asm!("std", "insb", "cld",
             inout("rdi") two.as_mut_ptr() as u64 + 1 => rdi, inout("rcx") 5u64 => rcx,
             in("dx") UNHANDLED_PORT, options(nostack));
    }
    check!(two == [0, 0xff], "insb with DF wrote {two:?}");
    check!(
        rdi == two.as_ptr() as u64 && rcx == 5,
        "insb with DF left RDI {rdi:#x}, RCX {rcx}"
    );
    println!("exits: string I/O ok (rep outsb to 0xe9, rep insw and insb with DF read all-ones)");
}

fn hlt() {
    for _ in 0..3 {
        let t0 = arch::rdtsc();
        // SAFETY: STI; HLT sleeps until an interrupt; with no event bound the
        // hypervisor ends it after a tick (a spurious wake). HLT with IF clear would take
        // the vCPU down for good, as in Xen.
        unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
        let t1 = arch::rdtsc();
        CHECKS.fetch_add(1, Ordering::Relaxed);
        println!(
            "exits: HLT returned after {} TSC ticks",
            t1.wrapping_sub(t0)
        );
    }
    let rc = hypercall::sched_yield();
    check!(rc == 0, "sched_op(yield) returned {rc}");
    println!("exits: sched_op(yield) ok");
}

fn xgetbv(xcr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only called with CR4.OSXSAVE set.
    unsafe { asm!("xgetbv", in("ecx") xcr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// # Safety
/// The value must be a valid XCR0 for the code that runs afterwards.
unsafe fn xsetbv(xcr: u32, v: u64) {
    // SAFETY: as for this function.
    unsafe {
        asm!("xsetbv", in("ecx") xcr, in("eax") v as u32, in("edx") (v >> 32) as u32,
             options(nomem, nostack))
    };
}

fn xcr0() {
    if arch::cpuid(1, 0).ecx & (1 << 26) == 0 {
        println!("exits: XSETBV skipped (no XSAVE in CPUID)");
        return;
    }
    let cr4 = arch::read_cr4();
    // SAFETY: CR4.OSXSAVE only enables XGETBV/XSETBV/XSAVE; we are soft-float.
    unsafe { arch::write_cr4(cr4 | (1 << 18)) };
    check!(
        arch::read_cr4() & (1 << 18) != 0,
        "CR4.OSXSAVE did not stick"
    );
    check!(
        arch::cpuid(1, 0).ecx & (1 << 27) != 0,
        "CPUID.1:ECX.OSXSAVE not reflected"
    );
    // SAFETY: XCR0 = x87 only is always valid.
    unsafe { xsetbv(0, 1) };
    let x = xgetbv(0);
    check!(x == 1, "XCR0 read back {x:#x}, wrote 1");
    // SAFETY: XCR0 bit 0 must be set: this write must #GP, which is caught.
    let v = expect_fault(|| unsafe { xsetbv(0, 0) });
    check!(v == Some(GP), "XSETBV XCR0=0 gave {v:?}, want #GP");
    // Combinations the SDM forbids must be the guest's #GP, never reach the CPU (where
    // they would fault in the hypervisor): AVX without SSE, the AVX-512 opmask state
    // without the ZMM states.
    for bad in [0x5u64, 0x27, 0x67] {
        // SAFETY: the write must #GP (caught); XCR0 stays 1.
        let v = expect_fault(|| unsafe { xsetbv(0, bad) });
        check!(v == Some(GP), "XSETBV XCR0={bad:#x} gave {v:?}, want #GP");
    }
    check!(xgetbv(0) == 1, "XCR0 changed by refused writes");
    println!("exits: XSETBV/XGETBV ok (XCR0=1; 0, 0x5, 0x27 and 0x67 raise #GP)");
}

fn caches() {
    // SAFETY: WBINVD only writes back and invalidates caches.
    unsafe { asm!("wbinvd", options(nostack)) };
    CHECKS.fetch_add(1, Ordering::Relaxed);
    // INVD right after WBINVD: nothing dirty to lose even if it were executed natively;
    // a hypervisor emulates it as WBINVD.
    // SAFETY: see above.
    unsafe { asm!("wbinvd", "invd", options(nostack)) };
    CHECKS.fetch_add(1, Ordering::Relaxed);
    println!("exits: WBINVD and INVD ok");
}

fn control_registers() {
    let cr0 = arch::read_cr0();
    // SAFETY: writes back the current value.
    unsafe { arch::write_cr0(cr0) };
    check!(arch::read_cr0() == cr0, "CR0 changed on rewrite");
    // CR0.TS: we never use the FPU (soft-float), so toggling it is harmless.
    // SAFETY: see above.
    unsafe { arch::write_cr0(cr0 | (1 << 3)) };
    check!(arch::read_cr0() & (1 << 3) != 0, "CR0.TS did not stick");
    // SAFETY: restores the original value.
    unsafe { arch::write_cr0(cr0) };
    check!(arch::read_cr0() == cr0, "CR0 restore");

    let cr3 = arch::read_cr3();
    // SAFETY: reloads the same page tables (flushes the TLB).
    unsafe { arch::write_cr3(cr3) };
    check!(arch::read_cr3() == cr3, "CR3 changed on rewrite");

    let cr4 = arch::read_cr4();
    // SAFETY: writes back the current value.
    unsafe { arch::write_cr4(cr4) };
    check!(arch::read_cr4() == cr4, "CR4 changed on rewrite");
    // CR4.VMXE must not be settable by a guest that has no VMX.
    // SAFETY: the write must #GP, which is caught; if it sticks we undo it.
    let v = expect_fault(|| unsafe { arch::write_cr4(cr4 | (1 << 13)) });
    if v.is_none() {
        // SAFETY: restores the original value.
        unsafe { arch::write_cr4(cr4) };
    }
    check!(v == Some(GP), "setting CR4.VMXE gave {v:?}, want #GP");
    println!("exits: MOV CR0/CR3/CR4 ok (cr0={cr0:#x} cr3={cr3:#x} cr4={cr4:#x})");
}

/// State that is the vCPU's own although the CPU would share it between guests: CR8,
/// DR7, KERNEL_GS_BASE (through SWAPGS), TSC_AUX (through RDTSCP), the SYSCALL MSRs'
/// checks, CR0.CD; and instructions a guest must not reach the hardware with (RDPMC,
/// MONITOR, MWAIT).
/// CPUID leaves 7 and 0xD offer only what oxen keeps per vCPU and emulates, and the
/// CR4 bits of what is hidden are refused.
fn cpuid_policy() {
    let l7 = arch::cpuid(7, 0);
    check!(
        l7.ecx & ((1 << 3) | (1 << 4) | (1 << 16)) == 0,
        "CPUID.7.0:ECX offers PKU/OSPKE/LA57 ({:#x})",
        l7.ecx
    );
    check!(
        l7.edx & ((1 << 26) | (1 << 29)) == 0,
        "CPUID.7.0:EDX offers IBRS or ARCH_CAPABILITIES, whose MSRs #GP ({:#x})",
        l7.edx
    );
    let d0 = arch::cpuid(0xd, 0);
    check!(
        d0.eax & !0xe7 == 0 && d0.edx == 0,
        "CPUID.0xD.0 offers XCR0 components oxen does not keep ({:#x}:{:#x})",
        d0.edx,
        d0.eax
    );
    check!(
        d0.ecx >= 576 && d0.ecx <= 4096,
        "CPUID.0xD.0:ECX (XSAVE area size) is {}",
        d0.ecx
    );
    let d1 = arch::cpuid(0xd, 1);
    check!(
        d1.eax & (1 << 3) == 0 && d1.ecx == 0 && d1.edx == 0,
        "CPUID.0xD.1 offers XSAVES or supervisor states ({:#x})",
        d1.eax
    );
    check!(
        arch::cpuid(0xd, 9).eax == 0,
        "CPUID.0xD.9 describes PKRU, which oxen does not keep"
    );
    let cr4 = arch::read_cr4();
    for bit in [12u32, 22, 23] {
        // SAFETY: a CR4 bit the hypervisor refuses (#GP, caught); nothing changes.
        let v = expect_fault(|| unsafe {
            asm!("mov cr4, {}", in(reg) cr4 | (1u64 << bit), options(nomem, nostack))
        });
        check!(v == Some(GP), "MOV CR4 with bit {bit} gave {v:?}, want #GP");
    }
    check!(arch::read_cr4() == cr4, "CR4 changed after refused writes");
    println!("exits: CPUID leaves 7 and 0xD offer only what is kept; CR4 LA57/PKE/CET are refused");
}

fn own_state() {
    cpuid_policy();
    // CR8: the guest's own task priority. With the physical TPR at 15 the pCPU's timer
    // could not interrupt any more, and HLT would never return.
    // SAFETY: CR8 only gates interrupt delivery; the guest takes none here.
    unsafe { asm!("mov cr8, {}", in(reg) 15u64, options(nomem, nostack)) };
    let tpr: u64;
    // SAFETY: reading CR8 has no side effects.
    unsafe { asm!("mov {}, cr8", out(reg) tpr, options(nomem, nostack)) };
    check!(tpr == 15, "CR8 read back {tpr}, wrote 15");
    // SAFETY: STI; HLT: the hypervisor resumes us after its next tick.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    // SAFETY: bits 63:4 of CR8 are reserved: #GP, caught.
    let v = expect_fault(|| unsafe { asm!("mov cr8, {}", in(reg) 16u64, options(nomem, nostack)) });
    check!(v == Some(GP), "MOV CR8=16 gave {v:?}, want #GP");
    // SAFETY: back to priority 0.
    unsafe { asm!("mov cr8, {}", in(reg) 0u64, options(nomem, nostack)) };
    println!("exits: CR8 is the guest's own (15 read back, HLT still wakes, 16 raises #GP)");

    // DR7 with breakpoint conditions but no enable bit: kept across exits and a sleep.
    let dr7 = 0x00f0_0400u64;
    // SAFETY: no L/G enable bit is set, so no breakpoint can fire.
    unsafe { asm!("mov dr7, {}", in(reg) dr7, options(nomem, nostack)) };
    let _ = arch::cpuid(0, 0);
    let _ = hypercall::sched_yield();
    let back: u64;
    // SAFETY: reading DR7 has no side effects.
    unsafe { asm!("mov {}, dr7", out(reg) back, options(nomem, nostack)) };
    check!(
        back == dr7,
        "DR7 read back {back:#x} after exits, wrote {dr7:#x}"
    );
    // SAFETY: back to the reset value.
    unsafe { asm!("mov dr7, {}", in(reg) 0x400u64, options(nomem, nostack)) };

    // KERNEL_GS_BASE through SWAPGS.
    let kgs = 0x0000_1234_5678_9000u64;
    // SAFETY: a canonical value; nothing here uses GS.
    unsafe { arch::wrmsr(IA32_KERNEL_GS_BASE, kgs) };
    // SAFETY: SWAPGS twice restores both bases; nothing uses GS in between.
    let gs = unsafe {
        asm!("swapgs", options(nomem, nostack));
        let v = arch::rdmsr(IA32_GS_BASE);
        asm!("swapgs", options(nomem, nostack));
        v
    };
    check!(
        gs == kgs,
        "SWAPGS brought GS base {gs:#x}, KERNEL_GS_BASE was {kgs:#x}"
    );
    // SAFETY: a non-canonical address must #GP (caught).
    let w = unsafe { arch::try_wrmsr(IA32_KERNEL_GS_BASE, 1 << 63) };
    check!(w == Err(GP), "non-canonical KERNEL_GS_BASE gave {w:?}");
    // SAFETY: as above, for LSTAR and SFMASK's reserved upper half.
    let w = unsafe { arch::try_wrmsr(IA32_LSTAR, 0x0000_8000_0000_0000) };
    check!(w == Err(GP), "non-canonical LSTAR gave {w:?}");
    // SAFETY: as above.
    let w = unsafe { arch::try_wrmsr(IA32_SFMASK, 1 << 32) };
    check!(w == Err(GP), "SFMASK with bit 32 gave {w:?}");
    println!("exits: KERNEL_GS_BASE reaches SWAPGS; bad SYSCALL MSR values raise #GP");

    if arch::cpuid(0x8000_0001, 0).edx & (1 << 27) != 0 {
        // SAFETY: TSC_AUX only feeds RDTSCP.
        unsafe { arch::wrmsr(IA32_TSC_AUX, 0x0bad_cafe) };
        let mut aux = 0u32;
        // SAFETY: RDTSCP is offered (CPUID); a fault is caught.
        let v = expect_fault(|| unsafe {
            asm!("rdtscp", out("eax") _, out("edx") _, out("ecx") aux, options(nomem, nostack))
        });
        check!(v.is_none(), "RDTSCP raised {v:?} although CPUID offers it");
        check!(
            aux == 0x0bad_cafe,
            "RDTSCP gave TSC_AUX {aux:#x}, wrote 0xbadcafe"
        );
        // SAFETY: bits 63:32 are reserved: #GP, caught.
        let w = unsafe { arch::try_wrmsr(IA32_TSC_AUX, 1 << 32) };
        check!(w == Err(GP), "TSC_AUX with bit 32 gave {w:?}");
        println!("exits: TSC_AUX reaches RDTSCP");
    }

    // CR0.CD is the guest's to read back; it never reaches the pCPU.
    let cr0 = arch::read_cr0();
    // SAFETY: a guest with CD set only loses caching (which oxen does not pass on).
    unsafe { arch::write_cr0(cr0 | (1 << 30)) };
    check!(
        arch::read_cr0() & (1 << 30) != 0,
        "CR0.CD did not read back"
    );
    // SAFETY: restores the original value.
    unsafe { arch::write_cr0(cr0) };
    check!(arch::read_cr0() == cr0, "CR0 restore after CD");

    // SAFETY: each raises an exception (caught): no PMU, no MONITOR/MWAIT.
    let v = expect_fault(|| unsafe {
        asm!("rdpmc", in("ecx") 0u32, out("eax") _, out("edx") _, options(nomem, nostack))
    });
    check!(v == Some(GP), "RDPMC gave {v:?}, want #GP");
    // SAFETY: as above.
    let v = expect_fault(|| unsafe {
        asm!("monitor", in("rax") 0x10_0000u64, in("ecx") 0u32, in("edx") 0u32, options(nomem, nostack))
    });
    check!(v == Some(UD), "MONITOR gave {v:?}, want #UD");
    // SAFETY: as above.
    let v = expect_fault(|| unsafe {
        asm!("mwait", in("eax") 0u32, in("ecx") 0u32, options(nomem, nostack))
    });
    check!(v == Some(UD), "MWAIT gave {v:?}, want #UD");
    println!("exits: DR7 kept; CR0.CD virtual; RDPMC #GP, MONITOR/MWAIT #UD");

    // IA32_DEBUGCTL reads 0 and takes 0 only (Xen's policy without LBR/BTS).
    let r = arch::try_rdmsr(IA32_DEBUGCTL);
    check!(r == Ok(0), "RDMSR DEBUGCTL gave {r:x?}, want 0");
    // SAFETY: 0 is DEBUGCTL's reset value.
    let w = unsafe { arch::try_wrmsr(IA32_DEBUGCTL, 0) };
    check!(w.is_ok(), "WRMSR DEBUGCTL=0 gave {w:?}");
    // SAFETY: LBR (bit 0) is not offered: #GP, caught.
    let w = unsafe { arch::try_wrmsr(IA32_DEBUGCTL, 1) };
    check!(w == Err(GP), "WRMSR DEBUGCTL=1 gave {w:?}, want #GP");
    // Leaving 64-bit mode by clearing CR0.PG, or changing EFER.LME while paging, is
    // #GP on hardware: the guest must get it, not a crashed or broken domain.
    let cr0 = arch::read_cr0();
    // SAFETY: the write must #GP (caught); if it did not, paging would be off.
    let v = expect_fault(|| unsafe { arch::write_cr0(cr0 & !(1 << 31)) });
    check!(
        v == Some(GP),
        "clearing CR0.PG in 64-bit mode gave {v:?}, want #GP"
    );
    // SAFETY: reading EFER has no side effects.
    let efer = unsafe { arch::rdmsr(0xc000_0080) };
    // SAFETY: the write must #GP (caught).
    let w = unsafe { arch::try_wrmsr(0xc000_0080, efer & !(1 << 8)) };
    check!(
        w == Err(GP),
        "clearing EFER.LME while paging gave {w:?}, want #GP"
    );
    println!("exits: DEBUGCTL reads 0; CR0.PG and EFER.LME stay while in 64-bit mode");
}

fn hypercalls() {
    const ENOSYS: i64 = -errno::ENOSYS;
    const EINVAL: i64 = -errno::EINVAL;
    const EFAULT: i64 = -errno::EFAULT;

    // Page and raw VMCALL agree.
    // SAFETY: XENVER_version takes no argument.
    let (a, b) = unsafe {
        (
            hypercall::xen_version(xv::VERSION, 0),
            vmcall(
                u64::from(nr::XEN_VERSION),
                u64::from(xv::VERSION),
                0,
                0,
                0,
                0,
            ),
        )
    };
    check!(
        a > 0 && a == b,
        "xen_version via page {a:#x} vs VMCALL {b:#x}"
    );

    // Unknown hypercall number.
    // SAFETY: no pointers involved.
    let rc = unsafe { vmcall(99, 0, 0, 0, 0, 0) };
    check!(rc == ENOSYS, "VMCALL 99 returned {rc}, want -ENOSYS");
    // SAFETY: as above, through the page (stub 99 exists: the page has 128 stubs).
    let rc = unsafe { oxen_guest_rt::hypercall(99, 0, 0, 0, 0, 0) };
    check!(
        rc == ENOSYS,
        "hypercall page stub 99 returned {rc}, want -ENOSYS"
    );

    // console_io: bad sub-op. oxen answers -EINVAL (Xen says -ENOSYS; see docs/guests.md).
    let msg = b"exits: should not print\n";
    // SAFETY: the buffer is valid either way.
    let rc = unsafe {
        oxen_guest_rt::hypercall(
            nr::CONSOLE_IO,
            7,
            msg.len() as u64,
            msg.as_ptr() as u64,
            0,
            0,
        )
    };
    check!(rc == EINVAL, "console_io(7) returned {rc}, want -EINVAL");
    println!("exits: console_io bad sub-op -> {rc}");

    // console_io: bad pointer.
    // SAFETY: the hypervisor must refuse the unmapped address without writing.
    let rc = unsafe {
        oxen_guest_rt::hypercall(
            nr::CONSOLE_IO,
            u64::from(console_io::WRITE),
            16,
            0xdead_0000_0000,
            0,
            0,
        )
    };
    check!(
        rc == EFAULT,
        "console_io(write, 0xdead00000000) returned {rc}, want -EFAULT"
    );
    // console_io: empty write.
    let rc = hypercall::console_write(b"");
    check!(rc == 0, "console_io(write, len 0) returned {rc}");
    // console_io: a successful write returns 0, as in Xen.
    let rc = hypercall::console_write(b"exits: console_io write returns 0\n");
    check!(rc == 0, "console_io(write) returned {rc}, want 0");

    // xen_version: unknown sub-op: -EINVAL in oxen (Xen: -ENOSYS).
    // SAFETY: no buffer is written for an unknown command.
    let rc = unsafe { hypercall::xen_version(999, 0) };
    check!(rc == EINVAL, "xen_version(999) returned {rc}, want -EINVAL");
    println!("exits: xen_version bad sub-op -> {rc}");

    // sched_op: unknown sub-op: -EINVAL in oxen (Xen: -ENOSYS).
    // SAFETY: no argument is used for an unknown command.
    let rc = unsafe { hypercall::sched_op(99, 0) };
    check!(rc == EINVAL, "sched_op(99) returned {rc}, want -EINVAL");
    println!("exits: sched_op bad sub-op -> {rc}");

    // sched_op(shutdown) with a bad pointer must fail, not shut us down.
    // SAFETY: the hypervisor must refuse the unmapped address.
    let rc = unsafe { hypercall::sched_op(sched_op::SHUTDOWN, 0xdead_0000_0000) };
    check!(
        rc == EFAULT,
        "sched_op(shutdown, 0xdead00000000) returned {rc}, want -EFAULT"
    );
    println!("exits: hypercall error values ok");
}
