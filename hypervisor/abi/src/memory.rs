//! `memory_op` (`memory.h`): what oxen implements of it.

/// `XENMEM_add_to_physmap`.
pub const ADD_TO_PHYSMAP: u32 = 7;

/// `XENMAPSPACE_*`.
pub const MAPSPACE_SHARED_INFO: u32 = 0;
pub const MAPSPACE_GRANT_TABLE: u32 = 1;

/// `struct xen_add_to_physmap`: domid (u16) @0, size (u16) @2, space (u32) @4,
/// idx (u64) @8, gpfn (u64) @16.
pub const ADD_TO_PHYSMAP_SIZE: usize = 24;

/// `struct xen_add_to_physmap`, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddToPhysmap {
    pub domid: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

impl AddToPhysmap {
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b = b.get(..ADD_TO_PHYSMAP_SIZE)?;
        Some(AddToPhysmap {
            domid: u16::from_le_bytes([b[0], b[1]]),
            space: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            idx: u64::from_le_bytes(b[8..16].try_into().ok()?),
            gpfn: u64::from_le_bytes(b[16..24].try_into().ok()?),
        })
    }
}

/// `struct vcpu_register_vcpu_info` (`vcpu.h`): mfn (u64) @0, offset (u32) @8.
pub fn register_vcpu_info_from_bytes(b: &[u8]) -> Option<(u64, u32)> {
    let b = b.get(..16)?;
    Some((
        u64::from_le_bytes(b[..8].try_into().ok()?),
        u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
    ))
}

/// `struct sched_poll` (`sched.h`): ports (handle, u64) @0, nr_ports (u32) @8,
/// timeout (u64) @16.
pub fn sched_poll_from_bytes(b: &[u8]) -> Option<(u64, u32, u64)> {
    let b = b.get(..24)?;
    Some((
        u64::from_le_bytes(b[..8].try_into().ok()?),
        u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        u64::from_le_bytes(b[16..24].try_into().ok()?),
    ))
}
