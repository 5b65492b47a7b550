//! The engine: the tree, the connections and the request dispatcher.

mod accounting;
mod lifetime;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::DomId;
use crate::account::{Accounts, Usage};
use crate::connection::{CloseReason, ConnId, ConnKind, Connection, TxSlot};
use crate::domain::{Domain, Domains};
use crate::error::{XsError, XsResult};
use crate::ops::{self, OpCtx};
use crate::path::{
    INTRODUCE_DOMAIN, RELEASE_DOMAIN, canonicalize, check_special, domain_path, is_special,
    parse_number,
};
use crate::perms::{Caller, Perms, Rights};
use crate::quota::Quotas;
use crate::tree::{Store, Tree};
use crate::watch::{Fired, Watch, WatchIndex};
use crate::wire::{Message, MsgType, Oversized};

/// The outcome of one request, before it is queued.
struct Outcome {
    payload: Vec<u8>,
    /// Watch events caused by the request.
    fired: Vec<Fired>,
    /// An event for the requesting connection only (a new watch's first).
    initial: Option<Vec<u8>>,
}

impl Outcome {
    fn reply(payload: Vec<u8>) -> Self {
        Self {
            payload,
            fired: Vec::new(),
            initial: None,
        }
    }

    fn ok() -> Self {
        Self::reply(b"OK\0".to_vec())
    }

    fn ok_firing(fired: impl IntoIterator<Item = Fired>) -> Self {
        Self {
            payload: b"OK\0".to_vec(),
            fired: fired.into_iter().collect(),
            initial: None,
        }
    }
}

/// Whether a request type changes state (refused on read-only connections).
fn is_write(ty: MsgType) -> bool {
    matches!(
        ty,
        MsgType::Write
            | MsgType::Mkdir
            | MsgType::Rm
            | MsgType::SetPerms
            | MsgType::Introduce
            | MsgType::Release
            | MsgType::Resume
            | MsgType::SetTarget
            | MsgType::Control
    )
}

/// Exactly `n` NUL-terminated string arguments.
fn args(msg: &Message, n: usize) -> XsResult<Vec<&[u8]>> {
    match msg.strings() {
        Some(strings) if strings.len() == n => Ok(strings),
        _ => Err(XsError::Inval),
    }
}

fn domid_arg(raw: &[u8]) -> XsResult<DomId> {
    let value = parse_number(raw)?;
    DomId::try_from(value).map_err(|_| XsError::Inval)
}

fn with_nul(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 1);
    out.extend_from_slice(text.as_bytes());
    out.push(0);
    out
}

/// Printable summary of a payload's first argument, for the access log.
fn summary(payload: &[u8]) -> String {
    let first = payload.split(|&b| b == 0).next().unwrap_or(&[]);
    let mut text = String::new();
    for &b in first.iter().take(64) {
        if b.is_ascii_graphic() {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    if first.len() > 64 {
        text.push_str("...");
    }
    text
}

/// The XenStore engine: one tree shared by all connections.
#[derive(Debug, Default)]
pub struct Engine {
    tree: Tree,
    conns: BTreeMap<ConnId, Connection>,
    next_conn: u32,
    domains: Domains,
    quotas: Quotas,
    access_log: Option<Vec<String>>,
    /// Connections the engine closed itself, not yet reported.
    closed: Vec<(ConnId, CloseReason)>,
    /// Operator-visible events (expired transactions), not yet reported.
    notices: Vec<String>,
    /// The transport's clock, in milliseconds (see [`Engine::set_time`]).
    now_ms: u64,
    /// Every running transaction by start time, oldest first.
    running: BTreeSet<(u64, ConnId, u32)>,
    /// What each domain's connections hold together.
    accounts: Accounts,
    /// Who watches which path: an event visits only the candidates.
    watching: WatchIndex,
    /// Connections that had output queued since the last `take_dirty`.
    dirty: BTreeSet<ConnId>,
    /// How often the transport asked a connection for its output ([`Engine::output`]):
    /// the work of its loop, which `memreport` shows (a loop that visits every
    /// connection each round asks once per connection per round).
    output_polls: core::cell::Cell<u64>,
}

impl Engine {
    /// An engine holding only the root node.
    pub fn new(quotas: Quotas) -> Self {
        Self {
            quotas,
            ..Self::default()
        }
    }

    /// The committed tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The quotas in force.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Introduced domains.
    pub fn domains(&self) -> &Domains {
        &self.domains
    }

    /// Starts recording one line per request, fetched with
    /// [`take_access_log`](Self::take_access_log).
    pub fn enable_access_log(&mut self) {
        self.access_log.get_or_insert_with(Vec::new);
    }

    /// Access-log lines recorded since the last call.
    pub fn take_access_log(&mut self) -> Vec<String> {
        self.access_log
            .as_mut()
            .map(core::mem::take)
            .unwrap_or_default()
    }

    /// Opens a connection.
    pub fn connect(&mut self, kind: ConnKind) -> ConnId {
        loop {
            let id = ConnId(self.next_conn);
            self.next_conn = self.next_conn.wrapping_add(1);
            if let alloc::collections::btree_map::Entry::Vacant(slot) = self.conns.entry(id) {
                slot.insert(Connection::new(kind));
                return id;
            }
        }
    }

    /// Closes a connection, dropping its watches and open transactions.
    pub fn disconnect(&mut self, id: ConnId) {
        if let Some(mut conn) = self.conns.remove(&id) {
            self.forget_transactions(id, &mut conn);
            let domid = conn.kind.domid;
            self.accounts
                .settle(domid, &mut conn.accounted, Usage::default());
            for watch in conn.watches() {
                self.watching.remove(&watch.path, id);
            }
        }
        self.dirty.remove(&id);
    }

    /// Connections the engine closed on its own since the last call, and
    /// why. The transport should drop their transports (and may log the
    /// reason); the engine has already forgotten them.
    pub fn take_closed(&mut self) -> Vec<(ConnId, CloseReason)> {
        core::mem::take(&mut self.closed)
    }

    fn close(&mut self, id: ConnId, reason: CloseReason) {
        if self.conns.contains_key(&id) {
            self.disconnect(id);
            self.closed.push((id, reason));
        }
    }

    /// Connections that had replies or events queued since the last call
    /// (and are still open): what a readiness-driven transport must try
    /// to send to, without visiting the others.
    pub fn take_dirty(&mut self) -> BTreeSet<ConnId> {
        let mut dirty = core::mem::take(&mut self.dirty);
        dirty.retain(|id| self.conns.contains_key(id));
        dirty
    }

    /// A connection's state, if it is still open. A connection disappears
    /// when its domain is released.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.conns.get(&id)
    }

    /// Bytes waiting to go to connection `id` (empty if none).
    pub fn output(&self, id: ConnId) -> &[u8] {
        self.output_polls.set(self.output_polls.get() + 1);
        self.conns.get(&id).map_or(&[], Connection::output)
    }

    /// Marks `n` bytes of [`output`](Self::output) as sent.
    pub fn consume(&mut self, id: ConnId, n: usize) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.consume(n);
            self.settle(id);
        }
    }

    /// Takes every queued byte for `id` at once (handy for tests and
    /// transports without partial writes).
    pub fn drain_output(&mut self, id: ConnId) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(conn) = self.conns.get_mut(&id) {
            let chunk = conn.output();
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(chunk);
            let n = chunk.len();
            conn.consume(n);
        }
        self.settle(id);
        out
    }

    /// Feeds bytes received on connection `id` and handles every complete
    /// request in them. Fails with `ENOENT` if the connection is closed,
    /// including when these bytes made the engine close it (see
    /// [`take_closed`](Self::take_closed)).
    pub fn feed(&mut self, id: ConnId, mut bytes: &[u8]) -> XsResult<()> {
        let mut decoder = match self.conns.get_mut(&id) {
            Some(conn) => core::mem::take(&mut conn.decoder),
            None => return Err(XsError::NoEnt),
        };
        while let Some(frame) = decoder.decode(&mut bytes) {
            match frame {
                Ok(msg) => self.handle(id, &msg),
                Err(Oversized(h)) => {
                    self.log(
                        id,
                        h.msg_type,
                        h.req_id,
                        h.tx_id,
                        "<oversized: connection closed>",
                        Err(XsError::TooBig),
                    );
                    self.close(id, CloseReason::Oversized { len: h.len });
                }
            }
            if !self.conns.contains_key(&id) {
                return Err(XsError::NoEnt);
            }
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.decoder = decoder;
        }
        Ok(())
    }

    fn log(
        &mut self,
        id: ConnId,
        ty: u32,
        req: u32,
        tx: u32,
        what: &str,
        result: Result<(), XsError>,
    ) {
        if let Some(log) = self.access_log.as_mut() {
            let name = MsgType::from_u32(ty).map_or(format!("type{ty}"), |t| format!("{t:?}"));
            let status = result.map_or_else(|e| e.as_str(), |()| "OK");
            log.push(format!(
                "conn {} {name} req {req} tx {tx} {what} -> {status}",
                id.0
            ));
        }
    }

    /// Handles one decoded request from connection `id`.
    pub fn handle(&mut self, id: ConnId, msg: &Message) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let h = msg.header;
        let limited = !conn.kind.privileged;
        // A transport that keeps feeding requests to a connection whose own
        // output already fills the domain's queue quota ignores
        // backpressure: the connection is closed.
        if limited && conn.usage().queued_bytes >= self.quotas.queue_memory_per_domain {
            self.close(id, CloseReason::QueueFull);
            return;
        }
        let outstanding = self.accounts.get(conn.kind.domid).queued_replies;
        let result = if limited && outstanding >= self.quotas.outstanding_requests {
            Err(XsError::Quota)
        } else {
            self.dispatch(id, msg)
        };
        let what = summary(&msg.payload);
        self.log(
            id,
            h.msg_type,
            h.req_id,
            h.tx_id,
            &what,
            result.as_ref().map(|_| ()).map_err(|e| *e),
        );
        let (reply, fired, initial) = match result {
            Ok(outcome) => {
                // Every type that reaches here successfully is known.
                let ty = MsgType::from_u32(h.msg_type).unwrap_or(MsgType::Error);
                let reply = Message::new(ty, h.req_id, h.tx_id, outcome.payload);
                (reply, outcome.fired, outcome.initial)
            }
            Err(e) => (
                Message::new(MsgType::Error, h.req_id, h.tx_id, with_nul(e.as_str())),
                vec![],
                None,
            ),
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            self.dirty.insert(id);
            conn.push_reply(reply.to_bytes());
        }
        self.settle(id);
        if let Some(event) = initial {
            self.queue_event(id, event);
        }
        self.fire(&fired);
    }

    fn caller(&self, kind: ConnKind) -> Caller {
        Caller {
            domid: kind.domid,
            privileged: kind.privileged,
            target: self.domains.target_of(kind.domid),
        }
    }

    fn dispatch(&mut self, id: ConnId, msg: &Message) -> XsResult<Outcome> {
        let ty = MsgType::from_u32(msg.header.msg_type).ok_or(XsError::Inval)?;
        let kind = self.conns.get(&id).ok_or(XsError::NoEnt)?.kind;
        if kind.read_only && is_write(ty) {
            return Err(XsError::RoFs);
        }
        let caller = self.caller(kind);
        let privileged_only = matches!(
            ty,
            MsgType::Introduce
                | MsgType::Release
                | MsgType::Resume
                | MsgType::SetTarget
                | MsgType::Control
        );
        if privileged_only && !caller.privileged {
            return Err(XsError::Acces);
        }
        match ty {
            MsgType::GetPerms | MsgType::SetPerms if msg.payload.first() == Some(&b'@') => {
                self.special_perms_request(caller, ty, msg)
            }
            MsgType::Read
            | MsgType::Write
            | MsgType::Mkdir
            | MsgType::Rm
            | MsgType::Directory
            | MsgType::DirectoryPart
            | MsgType::GetPerms
            | MsgType::SetPerms => self.node_request(id, caller, ty, msg),
            MsgType::Watch => self.watch(id, caller, msg),
            MsgType::Unwatch => self.unwatch(id, caller, msg),
            MsgType::TransactionStart => self.transaction_start(id, msg),
            MsgType::TransactionEnd => self.transaction_end(id, msg),
            MsgType::ResetWatches => {
                let mut conn = self.conns.remove(&id).ok_or(XsError::NoEnt)?;
                for watch in conn.watches() {
                    self.watching.remove(&watch.path, id);
                }
                conn.clear_watches();
                self.forget_transactions(id, &mut conn);
                self.conns.insert(id, conn);
                Ok(Outcome::ok())
            }
            MsgType::GetDomainPath => {
                let domid = domid_arg(args(msg, 1)?[0])?;
                Ok(Outcome::reply(with_nul(&domain_path(domid))))
            }
            MsgType::IsDomainIntroduced => {
                let domid = domid_arg(args(msg, 1)?[0])?;
                let known = self.domains.is_introduced(domid);
                Ok(Outcome::reply(with_nul(if known { "T" } else { "F" })))
            }
            MsgType::Introduce => self.introduce(msg),
            MsgType::Release => self.release(id, msg),
            MsgType::Resume => {
                let domid = domid_arg(args(msg, 1)?[0])?;
                self.domains.resume(domid)?;
                Ok(Outcome::ok())
            }
            MsgType::SetTarget => {
                let a = args(msg, 2)?;
                let (domid, target) = (domid_arg(a[0])?, domid_arg(a[1])?);
                self.domains.set_target(domid, target)?;
                Ok(Outcome::ok())
            }
            MsgType::Control => self.control(msg),
            MsgType::WatchEvent | MsgType::Error => Err(XsError::Inval),
        }
    }

    /// The node operations, inside or outside a transaction.
    fn node_request(
        &mut self,
        id: ConnId,
        caller: Caller,
        ty: MsgType,
        msg: &Message,
    ) -> XsResult<Outcome> {
        let tx_id = msg.header.tx_id;
        if tx_id != 0 {
            self.check_age(id, tx_id);
        }
        let ctx = OpCtx {
            caller,
            quotas: &self.quotas,
        };
        let conn = self.conns.get_mut(&id).ok_or(XsError::NoEnt)?;
        let mut cursor = conn
            .dir_cursor
            .take()
            .filter(|(t, _)| *t == tx_id)
            .map(|(_, c)| c);
        if tx_id == 0 {
            let outcome = run_node_op(&mut self.tree, &ctx, ty, msg, &mut cursor);
            conn.dir_cursor = cursor.map(|c| (tx_id, c));
            return outcome;
        }
        let tx = match conn.transactions.get_mut(&tx_id) {
            Some(TxSlot::Open(tx)) => tx,
            Some(TxSlot::Expired) => return Err(XsError::Again),
            None => return Err(XsError::NoEnt),
        };
        if !caller.privileged && tx.footprint() >= self.quotas.transaction_nodes {
            return Err(XsError::NoSpc);
        }
        if !caller.privileged
            && self.accounts.get(caller.domid).transaction_bytes
                >= self.quotas.transaction_memory_per_domain
        {
            return Err(XsError::NoMem);
        }
        let outcome = run_node_op(&mut tx.view(&self.tree), &ctx, ty, msg, &mut cursor);
        conn.dir_cursor = cursor.map(|c| (tx_id, c));
        let mut outcome = outcome?;
        tx.defer(core::mem::take(&mut outcome.fired));
        Ok(outcome)
    }

    fn watch_args(caller: Caller, msg: &Message) -> XsResult<(String, Option<String>, Vec<u8>)> {
        // `<wpath>|<token>|?`: anything after the token is reserved.
        let a = msg.strings().ok_or(XsError::Inval)?;
        if a.len() < 2 {
            return Err(XsError::Inval);
        }
        let (raw, token) = (a[0], a[1].to_vec());
        if is_special(raw) {
            return Ok((check_special(raw)?, None, token));
        }
        let abs = canonicalize(caller.domid, raw)?;
        let home = (raw.first() != Some(&b'/')).then(|| domain_path(caller.domid));
        Ok((abs, home, token))
    }

    fn watch(&mut self, id: ConnId, caller: Caller, msg: &Message) -> XsResult<Outcome> {
        let (path, home, token) = Self::watch_args(caller, msg)?;
        let domain_watches = self.accounts.get(caller.domid).watches;
        let conn = self.conns.get_mut(&id).ok_or(XsError::NoEnt)?;
        if conn
            .watches()
            .iter()
            .any(|w| w.path == path && w.token == token)
        {
            return Err(XsError::Exist);
        }
        if !caller.privileged && domain_watches >= self.quotas.watches_per_domain {
            return Err(XsError::TooBig);
        }
        let watch = Watch { path, token, home };
        let initial = watch.event_payload(&watch.path);
        self.watching.add(&watch.path, id);
        conn.add_watch(watch);
        Ok(Outcome {
            initial: Some(initial),
            ..Outcome::ok()
        })
    }

    fn unwatch(&mut self, id: ConnId, caller: Caller, msg: &Message) -> XsResult<Outcome> {
        let (path, _, token) = Self::watch_args(caller, msg)?;
        let conn = self.conns.get_mut(&id).ok_or(XsError::NoEnt)?;
        let index = conn
            .watches()
            .iter()
            .position(|w| w.path == path && w.token == token)
            .ok_or(XsError::NoEnt)?;
        conn.remove_watch(index);
        self.watching.remove(&path, id);
        Ok(Outcome::ok())
    }

    fn introduce(&mut self, msg: &Message) -> XsResult<Outcome> {
        let a = msg.strings().ok_or(XsError::Inval)?;
        if a.len() < 3 {
            return Err(XsError::Inval);
        }
        let domid = domid_arg(a[0])?;
        let mfn = parse_number(a[1])?;
        let port = u32::try_from(parse_number(a[2])?).map_err(|_| XsError::Inval)?;
        let fresh = self.domains.introduce(domid, Domain { mfn, port })?;
        let fired = fresh.then(|| self.special_event(INTRODUCE_DOMAIN));
        Ok(Outcome::ok_firing(fired))
    }

    fn release(&mut self, id: ConnId, msg: &Message) -> XsResult<Outcome> {
        let domid = domid_arg(args(msg, 1)?[0])?;
        self.domains.release(domid)?;
        // The domain's own connections go away with it.
        let doomed: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(cid, c)| **cid != id && c.kind.domid == domid && !c.kind.privileged)
            .map(|(cid, _)| *cid)
            .collect();
        for cid in doomed {
            self.close(cid, CloseReason::Released);
        }
        Ok(Outcome::ok_firing([self.special_event(RELEASE_DOMAIN)]))
    }

    fn special_event(&self, name: &str) -> Fired {
        let perms = self.domains.special_perms(name).cloned();
        Fired::special(name, perms.unwrap_or_else(|| Perms::owned_by(0)))
    }

    /// `GET_PERMS`/`SET_PERMS` on a special name: who may receive its events.
    fn special_perms_request(
        &mut self,
        caller: Caller,
        ty: MsgType,
        msg: &Message,
    ) -> XsResult<Outcome> {
        let a = msg.strings().ok_or(XsError::Inval)?;
        let (raw, entries) = a.split_first().ok_or(XsError::Inval)?;
        let name = check_special(raw)?;
        let current = self.domains.special_perms(&name).ok_or(XsError::NoEnt)?;
        let rights = caller.rights(current);
        if ty == MsgType::GetPerms {
            if !entries.is_empty() {
                return Err(XsError::Inval);
            }
            if !rights.contains(Rights::READ) {
                return Err(XsError::Acces);
            }
            return Ok(Outcome::reply(current.encode()));
        }
        if !rights.contains(Rights::WRITE.union(Rights::OWNER)) {
            return Err(XsError::Acces);
        }
        let perms = Perms::parse(entries.iter().copied())?;
        if !caller.privileged && perms.owner() != current.owner() {
            return Err(XsError::Perm);
        }
        self.domains.set_special_perms(&name, perms)?;
        Ok(Outcome::ok())
    }

    fn control(&mut self, msg: &Message) -> XsResult<Outcome> {
        let a = msg.strings().ok_or(XsError::Inval)?;
        let text = |s: &[u8]| {
            core::str::from_utf8(s)
                .map(String::from)
                .map_err(|_| XsError::Inval)
        };
        match a.as_slice() {
            [b"check"] | [b"check", ..] => self
                .check()
                .map(|()| Outcome::ok())
                .map_err(|_| XsError::Io),
            [b"print", ..] => Ok(Outcome::ok()),
            [b"log", b"on"] => {
                self.enable_access_log();
                Ok(Outcome::ok())
            }
            [b"log", b"off"] => {
                self.access_log = None;
                Ok(Outcome::ok())
            }
            [b"memreport", ..] => {
                let watches: usize = self.conns.values().map(|c| c.watches().len()).sum();
                let txs: usize = self.conns.values().map(|c| c.transactions.len()).sum();
                let mut report = format!(
                    "nodes {}\nconnections {}\nwatches {watches}\ntransactions {txs}\ndomains {}\noutput-polls {}\n",
                    self.tree.len(),
                    self.conns.len(),
                    self.domains.len(),
                    self.output_polls.get()
                );
                for (domid, u) in self.accounts.iter() {
                    let owned = self.tree.owned_by(domid);
                    report.push_str(&format!(
                        "domain {domid}: nodes {} node-bytes {} watches {} watch-bytes {} \
                         events {} replies {} queue-bytes {} transactions {} transaction-bytes {}\n",
                        owned.nodes,
                        owned.bytes,
                        u.watches,
                        u.watch_bytes,
                        u.queued_events,
                        u.queued_replies,
                        u.queued_bytes,
                        u.transactions,
                        u.transaction_bytes
                    ));
                }
                Ok(Outcome::reply(with_nul(&report)))
            }
            [b"help"] => Ok(Outcome::reply(with_nul(
                "check\nhelp\nlog on|off\nmemreport\nprint <text>\nquota [<name> <value>]\n",
            ))),
            [b"quota"] => Ok(Outcome::reply(with_nul(&self.quotas.describe()))),
            [b"quota", name, value] => {
                let value = usize::try_from(parse_number(value)?).map_err(|_| XsError::Inval)?;
                self.quotas.set(&text(name)?, value)?;
                Ok(Outcome::ok())
            }
            _ => Err(XsError::Inval),
        }
    }
}

/// Parses a node request's arguments and runs it on `store`.
fn run_node_op<S: Store>(
    store: &mut S,
    ctx: &OpCtx<'_>,
    ty: MsgType,
    msg: &Message,
    cursor: &mut Option<ops::DirCursor>,
) -> XsResult<Outcome> {
    let domid = ctx.caller.domid;
    match ty {
        MsgType::Write => {
            let split = msg
                .payload
                .iter()
                .position(|&b| b == 0)
                .ok_or(XsError::Inval)?;
            let node = canonicalize(domid, &msg.payload[..split])?;
            let fired = ops::write(store, ctx, &node, &msg.payload[split + 1..])?;
            Ok(Outcome::ok_firing([fired]))
        }
        MsgType::SetPerms => {
            let a = msg.strings().ok_or(XsError::Inval)?;
            let (raw, entries) = a.split_first().ok_or(XsError::Inval)?;
            let node = canonicalize(domid, raw)?;
            let perms = Perms::parse(entries.iter().copied())?;
            let fired = ops::set_perms(store, ctx, &node, perms)?;
            Ok(Outcome::ok_firing([fired]))
        }
        MsgType::DirectoryPart => {
            let a = args(msg, 2)?;
            let node = canonicalize(domid, a[0])?;
            let offset = usize::try_from(parse_number(a[1])?).map_err(|_| XsError::Inval)?;
            ops::directory_part(store, ctx, &node, offset, cursor).map(Outcome::reply)
        }
        _ => {
            let node = canonicalize(domid, args(msg, 1)?[0])?;
            match ty {
                MsgType::Read => ops::read(store, ctx, &node).map(Outcome::reply),
                MsgType::Directory => ops::directory(store, ctx, &node).map(Outcome::reply),
                MsgType::GetPerms => ops::get_perms(store, ctx, &node).map(Outcome::reply),
                MsgType::Mkdir => ops::mkdir(store, ctx, &node).map(Outcome::ok_firing),
                MsgType::Rm => ops::rm(store, ctx, &node).map(Outcome::ok_firing),
                _ => Err(XsError::Inval),
            }
        }
    }
}
