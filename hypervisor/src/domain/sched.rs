//! The credit scheduler (`oxen_core::sched`) driving real vCPUs: the one scheduler all
//! pCPUs share, the table of vCPU slots, per-pCPU timers and reschedule kicks.
//!
//! Ownership: the scheduler decides which pCPU runs a vCPU; the pCPU then takes the
//! vCPU's state ([`Vcpu`], with its VMCS) out of its slot and puts it back when it
//! switches away, after VMCLEAR. A pCPU told to run a vCPU that another pCPU has not put
//! back yet waits the few instructions that takes. Every pCPU puts back before it takes,
//! so two pCPUs swapping vCPUs cannot wait for each other.
#![deny(unsafe_code)]

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use oxen_core::sched::{Scheduler, VcpuId, VcpuStats};
use oxen_core::vcpu_state::StartState;
use spin::{Mutex, Once, RwLock};

use super::Domain;
use super::vcpu::Vcpu;
use crate::arch::{apic, idt, percpu};

/// Where a vCPU's state is.
enum Held {
    /// In its slot: no pCPU has it loaded.
    Here(Box<Vcpu>),
    /// Taken by the pCPU that runs it.
    Taken,
    /// Released with its domain.
    Gone,
}

/// Wake-to-run latency of one vCPU.
#[derive(Default)]
pub struct Latency {
    pub wakes: AtomicU64,
    pub total_ns: AtomicU64,
    pub max_ns: AtomicU64,
}

/// What every pCPU may know and touch of a vCPU.
pub struct VcpuSlot {
    /// Its domain's id.
    pub domid: u32,
    /// The vCPU's number in its domain.
    pub index: u32,
    /// The scheduler's handle.
    pub sched: VcpuId,
    held: Mutex<Held>,
    /// Some pCPU has taken the vCPU's state (`Held::Taken`), readable without the lock:
    /// a pCPU waiting in [`VcpuSlot::take`] watches this, not the lock, so the holder
    /// can always get the lock to put the state back.
    taken: AtomicBool,
    /// The state its first run starts from (set by the builder or `VCPUOP_initialise`).
    pub start: Mutex<Option<StartState>>,
    /// `VCPUOP_initialise` done (or vCPU 0).
    pub initialised: AtomicBool,
    /// Up (`VCPUOP_up`), as `VCPUOP_is_up` reports it.
    pub up: AtomicBool,
    /// The armed single-shot timer's deadline in system time (0 = none).
    pub timer: AtomicU64,
    /// `VCPUOP_send_nmi` (or an NMI IPI) came and the NMI is not delivered yet.
    pub nmi_pending: AtomicBool,
    /// The vCPU's local APIC (`apic.rs`), a hint that its IRR is not empty, whether an
    /// INIT left it waiting for a start-up IPI, and its timer's armed deadline.
    pub lapic: Mutex<oxen_core::lapic::Lapic>,
    pub lapic_pending: AtomicBool,
    pub wait_for_sipi: AtomicBool,
    pub apic_timer: AtomicU64,
    /// The guest-virtual address of its registered runstate area (0: none).
    pub runstate_area: AtomicU64,
    /// The periodic timer's period (0 = off) and its next deadline.
    pub period: AtomicU64,
    pub periodic_next: AtomicU64,
    /// When it was last woken while blocked (0 = it has run since).
    woke_at: AtomicU64,
    /// A wake arrived while it was not blocked: its next block returns at once.
    pub wake_pending: AtomicBool,
    /// Something a `SCHEDOP_poll` waits for happened (a polled port became pending, or
    /// its timeout passed) since the poll began.
    pub poll_hit: AtomicBool,
    pub latency: Latency,
    /// The scheduler's accounting, kept when the vCPU leaves the scheduler.
    final_stats: Mutex<Option<VcpuStats>>,
}

impl VcpuSlot {
    pub fn new(
        domid: u32,
        index: u32,
        sched: VcpuId,
        vcpu: Vcpu,
        start: Option<StartState>,
    ) -> Self {
        VcpuSlot {
            domid,
            index,
            sched,
            initialised: AtomicBool::new(start.is_some()),
            up: AtomicBool::new(false),
            held: Mutex::new(Held::Here(Box::new(vcpu))),
            taken: AtomicBool::new(false),
            start: Mutex::new(start),
            timer: AtomicU64::new(0),
            nmi_pending: AtomicBool::new(false),
            lapic: Mutex::new(oxen_core::lapic::Lapic::new(index)),
            lapic_pending: AtomicBool::new(false),
            wait_for_sipi: AtomicBool::new(false),
            apic_timer: AtomicU64::new(0),
            runstate_area: AtomicU64::new(0),
            period: AtomicU64::new(0),
            periodic_next: AtomicU64::new(0),
            woke_at: AtomicU64::new(0),
            wake_pending: AtomicBool::new(false),
            poll_hit: AtomicBool::new(false),
            latency: Latency::default(),
            final_stats: Mutex::new(None),
        }
    }

    /// Takes the vCPU's state, waiting while another pCPU still holds it; `None` once
    /// it is gone.
    ///
    /// The wait reads `taken` and leaves the lock alone: a waiter that took and dropped
    /// the lock in a tight loop could keep the holder from ever getting it back to
    /// [`put`](Self::put) the state (spin locks are not fair, and Bochs runs its CPUs
    /// in lockstep, one trace each, which turned that into a livelock of both pCPUs).
    pub fn take(&self) -> Option<Box<Vcpu>> {
        loop {
            while self.taken.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
            let mut held = self.held.lock();
            match core::mem::replace(&mut *held, Held::Taken) {
                Held::Here(v) => {
                    self.taken.store(true, Ordering::Release);
                    return Some(v);
                }
                Held::Gone => {
                    *held = Held::Gone;
                    return None;
                }
                // Taken by another pCPU between our look and our lock.
                Held::Taken => {}
            }
        }
    }

    /// Whether some pCPU holds the vCPU's state (runs it, or is in one of its exits).
    pub fn is_taken(&self) -> bool {
        self.taken.load(Ordering::Acquire)
    }

    /// Puts the vCPU's state back (its VMCS must be unloaded).
    pub fn put(&self, v: Box<Vcpu>) {
        let mut held = self.held.lock();
        *held = Held::Here(v);
        self.taken.store(false, Ordering::Release);
    }

    /// Records the first run after a wake.
    pub fn ran(&self, now: u64) {
        let woke = self.woke_at.swap(0, Ordering::Relaxed);
        if woke != 0 {
            let ns = now.saturating_sub(woke);
            self.latency.wakes.fetch_add(1, Ordering::Relaxed);
            self.latency.total_ns.fetch_add(ns, Ordering::Relaxed);
            self.latency.max_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }
}

static SCHED: Once<Mutex<Scheduler>> = Once::new();
/// Every vCPU slot, by scheduler handle (the scheduler reuses the handles of removed
/// vCPUs, and their slots here with them).
static TABLE: RwLock<Vec<Arc<VcpuSlot>>> = RwLock::new(Vec::new());

/// Installs the scheduler (once, on the boot CPU, before any domain is built).
pub fn init(s: Scheduler) {
    SCHED.call_once(|| Mutex::new(s));
}

/// Runs `f` on the scheduler, under its lock.
pub fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    f(&mut SCHED.get().expect("scheduler installed").lock())
}

/// Adds a slot at its scheduler handle's index (a new one, or one the scheduler freed
/// when a domain was removed).
pub fn register(slot: Arc<VcpuSlot>) {
    let mut t = TABLE.write();
    let i = slot.sched.index();
    match i.cmp(&t.len()) {
        core::cmp::Ordering::Less => t[i] = slot,
        core::cmp::Ordering::Equal => t.push(slot),
        core::cmp::Ordering::Greater => {
            debug_assert!(false, "the scheduler skipped a vCPU handle");
            log::error!("sched: vCPU handle {i} beyond the table ({})", t.len());
        }
    }
}

/// The slot of scheduler handle `v`.
pub fn slot(v: VcpuId) -> Option<Arc<VcpuSlot>> {
    TABLE.read().get(v.index()).cloned()
}

/// Makes the pCPUs in `mask` call the scheduler: set their flag, and IPI the others.
pub fn kick(mask: u64) {
    let me = percpu::index();
    for cpu in (0..percpu::count()).filter(|c| mask & (1 << c) != 0) {
        let p = percpu::get(cpu);
        p.need_resched.store(true, Ordering::Release);
        if cpu != me {
            apic::send_fixed(p.apic_id.load(Ordering::Relaxed), idt::RESCHED_VECTOR);
        }
    }
}

/// Makes the pCPU that runs `slot`'s vCPU (if another one) exit its guest, so that it
/// looks at the vCPU's events before entering again.
pub fn poke_running(slot: &VcpuSlot) {
    use oxen_core::sched::VcpuState;
    let running = with(|s| {
        s.vcpu_info(slot.sched)
            .ok()
            .filter(|i| i.state == VcpuState::Running)
            .map(|i| i.cpu)
    });
    if let Some(cpu) = running.filter(|&c| c != percpu::index()) {
        poke(cpu);
    }
}

/// Sends `cpu` the reschedule IPI without asking it to reschedule: it only exits its
/// guest (or leaves HLT).
pub fn poke(cpu: usize) {
    let p = percpu::get(cpu);
    apic::send_fixed(p.apic_id.load(Ordering::Relaxed), idt::RESCHED_VECTOR);
}

/// The EPT generation each pCPU's guest runs with (`u64::MAX`: not in a guest).
pub static IN_GUEST: [AtomicU64; percpu::MAX_CPUS] =
    [const { AtomicU64::new(u64::MAX) }; percpu::MAX_CPUS];

/// Makes every pCPU drop its cached guest translations: bumps the EPT generation (each
/// pCPU flushes before its next entry) and waits until no pCPU still runs a guest with
/// an older one, poking those that do. Called after an EPT lost a mapping.
pub fn flush_ept_everywhere() {
    let generation = EPT_GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    let me = percpu::index();
    loop {
        let mut waiting = false;
        for cpu in (0..percpu::count()).filter(|&c| c != me) {
            let g = IN_GUEST[cpu].load(Ordering::Acquire);
            if g != u64::MAX && g < generation {
                waiting = true;
                poke(cpu);
            }
        }
        if !waiting {
            return;
        }
        for _ in 0..1000 {
            core::hint::spin_loop();
        }
    }
}

/// [`kick`] for one optional pCPU.
pub fn kick_one(cpu: Option<usize>) {
    if let Some(c) = cpu {
        kick(1 << c);
    }
}

/// Wakes a blocked vCPU; for one that is running or runnable, the wake is kept for its
/// next block (offline vCPUs ignore it).
pub fn wake(slot: &VcpuSlot, now: u64) {
    use oxen_core::sched::VcpuState;
    let r = with(|s| match s.vcpu_info(slot.sched).map(|i| i.state) {
        Ok(VcpuState::Blocked) => Some(s.wake(slot.sched, now)),
        Ok(VcpuState::Running | VcpuState::Runnable) => {
            slot.wake_pending.store(true, Ordering::Release);
            None
        }
        _ => None,
    });
    if let Some(r) = r {
        slot.woke_at.store(now.max(1), Ordering::Relaxed);
        kick_one(r.ok().flatten());
    }
}

// ------------------------------------------------------------------------- timers

/// Which of a vCPU's timers an entry is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `VCPUOP_set_singleshot_timer` (and the timeouts of blocks and polls).
    SingleShot,
    /// `VCPUOP_set_periodic_timer`.
    Periodic,
    /// The local APIC's timer.
    Apic,
}

/// Timers armed on each pCPU: (deadline, vCPU, kind). An entry whose vCPU has since
/// re-armed or stopped that timer is stale and ignored when it expires.
static TIMERS: [Mutex<Vec<(u64, VcpuId, Kind)>>; percpu::MAX_CPUS] =
    [const { Mutex::new(Vec::new()) }; percpu::MAX_CPUS];
/// The earliest deadline in each pCPU's list (u64::MAX = none), read without the lock.
static NEXT_TIMER: [AtomicU64; percpu::MAX_CPUS] =
    [const { AtomicU64::new(u64::MAX) }; percpu::MAX_CPUS];

/// Puts `slot`'s timer of `kind` on this pCPU's list for `deadline` (replacing its
/// other entry of that kind).
fn queue(slot: &VcpuSlot, deadline: u64, kind: Kind) {
    let cpu = percpu::index();
    let mut list = TIMERS[cpu].lock();
    list.retain(|&(_, v, k)| v != slot.sched || k != kind);
    list.push((deadline, slot.sched, kind));
    NEXT_TIMER[cpu].fetch_min(deadline, Ordering::AcqRel);
}

/// Arms `slot`'s single-shot timer on this pCPU for `deadline` (replacing any other).
pub fn arm_timer(slot: &VcpuSlot, deadline: u64) {
    let deadline = deadline.max(1);
    slot.timer.store(deadline, Ordering::Release);
    queue(slot, deadline, Kind::SingleShot);
}

/// Stops `slot`'s single-shot timer.
pub fn stop_timer(slot: &VcpuSlot) {
    slot.timer.store(0, Ordering::Release);
}

/// Starts `slot`'s periodic timer (`period_ns` > 0): `VIRQ_TIMER` every period from
/// now on. Unlike Xen, which runs it only while the vCPU runs and sends one missed tick
/// when it runs again, it keeps ticking (and waking the vCPU) while it is blocked.
pub fn set_periodic(slot: &VcpuSlot, period_ns: u64, now: u64) {
    let first = now.saturating_add(period_ns).max(1);
    slot.period.store(period_ns, Ordering::Release);
    slot.periodic_next.store(first, Ordering::Release);
    queue(slot, first, Kind::Periodic);
}

/// Arms `slot`'s APIC timer on this pCPU for `deadline` (replacing its other entry).
pub fn arm_apic_timer(slot: &VcpuSlot, deadline: u64) {
    let deadline = deadline.max(1);
    slot.apic_timer.store(deadline, Ordering::Release);
    queue(slot, deadline, Kind::Apic);
}

/// Stops `slot`'s APIC timer.
pub fn stop_apic_timer(slot: &VcpuSlot) {
    slot.apic_timer.store(0, Ordering::Release);
}

/// Stops `slot`'s periodic timer.
pub fn stop_periodic(slot: &VcpuSlot) {
    slot.period.store(0, Ordering::Release);
    slot.periodic_next.store(0, Ordering::Release);
}

/// The earliest timer deadline on `cpu`.
pub fn next_timer(cpu: usize) -> u64 {
    NEXT_TIMER[cpu].load(Ordering::Acquire)
}

/// Fires this pCPU's expired timers: each raises `VIRQ_TIMER` and wakes its vCPU; a
/// periodic one is queued again for its next period. Returns the vCPUs whose APIC
/// timer expired, for the caller to hand to their APICs.
pub fn fire_timers(cpu: usize, now: u64) -> Vec<Arc<VcpuSlot>> {
    let mut apic = Vec::new();
    if next_timer(cpu) > now {
        return apic;
    }
    let mut due = Vec::new();
    {
        let mut list = TIMERS[cpu].lock();
        list.retain(|&(t, v, k)| {
            if t <= now {
                due.push((t, v, k));
                false
            } else {
                true
            }
        });
        let next = list.iter().map(|&(t, ..)| t).min().unwrap_or(u64::MAX);
        NEXT_TIMER[cpu].store(next, Ordering::Release);
    }
    for (t, v, kind) in due {
        let Some(slot) = slot(v) else { continue };
        let fired = match kind {
            Kind::Apic => {
                if slot
                    .apic_timer
                    .compare_exchange(t, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    apic.push(slot);
                }
                continue;
            }
            Kind::SingleShot => slot
                .timer
                .compare_exchange(t, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
            Kind::Periodic => {
                let period = slot.period.load(Ordering::Acquire);
                // Ticks missed while the pCPU was busy are not made up, as in Xen.
                let next = t.saturating_add(period).max(now.saturating_add(1));
                let live = period != 0
                    && slot
                        .periodic_next
                        .compare_exchange(t, next, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                if live {
                    queue(&slot, next, Kind::Periodic);
                }
                live
            }
        };
        if fired {
            // VIRQ_TIMER if the guest bound it; a poll's timeout; the wake in any case.
            slot.poll_hit.store(true, Ordering::Release);
            if let Some(d) = super::by_id(slot.domid) {
                super::event::raise_virq(&d, oxen_abi::evtchn::virq::TIMER, slot.index);
            }
            wake(&slot, now);
        }
    }
    apic
}

// ------------------------------------------------------------------ domain teardown

/// Takes a finished domain's vCPUs out of scheduling, keeping their accounting, and
/// stops their timers; returns the pCPUs that ran them (to kick).
pub fn remove_domain(d: &Domain) -> u64 {
    let slots = d.vcpus.get().map(Vec::as_slice).unwrap_or(&[]);
    let kicks = with(|s| {
        let now = crate::arch::time::now();
        s.sync(now);
        if let Ok(info) = s.domain_info(d.sched) {
            *d.final_params.lock() = Some((info.weight, info.cap));
        }
        for slot in slots {
            if let Ok(st) = s.vcpu_stats(slot.sched) {
                *slot.final_stats.lock() = Some(st);
            }
        }
        s.remove_domain(d.sched, now).unwrap_or(0)
    });
    for slot in slots {
        stop_timer(slot);
        stop_periodic(slot);
        stop_apic_timer(slot);
    }
    kicks
}

/// A vCPU's accounting: live, or as it was when its domain finished.
pub fn vcpu_stats(s: &Scheduler, slot: &VcpuSlot) -> Option<VcpuStats> {
    s.vcpu_stats(slot.sched)
        .ok()
        .or_else(|| *slot.final_stats.lock())
}

/// A domain's weight and cap: live, or as they were when it finished.
pub fn domain_params(s: &Scheduler, d: &Domain) -> (u16, u32) {
    s.domain_info(d.sched)
        .map(|i| (i.weight, i.cap))
        .ok()
        .or_else(|| *d.final_params.lock())
        .unwrap_or((0, 0))
}

/// Takes every vCPU of `slots` out of its slot for good, if no pCPU holds any of them
/// (none is running, none is in a hypercall): `None` while one is held, else the vCPUs
/// (empty if they were retired before). A retired slot can never be taken again.
#[allow(
    clippy::vec_box,
    reason = "the slots hold boxed vCPUs; they are released as they are"
)]
pub fn retire(slots: &[Arc<VcpuSlot>]) -> Option<Vec<Box<Vcpu>>> {
    // Lock every slot (in order) so none can be taken while we look.
    let mut guards: Vec<_> = slots.iter().map(|s| s.held.lock()).collect();
    if guards.iter().any(|g| matches!(**g, Held::Taken)) {
        return None;
    }
    let mut out = Vec::new();
    for g in guards.iter_mut() {
        if let Held::Here(v) = core::mem::replace(&mut **g, Held::Gone) {
            out.push(v);
        }
    }
    Some(out)
}

/// Bumped whenever EPT tables go back to the allocator.
pub static EPT_GENERATION: AtomicU64 = AtomicU64::new(0);
