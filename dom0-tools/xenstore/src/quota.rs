//! Configurable quotas, with Xen-like defaults.
//!
//! Quotas bound what one caller can make the store hold or do. Exceeding one
//! only ever fails that caller's request. Node, value-size, watch and
//! permission-count, outstanding-request, per-domain transaction and
//! transaction-size quotas apply to unprivileged domains only (dom0's
//! toolstack is trusted, as in Xen); the per-connection transaction,
//! transaction age and watch-event limits apply to every connection.

use alloc::format;
use alloc::string::String;

use crate::error::{XsError, XsResult};

/// Quota settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes a domain may own (`ENOSPC` beyond).
    pub nodes_per_domain: usize,
    /// Largest value, in bytes, a domain may write (`ENOSPC` beyond).
    pub value_size: usize,
    /// Watches a domain may hold across its connections (`E2BIG` beyond).
    pub watches_per_domain: usize,
    /// Open transactions per connection (`ENOSPC` beyond).
    pub transactions_per_connection: usize,
    /// Replies an unprivileged domain may have queued (all its connections
    /// together) and not yet collected by its transport before further
    /// requests fail with `EQUOTA`. (Transports should also stop reading from any connection,
    /// privileged or not, that has this many replies queued.)
    pub outstanding_requests: usize,
    /// Watch events queued for a connection; further events are dropped.
    pub queued_watch_events: usize,
    /// Entries in one permission list (`ENOSPC` beyond).
    pub perms_per_node: usize,
    /// Nodes one transaction may access; once reached, further requests in
    /// that transaction fail with `ENOSPC`.
    pub transaction_nodes: usize,
    /// Open transactions per unprivileged domain, all its connections
    /// together (`ENOSPC` beyond).
    pub transactions_per_domain: usize,
    /// Age limit of a transaction, in seconds; 0 (the default, as in Xen)
    /// means none. An older transaction is ended by the store: its state is
    /// dropped and every later request in it, its commit included, fails
    /// with `EAGAIN` (an abort answers `OK`). Applies to every connection.
    pub transaction_timeout_secs: usize,
    /// Bytes of node data (paths, values, permissions, bookkeeping) an
    /// unprivileged domain may own (`ENOMEM` beyond).
    pub node_memory_per_domain: usize,
    /// Watch events queued for an unprivileged domain, all its connections
    /// together; beyond, the receiving connection's oldest are dropped.
    pub watch_events_per_domain: usize,
    /// Bytes of replies and watch events queued for an unprivileged domain,
    /// all its connections together; beyond, events are dropped as above.
    pub queue_memory_per_domain: usize,
    /// Bytes the open transactions of an unprivileged domain may hold
    /// (read sets, listings, changes); once reached, further requests in
    /// its transactions fail with `ENOMEM`.
    pub transaction_memory_per_domain: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            nodes_per_domain: 1000,
            value_size: 2048,
            watches_per_domain: 128,
            transactions_per_connection: 10,
            outstanding_requests: 20,
            queued_watch_events: 1024,
            perms_per_node: 5,
            transaction_nodes: 1024,
            transactions_per_domain: 10,
            transaction_timeout_secs: 0,
            node_memory_per_domain: 2 << 20,
            watch_events_per_domain: 1024,
            queue_memory_per_domain: 1 << 20,
            transaction_memory_per_domain: 1 << 20,
        }
    }
}

/// Names accepted by [`Quotas::set`], in display order.
pub const NAMES: [&str; 14] = [
    "nodes",
    "value-size",
    "watches",
    "transactions",
    "outstanding",
    "watch-events",
    "perms",
    "transaction-nodes",
    "domain-transactions",
    "transaction-timeout",
    "node-memory",
    "domain-watch-events",
    "queue-memory",
    "transaction-memory",
];

impl Quotas {
    fn slot(&mut self, name: &str) -> XsResult<&mut usize> {
        Ok(match name {
            "nodes" => &mut self.nodes_per_domain,
            "value-size" => &mut self.value_size,
            "watches" => &mut self.watches_per_domain,
            "transactions" => &mut self.transactions_per_connection,
            "outstanding" => &mut self.outstanding_requests,
            "watch-events" => &mut self.queued_watch_events,
            "perms" => &mut self.perms_per_node,
            "transaction-nodes" => &mut self.transaction_nodes,
            "domain-transactions" => &mut self.transactions_per_domain,
            "transaction-timeout" => &mut self.transaction_timeout_secs,
            "node-memory" => &mut self.node_memory_per_domain,
            "domain-watch-events" => &mut self.watch_events_per_domain,
            "queue-memory" => &mut self.queue_memory_per_domain,
            "transaction-memory" => &mut self.transaction_memory_per_domain,
            _ => return Err(XsError::Inval),
        })
    }

    /// Changes the quota called `name` (see [`NAMES`]).
    pub fn set(&mut self, name: &str, value: usize) -> XsResult<()> {
        *self.slot(name)? = value;
        Ok(())
    }

    /// The quota called `name`.
    pub fn get(&self, name: &str) -> XsResult<usize> {
        let mut copy = *self;
        copy.slot(name).map(|v| *v)
    }

    /// One `name value` line per quota.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for name in NAMES {
            // Every name in NAMES is valid.
            let value = self.get(name).unwrap_or(0);
            text.push_str(&format!("{name} {value}\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get() {
        let mut q = Quotas::default();
        assert_eq!(q.get("nodes"), Ok(1000));
        q.set("nodes", 5).unwrap();
        assert_eq!(q.nodes_per_domain, 5);
        assert_eq!(q.set("bogus", 1), Err(XsError::Inval));
        assert!(q.describe().contains("nodes 5\n"));
    }
}
