//! A credit scheduler for vCPUs on physical CPUs (the behaviour of Xen's credit1, our own
//! code and a few deliberate changes; see `docs/scheduler.md`).
//!
//! Everything here is pure: time is injected as nanoseconds (`now`), the caller owns the
//! timers and the IPIs. The hypervisor calls
//!
//! - [`Scheduler::tick`] on every timer tick of a pCPU (accounting, maybe preemption),
//! - [`Scheduler::schedule`] when a pCPU must pick again: it was kicked, its slice timer
//!   fired, or its vCPU blocked or yielded,
//! - [`Scheduler::wake`] / [`Scheduler::block`] / [`Scheduler::yield_`] on vCPU events,
//!
//! and acts on the returned [`Decision`] (what to run, for how long, which pCPUs to kick).
//!
//! Invariants (checked by [`Scheduler::check_invariants`]):
//! - a vCPU is in exactly one run queue iff it is `Runnable` and its domain is not parked;
//! - a vCPU is the current vCPU of exactly one pCPU iff it is `Running`;
//! - a vCPU is only ever queued on or running on a pCPU of its affinity mask;
//! - run queues are ordered BOOST, then UNDER, then OVER (round robin within each).

pub mod sim;
#[cfg(test)]
mod tests;

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The default domain weight (as in Xen).
pub const DEFAULT_WEIGHT: u16 = 256;
/// The largest cap accepted, in percent of one pCPU (64 pCPUs fully).
pub const MAX_CAP: u32 = 6400;
/// The largest number of pCPUs (affinity masks are `u64` bitmaps).
pub const MAX_CPUS: usize = 64;

/// Scheduler parameters, all in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedParams {
    /// Number of pCPUs, 1..=64.
    pub ncpus: usize,
    /// Accounting tick: the running vCPU is debited and preemption is reconsidered.
    pub tick_ns: u64,
    /// Accounting period: credit is refilled among active domains.
    pub period_ns: u64,
    /// Longest time a vCPU runs before the pCPU picks again.
    pub slice_ns: u64,
    /// A running vCPU is not preempted before it ran this long (0 = no rate limit).
    pub ratelimit_ns: u64,
    /// A vCPU that left a pCPU less than this long ago is cache-hot there: no other
    /// pCPU steals it (Xen's `vcpu_migr_delay`; 0 = none).
    pub migr_delay_ns: u64,
}

impl SchedParams {
    /// Xen's defaults: 10 ms tick, 30 ms period, 30 ms slice, 1 ms rate limit.
    pub const fn with_cpus(ncpus: usize) -> Self {
        SchedParams {
            ncpus,
            tick_ns: 10_000_000,
            period_ns: 30_000_000,
            slice_ns: 30_000_000,
            ratelimit_ns: 1_000_000,
            migr_delay_ns: 0,
        }
    }
}

/// The credit scheduler's pool-wide settings as `XEN_SYSCTL_scheduler_op` carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditLimits {
    pub tslice_ms: u32,
    pub ratelimit_us: u32,
    pub migr_delay_us: u32,
}

impl CreditLimits {
    /// Whether Xen's credit scheduler accepts these (`-EINVAL` otherwise): time slice
    /// 1..=1000 ms, rate limit 0 (off) or 100..=500,000 µs and never longer than the
    /// slice, migration delay at most 100 ms (`sysctl.h`'s bounds).
    pub fn valid(&self) -> bool {
        use oxen_abi::sysctl::csched as b;
        (b::TSLICE_MIN_MS..=b::TSLICE_MAX_MS).contains(&self.tslice_ms)
            && (self.ratelimit_us == 0
                || (b::RATELIMIT_MIN_US..=b::RATELIMIT_MAX_US).contains(&self.ratelimit_us))
            && u64::from(self.ratelimit_us) <= u64::from(self.tslice_ms) * 1000
            && self.migr_delay_us <= b::MIGR_DELAY_MAX_US
    }
}

/// Why a call was refused. Nothing in this module panics on bad input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// The parameters are inconsistent (zero or more than 64 pCPUs, zero tick, ...).
    BadParams,
    /// No such pCPU.
    BadCpu,
    /// No such domain (never existed or removed).
    NoSuchDomain,
    /// No such vCPU (never existed or removed).
    NoSuchVcpu,
    /// Weight 0.
    BadWeight,
    /// Cap above [`MAX_CAP`].
    BadCap,
    /// The affinity mask names no existing pCPU.
    BadAffinity,
    /// The vCPU is offline.
    Offline,
    /// Too many domains or vCPUs (ids are `u32`).
    TooMany,
}

/// A domain handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(u32);

impl DomId {
    /// The index of this domain (dense, in creation order, never reused).
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A vCPU handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuId(u32);

impl VcpuId {
    /// The index of this vCPU (dense, in creation order, never reused).
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Scheduling priority; queues are served BOOST first, OVER last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Just woke from blocking with credit left: served first until its next tick.
    Boost,
    /// Has credit left.
    Under,
    /// Spent more than its share.
    Over,
}

impl Priority {
    const fn rank(self) -> u8 {
        match self {
            Priority::Boost => 2,
            Priority::Under => 1,
            Priority::Over => 0,
        }
    }
}

/// The life-cycle state of a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Wants to run (queued, or parked when its domain is over its cap).
    Runnable,
    /// Current on a pCPU.
    Running,
    /// Waits for an event; [`Scheduler::wake`] makes it runnable.
    Blocked,
    /// Taken out of scheduling; [`Scheduler::online`] brings it back (blocked).
    Offline,
}

impl VcpuState {
    /// Xen's `RUNSTATE_*` number for the state.
    pub fn runstate(self) -> u32 {
        match self {
            VcpuState::Running => 0,
            VcpuState::Runnable => 1,
            VcpuState::Blocked => 2,
            VcpuState::Offline => 3,
        }
    }
}

/// What a pCPU should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The vCPU to run, or `None` to idle.
    pub run: Option<VcpuId>,
    /// Call [`Scheduler::schedule`] again after this long (0 = idle: wait for a kick or a tick).
    pub slice_ns: u64,
    /// The pCPU the chosen vCPU was stolen from by load balancing.
    pub migrated_from: Option<usize>,
    /// Other pCPUs to IPI so that they call [`Scheduler::schedule`] (bit n = pCPU n).
    pub kick: u64,
}

/// Per-vCPU accounting, up to the last scheduler event (see [`Scheduler::sync`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuStats {
    /// Time spent running.
    pub run_ns: u64,
    /// Time spent queued, runnable but not running.
    pub wait_ns: u64,
    /// Times it was put on a pCPU (a continued run does not count).
    pub runs: u64,
    /// Times it changed pCPU.
    pub migrations: u64,
}

/// A vCPU's runstate, as Xen's `vcpu_runstate_info` reports it: its state, when it
/// entered it, and the time it has spent in each state, indexed by
/// [`VcpuState::runstate`] (running 0, runnable 1, blocked 2, offline 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runstate {
    /// `RUNSTATE_*` of the current state.
    pub state: u32,
    /// System time it entered that state.
    pub entry_ns: u64,
    /// Time spent in each state; for the current one up to the time asked about.
    pub time_ns: [u64; 4],
}

impl Runstate {
    fn new(state: VcpuState, now: u64) -> Self {
        Runstate {
            state: state.runstate(),
            entry_ns: now,
            time_ns: [0; 4],
        }
    }

    /// Moves to `state` at `now` (time never runs backwards here).
    fn enter(&mut self, state: VcpuState, now: u64) {
        let now = now.max(self.entry_ns);
        let i = self.state as usize;
        self.time_ns[i] = self.time_ns[i].saturating_add(now - self.entry_ns);
        self.state = state.runstate();
        self.entry_ns = now;
    }

    /// As of `now`: the current state's time includes the part since it was entered.
    fn at(mut self, now: u64) -> Self {
        let i = self.state as usize;
        self.time_ns[i] = self.time_ns[i].saturating_add(now.saturating_sub(self.entry_ns));
        self
    }
}

/// Per-pCPU accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Time spent with nothing to run.
    pub idle_ns: u64,
    /// vCPUs stolen by this pCPU from its peers.
    pub steals: u64,
    /// The vCPU it runs.
    pub current: Option<VcpuId>,
    /// Length of its run queue.
    pub queued: usize,
}

/// A snapshot of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Its domain.
    pub dom: DomId,
    /// Its state.
    pub state: VcpuState,
    /// Its priority.
    pub pri: Priority,
    /// Its credit in nanoseconds of CPU time (negative = over its share).
    pub credit: i64,
    /// The pCPU it runs on, is queued on, or last ran on.
    pub cpu: usize,
    /// Its hard affinity.
    pub affinity: u64,
    /// True when its domain is parked for being over its cap.
    pub parked: bool,
    /// Its accounting.
    pub stats: VcpuStats,
}

/// A snapshot of one domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// Weight, 1..=65535.
    pub weight: u16,
    /// Cap in percent of one pCPU (0 = none).
    pub cap: u32,
    /// Remaining cap budget in nanoseconds (meaningless without a cap).
    pub budget: i64,
    /// True while over the cap.
    pub parked: bool,
    /// Number of vCPUs (not removed).
    pub vcpus: usize,
}

#[derive(Clone, Debug)]
struct Domain {
    weight: u16,
    cap: u32,
    budget: i64,
    parked: bool,
    vcpus: Vec<VcpuId>,
}

#[derive(Clone, Debug)]
struct Vcpu {
    dom: DomId,
    affinity: u64,
    state: VcpuState,
    pri: Priority,
    credit: i64,
    cpu: usize,
    /// Time up to which run time has been debited.
    acct_at: u64,
    /// When it was last put on a pCPU.
    started_at: u64,
    /// When it was last queued.
    queued_at: u64,
    /// When it last ran or woke (for starvation rescue).
    last_ran: u64,
    /// When it last left a pCPU (for the migration delay); `None` before it ran.
    left_at: Option<u64>,
    ran_in_period: bool,
    yielded: bool,
    stats: VcpuStats,
    runstate: Runstate,
}

impl Vcpu {
    /// Changes state, keeping the runstate's times.
    fn set_state(&mut self, state: VcpuState, now: u64) {
        self.state = state;
        self.runstate.enter(state, now);
    }
}

#[derive(Clone, Debug, Default)]
struct Pcpu {
    runq: VecDeque<VcpuId>,
    current: Option<VcpuId>,
    slice_end: u64,
    idle_since: u64,
    idle_ns: u64,
    steals: u64,
}

/// The credit scheduler. Deterministic: the same calls give the same answers.
#[derive(Clone, Debug)]
pub struct Scheduler {
    p: SchedParams,
    all_cpus: u64,
    doms: Vec<Option<Domain>>,
    vcpus: Vec<Option<Vcpu>>,
    cpus: Vec<Pcpu>,
    next_refill: u64,
    pending_kicks: u64,
}

type Result<T> = core::result::Result<T, SchedError>;

fn to_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// Gives each claim `min(limit, fair share by weight)` of `total`, handing what a
/// saturated claim cannot take to the others (water filling). Returns what is left.
fn water_fill(total: u64, claims: &mut [(u64, u64, u64, bool)]) -> u64 {
    // (weight, limit, grant, done)
    let mut remaining = total;
    loop {
        let w: u128 = claims
            .iter()
            .filter(|c| !c.3)
            .map(|c| u128::from(c.0))
            .sum();
        if w == 0 {
            return remaining;
        }
        let share = |weight: u64| -> u64 {
            u64::try_from(u128::from(remaining) * u128::from(weight) / w).unwrap_or(u64::MAX)
        };
        let mut saturated = 0u64;
        let mut any = false;
        for c in claims.iter_mut().filter(|c| !c.3) {
            if share(c.0) >= c.1 {
                c.2 = c.1;
                c.3 = true;
                saturated = saturated.saturating_add(c.1);
                any = true;
            }
        }
        if any {
            remaining = remaining.saturating_sub(saturated);
            continue;
        }
        let mut given = 0u64;
        for c in claims.iter_mut().filter(|c| !c.3) {
            c.2 = share(c.0);
            c.3 = true;
            given = given.saturating_add(c.2);
        }
        return remaining.saturating_sub(given);
    }
}

/// Puts `x` in the lowest empty slot of `table` (or a new one); returns its index.
fn reuse_slot<T>(table: &mut Vec<Option<T>>, x: T) -> usize {
    match table.iter().position(Option::is_none) {
        Some(i) => {
            table[i] = Some(x);
            i
        }
        None => {
            table.push(Some(x));
            table.len() - 1
        }
    }
}

impl Scheduler {
    /// A scheduler for `p.ncpus` pCPUs, all idle, with no domains.
    pub fn new(p: SchedParams) -> Result<Self> {
        if p.ncpus == 0
            || p.ncpus > MAX_CPUS
            || p.tick_ns == 0
            || p.period_ns == 0
            || p.slice_ns == 0
            || p.period_ns > i64::MAX as u64 / 256
            || p.slice_ns > i64::MAX as u64 / 256
        {
            return Err(SchedError::BadParams);
        }
        let all_cpus = if p.ncpus == 64 {
            u64::MAX
        } else {
            (1u64 << p.ncpus) - 1
        };
        let mut cpus = Vec::new();
        cpus.resize_with(p.ncpus, Pcpu::default);
        Ok(Scheduler {
            p,
            all_cpus,
            doms: Vec::new(),
            vcpus: Vec::new(),
            cpus,
            next_refill: p.period_ns,
            pending_kicks: 0,
        })
    }

    /// Starts the clock at `now` instead of 0 (for a caller whose time does not start
    /// at zero): pCPUs count idle time from `now` and the first refill is a period
    /// later. Call it before anything else.
    pub fn start_at(&mut self, now: u64) {
        for c in &mut self.cpus {
            c.idle_since = now;
        }
        self.next_refill = now.saturating_add(self.p.period_ns);
    }

    /// The parameters.
    pub fn params(&self) -> SchedParams {
        self.p
    }

    /// The pool-wide settings, as `XEN_SYSCTL_SCHEDOP_getinfo` reports them.
    pub fn limits(&self) -> CreditLimits {
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        CreditLimits {
            tslice_ms: narrow(self.p.slice_ns / 1_000_000),
            ratelimit_us: narrow(self.p.ratelimit_ns / 1000),
            migr_delay_us: narrow(self.p.migr_delay_ns / 1000),
        }
    }

    /// `XEN_SYSCTL_SCHEDOP_putinfo`: new pool-wide settings, for the slices and rate
    /// limits decided from now on (a slice already running keeps its end). The tick and
    /// the accounting period stay as they are.
    pub fn set_limits(&mut self, l: CreditLimits) -> Result<()> {
        if !l.valid() {
            return Err(SchedError::BadParams);
        }
        self.p.slice_ns = u64::from(l.tslice_ms) * 1_000_000;
        self.p.ratelimit_ns = u64::from(l.ratelimit_us) * 1000;
        self.p.migr_delay_ns = u64::from(l.migr_delay_us) * 1000;
        Ok(())
    }

    /// The bitmap of all pCPUs.
    pub fn all_cpus(&self) -> u64 {
        self.all_cpus
    }

    /// Credit a vCPU can hold at most (idle vCPUs cannot hoard beyond this).
    pub fn credit_ceiling(&self) -> i64 {
        to_i64(self.p.period_ns)
    }

    /// Credit a vCPU can owe at most.
    pub fn credit_floor(&self) -> i64 {
        to_i64(self.p.period_ns.saturating_add(self.p.slice_ns))
            .saturating_mul(2)
            .saturating_neg()
    }

    /// A vCPU runnable but not run for this long is rescued (32 periods, about 1 s).
    pub fn starvation_ns(&self) -> u64 {
        self.p.period_ns.saturating_mul(32)
    }

    fn cap_amount(&self, cap: u32) -> i64 {
        to_i64(u64::from(cap).saturating_mul(self.p.period_ns) / 100)
    }

    // ---------------------------------------------------------------- lookups

    fn dom(&self, d: DomId) -> Result<&Domain> {
        self.doms
            .get(d.index())
            .and_then(Option::as_ref)
            .ok_or(SchedError::NoSuchDomain)
    }

    fn dom_mut(&mut self, d: DomId) -> Result<&mut Domain> {
        self.doms
            .get_mut(d.index())
            .and_then(Option::as_mut)
            .ok_or(SchedError::NoSuchDomain)
    }

    fn vc(&self, v: VcpuId) -> Result<&Vcpu> {
        self.vcpus
            .get(v.index())
            .and_then(Option::as_ref)
            .ok_or(SchedError::NoSuchVcpu)
    }

    fn vc_mut(&mut self, v: VcpuId) -> Result<&mut Vcpu> {
        self.vcpus
            .get_mut(v.index())
            .and_then(Option::as_mut)
            .ok_or(SchedError::NoSuchVcpu)
    }

    fn check_cpu(&self, cpu: usize) -> Result<()> {
        if cpu < self.p.ncpus {
            Ok(())
        } else {
            Err(SchedError::BadCpu)
        }
    }

    fn pri_of(&self, v: VcpuId) -> Priority {
        self.vc(v).map_or(Priority::Over, |x| x.pri)
    }

    fn parked(&self, v: VcpuId) -> bool {
        self.vc(v)
            .and_then(|x| self.dom(x.dom))
            .is_ok_and(|d| d.parked)
    }

    // ---------------------------------------------------------------- domains

    /// Adds a domain. `weight` 1..=65535; `cap` 0 (none) or percent of one pCPU.
    pub fn add_domain(&mut self, weight: u16, cap: u32) -> Result<DomId> {
        if weight == 0 {
            return Err(SchedError::BadWeight);
        }
        if cap > MAX_CAP {
            return Err(SchedError::BadCap);
        }
        let budget = self.cap_amount(cap);
        let d = Domain {
            weight,
            cap,
            budget,
            parked: false,
            vcpus: Vec::new(),
        };
        // The lowest free handle: a table that churns through domains does not grow.
        let index = reuse_slot(&mut self.doms, d);
        Ok(DomId(
            u32::try_from(index).map_err(|_| SchedError::TooMany)?,
        ))
    }

    /// Changes a domain's weight and cap (the new weight counts from the next refill).
    /// Lifting or raising the cap unparks the domain at once. Returns the pCPUs to kick.
    pub fn set_params(&mut self, dom: DomId, weight: u16, cap: u32, now: u64) -> Result<u64> {
        if weight == 0 {
            return Err(SchedError::BadWeight);
        }
        if cap > MAX_CAP {
            return Err(SchedError::BadCap);
        }
        let amount = self.cap_amount(cap);
        let d = self.dom_mut(dom)?;
        let old_cap = d.cap;
        d.weight = weight;
        d.cap = cap;
        if cap == 0 {
            d.budget = 0;
        } else if old_cap == 0 {
            d.budget = amount;
        } else {
            d.budget = d.budget.min(amount);
        }
        let parked = d.parked;
        if parked && (cap == 0 || d.budget > 0) {
            self.unpark(dom, now);
        }
        Ok(self.take_kicks())
    }

    /// Takes the kicks the scheduler owes (they also ride on every [`Decision`]); for a
    /// caller whose pCPUs may all be idle without ticks.
    pub fn take_kicks(&mut self) -> u64 {
        core::mem::take(&mut self.pending_kicks)
    }

    /// Removes a domain and all its vCPUs. Returns the pCPUs that must reschedule.
    pub fn remove_domain(&mut self, dom: DomId, now: u64) -> Result<u64> {
        let vcpus = self.dom(dom)?.vcpus.clone();
        let mut kick = 0u64;
        for v in vcpus {
            if let Ok(Some(c)) = self.remove_vcpu(v, now) {
                kick |= 1 << c;
            }
        }
        if let Some(slot) = self.doms.get_mut(dom.index()) {
            *slot = None;
        }
        Ok(kick)
    }

    /// A domain's parameters and state.
    pub fn domain_info(&self, dom: DomId) -> Result<DomainInfo> {
        let d = self.dom(dom)?;
        Ok(DomainInfo {
            weight: d.weight,
            cap: d.cap,
            budget: d.budget,
            parked: d.parked,
            vcpus: d.vcpus.len(),
        })
    }

    // ---------------------------------------------------------------- vCPUs

    /// Adds a vCPU to a domain, blocked (call [`Scheduler::wake`] to start it). Its
    /// hard affinity is `affinity` restricted to existing pCPUs.
    pub fn add_vcpu(&mut self, dom: DomId, affinity: u64) -> Result<VcpuId> {
        self.add_vcpu_at(dom, affinity, 0)
    }

    /// [`Scheduler::add_vcpu`] at system time `now` (where its runstate starts).
    pub fn add_vcpu_at(&mut self, dom: DomId, affinity: u64, now: u64) -> Result<VcpuId> {
        self.dom(dom)?;
        let affinity = affinity & self.all_cpus;
        if affinity == 0 {
            return Err(SchedError::BadAffinity);
        }
        // Start on the allowed pCPU with the fewest vCPUs homed on it.
        let mut load = [0usize; MAX_CPUS];
        for v in self.vcpus.iter().flatten() {
            if let Some(l) = load.get_mut(v.cpu) {
                *l += 1;
            }
        }
        let cpu = (0..self.p.ncpus)
            .filter(|&c| affinity & (1 << c) != 0)
            .min_by_key(|&c| load[c])
            .unwrap_or(0);
        let index = reuse_slot(
            &mut self.vcpus,
            Vcpu {
                dom,
                affinity,
                state: VcpuState::Blocked,
                pri: Priority::Under,
                credit: 0,
                cpu,
                acct_at: 0,
                started_at: 0,
                queued_at: 0,
                last_ran: 0,
                left_at: None,
                ran_in_period: false,
                yielded: false,
                stats: VcpuStats::default(),
                runstate: Runstate::new(VcpuState::Blocked, now),
            },
        );
        let id = VcpuId(u32::try_from(index).map_err(|_| SchedError::TooMany)?);
        self.dom_mut(dom)?.vcpus.push(id);
        Ok(id)
    }

    /// Takes a vCPU out of scheduling and frees its id. Returns the pCPU that must
    /// reschedule if it was running.
    pub fn remove_vcpu(&mut self, v: VcpuId, now: u64) -> Result<Option<usize>> {
        let r = self.offline(v, now)?;
        let dom = self.vc(v)?.dom;
        if let Ok(d) = self.dom_mut(dom) {
            d.vcpus.retain(|&x| x != v);
        }
        if let Some(slot) = self.vcpus.get_mut(v.index()) {
            *slot = None;
        }
        Ok(r)
    }

    /// Takes a vCPU out of scheduling (kept, see [`Scheduler::online`]). Returns the
    /// pCPU that must reschedule if it was running.
    pub fn offline(&mut self, v: VcpuId, now: u64) -> Result<Option<usize>> {
        let r = self.deschedule(v, now)?;
        self.vc_mut(v)?.set_state(VcpuState::Offline, now);
        Ok(r)
    }

    /// Brings an offline vCPU back, blocked, at system time `now`.
    pub fn online(&mut self, v: VcpuId, now: u64) -> Result<()> {
        let x = self.vc_mut(v)?;
        if x.state == VcpuState::Offline {
            x.set_state(VcpuState::Blocked, now);
        }
        Ok(())
    }

    /// Removes `v` from its queue or pCPU; its state is left for the caller to set
    /// (it is `Runnable` afterwards if it was running).
    fn deschedule(&mut self, v: VcpuId, now: u64) -> Result<Option<usize>> {
        let (state, cpu) = {
            let x = self.vc(v)?;
            (x.state, x.cpu)
        };
        match state {
            VcpuState::Running => {
                self.debit(v, now);
                self.set_current(cpu, None, now);
                if let Ok(x) = self.vc_mut(v) {
                    x.set_state(VcpuState::Runnable, now);
                }
                Ok(Some(cpu))
            }
            VcpuState::Runnable => {
                self.dequeue(v, now);
                Ok(None)
            }
            VcpuState::Blocked | VcpuState::Offline => Ok(None),
        }
    }

    /// Changes a vCPU's hard affinity. Returns the pCPU that must reschedule, if any.
    pub fn set_affinity(&mut self, v: VcpuId, affinity: u64, now: u64) -> Result<Option<usize>> {
        let affinity = affinity & self.all_cpus;
        if affinity == 0 {
            return Err(SchedError::BadAffinity);
        }
        let (state, cpu) = {
            let x = self.vc(v)?;
            (x.state, x.cpu)
        };
        self.vc_mut(v)?.affinity = affinity;
        if affinity & (1 << cpu) != 0 {
            return Ok(None);
        }
        match state {
            // Leaves its pCPU at the next schedule there (which re-places it).
            VcpuState::Running => Ok(Some(cpu)),
            VcpuState::Runnable if !self.parked(v) => {
                self.dequeue(v, now);
                Ok(self.place(v, now))
            }
            _ => {
                // Rehome it so that `cpu` always lies in the mask.
                let c = affinity.trailing_zeros() as usize;
                self.vc_mut(v)?.cpu = c;
                Ok(None)
            }
        }
    }

    /// A snapshot of a vCPU.
    pub fn vcpu_info(&self, v: VcpuId) -> Result<VcpuInfo> {
        let x = self.vc(v)?;
        Ok(VcpuInfo {
            dom: x.dom,
            state: x.state,
            pri: x.pri,
            credit: x.credit,
            cpu: x.cpu,
            affinity: x.affinity,
            parked: self.parked(v),
            stats: x.stats,
        })
    }

    /// When the next refill is due. A caller whose idle pCPUs stop ticking must still
    /// call [`Scheduler::tick`] on some pCPU by then while a domain is parked (that
    /// refill is what unparks it).
    pub fn next_refill_at(&self) -> u64 {
        self.next_refill
    }

    /// True if some domain is parked over its cap.
    pub fn any_parked(&self) -> bool {
        self.doms.iter().flatten().any(|d| d.parked)
    }

    /// Number of vCPU ids handed out (removed ones included).
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// A vCPU's accounting.
    pub fn vcpu_stats(&self, v: VcpuId) -> Result<VcpuStats> {
        Ok(self.vc(v)?.stats)
    }

    /// A vCPU's runstate as of `now` (`VCPUOP_get_runstate_info`).
    pub fn runstate(&self, v: VcpuId, now: u64) -> Result<Runstate> {
        Ok(self.vc(v)?.runstate.at(now))
    }

    /// A pCPU's accounting.
    pub fn cpu_stats(&self, cpu: usize) -> Result<CpuStats> {
        self.check_cpu(cpu)?;
        let c = &self.cpus[cpu];
        Ok(CpuStats {
            idle_ns: c.idle_ns,
            steals: c.steals,
            current: c.current,
            queued: c.runq.len(),
        })
    }

    /// The vCPU current on `cpu`.
    pub fn running_on(&self, cpu: usize) -> Result<Option<VcpuId>> {
        self.check_cpu(cpu)?;
        Ok(self.cpus[cpu].current)
    }

    /// The run queue of `cpu`, head first.
    pub fn runqueue(&self, cpu: usize) -> Result<Vec<VcpuId>> {
        self.check_cpu(cpu)?;
        Ok(self.cpus[cpu].runq.iter().copied().collect())
    }

    /// Brings every running vCPU's run time and every idle pCPU's idle time up to `now`
    /// (for reading the statistics; scheduling is unaffected).
    pub fn sync(&mut self, now: u64) {
        for cpu in 0..self.p.ncpus {
            match self.cpus[cpu].current {
                Some(v) => self.debit(v, now),
                None => {
                    let c = &mut self.cpus[cpu];
                    c.idle_ns = c.idle_ns.saturating_add(now.saturating_sub(c.idle_since));
                    c.idle_since = c.idle_since.max(now);
                }
            }
        }
        for x in self.vcpus.iter_mut().flatten() {
            if x.state == VcpuState::Runnable
                && self
                    .doms
                    .get(x.dom.index())
                    .is_some_and(|d| d.as_ref().is_some_and(|d| !d.parked))
            {
                x.stats.wait_ns = x
                    .stats
                    .wait_ns
                    .saturating_add(now.saturating_sub(x.queued_at));
                x.queued_at = x.queued_at.max(now);
            }
        }
    }

    // ---------------------------------------------------------------- queues

    fn enqueue(&mut self, v: VcpuId, cpu: usize, now: u64) {
        let pri = self.pri_of(v);
        if let Ok(x) = self.vc_mut(v) {
            if x.cpu != cpu {
                x.stats.migrations = x.stats.migrations.saturating_add(1);
                x.cpu = cpu;
            }
            x.queued_at = now;
        }
        let pos = {
            let q = &self.cpus[cpu].runq;
            q.iter()
                .position(|&o| self.pri_of(o).rank() < pri.rank())
                .unwrap_or(q.len())
        };
        self.cpus[cpu].runq.insert(pos, v);
    }

    fn dequeue(&mut self, v: VcpuId, now: u64) {
        let Ok(x) = self.vc_mut(v) else { return };
        x.stats.wait_ns = x
            .stats
            .wait_ns
            .saturating_add(now.saturating_sub(x.queued_at));
        x.queued_at = now;
        let cpu = x.cpu;
        if let Some(c) = self.cpus.get_mut(cpu) {
            c.runq.retain(|&o| o != v);
        }
    }

    fn set_current(&mut self, cpu: usize, v: Option<VcpuId>, now: u64) {
        if let Some(old) = self.cpus[cpu].current
            && Some(old) != v
            && let Ok(x) = self.vc_mut(old)
        {
            x.left_at = Some(now);
        }
        let c = &mut self.cpus[cpu];
        match (c.current, v) {
            (None, Some(_)) => {
                c.idle_ns = c.idle_ns.saturating_add(now.saturating_sub(c.idle_since));
            }
            (Some(_), None) => c.idle_since = now,
            _ => {}
        }
        c.current = v;
    }

    /// Queues a runnable vCPU on the best pCPU for it (its own if idle, else an idle one
    /// it may run on, else its own). Returns the pCPU to kick, if any.
    fn place(&mut self, v: VcpuId, now: u64) -> Option<usize> {
        let (home, aff, pri) = {
            let x = self.vc(v).ok()?;
            (x.cpu, x.affinity, x.pri)
        };
        let idle = |s: &Self, c: usize| s.cpus[c].current.is_none();
        let n = self.p.ncpus;
        let mut target = None;
        if aff & (1 << home) != 0 && idle(self, home) {
            target = Some(home);
        }
        if target.is_none() {
            target = (1..n)
                .map(|o| (home + o) % n)
                .find(|&c| aff & (1 << c) != 0 && idle(self, c));
        }
        let target = match target {
            Some(c) => c,
            None if aff & (1 << home) != 0 => home,
            // Home is not allowed: among allowed pCPUs, the one running the lowest priority.
            None => (0..n)
                .filter(|&c| aff & (1 << c) != 0)
                .min_by_key(|&c| {
                    (
                        self.cpus[c].current.map_or(0, |o| self.pri_of(o).rank()),
                        self.cpus[c].runq.len(),
                    )
                })
                .unwrap_or(home),
        };
        self.enqueue(v, target, now);
        match self.cpus[target].current {
            None => Some(target),
            Some(cur) if self.pri_of(cur).rank() < pri.rank() => Some(target),
            Some(_) => None,
        }
    }

    // ---------------------------------------------------------------- events

    /// Makes a blocked vCPU runnable (BOOST if it has credit left). Returns the pCPU to
    /// kick (call [`Scheduler::schedule`] there), if any.
    pub fn wake(&mut self, v: VcpuId, now: u64) -> Result<Option<usize>> {
        let x = self.vc_mut(v)?;
        match x.state {
            VcpuState::Offline => return Err(SchedError::Offline),
            VcpuState::Runnable | VcpuState::Running => return Ok(None),
            VcpuState::Blocked => {}
        }
        x.set_state(VcpuState::Runnable, now);
        x.queued_at = now;
        x.last_ran = now;
        x.yielded = false;
        if x.pri != Priority::Over {
            x.pri = Priority::Boost;
        }
        if self.parked(v) {
            return Ok(None);
        }
        Ok(self.place(v, now))
    }

    /// Blocks a vCPU (it waits for [`Scheduler::wake`]). Returns the pCPU that must
    /// reschedule if it was running.
    pub fn block(&mut self, v: VcpuId, now: u64) -> Result<Option<usize>> {
        if self.vc(v)?.state == VcpuState::Offline {
            return Err(SchedError::Offline);
        }
        let r = self.deschedule(v, now)?;
        self.vc_mut(v)?.set_state(VcpuState::Blocked, now);
        Ok(r)
    }

    /// The running vCPU gives up its pCPU (it goes behind the others of its priority,
    /// and the rate limit does not keep it). Returns the pCPU to reschedule.
    pub fn yield_(&mut self, v: VcpuId, _now: u64) -> Result<Option<usize>> {
        let x = self.vc_mut(v)?;
        match x.state {
            VcpuState::Running => {
                x.yielded = true;
                Ok(Some(x.cpu))
            }
            VcpuState::Offline => Err(SchedError::Offline),
            _ => Ok(None),
        }
    }

    /// Debits `v` for the time it ran since its last accounting.
    fn debit(&mut self, v: VcpuId, now: u64) {
        let floor = self.credit_floor();
        let Ok(x) = self.vc_mut(v) else { return };
        x.last_ran = x.last_ran.max(now);
        let d = now.saturating_sub(x.acct_at);
        x.acct_at = x.acct_at.max(now);
        if d == 0 {
            return;
        }
        x.credit = x.credit.saturating_sub(to_i64(d)).max(floor);
        x.stats.run_ns = x.stats.run_ns.saturating_add(d);
        x.ran_in_period = true;
        if x.credit < 0 && x.pri == Priority::Under {
            x.pri = Priority::Over;
        }
        let dom = x.dom;
        let floor = self.cap_amount(MAX_CAP).saturating_neg();
        if let Ok(dm) = self.dom_mut(dom)
            && dm.cap != 0
        {
            dm.budget = dm.budget.saturating_sub(to_i64(d)).max(floor);
            if dm.budget <= 0 && !dm.parked {
                self.park(dom, now);
            }
        }
    }

    /// Parks a domain over its cap: its queued vCPUs leave the queues, the pCPUs running
    /// its vCPUs are kicked.
    fn park(&mut self, dom: DomId, now: u64) {
        let Ok(d) = self.dom_mut(dom) else { return };
        d.parked = true;
        let vcpus = d.vcpus.clone();
        for v in vcpus {
            let Ok(x) = self.vc(v) else { continue };
            let (state, cpu) = (x.state, x.cpu);
            match state {
                VcpuState::Runnable => self.dequeue(v, now),
                VcpuState::Running => self.pending_kicks |= 1 << cpu,
                _ => {}
            }
        }
    }

    fn unpark(&mut self, dom: DomId, now: u64) {
        let Ok(d) = self.dom_mut(dom) else { return };
        d.parked = false;
        let vcpus = d.vcpus.clone();
        for v in vcpus {
            if self.vc(v).is_ok_and(|x| x.state == VcpuState::Runnable)
                && let Some(c) = self.place(v, now)
            {
                self.pending_kicks |= 1 << c;
            }
        }
    }

    /// The periodic refill: credit for active domains by weight (see the module docs).
    fn refill(&mut self, now: u64) {
        for cpu in 0..self.p.ncpus {
            if let Some(v) = self.cpus[cpu].current {
                self.debit(v, now);
            }
        }
        let ceiling = self.credit_ceiling();
        let period = self.p.period_ns;
        let total = period.saturating_mul(self.p.ncpus as u64);
        // Per domain: (weight, limit, grant, done) and its active vCPUs.
        let mut claims: Vec<(u64, u64, u64, bool)> = Vec::new();
        let mut members: Vec<(DomId, Vec<(VcpuId, u64)>)> = Vec::new();
        for (i, d) in self.doms.iter().enumerate() {
            let Some(d) = d else { continue };
            let mut act = Vec::new();
            let mut limit = 0u64;
            for &v in &d.vcpus {
                let Ok(x) = self.vc(v) else { continue };
                let active = match x.state {
                    VcpuState::Offline => false,
                    VcpuState::Runnable | VcpuState::Running => true,
                    VcpuState::Blocked => x.ran_in_period,
                };
                if active {
                    let room = u64::try_from(ceiling.saturating_sub(x.credit).max(0))
                        .unwrap_or(0)
                        .min(period);
                    limit = limit.saturating_add(room);
                    act.push((v, room));
                }
            }
            if act.is_empty() {
                continue;
            }
            if d.cap != 0 {
                limit = limit.min(u64::try_from(self.cap_amount(d.cap)).unwrap_or(0));
            }
            claims.push((u64::from(d.weight), limit, 0, false));
            members.push((DomId(i as u32), act));
        }
        water_fill(total, &mut claims);
        for (claim, (_, act)) in claims.iter().zip(members.iter()) {
            let mut vc: Vec<(u64, u64, u64, bool)> =
                act.iter().map(|&(_, room)| (1, room, 0, false)).collect();
            water_fill(claim.2, &mut vc);
            for (&(v, _), g) in act.iter().zip(vc.iter()) {
                if let Ok(x) = self.vc_mut(v) {
                    x.credit = x.credit.saturating_add(to_i64(g.2)).min(ceiling);
                }
            }
        }
        let starve = self.starvation_ns();
        for x in self.vcpus.iter_mut().flatten() {
            x.ran_in_period = false;
            x.credit = x.credit.min(ceiling);
            x.pri = match x.pri {
                Priority::Boost if x.credit >= 0 => Priority::Boost,
                _ if x.credit >= 0 => Priority::Under,
                // Starvation rescue: a vCPU runnable but not run for this long is served
                // as UNDER once (its next debit makes it OVER again).
                _ if x.state == VcpuState::Runnable && now.saturating_sub(x.last_ran) >= starve => {
                    Priority::Under
                }
                _ => Priority::Over,
            };
        }
        // Cap budgets: one period's worth, debt carried, no hoarding.
        for i in 0..self.doms.len() {
            let (cap, parked, budget) = match &self.doms[i] {
                Some(d) if d.cap != 0 => (d.cap, d.parked, d.budget),
                _ => continue,
            };
            let amount = self.cap_amount(cap);
            let budget = budget.saturating_add(amount).min(amount);
            if let Some(Some(d)) = self.doms.get_mut(i) {
                d.budget = budget;
            }
            let id = DomId(i as u32);
            if parked && budget > 0 {
                self.unpark(id, now);
            } else if !parked && budget <= 0 {
                self.park(id, now);
            }
        }
        // Priorities changed: re-sort every queue (stable), kick where the head now
        // beats the running vCPU.
        for cpu in 0..self.p.ncpus {
            let mut q: Vec<VcpuId> = self.cpus[cpu].runq.drain(..).collect();
            q.sort_by_key(|&v| core::cmp::Reverse(self.pri_of(v).rank()));
            self.cpus[cpu].runq = q.into();
            if let (Some(cur), Some(&head)) = (self.cpus[cpu].current, self.cpus[cpu].runq.front())
                && self.pri_of(head).rank() > self.pri_of(cur).rank()
            {
                self.pending_kicks |= 1 << cpu;
            }
        }
    }

    fn refill_if_due(&mut self, now: u64) {
        if now < self.next_refill {
            return;
        }
        self.refill(now);
        // One refill however late we are; the next one a period after the missed ones.
        let late = now.saturating_sub(self.next_refill) % self.p.period_ns;
        self.next_refill = now.saturating_add(self.p.period_ns - late);
    }

    /// The best queued vCPU on a peer that `cpu` may run, with a priority of at least
    /// `min_rank` and not cache-hot on its peer at `now`: (peer, vCPU). Ties go to the
    /// nearest peer after `cpu`.
    fn find_steal(&self, cpu: usize, min_rank: u8, now: u64) -> Option<(usize, VcpuId)> {
        let n = self.p.ncpus;
        let mut best: Option<(u8, usize, VcpuId)> = None;
        for off in 1..n {
            let peer = (cpu + off) % n;
            for &v in &self.cpus[peer].runq {
                let r = self.pri_of(v).rank();
                if r < min_rank || best.is_some_and(|b| r <= b.0) {
                    break;
                }
                let movable = self.vc(v).is_ok_and(|x| {
                    x.affinity & (1 << cpu) != 0
                        && x.left_at
                            .is_none_or(|t| now.saturating_sub(t) >= self.p.migr_delay_ns)
                });
                if movable {
                    best = Some((r, peer, v));
                    break;
                }
            }
        }
        best.map(|(_, p, v)| (p, v))
    }

    /// Accounting on a timer tick of `cpu`: refill when due, debit the running vCPU,
    /// end its BOOST, and reschedule if it is over its cap or slice, if a better vCPU
    /// waits here, or if this pCPU idles or runs OVER work while a peer has better work.
    pub fn tick(&mut self, cpu: usize, now: u64) -> Result<Decision> {
        self.check_cpu(cpu)?;
        self.refill_if_due(now);
        let Some(cur) = self.cpus[cpu].current else {
            if self.cpus[cpu].runq.is_empty() && self.find_steal(cpu, 0, now).is_none() {
                return Ok(self.decision(cpu, None, 0, None));
            }
            return self.schedule(cpu, now);
        };
        self.debit(cur, now);
        if let Ok(x) = self.vc_mut(cur)
            && x.pri == Priority::Boost
        {
            x.pri = if x.credit >= 0 {
                Priority::Under
            } else {
                Priority::Over
            };
        }
        let pri = self.pri_of(cur).rank();
        let c = &self.cpus[cpu];
        let ran = now.saturating_sub(self.vc(cur).map_or(now, |x| x.started_at));
        let limited = ran < self.p.ratelimit_ns;
        let aff = self.vc(cur).map_or(0, |x| x.affinity);
        let resched = self.parked(cur)
            || aff & (1 << cpu) == 0
            || now >= c.slice_end
            || self.pending_kicks & (1 << cpu) != 0
            || (!limited
                && (c.runq.front().is_some_and(|&h| self.pri_of(h).rank() > pri)
                    || (pri == 0 && self.find_steal(cpu, 1, now).is_some())));
        if resched {
            return self.schedule(cpu, now);
        }
        let left = c.slice_end.saturating_sub(now);
        Ok(self.decision(cpu, Some(cur), left, None))
    }

    fn decision(
        &mut self,
        cpu: usize,
        run: Option<VcpuId>,
        slice_ns: u64,
        migrated_from: Option<usize>,
    ) -> Decision {
        let kick = self.pending_kicks & !(1 << cpu);
        self.pending_kicks &= 1 << cpu;
        Decision {
            run,
            slice_ns,
            migrated_from,
            kick,
        }
    }

    /// Picks what `cpu` runs next. Called when kicked, when the slice timer fires, and
    /// after the running vCPU blocked or yielded.
    pub fn schedule(&mut self, cpu: usize, now: u64) -> Result<Decision> {
        self.check_cpu(cpu)?;
        self.refill_if_due(now);
        self.pending_kicks &= !(1 << cpu);
        let prev = self.cpus[cpu].current;
        if let Some(cur) = prev {
            self.debit(cur, now);
            let (aff, started, yielded) = {
                let x = self.vc(cur)?;
                (x.affinity, x.started_at, x.yielded)
            };
            let keepable = !self.parked(cur) && aff & (1 << cpu) != 0;
            let ran = now.saturating_sub(started);
            if keepable && !yielded && ran < self.p.ratelimit_ns {
                // Rate limit: keep it until it ran the minimum.
                let left = self.p.ratelimit_ns - ran;
                self.cpus[cpu].slice_end = now.saturating_add(left);
                return Ok(self.decision(cpu, Some(cur), left, None));
            }
            self.set_current(cpu, None, now);
            if let Ok(x) = self.vc_mut(cur) {
                x.set_state(VcpuState::Runnable, now);
                x.yielded = false;
            }
            if keepable {
                self.enqueue(cur, cpu, now);
                // A yielding vCPU goes behind its equals (enqueue already puts it last
                // in its class).
            } else if !self.parked(cur)
                && let Some(c) = self.place(cur, now)
            {
                self.pending_kicks |= 1 << c;
            }
        }
        // Pick: local head, unless idle or OVER and a peer has better work.
        let local = self.cpus[cpu].runq.front().copied();
        let min_steal = match local {
            None => Some(0),
            Some(h) if self.pri_of(h) == Priority::Over => Some(1),
            Some(_) => None,
        };
        let mut chosen = local;
        let mut from = None;
        if let Some(min) = min_steal
            && let Some((peer, v)) = self.find_steal(cpu, min, now)
        {
            self.cpus[peer].runq.retain(|&o| o != v);
            self.cpus[cpu].steals = self.cpus[cpu].steals.saturating_add(1);
            // Put it at the front here so that the common path below takes it.
            if let Ok(x) = self.vc_mut(v) {
                x.stats.migrations = x.stats.migrations.saturating_add(1);
                x.cpu = cpu;
            }
            self.cpus[cpu].runq.push_front(v);
            chosen = Some(v);
            from = Some(peer);
        }
        let Some(next) = chosen else {
            self.kick_idlers(cpu);
            return Ok(self.decision(cpu, None, 0, None));
        };
        self.cpus[cpu].runq.pop_front();
        {
            let x = self.vc_mut(next)?;
            x.stats.wait_ns = x
                .stats
                .wait_ns
                .saturating_add(now.saturating_sub(x.queued_at));
            x.set_state(VcpuState::Running, now);
            x.acct_at = now;
            x.last_ran = now;
            if prev != Some(next) {
                x.stats.runs = x.stats.runs.saturating_add(1);
                x.started_at = now;
            }
        }
        self.set_current(cpu, Some(next), now);
        let mut slice = self.p.slice_ns;
        if let Ok(d) = self.vc(next).and_then(|x| self.dom(x.dom))
            && d.cap != 0
        {
            slice = slice.min(u64::try_from(d.budget.max(1)).unwrap_or(1));
        }
        self.cpus[cpu].slice_end = now.saturating_add(slice);
        self.kick_idlers(cpu);
        Ok(self.decision(cpu, Some(next), slice, from))
    }

    /// Kicks idle peers that may run something waiting in `cpu`'s queue.
    fn kick_idlers(&mut self, cpu: usize) {
        let mut taken = 0u64;
        for &v in &self.cpus[cpu].runq {
            let aff = self.vc(v).map_or(0, |x| x.affinity);
            if let Some(c) = (0..self.p.ncpus).find(|&c| {
                c != cpu
                    && aff & (1 << c) != 0
                    && taken & (1 << c) == 0
                    && self.cpus[c].current.is_none()
            }) {
                taken |= 1 << c;
            }
        }
        self.pending_kicks |= taken;
    }

    /// Checks the structural invariants listed in the module docs.
    pub fn check_invariants(&self) -> core::result::Result<(), &'static str> {
        let mut seen_q = alloc::vec![0u32; self.vcpus.len()];
        let mut seen_r = seen_q.clone();
        for (c, p) in self.cpus.iter().enumerate() {
            let mut last = u8::MAX;
            for &v in &p.runq {
                let x = self.vc(v).map_err(|_| "dead vCPU queued")?;
                if x.state != VcpuState::Runnable {
                    return Err("queued vCPU not runnable");
                }
                if self.parked(v) {
                    return Err("parked vCPU queued");
                }
                if x.cpu != c {
                    return Err("queued on a pCPU other than its own");
                }
                if x.affinity & (1 << c) == 0 {
                    return Err("queued outside its affinity");
                }
                let r = x.pri.rank();
                if r > last {
                    return Err("queue out of priority order");
                }
                last = r;
                seen_q[v.index()] += 1;
            }
            if let Some(v) = p.current {
                let x = self.vc(v).map_err(|_| "dead vCPU running")?;
                if x.state != VcpuState::Running {
                    return Err("current vCPU not running");
                }
                if x.cpu != c {
                    return Err("running on a pCPU other than its own");
                }
                if x.affinity & (1 << c) == 0 {
                    return Err("running outside its affinity");
                }
                seen_r[v.index()] += 1;
            }
        }
        for (i, x) in self.vcpus.iter().enumerate() {
            let Some(x) = x else { continue };
            let want_q =
                u32::from(x.state == VcpuState::Runnable && !self.parked(VcpuId(i as u32)));
            let want_r = u32::from(x.state == VcpuState::Running);
            if seen_q[i] != want_q {
                return Err("runnable vCPU not queued exactly once");
            }
            if seen_r[i] != want_r {
                return Err("running vCPU not current exactly once");
            }
            if x.credit > self.credit_ceiling() || x.credit < self.credit_floor() {
                return Err("credit out of bounds");
            }
        }
        Ok(())
    }
}
