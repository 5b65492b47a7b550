//! Host benchmark: N request/response round trips through `oxen-ring` and
//! through Xen's C macros (built at run time, like the interop test), both
//! ends on one thread, side by side.
//!
//! `cargo run -p oxen-ring --example bench --release [-- N]`
//!
//! Each iteration the front produces up to `batch` requests and pushes with
//! a notify check, the back serves all of them, pushes responses with a
//! notify check and does a final check, the front collects the responses
//! and does its final check — the same sequence in C and Rust.

#[path = "../tests/support/cshim.rs"]
mod cshim;

use std::hint::black_box;
use std::time::Instant;

use cshim::{req_a, req_b, shim};
use oxen_ring::{BackRing, FrontRing, PageBuf, Pod, Sring};

#[path = "../tests/support/types.rs"]
mod types;
use types::{Req, Rsp};

/// Produces up to `batch` of the `n` requests (counting in `sent`) and pushes
/// them; returns 1 if the back end must be notified.
fn produce_batch(f: &mut FrontRing<'_, Req, Rsp>, sent: &mut u64, n: u64, batch: u32) -> u64 {
    let mut k = 0;
    while k < batch && *sent < n {
        let req = Req {
            id: *sent,
            a: req_a(*sent),
            b: req_b(*sent),
        };
        if f.produce_request(req).is_err() {
            break;
        }
        *sent += 1;
        k += 1;
    }
    f.push_requests_and_check_notify() as u64
}

/// `n` round trips through our rings; returns (sum of sums, notifications).
pub fn rust_round_trips(page: &mut PageBuf, n: u64, batch: u32) -> (u64, u64) {
    let s = Sring::<Req, Rsp>::from_page(page).expect("fits");
    let mut f = FrontRing::new(s);
    let mut b = BackRing::new(s);
    let (mut sent, mut done, mut total, mut notifies) = (0u64, 0u64, 0u64, 0u64);
    while done < n {
        notifies += produce_batch(&mut f, &mut sent, n, batch);
        while let Some(q) = b.consume_request().expect("well-behaved") {
            let rsp = Rsp {
                id: q.id,
                sum: q.a.wrapping_add(q.b),
                pad: 0,
            };
            b.produce_response(rsp).expect("outstanding");
        }
        notifies += b.push_responses_and_check_notify() as u64;
        black_box(b.final_check_for_requests().expect("well-behaved"));
        while let Some(r) = f.consume_response().expect("well-behaved") {
            total += r.sum as u64;
            done += 1;
        }
        black_box(f.final_check_for_responses().expect("well-behaved"));
    }
    (total, notifies)
}

/// The same, with the batch entry points: each side copies everything
/// published out in one `take_*` call (one index read and check per batch).
pub fn rust_round_trips_batched(page: &mut PageBuf, n: u64, batch: u32) -> (u64, u64) {
    let s = Sring::<Req, Rsp>::from_page(page).expect("fits");
    let mut f = FrontRing::new(s);
    let mut b = BackRing::new(s);
    let mut qbuf = [Req { id: 0, a: 0, b: 0 }; 128];
    let mut rbuf = [Rsp {
        id: 0,
        sum: 0,
        pad: 0,
    }; 128];
    let (mut sent, mut done, mut total, mut notifies) = (0u64, 0u64, 0u64, 0u64);
    while done < n {
        notifies += produce_batch(&mut f, &mut sent, n, batch);
        let got = b.take_requests(&mut qbuf).expect("well-behaved");
        for q in &qbuf[..got] {
            let rsp = Rsp {
                id: q.id,
                sum: q.a.wrapping_add(q.b),
                pad: 0,
            };
            b.produce_response(rsp).expect("outstanding");
        }
        notifies += b.push_responses_and_check_notify() as u64;
        black_box(b.final_check_for_requests().expect("well-behaved"));
        let got = f.take_responses(&mut rbuf).expect("well-behaved");
        for r in &rbuf[..got] {
            total += r.sum as u64;
        }
        done += got as u64;
        black_box(f.final_check_for_responses().expect("well-behaved"));
    }
    (total, notifies)
}

fn c_round_trips(page: &mut PageBuf, n: u64, batch: u32) -> (u64, u64) {
    let mut notifies = 0;
    // SAFETY: a live, exclusively borrowed page; c_bench initialises it.
    let total = unsafe { (shim().bench)(page.0.as_mut_ptr(), n, batch, &mut notifies) };
    (total, notifies)
}

/// One benchmark: (page, round trips, batch) -> (checksum, notifications).
type Run = fn(&mut PageBuf, u64, u32) -> (u64, u64);

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N must be a number"))
        .unwrap_or(20_000_000);
    shim(); // build the C side before timing
    let mut page = Box::new(PageBuf::new());
    println!("{n} round trips per run, 128-entry ring of 16-byte entries, one thread");
    println!(
        "{:>6}  {:>14}  {:>16}  {:>14}  {:>7}  {:>7}",
        "batch", "Rust ops/s", "Rust take_* ops/s", "C ops/s", "Rust/C", "take/C"
    );
    let runs: [Run; 3] = [rust_round_trips, rust_round_trips_batched, c_round_trips];
    for batch in [1u32, 8, 32, 128] {
        let mut best = [0f64; 3];
        let mut results = [(0, 0); 3];
        for _ in 0..3 {
            for (i, run) in runs.iter().enumerate() {
                let t = Instant::now();
                results[i] = black_box(run(&mut page, n, batch));
                let ops = n as f64 / t.elapsed().as_secs_f64();
                best[i] = best[i].max(ops);
            }
        }
        assert!(
            results[0] == results[2] && results[1] == results[2],
            "Rust and C disagree (sum, notifications): {results:?}"
        );
        println!(
            "{batch:>6}  {:>14.0}  {:>16.0}  {:>14.0}  {:>7.2}  {:>7.2}",
            best[0],
            best[1],
            best[2],
            best[0] / best[2],
            best[1] / best[2]
        );
    }
}
