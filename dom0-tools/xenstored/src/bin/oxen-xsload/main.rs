//! `oxen-xsload`: a XenStore load generator speaking the `xs_wire` protocol.
//!
//! ```text
//! oxen-xsload run --socket PATH [--op OP] [--clients N] [--seconds S]
//! oxen-xsload report [--seconds S]
//! ```
//!
//! `run` drives any XenStore daemon on a Unix socket (ours or Xen's): N
//! clients, each on its own connection and thread, repeat one operation
//! (`read`, `write`, `directory`, `tx-own`, `tx-shared`) for S seconds; it
//! prints operations per second and fails if any reply was wrong.
//!
//! `report` is what `cargo xtask bench` runs: it starts `oxen-xenstored`
//! (found beside this program) and measures every operation with 1 and 8
//! clients over the socket and against the engine in this process, the cost
//! per operation beside directories of 10 to 100,000 children and beside 1
//! to 1,000 connections, and a steady client's worst wait while 10,000
//! connections come and go. It prints `figure KEY VALUE WHAT` and
//! `point CHART SERIES X Y` lines.

mod link;
mod workload;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use link::{Daemon, InProcess, Link, Socket};
use oxen_xenstore::wire::{Message, MsgType};
use workload::{Client, Op, SHARED, payload, write_payload};

const USAGE: &str = "usage: oxen-xsload run --socket PATH [--op read|write|directory|tx-own|tx-shared] [--clients N] [--seconds S]
       oxen-xsload report [--seconds S]";

type Result<T> = std::result::Result<T, String>;

/// What one timed run of N clients did.
struct Outcome {
    ops: u64,
    conflicts: u64,
    elapsed: Duration,
}

impl Outcome {
    fn per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends `msg`, then every follow-up request of its operation; checked.
fn operation(link: &mut dyn Link, client: &mut Client, first: Message) -> Result<()> {
    let mut msg = first;
    loop {
        let reply = link.round_trip(&msg)?;
        match client.on_reply(&reply)? {
            Some(next) => msg = next,
            None => return Ok(()),
        }
    }
}

/// A request that must be answered `OK`.
fn expect_ok(link: &mut dyn Link, msg: &Message) -> Result<()> {
    let reply = link.round_trip(msg)?;
    if reply.header.msg_type == MsgType::Error as u32 || reply.payload != b"OK\0" {
        return Err(format!(
            "{:?} answered {:?}",
            MsgType::from_u32(msg.header.msg_type),
            String::from_utf8_lossy(&reply.payload)
        ));
    }
    Ok(())
}

/// `READ` of `path`, as a string.
fn read(link: &mut dyn Link, path: &str) -> Result<String> {
    let reply = link.round_trip(&Message::new(MsgType::Read, 0, 0, payload(&[path])))?;
    if reply.header.msg_type == MsgType::Error as u32 {
        return Err(format!(
            "read {path}: {}",
            String::from_utf8_lossy(&reply.payload)
        ));
    }
    Ok(String::from_utf8_lossy(&reply.payload).into_owned())
}

/// After a run: every client's own node holds what it last wrote, and the
/// shared counter counts exactly the committed transactions.
fn verify(link: &mut dyn Link, op: Op, clients: &[Client]) -> Result<()> {
    for client in clients {
        if let Some((path, value)) = client.final_value() {
            let got = read(link, &path)?;
            if got != value.to_string() {
                return Err(format!("{path} holds {got}, its client wrote {value}"));
            }
        }
    }
    if op == Op::TxShared {
        let commits: u64 = clients.iter().map(|c| c.done).sum();
        let got = read(link, SHARED)?;
        if got != commits.to_string() {
            return Err(format!(
                "{SHARED} holds {got} after {commits} committed increments"
            ));
        }
    }
    Ok(())
}

/// Runs `op` on `n` clients, one thread and socket each, for `seconds`.
fn socket_run(path: &std::path::Path, op: Op, n: usize, seconds: f64) -> Result<Outcome> {
    let mut setup = Socket::connect(path)?;
    let clients: Vec<Client> = (0..n).map(|i| Client::new(op, i)).collect();
    for (i, client) in clients.iter().enumerate() {
        for msg in client.setup(i) {
            expect_ok(&mut setup, &msg)?;
        }
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let path = path.to_path_buf();
            std::thread::spawn(move || -> Result<Client> {
                let mut link = Socket::connect(&path)?;
                while Instant::now() < deadline {
                    let first = client.next_request();
                    operation(&mut link, &mut client, first)?;
                }
                Ok(client)
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in threads {
        done.push(t.join().map_err(|_| "a client thread panicked")??);
    }
    let elapsed = start.elapsed();
    verify(&mut setup, op, &done)?;
    Ok(Outcome {
        ops: done.iter().map(|c| c.done).sum(),
        conflicts: done.iter().map(|c| c.conflicts).sum(),
        elapsed,
    })
}

/// Runs `op` on `n` connections of one engine in this process, their
/// requests interleaved round by round, for `seconds`.
fn in_process_run(op: Op, n: usize, seconds: f64) -> Result<Outcome> {
    let mut engine = InProcess::new();
    let setup = engine.connect();
    let conns: Vec<_> = (0..n).map(|_| engine.connect()).collect();
    let mut clients: Vec<Client> = (0..n).map(|i| Client::new(op, i)).collect();
    for (i, client) in clients.iter().enumerate() {
        for msg in client.setup(i) {
            expect_ok(&mut engine.on(setup), &msg)?;
        }
    }
    let mut pending: Vec<Option<Message>> =
        clients.iter_mut().map(|c| Some(c.next_request())).collect();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    while pending.iter().any(Option::is_some) {
        for (conn, msg) in conns.iter().zip(&pending) {
            if let Some(msg) = msg {
                engine.send(*conn, msg)?;
            }
        }
        let late = Instant::now() >= deadline;
        for ((conn, msg), client) in conns.iter().zip(&mut pending).zip(&mut clients) {
            if msg.is_none() {
                continue;
            }
            let reply = engine.receive(*conn)?;
            *msg = match client.on_reply(&reply)? {
                Some(next) => Some(next),
                None if late => None,
                None => Some(client.next_request()),
            };
        }
    }
    let elapsed = start.elapsed();
    verify(&mut engine.on(setup), op, &clients)?;
    Ok(Outcome {
        ops: clients.iter().map(|c| c.done).sum(),
        conflicts: clients.iter().map(|c| c.conflicts).sum(),
        elapsed,
    })
}

/// Mean time of `op` (one or more round trips) repeated for `seconds`.
fn time_per_op(seconds: f64, mut op: impl FnMut(u64) -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    let budget = Duration::from_secs_f64(seconds);
    let mut count = 0u64;
    while count < 16 || start.elapsed() < budget {
        op(count)?;
        count += 1;
    }
    Ok(start.elapsed() / u32::try_from(count).unwrap_or(u32::MAX))
}

/// Per-operation costs beside a directory of `children` (in process).
fn directory_costs(children: usize, seconds: f64) -> Result<[(&'static str, Duration); 4]> {
    let mut engine = InProcess::new();
    let conn = engine.connect();
    engine.build_directory(conn, "/big", children)?;
    let mut link = engine.on(conn);
    let child = |i: u64| format!("/big/c{:06}", (i * 7919) % children as u64);
    let read = time_per_op(seconds, |i| read(&mut link, &child(i)).map(drop))?;
    let write = time_per_op(seconds, |i| {
        expect_ok(
            &mut link,
            &Message::new(MsgType::Write, 0, 0, write_payload(&child(i), "w")),
        )
    })?;
    let create_remove = time_per_op(seconds, |i| {
        let path = format!("/big/new{i}");
        expect_ok(
            &mut link,
            &Message::new(MsgType::Write, 0, 0, write_payload(&path, "")),
        )?;
        expect_ok(
            &mut link,
            &Message::new(MsgType::Rm, 0, 0, payload(&[&path])),
        )
    })?;
    let part = time_per_op(seconds, |_| {
        let reply = link.round_trip(&Message::new(
            MsgType::DirectoryPart,
            0,
            0,
            payload(&["/big", "0"]),
        ))?;
        if reply.header.msg_type == MsgType::Error as u32 {
            return Err(format!(
                "DIRECTORY_PART: {}",
                String::from_utf8_lossy(&reply.payload)
            ));
        }
        Ok(())
    })?;
    Ok([
        ("read", read),
        ("write", write),
        ("create and remove", create_remove),
        ("directory part", part),
    ])
}

/// Read and write round trips of one client beside `idle - 1` idle
/// connections that each hold a watch: over the socket and in process.
fn connection_costs(
    path: &std::path::Path,
    connections: usize,
    seconds: f64,
) -> Result<[(&'static str, Duration); 4]> {
    let mut idle = Vec::new();
    let mut engine = InProcess::new();
    for k in 1..connections {
        let watch = Message::new(
            MsgType::Watch,
            0,
            0,
            payload(&[&format!("/bench/idle/{k}"), "t"]),
        );
        let mut socket = Socket::connect(path)?;
        expect_ok(&mut socket, &watch)?;
        idle.push(socket);
        let conn = engine.connect();
        expect_ok(&mut engine.on(conn), &watch)?;
    }
    let mut steady = Socket::connect(path)?;
    expect_ok(
        &mut steady,
        &Message::new(MsgType::Write, 0, 0, write_payload("/bench/steady", "0")),
    )?;
    let conn = engine.connect();
    let mut local = engine.on(conn);
    expect_ok(
        &mut local,
        &Message::new(MsgType::Write, 0, 0, write_payload("/bench/steady", "0")),
    )?;
    let write = |link: &mut dyn Link, i: u64| {
        expect_ok(
            link,
            &Message::new(
                MsgType::Write,
                0,
                0,
                write_payload("/bench/steady", &i.to_string()),
            ),
        )
    };
    Ok([
        (
            "read over the socket",
            time_per_op(seconds, |_| read(&mut steady, "/bench/steady").map(drop))?,
        ),
        (
            "write over the socket",
            time_per_op(seconds, |i| write(&mut steady, i))?,
        ),
        (
            "read in process",
            time_per_op(seconds, |_| read(&mut local, "/bench/steady").map(drop))?,
        ),
        (
            "write in process",
            time_per_op(seconds, |i| write(&mut local, i))?,
        ),
    ])
}

/// A steady client's round trips while `churned` connections connect, send
/// a request (or half of one, or nothing) and go: (worst wait, mean wait,
/// connections per second, connections left in the daemon's table).
fn churn(path: &std::path::Path, churned: u32) -> Result<(Duration, Duration, f64, usize)> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let steady = {
        let (path, stop) = (path.to_path_buf(), stop.clone());
        std::thread::spawn(move || -> Result<(Duration, Duration)> {
            let mut link = Socket::connect(&path)?;
            let (mut worst, mut total, mut n) = (Duration::ZERO, Duration::ZERO, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                read(&mut link, "/bench/steady")?;
                let took = started.elapsed();
                worst = worst.max(took);
                total += took;
                n += 1;
            }
            Ok((worst, total / n.max(1)))
        })
    };
    let started = Instant::now();
    let request = Message::new(MsgType::Read, 1, 0, payload(&["/bench/steady"])).to_bytes();
    for i in 0..churned {
        let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| e.to_string())?;
        let bytes = match i % 3 {
            0 => &request[..],
            1 => &request[..10],
            _ => &[][..],
        };
        std::io::Write::write_all(&mut s, bytes).map_err(|e| e.to_string())?;
    }
    let rate = f64::from(churned) / started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, mean) = steady.join().map_err(|_| "the steady client panicked")??;
    let mut probe = Socket::connect(path)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let n = probe.memreport("connections")?;
        if n == 1 || Instant::now() > deadline {
            break n - 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok((worst, mean, rate, left))
}

/// One client creates `children` nodes in one directory, its requests
/// pipelined (replies read by a second thread), while a steady client keeps
/// reading: (time to build, the steady client's worst wait).
fn big_directory(path: &std::path::Path, children: u32) -> Result<(Duration, Duration)> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let steady = {
        let (path, stop) = (path.to_path_buf(), stop.clone());
        std::thread::spawn(move || -> Result<Duration> {
            let mut link = Socket::connect(&path)?;
            let mut worst = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                read(&mut link, "/bench/steady")?;
                worst = worst.max(started.elapsed());
            }
            Ok(worst)
        })
    };
    let requests: Vec<Message> = (0..children)
        .map(|i| {
            Message::new(
                MsgType::Write,
                i,
                0,
                write_payload(&format!("/bench/big/c{i:06}"), "v"),
            )
        })
        .collect();
    let started = Instant::now();
    let built = Socket::pipeline(path, &requests);
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = steady.join().map_err(|_| "the steady client panicked")??;
    built?;
    Ok((took, worst))
}

fn report(seconds: f64) -> Result<()> {
    let daemon = Daemon::spawn()?;
    let figure = |key: String, value: String, what: String| println!("figure {key} {value} {what}");
    for op in Op::ALL {
        for clients in [1, 8] {
            for (transport, outcome) in [
                ("socket", socket_run(daemon.socket(), op, clients, seconds)?),
                ("inproc", in_process_run(op, clients, seconds)?),
            ] {
                let name = op.name().replace('-', "_");
                let unit = if matches!(op, Op::TxOwn | Op::TxShared) {
                    "transactions"
                } else {
                    "operations"
                };
                let conflicts = if op == Op::TxShared {
                    format!(", {} conflicts (EAGAIN, retried)", outcome.conflicts)
                } else {
                    String::new()
                };
                let where_ = if transport == "socket" {
                    "over the Unix socket, a thread each"
                } else {
                    "on one engine in process, interleaved"
                };
                figure(
                    format!("xenstore_{name}_{clients}c_{transport}_per_s"),
                    format!("{:.0}", outcome.per_s()),
                    format!("{unit} per second, {clients} client(s) {where_}{conflicts}"),
                );
            }
        }
    }
    for children in [10, 1_000, 100_000] {
        for (series, cost) in directory_costs(children, seconds / 2.0)? {
            println!(
                "point children {series:?} {children} {:.0}",
                cost.as_nanos() as f64
            );
        }
    }
    for connections in [1, 100, 1_000] {
        for (series, cost) in connection_costs(daemon.socket(), connections, seconds / 2.0)? {
            println!(
                "point connections {series:?} {connections} {:.2}",
                cost.as_nanos() as f64 / 1e3
            );
        }
    }
    let (took, worst) = big_directory(daemon.socket(), 100_000)?;
    figure(
        "xenstore_100k_children_socket_s".into(),
        format!("{:.2}", took.as_secs_f64()),
        "seconds to create 100,000 nodes in one directory over the socket (pipelined)".into(),
    );
    figure(
        "xenstore_100k_children_worst_wait_ms".into(),
        format!("{:.1}", worst.as_secs_f64() * 1e3),
        "a steady client's worst round trip meanwhile".into(),
    );
    let (worst, mean, rate, left) = churn(daemon.socket(), 10_000)?;
    if left != 0 {
        return Err(format!(
            "{left} churned connections are still in the daemon's table"
        ));
    }
    figure(
        "xenstore_churn_worst_wait_ms".into(),
        format!("{:.1}", worst.as_secs_f64() * 1e3),
        format!(
            "a steady client's worst round trip while 10,000 connections came and went ({rate:.0}/s; mean {:.0} us)",
            mean.as_secs_f64() * 1e6
        ),
    );
    Ok(())
}

fn main() -> ExitCode {
    match run_cli(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxen-xsload: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(args: Vec<String>) -> Result<()> {
    let mut args = args.into_iter();
    let command = args.next().ok_or(USAGE)?;
    let (mut socket, mut op, mut clients, mut seconds) = (None, Op::Read, 1usize, 1.0f64);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--socket" => socket = Some(std::path::PathBuf::from(value()?)),
            "--op" => op = Op::parse(&value()?).ok_or(USAGE)?,
            "--clients" => clients = value()?.parse().map_err(|_| USAGE)?,
            "--seconds" => seconds = value()?.parse().map_err(|_| USAGE)?,
            _ => return Err(USAGE.into()),
        }
    }
    match command.as_str() {
        "run" => {
            let socket = socket.ok_or(USAGE)?;
            let outcome = socket_run(&socket, op, clients.max(1), seconds)?;
            println!(
                "{} with {clients} client(s): {:.0} per second ({} in {:.2} s, {} conflicts), every reply checked",
                op.name(),
                outcome.per_s(),
                outcome.ops,
                outcome.elapsed.as_secs_f64(),
                outcome.conflicts
            );
            Ok(())
        }
        "report" => report(seconds),
        _ => Err(USAGE.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_runs_against_the_engine_with_every_reply_checked() {
        for op in Op::ALL {
            for clients in [1, 8] {
                let outcome = in_process_run(op, clients, 0.01).unwrap();
                assert!(outcome.ops > 0, "{} with {clients}", op.name());
                if op != Op::TxShared || clients == 1 {
                    assert_eq!(outcome.conflicts, 0, "{} with {clients}", op.name());
                }
            }
        }
    }

    #[test]
    fn interleaved_transactions_on_one_counter_conflict_and_lose_nothing() {
        let outcome = in_process_run(Op::TxShared, 8, 0.02).unwrap();
        assert!(outcome.conflicts > 0);
    }

    #[test]
    fn a_wrong_reply_is_an_error() {
        let mut engine = InProcess::new();
        let conn = engine.connect();
        let mut link = engine.on(conn);
        let mut client = Client::new(Op::Read, 0);
        for msg in client.setup(0) {
            expect_ok(&mut link, &msg).unwrap();
        }
        // Someone else changes the client's node: its next read must fail.
        expect_ok(
            &mut link,
            &Message::new(MsgType::Write, 0, 0, write_payload("/bench/c0/node", "9")),
        )
        .unwrap();
        let first = client.next_request();
        let error = operation(&mut link, &mut client, first).unwrap_err();
        assert!(error.contains("expected 0"), "{error}");
    }

    #[test]
    fn a_lost_increment_is_found_by_the_check() {
        let mut engine = InProcess::new();
        let conn = engine.connect();
        let mut link = engine.on(conn);
        let mut clients = vec![Client::new(Op::TxShared, 0)];
        for msg in clients[0].setup(0) {
            expect_ok(&mut link, &msg).unwrap();
        }
        for _ in 0..3 {
            let first = clients[0].next_request();
            operation(&mut link, &mut clients[0], first).unwrap();
        }
        verify(&mut link, Op::TxShared, &clients).unwrap();
        expect_ok(
            &mut link,
            &Message::new(MsgType::Write, 0, 0, write_payload(SHARED, "2")),
        )
        .unwrap();
        let error = verify(&mut link, Op::TxShared, &clients).unwrap_err();
        assert!(error.contains("after 3 committed"), "{error}");
    }
}
