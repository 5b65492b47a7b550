//! `pong`: the back end of `ping`'s shared ring (see `guests/ping/src/proto.rs`), and an
//! event sink for `storm`.
//!
//! Command lines:
//!
//! - `peer=<ping's domid> gref=<ref> port=<ping's port>` (`gref` defaults to 8): binds
//!   to ping's port (retrying for 2 s while it is not allocated yet), maps the granted
//!   page at guest-physical [`RING_GPA`] and answers requests until ping sends STOP, then
//!   unmaps it and ends with `pong: PASS served <n>`; on UNMAP it takes part in ping's
//!   revoke test and ends with `pong: revoke run done, served <n>`.
//! - add `hostile=1`: after [`HOSTILE_AFTER`] requests it answers one with a wrong
//!   `seq`, writes a wild `rsp_prod`, tries maps it must be refused (a grant reference
//!   beyond ping's table, ref 8 of domains that did not grant it), unmaps and ends with
//!   `pong: hostile run done`.
//! - `sink=1 peer=<storm's domid> [seconds=<s>]`: allocates an unbound port for the
//!   storm domain, then sleeps on it, printing every second how many upcalls and events
//!   it got; ends after `seconds` if given (0 = never).
//!
//! Relies on the hypervisor for: `EVTCHNOP_bind_interdomain`/`alloc_unbound`/`send`/
//! `close`, `GNTTABOP_map_grant_ref`/`unmap_grant_ref` at a guest-physical address
//! outside RAM, `XENMEM_add_to_physmap` of shared info, and the upcall (see
//! `oxen_guest_rt::events`).
#![no_std]
#![no_main]

#[path = "../../ping/src/proto.rs"]
mod proto;

use oxen_guest_rt::{StartInfo, events, grant, mm, println, time, vcpu, xen};
use oxen_ring::{BackRing, PAGE_SIZE, RingError, SharedIndex, Sring};
use proto::{
    FENCE, GREF, PAYLOAD, Req, Rsp, STATUS_BAD_SUM, STATUS_OK, STOP, UNMAP, arg, checksum,
    deadline_ms,
};

oxen_guest_rt::entry!(main);

/// Where the granted ring page is mapped: a guest-physical page outside our RAM.
const RING_GPA: u64 = 0xFEF0_0000;
/// Where the maps that must fail would go.
const PROBE_GPA: u64 = 0xFEF0_1000;
/// The window slot (see `oxen_guest_rt::mm`) for [`RING_GPA`].
const RING_SLOT: usize = 1;

/// Requests served before a hostile pong misbehaves.
const HOSTILE_AFTER: u64 = 300;
/// A grant reference beyond any table ping has.
const BAD_GREF: u32 = 5000;
/// A domain id that names no domain.
const NO_DOMAIN: u16 = 0x7fef;

/// How long we wait for ping at each step.
const IDLE_MS: u64 = 30_000;

/// How serving the ring ended.
enum Ended {
    Stop,
    Unmap,
    /// (hostile mode) time to misbehave; the ring is still mapped.
    GoHostile,
    PeerBroken(RingError),
    Idle,
}

fn main(info: &StartInfo) {
    if arg(info, "sink", 0) != 0 {
        return sink(info);
    }
    let peer = arg(info, "peer", u64::MAX);
    let rport = arg(info, "port", u64::MAX);
    let (Ok(peer), Ok(rport)) = (u16::try_from(peer), u32::try_from(rport)) else {
        panic!("pong: need peer=<domid> port=<port> on the command line");
    };
    let gref = arg(info, "gref", u64::from(GREF)) as u32;
    let hostile = arg(info, "hostile", 0) != 0;

    if let Err(e) = events::init() {
        panic!("pong: FAIL {e}");
    }
    let port = match events::connect(peer, rport, 2_000_000_000) {
        Ok(p) => p,
        Err(rc) => panic!("pong: FAIL cannot bind to port {rport} of dom {peer}: {rc}"),
    };
    let _ = events::bind_timer_virq();
    println!("pong: bound to dom {peer} port {rport} (local port {port})");

    let handle = map_ring(peer, gref);
    println!("pong: mapped gref {gref} of dom {peer} at {RING_GPA:#x}");

    let mut served = 0u64;
    let ended = {
        // SAFETY: slot RING_SLOT is this guest's, used only for the ring mapping.
        let p = unsafe { mm::map_phys(RING_SLOT, RING_GPA, false) };
        // SAFETY: the grant is mapped at RING_GPA (one page) until the unmap below,
        // after this block has dropped the ring; nothing else here touches the page.
        let sring = match unsafe { Sring::<Req, Rsp>::from_raw(p, PAGE_SIZE) } {
            Ok(s) => s,
            Err(e) => panic!("pong: FAIL ring over the mapping: {e}"),
        };
        let mut back = BackRing::new(sring);
        let ended = serve(&mut back, port, hostile, &mut served);
        if let Ended::GoHostile = ended {
            misbehave(&mut back, port);
        }
        ended
    };
    // The ring is gone: from here on the page is not touched.

    match ended {
        Ended::Stop => {
            unmap_ring(handle);
            notify(port);
            let _ = xen::close(port);
            println!("pong: PASS served {served}");
        }
        Ended::Unmap => {
            // FENCE seen: every event ping sent before it has arrived, so the next one
            // means "revoked".
            events::clear(port);
            unmap_ring(handle);
            notify(port);
            after_revoke(peer, gref, port);
            println!("pong: revoke run done, served {served}");
        }
        Ended::GoHostile => {
            probe(peer);
            unmap_ring(handle);
            let _ = xen::close(port);
            println!("pong: hostile run done");
        }
        Ended::PeerBroken(e) => {
            unmap_ring(handle);
            let _ = xen::close(port);
            panic!("pong: FAIL the peer broke the ring: {e}");
        }
        Ended::Idle => {
            unmap_ring(handle);
            let _ = xen::close(port);
            panic!("pong: FAIL no request for {} s", IDLE_MS / 1000);
        }
    }
}

fn notify(port: u32) {
    if let Err(rc) = events::send(port) {
        println!("pong: EVTCHNOP_send({port}) = {rc}");
    }
}

/// Maps the ring, retrying for 2 s (the grant is written before the port we bound to
/// was allocated, so the first try should succeed).
fn map_ring(peer: u16, gref: u32) -> u32 {
    let deadline = deadline_ms(2000);
    loop {
        match grant::map(peer, gref, RING_GPA, false) {
            Ok(h) => return h,
            Err(e) if time::now_ns() >= deadline => {
                panic!("pong: FAIL cannot map gref {gref} of dom {peer}: {e}")
            }
            Err(_) => vcpu::sleep_until(0, time::now_ns() + 10_000_000),
        }
    }
}

fn unmap_ring(handle: u32) {
    if let Err(e) = grant::unmap(RING_GPA, handle) {
        panic!("pong: FAIL unmapping the ring: {e}");
    }
}

/// The answer to a data request.
fn answer(req: &Req) -> Rsp {
    let len_ok = req.len as usize <= PAYLOAD;
    let sum = checksum(req.seq, req.len, &req.payload);
    Rsp {
        id: req.id,
        seq: req.seq,
        sum_check: sum,
        status: if len_ok && sum == req.sum {
            STATUS_OK
        } else {
            STATUS_BAD_SUM
        },
    }
}

/// Serves requests until a control request, a broken ring, ping's silence or (hostile)
/// time to misbehave.
fn serve(back: &mut BackRing<'_, Req, Rsp>, port: u32, hostile: bool, served: &mut u64) -> Ended {
    let mut idle_since = time::now_ns();
    loop {
        let mut progress = false;
        let mut produced = false;
        loop {
            let req = match back.consume_request() {
                Err(e) => return Ended::PeerBroken(e),
                Ok(None) => break,
                Ok(Some(r)) => r,
            };
            progress = true;
            match req.id {
                STOP => {
                    back.push_responses();
                    return Ended::Stop;
                }
                UNMAP => {
                    back.push_responses();
                    wait_for_fence(back);
                    return Ended::Unmap;
                }
                FENCE => continue,
                _ => {}
            }
            let mut rsp = answer(&req);
            let misbehave_now = hostile && *served + 1 == HOSTILE_AFTER;
            if misbehave_now {
                rsp.seq = rsp.seq.wrapping_add(0x1000);
                println!(
                    "pong: hostile: answering request {} with seq {}",
                    req.seq, rsp.seq
                );
            }
            if let Err(e) = back.produce_response(rsp) {
                return Ended::PeerBroken(e);
            }
            produced = true;
            *served += 1;
            if misbehave_now {
                back.push_responses_and_check_notify();
                notify(port);
                return Ended::GoHostile;
            }
        }
        if produced && back.push_responses_and_check_notify() {
            notify(port);
        }
        if progress {
            idle_since = time::now_ns();
            continue;
        }
        match back.final_check_for_requests() {
            Err(e) => return Ended::PeerBroken(e),
            Ok(true) => continue,
            Ok(false) => {
                let deadline = idle_since + IDLE_MS * 1_000_000;
                if !events::wait_timeout(port, deadline) && time::now_ns() >= deadline {
                    return Ended::Idle;
                }
            }
        }
    }
}

/// After UNMAP, ping pushes FENCE right away without notifying: poll for it.
fn wait_for_fence(back: &mut BackRing<'_, Req, Rsp>) {
    let deadline = deadline_ms(2000);
    loop {
        match back.consume_request() {
            Ok(Some(r)) if r.id == FENCE => return,
            Ok(Some(r)) => println!("pong: unexpected request {} after UNMAP", r.id),
            Ok(None) if time::now_ns() < deadline => {
                oxen_guest_rt::hypercall::sched_yield();
            }
            Ok(None) => {
                println!("pong: no FENCE after UNMAP within 2 s; going on");
                return;
            }
            Err(e) => {
                println!("pong: ring error waiting for FENCE: {e}; going on");
                return;
            }
        }
    }
}

/// Hostile: a wild response producer index, with a notification.
fn misbehave(back: &mut BackRing<'_, Req, Rsp>, port: u32) {
    // Give ping time to see the wrong seq first.
    vcpu::sleep_until(0, time::now_ns() + 20_000_000);
    let wild = back.rsp_prod_pvt().wrapping_add(10_000);
    back.sring().store(SharedIndex::RspProd, wild);
    notify(port);
    println!("pong: hostile: wrote rsp_prod = {wild:#x}");
}

/// Hostile: maps that must be refused.
fn probe(peer: u16) {
    let try_map = |dom: u16, gref: u32, what: &str| match grant::map(dom, gref, PROBE_GPA, false) {
        Ok(h) => {
            println!("pong: hostile: FAIL map of gref {gref} from dom {dom} ({what}) succeeded");
            let _ = grant::unmap(PROBE_GPA, h);
        }
        Err(e) => println!("pong: hostile: map of gref {gref} from dom {dom} ({what}): {e}"),
    };
    try_map(peer, BAD_GREF, "no such grant");
    if let Some(me) = xen::domid() {
        try_map(me, GREF, "not the granter");
    }
    try_map(NO_DOMAIN, GREF, "no such domain");
}

/// Revoke test, after our unmap and its event: wait for ping's "revoked" event, try to
/// map the grant again (it must be refused), then close our end, which tells ping.
fn after_revoke(peer: u16, gref: u32, port: u32) {
    if !events::wait_timeout(port, deadline_ms(IDLE_MS)) {
        let _ = xen::close(port);
        panic!("pong: FAIL no event from ping after unmapping");
    }
    match grant::map(peer, gref, RING_GPA, false) {
        Err(e @ grant::GntError::Status(_)) => {
            println!("pong: map after revoke refused: {e}");
            let _ = xen::close(port);
        }
        Err(e @ grant::GntError::Hypercall(_)) => {
            let _ = xen::close(port);
            panic!("pong: FAIL map after revoke: {e}");
        }
        Ok(h) => {
            println!("pong: FAIL map after revoke succeeded (handle {h})");
            // Keep it for a second so ping sees GTF_reading, then let go.
            let _ = xen::close(port);
            vcpu::sleep_until(0, time::now_ns() + 1_000_000_000);
            let _ = grant::unmap(RING_GPA, h);
            panic!("pong: FAIL map after revoke succeeded");
        }
    }
}

/// The event sink for `storm`.
fn sink(info: &StartInfo) {
    let peer = arg(info, "peer", u64::MAX);
    let Ok(peer) = u16::try_from(peer) else {
        panic!("pong: sink needs peer=<domid> on the command line");
    };
    let seconds = arg(info, "seconds", 0);
    let port = match events::offer(peer, 5_000_000_000) {
        Ok(p) => p,
        Err(rc) => panic!("pong: FAIL EVTCHNOP_alloc_unbound(remote {peer}) = {rc}"),
    };
    println!("pong: sink port {port} for dom {peer}");
    if let Err(e) = events::init() {
        panic!("pong: FAIL {e}");
    }
    let _ = events::bind_timer_virq();
    let start = time::now_ns();
    let mut got = 0u64;
    let mut second = 0u64;
    loop {
        second += 1;
        let deadline = start + second * 1_000_000_000;
        while time::now_ns() < deadline {
            if events::wait_timeout(port, deadline) {
                got += 1;
            }
        }
        println!(
            "pong: sink {second} s: {} upcalls, {got} events",
            events::upcalls()
        );
        if second == seconds {
            let _ = xen::close(port);
            println!("pong: sink done");
            return;
        }
    }
}
