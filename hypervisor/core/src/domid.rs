//! Domain ids as Xen hands them out: 0 is the control domain's; ordinary domains get
//! ids from 1 to `DOMID_FIRST_RESERVED - 1` (0x7fef); 0x7ff0 and up name no domain
//! (`DOMID_SELF`, `DOMID_IO`, `DOMID_XEN`, ... `DOMID_INVALID`). [`Registry`] is the
//! table of them, generic over what it holds so that its rules are tested here.
//!
//! One difference from Xen: a free id is the lowest free one, where Xen's rover moves
//! on from the last id it gave (so ids come back later there, but they do come back).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

/// `DOMID_FIRST_RESERVED`: this and above name no domain.
pub const FIRST_RESERVED: u32 = 0x7ff0;
/// The highest id an ordinary domain can have.
pub const MAX_ID: u32 = FIRST_RESERVED - 1;
/// `DOMID_SELF`.
pub const SELF: u32 = 0x7ff0;

/// Why an id cannot be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// Every ordinary id is in use.
    Exhausted,
    /// The id asked for is in use (or being built).
    Taken,
    /// The id asked for is one Xen reserves (0x7ff0 and up).
    Reserved,
}

/// Ids in use: domains that exist (`T`), and ids handed out to domains being built.
/// Every operation is O(log n).
#[derive(Debug)]
pub struct Registry<T> {
    live: BTreeMap<u32, T>,
    reserved: BTreeSet<u32>,
    /// Ordinary ids below `fresh` that are free again.
    free: BTreeSet<u32>,
    /// The lowest ordinary id never handed out.
    fresh: u32,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Registry<T> {
    pub const fn new() -> Self {
        Registry {
            live: BTreeMap::new(),
            reserved: BTreeSet::new(),
            free: BTreeSet::new(),
            fresh: 1,
        }
    }

    fn in_use(&self, id: u32) -> bool {
        self.live.contains_key(&id) || self.reserved.contains(&id)
    }

    /// Reserves the lowest free ordinary id (from 1).
    pub fn reserve_free(&mut self) -> Result<u32, IdError> {
        let id = match self.free.pop_first() {
            Some(id) => id,
            None if self.fresh <= MAX_ID => {
                self.fresh += 1;
                self.fresh - 1
            }
            None => return Err(IdError::Exhausted),
        };
        self.reserved.insert(id);
        Ok(id)
    }

    /// Reserves id `id` (0 for the control domain, or one a control domain asks for).
    pub fn reserve(&mut self, id: u32) -> Result<u32, IdError> {
        if id > MAX_ID {
            return Err(IdError::Reserved);
        }
        if self.in_use(id) {
            return Err(IdError::Taken);
        }
        if id >= self.fresh {
            self.free.extend(self.fresh..id);
            self.fresh = id + 1;
        } else {
            self.free.remove(&id);
        }
        self.reserved.insert(id);
        Ok(id)
    }

    /// Makes an ordinary id free again.
    fn give_back(&mut self, id: u32) {
        if id != 0 {
            self.free.insert(id);
        }
    }

    /// Gives back a reserved id whose domain was never built.
    pub fn unreserve(&mut self, id: u32) {
        if self.reserved.remove(&id) {
            self.give_back(id);
        }
    }

    /// Fills a reserved id; false (and nothing changes) if `id` was not reserved.
    pub fn insert(&mut self, id: u32, x: T) -> bool {
        if !self.reserved.remove(&id) {
            return false;
        }
        self.live.insert(id, x);
        true
    }

    /// Frees `id`; returns what it held.
    pub fn remove(&mut self, id: u32) -> Option<T> {
        let x = self.live.remove(&id)?;
        self.give_back(id);
        Some(x)
    }

    pub fn get(&self, id: u32) -> Option<&T> {
        self.live.get(&id)
    }

    /// Up to `max` entries with ids from `first`, in id order.
    pub fn range(&self, first: u32, max: usize) -> impl Iterator<Item = (u32, &T)> {
        self.live.range(first..).take(max).map(|(&k, v)| (k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.live.values()
    }

    /// How many ids are filled.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The filled ids, in order.
    pub fn ids(&self) -> Vec<u32> {
        self.live.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_one_and_come_back_lowest_first() {
        let mut r = Registry::new();
        for want in 1..=5 {
            let id = r.reserve_free().unwrap();
            assert_eq!(id, want);
            assert!(r.insert(id, want * 10));
        }
        assert_eq!(r.remove(2), Some(20));
        assert_eq!(r.remove(4), Some(40));
        assert_eq!(r.reserve_free(), Ok(2));
        // Reserved but not yet built: not handed out twice.
        assert_eq!(r.reserve_free(), Ok(4));
        assert_eq!(r.reserve_free(), Ok(6));
        r.unreserve(4);
        assert_eq!(r.reserve_free(), Ok(4));
        assert_eq!(r.get(3), Some(&30));
        assert_eq!(r.ids(), [1, 3, 5]);
    }

    #[test]
    fn zero_and_asked_for_ids_and_the_reserved_range() {
        let mut r: Registry<()> = Registry::new();
        assert_eq!(r.reserve(0), Ok(0));
        assert!(r.insert(0, ()));
        assert_eq!(r.reserve(0), Err(IdError::Taken));
        // Id 0 is never handed out as a free one.
        assert_eq!(r.reserve_free(), Ok(1));
        assert_eq!(
            r.reserve(1),
            Err(IdError::Taken),
            "reserved counts as taken"
        );
        assert_eq!(r.reserve(SELF), Err(IdError::Reserved));
        assert_eq!(r.reserve(0x7ff5), Err(IdError::Reserved));
        assert_eq!(r.reserve(5), Ok(5));
        // The ids skipped below an asked-for one are still free, lowest first.
        assert_eq!(r.reserve_free(), Ok(2));
        assert_eq!(r.reserve(3), Ok(3));
        assert_eq!(r.reserve_free(), Ok(4));
        assert_eq!(r.reserve_free(), Ok(6));
        assert_eq!(r.reserve(MAX_ID), Ok(MAX_ID));
        assert!(!r.insert(77, ()), "an id that was not reserved");
    }

    #[test]
    fn every_ordinary_id_then_exhausted() {
        let mut r = Registry::new();
        for want in 1..=MAX_ID {
            let id = r.reserve_free().unwrap();
            assert_eq!(id, want);
            r.insert(id, ());
        }
        assert_eq!(r.reserve_free(), Err(IdError::Exhausted));
        r.remove(1234);
        r.remove(99);
        assert_eq!(r.reserve_free(), Ok(99));
        assert_eq!(r.reserve_free(), Ok(1234));
        assert_eq!(r.reserve_free(), Err(IdError::Exhausted));
        assert_eq!(
            r.range(10, 3).map(|(k, _)| k).collect::<Vec<_>>(),
            [10, 11, 12]
        );
    }
}
