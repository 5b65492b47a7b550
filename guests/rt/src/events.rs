//! Event channels from the guest's side, with Xen's 2-level ABI.
//!
//! [`init`] maps the domain's `shared_info` page with `XENMEM_add_to_physmap` at guest
//! frame [`SHARED_INFO_GFN`] (outside RAM, reached through the [`crate::mm`] window),
//! installs the upcall handler at vector [`UPCALL_VECTOR`] and registers that vector with
//! `HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ, 2 << 56 | 0xF3)`, as a PVH Linux does.
//!
//! The upcall handler does what Linux's `__xen_evtchn_do_upcall` does for vCPU 0, except
//! that it never clears a port's pending bit: it clears `evtchn_upcall_pending`, takes
//! `evtchn_pending_sel` with an exchange, and for each word it names records
//! `evtchn_pending & !evtchn_mask` in a local "fired" bitmap, until the hypervisor stops
//! setting `evtchn_upcall_pending` again. The pending bit stays set until the guest
//! calls [`clear`] (normally through [`wait`]), so a port that stays pending raises no
//! further upcalls: exactly the 2-level rule, and what keeps a storm of sends from
//! becoming a storm of interrupts.
//!
//! The guest runs with interrupts off (the runtime never sets IF); upcalls are taken
//! only inside [`wait`] / [`wait_timeout`], which check the port with interrupts off and
//! then execute `sti; hlt`. An event that arrives between the check and the `hlt` is not
//! lost: the hypervisor marks the port pending and `evtchn_upcall_pending` before it
//! injects, the injection waits for IF = 1, and the instruction after `sti` is covered
//! by the STI shadow, so the upcall is delivered at the `hlt` and ends it.
//!
//! # What this assumes of the hypervisor
//!
//! - `XENMEM_add_to_physmap(XENMAPSPACE_shared_info, idx 0)` accepts any guest frame
//!   outside RAM (here 0xFEFF2) and maps the domain's one `shared_info` page there,
//!   write-back, readable and writable; the page is the domain's from creation, so
//!   events raised before the mapping are in it.
//! - `HVM_PARAM_CALLBACK_IRQ` with type 2 (vector) makes it inject vector 0xF3 as an
//!   external interrupt into vCPU 0 while its `vcpu_info.evtchn_upcall_pending` is 1 and
//!   the vCPU can take interrupts (IF = 1, no STI/MOV-SS blocking), with no EOI. The
//!   handler clears the flag first and loops while the hypervisor sets it again, so one
//!   injection per 0 → 1 transition is enough.
//! - HLT with IF = 1 returns when an upcall is injected, including one that was already
//!   pending when the HLT exited (the STI-shadow case above), and when vCPU 0's
//!   single-shot timer fires ([`wait_timeout`] arms it). The timer raises `VIRQ_TIMER`
//!   if that is bound ([`bind_timer_virq`]): that is how Xen ends the HLT, and how
//!   [`wait_timeout`] learns that no timer is armed any more. (oxen also ends a HLT at
//!   the next 10 ms tick; nothing here needs that.)
//! - Pending and mask bits are updated with locked read-modify-writes (as
//!   `oxen_core::evtchn` requires), so the guest's own atomic `and`/`or` on the same
//!   words never loses a bit; `EVTCHNOP_send` marks the remote port pending before it
//!   returns.
//! - Ports bound by the guest notify vCPU 0 (the default); only vCPU 0's `vcpu_info`
//!   is scanned.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use oxen_abi::evtchn::{EVTCHN_2L_NR_CHANNELS, EVTCHN_2L_WORDS, shared_info, vcpu_info, virq};

use crate::xen::{self, EvtchnPort, Failed};

/// Guest frame where `shared_info` is mapped (guest-physical 0xFEFF2000), by convention
/// with oxen's boot scenarios: outside RAM, next to the console (0xFEFF0) and xenstore
/// (0xFEFF1) pages the hypervisor may place.
pub const SHARED_INFO_GFN: u64 = 0xFEFF2;

/// The interrupt vector upcalls arrive on (Linux's `HYPERVISOR_CALLBACK_VECTOR`).
pub const UPCALL_VECTOR: u8 = 0xF3;

/// Virtual address of the mapped `shared_info` (0 until [`init`] succeeded).
static SHARED: AtomicU64 = AtomicU64::new(0);

/// Ports the upcall handler saw pending and unmasked, cleared by [`clear`].
static FIRED: [AtomicU64; EVTCHN_2L_WORDS] = [const { AtomicU64::new(0) }; EVTCHN_2L_WORDS];

/// Whether [`init`] registered the upcall vector.
static CALLBACK: AtomicBool = AtomicBool::new(false);

/// Upcalls taken.
static UPCALLS: AtomicU64 = AtomicU64::new(0);

/// The port bound to `VIRQ_TIMER` by [`bind_timer_virq`] (0: none).
static TIMER_PORT: AtomicU32 = AtomicU32::new(0);

/// Most rounds the upcall handler makes while the hypervisor keeps raising
/// `evtchn_upcall_pending` (a hypervisor doing that forever gets another upcall later
/// instead of a hung guest).
const MAX_ROUNDS: u32 = 64;

fn base() -> Option<u64> {
    match SHARED.load(Ordering::Acquire) {
        0 => None,
        b => Some(b),
    }
}

/// The 64-bit word at byte `off` of the mapped `shared_info`.
fn word(base: u64, off: usize) -> &'static AtomicU64 {
    debug_assert!(off.is_multiple_of(8) && off + 8 <= shared_info::SIZE);
    // SAFETY: `base` is the address of the mapped shared_info page ([`init`]), which
    // stays mapped for the rest of the guest's life; `off` is one of the ABI's 8-aligned
    // offsets inside it. The hypervisor changes these words only with atomic
    // instructions, and this module only through atomics.
    unsafe { AtomicU64::from_ptr((base + off as u64) as *mut u64) }
}

/// `vcpu_info[0].evtchn_upcall_pending`.
fn upcall_pending(base: u64) -> &'static AtomicU8 {
    let off = shared_info::VCPU_INFO + vcpu_info::EVTCHN_UPCALL_PENDING;
    // SAFETY: as in `word`, for the byte at that offset.
    unsafe { AtomicU8::from_ptr((base + off as u64) as *mut u8) }
}

fn pending_word(base: u64, w: usize) -> &'static AtomicU64 {
    word(base, shared_info::EVTCHN_PENDING + 8 * w)
}

fn mask_word(base: u64, w: usize) -> &'static AtomicU64 {
    word(base, shared_info::EVTCHN_MASK + 8 * w)
}

/// Word index and bit of `port`, if the 2-level ABI can name it.
fn locate(port: EvtchnPort) -> Option<(usize, u64)> {
    (port < EVTCHN_2L_NR_CHANNELS).then(|| ((port / 64) as usize, 1u64 << (port % 64)))
}

/// Maps `shared_info` (if [`map_shared_info`] has not), installs the upcall vector and
/// registers it with the hypervisor. Idempotent. Fails (and leaves upcalls off) if the
/// hypervisor refuses a step.
pub fn init() -> Result<(), Failed> {
    if ready() {
        return Ok(());
    }
    map_shared_info()?;
    crate::fault::set_gate(UPCALL_VECTOR, crate::fault::upcall_entry());
    xen::set_param(
        xen::hvm_param::CALLBACK_IRQ,
        xen::callback_via_vector(UPCALL_VECTOR),
    )
    .map_err(|rc| Failed {
        op: "HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ)",
        rc,
    })?;
    CALLBACK.store(true, Ordering::Release);
    Ok(())
}

/// Maps `shared_info` at [`SHARED_INFO_GFN`] without enabling upcalls, so that pending
/// and mask bits can be used ([`mask`], [`pending`], [`clear`]). Idempotent.
pub fn map_shared_info() -> Result<(), Failed> {
    if base().is_some() {
        return Ok(());
    }
    xen::add_to_physmap(xen::mapspace::SHARED_INFO, 0, SHARED_INFO_GFN).map_err(|rc| Failed {
        op: "XENMEM_add_to_physmap(shared_info)",
        rc,
    })?;
    // SAFETY: the slot is reserved for shared_info (xen::window_slot); the mapping is a
    // plain write-back page of the domain's own.
    let p =
        unsafe { crate::mm::map_phys(xen::window_slot::SHARED_INFO, SHARED_INFO_GFN << 12, false) };
    SHARED.store(p as u64, Ordering::Release);
    Ok(())
}

/// Whether [`init`] succeeded (upcalls are on).
pub fn ready() -> bool {
    CALLBACK.load(Ordering::Acquire)
}

/// Sets `port`'s mask bit: its events still mark it pending but raise no upcall and
/// wake nothing (Linux's `mask_evtchn`). False if `shared_info` is not mapped.
pub fn mask(port: EvtchnPort) -> bool {
    match (locate(port), base()) {
        (Some((w, bit)), Some(b)) => {
            mask_word(b, w).fetch_or(bit, Ordering::SeqCst);
            true
        }
        _ => false,
    }
}

/// Binds `VIRQ_TIMER` on vCPU 0 so that the single-shot timer raises an event, as Xen
/// needs to end a HLT (oxen also ends it without). Best effort: returns the port.
pub fn bind_timer_virq() -> Result<EvtchnPort, xen::Errno> {
    let p = TIMER_PORT.load(Ordering::Relaxed);
    if p != 0 {
        return Ok(p);
    }
    let port = xen::bind_virq(virq::TIMER, 0)?;
    let _ = xen::unmask(port);
    TIMER_PORT.store(port, Ordering::Relaxed);
    Ok(port)
}

/// The upcall handler, called by the vector's entry stub (`fault.rs`) with interrupts
/// off.
pub(crate) extern "C" fn rt_upcall() {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    let Some(base) = base() else {
        return;
    };
    let flag = upcall_pending(base);
    let sel = word(base, shared_info::VCPU_INFO + vcpu_info::EVTCHN_PENDING_SEL);
    for _ in 0..MAX_ROUNDS {
        flag.store(0, Ordering::SeqCst);
        let mut words = sel.swap(0, Ordering::SeqCst);
        while words != 0 {
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            let bits = pending_word(base, w).load(Ordering::SeqCst)
                & !mask_word(base, w).load(Ordering::SeqCst);
            if bits != 0 {
                FIRED[w].fetch_or(bits, Ordering::SeqCst);
            }
        }
        if flag.load(Ordering::SeqCst) == 0 {
            break;
        }
    }
}

/// Upcalls taken so far.
pub fn upcalls() -> u64 {
    UPCALLS.load(Ordering::Relaxed)
}

/// Whether `port` is pending (seen by the upcall handler or set in `shared_info`).
pub fn pending(port: EvtchnPort) -> bool {
    let Some((w, bit)) = locate(port) else {
        return false;
    };
    let fired = FIRED[w].load(Ordering::SeqCst) & bit != 0;
    fired || base().is_some_and(|b| pending_word(b, w).load(Ordering::SeqCst) & bit != 0)
}

/// Clears `port`'s pending bit (atomically, in `shared_info`) and its "fired" mark.
/// Clear before looking at the state the event announces: an event sent after this
/// sets the bit again.
pub fn clear(port: EvtchnPort) {
    let Some((w, bit)) = locate(port) else {
        return;
    };
    FIRED[w].fetch_and(!bit, Ordering::SeqCst);
    if let Some(b) = base() {
        pending_word(b, w).fetch_and(!bit, Ordering::SeqCst);
    }
}

/// Whether `port` is masked in `shared_info`.
pub fn masked(port: EvtchnPort) -> bool {
    match (locate(port), base()) {
        (Some((w, bit)), Some(b)) => mask_word(b, w).load(Ordering::SeqCst) & bit != 0,
        _ => false,
    }
}

/// `EVTCHNOP_unmask` of `port`.
pub fn unmask(port: EvtchnPort) -> Result<(), xen::Errno> {
    xen::unmask(port)
}

/// `EVTCHNOP_send` on `port`.
pub fn send(port: EvtchnPort) -> Result<(), xen::Errno> {
    xen::send(port)
}

/// Pause between attempts of [`offer`] and [`connect`].
const RETRY_NS: u64 = 10_000_000;

/// Retries `f` every 10 ms while it fails with one of `transient`, until `timeout_ns`
/// of system time have passed.
fn retry<T>(
    timeout_ns: u64,
    transient: &[xen::Errno],
    mut f: impl FnMut() -> Result<T, xen::Errno>,
) -> Result<T, xen::Errno> {
    let end = crate::time::now_ns() + timeout_ns;
    loop {
        match f() {
            Err(e) if transient.contains(&e) && crate::time::now_ns() < end => {
                crate::vcpu::sleep_until(0, crate::time::now_ns() + RETRY_NS);
            }
            r => return r,
        }
    }
}

/// `EVTCHNOP_alloc_unbound` for `remote_dom`, retried for up to `timeout_ns` while the
/// hypervisor says that domain does not exist (`-ESRCH`: it may not be built yet).
/// The new port is unmasked.
pub fn offer(remote_dom: xen::DomId, timeout_ns: u64) -> Result<EvtchnPort, xen::Errno> {
    use oxen_abi::errno::ESRCH;
    let port = retry(timeout_ns, &[-ESRCH], || xen::alloc_unbound(remote_dom))?;
    let _ = xen::unmask(port);
    Ok(port)
}

/// `EVTCHNOP_bind_interdomain` to `remote_port` of `remote_dom`, retried for up to
/// `timeout_ns` while the port is not (yet) unbound for us (`-EINVAL`) or the domain
/// does not exist yet (`-ESRCH`): the peer may start after us. The new local port is
/// unmasked. Binding marks it pending (Xen does so in case an event was lost).
pub fn connect(
    remote_dom: xen::DomId,
    remote_port: EvtchnPort,
    timeout_ns: u64,
) -> Result<EvtchnPort, xen::Errno> {
    use oxen_abi::errno::{EINVAL, ESRCH};
    let port = retry(timeout_ns, &[-EINVAL, -ESRCH], || {
        xen::bind_interdomain(remote_dom, remote_port)
    })?;
    let _ = xen::unmask(port);
    Ok(port)
}

fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack; no other effect.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(preserves_flags)) };
    flags & (1 << 9) != 0
}

fn cli() {
    // SAFETY: masks interrupts on this vCPU; the runtime runs with them off anyway.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
}

/// `sti; hlt`: sleeps until an interrupt (an upcall) or whatever else ends a HLT; the
/// STI shadow makes an interrupt that is already pending end the HLT.
fn sti_hlt() {
    // SAFETY: enables interrupts and halts; the only interrupt the guest takes is the
    // upcall, whose handler preserves the interrupted state. Not `nomem`: the handler
    // writes memory this code reads afterwards.
    unsafe { core::arch::asm!("sti", "hlt", options(nostack)) };
}

fn restore(was_enabled: bool) {
    if was_enabled {
        // SAFETY: the caller had interrupts on; give them back.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
}

/// Waits until `port` is pending, then clears it. Needs [`init`].
pub fn wait(port: EvtchnPort) {
    assert!(ready(), "events::wait({port}) before events::init");
    let was_enabled = interrupts_enabled();
    loop {
        cli();
        if pending(port) {
            clear(port);
            break;
        }
        sti_hlt();
    }
    restore(was_enabled);
}

/// The deadline vCPU 0's single-shot timer was last armed for by [`wait_timeout`]
/// (0: unknown, arm again).
static ARMED_FOR: AtomicU64 = AtomicU64::new(0);

/// Waits until `port` is pending (then clears it and returns true) or system time
/// reaches `deadline_ns` (returns false). Needs [`init`].
///
/// vCPU 0's single-shot timer ends the HLT by the deadline. It is armed only when no
/// timer known to be pending expires by then: a caller that keeps pushing its deadline
/// out (an idle timeout) costs one `set_timer` per timeout period, not one per wait.
/// That knowledge comes from the `VIRQ_TIMER` port ([`bind_timer_virq`]): its event
/// says a timer fired (ours, or one somebody else armed, e.g.
/// [`crate::vcpu::sleep_until`]), after which the timer is armed again. Without that
/// port the timer is armed on every call. The timer is never stopped: one that fires
/// after we returned only makes a later wait look again.
pub fn wait_timeout(port: EvtchnPort, deadline_ns: u64) -> bool {
    assert!(ready(), "events::wait_timeout({port}) before events::init");
    let fired = wait_any(&[port], deadline_ns);
    if fired {
        clear(port);
    }
    fired
}

/// Waits until one of `ports` is pending (returns true, leaving the pending bits for
/// the caller to [`clear`]) or system time reaches `deadline_ns` (returns false), with
/// vCPU 0's timer as [`wait_timeout`] arms it. Needs [`init`].
pub fn wait_any(ports: &[EvtchnPort], deadline_ns: u64) -> bool {
    assert!(ready(), "events::wait_any before events::init");
    let was_enabled = interrupts_enabled();
    let timer = TIMER_PORT.load(Ordering::Relaxed);
    let fired = loop {
        cli();
        // A timer event is only a wake-up (and says no timer is armed any more): clear
        // it before looking at the clock, so one that fires after the look still ends
        // the HLT below.
        if timer != 0 && !ports.contains(&timer) && pending(timer) {
            ARMED_FOR.store(0, Ordering::Relaxed);
            clear(timer);
        }
        if ports.iter().any(|&p| pending(p)) {
            break true;
        }
        let now = crate::time::now_ns();
        if now >= deadline_ns {
            break false;
        }
        let known = ARMED_FOR.load(Ordering::Relaxed);
        let covered = timer != 0 && known > now && known <= deadline_ns;
        if !covered {
            crate::vcpu::set_timer(0, deadline_ns, 0);
            ARMED_FOR.store(deadline_ns, Ordering::Relaxed);
        }
        sti_hlt();
    };
    restore(was_enabled);
    fired
}
