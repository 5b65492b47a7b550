//! The hardware layer: every `unsafe` operation of the hypervisor lives below here.

pub mod acpi;
pub mod apic;
pub mod cpu;
pub mod idt;
pub mod paging;
pub mod percpu;
pub mod pit;
pub mod power;
pub mod rtc;
pub mod serial;
pub mod smp;
pub mod tables;
pub mod time;
