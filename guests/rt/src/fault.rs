//! Exceptions and interrupts: the IDT, the crash report, the expected-fault escape hatch,
//! a guest's own exception hook, and the entry stub of the event-channel upcall vector.
//!
//! The IDT has all 256 gates. Vectors 0..32 go to the exception stubs in `boot.rs`; the
//! others are not present (an interrupt on one raises #NP, reported like any exception)
//! until [`route_vector`] points one at its stub in `boot.rs` too, or [`set_gate`]
//! installs a handler, as `events::init` does for the upcall vector with
//! [`upcall_entry`].

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::boot::CODE_SELECTOR;

/// Per vCPU (by the stack it runs on, see `vcpu::on_stack`): where the exception handler
/// resumes when an expected fault happens (0: none expected), and the stack pointer to
/// resume with. One slot for all vCPUs let a fault on one vCPU resume on another's
/// stack when two expected faults overlapped.
#[repr(C)]
struct Recover {
    rip: AtomicU64,
    rsp: AtomicU64,
}
static RECOVER: [Recover; crate::vcpu::MAX_SECONDARY + 1] = [const {
    Recover {
        rip: AtomicU64::new(0),
        rsp: AtomicU64::new(0),
    }
}; crate::vcpu::MAX_SECONDARY + 1];

/// This vCPU's recovery slot.
fn recover_slot() -> &'static Recover {
    let here = 0u8;
    &RECOVER[crate::vcpu::on_stack(&raw const here as u64)]
}

/// Unexpected exceptions being reported (a fault while reporting one halts silently).
static DEPTH: AtomicU32 = AtomicU32::new(0);

/// The guest's own handler ([`set_exception_hook`]) as a function address (0: none).
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// A guest's own handler for the vectors that reach the runtime's stubs: it may change
/// the frame (registers, RIP) and returns whether it handled the event; `false` lets
/// the runtime report it and crash the domain.
pub type ExceptionHook = fn(&mut ExceptionFrame) -> bool;

/// Installs `hook`, consulted for every exception (and every vector routed with
/// [`route_vector`]) before the runtime's report, after [`expect_fault`]'s escape.
pub fn set_exception_hook(hook: ExceptionHook) {
    HOOK.store(hook as usize, Ordering::SeqCst);
}

fn hook() -> Option<ExceptionHook> {
    let f = HOOK.load(Ordering::SeqCst);
    // SAFETY: a non-zero value was stored by `set_exception_hook` from an
    // `ExceptionHook`, so it is the address of a function of that type.
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, ExceptionHook>(f) })
}

/// What the stubs push, lowest address first.
#[repr(C)]
pub struct ExceptionFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const NAMES: [&str; 32] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
    "#GP", "#PF", "RSV", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "RSV", "RSV", "RSV", "RSV",
    "RSV", "RSV", "#HV", "#VC", "#SX", "RSV",
];

/// Called by the common exception stub with the saved frame.
pub(crate) extern "C" fn rt_exception(frame: &mut ExceptionFrame) {
    let slot = recover_slot();
    let recover = slot.rip.swap(0, Ordering::SeqCst);
    if recover != 0 {
        frame.rip = recover;
        frame.rsp = slot.rsp.load(Ordering::SeqCst);
        frame.rax = 0x100 | frame.vector;
        return;
    }
    if hook().is_some_and(|h| h(frame)) {
        return;
    }
    if DEPTH.fetch_add(1, Ordering::SeqCst) > 0 {
        // Faulted while reporting a fault (e.g. the console or the shutdown hypercall
        // itself faults): nothing more can be said safely.
        crate::hypercall::halt_forever();
    }
    let cr2 = crate::arch::read_cr2();
    let vector = frame.vector as usize;
    crate::println!(
        "guest: exception {} ({}) at rip={:#x} err={:#x} cr2={:#x} rsp={:#x}",
        vector,
        NAMES.get(vector).copied().unwrap_or("?"),
        frame.rip,
        frame.error_code,
        cr2,
        frame.rsp
    );
    crate::shutdown(oxen_abi::sched_op::SHUTDOWN_CRASH);
}

/// Gates in the IDT (every vector).
const GATES: usize = 256;

#[repr(C, align(16))]
struct Idt([u64; 2 * GATES]);

static mut IDT: Idt = Idt([0; 2 * GATES]);

/// The two words of a present, DPL 0, 64-bit interrupt gate to `handler`.
fn gate(handler: u64) -> (u64, u64) {
    let low = (handler & 0xffff)
        | (u64::from(CODE_SELECTOR) << 16)
        | (0x8e << 40) // present, DPL 0, 64-bit interrupt gate
        | ((handler >> 16) & 0xffff) << 48;
    (low, handler >> 32)
}

unsafe extern "C" {
    static rt_isr_stubs: u8;
    fn rt_try_call(f: extern "C" fn(*mut u8), ctx: *mut u8, slot: *const Recover) -> u64;
}

/// Fills and loads the IDT (exception vectors 0..32; the rest not present).
pub(crate) fn init_idt() {
    let base = &raw const rt_isr_stubs as u64;
    for v in 0..32u8 {
        set_gate(v, base + 16 * u64::from(v));
    }
    load_idt();
}

/// Points gate `vector` (32 and up: an interrupt, e.g. for `INT n`) at the runtime's
/// stub for it, so that it reaches the exception hook ([`set_exception_hook`]) with the
/// same frame as an exception (error code 0), or else the crash report.
pub fn route_vector(vector: u8) {
    let base = &raw const rt_isr_stubs as u64;
    set_gate(vector, base + 16 * u64::from(vector));
}

/// Points gate `vector` at `handler` (the address of an interrupt stub that ends with
/// IRETQ). The IDT is shared by every vCPU and already loaded: install a gate before
/// anything can raise its vector (the exception gates at boot, the upcall gate before
/// the callback is registered with the hypervisor).
pub fn set_gate(vector: u8, handler: u64) {
    let (low, high) = gate(handler);
    let idt = (&raw mut IDT).cast::<u64>();
    let i = 2 * usize::from(vector);
    // SAFETY: `i + 1 < 2 * GATES`, so both words are inside the static IDT. The writes
    // are volatile because the CPU reads the table behind the compiler's back; the gate
    // is not in use while it changes (see above).
    unsafe {
        idt.add(i + 1).write_volatile(high);
        idt.add(i).write_volatile(low);
    }
}

/// Loads the IDT on this vCPU; secondary vCPUs share vCPU 0's.
pub(crate) fn load_idt() {
    let idt = &raw mut IDT;
    let mut ptr = [0u16; 5];
    ptr[0] = (GATES * 16 - 1) as u16;
    let addr = idt as u64;
    ptr[1] = addr as u16;
    ptr[2] = (addr >> 16) as u16;
    ptr[3] = (addr >> 32) as u16;
    ptr[4] = (addr >> 48) as u16;
    // SAFETY: the pointer describes the static IDT just filled with valid gates.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) ptr.as_ptr(), options(readonly, nostack)) };
}

extern "C" fn trampoline<F: FnOnce()>(ctx: *mut u8) {
    // SAFETY: `ctx` is the `Option<F>` owned by `expect_fault`'s frame, still live.
    let f = unsafe { &mut *ctx.cast::<Option<F>>() };
    if let Some(f) = f.take() {
        f();
    }
}

/// Runs `f`; if it raises a CPU exception, abandons it and returns `Some(vector)`
/// instead of crashing the guest. Returns `None` if `f` completed.
///
/// An abandoned closure does not run its remaining code or destructors; keep such
/// closures to a single access (e.g. one RDMSR). Not reentrant.
pub fn expect_fault<F: FnOnce()>(f: F) -> Option<u8> {
    let mut slot = Some(f);
    // SAFETY: `rt_try_call` saves the callee-saved registers and the stack pointer, calls
    // the trampoline, and on an exception the handler resumes at its landing pad with
    // that stack, so control returns here either way. `slot` outlives the call.
    let r = unsafe { rt_try_call(trampoline::<F>, (&raw mut slot).cast(), recover_slot()) };
    if r == 0 { None } else { Some((r & 0xff) as u8) }
}

unsafe extern "C" {
    fn rt_upcall_entry();
}

/// Address of the entry stub for the event-channel upcall vector: it saves the
/// caller-saved registers, calls [`crate::events::rt_upcall`] and returns with IRETQ.
pub(crate) fn upcall_entry() -> u64 {
    rt_upcall_entry as *const () as u64
}

// The upcall entry. An external interrupt pushes no error code; the CPU aligns RSP to 16
// bytes before pushing its 5-word frame, so after 9 more pushes RSP is 16-byte aligned
// again at the call, as the SysV ABI wants. The target has no red zone and no SSE, so
// the general caller-saved registers are all the Rust handler can clobber; the
// callee-saved ones it preserves itself. IRETQ restores RFLAGS (IF, DF) as they were.
core::arch::global_asm!(
    ".pushsection .text.rt_upcall, \"ax\"",
    ".balign 16",
    ".global rt_upcall_entry",
    "rt_upcall_entry:",
    "push rax",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "cld",
    "call {handler}",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "iretq",
    ".popsection",
    handler = sym crate::events::rt_upcall,
);
