//! A tiny in-process client for driving the engine in tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};

use oxen_xenstore::wire::{Decoder, Message, MsgType};
use oxen_xenstore::{ConnId, ConnKind, Engine, Quotas};

/// A reply: `Ok(payload)` or `Err(error string)`.
pub type Reply = Result<Vec<u8>, String>;

pub struct Harness {
    pub engine: Engine,
    decoders: BTreeMap<ConnId, Decoder>,
    replies: BTreeMap<ConnId, VecDeque<Message>>,
    events: BTreeMap<ConnId, VecDeque<(String, String)>>,
    next_req: u32,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_quotas(Quotas::default())
    }

    pub fn with_quotas(quotas: Quotas) -> Self {
        Self {
            engine: Engine::new(quotas),
            decoders: BTreeMap::new(),
            replies: BTreeMap::new(),
            events: BTreeMap::new(),
            next_req: 1,
        }
    }

    pub fn connect(&mut self, kind: ConnKind) -> ConnId {
        let id = self.engine.connect(kind);
        self.decoders.insert(id, Decoder::new());
        id
    }

    pub fn dom0(&mut self) -> ConnId {
        self.connect(ConnKind::privileged_socket())
    }

    pub fn domu(&mut self, domid: u32) -> ConnId {
        self.connect(ConnKind::domain(domid))
    }

    /// Collects everything queued for `id` into replies and events.
    pub fn pump(&mut self, id: ConnId) {
        let bytes = self.engine.drain_output(id);
        let decoder = self.decoders.get_mut(&id).expect("known connection");
        let mut input = &bytes[..];
        while let Some(frame) = decoder.decode(&mut input) {
            let msg = frame.expect("engine never sends oversized messages");
            if msg.header.msg_type == MsgType::WatchEvent as u32 {
                let parts = msg.strings().expect("event payload is NUL-terminated");
                assert_eq!(parts.len(), 2, "event is path and token");
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                self.events
                    .entry(id)
                    .or_default()
                    .push_back((text(parts[0]), text(parts[1])));
            } else {
                self.replies.entry(id).or_default().push_back(msg);
            }
        }
    }

    /// Sends raw bytes and returns the next reply message.
    pub fn raw(&mut self, id: ConnId, bytes: &[u8]) -> Message {
        self.engine.feed(id, bytes).expect("connection open");
        self.pump(id);
        self.replies
            .get_mut(&id)
            .and_then(VecDeque::pop_front)
            .expect("a reply was queued")
    }

    /// Sends one request and returns its reply.
    pub fn request(&mut self, id: ConnId, ty: MsgType, tx: u32, payload: &[u8]) -> Reply {
        let req = self.next_req;
        self.next_req += 1;
        let msg = Message::new(ty, req, tx, payload.to_vec());
        let reply = self.raw(id, &msg.to_bytes());
        assert_eq!(reply.header.req_id, req, "reply echoes req_id");
        assert_eq!(reply.header.tx_id, tx, "reply echoes tx_id");
        if reply.header.msg_type == MsgType::Error as u32 {
            let text = reply
                .payload
                .strip_suffix(b"\0")
                .expect("error string NUL-terminated");
            Err(String::from_utf8(text.to_vec()).unwrap())
        } else {
            assert_eq!(
                reply.header.msg_type, ty as u32,
                "reply type matches request"
            );
            Ok(reply.payload)
        }
    }

    pub fn events(&mut self, id: ConnId) -> Vec<(String, String)> {
        self.pump(id);
        self.events
            .get_mut(&id)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    // Convenience wrappers; `tx` 0 means outside a transaction.

    pub fn read(&mut self, id: ConnId, tx: u32, path: &str) -> Reply {
        self.request(id, MsgType::Read, tx, &nul(path))
    }

    pub fn write(&mut self, id: ConnId, tx: u32, path: &str, value: &str) -> Reply {
        let mut payload = nul(path);
        payload.extend_from_slice(value.as_bytes());
        self.request(id, MsgType::Write, tx, &payload)
    }

    pub fn mkdir(&mut self, id: ConnId, tx: u32, path: &str) -> Reply {
        self.request(id, MsgType::Mkdir, tx, &nul(path))
    }

    pub fn rm(&mut self, id: ConnId, tx: u32, path: &str) -> Reply {
        self.request(id, MsgType::Rm, tx, &nul(path))
    }

    pub fn dir(&mut self, id: ConnId, tx: u32, path: &str) -> Reply {
        self.request(id, MsgType::Directory, tx, &nul(path))
    }

    pub fn get_perms(&mut self, id: ConnId, tx: u32, path: &str) -> Reply {
        self.request(id, MsgType::GetPerms, tx, &nul(path))
    }

    pub fn set_perms(&mut self, id: ConnId, tx: u32, path: &str, perms: &[&str]) -> Reply {
        let mut payload = nul(path);
        for p in perms {
            payload.extend(nul(p));
        }
        self.request(id, MsgType::SetPerms, tx, &payload)
    }

    pub fn watch(&mut self, id: ConnId, path: &str, token: &str) -> Reply {
        let mut payload = nul(path);
        payload.extend(nul(token));
        self.request(id, MsgType::Watch, 0, &payload)
    }

    pub fn unwatch(&mut self, id: ConnId, path: &str, token: &str) -> Reply {
        let mut payload = nul(path);
        payload.extend(nul(token));
        self.request(id, MsgType::Unwatch, 0, &payload)
    }

    /// Starts a transaction and returns its id.
    pub fn start(&mut self, id: ConnId) -> u32 {
        let reply = self
            .request(id, MsgType::TransactionStart, 0, b"\0")
            .expect("tx start");
        std::str::from_utf8(reply.strip_suffix(b"\0").unwrap())
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn end(&mut self, id: ConnId, tx: u32, commit: bool) -> Reply {
        self.request(
            id,
            MsgType::TransactionEnd,
            tx,
            if commit { b"T\0" } else { b"F\0" },
        )
    }
}

pub fn nul(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

pub fn ok() -> Reply {
    Ok(b"OK\0".to_vec())
}

pub fn val(s: &str) -> Reply {
    Ok(s.as_bytes().to_vec())
}

pub fn err(e: &str) -> Reply {
    Err(e.to_string())
}

/// Builds a NUL-separated list reply, e.g. for DIRECTORY or GET_PERMS.
pub fn list(items: &[&str]) -> Reply {
    Ok(items.iter().flat_map(|i| nul(i)).collect())
}
