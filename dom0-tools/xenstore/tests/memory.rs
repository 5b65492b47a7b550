//! Per-domain memory accounting: hostile domains stay within their quotas,
//! never make the store grow without bound, and never stall others.

mod common;

use common::*;
use oxen_xenstore::wire::{Message, MsgType};
use oxen_xenstore::{CloseReason, ConnId, Quotas};

fn public(h: &mut Harness, d0: ConnId, path: &str) {
    h.write(d0, 0, path, "").unwrap();
    h.set_perms(d0, 0, path, &["n0", "r7", "r8"]).unwrap();
}

#[test]
fn deaf_watchers_stay_within_the_domain_queue_quotas() {
    let quotas = Quotas::default();
    let mut h = Harness::with_quotas(quotas);
    let d0 = h.dom0();
    public(&mut h, d0, "/pub");
    // The hostile domain: many connections, each with a watch carrying a
    // big token, none of which ever reads its events.
    let token = "t".repeat(3000);
    let deaf: Vec<ConnId> = (0..200).map(|_| h.domu(7)).collect();
    for (i, c) in deaf.iter().enumerate() {
        let reply = h.watch(*c, "/pub", &format!("{i}{token}"));
        if i < quotas.watches_per_domain {
            assert_eq!(reply, ok());
        } else {
            assert_eq!(reply, err("E2BIG"), "the domain's watch quota");
        }
    }
    // Its replies were collected; from now on it reads nothing.
    let polite = h.domu(8);
    assert_eq!(h.watch(polite, "/pub", "p"), ok());
    h.events(polite);
    for i in 0..2000 {
        assert_eq!(h.write(d0, 0, "/pub", &i.to_string()), ok());
        // The polite domain gets every event, at once.
        assert_eq!(h.events(polite).len(), 1);
        let (_, held) = h.engine.usage(7);
        assert!(held.queued_events <= quotas.watch_events_per_domain);
        assert!(
            held.queued_bytes <= quotas.queue_memory_per_domain,
            "{} queued bytes",
            held.queued_bytes
        );
    }
    let (owned, held) = h.engine.usage(7);
    assert_eq!(owned.nodes, 0);
    assert_eq!(held.watches, quotas.watches_per_domain);
    assert!(held.bytes() <= quotas.queue_memory_per_domain + 128 * 3200);
    // The oldest events were dropped: a deaf connection's queue ends with
    // the latest write.
    let dropped: u64 = deaf
        .iter()
        .map(|c| h.engine.connection(*c).unwrap().dropped_events())
        .sum();
    assert!(dropped > 100_000, "{dropped} dropped");
    let last = h.engine.drain_output(deaf[0]);
    if !last.is_empty() {
        assert!(last.windows(5).any(|w| w == b"/pub\0"));
    }
}

#[test]
fn big_transaction_read_sets_are_bounded_per_domain() {
    let quotas = Quotas {
        transaction_memory_per_domain: 256 << 10,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let d0 = h.dom0();
    public(&mut h, d0, "/big");
    let value = "v".repeat(4000);
    for i in 0..200 {
        h.write(d0, 0, &format!("/big/n{i}"), &value).unwrap();
    }
    let g = h.domu(7);
    let mut refused = 0;
    for _ in 0..quotas.transactions_per_domain {
        let tx = h.start(g);
        for i in 0..200 {
            match h.read(g, tx, &format!("/big/n{i}")) {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e, "ENOMEM");
                    refused += 1;
                }
            }
            let (_, held) = h.engine.usage(7);
            // One request may overshoot by what it touched (one node here).
            assert!(held.transaction_bytes <= quotas.transaction_memory_per_domain + 4200);
        }
    }
    assert!(refused > 1000, "the quota bit ({refused} refusals)");
    // Other domains and dom0 are unaffected.
    let other = h.domu(8);
    let tx = h.start(other);
    assert_eq!(h.read(other, tx, "/big/n1"), Ok(value.clone().into_bytes()));
    let tx = h.start(d0);
    for i in 0..200 {
        assert!(h.read(d0, tx, &format!("/big/n{i}")).is_ok());
    }
    // Closing the connection gives everything back.
    h.engine.disconnect(g);
    assert_eq!(h.engine.usage(7).1, Default::default());
}

#[test]
fn node_memory_is_bounded_per_domain() {
    let quotas = Quotas {
        node_memory_per_domain: 64 << 10,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let d0 = h.dom0();
    h.write(d0, 0, "/local/domain/7", "").unwrap();
    h.set_perms(d0, 0, "/local/domain/7", &["n7"]).unwrap();
    let g = h.domu(7);
    let value = "v".repeat(2000);
    let mut written = 0;
    for i in 0..1000 {
        match h.write(g, 0, &format!("n{i}"), &value) {
            Ok(_) => written += 1,
            Err(e) => {
                assert_eq!(e, "ENOMEM");
                break;
            }
        }
    }
    assert!((25..40).contains(&written), "{written} nodes");
    let (owned, _) = h.engine.usage(7);
    assert!(owned.bytes <= quotas.node_memory_per_domain);
    // Shrinking a value is always allowed; growing it back is not.
    assert_eq!(h.write(g, 0, "n0", "x"), ok());
    assert_eq!(h.write(g, 0, "n1", &value), ok());
    // The same inside a transaction.
    let tx = h.start(g);
    assert_eq!(h.write(g, tx, "big", &value), ok());
    assert_eq!(h.write(g, tx, "big2", &value), err("ENOMEM"));
    assert_eq!(h.end(g, tx, true), ok());
    // Removing nodes gives the memory back.
    h.rm(g, 0, "n2").unwrap();
    assert!(h.engine.usage(7).0.bytes < owned.bytes);
    // dom0 is exempt.
    h.write(d0, 0, "/local/domain/7/dom0", &value).unwrap();
}

#[test]
fn outstanding_replies_are_bounded_per_domain() {
    let quotas = Quotas {
        outstanding_requests: 5,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let d0 = h.dom0();
    public(&mut h, d0, "/pub");
    let conns: Vec<ConnId> = (0..4).map(|_| h.domu(7)).collect();
    let read = Message::new(MsgType::Read, 1, 0, b"/pub\0".to_vec()).to_bytes();
    let mut answered = 0;
    for c in &conns {
        for _ in 0..3 {
            h.engine.feed(*c, &read).unwrap();
        }
    }
    for c in &conns {
        let out = h.engine.drain_output(*c);
        answered += out.windows(6).filter(|w| *w == b"EQUOTA").count();
    }
    assert_eq!(answered, 12 - 5, "five replies for the domain, then EQUOTA");
    // A transport that ignores backpressure and floods a domain whose
    // queue is full gets that connection closed.
    let q = Quotas {
        queue_memory_per_domain: 10_000,
        outstanding_requests: 1000,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(q);
    let d0 = h.dom0();
    h.write(d0, 0, "/pub", &"x".repeat(3000)).unwrap();
    h.set_perms(d0, 0, "/pub", &["r0"]).unwrap();
    let g = h.domu(9);
    let polite = h.domu(9);
    let mut closed = false;
    for _ in 0..10 {
        if h.engine.feed(g, &read).is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed);
    assert_eq!(h.engine.take_closed(), vec![(g, CloseReason::QueueFull)]);
    assert_eq!(h.engine.usage(9).1, Default::default());
    // Only the flooding connection is closed, not the rest of its domain.
    assert_eq!(h.read(polite, 0, "/pub"), Ok("x".repeat(3000).into_bytes()));
}
