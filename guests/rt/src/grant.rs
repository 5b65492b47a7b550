//! Grant tables, version 1, from the guest's side: granting our pages to another
//! domain ([`grant_access`], [`end_access`]) and mapping or copying another domain's
//! grants ([`map`], [`unmap`], [`copy`]).
//!
//! [`init`] maps frame 0 of the domain's grant table with
//! `XENMEM_add_to_physmap(XENMAPSPACE_grant_table, idx 0)` at guest frame
//! [`GRANT_TABLE_GFN`] (outside RAM, through the [`crate::mm`] window), which gives
//! [`ENTRIES`] entries. Entries 0..8 are reserved for the toolstack
//! (`GNTTAB_NR_RESERVED_ENTRIES`), so guests grant from [`FIRST_FREE_REF`] up.
//!
//! An entry is written the way Linux's `gnttab_update_entry_v1` writes it: `frame` and
//! `domid` first, a release fence, then `flags`, so the hypervisor never sees the
//! permission with a stale frame or domain. Ending access is Linux's
//! `gnttab_end_foreign_access_ref_v1`: a compare-and-swap of the 16-bit `flags` to 0
//! that fails while the hypervisor has `GTF_reading`/`GTF_writing` set (the page is
//! mapped or being copied).
//!
//! # What this assumes of the hypervisor
//!
//! - `add_to_physmap(XENMAPSPACE_grant_table, 0, gfn)` works for any gfn outside RAM
//!   (growing the table to one frame if it has none) and maps the frame write-back.
//! - It updates an entry's `flags` only with atomic operations (cmpxchg of the
//!   `flags`/`domid` word, atomic bit clears), sets `GTF_reading` (and `GTF_writing`
//!   for a writable use) while a grant is mapped or copied, and clears them when the
//!   last such use ends.
//! - For a mapper like us (auto-translated), `host_addr` of a map is a guest-physical
//!   address; mapping at a frame outside RAM is allowed and unmapping removes it.

use core::sync::atomic::{AtomicU16, AtomicU64, Ordering, fence};

use oxen_abi::grant_table::{
    self as gnt, GnttabCopy, GnttabMapGrantRef, GnttabUnmapGrantRef, gntmap, gntst, gtf,
};

use crate::xen::{self, DomId, Failed, GrantHandle, GrantRef};

/// Guest frame where grant-table frame 0 is mapped (guest-physical 0xFEFF3000).
pub const GRANT_TABLE_GFN: u64 = 0xFEFF3;

/// Entries in the mapped frame.
pub const ENTRIES: u32 = gnt::ENTRIES_PER_FRAME;

/// The first grant reference a guest may use (`GNTTAB_NR_RESERVED_ENTRIES`).
pub const FIRST_FREE_REF: GrantRef = gnt::NR_RESERVED_ENTRIES;

/// Virtual address of the mapped table frame (0 until [`init`] succeeded).
static TABLE: AtomicU64 = AtomicU64::new(0);

/// Why a grant could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// [`init`] has not mapped the table.
    NotInitialised,
    /// A reserved reference (below [`FIRST_FREE_REF`]) or beyond the mapped frame.
    BadRef,
    /// The frame number does not fit a version 1 entry (32 bits).
    FrameTooLarge,
}

/// A failed map, unmap or copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GntError {
    /// The hypercall itself failed (negative errno, e.g. `-ENOSYS`).
    Hypercall(i64),
    /// The operation was refused with this `GNTST_*` status.
    Status(i16),
}

impl GntError {
    /// A `GNTST_*` code for the failure (`GNTST_general_error` for a failed hypercall).
    pub fn status(&self) -> i16 {
        match *self {
            GntError::Hypercall(_) => gntst::GENERAL_ERROR,
            GntError::Status(s) => s,
        }
    }
}

impl core::fmt::Display for GntError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            GntError::Hypercall(rc) => write!(f, "hypercall error {rc}"),
            GntError::Status(s) => write!(f, "status {s} ({})", gntst::describe(s)),
        }
    }
}

/// Maps grant-table frame 0. Idempotent.
pub fn init() -> Result<(), Failed> {
    if TABLE.load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    xen::add_to_physmap(xen::mapspace::GRANT_TABLE, 0, GRANT_TABLE_GFN).map_err(|rc| Failed {
        op: "XENMEM_add_to_physmap(grant_table 0)",
        rc,
    })?;
    // SAFETY: the slot is reserved for the grant table (xen::window_slot); the mapping
    // is a plain write-back page.
    let p =
        unsafe { crate::mm::map_phys(xen::window_slot::GRANT_TABLE, GRANT_TABLE_GFN << 12, false) };
    TABLE.store(p as u64, Ordering::Release);
    Ok(())
}

/// Address of entry `gref`, if the table is mapped and the reference usable.
fn entry(gref: GrantRef) -> Result<u64, GrantError> {
    let table = TABLE.load(Ordering::Acquire);
    if table == 0 {
        return Err(GrantError::NotInitialised);
    }
    if !(FIRST_FREE_REF..ENTRIES).contains(&gref) {
        return Err(GrantError::BadRef);
    }
    Ok(table + u64::from(gref) * gnt::GrantEntryV1::SIZE as u64)
}

/// The `flags` half-word of the entry at `e` (offset 0).
fn flags_at(e: u64) -> &'static AtomicU16 {
    // SAFETY: `e` is an 8-aligned entry inside the mapped table frame, which stays
    // mapped; the hypervisor changes `flags` only atomically.
    unsafe { AtomicU16::from_ptr(e as *mut u16) }
}

/// The `domid` half-word of the entry at `e` (offset 2).
fn domid_at(e: u64) -> &'static AtomicU16 {
    // SAFETY: as in `flags_at`, for the half-word at offset 2.
    unsafe { AtomicU16::from_ptr((e + 2) as *mut u16) }
}

/// Grants `domid` access to our frame `gfn` through entry `gref` (read-only or
/// writable).
pub fn grant_access(
    gref: GrantRef,
    domid: DomId,
    gfn: u64,
    readonly: bool,
) -> Result<(), GrantError> {
    let e = entry(gref)?;
    let frame = u32::try_from(gfn).map_err(|_| GrantError::FrameTooLarge)?;
    // SAFETY: `frame` is the 4-aligned word at offset 4 of the entry (see `flags_at`).
    unsafe { ((e + 4) as *mut u32).write_volatile(frame) };
    domid_at(e).store(domid, Ordering::Relaxed);
    fence(Ordering::Release);
    let flags = gtf::PERMIT_ACCESS | if readonly { gtf::READONLY } else { 0 };
    flags_at(e).store(flags, Ordering::Release);
    Ok(())
}

/// Revokes entry `gref`: its `flags` become 0 unless the grantee still has the page
/// mapped or a copy is under way (`GTF_reading`/`GTF_writing`), in which case nothing
/// changes and the answer is false. True also for an entry not in use.
pub fn end_access(gref: GrantRef) -> bool {
    let Ok(e) = entry(gref) else {
        return false;
    };
    let flags = flags_at(e);
    let mut cur = flags.load(Ordering::Acquire);
    loop {
        if cur & (gtf::READING | gtf::WRITING) != 0 {
            return false;
        }
        match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
}

/// The entry's current `flags` (0 if unusable), e.g. to see `GTF_reading`.
pub fn flags(gref: GrantRef) -> u16 {
    entry(gref).map_or(0, |e| flags_at(e).load(Ordering::Acquire))
}

/// `GNTTABOP_map_grant_ref`: maps grant `gref` of domain `dom` at our guest-physical
/// address `gpa` (page-aligned, outside RAM), read-only or writable. Returns the handle
/// to unmap with.
pub fn map(dom: DomId, gref: GrantRef, gpa: u64, readonly: bool) -> Result<GrantHandle, GntError> {
    let op = GnttabMapGrantRef {
        host_addr: gpa,
        flags: gntmap::HOST_MAP | if readonly { gntmap::READONLY } else { 0 },
        ref_: gref,
        dom,
        ..Default::default()
    };
    let out = xen::map_grant_ref(&op).map_err(GntError::Hypercall)?;
    if out.status == gntst::OKAY {
        Ok(out.handle)
    } else {
        Err(GntError::Status(out.status))
    }
}

/// `GNTTABOP_unmap_grant_ref` of the mapping `handle` made at `gpa`.
pub fn unmap(gpa: u64, handle: GrantHandle) -> Result<(), GntError> {
    let op = GnttabUnmapGrantRef {
        host_addr: gpa,
        dev_bus_addr: 0,
        handle,
        status: 0,
    };
    let out = xen::unmap_grant_ref(&op).map_err(GntError::Hypercall)?;
    if out.status == gntst::OKAY {
        Ok(())
    } else {
        Err(GntError::Status(out.status))
    }
}

/// `GNTTABOP_copy` of one element (see [`oxen_abi::grant_table::GnttabCopyPtr`] for
/// naming a side by grant reference or by our own frame).
pub fn copy(op: &GnttabCopy) -> Result<(), GntError> {
    let out = xen::copy(op).map_err(GntError::Hypercall)?;
    if out.status == gntst::OKAY {
        Ok(())
    } else {
        Err(GntError::Status(out.status))
    }
}
