//! Thin typed wrappers for the hypercalls of Xen's paravirtual I/O: `memory_op`
//! (`XENMEM_add_to_physmap`), `hvm_op` (`HVMOP_set_param` / `HVMOP_get_param`),
//! `event_channel_op`, `grant_table_op` and `sched_op(SCHEDOP_poll)`.
//!
//! Every argument structure is built as the little-endian bytes of its C layout in
//! `/usr/include/xen` (x86_64): the event-channel and grant-table ones with the
//! `to_bytes`/`from_bytes` of [`oxen_abi`]'s structures ([`oxen_abi::evtchn`],
//! [`oxen_abi::grant_table`], [`AddToPhysmap`], [`HvmParam`], [`SchedPoll`]). The
//! buffer lives on the caller's stack, which the runtime identity-maps, so
//! its address is the guest-virtual pointer the hypervisor translates.
//!
//! Errors are the hypercall's negative errno (`-ENOSYS` from a hypervisor without the
//! operation). Batched grant operations return 0 for the call and put a `GNTST_*` code
//! in each element's `status`: the typed wrappers hand back the element.
//!
//! The runtime keeps the top slots of the [`crate::mm`] window for the pages it maps
//! ([`window_slot`]); guests use slots below [`window_slot::FIRST_RUNTIME`].

pub use oxen_abi::SchedPoll;
use oxen_abi::evtchn::{
    self, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnClose, EvtchnSend, EvtchnStatus, EvtchnUnmask,
};
use oxen_abi::grant_table::{
    self as gnt, GnttabCopy, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize,
    GnttabSetVersion, GnttabSetupTable, GnttabUnmapGrantRef,
};
pub use oxen_abi::hvm::HvmParam;
use oxen_abi::hypercall as nr;
pub use oxen_abi::memory::AddToPhysmap;

use crate::hypercall::hypercall;

pub use oxen_abi::evtchn::{DOMID_SELF, DomId, EvtchnPort};
pub use oxen_abi::grant_table::{GrantHandle, GrantRef};

/// A failed hypercall: the negative errno it returned.
pub type Errno = i64;

/// Which step of a set-up failed, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed {
    /// The operation, e.g. `"XENMEM_add_to_physmap(shared_info)"`.
    pub op: &'static str,
    /// Its result (a negative errno, or a `GNTST_*` status for grant operations).
    pub rc: i64,
}

impl core::fmt::Display for Failed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} failed: {}", self.op, self.rc)
    }
}

/// Window slots (see [`crate::mm::map_phys`]) the runtime's PV pages use.
pub mod window_slot {
    /// `shared_info` (`events.rs`).
    pub const SHARED_INFO: usize = 511;
    /// Grant table frame 0 (`grant.rs`).
    pub const GRANT_TABLE: usize = 510;
    /// The PV console ring (`xencons.rs`).
    pub const CONSOLE: usize = 509;
    /// The XenStore interface page (`xenbus.rs`).
    pub const STORE: usize = 508;
    /// Slots from here up are the runtime's; guests use the ones below.
    pub const FIRST_RUNTIME: usize = 504;
}

fn ok(rc: i64) -> Result<(), Errno> {
    if rc == 0 { Ok(()) } else { Err(rc) }
}

// ---------------------------------------------------------------------------------
// memory_op

/// `XENMEM_*` sub-operations (`memory.h`) used here.
pub mod xenmem {
    /// `XENMEM_add_to_physmap`.
    pub const ADD_TO_PHYSMAP: u32 = oxen_abi::memory::ADD_TO_PHYSMAP;
}

/// `XENMAPSPACE_*`: what `add_to_physmap` maps (`memory.h`).
pub mod mapspace {
    /// The domain's `shared_info` page (`idx` 0).
    pub const SHARED_INFO: u32 = oxen_abi::memory::MAPSPACE_SHARED_INFO;
    /// Frame `idx` of the domain's grant table.
    pub const GRANT_TABLE: u32 = oxen_abi::memory::MAPSPACE_GRANT_TABLE;
}

/// `memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to what `cmd` expects (the hypervisor may write it).
pub unsafe fn memory_op(cmd: u32, arg: u64) -> i64 {
    // SAFETY: as for this function.
    unsafe { hypercall(nr::MEMORY_OP, u64::from(cmd), arg, 0, 0, 0) }
}

/// `XENMEM_add_to_physmap` for the calling domain: make page `idx` of `space` appear at
/// guest frame `gpfn`.
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), Errno> {
    let mut b = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    }
    .to_bytes();
    // SAFETY: `b` is a valid xen_add_to_physmap for the duration of the call.
    ok(unsafe { memory_op(xenmem::ADD_TO_PHYSMAP, b.as_mut_ptr() as u64) })
}

// ---------------------------------------------------------------------------------
// hvm_op

/// `HVMOP_*` sub-operations (`hvm/hvm_op.h`) used here.
pub mod hvmop {
    pub const SET_PARAM: u32 = oxen_abi::hvm::HVMOP_SET_PARAM;
    pub const GET_PARAM: u32 = oxen_abi::hvm::HVMOP_GET_PARAM;
}

/// `HVM_PARAM_*` indices (`hvm/params.h`): `CALLBACK_IRQ` (how event-channel upcalls
/// are delivered, see [`callback_via_vector`]), `STORE_PFN`, `STORE_EVTCHN`,
/// `CONSOLE_PFN`, `CONSOLE_EVTCHN`, ...
pub use oxen_abi::hvm::param as hvm_param;

/// `HVM_PARAM_CALLBACK_TYPE_VECTOR`, in bits 63:56 of the `CALLBACK_IRQ` value.
pub const CALLBACK_TYPE_VECTOR: u64 = oxen_abi::hvm::CALLBACK_TYPE_VECTOR;

/// The `HVM_PARAM_CALLBACK_IRQ` value asking for upcalls as interrupt `vector`.
pub const fn callback_via_vector(vector: u8) -> u64 {
    (CALLBACK_TYPE_VECTOR << oxen_abi::hvm::CALLBACK_TYPE_SHIFT) | vector as u64
}

/// `hvm_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to what `cmd` expects (the hypervisor may write it).
pub unsafe fn hvm_op(cmd: u32, arg: u64) -> i64 {
    // SAFETY: as for this function.
    unsafe { hypercall(nr::HVM_OP, u64::from(cmd), arg, 0, 0, 0) }
}

/// `HVMOP_set_param` of the calling domain.
pub fn set_param(index: u32, value: u64) -> Result<(), Errno> {
    set_param_of(DOMID_SELF, index, value)
}

/// `HVMOP_set_param` of domain `domid` (another one: a privileged caller's toolstack
/// parameters, such as where its XenStore page is).
pub fn set_param_of(domid: DomId, index: u32, value: u64) -> Result<(), Errno> {
    let mut b = HvmParam {
        domid,
        index,
        value,
    }
    .to_bytes();
    // SAFETY: `b` is a valid xen_hvm_param for the duration of the call.
    ok(unsafe { hvm_op(hvmop::SET_PARAM, b.as_mut_ptr() as u64) })
}

/// `HVMOP_get_param` of the calling domain.
pub fn get_param(index: u32) -> Result<u64, Errno> {
    get_param_of(DOMID_SELF, index)
}

/// `HVMOP_get_param` of domain `domid`.
pub fn get_param_of(domid: DomId, index: u32) -> Result<u64, Errno> {
    let mut b = HvmParam {
        domid,
        index,
        value: 0,
    }
    .to_bytes();
    // SAFETY: `b` is a valid xen_hvm_param for the duration of the call; the hypervisor
    // writes `value`.
    ok(unsafe { hvm_op(hvmop::GET_PARAM, b.as_mut_ptr() as u64) })?;
    Ok(HvmParam::from_bytes(&b).map_or(0, |p| p.value))
}

// ---------------------------------------------------------------------------------
// event_channel_op

/// `event_channel_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to what `cmd` expects (the hypervisor may write it).
pub unsafe fn event_channel_op(cmd: u32, arg: u64) -> i64 {
    // SAFETY: as for this function.
    unsafe { hypercall(nr::EVENT_CHANNEL_OP, u64::from(cmd), arg, 0, 0, 0) }
}

/// Runs `event_channel_op(cmd)` over `b`, the bytes of its argument.
fn evtchn_call(cmd: u32, b: &mut [u8]) -> Result<(), Errno> {
    // SAFETY: every caller passes the bytes of the structure `cmd` takes, built by its
    // `to_bytes`; the hypervisor writes only within it.
    ok(unsafe { event_channel_op(cmd, b.as_mut_ptr() as u64) })
}

/// `EVTCHNOP_alloc_unbound`: a new port of the caller that `remote_dom` may bind to.
pub fn alloc_unbound(remote_dom: DomId) -> Result<EvtchnPort, Errno> {
    alloc_unbound_in(DOMID_SELF, remote_dom)
}

/// `EVTCHNOP_alloc_unbound` in domain `dom` (another one for a privileged caller, as a
/// toolstack makes a new domain's XenStore and console ports).
pub fn alloc_unbound_in(dom: DomId, remote_dom: DomId) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnAllocUnbound {
        dom,
        remote_dom,
        port: 0,
    }
    .to_bytes();
    evtchn_call(evtchn::op::ALLOC_UNBOUND, &mut b)?;
    Ok(EvtchnAllocUnbound::from_bytes(&b).map_or(0, |s| s.port))
}

/// `EVTCHNOP_bind_interdomain`: a new local port connected to `remote_port` of
/// `remote_dom` (which must have allocated it unbound for us).
pub fn bind_interdomain(remote_dom: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnBindInterdomain {
        remote_dom,
        remote_port,
        local_port: 0,
    }
    .to_bytes();
    evtchn_call(evtchn::op::BIND_INTERDOMAIN, &mut b)?;
    Ok(EvtchnBindInterdomain::from_bytes(&b).map_or(0, |s| s.local_port))
}

/// `EVTCHNOP_bind_virq`: a port for `virq` (see [`oxen_abi::evtchn::virq`]) on `vcpu`.
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    }
    .to_bytes();
    evtchn_call(evtchn::op::BIND_VIRQ, &mut b)?;
    Ok(EvtchnBindVirq::from_bytes(&b).map_or(0, |s| s.port))
}

/// `EVTCHNOP_bind_ipi`: a port that signals `vcpu` of this domain.
pub fn bind_ipi(vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnBindIpi { vcpu, port: 0 }.to_bytes();
    evtchn_call(evtchn::op::BIND_IPI, &mut b)?;
    Ok(EvtchnBindIpi::from_bytes(&b).map_or(0, |s| s.port))
}

/// `EVTCHNOP_close`.
pub fn close(port: EvtchnPort) -> Result<(), Errno> {
    let mut b = EvtchnClose { port }.to_bytes();
    evtchn_call(evtchn::op::CLOSE, &mut b)
}

/// `EVTCHNOP_send`: signal the other end of `port`.
pub fn send(port: EvtchnPort) -> Result<(), Errno> {
    let mut b = EvtchnSend { port }.to_bytes();
    evtchn_call(evtchn::op::SEND, &mut b)
}

/// `EVTCHNOP_status` of the caller's `port`.
pub fn status(port: EvtchnPort) -> Result<EvtchnStatus, Errno> {
    let mut b = EvtchnStatus {
        dom: DOMID_SELF,
        port,
        ..Default::default()
    }
    .to_bytes();
    evtchn_call(evtchn::op::STATUS, &mut b)?;
    Ok(EvtchnStatus::from_bytes(&b).unwrap_or_default())
}

/// `EVTCHNOP_unmask`: clear the port's mask bit; the hypervisor re-raises the upcall if
/// the port is pending.
pub fn unmask(port: EvtchnPort) -> Result<(), Errno> {
    let mut b = EvtchnUnmask { port }.to_bytes();
    evtchn_call(evtchn::op::UNMASK, &mut b)
}

/// `EVTCHNOP_bind_vcpu`: notify `vcpu` for `port` from now on.
pub fn bind_vcpu(port: EvtchnPort, vcpu: u32) -> Result<(), Errno> {
    let mut b = EvtchnBindVcpu { port, vcpu }.to_bytes();
    evtchn_call(evtchn::op::BIND_VCPU, &mut b)
}

// ---------------------------------------------------------------------------------
// grant_table_op

/// `grant_table_op(cmd, arg, count)`.
///
/// # Safety
/// `arg` must point to `count` structures of the kind `cmd` takes (the hypervisor
/// writes their OUT fields; `setup_table` also writes its `frame_list`).
pub unsafe fn grant_table_op(cmd: u32, arg: u64, count: u32) -> i64 {
    // SAFETY: as for this function.
    unsafe {
        hypercall(
            nr::GRANT_TABLE_OP,
            u64::from(cmd),
            arg,
            u64::from(count),
            0,
            0,
        )
    }
}

/// Runs `grant_table_op(cmd, .., 1)` over `b`, the bytes of one argument structure.
fn gnttab_call(cmd: u32, b: &mut [u8]) -> Result<(), Errno> {
    // SAFETY: every caller passes the bytes of one structure of the kind `cmd` takes,
    // built by its `to_bytes`; the hypervisor writes only within it.
    ok(unsafe { grant_table_op(cmd, b.as_mut_ptr() as u64, 1) })
}

/// `GNTTABOP_setup_table` for the calling domain: grow its table to `frame_list.len()`
/// frames and fill `frame_list` with their frame numbers. The element comes back with
/// its `status`.
pub fn setup_table(frame_list: &mut [u64]) -> Result<GnttabSetupTable, Errno> {
    let mut b = GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: frame_list.len() as u32,
        status: 0,
        frame_list: frame_list.as_mut_ptr() as u64,
    }
    .to_bytes();
    gnttab_call(gnt::op::SETUP_TABLE, &mut b)?;
    Ok(GnttabSetupTable::from_bytes(&b).unwrap_or_default())
}

/// `GNTTABOP_query_size` for the calling domain (`nr_frames`, `max_nr_frames`,
/// `status`).
pub fn query_size() -> Result<GnttabQuerySize, Errno> {
    let mut b = GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    }
    .to_bytes();
    gnttab_call(gnt::op::QUERY_SIZE, &mut b)?;
    Ok(GnttabQuerySize::from_bytes(&b).unwrap_or_default())
}

/// `GNTTABOP_map_grant_ref` of one element; the returned element has `status`,
/// `handle` and `dev_bus_addr` filled in.
pub fn map_grant_ref(op: &GnttabMapGrantRef) -> Result<GnttabMapGrantRef, Errno> {
    let mut b = op.to_bytes();
    gnttab_call(gnt::op::MAP_GRANT_REF, &mut b)?;
    Ok(GnttabMapGrantRef::from_bytes(&b).unwrap_or_default())
}

/// `GNTTABOP_unmap_grant_ref` of one element; the returned element has `status`.
pub fn unmap_grant_ref(op: &GnttabUnmapGrantRef) -> Result<GnttabUnmapGrantRef, Errno> {
    let mut b = op.to_bytes();
    gnttab_call(gnt::op::UNMAP_GRANT_REF, &mut b)?;
    Ok(GnttabUnmapGrantRef::from_bytes(&b).unwrap_or_default())
}

/// `GNTTABOP_copy` of one element; the returned element has `status`.
pub fn copy(op: &GnttabCopy) -> Result<GnttabCopy, Errno> {
    let mut b = op.to_bytes();
    gnttab_call(gnt::op::COPY, &mut b)?;
    Ok(GnttabCopy::from_bytes(&b).unwrap_or_default())
}

/// `GNTTABOP_set_version`: returns the version in force afterwards. `-ENOSYS` means
/// the hypervisor has only version 1.
pub fn set_version(version: u32) -> Result<u32, Errno> {
    let mut b = GnttabSetVersion { version }.to_bytes();
    gnttab_call(gnt::op::SET_VERSION, &mut b)?;
    Ok(GnttabSetVersion::from_bytes(&b).map_or(0, |s| s.version))
}

/// `GNTTABOP_get_version` of the calling domain.
pub fn get_version() -> Result<u32, Errno> {
    let mut b = GnttabGetVersion {
        dom: DOMID_SELF,
        pad: 0,
        version: 0,
    }
    .to_bytes();
    gnttab_call(gnt::op::GET_VERSION, &mut b)?;
    Ok(GnttabGetVersion::from_bytes(&b).map_or(0, |s| s.version))
}

// ---------------------------------------------------------------------------------
// sched_op(SCHEDOP_poll)

/// `SCHEDOP_poll`: block until one of `ports` is pending or system time reaches
/// `timeout_ns` (0: no timeout). Returns 0 on an event or the timeout.
pub fn poll(ports: &[EvtchnPort], timeout_ns: u64) -> Result<(), Errno> {
    let b = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        timeout: timeout_ns,
    }
    .to_bytes();
    // SAFETY: `b` is a valid sched_poll naming `ports`, both live for the call; the
    // hypervisor only reads them.
    ok(unsafe { crate::hypercall::sched_op(oxen_abi::sched_op::POLL, b.as_ptr() as u64) })
}

// ---------------------------------------------------------------------------------

/// This domain's id, from Xen's HVM CPUID leaf (base + 4, ECX when EAX bit 4 is set).
pub fn domid() -> Option<DomId> {
    let base = crate::arch::cpuid(oxen_abi::cpuid::BASE, 0);
    if [base.ebx, base.ecx, base.edx] != oxen_abi::cpuid::SIGNATURE
        || base.eax < oxen_abi::cpuid::BASE + 4
    {
        return None;
    }
    let leaf = crate::arch::cpuid(oxen_abi::cpuid::BASE + 4, 0);
    (leaf.eax & (1 << 4) != 0).then_some(leaf.ecx as DomId)
}
