//! `builder`: a control domain's toolstack in miniature, through Xen's own interfaces.
//!
//! `mode=build` (privileged): `cycles` times, in batches of `batch` domains alive at
//! once, it creates a domain (`XEN_DOMCTL_createdomain`), gives it memory
//! (`max_mem`, `populate_physmap` on it), maps two of its frames into its own space
//! (`add_to_physmap_batch`, `XENMAPSPACE_gmfn_foreign`) to write a small 32-bit
//! program and a seed there, sets its boot vCPU's registers (`sethvmcontext`), starts
//! it (`unpausedomain`), waits for it to shut down (`getdomaininfo`), checks the answer
//! the program left in its memory, destroys it while the pages are still mapped (it
//! must linger, dying) and unmaps them (then it must be gone). The first batch also
//! pauses a running domain and checks that it stops. Before and after it all (after a
//! warm-up batch) it asks the hypervisor for its memory figures (`debug_keys m`) and
//! the free pages (`physinfo`): they must be equal. In that window it also does once
//! what a toolstack does beyond memory and registers: another domain's HVM parameters
//! (`HVMOP_set_param`), a port in it (`EVTCHNOP_alloc_unbound` on its behalf), its
//! reserved grant entries seeded through its grant frame (`add_to_physmap` on it, a
//! foreign map, `remove_from_physmap`) and mapped back by grant, and `gethvmcontext`.
//! It checks the errors of bad requests on the way.
//!
//! `mode=denied` (unprivileged): every call above must be -EPERM. `me=` is its own id.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use oxen_guest_rt::abi::domctl::{self, CreateDomain, DomainInfo, cdf, dominf, offset};
use oxen_guest_rt::abi::errno::{EACCES, EEXIST, EINVAL, ENOSPC, EPERM, ESRCH};
use oxen_guest_rt::abi::hvm_save::{self, Descriptor, Header, HwCpu};
use oxen_guest_rt::abi::hypercall as nr;
use oxen_guest_rt::abi::memory::{self as mem, AddToPhysmap, RemoveFromPhysmap};
use oxen_guest_rt::abi::sysctl::{self, DebugKeys, GetDomainInfoList, PhysInfo};
use oxen_guest_rt::arch::rdtsc;
use oxen_guest_rt::control::{affinity, hvm_context, populate, set_context, unmap, vcpu_info};
use oxen_guest_rt::hypercall::{hypercall, sched_yield};
use oxen_guest_rt::{StartInfo, println};

oxen_guest_rt::entry!(main);

/// Where the child's program and data live (guest frames 1 and 2), and the frames it
/// has in all.
const CODE_GFN: u64 = 1;
const DATA_GFN: u64 = 2;
const CHILD_FRAMES: u64 = 16;
/// Where the builder maps a child's two frames: 512 MiB up, two frames per slot (the
/// boot page tables map the first GiB).
const MAP_BASE_GFN: u64 = 0x2_0000;
/// Offsets in the child's data page.
const SEED: usize = 0;
const ANSWER: usize = 4;
const GO: usize = 8;
const SPINS: usize = 12;

/// The child's program (32-bit protected mode, flat, at CODE_GFN): count in SPINS
/// until GO is set, then ANSWER = SEED * 0x9e3779b1 + 7, then shut down with reason
/// poweroff (`sched_op(SCHEDOP_shutdown)` by VMCALL, the reason at data + 0x10).
const PROGRAM: &[u8] = &[
    0xff, 0x05, 0x0c, 0x20, 0x00, 0x00, // inc dword [0x200c]
    0x83, 0x3d, 0x08, 0x20, 0x00, 0x00, 0x00, // cmp dword [0x2008], 0
    0x74, 0xf1, // je back to the inc
    0xa1, 0x00, 0x20, 0x00, 0x00, // mov eax, [0x2000]
    0x69, 0xc0, 0xb1, 0x79, 0x37, 0x9e, // imul eax, eax, 0x9e3779b1
    0x05, 0x07, 0x00, 0x00, 0x00, // add eax, 7
    0xa3, 0x04, 0x20, 0x00, 0x00, // mov [0x2004], eax
    0xc7, 0x05, 0x10, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // mov dword [0x2010], 0
    0xb8, 0x1d, 0x00, 0x00, 0x00, // mov eax, 29 (sched_op)
    0xbb, 0x02, 0x00, 0x00, 0x00, // mov ebx, 2 (SCHEDOP_shutdown)
    0xb9, 0x10, 0x20, 0x00, 0x00, // mov ecx, 0x2010
    0x0f, 0x01, 0xc1, // vmcall
    0xeb, 0xfe, // jmp $
];

fn answer_for(seed: u32) -> u32 {
    seed.wrapping_mul(0x9e37_79b1).wrapping_add(7)
}

fn domctl_op(cmd: u32, domain: u16, u: &[u8]) -> (i64, [u8; domctl::SIZE]) {
    oxen_guest_rt::control::domctl(cmd, domain, u)
}

fn sysctl_op(cmd: u32, u: &[u8]) -> (i64, [u8; sysctl::SIZE]) {
    oxen_guest_rt::control::sysctl(cmd, u)
}

fn memory_op(cmd: u32, arg: &mut [u8]) -> i64 {
    // SAFETY: `arg` is the call's whole argument structure.
    unsafe {
        hypercall(
            nr::MEMORY_OP,
            u64::from(cmd),
            arg.as_mut_ptr() as u64,
            0,
            0,
            0,
        )
    }
}

fn create(flags: u32, max_vcpus: u32, domid: u16) -> Result<u16, i64> {
    let c = CreateDomain {
        flags,
        max_vcpus,
        max_evtchn_port: 1023,
        max_grant_frames: 32,
        max_maptrack_frames: 1024,
        handle0: 0x0eed_0000 | u32::from(domid),
        ..CreateDomain::default()
    };
    match domctl_op(domctl::cmd::CREATEDOMAIN, domid, &c.to_bytes()) {
        (0, op) => Ok(u16::from_le_bytes([
            op[offset::DOMAIN],
            op[offset::DOMAIN + 1],
        ])),
        (e, _) => Err(e),
    }
}

fn simple(cmd: u32, domid: u16) -> i64 {
    domctl_op(cmd, domid, &[]).0
}

/// `getdomaininfo` of the first domain with an id at least `domid`.
fn info(domid: u16) -> Result<DomainInfo, i64> {
    match domctl_op(domctl::cmd::GETDOMAININFO, domid, &[]) {
        (0, op) => Ok(DomainInfo::from_bytes(&op[offset::U..]).expect("whole union")),
        (e, _) => Err(e),
    }
}

/// The domain `domid` itself, if it exists.
fn info_of(domid: u16) -> Option<DomainInfo> {
    info(domid).ok().filter(|i| i.domain == domid)
}

fn max_mem(domid: u16, kib: u64) -> i64 {
    domctl_op(domctl::cmd::MAX_MEM, domid, &kib.to_le_bytes()).0
}

/// Maps `target`'s frames `idxs` at our `gpfns`; the call's result and each frame's.
fn map_foreign(target: u16, idxs: &[u64], gpfns: &[u64]) -> (i64, [i32; 2]) {
    let mut errs = [i32::MIN; 2];
    let rc = oxen_guest_rt::control::map_foreign(target, idxs, gpfns, &mut errs[..idxs.len()]);
    (rc, errs)
}

/// vCPU 0 at the program, as a PVH builder starts one: 32-bit flat protected mode.
fn boot_cpu() -> HwCpu {
    HwCpu::pvh(CODE_GFN << 12, 0)
}

fn debug_keys(keys: &[u8]) -> i64 {
    let k = DebugKeys {
        keys: keys.as_ptr() as u64,
        nr_keys: keys.len() as u32,
        pad: 0,
    };
    sysctl_op(sysctl::cmd::DEBUG_KEYS, &k.to_bytes()).0
}

fn physinfo() -> Result<PhysInfo, i64> {
    match sysctl_op(sysctl::cmd::PHYSINFO, &[]) {
        (0, op) => Ok(PhysInfo::from_bytes(&op[sysctl::offset::U..]).expect("whole union")),
        (e, _) => Err(e),
    }
}

/// A word of a mapped frame.
fn word(gpfn: u64, at: usize) -> *mut u32 {
    ((gpfn << 12) + at as u64) as *mut u32
}

struct Checks {
    failures: u32,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            self.failures += 1;
            println!("builder: FAIL {what}");
        }
    }
}

/// One child being built and run.
struct Child {
    id: u16,
    slot: u64,
    seed: u32,
}

impl Child {
    fn code_gpfn(&self) -> u64 {
        MAP_BASE_GFN + 2 * self.slot
    }
    fn data_gpfn(&self) -> u64 {
        self.code_gpfn() + 1
    }
}

#[derive(Default)]
struct Costs {
    create: u64,
    destroy: u64,
    n: u64,
}

/// Creates, fills and starts a child in `slot` (GO set at once unless `hold`).
fn build_child(
    c: &mut Checks,
    costs: &mut Costs,
    slot: u64,
    seed: u32,
    hold: bool,
) -> Option<Child> {
    let t = rdtsc();
    let id = match create(cdf::HVM | cdf::HAP, 1, 0) {
        Ok(id) => id,
        Err(e) => {
            c.check(false, "createdomain");
            println!("builder: createdomain: {e}");
            return None;
        }
    };
    costs.create += rdtsc() - t;
    let child = Child { id, slot, seed };
    c.check(max_mem(id, CHILD_FRAMES * 4) == 0, "max_mem");
    // Alternate the two ways of asking: one 16-frame extent, or 16 single frames.
    let done = if seed.is_multiple_of(2) {
        populate(id, &[0], 4)
    } else {
        let gfns: [u64; CHILD_FRAMES as usize] = core::array::from_fn(|i| i as u64);
        populate(id, &gfns, 0)
    };
    let want = if seed.is_multiple_of(2) {
        1
    } else {
        CHILD_FRAMES as i64
    };
    c.check(
        done == want,
        "populate_physmap gives every extent asked for",
    );
    let (rc, errs) = map_foreign(
        id,
        &[CODE_GFN, DATA_GFN],
        &[child.code_gpfn(), child.data_gpfn()],
    );
    c.check(
        rc == 0 && errs == [0, 0],
        "foreign map of the child's two frames",
    );
    if rc != 0 || errs != [0, 0] {
        println!("builder: map_foreign: {rc} {errs:?}");
        return Some(child);
    }
    let code = (child.code_gpfn() << 12) as *mut u8;
    for (i, b) in PROGRAM.iter().enumerate() {
        // SAFETY: the code frame is mapped RW at this address (identity-mapped GiB).
        unsafe { write_volatile(code.add(i), *b) };
    }
    // SAFETY: the data frame is mapped RW; its words are plain memory shared with the
    // child, which does not run yet.
    unsafe {
        write_volatile(word(child.data_gpfn(), SEED), seed);
        write_volatile(word(child.data_gpfn(), GO), u32::from(!hold));
    }
    c.check(
        set_context(id, &hvm_context(&boot_cpu(), hvm_save::FILE_MAGIC)) == 0,
        "sethvmcontext",
    );
    c.check(simple(domctl::cmd::UNPAUSEDOMAIN, id) == 0, "unpausedomain");
    Some(child)
}

/// Waits until `id` has shut down; its shutdown code.
fn wait_shutdown(id: u16) -> Option<u32> {
    for _ in 0..2_000_000 {
        let i = info_of(id)?;
        if let Some(code) = dominf::shutdown_code(i.flags) {
            return Some(code);
        }
        sched_yield();
    }
    None
}

/// Checks a finished child's answer, destroys it (it lingers while mapped), unmaps.
fn finish_child(c: &mut Checks, costs: &mut Costs, child: &Child) {
    let code = wait_shutdown(child.id);
    c.check(code == Some(0), "the child shuts down with reason poweroff");
    // SAFETY: the data frame is still mapped (the child is only shut down).
    let answer = unsafe { read_volatile(word(child.data_gpfn(), ANSWER)) };
    c.check(
        answer == answer_for(child.seed),
        "the child's answer is in its memory",
    );
    let t = rdtsc();
    c.check(
        simple(domctl::cmd::DESTROYDOMAIN, child.id) == 0,
        "destroydomain",
    );
    costs.destroy += rdtsc() - t;
    costs.n += 1;
    let dying = info_of(child.id);
    c.check(
        dying.is_some_and(|i| i.flags & dominf::DYING != 0),
        "a destroyed domain whose pages are mapped lingers, dying",
    );
    c.check(unmap(child.code_gpfn()) == 0, "remove_from_physmap (code)");
    c.check(info_of(child.id).is_some(), "still there with one map left");
    c.check(unmap(child.data_gpfn()) == 0, "remove_from_physmap (data)");
    c.check(info_of(child.id).is_none(), "gone once the last map went");
}

/// Pause and unpause a running child: its counter stops, then goes on.
fn pause_test(c: &mut Checks, child: &Child) {
    let spins = || {
        // SAFETY: the data frame is mapped while the child lives.
        unsafe { read_volatile(word(child.data_gpfn(), SPINS)) }
    };
    let mut started = false;
    for _ in 0..100_000 {
        if spins() > 1000 {
            started = true;
            break;
        }
        sched_yield();
    }
    c.check(started, "the held child runs");
    c.check(
        simple(domctl::cmd::PAUSEDOMAIN, child.id) == 0,
        "pausedomain",
    );
    c.check(
        simple(domctl::cmd::PAUSEDOMAIN, child.id) == 0,
        "pausedomain twice",
    );
    let flags = info_of(child.id).map_or(0, |i| i.flags);
    c.check(flags & dominf::PAUSED != 0, "getdomaininfo says paused");
    // Let it leave its pCPU, then its counter must stand still.
    for _ in 0..50 {
        sched_yield();
    }
    let a = spins();
    for _ in 0..500 {
        sched_yield();
    }
    let b = spins();
    c.check(a == b, "a paused domain does not run");
    c.check(
        simple(domctl::cmd::UNPAUSEDOMAIN, child.id) == 0,
        "unpause once",
    );
    for _ in 0..500 {
        sched_yield();
    }
    c.check(spins() == b, "still paused with one pause left");
    c.check(
        simple(domctl::cmd::UNPAUSEDOMAIN, child.id) == 0,
        "unpause twice",
    );
    c.check(
        simple(domctl::cmd::UNPAUSEDOMAIN, child.id) == -EINVAL,
        "unpausing a domain that is not paused is -EINVAL",
    );
    let mut moved = false;
    for _ in 0..100_000 {
        if spins() != b {
            moved = true;
            break;
        }
        sched_yield();
    }
    c.check(moved, "it runs again once unpaused");
    println!("builder: pause: the child stood still at {b} while paused, then ran on");
    // SAFETY: as above.
    unsafe { write_volatile(word(child.data_gpfn(), GO), 1) };
}

/// Bad requests of a privileged caller get Xen's errors.
fn errors(c: &mut Checks, me: u16) {
    c.check(
        create(cdf::HAP, 1, 0) == Err(-EINVAL),
        "createdomain without CDF_hvm is -EINVAL",
    );
    c.check(
        create(cdf::HVM | cdf::HAP, 0, 0) == Err(-EINVAL),
        "createdomain with 0 vCPUs is -EINVAL",
    );
    c.check(
        simple(domctl::cmd::DESTROYDOMAIN, me) == -EINVAL,
        "destroying itself is -EINVAL",
    );
    c.check(
        simple(domctl::cmd::DESTROYDOMAIN, 0x7ff5) == -ESRCH,
        "destroying a reserved id is -ESRCH",
    );
    c.check(
        simple(domctl::cmd::PAUSEDOMAIN, 4321) == -ESRCH,
        "pausing a missing domain is -ESRCH",
    );
    c.check(
        info(0x7fef) == Err(-ESRCH),
        "getdomaininfo past the last domain is -ESRCH",
    );
    let (rc, _) = {
        let mut op = [0u8; domctl::SIZE];
        op[offset::CMD..][..4].copy_from_slice(&domctl::cmd::GETDOMAININFO.to_le_bytes());
        op[offset::INTERFACE_VERSION..][..4].copy_from_slice(&0x14u32.to_le_bytes());
        // SAFETY: a whole xen_domctl.
        (
            unsafe { hypercall(nr::DOMCTL, op.as_mut_ptr() as u64, 0, 0, 0, 0) },
            op,
        )
    };
    c.check(rc == -EACCES, "a wrong domctl interface version is -EACCES");
    // An asked-for id, then the calls that must fail on it.
    let Ok(id) = create(cdf::HVM | cdf::HAP, 2, 500) else {
        c.check(false, "createdomain with domid 500");
        return;
    };
    c.check(id == 500, "createdomain takes the id asked for");
    c.check(
        create(cdf::HVM | cdf::HAP, 1, 500) == Err(-EEXIST),
        "createdomain with a taken id is -EEXIST",
    );
    let i = info_of(500);
    c.check(
        i.is_some_and(|i| i.flags & dominf::PAUSED != 0 && i.max_vcpu_id == 1 && i.tot_pages == 0),
        "a new domain is paused, with its vCPUs and no memory",
    );
    c.check(
        populate(500, &[0], 0) == 0,
        "no extent beyond max_mem (0 done)",
    );
    c.check(max_mem(500, 16) == 0, "max_mem 16 KiB (4 frames)");
    c.check(
        populate(500, &[8], 4) == -EINVAL,
        "an extent not aligned to its order is -EINVAL",
    );
    c.check(
        populate(500, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0) == 4,
        "populate stops at max_mem (4 of 10)",
    );
    c.check(
        max_mem(500, 8) == -EINVAL,
        "max_mem below what it has is -EINVAL",
    );
    let (rc, errs) = map_foreign(500, &[3, 9], &[MAP_BASE_GFN + 100, MAP_BASE_GFN + 101]);
    c.check(
        rc == 0 && errs[0] == 0 && errs[1] == -(EINVAL as i32),
        "a foreign map of a frame it lacks fails alone",
    );
    let (rc, _) = map_foreign(me, &[0], &[MAP_BASE_GFN + 102]);
    c.check(rc == -EINVAL, "a foreign map of itself is -EINVAL");
    c.check(
        unmap(MAP_BASE_GFN + 103) == -EINVAL,
        "removing nothing is -EINVAL",
    );
    c.check(
        set_context(500, &hvm_context(&boot_cpu(), 0x1234)) == -EINVAL,
        "a context with a bad magic is -EINVAL",
    );
    let mut wide = boot_cpu();
    wide.rip = 1 << 40;
    c.check(
        set_context(500, &hvm_context(&wide, hvm_save::FILE_MAGIC)) == -EINVAL,
        "a 64-bit RIP in 32-bit mode is -EINVAL",
    );
    c.check(
        set_context(500, &[0u8; 4]) == -EINVAL,
        "a short context is -EINVAL",
    );
    // Its vCPUs, as `xl vcpu-list` and `xl vcpu-pin` see them.
    let v = vcpu_info(500, 1);
    c.check(
        v.is_ok_and(|v| v.online == 0 && v.cpu_time == 0),
        "getvcpuinfo: vCPU 1 is down and never ran",
    );
    c.check(
        vcpu_info(500, 2).is_err_and(|e| e == -EINVAL),
        "getvcpuinfo of a vCPU it lacks is -EINVAL",
    );
    c.check(
        affinity(domctl::cmd::SETVCPUAFFINITY, 500, 1, 0b10) == Ok(0b10),
        "setvcpuaffinity to pCPU 1",
    );
    c.check(
        affinity(domctl::cmd::GETVCPUAFFINITY, 500, 1, 0) == Ok(0b10),
        "getvcpuaffinity reads it back",
    );
    c.check(
        affinity(domctl::cmd::SETVCPUAFFINITY, 500, 1, 0) == Err(-EINVAL),
        "an empty affinity is -EINVAL",
    );
    c.check(
        domctl_op(domctl::cmd::SETTIMEOFFSET, 500, &3600i64.to_le_bytes()).0 == 0,
        "settimeoffset",
    );
    c.check(
        simple(domctl::cmd::DESTROYDOMAIN, 500) == 0,
        "destroying domain 500 (never run, one page mapped)",
    );
    c.check(info_of(500).is_some(), "it lingers while mapped");
    c.check(unmap(MAP_BASE_GFN + 100) == 0, "unmapping its page");
    c.check(info_of(500).is_none(), "then it is gone");
}

/// `XENMEM_add_to_physmap` of `space` frame `idx` at `domid`'s `gpfn`.
fn add_to_physmap(domid: u16, space: u32, idx: u64, gpfn: u64) -> i64 {
    let mut a = AddToPhysmap {
        domid,
        size: 0,
        space,
        idx,
        gpfn,
    }
    .to_bytes();
    memory_op(mem::ADD_TO_PHYSMAP, &mut a)
}

/// `XENMEM_remove_from_physmap` of `domid`'s `gpfn`.
fn remove_from(domid: u16, gpfn: u64) -> i64 {
    let mut r = RemoveFromPhysmap {
        domid,
        gpfn,
        ..RemoveFromPhysmap::default()
    }
    .to_bytes();
    memory_op(mem::REMOVE_FROM_PHYSMAP, &mut r)
}

/// `gethvmcontext` into `buf` (empty: the size only); the result and the size it says.
fn get_context(domid: u16, buf: &mut [u8]) -> (i64, u32) {
    let b = domctl::HvmContextBuf {
        size: buf.len() as u32,
        pad: 0,
        buffer: if buf.is_empty() {
            0
        } else {
            buf.as_mut_ptr() as u64
        },
    };
    let (rc, op) = domctl_op(domctl::cmd::GETHVMCONTEXT, domid, &b.to_bytes());
    let out = domctl::HvmContextBuf::from_bytes(&op[offset::U..]).expect("whole union");
    (rc, out.size)
}

/// Where the toolstack test puts things: the child's frames for its console and store
/// pages, the hole where its grant frame 0 is put for seeding, and the builder's own
/// frames for the foreign and grant maps (below the children's slots).
const CHILD_CONSOLE_GFN: u64 = 3;
const CHILD_STORE_GFN: u64 = 4;
const SCRATCH_GFN: u64 = CHILD_FRAMES + 8;
const TOOL_GPFN: u64 = MAP_BASE_GFN - 8;
const GRANT_GPFN: u64 = MAP_BASE_GFN - 4;

/// What a toolstack does for a new domain beyond its memory and registers, the Xen
/// way: its XenStore page and port in its HVM parameters, a port allocated in it for
/// the back end (`EVTCHNOP_alloc_unbound` on its behalf), the reserved grant entries
/// 0 (console) and 1 (XenStore) seeded for the back end through its grant frame put
/// in its physical map, mapped here and taken away again; then the back end maps them
/// by grant and finds the pages the builder filled. And `gethvmcontext` gives back
/// the registers `sethvmcontext` set.
fn toolstack(c: &mut Checks, me: u16) {
    use oxen_guest_rt::abi::grant_table::{gntst, gtf};
    use oxen_guest_rt::abi::hvm::param;
    use oxen_guest_rt::{grant, xen};
    let Ok(id) = create(cdf::HVM | cdf::HAP, 1, 0) else {
        c.check(false, "toolstack: createdomain");
        return;
    };
    c.check(max_mem(id, CHILD_FRAMES * 4) == 0, "toolstack: max_mem");
    c.check(populate(id, &[0], 4) == 1, "toolstack: populate_physmap");

    // HVM parameters and the store port.
    let port = xen::alloc_unbound_in(id, me);
    c.check(port.is_ok_and(|p| p > 0), "alloc_unbound in another domain");
    let port = port.unwrap_or(0);
    c.check(
        xen::bind_interdomain(id, port).is_ok_and(|p| xen::close(p).is_ok()),
        "binding to the port allocated on the new domain's behalf",
    );
    let port = xen::alloc_unbound_in(id, me).unwrap_or(0);
    let set = |i, v| xen::set_param_of(id, i, v);
    c.check(
        set(param::STORE_PFN, CHILD_STORE_GFN).is_ok()
            && set(param::STORE_EVTCHN, u64::from(port)).is_ok(),
        "set_param STORE_PFN and STORE_EVTCHN on another domain",
    );
    c.check(
        xen::get_param_of(id, param::STORE_PFN) == Ok(CHILD_STORE_GFN)
            && xen::get_param_of(id, param::STORE_EVTCHN) == Ok(u64::from(port)),
        "get_param reads them back",
    );
    c.check(
        set(param::NR, 1) == Err(-EINVAL),
        "set_param of a parameter past the last is -EINVAL",
    );
    c.check(
        set(param::CALLBACK_IRQ, 5) == Err(-EINVAL),
        "set_param of a callback of an unknown type is -EINVAL",
    );
    c.check(
        xen::set_param_of(0x7000, param::STORE_PFN, 1) == Err(-ESRCH),
        "set_param on a missing domain is -ESRCH",
    );
    c.check(
        xen::set_param(param::STORE_PFN, 1) == Err(-EPERM),
        "a domain cannot move its own XenStore page (-EPERM)",
    );
    let own = xen::get_param(param::STORE_EVTCHN).unwrap_or(u64::MAX);
    c.check(
        xen::set_param(param::STORE_EVTCHN, own).is_ok(),
        "but sets its own XenStore port",
    );

    // The pages the grants will name, filled through foreign maps.
    let marks = [0xc0c0_0000 | u32::from(id), 0x5707_0000 | u32::from(id)];
    let (rc, errs) = map_foreign(
        id,
        &[CHILD_CONSOLE_GFN, CHILD_STORE_GFN],
        &[TOOL_GPFN, TOOL_GPFN + 1],
    );
    c.check(
        rc == 0 && errs == [0, 0],
        "toolstack: foreign map of two pages",
    );
    for (k, m) in marks.iter().enumerate() {
        // SAFETY: the frame is mapped RW at this address (identity-mapped GiB).
        unsafe { write_volatile(word(TOOL_GPFN + k as u64, 0), *m) };
    }
    c.check(
        unmap(TOOL_GPFN) == 0 && unmap(TOOL_GPFN + 1) == 0,
        "toolstack: unmapping them",
    );

    // Seeding: its grant frame 0 in its physical map, mapped here, written, removed.
    c.check(
        add_to_physmap(id, mem::MAPSPACE_GRANT_TABLE, 0, SCRATCH_GFN) == 0,
        "add_to_physmap of another domain's grant frame",
    );
    let (rc, errs) = map_foreign(id, &[SCRATCH_GFN], &[TOOL_GPFN]);
    c.check(rc == 0 && errs[0] == 0, "a foreign map of its grant frame");
    if rc == 0 && errs[0] == 0 {
        for (gref, gfn) in [(0, CHILD_CONSOLE_GFN), (1, CHILD_STORE_GFN)] {
            let at = 8 * gref;
            // SAFETY: the grant frame is mapped RW here; the domain does not run yet.
            unsafe {
                write_volatile(word(TOOL_GPFN, at + 4), gfn as u32);
                write_volatile(
                    word(TOOL_GPFN, at),
                    u32::from(gtf::PERMIT_ACCESS) | u32::from(me) << 16,
                );
            }
        }
        c.check(unmap(TOOL_GPFN) == 0, "unmapping the grant frame");
    }
    c.check(
        remove_from(id, SCRATCH_GFN) == 0,
        "remove_from_physmap of the grant frame in the other domain",
    );
    c.check(
        remove_from(id, SCRATCH_GFN) == -EINVAL,
        "removing it twice is -EINVAL",
    );
    c.check(
        add_to_physmap(id, mem::MAPSPACE_GRANT_TABLE, 0, 1 << 40) == -EINVAL,
        "add_to_physmap beyond the domain's physical space is -EINVAL",
    );

    // The back end maps the seeded entries.
    for (gref, m) in [(0, marks[0]), (1, marks[1])] {
        let gpa = GRANT_GPFN << 12;
        match grant::map(id, gref, gpa, true) {
            Ok(h) => {
                // SAFETY: the granted frame is mapped read-only at `gpa`.
                let v = unsafe { read_volatile(word(GRANT_GPFN, 0)) };
                c.check(v == m, "a seeded grant maps the page it names");
                c.check(grant::unmap(gpa, h).is_ok(), "unmapping the seeded grant");
            }
            Err(e) => {
                println!("builder: map of seeded grant {gref}: {e:?}");
                c.check(false, "a seeded grant maps");
            }
        }
    }
    c.check(
        grant::map(id, 2, GRANT_GPFN << 12, true).is_err_and(|e| e.status() != gntst::OKAY),
        "an unseeded entry does not map",
    );

    // gethvmcontext reads back what sethvmcontext set.
    let (rc, size) = get_context(id, &mut []);
    c.check(
        rc == 0 && size == 1080,
        "gethvmcontext with no buffer gives the size",
    );
    c.check(
        set_context(id, &hvm_context(&boot_cpu(), hvm_save::FILE_MAGIC)) == 0,
        "toolstack: sethvmcontext",
    );
    let mut buf = [0u8; 1080];
    c.check(
        get_context(id, &mut buf[..1000]).0 == -ENOSPC,
        "gethvmcontext into a short buffer is -ENOSPC",
    );
    let (rc, size) = get_context(id, &mut buf);
    let at = Descriptor::SIZE + Header::SIZE;
    let header = Header::from_bytes(&buf[Descriptor::SIZE..]);
    let desc = Descriptor::from_bytes(&buf[at..]);
    let cpu = HwCpu::from_bytes(&buf[at + Descriptor::SIZE..]).unwrap_or_default();
    let want = boot_cpu();
    c.check(
        rc == 0
            && size == 1080
            && header.is_some_and(|h| h.magic == hvm_save::FILE_MAGIC)
            && desc.is_some_and(|d| d.typecode == hvm_save::code::CPU && d.instance == 0),
        "gethvmcontext: a header, then vCPU 0's record",
    );
    let cs = hvm_save::seg::CS;
    c.check(
        (cpu.rip, cpu.cr0, cpu.rflags, cpu.segs[cs].attr)
            == (want.rip, want.cr0, want.rflags, want.segs[cs].attr),
        "gethvmcontext gives back the registers set",
    );
    println!(
        "builder: toolstack: domain {id}: store gfn {CHILD_STORE_GFN} port {port}, grants 0 and 1 seeded, context rip {:#x}",
        cpu.rip
    );
    c.check(
        set_context(id, &buf) == 0,
        "what gethvmcontext gave sets again",
    );
    c.check(
        get_context(me, &mut []).0 == -EINVAL,
        "gethvmcontext of itself is -EINVAL",
    );
    c.check(
        simple(domctl::cmd::DESTROYDOMAIN, id) == 0 && info_of(id).is_none(),
        "toolstack: destroyed with nothing mapped, it is gone at once",
    );
}

/// The machine, as `xl info` and `xl dmesg` see it.
fn machine(c: &mut Checks) {
    let p = physinfo();
    c.check(
        p.is_ok_and(|p| p.nr_cpus >= 1 && p.free_pages > 0 && p.free_pages < p.total_pages),
        "physinfo",
    );
    let mut idle = [0u64; 8];
    let g = sysctl::GetCpuInfo {
        max_cpus: 8,
        info: idle.as_mut_ptr() as u64,
        ..sysctl::GetCpuInfo::default()
    };
    let (rc, op) = sysctl_op(sysctl::cmd::GETCPUINFO, &g.to_bytes());
    let n = sysctl::GetCpuInfo::from_bytes(&op[sysctl::offset::U..]).map_or(0, |g| g.nr_cpus);
    c.check(
        rc == 0 && p.is_ok_and(|p| n == p.nr_cpus),
        "getcpuinfo: one idle time per pCPU",
    );
    let (rc, op) = sysctl_op(sysctl::cmd::SCHED_ID, &[]);
    c.check(
        rc == 0 && op[sysctl::offset::U] == domctl::SCHEDULER_CREDIT as u8,
        "sched_id is credit",
    );
    let mut log = [0u8; 4096];
    let read = |buf: &mut [u8], index: u32, incremental: u8, clear: u8| {
        let r = sysctl::ReadConsole {
            clear,
            incremental,
            index,
            buffer: buf.as_mut_ptr() as u64,
            count: buf.len() as u32,
            ..sysctl::ReadConsole::default()
        };
        let (rc, op) = sysctl_op(sysctl::cmd::READCONSOLE, &r.to_bytes());
        let r = sysctl::ReadConsole::from_bytes(&op[sysctl::offset::U..]).expect("whole union");
        (rc, r.count as usize, r.index)
    };
    let (rc, n, _) = read(&mut log, 0, 0, 0);
    let has = |buf: &[u8], what: &[u8]| buf.windows(what.len()).any(|w| w == what);
    c.check(
        rc == 0 && n == log.len() && has(&log, b"oxen"),
        "readconsole reads the hypervisor's log",
    );
    // Clear, then log one line: an incremental read from the start has only what came
    // after the clear.
    read(&mut [0u8; 1], u32::MAX, 1, 1);
    debug_keys(b"h");
    let (rc, n, _) = read(&mut log, 0, 1, 0);
    c.check(
        rc == 0 && n > 0 && has(&log[..n], b"debug-key h") && !has(&log[..n], b"oxen ready"),
        "readconsole after a clear has only the new lines",
    );
    println!("builder: readconsole: {n} bytes logged since the clear");
}

/// The whole list, as `xl list` reads it.
fn list_ids(out: &mut [u16; 16]) -> usize {
    let mut buf = [0u8; 16 * DomainInfo::SIZE];
    let l = GetDomainInfoList {
        first_domain: 0,
        max_domains: 16,
        buffer: buf.as_mut_ptr() as u64,
        ..GetDomainInfoList::default()
    };
    let (rc, op) = sysctl_op(sysctl::cmd::GETDOMAININFOLIST, &l.to_bytes());
    if rc != 0 {
        return 0;
    }
    let n = GetDomainInfoList::from_bytes(&op[sysctl::offset::U..])
        .map_or(0, |l| l.num_domains as usize);
    for (i, o) in out.iter_mut().enumerate().take(n.min(16)) {
        *o = DomainInfo::from_bytes(&buf[i * DomainInfo::SIZE..]).map_or(0, |d| d.domain);
    }
    n
}

fn build(info: &StartInfo, me: u16, c: &mut Checks) {
    let arg = |k: &str, default: u64| {
        info.cmdline_arg(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let cycles = arg("cycles", 100);
    let batch = arg("batch", 3).clamp(1, 8);
    errors(c, me);
    machine(c);
    let mut costs = Costs::default();
    let mut seed = 1u32;
    let mut run_batch =
        |c: &mut Checks, costs: &mut Costs, n: u64, hold_first: bool| -> (u16, u16) {
            let mut children: [Option<Child>; 8] = Default::default();
            let (mut lo, mut hi) = (u16::MAX, 0);
            for (k, slot) in children.iter_mut().enumerate().take(n as usize) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *slot = build_child(c, costs, k as u64, seed, hold_first && k == 0);
                if let Some(ch) = slot {
                    lo = lo.min(ch.id);
                    hi = hi.max(ch.id);
                }
            }
            if hold_first && let Some(ch) = &children[0] {
                pause_test(c, ch);
            }
            for ch in children.iter().flatten() {
                finish_child(c, costs, ch);
            }
            (lo, hi)
        };
    // Warm-up: the hypervisor's tables reach the size a batch needs.
    run_batch(c, &mut costs, batch, true);
    let mut ids = [0u16; 16];
    let n = list_ids(&mut ids);
    println!(
        "builder: getdomaininfolist: {n} domain(s): {:?}",
        &ids[..n.min(16)]
    );
    c.check(
        n >= 1 && ids[..n].contains(&me),
        "getdomaininfolist lists the builder",
    );
    let before = physinfo().map(|p| p.free_pages);
    debug_keys(b"m");
    toolstack(c, me);
    let t0 = oxen_guest_rt::time::now_ns();
    let mut done = 0;
    let (mut lo, mut hi) = (u16::MAX, 0u16);
    while done < cycles {
        let n = batch.min(cycles - done);
        let (a, b) = run_batch(c, &mut costs, n, false);
        lo = lo.min(a);
        hi = hi.max(b);
        done += n;
        if c.failures > 20 {
            println!("builder: too many failures; stopping after {done} domains");
            break;
        }
    }
    let ns = oxen_guest_rt::time::now_ns() - t0;
    debug_keys(b"m");
    let after = physinfo().map(|p| p.free_pages);
    println!(
        "builder: {done} domains created, run and destroyed, {batch} at a time, ids {lo}..={hi}; {} per second",
        done * 1_000_000_000 / ns.max(1)
    );
    println!(
        "builder: createdomain {} ticks, destroydomain {} ticks (means over {})",
        costs.create / costs.n.max(1),
        costs.destroy / costs.n.max(1),
        costs.n
    );
    println!("builder: free pages before {before:?}, after {after:?}");
    c.check(before.is_ok() && before == after, "every frame came back");
    c.check(hi < me.max(1) + batch as u16 + 2, "ids are reused");
    let many = arg("many", 0);
    if many > 0 {
        many_at_once(c, many as u16);
    }
}

/// `n` domains alive at once (more than the boot heap holds the state of), then none.
fn many_at_once(c: &mut Checks, n: u16) {
    let mut ids = [0u16; 1024];
    let n = usize::from(n).min(ids.len());
    let mut made = 0;
    let (mut first, mut last) = (0, 0);
    for (k, slot) in ids.iter_mut().take(n).enumerate() {
        let t = rdtsc();
        let r = create(cdf::HVM | cdf::HAP, 1, 0);
        let dt = rdtsc() - t;
        if k < 10 {
            first += dt;
        }
        if k + 10 >= n {
            last += dt;
        }
        match r {
            Ok(id) => {
                *slot = id;
                made += 1;
            }
            Err(e) => {
                println!("builder: many: createdomain {} failed: {e}", made + 1);
                break;
            }
        }
    }
    c.check(made == n, "every domain of the many was created");
    let alive = ids[..made]
        .iter()
        .filter(|&&id| info_of(id).is_some())
        .count();
    c.check(alive == made, "getdomaininfo finds each of them");
    debug_keys(b"m");
    for &id in &ids[..made] {
        c.check(
            simple(domctl::cmd::DESTROYDOMAIN, id) == 0,
            "destroying one of the many",
        );
    }
    let left = ids[..made]
        .iter()
        .filter(|&&id| info_of(id).is_some())
        .count();
    c.check(left == 0, "none of the many is left");
    println!("builder: many: {made} domains alive at once, then {left}");
    println!(
        "builder: many: createdomain {} ticks for the first 10, {} for the last 10 (means)",
        first / 10,
        last / 10
    );
}

fn denied(c: &mut Checks) {
    let want = -EPERM;
    c.check(
        create(cdf::HVM | cdf::HAP, 1, 0) == Err(want),
        "createdomain",
    );
    for cmd in [
        domctl::cmd::DESTROYDOMAIN,
        domctl::cmd::PAUSEDOMAIN,
        domctl::cmd::UNPAUSEDOMAIN,
        domctl::cmd::GETDOMAININFO,
        domctl::cmd::MAX_MEM,
        domctl::cmd::SETHVMCONTEXT,
        domctl::cmd::GETHVMCONTEXT,
        domctl::cmd::SETDOMAINHANDLE,
    ] {
        c.check(simple(cmd, 0) == want, "a domctl on the control domain");
    }
    for cmd in [
        sysctl::cmd::PHYSINFO,
        sysctl::cmd::GETDOMAININFOLIST,
        sysctl::cmd::DEBUG_KEYS,
        sysctl::cmd::SCHED_ID,
    ] {
        c.check(sysctl_op(cmd, &[]).0 == want, "a sysctl");
    }
    c.check(
        populate(0, &[0x100], 0) == want,
        "populate_physmap on another domain",
    );
    let (rc, _) = map_foreign(0, &[0], &[MAP_BASE_GFN]);
    c.check(rc == want, "a foreign map");
    c.check(
        add_to_physmap(0, mem::MAPSPACE_GRANT_TABLE, 0, MAP_BASE_GFN) == want,
        "add_to_physmap on another domain",
    );
    c.check(
        remove_from(0, MAP_BASE_GFN) == want,
        "remove_from_physmap on another domain",
    );
    use oxen_guest_rt::abi::hvm::param;
    use oxen_guest_rt::xen;
    c.check(
        xen::set_param_of(0, param::STORE_PFN, 1) == Err(want)
            && xen::set_param_of(0, param::CALLBACK_IRQ, 0) == Err(want),
        "set_param on another domain",
    );
    c.check(
        xen::get_param_of(0, param::STORE_PFN) == Err(want),
        "get_param on another domain",
    );
    c.check(
        xen::alloc_unbound_in(0, 0) == Err(want),
        "alloc_unbound in another domain",
    );
    println!("builder: denied: every control call is -EPERM");
}

fn main(info: &StartInfo) {
    let mut c = Checks { failures: 0 };
    // Its own id (a domain has no call for that): `me=`.
    let me = info
        .cmdline_arg("me")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    match info.cmdline_arg("mode").unwrap_or("build") {
        "denied" => denied(&mut c),
        _ => build(info, me, &mut c),
    }
    if c.failures == 0 {
        println!("builder: PASS");
    } else {
        panic!("builder: {} check(s) failed", c.failures);
    }
}
