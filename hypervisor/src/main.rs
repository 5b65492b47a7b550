//! oxen: a type-1 hypervisor for x86_64 in the lineage of Xen.
//!
//! This is the binary entered by the bootloader. Boot flow on the bootstrap processor:
//! serial and log → TSC calibration → frame allocator → heap → GDT/TSS/IDT → ACPI (MADT)
//! → local APIC, I/O APICs and the periodic tick → VMX → application processors → the
//! boot archive → ready.
#![no_std]
#![no_main]
#![feature(abi_x86_interrupt)]
#![feature(asm_goto_with_outputs)]

extern crate alloc;

mod arch;
mod boot;
mod domain;
mod mm;
mod vmx;

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};
use oxen_core::config::OnReady;
use oxen_core::units::Bytes;

use arch::{acpi, apic, cpu, idt, paging, percpu, pit, power, serial, smp, tables, time};
use mm::{frames, heap};

/// The periodic tick every CPU takes.
pub const TICK_HZ: u64 = 100;

/// What the bootloader must set up for us: all of physical memory mapped, a roomy stack.
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = 256 * 1024;
    config
};

entry_point!(kmain, config = &BOOTLOADER_CONFIG);

/// Prints a line straight to the serial port, even if the log lock is held (for
/// exception and panic reports).
#[macro_export]
macro_rules! emergency {
    ($($arg:tt)*) => {
        $crate::arch::serial::write_forced(format_args!(
            "[{}] cpu{} ERROR {}\n",
            $crate::arch::serial::uptime(),
            $crate::arch::percpu::index(),
            format_args!($($arg)*)
        ))
    };
}

/// APIC timer count between ticks, shared by every CPU.
static TICK_COUNT: AtomicU32 = AtomicU32::new(0);

/// APIC timer counts (divide by 16) in `ns` nanoseconds, for one-shot deadlines.
pub fn apic_timer_counts(ns: u64) -> u32 {
    let per_tick = u128::from(TICK_COUNT.load(Ordering::Relaxed));
    let tick_ns = u128::from(1_000_000_000 / TICK_HZ);
    u32::try_from(u128::from(ns) * per_tick / tick_ns).unwrap_or(u32::MAX)
}

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    percpu::install(0);
    serial::init();
    let tsc_hz = pit::tsc_hz();
    serial::set_tsc_hz(tsc_hz);
    time::init(tsc_hz);
    log::info!(
        "oxen {} booting; TSC {} MHz",
        env!("CARGO_PKG_VERSION"),
        tsc_hz / 1_000_000
    );

    let phys_offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("the bootloader maps physical memory");
    paging::init(phys_offset);
    frames::init(&boot_info.memory_regions);
    let stats = frames::stats();
    log::info!(
        "memory: {} usable in {} map regions, frame allocator ready",
        Bytes(stats.usable),
        boot_info.memory_regions.len()
    );
    if let Err(e) = heap::init() {
        panic!("cannot set up the heap: {e}");
    }
    log::info!("memory: heap of {} ready", Bytes(heap::HEAP_SIZE));

    tables::load_for_this_cpu();
    idt::load_for_this_cpu();
    cpu::enable_xsave();
    log::info!("cpu: GDT, TSS (IST stacks for #DF and NMI) and IDT loaded");

    let platform = discover_platform(boot_info.rsdp_addr.into_option());
    let mode = apic::init_bsp(platform.lapic_phys);
    apic::init_this_cpu();
    percpu::this().apic_id.store(apic::id(), Ordering::Relaxed);
    for io in &platform.io_apics {
        let ioapic = apic::IoApic::map(io.phys);
        ioapic.mask_all();
        log::info!(
            "apic: I/O APIC id {} at {:#x}, GSIs {}..{}, all pins masked",
            io.id,
            io.phys,
            io.gsi_base,
            io.gsi_base + ioapic.pins() - 1
        );
    }
    let timer_hz = pit::apic_timer_hz(tsc_hz);
    TICK_COUNT.store((timer_hz / TICK_HZ) as u32, Ordering::Relaxed);
    apic::timer_periodic(TICK_COUNT.load(Ordering::Relaxed));
    x86_64::instructions::interrupts::enable();
    log::info!(
        "apic: local APIC in {mode} mode, id {}; timer {} kHz, {TICK_HZ} Hz tick",
        apic::id(),
        timer_hz / 1000
    );

    enable_vmx();
    percpu::this().online.store(true, Ordering::Release);

    let targets = if platform.cpus.is_empty() {
        let n = smp::cpuid_topology_count();
        log::warn!(
            "smp: no MADT; CPUID topology reports {n} logical CPU(s) in this package: starting APs by broadcast"
        );
        smp::Targets::Broadcast(n - 1)
    } else {
        smp::Targets::Madt(&platform.cpus)
    };
    let report = smp::start_aps(targets, tsc_hz, ap_main);
    log::info!(
        "smp: {} of {} CPUs online{}",
        percpu::online(),
        percpu::count(),
        if report.failed > 0 {
            " (some failed to start, see above)"
        } else {
            ""
        }
    );
    check_ticks(tsc_hz);

    let ramdisk = boot_info.ramdisk_addr.into_option().map(|addr| {
        // SAFETY: the bootloader loaded the ramdisk at this virtual address with this
        // length and never touches it again; we only read it.
        unsafe { core::slice::from_raw_parts(addr as *const u8, boot_info.ramdisk_len as usize) }
    });
    let (config, archive) = boot::load_archive(ramdisk);

    let stats = frames::stats();
    let taken = stats.usable - stats.free;
    log::info!(
        "memory: oxen uses {} = {} bytes (image {}, frames {}; heap {} of {} in use)",
        Bytes(boot_info.kernel_len + taken),
        boot_info.kernel_len + taken,
        Bytes(boot_info.kernel_len),
        Bytes(taken),
        Bytes(heap::used() as u64),
        Bytes(heap::HEAP_SIZE)
    );
    let now = cpu::rdtsc();
    let vmx_state = match vmx::cpus_on() {
        0 => alloc::string::String::from("off"),
        n => alloc::format!("on {n}/{}", percpu::count()),
    };
    log::info!(
        "oxen ready: {}/{} CPUs online, {} usable, {} free, VMX {vmx_state}, boot tsc {now} ({} in oxen)",
        percpu::online(),
        percpu::count(),
        Bytes(stats.usable),
        Bytes(stats.free),
        now - serial::tsc_base(),
    );

    #[cfg(feature = "test-fault")]
    boot::deliberate_fault();

    let domains = archive
        .as_ref()
        .map(|a| boot::domain_configs(&config, a))
        .unwrap_or_default();
    if !domains.is_empty() {
        match guest_controls() {
            Ok((controls, revision)) => {
                let started = domain::run::start_domains(&config, &domains, controls, revision);
                log::info!("domains: {started} of {} started", domains.len());
                if started > 0 {
                    domain::conin::start();
                    GUESTS.store(true, Ordering::Release);
                    domain::run::cpu_loop();
                }
            }
            Err(why) => log::error!(
                "domains: guests cannot run on this machine ({why}); {} configured domain(s) not started",
                domains.len()
            ),
        }
    }
    match config.on_ready {
        OnReady::Poweroff => power::poweroff(),
        OnReady::Idle => idle(),
    }
}

/// Reads the MADT; without ACPI, carries on with the boot CPU alone.
fn discover_platform(rsdp: Option<u64>) -> acpi::Platform {
    let found = match rsdp {
        Some(rsdp) => acpi::discover(rsdp).map_err(|e| alloc::format!("{e:?}")),
        None => Err("the bootloader found no RSDP".into()),
    };
    match found {
        Ok(p) => {
            let ids: alloc::vec::Vec<_> = p.cpus.iter().map(|c| c.apic_id).collect();
            log::info!(
                "acpi: MADT lists {} CPU(s) (APIC ids {ids:?}), {} I/O APIC(s), local APIC at {:#x}",
                p.cpus.len(),
                p.io_apics.len(),
                p.lapic_phys
            );
            p
        }
        Err(e) => {
            log::warn!("acpi: no usable MADT ({e}); CPUs come from CPUID, no I/O APIC is known");
            // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU.
            let base = unsafe { cpu::rdmsr(0x1b) } & 0xf_ffff_f000;
            acpi::Platform {
                lapic_phys: base,
                cpus: alloc::vec::Vec::new(),
                io_apics: alloc::vec::Vec::new(),
            }
        }
    }
}

/// Set once guests run: every CPU then enters the scheduling loop.
static GUESTS: AtomicBool = AtomicBool::new(false);

/// The VMCS controls and revision for guests, or why guests cannot run here.
fn guest_controls() -> Result<(oxen_core::vmx::VmcsControls, u32), alloc::string::String> {
    let caps = vmx::capabilities().ok_or("VT-x is not available")?;
    caps.can_run_guests()
        .map_err(|what| alloc::format!("the CPU lacks {what}"))?;
    let raw = vmx::raw_msrs().ok_or("VT-x is not available")?;
    let controls = oxen_core::vmx::VmcsControls::compute(raw).map_err(|e| alloc::format!("{e}"))?;
    if vmx::cpus_on() < percpu::online() {
        log::warn!(
            "domains: VMX is on {} of {} CPUs; guests run only there",
            vmx::cpus_on(),
            percpu::online()
        );
    }
    Ok((controls, caps.revision_id))
}

/// VMX on the boot CPU, with the one summary line.
fn enable_vmx() {
    match vmx::enable_this_cpu() {
        Ok(caps) => {
            log::info!("vmx: {caps}");
            match caps.can_run_guests() {
                Ok(()) => log::info!("vmx: VMXON on cpu0; this CPU can run guests"),
                Err(what) => {
                    log::warn!("vmx: VMXON on cpu0, but guests need {what}, which this CPU lacks")
                }
            }
        }
        Err(e) => {
            log::warn!("vmx: {e}: guests cannot run on this machine; carrying on without VMX")
        }
    }
}

/// Waits until every online CPU has taken two ticks, and says so.
fn check_ticks(tsc_hz: u64) {
    let deadline = cpu::rdtsc() + tsc_hz / 2;
    let ticking = || {
        (0..percpu::count())
            .filter(|&i| percpu::get(i).ticks.load(Ordering::Relaxed) >= 2)
            .count()
    };
    while ticking() < percpu::online() && cpu::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    let n = ticking();
    if n == percpu::online() {
        log::info!("timer: periodic tick running on all {n} online CPUs");
    } else {
        log::error!(
            "timer: only {n} of {} online CPUs are ticking",
            percpu::online()
        );
    }
}

/// Where every application processor continues after the trampoline.
fn ap_main() -> ! {
    tables::load_for_this_cpu();
    idt::load_for_this_cpu();
    cpu::enable_xsave();
    apic::init_this_cpu();
    percpu::this().apic_id.store(apic::id(), Ordering::Relaxed);
    apic::timer_periodic(TICK_COUNT.load(Ordering::Relaxed));
    match vmx::enable_this_cpu() {
        Ok(_) => log::info!("vmx: VMXON on cpu{}", percpu::index()),
        Err(vmx::VmxError::NotSupported) => {}
        Err(e) => log::warn!("vmx: cpu{}: {e}", percpu::index()),
    }
    let cr0 = cpu::cr0();
    if cr0 & cpu::CR0_CACHES_OFF != 0 {
        log::error!(
            "smp: cpu{} runs with caches disabled (CR0 {cr0:#x})",
            percpu::index()
        );
    }
    log::info!(
        "smp: cpu{} online (APIC id {}, CR0 {cr0:#x})",
        percpu::index(),
        apic::id()
    );
    percpu::this().online.store(true, Ordering::Release);
    // Wait for the boot CPU to decide whether guests run; then join the scheduler.
    loop {
        if GUESTS.load(Ordering::Acquire) && percpu::this().vmx_on.load(Ordering::Acquire) {
            domain::run::cpu_loop();
        }
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// Halts with interrupts on, forever.
fn idle() -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Whether some CPU has panicked (every other CPU stops when it sees this).
pub fn panicking() -> bool {
    PANICKING.load(Ordering::SeqCst)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    let first = !PANICKING.swap(true, Ordering::SeqCst);
    match info.location() {
        Some(l) => emergency!("PANIC: {} at {}:{}", info.message(), l.file(), l.line()),
        None => emergency!("PANIC: {}", info.message()),
    }
    if first {
        if apic::is_ready() {
            apic::nmi_all_others();
        }
        emergency!("oxen halted: every CPU is stopped");
    }
    cpu::halt_forever()
}
