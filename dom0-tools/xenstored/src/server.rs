//! The Unix-socket adapter: a single-threaded poll loop over the engine.
//!
//! Every socket is non-blocking. Each round the loop polls the signal pipe,
//! the listeners and every client; reads are fed to the engine and whatever
//! the engine queued (replies, and watch events for any client) is written
//! out as far as each socket accepts. A client that stops reading only
//! stalls itself: the loop stops reading its requests once it has
//! `outstanding` replies queued, and its watch events are capped.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oxen_xenstore::{ConnId, ConnKind, Engine};

use crate::args::Args;

/// How long to stop accepting after `accept` failed for lack of resources.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

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

/// Polls `fds` for at most `timeout_ms` (-1: no limit), retrying on EINTR.
fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<()> {
    let count = libc::nfds_t::try_from(fds.len()).map_err(|_| io::Error::other("too many fds"))?;
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed slice of `count`
        // initialised pollfd structs that outlives the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout_ms) };
        if rc >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
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
    let mut clients: BTreeMap<ConnId, UnixStream> = BTreeMap::new();
    let mut accept_paused_until: Option<Instant> = None;
    let epoch = Instant::now();
    let clock = || u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);

    loop {
        engine.set_time(clock());
        for id in report(&mut engine) {
            clients.remove(&id);
        }
        let outstanding = engine.quotas().outstanding_requests;
        let mut fds = vec![pollfd(signal_rx.as_raw_fd(), libc::POLLIN)];
        // While accepting fails (e.g. out of file descriptors), stop polling
        // the listeners for a moment instead of spinning on them.
        let now = Instant::now();
        let accepting = accept_paused_until.is_none_or(|until| now >= until);
        let listen_events = if accepting { libc::POLLIN } else { 0 };
        let mut timeout_ms = match accept_paused_until {
            Some(until) if !accepting => i32::try_from((until - now).as_millis())
                .unwrap_or(i32::MAX)
                .max(1),
            _ => -1,
        };
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
        fds.extend(
            listeners
                .iter()
                .map(|l| pollfd(l.socket.as_raw_fd(), listen_events)),
        );
        let order: Vec<ConnId> = clients.keys().copied().collect();
        for id in &order {
            let conn = engine.connection(*id);
            let mut events = 0;
            if conn.is_some_and(|c| c.queued_replies() < outstanding) {
                events |= libc::POLLIN;
            }
            if conn.is_some_and(|c| c.has_output()) {
                events |= libc::POLLOUT;
            }
            fds.push(pollfd(clients[id].as_raw_fd(), events));
        }
        poll(&mut fds, timeout_ms)?;

        if fds[0].revents != 0 {
            let mut drain = [0u8; 64];
            let _ = signal_rx.read(&mut drain);
            break;
        }
        for (listener, fd) in listeners.iter().zip(&fds[1..]) {
            if fd.revents & libc::POLLIN == 0 {
                continue;
            }
            loop {
                match listener.socket.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(true).is_ok() {
                            clients.insert(engine.connect(listener.kind), stream);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        eprintln!("oxen-xenstored: accept: {e}; pausing new connections");
                        accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                        break;
                    }
                }
            }
        }
        let client_fds = &fds[1 + listeners.len()..];
        let mut gone = Vec::new();
        for (id, fd) in order.iter().zip(client_fds) {
            let Some(stream) = clients.get_mut(id) else {
                continue;
            };
            let hangup = fd.revents & (libc::POLLHUP | libc::POLLERR) != 0;
            if (fd.revents & libc::POLLIN != 0 || hangup) && !receive(&mut engine, *id, stream) {
                gone.push(*id);
            }
        }
        // Flush every client: one client's request may queue events for others.
        for (id, stream) in clients.iter_mut() {
            if engine.connection(*id).is_none() || !flush(&mut engine, *id, stream) {
                gone.push(*id);
            }
        }
        gone.extend(report(&mut engine));
        for id in gone {
            engine.disconnect(id);
            clients.remove(&id);
        }
        write_log(&mut log, &mut engine);
    }
    write_log(&mut log, &mut engine);
    drop(listeners);
    Ok(())
}
