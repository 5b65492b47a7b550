//! Extended page tables (Intel SDM Vol. 3C, "EPT"): building, changing and reading a
//! guest-physical → host-physical mapping over an abstract source of table frames.
//!
//! The tables are four levels deep (PML4, PDPT, PD, PT). [`Ept::map`] uses 2 MiB leaves
//! wherever the guest address, host address and remaining length allow it and 4 KiB
//! leaves elsewhere; all leaves are write-back with "ignore PAT" set. Changing a live
//! mapping (`unmap`) needs an `INVEPT` by the caller afterwards.

use alloc::vec::Vec;

/// Where table frames come from: the hypervisor's frame allocator, or a map in tests.
pub trait FrameSource {
    /// A zeroed 4 KiB frame for a table; its host-physical address.
    fn alloc_table(&mut self) -> Option<u64>;
    /// The 512 entries of the table at `hpa` (a frame this source handed out).
    fn table(&mut self, hpa: u64) -> &mut [u64; 512];
    /// Takes back a table frame the EPT no longer uses (it is all zero).
    fn free_table(&mut self, hpa: u64);
}

/// Access rights of a mapping: any combination of [`Perm::R`], [`Perm::W`], [`Perm::X`]
/// (EPT entry bits 0, 1 and 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Perm(u8);

impl Perm {
    /// No access (not a valid permission for [`Ept::map`]).
    pub const NONE: Perm = Perm(0);
    pub const R: Perm = Perm(1);
    pub const W: Perm = Perm(2);
    pub const X: Perm = Perm(4);
    pub const RW: Perm = Perm(3);
    pub const RX: Perm = Perm(5);
    pub const RWX: Perm = Perm(7);

    /// The permission with these bits (only bits 2:0 are kept).
    pub const fn from_bits(bits: u8) -> Perm {
        Perm(bits & 7)
    }

    /// Bits 2:0 of an EPT entry.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every right in `other` is in `self`.
    pub const fn contains(self, other: Perm) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Perm {
    type Output = Perm;
    fn bitor(self, rhs: Perm) -> Perm {
        Perm(self.0 | rhs.0)
    }
}

/// The size of the leaf that maps an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageSize {
    Size4K,
    Size2M,
    Size1G,
}

impl PageSize {
    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size1G => 1 << 30,
        }
    }
}

/// Why an EPT operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptError {
    /// The frame source has no frame left for a table.
    OutOfFrames,
    /// The frame source handed out a frame that is not 4 KiB aligned or out of range.
    BadFrame(u64),
    /// An address or length is not 4 KiB aligned.
    Misaligned,
    /// The range leaves the 48-bit guest-physical or 52-bit host-physical space.
    OutOfRange,
    /// The permission is empty, or writable without being readable (an EPT
    /// misconfiguration).
    InvalidPerm,
    /// Part of the range is already mapped; the first mapped guest-physical address.
    Overlap(u64),
}

/// Bytes in a 4 KiB page.
const PAGE: u64 = 1 << 12;
/// Bytes in a 2 MiB page.
const LARGE: u64 = 1 << 21;
/// Guest-physical addresses a 4-level EPT translates.
const GPA_LIMIT: u64 = 1 << 48;
/// Host-physical addresses an EPT entry can hold.
const HPA_LIMIT: u64 = 1 << 52;
/// Bits 51:12 of an entry: the physical address of a table or 4 KiB page.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Read, write and execute (bits 2:0); an entry is present when any of them is set.
const RWX_MASK: u64 = 7;
/// Memory type write-back (6) in bits 5:3 of a leaf.
const MT_WB: u64 = 6 << 3;
/// "Ignore PAT memory type" (bit 6 of a leaf).
const IGNORE_PAT: u64 = 1 << 6;
/// Bit 7: the entry maps a page (in a PDPT or PD) rather than pointing to a table.
const LEAF_BIT: u64 = 1 << 7;
/// Attribute bits of a leaf that a split copies to the smaller leaves (everything but the
/// address and bit 7).
const LEAF_ATTRS: u64 = !(ADDR_MASK | LEAF_BIT);

/// Bit position of the index for a level (4 = PML4 … 1 = PT).
const fn shift(level: u32) -> u32 {
    12 + 9 * (level - 1)
}

/// Bytes one entry covers at a level.
const fn span(level: u32) -> u64 {
    1 << shift(level)
}

const fn index(gpa: u64, level: u32) -> usize {
    ((gpa >> shift(level)) & 0x1ff) as usize
}

const fn present(e: u64) -> bool {
    e & RWX_MASK != 0
}

/// Whether a present entry at `level` maps a page rather than pointing to a table.
const fn is_leaf(e: u64, level: u32) -> bool {
    level == 1 || (level <= 3 && e & LEAF_BIT != 0)
}

/// A four-level EPT whose tables come from a [`FrameSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ept {
    /// Host-physical address of the PML4.
    pub root: u64,
}

impl Ept {
    /// An empty EPT: one zeroed PML4.
    pub fn new(src: &mut impl FrameSource) -> Result<Ept, EptError> {
        Ok(Ept {
            root: alloc_table(src)?,
        })
    }

    /// The EPT pointer for the VMCS: PML4 address, memory type write-back (bits 2:0),
    /// page-walk length 4 - 1 = 3 (bits 5:3), accessed/dirty flags disabled (bit 6 clear).
    pub fn eptp(&self) -> u64 {
        (self.root & ADDR_MASK) | (3 << 3) | 6
    }

    /// Maps `len` bytes at guest-physical `gpa` to host-physical `hpa` with `perm`.
    ///
    /// All three must be 4 KiB aligned, and no page of the range may already be
    /// mapped. The mapping is all or nothing: if the frame source runs dry half way, the
    /// part mapped so far is removed again (tables allocated stay in the tree, empty).
    pub fn map(
        &mut self,
        src: &mut impl FrameSource,
        gpa: u64,
        hpa: u64,
        len: u64,
        perm: Perm,
    ) -> Result<(), EptError> {
        if !gpa.is_multiple_of(PAGE) || !hpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(EptError::Misaligned);
        }
        if perm == Perm::NONE || (perm.contains(Perm::W) && !perm.contains(Perm::R)) {
            return Err(EptError::InvalidPerm);
        }
        let gend = gpa.checked_add(len).ok_or(EptError::OutOfRange)?;
        let hend = hpa.checked_add(len).ok_or(EptError::OutOfRange)?;
        if gend > GPA_LIMIT || hend > HPA_LIMIT {
            return Err(EptError::OutOfRange);
        }
        if let Some(at) = self.first_mapped(src, gpa, len) {
            return Err(EptError::Overlap(at));
        }
        let attrs = u64::from(perm.bits()) | MT_WB | IGNORE_PAT;
        let mut done = 0;
        while done < len {
            let (g, h, rest) = (gpa + done, hpa + done, len - done);
            let step = match self.map_one(src, g, h, rest, attrs) {
                Ok(step) => step,
                Err(e) => {
                    // Only whole leaves inside [gpa, gpa + done) were made: no splits, so
                    // no allocation, so this cannot fail.
                    let _ = self.unmap(src, gpa, done);
                    self.prune(src, g);
                    return Err(e);
                }
            };
            done += step;
        }
        Ok(())
    }

    /// Maps one leaf at `g` (2 MiB if possible, else 4 KiB); returns its size.
    fn map_one(
        &mut self,
        src: &mut impl FrameSource,
        g: u64,
        h: u64,
        rest: u64,
        attrs: u64,
    ) -> Result<u64, EptError> {
        let pd = self.table_for(src, g, 2)?;
        let pde = src.table(pd)[index(g, 2)];
        let large_ok = g.is_multiple_of(LARGE) && h.is_multiple_of(LARGE) && rest >= LARGE;
        if large_ok && !present(pde) {
            src.table(pd)[index(g, 2)] = h | attrs | LEAF_BIT;
            return Ok(LARGE);
        }
        let pt = self.table_for(src, g, 1)?;
        let slot = &mut src.table(pt)[index(g, 1)];
        if present(*slot) {
            return Err(EptError::Overlap(g));
        }
        *slot = h | attrs;
        Ok(PAGE)
    }

    /// The table at `level` (1 = PT … 4 = PML4) on the path to `gpa`, creating the
    /// tables above it as needed. A leaf on the way is an overlap.
    fn table_for(
        &mut self,
        src: &mut impl FrameSource,
        gpa: u64,
        level: u32,
    ) -> Result<u64, EptError> {
        let mut table = self.root;
        let mut l = 4;
        while l > level {
            let i = index(gpa, l);
            let e = src.table(table)[i];
            if !present(e) {
                let new = alloc_table(src)?;
                src.table(table)[i] = new | RWX_MASK;
                table = new;
            } else if is_leaf(e, l) {
                return Err(EptError::Overlap(gpa));
            } else {
                table = e & ADDR_MASK;
            }
            l -= 1;
        }
        Ok(table)
    }

    /// The first mapped guest-physical address in `[gpa, gpa + len)`, if any.
    fn first_mapped(&self, src: &mut impl FrameSource, gpa: u64, len: u64) -> Option<u64> {
        let end = gpa + len;
        let mut at = gpa;
        'outer: while at < end {
            let mut table = self.root;
            for level in (1..=4).rev() {
                let e = src.table(table)[index(at, level)];
                if !present(e) {
                    at = (at / span(level) + 1) * span(level);
                    continue 'outer;
                }
                if is_leaf(e, level) {
                    return Some(at);
                }
                table = e & ADDR_MASK;
            }
        }
        None
    }

    /// Unmaps every page in `[gpa, gpa + len)`; pages not mapped are skipped. A 2 MiB
    /// (or 1 GiB) leaf only partly inside the range is split first, which needs a table
    /// frame: if none is left, the part of the range before it has been unmapped and
    /// [`EptError::OutOfFrames`] is returned. A table left empty goes back to the frame
    /// source (the root stays), so mapping and unmapping far apart addresses costs
    /// nothing in the long run.
    pub fn unmap(
        &mut self,
        src: &mut impl FrameSource,
        gpa: u64,
        len: u64,
    ) -> Result<(), EptError> {
        if !gpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(EptError::Misaligned);
        }
        let end = gpa.checked_add(len).ok_or(EptError::OutOfRange)?;
        if end > GPA_LIMIT {
            return Err(EptError::OutOfRange);
        }
        let mut at = gpa;
        'outer: while at < end {
            let mut table = self.root;
            for level in (1..=4).rev() {
                let i = index(at, level);
                let e = src.table(table)[i];
                let sz = span(level);
                let next = (at / sz + 1) * sz;
                if !present(e) {
                    at = next;
                    continue 'outer;
                }
                if is_leaf(e, level) {
                    if at.is_multiple_of(sz) && end - at >= sz {
                        src.table(table)[i] = 0;
                        self.prune(src, at);
                        at = next;
                        continue 'outer;
                    }
                    // Partly covered: split into the next smaller leaves, go on down.
                    let new = alloc_table(src)?;
                    let child = span(level - 1);
                    let base = e & ADDR_MASK;
                    let attrs = (e & LEAF_ATTRS) | if level - 1 > 1 { LEAF_BIT } else { 0 };
                    let t = src.table(new);
                    for (k, slot) in t.iter_mut().enumerate() {
                        *slot = (base + k as u64 * child) | attrs;
                    }
                    src.table(table)[i] = new | RWX_MASK;
                    table = new;
                    continue;
                }
                table = e & ADDR_MASK;
            }
        }
        Ok(())
    }

    /// Frees the tables on the path to `gpa` that hold no entry any more, from the
    /// bottom up (never the root).
    fn prune(&mut self, src: &mut impl FrameSource, gpa: u64) {
        // path[k] = (table, index in it) at level 4 - k.
        let mut path = [(0u64, 0usize); 4];
        let mut table = self.root;
        let mut depth = 0;
        for level in (1..=4).rev() {
            let i = index(gpa, level);
            path[depth] = (table, i);
            depth += 1;
            let e = src.table(table)[i];
            if !present(e) || is_leaf(e, level) {
                break;
            }
            table = e & ADDR_MASK;
        }
        // Walk back up: an empty table below the root is unhooked and freed.
        while depth > 1 {
            let (t, _) = path[depth - 1];
            if src.table(t).iter().any(|&e| e != 0) {
                return;
            }
            let (parent, pi) = path[depth - 2];
            src.table(parent)[pi] = 0;
            src.free_table(t);
            depth -= 1;
        }
    }

    /// The host-physical address `gpa` maps to, the rights and the leaf size.
    pub fn translate(&self, src: &mut impl FrameSource, gpa: u64) -> Option<(u64, Perm, PageSize)> {
        if gpa >= GPA_LIMIT {
            return None;
        }
        let mut table = self.root;
        for level in (1..=4).rev() {
            let e = src.table(table)[index(gpa, level)];
            if !present(e) {
                return None;
            }
            if is_leaf(e, level) {
                let size = match level {
                    1 => PageSize::Size4K,
                    2 => PageSize::Size2M,
                    3 => PageSize::Size1G,
                    _ => return None,
                };
                let base = e & ADDR_MASK & !(size.bytes() - 1);
                let perm = Perm::from_bits((e & RWX_MASK) as u8);
                return Some((base | (gpa & (size.bytes() - 1)), perm, size));
            }
            table = e & ADDR_MASK;
        }
        None
    }

    /// Every table frame of this EPT, the root first (for the owner to free them).
    pub fn tables(&self, src: &mut impl FrameSource) -> Vec<u64> {
        let mut out = Vec::new();
        let mut stack = Vec::new();
        stack.push((self.root, 4u32));
        while let Some((table, level)) = stack.pop() {
            out.push(table);
            if level == 1 {
                continue;
            }
            let entries = *src.table(table);
            for e in entries.iter().rev() {
                if present(*e) && !is_leaf(*e, level) {
                    stack.push((e & ADDR_MASK, level - 1));
                }
            }
        }
        out
    }
}

fn alloc_table(src: &mut impl FrameSource) -> Result<u64, EptError> {
    let f = src.alloc_table().ok_or(EptError::OutOfFrames)?;
    if f % PAGE != 0 || f >= HPA_LIMIT {
        return Err(EptError::BadFrame(f));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Frames in a map; addresses start high so they never look like zero.
    struct Frames {
        tables: HashMap<u64, Box<[u64; 512]>>,
        next: u64,
        limit: usize,
    }

    impl Frames {
        fn new() -> Self {
            Self::with_limit(usize::MAX)
        }
        fn with_limit(limit: usize) -> Self {
            Frames {
                tables: HashMap::new(),
                next: 0x1_0000_0000,
                limit,
            }
        }
    }

    impl FrameSource for Frames {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.tables.len() >= self.limit {
                return None;
            }
            let f = self.next;
            self.next += PAGE;
            self.tables.insert(f, Box::new([0; 512]));
            Some(f)
        }
        fn table(&mut self, hpa: u64) -> &mut [u64; 512] {
            self.tables
                .get_mut(&hpa)
                .expect("table handed out by this source")
        }
        fn free_table(&mut self, hpa: u64) {
            let t = self
                .tables
                .remove(&hpa)
                .expect("freed once, after it was handed out");
            assert!(t.iter().all(|&e| e == 0), "a freed table is empty");
        }
    }

    const M2: u64 = LARGE;
    const K4: u64 = PAGE;

    fn check_range(ept: &Ept, src: &mut Frames, gpa: u64, hpa: u64, len: u64, perm: Perm) {
        let mut off = 0;
        while off < len {
            let (h, p, _) = ept
                .translate(src, gpa + off)
                .unwrap_or_else(|| panic!("{:#x} unmapped", gpa + off));
            assert_eq!(h, hpa + off, "gpa {:#x}", gpa + off);
            assert_eq!(p, perm);
            off += K4;
        }
    }

    #[test]
    fn eptp_format() {
        let mut f = Frames::new();
        let ept = Ept::new(&mut f).unwrap();
        let p = ept.eptp();
        assert_eq!(p & 7, 6, "write-back");
        assert_eq!((p >> 3) & 7, 3, "4-level walk");
        assert_eq!(p & (1 << 6), 0, "A/D disabled");
        assert_eq!(p & ADDR_MASK, ept.root);
    }

    #[test]
    fn aligned_range_uses_large_pages() {
        let mut f = Frames::new();
        let mut ept = Ept::new(&mut f).unwrap();
        ept.map(&mut f, 0, 0x4000_0000, 4 * M2, Perm::RWX).unwrap();
        // PML4 + PDPT + PD, no PT.
        assert_eq!(ept.tables(&mut f).len(), 3);
        for i in 0..4 {
            let (h, p, s) = ept.translate(&mut f, i * M2 + 0x1234).unwrap();
            assert_eq!(h, 0x4000_0000 + i * M2 + 0x1234);
            assert_eq!(p, Perm::RWX);
            assert_eq!(s, PageSize::Size2M);
        }
        // The leaf itself: WB, ignore PAT, bit 7.
        let pd = ept.tables(&mut f)[2];
        let e = f.table(pd)[1];
        assert_eq!(e, (0x4000_0000 + M2) | 7 | (6 << 3) | (1 << 6) | (1 << 7));
        assert_eq!(ept.translate(&mut f, 4 * M2), None);
    }

    #[test]
    fn mixed_layout_picks_2m_only_where_possible() {
        let mut f = Frames::new();
        let mut ept = Ept::new(&mut f).unwrap();
        // gpa starts 4K below a 2M boundary, runs 3 * 2M + 8K: 4K, 2M, 2M, 2M?, ...
        let gpa = M2 - K4;
        let hpa = 0x8000_0000 - K4;
        let len = 3 * M2 + 2 * K4;
        ept.map(&mut f, gpa, hpa, len, Perm::RX).unwrap();
        check_range(&ept, &mut f, gpa, hpa, len, Perm::RX);
        assert_eq!(ept.translate(&mut f, gpa).unwrap().2, PageSize::Size4K);
        assert_eq!(ept.translate(&mut f, M2).unwrap().2, PageSize::Size2M);
        assert_eq!(ept.translate(&mut f, 3 * M2).unwrap().2, PageSize::Size2M);
        assert_eq!(ept.translate(&mut f, 4 * M2).unwrap().2, PageSize::Size4K);
        assert_eq!(ept.translate(&mut f, gpa - K4), None);
        assert_eq!(ept.translate(&mut f, gpa + len), None);

        // Same gpa alignment, hpa only 4K aligned: never 2M.
        ept.map(&mut f, 0x10_0000_0000, 0x1000, 2 * M2, Perm::R)
            .unwrap();
        check_range(&ept, &mut f, 0x10_0000_0000, 0x1000, 2 * M2, Perm::R);
        assert_eq!(
            ept.translate(&mut f, 0x10_0000_0000).unwrap().2,
            PageSize::Size4K
        );
    }

    #[test]
    fn refuses_bad_requests() {
        let mut f = Frames::new();
        let mut ept = Ept::new(&mut f).unwrap();
        assert_eq!(
            ept.map(&mut f, 0x800, 0, K4, Perm::R),
            Err(EptError::Misaligned)
        );
        assert_eq!(
            ept.map(&mut f, 0, 0x10, K4, Perm::R),
            Err(EptError::Misaligned)
        );
        assert_eq!(
            ept.map(&mut f, 0, 0, 100, Perm::R),
            Err(EptError::Misaligned)
        );
        assert_eq!(
            ept.map(&mut f, 0, 0, K4, Perm::W),
            Err(EptError::InvalidPerm)
        );
        assert_eq!(
            ept.map(&mut f, 0, 0, K4, Perm::NONE),
            Err(EptError::InvalidPerm)
        );
        assert_eq!(
            ept.map(&mut f, GPA_LIMIT - K4, 0, 2 * K4, Perm::R),
            Err(EptError::OutOfRange)
        );
        assert_eq!(
            ept.map(&mut f, u64::MAX - 0xfff, 0, K4 * 2, Perm::R),
            Err(EptError::OutOfRange)
        );
        assert_eq!(
            ept.map(&mut f, 0, HPA_LIMIT, K4, Perm::R),
            Err(EptError::OutOfRange)
        );
        // Nothing was created by the refusals.
        assert_eq!(ept.tables(&mut f).len(), 1);
        assert_eq!(ept.map(&mut f, 0, 0, 0, Perm::R), Ok(()));
    }

    #[test]
    fn refuses_overlap_and_changes_nothing() {
        let mut f = Frames::new();
        let mut ept = Ept::new(&mut f).unwrap();
        ept.map(&mut f, 2 * M2, 0, M2, Perm::RW).unwrap();
        ept.map(&mut f, 5 * M2 + 3 * K4, 0x5000, K4, Perm::RW)
            .unwrap();
        // Overlaps the 2M leaf in the middle.
        assert_eq!(
            ept.map(&mut f, M2, 0x100_0000, 2 * M2, Perm::R),
            Err(EptError::Overlap(2 * M2))
        );
        // Overlaps the 4K leaf at the end.
        assert_eq!(
            ept.map(&mut f, 4 * M2, 0x100_0000, M2 + 4 * K4, Perm::R),
            Err(EptError::Overlap(5 * M2 + 3 * K4))
        );
        assert_eq!(ept.translate(&mut f, M2), None);
        assert_eq!(ept.translate(&mut f, 4 * M2), None);
        check_range(&ept, &mut f, 2 * M2, 0, M2, Perm::RW);
        // Adjacent is fine.
        ept.map(&mut f, 5 * M2, 0x9000, 3 * K4, Perm::R).unwrap();
        ept.map(&mut f, 5 * M2 + 4 * K4, 0xd000, K4, Perm::R)
            .unwrap();
        check_range(&ept, &mut f, 5 * M2, 0x9000, 3 * K4, Perm::R);
    }

    #[test]
    fn unmap_splits_a_large_page() {
        let mut f = Frames::new();
        let mut ept = Ept::new(&mut f).unwrap();
        ept.map(&mut f, 0, 0x20_0000_0000, 2 * M2, Perm::RWX)
            .unwrap();
        assert_eq!(ept.tables(&mut f).len(), 3);
        ept.unmap(&mut f, M2 + 5 * K4, 2 * K4).unwrap();
        assert_eq!(ept.tables(&mut f).len(), 4, "one PT for the split");
        assert_eq!(ept.translate(&mut f, 0).unwrap().2, PageSize::Size2M);
        for i in 0..512 {
            let g = M2 + i * K4;
            let t = ept.translate(&mut f, g);
            if i == 5 || i == 6 {
                assert_eq!(t, None);
            } else {
                let (h, p, s) = t.unwrap();
                assert_eq!((h, p, s), (0x20_0000_0000 + g, Perm::RWX, PageSize::Size4K));
            }
        }
        // The split leaves keep WB + ignore PAT and drop bit 7.
        let pt = *ept.tables(&mut f).last().unwrap();
        assert_eq!(
            f.table(pt)[0],
            (0x20_0000_0000 + M2) | 7 | (6 << 3) | (1 << 6)
        );
        // The hole can be mapped again, elsewhere.
        ept.map(&mut f, M2 + 5 * K4, 0x7000, K4, Perm::R).unwrap();
        assert_eq!(
            ept.translate(&mut f, M2 + 5 * K4 + 8),
            Some((0x7008, Perm::R, PageSize::Size4K))
        );
        // Unmapping a whole 2M leaf and holes needs no frame.
        let mut none = Frames::with_limit(0);
        std::mem::swap(&mut none.tables, &mut f.tables);
        ept.unmap(&mut none, 0, 64 * M2).unwrap();
        for g in (0..4 * M2).step_by(K4 as usize) {
            assert_eq!(ept.translate(&mut none, g), None);
        }
    }

    #[test]
    fn split_without_frames_fails() {
        let mut f = Frames::with_limit(3);
        let mut ept = Ept::new(&mut f).unwrap();
        ept.map(&mut f, 0, 0, M2, Perm::R).unwrap();
        assert_eq!(ept.unmap(&mut f, K4, K4), Err(EptError::OutOfFrames));
        assert_eq!(ept.translate(&mut f, K4).unwrap().2, PageSize::Size2M);
        assert_eq!(ept.unmap(&mut f, 1, K4), Err(EptError::Misaligned));
    }

    #[test]
    fn out_of_frames_rolls_back() {
        // Root + PDPT + PD + one PT: the second PT (for the far end) cannot be had.
        let mut f = Frames::with_limit(4);
        let mut ept = Ept::new(&mut f).unwrap();
        let gpa = M2 - K4;
        let len = 2 * M2 + 2 * K4;
        assert_eq!(
            ept.map(&mut f, gpa, gpa, len, Perm::RW),
            Err(EptError::OutOfFrames)
        );
        for g in (gpa..gpa + len).step_by(K4 as usize) {
            assert_eq!(ept.translate(&mut f, g), None, "{g:#x}");
        }
    }

    #[test]
    fn tables_left_empty_are_freed() {
        let mut f = Frames::new();
        let mut ept = Ept::new(&mut f).unwrap();
        ept.map(&mut f, 0, 0x4000_0000, 8 * M2, Perm::RWX).unwrap();
        let base = f.tables.len();
        // A page at a new 1 GiB-aligned address each time, moved on like shared info:
        // the tables follow it and none are left behind.
        let mut at = None;
        for k in 1..200u64 {
            let gpa = k << 30;
            if let Some(old) = at {
                ept.unmap(&mut f, old, K4).unwrap();
            }
            ept.map(&mut f, gpa, 0x8000_0000, K4, Perm::RW).unwrap();
            at = Some(gpa);
            assert!(f.tables.len() <= base + 3, "{k}: {} tables", f.tables.len());
        }
        ept.unmap(&mut f, at.unwrap(), K4).unwrap();
        assert_eq!(f.tables.len(), base);
        // What stays mapped still translates; unmapping everything leaves the root.
        check_range(&ept, &mut f, 0, 0x4000_0000, 8 * M2, Perm::RWX);
        ept.unmap(&mut f, M2 + K4, K4).unwrap(); // splits one 2M leaf: a PT
        assert_eq!(f.tables.len(), base + 1);
        ept.unmap(&mut f, 0, 8 * M2).unwrap();
        assert_eq!(f.tables.len(), 1, "only the root is left");
        assert_eq!(ept.tables(&mut f), [ept.root]);
        // A map that runs out of frames half way leaves no empty table behind.
        let mut g = Frames::with_limit(3);
        let mut e = Ept::new(&mut g).unwrap();
        assert_eq!(
            e.map(&mut g, 1 << 39, 0, K4, Perm::R),
            Err(EptError::OutOfFrames)
        );
        assert_eq!(g.tables.len(), 1);
    }

    #[test]
    fn tables_lists_every_frame_once() {
        let mut f = Frames::new();
        let mut ept = Ept::new(&mut f).unwrap();
        ept.map(&mut f, 0, 0, K4, Perm::R).unwrap();
        ept.map(&mut f, 1 << 39, 0, K4, Perm::R).unwrap();
        ept.map(&mut f, 1 << 30, 0, M2, Perm::R).unwrap();
        let mut t = ept.tables(&mut f);
        assert_eq!(t[0], ept.root);
        t.sort();
        t.dedup();
        assert_eq!(t.len(), f.tables.len());
        let mut all: Vec<u64> = f.tables.keys().copied().collect();
        all.sort();
        assert_eq!(t, all);
    }

    #[test]
    fn translate_reads_1g_leaves() {
        let mut f = Frames::new();
        let ept = Ept::new(&mut f).unwrap();
        let pdpt = f.alloc_table().unwrap();
        f.table(ept.root)[0] = pdpt | 7;
        f.table(pdpt)[2] = 0x40_0000_0000 | 3 | MT_WB | LEAF_BIT;
        assert_eq!(
            ept.translate(&mut f, (2 << 30) + 0x12_3456),
            Some((0x40_0012_3456, Perm::RW, PageSize::Size1G))
        );
        // A partial unmap splits it to 2M leaves.
        let mut ept = ept;
        ept.unmap(&mut f, 2 << 30, K4).unwrap();
        assert_eq!(ept.translate(&mut f, 2 << 30), None);
        assert_eq!(
            ept.translate(&mut f, (2 << 30) + K4),
            Some((0x40_0000_1000, Perm::RW, PageSize::Size4K))
        );
        assert_eq!(
            ept.translate(&mut f, (2 << 30) + M2 + 8),
            Some((0x40_0020_0008, Perm::RW, PageSize::Size2M))
        );
    }

    /// A model check: random maps and unmaps against a page-by-page map.
    #[test]
    fn randomized_against_a_model() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _round in 0..20 {
            let mut f = Frames::new();
            let mut ept = Ept::new(&mut f).unwrap();
            let mut model: HashMap<u64, (u64, Perm)> = HashMap::new();
            // A 64 MiB window (32 large pages) keeps collisions likely.
            let pages = 64 * M2 / K4 / 2;
            // Anywhere in the 48-bit space, so every table level sees varied indices.
            let base = rnd((GPA_LIMIT >> 21) - 64) << 21;
            for _op in 0..60 {
                let start = rnd(pages);
                // Prefer 2M-friendly starts half the time.
                let start = if rnd(2) == 0 { start & !511 } else { start };
                let n = 1 + rnd(1200);
                let n = n.min(pages - start);
                let gpa = base + start * K4;
                let len = n * K4;
                if rnd(3) == 0 {
                    ept.unmap(&mut f, gpa, len).unwrap();
                    for p in start..start + n {
                        model.remove(&p);
                    }
                } else {
                    let hpa = if rnd(2) == 0 {
                        gpa + 0x100_0000_0000
                    } else {
                        rnd(1 << 20) * K4
                    };
                    let perm = [Perm::R, Perm::RW, Perm::RX, Perm::RWX, Perm::X][rnd(5) as usize];
                    let clash = (start..start + n).find(|p| model.contains_key(p));
                    let r = ept.map(&mut f, gpa, hpa, len, perm);
                    match clash {
                        Some(p) => assert_eq!(r, Err(EptError::Overlap(base + p * K4))),
                        None => {
                            r.unwrap();
                            for p in start..start + n {
                                model.insert(p, (hpa + (p - start) * K4, perm));
                            }
                        }
                    }
                }
            }
            for p in 0..pages {
                let got = ept.translate(&mut f, base + p * K4 + 0x10);
                match model.get(&p) {
                    None => assert_eq!(got, None, "page {p:#x}"),
                    Some(&(h, perm)) => {
                        let (gh, gp, size) = got.unwrap_or_else(|| panic!("page {p:#x}"));
                        assert_eq!((gh, gp), (h + 0x10, perm), "page {p:#x}");
                        if size == PageSize::Size2M {
                            assert_eq!((p * K4) % M2, h % M2);
                        }
                    }
                }
            }
            // Every table is reachable once.
            let mut t = ept.tables(&mut f);
            let n = t.len();
            t.sort();
            t.dedup();
            assert_eq!(t.len(), n);
            assert_eq!(n, f.tables.len());
        }
    }
}
