//! `oxen-xenstored` driven by Debian's xenstore-utils.

mod common;

use std::process::Command;
use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn write_read_list_exists_rm() {
    let d = Daemon::start();
    d.ok(
        "xenstore-write",
        &["/vm/1/name", "guest-one", "/vm/1/memory", "512"],
    );
    assert_eq!(d.ok("xenstore-read", &["/vm/1/name"]), "guest-one\n");
    assert_eq!(d.ok("xenstore-list", &["/vm/1"]), "memory\nname\n");
    assert_eq!(
        d.ok("xenstore-ls", &["/vm"]),
        "1 = \"\"\n memory = \"512\"\n name = \"guest-one\"\n"
    );
    assert!(d.tool("xenstore-exists", &["/vm/1/name"]).status.success());
    assert!(!d.tool("xenstore-exists", &["/vm/1/nope"]).status.success());
    d.ok("xenstore-rm", &["/vm/1/memory"]);
    assert_eq!(d.ok("xenstore-list", &["/vm/1"]), "name\n");
    d.ok("xenstore-rm", &["/vm"]);
    assert!(!d.tool("xenstore-exists", &["/vm/1/name"]).status.success());
    let out = d.tool("xenstore-read", &["/vm/1/name"]);
    assert!(!out.status.success(), "reading a removed node fails");
}

#[test]
fn relative_paths_resolve_under_dom0_home() {
    let d = Daemon::start();
    d.ok("xenstore-write", &["name", "Domain-0"]);
    assert_eq!(
        d.ok("xenstore-read", &["/local/domain/0/name"]),
        "Domain-0\n"
    );
    assert_eq!(d.ok("xenstore-read", &["name"]), "Domain-0\n");
}

#[test]
fn chmod_sets_permissions_visible_to_ls() {
    let d = Daemon::start();
    d.ok("xenstore-write", &["/p/child", "v"]);
    d.ok("xenstore-chmod", &["/p", "n0", "r1", "b2"]);
    let ls = d.ok("xenstore-ls", &["-p", "/"]);
    assert!(ls.contains("(n0,r1,b2)"), "{ls}");
    // Recursive chmod reaches the child.
    d.ok("xenstore-chmod", &["-r", "/p", "r3"]);
    let ls = d.ok("xenstore-ls", &["-p", "/p"]);
    assert!(ls.contains("child = \"v\"") && ls.contains("(r3)"), "{ls}");
    let bad = d.tool("xenstore-chmod", &["/p", "q7"]);
    assert!(
        !bad.status.success(),
        "invalid permission letter is refused"
    );
}

#[test]
fn read_only_socket_refuses_writes() {
    let d = Daemon::start();
    d.ok("xenstore-write", &["/ro-test", "1"]);
    let out = run_tool(&d.ro_socket(), "xenstore-write", &["/ro-test", "2"]);
    assert!(
        !out.status.success(),
        "write through the ro socket must fail"
    );
    let out = run_tool(&d.ro_socket(), "xenstore-read", &["/ro-test"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    assert!(
        !run_tool(&d.ro_socket(), "xenstore-rm", &["/ro-test"])
            .status
            .success()
    );
    assert_eq!(d.ok("xenstore-read", &["/ro-test"]), "1\n");
}

#[test]
fn watch_prints_initial_and_change_events() {
    let d = Daemon::start();
    d.ok("xenstore-write", &["/w/a", "0"]);
    let mut watcher = Watcher::start(&d.socket(), "/w", 4);
    let next = || watcher.next();
    assert_eq!(next(), "/w", "initial event");
    d.ok("xenstore-write", &["/w/a", "1"]);
    assert_eq!(next(), "/w/a");
    d.ok("xenstore-write", &["/unrelated", "1"]);
    d.ok("xenstore-chmod", &["/w/a", "r0"]);
    assert_eq!(next(), "/w/a", "set-perms fires; unrelated writes do not");
    d.ok("xenstore-rm", &["/w"]);
    assert_eq!(next(), "/w");
    let status = wait_timeout(&mut watcher.child, Duration::from_secs(10)).expect("-n 4 exits");
    assert!(status.success());
}

#[test]
fn many_concurrent_clients() {
    let d = Daemon::start();
    let socket = d.socket();
    let workers: Vec<_> = (0..6)
        .map(|i| {
            let socket = socket.clone();
            thread::spawn(move || {
                for j in 0..5 {
                    let path = format!("/load/{i}/{j}");
                    let out = run_tool(&socket, "xenstore-write", &[&path, &format!("{i}-{j}")]);
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    for i in 0..6 {
        assert_eq!(
            d.ok("xenstore-list", &[&format!("/load/{i}")]),
            "0\n1\n2\n3\n4\n"
        );
        assert_eq!(
            d.ok("xenstore-read", &[&format!("/load/{i}/4")]),
            format!("{i}-4\n")
        );
    }
}

#[test]
fn sigterm_removes_sockets_and_exits_zero() {
    let mut d = Daemon::start();
    d.ok("xenstore-write", &["/bye", "1"]);
    // A connected, idle client must not hold the daemon up.
    let _idle = d.connect();
    let status = d.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(!d.socket().exists(), "main socket removed");
    assert!(!d.ro_socket().exists(), "ro socket removed");
    let log = std::fs::read_to_string(d.access_log()).unwrap();
    assert!(log.contains("Write") && log.contains("/bye -> OK"), "{log}");
}

#[test]
fn refuses_to_steal_a_live_socket() {
    let d = Daemon::start();
    let out = Command::new(env!("CARGO_BIN_EXE_oxen-xenstored"))
        .arg("--unix-socket")
        .arg(d.socket())
        .output()
        .expect("run second daemon");
    assert!(!out.status.success(), "second daemon must not start");
    assert!(String::from_utf8_lossy(&out.stderr).contains("another daemon"));
    assert!(
        d.tool("xenstore-exists", &["/"]).status.success(),
        "first daemon still serves"
    );
}

#[test]
fn bad_command_line_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_oxen-xenstored"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--unix-socket"));
}
