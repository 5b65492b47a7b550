//! The PVH entry: the Xen ELF note, the 32-bit entry point, the switch to long mode,
//! and the exception stubs.
//!
//! oxen starts the vCPU like Xen starts a PVH guest: 32-bit flat protected mode, paging
//! off, interrupts off, no stack, EBX = guest-physical address of `hvm_start_info`.
//! The entry builds page tables identity-mapping the first GiB with 2 MiB pages, enables
//! PAE + EFER.LME + CR0.PG, loads a 64-bit GDT and far-jumps to 64-bit code, which calls
//! [`crate::rt_entry`] with the start-info address.
//!
//! All boot data (page tables, stack) lives in `.bss`, which the loader zeroes, so only
//! the non-zero page-table entries are written here.

/// Selector of the 64-bit code segment in the boot GDT.
pub const CODE_SELECTOR: u16 = 0x08;

core::arch::global_asm!(
    // The PVH entry note: owner "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), 4-byte
    // descriptor = physical address of the 32-bit entry point.
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",  // namesz ("Xen\0")
    ".long 4",  // descsz
    ".long 18", // XEN_ELFNOTE_PHYS32_ENTRY
    ".asciz \"Xen\"",
    ".balign 4",
    ".long rt_pvh_start32",
    ".balign 4",
    ".popsection",
    //
    // Boot data: page tables and the boot stack.
    ".pushsection .bss.rt_boot, \"aw\", @nobits",
    ".balign 4096",
    ".global rt_pml4",
    "rt_pml4: .skip 4096",
    ".global rt_pdpt",
    "rt_pdpt: .skip 4096",
    ".global rt_pd_low",
    "rt_pd_low: .skip 4096",
    ".global rt_pd_window",
    "rt_pd_window: .skip 4096",
    ".balign 16",
    "rt_boot_stack: .skip 65536",
    ".global rt_boot_stack_top",
    "rt_boot_stack_top:",
    ".popsection",
    //
    // The boot GDT: null, 64-bit code (0x08), data (0x10). Accessed bits preset.
    ".pushsection .data.rt_gdt, \"aw\"",
    ".balign 16",
    "rt_gdt:",
    ".quad 0",
    ".quad 0x00af9b000000ffff",
    ".quad 0x00cf93000000ffff",
    "rt_gdt_end:",
    ".balign 8",
    ".word 0, 0, 0",
    ".global rt_gdt_ptr",
    "rt_gdt_ptr:",
    ".word rt_gdt_end - rt_gdt - 1",
    ".quad rt_gdt",
    ".popsection",
    //
    // The 32-bit entry point.
    ".pushsection .text.rt_entry32, \"ax\"",
    ".code32",
    ".global rt_pvh_start32",
    "rt_pvh_start32:",
    "cli",
    "cld",
    "mov esi, ebx", // keep the start-info address (ESI survives RDMSR/WRMSR)
    "mov esp, offset rt_boot_stack_top",
    // PML4[0] -> PDPT
    "mov eax, offset rt_pdpt",
    "or eax, 0x3",
    "mov dword ptr [rt_pml4], eax",
    // PDPT[0] -> PD for the first GiB; PDPT[511] -> the window PD (see mm.rs)
    "mov eax, offset rt_pd_low",
    "or eax, 0x3",
    "mov dword ptr [rt_pdpt], eax",
    "mov eax, offset rt_pd_window",
    "or eax, 0x3",
    "mov dword ptr [rt_pdpt + 511 * 8], eax",
    // PD[i] = i * 2 MiB | PS | RW | P, i = 0..512
    "xor ecx, ecx",
    "2:",
    "mov eax, ecx",
    "shl eax, 21",
    "or eax, 0x83",
    "mov dword ptr [rt_pd_low + ecx * 8], eax",
    "inc ecx",
    "cmp ecx, 512",
    "jb 2b",
    // CR3, CR4.PAE, EFER.LME, CR0.PG|WP|NE (PE is already set)
    "mov eax, offset rt_pml4",
    "mov cr3, eax",
    "mov eax, cr4",
    "or eax, 0x620", // PAE, OSFXSR, OSXMMEXCPT (SSE usable)
    "mov cr4, eax",
    "mov ecx, 0xc0000080",
    "rdmsr",
    "or eax, 0x100",
    "wrmsr",
    "mov eax, cr0",
    "or eax, 0x80010020",
    "mov cr0, eax",
    "lgdt [rt_gdt_ptr]",
    // ljmp 0x08:rt_start64 (encoded by hand: EA imm32 imm16)
    ".byte 0xea",
    ".long rt_start64",
    ".word 0x08",
    //
    ".code64",
    "rt_start64:",
    "mov eax, 0x10",
    "mov ds, eax",
    "mov es, eax",
    "mov ss, eax",
    "xor eax, eax",
    "mov fs, eax",
    "mov gs, eax",
    "lgdt [rip + rt_gdt_ptr]", // reload with the full 64-bit base
    "lea rsp, [rip + rt_boot_stack_top]",
    "mov edi, esi", // start_info_paddr (zero-extended)
    "xor ebp, ebp",
    "call {entry}",
    "3:",
    "cli",
    "hlt",
    "jmp 3b",
    ".popsection",
    entry = sym crate::rt_entry,
);

// Interrupt stubs for every vector, each 16-byte aligned at `rt_isr_stubs + 16 * vector`
// (the exceptions 0..32 are installed at boot, others by `fault::route_vector`). Vectors
// without a CPU-pushed error code push a zero so every frame has the same layout.
core::arch::global_asm!(
    ".pushsection .text.rt_isr, \"ax\"",
    ".balign 16",
    ".global rt_isr_stubs",
    "rt_isr_stubs:",
    ".set rt_vec, 0",
    ".rept 256",
    ".balign 16",
    ".if (rt_vec == 8) || (rt_vec == 10) || (rt_vec == 11) || (rt_vec == 12) || (rt_vec == 13) || (rt_vec == 14) || (rt_vec == 17) || (rt_vec == 21) || (rt_vec == 29) || (rt_vec == 30)",
    ".else",
    "push 0",
    ".endif",
    "push rt_vec",
    "jmp rt_isr_common",
    ".set rt_vec, rt_vec + 1",
    ".endr",
    //
    "rt_isr_common:",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rdi, rsp",
    "cld",
    "call {handler}",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "add rsp, 16",
    "iretq",
    ".popsection",
    handler = sym crate::fault::rt_exception,
);

// `rt_try_call(f, ctx, slot) -> u64`: calls `f(ctx)`; returns 0 if it returned, or
// `0x100 | vector` if it raised an exception. `slot` is the calling vCPU's recovery
// slot (landing-pad RIP, RSP); the exception handler resumes at the landing pad with
// RSP = the saved value and RAX = the result (see fault.rs).
core::arch::global_asm!(
    ".pushsection .text.rt_try_call, \"ax\"",
    ".global rt_try_call",
    "rt_try_call:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8", // keep RSP 16-byte aligned at the call below
    // RDX: this vCPU's recovery slot (RIP, then RSP).
    "mov r12, rdx",
    "mov qword ptr [r12 + 8], rsp",
    "lea rax, [rip + 4f]",
    "mov qword ptr [r12], rax",
    "mov rax, rdi",
    "mov rdi, rsi",
    "call rax",
    // Returned: R12 survived the call (callee-saved). After an exception the handler
    // has cleared the slot and resumes at 4 (where R12 is whatever it was at the fault).
    "mov qword ptr [r12], 0",
    "xor eax, eax",
    "4:",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".popsection",
);
