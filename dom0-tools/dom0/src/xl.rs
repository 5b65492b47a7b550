//! `xl` on the control domain: the commands, on `domctl` and `sysctl`, printed in Xen's
//! formats (`oxen_toolstack::format`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use oxen_core::archive::CONFIG_NAME;
use oxen_core::config::{Action, BootConfig, DomainConfig};
use oxen_guest_rt::abi::domctl::{self, DomainInfo};
use oxen_guest_rt::abi::sysctl::{self, GetDomainInfoList, ReadConsole};
use oxen_guest_rt::control;
use oxen_toolstack::format::{self, DomainRow, HostInfo, VcpuRow};
use oxen_toolstack::json;
use oxen_toolstack::{EXIT_FAIL, EXIT_OK, EXIT_USAGE, resolve};

use crate::consoles::Consoles;
use crate::files::Files;
use crate::out;
use crate::store::Store;

pub const HELP: &str = "\
Commands of the control domain:
  xl create [-p] [-c] FILE [KEY=VALUE...]   build a domain from an xl.cfg (in /etc/xen);
                                 -p: leave it paused, -c: attach to its console
  xl list [DOMAIN]               the domains (Xen's columns)
  xl info                        the host and the hypervisor
  xl uptime [DOMAIN]             how long each domain has run
  xl dmesg [-c]                  the hypervisor's log (-c: then clear it)
  xl pause DOMAIN                stop a domain's vCPUs
  xl unpause DOMAIN              let them run again
  xl shutdown [-w] DOMAIN        ask a domain to power off (its control/shutdown node);
                                 -w: wait until it has
  xl reboot DOMAIN               ask a domain to reboot (likewise)
  xl destroy DOMAIN              end a domain at once
  xl console DOMAIN              attach to a domain's console (Ctrl-] detaches)
  xl vcpu-list [DOMAIN]          every vCPU: pCPU, state, time, affinity
  xl vcpu-pin DOMAIN VCPU|all CPUS   hard affinity (e.g. 0-1,3 or all)
  xl vcpu-set DOMAIN N           ask it to have N vCPUs online (up to its maxvcpus)
  xl sched-credit [-d DOMAIN [-w WEIGHT] [-c CAP]]   a domain's credit parameters
  xl sched-credit -s [-t MS] [-r US] [-m US]   the pool's time slice, rate limit and
                                 migration delay
  xenstore-ls [PATH]             the XenStore below PATH
  xenstore-read PATH...          values of XenStore nodes
  xenstore-write PATH VALUE...   set them
  xenstore-rm PATH...            remove them (and below)
  xenstore-watch [-n NR] PATH    print each change at or below PATH (Ctrl-C ends)
  xenstore-chmod PATH PERM...    set a node's permissions (n0 r3 w4 b5: owner first)
  sleep SECONDS                  wait (e.g. 0.5; Ctrl-C ends it)
  ls [DIR]                       the files: /etc/xen (configurations), /images
  cat FILE                       a file
  poweroff                       end every domain, then the machine
  help                           this list
A DOMAIN is a name or an id.
";

/// Restarts in a row, each less than [`QUICK_NS`] after the one before, after which a
/// domain is not restarted again (a guest that crashes at once would loop forever).
const MAX_QUICK_RESTARTS: u32 = 5;
const QUICK_NS: u64 = 10_000_000_000;

/// How long `xl destroy` waits for the domain to be gone (as Xen's returns once the
/// domain's resources are relinquished).
const DESTROY_WAIT_NS: u64 = 2_000_000_000;

/// Whether domain `id` is gone from the hypervisor's list within `ns`.
fn gone_within(id: u16, ns: u64) -> bool {
    let deadline = oxen_guest_rt::time::now_ns() + ns;
    loop {
        if control::domain_info(id).map_or(true, |i| i.domain != id) {
            return true;
        }
        let now = oxen_guest_rt::time::now_ns();
        if now >= deadline {
            return false;
        }
        oxen_guest_rt::vcpu::sleep_until(0, now + 1_000_000);
    }
}

/// A domain this toolstack built, and how to build it again.
struct Created {
    path: String,
    overrides: Vec<String>,
    name: String,
    /// `on_poweroff`, `on_reboot`, `on_crash`, `on_watchdog`.
    on: [Action; 4],
    started_ns: u64,
    quick_restarts: u32,
}

/// The toolstack's state: its files, the names it knows, the last exit code.
pub struct Xl {
    pub files: Files,
    names: BTreeMap<u16, String>,
    /// The configurations (and UUIDs, Xen's form) of the domains it built or adopted.
    configs: BTreeMap<u16, (DomainConfig, String)>,
    /// Domains this toolstack built; when one shuts down, its `on_*` action is applied.
    created: BTreeMap<u16, Created>,
    /// The XenStore this domain serves.
    pub store: Store,
    /// The consoles it serves.
    pub consoles: Consoles,
    /// Domains `xl shutdown -w` waits for (the prompt comes back when they are done).
    pub waiting: Vec<u16>,
    /// Lines about what happened on its own (a domain restarted, a wait ended), for the
    /// shell to show above its prompt.
    pub notices: Vec<String>,
    /// `sleep`: the prompt comes back at this system time (ns).
    pub sleeping_until: Option<u64>,
    pub last_exit: i32,
}

fn fail(msg: &str) -> i32 {
    out(msg);
    out("\n");
    EXIT_FAIL
}

fn usage(msg: &str) -> i32 {
    out(msg);
    out("\n");
    EXIT_USAGE
}

impl Xl {
    pub fn new(files: Files) -> Self {
        let mut names = BTreeMap::new();
        names.insert(0, String::from("Domain-0"));
        Xl {
            files,
            names,
            configs: BTreeMap::new(),
            created: BTreeMap::new(),
            store: Store::new(),
            consoles: Consoles::new(),
            waiting: Vec::new(),
            notices: Vec::new(),
            sleeping_until: None,
            last_exit: 0,
        }
    }

    /// Names the domains the hypervisor built at boot, from `boot.cfg`: the privileged
    /// one is domain 0 (this one), the others got ids from 1 in the order listed.
    /// Returns how many of them exist.
    pub fn adopt(&mut self) -> usize {
        let Some(boot) = self.boot_config() else {
            return 0;
        };
        let mut next = 1u16;
        let mut adopted = 0;
        for name in &boot.domains {
            let Some(cfg) = self
                .files
                .get(&format!("/etc/xen/{name}"))
                .and_then(|b| core::str::from_utf8(b).ok())
                .and_then(|t| DomainConfig::parse(t).ok())
            else {
                continue;
            };
            if cfg.privileged {
                continue;
            }
            let id = next;
            next += 1;
            if control::domain_info(id).is_ok_and(|i| i.domain == id) {
                let uuid = oxen_core::config::format_uuid(
                    &cfg.uuid.unwrap_or_else(crate::create::made_up_uuid),
                );
                if let Err(e) = self
                    .store
                    .adopt(&oxen_toolstack::build::facts(id, &cfg, &uuid))
                {
                    out(&format!("oxen dom0: domain {id}'s store nodes: {e}\n"));
                }
                self.names.insert(id, cfg.name.clone());
                self.configs.insert(id, (cfg, uuid));
                adopted += 1;
            }
        }
        adopted
    }

    /// The boot archive's `boot.cfg`, if it is there and sound.
    fn boot_config(&self) -> Option<BootConfig> {
        self.files
            .get(&format!("/{CONFIG_NAME}"))
            .and_then(|b| core::str::from_utf8(b).ok())
            .and_then(|t| BootConfig::parse(t).ok())
    }

    /// Builds the domains `boot.cfg` lists in `autostart` (Xen's `/etc/xen/auto`), in
    /// order, as `xl create` would; returns how many it built. What fails says why.
    pub fn autostart(&mut self) -> usize {
        let Some(boot) = self.boot_config() else {
            return 0;
        };
        let (paths, missing) = self.files.add_auto(&boot.autostart);
        for m in missing {
            out(&format!("oxen dom0: autostart: {m} is not in /etc/xen\n"));
        }
        let mut built = 0;
        for p in paths {
            out(&format!("oxen dom0: autostart: Parsing config from {p}\n"));
            match self.build(&p, &[], false, 0) {
                Ok(_) => built += 1,
                Err(e) => out(&format!("oxen dom0: autostart: {e}\n")),
            }
        }
        built
    }

    /// Every domain, as `getdomaininfolist` gives them.
    fn domains(&self) -> Vec<DomainInfo> {
        let max = 1024u32;
        let mut buf = vec![0u8; max as usize * DomainInfo::SIZE];
        let l = GetDomainInfoList {
            first_domain: 0,
            max_domains: max,
            buffer: buf.as_mut_ptr() as u64,
            ..GetDomainInfoList::default()
        };
        let (rc, op) = control::sysctl(sysctl::cmd::GETDOMAININFOLIST, &l.to_bytes());
        if rc != 0 {
            return Vec::new();
        }
        let n = GetDomainInfoList::from_bytes(&op[sysctl::offset::U..])
            .map_or(0, |l| l.num_domains as usize);
        (0..n.min(max as usize))
            .filter_map(|i| DomainInfo::from_bytes(&buf[i * DomainInfo::SIZE..]))
            .collect()
    }

    fn name(&self, id: u16) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| String::from("(null)"))
    }

    fn rows(&mut self) -> Vec<DomainRow> {
        let domains = self.domains();
        self.rows_of(&domains)
    }

    /// The rows of `domains` (one `getdomaininfolist`).
    fn rows_of(&mut self, domains: &[DomainInfo]) -> Vec<DomainRow> {
        // Names of domains that are gone are forgotten (their ids may come back).
        self.names
            .retain(|id, _| *id == 0 || domains.iter().any(|d| d.domain == *id));
        self.configs
            .retain(|id, _| domains.iter().any(|d| d.domain == *id));
        domains
            .iter()
            .map(|d| DomainRow {
                id: d.domain,
                name: self.name(d.domain),
                pages: d.tot_pages,
                online_vcpus: d.nr_online_vcpus,
                flags: d.flags,
                cpu_ns: d.cpu_time,
            })
            .collect()
    }

    /// The domain `arg` names, or Xen's error line printed.
    fn domain(&mut self, arg: &str) -> Result<u16, i32> {
        resolve(arg, &self.rows()).map_err(|e| fail(&e))
    }

    /// `xl ARGS…`; the exit code. `xl -v` (Xen's verbose flag) also says how many TSC
    /// ticks a `create` or `destroy` took, and when a created domain's console first
    /// wrote (under Bochs, ticks count instructions: `cargo xtask bench` reads them).
    pub fn run(&mut self, args: &[&str]) -> i32 {
        if let ["-v", rest @ ..] = args {
            let t0 = oxen_guest_rt::arch::rdtsc();
            let code = self.run(rest);
            let ticks = oxen_guest_rt::arch::rdtsc() - t0;
            match rest.first() {
                Some(&"create") if code == EXIT_OK => {
                    if let Some((&id, _)) = self.created.iter().max_by_key(|(_, c)| c.started_ns) {
                        out(&format!(
                            "xl: domain {id} built in {ticks} ticks (xl create began at tsc {t0})\n"
                        ));
                        self.consoles.time_first_output(id, t0);
                    }
                }
                Some(&"destroy") if code == EXIT_OK => {
                    out(&format!("xl: destroyed in {ticks} ticks\n"));
                }
                _ => {}
            }
            return code;
        }
        match args {
            [] => usage("Usage: xl [-v] <subcommand> [args]  (try 'help')"),
            ["list", rest @ ..] => self.list(rest),
            ["create", rest @ ..] => self.create(rest),
            ["info"] => self.info(),
            ["uptime", rest @ ..] => self.uptime(rest),
            ["dmesg"] => dmesg(false),
            ["dmesg", "-c"] => dmesg(true),
            ["pause", d] => self.simple(domctl::cmd::PAUSEDOMAIN, d, "pause"),
            ["unpause", d] => self.simple(domctl::cmd::UNPAUSEDOMAIN, d, "unpause"),
            ["shutdown", d] => self
                .pv_control(d, "poweroff", "shutdown")
                .map_or_else(|code| code, |_| EXIT_OK),
            ["shutdown", "-w", d] | ["shutdown", d, "-w"] => {
                match self.pv_control(d, "poweroff", "shutdown") {
                    Ok(id) => {
                        out("Waiting for 1 domains\n");
                        self.waiting.push(id);
                        EXIT_OK
                    }
                    Err(code) => code,
                }
            }
            ["reboot", d] => self
                .pv_control(d, "reboot", "reboot")
                .map_or_else(|code| code, |_| EXIT_OK),
            ["destroy", "-f", d] => self.destroy(d, true),
            ["destroy", d] => self.destroy(d, false),
            ["console", d] | ["console", "-t", "pv", d] => self.console(d),
            ["vcpu-list", rest @ ..] => self.vcpu_list(rest),
            ["vcpu-pin", d, v, cpus] => self.vcpu_pin(d, v, cpus),
            ["vcpu-set", d, n] => self.vcpu_set(d, n),
            ["sched-credit", rest @ ..] => self.sched_credit(rest),
            [
                "info" | "dmesg" | "pause" | "unpause" | "destroy" | "vcpu-pin" | "vcpu-set"
                | "shutdown" | "reboot" | "console",
                ..,
            ] => usage("xl: wrong arguments (see 'help')"),
            [cmd, ..] => fail(&format!("xl: command '{cmd}' is not implemented")),
        }
    }

    fn list(&mut self, rest: &[&str]) -> i32 {
        if let ["-l" | "--long", rest @ ..] = rest {
            return self.list_long(rest);
        }
        let rows = match self.selected(rest, "Usage: xl list [DOMAIN]") {
            Ok((_, rows)) => rows,
            Err(code) => return code,
        };
        out(&format::list(&rows));
        EXIT_OK
    }

    /// The domains an optional `[DOMAIN]` argument selects (all, or the one it names),
    /// with their rows; an unknown one or more arguments print their line and give the
    /// exit code.
    fn selected(
        &mut self,
        rest: &[&str],
        usage_line: &str,
    ) -> Result<(Vec<DomainInfo>, Vec<DomainRow>), i32> {
        let domains = self.domains();
        let rows = self.rows_of(&domains);
        let id = match rest {
            [] => None,
            [d] => Some(resolve(d, &rows).map_err(|e| fail(&e))?),
            _ => return Err(usage(usage_line)),
        };
        let wanted = |d: u16| id.is_none_or(|id| id == d);
        Ok((
            domains.into_iter().filter(|d| wanted(d.domain)).collect(),
            rows.into_iter().filter(|r| wanted(r.id)).collect(),
        ))
    }

    /// `xl list -l [DOMAIN]`: the configurations as JSON (libxl's shape).
    fn list_long(&mut self, rest: &[&str]) -> i32 {
        let domains = match self.selected(rest, "Usage: xl list -l [DOMAIN]") {
            Ok((domains, _)) => domains,
            Err(code) => return code,
        };
        let described: Vec<json::Described<'_>> = domains
            .iter()
            .map(|d| {
                let known = self.configs.get(&d.domain);
                json::Described {
                    id: d.domain,
                    name: self.names.get(&d.domain).map_or("", String::as_str),
                    uuid: known.map(|(_, u)| u.as_str()),
                    cfg: known.map(|(c, _)| c),
                    max_vcpus: d.max_vcpu_id + 1,
                    max_kib: d.max_pages * 4,
                    target_kib: d.tot_pages * 4,
                }
            })
            .collect();
        out(&json::list_long(&described));
        EXIT_OK
    }

    /// `xl uptime [DOMAIN]`: from its build for the domains this toolstack built, from
    /// the machine's boot for the others (dom0, the boot-time domains).
    fn uptime(&mut self, rest: &[&str]) -> i32 {
        let rows = match self.selected(rest, "Usage: xl uptime [DOMAIN]") {
            Ok((_, rows)) => rows,
            Err(code) => return code,
        };
        let now = oxen_guest_rt::time::now_ns();
        let up: Vec<(String, u16, u64)> = rows
            .iter()
            .map(|r| {
                let since = self.created.get(&r.id).map_or(0, |c| c.started_ns);
                (
                    r.name.clone(),
                    r.id,
                    now.saturating_sub(since) / 1_000_000_000,
                )
            })
            .collect();
        out(&format::uptime(&up));
        EXIT_OK
    }

    fn info(&self) -> i32 {
        let Ok(p) = control::physinfo() else {
            return fail("xl info: physinfo failed");
        };
        // SAFETY: XENVER_version takes no buffer.
        let version = unsafe { oxen_guest_rt::hypercall::xen_version(0, 0) };
        let h = HostInfo {
            nr_cpus: p.nr_cpus,
            cpu_khz: p.cpu_khz,
            total_pages: p.total_pages,
            free_pages: p.free_pages,
            xen_major: (version >> 16) as u32,
            xen_minor: (version & 0xffff) as u32,
            xen_extra: String::from("-oxen"),
            xen_caps: String::from("hvm-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p"),
            virt_caps: String::from("hvm hap"),
        };
        out(&format::info(&h));
        EXIT_OK
    }

    fn simple(&mut self, cmd: u32, arg: &str, what: &str) -> i32 {
        match self.domain(arg) {
            Ok(id) => domctl_on(cmd, id, what),
            Err(code) => code,
        }
    }

    fn destroy(&mut self, arg: &str, force: bool) -> i32 {
        let id = match self.domain(arg) {
            Ok(id) => id,
            Err(code) => return code,
        };
        if id == 0 && !force {
            return fail(
                "Not destroying domain 0; use -f to force.\nThis can only be done when using a disaggregated hardware domain and toolstack.",
            );
        }
        // Its name stays while it is listed (dying); `rows` forgets it once it is gone.
        // Destroyed on purpose: no `on_*` action applies.
        self.created.remove(&id);
        self.let_go(id);
        let code = domctl_on(domctl::cmd::DESTROYDOMAIN, id, "destroy");
        if code == EXIT_OK && !gone_within(id, DESTROY_WAIT_NS) {
            return fail(&format!(
                "xl destroy: domain {id} is still dying after {} ms",
                DESTROY_WAIT_NS / 1_000_000
            ));
        }
        code
    }

    /// `xl console DOMAIN`: the terminal goes to the domain's console (what it wrote so
    /// far first) until Ctrl-] (the input loop does the rest).
    fn console(&mut self, arg: &str) -> i32 {
        let id = match self.domain(arg) {
            Ok(id) => id,
            Err(code) => return code,
        };
        let Some(history) = self.consoles.history(id) else {
            return fail(&if id == 0 {
                String::from("xl console: domain 0's console is this one")
            } else {
                format!(
                    "xl console: domain {id} was built at boot: its console is the hypervisor's (Ctrl-A three times reaches it)"
                )
            });
        };
        crate::raw(&history);
        self.consoles.attached = Some(id);
        EXIT_OK
    }

    /// `xl shutdown` / `xl reboot`: asks the domain through its `control/shutdown` node,
    /// as Xen's toolstack does; the domain acknowledges and shuts itself down.
    fn pv_control(&mut self, arg: &str, request: &str, cmd: &str) -> Result<u16, i32> {
        let id = self.domain(arg)?;
        // As libxl: a guest that never asked for event-channel upcalls runs no PV drivers
        // and would never see the request.
        let callback =
            oxen_guest_rt::xen::get_param_of(id, oxen_guest_rt::xen::hvm_param::CALLBACK_IRQ);
        if callback.unwrap_or(0) == 0 {
            return Err(fail(&format!(
                "PV control interface not available: external graceful shutdown not possible.\n\
                 (domain {id} set no HVM_PARAM_CALLBACK_IRQ; xl destroy ends it)"
            )));
        }
        match self.store.request_shutdown(id, request) {
            Ok(()) => {
                if request == "reboot" {
                    out(&format!("Rebooting domain {id}\n"));
                } else {
                    out(&format!("Shutting down domain {id}\n"));
                }
                Ok(id)
            }
            Err(e) => Err(fail(&format!("xl {cmd}: domain {id}: {e}"))),
        }
    }

    /// `xl vcpu-set DOMAIN N`: Xen's PV CPU hot-plug. Writes `cpu/i/availability` =
    /// `online` for i < N and `offline` for the rest of its vCPUs; the guest watches
    /// those nodes and brings its vCPUs up or down.
    fn vcpu_set(&mut self, d: &str, n: &str) -> i32 {
        let id = match self.domain(d) {
            Ok(id) => id,
            Err(code) => return code,
        };
        let Ok(n) = n.parse::<u32>() else {
            return usage("Usage: xl vcpu-set DOMAIN N (a number of vCPUs)");
        };
        let Ok(info) = control::domain_info(id) else {
            return fail(&format!("xl vcpu-set: domain {id}: getdomaininfo failed"));
        };
        let max = info.max_vcpu_id + 1;
        if n == 0 || n > max {
            return fail(&format!(
                "xl vcpu-set: requested {n} vCPUs, however maxcpus is {max} (and at least 1)"
            ));
        }
        let home = oxen_toolstack::store::domain_path(id);
        for v in 0..max {
            let path = format!("{home}{}", oxen_toolstack::store::availability_path(v));
            let value = oxen_toolstack::store::availability(v < n);
            if let Err(e) = self.store.write(&path, value) {
                return fail(&format!("xl vcpu-set: domain {id}: {path}: {e}"));
            }
        }
        EXIT_OK
    }

    /// `xl create [-p] [-c] FILE [key=value…]`.
    fn create(&mut self, rest: &[&str]) -> i32 {
        let (mut paused, mut attach) = (false, false);
        let mut args = rest;
        while let Some((flag, more)) = args.split_first() {
            match *flag {
                "-p" => paused = true,
                "-c" => attach = true,
                _ => break,
            }
            args = more;
        }
        let Some((file, overrides)) = args.split_first() else {
            return usage("Usage: xl create [-p] [-c] FILE [key=value ...]");
        };
        let path = if file.starts_with('/') {
            String::from(*file)
        } else {
            format!("/etc/xen/{file}")
        };
        out(&format!("Parsing config from {path}\n"));
        let overrides: Vec<String> = overrides.iter().map(|o| String::from(*o)).collect();
        match self.build(&path, &overrides, paused, 0) {
            Ok(id) => {
                if attach {
                    self.consoles.attached = Some(id);
                }
                EXIT_OK
            }
            Err(e) => fail(&e),
        }
    }

    /// Builds a domain from `path` with `overrides` and records it.
    fn build(
        &mut self,
        path: &str,
        overrides: &[String],
        paused: bool,
        quick_restarts: u32,
    ) -> Result<u16, String> {
        let rows = self.rows();
        let taken = |name: &str| rows.iter().any(|r| r.name == name);
        let o: Vec<&str> = overrides.iter().map(String::as_str).collect();
        let b = crate::create::create(
            &self.files,
            path,
            &o,
            paused,
            taken,
            &mut self.store,
            &mut self.consoles,
        )?;
        let c = &b.cfg;
        self.created.insert(
            b.id,
            Created {
                path: String::from(path),
                overrides: overrides.to_vec(),
                name: c.name.clone(),
                on: [c.on_poweroff, c.on_reboot, c.on_crash, c.on_watchdog],
                started_ns: oxen_guest_rt::time::now_ns(),
                quick_restarts,
            },
        );
        let uuid = oxen_core::config::format_uuid(&b.uuid);
        self.names.insert(b.id, b.cfg.name.clone());
        self.configs.insert(b.id, (b.cfg, uuid));
        Ok(b.id)
    }

    /// Applies the `on_*` action of each domain this toolstack built that has shut
    /// down, and lets the store and consoles of the domains that went go; called when
    /// `VIRQ_DOM_EXC` says a domain changed.
    pub fn reap(&mut self) {
        let domains = self.domains();
        let info = |id: u16| domains.iter().find(|d| d.domain == id);
        let ended = |id: u16| {
            info(id)
                .is_none_or(|d| d.flags & (domctl::dominf::SHUTDOWN | domctl::dominf::DYING) != 0)
        };
        let going: Vec<u16> = self.store.served().filter(|&id| ended(id)).collect();
        for id in going {
            self.store.release(id);
        }
        // What `xl shutdown -w` waits for, before the `on_*` actions change it.
        self.waiting.retain(|&id| match info(id) {
            None => {
                self.notices.push(format!("Domain {id} has been destroyed"));
                false
            }
            Some(d) => match domctl::dominf::shutdown_code(d.flags) {
                Some(code) => {
                    self.notices.push(format!(
                        "Domain {id} has been shut down, reason code {code}"
                    ));
                    false
                }
                None => true,
            },
        });
        let ids: Vec<u16> = self.created.keys().copied().collect();
        for id in ids {
            let Some(d) = info(id) else {
                self.created.remove(&id);
                self.consoles.release(id);
                continue;
            };
            let Some(code) = domctl::dominf::shutdown_code(d.flags) else {
                continue;
            };
            if let Some(c) = self.created.remove(&id) {
                self.ended(id, c, code);
            }
        }
    }

    /// Domain `id` shut down with `code`: its `on_*` action.
    fn ended(&mut self, id: u16, c: Created, code: u32) {
        use oxen_guest_rt::abi::sched_op as so;
        let (why, key, action) = match code {
            so::SHUTDOWN_POWEROFF => ("poweroff", "on_poweroff", c.on[0]),
            so::SHUTDOWN_REBOOT => ("reboot", "on_reboot", c.on[1]),
            so::SHUTDOWN_CRASH => ("crash", "on_crash", c.on[2]),
            so::SHUTDOWN_WATCHDOG => ("watchdog", "on_watchdog", c.on[3]),
            // A suspended domain waits for whoever suspended it.
            _ => ("suspend", "suspend", Action::Preserve),
        };
        let head = format!("oxen dom0: domain {id} ({}) shut down ({why})", c.name);
        if action == Action::Preserve {
            // Kept, console and all, until `xl destroy`.
            self.notices
                .push(format!("{head}; preserved ({key} = \"preserve\")"));
            return;
        }
        let attached = self.consoles.attached == Some(id);
        self.let_go(id);
        control::domctl(domctl::cmd::DESTROYDOMAIN, id, &[]);
        if !(action.restarts() || action == Action::SoftReset) {
            return;
        }
        let now = oxen_guest_rt::time::now_ns();
        let quick = if now.saturating_sub(c.started_ns) < QUICK_NS {
            c.quick_restarts + 1
        } else {
            0
        };
        if quick > MAX_QUICK_RESTARTS {
            self.notices.push(format!(
                "{head}; restarted {MAX_QUICK_RESTARTS} times in a row within {} s of starting: not restarting it again",
                QUICK_NS / 1_000_000_000
            ));
            return;
        }
        // Its name is free once it is gone from the list.
        self.names.remove(&id);
        match self.build(&c.path, &c.overrides, false, quick) {
            Ok(new) => {
                self.notices
                    .push(format!("{head}; restarted as domain {new}"));
                if attached {
                    self.consoles.attached = Some(new);
                }
            }
            Err(e) => self
                .notices
                .push(format!("{head}; restarting it failed: {e}")),
        }
    }

    /// Destroys every domain but this one.
    pub fn destroy_all_others(&mut self) {
        self.created.clear();
        for d in self.domains().iter().filter(|d| d.domain != 0) {
            self.let_go(d.domain);
            control::domctl(domctl::cmd::DESTROYDOMAIN, d.domain, &[]);
        }
    }

    /// What dom0 serves for domain `id` goes, before the domain is destroyed: its
    /// store (nodes, ring) and its console.
    fn let_go(&mut self, id: u16) {
        self.store.release(id);
        self.consoles.release(id);
    }

    fn vcpu_list(&mut self, rest: &[&str]) -> i32 {
        let domains = match self.selected(rest, "Usage: xl vcpu-list [DOMAIN]") {
            Ok((domains, _)) => domains,
            Err(code) => return code,
        };
        let nr_cpus = control::physinfo().map_or(1, |p| p.nr_cpus);
        let mut vcpus = Vec::new();
        for d in &domains {
            for v in 0..=d.max_vcpu_id {
                let Ok(i) = control::vcpu_info(d.domain, v) else {
                    continue;
                };
                let hard =
                    control::affinity(domctl::cmd::GETVCPUAFFINITY, d.domain, v, 0).unwrap_or(0);
                vcpus.push(VcpuRow {
                    domain: self.name(d.domain),
                    id: d.domain,
                    vcpu: v,
                    online: i.online != 0,
                    running: i.running != 0,
                    blocked: i.blocked != 0,
                    cpu: i.cpu,
                    cpu_ns: i.cpu_time,
                    hard,
                });
            }
        }
        out(&format::vcpu_list(&vcpus, nr_cpus));
        EXIT_OK
    }

    fn vcpu_pin(&mut self, arg: &str, vcpu: &str, cpus: &str) -> i32 {
        let domains = self.domains();
        let id = match resolve(arg, &self.rows_of(&domains)) {
            Ok(id) => id,
            Err(e) => return fail(&e),
        };
        let Some(mask) = parse_cpus(cpus) else {
            return usage(&format!(
                "xl vcpu-pin: '{cpus}' is not a CPU list (e.g. 0-1,3 or all)"
            ));
        };
        let max = domains
            .iter()
            .find(|d| d.domain == id)
            .map_or(0, |d| d.max_vcpu_id);
        let which: Vec<u32> = match vcpu {
            "all" => (0..=max).collect(),
            v => match v.parse::<u32>() {
                Ok(n) => vec![n],
                Err(_) => return usage(&format!("xl vcpu-pin: '{v}' is not a vCPU number")),
            },
        };
        for v in which {
            if let Err(rc) = control::affinity(domctl::cmd::SETVCPUAFFINITY, id, v, mask) {
                return fail(&format!(
                    "xl vcpu-pin: domain {id} vCPU {v}: failed (rc={rc})"
                ));
            }
        }
        EXIT_OK
    }

    fn sched_credit(&mut self, rest: &[&str]) -> i32 {
        use oxen_toolstack::sched::{self, SchedCredit};
        let pool = |set| {
            control::pool_credit(set).map(|(tslice_ms, ratelimit_us, migr_delay_us)| {
                format::PoolLimits {
                    tslice_ms,
                    ratelimit_us,
                    migr_delay_us,
                }
            })
        };
        let unavailable = |rc| {
            fail(&format!(
                "xl sched-credit: the pool's settings are unavailable (rc={rc})"
            ))
        };
        let rows = self.rows();
        let table = |ids: &[u16]| -> Vec<(String, u16, u16, u16)> {
            ids.iter()
                .filter_map(|&id| {
                    let (w, c) = control::credit(id, None).ok()?;
                    Some((self.name(id), id, w, c))
                })
                .collect()
        };
        let one = |d: &str| resolve(d, &rows);
        match sched::parse(rest) {
            Err((2, line)) => usage(&line),
            Err((_, line)) => fail(&line),
            Ok(SchedCredit::List) => match pool(None) {
                Ok(p) => {
                    let ids: Vec<u16> = rows.iter().map(|r| r.id).collect();
                    out(&format::sched_credit(&table(&ids), &p));
                    EXIT_OK
                }
                Err(rc) => unavailable(rc),
            },
            Ok(SchedCredit::Show(d)) => match one(d) {
                Ok(id) => {
                    out(&format::credit_rows(&table(&[id])));
                    EXIT_OK
                }
                Err(e) => fail(&e),
            },
            Ok(SchedCredit::Set {
                domain,
                weight,
                cap,
            }) => {
                let id = match one(domain) {
                    Ok(id) => id,
                    Err(e) => return fail(&e),
                };
                let now = control::credit(id, None).unwrap_or((256, 0));
                let set = (weight.unwrap_or(now.0), cap.unwrap_or(now.1));
                match control::credit(id, Some(set)) {
                    Ok(_) => EXIT_OK,
                    Err(rc) => fail(&format!("xl sched-credit: domain {id}: failed (rc={rc})")),
                }
            }
            Ok(SchedCredit::ShowPool) => match pool(None) {
                Ok(p) => {
                    out(&format::pool_line(&p));
                    EXIT_OK
                }
                Err(rc) => unavailable(rc),
            },
            Ok(SchedCredit::SetPool {
                tslice_ms,
                ratelimit_us,
                migr_delay_us,
            }) => {
                let now = match pool(None) {
                    Ok(now) => now,
                    Err(rc) => return unavailable(rc),
                };
                let set = (
                    tslice_ms.unwrap_or(now.tslice_ms),
                    ratelimit_us.unwrap_or(now.ratelimit_us),
                    migr_delay_us.unwrap_or(now.migr_delay_us),
                );
                match pool(Some(set)) {
                    Ok(_) => EXIT_OK,
                    Err(rc) => fail(&format!(
                        "xl sched-credit: tslice={}ms ratelimit={}us migration-delay={}us refused (rc={rc}): \
                         the slice is 1-1000 ms, the rate limit 0 or 100-500000 us and at most the slice, \
                         the delay at most 100000 us",
                        set.0, set.1, set.2
                    )),
                }
            }
        }
    }

    pub fn ls(&self, dir: Option<&str>) -> i32 {
        let dir = dir.unwrap_or("/");
        match self.files.list(dir) {
            Some(names) => {
                for (name, size) in names {
                    match size {
                        Some(n) => out(&format!("{n:>10}  {name}\n")),
                        None => out(&format!("{:>10}  {name}/\n", "")),
                    }
                }
                EXIT_OK
            }
            None => fail(&format!("ls: {dir}: no such directory")),
        }
    }

    pub fn cat(&self, paths: &[&str]) -> i32 {
        let mut code = EXIT_OK;
        for p in paths {
            match self.files.get(p) {
                Some(bytes) => out(&String::from_utf8_lossy(bytes)),
                None => code = fail(&format!("cat: {p}: no such file")),
            }
        }
        code
    }
}

/// `cmd` on domain `id`, no output unless it fails.
fn domctl_on(cmd: u32, id: u16, what: &str) -> i32 {
    match control::domctl(cmd, id, &[]).0 {
        0 => EXIT_OK,
        rc => fail(&format!("xl {what}: domain {id}: failed (rc={rc})")),
    }
}

/// `xl dmesg`: the hypervisor's log ring, then cleared if `clear`. Read whole before
/// any of it is printed (what this prints goes into the same ring).
fn dmesg(clear: bool) -> i32 {
    let mut buf = vec![0u8; 4096];
    let mut log = Vec::new();
    let mut index = 0u32;
    loop {
        let r = ReadConsole {
            clear: 0,
            incremental: 1,
            index,
            buffer: buf.as_mut_ptr() as u64,
            count: buf.len() as u32,
            ..ReadConsole::default()
        };
        let (rc, op) = control::sysctl(sysctl::cmd::READCONSOLE, &r.to_bytes());
        if rc != 0 {
            return fail(&format!("xl dmesg: readconsole failed (rc={rc})"));
        }
        let Some(r) = ReadConsole::from_bytes(&op[sysctl::offset::U..]) else {
            return EXIT_FAIL;
        };
        log.extend_from_slice(&buf[..r.count as usize]);
        index = r.index;
        if (r.count as usize) < buf.len() || log.len() >= 1 << 20 {
            break;
        }
    }
    out(&String::from_utf8_lossy(&log));
    if clear {
        let r = ReadConsole {
            clear: 1,
            incremental: 1,
            index: u32::MAX,
            buffer: buf.as_mut_ptr() as u64,
            count: 0,
            ..ReadConsole::default()
        };
        control::sysctl(sysctl::cmd::READCONSOLE, &r.to_bytes());
    }
    EXIT_OK
}

/// `all`, or a list such as `0-1,3`.
fn parse_cpus(s: &str) -> Option<u64> {
    if s == "all" {
        return Some(u64::MAX);
    }
    let mut mask = 0u64;
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if a > b || b >= 64 {
            return None;
        }
        for c in a..=b {
            mask |= 1 << c;
        }
    }
    (mask != 0).then_some(mask)
}
