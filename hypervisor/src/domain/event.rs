//! Event channels as Xen's 2-level ABI has them, on top of `oxen_core::evtchn`: the
//! shared-info and `vcpu_info` words in memory, delivery and upcalls, the
//! `event_channel_op`, `hvm_op` and `SCHEDOP_poll` hypercalls, `vcpu_time_info`, and
//! the PV console back end of the domains dom0 does not serve (those built at boot).
//!
//! Locks: a domain's port table is its own mutex; an operation on two domains takes
//! both in domain-id order. An event for another domain (a send, a VIRQ) is marked in
//! its pages while its table's lock is held, so that once a dying domain's table is
//! killed ([`domain_dying`]) nothing writes into its pages again. Then the scheduler's
//! lock may be taken (to wake a vCPU), never the other way round. Bits in shared memory change with atomic instructions only,
//! because the guest changes them concurrently.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

use oxen_abi::errno::{EINVAL, ENOSYS, EPERM};
use oxen_abi::evtchn::{self as abi, DOMID_SELF, op, virq};
use oxen_abi::{hvm, xencons};
use oxen_core::evtchn::{self, EventPage, Peer, Ports, SendTarget, Word};
use oxen_core::hvm_param::{SetError, check_set};
pub use oxen_core::pvh::reserved_range;
use spin::{Mutex, MutexGuard};

use super::hypercall::{copy_from_guest, copy_to_guest, read_arg};
use super::sched as glue;
use super::vcpu::Vcpu;
use super::{Domain, registry};
use crate::arch::{paging, time};

/// The most event channels an ordinary domain may open (Xen's default `max_evtchn_port`
/// is 1023, ports 1..=1023).
const MAX_PORTS: u32 = 1024;
/// The console page's GFN for a domain with `ram_size` bytes of RAM.
pub fn console_gfn(ram_size: u64) -> u64 {
    reserved_range(ram_size).0 >> 12
}

/// A domain's event state.
pub struct DomainEvents {
    pub ports: Mutex<Ports>,
    /// Host address of each vCPU's `vcpu_info` (0: none; vCPUs below 32 start in the
    /// shared-info page).
    vcpu_info: Vec<AtomicU64>,
    shared_info: u64,
    /// HVM parameters.
    params: Mutex<[u64; hvm::param::NR as usize]>,
    /// The upcall vector (`HVM_PARAM_CALLBACK_IRQ` type 2), 0 = none.
    pub callback_vector: AtomicU8,
    /// vCPUs in `SCHEDOP_poll` (bit n = vCPU n), and the one port each polls (0: any
    /// event wakes it, as Xen does for a poll of several ports).
    polling: AtomicU64,
    poll_port: Vec<AtomicU32>,
    /// The console page and its event channel (served by the hypervisor).
    pub console_frame: u64,
    pub console_port: u32,
    console_broken: AtomicU32,
}

impl DomainEvents {
    pub fn new(
        id: u32,
        vcpus: u32,
        shared_info: u64,
        console_frame: u64,
        console_gfn: u64,
    ) -> Self {
        let mut ports = Ports::new(id as u16, vcpus, MAX_PORTS);
        // Port 1: the console, unbound with dom0 (the hypervisor serves it for now).
        let console_port = ports
            .alloc_unbound(id as u16, 0, &|d: u16| d == 0)
            .unwrap_or(0);
        let phys = |v: u32| {
            if v < abi::shared_info::LEGACY_MAX_VCPUS {
                shared_info + u64::from(v) * abi::vcpu_info::SIZE as u64
            } else {
                0
            }
        };
        let mut params = [0; hvm::param::NR as usize];
        params[hvm::param::CONSOLE_PFN as usize] = console_gfn;
        params[hvm::param::CONSOLE_EVTCHN as usize] = u64::from(console_port);
        DomainEvents {
            ports: Mutex::new(ports),
            vcpu_info: (0..vcpus).map(|v| AtomicU64::new(phys(v))).collect(),
            shared_info,
            params: Mutex::new(params),
            callback_vector: AtomicU8::new(0),
            polling: AtomicU64::new(0),
            poll_port: (0..vcpus).map(|_| AtomicU32::new(0)).collect(),
            console_frame,
            console_port,
            console_broken: AtomicU32::new(0),
        }
    }

    /// The host address of vCPU `v`'s `vcpu_info` (0 if it has none).
    fn vcpu_info_hpa(&self, v: u32) -> u64 {
        self.vcpu_info
            .get(v as usize)
            .map_or(0, |a| a.load(Ordering::Acquire))
    }
}

/// An atomic word in hypervisor-visible memory.
fn word(hpa: u64) -> &'static AtomicU64 {
    // SAFETY: callers pass 8-byte aligned addresses inside memory that lives as long as
    // the domain (its shared-info frame or RAM) and is mapped by the physical window;
    // the guest may change it concurrently, which atomics tolerate.
    unsafe { AtomicU64::from_ptr(paging::phys_to_virt(hpa).as_mut_ptr::<u64>()) }
}

/// An atomic byte in hypervisor-visible memory.
fn byte(hpa: u64) -> &'static AtomicU8 {
    // SAFETY: as for `word`.
    unsafe { AtomicU8::from_ptr(paging::phys_to_virt(hpa).as_mut_ptr::<u8>()) }
}

/// The 2-level event words of one domain.
struct Page<'a>(&'a DomainEvents);

impl Page<'_> {
    fn addr(&self, w: Word) -> Option<u64> {
        match w {
            Word::Pending(i) => {
                Some(self.0.shared_info + abi::shared_info::EVTCHN_PENDING as u64 + 8 * i as u64)
            }
            Word::Mask(i) => {
                Some(self.0.shared_info + abi::shared_info::EVTCHN_MASK as u64 + 8 * i as u64)
            }
            Word::Selector(v) => match self.0.vcpu_info_hpa(v) {
                0 => None,
                a => Some(a + abi::vcpu_info::EVTCHN_PENDING_SEL as u64),
            },
        }
    }
}

impl EventPage for Page<'_> {
    fn load(&self, w: Word) -> u64 {
        self.addr(w).map_or(0, |a| word(a).load(Ordering::Acquire))
    }

    fn fetch_or(&mut self, w: Word, bits: u64) -> u64 {
        self.addr(w)
            .map_or(0, |a| word(a).fetch_or(bits, Ordering::AcqRel))
    }

    fn fetch_and(&mut self, w: Word, bits: u64) -> u64 {
        self.addr(w)
            .map_or(0, |a| word(a).fetch_and(bits, Ordering::AcqRel))
    }

    fn test_and_set_upcall_pending(&mut self, v: u32) -> bool {
        match self.0.vcpu_info_hpa(v) {
            0 => true,
            a => byte(a).swap(1, Ordering::AcqRel) != 0,
        }
    }

    fn upcall_pending(&self, v: u32) -> bool {
        upcall_pending(self.0, v)
    }

    fn upcall_mask(&self, v: u32) -> bool {
        match self.0.vcpu_info_hpa(v) {
            0 => false,
            a => byte(a + 1).load(Ordering::Acquire) != 0,
        }
    }
}

/// Whether vCPU `v` has an upcall pending.
pub fn upcall_pending(e: &DomainEvents, v: u32) -> bool {
    match e.vcpu_info_hpa(v) {
        0 => false,
        a => byte(a).load(Ordering::Acquire) != 0,
    }
}

/// Marks `port` pending for `vcpu` of `d` and makes that vCPU notice: woken if blocked,
/// made to exit if it runs elsewhere (it takes the upcall at its next entry). vCPUs
/// polling wake whatever the port.
pub fn deliver(d: &Domain, port: u32, vcpu: u32) {
    let kick = evtchn::set_pending(&mut Page(&d.events), port, vcpu);
    if kick {
        notify(d, vcpu);
    }
    let pollers = d.events.polling.load(Ordering::Acquire);
    if pollers != 0 {
        for v in (0..64).filter(|v| pollers & (1 << v) != 0) {
            let wants = d
                .events
                .poll_port
                .get(v as usize)
                .map_or(0, |p| p.load(Ordering::Acquire));
            if wants == 0 || wants == port {
                if let Some(slot) = d.vcpu(u64::from(v)) {
                    slot.poll_hit.store(true, Ordering::Release);
                }
                if !kick || v != vcpu {
                    notify(d, v);
                }
            }
        }
    }
}

/// Makes vCPU `v` of `d` look at its events.
fn notify(d: &Domain, v: u32) {
    let Some(slot) = d.vcpu(u64::from(v)) else {
        return;
    };
    glue::wake(slot, time::now());
    glue::poke_running(slot);
}

/// Whether `d` bound (global) `virq`.
pub fn virq_bound(d: &Domain, virq: u32) -> bool {
    d.events.ports.lock().virq_port(virq, 0).is_some()
}

/// Raises `virq` for `vcpu` of `d` if the domain bound it.
pub fn raise_virq(d: &Domain, virq: u32, vcpu: u32) {
    // Delivered under the port table's lock: a dying domain's table is killed under
    // that lock before its pages go, so nothing writes into them afterwards.
    let ports = d.events.ports.lock();
    if let Some(ev) = ports.raise_virq(virq, vcpu) {
        deliver(d, ev.port, ev.vcpu);
    }
}

/// Existing, running domains, as `oxen_core::evtchn` asks.
fn existing(dom: u16) -> bool {
    super::by_id(u32::from(dom)).is_some_and(|d| d.running())
}

/// Locks the port tables of `doms` (distinct) in domain-id order; the guards come back
/// in the order of `doms`.
fn lock_all<'a>(doms: &'a [Arc<Domain>]) -> Vec<MutexGuard<'a, Ports>> {
    let mut order: Vec<usize> = (0..doms.len()).collect();
    order.sort_by_key(|&i| doms[i].id);
    let mut guards: Vec<Option<MutexGuard<'a, Ports>>> = (0..doms.len()).map(|_| None).collect();
    for i in order {
        guards[i] = Some(doms[i].events.ports.lock());
    }
    guards.into_iter().flatten().collect()
}

/// Clears the pending bit of a port that was just freed.
fn clear_freed(d: &Domain, port: u32) {
    evtchn::clear_pending(&mut Page(&d.events), port);
}

/// `event_channel_op(cmd, arg)`.
pub fn event_channel_op(vcpu: &mut Vcpu, cmd: u64, arg: u64) -> i64 {
    match dispatch(vcpu, cmd, arg) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

fn dispatch(vcpu: &mut Vcpu, cmd: u64, arg: u64) -> Result<(), i64> {
    let d = vcpu.domain.clone();
    let me = d.id as u16;
    let privileged = d.privileged;
    let Ok(cmd) = u32::try_from(cmd) else {
        return Err(-ENOSYS);
    };
    match cmd {
        op::ALLOC_UNBOUND => {
            let mut a = read_arg!(vcpu, arg, abi::EvtchnAllocUnbound);
            let target = evtchn::resolve_target(a.dom, me, privileged, &existing)?;
            let t = super::by_id(u32::from(target)).ok_or(-oxen_abi::errno::ESRCH)?;
            a.port = t
                .events
                .ports
                .lock()
                // As Xen: the remote domain need not exist (yet); only it may bind.
                .alloc_unbound(me, a.remote_dom, &|_| true)?;
            copy_to_guest(vcpu, arg, &a.to_bytes())
        }
        op::BIND_INTERDOMAIN => {
            let mut a = read_arg!(vcpu, arg, abi::EvtchnBindInterdomain);
            let rd = evtchn::resolve_domain(a.remote_dom, me, &existing)?;
            let ev = if rd == me {
                // The console port waits for domain 0, which the hypervisor stands in
                // for: domain 0 itself cannot take its own (Xen's dom0 has none).
                if a.remote_port == d.events.console_port {
                    return Err(-oxen_abi::errno::EINVAL);
                }
                evtchn::bind_interdomain(&mut d.events.ports.lock(), Peer::Local, a.remote_port)?
            } else {
                let remote = super::by_id(u32::from(rd)).ok_or(-oxen_abi::errno::ESRCH)?;
                let doms = [d.clone(), remote];
                let mut g = lock_all(&doms);
                let (l, r) = g.split_at_mut(1);
                evtchn::bind_interdomain(&mut l[0], Peer::Other(&mut r[0]), a.remote_port)?
            };
            a.local_port = ev.port;
            copy_to_guest(vcpu, arg, &a.to_bytes())?;
            deliver(&d, ev.port, ev.vcpu);
            Ok(())
        }
        op::BIND_VIRQ => {
            let mut a = read_arg!(vcpu, arg, abi::EvtchnBindVirq);
            a.port = d.events.ports.lock().bind_virq(a.virq, a.vcpu)?;
            copy_to_guest(vcpu, arg, &a.to_bytes())
        }
        op::BIND_IPI => {
            let mut a = read_arg!(vcpu, arg, abi::EvtchnBindIpi);
            a.port = d.events.ports.lock().bind_ipi(a.vcpu)?;
            copy_to_guest(vcpu, arg, &a.to_bytes())
        }
        op::CLOSE => {
            let a = read_arg!(vcpu, arg, abi::EvtchnClose);
            close(&d, a.port)
        }
        op::SEND => {
            let a = read_arg!(vcpu, arg, abi::EvtchnSend);
            send(&d, a.port)
        }
        op::STATUS => {
            let mut a = read_arg!(vcpu, arg, abi::EvtchnStatus);
            let target = evtchn::resolve_target(a.dom, me, privileged, &existing)?;
            let t = super::by_id(u32::from(target)).ok_or(-oxen_abi::errno::ESRCH)?;
            let st = t.events.ports.lock().status(a.port)?;
            st.write_to(&mut a);
            copy_to_guest(vcpu, arg, &a.to_bytes())
        }
        op::BIND_VCPU => {
            let a = read_arg!(vcpu, arg, abi::EvtchnBindVcpu);
            d.events.ports.lock().bind_vcpu(a.port, a.vcpu)
        }
        op::UNMASK => {
            let a = read_arg!(vcpu, arg, abi::EvtchnUnmask);
            let kick = d.events.ports.lock().unmask(&mut Page(&d.events), a.port)?;
            if let Some(v) = kick {
                notify(&d, v);
            }
            Ok(())
        }
        op::RESET => {
            let a = read_arg!(vcpu, arg, abi::EvtchnReset);
            let target = evtchn::resolve_target(a.dom, me, privileged, &existing)?;
            let t = super::by_id(u32::from(target)).ok_or(-oxen_abi::errno::ESRCH)?;
            // As Xen: another domain's channels are reset only while it is paused by
            // its controller, and oxen has no such pause yet.
            if t.id != d.id {
                return Err(-EINVAL);
            }
            reset(&t)
        }
        // No FIFO ABI: its calls fail as Xen fails them for arguments it cannot use
        // (-EINVAL), and Linux then keeps the 2-level ABI. No physical IRQs.
        op::INIT_CONTROL | op::EXPAND_ARRAY | op::SET_PRIORITY => Err(-EINVAL),
        op::BIND_PIRQ => Err(-ENOSYS),
        _ => Err(-ENOSYS),
    }
}

/// `EVTCHNOP_send` on `port` of `d`.
pub fn send(d: &Domain, port: u32) -> Result<(), i64> {
    let target = d.events.ports.lock().send(port)?;
    match target {
        SendTarget::Local(ev) => deliver(d, ev.port, ev.vcpu),
        SendTarget::Remote(dl) => {
            if let Some(rd) = super::by_id(u32::from(dl.to_dom)) {
                // Under the receiver's lock, as in `raise_virq`.
                let ports = rd.events.ports.lock();
                if let Some(ev) = ports.accept(&dl) {
                    deliver(&rd, ev.port, ev.vcpu);
                }
            }
        }
        SendTarget::Dropped => {
            if port == d.events.console_port {
                serve_console(d);
            }
        }
    }
    Ok(())
}

fn close(d: &Arc<Domain>, port: u32) -> Result<(), i64> {
    let peer = d.events.ports.lock().peer(port);
    match peer.and_then(|(pd, _)| super::by_id(u32::from(pd)).filter(|p| p.id != d.id)) {
        Some(remote) => {
            let doms = [d.clone(), remote];
            let mut g = lock_all(&doms);
            let (l, r) = g.split_at_mut(1);
            evtchn::close(&mut l[0], Peer::Other(&mut r[0]), port)?;
        }
        None => evtchn::close(&mut d.events.ports.lock(), Peer::Local, port)?,
    }
    clear_freed(d, port);
    Ok(())
}

/// Closes every port of `d` (peers' ends become unbound).
pub fn reset(d: &Arc<Domain>) -> Result<(), i64> {
    let peers = d.events.ports.lock().peer_domains();
    let mut doms = alloc::vec![d.clone()];
    doms.extend(
        peers
            .into_iter()
            .filter(|&p| u32::from(p) != d.id)
            .filter_map(|p| super::by_id(u32::from(p))),
    );
    let open: Vec<u32> = d.events.ports.lock().bound().map(|(p, _)| p).collect();
    {
        let mut g = lock_all(&doms);
        let (l, r) = g.split_at_mut(1);
        let mut peers: Vec<&mut Ports> = r.iter_mut().map(|g| &mut **g).collect();
        evtchn::reset(&mut l[0], &mut peers)?;
    }
    for p in open {
        clear_freed(d, p);
    }
    Ok(())
}

/// A dying domain, none of whose vCPUs runs any more: its table is killed (nothing new
/// can be bound to it or delivered into it), then every channel closes (their other ends
/// become unbound), and the privileged domains hear of it (`VIRQ_DOM_EXC`).
pub fn domain_dying(d: &Arc<Domain>) {
    d.events.ports.lock().kill();
    // With the table killed its set of peers can only shrink, so this succeeds at the
    // first try unless a peer closed in between (then the next one does).
    while reset(d).is_err() {
        core::hint::spin_loop();
    }
    tell_control_domains(d);
}

/// `VIRQ_DOM_EXC` to every other running privileged domain: `d` changed state (it shut
/// down, crashed or is dying), as Xen tells dom0.
pub fn tell_control_domains(d: &Domain) {
    let others: Vec<_> = registry::all()
        .into_iter()
        .filter(|o| o.privileged && o.id != d.id && o.running())
        .collect();
    for o in others {
        raise_virq(&o, virq::DOM_EXC, 0);
    }
}

/// A console page as the hypervisor reaches it: through the physical window, with
/// atomic accesses (the guest changes it concurrently).
struct ConsolePage(u64);

impl oxen_core::xencons::Page for ConsolePage {
    fn load(&self, off: u64) -> u32 {
        dword(self.0 + off).load(Ordering::Acquire)
    }
    fn store(&mut self, off: u64, v: u32) {
        fence(Ordering::Release);
        dword(self.0 + off).store(v, Ordering::Release);
    }
    fn load_byte(&self, off: u64) -> u8 {
        byte(self.0 + off).load(Ordering::Relaxed)
    }
    fn store_byte(&mut self, off: u64, v: u8) {
        byte(self.0 + off).store(v, Ordering::Relaxed);
    }
}

/// Whether the hypervisor is `d`'s console back end: its console port still waits for
/// dom0. Once dom0 binds it (a domain `xl create` built), dom0 serves the ring and the
/// hypervisor keeps out of it.
pub fn console_served_here(d: &Domain) -> bool {
    let port = d.events.console_port;
    port != 0
        && matches!(
            d.events.ports.lock().state(port),
            Some(evtchn::State::Unbound { .. })
        )
}

/// Prints what the guest wrote to its console ring (for the domains whose back end the
/// hypervisor is). Hostile indices break the console for good, with one log line.
pub fn serve_console(d: &Domain) {
    let e = &d.events;
    if e.console_broken.load(Ordering::Relaxed) != 0 {
        return;
    }
    let mut buf = [0u8; xencons::OUT_SIZE as usize];
    match oxen_core::xencons::take_output(&mut ConsolePage(e.console_frame), &mut buf) {
        Ok(n) => {
            d.emit(&d.console_line, "", &buf[..n]);
            // Tell the front end there is room again.
            deliver(d, e.console_port, 0);
        }
        Err(b) => break_console(d, b),
    }
}

/// The guest made its console's indices impossible: its PV console is ignored from now
/// on, with one line.
fn break_console(d: &Domain, b: oxen_core::xencons::Broken) {
    d.events.console_broken.store(1, Ordering::Relaxed);
    log::warn!(
        "domain {} ({}): console {} indices are impossible (cons {}, prod {}); its PV console is ignored from now on",
        d.id,
        d.name,
        b.ring,
        b.cons,
        b.prod
    );
}

/// Puts typed `bytes` into `d`'s console `in` ring (as many as fit: the rest is
/// dropped) and signals the console port. Returns how many went in.
pub fn console_input(d: &Domain, bytes: &[u8]) -> usize {
    if d.events.console_broken.load(Ordering::Relaxed) != 0 {
        return 0;
    }
    match oxen_core::xencons::put_input(&mut ConsolePage(d.events.console_frame), bytes) {
        Ok(n) => {
            if n > 0 {
                deliver(d, d.events.console_port, 0);
            }
            n
        }
        Err(b) => {
            break_console(d, b);
            0
        }
    }
}

/// An atomic 32-bit word in hypervisor-visible memory.
fn dword(hpa: u64) -> &'static AtomicU32 {
    // SAFETY: as for `word`, with 4-byte aligned addresses (console indices, time and
    // wallclock fields).
    unsafe { AtomicU32::from_ptr(paging::phys_to_virt(hpa).as_mut_ptr::<u32>()) }
}

/// `SCHEDOP_poll`: returns at once if one of the ports is pending, else blocks until an
/// event reaches the domain or the timeout (absolute system time, 0 = none) passes.
pub fn poll(vcpu: &mut Vcpu, arg: u64) -> Result<bool, i64> {
    let oxen_abi::SchedPoll {
        ports: ports_ptr,
        nr_ports: nr,
        timeout,
    } = read_arg!(vcpu, arg, oxen_abi::SchedPoll);
    // As Xen: at most 128 ports (and the domain's own port limit).
    if nr > 128 || nr == 0 {
        return Err(-EINVAL);
    }
    let mut ports = [0u8; 128 * 4];
    copy_from_guest(vcpu, ports_ptr, &mut ports[..nr as usize * 4])?;
    let d = vcpu.domain.clone();
    let v = vcpu.id;
    let single = if nr == 1 {
        u32::from_le_bytes([ports[0], ports[1], ports[2], ports[3]])
    } else {
        0
    };
    // Announce the poll before looking at the ports, so that an event arriving in
    // between finds it (and sets `poll_hit`).
    let slot = d.vcpu(u64::from(v)).ok_or(-EINVAL)?;
    slot.poll_hit.store(false, Ordering::Release);
    if let Some(p) = d.events.poll_port.get(v as usize) {
        p.store(single, Ordering::Release);
    }
    d.events.polling.fetch_or(1 << (v % 64), Ordering::AcqRel);
    let page = Page(&d.events);
    let max = d.events.ports.lock().max_ports();
    for c in ports[..nr as usize * 4].as_chunks::<4>().0 {
        let p = u32::from_le_bytes(*c);
        if p >= max {
            poll_done(&d, v);
            return Err(-EINVAL);
        }
        if evtchn::is_pending(&page, p) {
            poll_done(&d, v);
            return Ok(false);
        }
    }
    if timeout != 0 {
        glue::arm_timer(slot, timeout);
    }
    Ok(true)
}

/// The vCPU left `SCHEDOP_poll` (it runs again).
pub fn poll_done(d: &Domain, v: u32) {
    d.events
        .polling
        .fetch_and(!(1 << (v % 64)), Ordering::AcqRel);
}

/// `hvm_op(cmd, arg)`: the HVM parameters.
pub fn hvm_op(vcpu: &mut Vcpu, cmd: u64, arg: u64) -> i64 {
    let r = (|| -> Result<(), i64> {
        let set = match u32::try_from(cmd) {
            Ok(hvm::HVMOP_SET_PARAM) => true,
            Ok(hvm::HVMOP_GET_PARAM) => false,
            _ => return Err(-ENOSYS),
        };
        let mut p = read_arg!(vcpu, arg, hvm::HvmParam);
        let (domid, index, value) = (p.domid, p.index, p.value);
        let d = vcpu.domain.clone();
        let target = if domid == DOMID_SELF || u32::from(domid) == d.id {
            d.clone()
        } else if d.privileged {
            super::by_id(u32::from(domid)).ok_or(-oxen_abi::errno::ESRCH)?
        } else {
            return Err(-EPERM);
        };
        if set {
            let by_self = Arc::ptr_eq(&target, &d);
            let mut params = target.events.params.lock();
            let old = params.get(index as usize).copied().unwrap_or(0);
            let vector = check_set(index, by_self, old, value).map_err(SetError::errno)?;
            params[index as usize] = value;
            if let Some(v) = vector {
                target.events.callback_vector.store(v, Ordering::Release);
            }
            Ok(())
        } else {
            p.value = *target
                .events
                .params
                .lock()
                .get(index as usize)
                .ok_or(-EINVAL)?;
            copy_to_guest(vcpu, arg, &p.to_bytes())
        }
    })();
    match r {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// `VCPUOP_register_vcpu_info(vcpu, {gfn, offset})`: moves that vCPU's `vcpu_info` into
/// guest RAM (its current contents come along).
pub fn register_vcpu_info(d: &Domain, target: u32, gfn: u64, offset: u32) -> Result<(), i64> {
    let size = abi::vcpu_info::SIZE as u64;
    if !offset.is_multiple_of(8) || u64::from(offset) + size > 4096 {
        return Err(-EINVAL);
    }
    let hpa = d.ram_frame(gfn).ok_or(-EINVAL)? + u64::from(offset);
    let slot = d.events.vcpu_info.get(target as usize).ok_or(-EINVAL)?;
    let old = slot.load(Ordering::Acquire);
    if old != 0 && old != d.events.shared_info + u64::from(target) * size {
        // As Xen: it can be registered once.
        return Err(-EINVAL);
    }
    for i in 0..size / 8 {
        let v = if old == 0 {
            0
        } else {
            word(old + 8 * i).load(Ordering::Acquire)
        };
        word(hpa + 8 * i).store(v, Ordering::Release);
    }
    slot.store(hpa, Ordering::Release);
    update_time(d, target);
    Ok(())
}

/// The wallclock at system time 0 (Unix seconds, nanoseconds), from the RTC at boot.
static WALLCLOCK: spin::Once<(u64, u32)> = spin::Once::new();

/// Reads the RTC once and remembers what wallclock time system time 0 was.
pub fn init_wallclock() {
    WALLCLOCK.call_once(|| match crate::arch::rtc::unix_time() {
        Some(secs) => {
            let now = time::now();
            let at_zero = (u128::from(secs) * 1_000_000_000).saturating_sub(u128::from(now));
            let w = (
                (at_zero / 1_000_000_000) as u64,
                (at_zero % 1_000_000_000) as u32,
            );
            log::info!(
                "time: RTC says {secs} s since the epoch; wallclock at system time 0 is {}.{:09}",
                w.0,
                w.1
            );
            w
        }
        None => {
            log::warn!("time: no usable RTC; guests' wallclock starts at the epoch");
            (0, 0)
        }
    });
}

/// Writes the wallclock into a domain's shared info (`wc_version` odd, fields, even).
pub fn write_wallclock(d: &Domain) {
    let (sec, nsec) = *WALLCLOCK.get().unwrap_or(&(0, 0));
    // Its offset from the machine's clock (`XEN_DOMCTL_settimeoffset`).
    let sec = sec.wrapping_add_signed(d.time_offset.load(Ordering::Acquire));
    let base = d.events.shared_info + abi::shared_info::WC_VERSION as u64;
    let version = dword(base);
    let v0 = version.load(Ordering::Relaxed);
    version.store(v0.wrapping_add(1) | 1, Ordering::Release);
    fence(Ordering::Release);
    // wc_sec @+4, wc_nsec @+8, wc_sec_hi @+12.
    dword(base + 4).store(sec as u32, Ordering::Relaxed);
    dword(base + 8).store(nsec, Ordering::Relaxed);
    dword(base + 12).store((sec >> 32) as u32, Ordering::Relaxed);
    fence(Ordering::Release);
    version.store(v0.wrapping_add(2) & !1, Ordering::Release);
}

/// Writes vCPU `v`'s `vcpu_time_info` (version odd, fields, version even).
pub fn update_time(d: &Domain, v: u32) {
    let base = d.events.vcpu_info_hpa(v);
    if base == 0 {
        return;
    }
    let t = base + abi::vcpu_info::TIME as u64;
    let version = dword(t);
    let scale = time::scale();
    let tsc = crate::arch::cpu::rdtsc();
    let v0 = version.load(Ordering::Relaxed);
    version.store(v0.wrapping_add(1) | 1, Ordering::Release);
    fence(Ordering::Release);
    word(t + 8).store(tsc, Ordering::Relaxed);
    word(t + 16).store(scale.ns(tsc), Ordering::Relaxed);
    // mul (u32 @24), shift (i8 @28), flags (u8 @29: XEN_PVCLOCK_TSC_STABLE_BIT).
    let tail = u64::from(scale.mul) | (u64::from(scale.shift as u8) << 32) | (1 << 40);
    word(t + 24).store(tail, Ordering::Relaxed);
    fence(Ordering::Release);
    version.store((v0.wrapping_add(2)) & !1, Ordering::Release);
}
