//! Each vCPU's local APIC (`oxen_core::lapic`, x2APIC mode) wired to the machine: the
//! MSR front end, interrupts into the vCPU (IRR, then injection when the guest can take
//! one), IPIs between the vCPUs of a domain (fixed, lowest priority, NMI, INIT and
//! start-up) and the APIC timer on the pCPU timer lists.
//!
//! Locks: a vCPU's APIC is its slot's mutex, taken alone or before the scheduler's;
//! an IPI locks one target at a time.
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;

use oxen_core::lapic::{self, Effect, Ipi, IpiKind};
use oxen_core::vcpu_state::StartState;

use super::Domain;
use super::sched::{self as glue, VcpuSlot};
use crate::arch::time;

/// IA32_APIC_BASE as a guest reads it: 0xFEE00000, enabled, x2APIC mode, BSP for
/// vCPU 0 (Linux then takes the x2APIC path and never touches the MMIO page).
pub fn apic_base(vcpu: u32) -> u64 {
    0xfee0_0000 | (1 << 11) | (1 << 10) | if vcpu == 0 { 1 << 8 } else { 0 }
}

/// Whether `msr` is one of the x2APIC registers.
pub fn is_apic_msr(msr: u32) -> bool {
    (lapic::MSR_BASE..=lapic::MSR_END).contains(&msr)
}

/// RDMSR of an x2APIC register by vCPU `slot` (`None`: #GP).
pub fn read(slot: &VcpuSlot, msr: u32) -> Option<u64> {
    slot.lapic.lock().read(msr, time::now()).ok()
}

/// WRMSR of an x2APIC register by vCPU `slot` of `d`; false: #GP.
pub fn write(d: &Domain, slot: &VcpuSlot, msr: u32, value: u64) -> bool {
    let now = time::now();
    let effect = slot.lapic.lock().write(msr, value, now);
    match effect {
        Err(lapic::Fault) => return false,
        Ok(Effect::None) => {}
        Ok(Effect::Eoi(_)) => refresh(slot),
        Ok(Effect::Timer) => arm_timer(slot, now),
        Ok(Effect::Ipi(ipi)) => send(d, slot.index, ipi),
    }
    true
}

/// Sets or clears the slot's "something may be deliverable" hint from its APIC.
fn refresh(slot: &VcpuSlot) {
    let pending = slot.lapic.lock().has_pending();
    slot.lapic_pending.store(pending, Ordering::Release);
}

/// The vector the APIC of `slot` wants injected now, if any.
pub fn deliverable(slot: &VcpuSlot) -> Option<u8> {
    if !slot.lapic_pending.load(Ordering::Acquire) {
        return None;
    }
    slot.lapic.lock().deliverable()
}

/// The vector was injected: IRR to ISR.
pub fn acknowledge(slot: &VcpuSlot, vector: u8) {
    let mut a = slot.lapic.lock();
    a.acknowledge(vector);
    slot.lapic_pending.store(a.has_pending(), Ordering::Release);
}

/// Raises fixed `vector` at the APIC of vCPU `slot` and makes it look.
fn raise(slot: &VcpuSlot, vector: u8) {
    if slot.lapic.lock().accept(vector, false) {
        slot.lapic_pending.store(true, Ordering::Release);
        glue::wake(slot, time::now());
        glue::poke_running(slot);
    }
}

/// Delivers an IPI from vCPU `from` of `d` to the vCPUs it names.
fn send(d: &Domain, from: u32, ipi: Ipi) {
    let Some(slots) = d.vcpus.get() else {
        return;
    };
    let targets = slots
        .iter()
        .filter(|s| s.lapic.lock().is_target(ipi.dest, from));
    match ipi.kind {
        IpiKind::Fixed(v) => targets.for_each(|s| raise(s, v)),
        IpiKind::LowestPriority(v) => {
            // Every vCPU has the same priority here: the first of the set takes it.
            if let Some(s) = targets.into_iter().next() {
                raise(s, v);
            }
        }
        IpiKind::Nmi => {
            for s in targets {
                if !s.nmi_pending.swap(true, Ordering::AcqRel) {
                    glue::wake(s, time::now());
                    glue::poke_running(s);
                }
            }
        }
        IpiKind::Init => {
            // INIT resets a vCPU that was never started and makes it wait for a
            // start-up IPI; one that has run ignores it (oxen cannot reset a vCPU's
            // state yet, and a start-up IPI would not reach a VMCS already in use).
            for s in targets
                .filter(|s| !s.up.load(Ordering::Acquire) && !s.initialised.load(Ordering::Acquire))
            {
                s.lapic.lock().reset();
                s.wait_for_sipi.store(true, Ordering::Release);
            }
        }
        IpiKind::Startup(vector) => {
            let now = time::now();
            for s in targets.filter(|s| s.wait_for_sipi.swap(false, Ordering::AcqRel)) {
                *s.start.lock() = Some(StartState::real_mode(vector));
                s.initialised.store(true, Ordering::Release);
                if !s.up.swap(true, Ordering::AcqRel) {
                    let _ = glue::with(|sch| sch.online(s.sched, now));
                    glue::wake(s, now);
                }
            }
        }
    }
}

/// Puts the APIC timer of `slot` on this pCPU's timer list (or takes it off).
pub fn arm_timer(slot: &VcpuSlot, now: u64) {
    let deadline = slot.lapic.lock().timer_deadline(now);
    match deadline {
        Some(t) => glue::arm_apic_timer(slot, t),
        None => glue::stop_apic_timer(slot),
    }
}

/// The APIC timer of `slot` expired at `now`: its vector is raised and the next period
/// armed.
pub fn timer_fired(slot: &VcpuSlot, now: u64) {
    let raised = slot.lapic.lock().timer_expired(now);
    if raised {
        slot.lapic_pending.store(true, Ordering::Release);
        glue::wake(slot, now);
        glue::poke_running(slot);
    }
    arm_timer(slot, now);
}

/// CR8 reads the APIC's TPR bits 7:4.
pub fn cr8(slot: &VcpuSlot) -> u64 {
    slot.lapic
        .lock()
        .read(lapic::MSR_BASE + lapic::reg::TPR, 0)
        .map_or(0, |t| t >> 4)
}

/// MOV to CR8 (`value` already checked to be 0..=15) sets TPR bits 7:4.
pub fn set_cr8(slot: &VcpuSlot, value: u64) {
    let _ = slot
        .lapic
        .lock()
        .write(lapic::MSR_BASE + lapic::reg::TPR, value << 4, 0);
}
