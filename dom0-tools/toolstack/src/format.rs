//! Xen's `xl` output formats (`tools/xl` as TOOLSTACK.md records them), filled from
//! what `domctl`/`sysctl` say.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use oxen_abi::domctl::dominf;

/// One domain as `xl list` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainRow {
    pub id: u16,
    pub name: String,
    /// Pages of memory it has.
    pub pages: u64,
    pub online_vcpus: u32,
    /// `XEN_DOMINF_*` flags (the shutdown code in bits 16..24).
    pub flags: u32,
    /// CPU time of all its vCPUs, in nanoseconds.
    pub cpu_ns: u64,
}

impl DomainRow {
    /// The six state letters: running, blocked, paused, shut down, the shutdown
    /// reason (`-` poweroff, `r` reboot, `s` suspend, `c` crash, `w` watchdog) and
    /// dying; `-` where one does not hold.
    pub fn state(&self) -> String {
        let f = self.flags;
        let on = |bit: u32, c: char| if f & bit != 0 { c } else { '-' };
        let reason = match dominf::shutdown_code(f) {
            Some(1) => 'r',
            Some(2) => 's',
            Some(3) => 'c',
            Some(4) => 'w',
            _ => '-',
        };
        [
            on(dominf::RUNNING, 'r'),
            on(dominf::BLOCKED, 'b'),
            on(dominf::PAUSED, 'p'),
            on(dominf::SHUTDOWN, 's'),
            reason,
            on(dominf::DYING, 'd'),
        ]
        .iter()
        .collect()
    }
}

/// `xl list`: the header, then one row per domain.
pub fn list(rows: &[DomainRow]) -> String {
    let mut out = String::from(
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<40} {:>5} {:>5} {:>5}     {}  {:>8.1}",
            r.name,
            r.id,
            r.pages / 256,
            r.online_vcpus,
            r.state(),
            r.cpu_ns as f64 / 1e9
        );
    }
    out
}

/// One vCPU as `xl vcpu-list` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VcpuRow {
    pub domain: String,
    pub id: u16,
    pub vcpu: u32,
    pub online: bool,
    pub running: bool,
    pub blocked: bool,
    pub cpu: u32,
    pub cpu_ns: u64,
    /// Hard affinity (bit n: pCPU n).
    pub hard: u64,
}

/// A set of pCPUs as xl prints it: `all` (every one of the `nr_cpus`), `none`, or
/// ranges such as `0-3,5`.
pub fn cpus(mask: u64, nr_cpus: u32) -> String {
    let all = if nr_cpus >= 64 {
        u64::MAX
    } else {
        (1u64 << nr_cpus) - 1
    };
    if mask & all == all {
        return String::from("all");
    }
    if mask == 0 {
        return String::from("none");
    }
    let mut out = String::new();
    let mut cpu = 0;
    while cpu < 64 {
        if mask & (1 << cpu) == 0 {
            cpu += 1;
            continue;
        }
        let first = cpu;
        while cpu + 1 < 64 && mask & (1 << (cpu + 1)) != 0 {
            cpu += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if first == cpu {
            let _ = write!(out, "{first}");
        } else {
            let _ = write!(out, "{first}-{cpu}");
        }
        cpu += 1;
    }
    out
}

/// `xl vcpu-list`: the header, then one row per vCPU (an offline one shows CPU `-` and
/// state `--p`; oxen has no soft affinity, so it reads `all`).
pub fn vcpu_list(rows: &[VcpuRow], nr_cpus: u32) -> String {
    let mut out = format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}\n",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity (Hard / Soft)"
    );
    for r in rows {
        let cpu = if r.online {
            format!("{}", r.cpu)
        } else {
            String::from("-")
        };
        let state: String = [
            if r.running { 'r' } else { '-' },
            if r.blocked { 'b' } else { '-' },
            if r.online { '-' } else { 'p' },
        ]
        .iter()
        .collect();
        let _ = writeln!(
            out,
            "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9.1} {} / all",
            r.domain,
            r.id,
            r.vcpu,
            cpu,
            state,
            r.cpu_ns as f64 / 1e9,
            cpus(r.hard, nr_cpus)
        );
    }
    out
}

/// `xl sched-credit`: the pool line, the header, one row per domain (name, id, weight,
/// cap).
pub fn sched_credit(rows: &[(String, u16, u16, u16)], pool: &PoolLimits) -> String {
    let mut out = pool_line(pool);
    out.push_str(&credit_rows(rows));
    out
}

/// The credit scheduler's settings of the cpupool, as `XEN_SYSCTL_scheduler_op` gives
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    pub tslice_ms: u32,
    pub ratelimit_us: u32,
    pub migr_delay_us: u32,
}

/// `xl sched-credit -s`: the pool line.
pub fn pool_line(p: &PoolLimits) -> String {
    format!(
        "Cpupool {}: tslice={}ms ratelimit={}us migration-delay={}us\n",
        crate::sched::POOL,
        p.tslice_ms,
        p.ratelimit_us,
        p.migr_delay_us
    )
}

/// `xl sched-credit -d DOMAIN`: the header and the rows, without the pool line.
pub fn credit_rows(rows: &[(String, u16, u16, u16)]) -> String {
    let mut out = format!("{:<33} {:>4} {:>6} {:>4}\n", "Name", "ID", "Weight", "Cap");
    for (name, id, weight, cap) in rows {
        let _ = writeln!(out, "{name:<33} {id:>4} {weight:>6} {cap:>4}");
    }
    out
}

/// What `xl info` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    pub nr_cpus: u32,
    pub cpu_khz: u32,
    pub total_pages: u64,
    pub free_pages: u64,
    pub xen_major: u32,
    pub xen_minor: u32,
    pub xen_extra: String,
    pub xen_caps: String,
    pub virt_caps: String,
}

/// `xl info`: `key : value` lines, keys padded to 23 columns.
pub fn info(h: &HostInfo) -> String {
    let mib = |pages: u64| pages / 256;
    let version = format!("{}.{}{}", h.xen_major, h.xen_minor, h.xen_extra);
    let lines: [(&str, String); 22] = [
        ("host", String::from("oxen")),
        ("release", String::from(env!("CARGO_PKG_VERSION"))),
        ("machine", String::from("x86_64")),
        ("nr_cpus", format!("{}", h.nr_cpus)),
        ("max_cpu_id", format!("{}", h.nr_cpus.saturating_sub(1))),
        ("nr_nodes", String::from("1")),
        ("cores_per_socket", format!("{}", h.nr_cpus)),
        ("threads_per_core", String::from("1")),
        (
            "cpu_mhz",
            format!("{}.{:03}", h.cpu_khz / 1000, h.cpu_khz % 1000),
        ),
        ("virt_caps", h.virt_caps.clone()),
        ("total_memory", format!("{}", mib(h.total_pages))),
        ("free_memory", format!("{}", mib(h.free_pages))),
        ("free_cpus", String::from("0")),
        ("xen_major", format!("{}", h.xen_major)),
        ("xen_minor", format!("{}", h.xen_minor)),
        ("xen_extra", h.xen_extra.clone()),
        ("xen_version", version),
        ("xen_caps", h.xen_caps.clone()),
        ("xen_scheduler", String::from("credit")),
        ("xen_pagesize", String::from("4096")),
        ("xen_changeset", String::from(env!("CARGO_PKG_VERSION"))),
        ("cc_compiler", String::from("rustc")),
    ];
    let mut out = String::new();
    for (k, v) in lines {
        let _ = writeln!(out, "{k:<23}: {v}");
    }
    out
}

/// An uptime as `xl uptime` writes it: `H:MM:SS` with the hours in two columns, and
/// `D day, ` or `D days, ` before it from one day on.
pub fn uptime_text(secs: u64) -> String {
    let (day, rest) = (secs / 86_400, secs % 86_400);
    let (hour, min, sec) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let clock = format!("{hour:2}:{min:02}:{sec:02}");
    match day {
        0 => clock,
        1 => format!("1 day, {clock}"),
        d => format!("{d} days, {clock}"),
    }
}

/// `xl uptime`: the header and one row per (name, id, seconds up).
pub fn uptime(rows: &[(String, u16, u64)]) -> String {
    let mut out = format!("{:<33} {:>4} {}\n", "Name", "ID", "Uptime");
    for (name, id, secs) in rows {
        out.push_str(&format!("{name:<33} {id:>4} {}\n", uptime_text(*secs)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn uptime_rows_in_xl_s_columns() {
        assert_eq!(uptime_text(0), " 0:00:00");
        assert_eq!(uptime_text(3 * 3600 + 7 * 60 + 9), " 3:07:09");
        assert_eq!(uptime_text(86_400 + 61), "1 day,  0:01:01");
        assert_eq!(uptime_text(3 * 86_400 + 23 * 3600), "3 days, 23:00:00");
        let t = uptime(&[
            ("Domain-0".to_string(), 0, 75),
            ("web".to_string(), 12, 4000),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Name                                ID Uptime");
        assert_eq!(lines[1], "Domain-0                             0  0:01:15");
        assert_eq!(lines[2], "web                                 12  1:06:40");
        // The id is right-aligned under "ID", four columns after a 33-column name.
        assert_eq!(lines[2].find("12"), Some(36));
    }

    #[test]
    fn list_has_xens_columns() {
        let rows = [
            DomainRow {
                id: 0,
                name: "Domain-0".to_string(),
                pages: 4096,
                online_vcpus: 1,
                flags: dominf::RUNNING,
                cpu_ns: 1_250_000_000,
            },
            DomainRow {
                id: 3,
                name: "burn".to_string(),
                pages: 2048,
                online_vcpus: 2,
                flags: dominf::PAUSED | dominf::BLOCKED,
                cpu_ns: 0,
            },
        ];
        let out = list(&rows);
        let lines: alloc::vec::Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "Name                                        ID   Mem VCPUs\tState\tTime(s)"
        );
        assert_eq!(
            lines[1],
            "Domain-0                                     0    16     1     r-----       1.2"
        );
        assert_eq!(
            lines[2],
            "burn                                         3     8     2     -bp---       0.0"
        );
        // The id column ends under the header's "ID".
        assert_eq!(
            lines[1].find(" 0 ").map(|i| i + 1),
            lines[0].find("ID").map(|i| i + 1)
        );
    }

    #[test]
    fn state_letters_carry_the_shutdown_reason() {
        let r = |flags| DomainRow {
            flags,
            ..DomainRow::default()
        };
        let down = |code: u32| dominf::SHUTDOWN | code << dominf::SHUTDOWN_SHIFT;
        assert_eq!(r(down(0)).state(), "---s--");
        assert_eq!(r(down(1)).state(), "---sr-");
        assert_eq!(r(down(3) | dominf::DYING).state(), "---scd");
        assert_eq!(r(down(4)).state(), "---sw-");
        assert_eq!(r(0).state(), "------");
    }

    #[test]
    fn cpu_sets_print_as_xl_does() {
        assert_eq!(cpus(0b11, 2), "all");
        assert_eq!(cpus(u64::MAX, 4), "all");
        assert_eq!(cpus(0, 4), "none");
        assert_eq!(cpus(0b10_1111, 8), "0-3,5");
        assert_eq!(cpus(0b100, 8), "2");
        assert_eq!(cpus(1 << 63 | 1, 64), "0,63");
    }

    #[test]
    fn vcpu_list_marks_offline_vcpus() {
        let rows = [
            VcpuRow {
                domain: "Domain-0".to_string(),
                id: 0,
                vcpu: 0,
                online: true,
                running: true,
                cpu: 1,
                cpu_ns: 2_000_000_000,
                hard: 0b11,
                ..VcpuRow::default()
            },
            VcpuRow {
                domain: "smp".to_string(),
                id: 2,
                vcpu: 1,
                hard: 0b10,
                ..VcpuRow::default()
            },
        ];
        let out = vcpu_list(&rows, 2);
        let lines: alloc::vec::Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)"
        );
        assert_eq!(
            lines[1],
            "Domain-0                             0     0     1   r--       2.0 all / all"
        );
        // Each value ends where its header does.
        let end = |l: &str, w: &str| l.find(w).map(|i| i + w.len());
        assert_eq!(end(lines[0], "VCPU"), end(lines[2], "    1"));
        assert_eq!(
            lines[2],
            "smp                                  2     1     -   --p       0.0 1 / all"
        );
    }

    #[test]
    fn sched_credit_rows() {
        let pool = PoolLimits {
            tslice_ms: 30,
            ratelimit_us: 1000,
            migr_delay_us: 0,
        };
        let out = sched_credit(&[("Domain-0".to_string(), 0, 256, 0)], &pool);
        assert_eq!(
            out,
            "Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us\n\
             Name                                ID Weight  Cap\n\
             Domain-0                             0    256    0\n"
        );
        let pool = PoolLimits {
            tslice_ms: 5,
            ratelimit_us: 0,
            migr_delay_us: 250,
        };
        assert_eq!(
            pool_line(&pool),
            "Cpupool Pool-0: tslice=5ms ratelimit=0us migration-delay=250us\n"
        );
        assert_eq!(
            credit_rows(&[("web".to_string(), 3, 512, 50)]),
            "Name                                ID Weight  Cap\n\
             web                                  3    512   50\n"
        );
    }

    #[test]
    fn info_pads_keys_to_23_columns() {
        let out = info(&HostInfo {
            nr_cpus: 2,
            cpu_khz: 2_500_000,
            total_pages: 128_000,
            free_pages: 125_000,
            xen_major: 4,
            xen_minor: 17,
            xen_extra: "-oxen".to_string(),
            ..HostInfo::default()
        });
        assert!(out.contains("\nnr_cpus                : 2\n"), "{out}");
        assert!(out.contains("\ntotal_memory           : 500\n"));
        assert!(out.contains("\nfree_memory            : 488\n"));
        assert!(out.contains("\nxen_version            : 4.17-oxen\n"));
        assert!(out.contains("\ncpu_mhz                : 2500.000\n"));
        assert!(out.starts_with("host                   : oxen\n"));
    }
}
