//! `struct hvm_start_info` (`arch-x86/hvm/start_info.h`), read by offset.

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const MAGIC: u32 = 0x336e_c578;
/// `XEN_HVM_MEMMAP_TYPE_RAM`.
pub const MEMMAP_TYPE_RAM: u32 = 1;

/// Everything above this is not identity-mapped (see [`crate::mm`]).
const IDENTITY_LIMIT: u64 = 1 << 30;

/// One `hvm_memmap_table_entry`.
#[derive(Clone, Copy, Debug)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

impl MemmapEntry {
    pub fn end(&self) -> u64 {
        self.addr + self.size
    }
}

/// The start info the hypervisor passed in EBX.
#[derive(Clone, Copy, Debug)]
pub struct StartInfo {
    paddr: u64,
}

fn read_u32(paddr: u64) -> u32 {
    assert!(paddr + 4 <= IDENTITY_LIMIT, "start info field above 1 GiB");
    // SAFETY: identity-mapped guest memory below 1 GiB; the hypervisor placed it there.
    unsafe { core::ptr::read_unaligned(paddr as *const u32) }
}

fn read_u64(paddr: u64) -> u64 {
    assert!(paddr + 8 <= IDENTITY_LIMIT, "start info field above 1 GiB");
    // SAFETY: as in `read_u32`.
    unsafe { core::ptr::read_unaligned(paddr as *const u64) }
}

impl StartInfo {
    /// # Safety
    /// `paddr` must be the start-info address the hypervisor passed at entry.
    pub unsafe fn from_paddr(paddr: u64) -> Self {
        Self { paddr }
    }

    pub fn paddr(&self) -> u64 {
        self.paddr
    }

    pub fn magic(&self) -> u32 {
        read_u32(self.paddr)
    }

    pub fn version(&self) -> u32 {
        read_u32(self.paddr + 4)
    }

    pub fn flags(&self) -> u32 {
        read_u32(self.paddr + 8)
    }

    pub fn nr_modules(&self) -> u32 {
        read_u32(self.paddr + 12)
    }

    pub fn cmdline_paddr(&self) -> u64 {
        read_u64(self.paddr + 24)
    }

    pub fn rsdp_paddr(&self) -> u64 {
        read_u64(self.paddr + 32)
    }

    /// The memory map (empty for version 0 or if none was given).
    pub fn memmap(&self) -> impl Iterator<Item = MemmapEntry> + '_ {
        let (base, n) = if self.version() >= 1 {
            (read_u64(self.paddr + 40), read_u32(self.paddr + 48))
        } else {
            (0, 0)
        };
        (0..u64::from(n)).map(move |i| {
            let e = base + 24 * i;
            MemmapEntry {
                addr: read_u64(e),
                size: read_u64(e + 8),
                kind: read_u32(e + 16),
            }
        })
    }

    /// The modules (`hvm_modlist_entry`): (guest-physical address, bytes) of each.
    pub fn modules(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let base = read_u64(self.paddr + 16);
        let n = if base == 0 { 0 } else { self.nr_modules() };
        (0..u64::from(n)).map(move |i| (read_u64(base + 32 * i), read_u64(base + 32 * i + 8)))
    }

    /// Total bytes of RAM in the memory map.
    pub fn ram_bytes(&self) -> u64 {
        self.memmap()
            .filter(|e| e.kind == MEMMAP_TYPE_RAM)
            .map(|e| e.size)
            .sum()
    }

    /// End (exclusive) of the highest RAM entry, or 0 without a memory map.
    pub fn ram_end(&self) -> u64 {
        self.memmap()
            .filter(|e| e.kind == MEMMAP_TYPE_RAM)
            .map(|e| e.end())
            .max()
            .unwrap_or(0)
    }

    /// The command line ("" if none, or if it is not UTF-8).
    pub fn cmdline(&self) -> &'static str {
        let p = self.cmdline_paddr();
        if p == 0 || p >= IDENTITY_LIMIT {
            return "";
        }
        let max = (IDENTITY_LIMIT - p).min(4096) as usize;
        // SAFETY: identity-mapped guest memory, bounded below 1 GiB; the hypervisor
        // wrote a NUL-terminated string there and nothing writes it afterwards.
        let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, max) };
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(max);
        core::str::from_utf8(&bytes[..len]).unwrap_or("")
    }

    /// The value of `key=value` in the command line, if present.
    pub fn cmdline_arg(&self, key: &str) -> Option<&'static str> {
        self.cmdline().split_ascii_whitespace().find_map(|w| {
            let (k, v) = w.split_once('=')?;
            (k == key).then_some(v)
        })
    }
}
