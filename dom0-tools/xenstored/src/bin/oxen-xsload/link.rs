//! Ways to reach a store: a Unix socket of a daemon, or an engine in this
//! process; and a daemon of our own to measure.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxen_xenstore::wire::{Decoder, Message, MsgType};
use oxen_xenstore::{ConnId, ConnKind, Engine, Quotas};

use crate::Result;
use crate::workload::{payload, write_payload};

/// One connection to a store: a request out, its reply back (watch events
/// that arrive in between are skipped).
pub trait Link {
    fn round_trip(&mut self, msg: &Message) -> Result<Message>;
}

/// Takes the next message that is not a watch event out of `bytes`.
fn next_reply(decoder: &mut Decoder, bytes: &mut &[u8]) -> Result<Option<Message>> {
    while let Some(frame) = decoder.decode(bytes) {
        let msg = frame.map_err(|o| format!("the store sent an oversized message: {:?}", o.0))?;
        if msg.header.msg_type != MsgType::WatchEvent as u32 {
            return Ok(Some(msg));
        }
    }
    Ok(None)
}

/// After a reply: what else arrived may only be watch events (or the start
/// of one, which the decoder keeps).
fn only_events_left(decoder: &mut Decoder, mut rest: &[u8]) -> Result<()> {
    match next_reply(decoder, &mut rest)? {
        Some(_) => Err("the store sent two replies to one request".into()),
        None => Ok(()),
    }
}

/// A client connection on a daemon's socket.
pub struct Socket {
    stream: UnixStream,
    decoder: Decoder,
    buffer: Vec<u8>,
}

impl Socket {
    pub fn connect(path: &Path) -> Result<Self> {
        let stream =
            UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
        Ok(Self {
            stream,
            decoder: Decoder::new(),
            buffer: vec![0; 8192],
        })
    }

    /// Sends `requests` on a new connection without waiting for replies
    /// (a second thread reads them); each must be `OK`.
    pub fn pipeline(path: &Path, requests: &[Message]) -> Result<()> {
        let mut stream = UnixStream::connect(path).map_err(|e| e.to_string())?;
        let mut replies = stream.try_clone().map_err(|e| e.to_string())?;
        let expected = requests.len();
        let reader = std::thread::spawn(move || -> Result<()> {
            let mut decoder = Decoder::new();
            let mut buffer = vec![0u8; 1 << 16];
            let mut seen = 0;
            while seen < expected {
                let n = replies.read(&mut buffer).map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("the store closed a pipelined connection".into());
                }
                let mut bytes = &buffer[..n];
                while let Some(reply) = next_reply(&mut decoder, &mut bytes)? {
                    if reply.payload != b"OK\0" {
                        let text = String::from_utf8_lossy(&reply.payload).into_owned();
                        return Err(format!("a pipelined request got {text:?}"));
                    }
                    seen += 1;
                }
            }
            Ok(())
        });
        for chunk in requests.chunks(512) {
            let bytes: Vec<u8> = chunk.iter().flat_map(Message::to_bytes).collect();
            stream.write_all(&bytes).map_err(|e| e.to_string())?;
        }
        reader.join().map_err(|_| "the reply reader panicked")?
    }

    /// A figure of `oxen-xenstored`'s `CONTROL memreport` (not Xen's).
    pub fn memreport(&mut self, name: &str) -> Result<usize> {
        let reply = self.round_trip(&Message::new(
            MsgType::Control,
            0,
            0,
            payload(&["memreport"]),
        ))?;
        let text = String::from_utf8_lossy(&reply.payload).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim_end_matches('\0').parse().ok())
            .ok_or_else(|| format!("memreport has no {name}"))
    }
}

impl Link for Socket {
    fn round_trip(&mut self, msg: &Message) -> Result<Message> {
        self.stream
            .write_all(&msg.to_bytes())
            .map_err(|e| format!("send: {e}"))?;
        loop {
            let n = self
                .stream
                .read(&mut self.buffer)
                .map_err(|e| format!("receive: {e}"))?;
            if n == 0 {
                return Err("the store closed the connection".into());
            }
            let mut bytes = &self.buffer[..n];
            if let Some(reply) = next_reply(&mut self.decoder, &mut bytes)? {
                only_events_left(&mut self.decoder, bytes)?;
                return Ok(reply);
            }
        }
    }
}

/// An engine in this process, with privileged connections on it.
pub struct InProcess {
    engine: Engine,
    decoders: BTreeMap<ConnId, Decoder>,
}

impl InProcess {
    pub fn new() -> Self {
        Self {
            engine: Engine::new(Quotas::default()),
            decoders: BTreeMap::new(),
        }
    }

    pub fn connect(&mut self) -> ConnId {
        let id = self.engine.connect(ConnKind::privileged_socket());
        self.decoders.insert(id, Decoder::new());
        id
    }

    /// Feeds a request on `conn`.
    pub fn send(&mut self, conn: ConnId, msg: &Message) -> Result<()> {
        self.engine
            .feed(conn, &msg.to_bytes())
            .map_err(|e| format!("feed: {e:?}"))
    }

    /// The reply the engine queued on `conn`.
    pub fn receive(&mut self, conn: ConnId) -> Result<Message> {
        let bytes = self.engine.drain_output(conn);
        let decoder = self.decoders.get_mut(&conn).ok_or("unknown connection")?;
        let mut rest = &bytes[..];
        let reply = next_reply(decoder, &mut rest)?.ok_or("no reply queued")?;
        only_events_left(decoder, rest)?;
        Ok(reply)
    }

    /// `conn` as a [`Link`].
    pub fn on(&mut self, conn: ConnId) -> OnEngine<'_> {
        OnEngine { engine: self, conn }
    }

    /// Writes `dir/cNNNNNN` for `0..children`, pipelined in large feeds.
    pub fn build_directory(&mut self, conn: ConnId, dir: &str, children: usize) -> Result<()> {
        let mut bytes = Vec::new();
        for i in 0..children {
            let body = write_payload(&format!("{dir}/c{i:06}"), "v");
            bytes.extend(Message::new(MsgType::Write, 0, 0, body).to_bytes());
            if bytes.len() > 1 << 16 || i + 1 == children {
                self.engine
                    .feed(conn, &bytes)
                    .map_err(|e| format!("feed: {e:?}"))?;
                let replies = self.engine.drain_output(conn);
                if replies.windows(6).any(|w| w == b"ENOSPC" || w == b"EQUOTA") {
                    return Err(format!("the store refused to grow {dir}"));
                }
                bytes.clear();
            }
        }
        Ok(())
    }
}

/// One connection of an [`InProcess`] engine.
pub struct OnEngine<'a> {
    engine: &'a mut InProcess,
    conn: ConnId,
}

impl Link for OnEngine<'_> {
    fn round_trip(&mut self, msg: &Message) -> Result<Message> {
        self.engine.send(self.conn, msg)?;
        self.engine.receive(self.conn)
    }
}

/// `oxen-xenstored` started from beside this program on a socket in a
/// directory of its own; stopped and cleaned up on drop.
pub struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    pub fn spawn() -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let program = exe.with_file_name("oxen-xenstored");
        let dir = std::env::temp_dir().join(format!("oxen-xsload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let socket = dir.join("socket");
        let child = Command::new(&program)
            .arg("--unix-socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        let daemon = Self { child, dir, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&daemon.socket).is_err() {
            if Instant::now() > deadline {
                return Err("oxen-xenstored did not open its socket within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(daemon)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
