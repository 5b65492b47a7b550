//! Interrupt descriptor tables: every exception reports itself and stops the hypervisor;
//! the timer and spurious vectors are serviced.

use alloc::boxed::Box;
use core::sync::atomic::Ordering;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use super::{apic, cpu, percpu, tables};

/// The local APIC timer's vector.
pub const TIMER_VECTOR: u8 = 0x20;
/// Where the (masked) legacy PICs are remapped, so a stray PIC interrupt is recognisable.
pub const PIC_BASE_VECTOR: u8 = 0x30;
/// The reschedule IPI: the sender has set the target's `need_resched` flag.
pub const RESCHED_VECTOR: u8 = 0xf0;
/// The local APIC error vector.
pub const APIC_ERROR_VECTOR: u8 = 0xfe;
/// The local APIC spurious vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Prints the exception report and panics (which stops every CPU).
fn report(vector: u8, name: &str, code: Option<u64>, frame: &InterruptStackFrame) -> ! {
    let code = match code {
        Some(c) => alloc::format!("{c:#x}"),
        None => "none".into(),
    };
    crate::emergency!(
        "EXCEPTION {name} (vector {vector}) on cpu{}: error code {code}, RIP {:#x}, CR2 {:#x}, RSP {:#x}, RFLAGS {:#x}, CS {:#x}",
        percpu::index(),
        frame.instruction_pointer.as_u64(),
        cpu::cr2(),
        frame.stack_pointer.as_u64(),
        frame.cpu_flags.bits(),
        frame.code_segment.0,
    );
    panic!(
        "unhandled exception {name} (vector {vector}) at RIP {:#x}",
        frame.instruction_pointer.as_u64()
    );
}

macro_rules! exception {
    ($fn:ident, $vector:expr, $name:expr) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame) {
            report($vector, $name, None, &frame);
        }
    };
    ($fn:ident, $vector:expr, $name:expr, code) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame, code: u64) {
            report($vector, $name, Some(code), &frame);
        }
    };
}

exception!(divide_error, 0, "#DE");
exception!(debug, 1, "#DB");
exception!(breakpoint, 3, "#BP");
exception!(overflow, 4, "#OF");
exception!(bound_range, 5, "#BR");
exception!(invalid_opcode, 6, "#UD");
exception!(device_not_available, 7, "#NM");
exception!(invalid_tss, 10, "#TS", code);
exception!(segment_not_present, 11, "#NP", code);
exception!(stack_segment, 12, "#SS", code);
exception!(general_protection, 13, "#GP", code);
exception!(x87_floating_point, 16, "#MF");
exception!(alignment_check, 17, "#AC", code);
exception!(simd_floating_point, 19, "#XM");
exception!(virtualization, 20, "#VE");
exception!(control_protection, 21, "#CP", code);

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    report(14, "#PF", Some(code.bits()), &frame);
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    report(8, "#DF", Some(code), &frame);
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    report(18, "#MC", None, &frame);
}

extern "x86-interrupt" fn nmi(frame: InterruptStackFrame) {
    if crate::panicking() {
        // Another CPU panicked and asked everyone to stop.
        cpu::halt_forever();
    }
    crate::emergency!(
        "NMI on cpu{} at RIP {:#x}; continuing",
        percpu::index(),
        frame.instruction_pointer.as_u64()
    );
}

extern "x86-interrupt" fn timer(_frame: InterruptStackFrame) {
    percpu::this().ticks.fetch_add(1, Ordering::Relaxed);
    super::serial::pump();
    apic::eoi();
}

extern "x86-interrupt" fn resched(_frame: InterruptStackFrame) {
    // The flag is already set; the interrupt only ends a HLT or a guest's run.
    apic::eoi();
}

extern "x86-interrupt" fn apic_error(_frame: InterruptStackFrame) {
    crate::emergency!(
        "local APIC error on cpu{}: ESR {:#x}",
        percpu::index(),
        apic::read_error()
    );
    apic::eoi();
}

extern "x86-interrupt" fn ignored(_frame: InterruptStackFrame) {}

extern "x86-interrupt" fn unexpected(frame: InterruptStackFrame) {
    crate::emergency!(
        "unexpected interrupt on cpu{} at RIP {:#x}",
        percpu::index(),
        frame.instruction_pointer.as_u64()
    );
    apic::eoi();
}

/// Builds and loads this CPU's IDT.
pub fn load_for_this_cpu() {
    let idt: &'static mut InterruptDescriptorTable =
        Box::leak(Box::new(InterruptDescriptorTable::new()));
    idt.divide_error.set_handler_fn(divide_error);
    idt.debug.set_handler_fn(debug);
    idt.breakpoint.set_handler_fn(breakpoint);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded.set_handler_fn(bound_range);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available
        .set_handler_fn(device_not_available);
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment);
    idt.general_protection_fault
        .set_handler_fn(general_protection);
    idt.page_fault.set_handler_fn(page_fault);
    idt.x87_floating_point.set_handler_fn(x87_floating_point);
    idt.alignment_check.set_handler_fn(alignment_check);
    idt.machine_check.set_handler_fn(machine_check);
    idt.simd_floating_point.set_handler_fn(simd_floating_point);
    idt.virtualization.set_handler_fn(virtualization);
    idt.cp_protection_exception
        .set_handler_fn(control_protection);
    // SAFETY: the IST indices name stacks that `tables::load_for_this_cpu` put in this
    // CPU's TSS before the IDT is loaded.
    unsafe {
        idt.double_fault
            .set_handler_fn(double_fault)
            .set_stack_index(tables::DOUBLE_FAULT_IST);
        idt.non_maskable_interrupt
            .set_handler_fn(nmi)
            .set_stack_index(tables::NMI_IST);
    }
    for vector in 32..=255u8 {
        idt[vector].set_handler_fn(unexpected);
    }
    for vector in PIC_BASE_VECTOR..PIC_BASE_VECTOR + 16 {
        idt[vector].set_handler_fn(ignored);
    }
    idt[TIMER_VECTOR].set_handler_fn(timer);
    idt[RESCHED_VECTOR].set_handler_fn(resched);
    idt[APIC_ERROR_VECTOR].set_handler_fn(apic_error);
    idt[SPURIOUS_VECTOR].set_handler_fn(ignored);
    let idt: &'static InterruptDescriptorTable = idt;
    idt.load();
}
