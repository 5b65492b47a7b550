//! Event channels with the 2-level event ABI, as pure logic: the port table of each
//! domain and the `EVTCHNOP_*` operations on it, and the pending/mask bit protocol of
//! the shared page. The behaviour is Xen's (`event_channel.h`, the sub-op numbers and
//! structures are in [`oxen_abi::evtchn`]); the code is ours.
//!
//! # Design
//!
//! Each domain owns a [`Ports`] table: for every port its [`State`] and the vCPU it
//! notifies. Port 0 is never handed out. The table grows on demand up to a limit fixed
//! at creation ([`DEFAULT_MAX_PORTS`] = 4096, all the 2-level ABI can name).
//!
//! Operations on one domain are methods of [`Ports`]. The two that change two domains at
//! once take both tables: [`bind_interdomain`] and [`close`] (and [`reset`], a close of
//! every port). The hypervisor locks the two domains in a fixed order (say, ascending
//! domain id), then passes the local table and [`Peer::Other`] with the remote one, or
//! [`Peer::Local`] when both ends are in the same domain (loopback) or the port has no
//! remote end. Both ends change within one call, so no other CPU can ever see a half
//! connected channel.
//!
//! [`Ports::send`] needs only the sender's table: for an interdomain channel it returns a
//! [`Delivery`] that the hypervisor hands to the receiver's table ([`Ports::accept`])
//! under the receiver's lock. `accept` checks that the receiving port still points back
//! at the sender, so the two steps need never hold both locks: a channel closed between
//! them drops the event, as if the close had come first.
//!
//! Domain ids are resolved by the hypervisor before it locks anything, with
//! [`resolve_target`] (the `dom` of alloc_unbound, status and reset) and
//! [`resolve_domain`] (the `remote_dom` of bind_interdomain), against its own notion of
//! which domains exist (a [`Domains`]).
//!
//! Errors are negative errno values (`Err(-EINVAL)`), ready for RAX.
//!
//! The page side is [`set_pending`], [`unmask`], [`is_pending`], [`clear_pending`] and
//! [`is_masked`], over any [`EventPage`]: `evtchn_pending[64]` and `evtchn_mask[64]` in
//! `shared_info`, and `evtchn_pending_sel` / `evtchn_upcall_pending` /
//! `evtchn_upcall_mask` in each vCPU's `vcpu_info`. The hypervisor implements the trait
//! over guest memory with atomic instructions; the tests implement it over arrays. The
//! bit operations happen in the order the ABI requires (pending, then mask, then
//! selector, then upcall flag), each a single atomic step, so a guest updating the same
//! words concurrently never loses an event.
//!
//! # What the caller does with the results
//!
//! - [`Event`] (from [`bind_interdomain`], [`Ports::accept`], [`SendTarget::Local`],
//!   [`Ports::raise_virq`]): `if set_pending(page_of(dom), port, vcpu)` then make the
//!   vCPU take the upcall (wake it if halted, kick its pCPU if running elsewhere).
//! - [`Ports::unmask`] returning `Some(vcpu)`: the same kick.
//! - [`close`] and [`reset`] free ports: the caller clears their pending bits
//!   ([`clear_pending`]) so a later binding of the port does not start with a stale
//!   event. (Xen does this inside its close; here the table never touches the page.)
//! - A vCPU about to block (HLT, `SCHEDOP_block`) must not sleep while its
//!   `evtchn_upcall_pending` is set: [`set_pending`] reports a kick only when that flag
//!   goes from 0 to 1, like Xen.
//!
//! # Differences from Xen
//!
//! - Every port below the limit is valid. Xen treats ports beyond the buckets it has
//!   allocated so far as invalid: there `EVTCHNOP_status` / `unmask` of such a port fail
//!   with `-EINVAL`; here status reports "closed" and unmask touches the bits, as Xen
//!   does for any free port inside its buckets.
//! - The limit is a number of ports (`max_ports`; ports `1..max_ports` are usable), not
//!   Xen's `max_evtchn_port` (the highest usable port); Xen's toolstack default for an
//!   unprivileged domain is 1023 as highest port, here the default is the full 4096.
//! - `alloc_unbound` refuses (`-ESRCH`) a `remote_dom` that does not exist according to
//!   the caller's [`Domains`] (and every reserved id but `DOMID_SELF`). Xen accepts any
//!   value and the port simply can never be bound. The hypervisor wants Xen's behaviour
//!   and passes a `Domains` that accepts every ordinary id (reserved ids stay refused).
//! - Permission checks are Xen's default (dummy XSM) policy reduced to "a domain may act
//!   on itself; a privileged domain on any domain" ([`resolve_target`]); Xen's extra
//!   rule for a device model acting on its target is not modelled. The check comes
//!   before the port allocation, so a refused caller gets `-EPERM` even where Xen, which
//!   checks after allocating, would say `-ENOSPC`.
//! - `reset` is one atomic step, not preemptible. Xen closes the ports one by one with
//!   hypercall continuations (`-EBUSY` while a reset is under way) and, for another
//!   domain, requires that domain to be paused (`-EINVAL` otherwise): that condition is
//!   the caller's to check.
//! - No physical IRQs (`EVTCHNOP_bind_pirq`), no ports consumed by the hypervisor
//!   itself, no FIFO ABI (`init_control`, `expand_array`, `set_priority`: the caller
//!   answers `-ENOSYS`), no `SCHEDOP_poll` wake-ups (the caller checks pollers after
//!   `set_pending`).
//! - `send` is two steps (see above) where Xen holds the sender's channel lock while it
//!   marks the receiver; the only visible effect is the benign race described there.
//! - A close whose peer table is not the port's remote domain fails with `-EINVAL` and
//!   changes nothing: that is the answer Xen gives when it finds, after relocking in
//!   order, that the port was rebound meanwhile, and it is also what an API misuse gets.
//!   Likewise [`bind_interdomain`] with a [`Peer::Other`] table of the local domain.
//! - Growing the table can fail with `-ENOMEM` (Xen's bucket allocation can too).

use alloc::vec::Vec;

use oxen_abi::errno::{EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC, EPERM, ESRCH};
use oxen_abi::evtchn::{
    DOMID_FIRST_RESERVED, DOMID_SELF, DomId, EVTCHN_2L_BITS_PER_WORD, EVTCHN_2L_NR_CHANNELS,
    EvtchnStatus, stat, virq,
};

/// A failed operation: a negative errno (`-EINVAL`, ...), what the hypercall returns.
pub type Error = i64;

/// The default and largest port limit: every port the 2-level ABI can name.
pub const DEFAULT_MAX_PORTS: u32 = EVTCHN_2L_NR_CHANNELS;

/// Number of VIRQ numbers, as an index bound.
const NR_VIRQS: usize = virq::NR_VIRQS as usize;

/// What a port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not in use (and port 0, which is never handed out).
    Free,
    /// Allocated, waiting for `remote_dom` to bind to it.
    Unbound {
        /// The only domain allowed to connect.
        remote_dom: DomId,
    },
    /// Connected to `remote_port` of `remote_dom` (which may be this domain).
    Interdomain {
        /// The domain of the other end.
        remote_dom: DomId,
        /// The other end's port in that domain.
        remote_port: u32,
    },
    /// Bound to a virtual IRQ.
    Virq {
        /// The [`virq`] number.
        virq: u32,
        /// The vCPU it was bound for (0 for global VIRQs; the notify vCPU of a global
        /// VIRQ can move with `bind_vcpu`, this does not).
        vcpu: u32,
    },
    /// An inter-processor interrupt delivered to `vcpu`.
    Ipi {
        /// The vCPU notified (always the port's notify vCPU).
        vcpu: u32,
    },
}

/// One slot of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    state: State,
    notify_vcpu: u32,
}

const FREE: Slot = Slot {
    state: State::Free,
    notify_vcpu: 0,
};

/// Which domain ids exist, as the hypervisor sees them.
pub trait Domains {
    /// Whether `dom` names an existing domain.
    fn exists(&self, dom: DomId) -> bool;
}

impl<F: Fn(DomId) -> bool> Domains for F {
    fn exists(&self, dom: DomId) -> bool {
        self(dom)
    }
}

impl Domains for [DomId] {
    fn exists(&self, dom: DomId) -> bool {
        self.contains(&dom)
    }
}

/// Resolves a domain argument that needs no privilege (the `remote_dom` of
/// `bind_interdomain`): [`DOMID_SELF`] is `caller`; any other id must exist (`-ESRCH`).
/// A reserved id never names a domain, whatever `domains` says (nor does a reserved
/// `caller`, which would be the hypervisor's mistake).
pub fn resolve_domain<D: Domains + ?Sized>(
    dom: DomId,
    caller: DomId,
    domains: &D,
) -> Result<DomId, Error> {
    let d = if dom == DOMID_SELF { caller } else { dom };
    if d >= DOMID_FIRST_RESERVED || (d != caller && !domains.exists(d)) {
        return Err(-ESRCH);
    }
    Ok(d)
}

/// Resolves the domain an operation acts on (the `dom` of `alloc_unbound`, `status` and
/// `reset`): as [`resolve_domain`], and a domain other than the caller needs a
/// privileged caller (`-EPERM`).
pub fn resolve_target<D: Domains + ?Sized>(
    dom: DomId,
    caller: DomId,
    caller_privileged: bool,
    domains: &D,
) -> Result<DomId, Error> {
    let d = resolve_domain(dom, caller, domains)?;
    if d != caller && !caller_privileged {
        return Err(-EPERM);
    }
    Ok(d)
}

/// Whether a VIRQ is global (bound once per domain, on vCPU 0, movable with
/// `bind_vcpu`) rather than per-vCPU (`TIMER`, `DEBUG`, `XENOPROF`, `XENPMU`). The
/// architecture VIRQs are global on x86, as in Xen.
pub fn virq_is_global(virq: u32) -> bool {
    !matches!(
        virq,
        virq::TIMER | virq::DEBUG | virq::XENOPROF | virq::XENPMU
    )
}

/// "Mark `port` pending in domain `dom`'s page, for vCPU `vcpu`" (see [`set_pending`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub dom: DomId,
    pub port: u32,
    pub vcpu: u32,
}

/// An interdomain notification on its way from one table to another: hand it to the
/// receiving domain's [`Ports::accept`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The sending domain and port.
    pub from_dom: DomId,
    pub from_port: u32,
    /// The receiving domain and port.
    pub to_dom: DomId,
    pub to_port: u32,
}

/// What [`Ports::send`] asks the caller to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendTarget {
    /// Mark a port of the sender's own domain (an IPI, or a loopback channel's other
    /// end).
    Local(Event),
    /// Lock the receiving domain and pass this to its [`Ports::accept`].
    Remote(Delivery),
    /// The port is unbound: the notification is dropped and the send succeeds.
    Dropped,
}

/// The other table of a two-domain operation.
#[derive(Debug)]
pub enum Peer<'a> {
    /// There is no other table: the remote end is in the local domain (loopback), or
    /// the port has no remote end.
    Local,
    /// The remote domain's table, locked together with the local one.
    Other(&'a mut Ports),
}

/// What [`Ports::status`] reports about a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStatus {
    pub state: State,
    /// The vCPU the port notifies.
    pub vcpu: u32,
}

impl PortStatus {
    /// Fills the OUT fields of `EVTCHNOP_status` (`status`, `vcpu`, the union); the IN
    /// fields `dom` and `port` are left as the guest gave them.
    pub fn write_to(&self, out: &mut EvtchnStatus) {
        out.vcpu = self.vcpu;
        out.u_word0 = 0;
        out.u_word1 = 0;
        out.status = match self.state {
            State::Free => stat::CLOSED,
            State::Unbound { remote_dom } => {
                out.set_unbound_dom(remote_dom);
                stat::UNBOUND
            }
            State::Interdomain {
                remote_dom,
                remote_port,
            } => {
                out.set_interdomain(remote_dom, remote_port);
                stat::INTERDOMAIN
            }
            State::Virq { virq, .. } => {
                out.set_virq(virq);
                stat::VIRQ
            }
            State::Ipi { .. } => stat::IPI,
        };
    }
}

/// The event channel ports of one domain.
#[derive(Clone, Debug)]
pub struct Ports {
    domid: DomId,
    nr_vcpus: u32,
    max_ports: u32,
    /// Indexed by port; grows on demand, never beyond `max_ports` entries.
    slots: Vec<Slot>,
    /// For each vCPU, the port bound to each VIRQ on it (0 = none).
    virqs: Vec<[u32; NR_VIRQS]>,
    /// Ports not free.
    open: u32,
    /// The domain is being destroyed ([`Ports::kill`]): nothing new is ever bound here.
    dead: bool,
}

impl Ports {
    /// An empty table for domain `domid` with `nr_vcpus` vCPUs (ids `0..nr_vcpus`) and
    /// ports `0..max_ports`, `max_ports` clamped to `1..=DEFAULT_MAX_PORTS` (port 0
    /// exists but is never handed out).
    pub fn new(domid: DomId, nr_vcpus: u32, max_ports: u32) -> Self {
        Ports {
            domid,
            nr_vcpus,
            max_ports: max_ports.clamp(1, DEFAULT_MAX_PORTS),
            slots: alloc::vec![FREE],
            virqs: alloc::vec![[0; NR_VIRQS]; nr_vcpus as usize],
            open: 0,
            dead: false,
        }
    }

    /// The first step of destroying the domain: from now on no port of this table can
    /// be allocated or connected (`-ESRCH`, as for a domain that no longer exists) and
    /// nothing is delivered to it ([`Ports::accept`] drops, [`Ports::raise_virq`] finds
    /// nothing), so the set of peers can only shrink. The caller then closes every port
    /// with [`reset`], which can no longer race with a new binding.
    pub fn kill(&mut self) {
        self.dead = true;
    }

    /// Whether [`Ports::kill`] was called.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// The domain this table belongs to.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> u32 {
        self.nr_vcpus
    }

    /// The port limit: ports are `0..max_ports`.
    pub fn max_ports(&self) -> u32 {
        self.max_ports
    }

    /// Number of ports in use (not [`State::Free`]).
    pub fn open_ports(&self) -> u32 {
        self.open
    }

    fn slot(&self, port: u32) -> Option<Slot> {
        if port >= self.max_ports {
            return None;
        }
        Some(self.slots.get(port as usize).copied().unwrap_or(FREE))
    }

    /// The state of `port`; `None` if it is beyond the limit.
    pub fn state(&self, port: u32) -> Option<State> {
        self.slot(port).map(|s| s.state)
    }

    /// The vCPU `port` notifies; `None` if it is beyond the limit (free ports notify
    /// vCPU 0).
    pub fn notify_vcpu(&self, port: u32) -> Option<u32> {
        self.slot(port).map(|s| s.notify_vcpu)
    }

    /// The remote end of an interdomain port.
    pub fn peer(&self, port: u32) -> Option<(DomId, u32)> {
        match self.state(port)? {
            State::Interdomain {
                remote_dom,
                remote_port,
            } => Some((remote_dom, remote_port)),
            _ => None,
        }
    }

    /// Every other domain this one has an interdomain channel with, ascending, without
    /// repeats: the tables [`reset`] needs.
    pub fn peer_domains(&self) -> Vec<DomId> {
        let mut v: Vec<DomId> = self
            .slots
            .iter()
            .filter_map(|s| match s.state {
                State::Interdomain { remote_dom, .. } if remote_dom != self.domid => {
                    Some(remote_dom)
                }
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The ports in use, ascending, with their state and notify vCPU.
    pub fn bound(&self) -> impl Iterator<Item = (u32, PortStatus)> + '_ {
        self.slots.iter().enumerate().filter_map(|(p, s)| {
            (s.state != State::Free).then_some((
                p as u32,
                PortStatus {
                    state: s.state,
                    vcpu: s.notify_vcpu,
                },
            ))
        })
    }

    /// The port bound to `virq` on `vcpu` (global VIRQs are found on vCPU 0).
    pub fn virq_port(&self, virq: u32, vcpu: u32) -> Option<u32> {
        let table = self.virqs.get(vcpu as usize)?;
        match table.get(virq as usize) {
            Some(&p) if p != 0 => Some(p),
            _ => None,
        }
    }

    /// The event to raise for `virq` on `vcpu`: a per-vCPU VIRQ goes to the port that
    /// vCPU bound, notifying it; a global VIRQ (`vcpu` ignored) to the domain's port,
    /// notifying that port's vCPU. `None` if nothing is bound.
    pub fn raise_virq(&self, virq: u32, vcpu: u32) -> Option<Event> {
        if virq >= virq::NR_VIRQS || self.dead {
            return None;
        }
        let (port, target) = if virq_is_global(virq) {
            let port = self.virq_port(virq, 0)?;
            (port, self.notify_vcpu(port)?)
        } else {
            (self.virq_port(virq, vcpu)?, vcpu)
        };
        Some(Event {
            dom: self.domid,
            port,
            vcpu: target,
        })
    }

    /// The lowest free port, with room made for it in the table.
    fn take_free(&mut self) -> Result<u32, Error> {
        if self.dead {
            return Err(-ESRCH);
        }
        if let Some(p) = self
            .slots
            .iter()
            .skip(1)
            .position(|s| s.state == State::Free)
        {
            return Ok(p as u32 + 1);
        }
        let port = self.slots.len() as u32;
        if port >= self.max_ports {
            return Err(-ENOSPC);
        }
        self.slots.try_reserve(1).map_err(|_| -ENOMEM)?;
        self.slots.push(FREE);
        Ok(port)
    }

    /// Puts a port taken with `take_free` (or a bound one) into `state`.
    fn bind(&mut self, port: u32, state: State, notify_vcpu: u32) {
        let slot = &mut self.slots[port as usize];
        if slot.state == State::Free {
            self.open += 1;
        }
        *slot = Slot { state, notify_vcpu };
    }

    /// Changes the state of a port that stays in use.
    fn set_state(&mut self, port: u32, state: State) {
        if let Some(slot) = self.slots.get_mut(port as usize) {
            slot.state = state;
        }
    }

    /// Frees a port: back to [`State::Free`], notifying vCPU 0.
    fn free(&mut self, port: u32) {
        let Some(slot) = self.slots.get_mut(port as usize) else {
            return;
        };
        if let State::Virq { virq, vcpu } = slot.state
            && let Some(entry) = self
                .virqs
                .get_mut(vcpu as usize)
                .and_then(|t| t.get_mut(virq as usize))
            && *entry == port
        {
            *entry = 0;
        }
        if slot.state != State::Free {
            self.open -= 1;
        }
        *slot = FREE;
    }

    /// `EVTCHNOP_alloc_unbound` in this (already resolved, see [`resolve_target`])
    /// domain, called by `caller`: a new port that only `remote_dom` may connect to
    /// ([`DOMID_SELF`] = the caller). `-ENOSPC` if the table is full, `-ESRCH` if
    /// `remote_dom` does not exist.
    pub fn alloc_unbound<D: Domains + ?Sized>(
        &mut self,
        caller: DomId,
        remote_dom: DomId,
        domains: &D,
    ) -> Result<u32, Error> {
        let port = self.take_free()?;
        let remote_dom = resolve_domain(remote_dom, caller, domains)?;
        self.bind(port, State::Unbound { remote_dom }, 0);
        Ok(port)
    }

    /// `EVTCHNOP_bind_virq`: a new port for `virq` on `vcpu`. `-EINVAL` for a VIRQ
    /// number out of range or a global VIRQ on a vCPU other than 0, `-ENOENT` for a vCPU
    /// that does not exist, `-EEXIST` if that VIRQ is already bound on that vCPU,
    /// `-ENOSPC` if the table is full.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<u32, Error> {
        if virq >= virq::NR_VIRQS {
            return Err(-EINVAL);
        }
        if virq_is_global(virq) && vcpu != 0 {
            return Err(-EINVAL);
        }
        if vcpu >= self.nr_vcpus {
            return Err(-ENOENT);
        }
        if self.virq_port(virq, vcpu).is_some() {
            return Err(-EEXIST);
        }
        let port = self.take_free()?;
        self.bind(port, State::Virq { virq, vcpu }, vcpu);
        self.virqs[vcpu as usize][virq as usize] = port;
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`: a new port notifying `vcpu` when the domain sends on it.
    /// `-ENOENT` for a vCPU that does not exist, `-ENOSPC` if the table is full.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<u32, Error> {
        if vcpu >= self.nr_vcpus {
            return Err(-ENOENT);
        }
        let port = self.take_free()?;
        self.bind(port, State::Ipi { vcpu }, vcpu);
        Ok(port)
    }

    /// `EVTCHNOP_bind_vcpu`: make `port` notify `vcpu` from now on. Allowed for
    /// unbound and interdomain ports and global VIRQs; `-EINVAL` for any other port
    /// (free, per-vCPU VIRQ, IPI, beyond the limit), `-ENOENT` for a vCPU that does not
    /// exist (checked first, as Xen does).
    pub fn bind_vcpu(&mut self, port: u32, vcpu: u32) -> Result<(), Error> {
        if vcpu >= self.nr_vcpus {
            return Err(-ENOENT);
        }
        let state = self.state(port).ok_or(-EINVAL)?;
        match state {
            State::Unbound { .. } | State::Interdomain { .. } => {}
            State::Virq { virq, .. } if virq_is_global(virq) => {}
            _ => return Err(-EINVAL),
        }
        self.slots[port as usize].notify_vcpu = vcpu;
        Ok(())
    }

    /// `EVTCHNOP_status` of `port` (the domain resolved with [`resolve_target`]):
    /// `-EINVAL` beyond the limit; a free port (and port 0) reports "closed".
    pub fn status(&self, port: u32) -> Result<PortStatus, Error> {
        let slot = self.slot(port).ok_or(-EINVAL)?;
        Ok(PortStatus {
            state: slot.state,
            vcpu: slot.notify_vcpu,
        })
    }

    /// `EVTCHNOP_send` on `port`: whom to notify. `-EINVAL` unless the port is
    /// interdomain, IPI or unbound (an unbound port drops the event and succeeds).
    pub fn send(&self, port: u32) -> Result<SendTarget, Error> {
        let slot = self.slot(port).ok_or(-EINVAL)?;
        match slot.state {
            State::Interdomain {
                remote_dom,
                remote_port,
            } if remote_dom == self.domid => Ok(SendTarget::Local(Event {
                dom: self.domid,
                port: remote_port,
                vcpu: self.notify_vcpu(remote_port).unwrap_or(0),
            })),
            State::Interdomain {
                remote_dom,
                remote_port,
            } => Ok(SendTarget::Remote(Delivery {
                from_dom: self.domid,
                from_port: port,
                to_dom: remote_dom,
                to_port: remote_port,
            })),
            State::Ipi { .. } => Ok(SendTarget::Local(Event {
                dom: self.domid,
                port,
                vcpu: slot.notify_vcpu,
            })),
            State::Unbound { .. } => Ok(SendTarget::Dropped),
            State::Free | State::Virq { .. } => Err(-EINVAL),
        }
    }

    /// The receiving half of an interdomain send: the event to raise if `d` is for this
    /// domain and its port is still connected to the sender; `None` (drop it) otherwise.
    pub fn accept(&self, d: &Delivery) -> Option<Event> {
        if d.to_dom != self.domid || self.dead {
            return None;
        }
        let slot = self.slot(d.to_port)?;
        (slot.state
            == State::Interdomain {
                remote_dom: d.from_dom,
                remote_port: d.from_port,
            })
        .then_some(Event {
            dom: self.domid,
            port: d.to_port,
            vcpu: slot.notify_vcpu,
        })
    }

    /// `EVTCHNOP_unmask` of `port` on this domain's page: `-EINVAL` beyond the limit;
    /// otherwise `Some(vcpu)` when that vCPU must now take an upcall (see [`unmask`]).
    pub fn unmask<P: EventPage + ?Sized>(
        &self,
        page: &mut P,
        port: u32,
    ) -> Result<Option<u32>, Error> {
        let vcpu = self.notify_vcpu(port).ok_or(-EINVAL)?;
        Ok(unmask(page, port, vcpu).then_some(vcpu))
    }
}

/// `EVTCHNOP_bind_interdomain`, called by the domain owning `local`: a new local port
/// connected to `remote_port`, which must be an unbound port of the remote domain
/// (`remote`, or `local` itself for [`Peer::Local`]) that names the local domain as its
/// remote. Both ends become interdomain at once; the new port notifies vCPU 0. The
/// returned [`Event`] marks the new port pending, as Xen does to cover notifications
/// sent to the unbound port before the connection.
///
/// `-ENOSPC` if the local table is full (checked first); `-EINVAL` if `remote_port` is
/// out of range, not unbound or reserved for another domain, or if `remote` is the
/// local domain's own table.
pub fn bind_interdomain(
    local: &mut Ports,
    remote: Peer<'_>,
    remote_port: u32,
) -> Result<Event, Error> {
    let ldom = local.domid;
    let lport = local.take_free()?;
    let wanted = State::Unbound { remote_dom: ldom };
    match remote {
        Peer::Local => {
            if local.state(remote_port) != Some(wanted) {
                return Err(-EINVAL);
            }
            local.bind(
                lport,
                State::Interdomain {
                    remote_dom: ldom,
                    remote_port,
                },
                0,
            );
            local.set_state(
                remote_port,
                State::Interdomain {
                    remote_dom: ldom,
                    remote_port: lport,
                },
            );
        }
        Peer::Other(r) => {
            if r.dead {
                return Err(-ESRCH);
            }
            if r.domid == ldom || r.state(remote_port) != Some(wanted) {
                return Err(-EINVAL);
            }
            local.bind(
                lport,
                State::Interdomain {
                    remote_dom: r.domid,
                    remote_port,
                },
                0,
            );
            r.set_state(
                remote_port,
                State::Interdomain {
                    remote_dom: ldom,
                    remote_port: lport,
                },
            );
        }
    }
    Ok(Event {
        dom: ldom,
        port: lport,
        vcpu: 0,
    })
}

/// `EVTCHNOP_close` of `port` in `local`: the port becomes free (a VIRQ binding is
/// dropped with it). For an interdomain port the other end, in `remote` (or in `local`
/// for a loopback channel), becomes unbound, reserved for the closing domain, and keeps
/// its notify vCPU.
///
/// `-EINVAL` if the port is free or beyond the limit, or if it is connected to another
/// domain and `remote` is not that domain's table (nothing changes then: look the peer
/// up again with [`Ports::peer`] and retry). The caller clears the port's pending bit.
pub fn close(local: &mut Ports, remote: Peer<'_>, port: u32) -> Result<(), Error> {
    let ldom = local.domid;
    let state = local.state(port).ok_or(-EINVAL)?;
    match state {
        State::Free => return Err(-EINVAL),
        State::Unbound { .. } | State::Virq { .. } | State::Ipi { .. } => {}
        State::Interdomain {
            remote_dom,
            remote_port,
        } => {
            let back = State::Interdomain {
                remote_dom: ldom,
                remote_port: port,
            };
            let unbound = State::Unbound { remote_dom: ldom };
            if remote_dom == ldom {
                if local.state(remote_port) == Some(back) {
                    local.set_state(remote_port, unbound);
                }
            } else {
                match remote {
                    Peer::Other(r) if r.domid == remote_dom => {
                        if r.state(remote_port) == Some(back) {
                            r.set_state(remote_port, unbound);
                        }
                    }
                    _ => return Err(-EINVAL),
                }
            }
        }
    }
    local.free(port);
    Ok(())
}

/// `EVTCHNOP_reset` (and domain destruction): closes every port of `local`. `peers`
/// holds the tables of the domains [`Ports::peer_domains`] lists (others are ignored),
/// all locked by the caller; if one is missing nothing changes and the answer is
/// `-EINVAL`. The caller clears the pending bits of every port (all are free after).
pub fn reset(local: &mut Ports, peers: &mut [&mut Ports]) -> Result<(), Error> {
    let needed = local.peer_domains();
    if !needed.iter().all(|d| peers.iter().any(|p| p.domid == *d)) {
        return Err(-EINVAL);
    }
    for port in 1..local.slots.len() as u32 {
        let peer = match local.peer(port) {
            Some((d, _)) if d != local.domid => match peers.iter_mut().find(|p| p.domid == d) {
                Some(p) => Peer::Other(p),
                None => Peer::Local,
            },
            _ => Peer::Local,
        };
        // Free ports answer -EINVAL; every bound one closes (its peer is in `peers`).
        let _ = close(local, peer, port);
    }
    Ok(())
}

/// A word of the 2-level event state, as [`EventPage`] addresses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// `shared_info.evtchn_pending[i]`, `i < 64`.
    Pending(usize),
    /// `shared_info.evtchn_mask[i]`, `i < 64`.
    Mask(usize),
    /// `vcpu_info.evtchn_pending_sel` of a vCPU.
    Selector(u32),
}

/// The guest-shared event state of one domain. Each method is one atomic step on guest
/// memory (the hypervisor implements them with `lock`-prefixed instructions). A vCPU
/// without a `vcpu_info` must read as zero and ignore writes; the free functions below
/// never pass a bitmap index of 64 or more.
pub trait EventPage {
    /// Reads a word.
    fn load(&self, word: Word) -> u64;
    /// ORs `bits` into a word; returns its previous value.
    fn fetch_or(&mut self, word: Word, bits: u64) -> u64;
    /// ANDs `bits` into a word; returns its previous value.
    fn fetch_and(&mut self, word: Word, bits: u64) -> u64;
    /// Sets `evtchn_upcall_pending` of `vcpu` to 1; returns whether it was already set.
    fn test_and_set_upcall_pending(&mut self, vcpu: u32) -> bool;
    /// Whether `evtchn_upcall_pending` of `vcpu` is set.
    fn upcall_pending(&self, vcpu: u32) -> bool;
    /// Whether `evtchn_upcall_mask` of `vcpu` is set. Only PV guests use it: for
    /// HVM/PVH guests Xen, and oxen, gate the upcall on RFLAGS.IF instead, so nothing
    /// here reads it; it is for the caller's delivery decisions and diagnostics.
    fn upcall_mask(&self, vcpu: u32) -> bool;
}

/// Index and bit of a port in the bitmaps; `None` beyond the 2-level range.
fn split(port: u32) -> Option<(usize, u64)> {
    (port < EVTCHN_2L_NR_CHANNELS).then(|| {
        (
            (port / EVTCHN_2L_BITS_PER_WORD) as usize,
            1u64 << (port % EVTCHN_2L_BITS_PER_WORD),
        )
    })
}

/// Sets the selector bit of word `w` for `vcpu` and, if that bit was clear, the upcall
/// flag; true if the flag went from 0 to 1.
fn raise_upcall<P: EventPage + ?Sized>(page: &mut P, w: usize, vcpu: u32) -> bool {
    let sel = 1u64 << w;
    if page.fetch_or(Word::Selector(vcpu), sel) & sel != 0 {
        return false;
    }
    !page.test_and_set_upcall_pending(vcpu)
}

/// Marks `port` pending for `vcpu`, the 2-level way: nothing if it already was;
/// otherwise, if the port is not masked, sets the vCPU's selector bit for the port's
/// word and, if that bit was newly set, its `evtchn_upcall_pending`. True when that flag
/// went from 0 to 1: the vCPU must be made to take the upcall. A port beyond the 2-level
/// range does nothing.
pub fn set_pending<P: EventPage + ?Sized>(page: &mut P, port: u32, vcpu: u32) -> bool {
    let Some((w, bit)) = split(port) else {
        return false;
    };
    if page.fetch_or(Word::Pending(w), bit) & bit != 0 {
        return false;
    }
    if page.load(Word::Mask(w)) & bit != 0 {
        return false;
    }
    raise_upcall(page, w, vcpu)
}

/// Unmasks `port` (whose notify vCPU is `vcpu`), the 2-level way: clears the mask bit
/// and, if it was set and the port is pending, sets the selector bit and upcall flag as
/// [`set_pending`] does. True when the vCPU must be made to take the upcall.
pub fn unmask<P: EventPage + ?Sized>(page: &mut P, port: u32, vcpu: u32) -> bool {
    let Some((w, bit)) = split(port) else {
        return false;
    };
    if page.fetch_and(Word::Mask(w), !bit) & bit == 0 {
        return false;
    }
    if page.load(Word::Pending(w)) & bit == 0 {
        return false;
    }
    raise_upcall(page, w, vcpu)
}

/// Whether `port` is pending (false beyond the 2-level range).
pub fn is_pending<P: EventPage + ?Sized>(page: &P, port: u32) -> bool {
    split(port).is_some_and(|(w, bit)| page.load(Word::Pending(w)) & bit != 0)
}

/// Whether `port` is masked (false beyond the 2-level range).
pub fn is_masked<P: EventPage + ?Sized>(page: &P, port: u32) -> bool {
    split(port).is_some_and(|(w, bit)| page.load(Word::Mask(w)) & bit != 0)
}

/// Clears the pending bit of `port` (as when the port is freed).
pub fn clear_pending<P: EventPage + ?Sized>(page: &mut P, port: u32) {
    if let Some((w, bit)) = split(port) {
        page.fetch_and(Word::Pending(w), !bit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxen_abi::evtchn::DOMID_INVALID;
    use oxen_abi::evtchn::virq::{
        ARCH_0, ARCH_7, ARGO, CON_RING, CONSOLE, DEBUG, DEBUGGER, DOM_EXC, TBUF, TIMER, XENOPROF,
        XENPMU,
    };

    /// Domains 0, 1 and 2 exist.
    const DOMS: &[DomId] = &[0, 1, 2];

    /// The 2-level state over plain arrays.
    struct Arrays {
        pending: [u64; 64],
        mask: [u64; 64],
        sel: Vec<u64>,
        upcall: Vec<bool>,
        upcall_mask: Vec<bool>,
    }

    impl Arrays {
        fn new(vcpus: usize) -> Self {
            Arrays {
                pending: [0; 64],
                mask: [0; 64],
                sel: alloc::vec![0; vcpus],
                upcall: alloc::vec![false; vcpus],
                upcall_mask: alloc::vec![false; vcpus],
            }
        }

        fn word(&mut self, w: Word) -> Option<&mut u64> {
            match w {
                Word::Pending(i) => self.pending.get_mut(i),
                Word::Mask(i) => self.mask.get_mut(i),
                Word::Selector(v) => self.sel.get_mut(v as usize),
            }
        }

        fn mask_port(&mut self, port: u32) {
            self.mask[port as usize / 64] |= 1 << (port % 64);
        }
    }

    impl EventPage for Arrays {
        fn load(&self, w: Word) -> u64 {
            match w {
                Word::Pending(i) => self.pending[i],
                Word::Mask(i) => self.mask[i],
                Word::Selector(v) => self.sel.get(v as usize).copied().unwrap_or(0),
            }
        }
        fn fetch_or(&mut self, w: Word, bits: u64) -> u64 {
            match self.word(w) {
                Some(x) => {
                    let old = *x;
                    *x |= bits;
                    old
                }
                None => 0,
            }
        }
        fn fetch_and(&mut self, w: Word, bits: u64) -> u64 {
            match self.word(w) {
                Some(x) => {
                    let old = *x;
                    *x &= bits;
                    old
                }
                None => 0,
            }
        }
        fn test_and_set_upcall_pending(&mut self, vcpu: u32) -> bool {
            match self.upcall.get_mut(vcpu as usize) {
                Some(f) => core::mem::replace(f, true),
                None => false,
            }
        }
        fn upcall_pending(&self, vcpu: u32) -> bool {
            self.upcall.get(vcpu as usize).copied().unwrap_or(false)
        }
        fn upcall_mask(&self, vcpu: u32) -> bool {
            self.upcall_mask
                .get(vcpu as usize)
                .copied()
                .unwrap_or(false)
        }
    }

    fn unbound(remote_dom: DomId) -> Option<State> {
        Some(State::Unbound { remote_dom })
    }

    fn inter(remote_dom: DomId, remote_port: u32) -> Option<State> {
        Some(State::Interdomain {
            remote_dom,
            remote_port,
        })
    }

    /// Domain 0 with an unbound port for domain 1 connected to by domain 1:
    /// returns (dom0, dom1, port in dom0, port in dom1).
    fn connected_pair() -> (Ports, Ports, u32, u32) {
        let mut a = Ports::new(0, 2, DEFAULT_MAX_PORTS);
        let mut b = Ports::new(1, 2, DEFAULT_MAX_PORTS);
        let pa = a.alloc_unbound(0, 1, DOMS).unwrap();
        let ev = bind_interdomain(&mut b, Peer::Other(&mut a), pa).unwrap();
        (a, b, pa, ev.port)
    }

    #[test]
    fn a_new_table_is_empty_and_clamps_its_limit() {
        let p = Ports::new(3, 2, DEFAULT_MAX_PORTS);
        assert_eq!(p.domid(), 3);
        assert_eq!(p.nr_vcpus(), 2);
        assert_eq!(p.max_ports(), 4096);
        assert_eq!(p.open_ports(), 0);
        assert_eq!(p.state(0), Some(State::Free));
        assert_eq!(p.state(4095), Some(State::Free));
        assert_eq!(p.state(4096), None);
        assert_eq!(p.notify_vcpu(4095), Some(0));
        assert_eq!(p.bound().count(), 0);
        assert!(p.peer_domains().is_empty());
        assert_eq!(Ports::new(0, 1, 0).max_ports(), 1);
        assert_eq!(Ports::new(0, 1, 100_000).max_ports(), 4096);
        assert_eq!(Ports::new(0, 1, 16).max_ports(), 16);
    }

    #[test]
    fn domain_arguments_resolve_like_xen() {
        assert_eq!(resolve_domain(DOMID_SELF, 2, DOMS), Ok(2));
        assert_eq!(resolve_domain(1, 2, DOMS), Ok(1));
        assert_eq!(resolve_domain(7, 2, DOMS), Err(-ESRCH));
        assert_eq!(resolve_domain(DOMID_INVALID, 2, &|_| true), Err(-ESRCH));
        assert_eq!(resolve_domain(0xffff, 2, &|_| true), Err(-ESRCH));
        assert_eq!(
            resolve_domain(DOMID_SELF, DOMID_SELF, &|_| true),
            Err(-ESRCH)
        );
        assert_eq!(resolve_target(DOMID_SELF, 2, false, DOMS), Ok(2));
        assert_eq!(resolve_target(2, 2, false, DOMS), Ok(2));
        assert_eq!(resolve_target(1, 2, false, DOMS), Err(-EPERM));
        assert_eq!(resolve_target(1, 0, true, DOMS), Ok(1));
        assert_eq!(resolve_target(9, 0, true, DOMS), Err(-ESRCH));
        // A closure works as the set of domains too.
        assert_eq!(resolve_target(5, 0, true, &|d: DomId| d < 10), Ok(5));
    }

    #[test]
    fn alloc_unbound_hands_out_the_lowest_ports_from_one() {
        let mut p = Ports::new(1, 1, DEFAULT_MAX_PORTS);
        assert_eq!(p.alloc_unbound(1, 0, DOMS), Ok(1));
        assert_eq!(p.alloc_unbound(1, DOMID_SELF, DOMS), Ok(2));
        assert_eq!(p.state(1), unbound(0));
        assert_eq!(p.state(2), unbound(1));
        assert_eq!(p.notify_vcpu(1), Some(0));
        assert_eq!(p.open_ports(), 2);
        assert_eq!(p.status(1).unwrap().state, State::Unbound { remote_dom: 0 });
    }

    #[test]
    fn alloc_unbound_for_another_domain_names_the_caller_for_domid_self() {
        // Privileged domain 0 allocates in domain 2 a port that domain 0 will bind.
        let target = resolve_target(2, 0, true, DOMS).unwrap();
        let mut p = Ports::new(target, 1, DEFAULT_MAX_PORTS);
        let port = p.alloc_unbound(0, DOMID_SELF, DOMS).unwrap();
        assert_eq!(p.state(port), unbound(0));
    }

    #[test]
    fn alloc_unbound_refuses_unknown_and_reserved_remotes() {
        let mut p = Ports::new(1, 1, DEFAULT_MAX_PORTS);
        assert_eq!(p.alloc_unbound(1, 5, DOMS), Err(-ESRCH));
        assert_eq!(p.alloc_unbound(1, DOMID_INVALID, &|_| true), Err(-ESRCH));
        assert_eq!(p.alloc_unbound(1, 0x7ff1, &|_| true), Err(-ESRCH));
        assert_eq!(p.open_ports(), 0);
        // Accepting every ordinary id gives Xen's behaviour.
        assert_eq!(p.alloc_unbound(1, 5, &|_| true), Ok(1));
    }

    #[test]
    fn bind_interdomain_connects_both_ends_and_marks_the_new_port() {
        let mut a = Ports::new(0, 2, DEFAULT_MAX_PORTS);
        let mut b = Ports::new(1, 2, DEFAULT_MAX_PORTS);
        b.bind_ipi(1).unwrap(); // port 1 of b is taken
        let pa = a.alloc_unbound(0, 1, DOMS).unwrap();
        a.bind_vcpu(pa, 1).unwrap();
        let ev = bind_interdomain(&mut b, Peer::Other(&mut a), pa).unwrap();
        assert_eq!(
            ev,
            Event {
                dom: 1,
                port: 2,
                vcpu: 0
            }
        );
        assert_eq!(b.state(2), inter(0, pa));
        assert_eq!(a.state(pa), inter(1, 2));
        // The remote end keeps the vCPU it was bound to; the new end notifies vCPU 0.
        assert_eq!(a.notify_vcpu(pa), Some(1));
        assert_eq!(b.notify_vcpu(2), Some(0));
        assert_eq!(a.peer(pa), Some((1, 2)));
        assert_eq!(b.peer(2), Some((0, pa)));
        assert_eq!(a.peer_domains(), [1]);
        assert_eq!(b.peer_domains(), [0]);
        assert_eq!(b.peer(1), None);
    }

    #[test]
    fn bind_interdomain_refuses_ports_that_are_not_unbound_for_us() {
        let mut a = Ports::new(0, 2, DEFAULT_MAX_PORTS);
        let mut b = Ports::new(1, 2, DEFAULT_MAX_PORTS);
        let for_two = a.alloc_unbound(0, 2, DOMS).unwrap();
        let virq_port = a.bind_virq(TIMER, 0).unwrap();
        let ipi = a.bind_ipi(0).unwrap();
        let before = a.clone();
        for port in [
            0,
            for_two,
            virq_port,
            ipi,
            50,
            4095,
            4096,
            u32::MAX,
            (-1i32) as u32,
        ] {
            assert_eq!(
                bind_interdomain(&mut b, Peer::Other(&mut a), port),
                Err(-EINVAL),
                "port {port}"
            );
        }
        assert_eq!(b.open_ports(), 0);
        assert_eq!(a.open_ports(), before.open_ports());
        assert_eq!(
            a.bound().collect::<Vec<_>>(),
            before.bound().collect::<Vec<_>>()
        );

        // Already connected: a second bind to the same remote port fails.
        let pa = a.alloc_unbound(0, 1, DOMS).unwrap();
        bind_interdomain(&mut b, Peer::Other(&mut a), pa).unwrap();
        assert_eq!(
            bind_interdomain(&mut b, Peer::Other(&mut a), pa),
            Err(-EINVAL)
        );
        assert_eq!(b.open_ports(), 1);

        // A table of the local domain itself is not a remote.
        let mut b2 = Ports::new(1, 1, DEFAULT_MAX_PORTS);
        let p = b2.alloc_unbound(1, 1, DOMS).unwrap();
        assert_eq!(
            bind_interdomain(&mut b, Peer::Other(&mut b2), p),
            Err(-EINVAL)
        );
        // Nor does Peer::Local find another domain's port.
        assert_eq!(bind_interdomain(&mut b, Peer::Local, 1), Err(-EINVAL));
    }

    #[test]
    fn bind_interdomain_checks_local_space_first() {
        let mut a = Ports::new(0, 1, DEFAULT_MAX_PORTS);
        let mut b = Ports::new(1, 1, 2);
        b.bind_ipi(0).unwrap();
        let pa = a.alloc_unbound(0, 1, DOMS).unwrap();
        assert_eq!(
            bind_interdomain(&mut b, Peer::Other(&mut a), pa),
            Err(-ENOSPC)
        );
        assert_eq!(
            bind_interdomain(&mut b, Peer::Other(&mut a), 999),
            Err(-ENOSPC)
        );
        assert_eq!(a.state(pa), unbound(1));
    }

    #[test]
    fn loopback_channels_connect_within_one_domain() {
        let mut p = Ports::new(4, 2, DEFAULT_MAX_PORTS);
        let doms: &[DomId] = &[4];
        let listen = p.alloc_unbound(4, DOMID_SELF, doms).unwrap();
        let ev = bind_interdomain(&mut p, Peer::Local, listen).unwrap();
        let other = ev.port;
        assert_ne!(other, listen);
        assert_eq!(ev.dom, 4);
        assert_eq!(p.state(listen), inter(4, other));
        assert_eq!(p.state(other), inter(4, listen));
        assert!(p.peer_domains().is_empty());
        p.bind_vcpu(listen, 1).unwrap();

        // Each end signals the other, in the same domain.
        assert_eq!(
            p.send(other),
            Ok(SendTarget::Local(Event {
                dom: 4,
                port: listen,
                vcpu: 1
            }))
        );
        assert_eq!(
            p.send(listen),
            Ok(SendTarget::Local(Event {
                dom: 4,
                port: other,
                vcpu: 0
            }))
        );

        // Closing one end leaves the other unbound for this domain; it can be rebound.
        close(&mut p, Peer::Local, other).unwrap();
        assert_eq!(p.state(other), Some(State::Free));
        assert_eq!(p.state(listen), unbound(4));
        assert_eq!(p.notify_vcpu(listen), Some(1));
        let ev = bind_interdomain(&mut p, Peer::Local, listen).unwrap();
        assert_eq!(ev.port, other);
        close(&mut p, Peer::Local, listen).unwrap();
        close(&mut p, Peer::Local, other).unwrap();
        assert_eq!(p.open_ports(), 0);
    }

    #[test]
    fn closing_an_interdomain_end_leaves_the_peer_unbound_for_the_closer() {
        let (mut a, mut b, pa, pb) = connected_pair();
        b.bind_vcpu(pb, 1).unwrap();
        close(&mut a, Peer::Other(&mut b), pa).unwrap();
        assert_eq!(a.state(pa), Some(State::Free));
        assert_eq!(a.notify_vcpu(pa), Some(0));
        assert_eq!(b.state(pb), unbound(0));
        assert_eq!(b.notify_vcpu(pb), Some(1));
        assert!(a.peer_domains().is_empty());
        assert!(b.peer_domains().is_empty());
        // The closer may connect again to the port left behind.
        let ev = bind_interdomain(&mut a, Peer::Other(&mut b), pb).unwrap();
        assert_eq!(b.state(pb), inter(0, ev.port));
        // The other side may close too.
        close(&mut b, Peer::Other(&mut a), pb).unwrap();
        assert_eq!(a.state(ev.port), unbound(1));
        close(&mut a, Peer::Local, ev.port).unwrap();
        assert_eq!(a.open_ports(), 0);
        assert_eq!(b.open_ports(), 0);
    }

    #[test]
    fn close_needs_the_right_peer_table_and_changes_nothing_otherwise() {
        let (mut a, b, pa, pb) = connected_pair();
        assert_eq!(close(&mut a, Peer::Local, pa), Err(-EINVAL));
        let mut c = Ports::new(2, 1, DEFAULT_MAX_PORTS);
        assert_eq!(close(&mut a, Peer::Other(&mut c), pa), Err(-EINVAL));
        assert_eq!(a.state(pa), inter(1, pb));
        assert_eq!(b.state(pb), inter(0, pa));
        // A peer table is ignored for ports without a remote end.
        let ipi = a.bind_ipi(0).unwrap();
        close(&mut a, Peer::Other(&mut c), ipi).unwrap();
        assert_eq!(a.state(ipi), Some(State::Free));
    }

    #[test]
    fn close_refuses_free_and_out_of_range_ports() {
        let mut p = Ports::new(0, 1, 64);
        p.alloc_unbound(0, 1, DOMS).unwrap();
        for port in [0, 2, 63, 64, 4096, u32::MAX, 0x8000_0000] {
            assert_eq!(close(&mut p, Peer::Local, port), Err(-EINVAL), "{port}");
        }
        close(&mut p, Peer::Local, 1).unwrap();
        assert_eq!(close(&mut p, Peer::Local, 1), Err(-EINVAL));
    }

    #[test]
    fn virqs_bind_once_per_vcpu_and_global_ones_only_on_vcpu_0() {
        let mut p = Ports::new(0, 3, DEFAULT_MAX_PORTS);
        let t0 = p.bind_virq(TIMER, 0).unwrap();
        let t1 = p.bind_virq(TIMER, 1).unwrap();
        assert_ne!(t0, t1);
        assert_eq!(
            p.state(t1),
            Some(State::Virq {
                virq: TIMER,
                vcpu: 1
            })
        );
        assert_eq!(p.notify_vcpu(t1), Some(1));
        assert_eq!(p.bind_virq(TIMER, 1), Err(-EEXIST));
        assert_eq!(p.virq_port(TIMER, 1), Some(t1));
        assert_eq!(p.virq_port(TIMER, 2), None);

        let con = p.bind_virq(CONSOLE, 0).unwrap();
        assert_eq!(p.bind_virq(CONSOLE, 0), Err(-EEXIST));
        assert_eq!(p.bind_virq(CONSOLE, 1), Err(-EINVAL));
        // A global VIRQ moved to another vCPU is still bound once.
        p.bind_vcpu(con, 2).unwrap();
        assert_eq!(p.bind_virq(CONSOLE, 0), Err(-EEXIST));
        assert_eq!(
            p.state(con),
            Some(State::Virq {
                virq: CONSOLE,
                vcpu: 0
            })
        );

        // Range and vCPU checks, in Xen's order.
        assert_eq!(p.bind_virq(virq::NR_VIRQS, 0), Err(-EINVAL));
        assert_eq!(p.bind_virq(u32::MAX, 0), Err(-EINVAL));
        assert_eq!(p.bind_virq(DOM_EXC, 99), Err(-EINVAL));
        assert_eq!(p.bind_virq(DEBUG, 3), Err(-ENOENT));
        assert_eq!(p.bind_virq(DEBUG, u32::MAX), Err(-ENOENT));
        // Unassigned numbers below virq::NR_VIRQS are accepted, as in Xen.
        assert!(p.bind_virq(5, 0).is_ok());
        assert!(p.bind_virq(ARCH_7, 0).is_ok());

        // Closing frees the binding.
        close(&mut p, Peer::Local, t1).unwrap();
        assert_eq!(p.virq_port(TIMER, 1), None);
        assert_eq!(p.bind_virq(TIMER, 1), Ok(t1));
        close(&mut p, Peer::Local, con).unwrap();
        assert_eq!(p.virq_port(CONSOLE, 0), None);
        assert!(p.bind_virq(CONSOLE, 0).is_ok());
    }

    #[test]
    fn per_vcpu_and_global_virqs_are_classified_like_xen() {
        for v in [TIMER, DEBUG, XENOPROF, XENPMU] {
            assert!(!virq_is_global(v));
        }
        for v in [
            CONSOLE,
            DOM_EXC,
            TBUF,
            DEBUGGER,
            CON_RING,
            ARGO,
            virq::ENOMEM,
            ARCH_0,
            ARCH_7,
        ] {
            assert!(virq_is_global(v));
        }
    }

    #[test]
    fn raising_a_virq_names_the_right_port_and_vcpu() {
        let mut p = Ports::new(6, 2, DEFAULT_MAX_PORTS);
        assert_eq!(p.raise_virq(TIMER, 0), None);
        let t1 = p.bind_virq(TIMER, 1).unwrap();
        assert_eq!(
            p.raise_virq(TIMER, 1),
            Some(Event {
                dom: 6,
                port: t1,
                vcpu: 1
            })
        );
        assert_eq!(p.raise_virq(TIMER, 0), None);
        assert_eq!(p.raise_virq(TIMER, 9), None);
        let dbg = p.bind_virq(CON_RING, 0).unwrap();
        p.bind_vcpu(dbg, 1).unwrap();
        // Global: whatever vCPU is asked, the port's notify vCPU gets it.
        for v in [0, 1, 77] {
            assert_eq!(
                p.raise_virq(CON_RING, v),
                Some(Event {
                    dom: 6,
                    port: dbg,
                    vcpu: 1
                })
            );
        }
        assert_eq!(p.raise_virq(virq::NR_VIRQS, 0), None);
        assert_eq!(p.raise_virq(u32::MAX, 0), None);
    }

    #[test]
    fn ipis_notify_their_vcpu() {
        let mut p = Ports::new(0, 2, DEFAULT_MAX_PORTS);
        let ipi = p.bind_ipi(1).unwrap();
        assert_eq!(p.state(ipi), Some(State::Ipi { vcpu: 1 }));
        assert_eq!(
            p.send(ipi),
            Ok(SendTarget::Local(Event {
                dom: 0,
                port: ipi,
                vcpu: 1
            }))
        );
        assert_eq!(p.bind_ipi(2), Err(-ENOENT));
        assert_eq!(p.bind_ipi(u32::MAX), Err(-ENOENT));
        assert_eq!(p.open_ports(), 1);
    }

    #[test]
    fn bind_vcpu_moves_only_unbound_interdomain_and_global_virq_ports() {
        let (mut a, _b, pa, _pb) = connected_pair();
        let un = a.alloc_unbound(0, 2, DOMS).unwrap();
        let timer = a.bind_virq(TIMER, 0).unwrap();
        let exc = a.bind_virq(DOM_EXC, 0).unwrap();
        let ipi = a.bind_ipi(0).unwrap();
        for port in [pa, un, exc] {
            assert_eq!(a.bind_vcpu(port, 1), Ok(()));
            assert_eq!(a.notify_vcpu(port), Some(1));
        }
        for port in [timer, ipi, 0, 100, 4096, u32::MAX] {
            assert_eq!(a.bind_vcpu(port, 1), Err(-EINVAL), "{port}");
        }
        assert_eq!(a.notify_vcpu(timer), Some(0));
        // The vCPU is checked first.
        for port in [pa, timer, u32::MAX] {
            assert_eq!(a.bind_vcpu(port, 2), Err(-ENOENT));
        }
        // Closing resets the notify vCPU.
        close(&mut a, Peer::Local, un).unwrap();
        assert_eq!(a.notify_vcpu(un), Some(0));
    }

    #[test]
    fn status_reports_every_state() {
        let (mut a, _b, pa, pb) = connected_pair();
        let un = a.alloc_unbound(0, 2, DOMS).unwrap();
        let v = a.bind_virq(DEBUG, 1).unwrap();
        let ipi = a.bind_ipi(1).unwrap();
        let show = |p: &Ports, port: u32| {
            let mut out = EvtchnStatus {
                dom: DOMID_SELF,
                port,
                u_word0: 0xdead,
                u_word1: 0xbeef,
                ..Default::default()
            };
            p.status(port).unwrap().write_to(&mut out);
            out
        };
        let s = show(&a, pa);
        assert_eq!(
            (s.status, s.vcpu, s.interdomain()),
            (stat::INTERDOMAIN, 0, (1, pb))
        );
        assert_eq!((s.dom, s.port), (DOMID_SELF, pa));
        let s = show(&a, un);
        assert_eq!(
            (s.status, s.unbound_dom(), s.u_word1),
            (stat::UNBOUND, 2, 0)
        );
        let s = show(&a, v);
        assert_eq!((s.status, s.vcpu, s.virq()), (stat::VIRQ, 1, DEBUG));
        let s = show(&a, ipi);
        assert_eq!(
            (s.status, s.vcpu, s.u_word0, s.u_word1),
            (stat::IPI, 1, 0, 0)
        );
        for port in [0, 4095] {
            let s = show(&a, port);
            assert_eq!((s.status, s.vcpu, s.u_word0), (stat::CLOSED, 0, 0));
        }
        assert_eq!(a.status(4096), Err(-EINVAL));
        assert_eq!(a.status(u32::MAX), Err(-EINVAL));
    }

    #[test]
    fn send_marks_the_remote_end_of_an_interdomain_channel() {
        let (mut a, mut b, pa, pb) = connected_pair();
        a.bind_vcpu(pa, 1).unwrap();
        let Ok(SendTarget::Remote(d)) = b.send(pb) else {
            panic!("interdomain send goes to the remote domain")
        };
        assert_eq!(
            d,
            Delivery {
                from_dom: 1,
                from_port: pb,
                to_dom: 0,
                to_port: pa
            }
        );
        assert_eq!(
            a.accept(&d),
            Some(Event {
                dom: 0,
                port: pa,
                vcpu: 1
            })
        );
        // The wrong domain, or a channel closed in between, drops the event.
        assert_eq!(b.accept(&d), None);
        close(&mut a, Peer::Other(&mut b), pa).unwrap();
        assert_eq!(a.accept(&d), None);
        // The surviving end is now unbound: sending on it is a silent no-op.
        assert_eq!(b.send(pb), Ok(SendTarget::Dropped));
        let v = b.bind_virq(TIMER, 0).unwrap();
        for port in [0, v, 99, 4096, u32::MAX] {
            assert_eq!(b.send(port), Err(-EINVAL), "{port}");
        }
    }

    #[test]
    fn reset_closes_everything_and_leaves_peers_unbound() {
        let mut a = Ports::new(0, 2, DEFAULT_MAX_PORTS);
        let mut b = Ports::new(1, 2, DEFAULT_MAX_PORTS);
        let mut c = Ports::new(2, 2, DEFAULT_MAX_PORTS);
        let pb = b.alloc_unbound(1, 0, DOMS).unwrap();
        let pc = c.alloc_unbound(2, 0, DOMS).unwrap();
        let ab = bind_interdomain(&mut a, Peer::Other(&mut b), pb)
            .unwrap()
            .port;
        let ac = bind_interdomain(&mut a, Peer::Other(&mut c), pc)
            .unwrap()
            .port;
        let listen = a.alloc_unbound(0, DOMID_SELF, DOMS).unwrap();
        bind_interdomain(&mut a, Peer::Local, listen).unwrap();
        a.alloc_unbound(0, 2, DOMS).unwrap();
        a.bind_virq(TIMER, 1).unwrap();
        a.bind_virq(CONSOLE, 0).unwrap();
        a.bind_ipi(1).unwrap();
        assert_eq!(a.peer_domains(), [1, 2]);

        // Without every peer table nothing happens.
        assert_eq!(reset(&mut a, &mut [&mut b]), Err(-EINVAL));
        assert_eq!(a.open_ports(), 8);
        assert_eq!(b.state(pb), inter(0, ab));

        reset(&mut a, &mut [&mut c, &mut b]).unwrap();
        assert_eq!(a.open_ports(), 0);
        assert_eq!(a.bound().count(), 0);
        assert_eq!(b.state(pb), unbound(0));
        assert_eq!(c.state(pc), unbound(0));
        assert_eq!(a.virq_port(TIMER, 1), None);
        assert_eq!(a.bind_virq(TIMER, 1), Ok(1));
        let _ = ac;
        // Resetting an empty table is fine.
        let mut e = Ports::new(3, 1, 8);
        assert_eq!(reset(&mut e, &mut []), Ok(()));
    }

    #[test]
    fn a_killed_table_takes_no_new_binding_and_receives_nothing() {
        // The race of a domain being destroyed while one of its vCPUs still binds: once
        // killed, nothing new appears, so the reset that follows closes everything.
        let (mut a, mut b, pa, pb) = connected_pair();
        let listen = b.alloc_unbound(1, 0, DOMS).unwrap();
        let Ok(SendTarget::Remote(to_b)) = a.send(pa) else {
            panic!("interdomain send")
        };
        let virq_port = b.bind_virq(TIMER, 0).unwrap();
        b.kill();
        assert!(b.is_dead());
        // The dying domain's own calls, and others connecting to it.
        assert_eq!(b.alloc_unbound(1, 0, DOMS), Err(-ESRCH));
        assert_eq!(b.bind_ipi(0), Err(-ESRCH));
        assert_eq!(b.bind_virq(CONSOLE, 0), Err(-ESRCH));
        assert_eq!(
            bind_interdomain(&mut b, Peer::Other(&mut a), 5),
            Err(-ESRCH)
        );
        let open = a.open_ports();
        assert_eq!(
            bind_interdomain(&mut a, Peer::Other(&mut b), listen),
            Err(-ESRCH)
        );
        assert_eq!(a.open_ports(), open, "a refused bind leaves no port behind");
        // Nothing is delivered to it any more.
        assert_eq!(b.accept(&to_b), None);
        assert_eq!(b.raise_virq(TIMER, 0), None);
        assert_eq!(b.virq_port(TIMER, 0), Some(virq_port));
        // The reset finds exactly the peers it had, and closes everything.
        assert_eq!(b.peer_domains(), [0]);
        reset(&mut b, &mut [&mut a]).unwrap();
        assert_eq!(b.open_ports(), 0);
        assert_eq!(a.state(pa), unbound(1));
        assert_eq!(a.send(pa), Ok(SendTarget::Dropped));
        let _ = pb;
    }

    #[test]
    fn every_kind_of_binding_runs_out_at_the_limit() {
        let mut a = Ports::new(0, 2, 8);
        for want in 1..8 {
            let got = match want % 3 {
                0 => a.alloc_unbound(0, 1, DOMS),
                1 => a.bind_ipi(0),
                _ => a.bind_virq(want, 0),
            };
            assert_eq!(got, Ok(want));
        }
        assert_eq!(a.open_ports(), 7);
        assert_eq!(a.alloc_unbound(0, 1, DOMS), Err(-ENOSPC));
        assert_eq!(a.bind_ipi(1), Err(-ENOSPC));
        assert_eq!(a.bind_virq(TIMER, 1), Err(-ENOSPC));
        let mut b = Ports::new(1, 1, 8);
        let pb = b.alloc_unbound(1, 0, DOMS).unwrap();
        assert_eq!(
            bind_interdomain(&mut a, Peer::Other(&mut b), pb),
            Err(-ENOSPC)
        );
        // The lowest freed port is the next one handed out.
        close(&mut a, Peer::Local, 5).unwrap();
        close(&mut a, Peer::Local, 3).unwrap();
        assert_eq!(a.bind_ipi(1), Ok(3));
        assert_eq!(a.bind_ipi(1), Ok(5));
        assert_eq!(a.bind_ipi(1), Err(-ENOSPC));
        // A limit of one port leaves nothing to hand out.
        let mut tiny = Ports::new(0, 1, 1);
        assert_eq!(tiny.bind_ipi(0), Err(-ENOSPC));
    }

    #[test]
    fn hostile_arguments_never_panic() {
        const PORTS: &[u32] = &[
            0,
            1,
            2,
            63,
            64,
            4095,
            4096,
            4097,
            0x7fff_ffff,
            0x8000_0000,
            u32::MAX - 1,
            u32::MAX,
        ];
        const NUMBERS: &[u32] = &[0, 1, 2, 23, 24, 25, 64, 1 << 31, u32::MAX];
        const IDS: &[DomId] = &[
            0,
            1,
            2,
            3,
            0x7fef,
            DOMID_SELF,
            0x7ff1,
            DOMID_INVALID,
            0xffff,
        ];
        let (mut a, mut b, _, _) = connected_pair();
        a.bind_virq(TIMER, 0).unwrap();
        let mut page = Arrays::new(2);
        for &n in NUMBERS {
            let _ = a.bind_virq(n, 0);
            let _ = a.bind_virq(TIMER, n);
            let _ = a.bind_ipi(n);
            let _ = a.raise_virq(n, n);
            let _ = a.virq_port(n, n);
            for &port in PORTS {
                let _ = a.bind_vcpu(port, n);
                set_pending(&mut page, port, n);
                unmask(&mut page, port, n);
            }
        }
        for &d in IDS {
            let _ = resolve_target(d, 0, false, DOMS);
            let _ = resolve_domain(d, 0, &|_| true);
            let _ = a.alloc_unbound(d, d, DOMS);
            let _ = a.alloc_unbound(0, d, &|_| true);
        }
        for &port in PORTS {
            let _ = a.state(port);
            let _ = a.status(port);
            let _ = a.peer(port);
            let _ = a.notify_vcpu(port);
            let _ = a.unmask(&mut page, port);
            if let Ok(SendTarget::Remote(d)) = a.send(port) {
                let _ = b.accept(&d);
            }
            let _ = bind_interdomain(&mut a, Peer::Other(&mut b), port);
            let _ = bind_interdomain(&mut a, Peer::Local, port);
            let _ = b.accept(&Delivery {
                from_dom: 0,
                from_port: port,
                to_dom: 1,
                to_port: port,
            });
            is_pending(&page, port);
            is_masked(&page, port);
            clear_pending(&mut page, port);
        }
        for &port in PORTS {
            let _ = close(&mut a, Peer::Other(&mut b), port);
            let _ = close(&mut b, Peer::Local, port);
        }
        check_tables(&[&a, &b]);
        // A table for a domain with no vCPUs refuses every vCPU.
        let mut none = Ports::new(9, 0, 16);
        assert_eq!(none.bind_ipi(0), Err(-ENOENT));
        assert_eq!(none.bind_virq(TIMER, 0), Err(-ENOENT));
        assert_eq!(none.raise_virq(TIMER, 0), None);
    }

    #[test]
    fn set_pending_follows_the_two_level_protocol() {
        let mut pg = Arrays::new(2);
        // First event on an unmasked port: selector, upcall flag, kick.
        assert!(set_pending(&mut pg, 70, 1));
        assert!(is_pending(&pg, 70));
        assert_eq!(pg.sel[1], 1 << 1);
        assert!(pg.upcall_pending(1));
        assert_eq!(pg.sel[0], 0);
        // Already pending: nothing more.
        assert!(!set_pending(&mut pg, 70, 1));
        // Same word, new port: selector bit already set, no kick.
        assert!(!set_pending(&mut pg, 71, 1));
        assert!(is_pending(&pg, 71));
        // The guest acknowledged the upcall but not the selector: still no kick.
        pg.upcall[1] = false;
        assert!(!set_pending(&mut pg, 72, 1));
        assert!(!pg.upcall_pending(1));
        // Another word: selector bit newly set, upcall flag newly set: kick.
        assert!(set_pending(&mut pg, 4095, 1));
        assert_eq!(pg.sel[1], (1 << 1) | (1 << 63));
        // Upcall flag already set when the selector bit is new: no second kick.
        assert!(!set_pending(&mut pg, 0, 1));
        assert_eq!(pg.sel[1] & 1, 1);
        // A masked port only becomes pending.
        pg.mask_port(200);
        assert!(!set_pending(&mut pg, 200, 0));
        assert!(is_pending(&pg, 200));
        assert!(is_masked(&pg, 200));
        assert_eq!(pg.sel[0], 0);
        assert!(!pg.upcall_pending(0));
        // The per-vCPU upcall mask does not stop the 2-level protocol (PVH uses IF).
        pg.upcall_mask[0] = true;
        assert!(pg.upcall_mask(0));
        assert!(set_pending(&mut pg, 300, 0));
        // Out of range: nothing.
        assert!(!set_pending(&mut pg, 4096, 0));
        assert!(!is_pending(&pg, 4096));
        // Clearing.
        clear_pending(&mut pg, 70);
        assert!(!is_pending(&pg, 70));
        assert!(is_pending(&pg, 71));
    }

    #[test]
    fn unmask_delivers_what_arrived_while_masked() {
        let mut pg = Arrays::new(2);
        // Unmasking an unmasked port does nothing, even if pending.
        pg.pending[0] = 1 << 5;
        assert!(!unmask(&mut pg, 5, 0));
        assert_eq!(pg.sel[0], 0);
        // Masked and not pending: the mask clears, nothing else.
        pg.mask_port(6);
        assert!(!unmask(&mut pg, 6, 0));
        assert!(!is_masked(&pg, 6));
        assert_eq!(pg.sel[0], 0);
        // Masked and pending: the event is delivered on unmask.
        pg.mask_port(7);
        assert!(!set_pending(&mut pg, 7, 1));
        assert!(unmask(&mut pg, 7, 1));
        assert_eq!(pg.sel[1], 1);
        assert!(pg.upcall_pending(1));
        // Again, with the selector already set: no kick.
        pg.mask_port(8);
        set_pending(&mut pg, 8, 1);
        assert!(!unmask(&mut pg, 8, 1));
        assert!(!unmask(&mut pg, 4096, 1));
        assert!(!unmask(&mut pg, u32::MAX, 1));
    }

    #[test]
    fn ports_unmask_uses_the_notify_vcpu() {
        let mut p = Ports::new(0, 2, 128);
        let ipi = p.bind_ipi(1).unwrap();
        let mut pg = Arrays::new(2);
        pg.mask_port(ipi);
        let Ok(SendTarget::Local(ev)) = p.send(ipi) else {
            panic!("IPI send is local")
        };
        assert!(!set_pending(&mut pg, ev.port, ev.vcpu));
        assert_eq!(p.unmask(&mut pg, ipi), Ok(Some(1)));
        assert_eq!(p.unmask(&mut pg, ipi), Ok(None));
        assert_eq!(p.unmask(&mut pg, 0), Ok(None));
        assert_eq!(p.unmask(&mut pg, 127), Ok(None));
        assert_eq!(p.unmask(&mut pg, 128), Err(-EINVAL));
        assert_eq!(p.unmask(&mut pg, u32::MAX), Err(-EINVAL));
    }

    #[test]
    fn bind_interdomain_event_delivers_on_the_page() {
        let mut a = Ports::new(0, 1, DEFAULT_MAX_PORTS);
        let mut b = Ports::new(1, 1, DEFAULT_MAX_PORTS);
        let pa = a.alloc_unbound(0, 1, DOMS).unwrap();
        let ev = bind_interdomain(&mut b, Peer::Other(&mut a), pa).unwrap();
        let mut page_b = Arrays::new(1);
        assert!(set_pending(&mut page_b, ev.port, ev.vcpu));
        assert!(is_pending(&page_b, ev.port));
    }

    /// Checks every invariant that spans the given tables (each domain at most once).
    fn check_tables(tables: &[&Ports]) {
        let find = |d: DomId| tables.iter().find(|t| t.domid == d);
        for t in tables {
            assert!(t.slots.len() as u32 <= t.max_ports);
            assert_eq!(t.slots[0], FREE, "port 0 is never used");
            assert_eq!(t.virqs.len(), t.nr_vcpus as usize);
            let mut open = 0;
            for (port, s) in t.slots.iter().enumerate() {
                let port = port as u32;
                if s.state == State::Free {
                    assert_eq!(s.notify_vcpu, 0, "free port {port} notifies vCPU 0");
                    continue;
                }
                open += 1;
                assert!(s.notify_vcpu < t.nr_vcpus, "notify vCPU in range");
                match s.state {
                    State::Free => {}
                    State::Unbound { remote_dom } => assert!(remote_dom < DOMID_FIRST_RESERVED),
                    State::Interdomain {
                        remote_dom,
                        remote_port,
                    } => {
                        let peer = if remote_dom == t.domid {
                            Some(*t)
                        } else {
                            find(remote_dom).copied()
                        };
                        let peer = peer.expect("the peer domain is among the tables");
                        assert_eq!(
                            peer.state(remote_port),
                            inter(t.domid, port),
                            "dom {} port {port}: the peer points back",
                            t.domid
                        );
                        assert_ne!((remote_dom, remote_port), (t.domid, port));
                    }
                    State::Virq { virq, vcpu } => {
                        assert!(virq < virq::NR_VIRQS);
                        assert_eq!(t.virqs[vcpu as usize][virq as usize], port);
                        if virq_is_global(virq) {
                            assert_eq!(vcpu, 0);
                        } else {
                            assert_eq!(s.notify_vcpu, vcpu);
                        }
                    }
                    State::Ipi { vcpu } => assert_eq!(s.notify_vcpu, vcpu),
                }
            }
            assert_eq!(open, t.open, "open count");
            for (vcpu, table) in t.virqs.iter().enumerate() {
                for (virq, &port) in table.iter().enumerate() {
                    if port != 0 {
                        assert_eq!(
                            t.state(port),
                            Some(State::Virq {
                                virq: virq as u32,
                                vcpu: vcpu as u32
                            })
                        );
                    }
                }
            }
        }
    }

    /// xorshift64*: small, deterministic, good enough to pick operations.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// A port: mostly plausible, sometimes hostile.
        fn port(&mut self, max: u32) -> u32 {
            match self.below(10) {
                0 => [0, max, 4096, u32::MAX, 0x8000_0000][self.below(5) as usize],
                _ => self.below(u64::from(max)) as u32,
            }
        }
        fn vcpu(&mut self) -> u32 {
            match self.below(10) {
                0 => [3, 64, u32::MAX][self.below(3) as usize],
                _ => self.below(3) as u32,
            }
        }
    }

    /// Returns the two distinct tables `i` and `j` of `t` mutably.
    fn two(t: &mut [Ports], i: usize, j: usize) -> (&mut Ports, &mut Ports) {
        assert_ne!(i, j);
        if i < j {
            let (lo, hi) = t.split_at_mut(j);
            (&mut lo[i], &mut hi[0])
        } else {
            let (lo, hi) = t.split_at_mut(i);
            (&mut hi[0], &mut lo[j])
        }
    }

    #[test]
    fn random_operation_sequences_keep_every_invariant() {
        for seed in 1..=20u64 {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
            // Small limits so that tables fill up; domain 2 has room for only 4 ports.
            let mut t = alloc::vec![
                Ports::new(0, 3, 24),
                Ports::new(1, 2, 16),
                Ports::new(2, 1, 5),
            ];
            let mut pages: Vec<Arrays> = t
                .iter()
                .map(|p| Arrays::new(p.nr_vcpus() as usize))
                .collect();
            let mut ok = [0u32; 10];
            let mut cross = 0;
            for _ in 0..3000 {
                let i = rng.below(3) as usize;
                let max = t[i].max_ports() + 2;
                let op = rng.below(10) as usize;
                let done = match op {
                    0 => {
                        let remote = [0, 1, 2, DOMID_SELF, 7][rng.below(5) as usize];
                        let caller = t[i].domid();
                        t[i].alloc_unbound(caller, remote, DOMS).map(drop)
                    }
                    1 => {
                        let j = rng.below(3) as usize;
                        let port = rng.port(t[j].max_ports());
                        let r = if i == j {
                            bind_interdomain(&mut t[i], Peer::Local, port)
                        } else {
                            let (l, r) = two(&mut t, i, j);
                            bind_interdomain(l, Peer::Other(r), port)
                        };
                        if r.is_ok() && i != j {
                            cross += 1;
                        }
                        r.map(|ev| {
                            assert_eq!(ev.dom, t[i].domid());
                            set_pending(&mut pages[i], ev.port, ev.vcpu);
                        })
                    }
                    2 => {
                        let virq = match rng.below(8) {
                            0 => rng.below(40) as u32,
                            n => {
                                [TIMER, DEBUG, CONSOLE, DOM_EXC, XENPMU, ARCH_0, 5][n as usize - 1]
                            }
                        };
                        let vcpu = rng.vcpu();
                        t[i].bind_virq(virq, vcpu).map(drop)
                    }
                    3 => {
                        let vcpu = rng.vcpu();
                        t[i].bind_ipi(vcpu).map(drop)
                    }
                    4 | 5 => {
                        let port = rng.port(max);
                        let r = match t[i].peer(port) {
                            Some((d, _)) if d != t[i].domid() => {
                                let (l, r) = two(&mut t, i, d as usize);
                                close(l, Peer::Other(r), port)
                            }
                            _ => close(&mut t[i], Peer::Local, port),
                        };
                        if r.is_ok() {
                            clear_pending(&mut pages[i], port);
                        }
                        r
                    }
                    6 => {
                        let port = rng.port(max);
                        let vcpu = rng.vcpu();
                        t[i].bind_vcpu(port, vcpu)
                    }
                    7 => {
                        let port = rng.port(max);
                        match t[i].send(port) {
                            Ok(SendTarget::Local(ev)) => {
                                assert_eq!(ev.dom, t[i].domid());
                                assert!(ev.vcpu < t[i].nr_vcpus());
                                set_pending(&mut pages[i], ev.port, ev.vcpu);
                                Ok(())
                            }
                            Ok(SendTarget::Remote(d)) => {
                                let j = d.to_dom as usize;
                                let ev = t[j].accept(&d).expect("a connected peer accepts");
                                assert!(ev.vcpu < t[j].nr_vcpus());
                                set_pending(&mut pages[j], ev.port, ev.vcpu);
                                Ok(())
                            }
                            Ok(SendTarget::Dropped) => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                    8 => {
                        let port = rng.port(max);
                        let st = t[i].status(port);
                        assert_eq!(st.is_err(), port >= t[i].max_ports());
                        t[i].unmask(&mut pages[i], port).map(drop)
                    }
                    _ => {
                        if rng.below(8) == 0 {
                            let peers = t[i].peer_domains();
                            // Take table i out while its peers are borrowed.
                            let mut me = core::mem::replace(&mut t[i], Ports::new(99, 0, 1));
                            let mut rest: Vec<&mut Ports> = t
                                .iter_mut()
                                .filter(|p| peers.contains(&p.domid()))
                                .collect();
                            // Now and then one peer is missing: refused, nothing changes.
                            let short = !rest.is_empty() && rng.below(3) == 0;
                            if short {
                                rest.pop();
                            }
                            let open = me.open_ports();
                            let r = reset(&mut me, &mut rest);
                            assert_eq!(r.is_err(), short);
                            if short {
                                assert_eq!(me.open_ports(), open);
                            } else {
                                assert_eq!(me.open_ports(), 0);
                                for port in 0..me.max_ports() {
                                    clear_pending(&mut pages[i], port);
                                }
                            }
                            t[i] = me;
                            r
                        } else {
                            Ok(())
                        }
                    }
                };
                if done.is_ok() {
                    ok[op] += 1;
                }
                check_tables(&t.iter().collect::<Vec<_>>());
            }
            // Every kind of operation succeeded at least once.
            for (op, n) in ok.iter().enumerate() {
                assert!(*n > 0, "seed {seed}: operation {op} never succeeded");
            }
            assert!(cross > 0, "seed {seed}: no channel between two domains");
        }
    }

    #[test]
    fn random_page_traffic_never_loses_an_unmasked_event() {
        for seed in 1..=20u64 {
            let mut rng = Rng(0x1234_5678_9abc_def1 ^ (seed << 7));
            const NPORTS: u32 = 300;
            let mut pg = Arrays::new(3);
            let vcpu_of = |port: u32| port % 3;
            for _ in 0..5000 {
                let port = rng.below(u64::from(NPORTS)) as u32;
                let v = vcpu_of(port);
                match rng.below(6) {
                    0 | 1 => {
                        let was = pg.upcall_pending(v);
                        let kick = set_pending(&mut pg, port, v);
                        assert!(!kick || !was, "a kick only on a 0 to 1 upcall flag");
                        assert!(is_pending(&pg, port));
                    }
                    2 => {
                        let was = pg.upcall_pending(v);
                        let kick = unmask(&mut pg, port, v);
                        assert!(!kick || !was);
                        assert!(!is_masked(&pg, port));
                    }
                    3 => pg.mask_port(port),
                    4 => clear_pending(&mut pg, port),
                    _ => {
                        // The guest handles vCPU v's events, as Linux does: clear the
                        // upcall flag, take the selector, handle unmasked pending ports
                        // of the words it names that belong to v.
                        pg.upcall[v as usize] = false;
                        let sel = core::mem::take(&mut pg.sel[v as usize]);
                        for w in 0..64 {
                            if sel & (1 << w) == 0 {
                                continue;
                            }
                            for b in 0..64 {
                                let p = w * 64 + b;
                                if p < NPORTS
                                    && vcpu_of(p) == v
                                    && is_pending(&pg, p)
                                    && !is_masked(&pg, p)
                                {
                                    clear_pending(&mut pg, p);
                                }
                            }
                        }
                    }
                }
                // Every pending unmasked port is announced to its vCPU: its selector
                // bit and upcall flag are set.
                for p in 0..NPORTS {
                    if is_pending(&pg, p) && !is_masked(&pg, p) {
                        let v = vcpu_of(p);
                        assert_ne!(
                            pg.sel[v as usize] & (1 << (p / 64)),
                            0,
                            "seed {seed} port {p}"
                        );
                        assert!(pg.upcall_pending(v), "seed {seed} port {p}");
                    }
                }
            }
        }
    }
}
