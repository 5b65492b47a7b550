//! `xl create` in dom0: the builder itself is `oxen_toolstack::build` (pure, host-tested
//! against fakes); here are its two halves on the real machine: [`Hypercalls`] (domctl
//! and memory_op through the guest runtime) and [`Dom0`] (the store and the consoles).

use alloc::format;
use alloc::string::String;

use oxen_guest_rt::abi::domctl::{self, CreateDomain};
use oxen_guest_rt::control;
use oxen_toolstack::build::{self, Control, Request, Services};
use oxen_toolstack::store::DomainFacts;

use crate::consoles::Consoles;
use crate::files::Files;
use crate::store::Store;

/// Where dom0 maps a new domain's frames to write them: 256 frames from 512 MiB up
/// (above its RAM, inside the first GiB the runtime maps one to one).
const WINDOW_GFN: u64 = 0x2_0000;
const WINDOW_FRAMES: usize = 256;

/// Reads `path` with `overrides` (each `key=value` a line after the file's) and builds
/// the domain, paused if `paused`. `taken` says whether a name is in use.
pub fn create(
    files: &Files,
    path: &str,
    overrides: &[&str],
    paused: bool,
    taken: impl Fn(&str) -> bool,
    store: &mut Store,
    consoles: &mut Consoles,
) -> Result<build::Built, String> {
    let request = Request {
        path,
        overrides,
        paused,
        fallback_uuid: made_up_uuid(),
    };
    build::create(
        &request,
        files,
        &taken,
        &mut Hypercalls,
        &mut Dom0 { store, consoles },
    )
}

/// A UUID made up (version 4 form) from the time, for a configuration without one, as
/// Xen's toolstack makes one up (it has a random source; the time is ours).
pub fn made_up_uuid() -> [u8; 16] {
    let mut x = oxen_guest_rt::time::now_ns();
    let mut u = [0u8; 16];
    for chunk in u.chunks_mut(8) {
        // splitmix64: spreads the time over the bytes.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

impl build::Files for Files {
    fn get(&self, path: &str) -> Option<&[u8]> {
        Files::get(self, path)
    }
}

/// The builder's requests as hypercalls.
struct Hypercalls;

fn status(rc: i64) -> Result<(), i64> {
    if rc == 0 { Ok(()) } else { Err(rc) }
}

impl Control for Hypercalls {
    fn create_domain(&mut self, create: &CreateDomain) -> Result<u16, i64> {
        match control::domctl(domctl::cmd::CREATEDOMAIN, 0, &create.to_bytes()) {
            (0, op) => Ok(u16::from_le_bytes([
                op[domctl::offset::DOMAIN],
                op[domctl::offset::DOMAIN + 1],
            ])),
            (rc, _) => Err(rc),
        }
    }

    fn max_mem(&mut self, id: u16, kib: u64) -> Result<(), i64> {
        status(control::domctl(domctl::cmd::MAX_MEM, id, &kib.to_le_bytes()).0)
    }

    fn populate(&mut self, id: u16, gfns: &[u64], order: u32) -> usize {
        usize::try_from(control::populate(id, gfns, order)).unwrap_or(0)
    }

    fn write(&mut self, id: u16, gpa: u64, bytes: &[u8]) -> Result<(), String> {
        control::write_foreign(id, gpa, bytes, WINDOW_GFN, WINDOW_FRAMES).map_err(|(gfn, rc)| {
            format!("mapping its frames at {:#x} failed (rc={rc})", gfn * 4096)
        })
    }

    fn set_context(&mut self, id: u16, stream: &[u8]) -> Result<(), i64> {
        status(control::set_context(id, stream))
    }

    fn set_credit(&mut self, id: u16, weight: u16, cap: u16) -> Result<(), i64> {
        control::credit(id, Some((weight, cap))).map(drop)
    }

    fn set_affinity(&mut self, id: u16, vcpu: u32, mask: u64) -> Result<(), i64> {
        control::affinity(domctl::cmd::SETVCPUAFFINITY, id, vcpu, mask).map(drop)
    }

    fn unpause(&mut self, id: u16) -> Result<(), i64> {
        status(control::domctl(domctl::cmd::UNPAUSEDOMAIN, id, &[]).0)
    }

    fn destroy(&mut self, id: u16) {
        control::domctl(domctl::cmd::DESTROYDOMAIN, id, &[]);
    }
}

/// The builder's requests of the rest of dom0.
struct Dom0<'a> {
    store: &'a mut Store,
    consoles: &'a mut Consoles,
}

impl Services for Dom0<'_> {
    fn introduce(&mut self, facts: &DomainFacts<'_>, store_gfn: u64) -> Result<(), String> {
        self.store.introduce(facts, store_gfn)
    }

    fn serve_console(&mut self, id: u16, name: &str) -> Result<(), String> {
        self.consoles.serve(id, name)
    }

    fn release(&mut self, id: u16) {
        self.store.release(id);
        self.consoles.release(id);
    }
}
