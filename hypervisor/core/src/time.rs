//! System time: nanoseconds derived from the TSC, as Xen's `vcpu_time_info` expresses
//! it (a 32.32 fixed-point multiplier and a power-of-two shift).
//!
//! oxen's system time is the TSC scaled to nanoseconds with no offset: every pCPU and
//! every guest computes the same value from the same TSC reading, so the hypervisor's
//! clock (timers, accounting) and a guest's clock agree to the nanosecond.

/// A TSC-to-nanoseconds scale: `ns = ((tsc << shift) * mul) >> 32` (a right shift when
/// `shift` is negative), as in Xen's `vcpu_time_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    /// `tsc_to_system_mul`.
    pub mul: u32,
    /// `tsc_shift`.
    pub shift: i8,
}

impl TimeScale {
    /// The scale for a TSC running at `tsc_hz` (at least 1 Hz).
    pub fn from_hz(tsc_hz: u64) -> Self {
        let hz = u128::from(tsc_hz.max(1));
        // Find the shift that brings the multiplier into [2^31, 2^32): the most
        // precision a u32 can carry.
        let mut shift: i32 = 0;
        let mul = |shift: i32| -> u128 {
            let num = 1_000_000_000u128 << 32;
            if shift >= 0 {
                num / (hz << shift)
            } else {
                (num << -shift) / hz
            }
        };
        while mul(shift) >= 1 << 32 && shift < 63 {
            shift += 1;
        }
        while mul(shift) < 1 << 31 && shift > -63 {
            shift -= 1;
        }
        TimeScale {
            mul: u32::try_from(mul(shift)).unwrap_or(u32::MAX),
            shift: shift as i8,
        }
    }

    /// Nanoseconds for `ticks` TSC ticks.
    pub fn ns(self, ticks: u64) -> u64 {
        let scaled = if self.shift >= 0 {
            u128::from(ticks) << self.shift
        } else {
            u128::from(ticks) >> -i32::from(self.shift)
        };
        u64::try_from((scaled * u128::from(self.mul)) >> 32).unwrap_or(u64::MAX)
    }

    /// TSC ticks for `ns` nanoseconds (rounded up, so a deadline is never early).
    pub fn ticks(self, ns: u64) -> u64 {
        let num = u128::from(ns) << 32;
        let per = u128::from(self.mul.max(1));
        let scaled = num.div_ceil(per);
        let t = if self.shift >= 0 {
            scaled.div_ceil(1u128 << self.shift)
        } else {
            scaled << -i32::from(self.shift)
        };
        u64::try_from(t).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_common_frequencies_precisely() {
        for hz in [
            1_000_000u64,
            33_000_000,
            200_000_000,
            999_999_999,
            1_000_000_000,
            2_400_000_000,
            3_999_999_999,
            5_000_000_000,
        ] {
            let s = TimeScale::from_hz(hz);
            assert!(s.mul >= 1 << 31, "{hz}: mul {:#x} lacks precision", s.mul);
            // One second of ticks is one second, to within a part per billion-ish.
            let ns = s.ns(hz);
            assert!(ns.abs_diff(1_000_000_000) <= 2, "{hz}: {ns}");
            // Ten minutes too (no overflow, error stays relative).
            let ns = s.ns(hz * 600);
            assert!(ns.abs_diff(600_000_000_000) <= 600, "{hz}: {ns}");
        }
    }

    #[test]
    fn one_ghz_is_identity() {
        let s = TimeScale::from_hz(1_000_000_000);
        for t in [0u64, 1, 999, 123_456_789, 1 << 40] {
            assert!(s.ns(t).abs_diff(t) <= 1 + t / 1_000_000_000);
        }
    }

    #[test]
    fn ticks_round_trip_never_early() {
        for hz in [33_000_000u64, 200_000_000, 2_400_000_000] {
            let s = TimeScale::from_hz(hz);
            for ns in [1u64, 10, 1_000, 1_000_000, 30_000_000, 7_000_000_007] {
                let t = s.ticks(ns);
                assert!(
                    s.ns(t) >= ns,
                    "{hz} Hz, {ns} ns: {t} ticks give {}",
                    s.ns(t)
                );
                // And not more than a tick late.
                assert!(t == 0 || s.ns(t - 1) < ns + 1, "{hz} Hz, {ns} ns");
            }
        }
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        for hz in [0u64, 1, 2, u64::MAX] {
            let s = TimeScale::from_hz(hz);
            let _ = s.ns(u64::MAX);
            let _ = s.ticks(u64::MAX);
        }
    }
}
