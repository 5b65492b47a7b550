//! Domains and their vCPUs: memory, EPT, the PVH boot, lifecycle.
//!
//! A domain owns one contiguous run of host frames as its RAM (guest-physical 0 up),
//! mapped by its own EPT, and its vCPUs. Everything a guest hands the hypervisor is
//! checked against that RAM before use.

pub mod conin;
pub mod control;
pub mod event;
pub mod exits;
pub mod grant;
pub mod hypercall;
pub mod keys;
pub mod lifecycle;
pub mod memory;
pub mod registry;
pub mod run;
pub mod sched;
pub mod vcpu;
pub mod vlapic;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use oxen_core::config::DomainConfig;
use oxen_core::ept::{self, Ept, FrameSource};
use oxen_core::frames::FRAME_SIZE;
use oxen_core::p2m::{self, P2m};
use oxen_core::pvh::PlanError;
use oxen_core::quota::Quota;
use oxen_core::ratelimit::TokenBucket;
use oxen_core::sched::DomId;
use oxen_core::vcpu_state::StartState;
use spin::{Mutex, RwLock};

use crate::arch::{paging, serial};
use crate::mm::frames;

/// The guest's RAM starts 2 MiB-aligned in host memory so the EPT can use 2 MiB pages.
const RAM_ALIGN: u64 = 2 << 20;
/// Each domain's console budget: bytes per second and at once. The UART moves about
/// 11,500 bytes a second; a domain gets a third of that in the long run, and a burst
/// of 16 KiB (a quarter of the log ring) for the lines of its boot.
const CONSOLE_RATE: u64 = 4096;
const CONSOLE_BURST: u64 = 16 * 1024;
/// What a logged line costs beyond its text (the prefix and the newline).
const LINE_OVERHEAD: u64 = 40;

/// How a domain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainState {
    Running,
    /// `sched_op(shutdown)` with this reason.
    Shutdown(&'static str),
    /// Crashed by the hypervisor (or at its own request) for this reason.
    Crashed(String),
    /// Destroyed from outside (run time limit, control domain) for this reason.
    Destroyed(&'static str),
}

impl DomainState {
    pub fn is_done(&self) -> bool {
        !matches!(self, DomainState::Running)
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainState::Running => write!(f, "running"),
            DomainState::Shutdown(reason) => write!(f, "shut down ({reason})"),
            DomainState::Crashed(why) => write!(f, "crashed: {why}"),
            DomainState::Destroyed(why) => write!(f, "destroyed ({why})"),
        }
    }
}

/// One domain.
pub struct Domain {
    pub id: u32,
    pub name: String,
    /// What each guest frame is (`oxen_core::p2m`): every hypervisor access to the
    /// domain's memory goes through it, and every EPT change follows a change of it.
    p2m: RwLock<P2m>,
    /// Most frames of RAM it may have (`XEN_DOMCTL_max_mem`).
    pub max_pages: AtomicU64,
    /// Bytes of RAM it was built with (where its reserved pages go: above RAM, or at
    /// Xen's usual place below 4 GiB); 0 for a domain created empty at run time.
    pub ram_size: u64,
    /// The EPT (changed by grant maps and `add_to_physmap`) and its pointer.
    pub ept: Mutex<Ept>,
    pub eptp: u64,
    /// The EPT table frames it may make the hypervisor spend (charged as they are
    /// allocated, given back as they are freed).
    pub ept_quota: Quota,
    ept_quota_hit: AtomicBool,
    /// Guest frame numbers are below this: the physical address width its CPUID
    /// reports (at most the EPT's 48 bits).
    pub gfn_limit: u64,
    /// The shared-info page (hypervisor memory the guest may map with
    /// `add_to_physmap`) and where it is mapped.
    pub shared_info: u64,
    pub shared_info_gfn: Mutex<Option<u64>>,
    /// Event channels, HVM parameters, the console back end (`event.rs`).
    pub events: event::DomainEvents,
    /// Grant-table frames (hypervisor memory) and where each is mapped (`grant.rs`).
    pub grant_frames: Mutex<Vec<(u64, Option<u64>)>>,
    pub state: Mutex<DomainState>,
    /// Set with the first reason it finished (`state` says which): the domain is dying.
    dying: AtomicBool,
    /// Its vCPUs have left the scheduler (`lifecycle::stop`).
    pub stopped: AtomicBool,
    /// How far its teardown has got (`lifecycle`).
    pub teardown: Mutex<lifecycle::Teardown>,
    /// Partial output lines: `console_io` and port 0xE9.
    pub console_line: Mutex<String>,
    pub e9_line: Mutex<String>,
    /// What the domain may still print (bytes), and what it printed beyond that.
    console_budget: Mutex<TokenBucket>,
    console_dropped: AtomicU64,
    /// The scheduler's handle.
    pub sched: DomId,
    /// May use the control hypercalls.
    pub privileged: bool,
    /// Built by the hypervisor at boot (see [`Spec::at_boot`]).
    pub at_boot: bool,
    /// Its memory may go once it has finished: a control domain destroyed it, or the
    /// hypervisor will (boot-time domains, orphans).
    pub destroyed: AtomicBool,
    /// Pauses by a control domain (`pausedomain`; `createdomain` leaves one); its vCPUs
    /// run only at 0.
    pub pause_count: AtomicU32,
    /// It has run: vCPU 0 came up at its first unpause.
    pub ever_unpaused: AtomicBool,
    /// `XEN_DOMCTL_setdomainhandle`: the toolstack's UUID for it.
    pub handle: Mutex<[u8; 16]>,
    /// Foreign maps of its pages held by other domains: it is released only at 0.
    pub mapped_by_others: AtomicU64,
    /// Seconds its wallclock is off the machine's (`XEN_DOMCTL_settimeoffset`).
    pub time_offset: AtomicI64,
    /// The vCPUs, by number (set once, right after the domain is built).
    pub vcpus: spin::Once<Vec<Arc<sched::VcpuSlot>>>,
    /// Weight and cap when the domain left the scheduler (for the final accounting).
    pub final_params: Mutex<Option<(u16, u32)>>,
    /// Set once the domain's memory went back to the allocator.
    pub released: AtomicBool,
    /// Exits and hypercalls of its vCPUs, added up when they are released.
    pub exits: AtomicU64,
    pub hypercalls: AtomicU64,
    pub exit_reasons: [AtomicU64; vcpu::EXIT_REASONS],
}

/// Frames for a domain's EPT tables, from the global allocator (zeroed), charged to
/// its quota: a domain that asks for more tables than its limit gets `OutOfFrames`
/// (an error of its own) and nobody else notices. Tables the EPT lets go of are kept
/// until [`EptFrames::free_released`], which the caller calls once no pCPU can still
/// walk them (after `flush_ept_everywhere`).
pub struct EptFrames<'a> {
    quota: &'a Quota,
    released: Vec<u64>,
    /// An allocation was refused for the quota (not for want of memory).
    pub over_quota: bool,
}

impl<'a> EptFrames<'a> {
    pub fn new(quota: &'a Quota) -> Self {
        EptFrames {
            quota,
            released: Vec::new(),
            over_quota: false,
        }
    }

    /// Returns every table of `ept` (built from this source) to the allocator: for an
    /// EPT no pCPU will walk again before it flushes (a domain being released, or one
    /// that never ran).
    pub fn free_all(&mut self, ept: &Ept) {
        for t in ept.tables(self) {
            if frames::free_run(t, 1).is_ok() {
                self.quota.release(1);
            }
        }
    }

    /// Returns the tables the EPT let go of to the allocator: call only when every
    /// pCPU has dropped its cached translations of this EPT.
    pub fn free_released(mut self) {
        for t in self.released.drain(..) {
            if frames::free_run(t, 1).is_ok() {
                self.quota.release(1);
            }
        }
    }
}

impl Drop for EptFrames<'_> {
    fn drop(&mut self) {
        if !self.released.is_empty() {
            // A caller that forgot `free_released`: keeping the frames is safe, reusing
            // them might not be.
            log::error!(
                "EPT: {} table frame(s) released without a flush; kept",
                self.released.len()
            );
        }
    }
}

impl FrameSource for EptFrames<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        if !self.quota.try_charge(1) {
            self.over_quota = true;
            return None;
        }
        let f = frames::alloc_zeroed(1).ok();
        if f.is_none() {
            self.quota.release(1);
        }
        f
    }

    fn table(&mut self, hpa: u64) -> &mut [u64; 512] {
        let ptr = paging::phys_to_virt(hpa).as_mut_ptr::<[u64; 512]>();
        // SAFETY: `hpa` is an EPT table frame handed out by `alloc_table` and owned by
        // exactly one EPT; the physical-memory window maps it; the EPT builder is the
        // only code that touches it and holds the unique reference while it does.
        unsafe { &mut *ptr }
    }

    fn free_table(&mut self, hpa: u64) {
        self.released.push(hpa);
    }
}

/// Why `populate` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PopulateError {
    /// Out of the guest's frame space, over RAM or an overlay, or empty.
    Invalid,
    /// Beyond the domain's `max_pages`.
    OverLimit,
    /// The machine has no such run free (or the EPT quota is spent).
    NoMemory,
}

/// Why a domain could not be built.
#[derive(Debug)]
pub enum BuildError {
    Memory(oxen_core::frames::FrameError),
    Ept(ept::EptError),
    Elf(oxen_core::elf::ElfError),
    NoPvhEntry,
    SegmentOutsideRam { paddr: u64, size: u64 },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(e) => write!(f, "{e}"),
            Self::Ept(e) => write!(f, "EPT: {e:?}"),
            Self::Elf(e) => write!(f, "kernel image: {e:?}"),
            Self::NoPvhEntry => write!(
                f,
                "kernel image has no XEN_ELFNOTE_PHYS32_ENTRY note (not a PVH kernel)"
            ),
            Self::SegmentOutsideRam { paddr, size } => {
                write!(
                    f,
                    "kernel segment at {paddr:#x} (+{size:#x}) lies outside the domain's RAM"
                )
            }
        }
    }
}

/// What a domain is made of before anything is loaded into it.
pub struct Spec<'a> {
    pub id: u32,
    pub name: &'a str,
    pub vcpus: u32,
    pub privileged: bool,
    /// Bytes of RAM it is built with at once (0: populated later).
    pub ram_size: u64,
    /// What its EPT tables may cost, in MiB of guest memory they map.
    pub quota_mib: u64,
    /// Built by the hypervisor at boot (destroyed by it when it finishes, and kept in
    /// the registry for the final report).
    pub at_boot: bool,
}

impl Domain {
    /// A domain with an empty EPT and no RAM (`spec.ram_size` is only where its
    /// reserved pages go), its shared-info and console pages, paused once if it is not
    /// built at boot (as Xen's `createdomain` leaves it).
    pub fn empty(spec: &Spec<'_>, sched: DomId) -> Result<Domain, BuildError> {
        let ept_quota = Quota::new(oxen_core::quota::default_ept_frames(
            spec.vcpus,
            spec.quota_mib,
        ));
        let mut src = EptFrames::new(&ept_quota);
        let ept = Ept::new(&mut src).map_err(BuildError::Ept)?;
        let special = || frames::alloc_zeroed(1).map_err(BuildError::Memory);
        let (shared_info, console) = match (special(), special()) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                for f in [a.as_ref().ok(), b.as_ref().ok()].into_iter().flatten() {
                    let _ = frames::free_run(*f, 1);
                }
                src.free_all(&ept);
                return Err(a.and(b).expect_err("one failed"));
            }
        };
        let eptp = ept.eptp();
        // Nothing was unmapped, so nothing waits to be freed.
        drop(src);
        let id = spec.id;
        let d = Domain {
            id,
            name: String::from(spec.name),
            p2m: RwLock::new(P2m::new()),
            max_pages: AtomicU64::new(0),
            ram_size: spec.ram_size,
            ept: Mutex::new(ept),
            eptp,
            ept_quota,
            ept_quota_hit: AtomicBool::new(false),
            gfn_limit: guest_gfn_limit(),
            shared_info,
            shared_info_gfn: Mutex::new(None),
            events: event::DomainEvents::new(
                id,
                spec.vcpus,
                shared_info,
                console,
                event::console_gfn(spec.ram_size),
            ),
            grant_frames: Mutex::new(Vec::new()),
            state: Mutex::new(DomainState::Running),
            dying: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            teardown: Mutex::new(lifecycle::Teardown::Pending),
            console_line: Mutex::new(String::new()),
            e9_line: Mutex::new(String::new()),
            console_budget: Mutex::new(TokenBucket::new(
                CONSOLE_RATE,
                CONSOLE_BURST,
                crate::arch::time::now(),
            )),
            console_dropped: AtomicU64::new(0),
            sched,
            privileged: spec.privileged,
            at_boot: spec.at_boot,
            destroyed: AtomicBool::new(spec.at_boot),
            pause_count: AtomicU32::new(u32::from(!spec.at_boot)),
            ever_unpaused: AtomicBool::new(spec.at_boot),
            handle: Mutex::new([0; 16]),
            mapped_by_others: AtomicU64::new(0),
            time_offset: AtomicI64::new(0),
            vcpus: spin::Once::new(),
            final_params: Mutex::new(None),
            released: AtomicBool::new(false),
            exits: AtomicU64::new(0),
            hypercalls: AtomicU64::new(0),
            exit_reasons: [const { AtomicU64::new(0) }; vcpu::EXIT_REASONS],
        };
        // The console ring sits in a reserved range above RAM (as Xen's toolstack puts
        // it), where guests also map shared info and grant frames by convention.
        let console_gfn = event::console_gfn(spec.ram_size);
        if let Err(e) = d.map_special(console_gfn, console, ept::Perm::RW) {
            d.release();
            return Err(BuildError::Ept(e));
        }
        Ok(d)
    }

    /// Builds a domain from its configuration and kernel image: RAM, EPT, the PVH
    /// image and `hvm_start_info`. Returns the domain and vCPU 0's start state.
    pub fn build(
        id: u32,
        cfg: &DomainConfig,
        kernel: &[u8],
        ramdisk: Option<&[u8]>,
        sched: DomId,
    ) -> Result<(Domain, StartState), BuildError> {
        let ram_size = cfg.memory_mib << 20;
        // The layout, checked before anything is allocated (the control domain's builder
        // uses the same).
        let plan = oxen_core::pvh::plan(
            kernel,
            ramdisk,
            ram_size,
            (cfg.vcpus, cfg.vcpus),
            &cfg.cmdline,
            event::reserved_range(ram_size),
        )
        .map_err(|e| match e {
            PlanError::Elf(e) => BuildError::Elf(e),
            PlanError::NoPvhEntry => BuildError::NoPvhEntry,
            PlanError::OutsideRam { paddr, size } => BuildError::SegmentOutsideRam { paddr, size },
        })?;
        let spec = Spec {
            id,
            name: &cfg.name,
            vcpus: cfg.vcpus,
            privileged: cfg.privileged,
            ram_size,
            quota_mib: cfg.memory_mib,
            at_boot: true,
        };
        let domain = Domain::empty(&spec, sched)?;
        let count = ram_size / FRAME_SIZE;
        let ram_hpa = match frames::alloc_run(count, RAM_ALIGN, u64::MAX) {
            Ok(hpa) => hpa,
            Err(e) => {
                domain.release();
                return Err(BuildError::Memory(e));
            }
        };
        // SAFETY: the run was just allocated to this domain and is mapped by the window.
        unsafe {
            core::ptr::write_bytes(
                paging::phys_to_virt(ram_hpa).as_mut_ptr::<u8>(),
                0,
                ram_size as usize,
            )
        };
        domain
            .p2m
            .write()
            .add_ram(0, ram_hpa / FRAME_SIZE, count, count)
            .expect("an empty P2M takes one run");
        domain.max_pages.store(count, Ordering::Release);
        let mapped = domain.ept.lock().map(
            &mut EptFrames::new(&domain.ept_quota),
            0,
            ram_hpa,
            ram_size,
            ept::Perm::RWX,
        );
        if let Err(e) = mapped {
            domain.release();
            return Err(BuildError::Ept(e));
        }
        for (gpa, bytes) in &plan.writes {
            let copied = domain.write_ram(*gpa, bytes);
            debug_assert!(copied, "the plan keeps every write in RAM");
        }
        Ok((domain, StartState::pvh(plan.entry, plan.start_info)))
    }

    /// Copies guest memory at `gpa` into `buf`, page by page through the P2M (RAM or
    /// an overlay, whatever the guest sees there); false if some page is neither.
    pub fn read_ram(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.each_page(gpa, buf.len(), false, |hpa, at, n| {
            let src = paging::phys_to_virt(hpa).as_ptr::<u8>();
            // SAFETY: `hpa..hpa+n` lies in one frame the P2M maps for this domain
            // (its RAM, kept until it is released, or an overlay frame kept while it is
            // mapped), which the window maps; `buf` is ours, so they do not overlap. The
            // guest may change the bytes as we copy: that only changes what we read.
            unsafe { core::ptr::copy_nonoverlapping(src, buf[at..].as_mut_ptr(), n) };
        })
    }

    /// Copies `data` into guest memory at `gpa` through the P2M; false if some page is
    /// not there or not writable by the guest (nothing is written then).
    pub fn write_ram(&self, gpa: u64, data: &[u8]) -> bool {
        self.each_page(gpa, data.len(), true, |hpa, at, n| {
            let dst = paging::phys_to_virt(hpa).as_mut_ptr::<u8>();
            // SAFETY: as in `read_ram`, for a frame the guest may write.
            unsafe { core::ptr::copy_nonoverlapping(data[at..].as_ptr(), dst, n) };
        })
    }

    /// Translates `gpa..gpa+len` page by page under the P2M's read lock (all pages
    /// first, so a refused range does nothing), then calls `f(hpa, offset, bytes)`.
    fn each_page(
        &self,
        gpa: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(u64, usize, usize),
    ) -> bool {
        let Some(end) = gpa.checked_add(len as u64) else {
            return false;
        };
        let p2m = self.p2m.read();
        let page = |gpa: u64| {
            p2m.lookup(gpa / FRAME_SIZE)
                .filter(|e| !write || e.perm.contains(ept::Perm::W))
                .map(|e| e.mfn * FRAME_SIZE + gpa % FRAME_SIZE)
        };
        // Most copies (page-table entries, hypercall arguments) lie in one page: one
        // lookup.
        if len == 0 || gpa / FRAME_SIZE == (end - 1) / FRAME_SIZE {
            let Some(hpa) = page(gpa) else {
                return len == 0;
            };
            f(hpa, 0, len);
            return true;
        }
        let mut at = gpa;
        while at < end {
            if page(at).is_none() {
                return false;
            }
            at = (at / FRAME_SIZE + 1) * FRAME_SIZE;
        }
        let mut at = gpa;
        while at < end {
            let n = (FRAME_SIZE - at % FRAME_SIZE).min(end - at);
            let hpa = page(at).expect("checked above");
            f(hpa, (at - gpa) as usize, n as usize);
            at += n;
        }
        true
    }

    /// Forgets every overlay (a domain being torn down: its EPT goes too); returns them.
    pub fn take_overlays(&self) -> Vec<(u64, p2m::Entry)> {
        let _ept = self.ept.lock();
        self.p2m.write().take_overlays()
    }

    /// What the guest sees at `gfn`, if anything.
    pub fn p2m_lookup(&self, gfn: u64) -> Option<p2m::Entry> {
        self.p2m.read().lookup(gfn)
    }

    /// Frames of RAM the domain has.
    pub fn ram_frames(&self) -> u64 {
        self.p2m.read().ram_frames()
    }

    /// The highest guest frame with RAM.
    pub fn max_ram_gfn(&self) -> Option<u64> {
        self.p2m.read().max_ram_gfn()
    }

    /// Whether its memory went back (it exists only for the final report).
    pub fn released(&self) -> bool {
        *self.teardown.lock() == lifecycle::Teardown::Released
    }

    /// Whether this is the control domain: domain 0, privileged (as Xen's dom0).
    pub fn is_control(&self) -> bool {
        self.id == 0 && self.privileged
    }

    /// Whether the domain is still running (not dying).
    pub fn running(&self) -> bool {
        !self.dying.load(Ordering::Acquire)
    }

    /// Ends the domain (first reason wins) and logs it.
    pub fn finish(&self, state: DomainState) {
        let mut s = self.state.lock();
        if s.is_done() {
            return;
        }
        match &state {
            DomainState::Crashed(why) if self.at_boot => {
                log::error!("domain {} ({}) crashed: {why}", self.id, self.name)
            }
            // A control domain built it and decides what follows (its `on_crash`).
            DomainState::Crashed(why) => {
                log::warn!("domain {} ({}) crashed: {why}", self.id, self.name)
            }
            // The control domain that made it hears of it (VIRQ_DOM_EXC, getdomaininfo).
            other if !self.at_boot => log::debug!("domain {} ({}) {other}", self.id, self.name),
            other => log::info!("domain {} ({}) {other}", self.id, self.name),
        }
        *s = state;
        self.dying.store(true, Ordering::Release);
    }

    /// vCPU `n`, if the domain has it.
    pub fn vcpu(&self, n: u64) -> Option<&Arc<sched::VcpuSlot>> {
        self.vcpus.get()?.get(usize::try_from(n).ok()?)
    }

    /// Returns the domain's RAM, EPT tables and special pages to the frame allocator.
    pub fn release(&self) {
        // No pCPU runs the domain any more and each flushes before its next entry
        // (the caller bumps the EPT generation), so the tables can go at once.
        EptFrames::new(&self.ept_quota).free_all(&self.ept.lock());
        for (_, mfn, count) in self.p2m.write().take_ram() {
            free_ram(mfn * FRAME_SIZE, count * FRAME_SIZE);
        }
        let _ = frames::free_run(self.shared_info, 1);
        let _ = frames::free_run(self.events.console_frame, 1);
        for (f, _) in self.grant_frames.lock().drain(..) {
            let _ = frames::free_run(f, 1);
        }
    }

    /// The guest's physical address width in bits (what its CPUID says).
    pub fn phys_bits(&self) -> u32 {
        self.gfn_limit.trailing_zeros() + 12
    }

    /// The host address of guest frame `gfn` if it is the domain's own RAM.
    pub fn ram_frame(&self, gfn: u64) -> Option<u64> {
        self.p2m.read().ram(gfn).map(|mfn| mfn * FRAME_SIZE)
    }

    /// Maps hypervisor frame `hpa` at guest frame `gfn` (over RAM or a hole; whatever
    /// was there is hidden until [`Domain::unmap_special`]).
    pub fn map_special(&self, gfn: u64, hpa: u64, perm: ept::Perm) -> Result<(), ept::EptError> {
        self.map_overlay(gfn, hpa, p2m::Kind::Special, perm)
            .map(|_| ())
    }

    /// Puts host frame `hpa` over guest frame `gfn` as `kind`: first in the P2M, then
    /// in the EPT (under the EPT's lock, so the two never disagree for long). Every pCPU
    /// drops its stale translations before this returns. Returns the overlay replaced.
    pub fn map_overlay(
        &self,
        gfn: u64,
        hpa: u64,
        kind: p2m::Kind,
        perm: ept::Perm,
    ) -> Result<Option<p2m::Entry>, ept::EptError> {
        let gpa = gfn
            .checked_mul(FRAME_SIZE)
            .ok_or(ept::EptError::OutOfRange)?;
        if gfn >= self.gfn_limit {
            return Err(ept::EptError::OutOfRange);
        }
        let mut src = EptFrames::new(&self.ept_quota);
        let r = {
            let mut e = self.ept.lock();
            let r = e
                .unmap(&mut src, gpa, FRAME_SIZE)
                .and_then(|()| e.map(&mut src, gpa, hpa, FRAME_SIZE, perm));
            let entry = p2m::Entry {
                mfn: hpa / FRAME_SIZE,
                kind,
                perm,
            };
            match r {
                Ok(()) => Ok(self.p2m.write().set_overlay(gfn, entry)),
                Err(err) => {
                    // The P2M is unchanged: put back in the EPT what it says is there.
                    self.render(&mut e, &mut src, gfn);
                    Err(err)
                }
            }
        };
        sched::flush_ept_everywhere();
        let over_quota = src.over_quota;
        src.free_released();
        if over_quota && !self.ept_quota_hit.swap(true, Ordering::Relaxed) {
            log::warn!(
                "domain {} ({}): EPT table quota reached ({} frames); its new mappings fail (-ENOMEM) until it unmaps",
                self.id,
                self.name,
                self.ept_quota.limit()
            );
        }
        r
    }

    /// Makes the EPT entry of `gfn` what the P2M says (the caller holds the EPT lock).
    fn render(&self, e: &mut Ept, src: &mut EptFrames<'_>, gfn: u64) {
        let gpa = gfn * FRAME_SIZE;
        let _ = e.unmap(src, gpa, FRAME_SIZE);
        if let Some(entry) = self.p2m.read().lookup(gfn) {
            let _ = e.map(src, gpa, entry.mfn * FRAME_SIZE, FRAME_SIZE, entry.perm);
        }
    }

    /// Undoes [`Domain::map_special`]: RAM comes back where it was, a hole stays a hole.
    pub fn unmap_special(&self, gfn: u64) -> Result<(), ept::EptError> {
        self.unmap_overlay(gfn).map(|_| ())
    }

    /// Removes the overlay at `gfn` (RAM shows through again, a hole stays a hole) and
    /// returns it. Every pCPU has dropped the old translation when this returns.
    pub fn unmap_overlay(&self, gfn: u64) -> Result<Option<p2m::Entry>, ept::EptError> {
        let gpa = gfn
            .checked_mul(FRAME_SIZE)
            .ok_or(ept::EptError::OutOfRange)?;
        let mut src = EptFrames::new(&self.ept_quota);
        let r = {
            let mut e = self.ept.lock();
            let old = self.p2m.write().clear_overlay(gfn);
            e.unmap(&mut src, gpa, FRAME_SIZE)
                .and_then(|()| match self.ram_frame(gfn) {
                    Some(hpa) => e.map(&mut src, gpa, hpa, FRAME_SIZE, ept::Perm::RWX),
                    None => Ok(()),
                })
                .map(|()| old)
        };
        sched::flush_ept_everywhere();
        src.free_released();
        r
    }

    /// Adds `count` zeroed frames of RAM at guest frame `gfn` from one aligned run of
    /// the allocator (`XENMEM_populate_physmap`), within the domain's `max_pages`.
    pub fn populate(&self, gfn: u64, count: u64) -> Result<(), PopulateError> {
        let end = gfn.checked_add(count).ok_or(PopulateError::Invalid)?;
        if count == 0 || end > self.gfn_limit {
            return Err(PopulateError::Invalid);
        }
        {
            let p = self.p2m.read();
            if p.ram_frames() + count > self.max_pages.load(Ordering::Acquire) {
                return Err(PopulateError::OverLimit);
            }
            if p.overlays().any(|(g, _)| (gfn..end).contains(&g)) {
                return Err(PopulateError::Invalid);
            }
        }
        let hpa = frames::alloc_zeroed_aligned(count, count * FRAME_SIZE)
            .map_err(|_| PopulateError::NoMemory)?;
        let mut src = EptFrames::new(&self.ept_quota);
        let r = {
            let mut e = self.ept.lock();
            let limit = self.max_pages.load(Ordering::Acquire);
            match self
                .p2m
                .write()
                .add_ram(gfn, hpa / FRAME_SIZE, count, limit)
            {
                Ok(()) => Ok(()),
                Err(p2m::P2mError::OverLimit) => Err(PopulateError::OverLimit),
                Err(_) => Err(PopulateError::Invalid),
            }
            .and_then(|()| {
                e.map(
                    &mut src,
                    gfn * FRAME_SIZE,
                    hpa,
                    count * FRAME_SIZE,
                    ept::Perm::RWX,
                )
                .map_err(|_| PopulateError::NoMemory)
            })
        };
        if let Err(e) = r {
            // The P2M took the run if only the EPT refused: take it out again.
            if e == PopulateError::NoMemory {
                let _ = self.p2m.write().remove_ram(gfn, count);
                let _ = self
                    .ept
                    .lock()
                    .unmap(&mut src, gfn * FRAME_SIZE, count * FRAME_SIZE);
            }
            let _ = frames::free_run(hpa, count);
        }
        sched::flush_ept_everywhere();
        src.free_released();
        r
    }

    /// Appends guest output to a line buffer and logs every complete line.
    pub fn emit(&self, buffer: &Mutex<String>, source: &str, bytes: &[u8]) {
        let mut line = buffer.lock();
        for &b in bytes {
            match b {
                b'\n' => {
                    self.print_line(source, &line);
                    line.clear();
                }
                b'\r' => {}
                b if b.is_ascii_graphic() || b == b' ' || b == b'\t' => line.push(b as char),
                _ => line.push('?'),
            }
            if line.len() >= 256 {
                self.print_line(source, &line);
                line.clear();
            }
        }
    }

    /// Logs one line of guest output, within the domain's console budget and without
    /// ever waiting for the UART: lines beyond either are dropped and counted, and the
    /// count is reported before the next line that gets through (Xen drops guest output
    /// it cannot send too).
    fn print_line(&self, source: &str, text: &str) {
        let now = crate::arch::time::now();
        let cost = text.len() as u64 + LINE_OVERHEAD;
        if !self.console_budget.lock().take(cost, now) {
            self.console_dropped
                .fetch_add(text.len() as u64 + 1, Ordering::Relaxed);
            return;
        }
        let dropped = self.console_dropped.swap(0, Ordering::Relaxed);
        // A domain a control domain built has its name in that domain's toolstack, not
        // here: it is `dN` alone, as Xen prints `(dN)`.
        let name = if self.at_boot { self.name.as_str() } else { "" };
        let gap = if name.is_empty() { "" } else { " " };
        if dropped != 0
            && !serial::guest_line(format_args!(
                "[d{}{gap}{name}{source}] ({dropped} bytes of console output dropped)",
                self.id
            ))
        {
            self.console_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if !serial::guest_line(format_args!("[d{}{gap}{name}{source}] {text}", self.id)) {
            self.console_dropped
                .fetch_add(text.len() as u64 + 1, Ordering::Relaxed);
        }
    }
}

/// The guest-frame-number limit every domain gets: what CPUID leaf 0x80000008 tells
/// it about physical addresses (passed through from the host), at most the 48 bits a
/// 4-level EPT translates.
fn guest_gfn_limit() -> u64 {
    let bits = crate::arch::cpu::cpuid(0x8000_0008, 0).eax & 0xff;
    let bits = if bits == 0 { 36 } else { bits.min(48) };
    1 << (bits - 12)
}

fn free_ram(hpa: u64, size: u64) {
    if let Err(e) = frames::free_run(hpa, size / FRAME_SIZE) {
        log::error!("domain memory: {e}");
    }
}

/// Whether every domain has finished and given its memory back.
pub fn all_done() -> bool {
    registry::all()
        .iter()
        .all(|d| !d.running() && d.released.load(Ordering::Acquire))
}

/// The domain with id `id`, if it exists (finished ones included).
pub fn by_id(id: u32) -> Option<Arc<Domain>> {
    registry::by_id(id)
}
