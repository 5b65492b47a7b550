//! `oxen-xenstored` driven by Debian's python3-pyxs.

mod common;

use common::*;

/// Runs `body` (Python, with `Client` imported and `sock` set) and returns its stdout.
fn pyxs(d: &Daemon, body: &str) -> String {
    let script = format!(
        "import sys\nfrom pyxs import Client, PyXSError\nsock = sys.argv[1]\n{body}\nprint('DONE')\n"
    );
    let (ok, out, err) = python(&d.socket(), &script);
    assert!(ok, "python failed:\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.ends_with("DONE\n"), "script did not finish: {out}");
    out
}

#[test]
fn basic_operations() {
    let d = Daemon::start();
    let out = pyxs(
        &d,
        r#"
# pyxs refuses domain management unless it believes it runs in dom0;
# connections on the main socket are dom0's toolstack.
Client.SU = True
with Client(unix_socket_path=sock) as c:
    c.write(b"/py/a", b"1")
    c.mkdir(b"/py/dir")
    assert c.read(b"/py/a") == b"1"
    assert sorted(c.list(b"/py")) == [b"a", b"dir"], c.list(b"/py")
    assert c.exists(b"/py/a") and not c.exists(b"/py/zz")
    c.delete(b"/py/a")
    assert not c.exists(b"/py/a")
    assert c.get_domain_path(0) == b"/local/domain/0"
    assert c.is_domain_introduced(0)
    assert not c.is_domain_introduced(5)
    c.introduce_domain(5, 4242, 3)
    assert c.is_domain_introduced(5)
    c.resume_domain(5)
    c.release_domain(5)
    assert not c.is_domain_introduced(5)
    print("ops-ok")
"#,
    );
    assert!(out.contains("ops-ok"));
}

#[test]
fn permissions_round_trip_and_errors() {
    let d = Daemon::start();
    let out = pyxs(
        &d,
        r#"
import errno
with Client(unix_socket_path=sock) as c:
    c.write(b"/perm", b"x")
    assert c.get_perms(b"/perm") == [b"n0"], c.get_perms(b"/perm")
    c.set_perms(b"/perm", [b"n0", b"r1", b"w2"])
    assert c.get_perms(b"/perm") == [b"n0", b"r1", b"w2"]
    c.write(b"/perm/kid", b"")
    assert c.get_perms(b"/perm/kid") == [b"n0", b"r1", b"w2"], "children inherit"
    try:
        c.read(b"/nonexistent")
        raise SystemExit("read of a missing node succeeded")
    except PyXSError as e:
        assert e.args[0] == errno.ENOENT, e.args
    print("perms-ok")
"#,
    );
    assert!(out.contains("perms-ok"));
}

#[test]
fn transaction_conflict_is_eagain_and_retry_commits() {
    let d = Daemon::start();
    let out = pyxs(
        &d,
        r#"
with Client(unix_socket_path=sock) as a, Client(unix_socket_path=sock) as b:
    a.write(b"/bank/x", b"10")
    a.transaction()
    v = int(a.read(b"/bank/x"))
    a.write(b"/bank/y", str(v).encode())
    assert a.read(b"/bank/y") == b"10", "reads see own writes"
    assert not b.exists(b"/bank/y"), "uncommitted writes are private"
    b.write(b"/bank/x", b"20")              # provoke the conflict
    assert a.commit() is False, "conflicting commit must fail (EAGAIN)"
    assert not b.exists(b"/bank/y"), "a failed commit changes nothing"
    assert b.read(b"/bank/x") == b"20"
    # Retry: succeeds now that nobody interferes.
    a.transaction()
    v = int(a.read(b"/bank/x"))
    a.write(b"/bank/y", str(v).encode())
    assert a.commit() is True
    assert b.read(b"/bank/y") == b"20"
    # Abort discards.
    a.transaction()
    a.write(b"/bank/z", b"1")
    a.rollback()
    assert not b.exists(b"/bank/z")
    print("tx-ok")
"#,
    );
    assert!(out.contains("tx-ok"));
}

#[test]
fn watches_deliver_events() {
    let d = Daemon::start();
    let out = pyxs(
        &d,
        r#"
with Client(unix_socket_path=sock) as c, Client(unix_socket_path=sock) as w:
    m = w.monitor()
    m.watch(b"/pw", b"tok")
    events = m.wait()
    first = next(events)
    assert tuple(first) == (b"/pw", b"tok"), first
    c.write(b"/pw/a", b"1")
    e = next(events)
    assert tuple(e) == (b"/pw/a", b"tok"), e
    # Changes in a transaction fire only on commit.
    c.transaction()
    c.write(b"/pw/b", b"2")
    c.commit()
    e = next(events)
    assert tuple(e) == (b"/pw/b", b"tok"), e
    c.delete(b"/pw")
    e = next(events)
    assert tuple(e) == (b"/pw", b"tok"), e
    m.unwatch(b"/pw", b"tok")
    print("watch-ok")
"#,
    );
    assert!(out.contains("watch-ok"));
}

#[test]
fn special_domain_watches() {
    let d = Daemon::start();
    let out = pyxs(
        &d,
        r#"
Client.SU = True
with Client(unix_socket_path=sock) as c, Client(unix_socket_path=sock) as w:
    m = w.monitor()
    m.watch(b"@introduceDomain", b"in")
    m.watch(b"@releaseDomain", b"out")
    events = m.wait()
    initial = {tuple(next(events)), tuple(next(events))}
    assert initial == {(b"@introduceDomain", b"in"), (b"@releaseDomain", b"out")}, initial
    c.introduce_domain(3, 77, 9)
    e = next(events)
    assert tuple(e) == (b"@introduceDomain", b"in"), e
    c.release_domain(3)
    e = next(events)
    assert tuple(e) == (b"@releaseDomain", b"out"), e
    print("special-ok")
"#,
    );
    assert!(out.contains("special-ok"));
}

#[test]
fn concurrent_transfers_stay_consistent() {
    let d = Daemon::start();
    pyxs(
        &d,
        r#"
with Client(unix_socket_path=sock) as c:
    for acct in (b"a", b"b", b"c"):
        c.write(b"/bank/" + acct, b"100")
    c.write(b"/bank/count", b"0")
"#,
    );
    // Four processes race 25 transfers each; every transfer moves one unit
    // and bumps the counter in the same transaction, retrying on EAGAIN.
    let worker = r#"
import random
accts = [b"a", b"b", b"c"]
conflicts = 0
with Client(unix_socket_path=sock) as c:
    for _ in range(25):
        while True:
            c.transaction()
            src, dst = random.sample(accts, 2)
            s = int(c.read(b"/bank/" + src)); t = int(c.read(b"/bank/" + dst))
            n = int(c.read(b"/bank/count"))
            c.write(b"/bank/" + src, str(s - 1).encode())
            c.write(b"/bank/" + dst, str(t + 1).encode())
            c.write(b"/bank/count", str(n + 1).encode())
            if c.commit():
                break
            conflicts += 1
print("conflicts", conflicts)
"#;
    let socket = d.socket();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let script =
                    format!("import sys\nfrom pyxs import Client\nsock = sys.argv[1]\n{worker}");
                python(&socket, &script)
            })
        })
        .collect();
    let mut conflicts = 0;
    for h in handles {
        let (ok, out, err) = h.join().unwrap();
        assert!(ok, "worker failed:\n{out}\n{err}");
        conflicts += out
            .trim()
            .strip_prefix("conflicts ")
            .unwrap()
            .parse::<u32>()
            .unwrap();
    }
    eprintln!("{conflicts} conflicting commits were retried");
    let out = pyxs(
        &d,
        r#"
with Client(unix_socket_path=sock) as c:
    total = sum(int(c.read(b"/bank/" + a)) for a in (b"a", b"b", b"c"))
    print("total", total, "count", int(c.read(b"/bank/count")))
"#,
    );
    assert!(
        out.contains("total 300 count 100"),
        "{out} (conflicts retried: {conflicts})"
    );
}
