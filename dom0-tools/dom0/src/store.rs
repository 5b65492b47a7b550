//! The XenStore, served by the control domain as Xen's `xenstored` runs in dom0: one
//! `oxen_xenstore` engine, a privileged connection for this toolstack, and for each
//! domain `xl create` built an interface page (`io/xs_wire.h`) mapped from it and an
//! interdomain event channel.
//!
//! For a new domain the toolstack does what libxl does: a port allocated in the domain
//! for dom0, its store page and port in `HVM_PARAM_STORE_PFN`/`STORE_EVTCHN`, the
//! nodes under `/local/domain/N` (`oxen_toolstack::store`), then `XS_INTRODUCE`. A
//! domain that publishes impossible ring indexes, or that the engine closes (an
//! oversized header, a queue it never drains), is told so in the page's `error` field
//! and no longer served; the others go on.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use oxen_guest_rt::abi::xs_wire;
use oxen_guest_rt::control::ForeignFrame;
use oxen_guest_rt::events;
use oxen_guest_rt::xen::{self, EvtchnPort, hvm_param};
use oxen_xenstore::ring::{self, RingPage};
use oxen_xenstore::wire::{Decoder, Message, MsgType};
use oxen_xenstore::{ConnId, ConnKind, Engine, Quotas, XsError};

/// Where dom0 maps the store pages: one frame per served domain, above the builder's
/// window.
const WINDOW_GFN: u64 = 0x2_0100;
const SLOTS: usize = 256;

/// A served domain.
struct Guest {
    name: String,
    /// Its `/vm/UUID` entry.
    vm: String,
    conn: ConnId,
    port: EvtchnPort,
    page: Page,
    slot: usize,
    /// Given up on: no longer served, kept until the domain goes.
    dead: bool,
}

/// The interface page as the engine's ring adapter sees it.
struct Page(ForeignFrame);

impl RingPage for Page {
    fn req_indexes(&self) -> (u32, u32) {
        let prod = self.0.read_u32(xs_wire::REQ_PROD as usize);
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        (self.0.read_u32(xs_wire::REQ_CONS as usize), prod)
    }
    fn set_req_cons(&mut self, cons: u32) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        self.0.write_u32(xs_wire::REQ_CONS as usize, cons);
    }
    fn req_byte(&self, offset: usize) -> u8 {
        self.0.read_u8(xs_wire::REQ as usize + offset)
    }
    fn rsp_indexes(&self) -> (u32, u32) {
        (
            self.0.read_u32(xs_wire::RSP_CONS as usize),
            self.0.read_u32(xs_wire::RSP_PROD as usize),
        )
    }
    fn set_rsp_prod(&mut self, prod: u32) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        self.0.write_u32(xs_wire::RSP_PROD as usize, prod);
    }
    fn set_rsp_byte(&mut self, offset: usize, byte: u8) {
        self.0.write_u8(xs_wire::RSP as usize + offset, byte);
    }
}

/// The store and the domains it serves.
pub struct Store {
    engine: Engine,
    tool: ConnId,
    next_req: u32,
    /// Watch events for the toolstack's own watches (`xenstore-watch`): the paths.
    tool_events: Vec<String>,
    /// The `xenstore-watch` the shell is in: its path and how many events are left to
    /// show (`None`: until Ctrl-C).
    pub shell_watch: Option<(String, Option<u32>)>,
    /// Lines about rings it gave up on, for the shell to show above its prompt.
    pub notices: Vec<String>,
    /// Domains built at boot whose nodes dom0 wrote (they have no ring): their `/vm`
    /// paths.
    adopted: BTreeMap<u16, String>,
    guests: BTreeMap<u16, Guest>,
}

impl Store {
    /// A store holding dom0's own nodes.
    pub fn new() -> Self {
        let mut engine = Engine::new(Quotas::default());
        let tool = engine.connect(ConnKind::privileged_socket());
        let mut s = Store {
            engine,
            tool,
            next_req: 1,
            tool_events: Vec::new(),
            shell_watch: None,
            notices: Vec::new(),
            adopted: BTreeMap::new(),
            guests: BTreeMap::new(),
        };
        for (path, value) in [
            ("/local/domain/0/name", "Domain-0"),
            ("/local/domain/0/domid", "0"),
        ] {
            let _ = s.write(path, value);
        }
        s
    }

    /// One request on the toolstack's connection; the reply's payload.
    fn request(&mut self, ty: MsgType, parts: &[&[u8]]) -> Result<Vec<u8>, String> {
        let mut payload = Vec::new();
        for p in parts {
            payload.extend_from_slice(p);
            payload.push(0);
        }
        if ty == MsgType::Write {
            // A write's value is not NUL-ended.
            payload.pop();
        }
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        let bytes = Message::new(ty, req, 0, payload).to_bytes();
        self.engine
            .feed(self.tool, &bytes)
            .map_err(|e| format!("{e:?}"))?;
        let mut answer = Err(String::from("no reply"));
        for m in self.drain_tool() {
            if m.header.req_id == req && m.header.msg_type == MsgType::Error as u32 {
                let text = m.payload.split(|&b| b == 0).next().unwrap_or(&[]);
                answer = Err(String::from_utf8_lossy(text).into_owned());
            } else if m.header.req_id == req {
                answer = Ok(m.payload);
            }
        }
        answer
    }

    /// Everything queued on the toolstack's connection: the paths of watch events are
    /// kept (at most 1,024 waiting: a watcher that is not looked at does not grow
    /// without end), the other messages returned. Watch events may come before or after
    /// a reply, so all of it is read.
    fn drain_tool(&mut self) -> Vec<Message> {
        let out = self.engine.drain_output(self.tool);
        let mut decoder = Decoder::new();
        let mut input = out.as_slice();
        let mut replies = Vec::new();
        while let Some(Ok(m)) = decoder.decode(&mut input) {
            if m.header.msg_type != MsgType::WatchEvent as u32 {
                replies.push(m);
            } else if self.tool_events.len() < 1024 {
                let path = m.payload.split(|&b| b == 0).next().unwrap_or(&[]);
                self.tool_events
                    .push(String::from_utf8_lossy(path).into_owned());
            }
        }
        replies
    }

    /// Watch events that came for the toolstack's watches, oldest first.
    pub fn take_events(&mut self) -> Vec<String> {
        core::mem::take(&mut self.tool_events)
    }

    /// `XS_WATCH` on dom0's connection (its events: [`Store::take_events`]).
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), String> {
        self.request(MsgType::Watch, &[path.as_bytes(), token.as_bytes()])
            .map(drop)
    }

    /// `XS_UNWATCH` on dom0's connection.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), String> {
        let r = self
            .request(MsgType::Unwatch, &[path.as_bytes(), token.as_bytes()])
            .map(drop);
        self.tool_events.clear();
        r
    }

    /// `XS_SET_PERMS` on dom0's connection (`xenstore-chmod`).
    pub fn chmod(&mut self, path: &str, perms: &[&str]) -> Result<(), String> {
        let r = self.set_perms(path, perms);
        self.flush();
        r
    }

    /// `XS_WRITE` on dom0's connection (watch events go out to the guests).
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
        let r = self
            .request(MsgType::Write, &[path.as_bytes(), value.as_bytes()])
            .map(drop);
        self.flush();
        r
    }

    /// `XS_READ` on dom0's connection.
    pub fn read(&mut self, path: &str) -> Result<String, String> {
        let v = self.request(MsgType::Read, &[path.as_bytes()])?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// `XS_RM` on dom0's connection.
    pub fn rm(&mut self, path: &str) -> Result<(), String> {
        let r = self.request(MsgType::Rm, &[path.as_bytes()]).map(drop);
        self.flush();
        r
    }

    /// `XS_DIRECTORY`: the children's names.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, String> {
        let v = self.request(MsgType::Directory, &[path.as_bytes()])?;
        Ok(v.split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect())
    }

    /// `xenstore-ls PATH`: every node below `path`, one per line as `name = "value"`,
    /// indented one space per level, as Xen's `xenstore-ls` prints them.
    pub fn ls(&mut self, path: &str) -> Result<String, String> {
        let mut text = String::new();
        let mut stack: Vec<(String, usize)> = self
            .directory(path)?
            .into_iter()
            .rev()
            .map(|n| (n, 0))
            .collect();
        let base = path.trim_end_matches('/');
        while let Some((rel, depth)) = stack.pop() {
            let full = format!("{base}/{rel}");
            let value = self.read(&full).unwrap_or_default();
            let name = rel.rsplit('/').next().unwrap_or(&rel);
            let shown: String = value
                .chars()
                .flat_map(|c| match c {
                    '"' => "\\\"".chars().collect::<Vec<_>>(),
                    c if c.is_control() => format!("\\x{:02x}", c as u32).chars().collect(),
                    c => alloc::vec![c],
                })
                .collect();
            text.push_str(&format!("{:depth$}{name} = \"{shown}\"\n", ""));
            let children = self.directory(&full).unwrap_or_default();
            for c in children.into_iter().rev() {
                stack.push((format!("{rel}/{c}"), depth + 1));
            }
        }
        Ok(text)
    }

    fn set_perms(&mut self, path: &str, perms: &[&str]) -> Result<(), String> {
        let mut parts: Vec<&[u8]> = alloc::vec![path.as_bytes()];
        parts.extend(perms.iter().map(|p| p.as_bytes()));
        self.request(MsgType::SetPerms, &parts).map(drop)
    }

    /// Gives domain `d.id` (not yet running) a store: its page at its frame `gfn`, a
    /// port, its nodes, and the introduction.
    pub fn introduce(
        &mut self,
        d: &oxen_toolstack::store::DomainFacts<'_>,
        gfn: u64,
    ) -> Result<(), String> {
        let (id, name) = (d.id, d.name);
        let slot = (0..SLOTS)
            .find(|s| self.guests.values().all(|g| g.slot != *s))
            .ok_or("every store slot is in use")?;
        let remote = xen::alloc_unbound_in(id, 0).map_err(|e| format!("alloc_unbound ({e})"))?;
        for (p, v) in [
            (hvm_param::STORE_PFN, gfn),
            (hvm_param::STORE_EVTCHN, u64::from(remote)),
        ] {
            xen::set_param_of(id, p, v).map_err(|e| format!("set_param {p} ({e})"))?;
        }
        let frame = ForeignFrame::map(id, gfn, WINDOW_GFN + slot as u64)
            .ok_or("its store page cannot be mapped")?;
        let port = xen::bind_interdomain(id, remote).map_err(|e| format!("bind ({e})"))?;
        let made = self.write_nodes(d).and_then(|()| {
            let (i, g, r) = (format!("{id}"), format!("{gfn}"), format!("{remote}"));
            self.request(
                MsgType::Introduce,
                &[i.as_bytes(), g.as_bytes(), r.as_bytes()],
            )
            .map(drop)
        });
        if let Err(e) = made {
            let _ = xen::close(port);
            return Err(format!("its store nodes: {e}"));
        }
        let conn = self.engine.connect(ConnKind::domain(u32::from(id)));
        self.guests.insert(
            id,
            Guest {
                name: String::from(name),
                vm: oxen_toolstack::store::vm_path(d.uuid),
                conn,
                port,
                page: Page(frame),
                slot,
                dead: false,
            },
        );
        Ok(())
    }

    /// Writes the nodes of domain `d.id`, built at boot by the hypervisor, as Xen's
    /// toolstack does when it adopts a domain it did not build (it has no store ring,
    /// so it is not introduced): `xenstore-ls` and other clients see its name.
    pub fn adopt(&mut self, d: &oxen_toolstack::store::DomainFacts<'_>) -> Result<(), String> {
        self.write_nodes(d)?;
        self.adopted
            .insert(d.id, oxen_toolstack::store::vm_path(d.uuid));
        Ok(())
    }

    /// Writes the nodes Xen's toolstack writes for domain `d.id`, with their
    /// permissions; stops at the first that fails.
    fn write_nodes(&mut self, d: &oxen_toolstack::store::DomainFacts<'_>) -> Result<(), String> {
        for n in oxen_toolstack::store::domain_nodes(d) {
            let perms: Vec<&str> = n.perms.iter().map(String::as_str).collect();
            self.write(&n.path, &n.value)?;
            self.set_perms(&n.path, &perms)?;
        }
        Ok(())
    }

    /// Removes domain `id`'s home and its `/vm` entry `vm`.
    fn remove_nodes(&mut self, id: u16, vm: &str) {
        let home = oxen_toolstack::store::domain_path(id);
        let _ = self.request(MsgType::Rm, &[home.as_bytes()]);
        let _ = self.request(MsgType::Rm, &[vm.as_bytes()]);
    }

    /// Forgets domain `id`: `XS_RELEASE`, its nodes, its page and port.
    pub fn release(&mut self, id: u16) {
        if let Some(vm) = self.adopted.remove(&id) {
            self.remove_nodes(id, &vm);
            self.flush();
        }
        let Some(g) = self.guests.remove(&id) else {
            return;
        };
        if !g.dead {
            self.engine.disconnect(g.conn);
        }
        let i = format!("{id}");
        let _ = self.request(MsgType::Release, &[i.as_bytes()]);
        self.remove_nodes(id, &g.vm);
        let _ = xen::close(g.port);
        self.flush();
    }

    /// Writes `request` (`poweroff`, `reboot`) to domain `id`'s `control/shutdown`.
    pub fn request_shutdown(&mut self, id: u16, request: &str) -> Result<(), String> {
        if !self.guests.get(&id).is_some_and(|g| !g.dead) {
            return Err(String::from(
                "no PV control interface (the store does not serve it)",
            ));
        }
        let path = format!(
            "{}/control/shutdown",
            oxen_toolstack::store::domain_path(id)
        );
        self.write(&path, request)
    }

    /// The domains served.
    pub fn served(&self) -> impl Iterator<Item = u16> + '_ {
        self.guests.keys().chain(self.adopted.keys()).copied()
    }

    /// The ports to wait on.
    pub fn ports(&self) -> Vec<EvtchnPort> {
        self.guests.values().map(|g| g.port).collect()
    }

    /// Serves every domain whose port fired, then every connection that has output.
    pub fn poll(&mut self) {
        let fired: Vec<u16> = self
            .guests
            .iter()
            .filter(|(_, g)| events::pending(g.port))
            .map(|(id, _)| *id)
            .collect();
        for id in fired {
            if let Some(g) = self.guests.get(&id) {
                events::clear(g.port);
            }
            self.serve(id);
        }
        self.flush();
    }

    /// Serves the connections with output queued (watch events fired by others).
    fn flush(&mut self) {
        for _ in 0..4 {
            let dirty = self.engine.take_dirty();
            if dirty.contains(&self.tool) {
                // Watch events only: no request is waiting for a reply here.
                self.drain_tool();
            }
            let ids: Vec<u16> = self
                .guests
                .iter()
                .filter(|(_, g)| dirty.contains(&g.conn))
                .map(|(id, _)| *id)
                .collect();
            if ids.is_empty() {
                return;
            }
            for id in ids {
                self.serve(id);
            }
        }
    }

    fn serve(&mut self, id: u16) {
        let Some(g) = self.guests.get_mut(&id).filter(|g| !g.dead) else {
            return;
        };
        match ring::service(&mut self.engine, g.conn, &mut g.page) {
            Ok(a) if a.consumed == 0 && a.produced == 0 => {}
            Ok(_) => {
                let _ = xen::send(g.port);
            }
            Err(e) => {
                let (why, code) = match e {
                    XsError::Io => (
                        String::from("impossible ring indexes"),
                        xs_wire::ERROR_RINGIDX,
                    ),
                    _ => {
                        let reason = self
                            .engine
                            .take_closed()
                            .into_iter()
                            .find(|(c, _)| *c == g.conn)
                            .map_or_else(|| format!("{e:?}"), |(_, r)| format!("{r}"));
                        (
                            format!("connection closed ({reason})"),
                            xs_wire::ERROR_PROTO,
                        )
                    }
                };
                self.notices.push(format!(
                    "oxen dom0: xenstore: domain {id} ({}): {why}; no longer served",
                    g.name
                ));
                g.page.0.write_u32(xs_wire::ERROR as usize, code);
                let _ = xen::send(g.port);
                self.engine.disconnect(g.conn);
                // The page and port stay until the domain goes (release), so that
                // nothing else is mapped at its slot while it lives.
                g.dead = true;
            }
        }
    }
}
