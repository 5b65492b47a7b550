//! Thin wrappers around privileged x86 instructions.

use core::arch::asm;

/// CPUID result.
#[derive(Clone, Copy, Debug)]
pub struct Cpuid {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Executes CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> Cpuid {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    Cpuid {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// Reads an MSR.
///
/// # Safety
/// The MSR must exist (or a fault must be expected, see [`try_rdmsr`]).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR is readable.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes an MSR.
///
/// # Safety
/// Writing arbitrary MSRs can change how the CPU behaves; the caller is responsible.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is harmless.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack))
    };
}

/// Reads an MSR, returning `Err(vector)` if it faults (normally 13, #GP).
pub fn try_rdmsr(msr: u32) -> Result<u64, u8> {
    let mut v = 0;
    // SAFETY: a fault is caught by `expect_fault`; a successful read has no side effects.
    match crate::expect_fault(|| v = unsafe { rdmsr(msr) }) {
        None => Ok(v),
        Some(vec) => Err(vec),
    }
}

/// Writes an MSR, returning `Err(vector)` if it faults.
///
/// # Safety
/// As [`wrmsr`], for the case where the write succeeds.
pub unsafe fn try_wrmsr(msr: u32, value: u64) -> Result<(), u8> {
    // SAFETY: the caller vouches for the write; a fault is caught.
    match crate::expect_fault(|| unsafe { wrmsr(msr, value) }) {
        None => Ok(()),
        Some(vec) => Err(vec),
    }
}

macro_rules! cr_accessors {
    ($read:ident, $write:ident, $reg:literal) => {
        #[doc = concat!("Reads ", $reg, ".")]
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading a control register has no side effects.
            unsafe { asm!(concat!("mov {}, ", $reg), out(reg) v, options(nomem, nostack)) };
            v
        }

        #[doc = concat!("Writes ", $reg, ".")]
        ///
        /// # Safety
        /// The value must keep the CPU in a state the guest can run in.
        pub unsafe fn $write(v: u64) {
            // SAFETY: the caller guarantees the value is valid.
            unsafe { asm!(concat!("mov ", $reg, ", {}"), in(reg) v, options(nostack)) };
        }
    };
}

cr_accessors!(read_cr0, write_cr0, "cr0");
cr_accessors!(read_cr2, write_cr2, "cr2");
cr_accessors!(read_cr3, write_cr3, "cr3");
cr_accessors!(read_cr4, write_cr4, "cr4");

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// Port writes can have device side effects.
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: the caller vouches for the port.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// Port reads can have device side effects.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller vouches for the port.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

/// Reads a 32-bit value from an I/O port.
///
/// # Safety
/// Port reads can have device side effects.
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: the caller vouches for the port.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack)) };
    v
}
