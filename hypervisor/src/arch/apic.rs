//! The local APIC (x2APIC when the CPU has it, xAPIC otherwise), the I/O APICs, and the
//! legacy PICs (remapped and masked).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{cpu, idt, paging};

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

// Register offsets in the xAPIC page; the x2APIC MSR is 0x800 + offset / 16.
const ID: u32 = 0x20;
const TPR: u32 = 0x80;
const EOI: u32 = 0xb0;
const SVR: u32 = 0xf0;
const ESR: u32 = 0x280;
const ICR_LOW: u32 = 0x300;
const ICR_HIGH: u32 = 0x310;
const LVT_TIMER: u32 = 0x320;
const LVT_ERROR: u32 = 0x370;
const TIMER_INITIAL: u32 = 0x380;
const TIMER_CURRENT: u32 = 0x390;
const TIMER_DIVIDE: u32 = 0x3e0;

const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;
const ICR_NMI: u32 = 0b100 << 8;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_ALL_EXCLUDING_SELF: u32 = 0b11 << 18;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;

static X2APIC: AtomicBool = AtomicBool::new(false);
/// Set once the boot CPU's local APIC is enabled (IPIs can be sent).
static READY: AtomicBool = AtomicBool::new(false);
/// Virtual address of the xAPIC register page (xAPIC mode only).
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0);

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is enabled on this CPU, so its register MSRs exist.
        unsafe { cpu::rdmsr(0x800 + reg / 16) as u32 }
    } else {
        let addr = XAPIC_BASE.load(Ordering::Relaxed) + u64::from(reg);
        // SAFETY: XAPIC_BASE maps the APIC register page uncached (see `init_bsp`);
        // `reg` is one of the register offsets above.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
}

fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: as in `read`; writes to these registers are how the APIC is driven.
        unsafe { cpu::wrmsr(0x800 + reg / 16, u64::from(value)) }
    } else {
        let addr = XAPIC_BASE.load(Ordering::Relaxed) + u64::from(reg);
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
    }
}

/// Picks the mode (x2APIC if CPUID says so) and maps the xAPIC page if needed. BSP only,
/// before any CPU calls [`init_this_cpu`].
pub fn init_bsp(lapic_phys: u64) -> &'static str {
    let x2 = cpu::has_leaf1_ecx(21);
    X2APIC.store(x2, Ordering::Relaxed);
    if !x2 {
        XAPIC_BASE.store(
            paging::map_mmio(lapic_phys, 4096).as_u64(),
            Ordering::Relaxed,
        );
    }
    disable_legacy_pics();
    if x2 { "x2APIC" } else { "xAPIC" }
}

/// Enables this CPU's local APIC in the chosen mode, with spurious and error vectors.
pub fn init_this_cpu() {
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC; setting EN (and EXTD when
    // the CPU supports x2APIC, checked in `init_bsp`) keeps the base address unchanged.
    unsafe {
        let mut base = cpu::rdmsr(IA32_APIC_BASE) | APIC_BASE_ENABLE;
        if X2APIC.load(Ordering::Relaxed) {
            base |= APIC_BASE_X2APIC;
        }
        cpu::wrmsr(IA32_APIC_BASE, base);
    }
    write(TPR, 0);
    write(SVR, 0x100 | u32::from(idt::SPURIOUS_VECTOR));
    write(LVT_ERROR, u32::from(idt::APIC_ERROR_VECTOR));
    write(ESR, 0);
    READY.store(true, Ordering::Release);
}

/// Whether the local APIC is up (on the boot CPU at least).
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    let raw = read(ID);
    if X2APIC.load(Ordering::Relaxed) {
        raw
    } else {
        raw >> 24
    }
}

pub fn eoi() {
    write(EOI, 0);
}

/// Reads (and clears) the error status register.
pub fn read_error() -> u32 {
    write(ESR, 0);
    read(ESR)
}

fn send_ipi(dest: u32, low: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is on; the ICR MSR takes destination and command together.
        unsafe { cpu::wrmsr(0x830, (u64::from(dest) << 32) | u64::from(low)) };
    } else {
        write(ICR_HIGH, dest << 24);
        write(ICR_LOW, low);
        while read(ICR_LOW) & ICR_DELIVERY_PENDING != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Sends INIT to the CPU with APIC id `dest`.
pub fn send_init(dest: u32) {
    send_ipi(dest, ICR_INIT | ICR_LEVEL_ASSERT);
}

/// Sends a start-up IPI: the CPU starts in real mode at `page << 12`.
pub fn send_startup(dest: u32, page: u8) {
    send_ipi(dest, ICR_STARTUP | ICR_LEVEL_ASSERT | u32::from(page));
}

/// Sends INIT to every other CPU.
pub fn broadcast_init() {
    send_ipi(0, ICR_INIT | ICR_LEVEL_ASSERT | ICR_ALL_EXCLUDING_SELF);
}

/// Sends a start-up IPI to every other CPU.
pub fn broadcast_startup(page: u8) {
    send_ipi(
        0,
        ICR_STARTUP | ICR_LEVEL_ASSERT | ICR_ALL_EXCLUDING_SELF | u32::from(page),
    );
}

/// Sends an NMI to every other CPU.
pub fn nmi_all_others() {
    send_ipi(0, ICR_NMI | ICR_LEVEL_ASSERT | ICR_ALL_EXCLUDING_SELF);
}

/// Runs the timer one-shot from the maximum count (divide by 16), for calibration.
pub fn timer_start_free_running() {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, LVT_MASKED | u32::from(idt::TIMER_VECTOR));
    write(TIMER_INITIAL, u32::MAX);
}

/// The timer's current count.
pub fn timer_current() -> u32 {
    read(TIMER_CURRENT)
}

/// Arms the timer once: one interrupt after `count` timer ticks (divide by 16); 0
/// disarms it.
pub fn timer_oneshot(count: u32) {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, u32::from(idt::TIMER_VECTOR));
    write(TIMER_INITIAL, count);
}

/// Sends a fixed interrupt with `vector` to the CPU with APIC id `dest`.
pub fn send_fixed(dest: u32, vector: u8) {
    send_ipi(dest, ICR_LEVEL_ASSERT | u32::from(vector));
}

/// Starts the periodic tick: one interrupt every `count` timer ticks (divide by 16).
pub fn timer_periodic(count: u32) {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, LVT_PERIODIC | u32::from(idt::TIMER_VECTOR));
    write(TIMER_INITIAL, count.max(1));
}

/// Remaps both 8259 PICs above the exception vectors and masks every line.
fn disable_legacy_pics() {
    let base = idt::PIC_BASE_VECTOR;
    // SAFETY: ports 0x20/0x21/0xa0/0xa1 are the PICs; the ICW sequence below is the
    // documented initialisation, after which all lines are masked.
    unsafe {
        for (cmd, data, icw2, icw3) in [(0x20, 0x21, base, 4), (0xa0, 0xa1, base + 8, 2)] {
            cpu::outb(cmd, 0x11);
            cpu::outb(data, icw2);
            cpu::outb(data, icw3);
            cpu::outb(data, 0x01);
            cpu::outb(data, 0xff);
        }
    }
}

/// An I/O APIC, mapped.
pub struct IoApic {
    base: u64,
}

impl IoApic {
    /// Maps the I/O APIC whose registers are at `phys`.
    pub fn map(phys: u64) -> Self {
        IoApic {
            base: paging::map_mmio(phys, 4096).as_u64(),
        }
    }

    fn read(&self, reg: u32) -> u32 {
        // SAFETY: `base` maps the I/O APIC's IOREGSEL (+0) and IOWIN (+0x10) uncached.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::read_volatile((self.base + 0x10) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::write_volatile((self.base + 0x10) as *mut u32, value);
        }
    }

    /// Number of redirection entries (input pins).
    pub fn pins(&self) -> u32 {
        ((self.read(1) >> 16) & 0xff) + 1
    }

    /// Masks every input pin.
    pub fn mask_all(&self) {
        for pin in 0..self.pins() {
            let reg = 0x10 + 2 * pin;
            self.write(reg, self.read(reg) | LVT_MASKED);
        }
    }
}
