//! The `domctl` hypercall (`domctl.h`): the control domain's operations on domains.
//! oxen implements `XEN_DOMCTL_scheduler_op` for the credit scheduler so far.

/// `XEN_DOMCTL_INTERFACE_VERSION` of the headers oxen follows (Xen 4.17).
pub const INTERFACE_VERSION: u32 = 0x15;

/// `sizeof(struct xen_domctl)`: header (16 bytes) and a 128-byte union.
pub const SIZE: usize = 144;

/// Byte offsets in `struct xen_domctl`.
pub mod offset {
    pub const CMD: usize = 0;
    pub const INTERFACE_VERSION: usize = 4;
    pub const DOMAIN: usize = 8;
    /// The union `u`.
    pub const U: usize = 16;
    /// `u.scheduler_op.sched_id`, `.cmd`, `.u.credit.weight`, `.u.credit.cap`.
    pub const SCHED_ID: usize = U;
    pub const SCHED_CMD: usize = U + 4;
    pub const CREDIT_WEIGHT: usize = U + 8;
    pub const CREDIT_CAP: usize = U + 10;
}

/// `XEN_DOMCTL_*` commands.
pub mod cmd {
    pub const SCHEDULER_OP: u32 = 16;
}

/// `XEN_SCHEDULER_CREDIT`.
pub const SCHEDULER_CREDIT: u32 = 5;

/// `XEN_DOMCTL_SCHEDOP_putinfo` / `getinfo`.
pub const SCHEDOP_PUTINFO: u32 = 0;
pub const SCHEDOP_GETINFO: u32 = 1;
