//! Grant tables, version 1, as pure logic.
//!
//! A domain (the *granter*) shares one of its pages by writing an entry of its grant
//! table: `{flags, domid, frame}` ([`oxen_abi::grant_table::GrantEntryV1`]) saying
//! "domain `domid` may access my GFN `frame`, read-only or not". Another domain (the
//! *mapper*, e.g. a block backend) then asks the hypervisor to map that page into its
//! own physical address space (`GNTTABOP_map_grant_ref`) or to copy bytes to or from
//! it (`GNTTABOP_copy`). This module is that logic, free of hardware and `unsafe`.
//!
//! # Design
//!
//! [`GrantTables`] holds, for every registered domain,
//!
//! - the size of its table (`nr_frames`, grown by `setup_table` or `add_to_physmap`,
//!   never shrunk, at most `max_frames`);
//! - its **active entries**: the entries of its table that are in use right now, each a
//!   [`Pin`] with the mapping domain, the GFN read from the entry when it was first
//!   pinned, the host frame that GFN resolved to, and separate counts of read-only and
//!   writable uses. The pinned frame is what every further map of that entry gets, so
//!   a granter that rewrites `frame` while its page is mapped changes nothing already
//!   mapped (or mapped later through the same pin);
//! - its **maptrack**: one slot per mapping it holds as a mapper, named by the handle
//!   returned to it, each a [`Mapping`] (granter, ref, where it is mapped, frame,
//!   read-only or not). At most `max_maptrack` slots.
//!
//! The granter's table itself lives in guest-visible memory that the granter may
//! rewrite at any moment. It is reached only through the [`GrantEntries`] trait: an
//! atomic read of the 32-bit header (`flags` and `domid` together), a read of `frame`,
//! a compare-and-exchange of the header and an atomic clear of flag bits. The
//! hypervisor implements it over the table frames with atomics; tests implement it
//! over arrays, including hostile ones that change the entry between our reads. The
//! rest of what the logic needs from the hypervisor (taking and dropping references on
//! a domain's frames, installing and removing grant mappings in a mapper's EPT,
//! copying bytes between host frames) is the [`GrantMemory`] trait.
//!
//! ## The v1 flag protocol
//!
//! Using an entry (a map or one side of a copy) *acquires* it: the header is read, and
//! the entry must be of type `GTF_permit_access` without `GTF_sub_page` (sub-page is
//! only tolerated for copies), granted to the requesting domain, and not
//! `GTF_readonly` if write access is wanted. Then `GTF_reading` (and `GTF_writing` for
//! write access) is set with a compare-and-exchange of the whole header, so the check
//! and the update see the same `{flags, domid}`. If the guest changed the header in
//! between, the new value is checked again and the exchange retried, at most
//! [`CMPXCHG_ATTEMPTS`] times in all; a guest changing it faster than that gets
//! `GNTST_general_error` ("unstable entry", as Xen). Every refusal of the entry's
//! contents is `GNTST_general_error` too, as in Xen (including a writable map of a
//! read-only grant: Xen does not use `GNTST_permission_denied` there).
//!
//! When the last writable use of an entry goes away `GTF_writing` is cleared, when the
//! last use of any kind goes away `GTF_reading` is cleared, with atomic bit clears that
//! leave the guest's own bits alone. A granter must therefore see `GTF_reading`/
//! `GTF_writing` clear before it reuses the page: while they are set the page may be
//! mapped. [`GrantTables::is_pinned`] and [`GrantTables::is_gfn_pinned`] tell the
//! hypervisor the same thing, so it can refuse to free or re-purpose a pinned GFN.
//!
//! ## Revocation
//!
//! A granter may clear `GTF_permit_access` (or change `domid`) while its page is
//! mapped. Existing mappings stay valid until the mapper unmaps them, as in Xen; the
//! granter learns the page is still in use from `GTF_reading`. Every *new* map or copy
//! checks the live entry again and fails with `GNTST_general_error`.
//!
//! ## Operations and statuses
//!
//! Each operation takes the guest's argument structure, fills its OUT fields and
//! returns the status (batched ops: one call per element; the hypervisor copies each
//! element in and out and returns 0 for the hypercall, as Xen does). Checks come in
//! Xen's order, so a request with several faults gets Xen's status:
//!
//! - [`GrantTables::map`]: no `GNTMAP_host_map`/`GNTMAP_device_map` → `bad_gntref`;
//!   `device_map`, `application_map` or `contains_pte` → `general_error` (every oxen
//!   guest is HVM/PVH, for which Xen refuses them the same way); unknown or dying
//!   granter → `bad_domain`; no free maptrack slot → `no_space`; ref beyond the table
//!   → `bad_gntref`; entry pinned by another domain, or the pin count of that kind at
//!   [`PIN_LIMIT`] → `general_error`; entry refused or unstable → `general_error`;
//!   frame not mappable (as [`GrantMemory::get_frame`] says) → `bad_page`/`eagain`;
//!   cache-attribute bits in the entry or other flag bits in the request →
//!   `general_error`; the EPT refusing the mapping → its status. Any failure undoes
//!   everything done so far (flags, pins, frame references).
//! - [`GrantTables::unmap`]: handle never issued or already unmapped → `bad_handle`
//!   (a handle is only ever looked up in the caller's own maptrack, so another
//!   domain's handle is just a bad handle); `host_addr` not in the page the mapping was
//!   made at → `general_error` (Xen finds the same when its p2m lookup does not match);
//!   the EPT refusing to remove it → its status, and the mapping stays.
//! - [`GrantTables::copy`]: `len == 0` → `okay` without any check (as Xen); a GFN side
//!   naming anything but `DOMID_SELF` → `permission_denied`; unknown or dying domain →
//!   `bad_domain` (source checked first); then the source is acquired read-only and
//!   the destination writable, each with the map checks above (`bad_gntref`,
//!   `general_error`, `bad_page`, `eagain`); then a side reaching past its page →
//!   `bad_copy_arg`; then the bytes are copied and both sides released.
//! - [`GrantTables::setup_table`], [`GrantTables::query_size`]: unknown domain →
//!   `bad_domain`; another domain without privilege → `permission_denied`; more than
//!   `max_frames` → `general_error`. The hypervisor writes `frame_list` itself.
//! - [`GrantTables::set_version`]: 1 → 0; 2 → `-ENOSYS` (what Xen answers when a
//!   domain's maximum version is 1, and what guests take as "use version 1"); anything
//!   else → `-EINVAL`; `version` always comes back as 1.
//!   [`GrantTables::get_version`]: 1, or `-ESRCH`/`-EPERM`.
//!
//! The hypervisor's dispatcher returns `-EINVAL` for a `count` other than 1 on the
//! single-element sub-ops (`setup_table`, `query_size`, `set_version`, `get_version`)
//! and `-ENOSYS` for the sub-ops oxen does not implement (`dump_table`, `transfer`,
//! `unmap_and_replace`, `get_status_frames`, `swap_grant_ref`, `cache_flush`).
//!
//! ## Domain death
//!
//! [`GrantTables::domain_dying`] marks a domain dying (it can no longer be named in a
//! map or copy) and releases every mapping it holds as a mapper, clearing the flags in
//! the granters' entries and dropping frame references, and returns them so the
//! hypervisor can tear down the EPT entries if it wants to. Pages other domains still
//! have mapped from the dying domain are listed by [`GrantTables::active_pins`]; the
//! hypervisor must keep those frames until the mappers unmap them (their unmaps keep
//! working), and [`GrantTables::remove_domain`] refuses with [`GrantError::Busy`] until
//! then.
//!
//! ## Known differences from Xen
//!
//! 1. Every map and copy checks the live entry (type, `domid`, read-only), also when
//!    the entry is already pinned. Xen checks type and `domid` only for the first pin
//!    of an entry, and the read-only bit only when the first writable pin is added, so
//!    after a revocation Xen still grants further maps of an entry that is mapped.
//! 2. Only HVM/PVH mappers: no PV paths (`contains_pte`, `application_map`, cache
//!    attribute bits) and no device (I/O MMU) mappings, all refused as Xen refuses
//!    them for HVM guests. `dev_bus_addr` is returned as 0 rather than the host
//!    address of the frame, which Xen reveals; nothing an HVM guest does needs it.
//! 3. Unmap always compares `host_addr` with the page the mapping was made at. Xen
//!    treats `host_addr == 0` as "leave the host mapping alone", answers `okay` and
//!    keeps the handle; oxen answers `general_error` unless the mapping is at GFN 0.
//! 4. One frame reference (one [`GrantMemory::get_frame`]) per active entry, dropped
//!    when its last use goes away, not one per mapping.
//! 5. A dying domain cannot be named by a new map or copy (`bad_domain`). Xen still
//!    finds a dying domain by its id; what such a request gets there depends on how far
//!    the domain's teardown has gone.
//! 6. Version 1 only: there is no version 2, so `set_version` never changes anything
//!    and never needs Xen's "entries in use" (`-EBUSY`) check.
//! 7. The maptrack is one first-in first-out free list per domain, limited in slots
//!    (default [`DEFAULT_MAX_MAPTRACK`]), instead of per-vCPU free lists in whole
//!    frames with stealing between vCPUs (Xen's default limit is 1024 maptrack
//!    frames). Handles are still reused oldest-first, so a stale handle rarely names a
//!    new mapping at once.
//! 8. XSM: only the dummy policy's "self or privileged" rule for `setup_table`,
//!    `query_size` and `get_version` of another domain; maps and copies between any
//!    two domains are allowed, as the dummy policy allows them.
//! 9. No per-operation buffer caching in batched copies, no grant transfer, no
//!    transitive or sub-page grants (version 2 features).
//! 10. One lock around all of it (the hypervisor's), where Xen has a lock per table and
//!     per active entry.
//!
//! The pin-count limit ([`PIN_LIMIT`] per kind, `general_error` beyond) and the initial
//! table size (1 frame) are Xen's; the default `max_frames` (32) is smaller than Xen's
//! current default (64).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use oxen_abi::errno;
use oxen_abi::grant_table::{
    DOMID_FIRST_RESERVED, DOMID_SELF, DomId, ENTRIES_PER_FRAME, GnttabCopy, GnttabCopyPtr,
    GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable,
    GnttabUnmapGrantRef, GrantHandle, GrantRef, gntcopy, gntmap, gntst, gtf,
};

/// Frames a table has when its domain is created (Xen's `INITIAL_NR_GRANT_FRAMES`).
pub const INITIAL_FRAMES: u32 = 1;
/// Default limit on a table's frames: 32 frames of 512 entries.
pub const DEFAULT_MAX_FRAMES: u32 = 32;
/// Largest `max_frames` accepted (keeps every grant reference below 2^31).
pub const MAX_FRAMES_LIMIT: u32 = 1 << 22;
/// Default limit on the mappings one domain holds at once.
pub const DEFAULT_MAX_MAPTRACK: u32 = 8192;
/// Uses of one kind (read-only or writable) one entry may have at once; one more is
/// refused with `GNTST_general_error` (Xen's 8-bit counters stop at the top bit).
pub const PIN_LIMIT: u32 = 128;
/// Compare-and-exchange attempts on a shared entry before it is declared unstable.
pub const CMPXCHG_ATTEMPTS: u32 = 5;
/// `add_to_physmap` index bit asking for a version 2 status frame.
pub const PHYSMAP_STATUS_FRAME: u32 = 1 << 31;

const PAGE_SIZE: u32 = 4096;
const PAGE_SHIFT: u32 = 12;

/// Per-domain grant-table parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantConfig {
    /// Frames the table may grow to (1..=[`MAX_FRAMES_LIMIT`]).
    pub max_frames: u32,
    /// Mappings the domain may hold at once as a mapper (0: it cannot map).
    pub max_maptrack: u32,
    /// May size and query other domains' tables (the control domain).
    pub privileged: bool,
}

impl Default for GrantConfig {
    fn default() -> Self {
        GrantConfig {
            max_frames: DEFAULT_MAX_FRAMES,
            max_maptrack: DEFAULT_MAX_MAPTRACK,
            privileged: false,
        }
    }
}

/// Why a domain-management call was refused (guest operations answer `GNTST_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The domain is already registered.
    Exists,
    /// No such domain.
    NoSuchDomain,
    /// The id is reserved (`DOMID_SELF` and up).
    BadDomid,
    /// `max_frames` is 0 or above [`MAX_FRAMES_LIMIT`].
    BadConfig,
    /// Other domains still have pages of this one mapped, or it still holds mappings.
    Busy,
}

/// The first 32 bits of a v1 entry, read and exchanged as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EntryHeader {
    /// `GTF_*` flags.
    pub flags: u16,
    /// The domain granted access.
    pub domid: DomId,
}

/// Access to the grant-table entries of the domains, which live in memory the granting
/// guest can write at any time. Every method must be one atomic access to the entry
/// (the hypervisor uses 32-bit loads, `lock cmpxchg` and `lock and`), and must not
/// fail: the logic only asks for entries below the table's size.
pub trait GrantEntries {
    /// Reads the header of entry `gref` of `granter`'s table.
    fn read_header(&mut self, granter: DomId, gref: GrantRef) -> EntryHeader;
    /// Reads the `frame` field of entry `gref`.
    fn read_frame(&mut self, granter: DomId, gref: GrantRef) -> u32;
    /// If the header of entry `gref` equals `old`, replaces it by `new`. Returns the
    /// header found (equal to `old` exactly when the exchange happened).
    fn cmpxchg_header(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        old: EntryHeader,
        new: EntryHeader,
    ) -> EntryHeader;
    /// Clears the bits of `mask` in the flags of entry `gref`, leaving the others.
    fn clear_flags(&mut self, granter: DomId, gref: GrantRef, mask: u16);
}

/// What the logic needs of the hypervisor's memory management.
pub trait GrantMemory: GrantEntries {
    /// Takes a reference on the page at GFN `gfn` of `dom` (for writing unless
    /// `readonly`) and returns its host frame. A GFN that is not ordinary RAM of `dom`
    /// is `Err(GNTST_bad_page)`; `Err(GNTST_eagain)` means "not now".
    fn get_frame(&mut self, dom: DomId, gfn: u64, readonly: bool) -> Result<u64, i16>;
    /// Drops a reference taken by [`GrantMemory::get_frame`].
    fn put_frame(&mut self, dom: DomId, frame: u64);
    /// Maps host `frame` at GFN `gfn` of `mapper` (read-only or writable). A GFN that
    /// cannot take a grant mapping is `Err(GNTST_general_error)`.
    fn map_grant(&mut self, mapper: DomId, gfn: u64, frame: u64, readonly: bool)
    -> Result<(), i16>;
    /// Removes the grant mapping of `frame` at GFN `gfn` of `mapper`;
    /// `Err(GNTST_general_error)` if that is not what `gfn` holds.
    fn unmap_grant(&mut self, mapper: DomId, gfn: u64, frame: u64) -> Result<(), i16>;
    /// Copies `len` bytes from offset `src_off` of host frame `src` to offset
    /// `dst_off` of `dst` (both ranges checked to lie within their page).
    fn copy(&mut self, src: u64, src_off: u16, dst: u64, dst_off: u16, len: u16);
}

/// An active entry of a granter's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The domain using it (a v1 entry grants one domain).
    pub mapper: DomId,
    /// The entry's `frame` when it was first pinned.
    pub gfn: u32,
    /// The host frame that GFN resolved to; every use of this pin gets this frame.
    pub frame: u64,
    /// Read-only uses (host mappings, and read sides of copies in progress).
    pub readonly: u32,
    /// Writable uses.
    pub writable: u32,
}

impl Pin {
    /// All uses.
    pub fn total(&self) -> u32 {
        self.readonly + self.writable
    }
}

/// A mapping held by a mapper, named by its handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain.
    pub granter: DomId,
    /// The grant reference in its table.
    pub gref: GrantRef,
    /// The mapper's GFN the page is mapped at (`host_addr >> 12`).
    pub gfn: u64,
    /// The host frame mapped.
    pub frame: u64,
    /// Read-only mapping.
    pub readonly: bool,
}

/// A mapping released because its mapper died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    /// Its handle.
    pub handle: GrantHandle,
    /// What it was.
    pub mapping: Mapping,
    /// It was the entry's last use: the frame reference was dropped.
    pub last: bool,
}

struct Domain {
    config: GrantConfig,
    nr_frames: u32,
    dying: bool,
    /// Pinned entries of this domain's table, by reference.
    active: BTreeMap<GrantRef, Pin>,
    /// Mappings this domain holds, by handle; `None` slots are in `free`.
    maptrack: Vec<Option<Mapping>>,
    free: VecDeque<GrantHandle>,
    in_use: u32,
}

impl Domain {
    fn nr_entries(&self) -> u32 {
        self.nr_frames * ENTRIES_PER_FRAME
    }

    /// The handle the next mapping would get, if any.
    fn next_handle(&self) -> Option<GrantHandle> {
        if let Some(&h) = self.free.front() {
            Some(h)
        } else if (self.maptrack.len() as u64) < u64::from(self.config.max_maptrack) {
            Some(self.maptrack.len() as GrantHandle)
        } else {
            None
        }
    }

    /// Stores `m` under `h`, which [`Domain::next_handle`] just returned.
    fn take_handle(&mut self, h: GrantHandle, m: Mapping) {
        if self.free.front() == Some(&h) {
            self.free.pop_front();
        } else {
            self.maptrack.push(None);
        }
        self.maptrack[h as usize] = Some(m);
        self.in_use += 1;
    }

    fn put_handle(&mut self, h: GrantHandle) {
        self.maptrack[h as usize] = None;
        self.free.push_back(h);
        self.in_use -= 1;
    }
}

/// One side of a copy, acquired.
#[derive(Clone, Copy)]
enum Claim {
    Grant {
        dom: DomId,
        gref: GrantRef,
        readonly: bool,
        frame: u64,
    },
    Frame {
        dom: DomId,
        frame: u64,
    },
}

impl Claim {
    fn frame(&self) -> u64 {
        match *self {
            Claim::Grant { frame, .. } | Claim::Frame { frame, .. } => frame,
        }
    }
}

/// The grant tables of all domains.
#[derive(Default)]
pub struct GrantTables {
    doms: BTreeMap<DomId, Domain>,
}

/// Acquires entry `gref` of `granter` for `user`: checks the live entry and sets
/// `GTF_reading` (and `GTF_writing` unless `readonly`) in one compare-and-exchange.
/// Returns the header as left. `for_map` also refuses `GTF_sub_page`.
fn acquire_entry<E: GrantEntries + ?Sized>(
    mem: &mut E,
    granter: DomId,
    gref: GrantRef,
    user: DomId,
    readonly: bool,
    for_map: bool,
) -> Result<EntryHeader, i16> {
    let type_mask = if for_map {
        gtf::TYPE_MASK | gtf::SUB_PAGE
    } else {
        gtf::TYPE_MASK
    };
    let want = if readonly {
        gtf::READING
    } else {
        gtf::READING | gtf::WRITING
    };
    let mut cur = mem.read_header(granter, gref);
    let mut attempts = 0;
    loop {
        if cur.flags & type_mask != gtf::PERMIT_ACCESS || cur.domid != user {
            return Err(gntst::GENERAL_ERROR);
        }
        if !readonly && cur.flags & gtf::READONLY != 0 {
            return Err(gntst::GENERAL_ERROR);
        }
        if cur.flags & want == want {
            // Nothing to set: the atomic read was the check.
            return Ok(cur);
        }
        let new = EntryHeader {
            flags: cur.flags | want,
            domid: cur.domid,
        };
        let seen = mem.cmpxchg_header(granter, gref, cur, new);
        if seen == cur {
            return Ok(new);
        }
        attempts += 1;
        if attempts == CMPXCHG_ATTEMPTS {
            return Err(gntst::GENERAL_ERROR);
        }
        cur = seen;
    }
}

/// Clears the flags the remaining uses no longer justify, after a use of kind
/// `readonly` went away (or was never completed).
fn reduce_flags<E: GrantEntries + ?Sized>(
    mem: &mut E,
    granter: DomId,
    gref: GrantRef,
    left: Option<&Pin>,
    readonly: bool,
) {
    let (ro, rw) = left.map_or((0, 0), |p| (p.readonly, p.writable));
    let mut clear = 0;
    if ro + rw == 0 {
        clear |= gtf::READING;
    }
    if !readonly && rw == 0 {
        clear |= gtf::WRITING;
    }
    if clear != 0 {
        mem.clear_flags(granter, gref, clear);
    }
}

impl GrantTables {
    /// No domains.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `dom` with a table of [`INITIAL_FRAMES`] frames and no mappings.
    pub fn add_domain(&mut self, dom: DomId, config: GrantConfig) -> Result<(), GrantError> {
        if dom >= DOMID_FIRST_RESERVED {
            return Err(GrantError::BadDomid);
        }
        if config.max_frames < INITIAL_FRAMES || config.max_frames > MAX_FRAMES_LIMIT {
            return Err(GrantError::BadConfig);
        }
        if self.doms.contains_key(&dom) {
            return Err(GrantError::Exists);
        }
        self.doms.insert(
            dom,
            Domain {
                config,
                nr_frames: INITIAL_FRAMES,
                dying: false,
                active: BTreeMap::new(),
                maptrack: Vec::new(),
                free: VecDeque::new(),
                in_use: 0,
            },
        );
        Ok(())
    }

    /// Marks `dom` dying and releases every mapping it holds (flags in the granters'
    /// entries cleared, frame references dropped; its EPT is left alone). Returns the
    /// released mappings, by handle.
    pub fn domain_dying<M: GrantMemory + ?Sized>(
        &mut self,
        dom: DomId,
        mem: &mut M,
    ) -> Result<Vec<Released>, GrantError> {
        let d = self.doms.get_mut(&dom).ok_or(GrantError::NoSuchDomain)?;
        d.dying = true;
        let held: Vec<(GrantHandle, Mapping)> = d
            .maptrack
            .iter()
            .enumerate()
            .filter_map(|(h, m)| m.map(|m| (h as GrantHandle, m)))
            .collect();
        let mut out = Vec::with_capacity(held.len());
        for (handle, mapping) in held {
            if let Some(d) = self.doms.get_mut(&dom) {
                d.put_handle(handle);
            }
            let last = self.unpin(mapping.granter, mapping.gref, mapping.readonly, mem);
            out.push(Released {
                handle,
                mapping,
                last,
            });
        }
        Ok(out)
    }

    /// Forgets `dom`. Refused while other domains have its pages mapped (see
    /// [`GrantTables::active_pins`]) or it holds mappings itself.
    pub fn remove_domain(&mut self, dom: DomId) -> Result<(), GrantError> {
        let d = self.doms.get(&dom).ok_or(GrantError::NoSuchDomain)?;
        if !d.active.is_empty() || d.in_use != 0 {
            return Err(GrantError::Busy);
        }
        self.doms.remove(&dom);
        Ok(())
    }

    /// `dom`, if registered and not dying.
    fn live(&self, dom: DomId) -> Option<&Domain> {
        self.doms.get(&dom).filter(|d| !d.dying)
    }

    fn privileged(&self, dom: DomId) -> bool {
        self.doms.get(&dom).is_some_and(|d| d.config.privileged)
    }

    /// Drops one use of kind `readonly` of entry `gref` of `granter`: clears the flags
    /// that no longer hold and, after the last use, drops the frame reference. Returns
    /// whether that was the last use.
    fn unpin<M: GrantMemory + ?Sized>(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        readonly: bool,
        mem: &mut M,
    ) -> bool {
        let Some(g) = self.doms.get_mut(&granter) else {
            return false;
        };
        let Some(p) = g.active.get_mut(&gref) else {
            return false;
        };
        if readonly {
            p.readonly = p.readonly.saturating_sub(1);
        } else {
            p.writable = p.writable.saturating_sub(1);
        }
        let p = *p;
        reduce_flags(mem, granter, gref, Some(&p), readonly);
        if p.total() == 0 {
            g.active.remove(&gref);
            mem.put_frame(granter, p.frame);
            true
        } else {
            false
        }
    }

    /// Acquires entry `gref` of `granter` for one use by `user` and pins it: the
    /// common part of a map and of a copy's grant side. Returns the pinned frame.
    fn pin_entry<M: GrantMemory + ?Sized>(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        user: DomId,
        readonly: bool,
        for_map: bool,
        mem: &mut M,
    ) -> Result<(u64, EntryHeader), i16> {
        let g = self.doms.get_mut(&granter).ok_or(gntst::BAD_DOMAIN)?;
        if gref >= g.nr_entries() {
            return Err(gntst::BAD_GNTREF);
        }
        let existing = g.active.get(&gref).copied();
        if let Some(p) = existing {
            let count = if readonly { p.readonly } else { p.writable };
            if p.mapper != user || count >= PIN_LIMIT {
                return Err(gntst::GENERAL_ERROR);
            }
        }
        let header = acquire_entry(mem, granter, gref, user, readonly, for_map)?;
        let pin = match existing {
            Some(p) => p,
            None => {
                let gfn = mem.read_frame(granter, gref);
                match mem.get_frame(granter, u64::from(gfn), readonly) {
                    Ok(frame) => Pin {
                        mapper: user,
                        gfn,
                        frame,
                        readonly: 0,
                        writable: 0,
                    },
                    Err(status) => {
                        reduce_flags(mem, granter, gref, None, readonly);
                        return Err(status);
                    }
                }
            }
        };
        let p = g.active.entry(gref).or_insert(pin);
        if readonly {
            p.readonly += 1;
        } else {
            p.writable += 1;
        }
        Ok((p.frame, header))
    }

    /// `GNTTABOP_map_grant_ref` for one element, by `mapper`. On success fills
    /// `handle` and `dev_bus_addr` (0); always fills `status`, which it returns.
    pub fn map<M: GrantMemory + ?Sized>(
        &mut self,
        mapper: DomId,
        op: &mut GnttabMapGrantRef,
        mem: &mut M,
    ) -> i16 {
        op.status = match self.map_one(mapper, op, mem) {
            Ok(handle) => {
                op.handle = handle;
                op.dev_bus_addr = 0;
                gntst::OKAY
            }
            Err(status) => status,
        };
        op.status
    }

    fn map_one<M: GrantMemory + ?Sized>(
        &mut self,
        mapper: DomId,
        op: &GnttabMapGrantRef,
        mem: &mut M,
    ) -> Result<GrantHandle, i16> {
        let flags = op.flags;
        if flags & (gntmap::HOST_MAP | gntmap::DEVICE_MAP) == 0 {
            return Err(gntst::BAD_GNTREF);
        }
        if flags & (gntmap::DEVICE_MAP | gntmap::APPLICATION_MAP | gntmap::CONTAINS_PTE) != 0 {
            return Err(gntst::GENERAL_ERROR);
        }
        let readonly = flags & gntmap::READONLY != 0;
        // The caller is running, so registered and alive; anything else is a bug of
        // the caller, refused without touching any state.
        let handle = self
            .live(mapper)
            .ok_or(gntst::GENERAL_ERROR)
            .map(Domain::next_handle)?;
        let granter = op.dom;
        if self.live(granter).is_none() {
            return Err(gntst::BAD_DOMAIN);
        }
        let handle = handle.ok_or(gntst::NO_SPACE)?;
        let gref = op.ref_;
        let (frame, header) = self.pin_entry(granter, gref, mapper, readonly, true, mem)?;

        let gfn = op.host_addr >> PAGE_SHIFT;
        let cache = header.flags & (gtf::PWT | gtf::PCD | gtf::PAT);
        let mapped = if cache != 0 || flags & !gntmap::READONLY != gntmap::HOST_MAP {
            Err(gntst::GENERAL_ERROR)
        } else {
            mem.map_grant(mapper, gfn, frame, readonly)
        };
        if let Err(status) = mapped {
            self.unpin(granter, gref, readonly, mem);
            return Err(status);
        }
        let m = Mapping {
            granter,
            gref,
            gfn,
            frame,
            readonly,
        };
        if let Some(d) = self.doms.get_mut(&mapper) {
            d.take_handle(handle, m);
        }
        Ok(handle)
    }

    /// `GNTTABOP_unmap_grant_ref` for one element, by `mapper`. Fills and returns
    /// `status`.
    pub fn unmap<M: GrantMemory + ?Sized>(
        &mut self,
        mapper: DomId,
        op: &mut GnttabUnmapGrantRef,
        mem: &mut M,
    ) -> i16 {
        op.status = match self.unmap_one(mapper, op, mem) {
            Ok(()) => gntst::OKAY,
            Err(status) => status,
        };
        op.status
    }

    fn unmap_one<M: GrantMemory + ?Sized>(
        &mut self,
        mapper: DomId,
        op: &GnttabUnmapGrantRef,
        mem: &mut M,
    ) -> Result<(), i16> {
        let d = self.doms.get_mut(&mapper).ok_or(gntst::BAD_HANDLE)?;
        let m = d
            .maptrack
            .get(op.handle as usize)
            .copied()
            .flatten()
            .ok_or(gntst::BAD_HANDLE)?;
        if op.host_addr >> PAGE_SHIFT != m.gfn {
            return Err(gntst::GENERAL_ERROR);
        }
        mem.unmap_grant(mapper, m.gfn, m.frame)?;
        d.put_handle(op.handle);
        self.unpin(m.granter, m.gref, m.readonly, mem);
        Ok(())
    }

    /// `GNTTABOP_copy` for one element, by `caller`. Fills and returns `status`.
    pub fn copy<M: GrantMemory + ?Sized>(
        &mut self,
        caller: DomId,
        op: &mut GnttabCopy,
        mem: &mut M,
    ) -> i16 {
        op.status = match self.copy_one(caller, op, mem) {
            Ok(()) => gntst::OKAY,
            Err(status) => status,
        };
        op.status
    }

    /// The domain a copy side names, after the permission and existence checks.
    fn copy_domain(&self, caller: DomId, domid: DomId, is_gref: bool) -> Result<DomId, i16> {
        if domid != DOMID_SELF && !is_gref {
            return Err(gntst::PERMISSION_DENIED);
        }
        let dom = if domid == DOMID_SELF { caller } else { domid };
        if self.live(dom).is_none() {
            return Err(gntst::BAD_DOMAIN);
        }
        Ok(dom)
    }

    fn claim<M: GrantMemory + ?Sized>(
        &mut self,
        caller: DomId,
        dom: DomId,
        side: &GnttabCopyPtr,
        is_gref: bool,
        readonly: bool,
        mem: &mut M,
    ) -> Result<Claim, i16> {
        if is_gref {
            let gref = side.gref();
            let (frame, _) = self.pin_entry(dom, gref, caller, readonly, false, mem)?;
            Ok(Claim::Grant {
                dom,
                gref,
                readonly,
                frame,
            })
        } else {
            let frame = mem.get_frame(dom, side.gmfn(), readonly)?;
            Ok(Claim::Frame { dom, frame })
        }
    }

    fn release<M: GrantMemory + ?Sized>(&mut self, claim: Claim, mem: &mut M) {
        match claim {
            Claim::Grant {
                dom,
                gref,
                readonly,
                ..
            } => {
                self.unpin(dom, gref, readonly, mem);
            }
            Claim::Frame { dom, frame } => mem.put_frame(dom, frame),
        }
    }

    fn copy_one<M: GrantMemory + ?Sized>(
        &mut self,
        caller: DomId,
        op: &GnttabCopy,
        mem: &mut M,
    ) -> Result<(), i16> {
        if op.len == 0 {
            return Ok(());
        }
        let src_gref = op.flags & gntcopy::SOURCE_GREF != 0;
        let dst_gref = op.flags & gntcopy::DEST_GREF != 0;
        let src_dom = self.copy_domain(caller, op.source.domid, src_gref)?;
        let dst_dom = self.copy_domain(caller, op.dest.domid, dst_gref)?;
        let src = self.claim(caller, src_dom, &op.source, src_gref, true, mem)?;
        let dst = match self.claim(caller, dst_dom, &op.dest, dst_gref, false, mem) {
            Ok(dst) => dst,
            Err(status) => {
                self.release(src, mem);
                return Err(status);
            }
        };
        let len = u32::from(op.len);
        let result = if u32::from(op.source.offset) + len > PAGE_SIZE
            || u32::from(op.dest.offset) + len > PAGE_SIZE
        {
            Err(gntst::BAD_COPY_ARG)
        } else {
            mem.copy(
                src.frame(),
                op.source.offset,
                dst.frame(),
                op.dest.offset,
                op.len,
            );
            Ok(())
        };
        self.release(src, mem);
        self.release(dst, mem);
        result
    }

    /// The domain a `dom` argument names for `caller`, checked as Xen's dummy XSM
    /// policy does for a "target" operation.
    fn target(&self, caller: DomId, dom: DomId) -> Result<DomId, i16> {
        let target = if dom == DOMID_SELF { caller } else { dom };
        if self.live(target).is_none() {
            return Err(gntst::BAD_DOMAIN);
        }
        if target != caller && !self.privileged(caller) {
            return Err(gntst::PERMISSION_DENIED);
        }
        Ok(target)
    }

    /// `GNTTABOP_setup_table` by `caller`: grows the table to `nr_frames` if it is
    /// smaller (never shrinks it). Fills and returns `status`; on `okay` the hypervisor
    /// then writes the GFNs of the first `nr_frames` frames to `frame_list` (and sets
    /// `GNTST_bad_virt_addr` if it cannot).
    pub fn setup_table(&mut self, caller: DomId, op: &mut GnttabSetupTable) -> i16 {
        op.status = match self.target(caller, op.dom) {
            Err(status) => status,
            Ok(target) => match self.doms.get_mut(&target) {
                None => gntst::BAD_DOMAIN,
                Some(d) if op.nr_frames > d.config.max_frames => gntst::GENERAL_ERROR,
                Some(d) => {
                    d.nr_frames = d.nr_frames.max(op.nr_frames);
                    gntst::OKAY
                }
            },
        };
        op.status
    }

    /// `GNTTABOP_query_size` by `caller`: fills `nr_frames`, `max_nr_frames` and
    /// `status`; returns `status`.
    pub fn query_size(&self, caller: DomId, op: &mut GnttabQuerySize) -> i16 {
        op.status = match self.target(caller, op.dom) {
            Err(status) => status,
            Ok(target) => match self.doms.get(&target) {
                None => gntst::BAD_DOMAIN,
                Some(d) => {
                    op.nr_frames = d.nr_frames;
                    op.max_nr_frames = d.config.max_frames;
                    gntst::OKAY
                }
            },
        };
        op.status
    }

    /// `XENMEM_add_to_physmap` with space `XENMAPSPACE_grant_table`, index `idx`:
    /// grows `dom`'s table to hold frame `idx` if needed. `Ok(idx)` is the table frame
    /// to map; `-EINVAL` for a frame beyond `max_frames` or a version 2 status frame.
    pub fn physmap_frame(&mut self, dom: DomId, idx: u32) -> Result<u32, i64> {
        let d = self.doms.get_mut(&dom).ok_or(-errno::ESRCH)?;
        if idx & PHYSMAP_STATUS_FRAME != 0 || idx >= d.config.max_frames {
            return Err(-errno::EINVAL);
        }
        d.nr_frames = d.nr_frames.max(idx + 1);
        Ok(idx)
    }

    /// `GNTTABOP_set_version`: only version 1 exists. Returns 0, `-ENOSYS` (version
    /// 2) or `-EINVAL` (anything else); `version` always comes back as 1.
    pub fn set_version(&mut self, _caller: DomId, op: &mut GnttabSetVersion) -> i64 {
        let ret = match op.version {
            1 => 0,
            2 => -errno::ENOSYS,
            _ => -errno::EINVAL,
        };
        op.version = 1;
        ret
    }

    /// `GNTTABOP_get_version` by `caller`: fills `version` (1). Returns 0, `-ESRCH`
    /// (no such domain) or `-EPERM` (another domain, without privilege).
    pub fn get_version(&self, caller: DomId, op: &mut GnttabGetVersion) -> i64 {
        match self.target(caller, op.dom) {
            Ok(_) => {
                op.version = 1;
                0
            }
            Err(gntst::PERMISSION_DENIED) => -errno::EPERM,
            Err(_) => -errno::ESRCH,
        }
    }

    /// Frames `dom`'s table has now.
    pub fn nr_frames(&self, dom: DomId) -> Option<u32> {
        self.doms.get(&dom).map(|d| d.nr_frames)
    }

    /// Frames `dom`'s table may grow to.
    pub fn max_frames(&self, dom: DomId) -> Option<u32> {
        self.doms.get(&dom).map(|d| d.config.max_frames)
    }

    /// Whether entry `gref` of `granter` is in use (mapped or being copied): its
    /// page must not be freed and the entry must not be treated as free.
    pub fn is_pinned(&self, granter: DomId, gref: GrantRef) -> bool {
        self.pin(granter, gref).is_some()
    }

    /// The active entry `gref` of `granter`, if pinned.
    pub fn pin(&self, granter: DomId, gref: GrantRef) -> Option<Pin> {
        self.doms.get(&granter)?.active.get(&gref).copied()
    }

    /// Whether some pinned entry of `granter` was pinned at its GFN `gfn`: the
    /// hypervisor must not free or move that GFN's page.
    pub fn is_gfn_pinned(&self, granter: DomId, gfn: u64) -> bool {
        self.doms
            .get(&granter)
            .is_some_and(|d| d.active.values().any(|p| u64::from(p.gfn) == gfn))
    }

    /// Every pinned entry of `granter`, by reference: what other domains still have
    /// mapped of it (for a dying granter, the pages to keep until they unmap).
    pub fn active_pins(&self, granter: DomId) -> Vec<(GrantRef, Pin)> {
        self.doms.get(&granter).map_or_else(Vec::new, |d| {
            d.active.iter().map(|(&r, &p)| (r, p)).collect()
        })
    }

    /// The mapping `mapper` holds under `handle`.
    pub fn mapping(&self, mapper: DomId, handle: GrantHandle) -> Option<Mapping> {
        self.doms
            .get(&mapper)?
            .maptrack
            .get(handle as usize)
            .copied()
            .flatten()
    }

    /// Every mapping `mapper` holds, by handle.
    pub fn mappings(&self, mapper: DomId) -> Vec<(GrantHandle, Mapping)> {
        self.doms.get(&mapper).map_or_else(Vec::new, |d| {
            d.maptrack
                .iter()
                .enumerate()
                .filter_map(|(h, m)| m.map(|m| (h as GrantHandle, m)))
                .collect()
        })
    }

    /// Number of mappings `mapper` holds.
    pub fn handles_in_use(&self, mapper: DomId) -> u32 {
        self.doms.get(&mapper).map_or(0, |d| d.in_use)
    }

    /// Checks the internal invariants (between operations, when no copy is in
    /// progress): every mapping names a pin held by its mapper with its frame, every
    /// pin's counts equal the mappings naming it, free lists and counts agree, sizes
    /// are within limits. Returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (&id, d) in &self.doms {
            if d.nr_frames < INITIAL_FRAMES || d.nr_frames > d.config.max_frames {
                return Err(format!("d{id}: {} frames", d.nr_frames));
            }
            if d.maptrack.len() as u64 > u64::from(d.config.max_maptrack) {
                return Err(format!("d{id}: maptrack over its limit"));
            }
            let used = d.maptrack.iter().filter(|m| m.is_some()).count();
            if used != d.in_use as usize || used + d.free.len() != d.maptrack.len() {
                return Err(format!("d{id}: maptrack counts disagree"));
            }
            for &h in &d.free {
                if d.maptrack.get(h as usize) != Some(&None) {
                    return Err(format!("d{id}: free handle {h} in use"));
                }
            }
            for (h, m) in d.maptrack.iter().enumerate() {
                let Some(m) = m else { continue };
                let p = self.pin(m.granter, m.gref).ok_or_else(|| {
                    format!("d{id} handle {h}: d{} ref {} not pinned", m.granter, m.gref)
                })?;
                if p.mapper != id || p.frame != m.frame {
                    return Err(format!("d{id} handle {h}: pin belongs elsewhere"));
                }
            }
            for (&gref, p) in &d.active {
                if gref >= d.nr_entries() || p.total() == 0 {
                    return Err(format!("d{id} ref {gref}: bad pin {p:?}"));
                }
                if p.readonly > PIN_LIMIT || p.writable > PIN_LIMIT {
                    return Err(format!("d{id} ref {gref}: pin count over the limit"));
                }
                let mapper = self
                    .doms
                    .get(&p.mapper)
                    .ok_or_else(|| format!("d{id} ref {gref}: mapper d{} gone", p.mapper))?;
                let (mut ro, mut rw) = (0, 0);
                for m in mapper.maptrack.iter().flatten() {
                    if m.granter == id && m.gref == gref {
                        if m.readonly {
                            ro += 1;
                        } else {
                            rw += 1;
                        }
                    }
                }
                if (ro, rw) != (p.readonly, p.writable) {
                    return Err(format!(
                        "d{id} ref {gref}: pins {}/{} but mappings {ro}/{rw}",
                        p.readonly, p.writable
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxen_abi::grant_table::GrantEntryV1;
    use std::collections::{HashMap, HashSet};

    const A: DomId = 1;
    const B: DomId = 2;
    const C: DomId = 3;
    const NOBODY: DomId = 9;
    const RAM_GFNS: u64 = 64;
    /// Where mappers map (above their RAM).
    const MAP_GFN: u64 = 0x1000;

    const RO: bool = true;
    const RW: bool = false;

    fn host_frame(dom: DomId, gfn: u64) -> u64 {
        0x10_0000 + (u64::from(dom) << 12) + gfn
    }

    type Hook = Box<dyn FnMut(&mut GrantEntryV1)>;

    /// Guest memory for the tests: entries in a map, RAM as a set of GFNs with made-up
    /// host frames, grant mappings in a per-mapper p2m, frame contents on demand,
    /// reference counts, and hooks that let a hostile granter change an entry right
    /// after we read it or right before we exchange it.
    #[derive(Default)]
    struct World {
        entries: HashMap<(DomId, GrantRef), GrantEntryV1>,
        ram: HashMap<(DomId, u64), u64>,
        eagain: HashSet<(DomId, u64)>,
        refs: HashMap<u64, i64>,
        p2m: HashMap<(DomId, u64), (u64, bool)>,
        bytes: HashMap<u64, Vec<u8>>,
        after_read: Option<Hook>,
        before_cmpxchg: Option<Hook>,
        cmpxchgs: u32,
        refuse_unmap: bool,
    }

    impl GrantEntries for World {
        fn read_header(&mut self, granter: DomId, gref: GrantRef) -> EntryHeader {
            let e = self.entries.entry((granter, gref)).or_default();
            let h = EntryHeader {
                flags: e.flags,
                domid: e.domid,
            };
            if let Some(hook) = self.after_read.as_mut() {
                hook(e);
            }
            h
        }
        fn read_frame(&mut self, granter: DomId, gref: GrantRef) -> u32 {
            self.entries.entry((granter, gref)).or_default().frame
        }
        fn cmpxchg_header(
            &mut self,
            granter: DomId,
            gref: GrantRef,
            old: EntryHeader,
            new: EntryHeader,
        ) -> EntryHeader {
            self.cmpxchgs += 1;
            let e = self.entries.entry((granter, gref)).or_default();
            if let Some(hook) = self.before_cmpxchg.as_mut() {
                hook(e);
            }
            let seen = EntryHeader {
                flags: e.flags,
                domid: e.domid,
            };
            if seen == old {
                e.flags = new.flags;
                e.domid = new.domid;
            }
            seen
        }
        fn clear_flags(&mut self, granter: DomId, gref: GrantRef, mask: u16) {
            self.entries.entry((granter, gref)).or_default().flags &= !mask;
        }
    }

    impl GrantMemory for World {
        fn get_frame(&mut self, dom: DomId, gfn: u64, _readonly: bool) -> Result<u64, i16> {
            if self.eagain.contains(&(dom, gfn)) {
                return Err(gntst::EAGAIN);
            }
            let frame = *self.ram.get(&(dom, gfn)).ok_or(gntst::BAD_PAGE)?;
            *self.refs.entry(frame).or_default() += 1;
            Ok(frame)
        }
        fn put_frame(&mut self, _dom: DomId, frame: u64) {
            let r = self.refs.entry(frame).or_default();
            *r -= 1;
            assert!(*r >= 0, "frame {frame:#x} put more often than taken");
        }
        fn map_grant(
            &mut self,
            mapper: DomId,
            gfn: u64,
            frame: u64,
            readonly: bool,
        ) -> Result<(), i16> {
            if self.p2m.contains_key(&(mapper, gfn)) || self.ram.contains_key(&(mapper, gfn)) {
                return Err(gntst::GENERAL_ERROR);
            }
            self.p2m.insert((mapper, gfn), (frame, readonly));
            Ok(())
        }
        fn unmap_grant(&mut self, mapper: DomId, gfn: u64, frame: u64) -> Result<(), i16> {
            match self.p2m.get(&(mapper, gfn)) {
                Some(&(f, _)) if f == frame && !self.refuse_unmap => {
                    self.p2m.remove(&(mapper, gfn));
                    Ok(())
                }
                _ => Err(gntst::GENERAL_ERROR),
            }
        }
        fn copy(&mut self, src: u64, src_off: u16, dst: u64, dst_off: u16, len: u16) {
            let (s, d, n) = (src_off as usize, dst_off as usize, len as usize);
            let data = self.page(src)[s..s + n].to_vec();
            self.page(dst)[d..d + n].copy_from_slice(&data);
        }
    }

    impl World {
        fn page(&mut self, frame: u64) -> &mut Vec<u8> {
            self.bytes.entry(frame).or_insert_with(|| vec![0; 4096])
        }
        fn grant(&mut self, granter: DomId, gref: GrantRef, to: DomId, gfn: u32, ro: bool) {
            let flags = gtf::PERMIT_ACCESS | if ro { gtf::READONLY } else { 0 };
            self.entries.insert(
                (granter, gref),
                GrantEntryV1 {
                    flags,
                    domid: to,
                    frame: gfn,
                },
            );
        }
        fn entry(&self, granter: DomId, gref: GrantRef) -> GrantEntryV1 {
            self.entries
                .get(&(granter, gref))
                .copied()
                .unwrap_or_default()
        }
        fn flags(&self, granter: DomId, gref: GrantRef) -> u16 {
            self.entry(granter, gref).flags
        }
        fn edit(&mut self, granter: DomId, gref: GrantRef, f: impl FnOnce(&mut GrantEntryV1)) {
            f(self.entries.entry((granter, gref)).or_default());
        }
        fn refs_held(&self) -> i64 {
            self.refs.values().sum()
        }
    }

    fn world_with(config: GrantConfig) -> (GrantTables, World) {
        let mut t = GrantTables::new();
        let mut w = World::default();
        for d in [A, B, C] {
            t.add_domain(d, config).unwrap();
            for gfn in 0..RAM_GFNS {
                w.ram.insert((d, gfn), host_frame(d, gfn));
            }
        }
        (t, w)
    }

    fn world() -> (GrantTables, World) {
        world_with(GrantConfig::default())
    }

    fn map_op(granter: DomId, gref: GrantRef, gfn: u64, ro: bool) -> GnttabMapGrantRef {
        GnttabMapGrantRef {
            host_addr: gfn << PAGE_SHIFT,
            flags: gntmap::HOST_MAP | if ro { gntmap::READONLY } else { 0 },
            ref_: gref,
            dom: granter,
            ..Default::default()
        }
    }

    fn map_raw(
        t: &mut GrantTables,
        w: &mut World,
        mapper: DomId,
        mut op: GnttabMapGrantRef,
    ) -> Result<GrantHandle, i16> {
        let st = t.map(mapper, &mut op, w);
        assert_eq!(st, op.status);
        if st == gntst::OKAY {
            assert_eq!(op.dev_bus_addr, 0);
            Ok(op.handle)
        } else {
            Err(st)
        }
    }

    fn map(
        t: &mut GrantTables,
        w: &mut World,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        gfn: u64,
        ro: bool,
    ) -> Result<GrantHandle, i16> {
        map_raw(t, w, mapper, map_op(granter, gref, gfn, ro))
    }

    fn unmap(t: &mut GrantTables, w: &mut World, mapper: DomId, h: GrantHandle, gfn: u64) -> i16 {
        let mut op = GnttabUnmapGrantRef {
            host_addr: gfn << PAGE_SHIFT,
            dev_bus_addr: 0,
            handle: h,
            status: 99,
        };
        let st = t.unmap(mapper, &mut op, w);
        assert_eq!(st, op.status);
        st
    }

    fn copy(t: &mut GrantTables, w: &mut World, caller: DomId, mut op: GnttabCopy) -> i16 {
        op.status = 99;
        let st = t.copy(caller, &mut op, w);
        assert_eq!(st, op.status);
        st
    }

    fn copy_op(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> GnttabCopy {
        GnttabCopy {
            source,
            dest,
            len,
            flags,
            status: 0,
        }
    }

    /// Everything that must hold between operations while granters follow the
    /// protocol: the internal invariants, flags mirroring pins, the p2m mirroring the
    /// maptracks, one frame reference per pin.
    fn check(t: &GrantTables, w: &World) {
        t.check_invariants().unwrap();
        for (&(g, r), e) in &w.entries {
            let pin = t.pin(g, r);
            assert_eq!(
                e.flags & gtf::READING != 0,
                pin.is_some(),
                "d{g} ref {r}: flags {:#x}, pin {pin:?}",
                e.flags
            );
            assert_eq!(
                e.flags & gtf::WRITING != 0,
                pin.is_some_and(|p| p.writable > 0),
                "d{g} ref {r}: flags {:#x}, pin {pin:?}",
                e.flags
            );
        }
        let mut mappings = 0;
        let mut want_refs: HashMap<u64, i64> = HashMap::new();
        for d in 0..16 {
            for (_, m) in t.mappings(d) {
                mappings += 1;
                assert_eq!(w.p2m.get(&(d, m.gfn)), Some(&(m.frame, m.readonly)));
            }
            for (_, p) in t.active_pins(d) {
                *want_refs.entry(p.frame).or_default() += 1;
            }
        }
        assert_eq!(mappings, w.p2m.len(), "p2m holds stray grant mappings");
        let held: HashMap<u64, i64> = w
            .refs
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(f, n)| (*f, *n))
            .collect();
        assert_eq!(held, want_refs, "frame references vs pins");
    }

    // ---- map ------------------------------------------------------------------------

    #[test]
    fn writable_map_sets_reading_and_writing_and_maps_the_granted_frame() {
        let (mut t, mut w) = world();
        w.grant(A, 10, B, 5, RW);
        let h = map(&mut t, &mut w, B, A, 10, MAP_GFN, RW).unwrap();
        assert_eq!(h, 0);
        assert_eq!(
            w.flags(A, 10),
            gtf::PERMIT_ACCESS | gtf::READING | gtf::WRITING
        );
        assert_eq!(w.p2m[&(B, MAP_GFN)], (host_frame(A, 5), RW));
        let p = t.pin(A, 10).unwrap();
        assert_eq!((p.mapper, p.gfn, p.readonly, p.writable), (B, 5, 0, 1));
        assert!(t.is_pinned(A, 10));
        assert!(t.is_gfn_pinned(A, 5));
        assert!(!t.is_gfn_pinned(A, 6));
        assert_eq!(
            t.mapping(B, h),
            Some(Mapping {
                granter: A,
                gref: 10,
                gfn: MAP_GFN,
                frame: host_frame(A, 5),
                readonly: false
            })
        );
        check(&t, &w);

        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        assert_eq!(w.flags(A, 10), gtf::PERMIT_ACCESS);
        assert!(!t.is_pinned(A, 10));
        assert!(w.p2m.is_empty());
        assert_eq!(w.refs_held(), 0);
        assert_eq!(t.handles_in_use(B), 0);
        check(&t, &w);
    }

    #[test]
    fn readonly_map_sets_only_reading() {
        let (mut t, mut w) = world();
        w.grant(A, 3, B, 7, RW);
        let h = map(&mut t, &mut w, B, A, 3, MAP_GFN, RO).unwrap();
        assert_eq!(w.flags(A, 3), gtf::PERMIT_ACCESS | gtf::READING);
        assert_eq!(w.p2m[&(B, MAP_GFN)], (host_frame(A, 7), RO));
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        assert_eq!(w.flags(A, 3), gtf::PERMIT_ACCESS);
        check(&t, &w);
    }

    #[test]
    fn readonly_grants_map_readonly_but_not_writable() {
        let (mut t, mut w) = world();
        w.grant(A, 3, B, 7, RO);
        assert_eq!(
            map(&mut t, &mut w, B, A, 3, MAP_GFN, RW),
            Err(gntst::GENERAL_ERROR)
        );
        assert_eq!(w.flags(A, 3), gtf::PERMIT_ACCESS | gtf::READONLY);
        assert_eq!(t.handles_in_use(B), 0);
        check(&t, &w);
        let h = map(&mut t, &mut w, B, A, 3, MAP_GFN, RO).unwrap();
        assert_eq!(
            w.flags(A, 3),
            gtf::PERMIT_ACCESS | gtf::READONLY | gtf::READING
        );
        // Still no writable map while a read-only one exists.
        assert_eq!(
            map(&mut t, &mut w, B, A, 3, MAP_GFN + 1, RW),
            Err(gntst::GENERAL_ERROR)
        );
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        check(&t, &w);
    }

    #[test]
    fn several_maps_of_one_ref_count_pins_and_clear_flags_at_the_right_time() {
        let (mut t, mut w) = world();
        w.grant(A, 8, B, 1, RW);
        let r1 = map(&mut t, &mut w, B, A, 8, MAP_GFN, RO).unwrap();
        let r2 = map(&mut t, &mut w, B, A, 8, MAP_GFN + 1, RO).unwrap();
        let w1 = map(&mut t, &mut w, B, A, 8, MAP_GFN + 2, RW).unwrap();
        let w2 = map(&mut t, &mut w, B, A, 8, MAP_GFN + 3, RW).unwrap();
        assert_eq!((r1, r2, w1, w2), (0, 1, 2, 3));
        let p = t.pin(A, 8).unwrap();
        assert_eq!((p.readonly, p.writable), (2, 2));
        assert_eq!(w.refs[&host_frame(A, 1)], 1, "one reference per pin");
        check(&t, &w);

        let rw = gtf::PERMIT_ACCESS | gtf::READING | gtf::WRITING;
        assert_eq!(unmap(&mut t, &mut w, B, w1, MAP_GFN + 2), gntst::OKAY);
        assert_eq!(w.flags(A, 8), rw);
        assert_eq!(unmap(&mut t, &mut w, B, r1, MAP_GFN), gntst::OKAY);
        assert_eq!(w.flags(A, 8), rw);
        assert_eq!(unmap(&mut t, &mut w, B, w2, MAP_GFN + 3), gntst::OKAY);
        assert_eq!(w.flags(A, 8), gtf::PERMIT_ACCESS | gtf::READING);
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, B, r2, MAP_GFN + 1), gntst::OKAY);
        assert_eq!(w.flags(A, 8), gtf::PERMIT_ACCESS);
        assert_eq!(w.refs_held(), 0);
        check(&t, &w);
    }

    #[test]
    fn map_flag_errors_follow_xen() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let mut op = map_op(A, 1, MAP_GFN, RW);
        for (flags, want) in [
            (0, gntst::BAD_GNTREF),
            (gntmap::READONLY, gntst::BAD_GNTREF),
            (gntmap::DEVICE_MAP, gntst::GENERAL_ERROR),
            (gntmap::HOST_MAP | gntmap::DEVICE_MAP, gntst::GENERAL_ERROR),
            (
                gntmap::HOST_MAP | gntmap::APPLICATION_MAP,
                gntst::GENERAL_ERROR,
            ),
            (
                gntmap::HOST_MAP | gntmap::CONTAINS_PTE,
                gntst::GENERAL_ERROR,
            ),
            (
                gntmap::HOST_MAP | (1 << gntmap::GUEST_AVAIL0),
                gntst::GENERAL_ERROR,
            ),
            (gntmap::HOST_MAP | (1 << 7), gntst::GENERAL_ERROR),
        ] {
            op.flags = flags;
            assert_eq!(
                map_raw(&mut t, &mut w, B, op),
                Err(want),
                "flags {flags:#x}"
            );
            assert_eq!(w.flags(A, 1), gtf::PERMIT_ACCESS, "flags {flags:#x}");
            assert_eq!(w.refs_held(), 0);
            check(&t, &w);
        }
        // The bad-flags check comes before the domain lookup.
        op.dom = NOBODY;
        op.flags = 0;
        assert_eq!(map_raw(&mut t, &mut w, B, op), Err(gntst::BAD_GNTREF));
    }

    #[test]
    fn map_of_unknown_self_or_dying_domain_is_bad_domain() {
        let (mut t, mut w) = world();
        w.grant(C, 1, B, 1, RW);
        assert_eq!(
            map(&mut t, &mut w, B, NOBODY, 1, MAP_GFN, RW),
            Err(gntst::BAD_DOMAIN)
        );
        assert_eq!(
            map(&mut t, &mut w, B, DOMID_SELF, 1, MAP_GFN, RW),
            Err(gntst::BAD_DOMAIN)
        );
        t.domain_dying(C, &mut w).unwrap();
        assert_eq!(
            map(&mut t, &mut w, B, C, 1, MAP_GFN, RW),
            Err(gntst::BAD_DOMAIN)
        );
        // An unregistered or dying mapper is refused without any state change.
        assert_eq!(
            map(&mut t, &mut w, NOBODY, C, 1, MAP_GFN, RW),
            Err(gntst::GENERAL_ERROR)
        );
        assert_eq!(
            map(&mut t, &mut w, C, B, 1, MAP_GFN, RW),
            Err(gntst::GENERAL_ERROR)
        );
        check(&t, &w);
    }

    #[test]
    fn refs_beyond_the_table_are_bad_until_it_grows() {
        let (mut t, mut w) = world();
        w.grant(A, 511, B, 1, RW);
        w.grant(A, 512, B, 2, RW);
        let h = map(&mut t, &mut w, B, A, 511, MAP_GFN, RW).unwrap();
        assert_eq!(
            map(&mut t, &mut w, B, A, 512, MAP_GFN + 1, RW),
            Err(gntst::BAD_GNTREF)
        );
        assert_eq!(
            map(&mut t, &mut w, B, A, u32::MAX, MAP_GFN + 1, RW),
            Err(gntst::BAD_GNTREF)
        );
        let mut st = GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames: 2,
            ..Default::default()
        };
        assert_eq!(t.setup_table(A, &mut st), gntst::OKAY);
        let h2 = map(&mut t, &mut w, B, A, 512, MAP_GFN + 1, RW).unwrap();
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        assert_eq!(unmap(&mut t, &mut w, B, h2, MAP_GFN + 1), gntst::OKAY);
        check(&t, &w);
    }

    #[test]
    fn entries_not_granting_the_mapper_are_refused() {
        let (mut t, mut w) = world();
        let cases: [(u16, DomId); 6] = [
            (gtf::INVALID, B),
            (gtf::ACCEPT_TRANSFER, B),
            (gtf::TRANSITIVE, B),
            (gtf::PERMIT_ACCESS | gtf::SUB_PAGE, B),
            (gtf::PERMIT_ACCESS, C),
            (gtf::PERMIT_ACCESS, DOMID_SELF),
        ];
        for (flags, domid) in cases {
            w.entries.insert(
                (A, 4),
                GrantEntryV1 {
                    flags,
                    domid,
                    frame: 3,
                },
            );
            for ro in [RO, RW] {
                assert_eq!(
                    map(&mut t, &mut w, B, A, 4, MAP_GFN, ro),
                    Err(gntst::GENERAL_ERROR),
                    "flags {flags:#x} domid {domid}"
                );
                assert_eq!(w.flags(A, 4), flags, "entry untouched");
            }
        }
        assert_eq!(w.refs_held(), 0);
        assert_eq!(t.handles_in_use(B), 0);
        check(&t, &w);
    }

    #[test]
    fn cache_attribute_bits_are_refused_for_hvm_mappers_and_undone() {
        let (mut t, mut w) = world();
        for bit in [gtf::PWT, gtf::PCD, gtf::PAT] {
            w.grant(A, 2, B, 2, RW);
            w.edit(A, 2, |e| e.flags |= bit);
            assert_eq!(
                map(&mut t, &mut w, B, A, 2, MAP_GFN, RW),
                Err(gntst::GENERAL_ERROR)
            );
            assert_eq!(w.flags(A, 2), gtf::PERMIT_ACCESS | bit);
            assert!(!t.is_pinned(A, 2));
            assert_eq!(w.refs_held(), 0);
            check(&t, &w);
        }
    }

    #[test]
    fn frames_that_are_not_ram_or_not_ready_fail_and_leave_no_trace() {
        let (mut t, mut w) = world();
        w.grant(A, 2, B, 1000, RW);
        assert_eq!(
            map(&mut t, &mut w, B, A, 2, MAP_GFN, RW),
            Err(gntst::BAD_PAGE)
        );
        assert_eq!(w.flags(A, 2), gtf::PERMIT_ACCESS);
        w.grant(A, 3, B, 4, RO);
        w.eagain.insert((A, 4));
        assert_eq!(
            map(&mut t, &mut w, B, A, 3, MAP_GFN, RO),
            Err(gntst::EAGAIN)
        );
        assert_eq!(w.flags(A, 3), gtf::PERMIT_ACCESS | gtf::READONLY);
        assert_eq!(t.handles_in_use(B), 0);
        check(&t, &w);
    }

    #[test]
    fn an_ept_refusal_undoes_the_pin() {
        let (mut t, mut w) = world();
        w.grant(A, 2, B, 1, RW);
        // Mapping over the mapper's own RAM is refused by this world's EPT.
        assert_eq!(
            map(&mut t, &mut w, B, A, 2, 5, RW),
            Err(gntst::GENERAL_ERROR)
        );
        assert_eq!(w.flags(A, 2), gtf::PERMIT_ACCESS);
        assert_eq!(w.refs_held(), 0);
        // A second map at an address already used: the first mapping stays intact.
        let h = map(&mut t, &mut w, B, A, 2, MAP_GFN, RO).unwrap();
        assert_eq!(
            map(&mut t, &mut w, B, A, 2, MAP_GFN, RW),
            Err(gntst::GENERAL_ERROR)
        );
        assert_eq!(w.flags(A, 2), gtf::PERMIT_ACCESS | gtf::READING);
        let p = t.pin(A, 2).unwrap();
        assert_eq!((p.readonly, p.writable), (1, 0));
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        check(&t, &w);
    }

    #[test]
    fn a_pinned_entry_cannot_be_taken_over_by_another_domain() {
        let (mut t, mut w) = world();
        w.grant(A, 6, B, 6, RW);
        let h = map(&mut t, &mut w, B, A, 6, MAP_GFN, RW).unwrap();
        // The granter re-grants the entry to C while B has it mapped.
        w.edit(A, 6, |e| e.domid = C);
        assert_eq!(
            map(&mut t, &mut w, C, A, 6, MAP_GFN, RW),
            Err(gntst::GENERAL_ERROR)
        );
        // And B, no longer named by the entry, cannot add mappings either.
        assert_eq!(
            map(&mut t, &mut w, B, A, 6, MAP_GFN + 1, RO),
            Err(gntst::GENERAL_ERROR)
        );
        assert_eq!(t.pin(A, 6).unwrap().mapper, B);
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        // Once free, C may map it.
        let hc = map(&mut t, &mut w, C, A, 6, MAP_GFN, RW).unwrap();
        assert_eq!(t.pin(A, 6).unwrap().mapper, C);
        assert_eq!(unmap(&mut t, &mut w, C, hc, MAP_GFN), gntst::OKAY);
        check(&t, &w);
    }

    #[test]
    fn pin_counts_stop_at_the_limit_per_kind() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let mut handles = Vec::new();
        for i in 0..u64::from(PIN_LIMIT) {
            handles.push(map(&mut t, &mut w, B, A, 1, MAP_GFN + i, RO).unwrap());
        }
        let next = MAP_GFN + u64::from(PIN_LIMIT);
        assert_eq!(
            map(&mut t, &mut w, B, A, 1, next, RO),
            Err(gntst::GENERAL_ERROR)
        );
        // The writable count is separate.
        let hw = map(&mut t, &mut w, B, A, 1, next, RW).unwrap();
        assert_eq!(t.pin(A, 1).unwrap().readonly, PIN_LIMIT);
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, B, hw, next), gntst::OKAY);
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN + i as u64), gntst::OKAY);
        }
        assert_eq!(w.flags(A, 1), gtf::PERMIT_ACCESS);
        check(&t, &w);
    }

    #[test]
    fn the_maptrack_limit_gives_no_space_and_handles_are_reused_oldest_first() {
        let (mut t, mut w) = world_with(GrantConfig {
            max_maptrack: 3,
            ..GrantConfig::default()
        });
        w.grant(A, 1, B, 1, RW);
        let hs: Vec<_> = (0..3)
            .map(|i| map(&mut t, &mut w, B, A, 1, MAP_GFN + i, RO).unwrap())
            .collect();
        assert_eq!(hs, [0, 1, 2]);
        assert_eq!(
            map(&mut t, &mut w, B, A, 1, MAP_GFN + 3, RO),
            Err(gntst::NO_SPACE)
        );
        // No space is found before the reference is checked, as in Xen.
        assert_eq!(
            map(&mut t, &mut w, B, A, 100_000, MAP_GFN + 3, RO),
            Err(gntst::NO_SPACE)
        );
        // Still a bad domain first.
        assert_eq!(
            map(&mut t, &mut w, B, NOBODY, 1, MAP_GFN + 3, RO),
            Err(gntst::BAD_DOMAIN)
        );
        assert_eq!(unmap(&mut t, &mut w, B, 1, MAP_GFN + 1), gntst::OKAY);
        assert_eq!(unmap(&mut t, &mut w, B, 0, MAP_GFN), gntst::OKAY);
        assert_eq!(map(&mut t, &mut w, B, A, 1, MAP_GFN + 5, RO), Ok(1));
        assert_eq!(map(&mut t, &mut w, B, A, 1, MAP_GFN + 6, RO), Ok(0));
        assert_eq!(t.handles_in_use(B), 3);
        check(&t, &w);

        let (mut t, mut w) = world_with(GrantConfig {
            max_maptrack: 0,
            ..GrantConfig::default()
        });
        w.grant(A, 1, B, 1, RW);
        assert_eq!(
            map(&mut t, &mut w, B, A, 1, MAP_GFN, RO),
            Err(gntst::NO_SPACE)
        );
    }

    #[test]
    fn revoking_while_mapped_keeps_the_mapping_and_refuses_new_uses() {
        let (mut t, mut w) = world();
        w.grant(A, 9, B, 9, RW);
        let h = map(&mut t, &mut w, B, A, 9, MAP_GFN, RW).unwrap();
        // The granter revokes atomically, keeping the bits the hypervisor owns.
        w.edit(A, 9, |e| e.flags &= !gtf::PERMIT_ACCESS);
        assert_eq!(w.flags(A, 9), gtf::READING | gtf::WRITING, "still in use");
        assert_eq!(w.p2m[&(B, MAP_GFN)], (host_frame(A, 9), RW));
        for ro in [RO, RW] {
            assert_eq!(
                map(&mut t, &mut w, B, A, 9, MAP_GFN + 1, ro),
                Err(gntst::GENERAL_ERROR)
            );
        }
        let op = copy_op(
            GnttabCopyPtr::with_gref(9, A, 0),
            GnttabCopyPtr::with_gmfn(1, 0),
            8,
            gntcopy::SOURCE_GREF,
        );
        assert_eq!(copy(&mut t, &mut w, B, op), gntst::GENERAL_ERROR);
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        assert_eq!(w.flags(A, 9), 0, "free for the granter to reuse");
        check(&t, &w);
    }

    #[test]
    fn the_frame_pinned_at_first_map_is_what_later_maps_get() {
        let (mut t, mut w) = world();
        w.grant(A, 4, B, 20, RW);
        let h1 = map(&mut t, &mut w, B, A, 4, MAP_GFN, RO).unwrap();
        // The granter points the entry elsewhere while it is mapped.
        w.edit(A, 4, |e| e.frame = 21);
        let h2 = map(&mut t, &mut w, B, A, 4, MAP_GFN + 1, RW).unwrap();
        assert_eq!(w.p2m[&(B, MAP_GFN + 1)], (host_frame(A, 20), RW));
        assert!(t.is_gfn_pinned(A, 20));
        assert!(!t.is_gfn_pinned(A, 21));
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, B, h1, MAP_GFN), gntst::OKAY);
        assert_eq!(unmap(&mut t, &mut w, B, h2, MAP_GFN + 1), gntst::OKAY);
        // Unpinned, the next map reads the entry again.
        let h3 = map(&mut t, &mut w, B, A, 4, MAP_GFN, RW).unwrap();
        assert_eq!(w.p2m[&(B, MAP_GFN)], (host_frame(A, 21), RW));
        assert_eq!(unmap(&mut t, &mut w, B, h3, MAP_GFN), gntst::OKAY);
        check(&t, &w);
    }

    #[test]
    fn a_domain_may_map_its_own_grant() {
        let (mut t, mut w) = world();
        w.grant(A, 5, A, 5, RW);
        let h = map(&mut t, &mut w, A, A, 5, MAP_GFN, RW).unwrap();
        check(&t, &w);
        assert_eq!(unmap(&mut t, &mut w, A, h, MAP_GFN), gntst::OKAY);
        check(&t, &w);
    }

    // ---- unmap ----------------------------------------------------------------------

    #[test]
    fn handle_misuse_is_refused() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let h = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        let h2 = map(&mut t, &mut w, B, A, 1, MAP_GFN + 1, RW).unwrap();
        // Never issued.
        assert_eq!(unmap(&mut t, &mut w, B, 7, MAP_GFN), gntst::BAD_HANDLE);
        assert_eq!(
            unmap(&mut t, &mut w, B, u32::MAX, MAP_GFN),
            gntst::BAD_HANDLE
        );
        // Another domain's handle means nothing in C's maptrack.
        assert_eq!(unmap(&mut t, &mut w, C, h, MAP_GFN), gntst::BAD_HANDLE);
        assert_eq!(unmap(&mut t, &mut w, NOBODY, h, MAP_GFN), gntst::BAD_HANDLE);
        // Wrong address: refused, mapping kept.
        assert_eq!(
            unmap(&mut t, &mut w, B, h, MAP_GFN + 1),
            gntst::GENERAL_ERROR
        );
        assert_eq!(unmap(&mut t, &mut w, B, h, 0), gntst::GENERAL_ERROR);
        assert!(t.mapping(B, h).is_some());
        check(&t, &w);
        // The page offset of host_addr does not matter.
        let mut op = GnttabUnmapGrantRef {
            host_addr: (MAP_GFN << PAGE_SHIFT) + 0x123,
            handle: h,
            ..Default::default()
        };
        assert_eq!(t.unmap(B, &mut op, &mut w), gntst::OKAY);
        // Twice.
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::BAD_HANDLE);
        assert_eq!(unmap(&mut t, &mut w, B, h2, MAP_GFN + 1), gntst::OKAY);
        assert_eq!(unmap(&mut t, &mut w, B, h2, MAP_GFN + 1), gntst::BAD_HANDLE);
        check(&t, &w);
    }

    #[test]
    fn an_ept_refusing_the_unmap_keeps_the_mapping() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let h = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        w.refuse_unmap = true;
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::GENERAL_ERROR);
        assert!(t.is_pinned(A, 1));
        check(&t, &w);
        w.refuse_unmap = false;
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        check(&t, &w);
    }

    // ---- hostile granters -------------------------------------------------------------

    #[test]
    fn an_entry_changing_faster_than_the_retries_is_unstable() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        // An unused flag bit toggles before every exchange: the entry stays valid but
        // never holds still.
        w.before_cmpxchg = Some(Box::new(|e| e.flags ^= 1 << 15));
        assert_eq!(
            map(&mut t, &mut w, B, A, 1, MAP_GFN, RW),
            Err(gntst::GENERAL_ERROR)
        );
        assert_eq!(w.cmpxchgs, CMPXCHG_ATTEMPTS);
        assert_eq!(w.flags(A, 1) & (gtf::READING | gtf::WRITING), 0);
        assert!(!t.is_pinned(A, 1));
        assert_eq!(t.handles_in_use(B), 0);
        assert_eq!(w.refs_held(), 0);
    }

    #[test]
    fn an_entry_that_settles_within_the_retries_is_mapped() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let mut left = CMPXCHG_ATTEMPTS - 1;
        w.before_cmpxchg = Some(Box::new(move |e| {
            if left > 0 {
                left -= 1;
                e.flags ^= 1 << 15;
            }
        }));
        let h = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        assert_eq!(w.cmpxchgs, CMPXCHG_ATTEMPTS);
        assert_eq!(
            w.flags(A, 1) & (gtf::READING | gtf::WRITING),
            gtf::READING | gtf::WRITING
        );
        w.before_cmpxchg = None;
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
    }

    #[test]
    fn changes_between_the_read_and_the_exchange_are_checked_again() {
        type Change = fn(&mut GrantEntryV1);
        let changes: [(Change, bool); 4] = [
            (|e| e.flags &= !gtf::PERMIT_ACCESS, RO),
            (|e| e.domid = C, RO),
            (|e| e.flags |= gtf::SUB_PAGE, RO),
            (|e| e.flags |= gtf::READONLY, RW),
        ];
        for (change, ro) in changes {
            let (mut t, mut w) = world();
            w.grant(A, 1, B, 1, RW);
            let mut once = Some(change);
            w.after_read = Some(Box::new(move |e| {
                if let Some(f) = once.take() {
                    f(e)
                }
            }));
            assert_eq!(
                map(&mut t, &mut w, B, A, 1, MAP_GFN, ro),
                Err(gntst::GENERAL_ERROR)
            );
            assert_eq!(w.cmpxchgs, 1, "the failed exchange's value is rechecked");
            assert_eq!(w.flags(A, 1) & (gtf::READING | gtf::WRITING), 0);
            assert!(!t.is_pinned(A, 1));
            assert_eq!(w.refs_held(), 0);
        }
    }

    #[test]
    fn a_frame_changed_before_the_flags_are_set_is_read_after_them() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let mut once = true;
        w.after_read = Some(Box::new(move |e| {
            if once {
                once = false;
                e.frame = 2;
            }
        }));
        let h = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        assert_eq!(w.p2m[&(B, MAP_GFN)], (host_frame(A, 2), RW));
        // Later changes to the frame do not move the mapping.
        w.edit(A, 1, |e| e.frame = 3);
        assert_eq!(t.pin(A, 1).unwrap().gfn, 2);
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        assert_eq!(w.refs_held(), 0);
    }

    #[test]
    fn a_granter_clearing_our_flags_gets_them_set_again_on_the_next_map() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let h1 = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        w.edit(A, 1, |e| e.flags &= !(gtf::READING | gtf::WRITING));
        let h2 = map(&mut t, &mut w, B, A, 1, MAP_GFN + 1, RO).unwrap();
        assert_eq!(w.flags(A, 1), gtf::PERMIT_ACCESS | gtf::READING);
        assert_eq!(unmap(&mut t, &mut w, B, h1, MAP_GFN), gntst::OKAY);
        assert_eq!(unmap(&mut t, &mut w, B, h2, MAP_GFN + 1), gntst::OKAY);
        assert_eq!(w.flags(A, 1), gtf::PERMIT_ACCESS);
        check(&t, &w);
    }

    // ---- copy -----------------------------------------------------------------------

    #[test]
    fn copy_from_a_grant_to_own_memory() {
        let (mut t, mut w) = world();
        w.grant(A, 2, B, 7, RO);
        w.page(host_frame(A, 7))[100..104].copy_from_slice(b"abcd");
        let op = copy_op(
            GnttabCopyPtr::with_gref(2, A, 100),
            GnttabCopyPtr::with_gmfn(3, 4000),
            4,
            gntcopy::SOURCE_GREF,
        );
        assert_eq!(copy(&mut t, &mut w, B, op), gntst::OKAY);
        assert_eq!(&w.page(host_frame(B, 3))[4000..4004], b"abcd");
        assert_eq!(w.flags(A, 2), gtf::PERMIT_ACCESS | gtf::READONLY);
        assert!(!t.is_pinned(A, 2));
        assert_eq!(w.refs_held(), 0);
        check(&t, &w);
    }

    #[test]
    fn copy_from_own_memory_into_a_grant_and_between_grants() {
        let (mut t, mut w) = world();
        w.grant(A, 2, B, 7, RW);
        w.grant(C, 5, B, 9, RO);
        w.page(host_frame(B, 1))[0..3].copy_from_slice(b"xyz");
        let op = copy_op(
            GnttabCopyPtr::with_gmfn(1, 0),
            GnttabCopyPtr::with_gref(2, A, 10),
            3,
            gntcopy::DEST_GREF,
        );
        assert_eq!(copy(&mut t, &mut w, B, op), gntst::OKAY);
        assert_eq!(&w.page(host_frame(A, 7))[10..13], b"xyz");

        w.page(host_frame(C, 9))[4095] = 0x5a;
        let op = copy_op(
            GnttabCopyPtr::with_gref(5, C, 4095),
            GnttabCopyPtr::with_gref(2, A, 0),
            1,
            gntcopy::SOURCE_GREF | gntcopy::DEST_GREF,
        );
        assert_eq!(copy(&mut t, &mut w, B, op), gntst::OKAY);
        assert_eq!(w.page(host_frame(A, 7))[0], 0x5a);
        // Within one granted page, overlapping ranges are fine too.
        let op = copy_op(
            GnttabCopyPtr::with_gref(2, A, 10),
            GnttabCopyPtr::with_gref(2, A, 11),
            3,
            gntcopy::SOURCE_GREF | gntcopy::DEST_GREF,
        );
        assert_eq!(copy(&mut t, &mut w, B, op), gntst::OKAY);
        assert_eq!(&w.page(host_frame(A, 7))[10..14], b"xxyz");
        assert_eq!(w.flags(A, 2), gtf::PERMIT_ACCESS);
        assert_eq!(w.refs_held(), 0);
        check(&t, &w);
    }

    #[test]
    fn a_zero_length_copy_succeeds_without_checks() {
        let (mut t, mut w) = world();
        let op = copy_op(
            GnttabCopyPtr::with_gref(999_999, NOBODY, 60_000),
            GnttabCopyPtr::with_gmfn(1 << 40, 60_000),
            0,
            gntcopy::SOURCE_GREF,
        );
        assert_eq!(copy(&mut t, &mut w, B, op), gntst::OKAY);
    }

    #[test]
    fn copy_errors_follow_xen() {
        let (mut t, mut w) = world();
        w.grant(A, 2, B, 7, RO);
        w.grant(A, 3, B, 1000, RW);
        w.grant(A, 4, C, 8, RW);
        let g = |r, d, o| GnttabCopyPtr::with_gref(r, d, o);
        let f = |n, o| GnttabCopyPtr::with_gmfn(n, o);
        let s = gntcopy::SOURCE_GREF;
        let d = gntcopy::DEST_GREF;
        let cases = [
            // A frame side must be the caller's own, named DOMID_SELF.
            (
                copy_op(g(2, A, 0), g(2, B, 0), 8, s),
                gntst::PERMISSION_DENIED,
            ),
            (copy_op(f(1, 0), g(2, A, 0), 8, s), gntst::PERMISSION_DENIED),
            (
                copy_op(
                    GnttabCopyPtr {
                        u: 1,
                        domid: B,
                        offset: 0,
                    },
                    f(2, 0),
                    8,
                    0,
                ),
                gntst::PERMISSION_DENIED,
            ),
            // Domains are looked up source first.
            (copy_op(g(2, NOBODY, 0), f(1, 0), 8, s), gntst::BAD_DOMAIN),
            (
                copy_op(g(2, NOBODY, 0), g(1, B, 0), 8, s),
                gntst::BAD_DOMAIN,
            ),
            (copy_op(f(1, 0), g(2, NOBODY, 0), 8, d), gntst::BAD_DOMAIN),
            // Then the source is acquired read-only, the destination writable.
            (copy_op(g(600, A, 0), f(1, 0), 8, s), gntst::BAD_GNTREF),
            (copy_op(g(4, A, 0), f(1, 0), 8, s), gntst::GENERAL_ERROR),
            (copy_op(g(3, A, 0), f(1, 0), 8, s), gntst::BAD_PAGE),
            (copy_op(f(1000, 0), g(600, A, 0), 8, d), gntst::BAD_PAGE),
            (copy_op(f(1, 0), g(2, A, 0), 8, d), gntst::GENERAL_ERROR),
            (copy_op(f(1, 0), g(600, A, 0), 8, d), gntst::BAD_GNTREF),
            (copy_op(g(2, A, 0), f(1000, 0), 8, s), gntst::BAD_PAGE),
            // Then the ranges.
            (copy_op(g(2, A, 4090), f(1, 0), 8, s), gntst::BAD_COPY_ARG),
            (copy_op(g(2, A, 0), f(1, 4089), 8, s), gntst::BAD_COPY_ARG),
            (copy_op(f(1, 0), f(2, 0), 4097, 0), gntst::BAD_COPY_ARG),
            (copy_op(g(2, A, 0), f(1, 0), 4096, s), gntst::OKAY),
        ];
        for (i, (op, want)) in cases.into_iter().enumerate() {
            assert_eq!(copy(&mut t, &mut w, B, op), want, "case {i}");
            assert_eq!(w.refs_held(), 0, "case {i}");
            assert_eq!(w.flags(A, 2), gtf::PERMIT_ACCESS | gtf::READONLY);
            assert_eq!(w.flags(A, 3), gtf::PERMIT_ACCESS);
            check(&t, &w);
        }
        w.eagain.insert((B, 5));
        assert_eq!(
            copy(&mut t, &mut w, B, copy_op(g(2, A, 0), f(5, 0), 8, s)),
            gntst::EAGAIN
        );
        // The caller's own grant, through DOMID_SELF.
        w.grant(B, 1, B, 6, RO);
        assert_eq!(
            copy(
                &mut t,
                &mut w,
                B,
                copy_op(g(1, DOMID_SELF, 0), f(2, 0), 8, s)
            ),
            gntst::OKAY
        );
        // A sub-page v1 entry is copyable though not mappable.
        w.edit(A, 2, |e| e.flags |= gtf::SUB_PAGE);
        assert_eq!(
            copy(&mut t, &mut w, B, copy_op(g(2, A, 0), f(1, 0), 8, s)),
            gntst::OKAY
        );
        // A dying domain cannot be copied from.
        t.domain_dying(A, &mut w).unwrap();
        assert_eq!(
            copy(&mut t, &mut w, B, copy_op(g(2, A, 0), f(1, 0), 8, s)),
            gntst::BAD_DOMAIN
        );
        check(&t, &w);
    }

    #[test]
    fn copy_through_a_mapped_grant_uses_the_pin_and_leaves_it_as_it_was() {
        let (mut t, mut w) = world();
        w.grant(A, 2, B, 7, RO);
        let h = map(&mut t, &mut w, B, A, 2, MAP_GFN, RO).unwrap();
        w.edit(A, 2, |e| e.frame = 8);
        w.page(host_frame(A, 7))[0] = 1;
        w.page(host_frame(A, 8))[0] = 2;
        let op = copy_op(
            GnttabCopyPtr::with_gref(2, A, 0),
            GnttabCopyPtr::with_gmfn(3, 0),
            1,
            gntcopy::SOURCE_GREF,
        );
        assert_eq!(copy(&mut t, &mut w, B, op), gntst::OKAY);
        assert_eq!(w.page(host_frame(B, 3))[0], 1, "the pinned frame");
        let p = t.pin(A, 2).unwrap();
        assert_eq!((p.readonly, p.writable), (1, 0));
        assert_eq!(
            w.flags(A, 2),
            gtf::PERMIT_ACCESS | gtf::READONLY | gtf::READING
        );
        check(&t, &w);
        // Another domain cannot copy through B's pin.
        w.edit(A, 2, |e| e.domid = C);
        assert_eq!(copy(&mut t, &mut w, C, op), gntst::GENERAL_ERROR);
        w.edit(A, 2, |e| e.domid = B);
        assert_eq!(unmap(&mut t, &mut w, B, h, MAP_GFN), gntst::OKAY);
        check(&t, &w);
    }

    // ---- table size and version ---------------------------------------------------------

    #[test]
    fn setup_table_and_query_size() {
        let (mut t, _) = world();
        let mut q = GnttabQuerySize {
            dom: DOMID_SELF,
            ..Default::default()
        };
        assert_eq!(t.query_size(A, &mut q), gntst::OKAY);
        assert_eq!((q.nr_frames, q.max_nr_frames), (1, DEFAULT_MAX_FRAMES));

        let mut s = GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames: 4,
            ..Default::default()
        };
        assert_eq!(t.setup_table(A, &mut s), gntst::OKAY);
        assert_eq!(t.nr_frames(A), Some(4));
        s.nr_frames = 2;
        assert_eq!(t.setup_table(A, &mut s), gntst::OKAY);
        assert_eq!(t.nr_frames(A), Some(4), "never shrinks");
        s.nr_frames = 0;
        assert_eq!(t.setup_table(A, &mut s), gntst::OKAY);
        s.nr_frames = DEFAULT_MAX_FRAMES + 1;
        assert_eq!(t.setup_table(A, &mut s), gntst::GENERAL_ERROR);
        assert_eq!(s.status, gntst::GENERAL_ERROR);
        s.nr_frames = DEFAULT_MAX_FRAMES;
        assert_eq!(t.setup_table(A, &mut s), gntst::OKAY);
        assert_eq!(t.nr_frames(A), Some(DEFAULT_MAX_FRAMES));

        // Own id works like DOMID_SELF; another domain needs privilege.
        s.dom = B;
        s.nr_frames = 2;
        assert_eq!(t.setup_table(B, &mut s), gntst::OKAY);
        assert_eq!(t.setup_table(A, &mut s), gntst::PERMISSION_DENIED);
        q.dom = B;
        assert_eq!(t.query_size(A, &mut q), gntst::PERMISSION_DENIED);
        s.dom = NOBODY;
        assert_eq!(t.setup_table(A, &mut s), gntst::BAD_DOMAIN);
        q.dom = NOBODY;
        assert_eq!(t.query_size(A, &mut q), gntst::BAD_DOMAIN);

        t.add_domain(
            0,
            GrantConfig {
                privileged: true,
                ..GrantConfig::default()
            },
        )
        .unwrap();
        s.dom = C;
        s.nr_frames = 3;
        assert_eq!(t.setup_table(0, &mut s), gntst::OKAY);
        q.dom = C;
        assert_eq!(t.query_size(0, &mut q), gntst::OKAY);
        assert_eq!(q.nr_frames, 3);
        assert_eq!(t.max_frames(C), Some(DEFAULT_MAX_FRAMES));
    }

    #[test]
    fn physmap_grows_the_table_up_to_its_limit() {
        let (mut t, _) = world();
        assert_eq!(t.physmap_frame(A, 0), Ok(0));
        assert_eq!(t.nr_frames(A), Some(1));
        assert_eq!(t.physmap_frame(A, 3), Ok(3));
        assert_eq!(t.nr_frames(A), Some(4));
        assert_eq!(t.physmap_frame(A, 1), Ok(1));
        assert_eq!(t.nr_frames(A), Some(4));
        assert_eq!(t.physmap_frame(A, DEFAULT_MAX_FRAMES - 1), Ok(31));
        assert_eq!(t.physmap_frame(A, DEFAULT_MAX_FRAMES), Err(-errno::EINVAL));
        assert_eq!(
            t.physmap_frame(A, PHYSMAP_STATUS_FRAME),
            Err(-errno::EINVAL)
        );
        assert_eq!(t.physmap_frame(NOBODY, 0), Err(-errno::ESRCH));
    }

    #[test]
    fn only_version_1_exists() {
        let (mut t, _) = world();
        for (asked, ret) in [
            (1, 0),
            (2, -errno::ENOSYS),
            (0, -errno::EINVAL),
            (3, -errno::EINVAL),
            (u32::MAX, -errno::EINVAL),
        ] {
            let mut op = GnttabSetVersion { version: asked };
            assert_eq!(t.set_version(A, &mut op), ret, "version {asked}");
            assert_eq!(op.version, 1);
        }
        let mut g = GnttabGetVersion {
            dom: DOMID_SELF,
            ..Default::default()
        };
        assert_eq!(t.get_version(A, &mut g), 0);
        assert_eq!(g.version, 1);
        g.dom = B;
        g.version = 0;
        assert_eq!(t.get_version(A, &mut g), -errno::EPERM);
        assert_eq!(g.version, 0);
        g.dom = NOBODY;
        assert_eq!(t.get_version(A, &mut g), -errno::ESRCH);
        g.dom = A;
        assert_eq!(t.get_version(A, &mut g), 0);
    }

    // ---- domains --------------------------------------------------------------------

    #[test]
    fn add_domain_checks_its_arguments() {
        let mut t = GrantTables::new();
        let c = GrantConfig::default();
        assert_eq!(t.add_domain(DOMID_SELF, c), Err(GrantError::BadDomid));
        assert_eq!(t.add_domain(0x7fff, c), Err(GrantError::BadDomid));
        let bad = GrantConfig { max_frames: 0, ..c };
        assert_eq!(t.add_domain(1, bad), Err(GrantError::BadConfig));
        let bad = GrantConfig {
            max_frames: MAX_FRAMES_LIMIT + 1,
            ..c
        };
        assert_eq!(t.add_domain(1, bad), Err(GrantError::BadConfig));
        assert_eq!(t.add_domain(1, c), Ok(()));
        assert_eq!(t.add_domain(1, c), Err(GrantError::Exists));
        assert_eq!(t.remove_domain(2), Err(GrantError::NoSuchDomain));
        assert_eq!(t.remove_domain(1), Ok(()));
        assert_eq!(t.nr_frames(1), None);
    }

    #[test]
    fn a_dying_mapper_releases_its_mappings() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        w.grant(C, 2, B, 2, RO);
        w.grant(B, 3, B, 3, RW);
        let h0 = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        let h1 = map(&mut t, &mut w, B, A, 1, MAP_GFN + 1, RO).unwrap();
        let h2 = map(&mut t, &mut w, B, C, 2, MAP_GFN + 2, RO).unwrap();
        let h3 = map(&mut t, &mut w, B, B, 3, MAP_GFN + 3, RW).unwrap();
        let released = t.domain_dying(B, &mut w).unwrap();
        let summary: Vec<_> = released
            .iter()
            .map(|r| (r.handle, r.mapping.granter, r.mapping.gref, r.last))
            .collect();
        assert_eq!(
            summary,
            [
                (h0, A, 1, false),
                (h1, A, 1, true),
                (h2, C, 2, true),
                (h3, B, 3, true)
            ]
        );
        assert_eq!(w.flags(A, 1), gtf::PERMIT_ACCESS);
        assert_eq!(w.flags(C, 2), gtf::PERMIT_ACCESS | gtf::READONLY);
        assert_eq!(w.flags(B, 3), gtf::PERMIT_ACCESS);
        assert_eq!(w.refs_held(), 0);
        assert_eq!(t.handles_in_use(B), 0);
        t.check_invariants().unwrap();
        assert_eq!(t.remove_domain(B), Ok(()));
        assert_eq!(t.domain_dying(B, &mut w), Err(GrantError::NoSuchDomain));
    }

    #[test]
    fn a_dying_granter_stays_until_its_pages_are_unmapped() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        w.grant(A, 2, C, 2, RO);
        let hb = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        let hc = map(&mut t, &mut w, C, A, 2, MAP_GFN, RO).unwrap();
        assert_eq!(t.domain_dying(A, &mut w), Ok(Vec::new()));
        let pins = t.active_pins(A);
        assert_eq!(pins.len(), 2);
        assert_eq!((pins[0].0, pins[0].1.mapper), (1, B));
        assert_eq!((pins[1].0, pins[1].1.mapper), (2, C));
        assert_eq!(t.remove_domain(A), Err(GrantError::Busy));
        // No new uses, but unmaps work.
        w.grant(A, 3, B, 3, RW);
        assert_eq!(
            map(&mut t, &mut w, B, A, 3, MAP_GFN + 1, RW),
            Err(gntst::BAD_DOMAIN)
        );
        assert_eq!(unmap(&mut t, &mut w, B, hb, MAP_GFN), gntst::OKAY);
        assert_eq!(t.remove_domain(A), Err(GrantError::Busy));
        assert_eq!(unmap(&mut t, &mut w, C, hc, MAP_GFN), gntst::OKAY);
        assert!(t.active_pins(A).is_empty());
        assert_eq!(w.refs_held(), 0);
        assert_eq!(t.remove_domain(A), Ok(()));
        check(&t, &w);
    }

    #[test]
    fn a_domain_holding_mappings_cannot_be_removed() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let _ = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        assert_eq!(t.remove_domain(B), Err(GrantError::Busy));
    }

    #[test]
    fn invariant_violations_are_reported() {
        let (mut t, mut w) = world();
        w.grant(A, 1, B, 1, RW);
        let _ = map(&mut t, &mut w, B, A, 1, MAP_GFN, RW).unwrap();
        t.doms
            .get_mut(&A)
            .unwrap()
            .active
            .get_mut(&1)
            .unwrap()
            .readonly += 1;
        assert!(t.check_invariants().is_err());
    }

    // ---- randomized sequences ------------------------------------------------------------

    /// xorshift64: small, deterministic, no dependencies.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }
    }

    const RDOMS: [DomId; 4] = [1, 2, 3, 4];
    const R_RAM: u64 = 12;
    const R_REFS: u64 = 12;
    const R_MAPTRACK: u32 = 5;
    const R_MAX_FRAMES: u32 = 2;

    /// What a map should answer, worked out from the state before it.
    fn expect_map(t: &GrantTables, w: &World, mapper: DomId, op: &GnttabMapGrantRef) -> i16 {
        let f = op.flags;
        let ro = f & gntmap::READONLY != 0;
        if f & (gntmap::HOST_MAP | gntmap::DEVICE_MAP) == 0 {
            return gntst::BAD_GNTREF;
        }
        if f & (gntmap::DEVICE_MAP | gntmap::APPLICATION_MAP | gntmap::CONTAINS_PTE) != 0 {
            return gntst::GENERAL_ERROR;
        }
        let Some(frames) = t.nr_frames(op.dom) else {
            return gntst::BAD_DOMAIN;
        };
        if t.handles_in_use(mapper) >= R_MAPTRACK {
            return gntst::NO_SPACE;
        }
        if op.ref_ >= frames * ENTRIES_PER_FRAME {
            return gntst::BAD_GNTREF;
        }
        let pin = t.pin(op.dom, op.ref_);
        if let Some(p) = pin
            && (p.mapper != mapper || (if ro { p.readonly } else { p.writable }) >= PIN_LIMIT)
        {
            return gntst::GENERAL_ERROR;
        }
        let e = w.entry(op.dom, op.ref_);
        let kind = e.flags & (gtf::TYPE_MASK | gtf::SUB_PAGE);
        if kind != gtf::PERMIT_ACCESS || e.domid != mapper || (!ro && e.flags & gtf::READONLY != 0)
        {
            return gntst::GENERAL_ERROR;
        }
        if pin.is_none() && !w.ram.contains_key(&(op.dom, u64::from(e.frame))) {
            return gntst::BAD_PAGE;
        }
        let gfn = op.host_addr >> PAGE_SHIFT;
        if e.flags & (gtf::PWT | gtf::PCD | gtf::PAT) != 0
            || f & !gntmap::READONLY != gntmap::HOST_MAP
            || w.p2m.contains_key(&(mapper, gfn))
            || w.ram.contains_key(&(mapper, gfn))
        {
            return gntst::GENERAL_ERROR;
        }
        gntst::OKAY
    }

    /// The frame claiming one copy side should reach, or the status it should fail
    /// with, from the state before the copy. (When both sides are the same entry the
    /// destination sees the source's fresh pin, which has the frame worked out here.)
    fn expect_side(
        t: &GrantTables,
        w: &World,
        caller: DomId,
        dom: DomId,
        side: &GnttabCopyPtr,
        is_gref: bool,
        ro: bool,
    ) -> Result<u64, i16> {
        if !is_gref {
            return w
                .ram
                .get(&(dom, side.gmfn()))
                .copied()
                .ok_or(gntst::BAD_PAGE);
        }
        let gref = side.gref();
        if gref >= t.nr_frames(dom).unwrap() * ENTRIES_PER_FRAME {
            return Err(gntst::BAD_GNTREF);
        }
        let pin = t.pin(dom, gref);
        if pin.is_some_and(|p| p.mapper != caller) {
            return Err(gntst::GENERAL_ERROR);
        }
        let e = w.entry(dom, gref);
        if e.flags & gtf::TYPE_MASK != gtf::PERMIT_ACCESS
            || e.domid != caller
            || (!ro && e.flags & gtf::READONLY != 0)
        {
            return Err(gntst::GENERAL_ERROR);
        }
        match pin {
            Some(p) => Ok(p.frame),
            None => w
                .ram
                .get(&(dom, u64::from(e.frame)))
                .copied()
                .ok_or(gntst::BAD_PAGE),
        }
    }

    fn random_side(rng: &mut Rng, caller: DomId) -> (GnttabCopyPtr, bool) {
        let offset = if rng.chance(70) {
            rng.below(64) as u16
        } else {
            rng.below(4096) as u16
        };
        if rng.chance(60) {
            let gref = if rng.chance(3) {
                600
            } else {
                rng.below(R_REFS) as u32
            };
            let dom = match rng.below(20) {
                0 | 1 => DOMID_SELF,
                2 => NOBODY,
                _ => rng.pick(&RDOMS),
            };
            (GnttabCopyPtr::with_gref(gref, dom, offset), true)
        } else {
            let mut p = GnttabCopyPtr::with_gmfn(rng.below(R_RAM + 2), offset);
            if rng.chance(5) {
                p.domid = caller;
            }
            (p, false)
        }
    }

    fn run_random(seed: u64, steps: usize) {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut t = GrantTables::new();
        let mut w = World::default();
        for d in RDOMS {
            let config = GrantConfig {
                max_frames: R_MAX_FRAMES,
                max_maptrack: R_MAPTRACK,
                privileged: false,
            };
            t.add_domain(d, config).unwrap();
            for gfn in 0..R_RAM {
                w.ram.insert((d, gfn), host_frame(d, gfn));
                let fill = (u64::from(d) * 31 + gfn) as u8;
                w.page(host_frame(d, gfn)).fill(fill);
            }
        }
        let mut stats = [0usize; 6];
        let mut map_statuses = HashSet::new();
        let mut copy_statuses = HashSet::new();
        for step in 0..steps {
            let ctx = format!("seed {seed} step {step}");
            match rng.below(100) {
                0..20 => {
                    // A granter rewrites an entry, leaving the status bits alone.
                    let g = rng.pick(&RDOMS);
                    let r = rng.below(R_REFS) as u32;
                    let mut flags = match rng.below(10) {
                        0 => gtf::INVALID,
                        1 => gtf::ACCEPT_TRANSFER,
                        2 => gtf::PERMIT_ACCESS | gtf::SUB_PAGE,
                        _ => gtf::PERMIT_ACCESS,
                    };
                    if rng.chance(30) {
                        flags |= gtf::READONLY;
                    }
                    if rng.chance(3) {
                        flags |= gtf::PCD;
                    }
                    let domid = if rng.chance(5) {
                        NOBODY
                    } else {
                        rng.pick(&RDOMS)
                    };
                    let frame = rng.below(R_RAM + 2) as u32;
                    w.edit(g, r, |e| {
                        e.flags = flags | (e.flags & (gtf::READING | gtf::WRITING));
                        e.domid = domid;
                        e.frame = frame;
                    });
                }
                20..60 => {
                    let granter = if rng.chance(5) {
                        NOBODY
                    } else {
                        rng.pick(&RDOMS)
                    };
                    let gref = if rng.chance(3) {
                        600
                    } else {
                        rng.below(R_REFS) as u32
                    };
                    // Mostly the domain the entry names, so that maps often succeed.
                    let named = w.entry(granter, gref).domid;
                    let mapper = if RDOMS.contains(&named) && rng.chance(70) {
                        named
                    } else {
                        rng.pick(&RDOMS)
                    };
                    let ro = rng.chance(50);
                    let mut op = map_op(granter, gref, 0x100 + rng.below(12), ro);
                    if rng.chance(3) {
                        op.flags = rng.pick(&[0, gntmap::READONLY, gntmap::DEVICE_MAP, 1 << 20])
                            | (op.flags & gntmap::READONLY);
                    }
                    if rng.chance(2) {
                        op.host_addr = rng.below(R_RAM) << PAGE_SHIFT;
                    }
                    let want = expect_map(&t, &w, mapper, &op);
                    let before = t.pin(granter, gref);
                    let got = t.map(mapper, &mut op, &mut w);
                    assert_eq!(got, want, "{ctx}: map {op:?} by d{mapper}");
                    map_statuses.insert(got);
                    if got == gntst::OKAY {
                        stats[0] += 1;
                        let m = t.mapping(mapper, op.handle).unwrap();
                        if let Some(p) = before {
                            assert_eq!(m.frame, p.frame, "{ctx}: the pinned frame");
                        }
                    } else {
                        stats[1] += 1;
                    }
                }
                60..80 => {
                    let mapper = rng.pick(&RDOMS);
                    let handle = rng.below(u64::from(R_MAPTRACK) + 2) as u32;
                    let existing = t.mapping(mapper, handle);
                    let gfn = match existing {
                        Some(m) if rng.chance(85) => m.gfn,
                        _ => 0x100 + rng.below(12),
                    };
                    let want = match existing {
                        None => gntst::BAD_HANDLE,
                        Some(m) if m.gfn != gfn => gntst::GENERAL_ERROR,
                        Some(_) => gntst::OKAY,
                    };
                    assert_eq!(
                        unmap(&mut t, &mut w, mapper, handle, gfn),
                        want,
                        "{ctx}: unmap d{mapper} handle {handle}"
                    );
                    stats[2] += usize::from(want == gntst::OKAY);
                }
                80..97 => {
                    let caller = rng.pick(&RDOMS);
                    let (source, sg) = random_side(&mut rng, caller);
                    let (dest, dg) = random_side(&mut rng, caller);
                    let len = if rng.chance(5) {
                        0
                    } else if rng.chance(80) {
                        1 + rng.below(64) as u16
                    } else {
                        rng.below(4200) as u16
                    };
                    let flags = if sg { gntcopy::SOURCE_GREF } else { 0 }
                        | if dg { gntcopy::DEST_GREF } else { 0 };
                    let op = copy_op(source, dest, len, flags);
                    let resolve = |p: &GnttabCopyPtr| {
                        if p.domid == DOMID_SELF {
                            caller
                        } else {
                            p.domid
                        }
                    };
                    // Each side's domain: a frame must be DOMID_SELF's, the domain must
                    // exist; the source is looked at first.
                    let side_dom = |p: &GnttabCopyPtr, is_gref: bool| {
                        if p.domid != DOMID_SELF && !is_gref {
                            Err(gntst::PERMISSION_DENIED)
                        } else if t.nr_frames(resolve(p)).is_none() {
                            Err(gntst::BAD_DOMAIN)
                        } else {
                            Ok(resolve(p))
                        }
                    };
                    let want = if len == 0 {
                        Ok(None)
                    } else {
                        side_dom(&source, sg)
                            .and_then(|sd| Ok((sd, side_dom(&dest, dg)?)))
                            .and_then(|(sd, dd)| {
                                let sf = expect_side(&t, &w, caller, sd, &source, sg, RO)?;
                                let df = expect_side(&t, &w, caller, dd, &dest, dg, RW)?;
                                if u32::from(source.offset) + u32::from(len) > PAGE_SIZE
                                    || u32::from(dest.offset) + u32::from(len) > PAGE_SIZE
                                {
                                    Err(gntst::BAD_COPY_ARG)
                                } else {
                                    Ok(Some((sf, df)))
                                }
                            })
                    };
                    let expected_bytes = match want {
                        Ok(Some((sf, _))) => {
                            let s = usize::from(source.offset);
                            Some(w.page(sf)[s..s + usize::from(len)].to_vec())
                        }
                        _ => None,
                    };
                    let got = copy(&mut t, &mut w, caller, op);
                    let want_status = want.map_or_else(|e| e, |_| gntst::OKAY);
                    assert_eq!(got, want_status, "{ctx}: copy {op:?} by d{caller}");
                    if let (Ok(Some((_, df))), Some(bytes)) = (want, expected_bytes) {
                        let d = usize::from(dest.offset);
                        assert_eq!(&w.page(df)[d..d + bytes.len()], &bytes[..], "{ctx}");
                        stats[3] += 1;
                    } else {
                        stats[4] += 1;
                    }
                    copy_statuses.insert(got);
                }
                _ => {
                    let d = rng.pick(&RDOMS);
                    let mut s = GnttabSetupTable {
                        dom: DOMID_SELF,
                        nr_frames: rng.below(u64::from(R_MAX_FRAMES) + 2) as u32,
                        ..Default::default()
                    };
                    let want = if s.nr_frames > R_MAX_FRAMES {
                        gntst::GENERAL_ERROR
                    } else {
                        gntst::OKAY
                    };
                    assert_eq!(t.setup_table(d, &mut s), want, "{ctx}");
                    stats[5] += 1;
                }
            }
            check(&t, &w);
        }
        // Every kind of step happened, successes included, and most outcomes were seen.
        assert!(stats.iter().all(|&n| n > 0), "seed {seed}: {stats:?}");
        assert!(
            map_statuses.len() >= 6,
            "seed {seed}: maps {map_statuses:?}"
        );
        assert!(
            copy_statuses.len() >= 6,
            "seed {seed}: copies {copy_statuses:?}"
        );
        if std::env::var_os("GRANT_STATS").is_some() {
            std::println!("seed {seed}: {stats:?} maps {map_statuses:?} copies {copy_statuses:?}");
        }

        // Kill everyone: every mapping is released, every flag and reference dropped.
        for d in RDOMS {
            t.domain_dying(d, &mut w).unwrap();
            t.check_invariants().unwrap();
        }
        for d in RDOMS {
            assert!(t.active_pins(d).is_empty());
            assert_eq!(t.remove_domain(d), Ok(()));
        }
        assert_eq!(w.refs_held(), 0);
        assert!(w.refs.values().all(|&n| n == 0));
        for e in w.entries.values() {
            assert_eq!(e.flags & (gtf::READING | gtf::WRITING), 0);
        }
    }

    #[test]
    fn randomized_sequences_keep_the_invariants() {
        for seed in 1..=12 {
            run_random(seed, 2500);
        }
    }
}
