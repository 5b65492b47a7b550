//! Per-domain accounting of what connections make the store hold.
//!
//! Nodes are accounted by the tree (per owner, see
//! [`Owned`](crate::tree::Owned)). Everything else a domain makes the store
//! hold lives in its connections: watches, queued replies and watch
//! events, open transactions and their records. Each connection can say
//! what it holds ([`Usage`]) in O(1); the engine keeps, per domain, the sum
//! over its connections, updated whenever a connection changes
//! ([`Accounts::settle`]), so per-domain quotas are checked without
//! visiting other connections.

use alloc::collections::BTreeMap;

use crate::DomId;

/// What one connection, or one domain's connections together, hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Registered watches.
    pub watches: usize,
    /// Bytes of their paths and tokens.
    pub watch_bytes: usize,
    /// Watch events queued, not yet sent.
    pub queued_events: usize,
    /// Replies queued, not yet sent (outstanding requests).
    pub queued_replies: usize,
    /// Bytes of queued events and replies.
    pub queued_bytes: usize,
    /// Open transactions (running, or ended by the store and not yet by
    /// the client).
    pub transactions: usize,
    /// Bytes their read sets, listings and changes hold.
    pub transaction_bytes: usize,
}

impl Usage {
    /// Bytes held, all kinds together.
    pub fn bytes(&self) -> usize {
        self.watch_bytes + self.queued_bytes + self.transaction_bytes
    }

    pub(crate) fn add(&mut self, other: &Self) {
        self.watches += other.watches;
        self.watch_bytes += other.watch_bytes;
        self.queued_events += other.queued_events;
        self.queued_replies += other.queued_replies;
        self.queued_bytes += other.queued_bytes;
        self.transactions += other.transactions;
        self.transaction_bytes += other.transaction_bytes;
    }

    fn sub(&mut self, other: &Self) {
        self.watches -= other.watches;
        self.watch_bytes -= other.watch_bytes;
        self.queued_events -= other.queued_events;
        self.queued_replies -= other.queued_replies;
        self.queued_bytes -= other.queued_bytes;
        self.transactions -= other.transactions;
        self.transaction_bytes -= other.transaction_bytes;
    }
}

/// Per-domain sums of connection usage.
#[derive(Debug, Default)]
pub struct Accounts {
    domains: BTreeMap<DomId, Usage>,
}

impl Accounts {
    /// What `domid`'s connections hold together.
    pub fn get(&self, domid: DomId) -> Usage {
        self.domains.get(&domid).copied().unwrap_or_default()
    }

    /// Every domain holding something, with its sums.
    pub fn iter(&self) -> impl Iterator<Item = (DomId, &Usage)> {
        self.domains.iter().map(|(d, u)| (*d, u))
    }

    /// Replaces a connection's contribution to `domid`'s sum: `accounted`
    /// (what was counted so far) becomes `now`.
    pub fn settle(&mut self, domid: DomId, accounted: &mut Usage, now: Usage) {
        if *accounted == now {
            return;
        }
        let sum = self.domains.entry(domid).or_default();
        sum.sub(accounted);
        sum.add(&now);
        *accounted = now;
        if *sum == Usage::default() {
            self.domains.remove(&domid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_replaces_a_contribution() {
        let mut a = Accounts::default();
        let (mut c1, mut c2) = (Usage::default(), Usage::default());
        let one = Usage {
            watches: 1,
            watch_bytes: 10,
            ..Usage::default()
        };
        a.settle(3, &mut c1, one);
        a.settle(3, &mut c2, one);
        assert_eq!(a.get(3).watches, 2);
        a.settle(3, &mut c1, Usage::default());
        assert_eq!(a.get(3), one);
        a.settle(3, &mut c2, Usage::default());
        assert!(a.domains.is_empty());
        assert_eq!(one.bytes(), 10);
    }
}
