//! Per-CPU state, found through the GS base register.
//!
//! Every CPU points IA32_GS_BASE at its own [`PerCpu`] before it does anything else, so
//! [`index`] is one memory load. The BSP is always index 0; APs take 1.. in the order the
//! MADT lists them.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The most CPUs oxen brings up.
pub const MAX_CPUS: usize = 64;

const IA32_GS_BASE: u32 = 0xc000_0101;

/// What each CPU keeps for itself (and publishes to the others).
#[repr(C)]
pub struct PerCpu {
    /// This CPU's index; must stay the first field (read at `gs:[0]`).
    index: AtomicU32,
    /// Local APIC id.
    pub apic_id: AtomicU32,
    /// Set once the CPU has finished its bring-up.
    pub online: AtomicBool,
    /// Set once VMXON succeeded on this CPU.
    pub vmx_on: AtomicBool,
    /// Timer ticks taken.
    pub ticks: AtomicU64,
    /// Set (then an IPI sent) when the scheduler wants this CPU to pick again.
    pub need_resched: AtomicBool,
}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            index: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            online: AtomicBool::new(false),
            vmx_on: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            need_resched: AtomicBool::new(false),
        }
    }
}

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// How many CPUs have a slot (the BSP plus every AP that was started).
static COUNT: AtomicU32 = AtomicU32::new(1);

/// Points this CPU's GS base at slot `index`. First thing every CPU does.
pub fn install(index: usize) {
    let slot = &CPUS[index];
    slot.index.store(index as u32, Ordering::Relaxed);
    // SAFETY: IA32_GS_BASE exists on every x86_64 CPU; the slot is a static that lives
    // forever, so GS-relative loads through it stay valid.
    unsafe { super::cpu::wrmsr(IA32_GS_BASE, slot as *const PerCpu as u64) };
}

/// This CPU's index.
#[inline]
pub fn index() -> usize {
    let i: u32;
    // SAFETY: every CPU installed its GS base (see `install`) before running any code
    // that can reach here; `gs:[0]` is the `index` field of its slot.
    unsafe {
        core::arch::asm!("mov {:e}, gs:[0]", out(reg) i, options(nostack, readonly, preserves_flags))
    };
    i as usize
}

/// This CPU's slot.
pub fn this() -> &'static PerCpu {
    &CPUS[index()]
}

/// Slot `index`.
pub fn get(index: usize) -> &'static PerCpu {
    &CPUS[index]
}

/// Reserves slots for `n` CPUs in all.
pub fn set_count(n: usize) {
    COUNT.store(n.min(MAX_CPUS) as u32, Ordering::Release);
}

/// Number of CPU slots in use.
pub fn count() -> usize {
    COUNT.load(Ordering::Acquire) as usize
}

/// CPUs that finished bring-up.
pub fn online() -> usize {
    (0..count())
        .filter(|&i| CPUS[i].online.load(Ordering::Acquire))
        .count()
}
