//! Serial console input for the domains, until dom0 serves consoles: what is typed on
//! COM1 goes to one domain's PV console (`in` ring and an event), and Ctrl-A three times
//! moves it to the next running domain, as Xen's console switch does
//! (`oxen_core::conswitch`). Polled by the boot CPU at most every millisecond; what
//! does not fit in the focused domain's ring is dropped, as Xen drops it.

use alloc::vec::Vec;

use oxen_core::conswitch::{Input, Switch, next_focus};
use spin::Mutex;

use super::{event, registry};
use crate::arch::serial;

/// The switch and the focused domain's id.
static STATE: Mutex<(Switch, Option<u32>)> = Mutex::new((Switch::new(), None));

/// Bytes taken from the UART per poll at most.
const BATCH: usize = 64;

/// The running domains' ids, ascending.
fn running() -> Vec<u32> {
    registry::all()
        .into_iter()
        .filter(|d| d.running())
        .map(|d| d.id)
        .collect()
}

/// Moves the focus on from `from` and says where input goes now.
fn switch(from: Option<u32>) -> Option<u32> {
    let to = next_focus(&running(), from);
    match to.and_then(registry::by_id) {
        Some(d) => log::info!(
            "*** Serial input to d{} ({}) (type 'CTRL-a' three times to switch input)",
            d.id,
            d.name
        ),
        None => log::info!("*** Serial input: no domain is running"),
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
    s.1 = switch(None);
}

/// Moves what was typed to the focused domain.
pub fn poll() {
    let Some(mut s) = STATE.try_lock() else {
        return;
    };
    let Some(mut focus) = s.1 else {
        return;
    };
    let Some(mut d) = registry::by_id(focus).filter(|d| d.running()) else {
        s.1 = switch(Some(focus));
        return;
    };
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
            event::console_input(&d, &out);
            out.clear();
            let Some(next) = switch(Some(focus)) else {
                s.1 = None;
                return;
            };
            let Some(nd) = registry::by_id(next) else {
                return;
            };
            focus = next;
            s.1 = Some(next);
            d = nd;
        }
    }
    event::console_input(&d, &out);
}
