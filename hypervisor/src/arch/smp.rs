//! Starting the application processors: INIT-SIPI-SIPI through a trampoline in low memory.
//!
//! The trampoline goes from real mode straight to long mode with a copy of the top-level
//! page table that lives below 4 GiB (a 32-bit CR3 load), in which the trampoline page is
//! identity-mapped. It then calls [`ap_entry`] on the stack the BSP prepared, and the AP
//! switches to the hypervisor's real page tables. APs are started one at a time: each
//! reads its parameters before the BSP rewrites them for the next.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    or $0x80010001, %eax                    # PG | WP | PE
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
    mov oxen_trampoline_params+8(%rip), %rsp
    mov oxen_trampoline_params+16(%rip), %rdi
    mov oxen_trampoline_params+24(%rip), %rax
    call *%rax
    ud2
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
    .quad 0                                 # +8  stack top
    .quad 0                                 # +16 argument: CPU index
    .quad 0                                 # +24 entry point
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
/// Set by an AP once it has read the trampoline parameters.
static STARTED: AtomicBool = AtomicBool::new(false);

/// What [`start_aps`] achieved.
pub struct Report {
    /// APs that came online.
    pub online: usize,
    /// APs that did not.
    pub failed: usize,
}

/// Starts every usable AP in `cpus`, giving them indices 1.. in order, and waits until
/// each is online or has timed out. `ap_main` is where each AP continues.
pub fn start_aps(cpus: &[CpuEntry], tsc_hz: u64, ap_main: fn() -> !) -> Report {
    AP_MAIN.store(ap_main as *const () as u64, Ordering::Relaxed);
    let aps: alloc::vec::Vec<_> = cpus.iter().filter(|c| !c.is_bsp && c.usable).take(percpu::MAX_CPUS - 1).collect();
    let skipped = cpus.iter().filter(|c| !c.is_bsp && c.usable).count() - aps.len();
    if skipped > 0 {
        log::warn!("smp: {skipped} CPU(s) beyond the limit of {} are left offline", percpu::MAX_CPUS);
    }
    percpu::set_count(1 + aps.len());
    if aps.is_empty() {
        return Report { online: 0, failed: 0 };
    }

    // The trampoline page: below 1 MiB (a SIPI vector names a page there), identity-mapped.
    let page = (0..8)
        .map_while(|_| frames::alloc_run(1, FRAME_SIZE, 0x10_0000).ok())
        .find(|&p| paging::map_identity(p))
        .expect("a free page below 1 MiB for the AP trampoline");
    // The page-table root the trampoline loads: a copy of ours below 4 GiB.
    let low_l4 = frames::alloc_run(1, FRAME_SIZE, 1 << 32).expect("a page below 4 GiB for the AP page table");
    let l4 = paging::active_l4_phys();
    KERNEL_CR3.store(l4, Ordering::Relaxed);
    install_trampoline(page, low_l4, l4);

    let ms = |n: u64| tsc_hz / 1000 * n;
    let mut answered = alloc::vec![false; aps.len()];
    for (i, ap) in aps.iter().enumerate() {
        let index = i + 1;
        let stack = frames::alloc_run(AP_STACK_SIZE / FRAME_SIZE, FRAME_SIZE, u64::MAX).expect("memory for an AP stack");
        let top = paging::phys_to_virt(stack + AP_STACK_SIZE).as_u64();
        write_params(page, &[(8, top), (16, index as u64)]);
        percpu::get(index).apic_id.store(ap.apic_id, Ordering::Relaxed);
        STARTED.store(false, Ordering::SeqCst);

        apic::send_init(ap.apic_id);
        cpu::spin_tsc(ms(10));
        let vector = (page >> 12) as u8;
        for _ in 0..2 {
            apic::send_startup(ap.apic_id, vector);
            cpu::spin_tsc(ms(1));
            if STARTED.load(Ordering::SeqCst) {
                break;
            }
        }
        let deadline = cpu::rdtsc() + ms(200);
        while !STARTED.load(Ordering::SeqCst) && cpu::rdtsc() < deadline {
            core::hint::spin_loop();
        }
        answered[i] = STARTED.load(Ordering::SeqCst);
        if !answered[i] {
            log::error!("smp: cpu{index} (APIC id {}) never started: no answer to INIT-SIPI-SIPI within 200 ms", ap.apic_id);
        }
    }

    // Wait for the started ones to finish their bring-up.
    let expected = 1 + answered.iter().filter(|&&a| a).count();
    let deadline = cpu::rdtsc() + ms(1000);
    while percpu::online() < expected && cpu::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    for (i, _) in answered.iter().enumerate().filter(|(_, a)| **a) {
        let index = i + 1;
        let slot = percpu::get(index);
        if !slot.online.load(Ordering::Acquire) {
            log::error!(
                "smp: cpu{index} (APIC id {}) started but did not come online within 1 s",
                slot.apic_id.load(Ordering::Relaxed)
            );
        }
    }
    paging::unmap_identity(page);
    let online = percpu::online() - 1;
    Report { online, failed: aps.len() - online }
}

fn write_params(page: u64, fields: &[(u64, u64)]) {
    // SAFETY: `&raw const` of an extern static only takes its address.
    let params = page + offset_of(&raw const oxen_trampoline_params);
    for &(at, value) in fields {
        let ptr = paging::phys_to_virt(params + at).as_mut_ptr::<u64>();
        // SAFETY: `page` is the trampoline page we own; the field is inside it.
        unsafe { core::ptr::write_volatile(ptr, value) };
    }
}

/// Copies the trampoline into `page` and fills in its addresses and the low CR3.
fn install_trampoline(page: u64, low_l4: u64, l4: u64) {
    let start = &raw const oxen_trampoline_start;
    let len = offset_of(&raw const oxen_trampoline_end) as usize;
    assert!(len <= FRAME_SIZE as usize, "the trampoline fits in one page");
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
    patch32(&raw const oxen_trampoline_gdtr, 2, page + offset_of(&raw const oxen_trampoline_gdt));
    patch32(&raw const oxen_trampoline_farptr, 0, page + offset_of(&raw const oxen_trampoline_long));
    write_params(page, &[(0, low_l4), (24, ap_entry as *const () as u64)]);
}

static AP_MAIN: AtomicU64 = AtomicU64::new(0);

/// Where every AP arrives in 64-bit mode, on its own stack.
extern "C" fn ap_entry(index: u64) -> ! {
    let cr3 = KERNEL_CR3.load(Ordering::Relaxed);
    // SAFETY: the hypervisor's page tables map everything the low copy did (the copy was
    // taken from them), so execution and the stack carry on unchanged.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack)) };
    percpu::install(index as usize);
    STARTED.store(true, Ordering::SeqCst);
    let main = AP_MAIN.load(Ordering::Relaxed);
    // SAFETY: AP_MAIN holds the `fn() -> !` given to `start_aps`.
    let main: fn() -> ! = unsafe { core::mem::transmute(main as usize) };
    main()
}
