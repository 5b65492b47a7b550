//! Serial console input: what is typed on COM1 goes to one place at a time, and Ctrl-A
//! three times moves it on, as Xen's console switch does (`oxen_core::conswitch`):
//! each running domain by id, then the hypervisor itself (debug keys), then round again.
//! A privileged domain that bound `VIRQ_CONSOLE` reads its input as Xen's dom0 does,
//! with `console_io(CONSOLEIO_read)` after the VIRQ; a domain built at boot gets it in
//! its PV console's `in` ring (the hypervisor is that console's back end). The domains
//! whose console dom0 serves are not in the round: `xl console` reaches them.
//! Polled by the boot CPU at most every millisecond; what does not fit is dropped, as
//! Xen drops it.
#![deny(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use oxen_abi::evtchn::virq;
use oxen_core::conswitch::{Focus, Input, Switch, next_target};
use spin::Mutex;

use super::{Domain, event, registry};
use crate::arch::serial;

/// The switch and the focus.
static STATE: Mutex<(Switch, Focus)> = Mutex::new((Switch::new(), Focus::Hypervisor));
/// Typed bytes waiting for `console_io(CONSOLEIO_read)` (Xen's serial receive ring).
static RX: Mutex<VecDeque<u8>> = Mutex::new(VecDeque::new());
const RX_SIZE: usize = 1024;

/// Bytes taken from the UART per poll at most.
const BATCH: usize = 64;

/// The running domains that take input from here, ascending: not those whose console
/// dom0 serves (their input comes from `xl console`, in dom0).
fn running() -> Vec<u32> {
    registry::all()
        .into_iter()
        .filter(|d| d.running() && takes_input(d))
        .map(|d| d.id)
        .collect()
}

/// Whether typed input for `d` goes through the hypervisor.
fn takes_input(d: &Domain) -> bool {
    reads_by_console_io(d) || event::console_served_here(d)
}

/// Moves the focus on from `from` and says where input goes now.
fn switch(from: Focus) -> Focus {
    let to = next_target(&running(), from);
    match to {
        Focus::Domain(id) => {
            let name = registry::by_id(id)
                .map(|d| d.name.clone())
                .unwrap_or_default();
            log::info!(
                "*** Serial input to d{id} ({name}) (type 'CTRL-a' three times to switch input)"
            );
        }
        Focus::Hypervisor => {
            log::info!("*** Serial input to oxen (type 'CTRL-a' three times to switch input)")
        }
    }
    to
}

/// Gives input to the first running domain (once the boot-time domains started).
/// Whatever the UART holds from before (the firmware's and the UART self-test's
/// leftovers) is nobody's input and is dropped.
pub fn start() {
    let mut stale = [0u8; 16];
    for _ in 0..64 {
        if serial::receive(&mut stale) == 0 {
            break;
        }
    }
    let mut s = STATE.lock();
    s.1 = switch(Focus::Hypervisor);
}

/// Whether `d` takes its input by `console_io` (as Xen's dom0), not by its PV console.
fn reads_by_console_io(d: &Domain) -> bool {
    d.privileged && event::virq_bound(d, virq::CONSOLE)
}

/// Hands typed bytes to where the focus is.
fn deliver(focus: Focus, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    match focus {
        Focus::Hypervisor => bytes.iter().for_each(|&k| super::keys::handle(k)),
        Focus::Domain(id) => {
            let Some(d) = registry::by_id(id) else {
                return;
            };
            if reads_by_console_io(&d) {
                {
                    let mut rx = RX.lock();
                    let room = RX_SIZE - rx.len();
                    rx.extend(bytes.iter().take(room));
                }
                event::raise_virq(&d, virq::CONSOLE, 0);
            } else if event::console_served_here(&d) {
                event::console_input(&d, bytes);
            }
        }
    }
}

/// `console_io(CONSOLEIO_read)`: offers up to `max` typed bytes for the focused domain
/// `d` (none for a domain without the focus) to `give`, and drops them if it took them;
/// returns how many it took.
pub fn read(d: &Domain, max: usize, give: impl FnOnce(&[u8]) -> bool) -> usize {
    if STATE.lock().1 != Focus::Domain(d.id) {
        return 0;
    }
    let mut rx = RX.lock();
    let n = max.min(rx.len());
    if !give(&rx.make_contiguous()[..n]) {
        return 0;
    }
    rx.drain(..n);
    n
}

/// Moves what was typed to the focus.
pub fn poll() {
    let Some(mut s) = STATE.try_lock() else {
        return;
    };
    if let Focus::Domain(id) = s.1
        && !registry::by_id(id).is_some_and(|d| d.running() && takes_input(&d))
    {
        RX.lock().clear();
        s.1 = switch(s.1);
    }
    // Read whatever came, as Xen does: a domain that never drains its ring must not keep
    // the Ctrl-As that switch away from it stuck in the UART.
    let mut raw = [0u8; BATCH];
    let n = serial::receive(&mut raw);
    let mut out = Vec::with_capacity(n);
    for &b in &raw[..n] {
        let mut switched = false;
        s.0.feed(b, |i| match i {
            Input::Byte(b) => out.push(b),
            Input::Switch => switched = true,
        });
        if switched {
            deliver(s.1, &out);
            out.clear();
            RX.lock().clear();
            s.1 = switch(s.1);
        }
    }
    deliver(s.1, &out);
}
