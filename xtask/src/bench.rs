//! `cargo xtask bench`: boot cost, image size and the hypervisor's own memory.
//!
//! Inside Bochs (`clock: sync=none`) the TSC advances once per emulated instruction, so
//! the TSC that oxen prints on its ready line counts instructions: deterministic, and a
//! fair measure of path length. QEMU gives wall-clock time.

use std::fmt::Write as _;
use std::time::Duration;

use regex::Regex;

use crate::build::Firmware;
use crate::platform::Platform;
use crate::scenario::{self, ArchiveKind, Builds, POWEROFF, Scenario};
use crate::{Args, Result, out_dir};

fn boot_scenario(platform: Platform, cpus: u32) -> Scenario {
    Scenario {
        name: if platform == Platform::Bochs {
            "bench-bochs"
        } else {
            "bench-qemu"
        },
        what: "benchmark boot",
        platform,
        firmware: Firmware::Uefi,
        cpus,
        memory_mib: 512,
        qemu_cpu: "qemu64",
        features: &[],
        archive: ArchiveKind::Config(POWEROFF),
        guests: false,
        linux: false,
        input: &[],
        domains: &[],
        check: None,
        expect: &[r"oxen ready: ", r"power: powering off"],
        forbid: &["PANIC", "EXCEPTION"],
        timeout: Duration::from_secs(300),
    }
}

/// The null hypercall and CPUID round trips, measured by the bench guest (1 pCPU).
fn exit_path_benchmark(builds: &Builds) -> Result<(u64, u64)> {
    let serial = passing_serial(
        &Scenario {
            name: "bench-exit-path",
            cpus: 1,
            guests: true,
            archive: ArchiveKind::Config("domains = [\"bench.cfg\"]\n"),
            expect: &[r"\[d1 bench\] bench: PASS", r"power: powering off"],
            ..boot_scenario(Platform::Bochs, 1)
        },
        builds,
        "the exit-path benchmark",
    )?;
    let hypercall = capture(
        &serial,
        r"null hypercall \(xen_version\) (\d+) ticks per round trip",
    )?;
    let cpuid = capture(&serial, r"CPUID exit (\d+) ticks per round trip")?;
    Ok((hypercall, cpuid))
}

fn capture(serial: &str, pattern: &str) -> Result<u64> {
    let re = Regex::new(pattern).expect("valid pattern");
    re.captures(serial)
        .and_then(|c| c[1].parse().ok())
        .ok_or_else(|| format!("no match for /{pattern}/ in the serial log"))
}

/// Bytes of the ELF's loadable segments (what occupies memory), and of the file.
fn image_sizes(path: &std::path::Path) -> Result<(u64, u64)> {
    let elf = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().expect("8 bytes"));
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF file", path.display()));
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    let loaded = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().expect("4 bytes")) == 1)
        .map(|ph| u64_at(ph + 0x28))
        .sum();
    Ok((loaded, elf.len() as u64))
}

pub fn cmd_bench(args: &[String]) -> Result<()> {
    let mut args = Args::new(args);
    let exit_path_only = args.flag("--exit-path");
    let store_only = args.flag("--store");
    args.finish()?;
    let builds = Builds::default();
    if store_only {
        let store = crate::store_bench::run(STORE_SECONDS)?;
        return write_results("results-store.json", &[], &store);
    }
    if exit_path_only {
        let (hypercall, cpuid) = exit_path_benchmark(&builds)?;
        println!("null_hypercall_instructions {hypercall:>8}");
        println!("cpuid_exit_instructions     {cpuid:>8}");
        return Ok(());
    }

    let bochs = scenario::run_one(&boot_scenario(Platform::Bochs, 2), &builds);
    if !bochs.passed {
        return Err(format!(
            "the Bochs boot failed: {}\n{}",
            bochs.reason, bochs.serial
        ));
    }
    let bochs_total = capture(&bochs.serial, r"boot tsc (\d+) ")?;
    let bochs_oxen = capture(&bochs.serial, r"boot tsc \d+ \((\d+) in oxen\)")?;
    let memory = capture(&bochs.serial, r"memory: oxen uses .* = (\d+) bytes")?;

    let qemu = scenario::run_one(&boot_scenario(Platform::Qemu, 2), &builds);
    if !qemu.passed {
        return Err(format!(
            "the QEMU boot failed: {}\n{}",
            qemu.reason, qemu.serial
        ));
    }
    let qemu_ready = Regex::new(r"\[\s*(\d+)\.(\d+)\] cpu0 INFO  oxen ready").expect("valid");
    let caps = qemu_ready
        .captures(&qemu.serial)
        .ok_or("no ready line in the QEMU log")?;
    let qemu_oxen_s: f64 = format!("{}.{}", &caps[1], &caps[2])
        .parse()
        .map_err(|_| "bad timestamp")?;

    let (loaded, file) = image_sizes(&out_dir().join("oxen.elf"))?;

    let (hypercall, cpuid) = exit_path_benchmark(&builds)?;

    let sched = sched_benchmarks(&builds)?;
    let ring = host_ring_benchmark()?;
    let pv = pv_benchmark(&builds)?;
    let linux = linux_benchmark(&builds)?;
    let churn = churn_figures(&run_scenario("domctl-churn", &builds)?)?;
    let xl = xl_figures(&run_scenario("dom0-cycles", &builds)?)?;
    let store_rtt = store_figures(&run_scenario("xenstore-rings", &builds)?)?;
    let store = crate::store_bench::run(STORE_SECONDS)?;

    let results = [
        (
            "bochs_boot_instructions_total",
            bochs_total.to_string(),
            "instructions from reset to the ready line (Bochs, UEFI, 2 CPUs)",
        ),
        (
            "bochs_boot_instructions_oxen",
            bochs_oxen.to_string(),
            "instructions from oxen's entry to the ready line (Bochs)",
        ),
        (
            "qemu_boot_wall_seconds",
            format!("{:.2}", qemu.elapsed.as_secs_f64()),
            "wall time from QEMU start to power-off after ready (TCG, UEFI, 2 CPUs)",
        ),
        (
            "qemu_oxen_boot_seconds",
            format!("{qemu_oxen_s:.3}"),
            "oxen's own boot time in QEMU, by its TSC clock",
        ),
        (
            "null_hypercall_instructions",
            hypercall.to_string(),
            "xen_version(XENVER_version) round trip from a guest, average of 10,000 (Bochs)",
        ),
        (
            "cpuid_exit_instructions",
            cpuid.to_string(),
            "CPUID exit round trip from a guest, average of 10,000 (Bochs)",
        ),
        (
            "sched_decision_instructions",
            sched.decision.to_string(),
            "one scheduling decision (locked credit tick/schedule call), mean (Bochs, 1 pCPU)",
        ),
        (
            "sched_context_switch_instructions",
            sched.switch.to_string(),
            "one vCPU context switch on a pCPU (VMCLEAR, hand-over, VMPTRLD), mean (Bochs, 1 pCPU)",
        ),
        (
            "sched_fairness_error_points_1cpu",
            format!("{:.2}", sched.error_up),
            "weights 256/512/1024: worst distance from 1/7, 2/7, 4/7 (points of the machine; hypervisor, guest time and guest work)",
        ),
        (
            "sched_fairness_error_points_2cpu",
            format!("{:.2}", sched.error_smp2),
            "the same on 2 pCPUs, 2 vCPUs per domain (hypervisor and guest time)",
        ),
        (
            "sched_cap25_share_percent",
            format!("{:.2}", sched.capped),
            "share of one pCPU a domain capped at 25 got among hogs (2 pCPUs)",
        ),
        (
            "sched_wake_latency_mean_us",
            sched.wake_mean.to_string(),
            "a sleeper's wake-to-run latency among hogs, mean (guest-measured, 2 pCPUs)",
        ),
        (
            "sched_wake_latency_max_us",
            sched.wake_max.to_string(),
            "the same, worst case",
        ),
        (
            "evtchn_round_trip_instructions",
            pv.event_rtt.to_string(),
            "event channel round trip between two domains (send, upcall, send back), mean of 1,000 (Bochs, 1 pCPU)",
        ),
        (
            "ring_requests_per_minstr",
            format!("{:.0}", 1e6 / pv.per_request as f64),
            "ping/pong over a granted ring: requests (and responses) per million instructions, 100,000 requests (Bochs, 1 pCPU)",
        ),
        (
            "ring_bytes_per_minstr",
            format!("{:.0}", 1e6 / pv.per_request as f64 * 48.0),
            "the same in payload bytes (48 per request) per million instructions",
        ),
        (
            "ring_host_rust_ops_per_s",
            ring.0.to_string(),
            "host: our ring (take_requests/take_responses), round trips per second, batches of 32",
        ),
        (
            "ring_host_c_ops_per_s",
            ring.1.to_string(),
            "host: Xen's io/ring.h macros compiled with cc, same workload, same run",
        ),
        (
            "linux_boot_to_init_ms",
            format!("{:.0}", linux.boot_ms),
            "Debian's Linux 6.1 from domain start to its /init saying ready, emulated ms by the TSC (Bochs, 1 pCPU, 1 vCPU)",
        ),
        (
            "linux_boot_to_init_minstr",
            format!("{:.0}", linux.boot_minstr),
            "the same in millions of emulated instructions",
        ),
        (
            "linux_exits_per_guest_s",
            format!("{:.0}", linux.exits_per_s),
            "exits per second of the domain's run time, boot and the typed session (boot is about 90% of it)",
        ),
        (
            "linux_exits_by_reason",
            format!("\"{}\"", linux.by_reason),
            "the same exits by reason",
        ),
        (
            "domctl_createdomain_instructions",
            churn.create.to_string(),
            "XEN_DOMCTL_createdomain of a 1-vCPU domain, mean over 1,000 (Bochs, 2 pCPUs)",
        ),
        (
            "domctl_destroydomain_instructions",
            churn.destroy.to_string(),
            "XEN_DOMCTL_destroydomain of a shut-down domain whose pages are still mapped (the release waits for the unmap), mean",
        ),
        (
            "domains_per_emulated_s",
            churn.per_s.to_string(),
            "create, populate, map, load, start, run, check, destroy and unmap, 3 domains at a time, per emulated second",
        ),
        (
            "xl_create_instructions",
            xl.create.to_string(),
            "xl create of an 8 MiB hello guest in dom0 (parse, createdomain, populate, load, store and console set up, unpause), mean over 100 (Bochs, 2 pCPUs)",
        ),
        (
            "xl_create_to_first_hypercall_instructions",
            xl.first_hypercall.to_string(),
            "from xl create to the new guest's first hypercall (the guest's TSC at it, against dom0's at the start), mean",
        ),
        (
            "xl_create_to_first_output_instructions",
            xl.first_output.to_string(),
            "from xl create to the guest's first console bytes in dom0, mean",
        ),
        (
            "xl_destroy_instructions",
            xl.destroy.to_string(),
            "xl destroy of the running guest until it is gone (store and console released), mean",
        ),
        (
            "xl_domains_per_emulated_s",
            format!("{:.0}", 200e6 / (xl.first_output + xl.destroy) as f64),
            "xl create to first output plus xl destroy, one domain at a time, per second of emulated time (200 MHz)",
        ),
        (
            "xenstore_ring_round_trips_per_minstr",
            format!("{:.0}", 1e6 / store_rtt as f64),
            "XS_READ round trips from a guest over its ring to dom0's store, per million instructions (200 reads, mean of runs)",
        ),
        (
            "image_loaded_bytes",
            loaded.to_string(),
            "hypervisor ELF loadable segments",
        ),
        (
            "image_file_bytes",
            file.to_string(),
            "hypervisor ELF file, with debug info",
        ),
        (
            "hypervisor_memory_bytes",
            memory.to_string(),
            "memory oxen itself uses after boot (image + frames it took)",
        ),
    ];
    write_results("results.json", &results, &store)?;
    for plot in &sched.plots {
        println!("plot written to {}", plot.display());
    }
    Ok(())
}

/// Seconds per throughput run of the store's load generator.
const STORE_SECONDS: f64 = 0.5;

/// Writes `results` and the store's figures to results.json, draws the
/// store's plots, and prints the table.
fn write_results(
    file: &str,
    results: &[(&str, String, &str)],
    store: &crate::store_bench::StoreReport,
) -> Result<()> {
    let dir = out_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store_rows = store.rows();
    let rows: Vec<(&str, &str, &str)> = results
        .iter()
        .map(|(k, v, w)| (*k, v.as_str(), *w))
        .chain(
            store_rows
                .iter()
                .map(|(k, v, w)| (k.as_str(), v.as_str(), w.as_str())),
        )
        .collect();
    let mut json = String::from("{\n");
    for (i, (key, value, _)) in rows.iter().enumerate() {
        let sep = if i + 1 < rows.len() { "," } else { "" };
        let _ = writeln!(json, "  \"{key}\": {value}{sep}");
    }
    json.push_str("}\n");
    let path = dir.join(file);
    std::fs::write(&path, json).map_err(|e| e.to_string())?;

    println!("{:<48} {:>12}  what", "benchmark", "value");
    for (key, value, what) in &rows {
        println!("{key:<48} {value:>12}  {what}");
    }
    println!("results written to {}", path.display());
    for plot in crate::store_bench::plots(store, &dir)? {
        println!("plot written to {}", plot.display());
    }
    Ok(())
}

/// What the scheduler benchmarks measured.
struct SchedFigures {
    decision: u64,
    switch: u64,
    error_up: f64,
    error_smp2: f64,
    capped: f64,
    wake_mean: u64,
    wake_max: u64,
    plots: Vec<std::path::PathBuf>,
}

/// Runs the scheduler scenarios and reads their figures; draws the share plots.
fn sched_benchmarks(builds: &Builds) -> Result<SchedFigures> {
    use crate::sched_log::{SchedLog, burn_shares, sleeper_latency, worst_error};
    let run = |name| run_scenario(name, builds);
    let up = run("sched-weights-up")?;
    let smp2 = run("sched-weights-smp2")?;
    let cap = run("sched-cap-latency")?;
    let decision = capture(&up, r"cpu0: idle .*; \d+ decisions, mean (\d+) ticks")?;
    let switch = capture(&up, r"cpu0: idle .*; \d+ vCPU switches, mean (\d+) ticks")?;
    let (up_log, smp2_log, cap_log) = (
        SchedLog::parse(&up),
        SchedLog::parse(&smp2),
        SchedLog::parse(&cap),
    );
    let error_up = worst_error(&burn_shares(&up_log, 500.0)?, true);
    let error_smp2 = worst_error(&burn_shares(&smp2_log, 500.0)?, false);
    let cap_rows = burn_shares(&cap_log, 500.0)?;
    let capped_id = cap_log
        .domains
        .iter()
        .find(|d| d.cap > 0)
        .map(|d| d.id)
        .ok_or("no capped domain")?;
    let capped = cap_log
        .hv_shares(500.0)?
        .get(&capped_id)
        .copied()
        .unwrap_or(0.0);
    let (_, wake_mean, wake_max) = sleeper_latency(&cap).ok_or("no sleeper report")?;

    let dir = out_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut plots = Vec::new();
    for (file, title, log, rows) in [
        (
            "sched-weights.svg",
            "Weights 256/512/1024, 2 vCPUs each, 2 pCPUs",
            &smp2_log,
            burn_shares(&smp2_log, 500.0)?,
        ),
        (
            "sched-cap.svg",
            "Cap 25 among two hogs and a sleeper, 2 pCPUs",
            &cap_log,
            cap_rows,
        ),
    ] {
        let machine = f64::from(log.cpus);
        let series = log
            .share_series()
            .into_iter()
            .map(|(id, points)| {
                let name = log
                    .domains
                    .iter()
                    .find(|d| d.id == id)
                    .map_or(format!("d{id}"), |d| format!("d{id} {}", d.name));
                let target = rows.iter().find(|r| r.id == id).map(|r| r.target * machine);
                crate::plot::Series {
                    name,
                    points,
                    target,
                }
            })
            .collect();
        let chart = crate::plot::Chart {
            title: title.into(),
            x_label: "time since the domains started (s)".into(),
            y_label: "share of one pCPU (%), per 100 ms".into(),
            series,
            y_max: None,
        };
        let path = dir.join(file);
        std::fs::write(&path, crate::plot::svg(&chart)).map_err(|e| e.to_string())?;
        plots.push(path);
    }
    Ok(SchedFigures {
        decision,
        switch,
        error_up,
        error_smp2,
        capped,
        wake_mean,
        wake_max,
        plots,
    })
}

/// Runs the host ring benchmark (`oxen-ring`'s example: our ring and ring.h's macros in
/// one process) and returns (ours, C) round trips per second at batch 32.
fn host_ring_benchmark() -> Result<(u64, u64)> {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(crate::root())
        .args([
            "run",
            "-q",
            "-p",
            "oxen-ring",
            "--example",
            "bench",
            "--release",
        ])
        .output()
        .map_err(|e| format!("cannot run the ring benchmark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the ring benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("32"))
        .ok_or("no batch-32 row in the ring benchmark's output")?;
    let cols: Vec<u64> = row
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect();
    match cols.as_slice() {
        [_, _, take, c, ..] => Ok((*take, *c)),
        _ => Err(format!("unexpected ring benchmark row: {row}")),
    }
}

/// Event-channel and ring figures from the ping/pong scenario (one pCPU).
struct PvFigures {
    event_rtt: u64,
    per_request: u64,
}

fn pv_benchmark(builds: &Builds) -> Result<PvFigures> {
    let serial = run_scenario("pv-pingpong-up", builds)?;
    Ok(PvFigures {
        event_rtt: capture(&serial, r"ping: event round trip (\d+) ticks")?,
        per_request: capture(&serial, r"ping: round trip (\d+) ticks per request")?.max(1),
    })
}

/// What the Linux boot measured.
struct LinuxFigures {
    boot_ms: f64,
    boot_minstr: f64,
    exits_per_s: f64,
    by_reason: String,
}

/// Boots Debian's Linux (the `linux-up` scenario) and reads its boot time, exit rate
/// and exit reasons from the log.
fn linux_benchmark(builds: &Builds) -> Result<LinuxFigures> {
    linux_figures(&run_scenario("linux-up", builds)?)
}

/// The Linux figures in a `linux-up` log.
fn linux_figures(serial: &str) -> Result<LinuxFigures> {
    let stamp = |pattern: &str| -> Result<f64> {
        let re = Regex::new(&format!(r"\[\s*(\d+\.\d+)\] cpu\d+ INFO  {pattern}")).expect("valid");
        re.captures(serial)
            .and_then(|c| c[1].parse().ok())
            .ok_or_else(|| format!("no line matching {pattern} in the Linux log"))
    };
    let start = stamp(r"domain 1 \(linux\): 256 MiB")?;
    let ready = stamp(r"\[d1 linux\] init: ready")?;
    let tsc_mhz = capture(serial, r"TSC (\d+) MHz")? as f64;
    let exits = capture(
        serial,
        r"domain 1 \(linux\): shutdown: poweroff; (\d+) exits",
    )? as f64;
    let run_ms = capture(serial, r"d1 linux: weight \d+, cap \d+, run (\d+) ms")?.max(1) as f64;
    let by_reason = Regex::new(r"exits by reason: ([^\n]*)")
        .expect("valid")
        .captures(serial)
        .map(|c| c[1].trim().to_string())
        .ok_or("no exit reasons in the Linux log")?;
    Ok(LinuxFigures {
        boot_ms: (ready - start) * 1000.0,
        boot_minstr: (ready - start) * tsc_mhz,
        exits_per_s: exits / run_ms * 1000.0,
        by_reason,
    })
}

/// What the domain churn measured.
struct ChurnFigures {
    create: u64,
    destroy: u64,
    per_s: u64,
}

/// The figures the builder of `domctl-churn` prints.
fn churn_figures(serial: &str) -> Result<ChurnFigures> {
    Ok(ChurnFigures {
        create: capture(serial, r"builder: createdomain (\d+) ticks")?,
        destroy: capture(serial, r"destroydomain (\d+) ticks \(means")?,
        per_s: capture(serial, r"3 at a time, ids \d+..=\d+; (\d+) per second")?,
    })
}

/// What dom0's `xl -v` said in the create/destroy cycles: means in instructions.
struct XlFigures {
    create: u64,
    first_hypercall: u64,
    first_output: u64,
    destroy: u64,
}

/// The mean of every capture of `pattern`'s first group in `serial`.
fn mean_of(serial: &str, pattern: &str) -> Result<u64> {
    let re = Regex::new(pattern).expect("valid pattern");
    let v: Vec<u64> = re
        .captures_iter(serial)
        .filter_map(|c| c[1].parse().ok())
        .collect();
    if v.is_empty() {
        return Err(format!("no match for {pattern}"));
    }
    Ok(v.iter().sum::<u64>() / v.len() as u64)
}

/// The mean time from `xl create` beginning (dom0's TSC, on its `xl -v` line) to the
/// new guest's first hypercall (the guest's TSC, on its first console line; guests see
/// the hypervisor's TSC), each guest line paired with the `xl` line before it.
fn first_hypercall(serial: &str) -> Result<u64> {
    let began = Regex::new(r"xl: domain \d+ built in \d+ ticks \(xl create began at tsc (\d+)\)")
        .expect("valid pattern");
    let first =
        Regex::new(r"hello: started, start_info at 0x[0-9a-f]+, first hypercall at tsc (\d+)")
            .expect("valid pattern");
    let (mut t0, mut deltas) = (None, Vec::new());
    for line in serial.lines() {
        if let Some(c) = began.captures(line) {
            t0 = c[1].parse::<u64>().ok();
        } else if let (Some(c), Some(start)) = (first.captures(line), t0) {
            let at: u64 = c[1].parse().map_err(|_| "bad tsc")?;
            deltas.push(
                at.checked_sub(start)
                    .ok_or("a guest's first hypercall before xl create began")?,
            );
            t0 = None;
        }
    }
    if deltas.is_empty() {
        return Err("no xl create followed by a guest's first hypercall in the log".into());
    }
    Ok(deltas.iter().sum::<u64>() / deltas.len() as u64)
}

fn xl_figures(serial: &str) -> Result<XlFigures> {
    Ok(XlFigures {
        create: mean_of(serial, r"xl: domain \d+ built in (\d+) ticks")?,
        first_hypercall: first_hypercall(serial)?,
        first_output: mean_of(
            serial,
            r"xl: domain \d+'s console first wrote (\d+) ticks after xl create began",
        )?,
        destroy: mean_of(serial, r"xl: destroyed in (\d+) ticks")?,
    })
}

/// Instructions per XenStore round trip over a ring, as the `xenstore` guest measured.
fn store_figures(serial: &str) -> Result<u64> {
    mean_of(
        serial,
        r"xenstore: \d+ reads over the ring in \d+ ticks \((\d+) per round trip\)",
    )
}

/// Runs the test scenario `name` and returns its serial log (an error if it fails).
fn run_scenario(name: &str, builds: &Builds) -> Result<String> {
    let s = scenario::all()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or(format!("no scenario {name}"))?;
    passing_serial(&s, builds, name)
}

/// Runs scenario `s` and returns its serial log, or an error naming `what` if it failed.
fn passing_serial(s: &Scenario, builds: &Builds, what: &str) -> Result<String> {
    let o = scenario::run_one(s, builds);
    if !o.passed {
        return Err(format!("{what} failed: {}\n{}", o.reason, o.serial));
    }
    Ok(o.serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_figures_come_from_the_log() {
        let log = "\
[    1.209481] cpu0 INFO  [d0 builder] builder: 1000 domains created, run and destroyed, 3 at a time, ids 2..=4; 949 per second
[    1.209549] cpu0 INFO  [d0 builder] builder: createdomain 30060 ticks, destroydomain 12133 ticks (means over 1003)
";
        let f = churn_figures(log).unwrap();
        assert_eq!((f.create, f.destroy, f.per_s), (30060, 12133, 949));
        assert!(churn_figures(&log.replace("createdomain", "create")).is_err());
    }

    #[test]
    fn toolstack_figures_are_means_of_the_log() {
        let log = "\
xl: domain 1 built in 1000 ticks (xl create began at tsc 10000)
oxen-dom0# \x1b[K[d1 cyc1] hello: started, start_info at 0x6000, first hypercall at tsc 11100
oxen-dom0# \x1b[Kxl: domain 1's console first wrote 1500 ticks after xl create began
xl: destroyed in 300 ticks
xl: domain 1 built in 2000 ticks (xl create began at tsc 20000)
[d1 cyc2] hello: started, start_info at 0x6000, first hypercall at tsc 22300
xl: domain 1's console first wrote 2500 ticks after xl create began
xl: destroyed in 500 ticks
[d3 xs-good] xenstore: 200 reads over the ring in 3000000 ticks (15000 per round trip)
[d3 xs-good] xenstore: 200 reads over the ring in 3200000 ticks (16000 per round trip)
";
        let f = xl_figures(log).unwrap();
        assert_eq!((f.create, f.first_output, f.destroy), (1500, 2000, 400));
        assert_eq!(f.first_hypercall, 1700);
        assert!(
            first_hypercall("xl: domain 1 built in 1 ticks (xl create began at tsc 5)").is_err()
        );
        assert_eq!(store_figures(log).unwrap(), 15500);
        assert!(xl_figures("xl: destroyed in 3 ticks").is_err());
    }

    #[test]
    fn linux_figures_come_from_the_log() {
        let log = "\
[    0.010261] cpu0 INFO  oxen 0.1.0 booting; TSC 200 MHz
[    1.101135] cpu0 INFO  domain 1 (linux): 256 MiB, kernel linux.elf, 1 vCPU(s)
[    9.101135] cpu0 INFO  [d1 linux] init: ready, 1 CPU(s); a shell on the console
[   10.323974] cpu0 INFO    d1 linux: weight 256, cap 0, run 8000 ms, share 91.03%
[   10.369139] cpu0 INFO    domain 1 (linux): shutdown: poweroff; 16000 exits, 2822 hypercalls
[   10.369222] cpu0 INFO      exits by reason: preemption timer 3547, VMCALL 2822
";
        let f = linux_figures(log).unwrap();
        assert!((f.boot_ms - 8000.0).abs() < 0.01, "{}", f.boot_ms);
        assert!((f.boot_minstr - 1600.0).abs() < 0.01, "{}", f.boot_minstr);
        assert!((f.exits_per_s - 2000.0).abs() < 0.01, "{}", f.exits_per_s);
        assert_eq!(f.by_reason, "preemption timer 3547, VMCALL 2822");
        assert!(linux_figures(&log.replace("init: ready", "init: busy")).is_err());
    }
}
