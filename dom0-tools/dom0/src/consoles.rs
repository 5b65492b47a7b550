//! The consoles of the domains dom0 builds, served here as Xen's `xenconsoled` serves
//! them from dom0: for each, the console page the hypervisor gave it (named by its
//! `HVM_PARAM_CONSOLE_PFN`/`CONSOLE_EVTCHN`) mapped from it, and its console port,
//! which waits for dom0, bound. Once bound, the hypervisor keeps out of that ring.
//!
//! What a domain writes is kept (`oxen_toolstack::console::ConsoleLog`: a bounded
//! history for `xl console`, shown on attach) and mirrored to the serial log as
//! `[dN name] text` lines while nobody is attached to it; the attached one's bytes go to
//! the terminal as they are. Typed input reaches the attached domain's `in` ring. The
//! ring logic is the hypervisor's (`oxen_core::xencons`); a domain whose indices are
//! impossible is told nothing more and served no longer, with one line.
//!
//! No domain can keep dom0 or the serial line to itself: a poll takes at most
//! [`ROUNDS_PER_POLL`] rings' worth from each, and the mirror has the hypervisor's
//! budget per domain (4 KiB/s, 16 KiB at once); lines beyond it are counted and the
//! count is mirrored before the next line that gets through.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use oxen_core::ratelimit::TokenBucket;
use oxen_core::xencons::{self, Broken};
use oxen_guest_rt::abi::xencons::OUT_SIZE;
use oxen_guest_rt::control::ForeignFrame;
use oxen_guest_rt::xen::{self, EvtchnPort, hvm_param};
use oxen_guest_rt::{events, time};
use oxen_toolstack::console::{ConsoleLog, HISTORY_BYTES, mirror_line};

/// Where dom0 maps the console pages: one frame per served domain, above the store's.
const WINDOW_GFN: u64 = 0x2_0200;
const SLOTS: usize = 256;
/// Rings' worth taken from one domain per poll at most.
const ROUNDS_PER_POLL: usize = 4;
/// The mirror's budget per domain, in bytes: per second and at once (the hypervisor's).
const MIRROR_RATE: u64 = 4096;
const MIRROR_BURST: u64 = 16 * 1024;
/// What a mirrored line costs beyond its text.
const LINE_OVERHEAD: u64 = 40;

/// The page as `oxen_core::xencons` reaches it: volatile accesses through the foreign
/// map, fenced around the indices.
struct Page(ForeignFrame);

impl xencons::Page for Page {
    fn load(&self, off: u64) -> u32 {
        let v = self.0.read_u32(off as usize);
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        v
    }
    fn store(&mut self, off: u64, v: u32) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        self.0.write_u32(off as usize, v);
    }
    fn load_byte(&self, off: u64) -> u8 {
        self.0.read_u8(off as usize)
    }
    fn store_byte(&mut self, off: u64, v: u8) {
        self.0.write_u8(off as usize, v);
    }
}

struct Console {
    name: String,
    page: Page,
    port: EvtchnPort,
    slot: usize,
    log: ConsoleLog,
    broken: bool,
    budget: TokenBucket,
    /// Bytes of lines the budget kept from the mirror, not yet reported.
    dropped: u64,
    /// `xl -v create`: the TSC its build began at, until the first output came.
    timed_from: Option<u64>,
}

impl Console {
    /// `line` for the mirror if the budget allows (with the count of what it did not
    /// allow before it).
    fn mirror(&mut self, id: u16, line: &str, shown: &mut Vec<Shown>) {
        let now = time::now_ns();
        if !self.budget.take(line.len() as u64 + LINE_OVERHEAD, now) {
            self.dropped += line.len() as u64 + 1;
            return;
        }
        if self.dropped != 0 {
            let note = format!("({} bytes of console output dropped)", self.dropped);
            shown.push(Shown::Line(mirror_line(id, &self.name, &note)));
            self.dropped = 0;
        }
        shown.push(Shown::Line(mirror_line(id, &self.name, line)));
    }
}

/// What the consoles have to show.
pub enum Shown {
    /// A mirrored line (`[dN name] text`) of a domain nobody is attached to.
    Line(String),
    /// Output of the attached domain, as it wrote it.
    Raw(Vec<u8>),
    /// A line of dom0's own about a console.
    Notice(String),
}

/// Every console dom0 serves.
pub struct Consoles {
    served: BTreeMap<u16, Console>,
    /// The domain `xl console` is attached to.
    pub attached: Option<u16>,
    /// Shown by the next [`Consoles::poll`] (a released domain's last words).
    queued: Vec<Shown>,
}

impl Consoles {
    pub fn new() -> Self {
        Consoles {
            served: BTreeMap::new(),
            attached: None,
            queued: Vec::new(),
        }
    }

    /// Takes over domain `id`'s console (before it first runs).
    pub fn serve(&mut self, id: u16, name: &str) -> Result<(), String> {
        let slot = (0..SLOTS)
            .find(|s| self.served.values().all(|c| c.slot != *s))
            .ok_or("every console slot is in use")?;
        let param = |p| xen::get_param_of(id, p).ok().filter(|&v| v != 0);
        let (Some(gfn), Some(remote)) = (
            param(hvm_param::CONSOLE_PFN),
            param(hvm_param::CONSOLE_EVTCHN),
        ) else {
            return Err(String::from("it has no console page"));
        };
        let frame = ForeignFrame::map(id, gfn, WINDOW_GFN + slot as u64)
            .ok_or("its console page cannot be mapped")?;
        let remote = u32::try_from(remote).map_err(|_| "its console port is impossible")?;
        let port = xen::bind_interdomain(id, remote)
            .map_err(|e| format!("its console port cannot be bound ({e})"))?;
        self.served.insert(
            id,
            Console {
                name: String::from(name),
                page: Page(frame),
                port,
                slot,
                log: ConsoleLog::new(HISTORY_BYTES),
                broken: false,
                budget: TokenBucket::new(MIRROR_RATE, MIRROR_BURST, time::now_ns()),
                dropped: 0,
                timed_from: None,
            },
        );
        Ok(())
    }

    /// Lets domain `id`'s console go (it is being destroyed): what it wrote last is
    /// queued for the next poll, the port closed, the page unmapped.
    pub fn release(&mut self, id: u16) {
        if !self.served.contains_key(&id) {
            return;
        }
        let mut shown = Vec::new();
        self.take(id, &mut shown);
        if let Some(mut c) = self.served.remove(&id) {
            if let Some(rest) = c.log.take_partial()
                && self.attached != Some(id)
            {
                c.mirror(id, &rest, &mut shown);
            }
            let _ = xen::close(c.port);
        }
        if self.attached == Some(id) {
            self.attached = None;
        }
        self.queued.extend(shown);
    }

    /// The ports to wait on.
    pub fn ports(&self) -> Vec<EvtchnPort> {
        self.served.values().map(|c| c.port).collect()
    }

    /// Takes what every console wrote since the last poll.
    pub fn poll(&mut self) -> Vec<Shown> {
        let mut shown = core::mem::take(&mut self.queued);
        let ids: Vec<u16> = self.served.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.served.get(&id) {
                events::clear(c.port);
            }
            self.take(id, &mut shown);
        }
        shown
    }

    /// Drains domain `id`'s `out` ring into its log and `shown`.
    fn take(&mut self, id: u16, shown: &mut Vec<Shown>) {
        let attached = self.attached == Some(id);
        let Some(c) = self.served.get_mut(&id).filter(|c| !c.broken) else {
            return;
        };
        let mut buf = [0u8; OUT_SIZE as usize];
        for _ in 0..ROUNDS_PER_POLL {
            match xencons::take_output(&mut c.page, &mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if let Some(t0) = c.timed_from.take() {
                        let ticks = oxen_guest_rt::arch::rdtsc() - t0;
                        shown.push(Shown::Notice(format!(
                            "xl: domain {id}'s console first wrote {ticks} ticks after xl create began"
                        )));
                    }
                    let mut lines = Vec::new();
                    c.log.record(&buf[..n], |line| {
                        if !attached {
                            lines.push(String::from(line));
                        }
                    });
                    for line in lines {
                        c.mirror(id, &line, shown);
                    }
                    if attached {
                        shown.push(Shown::Raw(buf[..n].to_vec()));
                    }
                    // Room again for a writer that waits.
                    let _ = xen::send(c.port);
                }
                Err(b) => {
                    shown.push(Shown::Notice(broken_line(id, &c.name, b)));
                    c.broken = true;
                    return;
                }
            }
        }
    }

    /// Gives typed `bytes` to domain `id`; how many fit.
    pub fn input(&mut self, id: u16, bytes: &[u8]) -> usize {
        let Some(c) = self.served.get_mut(&id).filter(|c| !c.broken) else {
            return 0;
        };
        match xencons::put_input(&mut c.page, bytes) {
            Ok(n) => {
                if n > 0 {
                    let _ = xen::send(c.port);
                }
                n
            }
            Err(b) => {
                let line = broken_line(id, &c.name, b);
                c.broken = true;
                self.queued.push(Shown::Notice(line));
                0
            }
        }
    }

    /// Says, when domain `id` first writes, how many TSC ticks after `since` that was.
    pub fn time_first_output(&mut self, id: u16, since: u64) {
        if let Some(c) = self.served.get_mut(&id) {
            c.timed_from = Some(since);
        }
        // Output that came already is in its ring still: the next poll times it.
    }

    /// What domain `id` wrote, the last [`HISTORY_BYTES`] of it.
    pub fn history(&self, id: u16) -> Option<Vec<u8>> {
        self.served.get(&id).map(|c| c.log.history())
    }
}

fn broken_line(id: u16, name: &str, b: Broken) -> String {
    format!(
        "oxen dom0: console: domain {id} ({name}): {} indices are impossible (cons {}, prod {}); no longer served",
        b.ring, b.cons, b.prod
    )
}
