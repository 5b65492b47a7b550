//! End-to-end protocol behaviour of the engine, through its byte interface.

mod common;

use common::*;
use oxen_xenstore::wire::{Message, MsgType};
use oxen_xenstore::{ConnKind, Quotas};

fn ev(path: &str, token: &str) -> (String, String) {
    (path.to_string(), token.to_string())
}

#[test]
fn basic_node_operations() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.write(c, 0, "/vm/1/name", "guest"), ok());
    assert_eq!(h.read(c, 0, "/vm/1/name"), val("guest"));
    assert_eq!(h.read(c, 0, "/vm/1"), val(""));
    assert_eq!(h.dir(c, 0, "/vm"), list(&["1"]));
    assert_eq!(h.mkdir(c, 0, "/vm/2"), ok());
    assert_eq!(
        h.mkdir(c, 0, "/vm/2"),
        ok(),
        "mkdir of an existing node is fine"
    );
    assert_eq!(h.dir(c, 0, "/vm"), list(&["1", "2"]));
    assert_eq!(h.get_perms(c, 0, "/vm"), list(&["n0"]));
    assert_eq!(h.rm(c, 0, "/vm/1"), ok());
    assert_eq!(h.read(c, 0, "/vm/1/name"), err("ENOENT"));
    assert_eq!(
        h.rm(c, 0, "/vm/1"),
        ok(),
        "rm of a missing node with a parent is fine"
    );
    assert_eq!(h.rm(c, 0, "/nope/x"), err("ENOENT"));
    assert_eq!(h.rm(c, 0, "/"), err("EINVAL"));
    // Values are bytes: NULs included.
    let mut payload = nul("/bin");
    payload.extend_from_slice(b"a\0b\xff");
    assert_eq!(h.request(c, MsgType::Write, 0, &payload), ok());
    assert_eq!(h.read(c, 0, "/bin"), Ok(b"a\0b\xff".to_vec()));
}

#[test]
fn domain_paths_and_relative_access() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    assert_eq!(
        h.request(d0, MsgType::GetDomainPath, 0, b"5\0"),
        Ok(nul("/local/domain/5"))
    );
    assert_eq!(h.write(d0, 0, "/local/domain/5", ""), ok());
    assert_eq!(h.set_perms(d0, 0, "/local/domain/5", &["n5"]), ok());
    let g = h.domu(5);
    assert_eq!(h.write(g, 0, "device/vif", "1"), ok());
    assert_eq!(h.read(d0, 0, "/local/domain/5/device/vif"), val("1"));
    assert_eq!(h.get_perms(g, 0, "device/vif"), list(&["n5"]));
    // Another guest cannot see it, nor learn whether it exists.
    let other = h.domu(6);
    assert_eq!(
        h.read(other, 0, "/local/domain/5/device/vif"),
        err("EACCES")
    );
    assert_eq!(h.read(other, 0, "/local/domain/5/missing"), err("EACCES"));
    assert_eq!(h.write(other, 0, "/local/domain/5/x", "1"), err("EACCES"));
    assert_eq!(h.write(other, 0, "/top", "1"), err("EACCES"), "root is n0");
}

#[test]
fn ownership_and_acl() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    h.write(d0, 0, "/shared", "").unwrap();
    assert_eq!(h.set_perms(d0, 0, "/shared", &["r0", "b1", "n2"]), ok());
    let g1 = h.domu(1);
    let g2 = h.domu(2);
    let g3 = h.domu(3);
    assert_eq!(h.write(g1, 0, "/shared/k", "v"), ok());
    assert_eq!(
        h.get_perms(d0, 0, "/shared/k"),
        list(&["r1", "b1", "n2"]),
        "owner becomes creator"
    );
    assert_eq!(h.read(g2, 0, "/shared/k"), err("EACCES"));
    assert_eq!(
        h.read(g3, 0, "/shared/k"),
        val("v"),
        "default entry applies to unlisted domains"
    );
    assert_eq!(h.write(g3, 0, "/shared/k", "w"), err("EACCES"));
    assert_eq!(h.set_perms(g3, 0, "/shared/k", &["b3"]), err("EACCES"));
    assert_eq!(h.set_perms(g1, 0, "/shared/k", &["n3"]), err("EPERM"));
    assert_eq!(h.set_perms(g1, 0, "/shared/k", &["n1", "r3"]), ok());
    assert_eq!(h.set_perms(g1, 0, "/shared/k", &["x1"]), err("EINVAL"));
    assert_eq!(
        h.set_perms(d0, 0, "/shared/k", &["n3"]),
        ok(),
        "dom0 may give nodes away"
    );
    assert_eq!(
        h.request(g1, MsgType::SetPerms, 0, &nul("/shared/k")),
        err("EINVAL"),
        "empty list"
    );
}

#[test]
fn read_only_connection() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    h.write(d0, 0, "/a", "1").unwrap();
    let ro = h.connect(ConnKind::read_only_socket());
    assert_eq!(h.read(ro, 0, "/a"), val("1"));
    assert_eq!(h.write(ro, 0, "/a", "2"), err("EROFS"));
    assert_eq!(h.mkdir(ro, 0, "/b"), err("EROFS"));
    assert_eq!(h.rm(ro, 0, "/a"), err("EROFS"));
    assert_eq!(h.set_perms(ro, 0, "/a", &["r0"]), err("EROFS"));
    assert_eq!(h.watch(ro, "/a", "t"), ok());
    assert_eq!(h.events(ro), vec![ev("/a", "t")]);
    h.write(d0, 0, "/a", "3").unwrap();
    assert_eq!(h.events(ro), vec![ev("/a", "t")]);
}

#[test]
fn watches_fire_on_every_kind_of_change() {
    let mut h = Harness::new();
    let c = h.dom0();
    let w = h.dom0();
    assert_eq!(h.watch(w, "/a", "tok"), ok());
    assert_eq!(h.events(w), vec![ev("/a", "tok")], "initial event");
    h.write(c, 0, "/a/b", "1").unwrap();
    h.mkdir(c, 0, "/a/c").unwrap();
    h.set_perms(c, 0, "/a/c", &["r0"]).unwrap();
    h.rm(c, 0, "/a/b").unwrap();
    h.write(c, 0, "/ab", "x").unwrap();
    assert_eq!(
        h.events(w),
        vec![
            ev("/a/b", "tok"),
            ev("/a/c", "tok"),
            ev("/a/c", "tok"),
            ev("/a/b", "tok")
        ],
        "a sibling with a common prefix (/ab) does not fire"
    );
    // A watch below a removed node fires with its own path.
    h.write(c, 0, "/x/y/z", "1").unwrap();
    h.watch(w, "/x/y/z", "deep").unwrap();
    h.events(w);
    h.rm(c, 0, "/x").unwrap();
    assert_eq!(h.events(w), vec![ev("/x/y/z", "deep")]);
    assert_eq!(h.unwatch(w, "/a", "tok"), ok());
    assert_eq!(h.unwatch(w, "/a", "tok"), err("ENOENT"));
    h.write(c, 0, "/a/b", "2").unwrap();
    assert_eq!(h.events(w), vec![]);
}

#[test]
fn watch_errors_and_reset() {
    let mut h = Harness::new();
    let w = h.dom0();
    assert_eq!(h.watch(w, "/a", "t"), ok());
    assert_eq!(h.watch(w, "/a", "t"), err("EEXIST"));
    assert_eq!(h.watch(w, "/a", "u"), ok());
    assert_eq!(h.watch(w, "/a/", "t"), err("EINVAL"));
    assert_eq!(
        h.request(w, MsgType::Watch, 0, &nul("/a")),
        err("EINVAL"),
        "token missing"
    );
    h.events(w);
    assert_eq!(h.request(w, MsgType::ResetWatches, 0, b""), ok());
    assert!(h.engine.connection(w).unwrap().watches().is_empty());
    let c = h.dom0();
    h.write(c, 0, "/a", "1").unwrap();
    assert_eq!(h.events(w), vec![]);
}

#[test]
fn watch_events_respect_read_permission() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    h.write(d0, 0, "/local/domain/1", "").unwrap();
    h.set_perms(d0, 0, "/local/domain/1", &["n1"]).unwrap();
    let g1 = h.domu(1);
    let g2 = h.domu(2);
    h.watch(g1, "/local/domain/1", "mine").unwrap();
    h.watch(g2, "/local/domain/1", "snoop").unwrap();
    h.events(g1);
    h.events(g2);
    h.write(d0, 0, "/local/domain/1/secret", "x").unwrap();
    assert_eq!(h.events(g1), vec![ev("/local/domain/1/secret", "mine")]);
    assert_eq!(h.events(g2), vec![], "no events for unreadable nodes");
}

#[test]
fn relative_watches_report_relative_paths() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    h.write(d0, 0, "/local/domain/3", "").unwrap();
    h.set_perms(d0, 0, "/local/domain/3", &["n3"]).unwrap();
    let g = h.domu(3);
    h.watch(g, "device", "rel").unwrap();
    assert_eq!(h.events(g), vec![ev("device", "rel")]);
    h.write(d0, 0, "/local/domain/3/device/vbd", "").unwrap();
    assert_eq!(h.events(g), vec![ev("device/vbd", "rel")]);
    assert_eq!(
        h.unwatch(g, "/local/domain/3/device", "rel"),
        ok(),
        "same watch, absolute form"
    );
}

#[test]
fn special_watches_and_domain_lifecycle() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    let guest_conn = h.domu(7);
    h.watch(d0, "@introduceDomain", "in").unwrap();
    h.watch(d0, "@releaseDomain", "out").unwrap();
    h.watch(guest_conn, "@releaseDomain", "g").unwrap();
    assert_eq!(
        h.events(d0),
        vec![ev("@introduceDomain", "in"), ev("@releaseDomain", "out")]
    );
    h.events(guest_conn);
    assert_eq!(
        h.request(d0, MsgType::IsDomainIntroduced, 0, b"7\0"),
        Ok(nul("F"))
    );
    assert_eq!(
        h.request(d0, MsgType::IsDomainIntroduced, 0, b"0\0"),
        Ok(nul("T"))
    );
    assert_eq!(
        h.request(d0, MsgType::Introduce, 0, b"7\x001234\x005\0"),
        ok()
    );
    assert_eq!(h.events(d0), vec![ev("@introduceDomain", "in")]);
    assert_eq!(
        h.request(d0, MsgType::IsDomainIntroduced, 0, b"7\0"),
        Ok(nul("T"))
    );
    assert_eq!(h.request(d0, MsgType::Resume, 0, b"7\0"), ok());
    assert_eq!(h.request(d0, MsgType::Resume, 0, b"8\0"), err("ENOENT"));
    assert_eq!(
        h.request(guest_conn, MsgType::Introduce, 0, b"9\x001\x001\0"),
        err("EACCES")
    );
    assert_eq!(
        h.request(d0, MsgType::Introduce, 0, b"32752\x001\x001\0"),
        err("EINVAL")
    );
    assert_eq!(
        h.request(d0, MsgType::Introduce, 0, b"x\x001\x001\0"),
        err("EINVAL")
    );
    assert_eq!(h.request(d0, MsgType::Release, 0, b"7\0"), ok());
    assert_eq!(h.events(d0), vec![ev("@releaseDomain", "out")]);
    assert!(
        h.engine.connection(guest_conn).is_none(),
        "a released domain's connections close"
    );
    assert_eq!(h.request(d0, MsgType::Release, 0, b"7\0"), err("ENOENT"));
    assert_eq!(
        h.request(d0, MsgType::IsDomainIntroduced, 0, b"7\0"),
        Ok(nul("F"))
    );
}

#[test]
fn set_target_lets_a_device_model_act_for_its_guest() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    for (d, mfn) in [(4, 1), (5, 2)] {
        let payload = format!("{d}\0{mfn}\x001\0");
        h.request(d0, MsgType::Introduce, 0, payload.as_bytes())
            .unwrap();
    }
    h.write(d0, 0, "/local/domain/4", "").unwrap();
    h.set_perms(d0, 0, "/local/domain/4", &["n4"]).unwrap();
    let dm = h.domu(5);
    assert_eq!(h.read(dm, 0, "/local/domain/4"), err("EACCES"));
    assert_eq!(h.request(d0, MsgType::SetTarget, 0, b"5\x004\0"), ok());
    assert_eq!(h.read(dm, 0, "/local/domain/4"), val(""));
    assert_eq!(
        h.request(dm, MsgType::SetTarget, 0, b"5\x004\0"),
        err("EACCES")
    );
}

#[test]
fn transactions_see_their_own_writes_and_commit() {
    let mut h = Harness::new();
    let c = h.dom0();
    let other = h.dom0();
    h.watch(other, "/t", "w").unwrap();
    h.events(other);
    let tx = h.start(c);
    assert_ne!(tx, 0);
    assert_eq!(h.write(c, tx, "/t/a", "1"), ok());
    assert_eq!(h.read(c, tx, "/t/a"), val("1"));
    assert_eq!(h.dir(c, tx, "/t"), list(&["a"]));
    assert_eq!(h.read(c, 0, "/t/a"), err("ENOENT"), "invisible outside");
    assert_eq!(h.read(other, 0, "/t/a"), err("ENOENT"));
    assert_eq!(h.events(other), vec![], "no events before commit");
    assert_eq!(h.end(c, tx, true), ok());
    assert_eq!(h.read(other, 0, "/t/a"), val("1"));
    assert_eq!(h.events(other), vec![ev("/t/a", "w")], "events on commit");
    assert_eq!(h.end(c, tx, true), err("ENOENT"), "a transaction ends once");
}

#[test]
fn conflicting_commit_fails_and_changes_nothing() {
    let mut h = Harness::new();
    let a = h.dom0();
    let b = h.dom0();
    h.write(a, 0, "/c/x", "0").unwrap();
    let w = h.dom0();
    h.watch(w, "/c", "w").unwrap();
    h.events(w);
    let tx = h.start(a);
    assert_eq!(h.read(a, tx, "/c/x"), val("0"));
    assert_eq!(h.write(a, tx, "/c/y", "from-tx"), ok());
    assert_eq!(h.write(b, 0, "/c/x", "1"), ok());
    assert_eq!(h.events(w), vec![ev("/c/x", "w")]);
    assert_eq!(h.end(a, tx, true), err("EAGAIN"));
    assert_eq!(h.read(b, 0, "/c/y"), err("ENOENT"), "nothing applied");
    assert_eq!(h.read(b, 0, "/c/x"), val("1"));
    assert_eq!(h.events(w), vec![], "no events from a failed commit");
    // Retrying succeeds.
    let tx = h.start(a);
    assert_eq!(h.read(a, tx, "/c/x"), val("1"));
    h.write(a, tx, "/c/y", "from-tx").unwrap();
    assert_eq!(h.end(a, tx, true), ok());
    assert_eq!(h.read(b, 0, "/c/y"), val("from-tx"));
}

#[test]
fn two_transactions_touching_the_same_directory_conflict() {
    let mut h = Harness::new();
    let a = h.dom0();
    let b = h.dom0();
    h.mkdir(a, 0, "/d").unwrap();
    let ta = h.start(a);
    let tb = h.start(b);
    h.write(a, ta, "/d/a", "1").unwrap();
    h.write(b, tb, "/d/b", "1").unwrap();
    assert_eq!(h.end(a, ta, true), ok());
    assert_eq!(h.end(b, tb, true), err("EAGAIN"));
    assert_eq!(h.dir(a, 0, "/d"), list(&["a"]));
}

#[test]
fn transaction_abort_and_misuse() {
    let mut h = Harness::new();
    let c = h.dom0();
    let tx = h.start(c);
    h.write(c, tx, "/gone", "1").unwrap();
    assert_eq!(
        h.request(c, MsgType::TransactionStart, tx, b"\0"),
        err("EBUSY")
    );
    assert_eq!(
        h.request(c, MsgType::TransactionEnd, tx, b"X\0"),
        err("EINVAL")
    );
    assert_eq!(h.end(c, tx, false), ok());
    assert_eq!(h.read(c, 0, "/gone"), err("ENOENT"));
    assert_eq!(h.read(c, 99, "/"), err("ENOENT"), "unknown transaction");
    let other = h.dom0();
    let tx = h.start(c);
    assert_eq!(
        h.read(other, tx, "/"),
        err("ENOENT"),
        "transactions are per connection"
    );
    assert_eq!(h.rm(c, tx, "/"), err("EINVAL"));
    // rm inside a transaction removes the subtree only on commit.
    h.write(c, 0, "/s/t/u", "1").unwrap();
    let tx2 = h.start(c);
    assert_eq!(h.rm(c, tx2, "/s"), ok());
    assert_eq!(h.read(c, tx2, "/s/t/u"), err("ENOENT"));
    assert_eq!(h.read(c, 0, "/s/t/u"), val("1"));
    assert_eq!(h.end(c, tx2, true), ok());
    assert_eq!(h.read(c, 0, "/s/t/u"), err("ENOENT"));
    assert_eq!(h.engine.tree().len(), 1, "only the root is left");
}

#[test]
fn directory_part_pages_through_large_directories() {
    let mut h = Harness::new();
    let c = h.dom0();
    let mut names = Vec::new();
    for i in 0..400 {
        let name = format!("a-fairly-long-child-name-{i:04}");
        h.write(c, 0, &format!("/big/{name}"), "").unwrap();
        names.push(name);
    }
    assert_eq!(h.dir(c, 0, "/big"), err("E2BIG"));
    let mut got = Vec::new();
    let mut offset = 0;
    let mut generation = None;
    loop {
        let payload = format!("/big\0{offset}\0");
        let part = h
            .request(c, MsgType::DirectoryPart, 0, payload.as_bytes())
            .unwrap();
        let (gen_str, body) = part.split_at(part.iter().position(|&b| b == 0).unwrap());
        let body = &body[1..];
        assert_eq!(*generation.get_or_insert(gen_str.to_vec()), gen_str);
        let done = body.ends_with(b"\0\0") || body == b"\0";
        let names_part = if done { &body[..body.len() - 1] } else { body };
        offset += names_part.len();
        got.extend(
            names_part
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8(s.to_vec()).unwrap()),
        );
        if done {
            break;
        }
    }
    assert_eq!(got, names);
    assert_eq!(
        h.request(c, MsgType::DirectoryPart, 0, b"/big\x0099999\0"),
        err("EINVAL")
    );
}

#[test]
fn control_commands() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    assert_eq!(h.request(d0, MsgType::Control, 0, b"check\0"), ok());
    let quota = h.request(d0, MsgType::Control, 0, b"quota\0").unwrap();
    assert!(String::from_utf8(quota).unwrap().contains("nodes 1000\n"));
    assert_eq!(
        h.request(d0, MsgType::Control, 0, b"quota\0nodes\x002\0"),
        ok()
    );
    assert_eq!(h.engine.quotas().nodes_per_domain, 2);
    assert_eq!(
        h.request(d0, MsgType::Control, 0, b"frobnicate\0"),
        err("EINVAL")
    );
    let g = h.domu(1);
    assert_eq!(h.request(g, MsgType::Control, 0, b"check\0"), err("EACCES"));
}

#[test]
fn quota_errors_only_hit_the_offender() {
    let quotas = Quotas {
        nodes_per_domain: 3,
        value_size: 16,
        watches_per_domain: 2,
        transactions_per_connection: 2,
        ..Quotas::default()
    };
    let mut h = Harness::with_quotas(quotas);
    let d0 = h.dom0();
    h.write(d0, 0, "/local/domain/1", "").unwrap();
    h.set_perms(d0, 0, "/local/domain/1", &["n1"]).unwrap();
    let g = h.domu(1);
    let g_other_conn = h.domu(1);
    // Node quota (the domain's own home node counts: it owns it).
    assert_eq!(h.write(g, 0, "a", "1"), ok());
    assert_eq!(h.write(g, 0, "b", "1"), ok());
    assert_eq!(h.write(g, 0, "c", "1"), err("ENOSPC"));
    assert_eq!(
        h.write(g, 0, "a", "rewrite"),
        ok(),
        "rewriting needs no new node"
    );
    // Value size.
    assert_eq!(h.write(g, 0, "a", &"x".repeat(17)), err("ENOSPC"));
    assert_eq!(
        h.write(d0, 0, "/big", &"x".repeat(1000)),
        ok(),
        "dom0 is exempt"
    );
    // Watches, counted per domain across connections.
    assert_eq!(h.watch(g, "a", "1"), ok());
    assert_eq!(h.watch(g_other_conn, "a", "2"), ok());
    assert_eq!(h.watch(g, "a", "3"), err("E2BIG"));
    // Transactions per connection.
    h.start(g);
    h.start(g);
    assert_eq!(
        h.request(g, MsgType::TransactionStart, 0, b"\0"),
        err("ENOSPC")
    );
    // The quota-bound domain keeps working otherwise, and dom0 is unaffected.
    assert_eq!(h.read(g, 0, "a"), val("rewrite"));
    assert_eq!(h.write(d0, 0, "/local/domain/1/d0-made", "x"), ok());
}

#[test]
fn control_log_and_memreport() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    let report = h.request(d0, MsgType::Control, 0, b"memreport\0").unwrap();
    assert!(
        String::from_utf8(report)
            .unwrap()
            .starts_with("nodes 1\nconnections 1\n")
    );
    assert_eq!(h.request(d0, MsgType::Control, 0, b"log\0on\0"), ok());
    h.read(d0, 0, "/").unwrap();
    let log = h.engine.take_access_log();
    assert_eq!(
        log.len(),
        2,
        "the `log on` request itself and the read: {log:?}"
    );
    assert!(log[0].contains("Control"), "{log:?}");
    assert!(
        log[1].contains("Read") && log[1].ends_with("/ -> OK"),
        "{log:?}"
    );
    assert_eq!(h.request(d0, MsgType::Control, 0, b"log\0off\0"), ok());
    h.read(d0, 0, "/").unwrap();
    assert!(h.engine.take_access_log().is_empty());
}

#[test]
fn watch_reserved_field_is_ignored() {
    let mut h = Harness::new();
    let w = h.dom0();
    assert_eq!(h.request(w, MsgType::Watch, 0, b"/r\0t\0\0"), ok());
    assert_eq!(h.events(w), vec![ev("/r", "t")]);
}

#[test]
fn special_watch_events_follow_the_special_names_permissions() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    let g7 = h.domu(7);
    let g8 = h.domu(8);
    for g in [g7, g8] {
        assert_eq!(h.watch(g, "@introduceDomain", "in"), ok());
        assert_eq!(
            h.events(g),
            vec![ev("@introduceDomain", "in")],
            "initial event"
        );
    }
    h.request(d0, MsgType::Introduce, 0, b"20\x001\x001\0")
        .unwrap();
    assert_eq!(h.events(g7), vec![], "n0 by default: guests get nothing");
    assert_eq!(h.get_perms(d0, 0, "@introduceDomain"), list(&["n0"]));
    assert_eq!(h.get_perms(g7, 0, "@introduceDomain"), err("EACCES"));
    assert_eq!(
        h.set_perms(g7, 0, "@introduceDomain", &["r7"]),
        err("EACCES")
    );
    assert_eq!(h.set_perms(d0, 0, "@introduceDomain", &["n0", "r7"]), ok());
    assert_eq!(h.get_perms(g7, 0, "@introduceDomain"), list(&["n0", "r7"]));
    h.request(d0, MsgType::Introduce, 0, b"21\x001\x001\0")
        .unwrap();
    assert_eq!(h.events(g7), vec![ev("@introduceDomain", "in")]);
    assert_eq!(h.events(g8), vec![], "only the granted guest");
    assert_eq!(h.get_perms(d0, 0, "@bogus"), err("ENOENT"));
    assert_eq!(
        h.write(d0, 0, "@introduceDomain", "x"),
        err("EINVAL"),
        "not a node"
    );
    assert_eq!(h.read(d0, 0, "@introduceDomain"), err("EINVAL"));
}

#[test]
fn take_dirty_names_only_connections_with_new_output() {
    let mut h = Harness::new();
    let writer = h.dom0();
    let watcher = h.dom0();
    let idle: Vec<_> = (0..100).map(|_| h.dom0()).collect();
    h.watch(watcher, "/w", "t").unwrap();
    h.events(watcher);
    h.engine.take_dirty();
    h.engine
        .feed(
            writer,
            &Message::new(MsgType::Write, 1, 0, b"/w\0x".to_vec()).to_bytes(),
        )
        .unwrap();
    let dirty = h.engine.take_dirty();
    assert_eq!(dirty.into_iter().collect::<Vec<_>>(), vec![writer, watcher]);
    assert!(h.engine.take_dirty().is_empty());
    h.engine.disconnect(idle[0]);
    assert!(h.engine.take_dirty().is_empty());
}
