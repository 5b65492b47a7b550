//! Grant tables (version 1) on top of `oxen_core::grant`.
//!
//! A domain's grant table lives in frames of hypervisor memory, allocated as the table
//! grows, which the guest maps into its physical space with `add_to_physmap`. Entries
//! are read and changed with atomic instructions (the granter writes them whenever it
//! likes). A grant mapping is an EPT entry in the mapper; removing one returns only when
//! no pCPU can still use the old translation. A finished domain whose pages others still
//! have mapped keeps its memory until they unmap.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use oxen_abi::errno::{EFAULT, EINVAL, ENOSYS};
use oxen_abi::evtchn::DOMID_SELF;
use oxen_abi::grant_table::{self as abi, gntst, op};
use oxen_core::ept::Perm;
use oxen_core::grant::{EntryHeader, GrantConfig, GrantEntries, GrantMemory, GrantTables};
use oxen_core::p2m::Kind;
use spin::Mutex;

use super::hypercall::{copy_from_guest, copy_to_guest};
use super::vcpu::Vcpu;
use super::{Domain, event};
use crate::arch::paging;
use crate::mm::frames;

/// Every domain's grant state, under one lock.
static TABLES: Mutex<Option<GrantTables>> = Mutex::new(None);

/// Most table frames a domain may have (Xen's default `max_grant_frames` is 64).
const MAX_FRAMES: u32 = 32;
/// Most elements one `grant_table_op` call handles (Xen continues longer batches).
const MAX_BATCH: u64 = 1024;

pub(super) fn with<R>(f: impl FnOnce(&mut GrantTables) -> R) -> R {
    let mut t = TABLES.lock();
    f(t.get_or_insert_with(GrantTables::new))
}

/// Registers a new domain's (empty) table.
pub fn add_domain(d: &Domain) {
    let cfg = GrantConfig {
        max_frames: MAX_FRAMES,
        privileged: d.privileged,
        ..GrantConfig::default()
    };
    if let Err(e) = with(|t| t.add_domain(d.id as u16, cfg)) {
        log::error!("domain {}: no grant table: {e:?}", d.id);
    }
    let _ = ensure_frames(d, oxen_core::grant::INITIAL_FRAMES);
}

/// Allocates table frames up to `n` (zeroed: every entry invalid).
pub(super) fn ensure_frames(d: &Domain, n: u32) -> Result<(), i64> {
    let mut frames_of = d.grant_frames.lock();
    while frames_of.len() < n as usize {
        let f = frames::alloc_zeroed(1).map_err(|_| -oxen_abi::errno::ENOMEM)?;
        frames_of.push((f, None));
    }
    Ok(())
}

/// The grant state's view of memory.
struct Mem;

impl Mem {
    /// The host address of entry `gref` of `granter`'s table.
    fn entry(granter: u16, gref: u32) -> Option<u64> {
        let d = super::by_id(u32::from(granter))?;
        let frames_of = d.grant_frames.lock();
        let (frame, _) = frames_of.get((gref / abi::ENTRIES_PER_FRAME) as usize)?;
        Some(frame + u64::from(gref % abi::ENTRIES_PER_FRAME) * 8)
    }

    fn header(granter: u16, gref: u32) -> Option<&'static AtomicU32> {
        let hpa = Self::entry(granter, gref)?;
        // SAFETY: the entry lies in a grant-table frame of the granter (hypervisor
        // memory that lives until the domain is released, which waits for the grant
        // state to let go of it), 4-byte aligned, mapped by the window; the guest
        // writes it concurrently, which atomics tolerate.
        Some(unsafe { AtomicU32::from_ptr(paging::phys_to_virt(hpa).as_mut_ptr::<u32>()) })
    }
}

fn split(h: u32) -> EntryHeader {
    EntryHeader {
        flags: h as u16,
        domid: (h >> 16) as u16,
    }
}

fn join(h: EntryHeader) -> u32 {
    u32::from(h.flags) | (u32::from(h.domid) << 16)
}

impl GrantEntries for Mem {
    fn read_header(&mut self, granter: u16, gref: u32) -> EntryHeader {
        Self::header(granter, gref)
            .map_or(EntryHeader::default(), |a| split(a.load(Ordering::Acquire)))
    }

    fn read_frame(&mut self, granter: u16, gref: u32) -> u32 {
        Self::entry(granter, gref).map_or(0, |hpa| {
            // SAFETY: as in `header`, the frame field 4 bytes further.
            unsafe { AtomicU32::from_ptr(paging::phys_to_virt(hpa + 4).as_mut_ptr::<u32>()) }
                .load(Ordering::Acquire)
        })
    }

    fn cmpxchg_header(
        &mut self,
        granter: u16,
        gref: u32,
        old: EntryHeader,
        new: EntryHeader,
    ) -> EntryHeader {
        let Some(a) = Self::header(granter, gref) else {
            return EntryHeader::default();
        };
        match a.compare_exchange(join(old), join(new), Ordering::AcqRel, Ordering::Acquire) {
            Ok(v) | Err(v) => split(v),
        }
    }

    fn clear_flags(&mut self, granter: u16, gref: u32, mask: u16) {
        if let Some(hpa) = Self::entry(granter, gref) {
            // SAFETY: as in `header`; the flags are the entry's first 16 bits.
            unsafe { AtomicU16::from_ptr(paging::phys_to_virt(hpa).as_mut_ptr::<u16>()) }
                .fetch_and(!mask, Ordering::AcqRel);
        }
    }
}

impl GrantMemory for Mem {
    fn get_frame(&mut self, dom: u16, gfn: u64, _readonly: bool) -> Result<u64, i16> {
        super::by_id(u32::from(dom))
            .and_then(|d| d.ram_frame(gfn))
            .ok_or(gntst::BAD_PAGE)
    }

    // RAM frames belong to their domain until it is released, which waits while others
    // have its pages mapped: no per-frame count is needed.
    fn put_frame(&mut self, _dom: u16, _frame: u64) {}

    fn map_grant(&mut self, mapper: u16, gfn: u64, frame: u64, readonly: bool) -> Result<(), i16> {
        let d = super::by_id(u32::from(mapper)).ok_or(gntst::BAD_DOMAIN)?;
        if gfn >= d.gfn_limit || is_reserved(&d, gfn) {
            return Err(gntst::GENERAL_ERROR);
        }
        let perm = if readonly { Perm::R } else { Perm::RW };
        d.map_overlay(gfn, frame, Kind::Grant, perm)
            .map(drop)
            .map_err(|_| gntst::GENERAL_ERROR)
    }

    fn unmap_grant(&mut self, mapper: u16, gfn: u64, frame: u64) -> Result<(), i16> {
        let d = super::by_id(u32::from(mapper)).ok_or(gntst::BAD_DOMAIN)?;
        let mut src = super::EptFrames::new(&d.ept_quota);
        let now = d.ept.lock().translate(&mut src, gfn << 12).map(|t| t.0);
        if now != Some(frame) {
            return Err(gntst::GENERAL_ERROR);
        }
        d.unmap_overlay(gfn)
            .map(drop)
            .map_err(|_| gntst::GENERAL_ERROR)
    }

    fn copy(&mut self, src: u64, src_off: u16, dst: u64, dst_off: u16, len: u16) {
        let s = paging::phys_to_virt(src + u64::from(src_off)).as_ptr::<u8>();
        let d = paging::phys_to_virt(dst + u64::from(dst_off)).as_mut_ptr::<u8>();
        // SAFETY: both ranges lie within one page each (checked by the grant logic) of
        // memory the window maps and that belongs to live domains; `copy` allows overlap.
        unsafe { core::ptr::copy(s, d, usize::from(len)) };
    }
}

/// Whether `gfn` is one of the domain's reserved pages (its console ring).
pub(super) fn is_reserved(d: &Domain, gfn: u64) -> bool {
    gfn == event::console_gfn(d.ram_size)
}

/// `grant_table_op(cmd, uop, count)`.
pub fn grant_table_op(vcpu: &mut Vcpu, cmd: u64, uop: u64, count: u64) -> i64 {
    let d = vcpu.domain.clone();
    let me = d.id as u16;
    let Ok(cmd) = u32::try_from(cmd) else {
        return -ENOSYS;
    };
    if count > MAX_BATCH {
        return -EINVAL;
    }
    macro_rules! each {
        ($t:ty, |$x:ident| $body:expr) => {{
            for i in 0..count {
                let at = uop.wrapping_add(i * <$t>::SIZE as u64);
                let mut raw = [0u8; <$t>::SIZE];
                if let Err(e) = copy_from_guest(vcpu, at, &mut raw) {
                    return e;
                }
                let Some(mut $x) = <$t>::from_bytes(&raw) else {
                    return -EFAULT;
                };
                $body;
                if let Err(e) = copy_to_guest(vcpu, at, &$x.to_bytes()) {
                    return e;
                }
            }
            0
        }};
    }
    match cmd {
        op::MAP_GRANT_REF => each!(abi::GnttabMapGrantRef, |x| {
            with(|t| t.map(me, &mut x, &mut Mem));
        }),
        op::UNMAP_GRANT_REF => each!(abi::GnttabUnmapGrantRef, |x| {
            let granter = with(|t| t.mapping(me, x.handle).map(|m| m.granter));
            with(|t| t.unmap(me, &mut x, &mut Mem));
            // A finished granter may have waited for this mapping to go.
            if let Some(g) = granter.and_then(|g| super::by_id(u32::from(g))) {
                super::lifecycle::try_release(&g);
            }
        }),
        op::COPY => each!(abi::GnttabCopy, |x| {
            with(|t| t.copy(me, &mut x, &mut Mem));
        }),
        op::QUERY_SIZE => each!(abi::GnttabQuerySize, |x| {
            with(|t| t.query_size(me, &mut x));
        }),
        op::SETUP_TABLE => each!(abi::GnttabSetupTable, |x| {
            if with(|t| t.setup_table(me, &mut x)) == gntst::OKAY {
                let target = if x.dom == DOMID_SELF { me } else { x.dom };
                if let Some(td) = super::by_id(u32::from(target)) {
                    if ensure_frames(&td, x.nr_frames).is_err() {
                        x.status = gntst::GENERAL_ERROR;
                    } else {
                        // Where each frame is mapped in the guest (or ~0 if nowhere).
                        let list = td.grant_frames.lock().clone();
                        for (k, (_, gfn)) in list.iter().take(x.nr_frames as usize).enumerate() {
                            let v = gfn.unwrap_or(u64::MAX).to_le_bytes();
                            if copy_to_guest(vcpu, x.frame_list.wrapping_add(8 * k as u64), &v)
                                .is_err()
                            {
                                x.status = gntst::BAD_VIRT_ADDR;
                                break;
                            }
                        }
                    }
                }
            }
        }),
        op::SET_VERSION => {
            let mut raw = [0u8; abi::GnttabSetVersion::SIZE];
            if let Err(e) = copy_from_guest(vcpu, uop, &mut raw) {
                return e;
            }
            let Some(mut x) = abi::GnttabSetVersion::from_bytes(&raw) else {
                return -EFAULT;
            };
            let r = with(|t| t.set_version(me, &mut x));
            match copy_to_guest(vcpu, uop, &x.to_bytes()) {
                Ok(()) => r,
                Err(e) => e,
            }
        }
        op::GET_VERSION => {
            let mut raw = [0u8; abi::GnttabGetVersion::SIZE];
            if let Err(e) = copy_from_guest(vcpu, uop, &mut raw) {
                return e;
            }
            let Some(mut x) = abi::GnttabGetVersion::from_bytes(&raw) else {
                return -EFAULT;
            };
            let r = with(|t| t.get_version(me, &mut x));
            match copy_to_guest(vcpu, uop, &x.to_bytes()) {
                Ok(()) => r,
                Err(e) => e,
            }
        }
        _ => -ENOSYS,
    }
}

/// A dying domain gives up the grant mappings it holds (its EPT goes with it) and can
/// no longer be named by a map or copy. Returns the granters whose pages it had mapped
/// (each may now be free to go).
pub fn domain_dying(d: &Domain) -> Vec<Arc<Domain>> {
    let released = with(|t| t.domain_dying(d.id as u16, &mut Mem)).unwrap_or_default();
    released
        .into_iter()
        .filter_map(|r| super::by_id(u32::from(r.mapping.granter)))
        .collect()
}

/// Whether other domains still have pages of `d` mapped (its memory must stay).
pub fn pinned_by_others(d: &Domain) -> bool {
    with(|t| !t.active_pins(d.id as u16).is_empty())
}

/// Forgets a released domain's grant state.
pub fn remove_domain(d: &Domain) {
    let _ = with(|t| t.remove_domain(d.id as u16));
}
