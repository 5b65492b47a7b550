//! `hvm_op` (`hvm/hvm_op.h`) and the HVM parameters (`hvm/params.h`).

/// `HVMOP_set_param` / `HVMOP_get_param`.
pub const HVMOP_SET_PARAM: u32 = 0;
pub const HVMOP_GET_PARAM: u32 = 1;

le_struct! {
    /// `struct xen_hvm_param`: parameter `index` of domain `domid`.
    pub struct HvmParam {
        pub domid: u16,
        pub index: u32,
        pub value: u64,
    }
}

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
