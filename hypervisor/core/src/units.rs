//! Small helpers that turn counts into what a person reads in a log line.

use core::fmt;

/// A byte count printed with a binary unit (`512 B`, `12 KiB`, `1.5 MiB`, `2.0 GiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1 << 10;
        const MIB: u64 = 1 << 20;
        const GIB: u64 = 1 << 30;
        let n = self.0;
        let tenths = |unit: u64| (n % unit) * 10 / unit;
        if n >= GIB {
            write!(f, "{}.{} GiB", n / GIB, tenths(GIB))
        } else if n >= MIB {
            write!(f, "{}.{} MiB", n / MIB, tenths(MIB))
        } else if n >= KIB {
            write!(f, "{} KiB", n / KIB)
        } else {
            write!(f, "{n} B")
        }
    }
}

/// Time since boot, printed as `seconds.microseconds` in a fixed-width field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// Microseconds since boot.
    pub micros: u64,
}

impl Timestamp {
    /// Converts a TSC delta to a timestamp, given the TSC frequency (0 = not yet calibrated).
    pub fn from_tsc(delta: u64, tsc_hz: u64) -> Self {
        if tsc_hz == 0 {
            return Timestamp { micros: 0 };
        }
        let micros = (u128::from(delta) * 1_000_000 / u128::from(tsc_hz)) as u64;
        Timestamp { micros }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:5}.{:06}",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pick_a_unit() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(12 * 1024).to_string(), "12 KiB");
        assert_eq!(Bytes(3 * 1024 * 1024 / 2).to_string(), "1.5 MiB");
        assert_eq!(Bytes(2 << 30).to_string(), "2.0 GiB");
    }

    #[test]
    fn timestamps_from_tsc() {
        assert_eq!(
            Timestamp::from_tsc(1_500_000_000, 1_000_000_000).to_string(),
            "    1.500000"
        );
        assert_eq!(Timestamp::from_tsc(123, 0).micros, 0);
        // No overflow for a long uptime on a fast TSC.
        let t = Timestamp::from_tsc(u64::MAX, 4_000_000_000);
        assert_eq!(t.micros, u64::MAX / 4000);
    }
}
