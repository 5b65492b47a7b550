//! The guest's ACPI tables (`oxen_core::guest_acpi`) read back by the `acpi` crate, the
//! parser the hypervisor uses for the machine's own tables: an outside judge of the
//! layout and checksums.

use std::ptr::NonNull;
use std::rc::Rc;

use acpi::platform::interrupt::InterruptModel;

/// Guest memory for the parser: the table bytes at their base.
#[derive(Clone)]
struct Mem {
    base: usize,
    bytes: Rc<Vec<u8>>,
}

impl acpi::AcpiHandler for Mem {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> acpi::PhysicalMapping<Self, T> {
        let off = physical_address - self.base;
        assert!(
            off + size <= self.bytes.len(),
            "a table reaches past what was built"
        );
        let ptr = NonNull::new(self.bytes[off..].as_ptr() as *mut T).unwrap();
        // SAFETY: the bytes live as long as any clone of the handler (an Rc) and are
        // never written; the parser only reads through the mapping.
        unsafe { acpi::PhysicalMapping::new(physical_address, ptr, size, size, self.clone()) }
    }

    fn unmap_physical_region<T>(_region: &acpi::PhysicalMapping<Self, T>) {}
}

#[test]
fn the_acpi_crate_finds_one_processor_per_vcpu_and_no_io_apic() {
    for vcpus in [1u32, 4, 64] {
        let base = 0xf_0000usize;
        let (bytes, rsdp) = oxen_core::guest_acpi::build(base as u64, vcpus, vcpus);
        assert_eq!(rsdp, base as u64);
        let mem = Mem {
            base,
            bytes: Rc::new(bytes),
        };
        // SAFETY: the handler maps only the bytes built above, at their addresses.
        let tables = unsafe { acpi::AcpiTables::from_rsdp(mem, rsdp as usize) }.unwrap();
        let info = tables.platform_info().unwrap();
        let p = info.processor_info.unwrap();
        assert_eq!(p.boot_processor.local_apic_id, 0);
        assert_eq!(p.boot_processor.processor_uid, 0);
        let aps: Vec<u32> = p
            .application_processors
            .iter()
            .map(|a| a.local_apic_id)
            .collect();
        assert_eq!(aps, (1..vcpus).collect::<Vec<_>>());
        let InterruptModel::Apic(apic) = info.interrupt_model else {
            panic!("an APIC interrupt model");
        };
        assert_eq!(apic.local_apic_address, 0xfee0_0000);
        assert!(apic.io_apics.is_empty());
        assert!(!apic.also_has_legacy_pics);
    }
}

#[test]
fn vcpus_offline_at_boot_are_listed_disabled_for_hot_plug() {
    let base = 0xf_0000usize;
    let (bytes, rsdp) = oxen_core::guest_acpi::build(base as u64, 2, 4);
    let mem = Mem {
        base,
        bytes: Rc::new(bytes),
    };
    // SAFETY: the handler maps only the bytes built above, at their addresses.
    let tables = unsafe { acpi::AcpiTables::from_rsdp(mem, rsdp as usize) }.unwrap();
    let p = tables.platform_info().unwrap().processor_info.unwrap();
    let states: Vec<(u32, acpi::platform::ProcessorState)> = p
        .application_processors
        .iter()
        .map(|a| (a.local_apic_id, a.state))
        .collect();
    use acpi::platform::ProcessorState::{Disabled, WaitingForSipi};
    assert_eq!(states, [(1, WaitingForSipi), (2, Disabled), (3, Disabled)]);
}
