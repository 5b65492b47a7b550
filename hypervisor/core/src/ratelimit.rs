//! A token bucket: at most `burst` units at once, refilled at `rate` units per second
//! of system time. The hypervisor bounds each domain's console output with one (bytes),
//! so that no guest can fill the log ring or keep the UART from the others.

/// Nanoseconds per second.
const NS_PER_S: u128 = 1_000_000_000;

/// A token bucket over system time in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    /// System time up to which refills have been counted.
    at_ns: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` units refilled at `rate` units per second, from `now`.
    pub fn new(rate: u64, burst: u64, now: u64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at_ns: now,
        }
    }

    /// Adds what accrued since the last call (time going backwards adds nothing).
    fn refill(&mut self, now: u64) {
        if now <= self.at_ns || self.rate == 0 {
            self.at_ns = self.at_ns.max(now);
            return;
        }
        let elapsed = u128::from(now - self.at_ns);
        let accrued = elapsed * u128::from(self.rate) / NS_PER_S;
        if accrued == 0 {
            // Keep the remainder: short intervals add up.
            return;
        }
        self.tokens = u64::try_from(u128::from(self.tokens) + accrued)
            .unwrap_or(u64::MAX)
            .min(self.burst);
        // Advance by exactly the time the accrued tokens stand for.
        let used = accrued * NS_PER_S / u128::from(self.rate);
        self.at_ns = self
            .at_ns
            .saturating_add(u64::try_from(used).unwrap_or(u64::MAX));
        if self.tokens == self.burst {
            self.at_ns = now;
        }
    }

    /// Takes `n` units at `now` if the bucket holds them (all or nothing).
    pub fn take(&mut self, n: u64, now: u64) -> bool {
        self.refill(now);
        if n > self.tokens {
            return false;
        }
        self.tokens -= n;
        true
    }

    /// Units available at `now`.
    pub fn available(&mut self, now: u64) -> u64 {
        self.refill(now);
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBucket::new(1000, 300, 0);
        assert!(b.take(200, 0));
        assert!(b.take(100, 0));
        assert!(!b.take(1, 0), "the burst is spent");
        // 1000 per second: 1 per ms.
        assert!(!b.take(10, 9 * MS));
        assert!(b.take(10, 10 * MS));
        assert_eq!(b.available(10 * MS), 0);
        // Never more than the burst, however long it waits.
        assert_eq!(b.available(3600 * 1000 * MS), 300);
    }

    #[test]
    fn short_intervals_add_up_and_time_never_runs_backwards() {
        let mut b = TokenBucket::new(1000, 10, 0);
        assert!(b.take(10, 0));
        // 100 us steps: each accrues 0.1 of a token, ten of them one token.
        for i in 1..10 {
            assert_eq!(b.available(i * MS / 10), 0, "{i}");
        }
        assert_eq!(b.available(MS), 1);
        assert_eq!(b.available(MS / 2), 1, "an earlier time changes nothing");
        assert!(b.take(1, MS));
        assert!(!b.take(1, MS));
    }

    #[test]
    fn the_long_run_rate_holds_for_any_request_pattern() {
        // Over 10 s at 4096 per second with a 1024 burst, requests of odd sizes every
        // 3 ms get no more than rate * time + burst.
        let mut b = TokenBucket::new(4096, 1024, 0);
        let mut got = 0u64;
        let mut t = 0;
        while t <= 10_000 * MS {
            if b.take(97, t) {
                got += 97;
            }
            t += 3 * MS;
        }
        assert!(got <= 4096 * 10 + 1024, "{got}");
        assert!(
            got >= 4096 * 10 - 97 * 2,
            "{got}: the rate is not lost to rounding"
        );
        // A zero rate gives the burst once.
        let mut z = TokenBucket::new(0, 5, 0);
        assert!(z.take(5, 0));
        assert!(!z.take(1, u64::MAX));
    }
}
