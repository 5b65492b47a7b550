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

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::sched::{self as glue, EPT_GENERATION};
use super::{Domain, event, grant};

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
    try_release(d);
}

/// Steps 3 and 4, as far as they can go now.
pub fn try_release(d: &Arc<Domain>) {
    if d.running() {
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
            *stage = Teardown::TornDown;
        }
        if *stage == Teardown::TornDown && !grant::pinned_by_others(d) {
            grant::remove_domain(d);
            let mib = d.ram_frames() >> 8;
            d.release();
            d.released.store(true, Ordering::Release);
            *stage = Teardown::Released;
            // Another domain's EPT may reuse these tables: every pCPU flushes before its
            // next VM entry.
            EPT_GENERATION.fetch_add(1, Ordering::AcqRel);
            log::info!(
                "domain {} ({}): memory returned ({} MiB)",
                d.id,
                d.name,
                mib
            );
        }
        granters
    };
    // Granters that waited only for this domain's mappings to go (outside our lock: the
    // domain may have mapped its own grants).
    for g in granters {
        try_release(&g);
    }
}
