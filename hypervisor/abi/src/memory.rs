//! `memory_op` (`memory.h`): what oxen implements of it.

/// `XENMEM_populate_physmap`: give a domain memory at the guest frames listed.
pub const POPULATE_PHYSMAP: u32 = 6;
/// `XENMEM_add_to_physmap`.
pub const ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_remove_from_physmap`.
pub const REMOVE_FROM_PHYSMAP: u32 = 15;
/// `XENMEM_add_to_physmap_batch`.
pub const ADD_TO_PHYSMAP_BATCH: u32 = 23;
/// The sub-op is the low bits of `memory_op`'s command; the rest is where a continued
/// call starts (`MEMOP_EXTENT_SHIFT`).
pub const MEMOP_CMD_MASK: u64 = (1 << 6) - 1;
pub const MEMOP_EXTENT_SHIFT: u32 = 6;
/// `XENMEM_current_reservation`, `XENMEM_maximum_reservation`, `XENMEM_maximum_gpfn`:
/// the argument is a `domid_t *`, the answer the hypercall's result.
pub const CURRENT_RESERVATION: u32 = 3;
pub const MAXIMUM_RESERVATION: u32 = 4;
pub const MAXIMUM_GPFN: u32 = 14;

/// `XENMAPSPACE_*`.
pub const MAPSPACE_SHARED_INFO: u32 = 0;
pub const MAPSPACE_GRANT_TABLE: u32 = 1;
/// A frame of another domain (`foreign_domid`), for a privileged caller.
pub const MAPSPACE_GMFN_FOREIGN: u32 = 4;

le_struct! {
    /// `struct xen_memory_reservation`: `nr_extents` extents of `2^extent_order`
    /// frames; for `populate_physmap`, `extent_start` lists the first guest frame of
    /// each (`xen_pfn_t`, 8 bytes).
    pub struct MemoryReservation {
        pub extent_start: u64,
        pub nr_extents: u64,
        pub extent_order: u32,
        pub mem_flags: u32,
        pub domid: u16,
        pub pad1: u16,
        pub pad2: u32,
    }
}

le_struct! {
    /// `struct xen_add_to_physmap_batch`: `size` frames `idxs[i]` of `space` (of
    /// `foreign_domid` for `XENMAPSPACE_gmfn_foreign`) at `gpfns[i]` of `domid`; each
    /// element's error goes to `errs[i]` (4 bytes).
    pub struct AddToPhysmapBatch {
        pub domid: u16,
        pub space: u16,
        pub size: u16,
        pub foreign_domid: u16,
        /// `xen_ulong_t` array (8 bytes each).
        pub idxs: u64,
        /// `xen_pfn_t` array.
        pub gpfns: u64,
        /// `int` array.
        pub errs: u64,
    }
}

le_struct! {
    /// `struct xen_remove_from_physmap`: take away what is at `gpfn` of `domid`.
    pub struct RemoveFromPhysmap {
        pub domid: u16,
        pub pad1: u16,
        pub pad2: u32,
        pub gpfn: u64,
    }
}

le_struct! {
    /// `struct xen_add_to_physmap`: make page `idx` of `space` appear at guest frame
    /// `gpfn` of `domid`.
    pub struct AddToPhysmap {
        pub domid: u16,
        /// Pages for `XENMAPSPACE_gmfn_range` (unused by the spaces oxen offers).
        pub size: u16,
        /// One of the `MAPSPACE_*` values.
        pub space: u32,
        pub idx: u64,
        pub gpfn: u64,
    }
}
