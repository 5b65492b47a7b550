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

use alloc::string::String;

use crate::DomId;
use crate::account::Usage;
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
    /// An unprivileged connection kept sending requests while it had
    /// `queue-memory` bytes of replies and events queued: its transport
    /// ignores backpressure.
    QueueFull,
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
            Self::QueueFull => {
                f.write_str("it keeps sending requests with queue-memory bytes of unread output")
            }
        }
    }
}

/// Bytes a watch makes the store hold.
fn watch_cost(watch: &Watch) -> usize {
    WATCH_OVERHEAD
        + watch.path.len()
        + watch.token.len()
        + watch.home.as_ref().map_or(0, String::len)
}

/// Fixed bookkeeping cost counted per watch.
const WATCH_OVERHEAD: usize = 48;

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
    queued_bytes: usize,
    dropped_events: u64,
    watches: Vec<Watch>,
    watch_bytes: usize,
    /// What the engine has counted for this connection in its domain's sum.
    pub(crate) accounted: Usage,
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
            queued_bytes: 0,
            dropped_events: 0,
            watches: Vec::new(),
            watch_bytes: 0,
            accounted: Usage::default(),
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
            self.unqueue(0);
        }
    }

    /// Forgets the queued message at `index`.
    fn unqueue(&mut self, index: usize) {
        if let Some(gone) = self.outbox.remove(index) {
            self.queued_bytes -= gone.bytes.len();
            if gone.is_event {
                self.queued_events -= 1;
            } else {
                self.queued_replies -= 1;
            }
        }
    }

    /// Drops the oldest queued watch event that has not started to go out.
    /// Returns `false` if there is none.
    pub(crate) fn drop_oldest_event(&mut self) -> bool {
        let skip = usize::from(self.sent > 0);
        let Some(index) = self
            .outbox
            .iter()
            .skip(skip)
            .position(|m| m.is_event)
            .map(|i| i + skip)
        else {
            return false;
        };
        self.unqueue(index);
        self.dropped_events += 1;
        true
    }

    /// Counts an event that was not queued at all.
    pub(crate) fn refuse_event(&mut self) {
        self.dropped_events += 1;
    }

    /// Watch events queued and not yet fully sent.
    pub fn queued_events(&self) -> usize {
        self.queued_events
    }

    /// What the connection makes the store hold.
    pub fn usage(&self) -> Usage {
        let (mut transactions, mut transaction_bytes) = (0, 0);
        for slot in self.transactions.values() {
            transactions += 1;
            if let TxSlot::Open(tx) = slot {
                transaction_bytes += tx.bytes();
            }
        }
        Usage {
            watches: self.watches.len(),
            watch_bytes: self.watch_bytes,
            queued_events: self.queued_events,
            queued_replies: self.queued_replies,
            queued_bytes: self.queued_bytes,
            transactions,
            transaction_bytes,
        }
    }

    /// Registers a watch.
    pub(crate) fn add_watch(&mut self, watch: Watch) {
        self.watch_bytes += watch_cost(&watch);
        self.watches.push(watch);
    }

    /// Removes the watch at `index`.
    pub(crate) fn remove_watch(&mut self, index: usize) {
        let watch = self.watches.remove(index);
        self.watch_bytes -= watch_cost(&watch);
    }

    /// Removes every watch.
    pub(crate) fn clear_watches(&mut self) {
        self.watches.clear();
        self.watch_bytes = 0;
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
        self.queued_bytes += bytes.len();
        self.outbox.push_back(Outgoing {
            bytes,
            is_event: false,
        });
    }

    /// Queues an event; with `limit` events already queued, the oldest
    /// one not yet going out is dropped first (or, if there is none, this
    /// one).
    pub(crate) fn push_event(&mut self, bytes: Vec<u8>, limit: usize) {
        while self.queued_events >= limit {
            if !self.drop_oldest_event() {
                self.dropped_events += 1;
                return;
            }
        }
        self.queued_events += 1;
        self.queued_bytes += bytes.len();
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
        c.push_event(b"xx".to_vec(), 1);
        c.push_event(b"de".to_vec(), 1);
        assert_eq!(c.dropped_events(), 1, "the oldest event went");
        assert_eq!(c.usage().queued_bytes, 5);
        assert_eq!(c.output(), b"abc");
        c.consume(2);
        assert_eq!(c.output(), b"c");
        assert_eq!(c.queued_replies(), 1);
        c.consume(1);
        assert_eq!(c.queued_replies(), 0);
        assert_eq!(c.output(), b"de");
        c.consume(1);
        c.push_event(b"zz".to_vec(), 1);
        assert_eq!(c.output(), b"e", "an event going out is never dropped");
        assert_eq!(c.dropped_events(), 2, "so the new one is");
        c.consume(1);
        assert!(!c.has_output());
        assert_eq!(c.usage(), Usage::default());
        assert_eq!(c.allocate_tx_id(), 1);
    }
}
