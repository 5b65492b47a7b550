//! Starting the application processors: INIT-SIPI-SIPI through a trampoline in low memory.
//!
//! The trampoline goes from real mode straight to long mode with a copy of the top-level
//! page table that lives below 4 GiB (a 32-bit CR3 load), in which the trampoline page is
//! identity-mapped. Each AP then numbers itself with an atomic increment of a counter in
//! the trampoline, takes the stack of that number from a block the BSP prepared, calls
//! [`ap_entry`], and switches to the hypervisor's real page tables.
//!
//! With a MADT, APs are started one at a time in MADT order (so their numbers follow it).
//! Without one (OVMF under Bochs installs no ACPI tables), the BSP broadcasts
//! INIT-SIPI-SIPI and expects as many CPUs as CPUID's topology leaf reports.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use oxen_core::frames::FRAME_SIZE;

use super::acpi::CpuEntry;
use super::{apic, cpu, paging, percpu};
use crate::mm::frames;

/// Stack size of every AP.
const AP_STACK_SIZE: u64 = 64 * 1024;

global_asm!(
    r#"
    .section .text.oxen_trampoline, "ax"
    .global oxen_trampoline_start
    .global oxen_trampoline_end
    .global oxen_trampoline_gdtr
    .global oxen_trampoline_farptr
    .global oxen_trampoline_long
    .global oxen_trampoline_gdt
    .global oxen_trampoline_params
    .code16
oxen_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl (oxen_trampoline_gdtr - oxen_trampoline_start)
    mov %cr4, %eax
    or $0x20, %eax                          # CR4.PAE
    mov %eax, %cr4
    movl (oxen_trampoline_params - oxen_trampoline_start), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx                   # IA32_EFER
    rdmsr
    or $0x900, %eax                         # LME | NXE
    wrmsr
    mov %cr0, %eax
    and $0x9fffffff, %eax                   # caches on: clear CD and NW (set at INIT)
    or $0x80010021, %eax                    # PG | WP | NE | PE, as on the BSP
    mov %eax, %cr0
    ljmpl *(oxen_trampoline_farptr - oxen_trampoline_start)
    .code64
oxen_trampoline_long:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    mov $1, %eax
    lock xadd %eax, oxen_trampoline_params+32(%rip)
    inc %eax                                # this AP's index: 1, 2, ...
    mov %rax, %rdi
    cmp oxen_trampoline_params+40(%rip), %rdi
    ja 2f                                   # more CPUs than stacks: park
    imul oxen_trampoline_params+16(%rip), %rax
    add oxen_trampoline_params+8(%rip), %rax
    mov %rax, %rsp                          # top of stack number `index`
    mov oxen_trampoline_params+24(%rip), %rax
    call *%rax
2:  cli
    hlt
    jmp 2b
    .balign 16
oxen_trampoline_gdt:
    .quad 0
    .quad 0x00af9a000000ffff                # 0x08: 64-bit code
    .quad 0x00cf92000000ffff                # 0x10: data
oxen_trampoline_gdtr:
    .word 23
    .long 0                                 # patched: linear address of the GDT
    .balign 8
oxen_trampoline_farptr:
    .long 0                                 # patched: linear address of the 64-bit code
    .word 0x08
    .balign 8
oxen_trampoline_params:
    .quad 0                                 # +0  CR3 (below 4 GiB)
    .quad 0                                 # +8  stack block base (virtual)
    .quad 0                                 # +16 stack size
    .quad 0                                 # +24 entry point
    .quad 0                                 # +32 APs arrived so far
    .quad 0                                 # +40 highest index with a stack
oxen_trampoline_end:
    .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static oxen_trampoline_start: u8;
    static oxen_trampoline_end: u8;
    static oxen_trampoline_gdtr: u8;
    static oxen_trampoline_farptr: u8;
    static oxen_trampoline_long: u8;
    static oxen_trampoline_gdt: u8;
    static oxen_trampoline_params: u8;
}

/// Offset of a trampoline symbol from its start.
fn offset_of(sym: *const u8) -> u64 {
    sym as u64 - (&raw const oxen_trampoline_start) as u64
}

/// The hypervisor's page-table root, for APs to switch to.
static KERNEL_CR3: AtomicU64 = AtomicU64::new(0);

const PARAM_CR3: u64 = 0;
const PARAM_STACK_BASE: u64 = 8;
const PARAM_STACK_SIZE: u64 = 16;
const PARAM_ENTRY: u64 = 24;
const PARAM_ARRIVED: u64 = 32;
const PARAM_MAX_INDEX: u64 = 40;

/// What [`start_aps`] achieved.
pub struct Report {
    /// APs that were expected and did not come online.
    pub failed: usize,
}

/// How to find the APs.
pub enum Targets<'a> {
    /// The MADT's list: start each usable AP in turn.
    Madt(&'a [CpuEntry]),
    /// No MADT: broadcast, expecting this many APs.
    Broadcast(usize),
}

/// Logical CPUs in this package according to CPUID leaf 0xB (1 if it has no such leaf).
pub fn cpuid_topology_count() -> usize {
    if cpu::cpuid(0, 0).eax < 0xb {
        return 1;
    }
    // The highest level (usually "core") reports the logical processors in the package.
    (0..8)
        .map(|sub| cpu::cpuid(0xb, sub))
        .take_while(|r| (r.ecx >> 8) & 0xff != 0)
        .map(|r| (r.ebx & 0xffff) as usize)
        .last()
        .unwrap_or(1)
        .max(1)
}

/// Starts the APs and waits until each is online or has timed out. `ap_main` is where
/// each AP continues.
pub fn start_aps(targets: Targets<'_>, tsc_hz: u64, ap_main: fn() -> !) -> Report {
    AP_MAIN.store(ap_main as *const () as u64, Ordering::Relaxed);
    let wanted = match &targets {
        Targets::Madt(cpus) => cpus.iter().filter(|c| !c.is_bsp && c.usable).count(),
        Targets::Broadcast(n) => *n,
    };
    let count = wanted.min(percpu::MAX_CPUS - 1);
    if count < wanted {
        log::warn!(
            "smp: {} CPU(s) beyond the limit of {} are left offline",
            wanted - count,
            percpu::MAX_CPUS
        );
    }
    percpu::set_count(1 + count);
    if count == 0 {
        return Report { failed: 0 };
    }

    // The trampoline page: below 1 MiB (a SIPI vector names a page there), identity-mapped.
    let page = (0..8)
        .map_while(|_| frames::alloc_run(1, FRAME_SIZE, 0x10_0000).ok())
        .find(|&p| paging::map_identity(p))
        .expect("a free page below 1 MiB for the AP trampoline");
    // The page-table root the trampoline loads: a copy of ours below 4 GiB.
    let low_l4 = frames::alloc_run(1, FRAME_SIZE, 1 << 32)
        .expect("a page below 4 GiB for the AP page table");
    let l4 = paging::active_l4_phys();
    KERNEL_CR3.store(l4, Ordering::Relaxed);
    let stacks = frames::alloc_run(
        count as u64 * AP_STACK_SIZE / FRAME_SIZE,
        FRAME_SIZE,
        u64::MAX,
    )
    .expect("memory for the AP stacks");
    install_trampoline(page, low_l4, l4);
    // Stack `i` (1-based) is [base + (i-1)*size, base + i*size): its top is base + i*size.
    write_param(
        page,
        PARAM_STACK_BASE,
        paging::phys_to_virt(stacks).as_u64(),
    );
    write_param(page, PARAM_STACK_SIZE, AP_STACK_SIZE);
    write_param(page, PARAM_MAX_INDEX, count as u64);

    let ms = |n: u64| tsc_hz / 1000 * n;
    let vector = (page >> 12) as u8;
    let arrived = || read_param(page, PARAM_ARRIVED) as usize;
    let wait_until = |n: usize, deadline: u64| {
        while arrived() < n && cpu::rdtsc() < deadline {
            core::hint::spin_loop();
        }
        arrived() >= n
    };
    match targets {
        Targets::Madt(cpus) => {
            for (i, ap) in cpus
                .iter()
                .filter(|c| !c.is_bsp && c.usable)
                .take(count)
                .enumerate()
            {
                apic::send_init(ap.apic_id);
                cpu::spin_tsc(ms(10));
                for _ in 0..2 {
                    apic::send_startup(ap.apic_id, vector);
                    if wait_until(i + 1, cpu::rdtsc() + ms(1)) {
                        break;
                    }
                }
                if !wait_until(i + 1, cpu::rdtsc() + ms(200)) {
                    log::error!(
                        "smp: the CPU with APIC id {} never started: no answer to INIT-SIPI-SIPI within 200 ms",
                        ap.apic_id
                    );
                    // Keep the numbering in step: later APs get later numbers.
                    write_param(page, PARAM_ARRIVED, (i + 1) as u64);
                }
            }
        }
        Targets::Broadcast(_) => {
            apic::broadcast_init();
            cpu::spin_tsc(ms(10));
            for _ in 0..2 {
                apic::broadcast_startup(vector);
                cpu::spin_tsc(ms(1));
            }
            if !wait_until(count, cpu::rdtsc() + ms(200)) {
                log::error!(
                    "smp: CPUID topology promises {count} more CPU(s), {} answered the broadcast within 200 ms",
                    arrived()
                );
            }
        }
    }

    // Wait for the started ones to finish their bring-up.
    let deadline = cpu::rdtsc() + ms(1000);
    while percpu::online() < 1 + arrived().min(count) && cpu::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    for index in 1..=count {
        let slot = percpu::get(index);
        if index <= arrived() && !slot.online.load(Ordering::Acquire) {
            log::error!("smp: cpu{index} started but did not come online within 1 s");
        }
    }
    paging::unmap_identity(page);
    let online = percpu::online() - 1;
    Report {
        failed: count - online,
    }
}

fn param_ptr(page: u64, field: u64) -> *mut u64 {
    let params = page + offset_of(&raw const oxen_trampoline_params);
    paging::phys_to_virt(params + field).as_mut_ptr::<u64>()
}

fn write_param(page: u64, field: u64, value: u64) {
    // SAFETY: `page` is the trampoline page we own; the field is inside it.
    unsafe { core::ptr::write_volatile(param_ptr(page, field), value) };
}

fn read_param(page: u64, field: u64) -> u64 {
    // SAFETY: as in `write_param`; APs update the counter with locked instructions.
    unsafe { core::ptr::read_volatile(param_ptr(page, field)) }
}

/// Copies the trampoline into `page` and fills in its addresses and the low CR3.
fn install_trampoline(page: u64, low_l4: u64, l4: u64) {
    let start = &raw const oxen_trampoline_start;
    let len = offset_of(&raw const oxen_trampoline_end) as usize;
    assert!(
        len <= FRAME_SIZE as usize,
        "the trampoline fits in one page"
    );
    let dst = paging::phys_to_virt(page).as_mut_ptr::<u8>();
    // SAFETY: the trampoline is `len` bytes of our own text; the destination is the
    // page we own; the two do not overlap.
    unsafe { core::ptr::copy_nonoverlapping(start, dst, len) };
    // The low copy of the top-level table (shares every lower level with ours).
    // SAFETY: both frames are page tables / our own page, mapped by the window.
    unsafe {
        core::ptr::copy_nonoverlapping(
            paging::phys_to_virt(l4).as_ptr::<u8>(),
            paging::phys_to_virt(low_l4).as_mut_ptr::<u8>(),
            FRAME_SIZE as usize,
        )
    };
    let patch32 = |sym: *const u8, delta: u64, value: u64| {
        let at = paging::phys_to_virt(page + offset_of(sym) + delta).as_mut_ptr::<u32>();
        // SAFETY: the patched field lies inside the trampoline page.
        unsafe { core::ptr::write_unaligned(at, u32::try_from(value).expect("below 4 GiB")) };
    };
    patch32(
        &raw const oxen_trampoline_gdtr,
        2,
        page + offset_of(&raw const oxen_trampoline_gdt),
    );
    patch32(
        &raw const oxen_trampoline_farptr,
        0,
        page + offset_of(&raw const oxen_trampoline_long),
    );
    write_param(page, PARAM_CR3, low_l4);
    write_param(page, PARAM_ENTRY, ap_entry as *const () as u64);
    write_param(page, PARAM_ARRIVED, 0);
}

static AP_MAIN: AtomicU64 = AtomicU64::new(0);

/// Where every AP arrives in 64-bit mode, on its own stack.
extern "C" fn ap_entry(index: u64) -> ! {
    let cr3 = KERNEL_CR3.load(Ordering::Relaxed);
    // SAFETY: the hypervisor's page tables map everything the low copy did (the copy was
    // taken from them), so execution and the stack carry on unchanged.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack)) };
    percpu::install(index as usize);
    let main = AP_MAIN.load(Ordering::Relaxed);
    // SAFETY: AP_MAIN holds the `fn() -> !` given to `start_aps`.
    let main: fn() -> ! = unsafe { core::mem::transmute(main as usize) };
    main()
}
