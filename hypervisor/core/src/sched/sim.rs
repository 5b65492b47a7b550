//! A deterministic discrete-event simulator that drives a [`Scheduler`] the way the
//! hypervisor would: periodic ticks on every pCPU, slice timers, IPIs ("kicks") acted on
//! at once, and vCPU workloads that run, block and wake in simulated time.
//!
//! It measures what the scheduler promises (CPU shares, wake latency, the longest wait
//! of a runnable vCPU, idle pCPUs next to waiting work) and checks the scheduler's
//! invariants after every batch of events.

use alloc::vec::Vec;

use super::{Decision, Scheduler, VcpuId, VcpuState};

/// A small linear congruential generator (Knuth's MMIX constants).
#[derive(Clone, Copy, Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// A value in `lo..=hi` (`lo` if `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        let r = (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32());
        lo + r % span
    }
}

/// What a simulated vCPU does.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    /// Always wants to run.
    Hog,
    /// Runs `run_ns` of CPU, then blocks for `sleep_ns`, forever.
    Sleeper {
        /// CPU time per burst.
        run_ns: u64,
        /// Time blocked between bursts.
        sleep_ns: u64,
    },
    /// Bursts and sleeps of random lengths; sometimes yields instead of blocking.
    Random {
        /// Longest burst.
        max_run_ns: u64,
        /// Longest sleep.
        max_sleep_ns: u64,
    },
}

#[derive(Clone, Debug)]
struct SimVcpu {
    id: VcpuId,
    work: Workload,
    /// CPU time left in the current burst.
    burst_left: u64,
    /// When a blocked vCPU wakes.
    wake_at: Option<u64>,
    /// When it last woke (until it runs), and whether it woke with BOOST.
    woke_at: Option<(u64, bool)>,
    /// Since when it is runnable, queued and not running.
    waiting_since: Option<u64>,
    /// CPU time as seen by the simulator.
    ran_ns: u64,
    alive: bool,
}

/// Measurements of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimReport {
    /// Longest time from a wake to running, over all wakes.
    pub worst_wake_latency_ns: u64,
    /// Number of wakes measured.
    pub wakes: u64,
    /// Longest time from a wake that gave BOOST to running.
    pub worst_boost_wake_latency_ns: u64,
    /// Number of wakes that gave BOOST.
    pub boosted_wakes: u64,
    /// Longest time a runnable (queued) vCPU waited to run.
    pub worst_wait_ns: u64,
    /// Longest stretch a pCPU idled while a vCPU allowed on it waited in some queue.
    pub worst_idle_with_work_ns: u64,
}

/// The simulator.
#[derive(Clone, Debug)]
pub struct Sim {
    /// The scheduler under test (tests may call it directly, then [`Sim::kick`]).
    pub sched: Scheduler,
    vcpus: Vec<SimVcpu>,
    now: u64,
    running: Vec<Option<VcpuId>>,
    timer: Vec<Option<u64>>,
    next_tick: Vec<u64>,
    kicks: u64,
    idle_with_work_since: Vec<Option<u64>>,
    rng: Lcg,
    /// Measurements so far.
    pub report: SimReport,
    /// Check the scheduler's invariants after every batch of events.
    pub check: bool,
    /// Idle pCPUs get no ticks (they wake on kicks only), as with a tickless idle loop.
    pub tickless_idle: bool,
}

impl Sim {
    /// A simulator around `sched` (normally fresh), random decisions seeded by `seed`.
    pub fn new(sched: Scheduler, seed: u64) -> Self {
        let n = sched.params().ncpus;
        let tick = sched.params().tick_ns;
        let mut running = Vec::new();
        running.resize(n, None);
        let mut timer = Vec::new();
        timer.resize(n, None);
        let mut iw = Vec::new();
        iw.resize(n, None);
        Sim {
            sched,
            vcpus: Vec::new(),
            now: 0,
            running,
            timer,
            next_tick: alloc::vec![tick; n],
            kicks: 0,
            idle_with_work_since: iw,
            rng: Lcg(seed),
            report: SimReport::default(),
            check: true,
            tickless_idle: false,
        }
    }

    /// Spreads the pCPUs' ticks evenly over one tick period instead of firing them
    /// together (call before running).
    pub fn stagger_ticks(&mut self) {
        let n = self.next_tick.len() as u64;
        let tick = self.sched.params().tick_ns;
        for (c, t) in self.next_tick.iter_mut().enumerate() {
            *t = tick + c as u64 * tick / n;
        }
    }

    /// Simulated time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Registers `id` (already added to the scheduler) with a workload and wakes it now.
    pub fn add(&mut self, id: VcpuId, work: Workload) {
        let burst = self.new_burst(work);
        self.vcpus.push(SimVcpu {
            id,
            work,
            burst_left: burst,
            wake_at: None,
            woke_at: None,
            waiting_since: None,
            ran_ns: 0,
            alive: true,
        });
        let now = self.now;
        if let Ok(k) = self.sched.wake(id, now) {
            self.kick_opt(k);
        }
        self.settle();
    }

    /// Forgets a vCPU (after the test removed or offlined it in the scheduler).
    pub fn forget(&mut self, id: VcpuId) {
        for s in self.vcpus.iter_mut().filter(|s| s.id == id) {
            s.alive = false;
        }
    }

    /// CPU time the simulator saw `id` run.
    pub fn ran_ns(&self, id: VcpuId) -> u64 {
        self.vcpus
            .iter()
            .filter(|s| s.id == id)
            .map(|s| s.ran_ns)
            .sum()
    }

    /// Asks `cpu` to reschedule (an IPI).
    pub fn kick(&mut self, cpu: usize) {
        self.kicks |= 1 << cpu;
    }

    /// [`Sim::kick`] for every pCPU in a bitmap.
    pub fn kick_mask(&mut self, cpus: u64) {
        self.kicks |= cpus;
    }

    /// [`Sim::kick`] for an optional pCPU.
    pub fn kick_opt(&mut self, cpu: Option<usize>) {
        if let Some(c) = cpu {
            self.kick(c);
        }
    }

    /// Delivers pending kicks and checks the invariants (call after direct scheduler
    /// calls).
    pub fn settle(&mut self) {
        let mut guard = 0;
        while self.kicks != 0 && guard < 1000 {
            guard += 1;
            let k = self.kicks;
            self.kicks = 0;
            for cpu in 0..self.running.len() {
                if k & (1 << cpu) != 0 {
                    let d = self.sched.schedule(cpu, self.now);
                    self.apply(cpu, d);
                }
            }
        }
        self.observe();
    }

    fn new_burst(&mut self, work: Workload) -> u64 {
        match work {
            Workload::Hog => u64::MAX,
            Workload::Sleeper { run_ns, .. } => run_ns.max(1),
            Workload::Random { max_run_ns, .. } => self.rng.range(1, max_run_ns.max(1)),
        }
    }

    fn apply(&mut self, cpu: usize, d: Result<Decision, super::SchedError>) {
        let Ok(d) = d else {
            panic!("scheduler refused a call on pCPU {cpu}: {d:?}");
        };
        self.kicks |= d.kick;
        self.running[cpu] = d.run;
        self.timer[cpu] = match d.run {
            Some(_) if d.slice_ns > 0 => Some(self.now.saturating_add(d.slice_ns)),
            _ => None,
        };
        if let Some(v) = d.run
            && let Some(s) = self.vcpus.iter_mut().find(|s| s.id == v && s.alive)
            && let Some((w, boosted)) = s.woke_at.take()
        {
            let lat = self.now - w;
            self.report.wakes += 1;
            self.report.worst_wake_latency_ns = self.report.worst_wake_latency_ns.max(lat);
            if boosted {
                self.report.boosted_wakes += 1;
                self.report.worst_boost_wake_latency_ns =
                    self.report.worst_boost_wake_latency_ns.max(lat);
            }
        }
    }

    /// Checks invariants and tracks waits and idling next to waiting work.
    fn observe(&mut self) {
        let now = self.now;
        if self.check {
            if let Err(e) = self.sched.check_invariants() {
                panic!("invariant broken at {now}: {e}");
            }
            for (cpu, r) in self.running.iter().enumerate() {
                let s = self.sched.running_on(cpu).ok().flatten();
                assert_eq!(
                    *r, s,
                    "pCPU {cpu} runs {r:?}, scheduler says {s:?} at {now}"
                );
                if let Some(v) = r {
                    let aff = self.sched.vcpu_info(*v).map(|i| i.affinity).unwrap_or(0);
                    assert!(
                        aff & (1 << cpu) != 0,
                        "{v:?} on pCPU {cpu} outside {aff:#x}"
                    );
                }
            }
        }
        // Queued (runnable, not parked, not running) vCPUs and the pCPUs they may use.
        let mut waiting_mask = 0u64;
        for s in self.vcpus.iter_mut().filter(|s| s.alive) {
            // A wake stops counting as boosted once its domain gets parked or it lost BOOST.
            if let Some((_, boosted)) = &mut s.woke_at
                && self
                    .sched
                    .vcpu_info(s.id)
                    .is_ok_and(|i| i.parked || i.pri != super::Priority::Boost)
            {
                *boosted = false;
            }
            let queued = self
                .sched
                .vcpu_info(s.id)
                .is_ok_and(|i| i.state == VcpuState::Runnable && !i.parked);
            if queued {
                s.waiting_since.get_or_insert(now);
                waiting_mask |= self.sched.vcpu_info(s.id).map_or(0, |i| i.affinity);
            } else if let Some(t) = s.waiting_since.take() {
                self.report.worst_wait_ns = self.report.worst_wait_ns.max(now - t);
            }
        }
        for cpu in 0..self.running.len() {
            let idle_with_work = self.running[cpu].is_none() && waiting_mask & (1 << cpu) != 0;
            if idle_with_work {
                self.idle_with_work_since[cpu].get_or_insert(now);
            } else if let Some(t) = self.idle_with_work_since[cpu].take() {
                self.report.worst_idle_with_work_ns =
                    self.report.worst_idle_with_work_ns.max(now - t);
            }
        }
    }

    /// Runs the simulation until `end` (absolute simulated time).
    pub fn run_until(&mut self, end: u64) {
        while self.now < end {
            self.step(end);
        }
        // Close open measurements.
        for s in self.vcpus.iter_mut().filter(|s| s.alive) {
            if let Some(t) = s.waiting_since {
                self.report.worst_wait_ns = self.report.worst_wait_ns.max(self.now - t);
            }
        }
        for t in self.idle_with_work_since.iter().flatten() {
            self.report.worst_idle_with_work_ns =
                self.report.worst_idle_with_work_ns.max(self.now - t);
        }
        self.sched.sync(self.now);
    }

    /// Advances to the next event (no later than `end`) and handles everything due then.
    pub fn step(&mut self, end: u64) {
        let now = self.now;
        let mut next = end;
        for t in &self.next_tick {
            next = next.min(*t);
        }
        for t in self.timer.iter().flatten() {
            next = next.min(*t);
        }
        for s in self.vcpus.iter().filter(|s| s.alive) {
            if let Some(w) = s.wake_at {
                next = next.min(w);
            }
        }
        for v in self.running.iter().flatten() {
            if let Some(s) = self.vcpus.iter().find(|s| s.id == *v && s.alive) {
                next = next.min(now.saturating_add(s.burst_left));
            }
        }
        let next = next.max(now);
        let dt = next - now;
        for v in self.running.clone().iter().flatten() {
            if let Some(s) = self.vcpus.iter_mut().find(|s| s.id == *v && s.alive) {
                s.ran_ns += dt;
                if s.burst_left != u64::MAX {
                    s.burst_left = s.burst_left.saturating_sub(dt);
                }
            }
        }
        self.now = next;
        let now = next;

        // 1. Bursts that ended: block, or (random workloads, sometimes) yield.
        for cpu in 0..self.running.len() {
            let Some(v) = self.running[cpu] else { continue };
            let Some(i) = self.vcpus.iter().position(|s| s.id == v && s.alive) else {
                continue;
            };
            if self.vcpus[i].burst_left != 0 {
                continue;
            }
            let work = self.vcpus[i].work;
            let (yields, sleep) = match work {
                Workload::Hog => (false, 0),
                Workload::Sleeper { sleep_ns, .. } => (false, sleep_ns),
                Workload::Random { max_sleep_ns, .. } => {
                    (self.rng.range(0, 3) == 0, self.rng.range(0, max_sleep_ns))
                }
            };
            self.vcpus[i].burst_left = self.new_burst(work);
            let r = if yields {
                self.sched.yield_(v, now)
            } else {
                self.vcpus[i].wake_at = Some(now.saturating_add(sleep));
                self.sched.block(v, now)
            };
            match r {
                Ok(k) => {
                    // The pCPU must pick again now.
                    self.kick_opt(k);
                    if k.is_none() {
                        self.kick(cpu);
                    }
                }
                Err(e) => panic!("block/yield of {v:?} refused: {e:?}"),
            }
        }
        self.settle();

        // 2. Wakes.
        for i in 0..self.vcpus.len() {
            if !self.vcpus[i].alive || self.vcpus[i].wake_at.is_none_or(|w| w > now) {
                continue;
            }
            self.vcpus[i].wake_at = None;
            let id = self.vcpus[i].id;
            match self.sched.wake(id, now) {
                Ok(k) => {
                    let boosted = self
                        .sched
                        .vcpu_info(id)
                        .is_ok_and(|i| i.pri == super::Priority::Boost && !i.parked);
                    self.vcpus[i].woke_at = Some((now, boosted));
                    self.kick_opt(k);
                }
                Err(super::SchedError::Offline) => {}
                Err(e) => panic!("wake of {id:?} refused: {e:?}"),
            }
        }
        self.settle();

        // 3. Slice timers.
        for cpu in 0..self.timer.len() {
            if self.timer[cpu].is_some_and(|t| t <= now) {
                self.timer[cpu] = None;
                let d = self.sched.schedule(cpu, now);
                self.apply(cpu, d);
            }
        }
        self.settle();

        // 4. Ticks (all pCPUs at once unless staggered).
        let tick = self.sched.params().tick_ns;
        for cpu in 0..self.running.len() {
            if now >= self.next_tick[cpu] {
                self.next_tick[cpu] = now.saturating_add(tick);
                if self.tickless_idle && self.running[cpu].is_none() {
                    continue;
                }
                let d = self.sched.tick(cpu, now);
                self.apply(cpu, d);
            }
        }
        self.settle();
    }
}
