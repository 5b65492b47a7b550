//! `hvm_op` (`hvm/hvm_op.h`) and the HVM parameters (`hvm/params.h`).

/// `HVMOP_set_param` / `HVMOP_get_param`.
pub const HVMOP_SET_PARAM: u32 = 0;
pub const HVMOP_GET_PARAM: u32 = 1;

/// `struct xen_hvm_param`: domid (u16) @0, index (u32) @4, value (u64) @8.
pub const PARAM_SIZE: usize = 16;

/// Parameter indices.
pub mod param {
    pub const CALLBACK_IRQ: u32 = 0;
    pub const STORE_PFN: u32 = 1;
    pub const STORE_EVTCHN: u32 = 2;
    pub const CONSOLE_PFN: u32 = 17;
    pub const CONSOLE_EVTCHN: u32 = 18;
    /// `HVM_NR_PARAMS`.
    pub const NR: u32 = 39;
}

/// `HVM_PARAM_CALLBACK_IRQ` value: the type in bits 63:56.
pub const CALLBACK_TYPE_SHIFT: u32 = 56;
/// Type 2: deliver the upcall as this vector (bits 7:0).
pub const CALLBACK_TYPE_VECTOR: u64 = 2;

/// Decodes a `struct xen_hvm_param`: (domid, index, value).
pub fn param_from_bytes(b: &[u8]) -> Option<(u16, u32, u64)> {
    let b = b.get(..PARAM_SIZE)?;
    Some((
        u16::from_le_bytes([b[0], b[1]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        u64::from_le_bytes(b[8..16].try_into().ok()?),
    ))
}
