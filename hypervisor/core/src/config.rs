//! Configuration files in the `xl.cfg` style: `key = value` lines, `#` comments, values
//! that are quoted strings, integers or `[ ... ]` lists of them.
//!
//! The boot configuration (`boot.cfg` in the boot archive) is read with it now; domain
//! configuration files will be later.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A configuration value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    List(Vec<Value>),
}

/// A syntax or meaning error, with the 1-based line it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn err(line: usize, message: impl Into<String>) -> ConfigError {
    ConfigError {
        line,
        message: message.into(),
    }
}

/// One `key = value` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub line: usize,
    pub key: String,
    pub value: Value,
}

/// Parses the whole text into settings, in order.
pub fn parse(text: &str) -> Result<Vec<Setting>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut p = Parser {
            s: raw.as_bytes(),
            at: 0,
            line,
        };
        p.skip_space();
        if p.done() {
            continue;
        }
        let key = p.key()?;
        p.skip_space();
        if !p.eat(b'=') {
            return Err(err(line, alloc::format!("expected '=' after '{key}'")));
        }
        p.skip_space();
        let value = p.value()?;
        p.skip_space();
        if !p.done() {
            return Err(err(line, "unexpected text after the value"));
        }
        out.push(Setting { line, key, value });
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    /// True at the end of the line or at a comment.
    fn done(&self) -> bool {
        matches!(self.peek(), None | Some(b'#'))
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn key(&mut self) -> Result<String, ConfigError> {
        let start = self.at;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.at += 1;
        }
        if start == self.at {
            return Err(err(self.line, "expected a key"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    fn value(&mut self) -> Result<Value, ConfigError> {
        match self.peek() {
            Some(b'"' | b'\'') => self.string(),
            Some(b'[') => self.list(),
            Some(c) if c.is_ascii_digit() || c == b'-' => self.int(),
            _ => Err(err(
                self.line,
                "expected a value: \"string\", integer or [list]",
            )),
        }
    }

    fn string(&mut self) -> Result<Value, ConfigError> {
        let quote = self.s[self.at];
        self.at += 1;
        let start = self.at;
        while let Some(c) = self.peek() {
            if c == quote {
                let text = core::str::from_utf8(&self.s[start..self.at])
                    .map_err(|_| err(self.line, "string is not UTF-8"))?;
                self.at += 1;
                return Ok(Value::Str(text.into()));
            }
            self.at += 1;
        }
        Err(err(self.line, "unterminated string"))
    }

    fn int(&mut self) -> Result<Value, ConfigError> {
        let start = self.at;
        self.eat(b'-');
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric()) {
            self.at += 1;
        }
        let text = core::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let parsed = match digits.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => digits.parse::<i64>(),
        };
        let n = parsed.map_err(|_| err(self.line, alloc::format!("bad integer '{text}'")))?;
        Ok(Value::Int(if neg { -n } else { n }))
    }

    fn list(&mut self) -> Result<Value, ConfigError> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.eat(b']') {
                return Ok(Value::List(items));
            }
            if self.peek().is_none() {
                return Err(err(self.line, "unterminated list"));
            }
            items.push(self.value()?);
            self.skip_space();
            if !self.eat(b',') {
                self.skip_space();
                if self.eat(b']') {
                    return Ok(Value::List(items));
                }
                let what = if self.peek().is_none() {
                    "unterminated list"
                } else {
                    "expected ',' or ']' in list"
                };
                return Err(err(self.line, what));
            }
        }
    }
}

/// What the hypervisor does once it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnReady {
    /// Stay up: every CPU idles and takes its timer tick.
    #[default]
    Idle,
    /// Power the machine off (in emulators: their exit device). Used by boot scenarios.
    Poweroff,
}

/// Log verbosity, as the `log` crate's levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// The hypervisor's boot configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootConfig {
    pub on_ready: OnReady,
    pub log_level: LogLevel,
    /// Domain configuration files (names of archive entries) to start at boot.
    pub domains: Vec<String>,
    /// Domain configuration files the control domain builds once it is up, in this
    /// order (`autostart`: Xen's `/etc/xen/auto`); the hypervisor leaves them to it.
    pub autostart: Vec<String>,
    /// Credit-scheduler time slice (`sched_credit_tslice_ms`, Xen's name; default 30).
    pub tslice_ms: u64,
    /// Credit-scheduler rate limit (`sched_ratelimit_us`, Xen's name; default 1000).
    pub ratelimit_us: u64,
    /// Destroy every domain that still runs after this much time (`run_for_ms`; test
    /// scenarios and benchmarks use it to end runs of CPU burners).
    pub run_for_ms: Option<u64>,
    /// Log each domain's CPU share every this many milliseconds (`sched_sample_ms`, 0 =
    /// never), for plots.
    pub sample_ms: u64,
    /// Settings this hypervisor does not know, kept so they can be reported.
    pub unknown: Vec<String>,
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            on_ready: OnReady::default(),
            log_level: LogLevel::default(),
            domains: Vec::new(),
            autostart: Vec::new(),
            tslice_ms: 30,
            ratelimit_us: 1000,
            run_for_ms: None,
            sample_ms: 0,
            unknown: Vec::new(),
        }
    }
}

impl BootConfig {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut cfg = BootConfig::default();
        for s in parse(text)? {
            let word = |value: &Value| match value {
                Value::Str(w) => Ok(w.clone()),
                _ => Err(err(s.line, alloc::format!("'{}' takes a string", s.key))),
            };
            match s.key.as_str() {
                "on_ready" => {
                    cfg.on_ready = match word(&s.value)?.as_str() {
                        "idle" => OnReady::Idle,
                        "poweroff" => OnReady::Poweroff,
                        other => {
                            return Err(err(
                                s.line,
                                alloc::format!(
                                    "on_ready: unknown action '{other}' (idle, poweroff)"
                                ),
                            ));
                        }
                    }
                }
                "log_level" => {
                    cfg.log_level = match word(&s.value)?.as_str() {
                        "error" => LogLevel::Error,
                        "warn" => LogLevel::Warn,
                        "info" => LogLevel::Info,
                        "debug" => LogLevel::Debug,
                        "trace" => LogLevel::Trace,
                        other => {
                            return Err(err(
                                s.line,
                                alloc::format!("log_level: unknown level '{other}'"),
                            ));
                        }
                    }
                }
                "domains" => cfg.domains = strings(&s)?,
                "autostart" => cfg.autostart = strings(&s)?,
                "sched_credit_tslice_ms" => cfg.tslice_ms = int_in(&s, 1, 1000)?,
                "sched_ratelimit_us" => cfg.ratelimit_us = int_in(&s, 0, 500_000)?,
                "run_for_ms" => cfg.run_for_ms = Some(int_in(&s, 1, 86_400_000)?),
                "sched_sample_ms" => cfg.sample_ms = int_in(&s, 0, 60_000)?,
                _ => cfg.unknown.push(s.key),
            }
        }
        Ok(cfg)
    }
}

/// An integer in `lo..=hi`, or a meaning error naming the key.
fn int_in(s: &Setting, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    match s.value {
        Value::Int(v) if (lo as i64..=hi as i64).contains(&v) => Ok(v as u64),
        _ => Err(err(
            s.line,
            alloc::format!("'{}' takes an integer in {lo}..{hi}", s.key),
        )),
    }
}

/// A list of strings, or a meaning error naming the key.
fn strings(s: &Setting) -> Result<Vec<String>, ConfigError> {
    let not_strings = || {
        err(
            s.line,
            alloc::format!("'{}' takes a list of strings", s.key),
        )
    };
    match &s.value {
        Value::List(items) => items
            .iter()
            .map(|v| match v {
                Value::Str(w) => Ok(w.clone()),
                _ => Err(not_strings()),
            })
            .collect(),
        _ => Err(not_strings()),
    }
}

/// What the toolstack does when a domain ends one way (`on_poweroff`, `on_reboot`,
/// `on_crash`, `on_watchdog`), with Xen's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Destroy,
    Restart,
    RenameRestart,
    Preserve,
    CoredumpDestroy,
    CoredumpRestart,
    SoftReset,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Destroy,
        Action::Restart,
        Action::RenameRestart,
        Action::Preserve,
        Action::CoredumpDestroy,
        Action::CoredumpRestart,
        Action::SoftReset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::RenameRestart => "rename-restart",
            Action::Preserve => "preserve",
            Action::CoredumpDestroy => "coredump-destroy",
            Action::CoredumpRestart => "coredump-restart",
            Action::SoftReset => "soft-reset",
        }
    }

    /// Whether the domain is built again afterwards.
    pub fn restarts(self) -> bool {
        matches!(
            self,
            Action::Restart | Action::RenameRestart | Action::CoredumpRestart
        )
    }
}

/// One domain, as an `xl.cfg`-style file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// 1 to 64 characters of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The kernel image: an entry of the boot archive.
    pub kernel: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub cmdline: String,
    /// Credit-scheduler weight (`cpu_weight`, 1..65535, default 256).
    pub weight: u16,
    /// Credit-scheduler cap in percent of one pCPU (`cap`, 0 = none).
    pub cap: u32,
    /// Hard affinity of every vCPU (`cpus`): bit n = pCPU n.
    pub affinity: u64,
    /// May use the control hypercalls (`privileged = 1`): the control domain, which is
    /// domain 0 as in Xen (so at most one domain of a boot has it).
    pub privileged: bool,
    /// A module for the guest (`ramdisk`, xl's initrd): an entry of the boot archive
    /// (or `"@archive"`, the whole archive: the control domain's files),
    /// loaded after the kernel and listed in `hvm_start_info`'s module list.
    pub ramdisk: Option<String>,
    /// The most memory it may grow to (`maxmem`, MiB; at least `memory`).
    pub maxmem_mib: u64,
    /// vCPUs it may have (`maxvcpus`; at least `vcpus`, which start online).
    pub maxvcpus: u32,
    /// `uuid`, if given (Xen's toolstack makes one up otherwise).
    pub uuid: Option<[u8; 16]>,
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
    pub on_watchdog: Action,
    /// `disk = [...]`, parsed and checked (`crate::diskspec`).
    pub disks: Vec<crate::diskspec::DiskSpec>,
}

impl DomainConfig {
    pub const MIN_MEMORY_MIB: u64 = 2;
    pub const MAX_MEMORY_MIB: u64 = 4096;
    pub const MAX_VCPUS: u32 = 64;

    /// `key`'s value `v` as an amount of memory in MiB, or the error for line `line`.
    fn mib(line: usize, key: &str, v: i64) -> Result<u64, ConfigError> {
        let (lo, hi) = (Self::MIN_MEMORY_MIB, Self::MAX_MEMORY_MIB);
        u64::try_from(v)
            .ok()
            .filter(|m| (lo..=hi).contains(m))
            .ok_or_else(|| err(line, alloc::format!("{key} {v} MiB is outside {lo}..{hi}")))
    }

    /// `key`'s value `v` as a number of vCPUs, or the error for line `line`.
    fn vcpu_count(line: usize, key: &str, v: i64) -> Result<u32, ConfigError> {
        u32::try_from(v)
            .ok()
            .filter(|n| (1..=Self::MAX_VCPUS).contains(n))
            .ok_or_else(|| {
                err(
                    line,
                    alloc::format!("{key} {v} is outside 1..{}", Self::MAX_VCPUS),
                )
            })
    }

    /// Parses a domain configuration: `name` and `kernel` are required; `memory` (MiB,
    /// default 32), `maxmem` (default `memory`), `vcpus` (default 1), `maxvcpus`
    /// (default `vcpus`), `cmdline` (or `root` and `extra`, joined as Xen's `xl` joins
    /// them), `cpu_weight` (default 256), `cap` (percent, default 0 = none), `cpus`
    /// (default "all"), `privileged` (default 0), `ramdisk` (an archive entry), `uuid`,
    /// `on_poweroff`/`on_reboot`/`on_crash`/`on_watchdog` (Xen's defaults: destroy,
    /// restart, destroy, destroy) and `disk` (a list of disk specs) are optional.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let (mut name, mut kernel, mut memory_mib, mut vcpus, mut cmdline) =
            (None, None, 32, 1, None);
        let (mut weight, mut cap, mut affinity, mut privileged) = (256, 0, u64::MAX, false);
        let (mut ramdisk, mut root, mut extra) = (None, None, None);
        let (mut maxmem, mut maxvcpus, mut uuid) = (None, None, None);
        let mut on = [
            Action::Destroy,
            Action::Restart,
            Action::Destroy,
            Action::Destroy,
        ];
        let mut disks = Vec::new();
        let mut lines = (0, 0);
        for s in parse(text)? {
            let line = s.line;
            match (s.key.as_str(), &s.value) {
                ("name", Value::Str(v)) => {
                    let ok = !v.is_empty()
                        && v.len() <= 64
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                    if !ok {
                        return Err(err(
                            line,
                            alloc::format!("name '{v}': use 1-64 of A-Z a-z 0-9 _ . -"),
                        ));
                    }
                    name = Some(v.clone());
                }
                ("kernel", Value::Str(v)) => kernel = Some(v.clone()),
                // xl.cfg's guest type: oxen runs PVH guests only.
                ("type", Value::Str(v)) if v == "pvh" => {}
                ("type", Value::Str(v)) => {
                    return Err(err(
                        line,
                        alloc::format!("type '{v}': oxen runs only \"pvh\" guests"),
                    ));
                }
                ("ramdisk", Value::Str(v)) => ramdisk = Some(v.clone()),
                ("memory", Value::Int(v)) => memory_mib = Self::mib(line, "memory", *v)?,
                ("vcpus", Value::Int(v)) => vcpus = Self::vcpu_count(line, "vcpus", *v)?,
                ("cmdline", Value::Str(v)) => cmdline = Some(v.clone()),
                ("root", Value::Str(v)) => root = Some(v.clone()),
                ("extra", Value::Str(v)) => extra = Some(v.clone()),
                ("maxmem", Value::Int(v)) => {
                    maxmem = Some(Self::mib(line, "maxmem", *v)?);
                    lines.0 = line;
                }
                ("maxvcpus", Value::Int(v)) => {
                    maxvcpus = Some(Self::vcpu_count(line, "maxvcpus", *v)?);
                    lines.1 = line;
                }
                ("uuid", Value::Str(v)) => {
                    uuid = Some(parse_uuid(v).ok_or_else(|| {
                        err(
                            line,
                            alloc::format!(
                                "uuid '{v}': use xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hex"
                            ),
                        )
                    })?);
                }
                (
                    key @ ("on_poweroff" | "on_reboot" | "on_crash" | "on_watchdog"),
                    Value::Str(v),
                ) => {
                    let a = Action::ALL
                        .into_iter()
                        .find(|a| a.name() == v)
                        .ok_or_else(|| {
                            err(
                                line,
                                alloc::format!(
                                    "{key} '{v}': use destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart or soft-reset"
                                ),
                            )
                        })?;
                    let i = ["on_poweroff", "on_reboot", "on_crash", "on_watchdog"]
                        .iter()
                        .position(|k| k == &key)
                        .unwrap_or(0);
                    on[i] = a;
                }
                ("disk", v) => {
                    let specs = match v {
                        Value::List(items) => items.clone(),
                        one => alloc::vec![one.clone()],
                    };
                    for spec in specs {
                        let Value::Str(spec) = spec else {
                            return Err(err(line, "'disk' takes a list of strings"));
                        };
                        let d = crate::diskspec::parse(&spec)
                            .map_err(|m| err(line, alloc::format!("disk '{spec}': {m}")))?;
                        if disks
                            .iter()
                            .any(|o: &crate::diskspec::DiskSpec| o.devid == d.devid)
                        {
                            return Err(err(
                                line,
                                alloc::format!("disk '{spec}': {} is used twice", d.vdev),
                            ));
                        }
                        disks.push(d);
                    }
                }
                ("cpu_weight", Value::Int(v)) => {
                    weight = u16::try_from(*v).ok().filter(|w| *w >= 1).ok_or_else(|| {
                        err(line, alloc::format!("cpu_weight {v} is outside 1..65535"))
                    })?;
                }
                ("cap", Value::Int(v)) => {
                    cap = u32::try_from(*v)
                        .ok()
                        .filter(|c| *c <= 6400)
                        .ok_or_else(|| err(line, alloc::format!("cap {v} is outside 0..6400")))?;
                }
                ("cpus", v) => {
                    affinity = cpu_list(v).map_err(|m| err(line, alloc::format!("cpus: {m}")))?;
                }
                ("privileged", Value::Int(v @ (0 | 1))) => privileged = *v == 1,
                ("privileged", _) => return Err(err(line, "'privileged' takes 0 or 1")),
                (
                    "name" | "kernel" | "type" | "ramdisk" | "cmdline" | "extra" | "root" | "uuid"
                    | "on_poweroff" | "on_reboot" | "on_crash" | "on_watchdog",
                    _,
                ) => {
                    return Err(err(line, alloc::format!("'{}' takes a string", s.key)));
                }
                ("memory" | "maxmem" | "vcpus" | "maxvcpus" | "cpu_weight" | "cap", _) => {
                    return Err(err(line, alloc::format!("'{}' takes an integer", s.key)));
                }
                (other, _) => return Err(err(line, alloc::format!("unknown setting '{other}'"))),
            }
        }
        let maxmem_mib = maxmem.unwrap_or(memory_mib);
        if maxmem_mib < memory_mib {
            return Err(err(
                lines.0,
                alloc::format!("maxmem {maxmem_mib} MiB is below memory {memory_mib} MiB"),
            ));
        }
        let maxvcpus = maxvcpus.unwrap_or(vcpus);
        if maxvcpus < vcpus {
            return Err(err(
                lines.1,
                alloc::format!("maxvcpus {maxvcpus} is below vcpus {vcpus}"),
            ));
        }
        // As Xen's xl: `cmdline` wins; otherwise "root=ROOT EXTRA".
        let cmdline = cmdline.unwrap_or_else(|| match (root, extra) {
            (Some(r), Some(e)) => alloc::format!("root={r} {e}"),
            (Some(r), None) => alloc::format!("root={r}"),
            (None, Some(e)) => e,
            (None, None) => String::new(),
        });
        Ok(DomainConfig {
            name: name.ok_or_else(|| err(0, "'name' is required"))?,
            kernel: kernel.ok_or_else(|| err(0, "'kernel' is required"))?,
            memory_mib,
            vcpus,
            cmdline,
            maxmem_mib,
            maxvcpus,
            uuid,
            on_poweroff: on[0],
            on_reboot: on[1],
            on_crash: on[2],
            on_watchdog: on[3],
            disks,
            weight,
            cap,
            affinity,
            privileged,
            ramdisk,
        })
    }
}

/// A UUID written as Xen writes them: 32 hex digits in groups of 8-4-4-4-12.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A UUID in Xen's form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| alloc::format!("{b:02x}")).collect();
    alloc::format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// An `xl.cfg` CPU list: `"all"`, `"0-3,6,^1"` (ranges, singles, `^` excludes), an
/// integer, or a list of those. Returns the mask (bit n = pCPU n, n < 64).
pub fn cpu_list(v: &Value) -> Result<u64, String> {
    fn one(mask: &mut u64, item: &str) -> Result<(), String> {
        let item = item.trim();
        let (exclude, item) = match item.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        let bits = if item == "all" {
            u64::MAX
        } else {
            let num = |t: &str| -> Result<u32, String> {
                t.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n < 64)
                    .ok_or_else(|| alloc::format!("'{t}' is not a CPU number 0..63"))
            };
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(item)?, num(item)?),
            };
            if lo > hi {
                return Err(alloc::format!("range '{item}' runs backwards"));
            }
            (lo..=hi).fold(0u64, |m, c| m | (1 << c))
        };
        if exclude {
            *mask &= !bits;
        } else {
            *mask |= bits;
        }
        Ok(())
    }
    let mut mask = 0u64;
    match v {
        Value::Str(text) => {
            for item in text.split(',') {
                one(&mut mask, item)?;
            }
        }
        Value::Int(n) => one(&mut mask, &alloc::format!("{n}"))?,
        Value::List(items) => {
            for item in items {
                mask |= cpu_list(item)?;
            }
        }
    }
    if mask == 0 {
        return Err("the list names no CPU".into());
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_comments() {
        let text = "# a comment\n\nname = \"hello\"  # trailing\nmemory=64\nvcpus = 0x2\n\
                    disk = [ 'a', \"b\", 3 ]\nempty = []\nneg = -5\n";
        let s = parse(text).unwrap();
        let kv: Vec<_> = s.iter().map(|s| (s.key.as_str(), &s.value)).collect();
        assert_eq!(kv[0], ("name", &Value::Str("hello".into())));
        assert_eq!(kv[1], ("memory", &Value::Int(64)));
        assert_eq!(kv[2], ("vcpus", &Value::Int(2)));
        assert_eq!(
            kv[3],
            (
                "disk",
                &Value::List(vec![
                    Value::Str("a".into()),
                    Value::Str("b".into()),
                    Value::Int(3)
                ])
            )
        );
        assert_eq!(kv[4], ("empty", &Value::List(vec![])));
        assert_eq!(kv[5], ("neg", &Value::Int(-5)));
        assert_eq!(s[2].line, 5);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line, needle) in [
            ("a = 1\nb 2\n", 2, "expected '='"),
            ("x = \"open\n", 1, "unterminated string"),
            ("x = [1, 2\n", 1, "unterminated list"),
            ("x = 12abc\n", 1, "bad integer"),
            ("x = 1 2\n", 1, "unexpected text"),
            ("= 1\n", 1, "expected a key"),
            ("x = @\n", 1, "expected a value"),
            ("x = [1 2]\n", 1, "expected ','"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_full_pvh_key_set() {
        let d = DomainConfig::parse(
            "name = 'web'\ntype = 'pvh'\nkernel = 'vmlinuz'\nmemory = 256\nmaxmem = 512\n\
             vcpus = 2\nmaxvcpus = 4\nroot = '/dev/xvda1 ro'\nextra = 'console=hvc0'\n\
             uuid = '6b8b4567-327b-23c6-643c-986966334873'\non_poweroff = 'preserve'\n\
             on_reboot = 'destroy'\non_crash = 'restart'\non_watchdog = 'rename-restart'\n\
             disk = [ '/img/web.qcow2,qcow2,xvda,rw', 'vdev=xvdb, access=ro, target=/img/data' ]\n",
        )
        .unwrap();
        assert_eq!(
            (d.memory_mib, d.maxmem_mib, d.vcpus, d.maxvcpus),
            (256, 512, 2, 4)
        );
        assert_eq!(d.cmdline, "root=/dev/xvda1 ro console=hvc0");
        assert_eq!(
            d.uuid.map(|u| format_uuid(&u)).as_deref(),
            Some("6b8b4567-327b-23c6-643c-986966334873")
        );
        assert_eq!(
            (d.on_poweroff, d.on_reboot, d.on_crash, d.on_watchdog),
            (
                Action::Preserve,
                Action::Destroy,
                Action::Restart,
                Action::RenameRestart
            )
        );
        assert!(d.on_crash.restarts() && !d.on_poweroff.restarts());
        assert_eq!(d.disks.len(), 2);
        assert_eq!(d.disks[0].format, crate::diskspec::Format::Qcow2);
        assert!(d.disks[1].read_only);
        // `cmdline` wins over root and extra.
        let d = DomainConfig::parse("name='a'\nkernel='k'\nroot='/dev/x'\ncmdline='c'").unwrap();
        assert_eq!(d.cmdline, "c");
        let d = DomainConfig::parse("name='a'\nkernel='k'\nextra='e'").unwrap();
        assert_eq!(d.cmdline, "e");
    }

    #[test]
    fn bad_values_of_the_newer_keys_name_their_line() {
        for (text, line, needle) in [
            (
                "name='a'\nkernel='k'\nmemory=64\nmaxmem=32",
                4,
                "maxmem 32 MiB is below memory 64",
            ),
            (
                "name='a'\nkernel='k'\nvcpus=4\nmaxvcpus=2",
                4,
                "maxvcpus 2 is below vcpus 4",
            ),
            ("name='a'\nkernel='k'\nuuid='1234'", 3, "uuid '1234'"),
            (
                "name='a'\nkernel='k'\nuuid='+b8b4567-327b-23c6-643c-986966334873'",
                3,
                "uuid",
            ),
            (
                "name='a'\nkernel='k'\non_crash='explode'",
                3,
                "on_crash 'explode'",
            ),
            (
                "name='a'\nkernel='k'\non_reboot=1",
                3,
                "'on_reboot' takes a string",
            ),
            ("name='a'\nkernel='k'\ndisk=['/i,,xvda']\n", 3, ""),
            (
                "name='a'\nkernel='k'\n\ndisk=['/i,vmdk,xvda']",
                4,
                "disk '/i,vmdk,xvda': format 'vmdk'",
            ),
            (
                "name='a'\nkernel='k'\ndisk=['/i,,xvda', '/j,,xvda']",
                3,
                "xvda is used twice",
            ),
            (
                "name='a'\nkernel='k'\ndisk=[1]",
                3,
                "'disk' takes a list of strings",
            ),
        ] {
            match DomainConfig::parse(text) {
                Ok(_) => assert!(needle.is_empty(), "{text:?} parsed"),
                Err(e) => {
                    assert_eq!(e.line, line, "{text:?}");
                    assert!(
                        !needle.is_empty() && e.message.contains(needle),
                        "{text:?}: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn domain_configs() {
        let d = DomainConfig::parse(
            "name = \"hello\"\nkernel = \"hello.elf\"\nmemory = 16\nvcpus = 2\ncmdline = \"a=b\"\n",
        )
        .unwrap();
        assert_eq!(
            d,
            DomainConfig {
                name: "hello".into(),
                kernel: "hello.elf".into(),
                memory_mib: 16,
                vcpus: 2,
                cmdline: "a=b".into(),
                weight: 256,
                cap: 0,
                affinity: u64::MAX,
                privileged: false,
                ramdisk: None,
                maxmem_mib: 16,
                maxvcpus: 2,
                uuid: None,
                on_poweroff: Action::Destroy,
                on_reboot: Action::Restart,
                on_crash: Action::Destroy,
                on_watchdog: Action::Destroy,
                disks: Vec::new(),
            }
        );
        let d = DomainConfig::parse("name='r'\nkernel='k'\nramdisk = \"initrd.cpio\"").unwrap();
        assert_eq!(d.ramdisk.as_deref(), Some("initrd.cpio"));
        let d = DomainConfig::parse(
            "name='s'\nkernel='k'\ncpu_weight = 1024\ncap = 25\ncpus = \"0-3,^1\"\nprivileged = 1",
        )
        .unwrap();
        assert_eq!(
            (d.weight, d.cap, d.affinity, d.privileged),
            (1024, 25, 0b1101, true)
        );
        let d = DomainConfig::parse("name='x'\nkernel='k'\nextra='quiet'").unwrap();
        assert_eq!(
            (d.memory_mib, d.vcpus, d.cmdline.as_str()),
            (32, 1, "quiet")
        );
        for (text, needle) in [
            ("kernel = 'k'", "'name' is required"),
            ("name = 'n'", "'kernel' is required"),
            ("name = 'bad name'\nkernel='k'", "use 1-64"),
            ("name = 'n'\nkernel='k'\nmemory = 1", "outside"),
            ("name = 'n'\nkernel='k'\nmemory = 99999", "outside"),
            ("name = 'n'\nkernel='k'\nvcpus = 0", "outside"),
            ("name = 'n'\nkernel='k'\nmemory = '16'", "takes an integer"),
            ("name = 1\nkernel='k'", "takes a string"),
            ("name = 'n'\nkernel='k'\nramdisk = 3", "takes a string"),
            ("name = 'n'\nkernel='k'\ncolour = 'red'", "unknown setting"),
            ("name = 'n'\nkernel='k'\ntype = 'hvm'", "only \"pvh\""),
            ("name = 'n'\nkernel='k'\ntype = 1", "takes a string"),
            ("name = 'n'\nkernel='k'\ncpu_weight = 0", "outside 1..65535"),
            (
                "name = 'n'\nkernel='k'\ncpu_weight = 65536",
                "outside 1..65535",
            ),
            ("name = 'n'\nkernel='k'\ncap = -1", "outside 0..6400"),
            ("name = 'n'\nkernel='k'\ncpus = '3-1'", "runs backwards"),
            ("name = 'n'\nkernel='k'\ncpus = '64'", "not a CPU number"),
            ("name = 'n'\nkernel='k'\ncpus = 'all,^all'", "names no CPU"),
            ("name = 'n'\nkernel='k'\nprivileged = 2", "takes 0 or 1"),
        ] {
            let e = DomainConfig::parse(text).unwrap_err();
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn cpu_lists() {
        let s = |t: &str| cpu_list(&Value::Str(t.into()));
        assert_eq!(s("all"), Ok(u64::MAX));
        assert_eq!(s("0"), Ok(1));
        assert_eq!(s("1-2, 5"), Ok(0b100110));
        assert_eq!(s("all,^0"), Ok(u64::MAX - 1));
        assert_eq!(s("63"), Ok(1 << 63));
        assert_eq!(cpu_list(&Value::Int(2)), Ok(4));
        assert_eq!(
            cpu_list(&Value::List(vec![Value::Int(0), Value::Str("3".into())])),
            Ok(0b1001)
        );
        for bad in ["", "x", "1-", "-1", "99", "0-64", "^0"] {
            assert!(s(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn boot_config_lists_domains() {
        let c = BootConfig::parse("domains = [\"a.cfg\", 'b.cfg']").unwrap();
        assert_eq!(c.domains, vec!["a.cfg".to_string(), "b.cfg".to_string()]);
        assert!(
            BootConfig::parse("domains = [1]")
                .unwrap_err()
                .message
                .contains("list of strings")
        );
        assert!(
            BootConfig::parse("domains = 'a'")
                .unwrap_err()
                .message
                .contains("list of strings")
        );
    }

    #[test]
    fn boot_config_lists_what_dom0_starts() {
        let c =
            BootConfig::parse("domains = ['dom0.cfg']\nautostart = ['web.cfg', 'db.cfg']").unwrap();
        assert_eq!(
            c.autostart,
            vec!["web.cfg".to_string(), "db.cfg".to_string()]
        );
        assert!(c.unknown.is_empty());
        assert!(BootConfig::parse("autostart = 3").is_err());
    }

    #[test]
    fn boot_config_meaning() {
        let c = BootConfig::parse("on_ready = \"poweroff\"\nlog_level = 'debug'\nfuture = 1\n")
            .unwrap();
        assert_eq!(c.on_ready, OnReady::Poweroff);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.unknown, vec!["future".to_string()]);
        assert_eq!(BootConfig::parse("").unwrap(), BootConfig::default());
        let c = BootConfig::parse(
            "sched_credit_tslice_ms = 10\nsched_ratelimit_us = 0\nrun_for_ms = 2500\nsched_sample_ms = 100",
        )
        .unwrap();
        assert_eq!(
            (c.tslice_ms, c.ratelimit_us, c.run_for_ms, c.sample_ms),
            (10, 0, Some(2500), 100)
        );
        for bad in [
            "sched_credit_tslice_ms = 0",
            "run_for_ms = 'x'",
            "sched_ratelimit_us = -1",
        ] {
            assert!(
                BootConfig::parse(bad)
                    .unwrap_err()
                    .message
                    .contains("takes an integer in")
            );
        }
        assert!(
            BootConfig::parse("on_ready = \"explode\"")
                .unwrap_err()
                .message
                .contains("unknown action")
        );
        assert!(
            BootConfig::parse("on_ready = 1")
                .unwrap_err()
                .message
                .contains("takes a string")
        );
    }
}
