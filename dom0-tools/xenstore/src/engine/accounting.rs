//! Per-domain accounting, watch-event delivery within the queue quotas, and
//! the engine's invariant check.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Engine;
use crate::DomId;
use crate::account::Usage;
use crate::connection::{ConnId, TxSlot};
use crate::perms::Caller;
use crate::tree::Owned;
use crate::watch::{Fired, WatchIndex};
use crate::wire::{Message, MsgType, PAYLOAD_MAX};

impl Engine {
    /// Brings connection `id`'s contribution to its domain's account up to
    /// date.
    pub(super) fn settle(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            let now = conn.usage();
            self.accounts
                .settle(conn.kind.domid, &mut conn.accounted, now);
        }
    }

    /// What domain `domid` makes the store hold: the nodes it owns, and
    /// what its connections hold (watches, queues, transactions).
    pub fn usage(&self, domid: DomId) -> (Owned, Usage) {
        (self.tree.owned_by(domid), self.accounts.get(domid))
    }

    /// Queues one watch event for `id`, within the per-connection limit
    /// and, for unprivileged domains, the per-domain ones: the oldest
    /// events of the receiving connection make room, or else the new event
    /// is dropped.
    pub(super) fn queue_event(&mut self, id: ConnId, payload: Vec<u8>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let bytes = Message::new(MsgType::WatchEvent, 0, 0, payload).to_bytes();
        let domid = conn.kind.domid;
        let mut refused = false;
        while !conn.kind.privileged {
            let held = self.accounts.get(domid);
            let over = held.queued_events >= self.quotas.watch_events_per_domain
                || held.queued_bytes + bytes.len() > self.quotas.queue_memory_per_domain;
            if !over {
                break;
            }
            if !conn.drop_oldest_event() {
                refused = true;
                break;
            }
            let now = conn.usage();
            self.accounts.settle(domid, &mut conn.accounted, now);
        }
        if refused {
            conn.refuse_event();
        } else {
            conn.push_event(bytes, self.quotas.queued_watch_events);
            self.dirty.insert(id);
        }
        let now = conn.usage();
        self.accounts.settle(domid, &mut conn.accounted, now);
    }

    /// Queues watch events for `fired` to every connection entitled to them.
    pub(super) fn fire(&mut self, fired: &[Fired]) {
        for f in fired {
            let mut deliveries = Vec::new();
            for id in &self.watching.candidates(f) {
                let Some(conn) = self.conns.get(id) else {
                    continue;
                };
                let caller = Caller {
                    domid: conn.kind.domid,
                    privileged: conn.kind.privileged,
                    target: self.domains.target_of(conn.kind.domid),
                };
                if !f.perms.iter().any(|p| caller.can_read(p)) {
                    continue;
                }
                deliveries.extend(
                    conn.watches()
                        .iter()
                        .filter_map(|w| w.event_path(f).map(|p| w.event_payload(p)))
                        .filter(|payload| payload.len() <= PAYLOAD_MAX)
                        .map(|payload| (*id, payload)),
                );
            }
            for (id, payload) in deliveries {
                self.queue_event(id, payload);
            }
        }
    }

    /// Checks the engine's invariants (the tree's, see [`Tree::check`](crate::tree::Tree::check);
    /// every connection's usage is what its domain's account counts; the
    /// index of watches and of running transactions match the
    /// connections). Describes the first violation. O(size of the store):
    /// for tests, fuzzing and `CONTROL check` (which answers `EIO` if it
    /// fails).
    pub fn check(&self) -> Result<(), String> {
        self.tree.check()?;
        let mut sums: BTreeMap<DomId, Usage> = BTreeMap::new();
        let mut running = BTreeSet::new();
        let mut index = WatchIndex::default();
        for (id, conn) in &self.conns {
            let usage = conn.usage();
            if conn.accounted != usage {
                return Err(format!(
                    "connection {} accounted {:?}, holds {usage:?}",
                    id.0, conn.accounted
                ));
            }
            sums.entry(conn.kind.domid).or_default().add(&usage);
            for watch in conn.watches() {
                index.add(&watch.path, *id);
            }
            for (tx_id, slot) in &conn.transactions {
                if let TxSlot::Open(tx) = slot {
                    running.insert((tx.started_ms, *id, *tx_id));
                }
            }
        }
        for (domid, sum) in &sums {
            if self.accounts.get(*domid) != *sum {
                return Err(format!(
                    "domain {domid} accounted {:?}, connections hold {sum:?}",
                    self.accounts.get(*domid)
                ));
            }
        }
        if self.accounts.iter().any(|(d, _)| !sums.contains_key(&d)) {
            return Err(String::from("an account without connections"));
        }
        if index != self.watching {
            return Err(String::from("watch index is stale"));
        }
        if running != self.running {
            return Err(String::from("running-transaction index is stale"));
        }
        Ok(())
    }

    /// Whether the transport should take more requests from `id`: fewer
    /// than `outstanding` replies are queued for it. Transports stop
    /// reading from a connection while this is `false` (backpressure, for
    /// privileged connections too).
    pub fn wants_input(&self, id: ConnId) -> bool {
        self.conns
            .get(&id)
            .is_some_and(|c| c.queued_replies() < self.quotas.outstanding_requests)
    }
}
