//! Thin, safe wrappers over single CPU instructions and registers.

use core::arch::asm;
use core::arch::x86_64::CpuidResult;

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is always available on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Executes CPUID for `leaf`/`subleaf`.
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

/// Reads a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU (reading a missing MSR raises #GP).
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; RDMSR touches no memory.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// `msr` must exist and `value` must be valid for it; the write may change how the CPU
/// behaves, which the caller must account for.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the MSR and value are valid.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// Reading `port` must have no effect the caller has not accounted for.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// Writing `value` to `port` must be harmless or intended.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port and value.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 32-bit word to an I/O port.
///
/// # Safety
/// Writing `value` to `port` must be harmless or intended.
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller vouches for the port and value.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Stops this CPU for good: interrupts off, halt forever (NMIs wake it only to halt again).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Waits for `ticks` TSC ticks.
pub fn spin_tsc(ticks: u64) {
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Whether the CPU has a feature bit in CPUID leaf 1 ECX.
pub fn has_leaf1_ecx(bit: u32) -> bool {
    cpuid(1, 0).ecx & (1 << bit) != 0
}

/// Sets CR4.OSXSAVE when the CPU has XSAVE, so guests' XCR0 can be loaded with XSETBV.
pub fn enable_xsave() {
    if !has_leaf1_ecx(26) {
        return;
    }
    // SAFETY: CPUID reports XSAVE, so CR4.OSXSAVE may be set; the hypervisor itself
    // uses no extended state (soft-float target), so nothing else changes.
    unsafe {
        let cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
        asm!("mov cr4, {}", in(reg) cr4 | (1 << 18), options(nostack));
    }
}
