//! Transaction lifetimes: starting and ending them, the age limit and the
//! engine's indexes of running transactions.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Engine, Outcome, args, with_nul};
use crate::connection::{ConnId, Connection, TxSlot};
use crate::error::{XsError, XsResult};
use crate::transaction::Transaction;
use crate::wire::Message;

impl Engine {
    /// Advances the engine's clock (milliseconds, from any fixed origin;
    /// it must not go backwards) and ends every transaction older than the
    /// `transaction-timeout` quota. The engine never reads a clock itself.
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(limit) = self.tx_limit_ms() else {
            return;
        };
        while let Some(&(started, conn, tx_id)) = self.running.first() {
            if self.now_ms.saturating_sub(started) < limit {
                break;
            }
            self.expire(conn, tx_id);
        }
    }

    /// When (on the [`set_time`](Self::set_time) clock) the oldest running
    /// transaction reaches its age limit, if there is a limit and one runs.
    pub fn next_deadline(&self) -> Option<u64> {
        let limit = self.tx_limit_ms()?;
        let &(started, _, _) = self.running.first()?;
        Some(started.saturating_add(limit))
    }

    /// Operator-visible events since the last call (one line each), e.g.
    /// transactions the store ended.
    pub fn take_notices(&mut self) -> Vec<String> {
        core::mem::take(&mut self.notices)
    }

    pub(super) fn tx_limit_ms(&self) -> Option<u64> {
        let secs = self.quotas.transaction_timeout_secs;
        (secs > 0).then(|| (secs as u64).saturating_mul(1000))
    }

    /// Ends a running transaction on the store's initiative.
    pub(super) fn expire(&mut self, id: ConnId, tx_id: u32) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(slot) = conn.transactions.get_mut(&tx_id) else {
            return;
        };
        if let TxSlot::Open(tx) = core::mem::replace(slot, TxSlot::Expired) {
            self.running.remove(&(tx.started_ms, id, tx_id));
            let age = self.now_ms.saturating_sub(tx.started_ms) / 1000;
            self.notices.push(format!(
                "transaction {tx_id} of connection {} (domain {}) ended after {age} s \
                 (transaction-timeout {} s); it fails with EAGAIN",
                id.0, conn.kind.domid, self.quotas.transaction_timeout_secs
            ));
        }
        self.settle(id);
    }

    /// Expires transaction `tx_id` of `id` if it is over the age limit.
    pub(super) fn check_age(&mut self, id: ConnId, tx_id: u32) {
        let Some(limit) = self.tx_limit_ms() else {
            return;
        };
        let started = match self.conns.get(&id).and_then(|c| c.transactions.get(&tx_id)) {
            Some(TxSlot::Open(tx)) => tx.started_ms,
            _ => return,
        };
        if self.now_ms.saturating_sub(started) >= limit {
            self.expire(id, tx_id);
        }
    }

    /// Removes one transaction slot's traces from the engine's indexes.
    pub(super) fn forget_transaction(&mut self, id: ConnId, tx_id: u32, slot: &TxSlot) {
        if let TxSlot::Open(tx) = slot {
            self.running.remove(&(tx.started_ms, id, tx_id));
        }
    }

    /// Drops every transaction of a connection.
    pub(super) fn forget_transactions(&mut self, id: ConnId, conn: &mut Connection) {
        for (tx_id, slot) in core::mem::take(&mut conn.transactions) {
            self.forget_transaction(id, tx_id, &slot);
        }
    }

    pub(super) fn transaction_start(&mut self, id: ConnId, msg: &Message) -> XsResult<Outcome> {
        if msg.header.tx_id != 0 {
            return Err(XsError::Busy);
        }
        let conn = self.conns.get_mut(&id).ok_or(XsError::NoEnt)?;
        if conn.transactions.len() >= self.quotas.transactions_per_connection {
            return Err(XsError::NoSpc);
        }
        let domain_open = self.accounts.get(conn.kind.domid).transactions;
        if !conn.kind.privileged && domain_open >= self.quotas.transactions_per_domain {
            return Err(XsError::NoSpc);
        }
        let tx_id = conn.allocate_tx_id();
        let tx = Transaction::started_at(self.now_ms);
        self.running.insert((tx.started_ms, id, tx_id));
        conn.transactions.insert(tx_id, TxSlot::Open(tx));
        Ok(Outcome::reply(with_nul(&format!("{tx_id}"))))
    }

    pub(super) fn transaction_end(&mut self, id: ConnId, msg: &Message) -> XsResult<Outcome> {
        let commit = match args(msg, 1)?[0] {
            b"T" => true,
            b"F" => false,
            _ => return Err(XsError::Inval),
        };
        let tx_id = msg.header.tx_id;
        self.check_age(id, tx_id);
        let conn = self.conns.get_mut(&id).ok_or(XsError::NoEnt)?;
        let slot = conn.transactions.remove(&tx_id).ok_or(XsError::NoEnt)?;
        self.forget_transaction(id, tx_id, &slot);
        let tx = match slot {
            TxSlot::Open(tx) => tx,
            TxSlot::Expired if commit => return Err(XsError::Again),
            TxSlot::Expired => return Ok(Outcome::ok()),
        };
        if !commit {
            return Ok(Outcome::ok());
        }
        let fired = tx.commit(&mut self.tree)?;
        Ok(Outcome::ok_firing(fired))
    }
}
