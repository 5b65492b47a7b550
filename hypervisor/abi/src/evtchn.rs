//! Event channels (`event_channel.h`): sub-op numbers and argument layouts, plus the
//! `xen.h` facts the 2-level event ABI needs (VIRQ numbers, reserved domain ids, where
//! the pending and mask bitmaps and the per-vCPU upcall flags live in `shared_info` and
//! `vcpu_info`).
//!
//! The argument structures are `#[repr(C)]` with the header's field order, so their
//! layout is the C layout (checked against `/usr/include/xen` by `tests/layout.rs`);
//! `to_bytes`/`from_bytes` convert them to and from the guest's little-endian bytes,
//! padding bytes written as zero and ignored on reading. Only the 2-level ABI is
//! described: the FIFO ABI's structures (`EVTCHNOP_init_control` and friends) and
//! `evtchn_bind_pirq` are left out, oxen answers those sub-ops with `-ENOSYS`.

/// A domain id (`domid_t`).
pub type DomId = u16;

/// An event channel port number (`evtchn_port_t`).
pub type EvtchnPort = u32;

/// `dom` arguments may name the calling domain with this value (`DOMID_SELF`).
pub const DOMID_SELF: DomId = 0x7ff0;
/// Domain ids from here up are reserved and never name an ordinary domain.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;
/// "No domain" (`DOMID_INVALID`).
pub const DOMID_INVALID: DomId = 0x7ff4;

/// Bits in one word of the 2-level bitmaps: `xen_ulong_t` is 64-bit for x86_64 guests.
pub const EVTCHN_2L_BITS_PER_WORD: u32 = 64;
/// Words in each of `evtchn_pending` and `evtchn_mask`, one selector bit per word.
pub const EVTCHN_2L_WORDS: usize = 64;
/// Ports the 2-level ABI can name (`EVTCHN_2L_NR_CHANNELS`): 64 words of 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: u32 = EVTCHN_2L_BITS_PER_WORD * EVTCHN_2L_WORDS as u32;

/// `EVTCHNOP_*` sub-operation numbers (the first argument of `event_channel_op`).
pub mod op {
    pub const BIND_INTERDOMAIN: u32 = 0;
    pub const BIND_VIRQ: u32 = 1;
    pub const BIND_PIRQ: u32 = 2;
    pub const CLOSE: u32 = 3;
    pub const SEND: u32 = 4;
    pub const STATUS: u32 = 5;
    pub const ALLOC_UNBOUND: u32 = 6;
    pub const BIND_IPI: u32 = 7;
    pub const BIND_VCPU: u32 = 8;
    pub const UNMASK: u32 = 9;
    pub const RESET: u32 = 10;
    /// FIFO ABI; a guest that gets `-ENOSYS` here falls back to the 2-level ABI.
    pub const INIT_CONTROL: u32 = 11;
    pub const EXPAND_ARRAY: u32 = 12;
    pub const SET_PRIORITY: u32 = 13;
}

/// `EVTCHNSTAT_*`: the `status` field of [`EvtchnStatus`](super::EvtchnStatus).
pub mod stat {
    /// Not in use.
    pub const CLOSED: u32 = 0;
    /// Waiting for the remote domain to bind.
    pub const UNBOUND: u32 = 1;
    /// Connected to a port of another (or the same) domain.
    pub const INTERDOMAIN: u32 = 2;
    /// Bound to a physical IRQ.
    pub const PIRQ: u32 = 3;
    /// Bound to a virtual IRQ.
    pub const VIRQ: u32 = 4;
    /// Bound to an inter-processor interrupt of the domain's own vCPUs.
    pub const IPI: u32 = 5;
}

/// Virtual IRQ numbers (`xen.h`, `enum virq`). "Per-vCPU" VIRQs are bound once per
/// vCPU; "global" ones once per domain, always first on vCPU 0.
pub mod virq {
    /// Per-vCPU: the vCPU's timer fired.
    pub const TIMER: u32 = 0;
    /// Per-vCPU: dump debug information.
    pub const DEBUG: u32 = 1;
    /// Global: bytes on the emergency console (dom0).
    pub const CONSOLE: u32 = 2;
    /// Global: a domain needs attention (dom0).
    pub const DOM_EXC: u32 = 3;
    /// Global: trace buffer records available (dom0).
    pub const TBUF: u32 = 4;
    /// Global: a domain paused for debugging (dom0).
    pub const DEBUGGER: u32 = 6;
    /// Per-vCPU: a profiling sample is available.
    pub const XENOPROF: u32 = 7;
    /// Global: bytes on the hypervisor console ring (dom0).
    pub const CON_RING: u32 = 8;
    /// Global: a physical CPU changed state (dom0).
    pub const PCPU_STATE: u32 = 9;
    /// Global: a memory event (dom0).
    pub const MEM_EVENT: u32 = 10;
    /// Global: an Argo message arrived.
    pub const ARGO: u32 = 11;
    /// Global: the hypervisor is low on memory (dom0).
    pub const ENOMEM: u32 = 12;
    /// Per-vCPU: performance counter interrupt.
    pub const XENPMU: u32 = 13;
    /// First architecture-specific VIRQ (x86 uses `ARCH_0` for machine checks).
    pub const ARCH_0: u32 = 16;
    pub const ARCH_1: u32 = 17;
    pub const ARCH_2: u32 = 18;
    pub const ARCH_3: u32 = 19;
    pub const ARCH_4: u32 = 20;
    pub const ARCH_5: u32 = 21;
    pub const ARCH_6: u32 = 22;
    /// Last architecture-specific VIRQ.
    pub const ARCH_7: u32 = 23;
    /// Number of VIRQ numbers (`NR_VIRQS`): valid VIRQs are below it.
    pub const NR_VIRQS: u32 = 24;
}

/// Where the 2-level event state lives in `struct shared_info` (x86_64 layout).
pub mod shared_info {
    /// The `vcpu_info` array at the start of the page (`XEN_LEGACY_MAX_VCPUS` entries);
    /// vCPUs beyond it need `VCPUOP_register_vcpu_info`.
    pub const VCPU_INFO: usize = 0;
    /// Entries in that array (`XEN_LEGACY_MAX_VCPUS`).
    pub const LEGACY_MAX_VCPUS: u32 = 32;
    /// `evtchn_pending[64]`, 64-bit words: bit `p % 64` of word `p / 64` is port `p`.
    pub const EVTCHN_PENDING: usize = 2048;
    /// `evtchn_mask[64]`, same indexing; a set bit masks the port.
    pub const EVTCHN_MASK: usize = 2560;
    /// `wc_version`, the first field after the bitmaps.
    pub const WC_VERSION: usize = 3072;
    /// Size of the structure (it fits in one 4 KiB page).
    pub const SIZE: usize = 3136;
}

/// Where the upcall flags live in `struct vcpu_info` (x86_64 layout).
pub mod vcpu_info {
    /// `evtchn_upcall_pending` (u8): nonzero when the vCPU has events to look at.
    pub const EVTCHN_UPCALL_PENDING: usize = 0;
    /// `evtchn_upcall_mask` (u8): PV guests' interrupt flag; HVM/PVH guests use RFLAGS.IF.
    pub const EVTCHN_UPCALL_MASK: usize = 1;
    /// `evtchn_pending_sel` (u64): bit `w` set when word `w` of `evtchn_pending` may
    /// hold unmasked pending ports for this vCPU.
    pub const EVTCHN_PENDING_SEL: usize = 8;
    /// `time`, the `vcpu_time_info` block.
    pub const TIME: usize = 32;
    /// Size of the structure.
    pub const SIZE: usize = 64;
}

le_struct! {
    /// `struct evtchn_alloc_unbound` ([`op::ALLOC_UNBOUND`]): allocate a port in `dom`
    /// that only `remote_dom` may bind to.
    pub struct EvtchnAllocUnbound {
        /// IN: the domain to allocate in ([`DOMID_SELF`] or, if privileged, another).
        pub dom: u16,
        /// IN: the domain allowed to connect ([`DOMID_SELF`] = the caller).
        pub remote_dom: u16,
        /// OUT: the new port.
        pub port: u32,
    }
}

le_struct! {
    /// `struct evtchn_bind_interdomain` ([`op::BIND_INTERDOMAIN`]): connect a new local
    /// port to an unbound port of `remote_dom`.
    pub struct EvtchnBindInterdomain {
        /// IN: the domain owning `remote_port` ([`DOMID_SELF`] allowed).
        pub remote_dom: u16,
        /// IN: an unbound port of `remote_dom` that names the caller as its remote.
        pub remote_port: u32,
        /// OUT: the new local port.
        pub local_port: u32,
    }
}

le_struct! {
    /// `struct evtchn_bind_virq` ([`op::BIND_VIRQ`]).
    pub struct EvtchnBindVirq {
        /// IN: a [`virq`] number.
        pub virq: u32,
        /// IN: the vCPU to bind for (0 for global VIRQs).
        pub vcpu: u32,
        /// OUT: the new port.
        pub port: u32,
    }
}

le_struct! {
    /// `struct evtchn_bind_ipi` ([`op::BIND_IPI`]).
    pub struct EvtchnBindIpi {
        /// IN: the vCPU notified when the port is signalled.
        pub vcpu: u32,
        /// OUT: the new port.
        pub port: u32,
    }
}

le_struct! {
    /// `struct evtchn_close` ([`op::CLOSE`]).
    pub struct EvtchnClose {
        /// IN: the port to close.
        pub port: u32,
    }
}

le_struct! {
    /// `struct evtchn_send` ([`op::SEND`]).
    pub struct EvtchnSend {
        /// IN: the local port to signal through.
        pub port: u32,
    }
}

le_struct! {
    /// `struct evtchn_status` ([`op::STATUS`]). The C union `u` is flattened into its
    /// two 32-bit words: `u_word0` at offset 16 holds `u.unbound.dom`,
    /// `u.interdomain.dom` (in its low 16 bits), `u.pirq` or `u.virq`; `u_word1` at
    /// offset 20 holds `u.interdomain.port`. The accessors below read them by name.
    pub struct EvtchnStatus {
        /// IN: the domain to query ([`DOMID_SELF`] or, if privileged, another).
        pub dom: u16,
        /// IN: the port to query.
        pub port: u32,
        /// OUT: one of [`stat`].
        pub status: u32,
        /// OUT: the vCPU notified by the port.
        pub vcpu: u32,
        /// OUT: first word of the union (see the type's documentation).
        pub u_word0: u32,
        /// OUT: second word of the union (`u.interdomain.port`).
        pub u_word1: u32,
    }
}

impl EvtchnStatus {
    /// `u.unbound.dom`: the domain allowed to bind ([`stat::UNBOUND`]).
    pub fn unbound_dom(&self) -> DomId {
        self.u_word0 as u16
    }

    /// `u.interdomain.dom` and `u.interdomain.port`: the connected peer
    /// ([`stat::INTERDOMAIN`]).
    pub fn interdomain(&self) -> (DomId, EvtchnPort) {
        (self.u_word0 as u16, self.u_word1)
    }

    /// `u.virq` ([`stat::VIRQ`]).
    pub fn virq(&self) -> u32 {
        self.u_word0
    }

    /// Sets `u.unbound.dom`, clearing the rest of the union.
    pub fn set_unbound_dom(&mut self, dom: DomId) {
        self.u_word0 = u32::from(dom);
        self.u_word1 = 0;
    }

    /// Sets `u.interdomain`.
    pub fn set_interdomain(&mut self, dom: DomId, port: EvtchnPort) {
        self.u_word0 = u32::from(dom);
        self.u_word1 = port;
    }

    /// Sets `u.virq`, clearing the rest of the union.
    pub fn set_virq(&mut self, virq: u32) {
        self.u_word0 = virq;
        self.u_word1 = 0;
    }
}

le_struct! {
    /// `struct evtchn_bind_vcpu` ([`op::BIND_VCPU`]): change the vCPU a port notifies.
    pub struct EvtchnBindVcpu {
        /// IN: the port.
        pub port: u32,
        /// IN: the vCPU to notify from now on.
        pub vcpu: u32,
    }
}

le_struct! {
    /// `struct evtchn_unmask` ([`op::UNMASK`]).
    pub struct EvtchnUnmask {
        /// IN: the port to unmask.
        pub port: u32,
    }
}

le_struct! {
    /// `struct evtchn_reset` ([`op::RESET`]): close every port of `dom`.
    pub struct EvtchnReset {
        /// IN: the domain ([`DOMID_SELF`] or, if privileged, another).
        pub dom: u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_c_layout() {
        assert_eq!(EvtchnAllocUnbound::SIZE, 8);
        assert_eq!(EvtchnBindInterdomain::SIZE, 12);
        assert_eq!(EvtchnBindVirq::SIZE, 12);
        assert_eq!(EvtchnBindIpi::SIZE, 8);
        assert_eq!(EvtchnClose::SIZE, 4);
        assert_eq!(EvtchnSend::SIZE, 4);
        assert_eq!(EvtchnStatus::SIZE, 24);
        assert_eq!(EvtchnBindVcpu::SIZE, 8);
        assert_eq!(EvtchnUnmask::SIZE, 4);
        assert_eq!(EvtchnReset::SIZE, 2);
        assert_eq!(EVTCHN_2L_NR_CHANNELS, 4096);
        assert_eq!(
            shared_info::EVTCHN_MASK - shared_info::EVTCHN_PENDING,
            EVTCHN_2L_WORDS * 8
        );
        assert_eq!(
            shared_info::VCPU_INFO + shared_info::LEGACY_MAX_VCPUS as usize * vcpu_info::SIZE,
            shared_info::EVTCHN_PENDING
        );
    }

    #[test]
    fn alloc_unbound_round_trip_keeps_padding_zero() {
        let a = EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: 0x0102,
            port: 0x0a0b_0c0d,
        };
        let b = a.to_bytes();
        assert_eq!(b, [0xf0, 0x7f, 0x02, 0x01, 0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(EvtchnAllocUnbound::from_bytes(&b), Some(a));
        assert_eq!(EvtchnAllocUnbound::from_bytes(&b[..7]), None);
    }

    #[test]
    fn bind_interdomain_skips_the_padding_after_remote_dom() {
        let mut b = [0xffu8; 12];
        b[0..2].copy_from_slice(&7u16.to_le_bytes());
        b[4..8].copy_from_slice(&42u32.to_le_bytes());
        let s = EvtchnBindInterdomain::from_bytes(&b).unwrap();
        assert_eq!(s.remote_dom, 7);
        assert_eq!(s.remote_port, 42);
        assert_eq!(s.local_port, u32::MAX);
        let out = s.to_bytes();
        assert_eq!(&out[2..4], &[0, 0]);
        assert_eq!(&out[4..8], &42u32.to_le_bytes());
    }

    #[test]
    fn status_union_accessors() {
        let mut s = EvtchnStatus {
            dom: DOMID_SELF,
            port: 5,
            status: stat::INTERDOMAIN,
            vcpu: 1,
            ..Default::default()
        };
        s.set_interdomain(3, 77);
        assert_eq!(s.interdomain(), (3, 77));
        let b = s.to_bytes();
        assert_eq!(&b[16..18], &3u16.to_le_bytes());
        assert_eq!(&b[20..24], &77u32.to_le_bytes());
        assert_eq!(EvtchnStatus::from_bytes(&b), Some(s));

        s.set_virq(virq::DEBUG);
        assert_eq!(s.virq(), 1);
        assert_eq!(s.u_word1, 0);
        s.set_unbound_dom(9);
        assert_eq!(s.unbound_dom(), 9);
        assert_eq!(s.to_bytes()[16], 9);
    }

    #[test]
    fn short_buffers_are_refused() {
        assert_eq!(EvtchnStatus::from_bytes(&[0; 23]), None);
        assert_eq!(EvtchnReset::from_bytes(&[1]), None);
        assert_eq!(
            EvtchnReset::from_bytes(&[0xf0, 0x7f, 0xee]),
            Some(EvtchnReset { dom: DOMID_SELF })
        );
        assert_eq!(EvtchnClose::from_bytes(&[]), None);
    }
}
