//! `memory_op` (`memory.h`): what oxen implements of it.

/// `XENMEM_add_to_physmap`.
pub const ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_current_reservation`, `XENMEM_maximum_reservation`, `XENMEM_maximum_gpfn`:
/// the argument is a `domid_t *`, the answer the hypercall's result.
pub const CURRENT_RESERVATION: u32 = 3;
pub const MAXIMUM_RESERVATION: u32 = 4;
pub const MAXIMUM_GPFN: u32 = 14;

/// `XENMAPSPACE_*`.
pub const MAPSPACE_SHARED_INFO: u32 = 0;
pub const MAPSPACE_GRANT_TABLE: u32 = 1;

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
