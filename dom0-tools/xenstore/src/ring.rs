//! The shared-memory ring transport, as a second thin adapter over the
//! engine.
//!
//! A guest talks to XenStore through one page (`struct
//! xenstore_domain_interface`): a 1024-byte request ring and a 1024-byte
//! response ring, each with free-running `u32` consumer and producer
//! indexes. [`service`] moves whatever the guest produced into the engine
//! and as much queued output as fits back into the response ring. Access to
//! the page goes through [`RingPage`], so the dom0 implementation can add
//! the memory barriers and volatile accesses a page shared with another
//! domain needs, while tests use plain memory ([`MemoryRing`]).

use alloc::vec::Vec;

use crate::connection::ConnId;
use crate::engine::Engine;
use crate::error::{XsError, XsResult};

/// Size of each ring (`XENSTORE_RING_SIZE`).
pub const RING_SIZE: u32 = oxen_abi::xs_wire::RING_SIZE;

/// Reduces a free-running index to a ring offset.
pub const fn mask(index: u32) -> usize {
    (index & (RING_SIZE - 1)) as usize
}

/// One domain's interface page.
pub trait RingPage {
    /// Request ring `(consumer, producer)`.
    fn req_indexes(&self) -> (u32, u32);
    /// Publishes how far requests were consumed.
    fn set_req_cons(&mut self, cons: u32);
    /// The request byte at ring offset `offset`.
    fn req_byte(&self, offset: usize) -> u8;
    /// Response ring `(consumer, producer)`.
    fn rsp_indexes(&self) -> (u32, u32);
    /// Publishes how far responses were produced.
    fn set_rsp_prod(&mut self, prod: u32);
    /// Stores a response byte at ring offset `offset`.
    fn set_rsp_byte(&mut self, offset: usize, byte: u8);
}

/// What one [`service`] call moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    /// Request bytes taken from the ring.
    pub consumed: u32,
    /// Response bytes put into the ring.
    pub produced: u32,
}

/// Services connection `id` over `page` once. Fails with `EIO` if the guest
/// published impossible indexes (more than a ring's worth outstanding); the
/// caller should then report `XENSTORE_ERROR_RINGIDX` and stop serving it.
/// Fails with `ENOENT` once the engine has closed the connection (for
/// instance after an oversize header; see
/// [`Engine::take_closed`](crate::Engine::take_closed)). Takes no requests
/// while [`Engine::wants_input`](crate::Engine::wants_input) says the guest
/// has too many replies uncollected.
pub fn service(engine: &mut Engine, id: ConnId, page: &mut impl RingPage) -> XsResult<Activity> {
    let (cons, prod) = page.req_indexes();
    let mut available = prod.wrapping_sub(cons);
    if available > RING_SIZE {
        return Err(XsError::Io);
    }
    // Backpressure: requests wait in the guest's ring while its replies
    // are not collected.
    if engine.wants_input(id) {
        let bytes: Vec<u8> = (0..available)
            .map(|i| page.req_byte(mask(cons.wrapping_add(i))))
            .collect();
        page.set_req_cons(prod);
        engine.feed(id, &bytes)?;
    } else {
        available = 0;
    }

    let (rsp_cons, mut rsp_prod) = page.rsp_indexes();
    let used = rsp_prod.wrapping_sub(rsp_cons);
    if used > RING_SIZE {
        return Err(XsError::Io);
    }
    let mut free = RING_SIZE - used;
    let mut produced = 0;
    while free > 0 {
        let chunk = engine.output(id);
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len().min(free as usize);
        for &b in &chunk[..n] {
            page.set_rsp_byte(mask(rsp_prod), b);
            rsp_prod = rsp_prod.wrapping_add(1);
        }
        engine.consume(id, n);
        // `n` is at most `free`, itself at most RING_SIZE.
        let n = n as u32;
        free -= n;
        produced += n;
    }
    page.set_rsp_prod(rsp_prod);
    Ok(Activity {
        consumed: available,
        produced,
    })
}

/// An interface page in ordinary memory (tests, simulations).
#[derive(Debug, Clone)]
pub struct MemoryRing {
    /// Request ring.
    pub req: [u8; RING_SIZE as usize],
    /// Response ring.
    pub rsp: [u8; RING_SIZE as usize],
    /// Request consumer index.
    pub req_cons: u32,
    /// Request producer index.
    pub req_prod: u32,
    /// Response consumer index.
    pub rsp_cons: u32,
    /// Response producer index.
    pub rsp_prod: u32,
}

impl Default for MemoryRing {
    fn default() -> Self {
        Self {
            req: [0; RING_SIZE as usize],
            rsp: [0; RING_SIZE as usize],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
        }
    }
}

impl MemoryRing {
    /// Guest side: writes as much of `bytes` as fits; returns how much.
    pub fn guest_send(&mut self, bytes: &[u8]) -> usize {
        let free = (RING_SIZE - self.req_prod.wrapping_sub(self.req_cons)) as usize;
        let n = free.min(bytes.len());
        for &b in &bytes[..n] {
            self.req[mask(self.req_prod)] = b;
            self.req_prod = self.req_prod.wrapping_add(1);
        }
        n
    }

    /// Guest side: takes every response byte available.
    pub fn guest_receive(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.rsp_cons != self.rsp_prod {
            out.push(self.rsp[mask(self.rsp_cons)]);
            self.rsp_cons = self.rsp_cons.wrapping_add(1);
        }
        out
    }
}

impl RingPage for MemoryRing {
    fn req_indexes(&self) -> (u32, u32) {
        (self.req_cons, self.req_prod)
    }

    fn set_req_cons(&mut self, cons: u32) {
        self.req_cons = cons;
    }

    fn req_byte(&self, offset: usize) -> u8 {
        self.req[offset]
    }

    fn rsp_indexes(&self) -> (u32, u32) {
        (self.rsp_cons, self.rsp_prod)
    }

    fn set_rsp_prod(&mut self, prod: u32) {
        self.rsp_prod = prod;
    }

    fn set_rsp_byte(&mut self, offset: usize, byte: u8) {
        self.rsp[offset] = byte;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::ConnKind;
    use crate::quota::Quotas;
    use crate::wire::{Decoder, Message, MsgType};
    use alloc::vec;

    fn replies(bytes: &[u8]) -> Vec<Message> {
        let mut d = Decoder::new();
        let mut input = bytes;
        let mut out = vec![];
        while let Some(m) = d.decode(&mut input) {
            out.push(m.unwrap());
        }
        out
    }

    #[test]
    fn guest_and_socket_share_one_engine() {
        let mut engine = Engine::new(Quotas::default());
        let dom0 = engine.connect(ConnKind::privileged_socket());
        let guest = engine.connect(ConnKind::domain(0));
        let mut page = MemoryRing {
            req_cons: u32::MAX - 5,
            req_prod: u32::MAX - 5,
            rsp_cons: u32::MAX - 3,
            rsp_prod: u32::MAX - 3,
            ..MemoryRing::default()
        };
        // A 2000-byte value forces several rounds through the 1024-byte rings.
        let value = vec![b'v'; 2000];
        let mut request = b"/big\0".to_vec();
        request.extend_from_slice(&value);
        let mut wire = Message::new(MsgType::Write, 1, 0, request).to_bytes();
        wire.extend(Message::new(MsgType::Read, 2, 0, b"/big\0".to_vec()).to_bytes());
        let mut sent = 0;
        let mut received = vec![];
        for _ in 0..20 {
            sent += page.guest_send(&wire[sent..]);
            service(&mut engine, guest, &mut page).unwrap();
            received.extend(page.guest_receive());
        }
        assert_eq!(sent, wire.len());
        let got = replies(&received);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload, b"OK\0");
        assert_eq!(got[1].payload, value);
        // The socket side sees the same store.
        let read = Message::new(MsgType::Read, 3, 0, b"/big\0".to_vec());
        engine.feed(dom0, &read.to_bytes()).unwrap();
        assert_eq!(replies(&engine.drain_output(dom0))[0].payload, value);
    }

    #[test]
    fn a_guest_that_never_collects_replies_is_held_back() {
        let quotas = Quotas {
            outstanding_requests: 4,
            ..Quotas::default()
        };
        let mut engine = Engine::new(quotas);
        let guest = engine.connect(ConnKind::domain(3));
        let mut page = MemoryRing::default();
        // Replies of about 300 bytes each: the response ring holds three.
        let mut request = b"/local/domain/3/".to_vec();
        request.extend(vec![b'a'; 280]);
        request.push(0);
        let one = Message::new(MsgType::Read, 1, 0, request).to_bytes();
        for _ in 0..50 {
            page.guest_send(&one);
            service(&mut engine, guest, &mut page).unwrap();
        }
        let conn = engine.connection(guest).unwrap();
        assert!(conn.queued_replies() <= 4, "{}", conn.queued_replies());
        assert!(page.req_prod != page.req_cons, "requests wait in the ring");
    }

    #[test]
    fn impossible_indexes_are_refused() {
        let mut engine = Engine::new(Quotas::default());
        let guest = engine.connect(ConnKind::domain(3));
        let mut page = MemoryRing {
            req_prod: RING_SIZE + 1,
            ..MemoryRing::default()
        };
        assert_eq!(service(&mut engine, guest, &mut page), Err(XsError::Io));
        let mut page = MemoryRing {
            rsp_prod: RING_SIZE + 1,
            ..MemoryRing::default()
        };
        assert_eq!(service(&mut engine, guest, &mut page), Err(XsError::Io));
    }
}
