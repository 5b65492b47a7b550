//! Large directories: building, changing and paging through a directory of
//! 100,000 children costs O(log n) per change and O(page) per part, inside
//! transactions too. (The operation counts are asserted in `ops`' unit
//! tests; here the wall-clock bounds are deliberately generous.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use oxen_xenstore::wire::{Message, MsgType};
use oxen_xenstore::{ConnId, ConnKind, Engine, Quotas};

const CHILDREN: usize = 100_000;

/// Writes `/big/cNNNNNN` for `range` as pipelined requests in one feed.
fn build(engine: &mut Engine, id: ConnId, tx: u32, range: std::ops::Range<usize>) {
    let mut bytes = Vec::new();
    for i in range {
        let payload = format!("/big/c{i:06}\0v").into_bytes();
        bytes.extend(Message::new(MsgType::Write, 1, tx, payload).to_bytes());
        if bytes.len() > 1 << 16 {
            engine.feed(id, &bytes).unwrap();
            engine.drain_output(id);
            bytes.clear();
        }
    }
    engine.feed(id, &bytes).unwrap();
    engine.drain_output(id);
}

/// Pages through `/big` with DIRECTORY_PART; returns the names seen.
fn page(h: &mut Harness, id: ConnId, tx: u32) -> Vec<String> {
    let mut names = Vec::new();
    let mut offset = 0usize;
    loop {
        let mut payload = nul("/big");
        payload.extend(nul(&offset.to_string()));
        let part = h.request(id, MsgType::DirectoryPart, tx, &payload).unwrap();
        let gen_end = part.iter().position(|&b| b == 0).unwrap();
        let body = &part[gen_end + 1..];
        let done = body.ends_with(b"\0\0") || body == b"\0";
        let list = if done { &body[..body.len() - 1] } else { body };
        names.extend(
            list.split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8(n.to_vec()).unwrap()),
        );
        offset += list.len();
        if done {
            return names;
        }
    }
}

#[test]
fn a_hundred_thousand_children() {
    let mut h = Harness::with_quotas(Quotas::default());
    let c = h.connect(ConnKind::privileged_socket());
    let started = Instant::now();
    build(&mut h.engine, c, 0, 0..CHILDREN);
    let built = started.elapsed();
    eprintln!("built {CHILDREN} children in {built:?}");
    assert_eq!(h.engine.tree().child_names("/big").unwrap().len(), CHILDREN);
    // The requirement is 2 s; it takes about 0.2 s in this profile on the
    // development machine (the copying code took 38 s for 20,000).
    assert!(built < Duration::from_secs(2), "took {built:?}");

    let started = Instant::now();
    let names = page(&mut h, c, 0);
    let paged = started.elapsed();
    eprintln!("paged through them in {paged:?}");
    assert_eq!(names.len(), CHILDREN);
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    assert!(paged < Duration::from_secs(20), "took {paged:?}");

    // Inside a transaction: another 10,000 children, a listing, a commit.
    let started = Instant::now();
    let tx = h.start(c);
    build(&mut h.engine, c, tx, CHILDREN..CHILDREN + 10_000);
    assert_eq!(h.rm(c, tx, "/big/c000000"), ok());
    let names = page(&mut h, c, tx);
    assert_eq!(names.len(), CHILDREN + 10_000 - 1);
    assert_eq!(h.end(c, tx, true), ok());
    let in_tx = started.elapsed();
    eprintln!("10,000 more in a transaction, listed and committed in {in_tx:?}");
    assert!(in_tx < Duration::from_secs(20), "took {in_tx:?}");
    assert_eq!(
        h.engine.tree().child_names("/big").unwrap().len(),
        CHILDREN + 10_000 - 1
    );
    assert_eq!(h.read(c, 0, "/big/c109999"), val("v"));
}
