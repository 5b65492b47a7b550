//! Hostile input: every bad request fails for its sender only.

mod common;

use common::*;
use oxen_xenstore::wire::{HEADER_LEN, Header, Message, MsgType, PAYLOAD_MAX};
use oxen_xenstore::{CloseReason, Quotas, XsError};
use proptest::prelude::*;

fn error_string(msg: &Message) -> String {
    assert_eq!(
        msg.header.msg_type,
        MsgType::Error as u32,
        "expected an error reply"
    );
    String::from_utf8(msg.payload.strip_suffix(b"\0").unwrap().to_vec()).unwrap()
}

#[test]
fn oversize_header_closes_the_connection() {
    let mut h = Harness::new();
    let bad = h.dom0();
    let good = h.dom0();
    assert_eq!(h.write(good, 0, "/ok", "1"), ok());
    let header = Header {
        msg_type: MsgType::Write as u32,
        req_id: 77,
        tx_id: 0,
        len: PAYLOAD_MAX as u32 + 1,
    };
    // A whole valid request follows in the same bytes: it is not served.
    let mut bytes = header.encode().to_vec();
    bytes.extend(Message::new(MsgType::Write, 78, 0, b"/evil\0x".to_vec()).to_bytes());
    assert_eq!(h.engine.feed(bad, &bytes), Err(XsError::NoEnt));
    assert!(h.engine.connection(bad).is_none(), "connection closed");
    assert!(h.engine.drain_output(bad).is_empty(), "no reply");
    assert_eq!(
        h.engine.take_closed(),
        vec![(
            bad,
            CloseReason::Oversized {
                len: PAYLOAD_MAX as u32 + 1
            }
        )]
    );
    assert_eq!(h.engine.feed(bad, b"more"), Err(XsError::NoEnt));
    // Others carry on.
    assert_eq!(h.read(good, 0, "/ok"), val("1"));
    assert_eq!(h.read(good, 0, "/evil"), err("ENOENT"));
}

#[test]
fn huge_length_closes_at_once() {
    let mut h = Harness::new();
    let bad = h.domu(5);
    let good = h.dom0();
    let header = Header {
        msg_type: 2,
        req_id: 1,
        tx_id: 0,
        len: u32::MAX,
    };
    // Split header: nothing happens until it is complete.
    let bytes = header.encode();
    h.engine.feed(bad, &bytes[..7]).unwrap();
    assert!(h.engine.connection(bad).is_some());
    assert_eq!(h.engine.feed(bad, &bytes[7..]), Err(XsError::NoEnt));
    assert_eq!(
        h.engine.take_closed(),
        vec![(bad, CloseReason::Oversized { len: u32::MAX })]
    );
    assert_eq!(h.read(good, 0, "/"), val(""));
}

#[test]
fn largest_payload_is_still_accepted() {
    let mut h = Harness::new();
    let c = h.dom0();
    let mut payload = b"/max\0".to_vec();
    payload.resize(PAYLOAD_MAX, b'v');
    assert_eq!(h.request(c, MsgType::Write, 0, &payload), ok());
    assert!(h.engine.connection(c).is_some());
}

#[test]
fn unknown_and_server_only_types_are_einval() {
    let mut h = Harness::new();
    let c = h.dom0();
    for ty in [
        20u32,
        23,
        99,
        0xffff,
        u32::MAX,
        MsgType::WatchEvent as u32,
        MsgType::Error as u32,
    ] {
        let header = Header {
            msg_type: ty,
            req_id: ty,
            tx_id: 0,
            len: 2,
        };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(b"/\0");
        let reply = h.raw(c, &bytes);
        assert_eq!(error_string(&reply), "EINVAL", "type {ty}");
        assert_eq!(reply.header.req_id, ty);
    }
    assert_eq!(h.read(c, 0, "/"), val(""));
}

#[test]
fn malformed_payloads() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(
        h.request(c, MsgType::Read, 0, b"/a"),
        err("EINVAL"),
        "missing NUL"
    );
    assert_eq!(
        h.request(c, MsgType::Read, 0, b"/a\0/b\0"),
        err("EINVAL"),
        "two args"
    );
    assert_eq!(h.request(c, MsgType::Read, 0, b""), err("EINVAL"));
    assert_eq!(h.request(c, MsgType::Write, 0, b"/novalue"), err("EINVAL"));
    assert_eq!(
        h.request(c, MsgType::GetDomainPath, 0, b"abc\0"),
        err("EINVAL")
    );
    assert_eq!(
        h.request(c, MsgType::GetDomainPath, 0, b"99999999999\0"),
        err("EINVAL")
    );
    assert_eq!(h.request(c, MsgType::Introduce, 0, b"1\0"), err("EINVAL"));
    assert_eq!(
        h.request(c, MsgType::DirectoryPart, 0, b"/\0-1\0"),
        err("EINVAL")
    );
}

#[test]
fn bad_paths() {
    let mut h = Harness::new();
    let c = h.dom0();
    let long_abs = format!("/{}", "a".repeat(3072));
    let long_rel = "a".repeat(2049);
    for bad in [
        "",
        "/a/",
        "//",
        "/a//b",
        "/a b",
        "/a.b",
        "/ä",
        long_abs.as_str(),
        long_rel.as_str(),
    ] {
        assert_eq!(h.write(c, 0, bad, "x"), err("EINVAL"), "{bad:?}");
        assert_eq!(h.read(c, 0, bad), err("EINVAL"), "{bad:?}");
    }
    assert_eq!(h.watch(c, "@", "t"), err("EINVAL"));
    assert_eq!(h.engine.tree().len(), 1, "nothing was created");
}

#[test]
fn outstanding_request_quota() {
    let quotas = Quotas {
        outstanding_requests: 3,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let d0 = h.dom0();
    h.write(d0, 0, "/pub", "x").unwrap();
    h.set_perms(d0, 0, "/pub", &["r0"]).unwrap();
    let greedy = h.domu(4);
    let polite = h.domu(5);
    // Pipeline ten requests without collecting any reply.
    let mut burst = Vec::new();
    for req in 1..=10u32 {
        burst.extend(Message::new(MsgType::Read, req, 0, b"/pub\0".to_vec()).to_bytes());
    }
    let answers = |h: &mut Harness, conn| {
        h.engine.feed(conn, &burst).unwrap();
        let out = h.engine.drain_output(conn);
        let mut input = &out[..];
        let mut decoder = oxen_xenstore::wire::Decoder::new();
        let mut kinds = Vec::new();
        while let Some(frame) = decoder.decode(&mut input) {
            let msg = frame.unwrap();
            kinds.push(if msg.header.msg_type == MsgType::Error as u32 {
                error_string(&msg)
            } else {
                String::from_utf8(msg.payload).unwrap()
            });
        }
        kinds
    };
    let kinds = answers(&mut h, greedy);
    assert_eq!(kinds.len(), 10, "every request is answered");
    assert_eq!(&kinds[..3], ["x", "x", "x"]);
    assert!(kinds[3..].iter().all(|k| k == "EQUOTA"), "{kinds:?}");
    assert_eq!(h.read(polite, 0, "/pub"), val("x"), "others unaffected");
    assert_eq!(
        h.read(greedy, 0, "/pub"),
        val("x"),
        "collecting replies lifts the limit"
    );
    // The trusted toolstack may pipeline freely; its transport applies backpressure.
    assert_eq!(answers(&mut h, d0), vec!["x"; 10]);
}

#[test]
fn watch_event_flood_is_capped_per_connection() {
    let quotas = Quotas {
        queued_watch_events: 5,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let writer = h.dom0();
    let deaf = h.dom0();
    let listening = h.dom0();
    h.watch(deaf, "/f", "t").unwrap();
    h.watch(listening, "/f", "t").unwrap();
    h.events(listening);
    h.events(deaf);
    // From now on `deaf` never collects its output: only five events are kept.
    for i in 0..20 {
        h.write(writer, 0, "/f", &i.to_string()).unwrap();
        assert_eq!(h.events(listening).len(), 1);
    }
    assert_eq!(h.engine.connection(deaf).unwrap().dropped_events(), 15);
    assert_eq!(h.events(deaf).len(), 5);
}

proptest! {
    /// Arbitrary bytes on one connection never panic the engine nor disturb another.
    #[test]
    fn garbage_never_hurts_others(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..40)) {
        let mut h = Harness::new();
        let victim = h.dom0();
        let mut attacker = h.domu(9);
        h.write(victim, 0, "/v", "safe").unwrap();
        for chunk in &chunks {
            if h.engine.feed(attacker, chunk).is_err() {
                // Closed for a framing error: only the attacker noticed.
                prop_assert!(h.engine.connection(attacker).is_none());
                attacker = h.domu(9);
            }
            let _ = h.engine.drain_output(attacker);
            prop_assert_eq!(h.read(victim, 0, "/v"), val("safe"));
        }
        // Only dom0's data is there: the unprivileged attacker cannot write under the root.
        prop_assert!(h.engine.tree().iter().all(|(p, _)| p == "/" || p == "/v"));
    }

    /// Requests with random types and payloads always get exactly one reply.
    #[test]
    fn random_requests_get_one_reply(ty in 0u32..30, tx in 0u32..3, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut h = Harness::new();
        let c = h.dom0();
        let header = Header { msg_type: ty, req_id: 4242, tx_id: tx, len: payload.len() as u32 };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(&payload);
        let reply = h.raw(c, &bytes);
        prop_assert_eq!(reply.header.req_id, 4242);
        prop_assert!(reply.payload.len() <= PAYLOAD_MAX);
        prop_assert!(HEADER_LEN == 16);
    }
}

#[test]
fn transaction_footprint_is_bounded() {
    let quotas = Quotas {
        transaction_nodes: 16,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let d0 = h.dom0();
    h.write(d0, 0, "/local/domain/3", "").unwrap();
    h.set_perms(d0, 0, "/local/domain/3", &["n3"]).unwrap();
    let g = h.domu(3);
    let tx = h.start(g);
    // Reading ever more distinct missing nodes would grow the read set forever.
    let mut refused_at = None;
    for i in 0..100 {
        match h.read(g, tx, &format!("missing-{i}")) {
            Err(e) if e == "ENOENT" => {}
            Err(e) if e == "ENOSPC" => {
                refused_at = Some(i);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let refused_at = refused_at.expect("the transaction quota bites");
    assert!((8..=16).contains(&refused_at), "refused at {refused_at}");
    // Outside the transaction, and for others, everything still works.
    assert_eq!(h.write(g, 0, "ok", "1"), ok());
    assert_eq!(h.end(g, tx, false), ok());
    // dom0 is exempt.
    let tx = h.start(d0);
    for i in 0..100 {
        assert_eq!(h.read(d0, tx, &format!("/missing-{i}")), err("ENOENT"));
    }
}
