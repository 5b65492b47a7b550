//! Running vCPUs: each pCPU keeps the vCPUs placed on it and runs them round-robin, one
//! tick (10 ms) at a time. (The credit scheduler replaces this placement and policy.)

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use oxen_core::config::DomainConfig;
use oxen_core::vmcs::field;
use oxen_core::vmx::{VmcsControls, ctl};
use spin::Mutex;

use super::exits::{self, Next};
use super::vcpu::{RunState, Vcpu};
use super::{DOMAINS, Domain, DomainState};
use crate::arch::{percpu, power, serial};
use crate::vmx::{entry, vmcs};

/// A vCPU waiting to be created on the pCPU that will run it (its VMCS must be loaded
/// there, with that CPU's host state).
struct Placement {
    domain: Arc<Domain>,
    entry: u32,
    ebx: u64,
}

static INBOX: [Mutex<Vec<Placement>>; percpu::MAX_CPUS] =
    [const { Mutex::new(Vec::new()) }; percpu::MAX_CPUS];
/// Set once every boot-time domain has been placed.
static STARTED: AtomicBool = AtomicBool::new(false);
/// The VMCS controls and revision every vCPU uses.
static SETUP: spin::Once<(VmcsControls, u32)> = spin::Once::new();
/// Exits and hypercalls of finished vCPUs, per domain id (for the final report).
static TOTALS: Mutex<Vec<(u32, u64, u64)>> = Mutex::new(Vec::new());
/// Round-robin placement cursor.
static NEXT_CPU: AtomicU64 = AtomicU64::new(0);

/// Builds the boot-time domains and places their vCPUs on the online pCPUs.
pub fn start_domains(
    configs: &[(DomainConfig, &[u8])],
    controls: VmcsControls,
    revision: u32,
) -> usize {
    SETUP.call_once(|| (controls, revision));
    let mut started = 0;
    for (cfg, kernel) in configs {
        match Domain::build(cfg, kernel) {
            Ok((domain, entry, ebx)) => {
                if cfg.vcpus > 1 {
                    log::warn!(
                        "domain {} ({}): only vCPU 0 starts; secondary vCPUs need VCPUOP_up, not offered yet",
                        domain.id,
                        domain.name
                    );
                }
                let cpu = next_online_cpu();
                log::info!(
                    "domain {} ({}): {} MiB, kernel {}, entry {entry:#x}, on cpu{cpu}",
                    domain.id,
                    domain.name,
                    cfg.memory_mib,
                    cfg.kernel
                );
                DOMAINS.lock().push(domain.clone());
                INBOX[cpu].lock().push(Placement { domain, entry, ebx });
                started += 1;
            }
            Err(e) => log::error!("domain {}: not started: {e}", cfg.name),
        }
    }
    STARTED.store(true, Ordering::Release);
    started
}

fn next_online_cpu() -> usize {
    let n = percpu::count();
    for _ in 0..n {
        let i = (NEXT_CPU.fetch_add(1, Ordering::Relaxed) as usize) % n;
        if percpu::get(i).online.load(Ordering::Acquire)
            && percpu::get(i).vmx_on.load(Ordering::Acquire)
        {
            return i;
        }
    }
    0
}

fn ticks() -> u64 {
    percpu::this().ticks.load(Ordering::Relaxed)
}

/// This pCPU's scheduling loop. Never returns; the boot CPU powers the machine off once
/// every domain has finished.
pub fn cpu_loop() -> ! {
    let me = percpu::index();
    let mut vcpus: Vec<Vcpu> = Vec::new();
    let mut cursor = 0;
    x86_64::instructions::interrupts::disable();
    log::info!("sched: cpu{me} runs guests");
    loop {
        for p in INBOX[me].lock().drain(..) {
            let (controls, revision) = *SETUP.get().expect("set before placement");
            // A new domain's EPT root may reuse a frame another EPT had: drop stale
            // translations before its first entry.
            vmcs::invept_all();
            vcpus.push(Vcpu::new(p.domain, 0, p.entry, p.ebx, &controls, revision));
        }
        vcpus.retain(|v| {
            if v.domain.running() {
                return true;
            }
            retire(v);
            false
        });
        let now = ticks();
        let ready = |v: &Vcpu| match v.state {
            RunState::Runnable => true,
            RunState::BlockedUntil(t) => now >= t,
        };
        let n = vcpus.len();
        if let Some(i) = (0..n).map(|k| (cursor + k) % n).find(|&i| ready(&vcpus[i])) {
            vcpus[i].state = RunState::Runnable;
            run_slice(&mut vcpus[i]);
            cursor = i + 1;
            continue;
        }
        if vcpus.is_empty() && STARTED.load(Ordering::Acquire) && super::all_done() {
            if me == 0 {
                report_and_power_off();
            }
            loop {
                x86_64::instructions::interrupts::enable_and_hlt();
            }
        }
        // Nothing to run now: wait for the next tick.
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
}

/// Runs one vCPU until its time slice ends or it yields, blocks or finishes.
fn run_slice(vcpu: &mut Vcpu) {
    vmcs::load(vcpu.vmcs);
    exits::set_xcr0(vcpu.xcr0);
    let start = ticks();
    let (controls, _) = SETUP.get().expect("set before placement");
    let preemption = controls.pin & ctl::pin::PREEMPTION_TIMER != 0;
    loop {
        if preemption {
            let rate = crate::vmx::capabilities().map_or(0, |c| c.preemption_timer_rate);
            let slice = (serial::tsc_hz() / crate::TICK_HZ) >> rate;
            vmcs::write(
                field::PREEMPTION_TIMER_VALUE,
                slice.min(u64::from(u32::MAX)),
            );
        }
        if let Err(rflags) = entry::run(&mut vcpu.regs, vcpu.launched) {
            let error = vmcs::instruction_error();
            exits::crash(
                vcpu,
                alloc::format!(
                    "VM entry failed: VM-instruction error {error} (RFLAGS {rflags:#x})"
                ),
            );
            return;
        }
        vcpu.launched = true;
        match exits::handle(vcpu) {
            Next::Resume if ticks() == start => continue,
            Next::Resume | Next::Reschedule | Next::Finished => break,
        }
    }
    exits::set_xcr0(1);
}

/// A finished domain's vCPU leaves this pCPU; its memory goes back once it is done.
fn retire(v: &Vcpu) {
    v.release();
    TOTALS.lock().push((v.domain.id, v.exits, v.hypercalls));
    v.domain.release();
    vmcs::invept_all();
    log::info!(
        "domain {} ({}): memory returned ({} MiB)",
        v.domain.id,
        v.domain.name,
        v.domain.ram_size >> 20
    );
}

fn report_and_power_off() -> ! {
    log::info!("all domains have finished:");
    let totals = TOTALS.lock().clone();
    for d in DOMAINS.lock().iter() {
        let (exits, calls) = totals
            .iter()
            .filter(|t| t.0 == d.id)
            .fold((0, 0), |acc, t| (acc.0 + t.1, acc.1 + t.2));
        let state = d.state.lock().clone();
        let verdict = match &state {
            DomainState::Shutdown(r) => alloc::format!("shutdown: {r}"),
            DomainState::Crashed(why) => alloc::format!("crashed: {why}"),
            DomainState::Running => "running".into(),
        };
        log::info!(
            "  domain {} ({}): {verdict}; {exits} exits, {calls} hypercalls",
            d.id,
            d.name
        );
    }
    let ticks: Vec<_> = (0..percpu::count())
        .map(|i| percpu::get(i).ticks.load(Ordering::Relaxed))
        .collect();
    log::info!("  timer ticks per pCPU: {ticks:?}");
    power::poweroff()
}
