//! Shared request/response rings with the memory layout and index arithmetic
//! of Xen's `public/io/ring.h`, written for a peer that may be hostile.
//!
//! A ring lives in memory shared with another domain. That domain can write
//! any byte of it at any moment, so this crate:
//!
//! * touches the shared page only through volatile reads and writes of raw
//!   pointers (module `shared`, the only place with `unsafe`), with
//!   `core::sync::atomic` fences where ring.h has `xen_wmb`/`xen_rmb`/`xen_mb`;
//! * copies every entry out of the page before looking at it (no references
//!   into shared memory ever exist), and only accepts entry types for which
//!   every bit pattern is a valid value ([`Pod`]);
//! * reads each producer index the peer owns once, checks it against our own
//!   private indices and refuses it with [`RingError`] if it claims more
//!   entries than can exist or runs backwards — it never panics and never
//!   indexes outside the entry array.
//!
//! Layout (identical to `DEFINE_RING_TYPES`): four `u32` indices
//! (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`), a 4-byte private union
//! and 44 bytes of padding (48 bytes in all, ending at offset 64), then the
//! array of entries, each the size of the union of a request and a response.
//! The number of entries is the largest power of two that fits.
//!
//! See `docs/rings.md` for the design and for how this differs from ring.h.
//!
//! ```
//! use oxen_ring::{BackRing, FrontRing, PageBuf, Pod, RingError, Sring};
//!
//! #[repr(C)]
//! #[derive(Clone, Copy)]
//! struct Req { id: u64, a: u32, b: u32 }
//! #[repr(C)]
//! #[derive(Clone, Copy)]
//! struct Rsp { id: u64, sum: u32, pad: u32 }
//! // SAFETY: integer fields only, no padding.
//! unsafe impl Pod for Req {}
//! // SAFETY: integer fields only, no padding.
//! unsafe impl Pod for Rsp {}
//!
//! # fn main() -> Result<(), RingError> {
//! let mut page = Box::new(PageBuf::new());
//! let sring = Sring::<Req, Rsp>::from_page(&mut page)?;
//! let mut front = FrontRing::new(sring); // SHARED_RING_INIT + FRONT_RING_INIT
//! let mut back = BackRing::new(sring); // normally the other domain
//! assert_eq!(front.size(), 128);
//!
//! front.produce_request(Req { id: 7, a: 2, b: 3 })?;
//! let notify = front.push_requests_and_check_notify();
//! assert!(notify); // req_event starts at 1
//!
//! while let Some(req) = back.consume_request()? {
//!     back.produce_response(Rsp { id: req.id, sum: req.a + req.b, pad: 0 })?;
//! }
//! assert!(back.push_responses_and_check_notify());
//! assert!(!back.final_check_for_requests()?); // idle: re-armed req_event
//!
//! let rsp = front.consume_response()?.expect("one response");
//! assert_eq!((rsp.id, rsp.sum), (7, 5));
//! assert!(!front.final_check_for_responses()?);
//! # Ok(())
//! # }
//! ```
#![no_std]

mod back;
mod front;
mod shared;

#[cfg(test)]
mod tests;

pub use back::BackRing;
pub use front::FrontRing;
pub use shared::{PAGE_SIZE, PageBuf, Sring};

/// Ring index as in ring.h's `RING_IDX`: free running, wraps at 2^32, masked
/// with `size - 1` to find a slot.
pub type RingIdx = u32;

/// Byte offset of the first entry if the entry's alignment is at most 64:
/// 16 bytes of indices plus the 48-byte private/pad area.
pub const SRING_HEADER_BYTES: usize = 64;
/// Offset of the `pvt` union (`pvt_pad[4]`, netif's `smartpoll_active`, ...).
pub const SRING_PVT_OFFSET: usize = 16;
/// Offset of the 44-byte `__pad` array that follows the `pvt` union.
pub const SRING_PAD_OFFSET: usize = 20;
/// Size of `__pad`.
pub const SRING_PAD_BYTES: usize = 44;

/// Types that may be copied in from memory a peer controls.
///
/// # Safety
///
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid value of
/// the type: no `bool`, `char`, enums, references, pointers one dereferences,
/// `NonZero*` and the like, directly or in fields. Types should be
/// `#[repr(C)]` so that the layout matches the C definition of the protocol.
/// The type must also have no padding bytes (entries are copied in and out
/// word by word, and padding would leak our memory to the peer).
pub unsafe trait Pod: Copy {}

macro_rules! pod {
    ($($t:ty),*) => { $(
        // SAFETY: every bit pattern is a valid value of a primitive integer.
        unsafe impl Pod for $t {}
    )* };
}
pod!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);
// SAFETY: an array is valid iff each element is; every element is `Pod`.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// Which of the four shared indices a value came from or goes to. The
/// discriminant is its byte offset in the shared page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SharedIndex {
    /// Front's request producer (written by the front).
    ReqProd = 0,
    /// Back asks to be notified when `req_prod` passes this (written by the back).
    ReqEvent = 4,
    /// Back's response producer (written by the back).
    RspProd = 8,
    /// Front asks to be notified when `rsp_prod` passes this (written by the front).
    RspEvent = 12,
}

/// What went wrong. Errors caused by the peer carry the values it wrote so
/// they can be logged; the ring's private state is left untouched by them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The peer's producer index claims more unconsumed entries than can
    /// exist (`value - consumer > max_ahead`, in wrapping `u32` arithmetic —
    /// this also catches a producer that is behind our consumer).
    Overrun {
        /// Field that was read.
        index: SharedIndex,
        /// The value the peer wrote.
        value: RingIdx,
        /// Our consumer index (`rsp_cons` or `req_cons`).
        consumer: RingIdx,
        /// Largest number of unconsumed entries that can be legitimate.
        max_ahead: u32,
    },
    /// The peer's producer index moved backwards, below a value we had
    /// already accepted (but not below our consumer).
    Regressed {
        /// Field that was read.
        index: SharedIndex,
        /// The value the peer wrote.
        value: RingIdx,
        /// The value we had accepted before.
        previous: RingIdx,
    },
    /// Front: no free slot for another request.
    Full,
    /// Back: every consumed request has already been answered, so there is
    /// no slot a response may use.
    NoRequestOutstanding,
    /// Constructor: the area is too small for even one entry.
    TooSmall,
    /// Constructor: the area's address is null or not aligned for the entries
    /// (or to 4 bytes for the indices).
    Misaligned,
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RingError::Overrun {
                index,
                value,
                consumer,
                max_ahead,
            } => write!(
                f,
                "peer's {index:?} = {value:#x} is not within {max_ahead} ahead of consumer {consumer:#x}"
            ),
            RingError::Regressed {
                index,
                value,
                previous,
            } => write!(
                f,
                "peer's {index:?} moved back to {value:#x} from {previous:#x}"
            ),
            RingError::Full => f.write_str("ring full"),
            RingError::NoRequestOutstanding => f.write_str("no request outstanding to respond to"),
            RingError::TooSmall => f.write_str("shared area too small for one entry"),
            RingError::Misaligned => f.write_str("shared area null or misaligned"),
        }
    }
}

impl core::error::Error for RingError {}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

const fn round_up(x: usize, align: usize) -> usize {
    x.div_ceil(align) * align
}

/// Alignment of one entry (the union of `Req` and `Rsp`).
pub const fn entry_align<Req, Rsp>() -> usize {
    max(align_of::<Req>(), align_of::<Rsp>())
}

/// Size of one entry: the size of the C union of `Req` and `Rsp`.
pub const fn entry_size<Req, Rsp>() -> usize {
    round_up(
        max(size_of::<Req>(), size_of::<Rsp>()),
        entry_align::<Req, Rsp>(),
    )
}

/// Offset of `ring[0]` in the shared area (64 unless an entry needs more
/// alignment, as the C compiler would lay it out).
pub const fn entries_offset<Req, Rsp>() -> usize {
    round_up(SRING_HEADER_BYTES, entry_align::<Req, Rsp>())
}

/// Number of entries of a ring of `Req`/`Rsp` in an area of `bytes` bytes:
/// the largest power of two that fits (ring.h's `__CONST_RING_SIZE`), at
/// most 2^31 so that free-running `u32` differences stay meaningful. Zero if
/// not even one entry fits or the entry is zero-sized.
pub const fn ring_size<Req, Rsp>(bytes: usize) -> u32 {
    let esz = entry_size::<Req, Rsp>();
    let off = entries_offset::<Req, Rsp>();
    if esz == 0 || bytes < off + esz {
        return 0;
    }
    let n = (bytes - off) / esz;
    let n = if n > (1 << 31) { 1 << 31 } else { n };
    // Largest power of two <= n (n >= 1 here).
    (1usize << (usize::BITS - 1 - n.leading_zeros())) as u32
}
