//! System time as the hypervisor keeps it: nanoseconds from the TSC, scaled by the
//! factors Xen's time CPUID leaf (0x40000003, subleaf 1) gives.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch;

/// `mul | shift << 32`, read once (0 = not yet).
static SCALE: AtomicU64 = AtomicU64::new(0);

fn scale() -> (u32, i8) {
    let mut packed = SCALE.load(Ordering::Relaxed);
    if packed == 0 {
        let r = arch::cpuid(oxen_abi::cpuid::BASE + 3, 1);
        // No time leaf (not on oxen/Xen): pretend the TSC runs at 1 GHz.
        let (mul, shift) = if r.ecx == 0 {
            (1 << 31, 1)
        } else {
            (r.ecx, r.edx as u8)
        };
        packed = u64::from(mul) | (u64::from(shift) << 32);
        SCALE.store(packed, Ordering::Relaxed);
    }
    (packed as u32, (packed >> 32) as u8 as i8)
}

/// TSC ticks to nanoseconds, as Xen's `vcpu_time_info` defines the conversion.
pub fn tsc_to_ns(tsc: u64) -> u64 {
    let (mul, shift) = scale();
    let t = if shift >= 0 {
        u128::from(tsc) << shift
    } else {
        u128::from(tsc) >> -i32::from(shift)
    };
    ((t * u128::from(mul)) >> 32) as u64
}

/// System time now, in nanoseconds.
pub fn now_ns() -> u64 {
    tsc_to_ns(arch::rdtsc())
}
