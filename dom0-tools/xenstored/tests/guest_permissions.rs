//! Permissions seen from guests: `--guest-socket` connections act as an
//! unprivileged domain, driven with the real xenstore-utils.

mod common;

use std::time::Duration;

use common::*;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// dom0 prepares homes for guests 5 and 6, as a toolstack would.
fn with_homes() -> Daemon {
    let d = Daemon::start_with_guests(&[5, 6]);
    for g in ["5", "6"] {
        let home = format!("/local/domain/{g}");
        d.ok("xenstore-write", &[&home, ""]);
        d.ok("xenstore-chmod", &[&home, &format!("n{g}")]);
    }
    d
}

#[test]
fn guests_write_relative_to_their_home_and_own_what_they_create() {
    let d = with_homes();
    let out = d.guest_tool(5, "xenstore-write", &["device/vif/0/state", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        d.ok("xenstore-read", &["/local/domain/5/device/vif/0/state"]),
        "1\n"
    );
    assert_eq!(
        text(&d.guest_tool(5, "xenstore-read", &["device/vif/0/state"])),
        "1\n"
    );
    let ls = d.ok("xenstore-ls", &["-p", "/local/domain/5"]);
    assert!(ls.contains("state = \"1\"") && ls.contains("(n5)"), "{ls}");
}

#[test]
fn guests_cannot_read_or_write_what_they_are_not_granted() {
    let d = with_homes();
    d.ok("xenstore-write", &["/local/domain/6/secret", "s"]);
    for (tool, args) in [
        ("xenstore-read", vec!["/local/domain/6/secret"]),
        ("xenstore-write", vec!["/local/domain/6/secret", "x"]),
        ("xenstore-write", vec!["/toplevel", "x"]),
        ("xenstore-rm", vec!["/local/domain/6/secret"]),
        ("xenstore-ls", vec!["/local/domain/6"]),
    ] {
        let out = d.guest_tool(5, tool, &args);
        assert!(!out.status.success(), "{tool} {args:?} must fail for dom5");
    }
    assert!(
        !d.guest_tool(5, "xenstore-exists", &["/local/domain/6/secret"])
            .status
            .success()
    );
    assert_eq!(
        d.ok("xenstore-read", &["/local/domain/6/secret"]),
        "s\n",
        "unchanged"
    );
    // Granting read access to dom5 makes it readable, still not writable.
    d.ok("xenstore-chmod", &["/local/domain/6/secret", "n6", "r5"]);
    assert_eq!(
        text(&d.guest_tool(5, "xenstore-read", &["/local/domain/6/secret"])),
        "s\n"
    );
    assert!(
        !d.guest_tool(5, "xenstore-write", &["/local/domain/6/secret", "x"])
            .status
            .success()
    );
    // A guest may not give its nodes away, but may share them.
    d.guest_tool(5, "xenstore-write", &["mine", "m"]);
    assert!(
        !d.guest_tool(5, "xenstore-chmod", &["mine", "n6"])
            .status
            .success()
    );
    assert!(
        d.guest_tool(5, "xenstore-chmod", &["mine", "n5", "r6"])
            .status
            .success()
    );
    assert_eq!(
        text(&d.guest_tool(6, "xenstore-read", &["/local/domain/5/mine"])),
        "m\n"
    );
}

#[test]
fn guests_only_see_watch_events_for_nodes_they_can_read() {
    let d = with_homes();
    let mut watcher = Watcher::start(&d.guest_socket(5), "/", 3);
    let next = || watcher.next();
    assert_eq!(next(), "/", "initial event");
    d.ok("xenstore-write", &["/local/domain/6/hidden", "x"]);
    d.ok("xenstore-write", &["/dom0-only", "x"]);
    d.ok("xenstore-write", &["/local/domain/5/visible", "x"]);
    assert_eq!(
        next(),
        "/local/domain/5/visible",
        "unreadable changes were not reported"
    );
    d.ok("xenstore-rm", &["/local/domain/5/visible"]);
    assert_eq!(next(), "/local/domain/5/visible");
    assert!(
        wait_timeout(&mut watcher.child, Duration::from_secs(10))
            .expect("exits")
            .success()
    );
}

#[test]
fn guest_node_quota_is_enforced_per_domain() {
    let d = Daemon::start_full_for_quota();
    d.ok("xenstore-write", &["/local/domain/5", ""]);
    d.ok("xenstore-chmod", &["/local/domain/5", "n5"]);
    // The home counts as one of dom5's four nodes.
    for i in 0..3 {
        let out = d.guest_tool(5, "xenstore-write", &[&format!("n{i}"), "v"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = d.guest_tool(5, "xenstore-write", &["one-too-many", "v"]);
    assert!(!out.status.success(), "quota exceeded must fail");
    d.ok("xenstore-write", &["/local/domain/5/by-dom0", "v"]);
    assert_eq!(
        d.ok("xenstore-read", &["/local/domain/5/n2"]),
        "v\n",
        "store unaffected"
    );
}
