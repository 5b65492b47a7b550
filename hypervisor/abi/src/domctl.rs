//! The `domctl` hypercall (`domctl.h`): the control domain's operations on domains.
//! The structures of the union that oxen implements, by their offsets in it.

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
    pub const CREATEDOMAIN: u32 = 1;
    pub const DESTROYDOMAIN: u32 = 2;
    pub const PAUSEDOMAIN: u32 = 3;
    pub const UNPAUSEDOMAIN: u32 = 4;
    pub const GETDOMAININFO: u32 = 5;
    pub const SETVCPUAFFINITY: u32 = 9;
    pub const MAX_MEM: u32 = 11;
    pub const GETVCPUINFO: u32 = 14;
    pub const MAX_VCPUS: u32 = 15;
    pub const SCHEDULER_OP: u32 = 16;
    pub const SETDOMAINHANDLE: u32 = 17;
    pub const SETTIMEOFFSET: u32 = 24;
    pub const GETVCPUAFFINITY: u32 = 25;
    pub const GETHVMCONTEXT: u32 = 33;
    pub const SETHVMCONTEXT: u32 = 34;
}

/// `XEN_DOMCTL_CDF_*`: `createdomain` flags.
pub mod cdf {
    pub const HVM: u32 = 1 << 0;
    pub const HAP: u32 = 1 << 1;
    pub const S3_INTEGRITY: u32 = 1 << 2;
    pub const OOS_OFF: u32 = 1 << 3;
    pub const XS_DOMAIN: u32 = 1 << 4;
    pub const IOMMU: u32 = 1 << 5;
    pub const NESTED_VIRT: u32 = 1 << 6;
    pub const VPMU: u32 = 1 << 7;
}

/// `XEN_DOMINF_*`: `getdomaininfo` flags; the shutdown code is in bits 16..24.
pub mod dominf {
    pub const DYING: u32 = 1 << 0;
    pub const HVM_GUEST: u32 = 1 << 1;
    pub const SHUTDOWN: u32 = 1 << 2;
    pub const PAUSED: u32 = 1 << 3;
    pub const BLOCKED: u32 = 1 << 4;
    pub const RUNNING: u32 = 1 << 5;
    pub const HAP: u32 = 1 << 8;
    pub const SHUTDOWN_SHIFT: u32 = 16;
    pub const SHUTDOWN_MASK: u32 = 255;

    /// The shutdown code (`SHUTDOWN_poweroff`, …) in `flags`, if they say shut down.
    pub const fn shutdown_code(flags: u32) -> Option<u32> {
        if flags & SHUTDOWN != 0 {
            Some((flags >> SHUTDOWN_SHIFT) & SHUTDOWN_MASK)
        } else {
            None
        }
    }
}

le_struct! {
    /// `struct xen_domctl_createdomain` (`u.createdomain`). The handle is 16 bytes, kept
    /// as four little-endian words (the bytes in order).
    pub struct CreateDomain {
        pub ssidref: u32,
        pub handle0: u32,
        pub handle1: u32,
        pub handle2: u32,
        pub handle3: u32,
        /// `XEN_DOMCTL_CDF_*`.
        pub flags: u32,
        pub iommu_opts: u32,
        pub max_vcpus: u32,
        pub max_evtchn_port: u32,
        pub max_grant_frames: i32,
        pub max_maptrack_frames: i32,
        pub grant_opts: u32,
        pub vmtrace_size: u32,
        pub cpupool_id: u32,
        /// `struct xen_arch_domainconfig` (x86): `XEN_X86_EMU_*` and misc flags.
        pub emulation_flags: u32,
        pub misc_flags: u32,
    }
}

le_struct! {
    /// `struct xen_domctl_getdomaininfo` (`u.getdomaininfo`, and the elements of
    /// `sysctl getdomaininfolist`'s buffer). `gpaddr_bits` is a byte in C followed by
    /// padding, kept in a word here.
    pub struct DomainInfo {
        pub domain: u16,
        pub pad1: u16,
        /// `XEN_DOMINF_*`.
        pub flags: u32,
        pub tot_pages: u64,
        pub max_pages: u64,
        pub outstanding_pages: u64,
        pub shr_pages: u64,
        pub paged_pages: u64,
        pub shared_info_frame: u64,
        /// Nanoseconds of CPU time, all vCPUs.
        pub cpu_time: u64,
        pub nr_online_vcpus: u32,
        pub max_vcpu_id: u32,
        pub ssidref: u32,
        pub handle0: u32,
        pub handle1: u32,
        pub handle2: u32,
        pub handle3: u32,
        pub cpupool: u32,
        pub gpaddr_bits: u32,
        pub pad2: u32,
        pub emulation_flags: u32,
        pub misc_flags: u32,
    }
}

le_struct! {
    /// `struct xen_domctl_hvmcontext` (`u.hvmcontext`): a buffer of HVM save records
    /// (`hvm_save.rs`); `size` 0 with a null buffer asks for the size.
    pub struct HvmContextBuf {
        pub size: u32,
        pub pad: u32,
        pub buffer: u64,
    }
}

/// `u.max_mem.max_memkb` (u64) and `u.max_vcpus.max` (u32), at the union's start.
pub const MAX_MEMKB: usize = offset::U;
pub const MAX_VCPUS_MAX: usize = offset::U;
/// `u.setdomainhandle.handle` (16 bytes).
pub const HANDLE: usize = offset::U;

/// `XEN_SCHEDULER_CREDIT`.
pub const SCHEDULER_CREDIT: u32 = 5;

/// `XEN_DOMCTL_SCHEDOP_putinfo` / `getinfo`.
pub const SCHEDOP_PUTINFO: u32 = 0;
pub const SCHEDOP_GETINFO: u32 = 1;

le_struct! {
    /// `struct xen_domctl_getvcpuinfo` (`u.getvcpuinfo`).
    pub struct GetVcpuInfo {
        pub vcpu: u32,
        pub online: u8,
        pub blocked: u8,
        pub running: u8,
        pub pad: u8,
        /// Nanoseconds it has run.
        pub cpu_time: u64,
        /// The pCPU it is on (or last was).
        pub cpu: u32,
        pub pad2: u32,
    }
}

le_struct! {
    /// `struct xenctl_bitmap`: `nr_bits` bits at `bitmap` (bytes, bit 0 of byte 0
    /// first).
    pub struct CtlBitmap {
        pub bitmap: u64,
        pub nr_bits: u32,
        pub pad: u32,
    }
}

le_struct! {
    /// `struct xen_domctl_vcpuaffinity` (`u.vcpuaffinity`).
    pub struct VcpuAffinity {
        pub vcpu: u32,
        /// `XEN_VCPUAFFINITY_*`.
        pub flags: u32,
        pub cpumap_hard: CtlBitmap,
        pub cpumap_soft: CtlBitmap,
    }
}

/// `XEN_VCPUAFFINITY_*`.
pub mod affinity {
    pub const HARD: u32 = 1 << 0;
    pub const SOFT: u32 = 1 << 1;
    pub const FORCE: u32 = 1 << 2;
}

/// `u.settimeoffset.time_offset_seconds` (i64).
pub const TIME_OFFSET_SECONDS: usize = offset::U;
