//! The guest ABI oxen shares with its guests: Xen's public interface (the headers under
//! `/usr/include/xen` are the specification), in our own Rust definitions.
//!
//! No dependencies, no `unsafe`: the hypervisor, dom0 and guests all use this crate.
#![no_std]
#![forbid(unsafe_code)]

/// Hypercall numbers (`xen.h`).
pub mod hypercall {
    pub const SET_TRAP_TABLE: u32 = 0;
    pub const MMU_UPDATE: u32 = 1;
    pub const SET_GDT: u32 = 2;
    pub const STACK_SWITCH: u32 = 3;
    pub const SET_CALLBACKS: u32 = 4;
    pub const FPU_TASKSWITCH: u32 = 5;
    pub const SCHED_OP_COMPAT: u32 = 6;
    pub const PLATFORM_OP: u32 = 7;
    pub const SET_DEBUGREG: u32 = 8;
    pub const GET_DEBUGREG: u32 = 9;
    pub const UPDATE_DESCRIPTOR: u32 = 10;
    pub const MEMORY_OP: u32 = 12;
    pub const MULTICALL: u32 = 13;
    pub const UPDATE_VA_MAPPING: u32 = 14;
    pub const SET_TIMER_OP: u32 = 15;
    pub const EVENT_CHANNEL_OP_COMPAT: u32 = 16;
    pub const XEN_VERSION: u32 = 17;
    pub const CONSOLE_IO: u32 = 18;
    pub const PHYSDEV_OP_COMPAT: u32 = 19;
    pub const GRANT_TABLE_OP: u32 = 20;
    pub const VM_ASSIST: u32 = 21;
    pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
    pub const IRET: u32 = 23;
    pub const VCPU_OP: u32 = 24;
    pub const SET_SEGMENT_BASE: u32 = 25;
    pub const MMUEXT_OP: u32 = 26;
    pub const XSM_OP: u32 = 27;
    pub const NMI_OP: u32 = 28;
    pub const SCHED_OP: u32 = 29;
    pub const CALLBACK_OP: u32 = 30;
    pub const XENOPROF_OP: u32 = 31;
    pub const EVENT_CHANNEL_OP: u32 = 32;
    pub const PHYSDEV_OP: u32 = 33;
    pub const HVM_OP: u32 = 34;
    pub const SYSCTL: u32 = 35;
    pub const DOMCTL: u32 = 36;
    pub const KEXEC_OP: u32 = 37;
    pub const TMEM_OP: u32 = 38;
    pub const ARGO_OP: u32 = 39;
    pub const XENPMU_OP: u32 = 40;
    pub const DM_OP: u32 = 41;
    pub const HYPFS_OP: u32 = 42;
}

/// Error numbers returned (negated) by hypercalls (`errno.h`; Linux numbering).
pub mod errno {
    pub const EPERM: i64 = 1;
    pub const ENOENT: i64 = 2;
    pub const ESRCH: i64 = 3;
    pub const EAGAIN: i64 = 11;
    pub const ENOMEM: i64 = 12;
    pub const EACCES: i64 = 13;
    pub const EFAULT: i64 = 14;
    pub const EBUSY: i64 = 16;
    pub const EEXIST: i64 = 17;
    pub const ENODEV: i64 = 19;
    pub const EINVAL: i64 = 22;
    pub const ENOSPC: i64 = 28;
    pub const ENOSYS: i64 = 38;
    pub const ETIME: i64 = 62;
}

/// `console_io` sub-operations (`xen.h`).
pub mod console_io {
    pub const WRITE: u32 = 0;
    pub const READ: u32 = 1;
}

/// `sched_op` sub-operations and shutdown reasons (`sched.h`).
pub mod sched_op {
    pub const YIELD: u32 = 0;
    pub const BLOCK: u32 = 1;
    pub const SHUTDOWN: u32 = 2;
    pub const POLL: u32 = 3;
    pub const REMOTE_SHUTDOWN: u32 = 4;
    pub const SHUTDOWN_CODE: u32 = 5;
    pub const WATCHDOG: u32 = 6;
    pub const PIN_OVERRIDE: u32 = 7;

    pub const SHUTDOWN_POWEROFF: u32 = 0;
    pub const SHUTDOWN_REBOOT: u32 = 1;
    pub const SHUTDOWN_SUSPEND: u32 = 2;
    pub const SHUTDOWN_CRASH: u32 = 3;
    pub const SHUTDOWN_WATCHDOG: u32 = 4;
}

/// `xen_version` sub-operations (`version.h`).
pub mod xen_version {
    pub const VERSION: u32 = 0;
    pub const EXTRAVERSION: u32 = 1;
    pub const COMPILE_INFO: u32 = 2;
    pub const CAPABILITIES: u32 = 3;
    pub const CHANGESET: u32 = 4;
    pub const PLATFORM_PARAMETERS: u32 = 5;
    pub const GET_FEATURES: u32 = 6;
    pub const PAGESIZE: u32 = 7;
    pub const GUEST_HANDLE: u32 = 8;
    pub const COMMANDLINE: u32 = 9;
    pub const BUILD_ID: u32 = 10;

    /// Length of `xen_extraversion_t`.
    pub const EXTRAVERSION_LEN: usize = 16;
    /// Length of `xen_capabilities_info_t`.
    pub const CAPABILITIES_LEN: usize = 1024;
}

/// CPUID leaves of the hypervisor range (`arch-x86/cpuid.h`).
pub mod cpuid {
    pub const BASE: u32 = 0x4000_0000;
    /// "XenVMMXenVMM" in EBX, ECX, EDX of the base leaf.
    pub const SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];
    /// The MSR a guest writes to have the hypercall page filled.
    pub const HYPERCALL_MSR: u32 = 0x4000_0000;
}
