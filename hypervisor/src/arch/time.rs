//! System time: the TSC scaled to nanoseconds (`oxen_core::time`), the same clock every
//! pCPU and every guest reads.

use oxen_core::time::TimeScale;
use spin::Once;

use super::cpu;

static SCALE: Once<TimeScale> = Once::new();
static TSC_HZ: Once<u64> = Once::new();

/// Fixes the scale once the TSC frequency is known (boot CPU, before any AP starts).
pub fn init(tsc_hz: u64) {
    SCALE.call_once(|| TimeScale::from_hz(tsc_hz));
    TSC_HZ.call_once(|| tsc_hz);
}

/// The TSC's frequency (0 before `init`).
pub fn tsc_hz() -> u64 {
    TSC_HZ.get().copied().unwrap_or(0)
}

/// The scale (1 GHz until `init`).
pub fn scale() -> TimeScale {
    *SCALE.get().unwrap_or(&TimeScale {
        mul: 1 << 31,
        shift: 1,
    })
}

/// System time in nanoseconds.
pub fn now() -> u64 {
    scale().ns(cpu::rdtsc())
}
