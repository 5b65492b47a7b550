//! Hostile clients on the socket get errors; everybody else is unaffected.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;

fn header(ty: u32, req: u32, tx: u32, len: u32) -> Vec<u8> {
    [ty, req, tx, len]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

fn request(ty: u32, req: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = header(ty, req, 0, payload.len() as u32);
    m.extend_from_slice(payload);
    m
}

/// Reads one reply: (type, req_id, payload).
fn reply(s: &mut UnixStream) -> (u32, u32, Vec<u8>) {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).expect("reply header");
    let word = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
    let mut payload = vec![0u8; word(12) as usize];
    s.read_exact(&mut payload).expect("reply payload");
    (word(0), word(4), payload)
}

const READ: u32 = 2;
const WRITE: u32 = 11;
const ERROR: u32 = 16;

#[test]
fn oversize_unknown_and_malformed_requests_get_errors() {
    let d = Daemon::start();
    d.ok("xenstore-write", &["/safe", "yes"]);
    let mut bad = d.connect();
    // Unknown type.
    bad.write_all(&request(999, 2, b"/safe\0")).unwrap();
    assert_eq!(reply(&mut bad), (ERROR, 2, b"EINVAL\0".to_vec()));
    // Bad path and missing NUL.
    bad.write_all(&request(READ, 3, b"/bad path\0")).unwrap();
    assert_eq!(reply(&mut bad), (ERROR, 3, b"EINVAL\0".to_vec()));
    bad.write_all(&request(READ, 4, b"/safe")).unwrap();
    assert_eq!(reply(&mut bad), (ERROR, 4, b"EINVAL\0".to_vec()));
    // The same connection still works afterwards.
    bad.write_all(&request(READ, 5, b"/safe\0")).unwrap();
    assert_eq!(reply(&mut bad), (READ, 5, b"yes".to_vec()));
}

#[test]
fn oversize_header_closes_only_that_connection() {
    let d = Daemon::start();
    d.ok("xenstore-write", &["/safe", "yes"]);
    let mut watcher = d.connect();
    watcher.write_all(&request(4, 1, b"/safe\0t\0")).unwrap();
    assert_eq!(reply(&mut watcher).0, 4);
    let mut bad = d.connect();
    bad.write_all(&header(READ, 1, 0, u32::MAX)).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    // The daemon closes the connection: end of stream, no reply, no hang.
    assert_eq!(bad.read(&mut buf).expect("closed, not timed out"), 0);
    assert_eq!(
        d.ok("xenstore-read", &["/safe"]),
        "yes\n",
        "others unaffected"
    );
    watcher.write_all(&request(READ, 2, b"/safe\0")).unwrap();
    let (ty, req, _) = loop {
        let r = reply(&mut watcher);
        if r.0 != 15 {
            break r;
        }
    };
    assert_eq!((ty, req), (READ, 2), "an existing connection still works");
}

#[test]
fn byte_at_a_time_requests_are_reassembled() {
    let d = Daemon::start();
    let mut s = d.connect();
    for b in request(WRITE, 9, b"/slow\0value") {
        s.write_all(&[b]).unwrap();
        s.flush().unwrap();
    }
    assert_eq!(reply(&mut s), (WRITE, 9, b"OK\0".to_vec()));
    assert_eq!(d.ok("xenstore-read", &["/slow"]), "value\n");
}

#[test]
fn half_sent_request_does_not_block_others() {
    let d = Daemon::start();
    let mut stuck = d.connect();
    stuck.write_all(&header(WRITE, 1, 0, 100)).unwrap();
    stuck.write_all(b"/partial\0").unwrap();
    d.ok("xenstore-write", &["/other", "fine"]);
    assert_eq!(d.ok("xenstore-read", &["/other"]), "fine\n");
    drop(stuck);
    assert!(!d.tool("xenstore-exists", &["/partial"]).status.success());
}

#[test]
fn client_that_never_reads_only_stalls_itself() {
    let d = Daemon::start_with(&["--quota", "watch-events=16"]);
    let mut deaf = d.connect();
    // Watch a busy node, then flood requests without ever reading replies.
    deaf.write_all(&request(4, 1, b"/busy\0t\0")).unwrap();
    deaf.set_nonblocking(true).unwrap();
    let flood = request(READ, 2, b"/busy\0");
    let mut sent = 0usize;
    for _ in 0..20_000 {
        match deaf.write(&flood) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent > 0);
    for i in 0..50 {
        d.ok("xenstore-write", &["/busy", &i.to_string()]);
    }
    assert_eq!(d.ok("xenstore-read", &["/busy"]), "49\n");
}

#[test]
fn disconnecting_mid_stream_is_harmless() {
    let d = Daemon::start();
    for _ in 0..20 {
        let mut s = d.connect();
        s.write_all(&header(WRITE, 1, 0, 3000)).unwrap();
        s.write_all(&[b'/'; 10]).unwrap();
        drop(s);
    }
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&request(READ, 1, b"/\0")).unwrap();
    assert_eq!(reply(&mut s), (READ, 1, Vec::new()));
}

/// CPU time (user + system clock ticks) a process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat(5): utime and stime; index 11 and 12 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The daemon's resident memory in KiB (VmRSS of proc(5)).
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn running_out_of_file_descriptors_neither_spins_nor_wedges() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("socket");
    let script = format!(
        "ulimit -n 16 && exec '{}' --unix-socket '{}'",
        env!("CARGO_BIN_EXE_oxen-xenstored"),
        sock.display()
    );
    let child = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // `sh` execs the daemon, so this is the daemon; killed even if we panic.
    let child = KillOnDrop(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(std::time::Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Far more clients than the daemon has descriptors for.
    let crowd: Vec<UnixStream> = (0..40)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    assert!(crowd.len() > 16);
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(child.0.id());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(child.0.id()) - before;
    assert!(
        used < 50,
        "daemon spins while out of descriptors: {used} ticks in 1s"
    );
    drop(crowd);
    // Once clients leave, new ones are served again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = run_tool(&sock, "xenstore-write", &["/after", "ok"]);
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "daemon never recovered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        String::from_utf8_lossy(&run_tool(&sock, "xenstore-read", &["/after"]).stdout),
        "ok\n"
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_forgotten_transaction_is_ended_by_the_daemon() {
    let d = Daemon::start_with(&["--quota", "transaction-timeout=1"]);
    let mut s = d.connect();
    s.write_all(&request(6, 1, b"\0")).unwrap();
    let (ty, _, id) = reply(&mut s);
    assert_eq!(ty, 6, "TRANSACTION_START");
    let tx: u32 = std::str::from_utf8(id.strip_suffix(b"\0").unwrap())
        .unwrap()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut write = header(WRITE, 2, tx, 4);
    write.extend_from_slice(b"/t\0v");
    s.write_all(&write).unwrap();
    assert_eq!(reply(&mut s), (ERROR, 2, b"EAGAIN\0".to_vec()));
    let mut end = header(7, 3, tx, 2);
    end.extend_from_slice(b"T\0");
    s.write_all(&end).unwrap();
    assert_eq!(reply(&mut s), (ERROR, 3, b"EAGAIN\0".to_vec()));
    assert!(!d.tool("xenstore-exists", &["/t"]).status.success());
}

/// `CONTROL memreport`'s numbers for `domain <domid>:` (name, value pairs).
fn domain_report(s: &mut UnixStream, domid: u32) -> Vec<(String, usize)> {
    s.write_all(&request(0, 99, b"memreport\0")).unwrap();
    let (_, _, text) = loop {
        let r = reply(s);
        if r.0 != 15 {
            break r;
        }
    };
    let text = String::from_utf8(text).unwrap();
    let prefix = format!("domain {domid}: ");
    let Some(line) = text.lines().find(|l| l.starts_with(&prefix)) else {
        return Vec::new();
    };
    let words: Vec<&str> = line[prefix.len()..].split(' ').collect();
    words
        .chunks(2)
        .map(|p| (p[0].to_string(), p[1].parse().unwrap()))
        .collect()
}

#[test]
fn deaf_guest_connections_neither_grow_the_store_nor_stall_dom0() {
    let mut d = Daemon::start_full_with(&["--quota", "queue-memory=65536"], &[7]);
    d.ok("xenstore-write", &["/pub", ""]);
    d.ok("xenstore-chmod", &["/pub", "n0", "r7"]);
    let pid = d.child.as_ref().unwrap().id();
    let before = resident_kib(pid);
    // A hostile guest: many connections, each watching /pub with a big
    // token, none ever reading.
    let token = "t".repeat(2000);
    let mut deaf = Vec::new();
    for i in 0..100 {
        let mut s = UnixStream::connect(d.guest_socket(7)).unwrap();
        s.write_all(&request(4, 1, format!("/pub\0{i}{token}\0").as_bytes()))
            .unwrap();
        deaf.push(s);
    }
    let mut s = d.connect();
    let mut worst = Duration::ZERO;
    for i in 0..2000u32 {
        let started = std::time::Instant::now();
        let payload = format!("/pub\0{i}");
        s.write_all(&request(WRITE, i, payload.as_bytes())).unwrap();
        assert_eq!(reply(&mut s).1, i);
        worst = worst.max(started.elapsed());
    }
    let during = resident_kib(pid);
    let report = domain_report(&mut s, 7);
    let get = |report: &[(String, usize)], name: &str| {
        report
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    };
    eprintln!(
        "worst dom0 write round trip beside 100 deaf guest connections: {worst:?}; {report:?}; \
         resident {before} KiB before, {during} KiB during"
    );
    assert_eq!(get(&report, "watches"), 100);
    assert!(get(&report, "queue-bytes") <= 65536, "{report:?}");
    assert!(get(&report, "events") <= 1024, "{report:?}");
    assert!(worst < Duration::from_secs(2), "dom0 stalled for {worst:?}");
    // 2,000 writes × 100 deaf watchers × 2 KiB tokens would be 400 MB of
    // events unbounded; the quota keeps the daemon within a few MiB.
    assert!(
        during < before + 16 * 1024,
        "resident memory grew from {before} KiB to {during} KiB"
    );
    drop(deaf);
    // After: everything the guest made the store hold is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let report = domain_report(&mut s, 7);
        if get(&report, "watches") == 0 && get(&report, "queue-bytes") == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the guest's watches and queues outlive its connections: {report:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = resident_kib(pid);
    eprintln!("resident {after} KiB after the guest left");
    assert!(after < before + 16 * 1024);
    assert_eq!(d.terminate().code(), Some(0));
}
