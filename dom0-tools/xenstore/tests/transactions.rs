//! Transaction isolation: a transaction's reads are a snapshot, and a
//! commit after a conflicting change fails with `EAGAIN` changing nothing.

mod common;

use common::*;

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
