//! Reading the scheduler's story out of a serial log: the domains and their parameters,
//! the hypervisor's run-time samples, the `burn` guests' own progress counters, and the
//! shares they add up to, against the shares the credit algorithm promises.

use std::collections::BTreeMap;

use regex::Regex;

/// A domain as the hypervisor announced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Domain {
    pub id: u32,
    pub name: String,
    pub vcpus: u32,
    pub weight: u32,
    pub cap: u32,
}

/// Everything the log says about scheduling.
#[derive(Clone, Debug, Default)]
pub struct SchedLog {
    pub cpus: u32,
    pub domains: Vec<Domain>,
    /// (ms since the domains started, cumulative run ms per domain id).
    pub samples: Vec<(f64, BTreeMap<u32, f64>)>,
    /// `burn` progress per domain id: (system time ms, loops, ms it saw itself run).
    pub progress: BTreeMap<u32, Vec<(f64, f64, f64)>>,
}

fn re(p: &str) -> Regex {
    Regex::new(p).expect("valid pattern")
}

impl SchedLog {
    pub fn parse(log: &str) -> Self {
        let cpus = re(r"sched: credit scheduler on (\d+) pCPU");
        let dom = re(
            r"domain (\d+) \(([^)]+)\): \d+ MiB, kernel \S+, (\d+) vCPU\(s\), weight (\d+), cap (\d+)",
        );
        let sample = re(r"sched: sample (\d+) ms:((?: d\d+ [\d.]+)*)");
        let pair = re(r"d(\d+) ([\d.]+)");
        let burn = re(r"\[d(\d+) [^\]]+\] burn: at (\d+) ms: (\d+) loops, ran (\d+) us");
        let mut out = SchedLog::default();
        for line in log.lines() {
            if let Some(c) = cpus.captures(line) {
                out.cpus = c[1].parse().unwrap_or(0);
            } else if let Some(c) = dom.captures(line) {
                out.domains.push(Domain {
                    id: c[1].parse().unwrap_or(0),
                    name: c[2].to_string(),
                    vcpus: c[3].parse().unwrap_or(1),
                    weight: c[4].parse().unwrap_or(0),
                    cap: c[5].parse().unwrap_or(0),
                });
            } else if let Some(c) = sample.captures(line) {
                let runs = pair
                    .captures_iter(&c[2])
                    .filter_map(|p| Some((p[1].parse().ok()?, p[2].parse().ok()?)))
                    .collect();
                out.samples.push((c[1].parse().unwrap_or(0.0), runs));
            } else if let Some(c) = burn.captures(line) {
                let id: u32 = c[1].parse().unwrap_or(0);
                let at: f64 = c[2].parse().unwrap_or(0.0);
                let loops: f64 = c[3].parse().unwrap_or(0.0);
                let ran: f64 = c[4].parse::<f64>().unwrap_or(0.0) / 1000.0;
                out.progress.entry(id).or_default().push((at, loops, ran));
            }
        }
        out
    }

    /// Share of one pCPU (percent) each domain got between the first sample at or after
    /// `from_ms` and the last sample.
    pub fn hv_shares(&self, from_ms: f64) -> Result<BTreeMap<u32, f64>, String> {
        let first = self
            .samples
            .iter()
            .find(|(t, _)| *t >= from_ms)
            .ok_or(format!("no scheduler sample after {from_ms} ms"))?;
        let last = self.samples.last().expect("at least the first");
        let dt = last.0 - first.0;
        if dt <= 0.0 {
            return Err("fewer than two scheduler samples in the window".into());
        }
        Ok(last
            .1
            .iter()
            .map(|(id, run)| {
                let before = first.1.get(id).copied().unwrap_or(0.0);
                (*id, (run - before) / dt * 100.0)
            })
            .collect())
    }

    /// Each `burn` domain's progress, skipping its first `skip` reports (start-up):
    /// (loops per ms, percent of one pCPU it saw itself run).
    pub fn guest_rates(&self, skip: usize) -> BTreeMap<u32, (f64, f64)> {
        self.progress
            .iter()
            .filter_map(|(id, pts)| {
                let pts = pts.get(skip..)?;
                let (a, b) = (pts.first()?, pts.last()?);
                let dt = b.0 - a.0;
                (dt > 0.0).then(|| (*id, ((b.1 - a.1) / dt, (b.2 - a.2) / dt * 100.0)))
            })
            .collect()
    }

    /// Per-interval shares (percent of one pCPU) per domain, for plots:
    /// domain id -> [(seconds, share)].
    pub fn share_series(&self) -> BTreeMap<u32, Vec<(f64, f64)>> {
        let mut out: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
        for w in self.samples.windows(2) {
            let (t0, a) = (&w[0].0, &w[0].1);
            let (t1, b) = (&w[1].0, &w[1].1);
            let dt = t1 - t0;
            if dt <= 0.0 {
                continue;
            }
            for (id, run) in b {
                let before = a.get(id).copied().unwrap_or(0.0);
                out.entry(*id)
                    .or_default()
                    .push((t1 / 1000.0, (run - before) / dt * 100.0));
            }
        }
        out
    }
}

/// What the credit algorithm promises CPU-bound domains: `capacity` percent (of one
/// pCPU) shared by weight, no domain above its limit (vCPUs × 100, or its cap), what a
/// limited domain cannot use going to the others. Returns percent of one pCPU.
pub fn fair_shares(capacity: f64, claims: &[(f64, f64)]) -> Vec<f64> {
    // (weight, limit)
    let mut out = vec![0.0; claims.len()];
    let mut open: Vec<usize> = (0..claims.len()).collect();
    let mut left = capacity;
    loop {
        let w: f64 = open.iter().map(|&i| claims[i].0).sum();
        if open.is_empty() || w <= 0.0 {
            return out;
        }
        let saturated: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| left * claims[i].0 / w >= claims[i].1)
            .collect();
        if saturated.is_empty() {
            for &i in &open {
                out[i] = left * claims[i].0 / w;
            }
            return out;
        }
        for &i in &saturated {
            out[i] = claims[i].1;
            left -= claims[i].1;
        }
        open.retain(|i| !saturated.contains(i));
    }
}

/// One domain's line in a share report.
#[derive(Clone, Debug)]
pub struct ShareRow {
    pub id: u32,
    pub name: String,
    /// Percent of the machine.
    pub target: f64,
    pub hypervisor: f64,
    /// The time the guest saw itself run (None if it reports none).
    pub guest: Option<f64>,
    /// The guest's work, as a share of all burners' work scaled to their total target.
    pub work: Option<f64>,
}

/// The shares of the CPU-bound (`burn`) domains against their targets, percent of the
/// machine, measured after `warmup_ms`. Other domains' measured use is taken off the
/// capacity first.
pub fn burn_shares(log: &SchedLog, warmup_ms: f64) -> Result<Vec<ShareRow>, String> {
    if log.cpus == 0 {
        return Err("the log does not say how many pCPUs the scheduler has".into());
    }
    let hv = log.hv_shares(warmup_ms)?;
    let burners: Vec<&Domain> = log
        .domains
        .iter()
        .filter(|d| log.progress.contains_key(&d.id))
        .collect();
    if burners.is_empty() {
        return Err("no burn guest reported progress".into());
    }
    let others: f64 = hv
        .iter()
        .filter(|(id, _)| !burners.iter().any(|d| d.id == **id))
        .map(|(_, s)| s)
        .sum();
    let capacity = f64::from(log.cpus) * 100.0 - others;
    let claims: Vec<(f64, f64)> = burners
        .iter()
        .map(|d| {
            let mut limit = f64::from(d.vcpus) * 100.0;
            if d.cap > 0 {
                limit = limit.min(f64::from(d.cap));
            }
            (f64::from(d.weight), limit)
        })
        .collect();
    let targets = fair_shares(capacity, &claims);
    let rates = log.guest_rates(3);
    let total_rate: f64 = burners
        .iter()
        .filter_map(|d| rates.get(&d.id))
        .map(|r| r.0)
        .sum();
    let total_target: f64 = targets.iter().sum();
    let machine = f64::from(log.cpus);
    Ok(burners
        .iter()
        .zip(&targets)
        .map(|(d, t)| ShareRow {
            id: d.id,
            name: d.name.clone(),
            target: t / machine,
            hypervisor: hv.get(&d.id).copied().unwrap_or(0.0) / machine,
            guest: rates.get(&d.id).map(|r| r.1 / machine),
            // The work shows how the burners' time was divided among them: scale it to
            // the burners' total target.
            work: rates
                .get(&d.id)
                .filter(|_| total_rate > 0.0)
                .map(|r| r.0 / total_rate * total_target / machine),
        })
        .collect())
}

/// Formats share rows, one per line.
pub fn describe(rows: &[ShareRow]) -> String {
    rows.iter()
        .map(|r| {
            let pct = |v: Option<f64>| v.map_or("-".to_string(), |g| format!("{g:.1}%"));
            format!(
                "d{} {}: target {:.1}%, hypervisor {:.1}%, guest saw {}, guest work {} (of the machine)",
                r.id,
                r.name,
                r.target,
                r.hypervisor,
                pct(r.guest),
                pct(r.work)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The largest distance from target, in points of the machine, over the hypervisor's
/// accounting, the guests' own run time and (if `work`) the guests' work counters.
pub fn worst_error(rows: &[ShareRow], work: bool) -> f64 {
    rows.iter()
        .flat_map(|r| {
            [
                Some((r.hypervisor - r.target).abs()),
                r.guest.map(|g| (g - r.target).abs()),
                r.work.filter(|_| work).map(|w| (w - r.target).abs()),
            ]
        })
        .flatten()
        .fold(0.0, f64::max)
}

/// The weight scenarios: every burn domain within `tolerance` points of its target, by
/// the hypervisor's accounting and by the time the guest saw itself run; on one pCPU by
/// its work too. (Under Bochs with several CPUs the work a guest does in a millisecond
/// of its CPU time varies by CPU and load, by up to ~15 %: an artefact of how Bochs
/// interleaves its emulated CPUs, so work is reported, not judged, there.)
pub fn check_weights(log: &str, tolerance: f64) -> Result<String, String> {
    let parsed = SchedLog::parse(log);
    let rows = burn_shares(&parsed, 500.0)?;
    let text = describe(&rows);
    let worst = worst_error(&rows, parsed.cpus == 1);
    if rows.iter().any(|r| r.guest.is_none() || r.work.is_none()) {
        return Err(format!("a burn domain's progress is missing\n{text}"));
    }
    if worst > tolerance {
        return Err(format!(
            "shares off by up to {worst:.1} points (allowed {tolerance})\n{text}"
        ));
    }
    Ok(format!("{text}\nworst error {worst:.2} points"))
}

/// The sleeper's own latency report: (wakes, mean us, max us), the last one printed.
pub fn sleeper_latency(log: &str) -> Option<(u64, u64, u64)> {
    let r = re(r"sleeper: (\d+) wakes, wake-to-run latency mean (\d+) us, max (\d+) us");
    log.lines().rev().find_map(|l| {
        let c = r.captures(l)?;
        Some((c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    1.0] cpu0 INFO  sched: credit scheduler on 2 pCPU(s) (mask 0x3): tick 10 ms, slice 30 ms, rate limit 1000 us
[    1.1] cpu0 INFO  domain 1 (a): 16 MiB, kernel burn.elf, 2 vCPU(s), weight 256, cap 0, cpus 0x3
[    1.1] cpu0 INFO  domain 2 (b): 16 MiB, kernel burn.elf, 2 vCPU(s), weight 768, cap 0, cpus 0x3
[    1.2] cpu0 INFO  sched: sample 500 ms: d1 250.00 d2 750.00
[    1.3] cpu1 INFO  [d1 a] burn: at 1000 ms: 100 loops, ran 500000 us
[    1.3] cpu1 INFO  [d2 b] burn: at 1000 ms: 300 loops, ran 1500000 us
[    1.3] cpu1 INFO  [d1 a] burn: at 1100 ms: 110 loops, ran 550000 us
[    1.3] cpu1 INFO  [d2 b] burn: at 1100 ms: 330 loops, ran 1650000 us
[    1.3] cpu1 INFO  [d1 a] burn: at 1200 ms: 120 loops, ran 600000 us
[    1.3] cpu1 INFO  [d2 b] burn: at 1200 ms: 360 loops, ran 1800000 us
[    1.3] cpu1 INFO  [d1 a] burn: at 1300 ms: 130 loops, ran 650000 us
[    1.3] cpu1 INFO  [d2 b] burn: at 1300 ms: 390 loops, ran 1950000 us
[    1.4] cpu0 INFO  sched: sample 1500 ms: d1 750.00 d2 2250.00
[    1.5] cpu1 INFO  [d1 a] burn: at 1400 ms: 140 loops, ran 700000 us
[    1.5] cpu1 INFO  [d2 b] burn: at 1400 ms: 420 loops, ran 2100000 us
";

    #[test]
    fn parses_domains_samples_and_progress() {
        let p = SchedLog::parse(LOG);
        assert_eq!(p.cpus, 2);
        assert_eq!(p.domains.len(), 2);
        assert_eq!(p.domains[1].weight, 768);
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[1].1[&2], 2250.0);
        assert_eq!(p.progress[&1].len(), 5);
        let hv = p.hv_shares(500.0).unwrap();
        assert!((hv[&1] - 50.0).abs() < 1e-9 && (hv[&2] - 150.0).abs() < 1e-9);
        let series = p.share_series();
        assert_eq!(series[&1], vec![(1.5, 50.0)]);
    }

    #[test]
    fn fair_shares_follow_weights_and_limits() {
        let s = fair_shares(700.0, &[(256.0, 700.0), (512.0, 700.0), (1024.0, 700.0)]);
        assert!((s[0] - 100.0).abs() < 1e-9 && (s[2] - 400.0).abs() < 1e-9);
        // One vCPU each on 2 pCPUs: the heavy one is limited to a pCPU, the rest share.
        let s = fair_shares(200.0, &[(256.0, 100.0), (512.0, 100.0), (1024.0, 100.0)]);
        assert!((s[2] - 100.0).abs() < 1e-9);
        assert!((s[0] - 100.0 / 3.0).abs() < 1e-9);
        // A cap.
        let s = fair_shares(100.0, &[(256.0, 25.0), (256.0, 100.0)]);
        assert_eq!(s, vec![25.0, 75.0]);
    }

    #[test]
    fn weight_check_passes_and_fails_honestly() {
        // 256 vs 768 on 2 pCPUs with 2 vCPUs each: 25 % and 75 % of the machine.
        let ok = check_weights(LOG, 5.0).unwrap();
        assert!(
            ok.contains("target 25.0%, hypervisor 25.0%, guest saw 25.0%, guest work 25.0%"),
            "{ok}"
        );
        // Skew the hypervisor's figures.
        let skewed = LOG.replace("d1 750.00 d2 2250.00", "d1 1050.00 d2 1950.00");
        let err = check_weights(&skewed, 5.0).unwrap_err();
        assert!(err.contains("off by up to"), "{err}");
        // No progress lines: refused, not passed.
        let silent: String = LOG
            .lines()
            .filter(|l| !l.contains("burn:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(check_weights(&silent, 5.0).is_err());
    }

    #[test]
    fn sleeper_report() {
        let log = "x sleeper: 100 wakes, wake-to-run latency mean 12 us, max 90 us\n\
                   x sleeper: 200 wakes, wake-to-run latency mean 15 us, max 300 us\n";
        assert_eq!(sleeper_latency(log), Some((200, 15, 300)));
        assert_eq!(sleeper_latency("nothing"), None);
    }
}
