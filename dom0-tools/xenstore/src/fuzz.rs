//! The fuzz harness over the codec and the engine (feature `fuzzing`).
//!
//! [`run`] judges one input. The input is a small program: its bytes
//! choose, step by step, what happens on one of several connections of
//! every kind (dom0 on the read-write and read-only sockets, two guests, a
//! domain-0 ring, and two "dirty" connections that send garbage):
//! well-formed requests of every type split into random chunks, malformed
//! and oversize frames, partial collection of output, disconnects, the
//! clock moving on. Every byte string is a valid program (bytes past its
//! end read as zeros). After every step the engine's invariants must hold
//! ([`Engine::check`]: tree shape, node and per-domain accounting,
//! indexes), every byte the engine sends must frame into whole messages
//! within [`PAYLOAD_MAX`], and every request on a well-behaved connection
//! must get exactly one reply, in order, echoing its request and
//! transaction ids, unless the store closed the connection.
//!
//! Two drivers feed it: the `fuzz` integration test (the seed corpus
//! `tests/fuzz-corpus/*.bin`, then deterministic mutations of it for a
//! bounded time) and the libFuzzer target in `fuzz/` (`cargo xtask fuzz`).
//!
//! ```
//! // dom0 (slot 0) sends one request (0), a WRITE (1) of an empty value
//! // to /a/b/c (2) outside transactions (0, 0), fed a byte at a time (the
//! // bytes past the end); its reply is collected at the end.
//! let stats = oxen_xenstore::fuzz::run(&[0, 0, 0, 1, 2, 0, 0]).unwrap();
//! assert_eq!((stats.replies, stats.errors), (1, 0));
//! ```

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::wire::{Decoder, Header, Message, MsgType, PAYLOAD_MAX};
use crate::{ConnId, ConnKind, Engine, Quotas};

/// The program's bytes, read one at a time (zeros once exhausted).
struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[usize::from(self.byte()) % items.len()]
    }
}

/// One connection slot of the harness.
struct Slot {
    kind: ConnKind,
    /// Sends only well-formed requests, so its replies can be predicted.
    clean: bool,
    id: ConnId,
    decoder: Decoder,
    /// (request id, transaction id, type) of requests not yet answered.
    expected: VecDeque<(u32, u32, MsgType)>,
    /// Transactions it believes open.
    txs: Vec<u32>,
}

const PATHS: [&str; 12] = [
    "/a",
    "/a/b",
    "/a/b/c",
    "/a/d",
    "/local/domain/1/x",
    "/local/domain/1/x/y",
    "/local/domain/2/z",
    "x",
    "x/y",
    "/",
    "@releaseDomain",
    "/bad path",
];

const TYPES: [MsgType; 20] = [
    MsgType::Read,
    MsgType::Write,
    MsgType::Write,
    MsgType::Mkdir,
    MsgType::Rm,
    MsgType::Directory,
    MsgType::DirectoryPart,
    MsgType::GetPerms,
    MsgType::SetPerms,
    MsgType::Watch,
    MsgType::Unwatch,
    MsgType::TransactionStart,
    MsgType::TransactionEnd,
    MsgType::GetDomainPath,
    MsgType::IsDomainIntroduced,
    MsgType::ResetWatches,
    MsgType::Introduce,
    MsgType::Release,
    MsgType::SetTarget,
    MsgType::Control,
];

fn nul(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A well-formed request (its arguments may still be wrong).
fn request(input: &mut Input<'_>, slot: &Slot, req: u32) -> Message {
    let ty = *input.pick(&TYPES);
    let path = *input.pick(&PATHS);
    let tx = match input.byte() % 4 {
        0 => 0,
        1 | 2 if !slot.txs.is_empty() => *input.pick(&slot.txs),
        1 | 2 => 0,
        _ => u32::from(input.byte() % 4),
    };
    let tx = if ty == MsgType::TransactionStart {
        0
    } else {
        tx
    };
    let payload = match ty {
        MsgType::Write => {
            let mut p = nul(path);
            let len = usize::from(input.byte()) * 9;
            p.extend(core::iter::repeat_n(b'v', len));
            p
        }
        MsgType::DirectoryPart => {
            let mut p = nul(path);
            p.extend(nul(&(usize::from(input.byte()) % 8).to_string()));
            p
        }
        MsgType::SetPerms => {
            let mut p = nul(path);
            for _ in 0..input.byte() % 4 {
                p.extend(nul(
                    input.pick(&["n0", "r1", "w2", "b1", "n1", "r7", "bogus"])
                ));
            }
            p
        }
        MsgType::Watch | MsgType::Unwatch => {
            let mut p = nul(path);
            p.extend(nul(&format!("tok{}", input.byte() % 3)));
            p
        }
        MsgType::TransactionStart => nul(""),
        MsgType::TransactionEnd => nul(input.pick(&["T", "F", "X"])),
        MsgType::GetDomainPath | MsgType::IsDomainIntroduced | MsgType::Release => {
            nul(input.pick(&["0", "1", "2", "3", "x"]))
        }
        MsgType::Introduce => {
            let mut p = nul(input.pick(&["1", "2", "3"]));
            p.extend(nul("4096"));
            p.extend(nul("7"));
            p
        }
        MsgType::SetTarget => {
            let mut p = nul(input.pick(&["1", "2", "3"]));
            p.extend(nul(input.pick(&["1", "2", "3"])));
            p
        }
        MsgType::Control => {
            let cmd: &[&str] = input.pick(&[
                &["check"][..],
                &["memreport"],
                &["quota", "watch-events", "4"],
                &["quota", "transaction-timeout", "1"],
                &["quota"],
            ]);
            cmd.iter().flat_map(|c| nul(c)).collect()
        }
        _ => nul(path),
    };
    Message::new(ty, req, tx, payload)
}

/// Garbage for a dirty connection: random bytes, or a frame with a
/// random header (oversize lengths included).
fn garbage(input: &mut Input<'_>) -> Vec<u8> {
    let n = usize::from(input.byte() % 48);
    let mut bytes: Vec<u8> = (0..n).map(|_| input.byte()).collect();
    if input.byte().is_multiple_of(3) {
        let len = match input.byte() % 4 {
            0 => u32::MAX,
            1 => PAYLOAD_MAX as u32 + 1,
            _ => u32::from(input.byte()),
        };
        let header = Header {
            msg_type: u32::from(input.byte() % 25),
            req_id: 1,
            tx_id: u32::from(input.byte() % 3),
            len,
        };
        let mut framed = header.encode().to_vec();
        framed.extend(bytes);
        bytes = framed;
    }
    bytes
}

struct World {
    engine: Engine,
    slots: Vec<Slot>,
    next_req: u32,
    clock: u64,
    stats: Stats,
}

/// What a run exercised (lets a driver check that the harness tests
/// something).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Replies checked on the well-behaved connections.
    pub replies: u64,
    /// Of those, `ERROR` replies.
    pub errors: u64,
    /// Watch events received, on any connection.
    pub events: u64,
    /// Transactions started.
    pub transactions: u64,
    /// Connections the store closed.
    pub closed: u64,
}

impl Stats {
    /// Adds the counts of another run.
    pub fn add(&mut self, o: Stats) {
        self.replies += o.replies;
        self.errors += o.errors;
        self.events += o.events;
        self.transactions += o.transactions;
        self.closed += o.closed;
    }
}

impl World {
    fn new() -> Self {
        let quotas = Quotas {
            nodes_per_domain: 12,
            watches_per_domain: 4,
            transactions_per_connection: 3,
            transactions_per_domain: 4,
            outstanding_requests: 6,
            queued_watch_events: 8,
            watch_events_per_domain: 10,
            queue_memory_per_domain: 12 << 10,
            node_memory_per_domain: 8 << 10,
            transaction_memory_per_domain: 6 << 10,
            transaction_nodes: 24,
            ..Quotas::default()
        };
        let mut engine = Engine::new(quotas);
        // Homes for the guests.
        let setup = engine.connect(ConnKind::privileged_socket());
        for (req, payload) in [
            (MsgType::Write, b"/local/domain/1\0".to_vec()),
            (MsgType::SetPerms, b"/local/domain/1\0n1\0r2\0".to_vec()),
            (MsgType::Write, b"/local/domain/2\0".to_vec()),
            (MsgType::SetPerms, b"/local/domain/2\0n2\0".to_vec()),
        ] {
            let msg = Message::new(req, 1, 0, payload);
            engine.feed(setup, &msg.to_bytes()).unwrap();
        }
        engine.disconnect(setup);
        let kinds = [
            (ConnKind::privileged_socket(), true),
            (ConnKind::read_only_socket(), true),
            (ConnKind::domain(1), true),
            (ConnKind::domain(2), true),
            (ConnKind::domain(0), true),
            (ConnKind::domain(1), false),
            (ConnKind::privileged_socket(), false),
        ];
        let slots = kinds
            .iter()
            .map(|&(kind, clean)| Slot {
                kind,
                clean,
                id: engine.connect(kind),
                decoder: Decoder::new(),
                expected: VecDeque::new(),
                txs: Vec::new(),
            })
            .collect();
        Self {
            engine,
            slots,
            next_req: 1,
            clock: 0,
            stats: Stats::default(),
        }
    }

    fn reconnect(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        slot.id = self.engine.connect(slot.kind);
        slot.decoder = Decoder::new();
        slot.expected.clear();
        slot.txs.clear();
    }

    /// Forgets slots whose connection the engine closed.
    fn reap(&mut self) {
        for (id, _) in self.engine.take_closed() {
            self.stats.closed += 1;
            if let Some(s) = self.slots.iter().position(|slot| slot.id == id) {
                self.reconnect(s);
            }
        }
        for s in 0..self.slots.len() {
            if self.engine.connection(self.slots[s].id).is_none() {
                self.reconnect(s);
            }
        }
    }

    /// Takes up to `n` bytes of output from slot `s` and checks them.
    fn collect(&mut self, s: usize, mut n: usize) -> Result<(), String> {
        let id = self.slots[s].id;
        while n > 0 {
            let chunk = self.engine.output(id);
            if chunk.is_empty() {
                break;
            }
            let take = chunk.len().min(n);
            let bytes = chunk[..take].to_vec();
            self.engine.consume(id, take);
            n -= take;
            let slot = &mut self.slots[s];
            let mut input = &bytes[..];
            while let Some(frame) = slot.decoder.decode(&mut input) {
                let msg = frame.map_err(|e| format!("engine sent an oversize frame {e:?}"))?;
                if msg.payload.len() > PAYLOAD_MAX || msg.header.len as usize != msg.payload.len() {
                    return Err(format!("bad frame {:?}", msg.header));
                }
                if msg.header.msg_type == MsgType::WatchEvent as u32 {
                    let parts = msg.strings().ok_or("event without NULs")?;
                    if parts.len() < 2 {
                        return Err(format!("event {parts:?}"));
                    }
                    self.stats.events += 1;
                    continue;
                }
                if !slot.clean {
                    continue;
                }
                let (req, tx, ty) = slot
                    .expected
                    .pop_front()
                    .ok_or_else(|| format!("unexpected reply {:?}", msg.header))?;
                if (msg.header.req_id, msg.header.tx_id) != (req, tx) {
                    return Err(format!("reply {:?} for request {req} tx {tx}", msg.header));
                }
                let is_error = msg.header.msg_type == MsgType::Error as u32;
                self.stats.replies += 1;
                self.stats.errors += u64::from(is_error);
                if !is_error && msg.header.msg_type != ty as u32 {
                    return Err(format!("reply type {:?} for {ty:?}", msg.header));
                }
                match ty {
                    MsgType::TransactionStart if !is_error => {
                        let text = String::from_utf8_lossy(&msg.payload);
                        let id: u32 = text.trim_end_matches('\0').parse().map_err(|_| "tx id")?;
                        slot.txs.push(id);
                        self.stats.transactions += 1;
                    }
                    MsgType::TransactionEnd => slot.txs.retain(|t| *t != tx),
                    MsgType::ResetWatches if !is_error => slot.txs.clear(),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, input: &mut Input<'_>) -> Result<(), String> {
        let s = usize::from(input.byte()) % self.slots.len();
        match input.byte() % 10 {
            0..=3 if self.slots[s].clean => {
                // One or more requests, fed in random chunks.
                let mut bytes = Vec::new();
                for _ in 0..=input.byte() % 3 {
                    let req = self.next_req;
                    self.next_req += 1;
                    let msg = request(input, &self.slots[s], req);
                    let ty = MsgType::from_u32(msg.header.msg_type).ok_or("type")?;
                    self.slots[s]
                        .expected
                        .push_back((req, msg.header.tx_id, ty));
                    bytes.extend(msg.to_bytes());
                }
                let id = self.slots[s].id;
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let n = (usize::from(input.byte()) % 64 + 1).min(rest.len());
                    if self.engine.feed(id, &rest[..n]).is_err() {
                        break;
                    }
                    rest = &rest[n..];
                }
            }
            0..=4 => {
                let bytes = if self.slots[s].clean {
                    Vec::new()
                } else {
                    garbage(input)
                };
                let _ = self.engine.feed(self.slots[s].id, &bytes);
            }
            5 => {
                let n = usize::from(input.byte()) * 7 + 1;
                self.collect(s, n)?;
            }
            6 => {
                self.engine.disconnect(self.slots[s].id);
                self.reconnect(s);
            }
            7 => {
                self.clock += u64::from(input.byte()) * 20;
                self.engine.set_time(self.clock);
            }
            _ => {
                for t in 0..self.slots.len() {
                    self.collect(t, usize::MAX)?;
                }
            }
        }
        self.reap();
        self.engine.check()
    }
}

/// Runs one program against a fresh engine; describes the first broken
/// invariant (prefixed with the step it broke at), or says what the run
/// exercised.
pub fn run(program: &[u8]) -> Result<Stats, String> {
    let mut world = World::new();
    let mut input = Input {
        bytes: program,
        at: 0,
    };
    let mut steps = 0;
    while !input.done() {
        world
            .step(&mut input)
            .map_err(|e| format!("step {steps}: {e}"))?;
        steps += 1;
    }
    // Everything still queued frames correctly and answers every request.
    for s in 0..world.slots.len() {
        world.collect(s, usize::MAX)?;
        let slot = &world.slots[s];
        if slot.clean && !slot.expected.is_empty() {
            return Err(format!(
                "slot {s}: {} requests never answered",
                slot.expected.len()
            ));
        }
    }
    world.engine.check()?;
    Ok(world.stats)
}
