//! `hcall-fuzz`: calls every hypercall number 0..64 many times through raw VMCALL with
//! random, hostile and plausible arguments, and survives.
//!
//! Calls that would legitimately stop or corrupt the guest are steered away (see
//! [`sanitize`]): `sched_op`/`sched_op_compat` block, shutdown, poll, remote_shutdown,
//! shutdown_code (it would change the reason of our final poweroff) and watchdog;
//! `vcpu_op` on ourselves that takes the vCPU down, re-initialises it, sends it an NMI or
//! registers areas the hypervisor writes later; `memory_op` sub-ops that change our
//! physmap; `hvm_op` set_mem_type and altp2m; `multicall` only ever gets a prepared list;
//! `console_io` writes from our own RAM are capped at 127 bytes (no megabytes of junk on
//! the console); `event_channel_op` never closes or resets our console's port. Any argument (or any word in the scratch buffers) that points into our
//! own image, as an address or as a frame number, is redirected to scratch memory, which
//! lives in free RAM above the image. Needs about 8.5 MiB of RAM.
//!
//! Command line: `rounds=N` (default 30), `seed=HEX` (default: the TSC) to replay a run,
//! `race=1`: every other vCPU of the domain fuzzes the implemented hypercall families
//! (event channels, grants, HVM, vCPU, scheduler, domctl, memory) without end, each with
//! its own scratch area, while vCPU 0 fuzzes, passes and powers the domain off under
//! them: the hypervisor must tear the domain down with its vCPUs inside hypercalls.
//! `control=N` (for a privileged domain, with `me=` its id): N more calls of the control
//! interface (`domctl` and `sysctl` with the right interface version, real commands and
//! hostile structures; `memory_op` populate, foreign maps and removals on random
//! domains; HVM parameters, ports, `add_to_physmap` and `remove_from_physmap` on other
//! domains), which also creates, pauses and destroys domains at random; whatever it
//! leaves behind the hypervisor destroys when it ends.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use oxen_guest_rt::abi::{errno, hypercall as nr};
use oxen_guest_rt::{StartInfo, arch, println, vcpu, vmcall};

oxen_guest_rt::entry!(main);

const CALLS_PER_ROUND: u32 = 4;
/// Calls per implemented hypercall in the second, deeper phase.
const DEEP_CALLS: u32 = 400;
const HIST_LEN: usize = 24;
const SCRATCH_LEN: u64 = 16 * 4096;
const PAGE_2M: u64 = 2 << 20;

unsafe extern "C" {
    static __guest_start: u8;
    static __guest_end: u8;
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Fuzz {
    rng: Rng,
    image: (u64, u64),
    scratch: u64,
    ram_end: u64,
}

const HOSTILE: [u64; 16] = [
    0,
    u64::MAX,
    1,
    0x7fff_ffff,
    0xffff_ffff,
    0x8000_0000,
    0x1_0000_0000,
    0x8000_0000_0000_0000,
    0x0000_8000_0000_0000, // first non-canonical
    0x7fff_ffff_ffff_f000, // non-canonical
    0xffff_8000_0000_0000, // kernel-looking
    0xffff_8300_0000_0000, // Xen's directmap
    0xffff_ffff_8000_0000, // kernel text
    0xdead_beef_dead_beef,
    i32::MIN as u64,
    0x0000_7fff_ffff_ffff,
];

impl Fuzz {
    fn value(&mut self) -> u64 {
        match self.rng.below(3) {
            0 => self.rng.next(),
            1 => {
                let v = HOSTILE[self.rng.below(HOSTILE.len() as u64) as usize];
                // Sometimes unaligned.
                if self.rng.below(4) == 0 {
                    v.wrapping_add(1 + self.rng.below(7))
                } else {
                    v
                }
            }
            _ => match self.rng.below(5) {
                0 => self.rng.below(16),
                1 => 0x7ff0 + self.rng.below(8), // DOMID_SELF and friends
                2 => 1 << self.rng.below(16),
                3 => self.scratch + self.rng.below(4096),
                _ => self.scratch + 4096 - 1 - self.rng.below(8), // crossing a page end
            },
        }
    }

    /// Redirects anything pointing into our image (as a 64- or 32-bit address, or as a
    /// frame number) to scratch.
    fn safe(&self, v: u64) -> u64 {
        let (lo, hi) = self.image;
        let low32 = u64::from(v as u32);
        let frames = (lo >> 12)..(hi >> 12);
        if (lo..hi).contains(&v) || (lo..hi).contains(&low32) {
            self.scratch + (v & 0xff8)
        } else if frames.contains(&v) || frames.contains(&low32) {
            self.scratch >> 12
        } else {
            v
        }
    }

    /// Fills `buf` with fuzz words (kept off our image), little-endian.
    fn fill_bytes(&mut self, buf: &mut [u8]) {
        for w in buf.chunks_mut(8) {
            let v = self.value();
            let v = self.safe(v).to_le_bytes();
            w.copy_from_slice(&v[..w.len()]);
        }
    }

    /// Refills the scratch area with fuzz words (each half kept off our image).
    fn fill_scratch(&mut self, words: u64) {
        for i in 0..words {
            let v = self.value();
            let v = self.safe(v);
            let v = self.safe(v.rotate_left(32)).rotate_right(32);
            // SAFETY: the scratch area is free RAM reserved for this (see `main`).
            unsafe { ((self.scratch + 8 * i) as *mut u64).write_volatile(v) };
        }
    }
}

/// Steers away from calls that would legitimately stop or corrupt us.
fn sanitize(f: &mut Fuzz, call: u32, a: &mut [u64; 5]) {
    let cmd = a[0] as u32;
    match call {
        nr::SCHED_OP | nr::SCHED_OP_COMPAT => {
            // block, shutdown, poll, remote_shutdown, shutdown_code, watchdog
            if matches!(cmd, 1..=6) {
                a[0] = 0; // yield
            }
        }
        nr::VCPU_OP => {
            // initialise, down, runstate area, vcpu_info, NMI, time area
            if matches!(cmd, 0 | 2 | 5 | 10 | 11 | 13) {
                a[0] = 3; // is_up
            }
        }
        nr::MEMORY_OP => {
            // Only sub-ops that do not change our physmap (cmd is the low 6 bits).
            if !matches!(
                a[0] & 0x3f,
                2 | 3 | 4 | 5 | 9 | 10 | 12 | 14 | 17 | 18 | 19 | 25
            ) {
                a[0] = (a[0] & !0x3f) | 3; // current_reservation
            }
        }
        nr::EVENT_CHANNEL_OP => {
            // Keep our console's channel (port 1): reset closes every port, and a close
            // must name another port.
            if cmd == 10 {
                a[0] = 5; // status
            }
            if cmd == 3 {
                let port = 2 + f.rng.below(62) as u32;
                a[1] = f.scratch + 8 * f.rng.below(64);
                // SAFETY: inside the scratch area reserved for this.
                unsafe { (a[1] as *mut u32).write_volatile(port) };
            }
        }
        nr::HVM_OP => {
            // set_mem_type, altp2m
            if matches!(cmd, 8 | 25) {
                a[0] = 0x7fff; // unknown
            }
        }
        nr::CONSOLE_IO => {
            if cmd == 0 && a[2] < f.ram_end {
                a[1] &= 0x7f;
            }
        }
        nr::MULTICALL => {
            // A list of harmless xen_version calls with hostile arguments.
            f.fill_scratch(512);
            let count = f.rng.below(8);
            for i in 0..count {
                // struct multicall_entry { op, result, args[6] }
                // SAFETY: scratch memory reserved for this.
                unsafe {
                    ((f.scratch + 64 * i) as *mut u64).write_volatile(u64::from(nr::XEN_VERSION))
                };
            }
            a[0] = f.scratch;
            a[1] = count;
        }
        _ => {}
    }
}

/// What the racing vCPUs need from vCPU 0: image bounds, scratch base, RAM end, seed.
static RACE: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// Calls the racing vCPUs made.
static RACE_CALLS: AtomicU64 = AtomicU64::new(0);

/// The implemented hypercall families, for the deep phase and the racers.
const FAMILIES: [u32; 7] = [
    nr::EVENT_CHANNEL_OP,
    nr::GRANT_TABLE_OP,
    nr::HVM_OP,
    nr::VCPU_OP,
    nr::SCHED_OP,
    nr::DOMCTL,
    nr::MEMORY_OP,
];

/// One call of `call` with real-looking sub-op arguments (the deep phase's recipe).
fn deep_call(f: &mut Fuzz, call: u32) -> i64 {
    f.fill_scratch(64);
    let mut a = [0u64; 5];
    for x in a.iter_mut() {
        let v = f.value();
        *x = f.safe(v);
    }
    a[0] = f.rng.below(16);
    if f.rng.below(2) == 0 {
        a[1] = f.scratch + 8 * f.rng.below(64);
    }
    if f.rng.below(2) == 0 {
        a[2] = f.rng.below(4);
    }
    sanitize(f, call, &mut a);
    // SAFETY: no argument points into our image; what the hypervisor may write is
    // this vCPU's scratch or not ours.
    unsafe { vmcall(u64::from(call), a[0], a[1], a[2], a[3], a[4]) }
}

/// A racing vCPU: fuzzes the implemented families until the domain is torn down.
extern "C" fn racer(n: u32) -> ! {
    let r = |i: usize| RACE[i].load(Ordering::Acquire);
    let mut f = Fuzz {
        rng: Rng((r(4) ^ u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1),
        image: (r(0), r(1)),
        scratch: r(2) + u64::from(n) * SCRATCH_LEN,
        ram_end: r(3),
    };
    loop {
        let call = FAMILIES[f.rng.below(FAMILIES.len() as u64) as usize];
        let _ = deep_call(&mut f, call);
        RACE_CALLS.fetch_add(1, Ordering::Relaxed);
    }
}

fn main(info: &StartInfo) {
    let rounds: u32 = info
        .cmdline_arg("rounds")
        .and_then(|r| r.parse().ok())
        .unwrap_or(30);
    let image = (
        &raw const __guest_start as u64,
        &raw const __guest_end as u64,
    );
    // Scratch memory: free RAM starting 2 MiB above the image, identity-mapped.
    let scratch = (image.1 + 2 * PAGE_2M) & !(PAGE_2M - 1);
    let ram_end = info.ram_end().min(1 << 30);
    assert!(
        scratch + SCRATCH_LEN + 2 * PAGE_2M <= ram_end,
        "hcall-fuzz: need RAM up to {:#x} for scratch, have {ram_end:#x}",
        scratch + SCRATCH_LEN + 2 * PAGE_2M
    );
    let seed = info
        .cmdline_arg("seed")
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(arch::rdtsc)
        | 1;
    println!(
        "hcall-fuzz: {rounds} rounds x 64 hypercalls x {CALLS_PER_ROUND}, seed {seed:#x}, image {:#x}..{:#x}, scratch {scratch:#x}",
        image.0, image.1
    );
    let race = info.cmdline_arg("race") == Some("1");
    // Read now: the fuzz may write over the start info (it is not our image).
    let control_calls: Option<u64> = info.cmdline_arg("control").and_then(|v| v.parse().ok());
    let me: u16 = info
        .cmdline_arg("me")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let racers = if race {
        for (i, v) in [image.0, image.1, scratch, ram_end, seed]
            .into_iter()
            .enumerate()
        {
            RACE[i].store(v, Ordering::Release);
        }
        let n = vcpu::start_all(racer);
        assert!(
            scratch + u64::from(n) * SCRATCH_LEN + 2 * PAGE_2M <= ram_end,
            "hcall-fuzz: need more RAM for {n} vCPUs' scratch"
        );
        println!(
            "hcall-fuzz: {} more vCPU(s) race the implemented hypercalls",
            n - 1
        );
        n - 1
    } else {
        0
    };
    let mut f = Fuzz {
        rng: Rng(seed),
        image,
        scratch,
        ram_end,
    };

    // Histogram of return values: (value, count); the last slot collects the rest.
    let mut hist = [(0i64, 0u64); HIST_LEN];
    let mut used = 0;
    let mut other = 0u64;
    let mut calls = 0u64;

    for round in 0..rounds {
        for call in 0..64u32 {
            for _ in 0..CALLS_PER_ROUND {
                f.fill_scratch(64);
                let mut a = [0u64; 5];
                for x in a.iter_mut() {
                    let v = f.value();
                    *x = f.safe(v);
                }
                // Half the time, a small sub-op number first.
                if f.rng.below(2) == 0 {
                    a[0] = f.rng.below(32);
                }
                sanitize(&mut f, call, &mut a);
                // SAFETY: no argument points into our image (code, data, stack, page
                // tables); everything the hypervisor may write is scratch or not ours.
                let rc = unsafe { vmcall(u64::from(call), a[0], a[1], a[2], a[3], a[4]) };
                calls += 1;
                if call == nr::CONSOLE_IO && a[0] as u32 == 0 && rc > 0 {
                    // End the junk line so it cannot prefix our own next line.
                    oxen_guest_rt::hypercall::console_write(b"\n");
                }
                match hist[..used].iter_mut().find(|(v, _)| *v == rc) {
                    Some((_, n)) => *n += 1,
                    None if used < HIST_LEN => {
                        hist[used] = (rc, 1);
                        used += 1;
                    }
                    None => other += 1,
                }
            }
        }
        if (round + 1) % 10 == 0 {
            println!("hcall-fuzz: round {} done, {calls} calls", round + 1);
        }
    }

    // Then the hypercalls oxen implements, with their real sub-op numbers and small
    // counts, so that the fuzz reaches past argument decoding into each operation.
    let mut deep = 0u64;
    for call in FAMILIES {
        for _ in 0..DEEP_CALLS {
            let rc = deep_call(&mut f, call);
            calls += 1;
            deep += 1;
            match hist[..used].iter_mut().find(|(v, _)| *v == rc) {
                Some((_, n)) => *n += 1,
                None if used < HIST_LEN => {
                    hist[used] = (rc, 1);
                    used += 1;
                }
                None => other += 1,
            }
        }
    }
    println!("hcall-fuzz: {deep} calls with real sub-ops of the implemented hypercalls");

    hist[..used].sort_unstable_by_key(|&(v, _)| v);
    for &(v, n) in &hist[..used] {
        println!("hcall-fuzz: rc {v:>6} {:<8} x {n}", name(v));
    }
    if other > 0 {
        println!("hcall-fuzz: rc (other values) x {other}");
    }
    if racers > 0 {
        println!(
            "hcall-fuzz: {racers} racing vCPU(s) made {} calls so far; powering off under them",
            RACE_CALLS.load(Ordering::Relaxed)
        );
    }
    if let Some(n) = control_calls {
        calls += control(&mut f, n, me);
    }
    println!("hcall-fuzz: PASS survived {calls} calls");
    break_console();
}

/// Calls `call` with `op` as its one argument, copied to scratch memory first (the
/// hypervisor writes the structure back there).
fn call_from_scratch(scratch: u64, call: u32, op: &[u8]) -> i64 {
    let at = scratch + 3000;
    for (i, b) in op.iter().enumerate() {
        // SAFETY: inside the scratch area reserved for this.
        unsafe { ((at + i as u64) as *mut u8).write_volatile(*b) };
    }
    // SAFETY: the argument is scratch memory.
    unsafe { vmcall(u64::from(call), at, 0, 0, 0, 0) }
}

/// As [`call_from_scratch`], for the calls that take a sub-op first: `call(cmd, op)`.
fn sub_op_from_scratch(scratch: u64, call: u32, cmd: u32, op: &[u8]) -> i64 {
    let at = scratch + 3000;
    for (i, b) in op.iter().enumerate() {
        // SAFETY: inside the scratch area reserved for this.
        unsafe { ((at + i as u64) as *mut u8).write_volatile(*b) };
    }
    // SAFETY: the argument is scratch memory.
    unsafe { vmcall(u64::from(call), u64::from(cmd), at, 0, 0, 0) }
}

/// Where the control phase's foreign maps go: a window of guest frames above our RAM
/// (and below the 1 GiB the boot page tables map), never over our own memory.
const FOREIGN_WINDOW: u64 = 0x3_0000;

/// The control phase: `n` calls of domctl, sysctl, the builder's memory_op sub-ops and a
/// toolstack's other calls with hostile structures on random domains. Returns the calls
/// made.
fn control(f: &mut Fuzz, n: u64, me: u16) -> u64 {
    use oxen_guest_rt::abi::evtchn::EvtchnAllocUnbound;
    use oxen_guest_rt::abi::hvm::{self, HvmParam};
    use oxen_guest_rt::abi::memory::{AddToPhysmap, RemoveFromPhysmap};
    use oxen_guest_rt::abi::{domctl, memory, sysctl};
    const DOMCTLS: [u32; 17] = [1, 2, 3, 4, 5, 9, 11, 14, 15, 16, 17, 24, 25, 33, 34, 0, 77];
    const SYSCTLS: [u32; 8] = [1, 3, 4, 6, 7, 8, 0, 99];
    let mut made = 0u64;
    let mut ok = 0u64;
    let domid = |f: &mut Fuzz| -> u16 {
        match f.rng.below(6) {
            0 => me,
            1 => 0x7ff0 + f.rng.below(16) as u16,
            2 => f.rng.below(0x8000) as u16,
            _ => 1 + f.rng.below(12) as u16,
        }
    };
    for _ in 0..n {
        f.fill_scratch(512);
        let scratch = f.scratch;
        let kind = f.rng.below(4);
        let rc = match kind {
            0 => {
                let mut op = [0u8; domctl::SIZE];
                f.fill_bytes(&mut op);
                let cmd = DOMCTLS[f.rng.below(DOMCTLS.len() as u64) as usize];
                op[..4].copy_from_slice(&cmd.to_le_bytes());
                if f.rng.below(8) != 0 {
                    op[4..8].copy_from_slice(&domctl::INTERFACE_VERSION.to_le_bytes());
                }
                op[8..10].copy_from_slice(&domid(f).to_le_bytes());
                if cmd == domctl::cmd::CREATEDOMAIN && f.rng.below(2) == 0 {
                    // Plausible flags and vCPUs now and then, so that domains come.
                    op[36..40].copy_from_slice(&(1u32 | 2).to_le_bytes());
                    op[44..48].copy_from_slice(&(1 + f.rng.below(3) as u32).to_le_bytes());
                }
                if cmd == domctl::cmd::SETVCPUAFFINITY {
                    // Never pin ourselves off every pCPU we have: a real map of them.
                    op[24..32].copy_from_slice(&(scratch + 8).to_le_bytes());
                    op[32..36].copy_from_slice(&64u32.to_le_bytes());
                }
                call_from_scratch(scratch, nr::DOMCTL, &op)
            }
            1 => {
                let mut op = [0u8; sysctl::SIZE];
                f.fill_bytes(&mut op);
                let cmd = SYSCTLS[f.rng.below(SYSCTLS.len() as u64) as usize];
                op[..4].copy_from_slice(&cmd.to_le_bytes());
                op[4..8].copy_from_slice(&sysctl::INTERFACE_VERSION.to_le_bytes());
                if cmd == sysctl::cmd::DEBUG_KEYS && f.rng.below(8) != 0 {
                    // Keys that do nothing (printing keys would flood the log and crowd
                    // out our own lines); now and then the hostile count as it is.
                    op[16..20].copy_from_slice(&(f.rng.below(3) as u32).to_le_bytes());
                    op[8..16].copy_from_slice(&(scratch + 16).to_le_bytes());
                    // SAFETY: scratch memory.
                    unsafe { ((scratch + 16) as *mut [u8; 2]).write_volatile(*b"  ") };
                }
                call_from_scratch(scratch, nr::SYSCTL, &op)
            }
            3 => {
                // On other domains only (our own upcall and console port must stay):
                // HVM parameters, a port allocated in one, add_to_physmap and
                // remove_from_physmap in its space.
                let other = loop {
                    let d = domid(f);
                    if d != me && d != 0x7ff0 {
                        break d;
                    }
                };
                let bits = f.rng.below(64);
                let value = f.rng.next() >> (63 - bits);
                match f.rng.below(5) {
                    0 | 1 => {
                        let p = HvmParam {
                            domid: other,
                            index: f.rng.below(48) as u32,
                            value,
                        };
                        let cmd =
                            [hvm::HVMOP_SET_PARAM, hvm::HVMOP_GET_PARAM][f.rng.below(2) as usize];
                        sub_op_from_scratch(scratch, nr::HVM_OP, cmd, &p.to_bytes())
                    }
                    2 => {
                        let a = EvtchnAllocUnbound {
                            dom: other,
                            remote_dom: domid(f),
                            port: 0,
                        };
                        sub_op_from_scratch(scratch, nr::EVENT_CHANNEL_OP, 6, &a.to_bytes())
                    }
                    3 => {
                        let a = AddToPhysmap {
                            domid: other,
                            size: f.rng.below(4) as u16,
                            space: f.rng.below(6) as u32,
                            idx: f.rng.below(40),
                            gpfn: value,
                        };
                        let cmd = memory::ADD_TO_PHYSMAP;
                        sub_op_from_scratch(scratch, nr::MEMORY_OP, cmd, &a.to_bytes())
                    }
                    _ => {
                        let r = RemoveFromPhysmap {
                            domid: other,
                            gpfn: value,
                            ..RemoveFromPhysmap::default()
                        };
                        let cmd = memory::REMOVE_FROM_PHYSMAP;
                        sub_op_from_scratch(scratch, nr::MEMORY_OP, cmd, &r.to_bytes())
                    }
                }
            }
            _ => {
                // populate_physmap / add_to_physmap_batch / remove_from_physmap, every
                // frame list in scratch, every frame we would map in the window.
                let sub = [
                    memory::POPULATE_PHYSMAP,
                    memory::ADD_TO_PHYSMAP_BATCH,
                    memory::REMOVE_FROM_PHYSMAP,
                ][f.rng.below(3) as usize];
                let list = scratch + 1024;
                for i in 0..16u64 {
                    let v = match sub {
                        memory::ADD_TO_PHYSMAP_BATCH if i >= 8 => FOREIGN_WINDOW + f.rng.below(64),
                        _ => {
                            let bits = f.rng.below(24);
                            f.rng.below(1 << bits)
                        }
                    };
                    // SAFETY: scratch memory.
                    unsafe { ((list + 8 * i) as *mut u64).write_volatile(v) };
                }
                let arg = scratch + 2048;
                let words: [u64; 4] = match sub {
                    memory::POPULATE_PHYSMAP => {
                        [list, f.rng.below(9), f.rng.below(11), u64::from(domid(f))]
                    }
                    memory::ADD_TO_PHYSMAP_BATCH => [
                        0x7ff0
                            | u64::from(memory::MAPSPACE_GMFN_FOREIGN) << 16
                            | f.rng.below(9) << 32
                            | u64::from(domid(f)) << 48,
                        list,
                        list + 64,
                        scratch + 1536,
                    ],
                    _ => [
                        0x7ff0,
                        if f.rng.below(2) == 0 {
                            FOREIGN_WINDOW + f.rng.below(64)
                        } else {
                            f.rng.below(1 << 20)
                        },
                        0,
                        0,
                    ],
                };
                for (i, w) in words.iter().enumerate() {
                    // SAFETY: scratch memory.
                    unsafe { ((arg + 8 * i as u64) as *mut u64).write_volatile(*w) };
                }
                // SAFETY: the argument and its lists are scratch memory; frames are
                // mapped only in the window above our RAM.
                unsafe { vmcall(u64::from(nr::MEMORY_OP), u64::from(sub), arg, 0, 0, 0) }
            }
        };
        made += 1;
        if rc == 0 {
            ok += 1;
        }
        if rc > 0 && kind == 0 {
            println!("hcall-fuzz: FAIL a domctl returned {rc}");
        }
    }
    println!(
        "hcall-fuzz: control: {made} calls of domctl, sysctl, memory_op, hvm_op and event_channel_op, {ok} succeeded"
    );
    made
}

/// Last of all, corrupts the PV console ring's producer index (an impossible distance
/// from the consumer) and notifies: oxen must warn once and ignore the ring, nothing
/// more. The line after it goes through `console_io`.
fn break_console() {
    use oxen_guest_rt::{hypercall, mm, xen};
    let (Ok(pfn), Ok(port)) = (xen::get_param(17), xen::get_param(18)) else {
        return;
    };
    if pfn == 0 || port == 0 {
        return;
    }
    // SAFETY: window slot 300 is not used by the runtime (it keeps 504..512); the
    // console page is ours to write, and this is the last console use of the ring.
    unsafe {
        let page = mm::map_phys(300, pfn << 12, false);
        let cons = core::ptr::read_volatile(page.add(3080).cast::<u32>());
        core::ptr::write_volatile(page.add(3084).cast::<u32>(), cons.wrapping_add(100_000));
    }
    let _ = xen::send(port as u32);
    hypercall::console_write(b"hcall-fuzz: wrote an impossible console producer index\n");
}

fn name(rc: i64) -> &'static str {
    match rc.wrapping_neg() {
        0 => "ok",
        errno::EPERM => "EPERM",
        errno::ENOENT => "ENOENT",
        errno::ESRCH => "ESRCH",
        errno::EAGAIN => "EAGAIN",
        errno::ENOMEM => "ENOMEM",
        errno::EACCES => "EACCES",
        errno::EFAULT => "EFAULT",
        errno::EBUSY => "EBUSY",
        errno::EEXIST => "EEXIST",
        errno::ENODEV => "ENODEV",
        errno::EINVAL => "EINVAL",
        errno::ENOSPC => "ENOSPC",
        errno::ENOSYS => "ENOSYS",
        errno::ETIME => "ETIME",
        _ if rc > 0 => "positive",
        _ => "",
    }
}
