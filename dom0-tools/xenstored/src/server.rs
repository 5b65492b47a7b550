//! The Unix-socket adapter: a single-threaded poll loop over the engine.
//!
//! Every socket is non-blocking and registered with one epoll instance.
//! Each round handles only what is ready: new connections, clients with
//! input (fed to the engine) and clients with room to write, then writes
//! out to the connections the engine queued something for (replies, and
//! watch events for any client). Idle connections cost nothing per round;
//! a closed one is removed from the engine and the table at once. A client
//! that stops reading only stalls itself: the loop stops reading its
//! requests once it has `outstanding` replies queued, and its watch events
//! are capped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oxen_xenstore::{ConnId, ConnKind, Engine};

use crate::args::Args;
use crate::epoll::{Epoll, Interest};

/// How long to stop accepting after `accept` failed for lack of resources.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// epoll tokens: the signal pipe, listeners from `LISTENER`, clients from
/// `CLIENT` (plus their connection id).
const SIGNAL: u64 = 0;
const LISTENER: u64 = 1;
const CLIENT: u64 = 1 << 32;
/// Ready descriptors handled per round (the rest stay ready for the next).
const MAX_EVENTS: usize = 256;
/// Connections accepted per listener per round: a burst of new connections
/// waits in the listen queue (the listener stays ready) instead of holding
/// up the requests of connections already served.
const ACCEPTS_PER_ROUND: usize = 16;

/// A client socket and what epoll watches it for.
struct Client {
    stream: UnixStream,
    interest: Interest,
}

/// A bound socket that is removed again when dropped.
struct Listener {
    socket: UnixListener,
    path: PathBuf,
    kind: ConnKind,
}

impl Listener {
    fn bind(path: &Path, kind: ConnKind, mode: u32) -> io::Result<Self> {
        // Replace a stale socket from an earlier run, but never a live one
        // nor anything that is not a socket.
        if let Ok(meta) = fs::symlink_metadata(path)
            && meta.file_type().is_socket()
        {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("{}: another daemon is listening", path.display()),
                ));
            }
            fs::remove_file(path)?;
        }
        let socket = UnixListener::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        socket.set_nonblocking(true)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        Ok(Self {
            socket,
            path: path.to_path_buf(),
            kind,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes everything the engine queued for `id` that the socket accepts.
/// Returns `false` if the peer is gone.
fn flush(engine: &mut Engine, id: ConnId, stream: &mut UnixStream) -> bool {
    loop {
        let chunk = engine.output(id);
        if chunk.is_empty() {
            return true;
        }
        match stream.write(chunk) {
            Ok(0) => return false,
            Ok(n) => engine.consume(id, n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Reads what is available on `stream` and feeds it to the engine.
/// Returns `false` if the peer is gone.
fn receive(engine: &mut Engine, id: ConnId, stream: &mut UnixStream) -> bool {
    let mut buffer = [0u8; 16 * 1024];
    match stream.read(&mut buffer) {
        Ok(0) => false,
        Ok(n) => engine.feed(id, &buffer[..n]).is_ok(),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => true,
        Err(_) => false,
    }
}

/// Moves the engine's access-log lines to the log file. Lines are always
/// drained, so `CONTROL log on` without a log file cannot grow memory.
fn write_log(log: &mut Option<File>, engine: &mut Engine) {
    let lines = engine.take_access_log();
    let Some(file) = log.as_mut() else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    for line in lines {
        // The log is best effort: a full disk must not stop the store.
        let _ = writeln!(file, "{}.{:03} {line}", now.as_secs(), now.subsec_millis());
    }
}

/// Logs what the engine did on its own (closed connections, ended
/// transactions) to stderr; returns the connections it closed.
fn report(engine: &mut Engine) -> Vec<ConnId> {
    for notice in engine.take_notices() {
        eprintln!("oxen-xenstored: {notice}");
    }
    let closed = engine.take_closed();
    for (id, reason) in &closed {
        eprintln!("oxen-xenstored: closing connection {}: {reason}", id.0);
    }
    closed.into_iter().map(|(id, _)| id).collect()
}

/// Serves until SIGTERM or SIGINT.
pub fn run(args: &Args) -> io::Result<()> {
    let (mut signal_rx, signal_tx) = UnixStream::pair()?;
    signal_rx.set_nonblocking(true)?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(signal, signal_tx.try_clone()?)?;
    }

    let mut listeners = vec![Listener::bind(
        &args.unix_socket,
        ConnKind::privileged_socket(),
        0o600,
    )?];
    if let Some(path) = &args.ro_socket {
        listeners.push(Listener::bind(path, ConnKind::read_only_socket(), 0o660)?);
    }
    for (domid, path) in &args.guest_sockets {
        listeners.push(Listener::bind(path, ConnKind::domain(*domid), 0o600)?);
    }
    let mut log = match &args.access_log {
        Some(path) => Some(OpenOptions::new().create(true).append(true).open(path)?),
        None => None,
    };

    let mut engine = Engine::new(args.quotas);
    if log.is_some() {
        engine.enable_access_log();
    }
    let epoll = Epoll::new()?;
    epoll.add(signal_rx.as_raw_fd(), SIGNAL, Interest::READ)?;
    for (i, l) in listeners.iter().enumerate() {
        epoll.add(l.socket.as_raw_fd(), LISTENER + i as u64, Interest::READ)?;
    }
    let mut clients: BTreeMap<ConnId, Client> = BTreeMap::new();
    let mut accept_paused_until: Option<Instant> = None;
    let epoch = Instant::now();
    let clock = || u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);

    'serve: loop {
        engine.set_time(clock());
        for id in report(&mut engine) {
            clients.remove(&id);
        }
        // While accepting fails (e.g. out of file descriptors), the
        // listeners are not watched for a moment instead of spinning on them.
        let now = Instant::now();
        let mut timeout_ms = -1;
        if let Some(until) = accept_paused_until {
            if now >= until {
                accept_paused_until = None;
                for (i, l) in listeners.iter().enumerate() {
                    epoll.modify(l.socket.as_raw_fd(), LISTENER + i as u64, Interest::READ)?;
                }
            } else {
                timeout_ms = i32::try_from((until - now).as_millis())
                    .unwrap_or(i32::MAX)
                    .max(1);
            }
        }
        // Wake up when the oldest transaction reaches its age limit.
        if let Some(deadline) = engine.next_deadline() {
            let wait = i32::try_from(deadline.saturating_sub(clock()))
                .unwrap_or(i32::MAX)
                .max(1);
            timeout_ms = if timeout_ms < 0 {
                wait
            } else {
                timeout_ms.min(wait)
            };
        }
        let ready = epoll.wait(MAX_EVENTS, timeout_ms)?;

        let mut gone = Vec::new();
        let mut touched = BTreeSet::new();
        for r in ready {
            if r.token == SIGNAL {
                let mut drain = [0u8; 64];
                let _ = signal_rx.read(&mut drain);
                break 'serve;
            }
            if r.token < CLIENT {
                let Some(listener) = listeners.get((r.token - LISTENER) as usize) else {
                    continue;
                };
                if accept(&mut engine, &epoll, listener, &mut clients)? {
                    accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    for (i, l) in listeners.iter().enumerate() {
                        let none = Interest::default();
                        epoll.modify(l.socket.as_raw_fd(), LISTENER + i as u64, none)?;
                    }
                }
                continue;
            }
            let id = ConnId((r.token - CLIENT) as u32);
            let Some(client) = clients.get_mut(&id) else {
                continue;
            };
            touched.insert(id);
            if (r.readable || r.hangup) && !receive(&mut engine, id, &mut client.stream) {
                gone.push(id);
            }
            // Send what this input caused at once (its replies, and events
            // for others), so output never piles up in the engine for the
            // length of a round.
            send_dirty(&mut engine, &mut clients, &mut touched, &mut gone);
        }
        // Then to connections that had room to write.
        for id in &touched {
            let Some(client) = clients.get_mut(id) else {
                continue;
            };
            if !flush(&mut engine, *id, &mut client.stream) {
                gone.push(*id);
            }
        }
        send_dirty(&mut engine, &mut clients, &mut touched, &mut gone);
        gone.extend(report(&mut engine));
        for id in &gone {
            engine.disconnect(*id);
            clients.remove(id);
        }
        for id in &touched {
            let (Some(client), Some(conn)) = (clients.get_mut(id), engine.connection(*id)) else {
                continue;
            };
            // Stop reading from a client with `outstanding` replies queued
            // until it collects them; watch for room while output waits.
            let want = Interest {
                read: engine.wants_input(*id),
                write: conn.has_output(),
            };
            if want != client.interest {
                epoll.modify(client.stream.as_raw_fd(), CLIENT + u64::from(id.0), want)?;
                client.interest = want;
            }
        }
        write_log(&mut log, &mut engine);
    }
    write_log(&mut log, &mut engine);
    drop(listeners);
    Ok(())
}

/// Writes out to every connection the engine queued something for since
/// the last call, adding them to `touched`; peers found gone go to `gone`.
fn send_dirty(
    engine: &mut Engine,
    clients: &mut BTreeMap<ConnId, Client>,
    touched: &mut BTreeSet<ConnId>,
    gone: &mut Vec<ConnId>,
) {
    for id in engine.take_dirty() {
        let Some(client) = clients.get_mut(&id) else {
            continue;
        };
        touched.insert(id);
        if !flush(engine, id, &mut client.stream) {
            gone.push(id);
        }
    }
}

/// Accepts up to [`ACCEPTS_PER_ROUND`] pending connections on `listener`.
/// Returns `true` if accepting failed for lack of resources (the caller
/// pauses accepting).
fn accept(
    engine: &mut Engine,
    epoll: &Epoll,
    listener: &Listener,
    clients: &mut BTreeMap<ConnId, Client>,
) -> io::Result<bool> {
    for _ in 0..ACCEPTS_PER_ROUND {
        match listener.socket.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let id = engine.connect(listener.kind);
                let token = CLIENT + u64::from(id.0);
                if let Err(e) = epoll.add(stream.as_raw_fd(), token, Interest::READ) {
                    eprintln!("oxen-xenstored: epoll: {e}; dropping a new connection");
                    engine.disconnect(id);
                    continue;
                }
                clients.insert(
                    id,
                    Client {
                        stream,
                        interest: Interest::READ,
                    },
                );
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => {
                eprintln!("oxen-xenstored: accept: {e}; pausing new connections");
                return Ok(true);
            }
        }
    }
    Ok(false)
}
