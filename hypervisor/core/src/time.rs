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

/// Seconds since 1970-01-01 00:00:00 UTC of a calendar date and time (proleptic
/// Gregorian; the days-from-civil arithmetic). `None` for a date that does not exist.
pub fn unix_seconds(year: u32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> Option<u64> {
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days_in = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in[month as usize - 1]
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    // Days from 1970-01-01 to the first of `year`, then of `month`, then `day`.
    let years = u64::from(year - 1970);
    let leaps = (1970..year).filter(|&y| leap(y)).count() as u64;
    let mut days = years * 365 + leaps;
    days += days_in[..month as usize - 1]
        .iter()
        .map(|&d| u64::from(d))
        .sum::<u64>();
    days += u64::from(day - 1);
    Some(days * 86_400 + u64::from(hour) * 3600 + u64::from(min) * 60 + u64::from(sec))
}

/// A CMOS RTC register value in binary, from BCD unless the RTC says binary.
pub fn rtc_value(raw: u8, bcd: bool) -> u32 {
    if bcd {
        u32::from(raw >> 4) * 10 + u32::from(raw & 0xf)
    } else {
        u32::from(raw)
    }
}

#[cfg(test)]
mod calendar_tests {
    use super::*;

    #[test]
    fn unix_time_of_known_dates() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), Some(951_868_800));
        assert_eq!(unix_seconds(2026, 11, 22, 6, 41, 41), Some(1_795_329_701));
        assert_eq!(unix_seconds(2024, 2, 29, 23, 59, 59), Some(1_709_251_199));
        assert_eq!(unix_seconds(2023, 2, 29, 0, 0, 0), None);
        assert_eq!(unix_seconds(2026, 13, 1, 0, 0, 0), None);
        assert_eq!(unix_seconds(1969, 12, 31, 0, 0, 0), None);
        assert_eq!(unix_seconds(2026, 1, 1, 24, 0, 0), None);
    }

    #[test]
    fn bcd_and_binary_registers() {
        assert_eq!(rtc_value(0x59, true), 59);
        assert_eq!(rtc_value(0x26, true), 26);
        assert_eq!(rtc_value(59, false), 59);
    }
}
