//! Every pCPU's loop: ask the credit scheduler what to run, run it until something
//! needs the scheduler again (its tick, its slice, a kick, a block or yield), idle with
//! interrupts on when there is nothing to run.
//!
//! Time is system time (`arch::time`). Each pCPU keeps one hardware deadline, the local
//! APIC timer in one-shot mode (and, while a guest runs, the VMX preemption timer): the
//! earliest of its next accounting tick, the end of the running vCPU's slice, its
//! earliest single-shot guest timer and, on the boot CPU, the housekeeping deadlines.
#![deny(unsafe_code)]

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use oxen_core::config::{BootConfig, DomainConfig};
use oxen_core::sched::{Decision, SchedParams, Scheduler};
use oxen_core::vmcs::field;
use oxen_core::vmx::{VmcsControls, ctl};

use super::exits::{self, Next};
use super::sched::{self as glue, EPT_GENERATION, VcpuSlot};
use super::vcpu::Vcpu;
use super::{Domain, DomainState, event, registry, vlapic};
use crate::arch::{apic, percpu, power, serial, time};

/// How often a pCPU feeds the UART while log output waits.
const SERIAL_PUMP_NS: u64 = 1_000_000;
/// How often the boot CPU looks for typed input at most (a UART's FIFO holds 16 bytes,
/// about 1.4 ms at 115200 baud).
const INPUT_POLL_NS: u64 = 1_000_000;
use crate::vmx::{entry, vmcs};

/// Set once every boot-time domain has been built.
static STARTED: AtomicBool = AtomicBool::new(false);
/// The VMCS controls and revision every vCPU uses.
static SETUP: spin::Once<(VmcsControls, u32)> = spin::Once::new();
/// Boot-configuration knobs the loops need.
static RUN_FOR_NS: AtomicU64 = AtomicU64::new(0);
static SAMPLE_NS: AtomicU64 = AtomicU64::new(0);
/// System time when the domains started.
static T0: AtomicU64 = AtomicU64::new(0);

/// Per-pCPU cost counters, in TSC ticks (under Bochs: instructions): scheduling
/// decisions (the locked `tick`/`schedule` call) and vCPU context switches (VMCLEAR of
/// the old vCPU, hand-over, VMPTRLD of the new one).
struct Costs {
    decisions: AtomicU64,
    decision_ticks: AtomicU64,
    switches: AtomicU64,
    switch_ticks: AtomicU64,
}

static COSTS: [Costs; percpu::MAX_CPUS] = [const {
    Costs {
        decisions: AtomicU64::new(0),
        decision_ticks: AtomicU64::new(0),
        switches: AtomicU64::new(0),
        switch_ticks: AtomicU64::new(0),
    }
}; percpu::MAX_CPUS];

/// The pCPUs that can run guests (online with VMX on), as a mask.
pub(super) fn usable_cpus() -> u64 {
    (0..percpu::count())
        .filter(|&i| {
            let p = percpu::get(i);
            p.online.load(Ordering::Acquire) && p.vmx_on.load(Ordering::Acquire)
        })
        .fold(0, |m, i| m | (1 << i))
}

/// Installs the scheduler, builds the boot-time domains and wakes their vCPU 0.
pub fn start_domains(
    boot: &BootConfig,
    configs: &[crate::boot::BootDomain],
    controls: VmcsControls,
    revision: u32,
) -> usize {
    SETUP.call_once(|| (controls, revision));
    let params = SchedParams {
        slice_ns: boot.tslice_ms * 1_000_000,
        ratelimit_ns: boot.ratelimit_us * 1000,
        ..SchedParams::with_cpus(percpu::count())
    };
    match Scheduler::new(params) {
        Ok(mut s) => {
            s.start_at(time::now());
            glue::init(s)
        }
        Err(e) => {
            log::error!("sched: bad parameters {params:?}: {e:?}");
            return 0;
        }
    }
    RUN_FOR_NS.store(boot.run_for_ms.unwrap_or(0) * 1_000_000, Ordering::Relaxed);
    SAMPLE_NS.store(boot.sample_ms * 1_000_000, Ordering::Relaxed);
    log::info!(
        "sched: credit scheduler on {} pCPU(s) (mask {:#x}): tick {} ms, slice {} ms, rate limit {} us",
        usable_cpus().count_ones(),
        usable_cpus(),
        params.tick_ns / 1_000_000,
        params.slice_ns / 1_000_000,
        params.ratelimit_ns / 1000
    );
    event::init_wallclock();
    let mut started = 0;
    for bd in configs {
        let cfg = &bd.cfg;
        match build(cfg, bd.kernel, bd.ramdisk) {
            Ok(d) => {
                started += 1;
                registry::insert(d);
            }
            Err(e) => log::error!("domain {}: not started: {e}", cfg.name),
        }
    }
    let t0 = time::now();
    T0.store(t0, Ordering::Relaxed);
    log::info!(
        "sched: domains start at {} ms of system time",
        t0 / 1_000_000
    );
    for d in registry::all() {
        if let Some(v0) = d.vcpu(0) {
            v0.up.store(true, Ordering::Release);
            glue::wake(v0, time::now());
        }
    }
    STARTED.store(true, Ordering::Release);
    started
}

/// Builds one domain with all its vCPUs (vCPU 0 ready to start, the others down).
fn build(
    cfg: &DomainConfig,
    kernel: &[u8],
    ramdisk: Option<&[u8]>,
) -> Result<Arc<Domain>, alloc::string::String> {
    let affinity = cfg.affinity & usable_cpus();
    if affinity == 0 {
        return Err(format!(
            "cpus {:#x} names no pCPU that can run guests ({:#x})",
            cfg.affinity,
            usable_cpus()
        ));
    }
    // As in Xen, the control domain is domain 0; there is one.
    let id = if cfg.privileged {
        registry::reserve(0)
            .map_err(|_| String::from("domain 0 is taken: only one domain can be privileged"))?
    } else {
        registry::reserve_free().map_err(|e| format!("no domain id: {e:?}"))?
    };
    let dom = match glue::with(|s| s.add_domain(cfg.weight, cfg.cap)) {
        Ok(d) => d,
        Err(e) => {
            registry::unreserve(id);
            return Err(format!("{e:?}"));
        }
    };
    let (domain, start) = match Domain::build(id, cfg, kernel, ramdisk, dom) {
        Ok(x) => x,
        Err(e) => {
            registry::unreserve(id);
            let _ = glue::with(|s| s.remove_domain(dom, time::now()));
            return Err(format!("{e}"));
        }
    };
    let domain = Arc::new(domain);
    super::grant::add_domain(&domain);
    event::write_wallclock(&domain);
    super::lifecycle::attach_vcpus(&domain, cfg.vcpus, affinity, Some(start))?;
    log::info!(
        "domain {} ({}): {} MiB, kernel {}{}, {} vCPU(s), weight {}, cap {}, cpus {affinity:#x}{}",
        domain.id,
        domain.name,
        cfg.memory_mib,
        cfg.kernel,
        cfg.ramdisk
            .as_ref()
            .map(|r| format!(", ramdisk {r}"))
            .unwrap_or_default(),
        cfg.vcpus,
        cfg.weight,
        cfg.cap,
        if cfg.privileged { ", privileged" } else { "" }
    );
    Ok(domain)
}

/// What this pCPU runs now.
struct Current {
    slot: Arc<VcpuSlot>,
    vcpu: Box<Vcpu>,
}

/// One pCPU's scheduling state.
struct Pcpu {
    me: usize,
    current: Option<Current>,
    /// When the running vCPU's slice ends (u64::MAX when idle).
    slice_end: u64,
    /// When the next accounting tick is due.
    next_tick: u64,
    tick_ns: u64,
    /// The deadline the APIC timer is armed for, in system time and as a TSC value.
    armed: u64,
    armed_tsc: u64,
    /// When to feed the UART next while log output waits.
    pump_at: u64,
    /// The EPT generation this pCPU last flushed at.
    ept_gen: u64,
    /// Boot CPU housekeeping: next share sample, and whether the run limit has hit.
    next_sample: u64,
    limit_hit: bool,
    /// When the boot CPU next looks for serial input.
    input_at: u64,
}

/// This pCPU's scheduling loop. Never returns; the boot CPU powers the machine off once
/// every domain has finished.
pub fn cpu_loop() -> ! {
    x86_64::instructions::interrupts::disable();
    let me = percpu::index();
    let tick_ns = glue::with(|s| s.params().tick_ns);
    let now = time::now();
    // Stagger the pCPUs' ticks over one tick, as independent timers would be.
    let stagger = tick_ns / percpu::count().max(1) as u64 * me as u64;
    let mut cpu = Pcpu {
        me,
        current: None,
        slice_end: u64::MAX,
        next_tick: now + tick_ns + stagger,
        tick_ns,
        armed: 0,
        armed_tsc: 0,
        pump_at: 0,
        ept_gen: u64::MAX,
        next_sample: T0.load(Ordering::Relaxed) + SAMPLE_NS.load(Ordering::Relaxed),
        limit_hit: false,
        input_at: 0,
    };
    log::info!("sched: cpu{me} runs guests");
    percpu::this().need_resched.store(true, Ordering::Release);
    loop {
        cpu.step();
    }
}

impl Pcpu {
    fn step(&mut self) {
        serial::pump();
        let now = time::now();
        for slot in glue::fire_timers(self.me, now) {
            super::vlapic::timer_fired(&slot, now);
        }
        if self.me == 0 {
            self.housekeeping(now);
            if now >= self.input_at {
                self.input_at = now + INPUT_POLL_NS;
                super::conin::poll();
            }
        }
        let ticked = now >= self.next_tick;
        if ticked {
            self.next_tick = (self.next_tick + self.tick_ns).max(now + 1);
        }
        let resched =
            percpu::this().need_resched.swap(false, Ordering::AcqRel) || now >= self.slice_end;
        if ticked || resched {
            let me = self.me;
            let t = crate::arch::cpu::rdtsc();
            let d = glue::with(|s| {
                let d = s.tick(me, now);
                if resched { s.schedule(me, now) } else { d }
            });
            let c = &COSTS[me];
            c.decisions.fetch_add(1, Ordering::Relaxed);
            c.decision_ticks
                .fetch_add(crate::arch::cpu::rdtsc() - t, Ordering::Relaxed);
            match d {
                Ok(d) => self.apply(d, now),
                Err(e) => log::error!("sched: cpu{me}: {e:?}"),
            }
        }
        if self.current.is_some() {
            self.run_guest();
        } else {
            self.idle();
        }
    }

    /// Switches to what the scheduler decided.
    fn apply(&mut self, d: Decision, now: u64) {
        glue::kick(d.kick);
        self.slice_end = if d.slice_ns == 0 {
            u64::MAX
        } else {
            now.saturating_add(d.slice_ns)
        };
        let have = self.current.as_ref().map(|c| c.slot.sched);
        if d.run == have {
            return;
        }
        let t = crate::arch::cpu::rdtsc();
        let switching = have.is_some() && d.run.is_some();
        if let Some(c) = self.current.take() {
            self.switch_out(c);
        }
        let Some(next) = d.run.and_then(glue::slot) else {
            return;
        };
        let Some(mut vcpu) = next.take() else {
            return;
        };
        if !vcpu.domain.running() {
            let domain = vcpu.domain.clone();
            next.put(vcpu);
            super::lifecycle::try_release(&domain);
            return;
        }
        let (controls, revision) = SETUP.get().expect("set before any vCPU runs");
        // Only the first load needs the start state.
        let start = if vcpu.is_fresh() {
            *next.start.lock()
        } else {
            None
        };
        if !vcpu.load(self.me, controls, *revision, start.as_ref()) {
            exits_crash_unloaded(&next, vcpu, "started without a start state");
            return;
        }
        next.ran(now);
        event::poll_done(&vcpu.domain, vcpu.id);
        event::update_time(&vcpu.domain, vcpu.id);
        super::hypercall::update_runstate_area(&vcpu, &next);
        self.current = Some(Current { slot: next, vcpu });
        if switching {
            let c = &COSTS[self.me];
            c.switches.fetch_add(1, Ordering::Relaxed);
            c.switch_ticks
                .fetch_add(crate::arch::cpu::rdtsc() - t, Ordering::Relaxed);
        }
    }

    /// Unloads the running vCPU and puts it back in its slot.
    fn switch_out(&mut self, c: Current) {
        let Current { slot, mut vcpu } = c;
        // Still loaded: its page tables translate the area's address.
        super::hypercall::update_runstate_area(&vcpu, &slot);
        vcpu.unload();
        let domain = vcpu.domain.clone();
        slot.put(vcpu);
        if !domain.running() {
            super::lifecycle::try_release(&domain);
        }
    }

    /// The earliest thing this pCPU must attend to.
    fn next_event(&mut self, now: u64) -> u64 {
        let mut t = self
            .next_tick
            .min(self.slice_end)
            .min(glue::next_timer(self.me));
        if serial::pending() {
            // Come back to feed the UART: its FIFO empties in about 1.4 ms.
            if self.pump_at <= now {
                self.pump_at = now + SERIAL_PUMP_NS;
            }
            t = t.min(self.pump_at);
        }
        if self.me == 0 {
            if SAMPLE_NS.load(Ordering::Relaxed) != 0 {
                t = t.min(self.next_sample);
            }
            let limit = RUN_FOR_NS.load(Ordering::Relaxed);
            if limit != 0 && !self.limit_hit {
                t = t.min(T0.load(Ordering::Relaxed) + limit);
            }
        }
        t
    }

    /// Arms the APIC timer for the next event (if it moved).
    fn arm(&mut self, now: u64) -> u64 {
        let at = self.next_event(now);
        if at != self.armed {
            let counts = crate::apic_timer_counts(at.saturating_sub(now)).max(1);
            apic::timer_oneshot(counts);
            self.armed = at;
            self.armed_tsc = time::scale().ticks(at);
        }
        at
    }

    /// Nothing to run: halt with interrupts on until the timer or a kick.
    fn idle(&mut self) {
        if self.me == 0 && STARTED.load(Ordering::Acquire) && super::all_done() {
            report_and_power_off();
        }
        let now = time::now();
        let at = self.arm(now);
        if at <= now || percpu::this().need_resched.load(Ordering::Acquire) {
            return;
        }
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        // The timer may have fired: re-arm next time.
        self.armed = 0;
    }

    /// Runs the current vCPU until an exit needs the scheduler or an event is due.
    fn run_guest(&mut self) {
        let preemption = SETUP
            .get()
            .is_some_and(|(c, _)| c.pin & ctl::pin::PREEMPTION_TIMER != 0);
        let rate = crate::vmx::capabilities().map_or(0, |c| c.preemption_timer_rate);
        self.arm(time::now());
        let me = self.me;
        let flag = &percpu::get(me).need_resched;
        loop {
            let generation = EPT_GENERATION.load(Ordering::Acquire);
            if generation != self.ept_gen {
                vmcs::invept_all();
                self.ept_gen = generation;
            }
            // The fast path: back to the loop when the deadline passed, a kick came, or
            // the last exit moved the deadline earlier (a guest timer armed here, log
            // output waiting for the UART).
            let tsc = crate::arch::cpu::rdtsc();
            if tsc >= self.armed_tsc
                || flag.load(Ordering::Acquire)
                || glue::next_timer(me) < self.armed
                || (serial::pending() && self.pump_at < self.armed)
            {
                return;
            }
            let Some(c) = self.current.as_mut() else {
                return;
            };
            if preemption {
                let ticks = self.armed_tsc.saturating_sub(tsc) >> rate;
                vmcs::write(
                    field::PREEMPTION_TIMER_VALUE,
                    ticks.clamp(1, u64::from(u32::MAX)),
                );
            }
            if c.slot.nmi_pending.load(Ordering::Acquire) && exits::offer_nmi() {
                c.slot.nmi_pending.store(false, Ordering::Release);
            }
            let vector = c.vcpu.domain.events.callback_vector.load(Ordering::Relaxed);
            if vector != 0 && event::upcall_pending(&c.vcpu.domain.events, c.vcpu.id) {
                // The callback vector needs no EOI (Xen's): it does not go through the
                // APIC's IRR and ISR.
                exits::offer_interrupt(vector);
            } else if let Some(v) = vlapic::deliverable(&c.slot)
                && exits::offer_interrupt(v)
            {
                vlapic::acknowledge(&c.slot, v);
            }
            glue::IN_GUEST[me].store(self.ept_gen, Ordering::Release);
            let v = &mut *c.vcpu;
            let entered = entry::run(&mut v.regs, v.launched, &mut v.host_rsp);
            glue::IN_GUEST[me].store(u64::MAX, Ordering::Release);
            let next = match entered {
                Ok(()) => {
                    c.vcpu.launched = true;
                    exits::handle(&mut c.vcpu)
                }
                Err(rflags) => {
                    let error = vmcs::instruction_error();
                    exits::crash(
                        &c.vcpu,
                        format!(
                            "VM entry failed: VM-instruction error {error} (RFLAGS {rflags:#x})"
                        ),
                    )
                }
            };
            match next {
                Next::Resume => continue,
                Next::Reschedule => return,
                Next::Yield => {
                    let id = c.slot.sched;
                    let r = glue::with(|s| s.yield_(id, time::now()));
                    glue::kick_one(r.ok().flatten());
                    return;
                }
                Next::Block | Next::Poll => {
                    let now = time::now();
                    if next == Next::Block && c.slot.timer.load(Ordering::Acquire) == 0 {
                        // Nothing may ever send it an event: it sleeps at most a tick
                        // (a spurious wake, which guests tolerate).
                        glue::arm_timer(&c.slot, now + self.tick_ns);
                    }
                    // A wake or an upcall that came while it ran ends the block at once,
                    // as a pending event makes Xen's block return. Checked under the
                    // scheduler's lock, which every wake takes, so none is lost.
                    let (id, d, v) = (c.slot.sched, &c.vcpu.domain, c.vcpu.id);
                    let slot = &c.slot;
                    let poll = next == Next::Poll;
                    let blocked = glue::with(|s| {
                        let pending = if poll {
                            // A poll waits for its ports or its timeout only.
                            slot.poll_hit.swap(false, Ordering::AcqRel)
                        } else {
                            slot.wake_pending.swap(false, Ordering::AcqRel)
                                || event::upcall_pending(&d.events, v)
                                || vlapic::deliverable(slot).is_some()
                        };
                        (!pending).then(|| s.block(id, now))
                    });
                    match blocked {
                        None => {
                            event::poll_done(d, v);
                            continue;
                        }
                        Some(r) => {
                            glue::kick_one(r.ok().flatten());
                            return;
                        }
                    }
                }
                Next::Finished => {
                    let domain = c.vcpu.domain.clone();
                    super::lifecycle::stop(&domain);
                    // Our own vCPU goes back now; the domain is released once every
                    // pCPU has let go of it.
                    percpu::this().need_resched.store(true, Ordering::Release);
                    if let Some(c) = self.current.take() {
                        self.switch_out(c);
                    }
                    return;
                }
            }
        }
    }

    /// The boot CPU's periodic duties: share samples and the run time limit.
    fn housekeeping(&mut self, now: u64) {
        let t0 = T0.load(Ordering::Relaxed);
        let every = SAMPLE_NS.load(Ordering::Relaxed);
        if every != 0 && now >= self.next_sample {
            while self.next_sample <= now {
                self.next_sample += every;
            }
            print_sample(now - t0);
        }
        let limit = RUN_FOR_NS.load(Ordering::Relaxed);
        if limit != 0 && !self.limit_hit && now >= t0 + limit {
            self.limit_hit = true;
            log::info!(
                "sched: run time limit of {} ms reached: destroying the domains still running",
                limit / 1_000_000
            );
            print_accounting(now);
            let running: Vec<_> = registry::all()
                .into_iter()
                .filter(|d| d.running())
                .collect();
            for d in running {
                d.finish(DomainState::Destroyed("run time limit"));
                super::lifecycle::stop(&d);
            }
        }
    }
}

/// A vCPU that cannot start: crash its domain (it was never loaded).
fn exits_crash_unloaded(slot: &VcpuSlot, vcpu: Box<Vcpu>, why: &str) {
    let domain = vcpu.domain.clone();
    log::error!(
        "domain {} ({}) vcpu{}: {why}",
        domain.id,
        domain.name,
        slot.index
    );
    domain.finish(DomainState::Crashed(format!("vcpu{} {why}", slot.index)));
    slot.put(vcpu);
    super::lifecycle::stop(&domain);
}

/// Run time per domain so far (ns), summed over its vCPUs.
fn domain_run_ns(now: u64) -> Vec<(Arc<Domain>, u64)> {
    let domains = registry::all();
    glue::with(|s| {
        s.sync(now);
        domains
            .into_iter()
            .map(|d| {
                let ns = d
                    .vcpus
                    .get()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| glue::vcpu_stats(s, v))
                    .map(|st| st.run_ns)
                    .sum();
                (d, ns)
            })
            .collect()
    })
}

/// One line of cumulative run time per domain, for share plots:
/// `sched: sample 1200 ms: d1 340.12 d2 680.40`.
fn print_sample(since_start: u64) {
    let runs = domain_run_ns(time::now());
    let mut line = format!("sched: sample {} ms:", since_start / 1_000_000);
    for (d, ns) in &runs {
        line += &format!(" d{} {}.{:02}", d.id, ns / 1_000_000, ns / 10_000 % 100);
    }
    log::info!("{line}");
}

/// The accounting the scheduler keeps: per vCPU and per pCPU.
fn print_accounting(now: u64) {
    let elapsed = now.saturating_sub(T0.load(Ordering::Relaxed)).max(1);
    let runs = domain_run_ns(now);
    log::info!(
        "sched: accounting over {} ms (share = run time / elapsed, % of one pCPU):",
        elapsed / 1_000_000
    );
    for (d, ns) in &runs {
        let (weight, cap) = glue::with(|s| glue::domain_params(s, d));
        let share = u128::from(*ns) * 10_000 / u128::from(elapsed);
        log::info!(
            "  d{} {}: weight {weight}, cap {cap}, run {} ms, share {}.{:02}%",
            d.id,
            d.name,
            ns / 1_000_000,
            share / 100,
            share % 100
        );
        for v in d.vcpus.get().into_iter().flatten() {
            let Some(st) = glue::with(|s| glue::vcpu_stats(s, v)) else {
                continue;
            };
            let l = &v.latency;
            let wakes = l.wakes.load(Ordering::Relaxed);
            let mean = l.total_ns.load(Ordering::Relaxed) / wakes.max(1);
            log::info!(
                "    vcpu{}: run {} ms, wait {} ms, runs {}, migrations {}, wakes {wakes}, wake-to-run mean {} us max {} us",
                v.index,
                st.run_ns / 1_000_000,
                st.wait_ns / 1_000_000,
                st.runs,
                st.migrations,
                mean / 1000,
                l.max_ns.load(Ordering::Relaxed) / 1000
            );
        }
    }
    let cpus = usable_cpus();
    for cpu in (0..percpu::count()).filter(|c| cpus & (1 << c) != 0) {
        if let Ok(st) = glue::with(|s| s.cpu_stats(cpu)) {
            let c = &COSTS[cpu];
            let mean = |sum: &AtomicU64, n: &AtomicU64| {
                sum.load(Ordering::Relaxed) / n.load(Ordering::Relaxed).max(1)
            };
            log::info!(
                "  cpu{cpu}: idle {} ms, steals {}; {} decisions, mean {} ticks; {} vCPU switches, mean {} ticks",
                st.idle_ns / 1_000_000,
                st.steals,
                c.decisions.load(Ordering::Relaxed),
                mean(&c.decision_ticks, &c.decisions),
                c.switches.load(Ordering::Relaxed),
                mean(&c.switch_ticks, &c.switches),
            );
        }
    }
}

fn report_and_power_off() -> ! {
    print_accounting(time::now());
    log::info!("all domains have finished:");
    for d in registry::all() {
        let state = d.state.lock().clone();
        let verdict = match &state {
            DomainState::Shutdown(r) => format!("shutdown: {r}"),
            DomainState::Crashed(why) => format!("crashed: {why}"),
            DomainState::Destroyed(why) => format!("destroyed: {why}"),
            DomainState::Running => "running".into(),
        };
        log::info!(
            "  domain {} ({}): {verdict}; {} exits, {} hypercalls",
            d.id,
            d.name,
            d.exits.load(Ordering::Relaxed),
            d.hypercalls.load(Ordering::Relaxed)
        );
        let mut by: Vec<(u64, usize)> = d
            .exit_reasons
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .enumerate()
            .filter(|&(_, n)| n != 0)
            .map(|(r, n)| (n, r))
            .collect();
        by.sort_unstable_by(|a, b| b.cmp(a));
        if !by.is_empty() {
            let list: Vec<String> = by
                .iter()
                .map(|&(n, r)| format!("{} {n}", oxen_core::vmcs::reason_name(r as u16)))
                .collect();
            log::info!("    exits by reason: {}", list.join(", "));
        }
    }
    let ticks: Vec<_> = (0..percpu::count())
        .map(|i| percpu::get(i).ticks.load(Ordering::Relaxed))
        .collect();
    log::info!("  timer interrupts per pCPU: {ticks:?}");
    power::poweroff()
}
