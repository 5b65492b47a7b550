//! Debug keys, as Xen's: typed on the serial console while input goes to the
//! hypervisor (Ctrl-A three times), or sent by a control domain (`sysctl debug_keys`,
//! `xl debug-keys`). Their output goes to the hypervisor's log.
#![deny(unsafe_code)]

use crate::mm::{frames, heap};
use oxen_core::frames::FRAME_SIZE;

use super::registry;

/// Runs key `key`'s handler; an unknown printable key says how to get the list.
pub fn handle(key: u8) {
    match key {
        b'h' => {
            log::info!("debug-key h: h this list; m memory; q domains");
        }
        b'm' => {
            let st = frames::stats();
            log::info!(
                "debug-key m: {} frames free of {}; heap {} bytes in use of {}; {} domains",
                st.free / FRAME_SIZE,
                st.usable / FRAME_SIZE,
                heap::used(),
                heap::size(),
                registry::all().len()
            );
        }
        b'q' => {
            for d in registry::all() {
                let i = super::control::info(&d);
                log::info!(
                    "debug-key q: domain {} ({}): flags {:#x}, {} pages of {}, {} vCPUs online, {}",
                    d.id,
                    d.name,
                    i.flags,
                    i.tot_pages,
                    i.max_pages,
                    i.nr_online_vcpus,
                    d.state.lock()
                );
            }
        }
        b' ' | b'\r' | b'\n' | b'\t' => {}
        k if k.is_ascii_graphic() => {
            log::info!(
                "debug-key '{}' is not one of oxen's (h for the list)",
                k as char
            );
        }
        _ => {}
    }
}
