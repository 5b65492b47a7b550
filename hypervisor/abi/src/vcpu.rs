//! `vcpu_op` (`vcpu.h`) and the HVM vCPU start-up context (`hvm/hvm_vcpu.h`).

/// `VCPUOP_*` sub-op numbers.
pub mod op {
    pub const INITIALISE: u32 = 0;
    pub const UP: u32 = 1;
    pub const DOWN: u32 = 2;
    pub const IS_UP: u32 = 3;
    pub const GET_RUNSTATE_INFO: u32 = 4;
    pub const REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
    pub const SET_PERIODIC_TIMER: u32 = 6;
    pub const STOP_PERIODIC_TIMER: u32 = 7;
    pub const SET_SINGLESHOT_TIMER: u32 = 8;
    pub const STOP_SINGLESHOT_TIMER: u32 = 9;
    pub const REGISTER_VCPU_INFO: u32 = 10;
    pub const SEND_NMI: u32 = 11;
    pub const GET_PHYSID: u32 = 12;
}

/// `VCPU_SSHOTTMR_future`: fail with -ETIME if the deadline has already passed.
pub const SSHOTTMR_FUTURE: u32 = 1;

le_struct! {
    /// `struct vcpu_set_singleshot_timer`.
    pub struct SingleshotTimer {
        /// Absolute system time in ns.
        pub timeout_abs_ns: u64,
        /// [`SSHOTTMR_FUTURE`] or 0.
        pub flags: u32,
    }
}

le_struct! {
    /// `struct vcpu_set_periodic_timer`.
    pub struct PeriodicTimer {
        /// The period in ns (at least 1 ms).
        pub period_ns: u64,
    }
}

/// `RUNSTATE_running`, `_runnable`, `_blocked`, `_offline`: the index into
/// [`RunstateInfo`]'s times.
pub mod runstate {
    pub const RUNNING: u32 = 0;
    pub const RUNNABLE: u32 = 1;
    pub const BLOCKED: u32 = 2;
    pub const OFFLINE: u32 = 3;
}

le_struct! {
    /// `struct vcpu_runstate_info` (`time[4]` as four fields).
    pub struct RunstateInfo {
        /// One of [`runstate`].
        pub state: u32,
        /// System time the vCPU entered that state.
        pub state_entry_time: u64,
        pub time_running: u64,
        pub time_runnable: u64,
        pub time_blocked: u64,
        pub time_offline: u64,
    }
}

le_struct! {
    /// `struct vcpu_register_runstate_memory_area` (the guest-virtual address).
    pub struct RegisterRunstateMemoryArea {
        pub addr: u64,
    }
}

le_struct! {
    /// `struct vcpu_register_vcpu_info`: the vCPU's `vcpu_info` at `offset` in guest
    /// frame `mfn`.
    pub struct RegisterVcpuInfo {
        pub mfn: u64,
        pub offset: u32,
        pub rsvd: u32,
    }
}

/// `VCPU_HVM_MODE_32B` / `VCPU_HVM_MODE_64B`.
pub const HVM_MODE_32B: u32 = 0;
pub const HVM_MODE_64B: u32 = 1;

/// `sizeof(struct vcpu_hvm_context)`.
pub const HVM_CONTEXT_SIZE: usize = 128;

/// One segment of the 32-bit start-up context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmSegment {
    pub base: u32,
    pub limit: u32,
    /// Access rights in the VMX layout's low 16 bits (Xen's `*_ar`).
    pub ar: u16,
}

/// `struct vcpu_hvm_context`, decoded: the state a secondary vCPU starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvmContext {
    /// `VCPU_HVM_MODE_32B`: general registers, control registers, EFER and the cached
    /// parts of CS, DS, SS, ES and TR.
    Mode32 {
        /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
        gprs: [u32; 8],
        eip: u32,
        eflags: u32,
        cr0: u32,
        cr3: u32,
        cr4: u32,
        efer: u64,
        /// CS, DS, SS, ES, TR.
        segs: [HvmSegment; 5],
    },
    /// `VCPU_HVM_MODE_64B`: long mode with flat segments set up by the hypervisor.
    Mode64 {
        /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI.
        gprs: [u64; 8],
        rip: u64,
        rflags: u64,
        cr0: u64,
        cr3: u64,
        cr4: u64,
        efer: u64,
    },
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(crate::le::get(b, off))
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(crate::le::get(b, off))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(crate::le::get(b, off))
}

impl HvmContext {
    /// Decodes the C structure; `None` if it is short or names an unknown mode.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..HVM_CONTEXT_SIZE)?;
        let regs = &b[8..];
        match u32_at(b, 0) {
            HVM_MODE_32B => {
                let r = |i: usize| u32_at(regs, 4 * i);
                let seg = |i: usize| HvmSegment {
                    base: u32_at(regs, 64 + 4 * i),
                    limit: u32_at(regs, 84 + 4 * i),
                    ar: u16_at(regs, 104 + 2 * i),
                };
                Some(HvmContext::Mode32 {
                    gprs: core::array::from_fn(r),
                    eip: r(8),
                    eflags: r(9),
                    cr0: r(10),
                    cr3: r(11),
                    cr4: r(12),
                    efer: u64_at(regs, 56),
                    segs: core::array::from_fn(seg),
                })
            }
            HVM_MODE_64B => {
                let r = |i: usize| u64_at(regs, 8 * i);
                Some(HvmContext::Mode64 {
                    gprs: core::array::from_fn(r),
                    rip: r(8),
                    rflags: r(9),
                    cr0: r(10),
                    cr3: r(11),
                    cr4: r(12),
                    efer: r(13),
                })
            }
            _ => None,
        }
    }

    /// The C structure's bytes (for guests building the argument).
    pub fn to_bytes(&self) -> [u8; HVM_CONTEXT_SIZE] {
        let mut b = [0u8; HVM_CONTEXT_SIZE];
        let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        match *self {
            HvmContext::Mode32 {
                gprs,
                eip,
                eflags,
                cr0,
                cr3,
                cr4,
                efer,
                segs,
            } => {
                put(0, &HVM_MODE_32B.to_le_bytes());
                let words = gprs.into_iter().chain([eip, eflags, cr0, cr3, cr4]);
                for (i, w) in words.enumerate() {
                    put(8 + 4 * i, &w.to_le_bytes());
                }
                put(8 + 56, &efer.to_le_bytes());
                for (i, s) in segs.iter().enumerate() {
                    put(8 + 64 + 4 * i, &s.base.to_le_bytes());
                    put(8 + 84 + 4 * i, &s.limit.to_le_bytes());
                    put(8 + 104 + 2 * i, &s.ar.to_le_bytes());
                }
            }
            HvmContext::Mode64 {
                gprs,
                rip,
                rflags,
                cr0,
                cr3,
                cr4,
                efer,
            } => {
                put(0, &HVM_MODE_64B.to_le_bytes());
                let words = gprs.into_iter().chain([rip, rflags, cr0, cr3, cr4, efer]);
                for (i, w) in words.enumerate() {
                    put(8 + 8 * i, &w.to_le_bytes());
                }
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_round_trip() {
        let c64 = HvmContext::Mode64 {
            gprs: [1, 2, 3, 4, 5, 6, 7, 8],
            rip: 0x10_0000,
            rflags: 2,
            cr0: 0x8000_0033,
            cr3: 0x1000,
            cr4: 0x20,
            efer: 0x500,
        };
        assert_eq!(HvmContext::from_bytes(&c64.to_bytes()), Some(c64));
        let seg = |n: u32| HvmSegment {
            base: n,
            limit: 0xffff_ffff,
            ar: 0xc93,
        };
        let c32 = HvmContext::Mode32 {
            gprs: [9, 8, 7, 6, 5, 4, 3, 2],
            eip: 0x1234,
            eflags: 0x202,
            cr0: 0x11,
            cr3: 0,
            cr4: 0,
            efer: 0,
            segs: [seg(0), seg(1), seg(2), seg(3), seg(4)],
        };
        assert_eq!(HvmContext::from_bytes(&c32.to_bytes()), Some(c32));
    }

    #[test]
    fn bad_contexts_are_refused() {
        assert_eq!(HvmContext::from_bytes(&[0u8; 127]), None);
        let mut b = [0u8; HVM_CONTEXT_SIZE];
        b[0] = 2;
        assert_eq!(HvmContext::from_bytes(&b), None);
        assert_eq!(SingleshotTimer::from_bytes(&[0; 15]), None);
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&77u64.to_le_bytes());
        t[8] = 1;
        assert_eq!(
            SingleshotTimer::from_bytes(&t),
            Some(SingleshotTimer {
                timeout_abs_ns: 77,
                flags: 1
            })
        );
    }
}
