//! A quota of countable resources a domain makes the hypervisor spend on it (EPT
//! table frames, ...): charged before the resource is taken, given back when it is
//! freed, refused beyond the limit. Lock-free, so any pCPU may charge it.

use core::sync::atomic::{AtomicU64, Ordering};

/// Up to `limit` units in use at once.
#[derive(Debug)]
pub struct Quota {
    used: AtomicU64,
    limit: u64,
}

impl Quota {
    /// An unused quota of `limit` units.
    pub const fn new(limit: u64) -> Self {
        Quota {
            used: AtomicU64::new(0),
            limit,
        }
    }

    /// Charges `n` units if that stays within the limit (all or nothing).
    pub fn try_charge(&self, n: u64) -> bool {
        let mut u = self.used.load(Ordering::Acquire);
        loop {
            let Some(t) = u.checked_add(n).filter(|&t| t <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(u, t, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => u = now,
            }
        }
    }

    /// Gives `n` units back (never below zero).
    pub fn release(&self, n: u64) {
        let mut u = self.used.load(Ordering::Acquire);
        while let Err(now) = self.used.compare_exchange_weak(
            u,
            u.saturating_sub(n),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            u = now;
        }
    }

    /// Units in use.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// Xen's default for the pages of a domain's paging structures (libxl's shadow and
/// HAP pool: 256 pages per vCPU and 2 per MiB of memory), here the limit on its EPT
/// table frames.
pub fn default_ept_frames(vcpus: u32, memory_mib: u64) -> u64 {
    256 * u64::from(vcpus) + 2 * memory_mib
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_come_back() {
        let q = Quota::new(3);
        assert!(q.try_charge(2));
        assert!(!q.try_charge(2), "all or nothing");
        assert!(q.try_charge(1));
        assert!(!q.try_charge(1));
        assert_eq!(q.used(), 3);
        q.release(2);
        assert!(q.try_charge(2));
        q.release(100);
        assert_eq!(q.used(), 0, "never below zero");
        assert!(!q.try_charge(u64::MAX), "no overflow");
        assert_eq!(q.limit(), 3);
    }

    #[test]
    fn charges_from_many_threads_never_pass_the_limit() {
        use std::sync::Arc;
        let q = Arc::new(Quota::new(1000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || (0..1000).filter(|_| q.try_charge(1)).count())
            })
            .collect();
        let got: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(got, 1000);
        assert_eq!(q.used(), 1000);
    }

    #[test]
    fn xen_like_defaults() {
        assert_eq!(default_ept_frames(1, 8), 272);
        assert_eq!(default_ept_frames(4, 1024), 3072);
    }
}
