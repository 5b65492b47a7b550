//! The only module that touches shared memory, and the only one with
//! `unsafe`. Everything goes through volatile accesses of raw pointers;
//! no reference into the shared area is ever created.

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{Ordering, fence};

use crate::{Pod, RingError, RingIdx, SRING_PAD_BYTES, SRING_PAD_OFFSET, SRING_PVT_OFFSET};
use crate::{SharedIndex, entries_offset, entry_align, entry_size, ring_size};

/// Xen's ring page size (`XEN_PAGE_SHIFT` 12).
pub const PAGE_SIZE: usize = 4096;

/// An owned, page-aligned page, for rings whose memory we allocate
/// ourselves (tests, host tools, a frontend before granting the page).
#[repr(C, align(4096))]
#[derive(Clone)]
pub struct PageBuf(pub [u8; PAGE_SIZE]);

impl PageBuf {
    /// A zeroed page.
    pub const fn new() -> Self {
        PageBuf([0; PAGE_SIZE])
    }
}

impl Default for PageBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// Handle on a shared ring area (ring.h's `struct X_sring *` plus its
/// size). Copying the handle does not copy the ring; a [`FrontRing`]
/// and a [`BackRing`] built from copies of one handle talk to each other.
///
/// The handle is neither `Send` nor `Sync`.
///
/// [`FrontRing`]: crate::FrontRing
/// [`BackRing`]: crate::BackRing
pub struct Sring<'a, Req, Rsp> {
    base: *mut u8,
    nr_ents: u32,
    _area: PhantomData<(&'a mut [u8], Req, Rsp)>,
}

impl<Req, Rsp> Clone for Sring<'_, Req, Rsp> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Req, Rsp> Copy for Sring<'_, Req, Rsp> {}

impl<Req, Rsp> core::fmt::Debug for Sring<'_, Req, Rsp> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sring")
            .field("base", &self.base)
            .field("nr_ents", &self.nr_ents)
            .finish()
    }
}

/// ring.h's `xen_wmb()`: earlier stores are visible before later ones.
#[inline(always)]
pub(crate) fn wmb() {
    fence(Ordering::Release);
}

/// ring.h's `xen_rmb()`: earlier loads complete before later ones.
#[inline(always)]
pub(crate) fn rmb() {
    fence(Ordering::Acquire);
}

/// ring.h's `xen_mb()`: full barrier (stores before later loads, too).
#[inline(always)]
pub(crate) fn mb() {
    fence(Ordering::SeqCst);
}

impl<'a, Req: Pod, Rsp: Pod> Sring<'a, Req, Rsp> {
    /// A handle on `size` bytes at `ptr`. The number of entries is
    /// [`ring_size`]`::<Req, Rsp>(size)`.
    ///
    /// Fails if `ptr` is null or not aligned to the entries (and to 4), or
    /// if not even one entry fits.
    ///
    /// # Safety
    ///
    /// For `'a`, the `size` bytes at `ptr` must stay mapped, readable and
    /// writable, and must not be accessed through Rust references (other
    /// handles, volatile or foreign accesses — such as the peer's — are
    /// fine). Nothing else in this program may access the area concurrently
    /// from another thread while these handles use it.
    pub unsafe fn from_raw(ptr: *mut u8, size: usize) -> Result<Self, RingError> {
        let align = if entry_align::<Req, Rsp>() > 4 {
            entry_align::<Req, Rsp>()
        } else {
            4
        };
        if ptr.is_null() || !(ptr as usize).is_multiple_of(align) {
            return Err(RingError::Misaligned);
        }
        let nr_ents = ring_size::<Req, Rsp>(size);
        if nr_ents == 0 {
            return Err(RingError::TooSmall);
        }
        Ok(Sring {
            base: ptr,
            nr_ents,
            _area: PhantomData,
        })
    }

    /// A handle on a page we own. Fails only if one entry does not fit.
    pub fn from_page(page: &'a mut PageBuf) -> Result<Self, RingError> {
        let ptr = page.0.as_mut_ptr();
        // SAFETY: the page is exclusively borrowed for 'a, so nothing accesses
        // it through references meanwhile; it is 4096-aligned, which covers
        // any entry alignment up to a page, and larger alignments are
        // refused by the check in from_raw.
        unsafe { Self::from_raw(ptr, PAGE_SIZE) }
    }

    /// Number of entries (`RING_SIZE`), a power of two.
    pub fn size(&self) -> u32 {
        self.nr_ents
    }

    /// Base address of the area (e.g. to hand to C code or to grant).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base
    }

    /// Volatile read of one shared index. The value is whatever the peer
    /// last wrote; treat it as an allegation.
    pub fn load(&self, which: SharedIndex) -> RingIdx {
        // SAFETY: from_raw checked the area holds at least the 64-byte header
        // and is 4-aligned; `which` is one of the offsets 0, 4, 8, 12.
        unsafe { ptr::read_volatile(self.base.add(which as usize).cast::<u32>()) }
    }

    /// Volatile write of one shared index (rings use this; it is public so
    /// tests and tools can play a misbehaving peer).
    pub fn store(&self, which: SharedIndex, value: RingIdx) {
        // SAFETY: as in `load`.
        unsafe { ptr::write_volatile(self.base.add(which as usize).cast::<u32>(), value) }
    }

    /// ring.h's `SHARED_RING_INIT`: producers 0, events 1, the private
    /// union and the padding zeroed. Entries are left alone.
    pub fn init(&self) {
        self.store(SharedIndex::ReqProd, 0);
        self.store(SharedIndex::RspProd, 0);
        self.store(SharedIndex::ReqEvent, 1);
        self.store(SharedIndex::RspEvent, 1);
        for off in SRING_PVT_OFFSET..SRING_PAD_OFFSET + SRING_PAD_BYTES {
            // SAFETY: offsets 16..64 lie in the header, inside the area.
            unsafe { ptr::write_volatile(self.base.add(off), 0) }
        }
    }

    /// Address of the slot for free-running index `idx`, masked so it is
    /// always one of the `nr_ents` entries.
    fn slot(&self, idx: RingIdx) -> *mut u8 {
        let i = (idx & (self.nr_ents - 1)) as usize;
        // SAFETY: i < nr_ents and from_raw checked that
        // entries_offset + nr_ents * entry_size <= size, so the result is
        // within (or one past) the area.
        unsafe {
            self.base
                .add(entries_offset::<Req, Rsp>() + i * entry_size::<Req, Rsp>())
        }
    }

    /// `RING_COPY_REQUEST`: a volatile copy of the request in slot `idx`.
    pub(crate) fn read_req(&self, idx: RingIdx) -> Req {
        // SAFETY: slot() is in bounds, aligned for the entry union (base
        // aligned, offset and entry size multiples of its alignment) and at
        // least size_of::<Req>() long.
        unsafe { copy_in(self.slot(idx)) }
    }

    /// `RING_COPY_RESPONSE`: a volatile copy of the response in slot `idx`.
    pub(crate) fn read_rsp(&self, idx: RingIdx) -> Rsp {
        // SAFETY: as in read_req, for Rsp.
        unsafe { copy_in(self.slot(idx)) }
    }

    /// Volatile store of a request into slot `idx`.
    pub(crate) fn write_req(&self, idx: RingIdx, req: Req) {
        // SAFETY: as in read_req.
        unsafe { copy_out(self.slot(idx), &req) }
    }

    /// Volatile store of a response into slot `idx`.
    pub(crate) fn write_rsp(&self, idx: RingIdx, rsp: Rsp) {
        // SAFETY: as in read_req, for Rsp.
        unsafe { copy_out(self.slot(idx), &rsp) }
    }
}

/// The widest word (8, 4 or 1 bytes) that both divides the size of `T` and
/// is within its alignment. Slots are aligned to at least `align_of::<T>()`.
const fn word<T>() -> usize {
    if align_of::<T>() >= 8 && size_of::<T>().is_multiple_of(8) {
        8
    } else if align_of::<T>() >= 4 && size_of::<T>().is_multiple_of(4) {
        4
    } else {
        1
    }
}

/// Copy a `T` out of a slot with one volatile load per word.
///
/// # Safety
///
/// `src` must be valid for reads of `size_of::<T>()` bytes and aligned to
/// `align_of::<T>()`.
#[inline(always)]
unsafe fn copy_in<T: Pod>(src: *const u8) -> T {
    let mut out = MaybeUninit::<T>::uninit();
    let dst = out.as_mut_ptr().cast::<u8>();
    let n = size_of::<T>() / word::<T>();
    for i in 0..n {
        // SAFETY: by the caller, `src` has size_of::<T>() readable bytes
        // aligned to align_of::<T>() >= the word size, and `dst` is our own
        // local of the same size and alignment; word i lies inside both.
        unsafe {
            match word::<T>() {
                8 => dst
                    .cast::<u64>()
                    .add(i)
                    .write(ptr::read_volatile(src.cast::<u64>().add(i))),
                4 => dst
                    .cast::<u32>()
                    .add(i)
                    .write(ptr::read_volatile(src.cast::<u32>().add(i))),
                _ => dst.add(i).write(ptr::read_volatile(src.add(i))),
            }
        }
    }
    // SAFETY: every byte of `out` was written above, and T: Pod accepts any
    // bytes.
    unsafe { out.assume_init() }
}

/// Copy a `T` into a slot with one volatile store per word.
///
/// # Safety
///
/// `dst` must be valid for writes of `size_of::<T>()` bytes and aligned to
/// `align_of::<T>()`.
#[inline(always)]
unsafe fn copy_out<T: Pod>(dst: *mut u8, val: &T) {
    let src = ptr::from_ref(val).cast::<u8>();
    let n = size_of::<T>() / word::<T>();
    for i in 0..n {
        // SAFETY: by the caller, `dst` has size_of::<T>() writable bytes
        // aligned to align_of::<T>() >= the word size; `src` is a live `T`
        // whose bytes are all initialised (Pod: no padding), read in words
        // within its size and alignment.
        unsafe {
            match word::<T>() {
                8 => ptr::write_volatile(dst.cast::<u64>().add(i), src.cast::<u64>().add(i).read()),
                4 => ptr::write_volatile(dst.cast::<u32>().add(i), src.cast::<u32>().add(i).read()),
                _ => ptr::write_volatile(dst.add(i), src.add(i).read()),
            }
        }
    }
}
