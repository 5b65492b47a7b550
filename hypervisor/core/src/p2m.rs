//! A domain's physical-to-machine map: what each guest frame number is, the single
//! source of truth from which the hypervisor reads guest memory and renders the EPT.
//!
//! Two layers. *RAM* is what the domain owns: runs of contiguous host frames (one run
//! for a domain built at boot, one per extent for memory populated at run time), given
//! back when the domain is released. *Overlays* are single frames put over a guest frame
//! (RAM or a hole) by `add_to_physmap`, a grant map or a foreign map: the overlay is what
//! the guest and the hypervisor see there until it is removed, when RAM shows through
//! again. Overlay frames belong to someone else (the hypervisor, a granter, the domain a
//! foreign map points into); the map only records them.

use alloc::vec::Vec;

use crate::ept::Perm;

/// What a guest frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The domain's own memory.
    Ram,
    /// A hypervisor page: shared info, a grant-table frame, the console ring.
    Special,
    /// Another domain's page mapped through a grant.
    Grant,
    /// Another domain's page mapped by a privileged domain (`XENMAPSPACE_gmfn_foreign`):
    /// `domid`'s frame `gfn`.
    Foreign { domid: u16, gfn: u64 },
}

/// One guest frame's translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Host frame number.
    pub mfn: u64,
    pub kind: Kind,
    pub perm: Perm,
}

/// Why a change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P2mError {
    /// The range overlaps RAM that is already there.
    Occupied,
    /// An empty range, or one whose end overflows.
    BadRange,
    /// More RAM than the domain's limit.
    OverLimit,
}

/// One run of RAM: `count` guest frames from the key, at host frames from `mfn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    mfn: u64,
    count: u64,
}

/// A domain's P2M. Both layers are arrays sorted by guest frame: every guest-memory
/// access looks a frame up (a binary search of a few entries), changes are rare.
#[derive(Debug, Default)]
pub struct P2m {
    /// RAM runs by first guest frame; they never overlap.
    ram: Vec<(u64, Run)>,
    /// Overlays by guest frame.
    overlay: Vec<(u64, Entry)>,
    ram_frames: u64,
    /// Guest frames below this are RAM of the first run, with no overlay among them
    /// (the common case of every lookup): its first host frame.
    flat: (u64, u64),
}

impl P2m {
    pub fn new() -> Self {
        P2m::default()
    }

    /// Frames of RAM the domain owns.
    pub fn ram_frames(&self) -> u64 {
        self.ram_frames
    }

    /// Index of the last RAM run starting at or below `gfn`, if any.
    fn run_at_or_below(&self, gfn: u64) -> Option<usize> {
        self.ram.partition_point(|&(s, _)| s <= gfn).checked_sub(1)
    }

    /// The RAM run containing `gfn`: (first gfn, run).
    fn ram_run(&self, gfn: u64) -> Option<(u64, Run)> {
        let (start, run) = self.ram[self.run_at_or_below(gfn)?];
        (gfn - start < run.count).then_some((start, run))
    }

    /// Recomputes the flat fast path after a change.
    fn changed(&mut self) {
        self.flat = match self.ram.first() {
            Some(&(0, run)) => {
                let first_overlay = self.overlay.first().map_or(u64::MAX, |&(g, _)| g);
                (run.count.min(first_overlay), run.mfn)
            }
            _ => (0, 0),
        };
    }

    /// Adds `count` frames of RAM at guest frame `gfn`, host frames from `mfn`, keeping
    /// the total at most `limit` frames. A run that continues the one before it in both
    /// spaces is merged into it.
    pub fn add_ram(&mut self, gfn: u64, mfn: u64, count: u64, limit: u64) -> Result<(), P2mError> {
        let end = gfn.checked_add(count).ok_or(P2mError::BadRange)?;
        if count == 0 || mfn.checked_add(count).is_none() {
            return Err(P2mError::BadRange);
        }
        if self.ram_frames.saturating_add(count) > limit {
            return Err(P2mError::OverLimit);
        }
        let below_end = self.run_at_or_below(end - 1);
        if below_end.is_some_and(|i| self.ram[i].0 + self.ram[i].1.count > gfn) {
            return Err(P2mError::Occupied);
        }
        self.ram_frames += count;
        match below_end {
            Some(i)
                if self.ram[i].0 + self.ram[i].1.count == gfn
                    && self.ram[i].1.mfn + self.ram[i].1.count == mfn =>
            {
                self.ram[i].1.count += count;
            }
            _ => {
                let at = below_end.map_or(0, |i| i + 1);
                self.ram.insert(at, (gfn, Run { mfn, count }));
            }
        }
        self.changed();
        Ok(())
    }

    /// Takes `gfn..gfn+count` out of RAM (it must all be RAM), splitting runs; returns
    /// the host runs it occupied as (first mfn, frames), for the caller to free.
    pub fn remove_ram(&mut self, gfn: u64, count: u64) -> Result<Vec<(u64, u64)>, P2mError> {
        let end = gfn.checked_add(count).ok_or(P2mError::BadRange)?;
        if count == 0 || !self.is_ram(gfn, count) {
            return Err(P2mError::BadRange);
        }
        let first = self.run_at_or_below(gfn).expect("the range is RAM");
        let last = self.run_at_or_below(end - 1).expect("the range is RAM");
        let mut freed = Vec::new();
        let mut kept = Vec::new();
        for &(start, run) in &self.ram[first..=last] {
            let (lo, hi) = (gfn.max(start), end.min(start + run.count));
            freed.push((run.mfn + (lo - start), hi - lo));
            if start < lo {
                kept.push((
                    start,
                    Run {
                        mfn: run.mfn,
                        count: lo - start,
                    },
                ));
            }
            if hi < start + run.count {
                kept.push((
                    hi,
                    Run {
                        mfn: run.mfn + (hi - start),
                        count: start + run.count - hi,
                    },
                ));
            }
        }
        self.ram.splice(first..=last, kept);
        self.ram_frames -= count;
        self.changed();
        Ok(freed)
    }

    /// Every RAM run as (first gfn, first mfn, frames), in guest order.
    pub fn ram_runs(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.ram.iter().map(|&(g, r)| (g, r.mfn, r.count))
    }

    /// Forgets all RAM (the caller gives the frames back); returns the runs.
    pub fn take_ram(&mut self) -> Vec<(u64, u64, u64)> {
        let runs = self.ram_runs().collect();
        self.ram.clear();
        self.ram_frames = 0;
        self.changed();
        runs
    }

    /// The domain's own frame at `gfn`, ignoring overlays.
    pub fn ram(&self, gfn: u64) -> Option<u64> {
        let (start, run) = self.ram_run(gfn)?;
        Some(run.mfn + (gfn - start))
    }

    /// What the guest sees at `gfn`: the overlay if there is one, else RAM.
    pub fn lookup(&self, gfn: u64) -> Option<Entry> {
        if gfn < self.flat.0 {
            return Some(Entry {
                mfn: self.flat.1 + gfn,
                kind: Kind::Ram,
                perm: Perm::RWX,
            });
        }
        if let Ok(i) = self.overlay.binary_search_by_key(&gfn, |&(g, _)| g) {
            return Some(self.overlay[i].1);
        }
        self.ram(gfn).map(|mfn| Entry {
            mfn,
            kind: Kind::Ram,
            perm: Perm::RWX,
        })
    }

    /// Puts `entry` over `gfn`; returns the overlay it replaces.
    pub fn set_overlay(&mut self, gfn: u64, entry: Entry) -> Option<Entry> {
        debug_assert!(entry.kind != Kind::Ram, "RAM is not an overlay");
        let old = match self.overlay.binary_search_by_key(&gfn, |&(g, _)| g) {
            Ok(i) => Some(core::mem::replace(&mut self.overlay[i].1, entry)),
            Err(i) => {
                self.overlay.insert(i, (gfn, entry));
                None
            }
        };
        self.changed();
        old
    }

    /// Removes the overlay at `gfn` (RAM, if any, shows through again); returns it.
    pub fn clear_overlay(&mut self, gfn: u64) -> Option<Entry> {
        let i = self.overlay.binary_search_by_key(&gfn, |&(g, _)| g).ok()?;
        let (_, old) = self.overlay.remove(i);
        self.changed();
        Some(old)
    }

    /// Every overlay as (gfn, entry).
    pub fn overlays(&self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        self.overlay.iter().copied()
    }

    /// Removes every overlay; returns them (a dying domain drops its foreign maps).
    pub fn take_overlays(&mut self) -> Vec<(u64, Entry)> {
        let all = core::mem::take(&mut self.overlay);
        self.changed();
        all
    }

    /// The highest guest frame with RAM, if any.
    pub fn max_ram_gfn(&self) -> Option<u64> {
        self.ram.last().map(|&(g, r)| g + r.count - 1)
    }

    /// Whether `gfn..gfn+count` is all RAM (no overlays looked at): for the whole-range
    /// copies of a domain builder.
    pub fn is_ram(&self, gfn: u64, count: u64) -> bool {
        let mut at = gfn;
        let Some(end) = gfn.checked_add(count) else {
            return false;
        };
        while at < end {
            let Some((start, run)) = self.ram_run(at) else {
                return false;
            };
            at = start + run.count;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn special(mfn: u64) -> Entry {
        Entry {
            mfn,
            kind: Kind::Special,
            perm: Perm::RW,
        }
    }

    #[test]
    fn ram_runs_translate_merge_and_refuse_overlap() {
        let mut p = P2m::new();
        p.add_ram(0, 1000, 512, u64::MAX).unwrap();
        // Continues both spaces: merged.
        p.add_ram(512, 1512, 512, u64::MAX).unwrap();
        assert_eq!(p.ram_runs().count(), 1);
        // A gap in host frames: a run of its own.
        p.add_ram(1024, 5000, 16, u64::MAX).unwrap();
        assert_eq!(p.ram_runs().count(), 2);
        assert_eq!(p.ram(0), Some(1000));
        assert_eq!(p.ram(1023), Some(2023));
        assert_eq!(p.ram(1024), Some(5000));
        assert_eq!(p.ram(1039), Some(5015));
        assert_eq!(p.ram(1040), None);
        assert_eq!(p.ram_frames(), 1040);
        assert_eq!(p.max_ram_gfn(), Some(1039));
        assert_eq!(p.add_ram(1030, 9000, 20, u64::MAX), Err(P2mError::Occupied));
        assert_eq!(p.add_ram(2000, 9000, 0, u64::MAX), Err(P2mError::BadRange));
        assert_eq!(
            p.add_ram(u64::MAX - 1, 9000, 4, u64::MAX),
            Err(P2mError::BadRange)
        );
        // Below an existing run, reaching into it.
        let mut q = P2m::new();
        q.add_ram(100, 1, 10, u64::MAX).unwrap();
        assert_eq!(q.add_ram(95, 50, 6, u64::MAX), Err(P2mError::Occupied));
        q.add_ram(95, 50, 5, u64::MAX).unwrap();
        assert!(q.is_ram(95, 15));
        assert!(!q.is_ram(95, 16));
        assert!(!q.is_ram(94, 2));
    }

    #[test]
    fn removing_ram_splits_runs() {
        let mut p = P2m::new();
        p.add_ram(0, 100, 10, u64::MAX).unwrap();
        p.add_ram(10, 500, 10, u64::MAX).unwrap();
        assert_eq!(p.remove_ram(8, 4), Ok(vec![(108, 2), (500, 2)]));
        assert_eq!(p.ram_frames(), 16);
        assert_eq!(p.ram(7), Some(107));
        assert_eq!(p.ram(8), None);
        assert_eq!(p.ram(11), None);
        assert_eq!(p.ram(12), Some(502));
        assert_eq!(p.remove_ram(7, 2), Err(P2mError::BadRange));
        assert_eq!(p.remove_ram(0, 0), Err(P2mError::BadRange));
        assert_eq!(p.remove_ram(0, 8), Ok(vec![(100, 8)]));
        assert_eq!(p.take_ram(), [(12, 502, 8)]);
    }

    #[test]
    fn the_limit_counts_every_run() {
        let mut p = P2m::new();
        p.add_ram(0, 0, 8, 10).unwrap();
        assert_eq!(p.add_ram(8, 8, 3, 10), Err(P2mError::OverLimit));
        p.add_ram(8, 8, 2, 10).unwrap();
        assert_eq!(p.ram_frames(), 10);
        let runs = p.take_ram();
        assert_eq!(runs, [(0, 0, 10)]);
        assert_eq!(p.ram_frames(), 0);
        assert_eq!(p.lookup(3), None);
    }

    #[test]
    fn overlays_hide_ram_until_removed() {
        let mut p = P2m::new();
        p.add_ram(0, 100, 16, u64::MAX).unwrap();
        assert_eq!(p.lookup(5).map(|e| (e.mfn, e.kind)), Some((105, Kind::Ram)));
        assert_eq!(p.set_overlay(5, special(7)), None);
        assert_eq!(p.lookup(5), Some(special(7)));
        // Below and above it, RAM as before.
        assert_eq!(p.lookup(4).map(|e| e.mfn), Some(104));
        assert_eq!(p.lookup(6).map(|e| e.mfn), Some(106));
        // Over a hole too.
        let foreign = Entry {
            mfn: 42,
            kind: Kind::Foreign { domid: 3, gfn: 9 },
            perm: Perm::RW,
        };
        p.set_overlay(1 << 20, foreign);
        assert_eq!(p.lookup(1 << 20), Some(foreign));
        assert_eq!(p.set_overlay(5, special(8)), Some(special(7)));
        assert_eq!(p.clear_overlay(5), Some(special(8)));
        assert_eq!(p.lookup(5).map(|e| e.mfn), Some(105));
        assert_eq!(p.overlays().count(), 1);
        assert_eq!(p.take_overlays(), [(1 << 20, foreign)]);
        assert_eq!(p.lookup(1 << 20), None);
        // RAM itself is untouched by overlays.
        assert_eq!(p.ram(5), Some(105));
    }
}
