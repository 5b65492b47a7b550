//! What one load-generating client does, independent of the transport: the
//! next request to send, and whether a reply is the right one.
//!
//! Every reply is checked, so a run also proves the store answered
//! correctly: reads return what the client wrote, listings list what it
//! made, and transactions on one shared counter never lose an increment
//! (each commit adds one to the value its transaction read; a conflicting
//! commit must fail with `EAGAIN` and change nothing).

use oxen_xenstore::wire::{Message, MsgType};

/// The operations a client repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `READ` of the client's own node.
    Read,
    /// `WRITE` of the client's own node.
    Write,
    /// `DIRECTORY` of the client's own directory of [`DIR_ENTRIES`] nodes.
    Directory,
    /// A transaction reading and incrementing the client's own counter.
    TxOwn,
    /// A transaction reading and incrementing one counter all clients share.
    TxShared,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Read, Op::Write, Op::Directory, Op::TxOwn, Op::TxShared];

    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Directory => "directory",
            Op::TxOwn => "tx-own",
            Op::TxShared => "tx-shared",
        }
    }

    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Nodes in each client's directory.
pub const DIR_ENTRIES: usize = 10;
/// The counter every `TxShared` client increments.
pub const SHARED: &str = "/bench/shared";

/// NUL-terminated strings, concatenated: a request's payload.
pub fn payload(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// `path` and `value` as a `WRITE` payload (the value is not NUL-terminated).
pub fn write_payload(path: &str, value: &str) -> Vec<u8> {
    let mut out = payload(&[path]);
    out.extend_from_slice(value.as_bytes());
    out
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Between operations.
    Idle,
    /// `TRANSACTION_START` sent.
    Starting,
    /// The counter's `READ` sent inside transaction `tx`.
    Reading { tx: u32 },
    /// `WRITE` of `value` sent inside `tx`.
    Writing { tx: u32, value: u64 },
    /// `TRANSACTION_END` sent for a transaction that wrote `value`.
    Ending { value: u64 },
}

/// One client's state.
pub struct Client {
    op: Op,
    node: String,
    dir: String,
    step: Step,
    next_req: u32,
    /// The request in flight: its id and type.
    sent: Option<(u32, MsgType)>,
    /// The value this client last wrote (or committed) to its own node.
    own_value: u64,
    /// Operations completed (transactions committed).
    pub done: u64,
    /// Commits that failed with `EAGAIN` (then retried).
    pub conflicts: u64,
}

impl Client {
    pub fn new(op: Op, index: usize) -> Self {
        Self {
            op,
            node: format!("/bench/c{index}/node"),
            dir: format!("/bench/c{index}/dir"),
            step: Step::Idle,
            next_req: 1,
            sent: None,
            own_value: 0,
            done: 0,
            conflicts: 0,
        }
    }

    /// The requests that make this client's nodes (send them one by one and
    /// check each reply is `OK`). Client 0 also resets the shared counter.
    pub fn setup(&self, index: usize) -> Vec<Message> {
        let mut writes = vec![write_payload(&self.node, "0")];
        writes.extend((0..DIR_ENTRIES).map(|e| write_payload(&format!("{}/e{e}", self.dir), "")));
        if index == 0 {
            writes.push(write_payload(SHARED, "0"));
        }
        writes
            .into_iter()
            .map(|p| Message::new(MsgType::Write, 0, 0, p))
            .collect()
    }

    /// The node a transaction of this client increments.
    fn counter(&self) -> String {
        if self.op == Op::TxShared {
            SHARED.to_string()
        } else {
            self.node.clone()
        }
    }

    /// Builds a request and remembers it as the one in flight.
    fn send(&mut self, ty: MsgType, tx: u32, body: Vec<u8>, step: Step) -> Message {
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        self.sent = Some((req, ty));
        self.step = step;
        Message::new(ty, req, tx, body)
    }

    /// The first request of the next operation. Call it only when no request
    /// is in flight, that is after `on_reply` returned `None`.
    pub fn next_request(&mut self) -> Message {
        match self.op {
            Op::Read => {
                let body = payload(&[&self.node]);
                self.send(MsgType::Read, 0, body, Step::Idle)
            }
            Op::Write => {
                let body = write_payload(&self.node, &(self.own_value + 1).to_string());
                self.send(MsgType::Write, 0, body, Step::Idle)
            }
            Op::Directory => {
                let body = payload(&[&self.dir]);
                self.send(MsgType::Directory, 0, body, Step::Idle)
            }
            Op::TxOwn | Op::TxShared => {
                self.send(MsgType::TransactionStart, 0, payload(&[""]), Step::Starting)
            }
        }
    }

    /// Checks the reply to the request in flight. Returns the next request
    /// of the same operation (inside a transaction), or `None` once the
    /// operation is complete.
    pub fn on_reply(&mut self, reply: &Message) -> Result<Option<Message>, String> {
        let (req, ty) = self
            .sent
            .take()
            .ok_or("a reply with no request in flight")?;
        if reply.header.req_id != req {
            return Err(format!(
                "reply to request {} while {req} was in flight",
                reply.header.req_id
            ));
        }
        let text = String::from_utf8_lossy(&reply.payload).into_owned();
        if reply.header.msg_type == MsgType::Error as u32 {
            let conflict = ty == MsgType::TransactionEnd && text == "EAGAIN\0";
            if !(conflict && self.op == Op::TxShared) {
                return Err(format!("{} {ty:?}: error {text:?}", self.op.name()));
            }
            self.conflicts += 1;
            self.step = Step::Idle;
            return Ok(None);
        }
        if reply.header.msg_type != ty as u32 {
            return Err(format!(
                "{ty:?} answered with type {}",
                reply.header.msg_type
            ));
        }
        let ok = || {
            if text == "OK\0" {
                Ok(())
            } else {
                Err(format!("{ty:?} answered {text:?}"))
            }
        };
        match self.step {
            Step::Idle => match self.op {
                Op::Read if text != self.own_value.to_string() => {
                    return Err(format!("read {text:?}, expected {}", self.own_value));
                }
                Op::Directory => {
                    let names = reply.strings().ok_or("listing not NUL-terminated")?;
                    let all = (0..DIR_ENTRIES).all(|e| names.contains(&format!("e{e}").as_bytes()));
                    if names.len() != DIR_ENTRIES || !all {
                        return Err(format!("listing of {}: {} names", self.dir, names.len()));
                    }
                }
                Op::Write => {
                    ok()?;
                    self.own_value += 1;
                }
                _ => {}
            },
            Step::Starting => {
                let tx = text
                    .strip_suffix('\0')
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or("TRANSACTION_START gave no id")?;
                let body = payload(&[&self.counter()]);
                return Ok(Some(self.send(
                    MsgType::Read,
                    tx,
                    body,
                    Step::Reading { tx },
                )));
            }
            Step::Reading { tx } => {
                let value: u64 = text.parse().map_err(|_| "the counter is not a number")?;
                if self.op == Op::TxOwn && value != self.own_value {
                    return Err(format!(
                        "own counter read {value}, expected {}",
                        self.own_value
                    ));
                }
                let body = write_payload(&self.counter(), &(value + 1).to_string());
                let step = Step::Writing {
                    tx,
                    value: value + 1,
                };
                return Ok(Some(self.send(MsgType::Write, tx, body, step)));
            }
            Step::Writing { tx, value } => {
                ok()?;
                let body = payload(&["T"]);
                let step = Step::Ending { value };
                return Ok(Some(self.send(MsgType::TransactionEnd, tx, body, step)));
            }
            Step::Ending { value } => {
                ok()?;
                self.step = Step::Idle;
                if self.op == Op::TxOwn {
                    self.own_value = value;
                }
            }
        }
        self.done += 1;
        Ok(None)
    }

    /// The node this client alone changes and the value it must hold once
    /// every client has stopped.
    pub fn final_value(&self) -> Option<(String, u64)> {
        match self.op {
            Op::Write | Op::TxOwn => Some((self.node.clone(), self.own_value)),
            _ => None,
        }
    }
}
