//! The PV console front end: output through the `xencons_interface` ring the
//! hypervisor names in `HVM_PARAM_CONSOLE_PFN` / `HVM_PARAM_CONSOLE_EVTCHN`, as Linux's
//! `hvc_xen` writes it.
//!
//! [`init`] (called by the runtime at boot) reads both parameters; only if both calls
//! succeed and both values are nonzero does it map the page (through the
//! [`crate::mm`] window, wherever the frame is) and make [`active`] true. On a
//! hypervisor without HVM parameters (`-ENOSYS`) nothing changes: the console stays on
//! `console_io`.
//!
//! Layout (`io/console.h`): `in[1024]` @0, `out[2048]` @1024, then the free-running
//! `u32` indices `in_cons` @3072, `in_prod` @3076, `out_cons` @3080, `out_prod` @3084.
//! We only produce output: bytes go to `out[prod & 2047]`, a release fence orders them
//! before the new `out_prod`, and `EVTCHNOP_send` on the console port tells the back
//! end after each write. While the ring is full we notify and `SCHEDOP_yield`.
//!
//! The back end is not trusted: our producer index is kept privately (the page's
//! `out_prod` is only ever written), and an `out_cons` that claims more than 2048 bytes
//! in flight (or is ahead of our producer) marks the console broken. So does a back end
//! that leaves the ring full for a second. A broken console is never used again;
//! [`write()`] says how much it took and the caller ([`crate::console`]) sends the rest
//! with `console_io`.
//!
//! # What this assumes of the hypervisor
//!
//! - `HVMOP_get_param` of `HVM_PARAM_CONSOLE_PFN` (17) and `HVM_PARAM_CONSOLE_EVTCHN`
//!   (18) returns 0 and the values when the domain has a PV console; an error or a zero
//!   value means "no PV console".
//! - The console page is zeroed or carries consistent indices at boot, and the port is
//!   bound (interdomain, to the console back end) before the guest starts; sending on
//!   it makes the back end drain `out`.
//! - The back end drains whatever was published when the domain shuts down (the
//!   runtime's last line, a panic message, is written just before `SCHEDOP_shutdown`).
//! - `XENMEM_add_to_physmap` of `shared_info` works, so that the console port can be
//!   masked (see [`init`]); if it does not, the PV console is not used.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};

use oxen_abi::xencons::{IN, IN_CONS, IN_PROD, IN_SIZE, OUT, OUT_CONS, OUT_PROD, OUT_SIZE};

use crate::xen::{self, EvtchnPort};

/// Nanoseconds a full ring may stay full before the console is declared broken.
const STALL_NS: u64 = 1_000_000_000;
/// Spins waiting for another vCPU's write before giving up on the ring for one write.
const LOCK_SPINS: u32 = 1 << 22;

/// Virtual address of the mapped interface (0: no PV console).
static RING: AtomicU64 = AtomicU64::new(0);
static PORT: AtomicU32 = AtomicU32::new(0);
/// Our `out_prod`.
static PROD: AtomicU32 = AtomicU32::new(0);
/// Set when the back end misbehaved: never use the ring again.
static BROKEN: AtomicBool = AtomicBool::new(false);
/// Serialises writers (vCPUs).
static LOCK: AtomicBool = AtomicBool::new(false);
/// Whether the console's failure has been reported (see [`take_failure`]).
static REPORTED: AtomicBool = AtomicBool::new(false);

fn index(base: u64, off: u64) -> *mut u32 {
    (base + off) as *mut u32
}

fn load(base: u64, off: u64) -> u32 {
    // SAFETY: `base` is the mapped interface page ([`init`]) and `off` one of the
    // 4-aligned index offsets inside it; the back end may change it at any time, so the
    // read is volatile.
    unsafe { index(base, off).read_volatile() }
}

fn store(base: u64, off: u64, v: u32) {
    // SAFETY: as in `load`.
    unsafe { index(base, off).write_volatile(v) }
}

/// Looks for a PV console and starts using it. Returns whether it did. Maps
/// `shared_info` ([`crate::events::map_shared_info`]) to mask the console port: we only
/// write, and poll the ring when it is full.
pub fn init() -> bool {
    if RING.load(Ordering::Acquire) != 0 {
        return true;
    }
    if !crate::hypercall::page_ready() {
        return false;
    }
    let (Ok(pfn), Ok(port)) = (
        xen::get_param(xen::hvm_param::CONSOLE_PFN),
        xen::get_param(xen::hvm_param::CONSOLE_EVTCHN),
    ) else {
        return false;
    };
    // A frame number must leave a valid physical address; a port must be one the
    // 2-level ABI can name.
    if pfn == 0 || pfn >= 1 << 40 || port == 0 || port >= 4096 {
        return false;
    }
    // SAFETY: the slot is reserved for the console (xen::window_slot); the mapping is a
    // plain write-back page.
    let base = unsafe { crate::mm::map_phys(xen::window_slot::CONSOLE, pfn << 12, false) } as u64;
    let prod = load(base, OUT_PROD);
    if prod.wrapping_sub(load(base, OUT_CONS)) > OUT_SIZE {
        return false;
    }
    // The back end notifies the port back after draining the ring. Nobody here handles
    // that event, and an unhandled upcall flag would end every later HLT and
    // SCHEDOP_block at once: mask the port (pending is still recorded, no upcall).
    // Without shared info to do that, keep to console_io.
    if crate::events::map_shared_info().is_err() || !crate::events::mask(port as EvtchnPort) {
        return false;
    }
    PROD.store(prod, Ordering::Relaxed);
    PORT.store(port as EvtchnPort, Ordering::Relaxed);
    RING.store(base, Ordering::Release);
    true
}

/// Whether output goes to the PV console.
pub fn active() -> bool {
    RING.load(Ordering::Acquire) != 0 && !BROKEN.load(Ordering::Relaxed)
}

/// True once, after the ring was given up as broken (for the caller to say so).
pub fn take_failure() -> bool {
    RING.load(Ordering::Acquire) != 0
        && BROKEN.load(Ordering::Relaxed)
        && !REPORTED.swap(true, Ordering::Relaxed)
}

/// The console's event channel port (0 if none).
pub fn port() -> EvtchnPort {
    PORT.load(Ordering::Relaxed)
}

/// Tells the back end; false if the port no longer works (closed by the guest itself,
/// say), which breaks the console for good.
fn notify() -> bool {
    let ok = xen::send(PORT.load(Ordering::Relaxed)).is_ok();
    if !ok {
        BROKEN.store(true, Ordering::Relaxed);
    }
    ok
}

/// Writes `bytes` to the ring; returns how many it took (all of them unless the
/// console is absent, broken or busy on another vCPU for too long). The caller sends
/// the rest another way.
pub fn write(bytes: &[u8]) -> usize {
    if !active() {
        return 0;
    }
    let mut spins = 0;
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins == LOCK_SPINS {
            return 0;
        }
        core::hint::spin_loop();
    }
    let sent = write_locked(bytes);
    LOCK.store(false, Ordering::Release);
    if sent > 0 && !notify() {
        // Nobody will read them: the caller prints them another way.
        return 0;
    }
    sent
}

fn write_locked(bytes: &[u8]) -> usize {
    let base = RING.load(Ordering::Acquire);
    let mut prod = PROD.load(Ordering::Relaxed);
    let mut sent = 0;
    let mut stalled_since = None;
    while sent < bytes.len() && !BROKEN.load(Ordering::Relaxed) {
        let cons = load(base, OUT_CONS);
        // The slots `cons` frees are written only after it was read.
        fence(Ordering::Acquire);
        let used = prod.wrapping_sub(cons);
        if used > OUT_SIZE {
            BROKEN.store(true, Ordering::Relaxed);
            break;
        }
        if used == OUT_SIZE {
            let now = crate::time::now_ns();
            match stalled_since {
                None => stalled_since = Some(now),
                Some(t) if now.wrapping_sub(t) > STALL_NS => {
                    BROKEN.store(true, Ordering::Relaxed);
                    break;
                }
                Some(_) => {}
            }
            if !notify() {
                break;
            }
            crate::hypercall::sched_yield();
            continue;
        }
        stalled_since = None;
        let n = ((OUT_SIZE - used) as usize).min(bytes.len() - sent);
        for &b in &bytes[sent..sent + n] {
            let slot = u64::from(prod & (OUT_SIZE - 1));
            // SAFETY: `slot < 2048`, so the byte is inside `out` of the mapped page.
            unsafe { ((base + OUT + slot) as *mut u8).write_volatile(b) };
            prod = prod.wrapping_add(1);
        }
        // The bytes before the index that publishes them.
        fence(Ordering::Release);
        store(base, OUT_PROD, prod);
        sent += n;
    }
    PROD.store(prod, Ordering::Relaxed);
    sent
}

/// Input typed for this domain: takes what the `in` ring holds, up to `buf.len()`
/// bytes. `None` without a PV console, or if the back end's indices are impossible.
pub fn read(buf: &mut [u8]) -> Option<usize> {
    let base = RING.load(Ordering::Acquire);
    if base == 0 {
        return None;
    }
    let cons = load(base, IN_CONS);
    let prod = load(base, IN_PROD);
    let avail = prod.wrapping_sub(cons);
    if avail > IN_SIZE {
        return None;
    }
    fence(Ordering::Acquire);
    let n = (avail as usize).min(buf.len());
    for (i, b) in buf[..n].iter_mut().enumerate() {
        let slot = u64::from(cons.wrapping_add(i as u32) % IN_SIZE);
        // SAFETY: inside the mapped interface page (`in` is its first 1024 bytes).
        *b = unsafe { ((base + IN + slot) as *const u8).read_volatile() };
    }
    fence(Ordering::Release);
    store(base, IN_CONS, cons.wrapping_add(n as u32));
    Some(n)
}

/// The address of the mapped console interface (0: none): for a guest that attacks
/// its own back end.
pub fn interface() -> u64 {
    RING.load(Ordering::Acquire)
}
