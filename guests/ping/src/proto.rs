//! The ping/pong protocol, shared by both guests (`pong` includes this file).
//!
//! One page of ping's RAM holds an `oxen-ring` shared ring of [`Req`] / [`Rsp`] (64-byte
//! entries, 32 slots), granted to pong as grant reference [`GREF`], writable. Ping
//! allocates an unbound event channel for pong; pong binds to it. Each side notifies
//! the other as the ring's push-and-check-notify says, and sleeps on the channel after
//! a final check found nothing to do.
//!
//! Requests with `id` below [`UNMAP`] carry data: `seq` counts requests from 0, `len`
//! bytes (at most [`PAYLOAD`]) of `payload` are pseudo-random, and `sum` is
//! [`checksum`] of them. Pong answers each with the same `id` and `seq`, the checksum it
//! computed itself, and [`STATUS_OK`] or [`STATUS_BAD_SUM`]. Control requests get no
//! answer on the ring:
//!
//! - [`STOP`]: pong stops using the ring, unmaps it, sends one event, closes its port
//!   and ends. Ping ends its grant once `end_access` succeeds.
//! - [`UNMAP`] followed at once by [`FENCE`] (the revoke test): pong stops, waits until
//!   it sees the FENCE in the ring, clears its port, unmaps the ring and sends an event.
//!   Ping revokes the grant once `end_access` succeeds and sends an event: by then pong
//!   has cleared its port after every earlier event of ping's (ping sends nothing between
//!   FENCE and that event), so the event means "revoked". Pong tries to map the grant
//!   again, reports the refusal, and closes its port: that state change
//!   (`EVTCHNOP_status` says unbound) is how ping learns pong is done.

// Each guest uses its half of the protocol.
#![allow(dead_code)]

use oxen_ring::Pod;

/// The grant reference of the ring page (the first one not reserved).
pub const GREF: u32 = 8;
/// Bytes of payload a request can carry.
pub const PAYLOAD: usize = 48;

/// Control request: unmap the ring and end.
pub const STOP: u32 = u32::MAX;
/// Control request: unmap the ring and wait to try mapping it again (revoke test).
pub const UNMAP: u32 = u32::MAX - 1;
/// Control request pushed right after [`UNMAP`], without a notification.
pub const FENCE: u32 = u32::MAX - 2;

/// The answer's `status`: checksum matched.
pub const STATUS_OK: u32 = 0;
/// The answer's `status`: checksum did not match (or `len` was too large).
pub const STATUS_BAD_SUM: u32 = 1;

/// A request (64 bytes, no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub id: u32,
    pub seq: u32,
    pub len: u32,
    pub payload: [u8; PAYLOAD],
    pub sum: u32,
}

// SAFETY: integers and a byte array only, 4 + 4 + 4 + 48 + 4 = 64 bytes, no padding.
unsafe impl Pod for Req {}

/// A response (16 bytes, no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Rsp {
    pub id: u32,
    pub seq: u32,
    pub sum_check: u32,
    pub status: u32,
}

// SAFETY: four u32s, no padding.
unsafe impl Pod for Rsp {}

const _: () = assert!(core::mem::size_of::<Req>() == 64 && core::mem::size_of::<Rsp>() == 16);

/// Slots in the ring (32 for these entries in one page).
pub const RING_SLOTS: u32 = oxen_ring::ring_size::<Req, Rsp>(oxen_ring::PAGE_SIZE);

/// FNV-1a over `seq`, `len` and the first `len` payload bytes (`len` is clamped to
/// [`PAYLOAD`]).
pub fn checksum(seq: u32, len: u32, payload: &[u8; PAYLOAD]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let n = (len as usize).min(PAYLOAD);
    for &b in seq
        .to_le_bytes()
        .iter()
        .chain(len.to_le_bytes().iter())
        .chain(payload[..n].iter())
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Marsaglia's xorshift64.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// A control request (no payload).
pub fn control(id: u32, seq: u32) -> Req {
    Req {
        id,
        seq,
        len: 0,
        payload: [0; PAYLOAD],
        sum: checksum(seq, 0, &[0; PAYLOAD]),
    }
}

/// A numeric command-line argument, or `default`.
pub fn arg(info: &oxen_guest_rt::StartInfo, key: &str, default: u64) -> u64 {
    match info.cmdline_arg(key) {
        None => default,
        Some(v) => parse(v).unwrap_or_else(|| panic!("bad {key}={v} on the command line")),
    }
}

/// Parses a decimal or `0x` hexadecimal number.
fn parse(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Milliseconds from now, as a system-time deadline.
pub fn deadline_ms(ms: u64) -> u64 {
    oxen_guest_rt::time::now_ns() + ms * 1_000_000
}
