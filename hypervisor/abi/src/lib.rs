//! The guest ABI oxen shares with its guests: Xen's public interface (the headers under
//! `/usr/include/xen` are the specification), in our own Rust definitions.
//!
//! No dependencies, no `unsafe`: the hypervisor, dom0 and guests all use this crate.
#![no_std]
#![forbid(unsafe_code)]

/// Little-endian field codec used by [`le_struct!`].
#[doc(hidden)]
pub mod le {
    pub fn put(b: &mut [u8], off: usize, v: &[u8]) {
        b[off..off + v.len()].copy_from_slice(v);
    }
    pub fn get<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[off..off + N]);
        a
    }
}

/// Declares a `#[repr(C)]` struct of integer fields (`u8`, `u16`, `i16`, `u32`, `i32`,
/// `u64`) or of
/// nested such structs, with little-endian `to_bytes`/`from_bytes`. Offsets come from
/// `offset_of!`, so the byte form is exactly the C layout (padding bytes are zero).
/// Defined before the modules so that every module of the crate can use it.
macro_rules! le_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $( $(#[$fmeta:meta])* pub $field:ident : $ty:ident ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name { $( $(#[$fmeta])* pub $field: $ty ),* }

        impl $name {
            /// Size in bytes of the C structure.
            pub const SIZE: usize = core::mem::size_of::<$name>();

            /// The structure's bytes, little-endian, as the guest sees them.
            pub fn to_bytes(&self) -> [u8; Self::SIZE] {
                let mut b = [0u8; Self::SIZE];
                $( le_struct!(@put $ty, b, core::mem::offset_of!($name, $field), self.$field); )*
                b
            }

            /// Reads the structure from the start of `bytes`; `None` if it is too short.
            pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
                let b = bytes.get(..Self::SIZE)?;
                Some(Self { $( $field: le_struct!(@get $ty, b, core::mem::offset_of!($name, $field)) ),* })
            }
        }
    };
    (@put u8, $b:ident, $off:expr, $v:expr) => { $crate::le::put(&mut $b, $off, &$v.to_le_bytes()) };
    (@put u16, $b:ident, $off:expr, $v:expr) => { $crate::le::put(&mut $b, $off, &$v.to_le_bytes()) };
    (@put i16, $b:ident, $off:expr, $v:expr) => { $crate::le::put(&mut $b, $off, &$v.to_le_bytes()) };
    (@put u32, $b:ident, $off:expr, $v:expr) => { $crate::le::put(&mut $b, $off, &$v.to_le_bytes()) };
    (@put i32, $b:ident, $off:expr, $v:expr) => { $crate::le::put(&mut $b, $off, &$v.to_le_bytes()) };
    (@put u64, $b:ident, $off:expr, $v:expr) => { $crate::le::put(&mut $b, $off, &$v.to_le_bytes()) };
    (@put $t:ident, $b:ident, $off:expr, $v:expr) => { $crate::le::put(&mut $b, $off, &$v.to_bytes()) };
    (@get u8, $b:ident, $off:expr) => { u8::from_le_bytes($crate::le::get($b, $off)) };
    (@get u16, $b:ident, $off:expr) => { u16::from_le_bytes($crate::le::get($b, $off)) };
    (@get i16, $b:ident, $off:expr) => { i16::from_le_bytes($crate::le::get($b, $off)) };
    (@get u32, $b:ident, $off:expr) => { u32::from_le_bytes($crate::le::get($b, $off)) };
    (@get i32, $b:ident, $off:expr) => { i32::from_le_bytes($crate::le::get($b, $off)) };
    (@get u64, $b:ident, $off:expr) => { u64::from_le_bytes($crate::le::get($b, $off)) };
    (@get $t:ident, $b:ident, $off:expr) => {
        match $t::from_bytes(&$b[$off..]) {
            Some(v) => v,
            None => unreachable!("a nested structure fits in its parent"),
        }
    };
}

pub mod evtchn;
pub mod grant_table;

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

/// The PV console page, `struct xencons_interface` (`io/console.h`): two byte rings
/// with free-running `u32` indices; `in` carries input to the guest, `out` its output.
pub mod xencons {
    /// Offset and size of `in` (back end produces, guest consumes).
    pub const IN: u64 = 0;
    pub const IN_SIZE: u32 = 1024;
    /// Offset and size of `out` (guest produces, back end consumes).
    pub const OUT: u64 = 1024;
    pub const OUT_SIZE: u32 = 2048;
    /// Offsets of the four indices.
    pub const IN_CONS: u64 = 3072;
    pub const IN_PROD: u64 = 3076;
    pub const OUT_CONS: u64 = 3080;
    pub const OUT_PROD: u64 = 3084;
}

/// The XenStore wire protocol and interface page (`io/xs_wire.h`): message types, the
/// 16-byte header (`type`, `req_id`, `tx_id`, `len`, each a little-endian `u32`) and
/// `struct xenstore_domain_interface`, two byte rings with free-running `u32` indices.
pub mod xs_wire {
    /// Message types (`enum xsd_sockmsg_type`).
    pub mod msg {
        pub const CONTROL: u32 = 0;
        pub const DIRECTORY: u32 = 1;
        pub const READ: u32 = 2;
        pub const GET_PERMS: u32 = 3;
        pub const WATCH: u32 = 4;
        pub const UNWATCH: u32 = 5;
        pub const TRANSACTION_START: u32 = 6;
        pub const TRANSACTION_END: u32 = 7;
        pub const INTRODUCE: u32 = 8;
        pub const RELEASE: u32 = 9;
        pub const GET_DOMAIN_PATH: u32 = 10;
        pub const WRITE: u32 = 11;
        pub const MKDIR: u32 = 12;
        pub const RM: u32 = 13;
        pub const SET_PERMS: u32 = 14;
        pub const WATCH_EVENT: u32 = 15;
        pub const ERROR: u32 = 16;
        pub const IS_DOMAIN_INTRODUCED: u32 = 17;
        pub const RESUME: u32 = 18;
        pub const SET_TARGET: u32 = 19;
        pub const RESET_WATCHES: u32 = 21;
        pub const DIRECTORY_PART: u32 = 22;
    }
    /// Size of `struct xsd_sockmsg`.
    pub const HEADER_SIZE: usize = 16;
    /// Largest payload (`XENSTORE_PAYLOAD_MAX`).
    pub const PAYLOAD_MAX: usize = 4096;
    /// Size of each ring (`XENSTORE_RING_SIZE`).
    pub const RING_SIZE: u32 = 1024;
    /// Offsets in the interface page.
    pub const REQ: u64 = 0;
    pub const RSP: u64 = 1024;
    pub const REQ_CONS: u64 = 2048;
    pub const REQ_PROD: u64 = 2052;
    pub const RSP_CONS: u64 = 2056;
    pub const RSP_PROD: u64 = 2060;
    pub const SERVER_FEATURES: u64 = 2064;
    pub const CONNECTION: u64 = 2068;
    pub const ERROR: u64 = 2072;
    /// `error` values.
    pub const ERROR_NONE: u32 = 0;
    pub const ERROR_COMM: u32 = 1;
    pub const ERROR_RINGIDX: u32 = 2;
    pub const ERROR_PROTO: u32 = 3;
    /// `server_features` bits.
    pub const SERVER_FEATURE_RECONNECTION: u32 = 1;
    pub const SERVER_FEATURE_ERROR: u32 = 2;
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

/// Bit numbers of the `XENVER_get_features` submap 0 (`features.h`).
pub mod xenfeat {
    pub const WRITABLE_PAGE_TABLES: u32 = 0;
    pub const WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
    pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
    pub const SUPERVISOR_MODE_KERNEL: u32 = 3;
    pub const PAE_PGDIR_ABOVE_4GB: u32 = 4;
    pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
    pub const HIGHMEM_ASSIST: u32 = 6;
    pub const GNTTAB_MAP_AVAIL_BITS: u32 = 7;
    pub const HVM_CALLBACK_VECTOR: u32 = 8;
    pub const HVM_SAFE_PVCLOCK: u32 = 9;
    pub const HVM_PIRQS: u32 = 10;
    pub const DOM0: u32 = 11;
    /// Deprecated; commented out in current headers.
    pub const GRANT_MAP_IDENTITY: u32 = 12;
    pub const MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
    pub const ARM_SMCCC_SUPPORTED: u32 = 14;
    pub const LINUX_RSDP_UNRESTRICTED: u32 = 15;
    pub const NOT_DIRECT_MAPPED: u32 = 16;
    pub const DIRECT_MAPPED: u32 = 17;
    /// Number of 32-bit submaps (`XENFEAT_NR_SUBMAPS`).
    pub const NR_SUBMAPS: u32 = 1;
}

/// Xen ELF notes (`elfnote.h`).
pub mod elfnote {
    /// The owner name of Xen's notes, without its terminating NUL.
    pub const OWNER: &[u8] = b"Xen";
    pub const INFO: u32 = 0;
    pub const ENTRY: u32 = 1;
    pub const HYPERCALL_PAGE: u32 = 2;
    pub const VIRT_BASE: u32 = 3;
    pub const PADDR_OFFSET: u32 = 4;
    pub const XEN_VERSION: u32 = 5;
    pub const GUEST_OS: u32 = 6;
    pub const GUEST_VERSION: u32 = 7;
    pub const LOADER: u32 = 8;
    pub const PAE_MODE: u32 = 9;
    pub const FEATURES: u32 = 10;
    pub const BSD_SYMTAB: u32 = 11;
    pub const HV_START_LOW: u32 = 12;
    pub const L1_MFN_VALID: u32 = 13;
    pub const SUSPEND_CANCEL: u32 = 14;
    pub const INIT_P2M: u32 = 15;
    pub const MOD_START_PFN: u32 = 16;
    pub const SUPPORTED_FEATURES: u32 = 17;
    /// The 32-bit physical entry point of a PVH kernel (`XEN_ELFNOTE_PHYS32_ENTRY`).
    pub const PHYS32_ENTRY: u32 = 18;
}

/// `start_info.flags` bits (`xen.h`), shared by `hvm_start_info.flags`.
pub mod sif {
    pub const PRIVILEGED: u32 = 1 << 0;
    pub const INITDOMAIN: u32 = 1 << 1;
    pub const MULTIBOOT_MOD: u32 = 1 << 2;
    pub const MOD_START_PFN: u32 = 1 << 3;
    pub const VIRT_P2M_4TOOLS: u32 = 1 << 4;
    pub const PM_MASK: u32 = 0xff << 8;
}

/// `hvm_memmap_table_entry.type` values (`arch-x86/hvm/start_info.h`).
pub mod memmap_type {
    pub const RAM: u32 = 1;
    pub const RESERVED: u32 = 2;
    pub const ACPI: u32 = 3;
    pub const NVS: u32 = 4;
    pub const UNUSABLE: u32 = 5;
    pub const DISABLED: u32 = 6;
    pub const PMEM: u32 = 7;
}

/// `hvm_start_info.magic`: "xEn3" with the 0x80 bit of the "E" set.
pub const HVM_START_MAGIC: u32 = 0x336e_c578;

le_struct! {
    /// `struct hvm_start_info` (`arch-x86/hvm/start_info.h`): what a PVH guest finds at
    /// the physical address in `%ebx` on entry.
    pub struct HvmStartInfo {
        /// [`HVM_START_MAGIC`].
        pub magic: u32,
        /// Version of the structure (1 has the memory map fields).
        pub version: u32,
        /// `SIF_*` flags ([`sif`]).
        pub flags: u32,
        /// Number of [`HvmModlistEntry`] at `modlist_paddr`.
        pub nr_modules: u32,
        pub modlist_paddr: u64,
        pub cmdline_paddr: u64,
        pub rsdp_paddr: u64,
        pub memmap_paddr: u64,
        pub memmap_entries: u32,
        /// Must be zero.
        pub reserved: u32,
    }
}

le_struct! {
    /// `struct hvm_memmap_table_entry`.
    pub struct HvmMemmapEntry {
        pub addr: u64,
        pub size: u64,
        /// One of [`memmap_type`].
        pub type_: u32,
        /// Must be zero.
        pub reserved: u32,
    }
}

le_struct! {
    /// `struct hvm_modlist_entry`.
    pub struct HvmModlistEntry {
        pub paddr: u64,
        pub size: u64,
        pub cmdline_paddr: u64,
        pub reserved: u64,
    }
}

le_struct! {
    /// `struct sched_shutdown` (`sched.h`), the argument of `SCHEDOP_shutdown`.
    pub struct SchedShutdown {
        /// One of the `SHUTDOWN_*` reasons in [`sched_op`].
        pub reason: u32,
    }
}

le_struct! {
    /// `struct sched_remote_shutdown` (`sched.h`), the argument of
    /// `SCHEDOP_remote_shutdown`.
    pub struct SchedRemoteShutdown {
        pub domain_id: u16,
        /// One of the `SHUTDOWN_*` reasons in [`sched_op`].
        pub reason: u32,
    }
}

le_struct! {
    /// `struct sched_poll` (`sched.h`), the argument of `SCHEDOP_poll`.
    pub struct SchedPoll {
        /// Guest handle: the address of `nr_ports` `evtchn_port_t`.
        pub ports: u64,
        pub nr_ports: u32,
        /// Absolute system time in ns (0 = none).
        pub timeout: u64,
    }
}

le_struct! {
    /// `struct xen_feature_info` (`version.h`), the argument of `XENVER_get_features`.
    pub struct XenFeatureInfo {
        /// IN: which 32-bit submap to return.
        pub submap_idx: u32,
        /// OUT: the submap ([`xenfeat`] bit numbers).
        pub submap: u32,
    }
}

le_struct! {
    /// `struct xen_platform_parameters` (`version.h`); `xen_ulong_t` is 64-bit on x86_64.
    pub struct XenPlatformParameters {
        pub virt_start: u64,
    }
}

/// `struct xen_compile_info` (`version.h`): NUL-padded strings.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCompileInfo {
    pub compiler: [u8; 64],
    pub compile_by: [u8; 16],
    pub compile_domain: [u8; 32],
    pub compile_date: [u8; 32],
}

impl Default for XenCompileInfo {
    fn default() -> Self {
        Self {
            compiler: [0; 64],
            compile_by: [0; 16],
            compile_domain: [0; 32],
            compile_date: [0; 32],
        }
    }
}

impl XenCompileInfo {
    /// Size in bytes of the C structure.
    pub const SIZE: usize = core::mem::size_of::<XenCompileInfo>();

    /// Builds the structure from strings, truncating each so it stays NUL-terminated.
    pub fn new(compiler: &str, compile_by: &str, compile_domain: &str, compile_date: &str) -> Self {
        fn fill<const N: usize>(s: &str) -> [u8; N] {
            let mut a = [0u8; N];
            let n = s.len().min(N - 1);
            a[..n].copy_from_slice(&s.as_bytes()[..n]);
            a
        }
        Self {
            compiler: fill(compiler),
            compile_by: fill(compile_by),
            compile_domain: fill(compile_domain),
            compile_date: fill(compile_date),
        }
    }

    /// The structure's bytes as the guest sees them.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        let mut off = 0;
        for part in [
            &self.compiler[..],
            &self.compile_by[..],
            &self.compile_domain[..],
            &self.compile_date[..],
        ] {
            b[off..off + part.len()].copy_from_slice(part);
            off += part.len();
        }
        b
    }

    /// Reads the structure from the start of `bytes`; `None` if it is too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..Self::SIZE)?;
        let mut s = Self::default();
        s.compiler.copy_from_slice(&b[0..64]);
        s.compile_by.copy_from_slice(&b[64..80]);
        s.compile_domain.copy_from_slice(&b[80..112]);
        s.compile_date.copy_from_slice(&b[112..144]);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_info_round_trip_is_little_endian() {
        let s = HvmStartInfo {
            magic: HVM_START_MAGIC,
            version: 1,
            flags: sif::PRIVILEGED,
            nr_modules: 2,
            modlist_paddr: 0x1122_3344_5566_7788,
            cmdline_paddr: 0x2000,
            rsdp_paddr: 0,
            memmap_paddr: 0x3000,
            memmap_entries: 3,
            reserved: 0,
        };
        let b = s.to_bytes();
        assert_eq!(b.len(), 56);
        assert_eq!(&b[0..4], &[0x78, 0xc5, 0x6e, 0x33]);
        assert_eq!(&b[16..24], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(b[48], 3);
        assert_eq!(HvmStartInfo::from_bytes(&b), Some(s));
        assert_eq!(HvmStartInfo::from_bytes(&b[..55]), None);
    }

    #[test]
    fn memmap_entry_round_trip() {
        let e = HvmMemmapEntry {
            addr: 0x10_0000,
            size: 0x20_0000,
            type_: memmap_type::ACPI,
            reserved: 0,
        };
        let b = e.to_bytes();
        assert_eq!(b[16], 3);
        assert_eq!(HvmMemmapEntry::from_bytes(&b), Some(e));
    }

    #[test]
    fn compile_info_strings_stay_terminated() {
        let long = [b'x'; 100];
        let long = core::str::from_utf8(&long).unwrap();
        let c = XenCompileInfo::new(long, "oxen", "example.org", "today");
        assert_eq!(c.compiler[63], 0);
        assert_eq!(c.compiler[62], b'x');
        let b = c.to_bytes();
        assert_eq!(&b[64..68], b"oxen");
        assert_eq!(XenCompileInfo::from_bytes(&b), Some(c));
    }
}

pub mod domctl;
pub mod hvm;
pub mod hvm_save;
pub mod memory;
pub mod sysctl;
pub mod vcpu;
