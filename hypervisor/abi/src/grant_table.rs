//! Grant tables (`grant_table.h`), version 1: sub-op numbers, entry flags and layouts.
//!
//! A domain grants another access to one of its pages by filling an entry of its grant
//! table, an array of [`GrantEntryV1`] in frames the hypervisor owns and the guest maps
//! ([`ENTRIES_PER_FRAME`] entries per 4 KiB frame). The grantee then names the page by
//! (granting domain, grant reference) in `GNTTABOP_map_grant_ref` or `GNTTABOP_copy`.
//!
//! The argument structures are `#[repr(C)]` with the header's field order, so their
//! layout is the C layout of an x86_64 guest (checked against `/usr/include/xen` by
//! `tests/layout.rs`); `to_bytes`/`from_bytes` convert them to and from the guest's
//! little-endian bytes, padding written as zero and ignored on reading. Only what
//! version 1 needs is described: the version 2 entry and status layouts, `transfer`,
//! `unmap_and_replace`, `swap_grant_ref` and `cache_flush` structures are left out.

/// A grant reference: an index into the granting domain's table (`grant_ref_t`).
pub type GrantRef = u32;

/// A mapping handle, returned by a map and named by its unmap (`grant_handle_t`).
pub type GrantHandle = u32;

/// `dom`/`domid` arguments may name the calling domain with this value (`xen.h`).
pub use crate::evtchn::{DOMID_FIRST_RESERVED, DOMID_SELF, DomId};

/// Version 1 entries in one 4 KiB grant-table frame (4096 / 8).
pub const ENTRIES_PER_FRAME: u32 = 512;

/// Entries at the start of the table the toolstack may use (`GNTTAB_NR_RESERVED_ENTRIES`).
pub const NR_RESERVED_ENTRIES: u32 = 8;
/// Reserved entry granting the console ring to the console backend.
pub const RESERVED_CONSOLE: GrantRef = 0;
/// Reserved entry granting the XenStore ring to xenstored.
pub const RESERVED_XENSTORE: GrantRef = 1;

/// `GNTTABOP_*` sub-operation numbers (the first argument of `grant_table_op`).
pub mod op {
    pub const MAP_GRANT_REF: u32 = 0;
    pub const UNMAP_GRANT_REF: u32 = 1;
    pub const SETUP_TABLE: u32 = 2;
    pub const DUMP_TABLE: u32 = 3;
    pub const TRANSFER: u32 = 4;
    pub const COPY: u32 = 5;
    pub const QUERY_SIZE: u32 = 6;
    pub const UNMAP_AND_REPLACE: u32 = 7;
    pub const SET_VERSION: u32 = 8;
    pub const GET_STATUS_FRAMES: u32 = 9;
    pub const GET_VERSION: u32 = 10;
    pub const SWAP_GRANT_REF: u32 = 11;
    pub const CACHE_FLUSH: u32 = 12;
}

/// `GTF_*`: the `flags` of a [`GrantEntryV1`]. The granting guest writes the type and
/// the permission bits; the hypervisor sets and clears `READING`/`WRITING` (atomically,
/// together with the `domid` half-word) while the page is in use.
pub mod gtf {
    /// Entry unused (type 0).
    pub const INVALID: u16 = 0;
    /// Type 1: `domid` may map or copy the frame `frame`.
    pub const PERMIT_ACCESS: u16 = 1;
    /// Type 2: `domid` may transfer a page into this entry.
    pub const ACCEPT_TRANSFER: u16 = 2;
    /// Type 3: version 2 only, a grant of another domain's grant.
    pub const TRANSITIVE: u16 = 3;
    /// The two type bits.
    pub const TYPE_MASK: u16 = 3;

    /// `PERMIT_ACCESS` subflag: read-only access only.
    pub const READONLY: u16 = 1 << 2;
    /// Set by the hypervisor while the frame is mapped or copied from (any access).
    pub const READING: u16 = 1 << 3;
    /// Set by the hypervisor while the frame is mapped or copied to writably.
    pub const WRITING: u16 = 1 << 4;
    /// Cache attribute hints for PV mappings (write-through, cache-disable, PAT).
    pub const PWT: u16 = 1 << 5;
    pub const PCD: u16 = 1 << 6;
    pub const PAT: u16 = 1 << 7;
    /// Version 2 sub-page grant; a version 1 entry with it set cannot be mapped.
    pub const SUB_PAGE: u16 = 1 << 8;

    /// `ACCEPT_TRANSFER` subflag: the transfer has started (same bit as `READONLY`).
    pub const TRANSFER_COMMITTED: u16 = 1 << 2;
    /// `ACCEPT_TRANSFER` subflag: the transfer is done (same bit as `READING`).
    pub const TRANSFER_COMPLETED: u16 = 1 << 3;
}

/// `GNTMAP_*`: the `flags` of [`GnttabMapGrantRef`].
pub mod gntmap {
    /// Map for device (I/O MMU) access.
    pub const DEVICE_MAP: u32 = 1 << 0;
    /// Map for CPU access at `host_addr` (a guest-physical address for an HVM/PVH guest).
    pub const HOST_MAP: u32 = 1 << 1;
    /// Read-only mapping.
    pub const READONLY: u32 = 1 << 2;
    /// PV only: the mapping is usable by user space too.
    pub const APPLICATION_MAP: u32 = 1 << 3;
    /// PV only: `host_addr` is the machine address of the PTE to write.
    pub const CONTAINS_PTE: u32 = 1 << 4;
    /// First of the bits a PV guest may ask to have copied into the PTE.
    pub const GUEST_AVAIL0: u32 = 16;
    /// Those bits (`GNTMAP_guest_avail_mask`).
    pub const GUEST_AVAIL_MASK: u32 = u32::MAX << GUEST_AVAIL0;
}

/// `GNTCOPY_*`: the `flags` of [`GnttabCopy`].
pub mod gntcopy {
    /// `source.u` is a grant reference of `source.domid` (else a GFN of the caller).
    pub const SOURCE_GREF: u16 = 1 << 0;
    /// `dest.u` is a grant reference of `dest.domid` (else a GFN of the caller).
    pub const DEST_GREF: u16 = 1 << 1;
}

/// `GNTST_*`: per-operation status codes written into the `status` fields.
pub mod gntst {
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const BAD_DEV_ADDR: i16 = -6;
    pub const NO_DEVICE_SPACE: i16 = -7;
    pub const PERMISSION_DENIED: i16 = -8;
    pub const BAD_PAGE: i16 = -9;
    pub const BAD_COPY_ARG: i16 = -10;
    pub const ADDRESS_TOO_BIG: i16 = -11;
    pub const EAGAIN: i16 = -12;
    pub const NO_SPACE: i16 = -13;

    /// A short description of a status code, for logs.
    pub fn describe(status: i16) -> &'static str {
        match status {
            OKAY => "okay",
            GENERAL_ERROR => "general error",
            BAD_DOMAIN => "no such domain",
            BAD_GNTREF => "bad grant reference",
            BAD_HANDLE => "bad mapping handle",
            BAD_VIRT_ADDR => "bad virtual address",
            BAD_DEV_ADDR => "bad device address",
            NO_DEVICE_SPACE => "no I/O MMU space",
            PERMISSION_DENIED => "permission denied",
            BAD_PAGE => "bad page",
            BAD_COPY_ARG => "copy crosses a page boundary",
            ADDRESS_TOO_BIG => "page address too large",
            EAGAIN => "try again",
            NO_SPACE => "out of handles",
            _ => "unknown status",
        }
    }
}

le_struct! {
    /// `struct grant_entry_v1`: one entry of a version 1 grant table (8 bytes).
    pub struct GrantEntryV1 {
        /// [`gtf`] type and flags.
        pub flags: u16,
        /// The domain granted access.
        pub domid: u16,
        /// For `PERMIT_ACCESS`: the granted GFN of the granting domain.
        pub frame: u32,
    }
}

le_struct! {
    /// `struct gnttab_map_grant_ref`, the argument of `GNTTABOP_map_grant_ref` (batched).
    pub struct GnttabMapGrantRef {
        /// IN: where to map (a guest-physical address for an HVM/PVH mapper).
        pub host_addr: u64,
        /// IN: [`gntmap`] flags.
        pub flags: u32,
        /// IN: the grant reference, in `dom`'s table (C name `ref`).
        pub ref_: u32,
        /// IN: the granting domain.
        pub dom: u16,
        /// OUT: a [`gntst`] code.
        pub status: i16,
        /// OUT: the handle to unmap with.
        pub handle: u32,
        /// OUT: the bus address of the frame, for device mappings.
        pub dev_bus_addr: u64,
    }
}

le_struct! {
    /// `struct gnttab_unmap_grant_ref`, the argument of `GNTTABOP_unmap_grant_ref`
    /// (batched).
    pub struct GnttabUnmapGrantRef {
        /// IN: the address the mapping was made at (0: leave the host mapping alone).
        pub host_addr: u64,
        /// IN: the device address, for device mappings.
        pub dev_bus_addr: u64,
        /// IN: the handle the map returned.
        pub handle: u32,
        /// OUT: a [`gntst`] code.
        pub status: i16,
    }
}

le_struct! {
    /// `struct gnttab_setup_table`, the argument of `GNTTABOP_setup_table` (count 1).
    pub struct GnttabSetupTable {
        /// IN: the domain whose table to size ([`DOMID_SELF`] or, if privileged, another).
        pub dom: u16,
        /// IN: how many frames the table should have at least.
        pub nr_frames: u32,
        /// OUT: a [`gntst`] code.
        pub status: i16,
        /// IN: guest pointer to `nr_frames` 64-bit slots receiving the frames' numbers.
        pub frame_list: u64,
    }
}

le_struct! {
    /// `struct gnttab_query_size`, the argument of `GNTTABOP_query_size` (count 1).
    pub struct GnttabQuerySize {
        /// IN: the domain ([`DOMID_SELF`] or, if privileged, another).
        pub dom: u16,
        /// OUT: frames the table has now.
        pub nr_frames: u32,
        /// OUT: frames it may grow to.
        pub max_nr_frames: u32,
        /// OUT: a [`gntst`] code.
        pub status: i16,
    }
}

le_struct! {
    /// `struct gnttab_copy_ptr`: one side of a [`GnttabCopy`]. The C `u` is a union of
    /// `grant_ref_t ref` (its low 4 bytes) and `xen_pfn_t gmfn` (all 8); read it with
    /// [`GnttabCopyPtr::gref`] or [`GnttabCopyPtr::gmfn`] as `GnttabCopy::flags` says.
    pub struct GnttabCopyPtr {
        /// The union's 8 bytes (C name `u`, members `ref` and `gmfn`).
        pub u: u64,
        /// The domain: the granting domain for a grant reference, else [`DOMID_SELF`].
        pub domid: u16,
        /// Byte offset in the page.
        pub offset: u16,
    }
}

impl GnttabCopyPtr {
    /// A side naming grant reference `gref` of `domid`.
    pub fn with_gref(gref: GrantRef, domid: u16, offset: u16) -> Self {
        Self {
            u: u64::from(gref),
            domid,
            offset,
        }
    }

    /// A side naming GFN `gmfn` of the caller.
    pub fn with_gmfn(gmfn: u64, offset: u16) -> Self {
        Self {
            u: gmfn,
            domid: DOMID_SELF,
            offset,
        }
    }

    /// The union read as `ref` (its low 32 bits; the upper half is not part of it).
    pub fn gref(&self) -> GrantRef {
        self.u as u32
    }

    /// The union read as `gmfn`.
    pub fn gmfn(&self) -> u64 {
        self.u
    }
}

le_struct! {
    /// `struct gnttab_copy`, the argument of `GNTTABOP_copy` (batched).
    pub struct GnttabCopy {
        /// IN: where to copy from.
        pub source: GnttabCopyPtr,
        /// IN: where to copy to.
        pub dest: GnttabCopyPtr,
        /// IN: bytes to copy; neither side may cross its page.
        pub len: u16,
        /// IN: [`gntcopy`] flags.
        pub flags: u16,
        /// OUT: a [`gntst`] code.
        pub status: i16,
    }
}

le_struct! {
    /// `struct gnttab_set_version`, the argument of `GNTTABOP_set_version` (count 1).
    pub struct GnttabSetVersion {
        /// IN: the version wanted; OUT: the version in force.
        pub version: u32,
    }
}

le_struct! {
    /// `struct gnttab_get_version`, the argument of `GNTTABOP_get_version` (count 1).
    pub struct GnttabGetVersion {
        /// IN: the domain ([`DOMID_SELF`] or, if privileged, another).
        pub dom: u16,
        pub pad: u16,
        /// OUT: its grant table version.
        pub version: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_the_x86_64_c_sizes() {
        assert_eq!(GrantEntryV1::SIZE, 8);
        assert_eq!(GnttabMapGrantRef::SIZE, 32);
        assert_eq!(GnttabUnmapGrantRef::SIZE, 24);
        assert_eq!(GnttabSetupTable::SIZE, 24);
        assert_eq!(GnttabQuerySize::SIZE, 16);
        assert_eq!(GnttabCopyPtr::SIZE, 16);
        assert_eq!(GnttabCopy::SIZE, 40);
        assert_eq!(GnttabSetVersion::SIZE, 4);
        assert_eq!(GnttabGetVersion::SIZE, 8);
        assert_eq!(ENTRIES_PER_FRAME as usize * GrantEntryV1::SIZE, 4096);
    }

    #[test]
    fn entry_round_trip() {
        let e = GrantEntryV1 {
            flags: gtf::PERMIT_ACCESS | gtf::READONLY,
            domid: 0x1234,
            frame: 0xdead_beef,
        };
        let b = e.to_bytes();
        assert_eq!(b, [5, 0, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(GrantEntryV1::from_bytes(&b), Some(e));
        assert_eq!(GrantEntryV1::from_bytes(&b[..7]), None);
    }

    #[test]
    fn map_op_fields_land_at_the_c_offsets() {
        let m = GnttabMapGrantRef {
            host_addr: 0x1_2345_6000,
            flags: gntmap::HOST_MAP | gntmap::READONLY,
            ref_: 9,
            dom: 3,
            status: gntst::BAD_GNTREF,
            handle: 0x0102_0304,
            dev_bus_addr: 0xaabb_ccdd_0000,
        };
        let b = m.to_bytes();
        assert_eq!(&b[0..8], &0x1_2345_6000u64.to_le_bytes());
        assert_eq!(b[8], 6);
        assert_eq!(b[12], 9);
        assert_eq!(b[16], 3);
        assert_eq!(&b[18..20], &(-3i16).to_le_bytes());
        assert_eq!(&b[20..24], &[4, 3, 2, 1]);
        assert_eq!(&b[24..32], &0xaabb_ccdd_0000u64.to_le_bytes());
        assert_eq!(GnttabMapGrantRef::from_bytes(&b), Some(m));
    }

    #[test]
    fn unmap_setup_query_round_trip() {
        let u = GnttabUnmapGrantRef {
            host_addr: 0x5000,
            dev_bus_addr: 0,
            handle: 7,
            status: gntst::BAD_HANDLE,
        };
        let b = u.to_bytes();
        assert_eq!(b[16], 7);
        assert_eq!(&b[20..22], &(-4i16).to_le_bytes());
        assert_eq!(&b[22..24], &[0, 0], "padding is zero");
        assert_eq!(GnttabUnmapGrantRef::from_bytes(&b), Some(u));

        let s = GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames: 4,
            status: gntst::OKAY,
            frame_list: 0x8000,
        };
        let b = s.to_bytes();
        assert_eq!(&b[0..2], &[0xf0, 0x7f]);
        assert_eq!(b[4], 4);
        assert_eq!(b[16], 0x00);
        assert_eq!(b[17], 0x80);
        assert_eq!(GnttabSetupTable::from_bytes(&b), Some(s));

        let q = GnttabQuerySize {
            dom: 1,
            nr_frames: 2,
            max_nr_frames: 32,
            status: gntst::OKAY,
        };
        let b = q.to_bytes();
        assert_eq!((b[4], b[8]), (2, 32));
        assert_eq!(GnttabQuerySize::from_bytes(&b), Some(q));
    }

    #[test]
    fn copy_union_reads_as_ref_or_gmfn() {
        let c = GnttabCopy {
            source: GnttabCopyPtr::with_gref(0x11, 2, 100),
            dest: GnttabCopyPtr::with_gmfn(0x1_0000_0042, 8),
            len: 64,
            flags: gntcopy::SOURCE_GREF,
            status: gntst::BAD_COPY_ARG,
        };
        let b = c.to_bytes();
        assert_eq!(b[0], 0x11);
        assert_eq!(b[8], 2);
        assert_eq!(b[10], 100);
        assert_eq!(&b[16..24], &0x1_0000_0042u64.to_le_bytes());
        assert_eq!(&b[24..26], &[0xf0, 0x7f]);
        assert_eq!(b[32], 64);
        assert_eq!(b[34], 1);
        assert_eq!(&b[36..38], &(-10i16).to_le_bytes());
        let back = GnttabCopy::from_bytes(&b).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.source.gref(), 0x11);
        assert_eq!(back.dest.gmfn(), 0x1_0000_0042);
        // A guest writing only `u.ref` may leave junk in the union's upper half.
        let junk = GnttabCopyPtr {
            u: 0xffff_ffff_0000_0005,
            domid: 1,
            offset: 0,
        };
        assert_eq!(junk.gref(), 5);
    }

    #[test]
    fn version_ops_round_trip() {
        let s = GnttabSetVersion { version: 1 };
        assert_eq!(s.to_bytes(), [1, 0, 0, 0]);
        assert_eq!(GnttabSetVersion::from_bytes(&s.to_bytes()), Some(s));
        let g = GnttabGetVersion {
            dom: DOMID_SELF,
            pad: 0,
            version: 1,
        };
        let b = g.to_bytes();
        assert_eq!(b[4], 1);
        assert_eq!(GnttabGetVersion::from_bytes(&b), Some(g));
    }

    #[test]
    fn status_codes_are_described() {
        for s in gntst::NO_SPACE..=gntst::OKAY {
            assert_ne!(gntst::describe(s), "unknown status");
        }
        assert_eq!(gntst::describe(-14), "unknown status");
    }
}
