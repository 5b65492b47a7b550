//! How a domain ends: one order, in one place.
//!
//! 1. [`Domain::finish`] records why (the first reason wins) and marks the domain dying.
//!    From then on the dispatcher refuses its vCPUs' hypercalls (a vCPU still in the
//!    guest on another pCPU stops at its next one), and no other domain can name it as
//!    the target of anything that creates state (`existing` in `event.rs`, the grant
//!    tables once it is torn down, `domctl`).
//! 2. [`stop`]: its vCPUs leave the scheduler and their timers stop; the pCPUs running
//!    them are kicked and put them back at their next exit.
//! 3. [`try_release`], called whenever a pCPU lets go of one of its vCPUs: once no pCPU
//!    holds any (none runs, none is inside a hypercall), the vCPUs are retired for good
//!    (their VMCSs freed) and the domain is torn down: its event channels are killed,
//!    then closed (their other ends become unbound), it gives up the grant mappings it
//!    holds, and the privileged domains hear of it (`VIRQ_DOM_EXC`). Nothing of the
//!    domain's can run any more while this happens, so nothing it does can outlive it.
//! 4. Its memory (RAM, EPT tables, shared info, console and grant frames) goes back once
//!    no other domain maps one of its pages (the last unmap calls [`try_release`]
//!    again); every pCPU flushes its EPT translations before it next enters a guest.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use oxen_core::p2m::Kind;
use oxen_core::vcpu_state::StartState;

use super::sched::{self as glue, EPT_GENERATION, VcpuSlot};
use super::vcpu::Vcpu;
use super::{Domain, DomainState, event, grant, registry};
use crate::arch::time;

/// Gives `d` its `n` vCPUs in the scheduler (on `affinity`), vCPU 0 with `start` (if
/// given), every one down (vCPU 0 comes up when the domain starts).
pub fn attach_vcpus(
    d: &Arc<Domain>,
    n: u32,
    affinity: u64,
    start: Option<StartState>,
) -> Result<(), String> {
    let mut slots = Vec::new();
    for i in 0..n {
        let now = time::now();
        let id =
            glue::with(|s| s.add_vcpu_at(d.sched, affinity, now)).map_err(|e| format!("{e:?}"))?;
        let vcpu = Vcpu::new(d.clone(), i).map_err(|e| format!("{e}"))?;
        let slot = Arc::new(VcpuSlot::new(
            d.id,
            i,
            id,
            vcpu,
            if i == 0 { start } else { None },
        ));
        if i > 0 || start.is_none() {
            let _ = glue::with(|s| s.offline(id, now));
        }
        glue::register(slot.clone());
        slots.push(slot);
    }
    d.vcpus.call_once(|| slots);
    Ok(())
}

/// What a control domain asks `createdomain` for.
pub struct CreateParams {
    /// 0 (or a reserved id): the lowest free one.
    pub domid: u32,
    pub max_vcpus: u32,
    pub handle: [u8; 16],
    /// The creator's id, for the log.
    pub by: u32,
}

/// Why `createdomain` refused.
#[derive(Debug)]
pub enum CreateError {
    Id(registry::IdError),
    /// No memory (for the domain's pages, or the scheduler refused).
    NoMemory(String),
}

/// Creates an empty domain, paused, with `max_vcpus` vCPUs that have no state yet and
/// no memory (`populate_physmap` gives it some, `sethvmcontext` vCPU 0's registers, the
/// last `unpausedomain` starts it). Returns its id.
pub fn create(p: &CreateParams) -> Result<Arc<Domain>, CreateError> {
    let id = if p.domid == 0 || p.domid > registry::MAX_ID {
        registry::reserve_free()
    } else {
        registry::reserve(p.domid)
    }
    .map_err(CreateError::Id)?;
    let fail = |why: String| {
        registry::unreserve(id);
        CreateError::NoMemory(why)
    };
    let sched = glue::with(|s| s.add_domain(256, 0)).map_err(|e| fail(format!("{e:?}")))?;
    let name = format!("domain{id}");
    let spec = super::Spec {
        id,
        name: &name,
        vcpus: p.max_vcpus,
        privileged: false,
        ram_size: 0,
        quota_mib: 1024,
        at_boot: false,
    };
    let d = match Domain::empty(&spec, sched) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            let _ = glue::with(|s| s.remove_domain(sched, time::now()));
            return Err(fail(format!("{e}")));
        }
    };
    *d.handle.lock() = p.handle;
    grant::add_domain(&d);
    event::write_wallclock(&d);
    let affinity = super::run::usable_cpus();
    if let Err(why) = attach_vcpus(&d, p.max_vcpus, affinity, None) {
        // Nothing of it ever ran: take it apart the usual way.
        registry::insert(d.clone());
        d.finish(DomainState::Destroyed("could not be created"));
        d.destroyed.store(true, Ordering::Release);
        stop(&d);
        return Err(CreateError::NoMemory(why));
    }
    registry::insert(d.clone());
    log::debug!(
        "domain {id}: created by domain {} ({} vCPUs)",
        p.by,
        p.max_vcpus
    );
    Ok(d)
}

/// `pausedomain`: one more pause; the first stops its vCPUs and, as Xen's does, returns
/// once none of them is on a pCPU any more (they leave at their next exit, an IPI away).
/// A privileged domain's vCPU may itself be waiting in a pause, so for those oxen does
/// not wait (two control domains pausing each other would wait forever).
pub fn pause(d: &Domain) {
    if d.pause_count.fetch_add(1, Ordering::AcqRel) == 0 {
        let now = time::now();
        let mut kicks = 0;
        for slot in d.vcpus.get().into_iter().flatten() {
            if slot.up.load(Ordering::Acquire) {
                let id = slot.sched;
                if let Ok(Some(cpu)) = glue::with(|s| s.offline(id, now)) {
                    kicks |= 1 << cpu;
                }
            }
        }
        glue::kick(kicks);
        if !d.privileged {
            for slot in d.vcpus.get().into_iter().flatten() {
                while slot.is_taken() {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

/// Why `unpausedomain` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnpauseError {
    /// It was not paused.
    NotPaused,
}

/// `unpausedomain`: one pause less; at none its vCPUs that are up run again (the first
/// time, vCPU 0 comes up if it has a state).
pub fn unpause(d: &Domain) -> Result<(), UnpauseError> {
    let was = d
        .pause_count
        .try_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .map_err(|_| UnpauseError::NotPaused)?;
    if was != 1 {
        return Ok(());
    }
    if !d.ever_unpaused.swap(true, Ordering::AcqRel)
        && let Some(v0) = d.vcpu(0)
        && v0.initialised.load(Ordering::Acquire)
    {
        v0.up.store(true, Ordering::Release);
    }
    let now = time::now();
    for slot in d.vcpus.get().into_iter().flatten() {
        if slot.up.load(Ordering::Acquire) {
            let id = slot.sched;
            let _ = glue::with(|s| s.online(id, now));
            glue::wake(slot, now);
        }
    }
    Ok(())
}

/// `destroydomain`: ends `d` if it still runs, and lets its memory go (now, or when
/// the last foreign or grant mapping of its pages goes).
pub fn destroy(d: &Arc<Domain>, by: u32) {
    d.finish(DomainState::Destroyed("by the control domain"));
    d.destroyed.store(true, Ordering::Release);
    log::debug!("domain {}: destroyed by domain {by}", d.id);
    stop(d);
}

/// A privileged domain has finished: if no privileged domain runs any more, nobody can
/// manage the domains created at run time, so the hypervisor destroys them (Xen, whose
/// control domain is dom0, reboots the machine instead).
fn orphans() {
    let all = registry::all();
    if all.iter().any(|o| o.privileged && o.running()) {
        return;
    }
    for o in all.iter().filter(|o| !o.at_boot) {
        if !o.destroyed.load(Ordering::Acquire) || o.running() {
            log::info!(
                "domain {} ({}): no control domain is left; destroying it",
                o.id,
                o.name
            );
            o.finish(DomainState::Destroyed("no control domain is left"));
            o.destroyed.store(true, Ordering::Release);
            stop(o);
        }
    }
}

/// How far a dying domain has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Teardown {
    /// Running, or dying with vCPUs still held by some pCPU.
    Pending,
    /// vCPUs retired, channels and grant mappings gone; memory kept while others map it.
    TornDown,
    /// Memory returned to the allocator.
    Released,
}

/// What taking a vCPU down did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down {
    /// It was the domain's last vCPU up: the domain shut down with reason poweroff
    /// (its vCPU must stop now).
    LastOne,
    /// It is down (or already was); the others run on.
    Down,
}

/// Takes vCPU `slot` of `d` down, as `VCPUOP_down` and a `HLT` with interrupts off do
/// (Xen's `hvm_vcpu_down`): off the scheduler until `VCPUOP_up` or a start-up IPI. The
/// last vCPU of a domain going down (the caller itself, which is up) powers the domain
/// off.
pub fn vcpu_down(d: &Domain, slot: &glue::VcpuSlot, now: u64) -> Down {
    let others_up = d
        .vcpus
        .get()
        .into_iter()
        .flatten()
        .any(|v| v.index != slot.index && v.up.load(Ordering::Acquire));
    if !others_up {
        d.finish(super::DomainState::Shutdown("poweroff"));
        return Down::LastOne;
    }
    if slot.up.swap(false, Ordering::AcqRel) {
        glue::stop_timer(slot);
        let id = slot.sched;
        let r = glue::with(|s| s.offline(id, now));
        glue::kick_one(r.ok().flatten());
    }
    Down::Down
}

/// Step 2: takes a finished domain's vCPUs out of scheduling (once), then tries the
/// rest.
pub fn stop(d: &Arc<Domain>) {
    if d.running() || d.stopped.swap(true, Ordering::AcqRel) {
        try_release(d);
        return;
    }
    let kicks = glue::remove_domain(d);
    glue::kick(kicks);
    // Its control domain hears that it ended (and again when it is torn down).
    event::tell_control_domains(d);
    if d.privileged {
        orphans();
    }
    try_release(d);
}

/// Steps 3 and 4, as far as they can go now.
pub fn try_release(d: &Arc<Domain>) {
    // A domain created at run time that shut down keeps everything (as Xen's do) until
    // its control domain destroys it.
    if d.running() || !d.destroyed.load(Ordering::Acquire) {
        return;
    }
    let granters = {
        let mut stage = d.teardown.lock();
        let mut granters = Vec::new();
        if *stage == Teardown::Pending {
            let slots = d.vcpus.get().map(Vec::as_slice).unwrap_or(&[]);
            let Some(vcpus) = glue::retire(slots) else {
                return;
            };
            for v in vcpus {
                d.exits.fetch_add(v.exits, Ordering::Relaxed);
                d.hypercalls.fetch_add(v.hypercalls, Ordering::Relaxed);
                for (sum, n) in d.exit_reasons.iter().zip(v.exit_reasons) {
                    sum.fetch_add(n, Ordering::Relaxed);
                }
                v.release();
            }
            event::domain_dying(d);
            granters = grant::domain_dying(d);
            granters.extend(drop_foreign_maps(d));
            *stage = Teardown::TornDown;
        }
        if *stage == Teardown::TornDown
            && !grant::pinned_by_others(d)
            && d.mapped_by_others.load(Ordering::Acquire) == 0
        {
            grant::remove_domain(d);
            let mib = d.ram_frames() >> 8;
            d.release();
            d.released.store(true, Ordering::Release);
            *stage = Teardown::Released;
            if !d.at_boot {
                registry::remove(d.id);
            }
            // Another domain's EPT may reuse these tables: every pCPU flushes before its
            // next VM entry.
            EPT_GENERATION.fetch_add(1, Ordering::AcqRel);
            if d.at_boot {
                log::info!("domain {} ({}): memory returned ({mib} MiB)", d.id, d.name);
            } else {
                log::debug!("domain {} ({}): memory returned ({mib} MiB)", d.id, d.name);
            }
        }
        granters
    };
    // Granters (and domains it had foreign-mapped) that waited only for this domain's
    // mappings to go (outside our lock: the
    // domain may have mapped its own grants).
    for g in granters {
        try_release(&g);
    }
}

/// A dying domain's foreign maps go with its EPT: the domains they pointed into may now
/// be free to go (returned).
fn drop_foreign_maps(d: &Domain) -> Vec<Arc<Domain>> {
    let mut targets = Vec::new();
    for (_, e) in d.take_overlays() {
        if let Kind::Foreign { domid, .. } = e.kind
            && let Some(t) = registry::by_id(u32::from(domid))
        {
            t.mapped_by_others.fetch_sub(1, Ordering::AcqRel);
            targets.push(t);
        }
    }
    targets
}

/// Drops one foreign map of `target`'s pages (its mapper unmapped it); `target` may be
/// released now.
pub fn foreign_unmapped(target: &Arc<Domain>) {
    target.mapped_by_others.fetch_sub(1, Ordering::AcqRel);
    try_release(target);
}
