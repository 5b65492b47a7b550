//! Rust and C (Xen's own `<xen/io/ring.h>` macros, compiled at test time)
//! on one shared page, in every pairing: C front with Rust back, Rust front
//! with C back, and the all-C / all-Rust pairs as references. Every step's
//! results, notify decisions and a hash of the whole page must be identical
//! across the four pairings.
//!
//! Needs `cc` and Debian's `libxen-dev`; fails saying so if they're missing.

#[path = "support/cshim.rs"]
mod cshim;

use cshim::{CBack, CFront, req_a, req_b, shim};
use oxen_ring::{BackRing, FrontRing, PageBuf, Pod, SharedIndex, Sring};

#[path = "support/types.rs"]
mod types;
use types::{Req, Rsp};

#[test]
fn layout_matches_c() {
    let mut out = [0u64; 9];
    // SAFETY: c_layout writes 9 u64s.
    unsafe { (shim().layout)(out.as_mut_ptr()) };
    assert_eq!(
        out,
        [
            SharedIndex::ReqProd as u64,
            SharedIndex::ReqEvent as u64,
            SharedIndex::RspProd as u64,
            SharedIndex::RspEvent as u64,
            oxen_ring::SRING_PVT_OFFSET as u64,
            oxen_ring::SRING_PAD_OFFSET as u64,
            oxen_ring::entries_offset::<Req, Rsp>() as u64,
            oxen_ring::entry_size::<Req, Rsp>() as u64,
            oxen_ring::ring_size::<Req, Rsp>(4096) as u64,
        ],
        "C offsets: req_prod, req_event, rsp_prod, rsp_event, pvt, __pad, ring; entry size; ring size"
    );
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    C,
    Rust,
}

enum Front<'a> {
    C(*mut CFront),
    Rust(FrontRing<'a, Req, Rsp>),
}

enum Back<'a> {
    C(*mut CBack),
    Rust(BackRing<'a, Req, Rsp>),
}

impl Front<'_> {
    fn send(&mut self, first_id: u64, n: u32) -> (u32, bool) {
        match self {
            Front::C(r) => {
                let mut notify = 0;
                // SAFETY: r came from c_front_new on the live page.
                let k = unsafe { (shim().front_send)(*r, first_id, n, &mut notify) };
                (k, notify != 0)
            }
            Front::Rust(f) => {
                let mut k = 0;
                while k < n {
                    let id = first_id + k as u64;
                    let req = Req {
                        id,
                        a: req_a(id),
                        b: req_b(id),
                    };
                    if f.produce_request(req).is_err() {
                        break;
                    }
                    k += 1;
                }
                (k, f.push_requests_and_check_notify())
            }
        }
    }

    fn collect(&mut self, max: u32) -> Vec<(u64, u32)> {
        match self {
            Front::C(r) => {
                let mut ids = vec![0u64; max as usize];
                let mut sums = vec![0u32; max as usize];
                // SAFETY: r is live; the arrays hold `max` entries.
                let k =
                    unsafe { (shim().front_collect)(*r, max, ids.as_mut_ptr(), sums.as_mut_ptr()) };
                assert_ne!(k, u32::MAX, "C front saw a response overflow");
                ids.into_iter().zip(sums).take(k as usize).collect()
            }
            Front::Rust(f) => {
                let mut v = Vec::new();
                while v.len() < max as usize {
                    match f.consume_response().expect("well-behaved peer") {
                        Some(r) => v.push((r.id, r.sum)),
                        None => break,
                    }
                }
                v
            }
        }
    }

    fn final_check(&mut self) -> bool {
        match self {
            // SAFETY: r is live.
            Front::C(r) => unsafe { (shim().front_final_check)(*r) != 0 },
            Front::Rust(f) => f.final_check_for_responses().expect("well-behaved peer"),
        }
    }
}

impl Back<'_> {
    fn serve(&mut self, max: u32) -> (u32, bool) {
        match self {
            Back::C(r) => {
                let mut notify = 0;
                // SAFETY: r came from c_back_new on the live page.
                let k = unsafe { (shim().back_serve)(*r, max, &mut notify) };
                assert_ne!(k, u32::MAX, "C back saw a request overflow");
                (k, notify != 0)
            }
            Back::Rust(b) => {
                let mut k = 0;
                while k < max {
                    match b.consume_request().expect("well-behaved peer") {
                        Some(q) => {
                            let rsp = Rsp {
                                id: q.id,
                                sum: q.a.wrapping_add(q.b),
                                pad: 0,
                            };
                            b.produce_response(rsp).unwrap();
                            k += 1;
                        }
                        None => break,
                    }
                }
                (k, b.push_responses_and_check_notify())
            }
        }
    }

    fn final_check(&mut self) -> bool {
        match self {
            // SAFETY: r is live.
            Back::C(r) => unsafe { (shim().back_final_check)(*r) != 0 },
            Back::Rust(b) => b.final_check_for_requests().expect("well-behaved peer"),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Step {
    op: u32,
    count: u32,
    flag: bool,
    got: Vec<(u64, u32)>,
    page_hash: u64,
}

fn page_hash(base: *const u8) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for i in 0..4096 / 8 {
        // SAFETY: base is the 4096-byte, page-aligned ring page; no one else
        // writes it while we read (single thread).
        let w = unsafe { core::ptr::read_volatile(base.cast::<u64>().add(i)) };
        h = (h ^ w).wrapping_mul(0x100_0000_01b3);
    }
    h
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
}

/// One scenario: a deterministic sequence of operations by a front of kind
/// `fk` and a back of kind `bk`, attached at `start`.
fn run(fk: Kind, bk: Kind, start: u32, seed: u64, steps: u32) -> Vec<Step> {
    let mut page = Box::new(PageBuf::new());
    let s = Sring::<Req, Rsp>::from_page(&mut page).unwrap();
    let base = s.as_ptr();
    let c = shim();
    let mut front = match fk {
        // SAFETY: base is the live page.
        Kind::C => Front::C(unsafe { (c.front_new)(base, start) }),
        Kind::Rust => {
            s.init();
            s.store(SharedIndex::ReqProd, start);
            s.store(SharedIndex::RspProd, start);
            s.store(SharedIndex::ReqEvent, start.wrapping_add(1));
            s.store(SharedIndex::RspEvent, start.wrapping_add(1));
            Front::Rust(FrontRing::attach(s, start))
        }
    };
    let mut back = match bk {
        // SAFETY: base is the live page.
        Kind::C => Back::C(unsafe { (c.back_new)(base, start) }),
        Kind::Rust => Back::Rust(BackRing::attach(s, start)),
    };
    let mut rng = Lcg(seed);
    let (mut next_id, mut expect_id) = (0u64, 0u64);
    let mut trace = Vec::with_capacity(steps as usize);
    for _ in 0..steps {
        let op = rng.next() % 8;
        let arg = if rng.next().is_multiple_of(16) {
            rng.next() % 140
        } else {
            rng.next() % 24
        };
        let (mut count, mut flag, mut got) = (0, false, Vec::new());
        match op {
            0 | 1 => {
                (count, flag) = front.send(next_id, arg);
                next_id += count as u64;
            }
            2 | 3 => (count, flag) = back.serve(arg),
            4 | 5 => {
                got = front.collect(arg);
                for &(id, sum) in &got {
                    assert_eq!(id, expect_id, "{fk:?} front / {bk:?} back: order");
                    assert_eq!(sum, req_a(id).wrapping_add(req_b(id)), "{fk:?}/{bk:?}: sum");
                    expect_id += 1;
                }
            }
            6 => flag = front.final_check(),
            _ => flag = back.final_check(),
        }
        trace.push(Step {
            op,
            count,
            flag,
            got,
            page_hash: page_hash(base),
        });
    }
    assert!(
        expect_id > steps as u64,
        "{fk:?}/{bk:?}: too little traffic ({expect_id})"
    );
    if let Front::C(r) = front {
        // SAFETY: allocated by c_front_new, not used again.
        unsafe { (c.free)(r) };
    }
    if let Back::C(r) = back {
        // SAFETY: allocated by c_back_new, not used again.
        unsafe { (c.free)(r) };
    }
    trace
}

fn all_pairings_agree(start: u32, seed: u64) {
    let steps = 40_000;
    let reference = run(Kind::C, Kind::C, start, seed, steps);
    let notifies = reference.iter().filter(|s| s.op < 4 && s.flag).count();
    let quiet = reference.iter().filter(|s| s.op < 4 && !s.flag).count();
    assert!(
        notifies > 100 && quiet > 100,
        "scenario must exercise suppression both ways"
    );
    for (fk, bk) in [
        (Kind::C, Kind::Rust),
        (Kind::Rust, Kind::C),
        (Kind::Rust, Kind::Rust),
    ] {
        let trace = run(fk, bk, start, seed, steps);
        for (i, (a, b)) in reference.iter().zip(&trace).enumerate() {
            assert_eq!(
                a, b,
                "step {i}: C front/C back vs {fk:?} front/{bk:?} back (start {start:#x})"
            );
        }
    }
}

#[test]
fn pairings_agree_from_zero() {
    all_pairings_agree(0, 1);
}

#[test]
fn pairings_agree_across_2_pow_32() {
    all_pairings_agree(u32::MAX - 3000, 2);
    all_pairings_agree(u32::MAX, 3);
}

/// The C front checks what a Rust back does when it respects ring.h's rule
/// and the Rust front catches a C-side lie.
#[test]
fn rust_front_rejects_overrun_from_c_side() {
    let mut page = Box::new(PageBuf::new());
    let s = Sring::<Req, Rsp>::from_page(&mut page).unwrap();
    let c = shim();
    // SAFETY: s.as_ptr() is the live page.
    let cback = unsafe { (c.back_new)(s.as_ptr(), 0) };
    let mut f = FrontRing::new(s);
    for id in 0..5 {
        f.produce_request(Req { id, a: 1, b: 2 }).unwrap();
    }
    f.push_requests();
    let mut notify = 0;
    // SAFETY: cback is live.
    assert_eq!(unsafe { (c.back_serve)(cback, 3, &mut notify) }, 3);
    assert_eq!(f.unconsumed_responses(), Ok(3));
    // The peer now claims 6 responses for 5 requests.
    s.store(SharedIndex::RspProd, 6);
    assert!(matches!(
        f.unconsumed_responses(),
        Err(oxen_ring::RingError::Overrun {
            value: 6,
            max_ahead: 5,
            ..
        })
    ));
    // SAFETY: allocated by c_back_new.
    unsafe { (c.free)(cback) };
}
