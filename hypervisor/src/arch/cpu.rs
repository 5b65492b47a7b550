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

/// Whether CR4.OSXSAVE is on (set by [`enable_xsave`] on every CPU, or on none).
static XSAVE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The XCR0 components oxen saves for guests (and lets them enable): those of x87, SSE,
/// AVX and AVX-512 the CPU has; their state fits a 4 KiB area.
static FPU_MASK: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// Whether XSAVE, XRSTOR and XSETBV may be used.
pub fn has_xsave() -> bool {
    XSAVE.load(core::sync::atomic::Ordering::Relaxed)
}

/// The XCR0 components whose state vCPUs keep ([`FPU_MASK`]).
pub fn fpu_mask() -> u64 {
    FPU_MASK.load(core::sync::atomic::Ordering::Relaxed)
}

/// Sets CR4.OSXSAVE when the CPU has XSAVE, so guests' XCR0 can be loaded with XSETBV.
pub fn enable_xsave() {
    if !has_leaf1_ecx(26) {
        return;
    }
    XSAVE.store(true, core::sync::atomic::Ordering::Relaxed);
    let leaf = cpuid(0xd, 0);
    let supported = (u64::from(leaf.edx) << 32) | u64::from(leaf.eax);
    FPU_MASK.store(supported & 0xe7, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: CPUID reports XSAVE, so CR4.OSXSAVE may be set; the hypervisor itself
    // uses no extended state (soft-float target), so nothing else changes.
    unsafe {
        let cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
        asm!("mov cr4, {}", in(reg) cr4 | (1 << 18), options(nostack));
    }
}

/// Loads XCR0 (no-op without XSAVE).
pub fn set_xcr0(value: u64) {
    if !has_xsave() {
        return;
    }
    // SAFETY: CR4.OSXSAVE is on and callers pass an XCR0 value validated against CPUID
    // leaf 0xD; the hypervisor keeps no extended state of its own (soft-float target).
    unsafe {
        asm!("xsetbv", in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
    };
}

/// Saves the whole FPU/SIMD state ([`fpu_mask`]; FXSAVE without XSAVE) into the 4 KiB
/// area at `area`. XCR0 is left at [`fpu_mask`]: load the next vCPU's own after.
///
/// # Safety
/// `area` must be a writable, 64-byte aligned, 4 KiB area.
pub unsafe fn save_fpu(area: *mut u8) {
    if has_xsave() {
        let mask = fpu_mask();
        set_xcr0(mask);
        // SAFETY: as for this function; XCR0 covers every component in `mask`.
        unsafe {
            asm!("xsave64 [{}]", in(reg) area, in("eax") mask as u32, in("edx") (mask >> 32) as u32, options(nostack))
        };
    } else {
        // SAFETY: as for this function (FXSAVE needs 512 bytes, 16-byte aligned).
        unsafe { asm!("fxsave64 [{}]", in(reg) area, options(nostack)) };
    }
}

/// Loads the FPU/SIMD state saved by [`save_fpu`] (components absent from the area's
/// header are put in their initial state), then XCR0 = `xcr0`.
///
/// # Safety
/// As [`save_fpu`]; the area must hold a valid saved image (a zeroed one with MXCSR set
/// is the initial state); `xcr0` must be a valid XCR0 value.
pub unsafe fn restore_fpu(area: *const u8, xcr0: u64) {
    if has_xsave() {
        let mask = fpu_mask();
        set_xcr0(mask);
        // SAFETY: as for this function; XCR0 covers every component in `mask`.
        unsafe {
            asm!("xrstor64 [{}]", in(reg) area, in("eax") mask as u32, in("edx") (mask >> 32) as u32, options(nostack))
        };
        set_xcr0(xcr0);
    } else {
        // SAFETY: as for this function.
        unsafe { asm!("fxrstor64 [{}]", in(reg) area, options(nostack)) };
    }
}
