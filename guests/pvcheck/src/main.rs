//! `pvcheck`: every event-channel and grant-table call, on its own (loopback channels,
//! grants to itself), with the successes and the errors Xen gives. Prints each failed
//! check, then `pvcheck: PASS <n> checks` or panics (crashing the domain).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use oxen_guest_rt::abi::errno::{EEXIST, EINVAL, ENOENT, ENOSPC, ENOSYS, ESRCH};
use oxen_guest_rt::abi::evtchn::{stat, virq};
use oxen_guest_rt::abi::grant_table::{GnttabCopy, GnttabCopyPtr, gntcopy, gntst, gtf};
use oxen_guest_rt::grant::GntError;
use oxen_guest_rt::{StartInfo, events, grant, mm, println, time, xen};

oxen_guest_rt::entry!(main);

static CHECKS: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

fn check(ok: bool, what: &str) {
    CHECKS.fetch_add(1, Ordering::Relaxed);
    if !ok {
        FAILED.fetch_add(1, Ordering::Relaxed);
        println!("pvcheck: FAIL {what}");
    }
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut SOURCE: Page = Page([0; 4096]);
static mut TARGET: Page = Page([0; 4096]);

fn gfn_of(p: *const Page) -> u64 {
    p as u64 >> 12
}

/// Lets a pending upcall in (STI's shadow covers one instruction).
fn take_upcalls() {
    // SAFETY: the runtime's upcall handler is installed; interrupts are off again after.
    unsafe { core::arch::asm!("sti", "nop", "nop", "cli", options(nomem, nostack)) };
}

fn main(_info: &StartInfo) {
    let me = xen::domid().expect("pvcheck: runs on oxen or Xen");
    if let Err(e) = events::init() {
        panic!("pvcheck: events: {e}");
    }
    if let Err(e) = grant::init() {
        panic!("pvcheck: grant table: {e}");
    }
    time_info();
    event_channels(me);
    grant_tables(me);
    let (n, failed) = (
        CHECKS.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
    );
    if failed != 0 {
        panic!("pvcheck: {failed} of {n} checks failed");
    }
    println!("pvcheck: PASS {n} checks");
}

/// The wallclock and vCPU 0's `vcpu_time_info` in shared info.
fn time_info() {
    // SAFETY: the runtime mapped shared info at this GFN in its window slot; mapping the
    // same 2 MiB region there again changes nothing. Only aligned words are read.
    let si = unsafe {
        mm::map_phys(
            xen::window_slot::SHARED_INFO,
            events::SHARED_INFO_GFN << 12,
            false,
        )
    };
    let r32 = |off: usize| {
        // SAFETY: `off` is a 4-aligned offset inside the shared-info page.
        unsafe { si.add(off).cast::<u32>().read_volatile() }
    };
    let r64 = |off: usize| {
        // SAFETY: `off` is an 8-aligned offset inside the shared-info page.
        unsafe { si.add(off).cast::<u64>().read_volatile() }
    };
    let wc = u64::from(r32(3076)) | (u64::from(r32(3084)) << 32);
    check(r32(3072) % 2 == 0, "wc_version is even (not mid-update)");
    // 2020-01-01: the RTC of any machine that runs this is later.
    check(wc > 1_577_836_800, "the wallclock comes from the RTC");
    let (version, stamp, system, mul, shift) = (
        r32(32),
        r64(40),
        r64(48),
        r32(56),
        (r32(60) & 0xff) as u8 as i8,
    );
    check(version % 2 == 0 && mul != 0, "vcpu_time_info is filled in");
    let tsc = oxen_guest_rt::arch::rdtsc();
    let delta = u128::from(tsc.wrapping_sub(stamp));
    let scaled = if shift >= 0 {
        delta << shift
    } else {
        delta >> -i32::from(shift)
    };
    let pv_now = system + ((scaled * u128::from(mul)) >> 32) as u64;
    let now = time::now_ns();
    check(
        pv_now.abs_diff(now) < 1_000_000,
        "time from vcpu_time_info agrees with the TSC clock within 1 ms",
    );
    println!(
        "pvcheck: wallclock {wc} s at system time 0; pvclock {pv_now} ns vs TSC clock {now} ns"
    );
}

fn event_channels(me: u16) {
    let p1 = xen::alloc_unbound(me).unwrap_or(0);
    check(
        p1 > 1,
        "alloc_unbound for ourselves gives a port above the console's",
    );
    let p2 = xen::bind_interdomain(me, p1).unwrap_or(0);
    check(
        p2 > p1,
        "bind_interdomain to our own unbound port (loopback)",
    );
    check(events::pending(p2), "the new end of a bind starts pending");
    events::clear(p2);
    let st = xen::status(p1).unwrap_or_default();
    check(
        st.status == stat::INTERDOMAIN && st.interdomain() == (me, p2),
        "status: interdomain, naming the other end",
    );
    check(
        xen::bind_interdomain(me, p1) == Err(-EINVAL),
        "binding a port that is already connected is -EINVAL",
    );

    events::clear(p1);
    check(xen::send(p2).is_ok(), "send");
    check(events::pending(p1), "a send marks the other end pending");
    events::clear(p1);

    // Masked: pending but no upcall, until unmask. (First take the upcall the send above
    // raised: interrupts are off, so it is still waiting.)
    take_upcalls();
    events::mask(p1);
    let before = events::upcalls();
    let _ = xen::send(p2);
    take_upcalls();
    check(events::pending(p1), "a masked port still becomes pending");
    check(
        events::upcalls() == before,
        "a masked port raises no upcall",
    );
    check(xen::unmask(p1).is_ok(), "unmask");
    take_upcalls();
    check(
        events::upcalls() > before,
        "unmasking a pending port raises the upcall",
    );
    events::clear(p1);

    let p3 = xen::bind_ipi(0).unwrap_or(0);
    check(p3 != 0, "bind_ipi on vCPU 0");
    events::clear(p3);
    let _ = xen::send(p3);
    check(events::pending(p3), "an IPI port signals itself");
    events::clear(p3);
    check(
        xen::bind_ipi(5) == Err(-ENOENT),
        "bind_ipi on a missing vCPU is -ENOENT",
    );
    check(
        xen::bind_vcpu(p3, 0) == Err(-EINVAL),
        "an IPI port cannot move vCPU (-EINVAL)",
    );
    check(
        xen::bind_vcpu(p1, 0).is_ok(),
        "an interdomain port can be bound to a vCPU",
    );
    check(
        xen::bind_vcpu(p1, 7) == Err(-ENOENT),
        "bind_vcpu to a missing vCPU is -ENOENT",
    );

    let p4 = xen::bind_virq(virq::DEBUG, 0).unwrap_or(0);
    check(p4 != 0, "bind_virq(VIRQ_DEBUG)");
    check(
        xen::bind_virq(virq::DEBUG, 0) == Err(-EEXIST),
        "binding a VIRQ twice is -EEXIST",
    );
    check(
        xen::bind_virq(99, 0) == Err(-EINVAL),
        "an unknown VIRQ is -EINVAL",
    );
    check(
        xen::bind_virq(virq::DOM_EXC, 1) == Err(-EINVAL),
        "a global VIRQ on vCPU 1 is -EINVAL",
    );

    check(
        xen::send(900) == Err(-EINVAL),
        "send on a free port is -EINVAL",
    );
    check(
        xen::send(100_000) == Err(-EINVAL),
        "send beyond the port limit is -EINVAL",
    );
    check(xen::close(0) == Err(-EINVAL), "closing port 0 is -EINVAL");
    check(
        xen::status(5000) == Err(-EINVAL),
        "status beyond the limit is -EINVAL",
    );
    // As Xen: the remote domain need not exist yet; only it may ever bind the port.
    let later = xen::alloc_unbound(999);
    check(
        later.is_ok(),
        "alloc_unbound for a domain that does not exist yet succeeds",
    );
    if let Ok(p) = later {
        check(xen::close(p).is_ok(), "closing that port");
    }
    check(
        xen::alloc_unbound(0x7ff5) == Err(-ESRCH),
        "a reserved remote domain id is -ESRCH",
    );
    // No FIFO ABI: init_control fails with -EINVAL (Linux then keeps the 2-level ABI).
    let control = [0u8; 16];
    // SAFETY: EVTCHNOP_init_control (11) reads its 16-byte argument only.
    let rc = unsafe {
        oxen_guest_rt::hypercall(
            oxen_guest_rt::abi::hypercall::EVENT_CHANNEL_OP,
            11,
            control.as_ptr() as u64,
            0,
            0,
            0,
        )
    };
    check(
        rc == -EINVAL,
        "EVTCHNOP_init_control is -EINVAL without FIFO",
    );

    // SCHEDOP_poll: at once when a polled port is pending, else until the timeout.
    let _ = xen::send(p2);
    let t0 = time::now_ns();
    check(
        xen::poll(&[p1], t0 + 50_000_000).is_ok(),
        "poll of a pending port",
    );
    check(
        time::now_ns() - t0 < 1_000_000,
        "poll of a pending port returns at once",
    );
    events::clear(p1);
    let t0 = time::now_ns();
    check(
        xen::poll(&[p1], t0 + 3_000_000).is_ok(),
        "poll with a timeout",
    );
    check(
        time::now_ns() - t0 >= 3_000_000,
        "poll sleeps until its timeout",
    );
    check(
        xen::poll(&[], 0) == Err(-EINVAL),
        "poll of no port is -EINVAL",
    );

    // Close one end: the other becomes unbound (for us).
    check(xen::close(p2).is_ok(), "close");
    let st = xen::status(p1).unwrap_or_default();
    check(
        st.status == stat::UNBOUND && st.unbound_dom() == me,
        "closing one end leaves the other unbound",
    );
    check(
        xen::close(p2) == Err(-EINVAL),
        "closing a closed port is -EINVAL",
    );

    // Fill the table, then close what we opened.
    let mut opened = 0u32;
    let last = loop {
        match xen::alloc_unbound(me) {
            Ok(_) => opened += 1,
            Err(e) => break e,
        }
        if opened > 2000 {
            break 0;
        }
    };
    check(last == -ENOSPC, "running out of ports is -ENOSPC");
    check(opened > 1000, "about 1020 ports can be opened");
    for p in [p1, p3, p4] {
        let _ = xen::close(p);
    }
    let mut closed = 0;
    for p in 2..1024 {
        if xen::status(p).is_ok_and(|s| s.status == stat::UNBOUND) && xen::close(p).is_ok() {
            closed += 1;
        }
    }
    check(closed == opened, "every port opened can be closed");
}

fn grant_tables(me: u16) {
    let q = xen::query_size().unwrap_or_default();
    check(
        q.status == gntst::OKAY && q.nr_frames >= 1 && q.max_nr_frames == 32,
        "query_size",
    );
    let mut frames = [0u64; 2];
    let s = xen::setup_table(&mut frames).unwrap_or_default();
    check(
        s.status == gntst::OKAY,
        "setup_table grows the table to 2 frames",
    );
    check(
        frames[0] == grant::GRANT_TABLE_GFN,
        "setup_table names where frame 0 is mapped",
    );
    let mut too_many = [0u64; 64];
    let s = xen::setup_table(&mut too_many).unwrap_or_default();
    check(
        s.status == gntst::GENERAL_ERROR,
        "setup_table beyond the maximum is GNTST_general_error",
    );
    check(
        xen::set_version(2) == Err(-ENOSYS),
        "grant tables v2 are -ENOSYS",
    );
    check(xen::set_version(1).is_ok(), "set_version(1)");
    check(xen::get_version() == Ok(1), "get_version is 1");

    let (src, dst) = (&raw mut SOURCE, &raw mut TARGET);
    // SAFETY: the pages are this guest's own statics, used from one vCPU.
    for (i, b) in unsafe { (*src).0.iter_mut() }.enumerate() {
        *b = (i * 7 + 3) as u8;
    }

    // A read-only grant to ourselves, mapped read-only.
    check(
        grant::grant_access(9, me, gfn_of(src), true).is_ok(),
        "grant_access",
    );
    let gpa = 0xfef1_0000;
    let h = grant::map(me, 9, gpa, true);
    check(h.is_ok(), "map of our own read-only grant");
    check(
        grant::flags(9) & gtf::READING != 0,
        "a mapped grant shows GTF_reading",
    );
    if let Ok(h) = h {
        // SAFETY: slot 200 is free (the runtime keeps 504..); only the mapped page of
        // that 2 MiB region is read.
        let p = unsafe { mm::map_phys(200, gpa, false) };
        let same = (0..4096).all(|i| {
            // SAFETY: `p` points at the mapped page (4096 bytes); `src` is our own page.
            unsafe { p.add(i).read_volatile() == (*src).0[i] }
        });
        check(same, "the mapping shows the granted page");
        check(!grant::end_access(9), "a mapped grant cannot be ended");
        check(
            grant::map(me, 9, gpa + 0x1000, false) == Err(GntError::Status(gntst::GENERAL_ERROR)),
            "a writable map of a read-only grant is refused",
        );
        check(grant::unmap(gpa, h).is_ok(), "unmap");
        check(
            grant::unmap(gpa, h) == Err(GntError::Status(gntst::BAD_HANDLE)),
            "unmapping twice is GNTST_bad_handle",
        );
    }
    check(grant::end_access(9), "an unmapped grant can be ended");
    check(
        grant::map(me, 9, gpa, true).is_err(),
        "an ended grant cannot be mapped",
    );
    check(
        grant::map(me, 5000, gpa, true) == Err(GntError::Status(gntst::BAD_GNTREF)),
        "a grant reference beyond the table is GNTST_bad_gntref",
    );
    check(
        grant::map(999, 9, gpa, true) == Err(GntError::Status(gntst::BAD_DOMAIN)),
        "a missing granter is GNTST_bad_domain",
    );

    // Copy from our own frame into a writable grant of ours.
    check(
        grant::grant_access(10, me, gfn_of(dst), false).is_ok(),
        "grant_access (writable)",
    );
    let op = GnttabCopy {
        source: GnttabCopyPtr::with_gmfn(gfn_of(src), 0),
        dest: GnttabCopyPtr::with_gref(10, me, 128),
        len: 64,
        flags: gntcopy::DEST_GREF,
        status: 0,
    };
    check(grant::copy(&op).is_ok(), "copy into a grant");
    // SAFETY: reading our own statics.
    let copied = unsafe { (0..64).all(|i| (*dst).0[128 + i] == (*src).0[i]) };
    check(copied, "the copy arrived");
    let unused = GnttabCopy {
        source: GnttabCopyPtr::with_gref(777, me, 0),
        flags: gntcopy::SOURCE_GREF | gntcopy::DEST_GREF,
        ..op
    };
    check(
        grant::copy(&unused) == Err(GntError::Status(gntst::GENERAL_ERROR)),
        "a copy from an unused grant entry is GNTST_general_error",
    );
    let beyond = GnttabCopy {
        source: GnttabCopyPtr::with_gref(5000, me, 0),
        ..unused
    };
    check(
        grant::copy(&beyond) == Err(GntError::Status(gntst::BAD_GNTREF)),
        "a copy from a grant reference beyond the table is GNTST_bad_gntref",
    );
    let across = GnttabCopy {
        dest: GnttabCopyPtr::with_gref(10, me, 4060),
        ..op
    };
    let r = grant::copy(&across);
    check(
        r == Err(GntError::Status(gntst::BAD_COPY_ARG)),
        "a copy across a page end is GNTST_bad_copy_arg",
    );
    if r != Err(GntError::Status(gntst::BAD_COPY_ARG)) {
        println!("pvcheck: (the copy across a page end gave {r:?})");
    }
    check(grant::end_access(10), "end the writable grant");
}
