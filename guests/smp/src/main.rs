//! `smp`: brings up every secondary vCPU with `VCPUOP_initialise`/`VCPUOP_up`, checks
//! that all of them run (the domain may have more vCPUs than the machine has pCPUs),
//! takes one down and up again, and checks the errors the vCPU and timer calls give
//! for bad arguments, the runstates and the periodic timer. Prints `smp: PASS`, takes
//! every vCPU down and so powers off (the last vCPU going down shuts the domain down).
//! With `handoff=N` it runs only the PAUSE-loop test instead (see [`handoff`]); with
//! `hotplug=1` it follows Xen's PV CPU hot-plug protocol instead (see [`hotplug`]).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use oxen_guest_rt::abi::errno::{EEXIST, EINVAL, ENOENT, EPERM, ETIME};
use oxen_guest_rt::abi::vcpu::{HVM_CONTEXT_SIZE, SSHOTTMR_FUTURE, runstate};
use oxen_guest_rt::hypercall::{hypercall, sched_yield};
use oxen_guest_rt::xenbus::Xenbus;
use oxen_guest_rt::{StartInfo, events, println, time, vcpu};

oxen_guest_rt::entry!(main);

static SPINS: [AtomicU64; vcpu::MAX_SECONDARY + 1] =
    [const { AtomicU64::new(0) }; vcpu::MAX_SECONDARY + 1];

extern "C" fn secondary(n: u32) -> ! {
    let counter = &SPINS[n as usize];
    let mut i = 0u64;
    loop {
        counter.fetch_add(1, Ordering::Relaxed);
        i += 1;
        // Sleep now and then: the timer works on every vCPU.
        if i.is_multiple_of(4096) {
            vcpu::sleep_until(n, time::now_ns() + 1_000_000);
        }
    }
}

static FAILURES: AtomicU64 = AtomicU64::new(0);

fn check(ok: bool, what: &str) {
    if !ok {
        FAILURES.fetch_add(1, Ordering::Relaxed);
        println!("smp: FAIL {what}");
    }
}

/// Yields until `cond` holds or `ms` milliseconds of system time pass.
fn wait_for(ms: u64, cond: impl Fn() -> bool) -> bool {
    let end = time::now_ns() + ms * 1_000_000;
    while time::now_ns() < end {
        if cond() {
            return true;
        }
        sched_yield();
    }
    cond()
}

/// The handoff test's flag: the round vCPU 1 is to answer next (odd: vCPU 1's turn).
static TURN: AtomicU64 = AtomicU64::new(0);
static ROUNDS: AtomicU64 = AtomicU64::new(0);

/// vCPU 1 of the handoff test: answers every odd turn, spinning with PAUSE between.
extern "C" fn answerer(_n: u32) -> ! {
    let rounds = ROUNDS.load(Ordering::Acquire);
    let mut want = 1;
    while want < 2 * rounds {
        while TURN.load(Ordering::Acquire) != want {
            core::hint::spin_loop();
        }
        TURN.store(want + 1, Ordering::Release);
        want += 2;
    }
    loop {
        vcpu::block();
    }
}

/// `handoff=N`: vCPUs 0 and 1 hand a token back and forth N times, each waiting in a
/// PAUSE spin loop. On one pCPU every handoff needs the spinner to give the pCPU up:
/// with PAUSE-loop exiting it yields within microseconds; without, it burns its slice.
fn handoff(rounds: u64) {
    ROUNDS.store(rounds, Ordering::Release);
    check(
        vcpu::initialise(1, answerer, vcpu::stack_top(1)) == 0 && vcpu::up(1) == 0,
        "vCPU 1 comes up",
    );
    let start = time::now_ns();
    for r in 0..rounds {
        TURN.store(2 * r + 1, Ordering::Release);
        while TURN.load(Ordering::Acquire) != 2 * r + 2 {
            core::hint::spin_loop();
        }
    }
    let ms = (time::now_ns() - start) / 1_000_000;
    println!("smp: handoff: {rounds} round trips between spinning vCPUs in {ms} ms");
    check(
        ms < rounds / 4,
        "a vCPU spinning with PAUSE gives its pCPU up at once (PAUSE-loop exiting)",
    );
    let failures = FAILURES.load(Ordering::Relaxed);
    if failures == 0 {
        println!("smp: PASS handoff");
    } else {
        panic!("smp: {failures} check(s) failed");
    }
}

/// `hotplug=1`: vCPUs come and go as the toolstack says (`xl vcpu-set`), as Linux's
/// Xen CPU hot-plug driver does: for each vCPU, `cpu/N/availability` in the store says
/// `online` or `offline`; the guest reads them at start and whenever its watch on `cpu`
/// fires, brings wanted vCPUs up (`VCPUOP_initialise` the first time, `VCPUOP_up`) and
/// unwanted ones down (`VCPUOP_down`), and checks each one's state with
/// `VCPUOP_is_up` and that an online one runs. It ends when `control/shutdown` asks.
fn hotplug() {
    if let Err(e) = events::init() {
        panic!("smp: hotplug: no event channels ({e})");
    }
    let mut bus = match Xenbus::open() {
        Ok(b) => b,
        Err(e) => panic!("smp: hotplug: no store ({e})"),
    };
    // vCPUs that exist: `is_up` is -ENOENT past the last.
    let max = (1..=vcpu::MAX_SECONDARY as u32 + 1)
        .find(|&n| vcpu::is_up(n) == -ENOENT)
        .unwrap_or(vcpu::MAX_SECONDARY as u32 + 1);
    let mut initialised = [false; vcpu::MAX_SECONDARY + 1];
    check(
        bus.watch("cpu", "cpu").is_ok() && bus.watch_shutdown().is_ok(),
        "watches for the toolstack",
    );
    let mut buf = [0u8; 32];
    // Every write of an availability node fires the watch: say the count when it changed.
    let mut said = 0;
    loop {
        let mut online = 1;
        for v in 1..max {
            let path = availability_path(v);
            let n = bus.read(0, path.as_str(), &mut buf).unwrap_or(0);
            let want = &buf[..n] == b"online";
            let up = vcpu::is_up(v) == 1;
            if want && !up {
                let ok = if initialised[v as usize] {
                    vcpu::up(v) == 0
                } else {
                    initialised[v as usize] = true;
                    vcpu::initialise(v, secondary, vcpu::stack_top(v)) == 0 && vcpu::up(v) == 0
                };
                let before = SPINS[v as usize].load(Ordering::Relaxed);
                let runs =
                    ok && wait_for(2000, || SPINS[v as usize].load(Ordering::Relaxed) > before);
                check(runs, "a vCPU brought up runs");
                println!("smp: hotplug: vCPU {v} up");
            } else if !want && up {
                check(
                    vcpu::down(v) == 0 && vcpu::is_up(v) == 0,
                    "a vCPU taken down is down",
                );
                println!("smp: hotplug: vCPU {v} down");
            }
            if vcpu::is_up(v) == 1 {
                online += 1;
            }
        }
        if online != said {
            println!("smp: hotplug: {online} of {max} vCPU(s) online");
            said = online;
        }
        // Wait for the next change (or a shutdown request).
        loop {
            let event = match bus.next_event(time::now_ns() + 600_000_000_000) {
                Ok(e) => e,
                Err(e) => panic!("smp: hotplug: no event ({e})"),
            };
            if event.token() == "cpu" {
                break;
            }
            match bus.take_shutdown_request() {
                Ok(None) => continue,
                Ok(Some(_)) => {}
                Err(_) => check(false, "acknowledges the shutdown"),
            }
            let failures = FAILURES.load(Ordering::Relaxed);
            if failures == 0 {
                println!("smp: PASS hotplug");
            } else {
                println!("smp: FAIL hotplug: {failures} check(s) failed");
            }
            return;
        }
    }
}

/// `cpu/V/availability` (the runtime has no allocator).
fn availability_path(v: u32) -> PathBuf {
    let mut p = PathBuf {
        bytes: [0; 32],
        len: 0,
    };
    p.push(b"cpu/");
    let digits = [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    p.push(if v >= 10 { &digits[..] } else { &digits[1..] });
    p.push(b"/availability");
    p
}

/// A short path in a fixed buffer.
struct PathBuf {
    bytes: [u8; 32],
    len: usize,
}

impl PathBuf {
    fn push(&mut self, s: &[u8]) {
        self.bytes[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

fn main(info: &StartInfo) {
    if info.cmdline_arg("hotplug") == Some("1") {
        hotplug();
        return;
    }
    if let Some(n) = info
        .cmdline_arg("handoff")
        .and_then(|v| v.parse::<u64>().ok())
    {
        handoff(n.clamp(1, 10_000));
        return;
    }
    // Bad arguments first, while vCPU 1 is still down and uninitialised.
    check(
        vcpu::up(1) == -EINVAL,
        "VCPUOP_up before initialise is -EINVAL",
    );
    check(vcpu::is_up(1) == 0, "vCPU 1 starts down");
    check(vcpu::is_up(999) == -ENOENT, "is_up of vCPU 999 is -ENOENT");
    check(
        vcpu::up(u32::MAX) == -ENOENT,
        "up of vCPU 2^32-1 is -ENOENT",
    );
    check(
        vcpu::initialise_raw(1, &[0xff; HVM_CONTEXT_SIZE]) == -EINVAL,
        "a context with an unknown mode is -EINVAL",
    );
    let mut bad = [0u8; HVM_CONTEXT_SIZE];
    bad[0] = 1; // 64-bit mode, but CR0/CR4/EFER all zero
    check(
        vcpu::initialise_raw(1, &bad) == -EINVAL,
        "a 64-bit context without paging is -EINVAL",
    );
    // SAFETY: a pointer the hypervisor cannot read: it must answer -EFAULT.
    let rc = unsafe { vcpu::vcpu_op(0, 1, 0xdead_0000_0000) };
    check(rc == -14, "an unreadable context is -EFAULT");
    check(
        vcpu::initialise_raw(0, &[0xff; HVM_CONTEXT_SIZE]) == -EEXIST,
        "initialise of a running vCPU is -EEXIST, whatever the context",
    );
    runstates();
    periodic_timer();
    check(
        vcpu::set_timer(0, 1, SSHOTTMR_FUTURE) == -ETIME,
        "a past deadline with VCPU_SSHOTTMR_future is -ETIME",
    );
    check(
        vcpu::set_timer(1, u64::MAX, 0) == -EINVAL,
        "another vCPU's timer is -EINVAL",
    );
    check(vcpu::stop_timer(0) == 0, "stop_singleshot_timer");
    // SAFETY: no argument; an unknown sub-op.
    check(
        unsafe { vcpu::vcpu_op(77, 0, 0) } == -38,
        "an unknown vcpu_op is -ENOSYS",
    );
    // An unprivileged domain may not use domctl.
    let op = [0u8; 144];
    // SAFETY: the hypervisor refuses before reading.
    let rc = unsafe { hypercall(36, op.as_ptr() as u64, 0, 0, 0, 0) };
    check(rc == -EPERM, "domctl from an unprivileged domain is -EPERM");

    let start = time::now_ns();
    vcpu::sleep_until(0, start + 5_000_000);
    check(
        time::now_ns() >= start + 5_000_000,
        "a 5 ms sleep lasts 5 ms",
    );

    reservations(info);
    hostile_contexts();
    check(
        vcpu::initialise(1, secondary, vcpu::stack_top(1)) == 0,
        "initialise vCPU 1",
    );
    check(
        vcpu::initialise(1, secondary, vcpu::stack_top(1)) == -EEXIST,
        "a second initialise is -EEXIST",
    );
    let n = vcpu::start_all(secondary);
    println!("smp: {n} vCPUs started");
    check(n >= 2, "the domain has secondary vCPUs");
    for k in 1..n {
        check(vcpu::is_up(k) == 1, "every started vCPU is up");
    }
    let all_ran = wait_for(3000, || {
        (1..n as usize).all(|k| SPINS[k].load(Ordering::Relaxed) > 10_000)
    });
    check(all_ran, "every secondary vCPU runs");
    if all_ran {
        println!("smp: all {n} vCPUs ran");
    }

    nmis();

    // Down and up again.
    check(vcpu::down(1) == 0, "VCPUOP_down(1)");
    check(vcpu::is_up(1) == 0, "vCPU 1 is down");
    wait_for(20, || false);
    let frozen = SPINS[1].load(Ordering::Relaxed);
    wait_for(50, || false);
    check(
        SPINS[1].load(Ordering::Relaxed) == frozen,
        "a down vCPU does not run",
    );
    check(vcpu::up(1) == 0, "VCPUOP_up(1) again");
    check(
        wait_for(1000, || SPINS[1].load(Ordering::Relaxed) > frozen + 1000),
        "vCPU 1 runs again where it stopped",
    );

    match vcpu::runstate(1) {
        Ok(r) => check(
            r.state == runstate::RUNNING
                || r.state == runstate::RUNNABLE
                || r.state == runstate::BLOCKED,
            "vCPU 1 is no longer offline",
        ),
        Err(_) => check(false, "get_runstate_info(1) after it came up"),
    }
    // The end: every secondary vCPU down, then vCPU 0, the last one, which powers the
    // domain off (as Xen does).
    for k in 1..n {
        check(vcpu::down(k) == 0, "VCPUOP_down of a secondary vCPU");
    }
    let failures = FAILURES.load(Ordering::Relaxed);
    if failures == 0 {
        println!("smp: PASS ({n} vCPUs)");
    } else {
        panic!("smp: {failures} check(s) failed");
    }
    let rc = vcpu::down(0);
    panic!("smp: FAIL VCPUOP_down of the last vCPU returned {rc} instead of shutting down");
}

/// `XENMEM_current_reservation`, `maximum_reservation` and `maximum_gpfn` of ourselves
/// (DOMID_SELF): our RAM in pages, and the pages a toolstack populated for us beyond it
/// (at most the 16 reserved ones above RAM: the store page when dom0 built us, none when
/// the hypervisor did), as Xen counts `tot_pages`; the maximum at least that; the last
/// frame at least our last RAM frame; another domain's: -EPERM.
fn reservations(info: &StartInfo) {
    let q = |cmd: u32, dom: u16| {
        let d = dom.to_le_bytes();
        // SAFETY: the hypervisor reads the 2-byte domid.
        unsafe { hypercall(12, u64::from(cmd), d.as_ptr() as u64, 0, 0, 0) }
    };
    let (cur, max, gpfn) = (q(3, 0x7ff0), q(4, 0x7ff0), q(14, 0x7ff0));
    let ram = (info.ram_end() / 4096) as i64;
    println!(
        "smp: reservations: current {cur}, maximum {max}, maximum_gpfn {gpfn:#x}; RAM {ram} pages"
    );
    check(
        cur >= ram && cur - ram <= 16,
        "current_reservation is our RAM in pages (and at most the 16 special pages)",
    );
    check(max >= cur, "maximum_reservation is at least that");
    check(
        gpfn >= ram - 1 && gpfn < 1 << 20,
        "maximum_gpfn covers our RAM (below 4 GiB)",
    );
    check(
        q(3, 999) == -EPERM,
        "another domain's reservation is -EPERM",
    );
}

/// Contexts that would fail VM entry get `-EINVAL` (and leave vCPU 1 uninitialised):
/// SS with DPL 3, an execute-only code segment as DS, a 4 GiB CS limit with G = 0,
/// EFER.LMA without paging, CR3 beyond the physical address width.
fn hostile_contexts() {
    use oxen_guest_rt::abi::vcpu::{HvmContext, HvmSegment};
    let seg = |ar| HvmSegment {
        base: 0,
        limit: 0xffff_ffff,
        ar,
    };
    let base = |segs: [HvmSegment; 5], efer: u64| HvmContext::Mode32 {
        gprs: [0; 8],
        eip: 0x1000,
        eflags: 0x2,
        cr0: 0x11,
        cr3: 0,
        cr4: 0,
        efer,
        segs,
    };
    let flat = [seg(0xc9b), seg(0xc93), seg(0xc93), seg(0xc93), seg(0)];
    let mut ss_dpl3 = flat;
    ss_dpl3[2] = seg(0xcf3);
    let mut xo_ds = flat;
    xo_ds[1] = seg(0xc99);
    let mut cs_g0 = flat;
    cs_g0[0] = seg(0x49b);
    let bits = oxen_guest_rt::arch::cpuid(0x8000_0008, 0).eax & 0xff;
    let far_cr3 = HvmContext::Mode64 {
        gprs: [0; 8],
        rip: 0x1000,
        rflags: 0x2,
        cr0: 0x8000_0011,
        cr3: 1 << bits.clamp(32, 51),
        cr4: 0x20,
        efer: 0x100,
    };
    let cases = [
        ("SS with DPL 3", base(ss_dpl3, 0)),
        ("an execute-only DS", base(xo_ds, 0)),
        ("a 4 GiB CS limit with G = 0", base(cs_g0, 0)),
        ("EFER.LMA without paging", base(flat, 0x400)),
        ("CR3 beyond the physical address width", far_cr3),
    ];
    for (what, ctx) in cases {
        let rc = vcpu::initialise_raw(1, &ctx.to_bytes());
        if rc != -EINVAL {
            println!("smp: FAIL VCPUOP_initialise with {what} returned {rc}, not -EINVAL");
            FAILURES.fetch_add(1, Ordering::Relaxed);
        }
    }
    check(vcpu::up(1) == -EINVAL, "vCPU 1 is still uninitialised");
}

/// NMIs taken (vector 2 through the runtime's stubs), by any vCPU.
static NMIS: AtomicU64 = AtomicU64::new(0);

fn nmi_hook(f: &mut oxen_guest_rt::ExceptionFrame) -> bool {
    if f.vector != 2 {
        return false;
    }
    NMIS.fetch_add(1, Ordering::SeqCst);
    true
}

/// `VCPUOP_send_nmi`: an NMI to ourselves and to vCPU 1, each taken once; an argument
/// is -EINVAL.
fn nmis() {
    const SEND_NMI: u32 = oxen_guest_rt::abi::vcpu::op::SEND_NMI;
    oxen_guest_rt::set_exception_hook(nmi_hook);
    // SAFETY: no argument is read for a valid call; a non-null one is refused.
    let rc = unsafe { vcpu::vcpu_op(SEND_NMI, 0, 0x1000) };
    check(rc == -EINVAL, "send_nmi with an argument is -EINVAL");
    let before = NMIS.load(Ordering::SeqCst);
    // SAFETY: as above.
    let rc = unsafe { vcpu::vcpu_op(SEND_NMI, 0, 0) };
    check(rc == 0, "send_nmi to ourselves");
    check(
        wait_for(100, || NMIS.load(Ordering::SeqCst) == before + 1),
        "the NMI sent to ourselves is taken once",
    );
    // SAFETY: as above.
    let rc = unsafe { vcpu::vcpu_op(SEND_NMI, 1, 0) };
    check(rc == 0, "send_nmi to vCPU 1");
    check(
        wait_for(1000, || NMIS.load(Ordering::SeqCst) == before + 2),
        "the NMI sent to vCPU 1 is taken (once)",
    );
    wait_for(20, || false);
    check(
        NMIS.load(Ordering::SeqCst) == before + 2,
        "no NMI is taken twice",
    );
    println!("smp: NMIs sent with VCPUOP_send_nmi are taken, once each");
}

/// `VCPUOP_get_runstate_info`: vCPU 0 runs, vCPU 1 was never up.
fn runstates() {
    match vcpu::runstate(0) {
        Ok(r) => {
            check(r.state == runstate::RUNNING, "vCPU 0's runstate is running");
            check(r.time_running > 0, "vCPU 0 has run time");
            let total = r.time_running + r.time_runnable + r.time_blocked + r.time_offline;
            let now = time::now_ns();
            check(
                r.state_entry_time <= now && total <= now,
                "vCPU 0's runstate times lie in the past",
            );
        }
        Err(_) => check(false, "get_runstate_info(0)"),
    }
    match vcpu::runstate(1) {
        Ok(r) => {
            check(r.state == runstate::OFFLINE, "vCPU 1's runstate is offline");
            check(r.time_running == 0, "vCPU 1 never ran");
        }
        Err(_) => check(false, "get_runstate_info(1)"),
    }
    check(
        vcpu::runstate(999) == Err(-ENOENT),
        "get_runstate_info of vCPU 999 is -ENOENT",
    );
    // A registered runstate area is written whenever the vCPU is put on a pCPU.
    static mut AREA: [u8; 48] = [0xee; 48];
    let area = &raw mut AREA as u64;
    let arg = area.to_le_bytes();
    // SAFETY: the hypervisor reads the 8-byte address and later writes 48 bytes there.
    let rc = unsafe { vcpu::vcpu_op(vcpu::REGISTER_RUNSTATE_MEMORY_AREA, 0, arg.as_ptr() as u64) };
    check(rc == 0, "register_runstate_memory_area");
    vcpu::sleep_until(0, time::now_ns() + 5_000_000);
    // SAFETY: our own static, written by the hypervisor while we were switched out.
    let bytes = unsafe { core::ptr::read_volatile(&raw const AREA) };
    let r = oxen_guest_rt::abi::vcpu::RunstateInfo::from_bytes(&bytes).unwrap_or_default();
    check(r.state == runstate::RUNNING, "the area says running");
    check(
        r.time_blocked >= 4_000_000,
        "the area counts the 5 ms sleep as blocked",
    );
    check(
        r.state_entry_time <= time::now_ns(),
        "the area's entry time is in the past",
    );
}

/// `VCPUOP_set_periodic_timer`: Xen's bounds, then VIRQ_TIMER ticks every period until
/// it is stopped.
fn periodic_timer() {
    check(
        vcpu::set_periodic_timer(0, 999_999) == -EINVAL,
        "a period below 1 ms is -EINVAL",
    );
    check(
        vcpu::set_periodic_timer(0, u64::MAX) == -EINVAL,
        "a period above STIME_DELTA_MAX is -EINVAL",
    );
    if events::map_shared_info().is_err() {
        check(false, "shared info maps");
        return;
    }
    let Ok(port) = events::bind_timer_virq() else {
        check(false, "VIRQ_TIMER binds");
        return;
    };
    // Count ticks of a 2 ms period until 10 came (no single-shot timer is armed). A
    // yield may keep this vCPU off its pCPU for whole slices of the others' (Xen's
    // yield ends the slice), and ticks that come meanwhile are one pending event: so
    // the count is checked against the time that passed, not a fixed window: at least
    // 10 within half a second, never more than one per period.
    check(vcpu::stop_timer(0) == 0, "stop_singleshot_timer");
    events::clear(port);
    check(
        vcpu::set_periodic_timer(0, 2_000_000) == 0,
        "set_periodic_timer(2 ms)",
    );
    let mut ticks = 0;
    let t0 = time::now_ns();
    while ticks < 10 && time::now_ns() < t0 + 500_000_000 {
        if events::pending(port) {
            ticks += 1;
            events::clear(port);
        }
        sched_yield();
    }
    let elapsed = time::now_ns() - t0;
    check(vcpu::stop_periodic_timer(0) == 0, "stop_periodic_timer");
    println!(
        "smp: periodic timer: {ticks} ticks of 2 ms in {} ms",
        elapsed / 1_000_000
    );
    check(
        ticks >= 10 && ticks <= elapsed / 2_000_000 + 1,
        "a 2 ms periodic timer ticks at most once a period, and keeps ticking",
    );
    // Stopped: nothing more after one period has passed.
    let settle = time::now_ns() + 3_000_000;
    while time::now_ns() < settle {
        sched_yield();
    }
    events::clear(port);
    let end = time::now_ns() + 20_000_000;
    let mut late = 0;
    while time::now_ns() < end {
        if events::pending(port) {
            late += 1;
            events::clear(port);
        }
        sched_yield();
    }
    check(late == 0, "a stopped periodic timer does not tick");
}
