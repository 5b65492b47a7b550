//! A XenStore client over the interface page (`io/xs_wire.h`), as Linux's `xenbus`
//! talks to the store: the page and port come from `HVM_PARAM_STORE_PFN` and
//! `HVM_PARAM_STORE_EVTCHN`, requests go into the `req` ring, replies and watch events
//! come back in the `rsp` ring, and the port is notified after each side's progress.
//!
//! One [`Xenbus`] serves one vCPU at a time (it is `&mut self` throughout) and needs no
//! heap: replies are copied into the caller's buffer, watch events that arrive while a
//! reply is awaited are kept (up to [`EVENTS`] of them, later ones are counted as lost)
//! and handed out by [`Xenbus::next_event`].
//!
//! The store is not trusted: a response ring that claims more than a ring's worth of
//! bytes, a reply longer than `XENSTORE_PAYLOAD_MAX` or a reply to another request
//! breaks the connection for good ([`Error::Broken`]); a store that does not answer
//! within [`TIMEOUT_NS`] gives [`Error::Timeout`].

use core::sync::atomic::{Ordering, fence};

use oxen_abi::xs_wire::{self, msg};

use crate::xen::{self, EvtchnPort};

/// How long a reply may take.
pub const TIMEOUT_NS: u64 = 5_000_000_000;
/// Watch events kept while replies are awaited.
pub const EVENTS: usize = 8;
const EVENT_BYTES: usize = 256;
const RING: u32 = xs_wire::RING_SIZE;

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The store answered with an error (`ENOENT`, `EACCES`, `EAGAIN`, ...).
    Store(ErrName),
    /// No store: the parameters are missing, or the page cannot be mapped.
    NoStore,
    /// The store broke the protocol; the connection is no longer used.
    Broken(&'static str),
    /// No reply in time.
    Timeout,
    /// The request, or the reply, does not fit.
    TooBig,
}

/// The name of a XenStore error, as the store sent it (at most 15 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ErrName {
    len: u8,
    bytes: [u8; 15],
}

impl ErrName {
    fn new(raw: &[u8]) -> Self {
        let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
        let len = raw.len().min(15);
        let mut bytes = [0; 15];
        bytes[..len].copy_from_slice(&raw[..len]);
        Self {
            len: len as u8,
            bytes,
        }
    }

    /// The error's name (`"?"` if it was not text).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl core::fmt::Debug for ErrName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Store(e) => f.write_str(e.as_str()),
            Error::NoStore => f.write_str("no XenStore"),
            Error::Broken(why) => write!(f, "store broke the protocol: {why}"),
            Error::Timeout => f.write_str("no reply in time"),
            Error::TooBig => f.write_str("too big"),
        }
    }
}

/// A watch event: the path that changed and the watch's token.
#[derive(Clone, Copy)]
pub struct Event {
    len: usize,
    bytes: [u8; EVENT_BYTES],
    split: usize,
}

impl Event {
    /// The path that fired.
    pub fn path(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.split]).unwrap_or("?")
    }
    /// The token the watch was set with.
    pub fn token(&self) -> &str {
        let start = (self.split + 1).min(self.len);
        core::str::from_utf8(&self.bytes[start..self.len]).unwrap_or("?")
    }
}

/// A connection to the store.
pub struct Xenbus {
    page: *mut u8,
    port: EvtchnPort,
    next_req: u32,
    broken: Option<&'static str>,
    events: [Option<Event>; EVENTS],
    lost: u64,
}

impl Xenbus {
    /// Connects through the domain's store page and port. Needs [`crate::events::init`]
    /// (replies are awaited on the port).
    pub fn open() -> Result<Self, Error> {
        let (Ok(pfn), Ok(port)) = (
            xen::get_param(xen::hvm_param::STORE_PFN),
            xen::get_param(xen::hvm_param::STORE_EVTCHN),
        ) else {
            return Err(Error::NoStore);
        };
        if pfn == 0 || pfn >= 1 << 40 || port == 0 || port >= 4096 {
            return Err(Error::NoStore);
        }
        // SAFETY: the slot is the store's (xen::window_slot); a plain write-back page.
        let page = unsafe { crate::mm::map_phys(xen::window_slot::STORE, pfn << 12, false) };
        Ok(Self {
            page,
            port: port as EvtchnPort,
            next_req: 1,
            broken: None,
            events: [None; EVENTS],
            lost: 0,
        })
    }

    /// The store's event channel port.
    pub fn port(&self) -> EvtchnPort {
        self.port
    }

    /// Watch events that did not fit in the queue.
    pub fn lost_events(&self) -> u64 {
        self.lost
    }

    fn load(&self, off: u64) -> u32 {
        // SAFETY: `page` maps the 4 KiB interface page and `off` is one of its aligned
        // `u32` fields; the store changes it at any time, hence volatile.
        unsafe { self.page.add(off as usize).cast::<u32>().read_volatile() }
    }

    fn store(&self, off: u64, v: u32) {
        // SAFETY: as in `load`.
        unsafe { self.page.add(off as usize).cast::<u32>().write_volatile(v) }
    }

    fn byte(&self, off: u64, i: u32) -> u8 {
        // SAFETY: `off` is a ring's offset and `i` is masked into its 1024 bytes.
        unsafe {
            self.page
                .add((off + u64::from(i % RING)) as usize)
                .read_volatile()
        }
    }

    fn set_byte(&self, off: u64, i: u32, b: u8) {
        // SAFETY: as in `byte`.
        unsafe {
            self.page
                .add((off + u64::from(i % RING)) as usize)
                .write_volatile(b)
        }
    }

    fn fail(&mut self, why: &'static str) -> Error {
        self.broken = Some(why);
        Error::Broken(why)
    }

    fn notify(&mut self) -> Result<(), Error> {
        xen::send(self.port).map_err(|_| self.fail("the store port cannot be notified"))
    }

    fn wait(&mut self, deadline: u64) -> Result<(), Error> {
        if crate::events::wait_timeout(self.port, deadline) || crate::time::now_ns() < deadline {
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }

    /// Puts `bytes` into the request ring, waiting for room.
    fn send(&mut self, bytes: &[u8], deadline: u64) -> Result<(), Error> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let cons = self.load(xs_wire::REQ_CONS);
            let prod = self.load(xs_wire::REQ_PROD);
            let used = prod.wrapping_sub(cons);
            if used > RING {
                return Err(self.fail("request indexes out of range"));
            }
            let n = ((RING - used) as usize).min(rest.len());
            if n == 0 {
                self.wait(deadline)?;
                continue;
            }
            for (i, &b) in rest[..n].iter().enumerate() {
                self.set_byte(xs_wire::REQ, prod.wrapping_add(i as u32), b);
            }
            // The bytes before the index that publishes them.
            fence(Ordering::Release);
            self.store(xs_wire::REQ_PROD, prod.wrapping_add(n as u32));
            self.notify()?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Takes exactly `out.len()` bytes from the response ring, waiting for them.
    fn recv(&mut self, out: &mut [u8], deadline: u64) -> Result<(), Error> {
        let mut got = 0;
        while got < out.len() {
            let cons = self.load(xs_wire::RSP_CONS);
            let prod = self.load(xs_wire::RSP_PROD);
            let avail = prod.wrapping_sub(cons);
            if avail > RING {
                return Err(self.fail("response indexes out of range"));
            }
            if avail == 0 {
                self.wait(deadline)?;
                continue;
            }
            // The index before the bytes it covers.
            fence(Ordering::Acquire);
            let n = (avail as usize).min(out.len() - got);
            for (i, slot) in out[got..got + n].iter_mut().enumerate() {
                *slot = self.byte(xs_wire::RSP, cons.wrapping_add(i as u32));
            }
            fence(Ordering::Release);
            self.store(xs_wire::RSP_CONS, cons.wrapping_add(n as u32));
            self.notify()?;
            got += n;
        }
        Ok(())
    }

    /// Reads one message: its header's `(type, req_id, len)`, the payload in `out`.
    fn recv_message(&mut self, out: &mut [u8], deadline: u64) -> Result<(u32, u32, usize), Error> {
        let mut h = [0u8; xs_wire::HEADER_SIZE];
        self.recv(&mut h, deadline)?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (ty, req, len) = (word(0), word(4), word(12) as usize);
        if len > xs_wire::PAYLOAD_MAX {
            return Err(self.fail("a reply longer than XENSTORE_PAYLOAD_MAX"));
        }
        if ty == msg::WATCH_EVENT {
            let mut ev = Event {
                len: 0,
                bytes: [0; EVENT_BYTES],
                split: 0,
            };
            let mut scratch = [0u8; xs_wire::PAYLOAD_MAX];
            self.recv(&mut scratch[..len], deadline)?;
            let keep = len.min(EVENT_BYTES);
            ev.bytes[..keep].copy_from_slice(&scratch[..keep]);
            let nul = |from: usize| {
                ev.bytes[from.min(keep)..keep]
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(keep, |p| from + p)
            };
            ev.split = nul(0);
            ev.len = nul(ev.split + 1);
            match self.events.iter_mut().find(|e| e.is_none()) {
                Some(slot) => *slot = Some(ev),
                None => self.lost += 1,
            }
            return Ok((ty, req, 0));
        }
        if len > out.len() {
            let mut scratch = [0u8; xs_wire::PAYLOAD_MAX];
            self.recv(&mut scratch[..len], deadline)?;
            return Err(Error::TooBig);
        }
        self.recv(&mut out[..len], deadline)?;
        Ok((ty, req, len))
    }

    /// Sends request `ty` in transaction `tx` with `parts` as its payload (each part
    /// followed by a NUL if `nul` says so) and copies the reply into `out`; returns its
    /// length.
    pub fn request(
        &mut self,
        ty: u32,
        tx: u32,
        parts: &[&[u8]],
        nul: &[bool],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        if let Some(why) = self.broken {
            return Err(Error::Broken(why));
        }
        let len: usize = parts
            .iter()
            .enumerate()
            .map(|(i, p)| p.len() + usize::from(nul.get(i).copied().unwrap_or(true)))
            .sum();
        if len > xs_wire::PAYLOAD_MAX {
            return Err(Error::TooBig);
        }
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        let mut msg = [0u8; xs_wire::HEADER_SIZE + xs_wire::PAYLOAD_MAX];
        for (i, w) in [ty, req, tx, len as u32].into_iter().enumerate() {
            msg[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        let mut at = xs_wire::HEADER_SIZE;
        for (i, p) in parts.iter().enumerate() {
            msg[at..at + p.len()].copy_from_slice(p);
            at += p.len();
            if nul.get(i).copied().unwrap_or(true) {
                msg[at] = 0;
                at += 1;
            }
        }
        let deadline = crate::time::now_ns() + TIMEOUT_NS;
        self.send(&msg[..at], deadline)?;
        loop {
            let (rty, rreq, n) = self.recv_message(out, deadline)?;
            if rty == msg::WATCH_EVENT {
                continue;
            }
            if rreq != req {
                return Err(self.fail("a reply to another request"));
            }
            if rty == msg::ERROR {
                return Err(Error::Store(ErrName::new(&out[..n])));
            }
            if rty != ty {
                return Err(self.fail("a reply of another type"));
            }
            return Ok(n);
        }
    }

    /// `XS_READ` of `path` into `out`; the value's length.
    pub fn read(&mut self, tx: u32, path: &str, out: &mut [u8]) -> Result<usize, Error> {
        self.request(msg::READ, tx, &[path.as_bytes()], &[true], out)
    }

    /// `XS_WRITE` of `value` at `path`.
    pub fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), Error> {
        let mut ok = [0u8; 8];
        self.request(
            msg::WRITE,
            tx,
            &[path.as_bytes(), value],
            &[true, false],
            &mut ok,
        )
        .map(drop)
    }

    /// `XS_RM` of `path` (and everything under it).
    pub fn rm(&mut self, tx: u32, path: &str) -> Result<(), Error> {
        let mut ok = [0u8; 8];
        self.request(msg::RM, tx, &[path.as_bytes()], &[true], &mut ok)
            .map(drop)
    }

    /// `XS_DIRECTORY` of `path`: the children's names, each ended by a NUL, in `out`.
    pub fn directory(&mut self, tx: u32, path: &str, out: &mut [u8]) -> Result<usize, Error> {
        self.request(msg::DIRECTORY, tx, &[path.as_bytes()], &[true], out)
    }

    /// `XS_WATCH`: events for `path` and below will carry `token`. The store fires the
    /// watch once at once, as Xen's do.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        let mut ok = [0u8; 8];
        let parts = [path.as_bytes(), token.as_bytes()];
        self.request(msg::WATCH, 0, &parts, &[true, true], &mut ok)
            .map(drop)
    }

    /// `XS_UNWATCH`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        let mut ok = [0u8; 8];
        let parts = [path.as_bytes(), token.as_bytes()];
        self.request(msg::UNWATCH, 0, &parts, &[true, true], &mut ok)
            .map(drop)
    }

    /// `XS_TRANSACTION_START`: the new transaction's id.
    pub fn transaction_start(&mut self) -> Result<u32, Error> {
        let mut id = [0u8; 16];
        let n = self.request(msg::TRANSACTION_START, 0, &[b""], &[true], &mut id)?;
        let text = id[..n].split(|&b| b == 0).next().unwrap_or(&[]);
        core::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| self.fail("a transaction id that is not a number"))
    }

    /// `XS_TRANSACTION_END`, committing if `commit`; a conflict is
    /// `Error::Store("EAGAIN")`.
    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), Error> {
        let mut ok = [0u8; 8];
        let word: &[u8] = if commit { b"T" } else { b"F" };
        self.request(msg::TRANSACTION_END, tx, &[word], &[true], &mut ok)
            .map(drop)
    }

    /// The next watch event, waiting for one until `deadline_ns`.
    pub fn next_event(&mut self, deadline_ns: u64) -> Result<Event, Error> {
        loop {
            // Oldest first: events fill the first free slot, and the queue moves down.
            if let Some(ev) = self.events[0].take() {
                self.events.rotate_left(1);
                return Ok(ev);
            }
            if let Some(why) = self.broken {
                return Err(Error::Broken(why));
            }
            let cons = self.load(xs_wire::RSP_CONS);
            if self.load(xs_wire::RSP_PROD) == cons {
                self.wait(deadline_ns)?;
                continue;
            }
            let mut none = [0u8; 0];
            match self.recv_message(&mut none, deadline_ns) {
                Ok((msg::WATCH_EVENT, _, _)) => {}
                Ok(_) | Err(Error::TooBig) => return Err(self.fail("a reply nobody asked for")),
                Err(e) => return Err(e),
            }
        }
    }
}

/// The node the toolstack writes a shutdown request into (relative to the domain's
/// home), and the watch token the runtime's helpers use for it.
pub const CONTROL_SHUTDOWN: &str = "control/shutdown";
pub const CONTROL_TOKEN: &str = "control";

/// What `control/shutdown` asked for (`xl shutdown`, `xl reboot`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownRequest {
    Poweroff,
    Reboot,
    Suspend,
    Halt,
    /// Something else (the guest should answer it as Linux does: ignore it).
    Other,
}

impl ShutdownRequest {
    /// The `SCHEDOP_shutdown` reason a guest ends with for this request.
    pub fn reason(self) -> Option<u32> {
        use oxen_abi::sched_op::{SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SUSPEND};
        match self {
            ShutdownRequest::Poweroff | ShutdownRequest::Halt => Some(SHUTDOWN_POWEROFF),
            ShutdownRequest::Reboot => Some(SHUTDOWN_REBOOT),
            ShutdownRequest::Suspend => Some(SHUTDOWN_SUSPEND),
            ShutdownRequest::Other => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ShutdownRequest::Poweroff => "poweroff",
            ShutdownRequest::Reboot => "reboot",
            ShutdownRequest::Suspend => "suspend",
            ShutdownRequest::Halt => "halt",
            ShutdownRequest::Other => "other",
        }
    }
}

impl Xenbus {
    /// Watches `control/shutdown` (token [`CONTROL_TOKEN`]), as Linux's xenbus does at
    /// start; the store fires it once at once.
    pub fn watch_shutdown(&mut self) -> Result<(), Error> {
        self.watch(CONTROL_SHUTDOWN, CONTROL_TOKEN)
    }

    /// Reads `control/shutdown`; a request there is acknowledged as Linux does, by
    /// clearing the node, and returned. `None` while the node is empty.
    pub fn take_shutdown_request(&mut self) -> Result<Option<ShutdownRequest>, Error> {
        let mut buf = [0u8; 16];
        let n = match self.read(0, CONTROL_SHUTDOWN, &mut buf) {
            Ok(n) => n,
            Err(Error::Store(e)) if e.as_str() == "ENOENT" => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(None);
        }
        self.write(0, CONTROL_SHUTDOWN, b"")?;
        Ok(Some(match &buf[..n] {
            b"poweroff" => ShutdownRequest::Poweroff,
            b"reboot" => ShutdownRequest::Reboot,
            b"suspend" => ShutdownRequest::Suspend,
            b"halt" => ShutdownRequest::Halt,
            _ => ShutdownRequest::Other,
        }))
    }
}

impl Xenbus {
    /// For hostile test guests: publishes a request producer index a ring cannot hold
    /// (a ring and a half ahead of the consumer), notifies, and waits until `deadline_ns`
    /// for the store to write the page's `error` field. Returns the field and whether it
    /// became nonzero. The connection is broken afterwards.
    pub fn break_ring_for_test(&mut self, deadline_ns: u64) -> (u32, bool) {
        let cons = self.load(xs_wire::REQ_CONS);
        self.store(xs_wire::REQ_PROD, cons.wrapping_add(RING + RING / 2));
        let _ = xen::send(self.port);
        self.broken = Some("broken on purpose");
        self.await_error(deadline_ns)
    }

    /// For tests of the store: sends a well-formed header whose `len` is `len` (over
    /// `XENSTORE_PAYLOAD_MAX` for an oversized one) and no payload, then waits as
    /// [`Xenbus::break_ring_for_test`] does. The connection is broken afterwards.
    pub fn send_header_for_test(&mut self, len: u32, deadline_ns: u64) -> (u32, bool) {
        let mut h = [0u8; xs_wire::HEADER_SIZE];
        h[..4].copy_from_slice(&xs_wire::msg::READ.to_le_bytes());
        h[4..8].copy_from_slice(&0x5eed_u32.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        if self.send(&h, deadline_ns).is_err() {
            return (0, false);
        }
        self.broken = Some("broken on purpose");
        self.await_error(deadline_ns)
    }

    fn await_error(&mut self, deadline_ns: u64) -> (u32, bool) {
        loop {
            let e = self.load(xs_wire::ERROR);
            if e != 0 {
                return (e, true);
            }
            if !crate::events::wait_timeout(self.port, deadline_ns)
                && crate::time::now_ns() >= deadline_ns
            {
                return (0, false);
            }
        }
    }
}
