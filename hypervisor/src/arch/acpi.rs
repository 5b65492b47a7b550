//! ACPI through the `acpi` crate: the MADT gives the CPUs and the I/O APICs.

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::platform::ProcessorState;
use acpi::platform::interrupt::InterruptModel;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

use super::paging;

/// One processor the MADT lists.
#[derive(Clone, Copy, Debug)]
pub struct CpuEntry {
    pub apic_id: u32,
    pub is_bsp: bool,
    /// False for processors the firmware marked unusable.
    pub usable: bool,
}

/// One I/O APIC.
#[derive(Clone, Copy, Debug)]
pub struct IoApicEntry {
    pub id: u8,
    pub phys: u64,
    pub gsi_base: u32,
}

/// What oxen needs from the MADT.
#[derive(Debug)]
pub struct Platform {
    pub lapic_phys: u64,
    pub cpus: Vec<CpuEntry>,
    pub io_apics: Vec<IoApicEntry>,
}

/// Reads the MADT through the RSDP at `rsdp`.
pub fn discover(rsdp: u64) -> Result<Platform, acpi::AcpiError> {
    // SAFETY: the bootloader hands us the firmware's RSDP address.
    let tables = unsafe { AcpiTables::from_rsdp(Oxen, rsdp as usize)? };
    let info = tables.platform_info()?;
    let processors = info.processor_info;
    let InterruptModel::Apic(apic) = info.interrupt_model else {
        return Err(acpi::AcpiError::InvalidMadt(
            acpi::MadtError::UnexpectedEntry,
        ));
    };
    let mut cpus = Vec::new();
    if let Some(p) = processors {
        cpus.push(CpuEntry {
            apic_id: p.boot_processor.local_apic_id,
            is_bsp: true,
            usable: true,
        });
        for ap in p.application_processors.iter() {
            cpus.push(CpuEntry {
                apic_id: ap.local_apic_id,
                is_bsp: false,
                usable: ap.state != ProcessorState::Disabled,
            });
        }
    }
    let io_apics = apic
        .io_apics
        .iter()
        .map(|io| IoApicEntry {
            id: io.id,
            phys: u64::from(io.address),
            gsi_base: io.global_system_interrupt_base,
        })
        .collect();
    Ok(Platform {
        lapic_phys: apic.local_apic_address,
        cpus,
        io_apics,
    })
}

/// The `acpi` crate's window onto physical memory.
#[derive(Clone, Copy)]
struct Oxen;

/// Virtual address of physical `phys`: the physical-memory window, or a fresh uncached
/// mapping where the window does not reach.
fn reach(phys: u64, size: u64) -> u64 {
    let window = paging::phys_to_virt(phys);
    if paging::is_mapped(window) && paging::is_mapped(window + size.saturating_sub(1)) {
        window.as_u64()
    } else {
        paging::map_mmio(phys, size).as_u64()
    }
}

impl AcpiHandler for Oxen {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = reach(physical_address as u64, size as u64);
        let ptr = NonNull::new(virt as *mut T).expect("mapped address is not null");
        // SAFETY: `ptr` maps `size` bytes at `physical_address` for as long as the
        // hypervisor runs (mappings are never torn down).
        unsafe { PhysicalMapping::new(physical_address, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}
