//! `memory_op`: a domain's physical memory. `add_to_physmap` (shared info, grant
//! frames), the reservation queries, and for a privileged domain the builder's calls:
//! `populate_physmap` on another domain, and foreign maps of another domain's frames
//! into its own space (`add_to_physmap_batch` with `XENMAPSPACE_gmfn_foreign`, undone
//! by `remove_from_physmap`). A foreign map holds its target: a destroyed domain is
//! released only when the last map of its pages goes.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use oxen_abi::errno::{EINVAL, ENOMEM, ENOSYS, EPERM, ESRCH};
use oxen_abi::evtchn::DOMID_SELF;
use oxen_abi::memory::{
    self as mem_abi, AddToPhysmap, AddToPhysmapBatch, MemoryReservation, RemoveFromPhysmap,
};
use oxen_core::ept::Perm;
use oxen_core::frames::FRAME_SIZE;
use oxen_core::p2m::Kind;

use super::grant::{ensure_frames, is_reserved, with};
use super::hypercall::{copy_from_guest, copy_to_guest, read_arg};
use super::vcpu::Vcpu;
use super::{Domain, PopulateError, lifecycle, registry};

/// Most extents one `populate_physmap` pass handles, and largest order taken (2 MiB);
/// a longer call continues where it stopped (the start extent rides in the command).
const POPULATE_BATCH: u64 = 64;
const MAX_ORDER: u32 = 9;
/// Most frames one `add_to_physmap_batch` maps.
const MAX_BATCH: u16 = 1024;

/// What a call's `domid` names: the caller itself, or (for a privileged caller) an
/// existing domain that still runs.
fn target_of(vcpu: &Vcpu, domid: u16) -> Result<Arc<Domain>, i64> {
    let me = vcpu.domain.clone();
    if domid == DOMID_SELF || u32::from(domid) == me.id {
        return Ok(me);
    }
    if !me.privileged {
        return Err(-EPERM);
    }
    registry::by_id(u32::from(domid))
        .filter(|t| t.running())
        .ok_or(-ESRCH)
}

/// `memory_op(cmd, arg)`: `XENMEM_add_to_physmap` for shared info and grant frames, and
/// the reservation queries.
pub fn memory_op(vcpu: &mut Vcpu, cmd: u64, arg: u64) -> Result<i64, u64> {
    // The sub-op is the low bits; the rest is the start extent of a continued call.
    let sub = (cmd & mem_abi::MEMOP_CMD_MASK) as u32;
    let start = cmd >> mem_abi::MEMOP_EXTENT_SHIFT;
    Ok(match sub {
        mem_abi::CURRENT_RESERVATION | mem_abi::MAXIMUM_RESERVATION | mem_abi::MAXIMUM_GPFN => {
            reservation(vcpu, sub, arg)
        }
        mem_abi::POPULATE_PHYSMAP => return populate(vcpu, arg, start),
        _ if start != 0 => -ENOSYS,
        mem_abi::ADD_TO_PHYSMAP => add_to_physmap(vcpu, arg),
        mem_abi::ADD_TO_PHYSMAP_BATCH => add_batch(vcpu, arg),
        mem_abi::REMOVE_FROM_PHYSMAP => remove(vcpu, arg),
        _ => -ENOSYS,
    })
}

/// `XENMEM_add_to_physmap`: shared info or a grant-table frame, put at a guest frame of
/// the caller or (privileged) of another domain, as Xen's builder does to seed a new
/// domain's reserved grant entries.
fn add_to_physmap(vcpu: &mut Vcpu, arg: u64) -> i64 {
    let a = read_arg!(vcpu, arg, AddToPhysmap, |e| e);
    let d = match target_of(vcpu, a.domid) {
        Ok(d) => d,
        Err(e) => return e,
    };
    if a.gpfn >= d.gfn_limit || is_reserved(&d, a.gpfn) {
        return -EINVAL;
    }
    match a.space {
        mem_abi::MAPSPACE_SHARED_INFO => {
            if a.idx != 0 {
                return -EINVAL;
            }
            let mut at = d.shared_info_gfn.lock();
            if let Some(old) = at.take() {
                let _ = d.unmap_special(old);
            }
            match d.map_special(a.gpfn, d.shared_info, Perm::RW) {
                Ok(()) => {
                    *at = Some(a.gpfn);
                    0
                }
                Err(e) => physmap_error(e),
            }
        }
        mem_abi::MAPSPACE_GRANT_TABLE => {
            let idx = match u32::try_from(a.idx) {
                Ok(i) => i,
                Err(_) => return -EINVAL,
            };
            let frame = match with(|t| t.physmap_frame(d.id as u16, idx)) {
                Ok(f) => f,
                Err(e) => return e,
            };
            if let Err(e) = ensure_frames(&d, frame + 1) {
                return e;
            }
            let (hpa, old) = {
                let mut list = d.grant_frames.lock();
                let (hpa, gfn) = list[frame as usize];
                list[frame as usize].1 = None;
                (hpa, gfn)
            };
            if let Some(old) = old {
                let _ = d.unmap_special(old);
            }
            match d.map_special(a.gpfn, hpa, Perm::RW) {
                Ok(()) => {
                    d.grant_frames.lock()[frame as usize].1 = Some(a.gpfn);
                    0
                }
                Err(e) => physmap_error(e),
            }
        }
        _ => -EINVAL,
    }
}

/// The reservation queries on the domain the `domid_t` at `arg` names (itself, or any
/// for a privileged caller, as Xen's default policy): pages of RAM (current and maximum
/// are the same: oxen does not balloon yet), or the highest guest frame with RAM.
fn reservation(vcpu: &mut Vcpu, cmd: u32, arg: u64) -> i64 {
    let mut raw = [0u8; 2];
    if let Err(e) = copy_from_guest(vcpu, arg, &mut raw) {
        return e;
    }
    let domid = u16::from_le_bytes(raw);
    let target = match target_of(vcpu, domid) {
        Ok(t) => t,
        Err(e) => return e,
    };
    match cmd {
        mem_abi::MAXIMUM_GPFN => target.max_ram_gfn().map_or(0, |g| g as i64),
        mem_abi::MAXIMUM_RESERVATION => target.max_pages.load(Ordering::Acquire) as i64,
        _ => target.ram_frames() as i64,
    }
}

/// What `add_to_physmap` answers when the EPT refuses: `-ENOMEM` when the domain's
/// table quota is spent (as Xen's P2M pool does), `-EINVAL` otherwise.
fn physmap_error(e: oxen_core::ept::EptError) -> i64 {
    match e {
        oxen_core::ept::EptError::OutOfFrames => -ENOMEM,
        _ => -EINVAL,
    }
}

/// `XENMEM_populate_physmap`: extents of `2^extent_order` frames at the guest frames
/// listed, for the caller or (privileged) another domain. Returns the extents done
/// (fewer than asked when memory or `max_pages` ran out), or the command to continue
/// with after `POPULATE_BATCH` of them.
fn populate(vcpu: &mut Vcpu, arg: u64, start: u64) -> Result<i64, u64> {
    let r = read_arg!(vcpu, arg, MemoryReservation, Ok);
    let target = match target_of(vcpu, r.domid) {
        Ok(t) => t,
        Err(e) => return Ok(e),
    };
    if r.extent_order > MAX_ORDER || start > r.nr_extents || r.mem_flags != 0 {
        return Ok(-EINVAL);
    }
    let frames = 1u64 << r.extent_order;
    let end = r.nr_extents.min(start + POPULATE_BATCH);
    for i in start..end {
        let mut gfn = [0u8; 8];
        if let Err(e) = copy_from_guest(vcpu, r.extent_start.wrapping_add(8 * i), &mut gfn) {
            return Ok(if i == 0 { e } else { i as i64 });
        }
        let gfn = u64::from_le_bytes(gfn);
        // As Xen: an extent is aligned to its size.
        if gfn & (frames - 1) != 0 || is_reserved(&target, gfn) {
            return Ok(if i == 0 { -EINVAL } else { i as i64 });
        }
        match target.populate(gfn, frames) {
            Ok(()) => {}
            Err(PopulateError::Invalid) if i == 0 => return Ok(-EINVAL),
            Err(_) => return Ok(i as i64),
        }
    }
    if end < r.nr_extents {
        return Err(u64::from(mem_abi::POPULATE_PHYSMAP) | end << mem_abi::MEMOP_EXTENT_SHIFT);
    }
    Ok(r.nr_extents as i64)
}

/// `XENMEM_add_to_physmap_batch` with `XENMAPSPACE_gmfn_foreign`: the caller
/// (privileged) maps frames `idxs[i]` of `foreign_domid` at its own `gpfns[i]`; each
/// element's result goes to `errs[i]`.
fn add_batch(vcpu: &mut Vcpu, arg: u64) -> i64 {
    let b = read_arg!(vcpu, arg, AddToPhysmapBatch, |e| e);
    let me = vcpu.domain.clone();
    if b.domid != DOMID_SELF && u32::from(b.domid) != me.id {
        return if me.privileged { -EINVAL } else { -EPERM };
    }
    if u32::from(b.space) != mem_abi::MAPSPACE_GMFN_FOREIGN {
        return -EINVAL;
    }
    if !me.privileged {
        return -EPERM;
    }
    if b.size > MAX_BATCH {
        return -EINVAL;
    }
    let target = match registry::by_id(u32::from(b.foreign_domid)) {
        Some(t) if t.id != me.id && t.running() => t,
        Some(t) if t.id == me.id => return -EINVAL,
        _ => return -ESRCH,
    };
    for i in 0..u64::from(b.size) {
        let mut idx = [0u8; 8];
        let mut gpfn = [0u8; 8];
        if let Err(e) = copy_from_guest(vcpu, b.idxs.wrapping_add(8 * i), &mut idx)
            .and_then(|()| copy_from_guest(vcpu, b.gpfns.wrapping_add(8 * i), &mut gpfn))
        {
            return e;
        }
        let (idx, gpfn) = (u64::from_le_bytes(idx), u64::from_le_bytes(gpfn));
        let err = map_foreign(&me, &target, idx, gpfn);
        let at = b.errs.wrapping_add(4 * i);
        if let Err(e) = copy_to_guest(vcpu, at, &(err as i32).to_le_bytes()) {
            return e;
        }
    }
    0
}

/// Maps `target`'s frame `gfn` at `me`'s `gpfn` (0 or a negative errno): its RAM, or a
/// hypervisor page it was given (shared info, a grant-table frame, its console ring),
/// which lives as long as the target. What the target itself maps from others (grant
/// and foreign maps) is theirs to take back and cannot be mapped on (-EINVAL).
fn map_foreign(me: &Domain, target: &Arc<Domain>, gfn: u64, gpfn: u64) -> i64 {
    let hpa = match target.p2m_lookup(gfn) {
        Some(e) if matches!(e.kind, Kind::Ram | Kind::Special) => e.mfn * FRAME_SIZE,
        _ => return -EINVAL,
    };
    if gpfn >= me.gfn_limit || is_reserved(me, gpfn) {
        return -EINVAL;
    }
    // Counted before it is visible, so the target cannot go in between.
    target.mapped_by_others.fetch_add(1, Ordering::AcqRel);
    let kind = Kind::Foreign {
        domid: target.id as u16,
        gfn,
    };
    match me.map_overlay(gpfn, hpa, kind, Perm::RW) {
        Ok(old) => {
            drop_old(old);
            0
        }
        Err(e) => {
            lifecycle::foreign_unmapped(target);
            physmap_error(e)
        }
    }
}

/// What a foreign map replaced or removed held: its target is let go.
fn drop_old(old: Option<oxen_core::p2m::Entry>) {
    if let Some(e) = old
        && let Kind::Foreign { domid, .. } = e.kind
        && let Some(t) = registry::by_id(u32::from(domid))
    {
        lifecycle::foreign_unmapped(&t);
    }
}

/// `XENMEM_remove_from_physmap` on the caller or (privileged) another domain: takes
/// away the overlay at `gpfn`: a foreign map, shared info or a grant-table frame (which
/// stay the domain's, mapped nowhere until `add_to_physmap` puts them back). The
/// domain's own RAM, its console ring and grant maps are not removed this way in oxen
/// (-EINVAL; grant maps go with `GNTTABOP_unmap_grant_ref`).
fn remove(vcpu: &mut Vcpu, arg: u64) -> i64 {
    let r = read_arg!(vcpu, arg, RemoveFromPhysmap, |e| e);
    let d = match target_of(vcpu, r.domid) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let gpfn = r.gpfn;
    match d.p2m_lookup(gpfn).map(|e| e.kind) {
        Some(Kind::Foreign { .. }) => {}
        Some(Kind::Special) => {
            let mut info = d.shared_info_gfn.lock();
            let mut frames = d.grant_frames.lock();
            if *info == Some(gpfn) {
                *info = None;
            } else if let Some(f) = frames.iter_mut().find(|f| f.1 == Some(gpfn)) {
                f.1 = None;
            } else {
                return -EINVAL;
            }
        }
        _ => return -EINVAL,
    }
    match d.unmap_overlay(gpfn) {
        Ok(old) => {
            drop_old(old);
            0
        }
        Err(e) => physmap_error(e),
    }
}
