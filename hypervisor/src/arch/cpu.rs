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

/// CR0.CD and CR0.NW: caches disabled, not write-through (both set at INIT).
pub const CR0_CACHES_OFF: u64 = (1 << 30) | (1 << 29);

/// Reads CR0.
pub fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads DR6 (while a vCPU is loaded: the guest's, see [`LazyState`]).
pub fn dr6() -> u64 {
    let v: u64;
    // SAFETY: reading DR6 has no side effects.
    unsafe { asm!("mov {}, dr6", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes DR6, a status register: it changes only what the next read sees (the
/// hypervisor never relies on it; a loaded vCPU's DR6 lives there).
pub fn set_dr6(v: u64) {
    // SAFETY: DR6 only reports debug conditions; writing it triggers nothing.
    unsafe { asm!("mov dr6, {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
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
static XSAVE_SIZE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(576);

/// Whether XSAVE, XRSTOR and XSETBV may be used.
pub fn has_xsave() -> bool {
    XSAVE.load(core::sync::atomic::Ordering::Relaxed)
}

/// Bytes of an XSAVE area for [`fpu_mask`] (what CPUID tells guests they need).
pub fn xsave_size() -> u32 {
    XSAVE_SIZE.load(core::sync::atomic::Ordering::Relaxed)
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
    let mask = supported & 0xe7;
    FPU_MASK.store(mask, core::sync::atomic::Ordering::Relaxed);
    let size = oxen_core::cpuid::xsave_size(mask, |n| {
        let c = cpuid(0xd, n);
        (c.eax, c.ebx)
    });
    XSAVE_SIZE.store(size, core::sync::atomic::Ordering::Relaxed);
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

/// IA32_KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK and TSC_AUX.
pub mod msr {
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const CSTAR: u32 = 0xc000_0083;
    pub const SFMASK: u32 = 0xc000_0084;
    pub const TSC_AUX: u32 = 0xc000_0103;
}

/// Whether `v` is a canonical 48-bit address.
pub fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

/// The initial value of DR6 (every reserved bit set, no condition).
pub const DR6_INIT: u64 = 0xffff_0ff0;

/// A vCPU's register state that the VMCS does not hold and the hypervisor never uses
/// itself: CR2, DR0-DR3, DR6, and the MSRs of SYSCALL/SWAPGS/RDTSCP. It lives in the
/// CPU while the vCPU is loaded on a pCPU ([`LazyState::load`]) and in memory while
/// it is not ([`LazyState::save`]), so a guest reads and changes only its own.
///
/// Every value is valid for its register (the setters check, the rest comes from the
/// CPU), which is what makes loading it safe.
#[derive(Clone, Copy, Debug)]
pub struct LazyState {
    cr2: u64,
    dr: [u64; 4],
    dr6: u64,
    kernel_gs_base: u64,
    star: u64,
    lstar: u64,
    cstar: u64,
    sfmask: u64,
    tsc_aux: u64,
}

impl Default for LazyState {
    fn default() -> Self {
        LazyState {
            cr2: 0,
            dr: [0; 4],
            dr6: DR6_INIT,
            kernel_gs_base: 0,
            star: 0,
            lstar: 0,
            cstar: 0,
            sfmask: 0,
            tsc_aux: 0,
        }
    }
}

/// Whether the CPU has RDTSCP (and so IA32_TSC_AUX); asked once (CPUID may exit to an
/// outer hypervisor).
fn has_rdtscp() -> bool {
    static RDTSCP: spin::Once<bool> = spin::Once::new();
    *RDTSCP.call_once(|| {
        cpuid(0x8000_0000, 0).eax >= 0x8000_0001 && cpuid(0x8000_0001, 0).edx & (1 << 27) != 0
    })
}

/// KERNEL_GS_BASE as the CPU holds it now (a guest's, while its vCPU is loaded).
fn live_kernel_gs_base() -> u64 {
    // SAFETY: the MSR exists on every x86_64 CPU.
    unsafe { rdmsr(msr::KERNEL_GS_BASE) }
}

impl LazyState {
    /// The guest's value of one of the [`msr`] registers (`None` for any other MSR). If
    /// `loaded`, KERNEL_GS_BASE comes from the CPU: SWAPGS changes it there without an
    /// exit.
    pub fn msr(&self, index: u32, loaded: bool) -> Option<u64> {
        Some(match index {
            msr::KERNEL_GS_BASE if loaded => live_kernel_gs_base(),
            msr::KERNEL_GS_BASE => self.kernel_gs_base,
            msr::STAR => self.star,
            msr::LSTAR => self.lstar,
            msr::CSTAR => self.cstar,
            msr::SFMASK => self.sfmask,
            msr::TSC_AUX => self.tsc_aux,
            _ => return None,
        })
    }

    /// Sets one of the [`msr`] registers, in memory and, if `loaded`, in the CPU.
    /// `false` (nothing changed) for any other MSR and for a value the register
    /// refuses: a non-canonical address, reserved bits of SFMASK or TSC_AUX, or TSC_AUX
    /// without RDTSCP.
    pub fn set_msr(&mut self, index: u32, value: u64, loaded: bool) -> bool {
        let ok = match index {
            msr::KERNEL_GS_BASE | msr::LSTAR | msr::CSTAR => canonical(value),
            msr::STAR => true,
            msr::SFMASK => value >> 32 == 0,
            msr::TSC_AUX => value >> 32 == 0 && has_rdtscp(),
            _ => false,
        };
        if !ok {
            return false;
        }
        let slot = match index {
            msr::KERNEL_GS_BASE => &mut self.kernel_gs_base,
            msr::STAR => &mut self.star,
            msr::LSTAR => &mut self.lstar,
            msr::CSTAR => &mut self.cstar,
            msr::SFMASK => &mut self.sfmask,
            _ => &mut self.tsc_aux,
        };
        *slot = value;
        if loaded {
            // SAFETY: the MSR exists (TSC_AUX only with RDTSCP, checked above) and the
            // value passed its checks; the hypervisor does not use these registers.
            unsafe { wrmsr(index, value) };
        }
        true
    }

    /// Puts this state into the CPU (when a vCPU is loaded on this pCPU).
    pub fn load(&self) {
        // SAFETY: every value is valid for its register (see the type); the hypervisor
        // uses none of them (no SYSCALL, SWAPGS, RDTSCP, breakpoints or page faults of
        // its own that it recovers from).
        unsafe {
            asm!(
                "mov cr2, {cr2}",
                "mov dr0, {d0}",
                "mov dr1, {d1}",
                "mov dr2, {d2}",
                "mov dr3, {d3}",
                "mov dr6, {d6}",
                cr2 = in(reg) self.cr2,
                d0 = in(reg) self.dr[0],
                d1 = in(reg) self.dr[1],
                d2 = in(reg) self.dr[2],
                d3 = in(reg) self.dr[3],
                d6 = in(reg) self.dr6,
                options(nostack, preserves_flags)
            );
            wrmsr(msr::KERNEL_GS_BASE, self.kernel_gs_base);
            wrmsr(msr::STAR, self.star);
            wrmsr(msr::LSTAR, self.lstar);
            wrmsr(msr::CSTAR, self.cstar);
            wrmsr(msr::SFMASK, self.sfmask);
            if has_rdtscp() {
                wrmsr(msr::TSC_AUX, self.tsc_aux);
            }
        }
    }

    /// Takes the state the guest left in the CPU back into memory (when its vCPU
    /// leaves this pCPU): what it can change without an exit (CR2, the debug
    /// registers, KERNEL_GS_BASE through SWAPGS).
    pub fn save(&mut self) {
        let (cr2, d0, d1, d2, d3, d6): (u64, u64, u64, u64, u64, u64);
        // SAFETY: reading control and debug registers has no side effects.
        unsafe {
            asm!(
                "mov {cr2}, cr2",
                "mov {d0}, dr0",
                "mov {d1}, dr1",
                "mov {d2}, dr2",
                "mov {d3}, dr3",
                "mov {d6}, dr6",
                cr2 = out(reg) cr2,
                d0 = out(reg) d0,
                d1 = out(reg) d1,
                d2 = out(reg) d2,
                d3 = out(reg) d3,
                d6 = out(reg) d6,
                options(nomem, nostack, preserves_flags)
            );
        }
        self.cr2 = cr2;
        self.dr = [d0, d1, d2, d3];
        self.dr6 = d6;
        self.kernel_gs_base = live_kernel_gs_base();
    }
}
