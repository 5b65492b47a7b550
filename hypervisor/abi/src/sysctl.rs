//! The `sysctl` hypercall (`sysctl.h`): the control domain's questions about the
//! machine. The structures of the union oxen implements.

/// `XEN_SYSCTL_INTERFACE_VERSION` of the headers oxen follows (Xen 4.17).
pub const INTERFACE_VERSION: u32 = 0x15;

/// `sizeof(struct xen_sysctl)`: header (8 bytes) and a 128-byte union.
pub const SIZE: usize = 136;

/// Byte offsets in `struct xen_sysctl`.
pub mod offset {
    pub const CMD: usize = 0;
    pub const INTERFACE_VERSION: usize = 4;
    /// The union `u`.
    pub const U: usize = 8;
}

/// `XEN_SYSCTL_*` commands.
pub mod cmd {
    pub const READCONSOLE: u32 = 1;
    pub const PHYSINFO: u32 = 3;
    pub const SCHED_ID: u32 = 4;
    pub const DEBUG_KEYS: u32 = 7;
    pub const GETDOMAININFOLIST: u32 = 6;
    pub const GETCPUINFO: u32 = 8;
    pub const SCHEDULER_OP: u32 = 19;
}

/// `XEN_SYSCTL_PHYSCAP_*`.
pub mod physcap {
    pub const HVM: u32 = 1 << 0;
    pub const HAP: u32 = 1 << 3;
}

le_struct! {
    /// `struct xen_sysctl_getdomaininfolist`: up to `max_domains` `DomainInfo`s with ids
    /// from `first_domain` into `buffer`; `num_domains` says how many.
    pub struct GetDomainInfoList {
        pub first_domain: u16,
        pub pad: u16,
        pub max_domains: u32,
        pub buffer: u64,
        pub num_domains: u32,
        pub pad2: u32,
    }
}

le_struct! {
    /// `struct xen_sysctl_physinfo`. `hw_cap` (eight 32-bit CPUID words) is kept as four
    /// pairs of them.
    pub struct PhysInfo {
        pub threads_per_core: u32,
        pub cores_per_socket: u32,
        pub nr_cpus: u32,
        pub max_cpu_id: u32,
        pub nr_nodes: u32,
        pub max_node_id: u32,
        pub cpu_khz: u32,
        /// `XEN_SYSCTL_PHYSCAP_*`.
        pub capabilities: u32,
        pub arch_capabilities: u32,
        pub pad: u32,
        pub total_pages: u64,
        pub free_pages: u64,
        pub scrub_pages: u64,
        pub outstanding_pages: u64,
        pub max_mfn: u64,
        pub hw_cap01: u64,
        pub hw_cap23: u64,
        pub hw_cap45: u64,
        pub hw_cap67: u64,
    }
}

le_struct! {
    /// `struct xen_sysctl_debug_keys`: `nr_keys` key characters at `keys`, each running
    /// the hypervisor's handler for that key (its output goes to the console).
    pub struct DebugKeys {
        pub keys: u64,
        pub nr_keys: u32,
        pub pad: u32,
    }
}

le_struct! {
    /// `struct xen_sysctl_getcpuinfo`: idle time of up to `max_cpus` pCPUs into `info`
    /// (`struct xen_sysctl_cpuinfo`, one u64 of nanoseconds each); `nr_cpus` says how
    /// many.
    pub struct GetCpuInfo {
        pub max_cpus: u32,
        pub pad: u32,
        pub info: u64,
        pub nr_cpus: u32,
        pub pad2: u32,
    }
}

/// Bounds of the credit scheduler's pool settings (`XEN_SYSCTL_CSCHED_*`,
/// `XEN_SYSCTL_SCHED_RATELIMIT_*`).
pub mod csched {
    pub const TSLICE_MIN_MS: u32 = 1;
    pub const TSLICE_MAX_MS: u32 = 1000;
    pub const RATELIMIT_MIN_US: u32 = 100;
    pub const RATELIMIT_MAX_US: u32 = 500_000;
    pub const MIGR_DELAY_MAX_US: u32 = 100_000;
}

/// `XEN_SYSCTL_SCHEDOP_*`: set or get a cpupool's scheduler settings.
pub mod schedop {
    pub const PUTINFO: u32 = 0;
    pub const GETINFO: u32 = 1;
}

le_struct! {
    /// `struct xen_sysctl_scheduler_op` with its union as `struct
    /// xen_sysctl_credit_schedule` (the union is 8-aligned: its arinc653 member holds a
    /// guest handle).
    pub struct SchedulerOp {
        pub cpupool_id: u32,
        /// `XEN_SCHEDULER_*`.
        pub sched_id: u32,
        /// [`schedop`].
        pub cmd: u32,
        pub pad: u32,
        pub tslice_ms: u32,
        pub ratelimit_us: u32,
        pub vcpu_migr_delay_us: u32,
        pub pad2: u32,
    }
}

le_struct! {
    /// `struct xen_sysctl_readconsole`: up to `count` bytes of the hypervisor's log
    /// into `buffer`, from the oldest kept (or from `index` if `incremental`); `count`
    /// comes back as the bytes read, `index` as where the next read goes on. `clear`
    /// empties the log after the read.
    pub struct ReadConsole {
        pub clear: u8,
        pub incremental: u8,
        pub pad: u16,
        pub index: u32,
        pub buffer: u64,
        pub count: u32,
        pub pad2: u32,
    }
}
