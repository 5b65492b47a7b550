//! `ping`: the front end of a shared ring granted to `pong` (see `proto.rs` for the
//! protocol).
//!
//! Command line: `peer=<pong's domid>` (required), `count=<N>` (requests, default
//! 100000), `rtt=<M>` (single-request round trips timed separately, default 1000),
//! `revoke_after=<n>` (the revoke test instead of the normal run).
//!
//! Normal run: N requests as fast as the ring allows, M timed round trips with a notify
//! each way, then [`STOP`]; once pong has unmapped the page the grant is ended, the port
//! closed, and ping powers off after `ping: PASS …`. If pong turns hostile (a producer
//! index `oxen-ring` refuses), ping stops using the ring, waits up to 5 s for its grant
//! to be released, and ends with `ping: survived a hostile peer`.
//!
//! Relies on the hypervisor for: `XENMEM_add_to_physmap` of shared info and grant table
//! frame 0, `HVM_PARAM_CALLBACK_IRQ` upcalls, `EVTCHNOP_alloc_unbound`/`send`/`status`/
//! `close`/`unmask`, version 1 grant entries whose `GTF_reading`/`GTF_writing` the
//! hypervisor keeps while pong has the page mapped, and HLT ending on an upcall or on
//! the single-shot timer (see `oxen_guest_rt::events`).
#![no_std]
#![no_main]

mod proto;

use core::cell::UnsafeCell;

use oxen_guest_rt::abi::evtchn::stat;
use oxen_guest_rt::abi::grant_table::gtf;
use oxen_guest_rt::{StartInfo, arch, events, grant, println, time, xen};
use oxen_ring::{FrontRing, PAGE_SIZE, RingError, Sring};
use proto::{
    FENCE, GREF, PAYLOAD, RING_SLOTS, Req, Rsp, STATUS_OK, STOP, UNMAP, XorShift, arg, checksum,
    control, deadline_ms,
};

oxen_guest_rt::entry!(main);

/// The ring page, in our RAM (identity-mapped: its address is its guest-physical one).
#[repr(C, align(4096))]
struct RingPage(UnsafeCell<[u8; PAGE_SIZE]>);

// SAFETY: the page is only accessed through the raw pointer handed to `Sring::from_raw`
// (volatile accesses inside oxen-ring), by this single-vCPU guest and by the peer.
unsafe impl Sync for RingPage {}

static RING_PAGE: RingPage = RingPage(UnsafeCell::new([0; PAGE_SIZE]));

/// How long the peer may leave us without an answer before we give up (system time;
/// generous, for emulators).
const IDLE_MS: u64 = 30_000;
/// How long we wait for the peer to unmap the ring.
const RELEASE_MS: u64 = 5_000;
/// Bad responses reported individually.
const REPORT: u64 = 5;

/// Why a run stopped early.
enum Stop {
    /// The peer wrote an index the ring refused.
    Hostile(RingError),
    /// No answer for [`IDLE_MS`].
    Silent,
}

struct Ping<'a> {
    front: FrontRing<'a, Req, Rsp>,
    port: u32,
    rng: XorShift,
    /// Sequence number of the next request.
    seq: u32,
    /// Sequence number of the next response expected.
    next_rsp: u32,
    /// Checksums of the requests in flight, by `seq % RING_SLOTS`.
    sums: [u32; RING_SLOTS as usize],
    errors: u64,
}

impl Ping<'_> {
    fn make_req(&mut self) -> Req {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let r = self.rng.next();
        let len = (r % (PAYLOAD as u64 + 1)) as u32;
        let mut payload = [0u8; PAYLOAD];
        for chunk in payload.chunks_mut(8) {
            let v = self.rng.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let sum = checksum(seq, len, &payload);
        self.sums[(seq % RING_SLOTS) as usize] = sum;
        Req {
            id: seq,
            seq,
            len,
            payload,
            sum,
        }
    }

    fn produce(&mut self, req: Req) {
        if let Err(e) = self.front.produce_request(req) {
            panic!("ping: FAIL cannot produce a request: {e}");
        }
    }

    fn notify(&self) {
        if let Err(rc) = events::send(self.port) {
            panic!("ping: FAIL EVTCHNOP_send({}) = {rc}", self.port);
        }
    }

    fn check(&mut self, rsp: Rsp) {
        let want = self.next_rsp;
        self.next_rsp = self.next_rsp.wrapping_add(1);
        let sum = self.sums[(want % RING_SLOTS) as usize];
        if rsp.seq != want || rsp.id != want || rsp.status != STATUS_OK || rsp.sum_check != sum {
            self.errors += 1;
            if self.errors <= REPORT {
                println!(
                    "ping: bad response: id {} seq {} status {} sum {:#x}; expected id/seq {} status 0 sum {:#x}",
                    rsp.id, rsp.seq, rsp.status, rsp.sum_check, want, sum
                );
            }
        }
    }

    /// Consumes every published response; whether there was any.
    fn collect(&mut self) -> Result<bool, Stop> {
        let mut any = false;
        while let Some(rsp) = self.front.consume_response().map_err(Stop::Hostile)? {
            self.check(rsp);
            any = true;
        }
        Ok(any)
    }

    /// Sends `n` requests, keeping the ring as full as it goes, until all are answered.
    fn bulk(&mut self, n: u32) -> Result<(), Stop> {
        let last_seq = self.seq.wrapping_add(n);
        let mut idle_since = time::now_ns();
        while self.next_rsp != last_seq {
            let mut progress = false;
            while self.seq != last_seq && !self.front.is_full() {
                let req = self.make_req();
                self.produce(req);
                progress = true;
            }
            if self.front.unpushed_requests() != 0 && self.front.push_requests_and_check_notify() {
                self.notify();
            }
            progress |= self.collect()?;
            if progress {
                idle_since = time::now_ns();
                continue;
            }
            if self
                .front
                .final_check_for_responses()
                .map_err(Stop::Hostile)?
            {
                continue;
            }
            let deadline = idle_since + IDLE_MS * 1_000_000;
            if !events::wait_timeout(self.port, deadline) && time::now_ns() >= deadline {
                return Err(Stop::Silent);
            }
        }
        Ok(())
    }

    /// `m` single-request round trips, each with a notification each way: we ask for
    /// one on the response (`rsp_event`) before sending, always send, and sleep on the
    /// channel until the response is there.
    fn round_trips(&mut self, m: u32) -> Result<(), Stop> {
        events::clear(self.port);
        for _ in 0..m {
            if self
                .front
                .final_check_for_responses()
                .map_err(Stop::Hostile)?
            {
                self.collect()?;
            }
            let req = self.make_req();
            self.produce(req);
            self.front.push_requests();
            self.notify();
            let want = self.seq;
            let deadline = deadline_ms(IDLE_MS);
            while self.next_rsp != want {
                if self.collect()? {
                    continue;
                }
                if !events::wait_timeout(self.port, deadline) && time::now_ns() >= deadline {
                    return Err(Stop::Silent);
                }
            }
        }
        Ok(())
    }

    /// Pushes a control request and notifies.
    fn control(&mut self, id: u32, notify: bool) {
        let req = control(id, self.seq);
        self.produce(req);
        self.front.push_requests();
        if notify {
            self.notify();
        }
    }

    /// Ends the grant of the ring page as soon as the peer has unmapped it (sleeping on
    /// the channel in between); the milliseconds it took, or `None` after `ms`.
    fn release(&self, ms: u64) -> Option<u64> {
        let start = time::now_ns();
        let deadline = start + ms * 1_000_000;
        loop {
            if grant::end_access(GREF) {
                return Some((time::now_ns() - start) / 1_000_000);
            }
            let now = time::now_ns();
            if now >= deadline {
                return None;
            }
            events::wait_timeout(self.port, deadline.min(now + 50_000_000));
        }
    }
}

fn main(info: &StartInfo) {
    let peer = arg(info, "peer", u64::MAX);
    let Ok(peer) = u16::try_from(peer) else {
        panic!("ping: need peer=<domid> on the command line");
    };
    let count = arg(info, "count", 100_000).min(1 << 30) as u32;
    let rtt = arg(info, "rtt", 1000).min(1 << 20) as u32;
    let revoke_after = info
        .cmdline_arg("revoke_after")
        .map(|_| arg(info, "revoke_after", 0).min(1 << 30) as u32);

    if let Err(e) = grant::init() {
        panic!("ping: FAIL {e}");
    }
    if let Err(e) = events::init() {
        panic!("ping: FAIL {e}");
    }
    let page = RING_PAGE.0.get().cast::<u8>();
    let gfn = page as u64 >> 12;
    // SAFETY: the page is static, page-aligned and writable, and nothing else in this
    // program touches it: from here on only the ring (and the peer) do.
    let sring = match unsafe { Sring::<Req, Rsp>::from_raw(page, PAGE_SIZE) } {
        Ok(s) => s,
        Err(e) => panic!("ping: FAIL ring over the page: {e}"),
    };
    let front = FrontRing::new(sring);
    if let Err(e) = grant::grant_access(GREF, peer, gfn, false) {
        panic!("ping: FAIL granting frame {gfn:#x}: {e:?}");
    }
    let port = match events::offer(peer, 5_000_000_000) {
        Ok(p) => p,
        Err(rc) => panic!("ping: FAIL EVTCHNOP_alloc_unbound(remote {peer}) = {rc}"),
    };
    println!("ping: offering gref {GREF}, port {port}");
    let _ = events::bind_timer_virq();

    let mut ping = Ping {
        front,
        port,
        rng: XorShift::new(0x9e37_79b9_7f4a_7c15),
        seq: 0,
        next_rsp: 0,
        sums: [0; RING_SLOTS as usize],
        errors: 0,
    };

    if let Some(n) = revoke_after {
        return revoke(&mut ping, n);
    }

    let t0 = arch::rdtsc();
    let r = ping.bulk(count);
    let t1 = arch::rdtsc();
    let r = r.and_then(|()| {
        let t = arch::rdtsc();
        ping.round_trips(rtt).map(|()| arch::rdtsc() - t)
    });
    let rtt_ticks = match r {
        Ok(t) => t,
        Err(Stop::Hostile(e)) => return hostile(&ping, e),
        Err(Stop::Silent) => panic!(
            "ping: FAIL no answer for {} s: {} of {count} answered",
            IDLE_MS / 1000,
            ping.next_rsp
        ),
    };

    ping.control(STOP, true);
    match ping.release(RELEASE_MS) {
        Some(ms) => println!("ping: grant {GREF} ended {ms} ms after STOP (the peer unmapped it)"),
        None => panic!(
            "ping: FAIL grant {GREF} still in use {} s after STOP (flags {:#x})",
            RELEASE_MS / 1000,
            grant::flags(GREF)
        ),
    }
    let _ = xen::close(port);

    println!(
        "ping: round trip {} ticks per request",
        (t1 - t0) / u64::from(count.max(1))
    );
    println!(
        "ping: event round trip {} ticks",
        rtt_ticks / u64::from(rtt.max(1))
    );
    let answered = ping.next_rsp.wrapping_sub(rtt);
    if ping.errors != 0 || answered != count {
        panic!(
            "ping: FAIL {count} requests, {} errors, {answered} answered",
            ping.errors
        );
    }
    println!(
        "ping: PASS {count} requests, {} errors, {} upcalls",
        ping.errors,
        events::upcalls()
    );
}

/// The peer broke the ring protocol: stop using the ring, get the grant back if the
/// peer lets go of it, and end cleanly.
fn hostile(ping: &Ping, e: RingError) {
    println!("ping: peer is hostile: {e}; stopping");
    if ping.errors != 0 {
        println!("ping: {} bad responses before that", ping.errors);
    }
    match ping.release(RELEASE_MS) {
        Some(ms) => println!("ping: grant {GREF} ended after {ms} ms, once the peer unmapped it"),
        None => println!(
            "ping: grant {GREF} still mapped by the peer after {} s (flags {:#x}); leaving it",
            RELEASE_MS / 1000,
            grant::flags(GREF)
        ),
    }
    let _ = xen::close(ping.port);
    println!("ping: survived a hostile peer");
}

/// The revoke test: `n` requests, then the peer unmaps, we revoke, and the peer's new
/// map must be refused.
fn revoke(ping: &mut Ping, n: u32) {
    match ping.bulk(n) {
        Ok(()) => {}
        Err(Stop::Hostile(e)) => return hostile(ping, e),
        Err(Stop::Silent) => panic!("ping: FAIL no answer for {} s", IDLE_MS / 1000),
    }
    if ping.errors != 0 {
        panic!("ping: FAIL {} bad responses", ping.errors);
    }
    // UNMAP with a notification, then FENCE without: after FENCE we send nothing until
    // the grant is revoked (see proto.rs).
    ping.control(UNMAP, true);
    ping.control(FENCE, false);
    if ping.release(RELEASE_MS).is_none() {
        panic!(
            "ping: FAIL the peer did not unmap the ring within {} s (flags {:#x})",
            RELEASE_MS / 1000,
            grant::flags(GREF)
        );
    }
    println!("ping: revoked the grant after {n} requests");
    ping.notify();
    // The peer closes its end once it has tried to map the grant again.
    let deadline = deadline_ms(IDLE_MS);
    loop {
        match xen::status(ping.port) {
            Ok(s) if s.status == stat::INTERDOMAIN => {}
            Ok(_) => break,
            Err(rc) => panic!("ping: FAIL EVTCHNOP_status({}) = {rc}", ping.port),
        }
        let now = time::now_ns();
        if now >= deadline {
            panic!(
                "ping: FAIL the peer did not finish within {} s",
                IDLE_MS / 1000
            );
        }
        events::wait_timeout(ping.port, deadline.min(now + 50_000_000));
    }
    let flags = grant::flags(GREF);
    if flags & (gtf::READING | gtf::WRITING) != 0 {
        panic!("ping: FAIL the peer mapped the revoked grant (flags {flags:#x})");
    }
    let _ = xen::close(ping.port);
    println!("ping: PASS revoke");
}
