//! Transaction isolation: a transaction's reads are a snapshot, and a
//! commit after a conflicting change fails with `EAGAIN` changing nothing.

mod common;

use common::*;
use oxen_xenstore::Quotas;
use oxen_xenstore::wire::MsgType;

#[test]
fn reads_inside_a_transaction_are_a_snapshot() {
    let mut h = Harness::new();
    let a = h.dom0();
    let b = h.dom0();
    assert_eq!(h.write(a, 0, "/k", "old"), ok());
    assert_eq!(h.write(a, 0, "/d/x", ""), ok());
    let tx = h.start(b);
    assert_eq!(h.read(b, tx, "/k"), val("old"));
    assert_eq!(h.dir(b, tx, "/d"), list(&["x"]));
    assert_eq!(h.read(b, tx, "/gone"), err("ENOENT"));
    // Another connection commits new values meanwhile.
    assert_eq!(h.write(a, 0, "/k", "new"), ok());
    assert_eq!(h.write(a, 0, "/d/y", ""), ok());
    assert_eq!(h.write(a, 0, "/gone", "here"), ok());
    // The transaction keeps seeing what it saw first.
    assert_eq!(h.read(b, tx, "/k"), val("old"));
    assert_eq!(h.dir(b, tx, "/d"), list(&["x"]));
    assert_eq!(h.read(b, tx, "/gone"), err("ENOENT"));
    // Its own writes still show.
    assert_eq!(h.write(b, tx, "/mine", "1"), ok());
    assert_eq!(h.read(b, tx, "/mine"), val("1"));
    // The commit conflicts and changes nothing.
    assert_eq!(h.end(b, tx, true), err("EAGAIN"));
    assert_eq!(h.read(a, 0, "/k"), val("new"));
    assert_eq!(h.read(a, 0, "/mine"), err("ENOENT"));
}

#[test]
fn transactions_have_no_age_limit_by_default() {
    let mut h = Harness::new();
    let c = h.dom0();
    let tx = h.start(c);
    h.engine.set_time(10 * 24 * 3600 * 1000);
    assert_eq!(h.engine.next_deadline(), None);
    assert_eq!(h.write(c, tx, "/a", "1"), ok());
    assert_eq!(h.end(c, tx, true), ok());
}

fn control(h: &mut Harness, c: oxen_xenstore::ConnId, payload: &[u8]) -> Reply {
    h.request(c, MsgType::Control, 0, payload)
}

#[test]
fn an_old_transaction_is_ended_by_the_store() {
    let quotas = Quotas {
        transaction_timeout_secs: 5,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let d0 = h.dom0();
    h.write(d0, 0, "/local/domain/3", "").unwrap();
    h.set_perms(d0, 0, "/local/domain/3", &["n3"]).unwrap();
    let c = h.domu(3);
    h.engine.set_time(1_000);
    let old = h.start(c);
    assert_eq!(h.engine.next_deadline(), Some(6_000));
    h.engine.set_time(4_000);
    let young = h.start(d0);
    h.engine.set_time(5_999);
    assert_eq!(
        h.read(c, old, "/local/domain/3"),
        val(""),
        "still young enough"
    );
    // The sweep ends the old one at its deadline and frees its state.
    h.engine.set_time(6_000);
    let notices = h.engine.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("ended after 5 s"), "{notices:?}");
    assert_eq!(
        h.engine.next_deadline(),
        Some(9_000),
        "the young one is next"
    );
    // Every later use fails with EAGAIN, the commit too.
    assert_eq!(h.read(c, old, "/local/domain/3"), err("EAGAIN"));
    assert_eq!(h.write(c, old, "x", "1"), err("EAGAIN"));
    assert_eq!(h.end(c, old, true), err("EAGAIN"));
    assert_eq!(
        h.end(c, old, true),
        err("ENOENT"),
        "and then the id is gone"
    );
    assert_eq!(h.read(c, 0, "x"), err("ENOENT"), "nothing was applied");
    // The younger transaction is unaffected.
    assert_eq!(h.write(d0, young, "/y", "1"), ok());
    assert_eq!(h.end(d0, young, true), ok());
    // An expired transaction can also be aborted, quietly.
    let t = h.start(c);
    h.engine.set_time(20_000);
    assert_eq!(h.end(c, t, false), ok());
    assert_eq!(h.engine.connection(c).unwrap().open_transactions(), 0);
}

#[test]
fn an_old_transaction_expires_on_use_too() {
    let mut h = Harness::new();
    let c = h.dom0();
    let tx = h.start(c);
    // No limit while the clock moves on: nothing expires.
    h.engine.set_time(5_000);
    assert_eq!(h.write(c, tx, "/a", "1"), ok());
    // A limit set later applies to running transactions at their next use.
    assert_eq!(
        control(&mut h, c, b"quota\0transaction-timeout\0\x31\0"),
        ok()
    );
    assert_eq!(h.write(c, tx, "/b", "1"), err("EAGAIN"));
    assert_eq!(h.end(c, tx, true), err("EAGAIN"));
    assert_eq!(h.read(c, 0, "/a"), err("ENOENT"));
}

#[test]
fn open_transactions_are_limited_per_domain() {
    let quotas = Quotas {
        transactions_per_domain: 3,
        transactions_per_connection: 2,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let a = h.domu(4);
    let b = h.domu(4);
    let other = h.domu(5);
    let d0 = h.dom0();
    let t1 = h.start(a);
    h.start(a);
    assert_eq!(
        h.request(a, MsgType::TransactionStart, 0, b"\0"),
        err("ENOSPC"),
        "per connection"
    );
    h.start(b);
    assert_eq!(
        h.request(b, MsgType::TransactionStart, 0, b"\0"),
        err("ENOSPC"),
        "per domain, across its connections"
    );
    // Other domains and dom0 are unaffected.
    h.start(other);
    h.start(d0);
    h.start(d0);
    // Ending one, or a connection going away, frees a slot.
    assert_eq!(h.end(a, t1, false), ok());
    h.start(b);
    h.engine.disconnect(a);
    let c = h.domu(4);
    h.start(c);
}
