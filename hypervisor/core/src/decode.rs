//! Decoding the instruction behind an emulated memory access (an EPT violation on
//! guest-physical memory that no RAM backs): the MOV forms that device drivers use to
//! touch MMIO registers. The hypervisor fetches the bytes at the guest's RIP, this
//! decides how long the instruction is, how wide the access, and which register or
//! immediate is involved; the caller performs it (all ones for a read of memory nobody
//! backs, a dropped write).
//!
//! Covered: `MOV r/m, r` (88, 89), `MOV r, r/m` (8A, 8B), `MOV r/m, imm` (C6 /0,
//! C7 /0), `MOVZX r, r/m8|16` (0F B6, 0F B7), with the operand-size (66), address-size
//! (67, 32- or 64-bit addressing only), segment-override and REX prefixes, ModRM, SIB
//! and displacements, in 64-bit and 32-bit code. Anything else is refused: the caller
//! crashes the domain with the reason.

/// A general register as an instruction names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg {
    /// 0..16 in the SDM's order (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15).
    pub num: u8,
    /// AH, CH, DH or BH: bits 15:8 of register `num` (0..4), an 8-bit operand without
    /// REX.
    pub high_byte: bool,
}

/// What the instruction does with the memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Loads `size` bytes into `dst`; `zero_extend_to` is the destination's width when
    /// it is wider than the memory operand (MOVZX), else equal to the size.
    Load { dst: Reg, zero_extend_to: u8 },
    /// Stores `size` bytes of `src`.
    StoreReg { src: Reg },
    /// Stores `size` bytes of this immediate (already sign-extended).
    StoreImm { value: u64 },
}

/// A decoded memory-touching MOV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemMov {
    /// Bytes of the instruction (RIP moves by this much).
    pub len: u8,
    /// Bytes of the memory operand: 1, 2, 4 or 8.
    pub size: u8,
    pub access: Access,
}

/// Why the bytes were not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ended inside the instruction (or there are more than 15).
    Truncated,
    /// An opcode, prefix or addressing form this decoder does not emulate.
    Unsupported(u8),
    /// The ModRM names a register, not memory (such an instruction cannot fault on
    /// memory).
    NotMemory,
}

/// Decodes `bytes` (up to 15, from the guest's RIP). `long` is 64-bit mode;
/// `default32` the code segment's default operand size (CS.D) outside it.
pub fn decode_mov(bytes: &[u8], long: bool, default32: bool) -> Result<MemMov, DecodeError> {
    let bytes = &bytes[..bytes.len().min(15)];
    let mut at = 0;
    let next = |at: &mut usize| -> Result<u8, DecodeError> {
        let b = *bytes.get(*at).ok_or(DecodeError::Truncated)?;
        *at += 1;
        Ok(b)
    };
    let mut opsize16 = false;
    let mut addr_override = false;
    let mut rex = 0u8;
    let mut b = next(&mut at)?;
    loop {
        match b {
            0x66 => opsize16 = true,
            0x67 => addr_override = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            0x40..=0x4f if long => {
                rex = b;
                b = next(&mut at)?;
                // REX must come last.
                if matches!(b, 0x66 | 0x67 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65) {
                    return Err(DecodeError::Unsupported(b));
                }
                break;
            }
            _ => break,
        }
        rex = 0;
        b = next(&mut at)?;
    }
    // 16-bit addressing (16-bit code, or 32-bit code with 67) has another ModRM
    // table: not emulated.
    if !long && addr_override == default32 {
        return Err(DecodeError::Unsupported(0x67));
    }
    let full = if long {
        if rex & 8 != 0 {
            8
        } else if opsize16 {
            2
        } else {
            4
        }
    } else if opsize16 == default32 {
        2
    } else {
        4
    };
    let (size, kind, imm) = match b {
        0x88 => (1, 0u8, 0),
        0x89 => (full, 0, 0),
        0x8a => (1, 1, 0),
        0x8b => (full, 1, 0),
        0xc6 => (1, 2, 1),
        0xc7 => (full, 2, full.min(4)),
        0x0f => {
            let b2 = next(&mut at)?;
            match b2 {
                0xb6 => (1, 3, 0),
                0xb7 => (2, 3, 0),
                _ => return Err(DecodeError::Unsupported(b2)),
            }
        }
        _ => return Err(DecodeError::Unsupported(b)),
    };
    let modrm = next(&mut at)?;
    let md = modrm >> 6;
    let reg_field = ((modrm >> 3) & 7) | if rex & 4 != 0 { 8 } else { 0 };
    let rm = modrm & 7;
    if md == 3 {
        return Err(DecodeError::NotMemory);
    }
    if kind == 2 && reg_field & 7 != 0 {
        // C6/C7 with /r other than 0 are not MOV.
        return Err(DecodeError::Unsupported(b));
    }
    // SIB and displacement (32- and 64-bit addressing).
    let mut disp = match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    if rm == 4 {
        let sib = next(&mut at)?;
        if md == 0 && sib & 7 == 5 {
            disp = 4;
        }
    } else if md == 0 && rm == 5 {
        disp = 4;
    }
    for _ in 0..disp {
        next(&mut at)?;
    }
    let mut value = 0u64;
    for i in 0..imm {
        value |= u64::from(next(&mut at)?) << (8 * i);
    }
    if imm == 4 && size == 8 {
        // imm32 sign-extended to 64 bits.
        value = value as u32 as i32 as i64 as u64;
    }
    let reg8 = |n: u8| Reg {
        num: if rex == 0 && (4..8).contains(&n) {
            n - 4
        } else {
            n
        },
        high_byte: rex == 0 && (4..8).contains(&n),
    };
    let reg = |n: u8| Reg {
        num: n,
        high_byte: false,
    };
    let access = match kind {
        0 => Access::StoreReg {
            src: if size == 1 {
                reg8(reg_field)
            } else {
                reg(reg_field)
            },
        },
        1 => Access::Load {
            dst: if size == 1 {
                reg8(reg_field)
            } else {
                reg(reg_field)
            },
            zero_extend_to: size,
        },
        2 => Access::StoreImm { value },
        _ => Access::Load {
            dst: reg(reg_field),
            zero_extend_to: full,
        },
    };
    Ok(MemMov {
        len: at as u8,
        size,
        access,
    })
}

/// The new value of a 64-bit register `old` after loading `value` (`size` bytes,
/// zero-extended to `width` bytes) into it, as the CPU writes a destination in 64-bit
/// mode (a 32-bit write clears bits 63:32; 8- and 16-bit writes merge; `high_byte`
/// writes bits 15:8).
pub fn merge_load(old: u64, value: u64, width: u8, high_byte: bool) -> u64 {
    if high_byte {
        return (old & !0xff00) | ((value & 0xff) << 8);
    }
    match width {
        1 => (old & !0xff) | (value & 0xff),
        2 => (old & !0xffff) | (value & 0xffff),
        4 => value & 0xffff_ffff,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(num: u8) -> Reg {
        Reg {
            num,
            high_byte: false,
        }
    }

    #[test]
    fn loads_in_64_bit_mode() {
        // mov eax, [rdi]
        assert_eq!(
            decode_mov(&[0x8b, 0x07], true, true),
            Ok(MemMov {
                len: 2,
                size: 4,
                access: Access::Load {
                    dst: r(0),
                    zero_extend_to: 4
                }
            })
        );
        // mov r9, [rax + rcx*8 + 0x12345678]  (REX.WR, SIB, disp32)
        let m = decode_mov(
            &[0x4c, 0x8b, 0x8c, 0xc8, 0x78, 0x56, 0x34, 0x12],
            true,
            true,
        )
        .unwrap();
        assert_eq!((m.len, m.size), (8, 8));
        assert_eq!(
            m.access,
            Access::Load {
                dst: r(9),
                zero_extend_to: 8
            }
        );
        // mov ax, [rip + 0x10] (66, RIP-relative disp32)
        let m = decode_mov(&[0x66, 0x8b, 0x05, 0x10, 0, 0, 0], true, true).unwrap();
        assert_eq!((m.len, m.size), (7, 2));
        // mov ah, [rbx] vs mov spl, [rbx] (REX turns 4 into SPL)
        let m = decode_mov(&[0x8a, 0x23], true, true).unwrap();
        assert_eq!(
            m.access,
            Access::Load {
                dst: Reg {
                    num: 0,
                    high_byte: true
                },
                zero_extend_to: 1
            }
        );
        let m = decode_mov(&[0x40, 0x8a, 0x23], true, true).unwrap();
        assert_eq!(
            m.access,
            Access::Load {
                dst: r(4),
                zero_extend_to: 1
            }
        );
        // movzx ecx, byte [rsi + 8]; movzx r10d, word [r8]
        let m = decode_mov(&[0x0f, 0xb6, 0x4e, 0x08], true, true).unwrap();
        assert_eq!((m.len, m.size), (4, 1));
        assert_eq!(
            m.access,
            Access::Load {
                dst: r(1),
                zero_extend_to: 4
            }
        );
        let m = decode_mov(&[0x45, 0x0f, 0xb7, 0x10], true, true).unwrap();
        assert_eq!((m.len, m.size), (4, 2));
        assert_eq!(
            m.access,
            Access::Load {
                dst: r(10),
                zero_extend_to: 4
            }
        );
    }

    #[test]
    fn stores_and_immediates() {
        // mov [rdx], r8b ; mov dword [rbp - 4], 0xdeadbeef ; mov qword [rax], -1
        let m = decode_mov(&[0x44, 0x88, 0x02], true, true).unwrap();
        assert_eq!(
            (m.len, m.size, m.access),
            (3, 1, Access::StoreReg { src: r(8) })
        );
        let m = decode_mov(&[0xc7, 0x45, 0xfc, 0xef, 0xbe, 0xad, 0xde], true, true).unwrap();
        assert_eq!(
            (m.len, m.size, m.access),
            (7, 4, Access::StoreImm { value: 0xdead_beef })
        );
        let m = decode_mov(&[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff], true, true).unwrap();
        assert_eq!(
            (m.len, m.size, m.access),
            (7, 8, Access::StoreImm { value: u64::MAX })
        );
        // mov word [rax], 0x1234 ; mov byte [fs:rax], 7
        let m = decode_mov(&[0x66, 0xc7, 0x00, 0x34, 0x12], true, true).unwrap();
        assert_eq!(
            (m.len, m.size, m.access),
            (5, 2, Access::StoreImm { value: 0x1234 })
        );
        let m = decode_mov(&[0x64, 0xc6, 0x00, 0x07], true, true).unwrap();
        assert_eq!(
            (m.len, m.size, m.access),
            (4, 1, Access::StoreImm { value: 7 })
        );
    }

    #[test]
    fn thirty_two_bit_code() {
        // mov eax, [0xfed000f0] (disp32 alone), 32-bit code: 0x40 is INC there.
        let m = decode_mov(&[0x8b, 0x05, 0xf0, 0x00, 0xd0, 0xfe], false, true).unwrap();
        assert_eq!((m.len, m.size), (6, 4));
        assert_eq!(
            decode_mov(&[0x40, 0x8b, 0x00], false, true),
            Err(DecodeError::Unsupported(0x40))
        );
        // 66 gives 16-bit operands; 67 (16-bit addressing) is not emulated.
        assert_eq!(
            decode_mov(&[0x66, 0x89, 0x03], false, true).unwrap().size,
            2
        );
        assert_eq!(
            decode_mov(&[0x67, 0x8b, 0x07], false, true),
            Err(DecodeError::Unsupported(0x67))
        );
    }

    #[test]
    fn what_is_refused() {
        assert_eq!(
            decode_mov(&[0x8b, 0xc1], true, true),
            Err(DecodeError::NotMemory)
        );
        assert_eq!(decode_mov(&[0x8b], true, true), Err(DecodeError::Truncated));
        assert_eq!(
            decode_mov(&[0xc7, 0x00, 1, 2], true, true),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode_mov(&[0x01, 0x00], true, true),
            Err(DecodeError::Unsupported(0x01))
        );
        assert_eq!(
            decode_mov(&[0xc7, 0x08, 0, 0, 0, 0], true, true),
            Err(DecodeError::Unsupported(0xc7))
        );
        assert_eq!(
            decode_mov(&[0x48, 0x66, 0x8b, 0x00], true, true),
            Err(DecodeError::Unsupported(0x66))
        );
        assert_eq!(
            decode_mov(&[0x66; 20], true, true),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn loads_write_registers_as_the_cpu_does() {
        let old = 0x1122_3344_5566_7788;
        assert_eq!(merge_load(old, u64::MAX, 4, false), 0xffff_ffff);
        assert_eq!(merge_load(old, u64::MAX, 2, false), 0x1122_3344_5566_ffff);
        assert_eq!(merge_load(old, u64::MAX, 1, false), 0x1122_3344_5566_77ff);
        assert_eq!(merge_load(old, 0xab, 1, true), 0x1122_3344_5566_ab88);
        assert_eq!(merge_load(old, u64::MAX, 8, false), u64::MAX);
    }
}
