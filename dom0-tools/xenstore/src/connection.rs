//! Per-connection state, independent of any transport.
//!
//! A transport adapter (a Unix socket today, a shared-memory ring in dom0
//! later) only moves bytes: it hands what it received to
//! [`Engine::feed`](crate::Engine::feed) and writes out what
//! [`Engine::output`](crate::Engine::output) returns. Everything else —
//! framing, the queue of replies and watch events, watches and open
//! transactions — lives here.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::DomId;
use crate::ops::DirCursor;
use crate::transaction::Transaction;
use crate::watch::Watch;
use crate::wire::Decoder;

/// Identifies a connection within an [`Engine`](crate::Engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// What a connection is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKind {
    /// The domain on the other end.
    pub domid: DomId,
    /// Bypasses permission checks and may manage domains.
    pub privileged: bool,
    /// Write requests fail with `EROFS`.
    pub read_only: bool,
}

impl ConnKind {
    /// dom0's toolstack on the main socket.
    pub const fn privileged_socket() -> Self {
        Self {
            domid: 0,
            privileged: true,
            read_only: false,
        }
    }

    /// dom0 on the read-only socket: may read everything, write nothing.
    pub const fn read_only_socket() -> Self {
        Self {
            domid: 0,
            privileged: true,
            read_only: true,
        }
    }

    /// A guest's ring; dom0's own ring is privileged.
    pub const fn domain(domid: DomId) -> Self {
        Self {
            domid,
            privileged: domid == 0,
            read_only: false,
        }
    }
}

/// Why the engine closed a connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A header announced a payload longer than
    /// [`PAYLOAD_MAX`](crate::wire::PAYLOAD_MAX) bytes (`len`): the stream
    /// cannot be trusted to be in step any more.
    Oversized {
        /// The announced payload length.
        len: u32,
    },
    /// The connection's domain was released.
    Released,
}

impl core::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Oversized { len } => write!(
                f,
                "header announces a {len}-byte payload (limit {})",
                crate::wire::PAYLOAD_MAX
            ),
            Self::Released => f.write_str("its domain was released"),
        }
    }
}

/// A transaction id's state on its connection.
#[derive(Debug)]
pub(crate) enum TxSlot {
    /// Running: its private view of the tree.
    Open(Transaction),
    /// Ended by the store (too old): its state is gone; requests in it fail
    /// with `EAGAIN` until the client ends it.
    Expired,
}

/// One queued outgoing message.
#[derive(Debug)]
struct Outgoing {
    bytes: Vec<u8>,
    is_event: bool,
}

/// A connection's state.
#[derive(Debug)]
pub struct Connection {
    /// What the connection may do.
    pub kind: ConnKind,
    pub(crate) decoder: Decoder,
    outbox: VecDeque<Outgoing>,
    sent: usize,
    queued_replies: usize,
    queued_events: usize,
    dropped_events: u64,
    pub(crate) watches: Vec<Watch>,
    pub(crate) transactions: BTreeMap<u32, TxSlot>,
    next_tx: u32,
    /// Where the last `DIRECTORY_PART` ended, and in which transaction.
    pub(crate) dir_cursor: Option<(u32, DirCursor)>,
}

impl Connection {
    pub(crate) fn new(kind: ConnKind) -> Self {
        Self {
            kind,
            decoder: Decoder::new(),
            outbox: VecDeque::new(),
            sent: 0,
            queued_replies: 0,
            queued_events: 0,
            dropped_events: 0,
            watches: Vec::new(),
            transactions: BTreeMap::new(),
            next_tx: 1,
            dir_cursor: None,
        }
    }

    /// Bytes waiting to be sent (a prefix of the queue; call again after
    /// [`consume`](Self::consume) for more). Empty when nothing is queued.
    pub fn output(&self) -> &[u8] {
        self.outbox.front().map_or(&[], |m| &m.bytes[self.sent..])
    }

    /// Marks the first `n` bytes of [`output`](Self::output) as sent.
    pub fn consume(&mut self, n: usize) {
        self.sent += n;
        while let Some(front) = self.outbox.front() {
            if self.sent < front.bytes.len() {
                break;
            }
            self.sent -= front.bytes.len();
            if front.is_event {
                self.queued_events -= 1;
            } else {
                self.queued_replies -= 1;
            }
            self.outbox.pop_front();
        }
    }

    /// Whether anything is waiting to be sent.
    pub fn has_output(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Replies queued and not yet fully sent.
    pub fn queued_replies(&self) -> usize {
        self.queued_replies
    }

    /// Watch events dropped because the event queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Registered watches.
    pub fn watches(&self) -> &[Watch] {
        &self.watches
    }

    /// Number of open transactions.
    pub fn open_transactions(&self) -> usize {
        self.transactions.len()
    }

    pub(crate) fn push_reply(&mut self, bytes: Vec<u8>) {
        self.queued_replies += 1;
        self.outbox.push_back(Outgoing {
            bytes,
            is_event: false,
        });
    }

    /// Queues an event unless `limit` events are already queued.
    pub(crate) fn push_event(&mut self, bytes: Vec<u8>, limit: usize) {
        if self.queued_events >= limit {
            self.dropped_events += 1;
            return;
        }
        self.queued_events += 1;
        self.outbox.push_back(Outgoing {
            bytes,
            is_event: true,
        });
    }

    /// A fresh, unused, non-zero transaction id.
    pub(crate) fn allocate_tx_id(&mut self) -> u32 {
        loop {
            let id = self.next_tx;
            self.next_tx = self.next_tx.wrapping_add(1).max(1);
            if !self.transactions.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sends_and_counts() {
        let mut c = Connection::new(ConnKind::privileged_socket());
        c.push_reply(b"abc".to_vec());
        c.push_event(b"de".to_vec(), 1);
        c.push_event(b"zz".to_vec(), 1);
        assert_eq!(c.dropped_events(), 1);
        assert_eq!(c.output(), b"abc");
        c.consume(2);
        assert_eq!(c.output(), b"c");
        assert_eq!(c.queued_replies(), 1);
        c.consume(1);
        assert_eq!(c.queued_replies(), 0);
        assert_eq!(c.output(), b"de");
        c.consume(2);
        assert!(!c.has_output());
        assert_eq!(c.allocate_tx_id(), 1);
    }
}
