//! Boot scenarios: an image booted on a platform, judged by what oxen prints.
//!
//! Each scenario lists regular expressions that must all appear on the serial console
//! and ones that must not. It passes once every expected line has appeared and the
//! emulator has exited or a short grace period has passed without a forbidden line; it
//! fails on a forbidden line, on the emulator exiting early, or on its time limit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::build::{self, Firmware};
use crate::platform::{Machine, Platform};
use crate::{Args, Result, out_dir, root};

/// What goes into a scenario's boot archive.
#[derive(Clone, Copy, Debug)]
pub enum ArchiveKind {
    /// A valid archive with this `boot.cfg`.
    Config(&'static str),
    /// A valid archive whose body is then damaged (one byte flipped).
    Corrupt,
}

/// A check of a whole serial log: a summary of what it measured, or why it fails.
pub type Check = fn(&str) -> std::result::Result<String, String>;

/// One boot scenario.
pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub platform: Platform,
    pub firmware: Firmware,
    pub cpus: u32,
    pub memory_mib: u32,
    pub qemu_cpu: &'static str,
    pub features: &'static [&'static str],
    pub archive: ArchiveKind,
    /// Whether the archive carries the guest images (for boot configurations with domains).
    pub guests: bool,
    /// Whether the archive carries Debian's Linux kernel and our busybox ramdisk.
    pub linux: bool,
    /// Typed on the serial console (Bochs only): each (pattern, text) types `text` once
    /// the output matches `pattern`, in order.
    pub input: &'static [(&'static str, &'static str)],
    /// Extra domain configuration files for the archive: (name, text).
    pub domains: &'static [(&'static str, &'static str)],
    /// A check of the whole serial log once the patterns are satisfied: a summary of what
    /// it measured, or why the scenario fails.
    pub check: Option<Check>,
    pub expect: &'static [&'static str],
    pub forbid: &'static [&'static str],
    pub timeout: Duration,
}

/// The configuration scenarios boot with: power off once ready, so they end by themselves.
pub const POWEROFF: &str = "on_ready = \"poweroff\"\nlog_level = \"info\"\n";
/// Three CPU burners weighted 256/512/1024, `n` vCPUs each.
macro_rules! burners {
    ($n:literal) => {
        &[
            (
                "w256.cfg",
                concat!(
                    "name = \"w256\"\nkernel = \"burn.elf\"\nmemory = 8\nvcpus = ",
                    $n,
                    "\ncpu_weight = 256\n"
                ),
            ),
            (
                "w512.cfg",
                concat!(
                    "name = \"w512\"\nkernel = \"burn.elf\"\nmemory = 8\nvcpus = ",
                    $n,
                    "\ncpu_weight = 512\n"
                ),
            ),
            (
                "w1024.cfg",
                concat!(
                    "name = \"w1024\"\nkernel = \"burn.elf\"\nmemory = 8\nvcpus = ",
                    $n,
                    "\ncpu_weight = 1024\n"
                ),
            ),
        ]
    };
}

/// Boot configuration of the weight scenarios: 3 s of burning, sampled every 100 ms.
const WEIGHTS_CFG: &str = "on_ready = \"poweroff\"\nrun_for_ms = 3000\nsched_sample_ms = 100\n\
                           domains = [\"w256.cfg\", \"w512.cfg\", \"w1024.cfg\"]\n";

/// What every scheduler scenario that runs to its time limit prints at the end.
const RUN_LIMIT_END: &[&str] = &[
    r"sched: run time limit of \d+ ms reached: destroying the domains still running",
    r"all domains have finished:",
    r"power: powering off",
];

fn check_weights(log: &str) -> std::result::Result<String, String> {
    crate::sched_log::check_weights(log, 5.0)
}

/// A capped burner stays within its cap (plus 2 points) and gets it; the sleeper among
/// the burners keeps a low wake-to-run latency.
fn check_cap_and_latency(log: &str) -> std::result::Result<String, String> {
    use crate::sched_log::{SchedLog, sleeper_latency};
    let p = SchedLog::parse(log);
    let hv = p.hv_shares(500.0)?;
    let capped = p
        .domains
        .iter()
        .find(|d| d.cap > 0)
        .ok_or("no capped domain")?;
    let share = hv.get(&capped.id).copied().unwrap_or(0.0);
    let cap = f64::from(capped.cap);
    let (wakes, mean, max) = sleeper_latency(log).ok_or("the sleeper reported no latency")?;
    let text = format!(
        "d{} {}: cap {cap}%, got {share:.2}% of one pCPU\nsleeper: {wakes} wakes among burners, wake-to-run latency mean {mean} us, max {max} us",
        capped.id, capped.name
    );
    if share > cap + 2.0 || share < cap - 5.0 {
        return Err(format!("capped domain outside [cap - 5, cap + 2]\n{text}"));
    }
    if mean > 2000 {
        return Err(format!("mean wake-to-run latency above 2 ms\n{text}"));
    }
    Ok(text)
}

/// Equal burners on one pCPU share it 50/50; once the control domain sets one's weight
/// to 768 they share it 75/25.
fn check_control(log: &str) -> std::result::Result<String, String> {
    use crate::sched_log::SchedLog;
    let p = SchedLog::parse(log);
    let changed_at = log
        .lines()
        .find_map(|l| {
            let at = l.split("weight set to 768 at ").nth(1)?;
            at.split(" ms").next()?.parse::<f64>().ok()
        })
        .ok_or("the control domain never changed the weight")?;
    // Sample times count from the domains' start; the guest prints system time. Find the
    // offset from the sample that follows the change.
    let t0 = log
        .lines()
        .find_map(|l| {
            l.split("sched: domains start at ")
                .nth(1)?
                .split(" ms")
                .next()?
                .parse::<f64>()
                .ok()
        })
        .ok_or("no start time")?;
    let change = changed_at - t0;
    let window = |from: f64, to: f64| -> std::result::Result<(f64, f64), String> {
        let a = p
            .samples
            .iter()
            .find(|(t, _)| *t >= from)
            .ok_or("no sample")?;
        let b = p
            .samples
            .iter()
            .rev()
            .find(|(t, _)| *t <= to)
            .ok_or("no sample")?;
        let dt = b.0 - a.0;
        if dt < 200.0 {
            return Err(format!("window {from}..{to} ms too short"));
        }
        let d =
            |id: u32| (b.1.get(&id).unwrap_or(&0.0) - a.1.get(&id).unwrap_or(&0.0)) / dt * 100.0;
        Ok((d(1), d(2)))
    };
    let before = window(300.0, change)?;
    let after = window(change + 300.0, f64::MAX)?;
    let text = format!(
        "before the change (to {change:.0} ms): d1 {:.1}%, d2 {:.1}%; after: d1 {:.1}%, d2 {:.1}% (want 50/50, then 75/25)",
        before.0, before.1, after.0, after.1
    );
    let off = [
        (before.0 - 50.0).abs(),
        (before.1 - 50.0).abs(),
        (after.0 - 75.0).abs(),
        (after.1 - 25.0).abs(),
    ]
    .into_iter()
    .fold(0.0, f64::max);
    if off > 5.0 {
        return Err(format!("shares off by {off:.1} points\n{text}"));
    }
    Ok(text)
}

/// The ping/pong pair: ping (domain 1) offers a ring to pong (domain 2).
const PING: (&str, &str) = (
    "t-ping.cfg",
    "name = \"ping\"\nkernel = \"ping.elf\"\nmemory = 8\ncmdline = \"peer=2 count=100000\"\n",
);
const PONG: (&str, &str) = (
    "t-pong.cfg",
    "name = \"pong\"\nkernel = \"pong.elf\"\nmemory = 8\ncmdline = \"peer=1 gref=8 port=2\"\n",
);
const PINGPONG_CFG: &str = "on_ready = \"poweroff\"\ndomains = [\"t-ping.cfg\", \"t-pong.cfg\"]\n";
/// What a clean ping/pong run prints.
const PINGPONG_OK: &[&str] = &[
    r"\[d1 ping\] ping: offering gref 8, port 2",
    r"\[d2 pong\] pong: mapped gref 8 of dom 1 at 0xfef00000",
    r"\[d2 pong\] pong: PASS served \d+",
    r"\[d1 ping\] ping: round trip \d+ ticks per request",
    r"\[d1 ping\] ping: event round trip \d+ ticks",
    r"\[d1 ping\] ping: PASS 100000 requests, 0 errors, \d+ upcalls",
    r"  domain 1 \(ping\): shutdown: poweroff",
    r"  domain 2 \(pong\): shutdown: poweroff",
    r"power: powering off",
];

/// Lines that mean something went wrong in a scenario that expects a clean boot.
const CLEAN: &[&str] = &["PANIC", "EXCEPTION", "ERROR"];

/// The exception-storm domains of the SMP regression scenarios: three domains of
/// `faults`, 2 vCPUs each (or 3), each vCPU taking 20,000 checked exceptions.
macro_rules! faults_domains {
    ($vcpus:literal) => {
        &[
            (
                "t-faults-a.cfg",
                concat!(
                    "name = \"faults-a\"\nkernel = \"faults.elf\"\nmemory = 8\nvcpus = ",
                    $vcpus,
                    "\ncmdline = \"iterations=20000 seed=1\"\n"
                ),
            ),
            (
                "t-faults-b.cfg",
                concat!(
                    "name = \"faults-b\"\nkernel = \"faults.elf\"\nmemory = 8\nvcpus = ",
                    $vcpus,
                    "\ncmdline = \"iterations=20000 seed=2\"\n"
                ),
            ),
            (
                "t-faults-c.cfg",
                concat!(
                    "name = \"faults-c\"\nkernel = \"faults.elf\"\nmemory = 8\nvcpus = ",
                    $vcpus,
                    "\ncmdline = \"iterations=20000 seed=3\"\n"
                ),
            ),
        ]
    };
}
const FAULTS_2X3: &[(&str, &str)] = faults_domains!(2);
const FAULTS_3X3: &[(&str, &str)] = faults_domains!(3);
const FAULTS_CFG: &str = "on_ready = \"poweroff\"\n\
                          domains = [\"t-faults-a.cfg\", \"t-faults-b.cfg\", \"t-faults-c.cfg\"]\n";
const FAULTS_CFG_HELLO: &str = "on_ready = \"poweroff\"\n\
                                domains = [\"t-faults-a.cfg\", \"t-faults-b.cfg\", \"t-faults-c.cfg\", \"hello.cfg\"]\n";
/// Every faults domain passes and powers off.
const FAULTS_OK: &[&str] = &[
    r"\[d\d faults-a\] faults: PASS \(\d+ exceptions checked on \d vCPU",
    r"\[d\d faults-b\] faults: PASS \(\d+ exceptions checked on \d vCPU",
    r"\[d\d faults-c\] faults: PASS \(\d+ exceptions checked on \d vCPU",
    r"domain \d \(faults-a\): shutdown: poweroff",
    r"domain \d \(faults-b\): shutdown: poweroff",
    r"domain \d \(faults-c\): shutdown: poweroff",
    r"power: powering off",
];
const FAULTS_FORBID: &[&str] = &["PANIC", "EXCEPTION", "ERROR", "crashed", "faults: FAIL"];

/// The attacks of `hostile` against `victim`s, batched into one boot (domain ids in
/// the order of the list: the attacker of each pair comes first).
const HOSTILE_DOMAINS: &[(&str, &str)] = &[
    (
        "x-teardown.cfg",
        "name = \"x-teardown\"\nkernel = \"hostile.elf\"\nmemory = 8\nvcpus = 2\n\
         cmdline = \"mode=teardown peer=2 port=2 after_ms=300\"\n",
    ),
    (
        "v-teardown.cfg",
        "name = \"v-teardown\"\nkernel = \"victim.elf\"\nmemory = 8\n\
         cmdline = \"mode=teardown peer=1 for_ms=800\"\n",
    ),
    (
        "ctl.cfg",
        "name = \"ctl\"\nkernel = \"schedctl.elf\"\nmemory = 8\nprivileged = 1\n\
         cmdline = \"target=3 weight=512 shutdown_target=1\"\n",
    ),
    (
        "target.cfg",
        "name = \"target\"\nkernel = \"burn.elf\"\nmemory = 8\n",
    ),
    (
        "x-physmap.cfg",
        "name = \"x-physmap\"\nkernel = \"hostile.elf\"\nmemory = 8\n\
         cmdline = \"mode=physmap hold_ms=1500\"\n",
    ),
    (
        "x-instr.cfg",
        "name = \"x-instr\"\nkernel = \"hostile.elf\"\nmemory = 8\nvcpus = 2\n\
         cmdline = \"mode=instructions for_ms=800\"\n",
    ),
    (
        "x-ac.cfg",
        "name = \"x-ac\"\nkernel = \"hostile.elf\"\nmemory = 8\ncmdline = \"mode=ac count=500\"\n",
    ),
    (
        "v-regs.cfg",
        "name = \"v-regs\"\nkernel = \"faults.elf\"\nmemory = 8\nvcpus = 2\n\
         cmdline = \"iterations=8000 seed=5\"\n",
    ),
];
const HOSTILE_CFG: &str = "on_ready = \"poweroff\"\n\
                           domains = [\"x-teardown.cfg\", \"v-teardown.cfg\", \"ctl.cfg\", \"target.cfg\", \"x-physmap.cfg\", \"x-instr.cfg\", \"x-ac.cfg\", \"v-regs.cfg\"]\n";
/// Every attack ran, every victim passed, every domain ended as it should.
const HOSTILE_OK: &[&str] = &[
    r"\[d1 x-teardown\] hostile: teardown: shutting down after \d+ binds",
    r"\[d2 v-teardown\] victim: PASS teardown",
    r"domain 1 \(x-teardown\): memory returned",
    r"  domain 1 \(x-teardown\): shutdown: poweroff",
    r"  domain 2 \(v-teardown\): shutdown: poweroff",
    r"\[d0 ctl\] schedctl: domain 3 shut down remotely",
    r"\[d0 ctl\] schedctl: PASS",
    r"  domain 3 \(target\): shutdown: poweroff",
    r"domain 4 \(x-physmap\): EPT table quota reached \(272 frames\)",
    r"\[d4 x-physmap\] hostile: physmap: 2000 moves of shared info, then \d+ far grant mappings before a refusal",
    r"\[d4 x-physmap\] hostile: physmap: PASS",
    r"  domain 4 \(x-physmap\): shutdown: poweroff",
    r"\[d5 x-instr\] hostile: instructions: PASS \d+ rounds",
    r"  domain 5 \(x-instr\): shutdown: poweroff",
    r"\[d6 x-ac\] hostile: ac: PASS 500 alignment checks from CPL 3",
    r"  domain 6 \(x-ac\): shutdown: poweroff",
    r"\[d7 v-regs\] faults: PASS \(16000 exceptions checked on 2 vCPU",
    r"  domain 7 \(v-regs\): shutdown: poweroff",
    r"power: powering off",
];
const HOSTILE_FORBID: &[&str] = &["PANIC", "EXCEPTION", "ERROR", "FAIL"];

/// The hypervisor's memory figures (`debug-key m`) before the builder's cycles and after
/// them: free frames must be the same, and heap in use within 1 KiB (the other pCPU's
/// passing allocations, a log line being formatted, make it move by a few bytes either
/// way; a leak of a single byte per domain would show as 1,000).
fn check_churn(log: &str) -> std::result::Result<String, String> {
    let re = Regex::new(r"debug-key m: (\d+) frames free of \d+; heap (\d+) bytes in use")
        .expect("pattern");
    let figures: Vec<(u64, u64)> = re
        .captures_iter(log)
        .map(|c| (c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0)))
        .collect();
    // The first two: before and after the cycles (a third comes with the many).
    let [before, after, ..] = figures[..] else {
        return Err(format!(
            "want at least two debug-key m lines, found {}",
            figures.len()
        ));
    };
    let text = format!(
        "free frames {} before, {} after; heap in use {} bytes before, {} after",
        before.0, after.0, before.1, after.1
    );
    if before.0 != after.0 || before.1.abs_diff(after.1) > 1024 {
        return Err(format!("{text}: something was not given back"));
    }
    Ok(text)
}

/// The control domain's shell: a paused domain does nothing (see [`check_paused`]) and a
/// failed build gives everything back (see [`check_failed_build`]).
fn check_dom0_shell(log: &str) -> std::result::Result<String, String> {
    Ok(format!(
        "{}; {}",
        check_paused(log)?,
        check_failed_build(log)?
    ))
}

/// `burn` reports its progress every 100 ms of its time while it runs; between `xl
/// pause burn` and `xl unpause burn` (half a second apart, by the shell's `sleep`) no
/// report comes, its CPU time in `xl list` stays the same, and reports come again after.
fn check_paused(log: &str) -> std::result::Result<String, String> {
    let from = log.find("xl pause burn").ok_or("no xl pause burn")?;
    let to = from
        + log[from..]
            .find("xl unpause burn")
            .ok_or("no xl unpause burn")?;
    let window = &log[from..to];
    let report = Regex::new(r"\[d1 burn\] burn: at (\d+) ms").expect("pattern");
    if let Some(c) = report.captures(window) {
        return Err(format!("burn reported at {} ms while paused", &c[1]));
    }
    let time = Regex::new(r"\nburn\s+1\s+8\s+2\s+-[b-]p---\s+(\d+\.\d)").expect("pattern");
    let times: Vec<&str> = time
        .captures_iter(window)
        .map(|c| c.get(1).map_or("", |m| m.as_str()))
        .collect();
    if times.len() != 2 || times[0] != times[1] {
        return Err(format!("CPU time while paused, 0.5 s apart: {times:?}"));
    }
    let after = report.captures_iter(&log[to..]).count();
    if after == 0 {
        return Err("no report from burn after xl unpause".into());
    }
    Ok(format!(
        "no progress and {} s of CPU time while paused for 0.5 s, {after} reports after",
        times[0]
    ))
}

/// The control domain's shell: `xl info`'s free memory just before the build that fails
/// half-way and just after it are the same (the failed build gave everything back).
fn check_failed_build(log: &str) -> std::result::Result<String, String> {
    let at = log
        .find("xl create t-hello.cfg memory=4000")
        .ok_or("no failed build in the log")?;
    let before = free_memory(&log[..at]).last().copied();
    let after = free_memory(&log[at..]).first().copied();
    match (before, after) {
        (Some(b), Some(a)) if a == b => Ok(format!(
            "free memory {b} MiB before and after the failed build"
        )),
        (b, a) => Err(format!(
            "free memory {b:?} MiB before the failed build, {a:?} after: it kept something"
        )),
    }
}

/// The free memory (MiB) of each `xl info` in `text`, in order.
fn free_memory(text: &str) -> Vec<&str> {
    let free = Regex::new(r"free_memory\s+: (\d+)").expect("pattern");
    free.captures_iter(text)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect()
}

/// What is typed for the create/destroy cycles: `n` times `xl create` (a new name each
/// time) and, once the guest is up, `xl destroy`; the hypervisor's memory figures (debug
/// key `m`, reached with Ctrl-A three times and left the same way) after the first cycle
/// and after the last; then `xl list` and `poweroff`.
fn cycle_steps(n: u32) -> &'static [(&'static str, &'static str)] {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let create = |i: u32| leak(format!("xl -v create t-cyc.cfg 'name=\"cyc{i}\"'\r"));
    let figures = "\x01\x01\x01m\x01\x01\x01";
    let mut steps = vec![(r"adopted, \d+ file\(s\)\. Type 'help'\.", create(1))];
    for i in 1..=n {
        steps.push((
            leak(format!(r"\[d\d+ cyc{i}\] hello: echo: waiting")),
            leak(format!("xl -v destroy cyc{i}\r")),
        ));
        let next = match i {
            1 => leak(format!("{figures}{}", create(2))),
            i if i == n => leak(format!("{figures}xl list\r")),
            i => create(i + 1),
        };
        steps.push((
            leak(format!(
                r"xl -v destroy cyc{i}\r?\n(\[[^\n]*\n)*xl: destroyed in \d+ ticks\r?\noxen-dom0# "
            )),
            next,
        ));
    }
    steps.push((
        r"Time\(s\)\r?\nDomain-0[^\n]*\r?\n(\[[^\n]*\n)*oxen-dom0# ",
        "poweroff\r",
    ));
    Box::leak(steps.into_boxed_slice())
}

/// The console storm beside an equal-weight burner on 1 pCPU: the burner keeps its
/// half of the pCPU (within 5 points).
fn check_console_share(log: &str) -> std::result::Result<String, String> {
    let p = crate::sched_log::SchedLog::parse(log);
    let shares = p.hv_shares(500.0)?;
    let victim = *shares.get(&2).ok_or("no share for the victim (d2)")?;
    let storm = shares.get(&1).copied().unwrap_or(0.0);
    let text = format!("console storm d1: {storm:.1}% of the pCPU, burner d2: {victim:.1}%");
    if (victim - 50.0).abs() > 5.0 {
        return Err(format!("{text}: the victim is not within 5 points of 50%"));
    }
    Ok(text)
}

/// What is typed into the control domain's shell, each line once the answer to the one
/// before it came (answers are matched so that the echo of a command cannot match).
const DOM0_TYPED: &[(&str, &str)] = &[
    (r"adopted, \d+ file\(s\)\. Type 'help'\.", "xl list\r"),
    (
        r"\nburn\s+1\s+8\s+2\s+[r-][b-]-",
        "xl pause burn\rxl list burn\r",
    ),
    (
        r"\nburn\s+1\s+8\s+2\s+-[b-]p---",
        "sleep 0.5\rxl list burn\r",
    ),
    (
        r"\nburn\s+1\s+8\s+2\s+-[b-]p---",
        "xl unpause burn\rxl list burn\r",
    ),
    (
        r"\nburn\s+1\s+8\s+2\s+[r-][b-]----",
        "xl vcpu-list burn\rxl sched-credit\r",
    ),
    (
        r"\nburn\s+1\s+256\s+0\r?\n",
        "xl sched-credit -d burn -w 512\rxl sched-credit -d 1\r",
    ),
    (
        r"\nburn\s+1\s+512\s+0\r?\n",
        "xl sched-credit -s -t 10 -r 500 -m 100\rxl sched-credit -s\r",
    ),
    (
        r"\nCpupool Pool-0: tslice=10ms ratelimit=500us migration-delay=100us\r?\n",
        "xl sched-credit -s -t 1 -r 2000\rxl sched-credit -s -t 30 -r 1000 -m 0\rxl sched-credit -p Pool-0 -s\r",
    ),
    (
        r"\nCpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us\r?\n",
        "xl pause nosuch\rxenstore-read /local/domain/1/name\rxl shutdown burn\rxl destroy 0\r",
    ),
    (r"use -f to force", "xl destroy burn\r"),
    (r"domain 1 \(burn\): memory returned", "xl list\r"),
    (
        // (Hypervisor log lines may come between.)
        r"Time\(s\)\r?\nDomain-0\s+0\s+32\s+1\s+\S+\s+\d+\.\d\r?\n(\[[^\n]*\n)*oxen-dom0# ",
        "xl create -p t-hello.cfg 'name=\"hi\"'\rxl list hi\r",
    ),
    (
        r"\nhi\s+\d+\s+16\s+1\s+--p---",
        "xl list -l hi\rxl list -l 0\rxl unpause hi\r",
    ),
    (
        r"\[d\d+ hi\] hello: PASS",
        "xl create nosuch.cfg\rxl create t-hello.cfg memory=1\r",
    ),
    (
        r"t-hello\.cfg: line \d+: ",
        "xl info\rxl create t-hello.cfg memory=4000 'name=\"big\"'\r",
    ),
    // A build that fails half-way (the machine has no 4000 MiB) leaves nothing behind.
    (
        r"populate_physmap could not give it 4000 MiB \(the domain was destroyed\)",
        "xl info\rxl list big\rxl create t-crash.cfg\r",
    ),
    (r"not restarting it again", "xl create t-hot.cfg\r"),
    // vCPU hot-plug: 1 of 3 online at boot, then 3, then 2, then a request above the
    // maximum; the guest follows cpu/N/availability and ends through control/shutdown.
    (
        r"smp: hotplug: 1 of 3 vCPU\(s\) online",
        "xl vcpu-list hot\rxl vcpu-set hot 3\r",
    ),
    (
        r"smp: hotplug: 3 of 3 vCPU\(s\) online",
        "xl vcpu-list hot\rxl vcpu-set hot 2\r",
    ),
    (
        r"smp: hotplug: 2 of 3 vCPU\(s\) online",
        "xl vcpu-set hot 4\rxl shutdown -w hot\r",
    ),
    (
        r"Domain \d+ has been shut down, reason code 0",
        "ls /etc/xen\rcat /etc/xen/t-burn.cfg\r",
    ),
    (r#"kernel = "burn\.elf""#, "xl list\rxl info\rxl uptime\r"),
    (r"\nDomain-0\s+0\s+\d+:\d\d:\d\d", "xl dmesg\r"),
    (
        r"INFO  oxen ready: 2/2 CPUs online",
        "frobnicate\rpoweroff\r",
    ),
];
/// What the control domain's shell answers.
const DOM0_OK: &[&str] = &[
    r"domain 0 \(dom0\): 32 MiB, kernel dom0\.elf, ramdisk @archive, 1 vCPU\(s\), weight 256, cap 0, cpus 0x3, privileged",
    r"oxen dom0: the control domain is up; 1 boot domain\(s\) adopted",
    r"Name                                        ID   Mem VCPUs\tState\tTime\(s\)",
    r"\nDomain-0\s+0\s+32\s+1\s+r-----\s+\d+\.\d\r?\n",
    r"\nburn\s+1\s+8\s+2\s+-[b-]p---\s+\d+\.\d\r?\n",
    r"Name\s+ID\s+VCPU\s+CPU\s+State\s+Time\(s\) Affinity \(Hard / Soft\)\r?\nburn\s+1\s+0\s+[01]\s+[r-]-- \s+\d+\.\d all / all\r?\nburn\s+1\s+1\s+[-01]\s+",
    r"Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us",
    r"sched: domain 1 \(burn\): weight 512, cap 0 \(was 256, 0\)",
    // The pool's settings: set, shown, a rate limit above the slice refused (and
    // nothing changed), set back.
    r"sched: tslice 10 ms, ratelimit 500 us, migration delay 100 us \(were 30, 1000, 0\)",
    r"xl sched-credit: tslice=1ms ratelimit=2000us migration-delay=100us refused \(rc=-22\)",
    r"sched: tslice 30 ms, ratelimit 1000 us, migration delay 0 us \(were 10, 500, 100\)",
    r"nosuch is an invalid domain identifier \(rc=-6\)",
    // dom0 wrote the adopted boot-time domain's nodes.
    r"xenstore-read /local/domain/1/name\r?\nburn\r?\n",
    // burn runs no PV drivers (no event-channel callback): no graceful shutdown.
    r"xl shutdown burn\r?\nPV control interface not available: external graceful shutdown not possible\.\r?\n\(domain 1 set no HVM_PARAM_CALLBACK_IRQ; xl destroy ends it\)",
    r"Not destroying domain 0; use -f to force\.\r?\nThis can only be done when using a disaggregated hardware domain and toolstack\.",
    r"\d+  t-burn\.cfg\r?\n",
    r"\nhot\s+\d+\s+2\s+-\s+--p\s+0\.0 all / all\r?\n",
    r"\[d\d+ hot\] smp: hotplug: vCPU 2 up",
    r"\nhot\s+\d+\s+2\s+[01]\s+[r-][b-]-\s+\d+\.\d all / all\r?\n",
    r"\[d\d+ hot\] smp: hotplug: vCPU 2 down",
    r"xl vcpu-set: requested 4 vCPUs, however maxcpus is 3",
    r"\[d\d+ hot\] smp: PASS hotplug",
    r"Parsing config from /etc/xen/t-hello\.cfg",
    // xl list -l: the configuration of the domain it built, then what dom0 knows of
    // itself.
    r#"\[\r?\n    \{\r?\n        "domid": \d+,\r?\n        "config": \{\r?\n            "c_info": \{\r?\n                "type": "pvh",\r?\n                "name": "hi",\r?\n                "uuid": "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"\r?\n"#,
    r#"\n                "max_memkb": 16384,\r?\n                "target_memkb": 16384,\r?\n"#,
    r#"\n                "kernel": "hello\.elf",\r?\n"#,
    r#"\n            "on_reboot": "restart",\r?\n"#,
    r#""domid": 0,\r?\n        "config": \{\r?\n            "c_info": \{\r?\n                "type": "pvh",\r?\n                "name": "Domain-0"\r?\n            \},\r?\n            "b_info": \{\r?\n                "max_vcpus": 1,"#,
    r"\[d\d+ hi\] hello: PASS Xen 4\.17-oxen",
    r"xl create: /etc/xen/nosuch\.cfg: no such configuration file",
    r"xl create: big: populate_physmap could not give it 4000 MiB \(the domain was destroyed\)",
    r"big is an invalid domain identifier \(rc=-6\)",
    // on_crash = "restart": built again each time it crashes, until it has crashed
    // five times in a row right after starting.
    r"hello: crashing on purpose",
    r"oxen dom0: domain \d+ \(crashy\) shut down \(crash\); restarted as domain \d+",
    r"oxen dom0: domain \d+ \(crashy\) shut down \(crash\); restarted 5 times in a row within 10 s of starting: not restarting it again",
    // The domain it built went once it shut down: the list before `xl info` is dom0's.
    r"Time\(s\)\r?\nDomain-0[^\n]*\r?\n(\[[^\n]*\n)*oxen-dom0# xl info",
    r"nr_cpus\s+: 2\r?\n",
    r"xen_version\s+: 4\.17-oxen",
    r"\nName                                ID Uptime\r?\nDomain-0                             0 +\d+:\d\d:\d\d\r?\n",
    r"frobnicate: command not found",
    r"oxen dom0: destroying every other domain and powering off",
    r"  domain 0 \(dom0\): shutdown: poweroff",
    r"power: powering off",
];

/// The XenStore over rings: a hostile domain breaks its ring and is cut off, then a
/// well-behaved one uses the store while the first still runs.
const XS_TYPED: &[(&str, &str)] = &[
    (
        r"adopted, \d+ file\(s\)\. Type 'help'\.",
        "xl create t-xs-bad.cfg\r",
    ),
    (r"xenstore-hostile: (PASS|FAIL)", "xl create t-xs-big.cfg\r"),
    (
        r"xenstore-hostile: (PASS|FAIL) rejected \(error 3\)",
        "xl create t-xs-quota.cfg\r",
    ),
    (r"xenstore-quota: (PASS|FAIL)", "xl create t-xs.cfg\r"),
    (
        r"xenstore: (PASS|FAIL) \d+",
        "xenstore-read /local/domain/0/name /nosuch\rxenstore-write /tool/oxen hi\rxenstore-read /tool/oxen\rxenstore-chmod /nosuch n0\rxenstore-chmod /tool/oxen n0 r1\rxenstore-chmod /tool/oxen q1\rxenstore-ls /local/domain\r",
    ),
    (
        r#"\n  greeting = "hello, store""#,
        "xl shutdown Domain-0\rxl reboot xs-good\rxenstore-watch -n 3 /local/domain\r",
    ),
    // on_reboot = "restart" (Xen's default): built again, it passes again.
    (
        r"\(xs-good\) shut down \(reboot\); restarted as domain \d+",
        "",
    ),
    (r"xenstore: PASS \d+ checks", "xl shutdown -w xs-good\r"),
    // The prompt comes back once it has shut down.
    (
        r"has been shut down, reason code 0\r?\noxen-dom0# ",
        "xl list\r",
    ),
    (
        r"\nxs-bad\s+\d+\s+8\s+1\s+",
        "xl destroy xs-bad\rxl destroy xs-big\rxl list\r",
    ),
    (
        r"Time\(s\)\r?\nDomain-0[^\n]*\r?\n(\[[^\n]*\n)*oxen-dom0# ",
        "poweroff\r",
    ),
];
const XS_OK: &[&str] = &[
    r"xenstore-hostile: a request before the attack: answered",
    r"oxen dom0: xenstore: domain \d+ \(xs-bad\): impossible ring indexes; no longer served",
    r"xenstore-hostile: PASS rejected \(error 2\)",
    // A header announcing 4 GiB: the connection is closed (XENSTORE_ERROR_PROTO).
    r"oxen dom0: xenstore: domain \d+ \(xs-big\): connection closed \(header announces a 4294967295-byte payload \(limit 4096\)\); no longer served",
    r"\[d\d+ xs-big\] xenstore-hostile: PASS rejected \(error 3\)",
    // A domain owns at most 1,000 nodes; six are made for it (data/, control/shutdown,
    // control/feature-poweroff, -reboot, -suspend and control/sysrq).
    r"\[d\d+ xs-quota\] xenstore-quota: PASS refused node 994 \(ENOSPC\); reads still answered",
    r"xenstore: I am domain \d+, named 'xs-good' in the store",
    r"xenstore: PASS \d+ checks",
    r"xenstore: 200 reads over the ring in \d+ ticks",
    // dom0's xenstore-* commands on the same store.
    r"\nDomain-0\r?\nxenstore-read: couldn't read path /nosuch",
    r"xenstore-read /tool/oxen\r?\nhi\r?\n",
    r"xenstore-chmod: could not set permissions on /nosuch",
    r"xenstore-chmod /tool/oxen n0 r1\r?\noxen-dom0# ",
    r"xenstore-chmod /tool/oxen q1\r?\nUsage: xenstore-chmod",
    // A watch fires when set, then for what the reboot changes below it.
    // (Mirrored lines may come between.)
    r"xenstore-watch -n 3 /local/domain\r?\n/local/domain\r?\n(\[[^\n]*\n)*/local/domain/\d+[^\n]*\r?\n(\[[^\n]*\n)*/local/domain/\d+[^\n]*\r?\n(\[[^\n]*\n)*oxen-dom0# ",
    r#"\n name = "xs-good""#,
    // libxl's description of the domain.
    r#"\n vm = "/vm/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}""#,
    r#"\n  static-max = "8192""#,
    r#"\n  target = "8192""#,
    r#"\n   availability = "online""#,
    r#"\n  greeting = "hello, store""#,
    r"xl shutdown: domain 0: no PV control interface",
    r"Rebooting domain \d+",
    r"xenstore: shutdown requested \(reboot\); acknowledged",
    r"oxen dom0: domain \d+ \(xs-good\) shut down \(reboot\); restarted as domain \d+",
    r"Shutting down domain \d+\r?\nWaiting for 1 domains\r?\n",
    r"xenstore: shutdown requested \(poweroff\); acknowledged",
    r"\nDomain \d+ has been shut down, reason code 0\r?\noxen-dom0# ",
    // Then it powered off and was reaped: the list holds the hostile one only.
    r"\nxs-bad\s+\d+\s+8\s+1\s+[^\n]*\r?\nxs-big\s+\d+\s+8\s+1\s+[^\n]*\r?\noxen-dom0# xl destroy",
    // The hostile domain still ran beside the other, and went when destroyed.
    r"\nxs-bad\s+\d+\s+8\s+1\s+",
    r"power: powering off",
];

/// The consoles dom0 serves: mirrored lines of detached domains, `xl console` with its
/// history and typed input, Ctrl-] to detach, `xl create -c`, a domain that ends while
/// attached, and two hostile rings (output and input indices) cut off while the others
/// go on.
const CONS_TYPED: &[(&str, &str)] = &[
    // echo is started from /etc/xen/auto.
    (
        r"\[d\d+ echo\] hello: echo: waiting for 2 line",
        "xl create t-conout.cfg\rxl create t-conin.cfg\r",
    ),
    (
        r"\[d\d+ x-conin\] hostile: conin: indices corrupted",
        "xl console x-conin\rx",
    ),
    (
        r"console: domain \d+ \(x-conin\): input indices are impossible",
        "\x1dls /etc/xen/auto\rxl console echo\r",
    ),
    (
        r"xl console echo\r\n(?s:.*)hello: echo: waiting for 2 line\(s\) of input",
        "first line\r",
    ),
    (r"hello: got 'first line'", "\x1dxl list\r"),
    (
        r"\necho\s+\d+\s+8\s+1\s+",
        "xl create -c t-echo.cfg 'name=\"echo2\"'\r",
    ),
    (
        r"xl create -c [^\n]*\n(?s:.*)\nhello: echo: waiting for 2",
        "one\rtwo\r",
    ),
    // echo2 ends while attached: the prompt comes back by itself.
    (r"hello: got 'two'\r\n(?s:.*)oxen-dom0# ", "xl list\r"),
    (
        r"\necho\s+\d+\s+8\s+1\s+",
        "xl destroy x-conin\rxl console echo\rsecond\r",
    ),
    (
        r"hello: got 'second'\r\n(?s:.*)oxen-dom0# ",
        "xl console x-conout\r\x1dxl console Domain-0\rxl console nosuch\rpoweroff\r",
    ),
];
const CONS_OK: &[&str] = &[
    r"oxen dom0: autostart: Parsing config from /etc/xen/auto/t-echo\.cfg",
    r"oxen dom0: the control domain is up; 0 boot domain\(s\) adopted, 1 started from /etc/xen/auto, \d+ file\(s\)\. Type 'help'\.",
    r"ls /etc/xen/auto\r?\n +\d+  t-echo\.cfg\r?\n",
    r"\[d\d+ x-conout\] hostile: conout: corrupting the output index",
    r"oxen dom0: console: domain \d+ \(x-conout\): output indices are impossible \(cons \d+, prod \d+\); no longer served",
    r"\[d\d+ x-conin\] hostile: conin: indices corrupted",
    r"oxen dom0: console: domain \d+ \(x-conin\): input indices are impossible \(cons \d+, prod \d+\); no longer served",
    // Mirrored while detached, shown again from the history on attach.
    r"\[d\d+ echo\] hello: echo: waiting for 2 line\(s\) of input",
    r"xl console echo\r\n(?s:.*)hello: echo: waiting for 2 line\(s\) of input\r\n",
    // Typed input reached it; its answer came raw, not mirrored.
    r"\r\nhello: got 'first line'\r\n",
    r"\necho\s+\d+\s+8\s+1\s+",
    r"xl create -c [^\n]*\r\nParsing config from /etc/xen/t-echo\.cfg\r\nhello: started",
    r"\r\nhello: got 'one'\r\n",
    r"\r\nhello: got 'two'\r\n",
    r"\r\nhello: got 'second'\r\n",
    r"xl console x-conout\r\n(?s:.*)hostile: conout: corrupting the output index",
    r"xl console: domain 0's console is this one",
    r"nosuch is an invalid domain identifier \(rc=-6\)",
    r"oxen dom0: destroying every other domain and powering off",
    r"power: powering off",
];

/// What is typed into Linux's shell on hvc0 (`linux::INIT` starts it), each command
/// once the answer to the one before it came. Every answer is written so that the echo
/// of the command itself cannot match what is expected of it.
const LINUX_TYPED: &[(&str, &str)] = &[
    (r"init: ready", "uname -r\n"),
    (
        r"\] 6\.\d+\.\d+-\d+-amd64",
        "grep -c ^processor /proc/cpuinfo; grep -m1 'model name' /proc/cpuinfo\n",
    ),
    (
        r"model name\s+: ",
        "grep -q hypervisor /proc/cpuinfo && echo flags-say-$((1+1))-hypervisor\n",
    ),
    (
        r"flags-say-2-hypervisor",
        "cat /sys/devices/system/clocksource/clocksource0/current_clocksource\n",
    ),
    (r"\] xen\r?\n", "cat /proc/interrupts\n"),
    (r"xen-percpu\s+-virq\s+timer0", "dmesg | grep -i xen\n"),
    (
        r"Switched to clocksource xen",
        "echo sum=$(seq 1 1000 | awk '{ s += $1 } END { print s }') product=$((12345 * 6789))\n",
    ),
    (
        r"sum=500500 product=83810205",
        "echo problems=$(dmesg | grep -i -e warning -e oops -e 'unchecked msr' -e 'call trace' -e 'bug:' | grep -v -c RETBleed)\n",
    ),
    (r"problems=\d+", "poweroff -f\n"),
];
/// On 2 vCPUs, before the rest: both CPUs online, a job pinned to each.
const LINUX_SMP_TYPED: &[(&str, &str)] = &[
    (r"init: ready", "cat /sys/devices/system/cpu/online\n"),
    (
        r"\] 0-1\r?\n",
        "for c in 0 1; do taskset -c $c sh -c 'i=0; s=0; while [ $i -lt 3000 ]; do i=$((i + 1)); s=$((s + i)); done; echo job-on-$0-summed-$s' $c & done; wait; echo jobs-$((1 + 1))-done\n",
    ),
    (r"jobs-2-done", "uname -r\n"),
    (
        r"\] 6\.\d+\.\d+-\d+-amd64",
        "cat /sys/devices/system/clocksource/clocksource0/current_clocksource\n",
    ),
    (
        r"\] xen\r?\n",
        "echo problems=$(dmesg | grep -i -e warning -e oops -e 'unchecked msr' -e 'call trace' -e 'bug:' | grep -v -c RETBleed)\n",
    ),
    (r"problems=\d+", "poweroff -f\n"),
];
/// What Linux must answer on 1 vCPU, and how the domain must end.
const LINUX_OK: &[&str] = &[
    r"\[d1 linux\] init: ready, 1 CPU\(s\)",
    r"(?m)\[d1 linux\] 6\.\d+\.\d+-\d+-amd64$",
    r"(?m)\[d1 linux\] 1$",
    r"\[d1 linux\] flags-say-2-hypervisor",
    r"(?m)\[d1 linux\] xen$",
    r"\[d1 linux\] .*xen-percpu\s+-virq\s+timer0",
    r"\[d1 linux\] .*clocksource: Switched to clocksource xen",
    r"\[d1 linux\] sum=500500 product=83810205",
    r"(?m)\[d1 linux\] problems=0$",
    r"\[d1 linux\] .*reboot: System halted",
    r"  domain 1 \(linux\): shutdown: poweroff",
    r"domain 1 \(linux\): memory returned \(256 MiB\)",
    r"power: powering off",
];
/// Linux on 2 vCPUs: both come up, a job runs on each, and it ends as on one.
const LINUX_SMP_OK: &[&str] = &[
    r"\[d1 linux-smp\] init: ready, 2 CPU\(s\)",
    r"(?m)\[d1 linux-smp\] 0-1$",
    r"\[d1 linux-smp\] job-on-0-summed-4501500",
    r"\[d1 linux-smp\] job-on-1-summed-4501500",
    r"\[d1 linux-smp\] jobs-2-done",
    r"(?m)\[d1 linux-smp\] xen$",
    r"(?m)\[d1 linux-smp\] problems=0$",
    r"  domain 1 \(linux-smp\): shutdown: poweroff",
    r"domain 1 \(linux-smp\): memory returned \(256 MiB\)",
    r"power: powering off",
];
/// Anything of the kernel's that says it was unhappy with what it ran on.
const LINUX_FORBID: &[&str] = &[
    "PANIC",
    "EXCEPTION",
    "ERROR",
    "Kernel panic",
    "Oops",
    "unchecked MSR access",
    "Call Trace",
    "crashed",
];

/// Linux built by dom0's `xl create -c`: its shell through dom0's console, its xenbus
/// through dom0's store, then detached, `xl shutdown -w` through `control/shutdown`.
const LINUX_XL_TYPED: &[(&str, &str)] = &[
    (r"adopted, \d+ file\(s\)\. Type 'help'\.", "xl info\r"),
    (r"free_memory\s+: \d+", "xl create -c linux.cfg\r"),
    (r"init: ready", "uname -r\n"),
    (
        r"\n6\.\d+\.\d+-\d+-amd64",
        "ls /sys/bus/xen/drivers; cat /proc/cmdline\n",
    ),
    (
        r"xenconsole",
        "echo problems=$(dmesg | grep -i -e warning -e oops -e 'unchecked msr' -e 'call trace' -e 'bug:' -e xenbus.*fail | grep -v -c RETBleed)\n",
    ),
    (r"problems=\d+", "\x1d"),
    (r"oxen-dom0# ", "xl list\r"),
    // Its xenbus wrote what it can do into the store (setup_shutdown_watcher).
    (
        r"\nlinux\s+1\s+256\s+1\s+",
        "xenstore-read /local/domain/1/control/feature-poweroff /local/domain/1/control/feature-reboot\r",
    ),
    (r"feature-reboot\r?\n1\r?\n1\r?\n", "xl console linux\r"),
    (r"problems=\d+", "echo again-$((2 + 3))\n"),
    (r"again-5", "\x1d"),
    (r"oxen-dom0# ", "xl shutdown -w linux\r"),
    (r"Domain 1 has been shut down, reason code 0", "xl list\r"),
    // Once it is gone from the list (on_poweroff = destroy), its memory is back.
    (r"Time\(s\)\r?\nDomain-0[^\n]*\r?\noxen-dom0# ", "xl info\r"),
    (r"free_memory\s+: \d+", "poweroff\r"),
];

/// `linux-xl`: `xl info`'s free memory before `xl create` and after the domain went
/// are the same (every frame of its 256 MiB came back).
fn check_linux_xl(log: &str) -> std::result::Result<String, String> {
    let seen = free_memory(log);
    match seen[..] {
        [before, after] if before == after => Ok(format!(
            "free memory {before} MiB before xl create and after the domain went"
        )),
        _ => Err(format!("free memory before and after: {seen:?}")),
    }
}
const LINUX_XL_OK: &[&str] = &[
    r"Parsing config from /etc/xen/linux\.cfg",
    r"init: ready, 1 CPU\(s\)",
    // Xen's frontend drivers registered on xenbus (the console's among them).
    r"vfb\s+vkbd\s+xenconsole",
    r"(?m)^problems=0\r?$",
    // xl console attaches again to the same shell (its history first).
    r"again-5",
    r"Shutting down domain 1",
    // Its /sbin/poweroff ran (busybox poweroff -f: halted, then its last vCPU down).
    r"\[d1 linux\] .*reboot: System halted",
    r"Domain 1 has been shut down, reason code 0",
    r"power: powering off",
];

/// The APIC guest: 3 vCPUs (vCPU 1 started with VCPUOP_up, vCPU 2 with INIT/SIPI).
const APIC_DOMAINS: &[(&str, &str)] = &[(
    "apic.cfg",
    "name = \"apic\"\nkernel = \"apic.elf\"\nmemory = 8\nvcpus = 3\n",
)];
const APIC_CFG: &str = "on_ready = \"poweroff\"\ndomains = [\"apic.cfg\"]\n";
const APIC_OK: &[&str] = &[
    r"\[d1 apic\] apic: ACPI tables: RSDP at 0xf0000, XSDT, FADT \(hardware-reduced\), MADT with 3 local APICs",
    r"\[d1 apic\] apic: periodic timer: \d+ ticks of 1 ms in 20 ms",
    r"\[d1 apic\] apic: PASS \(\d+ checks\)",
    r"  domain 1 \(apic\): shutdown: poweroff",
    r"power: powering off",
];

/// Every boot scenario, in the order `test` runs them.
pub fn all() -> Vec<Scenario> {
    let base = |name, what, platform, firmware, cpus| Scenario {
        name,
        what,
        platform,
        firmware,
        cpus,
        memory_mib: 256,
        qemu_cpu: "qemu64",
        features: &[],
        archive: ArchiveKind::Config(POWEROFF),
        guests: false,
        linux: false,
        input: &[],
        domains: &[],
        check: None,
        expect: &[],
        forbid: CLEAN,
        timeout: Duration::from_secs(120),
    };
    let bochs_guests = |name, what, cpus, config| Scenario {
        memory_mib: 512,
        archive: ArchiveKind::Config(config),
        guests: true,
        forbid: &["PANIC", "EXCEPTION"],
        timeout: Duration::from_secs(300),
        ..base(name, what, Platform::Bochs, Firmware::Uefi, cpus)
    };
    vec![
        Scenario {
            expect: &[
                r"apic: local APIC in xAPIC mode",
                r"acpi: MADT lists 4 CPU\(s\)",
                r"vmx: VT-x not available \(CPUID\.1:ECX\.VMX = 0\): guests cannot run on this machine; carrying on without VMX",
                r"smp: 4 of 4 CPUs online",
                r"timer: periodic tick running on all 4 online CPUs",
                r"boot: archive of .* holds \d+ entries, CRC-32 0x[0-9a-f]{8} ok",
                r"boot:   hello\.cfg ",
                r"boot:   boot\.cfg ",
                r"oxen ready: 4/4 CPUs online, .* VMX off",
                r"power: powering off",
            ],
            ..base(
                "qemu-uefi-smp4",
                "QEMU TCG, UEFI, 4 CPUs: all online, no VT-x reported",
                Platform::Qemu,
                Firmware::Uefi,
                4,
            )
        },
        Scenario {
            expect: &[
                r"apic: local APIC in xAPIC mode",
                r"acpi: MADT lists 2 CPU\(s\)",
                r"smp: 2 of 2 CPUs online",
                r"oxen ready: 2/2 CPUs online, .* VMX off",
                r"power: powering off",
            ],
            ..base(
                "qemu-bios-smp2",
                "QEMU TCG, legacy BIOS, 2 CPUs",
                Platform::Qemu,
                Firmware::Bios,
                2,
            )
        },
        Scenario {
            features: &["test-fault"],
            archive: ArchiveKind::Config("on_ready = \"idle\"\n"),
            expect: &[
                r"oxen ready: 2/2 CPUs online",
                r"test-fault: writing to unmapped address 0xdeadb000",
                r"EXCEPTION #PF \(vector 14\) on cpu0: error code 0x2, RIP 0x[0-9a-f]+, CR2 0xdeadb000, RSP 0x[0-9a-f]+",
                r"PANIC: unhandled exception #PF \(vector 14\) at RIP 0x[0-9a-f]+ at hypervisor/src/arch/idt\.rs:\d+",
                r"oxen halted: every CPU is stopped",
            ],
            forbid: &[],
            ..base(
                "fault-report",
                "a deliberate page fault is reported and stops every CPU",
                Platform::Qemu,
                Firmware::Uefi,
                2,
            )
        },
        Scenario {
            archive: ArchiveKind::Corrupt,
            expect: &[
                r"ERROR boot: boot archive rejected: checksum mismatch: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}; continuing without it",
                r"oxen ready: 1/1 CPUs online",
            ],
            forbid: &["PANIC", "EXCEPTION"],
            ..base(
                "corrupt-archive",
                "a damaged boot archive gets a clear error, not a crash",
                Platform::Qemu,
                Firmware::Uefi,
                1,
            )
        },
        Scenario {
            memory_mib: 512,
            expect: &[
                r"acpi: no usable MADT \(the bootloader found no RSDP\)",
                r"smp: no MADT; CPUID topology reports 2 logical CPU\(s\) in this package: starting APs by broadcast",
                r"apic: local APIC in x2APIC mode",
                r"vmx: rev 0x[0-9a-f]+, EPT yes \(2M yes, 1G yes, A/D yes\), VPID yes, unrestricted guest yes, PAUSE-loop exiting (yes|no), preemption timer yes",
                r"vmx: VMXON on cpu0; this CPU can run guests",
                r"vmx: VMXON on cpu1",
                r"smp: cpu1 online \(APIC id \d+, CR0 0x8[0-9a-f]{7}\)",
                r"smp: 2 of 2 CPUs online",
                r"timer: periodic tick running on all 2 online CPUs",
                r"oxen ready: 2/2 CPUs online, .* VMX on 2/2",
                r"power: powering off",
            ],
            timeout: Duration::from_secs(300),
            ..base(
                "bochs-uefi-smp2",
                "Bochs with VT-x, UEFI (no ACPI: CPUs by CPUID), 2 CPUs: VMXON on both",
                Platform::Bochs,
                Firmware::Uefi,
                2,
            )
        },
        Scenario {
            memory_mib: 512,
            expect: &[
                r"acpi: MADT lists 2 CPU\(s\) \(APIC ids \[0, 1\]\), 1 I/O APIC\(s\)",
                r"apic: I/O APIC id \d+ at 0xfec00000, GSIs 0\.\.23, all pins masked",
                r"apic: local APIC in x2APIC mode",
                r"vmx: VMXON on cpu0; this CPU can run guests",
                r"vmx: VMXON on cpu1",
                r"smp: cpu1 online \(APIC id \d+, CR0 0x8[0-9a-f]{7}\)",
                r"oxen ready: 2/2 CPUs online, .* VMX on 2/2",
                r"power: powering off",
            ],
            timeout: Duration::from_secs(300),
            ..base(
                "bochs-bios-smp2",
                "Bochs with VT-x, legacy BIOS (MADT), 2 CPUs: VMXON on both",
                Platform::Bochs,
                Firmware::Bios,
                2,
            )
        },
        Scenario {
            expect: &[
                r"domain 1 \(hello\): 16 MiB, kernel hello\.elf, ramdisk hello\.cfg, 1 vCPU\(s\), weight 256, cap 0, cpus 0x1",
                r##"\[d1 hello\] hello: module 0 at 0x[0-9a-f]+, \d+ bytes: "# The hello test guest\.""##,
                r"\[d1 hello\] hello: PASS",
                r"domain 1 \(hello\) shut down \(poweroff\)",
                r"domain 1 \(hello\): memory returned \(16 MiB\)",
                r"all domains have finished:",
                r"  domain 1 \(hello\): shutdown: poweroff; \d+ exits, \d+ hypercalls",
                r"power: powering off",
            ],
            forbid: CLEAN,
            ..bochs_guests(
                "guest-hello",
                "one PVH guest runs, checks the Xen ABI and powers off",
                1,
                "domains = [\"hello.cfg\"]\n",
            )
        },
        Scenario {
            expect: &[
                r"sched: cpu0 runs guests",
                r"sched: cpu1 runs guests",
                r"\[d\d exits e9\] exits: hello through rep outsb",
                r"\[d\d exits\] exits: string I/O ok",
                r"\[d\d exits\] exits: PASS",
                r"\[d\d hello\] hello: PASS",
                r"domain \d \(exits\): shutdown: poweroff",
                r"domain \d \(hello\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: CLEAN,
            ..bochs_guests(
                "guest-hello-exits-smp2",
                "hello and exits side by side on 2 pCPUs",
                2,
                "domains = [\"hello.cfg\", \"exits.cfg\"]\n",
            )
        },
        Scenario {
            expect: &[
                r"\[d\d isolation-outside\] isolation: 0x1000000 reads all ones and drops writes",
                r"domain \d \(isolation-outside\) crashed: EPT violation: instruction fetch at guest-physical 0x1000000 \(outside its memory",
                r"\[d\d isolation-hv\] isolation: 0x100000000 reads all ones and drops writes",
                r"\[d\d isolation-hv\] isolation: 0xfee00000 reads all ones and drops writes",
                r"domain \d \(isolation-hv\) crashed: EPT violation: instruction fetch at guest-physical 0x100000000 \(outside its memory",
                r"domain \d \(triple\) crashed: triple fault",
                r"domain \d \(hello\): shutdown: poweroff",
                r"domain \d \(triple\): crashed: triple fault",
                r"power: powering off",
            ],
            ..bochs_guests(
                "guest-crashes",
                "memory nobody backs reads all ones and drops writes; executing there and a triple fault crash the domain with the reason; hello completes",
                2,
                "domains = [\"isolation-outside.cfg\", \"isolation-hv.cfg\", \"triple.cfg\", \"hello.cfg\"]\n",
            )
        },
        Scenario {
            expect: &[
                r"\[d1 hcall-fuzz\] hcall-fuzz: PASS",
                r"domain 1 \(hcall-fuzz\): console output indices are impossible \(cons \d+, prod \d+\); its PV console is ignored from now on",
                r"\[d1 hcall-fuzz\] hcall-fuzz: wrote an impossible console producer index",
                r"domain 1 \(hcall-fuzz\): shutdown: poweroff",
                r"power: powering off",
            ],
            ..bochs_guests(
                "guest-hcall-fuzz",
                "every hypercall number with hostile arguments; the hypervisor stays up",
                1,
                "domains = [\"hcall-fuzz.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[(
                "fuzz-ctl.cfg",
                "name = \"fuzz-ctl\"\nkernel = \"hcall-fuzz.elf\"\nmemory = 16\nprivileged = 1\n\
                 cmdline = \"rounds=2 control=6000 me=0\"\n",
            )],
            expect: &[
                r"\[d0 fuzz-ctl\] hcall-fuzz: control: 6000 calls of domctl, sysctl, memory_op, hvm_op and event_channel_op, \d+ succeeded",
                r"\[d0 fuzz-ctl\] hcall-fuzz: PASS",
                r"domain 0 \(fuzz-ctl\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "FAIL"],
            ..bochs_guests(
                "guest-hcall-fuzz-control",
                "a privileged domain fuzzes domctl, sysctl, the builder's memory_op calls and a toolstack's HVM-parameter, port and physmap calls on other domains with hostile structures (creating, pausing and destroying domains at random) on 2 pCPUs; the hypervisor stays up and destroys what is left",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"fuzz-ctl.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[
                (
                    "fuzz-race.cfg",
                    "name = \"fuzz-race\"\nkernel = \"hcall-fuzz.elf\"\nmemory = 16\nvcpus = 3\ncmdline = \"rounds=10 race=1\"\n",
                ),
                (
                    "v-faults.cfg",
                    "name = \"v-faults\"\nkernel = \"faults.elf\"\nmemory = 8\ncmdline = \"iterations=30000 seed=7\"\n",
                ),
            ],
            expect: &[
                r"\[d1 fuzz-race\] hcall-fuzz: 2 more vCPU\(s\) race the implemented hypercalls",
                r"\[d1 fuzz-race\] hcall-fuzz: 2 racing vCPU\(s\) made \d+ calls so far; powering off under them",
                r"\[d1 fuzz-race\] hcall-fuzz: PASS",
                r"domain 1 \(fuzz-race\): memory returned",
                r"\[d2 v-faults\] faults: PASS",
                r"  domain 1 \(fuzz-race\): shutdown: poweroff",
                r"  domain 2 \(v-faults\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "faults: FAIL"],
            ..bochs_guests(
                "guest-hcall-fuzz-race",
                "three vCPUs fuzz every hypercall family while vCPU 0 powers the domain off under them (2 pCPUs); a victim beside them checks its registers",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"fuzz-race.cfg\", \"v-faults.cfg\"]\n",
            )
        },
        Scenario {
            expect: &[
                r"\[d1 spin\] spin: spinning forever",
                r"\[d2 hello\] hello: PASS",
                r"domain 2 \(hello\) shut down \(poweroff\)",
            ],
            forbid: CLEAN,
            ..bochs_guests(
                "guest-spin",
                "a guest spinning forever is preempted; hello on the same pCPU finishes",
                1,
                "domains = [\"spin.cfg\", \"hello.cfg\"]\n",
            )
        },
        Scenario {
            domains: burners!(2),
            expect: RUN_LIMIT_END,
            forbid: CLEAN,
            check: Some(check_weights),
            ..bochs_guests(
                "sched-weights-smp2",
                "burners weighted 256/512/1024 (2 vCPUs each) share 2 pCPUs 1:2:4",
                2,
                WEIGHTS_CFG,
            )
        },
        Scenario {
            domains: burners!(1),
            expect: RUN_LIMIT_END,
            forbid: CLEAN,
            check: Some(check_weights),
            ..bochs_guests(
                "sched-weights-up",
                "burners weighted 256/512/1024 share 1 pCPU 1:2:4",
                1,
                WEIGHTS_CFG,
            )
        },
        Scenario {
            domains: burners!(3),
            expect: RUN_LIMIT_END,
            forbid: CLEAN,
            check: Some(check_weights),
            ..bochs_guests(
                "sched-weights-smp4",
                "burners weighted 256/512/1024 (3 vCPUs each) share 4 pCPUs 1:2:4",
                4,
                WEIGHTS_CFG,
            )
        },
        Scenario {
            domains: &[
                (
                    "capped.cfg",
                    "name = \"capped\"\nkernel = \"burn.elf\"\nmemory = 8\ncap = 25\n",
                ),
                (
                    "hog1.cfg",
                    "name = \"hog1\"\nkernel = \"burn.elf\"\nmemory = 8\nvcpus = 2\n",
                ),
                (
                    "hog2.cfg",
                    "name = \"hog2\"\nkernel = \"burn.elf\"\nmemory = 8\nvcpus = 2\n",
                ),
                (
                    "sleeper.cfg",
                    "name = \"sleeper\"\nkernel = \"sleeper.elf\"\nmemory = 8\ncmdline = \"period_us=3000\"\n",
                ),
            ],
            expect: &[
                r"\[d\d sleeper\] sleeper: 300 wakes",
                r"sched: run time limit of \d+ ms reached",
                r"power: powering off",
            ],
            forbid: CLEAN,
            check: Some(check_cap_and_latency),
            ..bochs_guests(
                "sched-cap-latency",
                "a domain capped at 25 stays at 25 among hogs; a sleeper wakes promptly among them, its vector registers intact",
                2,
                "on_ready = \"poweroff\"\nrun_for_ms = 2500\nsched_sample_ms = 100\n\
                 domains = [\"capped.cfg\", \"hog1.cfg\", \"hog2.cfg\", \"sleeper.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[(
                "smp4.cfg",
                "name = \"smp\"\nkernel = \"smp.elf\"\nmemory = 8\nvcpus = 4\n",
            )],
            expect: &[
                r"\[d1 smp\] smp: 4 vCPUs started",
                r"\[d1 smp\] smp: all 4 vCPUs ran",
                r"\[d1 smp\] smp: PASS \(4 vCPUs\)",
                r"\[d2 hello\] hello: PASS",
                r"vcpu\d: run \d+ ms, wait \d+ ms, runs \d+, migrations [1-9]",
                r"  domain 1 \(smp\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: CLEAN,
            ..bochs_guests(
                "sched-vcpus",
                "a 4-vCPU guest on 2 pCPUs brings up, downs and ups its vCPUs; vCPUs migrate",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"smp4.cfg\", \"hello.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[(
                "handoff.cfg",
                "name = \"handoff\"\nkernel = \"smp.elf\"\nmemory = 8\nvcpus = 2\ncmdline = \"handoff=200\"\n",
            )],
            expect: &[
                r"\[d1 handoff\] smp: handoff: 200 round trips between spinning vCPUs in \d+ ms",
                r"\[d1 handoff\] smp: PASS handoff",
                r"  domain 1 \(handoff\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL"],
            ..bochs_guests(
                "sched-pause-loop",
                "two vCPUs of one domain on 1 pCPU hand a token back and forth, each waiting in a PAUSE loop: PAUSE-loop exiting makes the spinner yield",
                1,
                "on_ready = \"poweroff\"\ndomains = [\"handoff.cfg\"]\n",
            )
        },
        Scenario {
            domains: APIC_DOMAINS,
            expect: APIC_OK,
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL"],
            ..bochs_guests(
                "guest-apic-up",
                "the local APIC in x2APIC mode: registers, self-IPIs with EOI and priorities, the timer, an IPI to a sibling vCPU, INIT and SIPI (1 pCPU)",
                1,
                APIC_CFG,
            )
        },
        Scenario {
            domains: APIC_DOMAINS,
            expect: APIC_OK,
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL"],
            ..bochs_guests(
                "guest-apic-smp2",
                "the same on 2 pCPUs (IPIs to a vCPU running or halted on the other pCPU)",
                2,
                APIC_CFG,
            )
        },
        Scenario {
            domains: &[
                (
                    "x-conin.cfg",
                    "name = \"x-conin\"\nkernel = \"hostile.elf\"\nmemory = 8\ncmdline = \"mode=conin hold_ms=5000\"\n",
                ),
                (
                    "echo-a.cfg",
                    "name = \"a\"\nkernel = \"hello.elf\"\nmemory = 8\ncmdline = \"echo=1\"\n",
                ),
                (
                    "echo-b.cfg",
                    "name = \"b\"\nkernel = \"hello.elf\"\nmemory = 8\ncmdline = \"echo=1\"\n",
                ),
            ],
            input: &[
                (r"\[d1 x-conin\] hostile: conin: indices corrupted", "x\n"),
                (
                    r"domain 1 \(x-conin\): console input indices are impossible",
                    "\x01\x01\x01first line\n",
                ),
                // a ends after its line: input moves on to b by itself.
                (r"\*\*\* Serial input to d3 \(b\)", "second\n"),
            ],
            expect: &[
                r"\*\*\* Serial input to d1 \(x-conin\)",
                r"domain 1 \(x-conin\): console input indices are impossible",
                r"\*\*\* Serial input to d2 \(a\)",
                r"\[d2 a\] hello: got 'first line'",
                r"\*\*\* Serial input to d3 \(b\)",
                r"\[d3 b\] hello: got 'second'",
                r"  domain 1 \(x-conin\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: HOSTILE_FORBID,
            ..bochs_guests(
                "console-input",
                "typing on the serial console: input goes to the first domain, Ctrl-A three times moves it to the next, and on when that one ends; a domain with corrupted input indices is ignored with one line",
                1,
                "on_ready = \"poweroff\"\ndomains = [\"x-conin.cfg\", \"echo-a.cfg\", \"echo-b.cfg\"]\n",
            )
        },
        Scenario {
            linux: true,
            memory_mib: 768,
            expect: LINUX_OK,
            input: LINUX_TYPED,
            forbid: LINUX_FORBID,
            timeout: Duration::from_secs(900),
            ..bochs_guests(
                "linux-up",
                "Debian's Linux kernel, unmodified, as a PVH guest on 1 vCPU: commands typed into its shell on hvc0 (uname, cpuinfo, clocksource, interrupts, dmesg, a computation), then poweroff -f",
                1,
                "on_ready = \"poweroff\"\ndomains = [\"linux.cfg\"]\n",
            )
        },
        Scenario {
            linux: true,
            memory_mib: 1024,
            expect: LINUX_XL_OK,
            input: LINUX_XL_TYPED,
            check: Some(check_linux_xl),
            forbid: LINUX_FORBID,
            timeout: Duration::from_secs(900),
            ..bochs_guests(
                "linux-xl",
                "Debian's Linux built by dom0 (xl create -c): its shell through dom0's console (detached with Ctrl-], attached again with xl console), its xenbus through dom0's store, xl shutdown -w through control/shutdown; every MiB comes back",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"dom0-linux.cfg\"]\n",
            )
        },
        Scenario {
            linux: true,
            memory_mib: 768,
            expect: LINUX_SMP_OK,
            input: LINUX_SMP_TYPED,
            forbid: LINUX_FORBID,
            timeout: Duration::from_secs(900),
            ..bochs_guests(
                "linux-smp2",
                "the same kernel with 2 vCPUs on 2 pCPUs: its second CPU started by INIT-SIPI-SIPI, a typed job pinned to each CPU, then poweroff -f",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"linux-smp.cfg\"]\n",
            )
        },
        Scenario {
            domains: FAULTS_2X3,
            expect: FAULTS_OK,
            forbid: FAULTS_FORBID,
            ..bochs_guests(
                "smp-faults-up",
                "three 2-vCPU domains take 20,000 checked exceptions per vCPU on 1 pCPU (the baseline)",
                1,
                FAULTS_CFG,
            )
        },
        Scenario {
            domains: FAULTS_2X3,
            expect: FAULTS_OK,
            forbid: FAULTS_FORBID,
            ..bochs_guests(
                "smp-faults-smp2",
                "the same on 2 pCPUs: preempted and migrated, every register, CR2 and the stack stay the vCPU's own",
                2,
                FAULTS_CFG,
            )
        },
        Scenario {
            domains: FAULTS_3X3,
            expect: FAULTS_OK,
            forbid: FAULTS_FORBID,
            ..bochs_guests(
                "smp-faults-smp4",
                "three 3-vCPU domains on 4 pCPUs, with hello beside them",
                4,
                FAULTS_CFG_HELLO,
            )
        },
        Scenario {
            domains: HOSTILE_DOMAINS,
            expect: HOSTILE_OK,
            forbid: HOSTILE_FORBID,
            ..bochs_guests(
                "hostile-up",
                "attacks of unprivileged guests beside victims that check their own state, 1 pCPU: teardown races, remote shutdown, physical-map exhaustion, XCR0/CR8/debug-register/MSR instructions",
                1,
                HOSTILE_CFG,
            )
        },
        Scenario {
            domains: HOSTILE_DOMAINS,
            expect: HOSTILE_OK,
            forbid: HOSTILE_FORBID,
            ..bochs_guests(
                "hostile-smp2",
                "the same attacks on 2 pCPUs, where the attacker's other vCPUs run while it is torn down",
                2,
                HOSTILE_CFG,
            )
        },
        Scenario {
            domains: &[
                (
                    "x-console.cfg",
                    "name = \"x-console\"\nkernel = \"hostile.elf\"\nmemory = 8\ncmdline = \"mode=console\"\n",
                ),
                (
                    "v-burn.cfg",
                    "name = \"v-burn\"\nkernel = \"burn.elf\"\nmemory = 8\n",
                ),
            ],
            expect: &[
                r"\[d1 x-console\] hostile: console: writing 4096 bytes per console_io, forever",
                r"\[d1 x-console\] \(\d+ bytes of console output dropped\)",
                r"\[d2 v-burn\] burn: at \d+ ms",
                r"sched: run time limit of \d+ ms reached",
                r"power: powering off",
            ],
            forbid: CLEAN,
            check: Some(check_console_share),
            ..bochs_guests(
                "hostile-console",
                "a guest writing 4 KiB per console_io without end gets half of a shared pCPU, no more; its output is rate-limited",
                1,
                "on_ready = \"poweroff\"\nrun_for_ms = 2500\nsched_sample_ms = 100\n\
                 domains = [\"x-console.cfg\", \"v-burn.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[
                (
                    "ctl.cfg",
                    "name = \"ctl\"\nkernel = \"schedctl.elf\"\nmemory = 8\nprivileged = 1\ncmdline = \"target=1 weight=768 after_ms=1200\"\n",
                ),
                ("a.cfg", "name = \"a\"\nkernel = \"burn.elf\"\nmemory = 8\n"),
                ("b.cfg", "name = \"b\"\nkernel = \"burn.elf\"\nmemory = 8\n"),
            ],
            expect: &[
                r"\[d0 ctl\] schedctl: domain 1: \(weight, cap\) = Ok\(\(256, 0\)\)",
                r"sched: domain 1 \(a\): weight 768, cap 0 \(was 256, 0\)",
                r"\[d0 ctl\] schedctl: PASS",
                r"sched: run time limit of \d+ ms reached",
                r"power: powering off",
            ],
            forbid: CLEAN,
            check: Some(check_control),
            ..bochs_guests(
                "sched-control",
                "a privileged domain reweights a burner at run time (domctl): 50/50 becomes 75/25",
                1,
                "on_ready = \"poweroff\"\nrun_for_ms = 3000\nsched_sample_ms = 100\n\
                 domains = [\"ctl.cfg\", \"a.cfg\", \"b.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[
                (
                    "ctl.cfg",
                    "name = \"ctl\"\nkernel = \"hello.elf\"\nmemory = 8\nprivileged = 1\ncmdline = \"conread=2\"\n",
                ),
                (
                    "guest.cfg",
                    "name = \"guest\"\nkernel = \"hello.elf\"\nmemory = 8\ncmdline = \"echo=1\"\n",
                ),
            ],
            input: &[
                (
                    r"\[d0 ctl\] hello: conread: VIRQ_CONSOLE on port \d+",
                    "first line\n",
                ),
                (r"console_io read 'first line'", "\x01\x01\x01"),
                (r"\*\*\* Serial input to d1 \(guest\)", "to the ring\n"),
                // guest ends after its line: input moves on to the hypervisor by itself.
                (r"\*\*\* Serial input to oxen", "hmq"),
                (r"debug-key q: domain 1 \(guest\)", "\x01\x01\x01"),
                // (Each step looks only at what came after the step before it.)
                (r"\*\*\* Serial input to d0 \(ctl\)", "second\n"),
            ],
            expect: &[
                r"\*\*\* Serial input to d0 \(ctl\)",
                r"\[d0 ctl\] hello: console_io read 'first line' \([1-9]\d* VIRQ_CONSOLE so far\)",
                r"\[d1 guest\] hello: got 'to the ring'",
                r"debug-key h: h this list; m memory; q domains",
                r"debug-key m: \d+ frames free of \d+; heap \d+ bytes in use",
                r"debug-key q: domain 0 \(ctl\): flags 0x[0-9a-f]+, 2048 pages of 2048, 1 vCPUs online, running",
                r"\[d0 ctl\] hello: console_io read 'second'",
                r"  domain 0 \(ctl\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL"],
            ..bochs_guests(
                "console-control",
                "serial input for a control domain as Xen's dom0 reads it (VIRQ_CONSOLE, console_io read); Ctrl-A three times moves it to another domain's PV console, then to the hypervisor itself, whose debug keys answer, then back",
                1,
                "on_ready = \"poweroff\"\ndomains = [\"ctl.cfg\", \"guest.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[
                (
                    "t-burn.cfg",
                    "name = \"burn\"\nkernel = \"burn.elf\"\nmemory = 8\nvcpus = 2\n",
                ),
                (
                    "t-hello.cfg",
                    "name = \"hello-t\"\nkernel = \"hello.elf\"\nmemory = 16\n",
                ),
                (
                    "t-hot.cfg",
                    "name = \"hot\"\nkernel = \"smp.elf\"\nmemory = 8\nvcpus = 1\nmaxvcpus = 3\ncmdline = \"hotplug=1\"\n",
                ),
                (
                    "t-crash.cfg",
                    "name = \"crashy\"\nkernel = \"hello.elf\"\nmemory = 8\ncmdline = \"crash=1\"\non_crash = \"restart\"\n",
                ),
            ],
            input: DOM0_TYPED,
            expect: DOM0_OK,
            check: Some(check_dom0_shell),
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL"],
            ..bochs_guests(
                "dom0-shell",
                "the control domain's xl shell on the serial console (2 pCPUs): list and list -l, pause (no progress for half a second) and unpause, vcpu-list, sched-credit of domains and of the pool, vCPU hot-plug with vcpu-set, destroy, create (paused, with an override; built by dom0, destroyed once it shuts down), a build failing half-way that gives all back, bad configurations, bad names, a domain without PV drivers, files, info, dmesg, then poweroff; every answer in Xen's format",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"dom0.cfg\", \"t-burn.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[
                (
                    "t-xs.cfg",
                    "name = \"xs-good\"\nkernel = \"xenstore.elf\"\nmemory = 8\n",
                ),
                (
                    "t-xs-bad.cfg",
                    "name = \"xs-bad\"\nkernel = \"xenstore.elf\"\nmemory = 8\ncmdline = \"hostile=1\"\n",
                ),
                (
                    "t-xs-quota.cfg",
                    "name = \"xs-quota\"\nkernel = \"xenstore.elf\"\nmemory = 8\ncmdline = \"hostile=3\"\n",
                ),
                (
                    "t-xs-big.cfg",
                    "name = \"xs-big\"\nkernel = \"xenstore.elf\"\nmemory = 8\ncmdline = \"hostile=2\"\n",
                ),
            ],
            input: XS_TYPED,
            expect: XS_OK,
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL"],
            ..bochs_guests(
                "xenstore-rings",
                "dom0 serves the XenStore over each created domain's ring (Xen's nodes, permissions, watches, transactions with a conflict, xl shutdown through control/shutdown); a domain that publishes impossible ring indexes is told (XENSTORE_ERROR_RINGIDX) and cut off while another is served",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"dom0.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[(
                "t-cyc.cfg",
                "name = \"cyc\"\nkernel = \"hello.elf\"\nmemory = 8\ncmdline = \"echo=1\"\n",
            )],
            input: cycle_steps(100),
            expect: &[
                r"\[d\d+ cyc1\] hello: echo: waiting",
                r"\[d\d+ cyc100\] hello: echo: waiting",
                r"xl: domain \d+ built in \d+ ticks",
                r"xl: domain \d+'s console first wrote \d+ ticks after xl create began",
                r"debug-key m: \d+ frames free",
                r"oxen dom0: destroying every other domain and powering off",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL", "is still dying"],
            check: Some(check_churn),
            timeout: Duration::from_secs(900),
            ..bochs_guests(
                "dom0-cycles",
                "100 xl create / xl destroy cycles of a guest that waits for input, each named anew, on 2 pCPUs: the hypervisor's free frames and heap are the same after the last as after the first",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"dom0.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[
                (
                    "t-echo.cfg",
                    "name = \"echo\"\nkernel = \"hello.elf\"\nmemory = 8\ncmdline = \"echo=2\"\n",
                ),
                (
                    "t-conin.cfg",
                    "name = \"x-conin\"\nkernel = \"hostile.elf\"\nmemory = 8\ncmdline = \"mode=conin hold_ms=600000\"\n",
                ),
                (
                    "t-conout.cfg",
                    "name = \"x-conout\"\nkernel = \"hostile.elf\"\nmemory = 8\ncmdline = \"mode=conout hold_ms=600000\"\n",
                ),
            ],
            input: CONS_TYPED,
            expect: CONS_OK,
            forbid: &[
                "PANIC",
                "EXCEPTION",
                "ERROR",
                "FAIL",
                // Input for these domains is dom0's to give, not the hypervisor's.
                r"Serial input to d[1-9]",
                // Nothing of an attached domain is mirrored.
                r"\[d\d+ echo2?\] hello: got",
            ],
            ..bochs_guests(
                "dom0-consoles",
                "dom0 serves the consoles of the domains it builds (one started from /etc/xen/auto): detached ones mirrored as [dN name] lines, xl console shows the history and takes typed input, Ctrl-] detaches, xl create -c, a domain ending while attached gives the prompt back; a domain corrupting its output or input indices is cut off with one line while the others go on",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"dom0.cfg\"]\nautostart = [\"t-echo.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[
                (
                    "builder.cfg",
                    "name = \"builder\"\nkernel = \"builder.elf\"\nmemory = 8\nprivileged = 1\n\
                     cmdline = \"me=0 cycles=1000 batch=3 many=1000\"\n",
                ),
                (
                    "denied.cfg",
                    "name = \"denied\"\nkernel = \"builder.elf\"\nmemory = 8\ncmdline = \"me=1 mode=denied\"\n",
                ),
            ],
            expect: &[
                r"\[d1 denied\] builder: denied: every control call is -EPERM",
                r"\[d1 denied\] builder: PASS",
                r"\[d0 builder\] builder: pause: the child stood still at \d+ while paused, then ran on",
                r"\[d0 builder\] builder: getdomaininfolist: \d+ domain\(s\): \[0",
                r"\[d0 builder\] builder: 1000 domains created, run and destroyed, 3 at a time, ids 2..=4",
                r"memory: heap grew to 2 regions",
                r"\[d0 builder\] builder: many: 1000 domains alive at once, then 0",
                r"\[d0 builder\] builder: PASS",
                r"  domain 0 \(builder\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL"],
            check: Some(check_churn),
            ..bochs_guests(
                "domctl-churn",
                "a privileged builder creates, populates through foreign maps, starts, pauses and destroys 1,000 domains, 3 alive at once, on 2 pCPUs: ids are reused, every frame and heap byte comes back; then 1,000 alive at once (the heap grows); an unprivileged one gets -EPERM for every control call",
                2,
                "on_ready = \"poweroff\"\ndomains = [\"builder.cfg\", \"denied.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[(
                "pvcheck.cfg",
                "name = \"pvcheck\"\nkernel = \"pvcheck.elf\"\nmemory = 8\n",
            )],
            expect: &[
                r"\[d1 pvcheck\] pvcheck: PASS \d+ checks",
                r"  domain 1 \(pvcheck\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "ERROR", "FAIL"],
            ..bochs_guests(
                "pv-calls",
                "every event-channel and grant-table call, alone: loopback channels, masks, IPIs, VIRQs, poll, grants to itself, copy, and Xen's errors",
                1,
                "on_ready = \"poweroff\"\ndomains = [\"pvcheck.cfg\"]\n",
            )
        },
        Scenario {
            domains: &[PING, PONG],
            expect: PINGPONG_OK,
            forbid: CLEAN,
            ..bochs_guests(
                "pv-pingpong-up",
                "ping grants a ring page to pong; 100,000 checksummed requests over it with event channels, 1 pCPU",
                1,
                PINGPONG_CFG,
            )
        },
        Scenario {
            domains: &[PING, PONG],
            expect: PINGPONG_OK,
            forbid: CLEAN,
            ..bochs_guests(
                "pv-pingpong-smp2",
                "the same on 2 pCPUs (upcalls injected into running vCPUs)",
                2,
                PINGPONG_CFG,
            )
        },
        Scenario {
            domains: &[
                PING,
                (
                    "t-pong.cfg",
                    "name = \"pong\"\nkernel = \"pong.elf\"\nmemory = 8\ncmdline = \"peer=1 gref=8 port=2 hostile=1\"\n",
                ),
            ],
            expect: &[
                r"\[d2 pong\] pong: hostile: wrote rsp_prod = 0x[0-9a-f]+",
                r"\[d2 pong\] pong: hostile: map of gref 5000 from dom 1 \(no such grant\): status -3",
                r"\[d2 pong\] pong: hostile: map of gref 8 from dom 2 \(not the granter\): status -1",
                r"\[d2 pong\] pong: hostile run done",
                r"\[d1 ping\] ping: peer is hostile: .*; stopping",
                r"\[d1 ping\] ping: survived a hostile peer",
                r"  domain 1 \(ping\): shutdown: poweroff",
                r"  domain 2 \(pong\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "ERROR", "crashed"],
            ..bochs_guests(
                "pv-hostile",
                "pong writes impossible ring indices and bad grant references: ping reports and ends cleanly, the hypervisor runs on",
                2,
                PINGPONG_CFG,
            )
        },
        Scenario {
            domains: &[
                (
                    "t-ping.cfg",
                    "name = \"ping\"\nkernel = \"ping.elf\"\nmemory = 8\ncmdline = \"peer=2 revoke_after=5000\"\n",
                ),
                PONG,
            ],
            expect: &[
                r"\[d1 ping\] ping: revoked the grant after 5000 requests",
                r"\[d2 pong\] pong: map after revoke refused: status -1",
                r"\[d1 ping\] ping: PASS revoke",
                r"  domain 1 \(ping\): shutdown: poweroff",
                r"  domain 2 \(pong\): shutdown: poweroff",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION", "ERROR", "EPT violation"],
            ..bochs_guests(
                "pv-revoke",
                "pong unmaps while traffic flows, ping revokes the grant; a new map is refused and no page is touched after revocation",
                2,
                PINGPONG_CFG,
            )
        },
        Scenario {
            domains: &[
                (
                    "storm.cfg",
                    "name = \"storm\"\nkernel = \"storm.elf\"\nmemory = 8\ncmdline = \"peer=2 port=2\"\n",
                ),
                (
                    "sink.cfg",
                    "name = \"sink\"\nkernel = \"pong.elf\"\nmemory = 8\ncmdline = \"sink=1 peer=1 seconds=0\"\n",
                ),
                (
                    "t-ping.cfg",
                    "name = \"ping\"\nkernel = \"ping.elf\"\nmemory = 8\ncmdline = \"peer=4 count=20000\"\n",
                ),
                (
                    "t-pong.cfg",
                    "name = \"pong\"\nkernel = \"pong.elf\"\nmemory = 8\ncmdline = \"peer=3 gref=8 port=2\"\n",
                ),
            ],
            expect: &[
                r"\[d1 storm\] storm: 100000 sends",
                r"\[d2 sink\] pong: sink \d+ s: \d+ upcalls, \d+ events",
                r"\[d3 ping\] ping: PASS 20000 requests, 0 errors, \d+ upcalls",
                r"\[d4 pong\] pong: PASS served \d+",
                r"sched: run time limit of \d+ ms reached",
                r"power: powering off",
            ],
            forbid: CLEAN,
            ..bochs_guests(
                "pv-storm",
                "a domain sending events in a tight loop does not starve a ping/pong pair beside it (2 pCPUs)",
                2,
                "on_ready = \"poweroff\"\nrun_for_ms = 1500\n\
                 domains = [\"storm.cfg\", \"sink.cfg\", \"t-ping.cfg\", \"t-pong.cfg\"]\n",
            )
        },
        Scenario {
            guests: true,
            archive: ArchiveKind::Config("on_ready = \"poweroff\"\ndomains = [\"hello.cfg\"]\n"),
            expect: &[
                r"domains: guests cannot run on this machine \(VT-x is not available\); 1 configured domain\(s\) not started",
                r"power: powering off",
            ],
            forbid: &["PANIC", "EXCEPTION"],
            ..base(
                "qemu-no-vtx-guests",
                "without VT-x the same image reports that guests cannot run",
                Platform::Qemu,
                Firmware::Uefi,
                2,
            )
        },
    ]
}

/// The outcome of one scenario.
pub struct Outcome {
    pub passed: bool,
    pub reason: String,
    pub serial: String,
    pub elapsed: Duration,
}

/// Images shared between scenarios: one hypervisor build per feature set.
#[derive(Default)]
pub struct Builds {
    elfs: Mutex<HashMap<String, PathBuf>>,
    guests: Mutex<Option<build::Files>>,
}

impl Builds {
    fn elf(&self, features: &[&str]) -> Result<PathBuf> {
        let key = features.join(",");
        let mut elfs = self.elfs.lock().expect("not poisoned");
        if let Some(p) = elfs.get(&key) {
            return Ok(p.clone());
        }
        let path = build::hypervisor(features)?;
        elfs.insert(key, path.clone());
        Ok(path)
    }

    fn guests(&self) -> Result<build::Files> {
        let mut guests = self.guests.lock().expect("not poisoned");
        if guests.is_none() {
            *guests = Some(build::guests()?);
        }
        Ok(guests.clone().expect("just built"))
    }
}

fn prepare(s: &Scenario, builds: &Builds) -> Result<Machine> {
    let work = out_dir().join("scenarios").join(s.name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let kernel = builds.elf(s.features)?;
    let ramdisk = work.join("boot.oxar");
    let mut files = build::archive_files();
    if s.guests {
        files.extend(builds.guests()?);
    }
    if s.linux {
        files.extend(crate::linux::files(crate::linux::INIT)?);
    }
    for (name, text) in s.domains {
        files.push((name.to_string(), text.as_bytes().to_vec()));
    }
    match s.archive {
        ArchiveKind::Config(cfg) => build::write_archive(&ramdisk, cfg, &files)?,
        ArchiveKind::Corrupt => {
            build::write_archive(&ramdisk, POWEROFF, &build::archive_files())?;
            let mut bytes = std::fs::read(&ramdisk).map_err(|e| e.to_string())?;
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
            std::fs::write(&ramdisk, bytes).map_err(|e| e.to_string())?;
        }
    }
    let image = work.join("disk.img.src");
    build::disk_image(&kernel, &ramdisk, s.firmware, &image)?;
    Ok(Machine {
        platform: s.platform,
        firmware: s.firmware,
        cpus: s.cpus,
        memory_mib: s.memory_mib,
        image,
        serial: Some(work.join("serial.txt")),
        work,
        qemu_cpu: s.qemu_cpu,
        serial_socket: None,
    })
}

/// Prepares and boots the scenario's machine and watches its serial output; the
/// elapsed time counts from the emulator's start.
pub fn run_one(s: &Scenario, builds: &Builds) -> Outcome {
    let fail = |reason: String, serial: String| Outcome {
        passed: false,
        reason,
        serial,
        elapsed: Duration::ZERO,
    };
    let machine = match prepare(s, builds) {
        Ok(m) => m,
        Err(e) => return fail(format!("could not prepare: {e}"), String::new()),
    };
    let serial_path = machine.serial.clone().expect("scenarios log to a file");
    let mut machine = machine;
    let listener = if s.input.is_empty() {
        None
    } else {
        match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| {
            let port = l.local_addr()?.port();
            Ok((l, port))
        }) {
            Ok((l, port)) => {
                machine.serial_socket = Some(port);
                Some(l)
            }
            Err(e) => return fail(format!("serial socket: {e}"), String::new()),
        }
    };
    let mut cmd = match machine.command() {
        Ok(c) => c,
        Err(e) => return fail(e, String::new()),
    };
    let start = Instant::now();
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return fail(
                format!("cannot start {}: {e}", s.platform.name()),
                String::new(),
            );
        }
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let typist = listener.map(|l| {
        let (path, done, input) = (serial_path.clone(), done.clone(), s.input);
        std::thread::spawn(move || type_into(l, &path, input, &done))
    });
    let mut outcome = watch(s, &mut child, &serial_path, start);
    let _ = child.kill();
    let _ = child.wait();
    done.store(true, Ordering::Release);
    if let Some(Err(e)) = typist.map(|t| t.join().unwrap_or_else(|_| Err("panicked".into())))
        && outcome.passed
    {
        outcome.passed = false;
        outcome.reason = format!("serial console: {e}");
    }
    outcome
}

/// The far end of a Bochs serial port in socket mode: accepts its connection, appends
/// what it sends to `path` (where [`watch`] reads it) and types each step's text once
/// the output so far matches the step's pattern. Ends when the emulator disconnects or
/// `done` is set; an error if a step never came.
fn type_into(
    listener: std::net::TcpListener,
    path: &std::path::Path,
    input: &[(&str, &str)],
    done: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    use std::io::{Read, Write};
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if done.load(Ordering::Acquire) {
                    return Err("the emulator never connected its serial port".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut seen = String::new();
    let mut steps = input
        .iter()
        .map(|(p, t)| (Regex::new(p).expect("valid pattern"), *t));
    let mut next = steps.next();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                file.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if done.load(Ordering::Acquire) {
                    break;
                }
            }
            Err(_) => break,
        }
        while let Some((pattern, text)) = &next {
            let Some(m) = pattern.find(&seen) else { break };
            // Later steps look only at what came after this match.
            seen.drain(..m.end());
            stream
                .write_all(text.as_bytes())
                .map_err(|e| e.to_string())?;
            next = steps.next();
        }
    }
    match next {
        Some((pattern, _)) => Err(format!("never saw {pattern} to type after it")),
        None => Ok(()),
    }
}

/// What the serial log says so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every expected pattern matched and no forbidden one.
    Complete,
    /// A forbidden pattern matched this line.
    Forbidden(String),
    /// These expected patterns have not matched yet.
    Waiting(Vec<String>),
}

/// Judges a serial log against a scenario's patterns.
pub fn judge(expect: &[Regex], forbid: &[Regex], serial: &str) -> Verdict {
    if let Some(line) = serial
        .lines()
        .find(|l| forbid.iter().any(|r| r.is_match(l)))
    {
        return Verdict::Forbidden(line.to_string());
    }
    let missing: Vec<String> = expect
        .iter()
        .filter(|r| !r.is_match(serial))
        .map(|r| r.as_str().to_string())
        .collect();
    if missing.is_empty() {
        Verdict::Complete
    } else {
        Verdict::Waiting(missing)
    }
}

fn compile(patterns: &[&str]) -> Vec<Regex> {
    patterns
        .iter()
        .map(|p| Regex::new(p).expect("valid pattern"))
        .collect()
}

fn watch(s: &Scenario, child: &mut Child, serial_path: &PathBuf, start: Instant) -> Outcome {
    let (expect, forbid) = (compile(s.expect), compile(s.forbid));
    // Once everything expected has appeared, keep watching a little for late trouble.
    let grace = Duration::from_millis(1500);
    let mut complete_at: Option<Instant> = None;
    loop {
        let exited = child.try_wait().ok().flatten();
        let serial =
            String::from_utf8_lossy(&std::fs::read(serial_path).unwrap_or_default()).into_owned();
        let outcome = |passed, reason: String| Outcome {
            passed,
            reason,
            serial: serial.clone(),
            elapsed: start.elapsed(),
        };
        match judge(&expect, &forbid, &serial) {
            Verdict::Forbidden(line) => return outcome(false, format!("forbidden line: {line}")),
            Verdict::Complete => {
                let at = *complete_at.get_or_insert_with(Instant::now);
                if exited.is_some() || at.elapsed() >= grace {
                    return match s.check.map(|c| c(&serial)) {
                        None => outcome(true, String::new()),
                        Some(Ok(summary)) => outcome(true, summary),
                        Some(Err(why)) => outcome(false, why),
                    };
                }
            }
            Verdict::Waiting(missing) => {
                if let Some(status) = exited {
                    let why = format!(
                        "{} exited ({status}) before printing: {}",
                        s.platform.name(),
                        missing.join(" | ")
                    );
                    return outcome(false, why);
                }
                if start.elapsed() > s.timeout {
                    let why = format!(
                        "timed out after {:?} waiting for: {}",
                        s.timeout,
                        missing.join(" | ")
                    );
                    return outcome(false, why);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cargo fmt --check` on every crate (the fuzz package, its own workspace, apart), and
/// `cargo clippy` with warnings as errors: the host crates (the workspace's default
/// members) with their tests, then the hypervisor and the guests (bare metal; checked
/// apart so that the host's features of shared dependencies do not leak into them).
fn lints() -> Result<()> {
    let cargo = |args: &[&str]| -> Result<()> {
        println!("== lints: cargo {}", args.join(" "));
        let status = Command::new(env!("CARGO"))
            .current_dir(root())
            .args(args)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo {} failed", args[0]))
        }
    };
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "fmt",
        "--check",
        "--manifest-path",
        "dom0-tools/xenstore/fuzz/Cargo.toml",
    ])?;
    cargo(&[
        "clippy",
        "--release",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    let mut bare = vec!["clippy", "--release", "-p", "oxen", "-p", "oxen-guest-rt"];
    for (krate, _) in crate::build::GUESTS {
        bare.extend(["-p", krate]);
    }
    bare.extend(["--", "-D", "warnings"]);
    cargo(&bare)
}

/// The lints, `cargo test` over the workspace, then a short run of the XenStore fuzz
/// target (`cargo xtask fuzz`).
fn host_tests() -> Result<()> {
    lints()?;
    println!("== host tests: cargo test --workspace");
    let status = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["test", "--workspace"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("host tests failed".into());
    }
    crate::fuzz::run(crate::fuzz::TEST_SECONDS)
}

pub fn cmd_test(args: &[String]) -> Result<()> {
    let mut args = Args::new(args);
    let host_only = args.flag("--host-only");
    let boot_only = args.flag("--boot-only");
    let list = args.flag("--list");
    let only = args.values("--scenario")?;
    args.finish()?;
    let scenarios: Vec<Scenario> = all()
        .into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name))
        .collect();
    if list {
        for s in &scenarios {
            println!("{:<24} {}", s.name, s.what);
        }
        return Ok(());
    }
    if let Some(unknown) = only
        .iter()
        .find(|o| !scenarios.iter().any(|s| s.name == o.as_str()))
    {
        return Err(format!("no scenario named '{unknown}' (see --list)"));
    }
    // The host tests count as one group in the final tally.
    let host = (!boot_only && only.is_empty()).then(host_tests);
    match &host {
        Some(Ok(())) => println!(
            "PASS host-tests            cargo fmt --check, cargo clippy -D warnings, cargo test --workspace, {} s of cargo xtask fuzz",
            crate::fuzz::TEST_SECONDS
        ),
        Some(Err(e)) => println!("FAIL host-tests            {e} (see above)"),
        None => {}
    }
    let host_failed = matches!(host, Some(Err(_)));
    if host_only {
        return if host_failed {
            Err("host tests failed".into())
        } else {
            Ok(())
        };
    }

    println!("== boot scenarios ({})", scenarios.len());
    let builds = Builds::default();
    // Build every image flavour up front, once, so parallel scenarios don't race cargo.
    for s in &scenarios {
        builds.elf(s.features)?;
        if s.guests {
            builds.guests()?;
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 2);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(s) = scenarios.get(i) else { break };
                    let o = run_one(s, &builds);
                    report(s, &o);
                    results.lock().expect("not poisoned").push((i, o));
                }
            });
        }
    });
    let results = results.into_inner().expect("not poisoned");
    let host_passed = matches!(host, Some(Ok(())));
    let passed = results.iter().filter(|(_, o)| o.passed).count() + usize::from(host_passed);
    let failed = results.len() + usize::from(host.is_some()) - passed;
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        Err(format!("{failed} test group(s) failed"))
    } else {
        Ok(())
    }
}

fn report(s: &Scenario, o: &Outcome) {
    let mut out = String::new();
    if o.passed {
        out.push_str(&format!(
            "PASS {:<24} {:>6.1} s  {}\n",
            s.name,
            o.elapsed.as_secs_f64(),
            s.what
        ));
        for line in o.reason.lines() {
            out.push_str(&format!("     {line}\n"));
        }
    } else {
        out.push_str(&format!(
            "FAIL {:<24} {:>6.1} s  {}\n     {}\n",
            s.name,
            o.elapsed.as_secs_f64(),
            s.what,
            o.reason
        ));
        out.push_str(&format!(
            "----- serial log of {} -----\n{}\n----- end of {} -----\n",
            s.name,
            o.serial.trim_end(),
            s.name
        ));
    }
    print!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_pattern_compiles_and_names_are_unique() {
        let all = all();
        for s in &all {
            compile(s.expect);
            compile(s.forbid);
            assert!(!s.expect.is_empty(), "{} expects nothing", s.name);
        }
        let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn scenario_domain_files_do_not_shadow_the_shipped_ones() {
        let shipped: Vec<String> = build::archive_files().into_iter().map(|f| f.0).collect();
        for s in all() {
            for (name, _) in s.domains {
                assert!(
                    !shipped.iter().any(|f| f == name),
                    "{}: {name} is also in guests/boot/domains",
                    s.name
                );
            }
        }
    }

    #[test]
    fn judge_waits_completes_and_forbids() {
        let expect = compile(&[r"ready: \d+/\d+ CPUs", "powering off"]);
        let forbid = compile(&["PANIC"]);
        let log = "[ 0.1] cpu0 INFO  oxen ready: 2/2 CPUs online\n";
        assert_eq!(
            judge(&expect, &forbid, log),
            Verdict::Waiting(vec!["powering off".into()])
        );
        let log = format!("{log}[ 0.2] cpu0 INFO  power: powering off\n");
        assert_eq!(judge(&expect, &forbid, &log), Verdict::Complete);
        let log = format!("{log}[ 0.3] cpu1 ERROR PANIC: boom\n");
        assert_eq!(
            judge(&expect, &forbid, &log),
            Verdict::Forbidden("[ 0.3] cpu1 ERROR PANIC: boom".into())
        );
    }

    #[test]
    fn a_partial_ready_line_does_not_pass() {
        let expect = compile(&[r"oxen ready: 4/4 CPUs online"]);
        assert!(matches!(
            judge(&expect, &[], "oxen ready: 3/4 CPUs online"),
            Verdict::Waiting(_)
        ));
    }
}
