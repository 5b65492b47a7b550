//! The ACPI tables a PVH guest gets (as Xen's toolstack builds them with libacpi):
//! RSDP (revision 2) → XSDT → FADT (hardware-reduced) → DSDT (empty), and a MADT with
//! one processor local APIC per vCPU (ACPI processor UID = APIC id = vCPU id, matching
//! CPUID and the x2APIC ID register), no I/O APIC and no legacy PICs. Linux needs the
//! MADT even for one vCPU: without it it never installs Xen's timer.
//!
//! Layout (all 16-byte aligned, from the base the caller picks): RSDP, XSDT, FADT,
//! DSDT, MADT. The caller announces the RSDP in `hvm_start_info.rsdp_paddr` and marks
//! the range reserved (or ACPI) in the memory map.

use alloc::vec::Vec;

/// The OEM fields of every table.
const OEM_ID: &[u8; 6] = b"OXEN  ";
const OEM_TABLE_ID: &[u8; 8] = b"OXENPVH ";
const CREATOR_ID: &[u8; 4] = b"OXEN";
/// The local APIC address the MADT states (the xAPIC default; guests use x2APIC).
const LAPIC_ADDRESS: u32 = 0xfee0_0000;
/// FADT flags: HW_REDUCED_ACPI (bit 20).
const FADT_HW_REDUCED: u32 = 1 << 20;
/// FADT IA-PC boot architecture flags: no VGA (bit 2), no CMOS RTC (bit 5).
const FADT_BOOT_NO_VGA: u16 = 1 << 2;
const FADT_BOOT_NO_CMOS_RTC: u16 = 1 << 5;
/// Bytes of an ACPI 6 FADT.
const FADT_LEN: usize = 276;

fn align16(v: usize) -> usize {
    (v + 15) & !15
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, &b| a.wrapping_add(b))
        .wrapping_neg()
}

/// A table with the standard 36-byte header and `body`; the checksum is filled in.
fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = 36 + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(signature);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The tables for a guest with `max_vcpus` vCPUs (1..=255) of which the first `vcpus`
/// are online at boot, to be placed at guest-physical `base` (16-byte aligned, below 4
/// GiB). Returns the bytes and the RSDP's address.
pub fn build(base: u64, vcpus: u32, max_vcpus: u32) -> (Vec<u8>, u64) {
    let max_vcpus = max_vcpus.clamp(1, 255);
    let vcpus = vcpus.clamp(1, max_vcpus);
    // MADT: local APIC address, flags 0 (no 8259s), then a type-0 entry per vCPU. As in
    // Xen's tables, a vCPU offline at boot is listed without the Enabled flag: with a
    // MADT below revision 5, guests take such an entry as one that can be hot-added
    // (Xen's `cpu/N/availability` protocol brings it up later).
    let mut madt_body = Vec::new();
    madt_body.extend_from_slice(&LAPIC_ADDRESS.to_le_bytes());
    madt_body.extend_from_slice(&0u32.to_le_bytes());
    for v in 0..max_vcpus {
        // type 0, length 8, ACPI processor UID, APIC id, flags (bit 0: enabled).
        madt_body.extend_from_slice(&[0, 8, v as u8, v as u8]);
        madt_body.extend_from_slice(&u32::from(v < vcpus).to_le_bytes());
    }
    let madt = table(b"APIC", 4, &madt_body);
    // An empty DSDT: no AML (no devices; processors come from the MADT).
    let dsdt = table(b"DSDT", 2, &[]);

    let rsdp_at = 0;
    let xsdt_at = align16(rsdp_at + 36);
    let xsdt_len = 36 + 2 * 8;
    let fadt_at = align16(xsdt_at + xsdt_len);
    let dsdt_at = align16(fadt_at + FADT_LEN);
    let madt_at = align16(dsdt_at + dsdt.len());
    let total = madt_at + madt.len();
    let addr = |off: usize| base + off as u64;

    // FADT (revision 6): DSDT at 40 (32-bit) and 140 (X_DSDT), flags at 112, IA-PC
    // boot flags at 109, FADT minor version at 131; everything else zero.
    let mut fadt_body = alloc::vec![0u8; FADT_LEN - 36];
    let at = |off: usize| off - 36;
    put_u32(&mut fadt_body, at(40), addr(dsdt_at) as u32);
    fadt_body[at(109)..at(111)]
        .copy_from_slice(&(FADT_BOOT_NO_VGA | FADT_BOOT_NO_CMOS_RTC).to_le_bytes());
    put_u32(&mut fadt_body, at(112), FADT_HW_REDUCED);
    fadt_body[at(131)] = 5;
    put_u64(&mut fadt_body, at(140), addr(dsdt_at));
    let fadt = table(b"FACP", 6, &fadt_body);

    let mut xsdt_body = Vec::new();
    xsdt_body.extend_from_slice(&addr(fadt_at).to_le_bytes());
    xsdt_body.extend_from_slice(&addr(madt_at).to_le_bytes());
    let xsdt = table(b"XSDT", 1, &xsdt_body);

    // RSDP revision 2: signature, checksum of the first 20 bytes, OEM id, revision,
    // RSDT address 0 (only the XSDT), length, XSDT address, extended checksum.
    let mut rsdp = Vec::with_capacity(36);
    rsdp.extend_from_slice(b"RSD PTR ");
    rsdp.push(0);
    rsdp.extend_from_slice(OEM_ID);
    rsdp.push(2);
    rsdp.extend_from_slice(&0u32.to_le_bytes());
    rsdp.extend_from_slice(&36u32.to_le_bytes());
    rsdp.extend_from_slice(&addr(xsdt_at).to_le_bytes());
    rsdp.extend_from_slice(&[0, 0, 0, 0]);
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(&rsdp);

    let mut out = alloc::vec![0u8; total];
    for (off, t) in [
        (rsdp_at, &rsdp),
        (xsdt_at, &xsdt),
        (fadt_at, &fadt),
        (dsdt_at, &dsdt),
        (madt_at, &madt),
    ] {
        out[off..off + t.len()].copy_from_slice(t);
    }
    (out, addr(rsdp_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_sums_to_zero_and_the_fadt_is_hardware_reduced() {
        let (b, _) = build(0x10_0000, 2, 2);
        assert_eq!(&b[..8], b"RSD PTR ");
        assert_eq!(b[..20].iter().fold(0u8, |a, &x| a.wrapping_add(x)), 0);
        assert_eq!(b[..36].iter().fold(0u8, |a, &x| a.wrapping_add(x)), 0);
        let xsdt = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize - 0x10_0000;
        let len = |at: usize| u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        let entries: Vec<usize> = (0..(len(xsdt) - 36) / 8)
            .map(|i| {
                let at = xsdt + 36 + 8 * i;
                u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize - 0x10_0000
            })
            .collect();
        for &t in [xsdt].iter().chain(&entries) {
            assert_eq!(
                b[t..t + len(t)].iter().fold(0u8, |a, &x| a.wrapping_add(x)),
                0
            );
        }
        let fadt = entries[0];
        assert_eq!(&b[fadt..fadt + 4], b"FACP");
        assert_eq!(len(fadt), FADT_LEN);
        let flags = u32::from_le_bytes(b[fadt + 112..fadt + 116].try_into().unwrap());
        assert_ne!(flags & FADT_HW_REDUCED, 0);
        assert_eq!(&b[entries[1]..entries[1] + 4], b"APIC");
    }
}
