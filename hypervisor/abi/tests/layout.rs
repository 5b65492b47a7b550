//! Checks our Rust definitions against the real Xen public headers: a C program that
//! includes them prints every `sizeof`/`offsetof` and constant, and we compare.
//!
//! Needs a C compiler (`cc`) and the Xen headers from the Debian package `libxen-dev`.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use oxen_abi::*;

const HEADERS: &str = r#"
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#define __XEN_TOOLS__ 1
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <xen/xen.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/sched.h>
#include <xen/version.h>
#include <xen/elfnote.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/vcpu.h>
#include <xen/hvm/hvm_vcpu.h>
#include <xen/domctl.h>
#include <xen/sysctl.h>
#include <xen/arch-x86/hvm/save.h>
#include <xen/memory.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/io/console.h>
#include <xen/io/xs_wire.h>
"#;

/// (name printed by the C program, C expression, Rust value)
fn expectations() -> Vec<(&'static str, &'static str, u64)> {
    macro_rules! sz {
        ($c:literal, $r:ty) => {
            (
                concat!("sizeof ", $c),
                concat!("sizeof(", $c, ")"),
                size_of::<$r>() as u64,
            )
        };
    }
    macro_rules! off {
        ($c:literal, $cf:literal, $r:ty, $rf:ident) => {
            (
                concat!("offsetof ", $c, ".", $cf),
                concat!("offsetof(", $c, ", ", $cf, ")"),
                offset_of!($r, $rf) as u64,
            )
        };
    }
    // An offset in a C structure that Rust keeps as a plain constant.
    macro_rules! c_off {
        ($c:literal, $cf:literal, $v:expr) => {
            (
                concat!("offsetof ", $c, ".", $cf),
                concat!("offsetof(", $c, ", ", $cf, ")"),
                $v as u64,
            )
        };
    }
    macro_rules! konst {
        ($c:literal, $v:expr) => {
            ($c, $c, $v as u64)
        };
    }
    vec![
        sz!("struct hvm_start_info", HvmStartInfo),
        off!("struct hvm_start_info", "magic", HvmStartInfo, magic),
        off!("struct hvm_start_info", "version", HvmStartInfo, version),
        off!("struct hvm_start_info", "flags", HvmStartInfo, flags),
        off!(
            "struct hvm_start_info",
            "nr_modules",
            HvmStartInfo,
            nr_modules
        ),
        off!(
            "struct hvm_start_info",
            "modlist_paddr",
            HvmStartInfo,
            modlist_paddr
        ),
        off!(
            "struct hvm_start_info",
            "cmdline_paddr",
            HvmStartInfo,
            cmdline_paddr
        ),
        off!(
            "struct hvm_start_info",
            "rsdp_paddr",
            HvmStartInfo,
            rsdp_paddr
        ),
        off!(
            "struct hvm_start_info",
            "memmap_paddr",
            HvmStartInfo,
            memmap_paddr
        ),
        off!(
            "struct hvm_start_info",
            "memmap_entries",
            HvmStartInfo,
            memmap_entries
        ),
        off!("struct hvm_start_info", "reserved", HvmStartInfo, reserved),
        sz!("struct hvm_memmap_table_entry", HvmMemmapEntry),
        off!(
            "struct hvm_memmap_table_entry",
            "addr",
            HvmMemmapEntry,
            addr
        ),
        off!(
            "struct hvm_memmap_table_entry",
            "size",
            HvmMemmapEntry,
            size
        ),
        off!(
            "struct hvm_memmap_table_entry",
            "type",
            HvmMemmapEntry,
            type_
        ),
        off!(
            "struct hvm_memmap_table_entry",
            "reserved",
            HvmMemmapEntry,
            reserved
        ),
        sz!("struct hvm_modlist_entry", HvmModlistEntry),
        off!("struct hvm_modlist_entry", "paddr", HvmModlistEntry, paddr),
        off!("struct hvm_modlist_entry", "size", HvmModlistEntry, size),
        off!(
            "struct hvm_modlist_entry",
            "cmdline_paddr",
            HvmModlistEntry,
            cmdline_paddr
        ),
        off!(
            "struct hvm_modlist_entry",
            "reserved",
            HvmModlistEntry,
            reserved
        ),
        sz!("struct sched_shutdown", SchedShutdown),
        off!("struct sched_shutdown", "reason", SchedShutdown, reason),
        sz!("struct xen_feature_info", XenFeatureInfo),
        off!(
            "struct xen_feature_info",
            "submap_idx",
            XenFeatureInfo,
            submap_idx
        ),
        off!("struct xen_feature_info", "submap", XenFeatureInfo, submap),
        sz!("struct xen_platform_parameters", XenPlatformParameters),
        off!(
            "struct xen_platform_parameters",
            "virt_start",
            XenPlatformParameters,
            virt_start
        ),
        sz!("struct xen_compile_info", XenCompileInfo),
        off!(
            "struct xen_compile_info",
            "compiler",
            XenCompileInfo,
            compiler
        ),
        off!(
            "struct xen_compile_info",
            "compile_by",
            XenCompileInfo,
            compile_by
        ),
        off!(
            "struct xen_compile_info",
            "compile_domain",
            XenCompileInfo,
            compile_domain
        ),
        off!(
            "struct xen_compile_info",
            "compile_date",
            XenCompileInfo,
            compile_date
        ),
        konst!("XEN_HVM_START_MAGIC_VALUE", HVM_START_MAGIC),
        konst!("XEN_HVM_MEMMAP_TYPE_RAM", memmap_type::RAM),
        konst!("XEN_HVM_MEMMAP_TYPE_RESERVED", memmap_type::RESERVED),
        konst!("XEN_HVM_MEMMAP_TYPE_ACPI", memmap_type::ACPI),
        konst!("XEN_HVM_MEMMAP_TYPE_NVS", memmap_type::NVS),
        konst!("XEN_HVM_MEMMAP_TYPE_UNUSABLE", memmap_type::UNUSABLE),
        konst!("XEN_HVM_MEMMAP_TYPE_DISABLED", memmap_type::DISABLED),
        konst!("XEN_HVM_MEMMAP_TYPE_PMEM", memmap_type::PMEM),
        konst!("SIF_PRIVILEGED", sif::PRIVILEGED),
        konst!("SIF_INITDOMAIN", sif::INITDOMAIN),
        konst!("SIF_MULTIBOOT_MOD", sif::MULTIBOOT_MOD),
        konst!("SIF_MOD_START_PFN", sif::MOD_START_PFN),
        konst!("SIF_VIRT_P2M_4TOOLS", sif::VIRT_P2M_4TOOLS),
        konst!("SIF_PM_MASK", sif::PM_MASK),
        konst!("XEN_ELFNOTE_INFO", elfnote::INFO),
        konst!("XEN_ELFNOTE_ENTRY", elfnote::ENTRY),
        konst!("XEN_ELFNOTE_HYPERCALL_PAGE", elfnote::HYPERCALL_PAGE),
        konst!("XEN_ELFNOTE_VIRT_BASE", elfnote::VIRT_BASE),
        konst!("XEN_ELFNOTE_PADDR_OFFSET", elfnote::PADDR_OFFSET),
        konst!("XEN_ELFNOTE_XEN_VERSION", elfnote::XEN_VERSION),
        konst!("XEN_ELFNOTE_GUEST_OS", elfnote::GUEST_OS),
        konst!("XEN_ELFNOTE_GUEST_VERSION", elfnote::GUEST_VERSION),
        konst!("XEN_ELFNOTE_LOADER", elfnote::LOADER),
        konst!("XEN_ELFNOTE_PAE_MODE", elfnote::PAE_MODE),
        konst!("XEN_ELFNOTE_FEATURES", elfnote::FEATURES),
        konst!("XEN_ELFNOTE_BSD_SYMTAB", elfnote::BSD_SYMTAB),
        konst!("XEN_ELFNOTE_HV_START_LOW", elfnote::HV_START_LOW),
        konst!("XEN_ELFNOTE_L1_MFN_VALID", elfnote::L1_MFN_VALID),
        konst!("XEN_ELFNOTE_SUSPEND_CANCEL", elfnote::SUSPEND_CANCEL),
        konst!("XEN_ELFNOTE_INIT_P2M", elfnote::INIT_P2M),
        konst!("XEN_ELFNOTE_MOD_START_PFN", elfnote::MOD_START_PFN),
        konst!(
            "XEN_ELFNOTE_SUPPORTED_FEATURES",
            elfnote::SUPPORTED_FEATURES
        ),
        konst!("XEN_ELFNOTE_PHYS32_ENTRY", elfnote::PHYS32_ENTRY),
        konst!("SCHEDOP_shutdown", sched_op::SHUTDOWN),
        konst!("SHUTDOWN_poweroff", sched_op::SHUTDOWN_POWEROFF),
        konst!("SHUTDOWN_reboot", sched_op::SHUTDOWN_REBOOT),
        konst!("SHUTDOWN_suspend", sched_op::SHUTDOWN_SUSPEND),
        konst!("SHUTDOWN_crash", sched_op::SHUTDOWN_CRASH),
        konst!("SHUTDOWN_watchdog", sched_op::SHUTDOWN_WATCHDOG),
        konst!("XENVER_compile_info", xen_version::COMPILE_INFO),
        konst!(
            "XENVER_platform_parameters",
            xen_version::PLATFORM_PARAMETERS
        ),
        konst!("XENVER_get_features", xen_version::GET_FEATURES),
        konst!(
            "XENFEAT_writable_page_tables",
            xenfeat::WRITABLE_PAGE_TABLES
        ),
        konst!(
            "XENFEAT_writable_descriptor_tables",
            xenfeat::WRITABLE_DESCRIPTOR_TABLES
        ),
        konst!(
            "XENFEAT_auto_translated_physmap",
            xenfeat::AUTO_TRANSLATED_PHYSMAP
        ),
        konst!(
            "XENFEAT_supervisor_mode_kernel",
            xenfeat::SUPERVISOR_MODE_KERNEL
        ),
        konst!("XENFEAT_pae_pgdir_above_4gb", xenfeat::PAE_PGDIR_ABOVE_4GB),
        konst!(
            "XENFEAT_mmu_pt_update_preserve_ad",
            xenfeat::MMU_PT_UPDATE_PRESERVE_AD
        ),
        konst!("XENFEAT_highmem_assist", xenfeat::HIGHMEM_ASSIST),
        konst!(
            "XENFEAT_gnttab_map_avail_bits",
            xenfeat::GNTTAB_MAP_AVAIL_BITS
        ),
        konst!("XENFEAT_hvm_callback_vector", xenfeat::HVM_CALLBACK_VECTOR),
        konst!("XENFEAT_hvm_safe_pvclock", xenfeat::HVM_SAFE_PVCLOCK),
        konst!("XENFEAT_hvm_pirqs", xenfeat::HVM_PIRQS),
        konst!("XENFEAT_dom0", xenfeat::DOM0),
        konst!(
            "XENFEAT_memory_op_vnode_supported",
            xenfeat::MEMORY_OP_VNODE_SUPPORTED
        ),
        konst!("XENFEAT_ARM_SMCCC_supported", xenfeat::ARM_SMCCC_SUPPORTED),
        konst!(
            "XENFEAT_linux_rsdp_unrestricted",
            xenfeat::LINUX_RSDP_UNRESTRICTED
        ),
        konst!("XENFEAT_not_direct_mapped", xenfeat::NOT_DIRECT_MAPPED),
        konst!("XENFEAT_direct_mapped", xenfeat::DIRECT_MAPPED),
        konst!("XENFEAT_NR_SUBMAPS", xenfeat::NR_SUBMAPS),
        sz!("struct evtchn_alloc_unbound", evtchn::EvtchnAllocUnbound),
        off!(
            "struct evtchn_alloc_unbound",
            "dom",
            evtchn::EvtchnAllocUnbound,
            dom
        ),
        off!(
            "struct evtchn_alloc_unbound",
            "remote_dom",
            evtchn::EvtchnAllocUnbound,
            remote_dom
        ),
        off!(
            "struct evtchn_alloc_unbound",
            "port",
            evtchn::EvtchnAllocUnbound,
            port
        ),
        sz!(
            "struct evtchn_bind_interdomain",
            evtchn::EvtchnBindInterdomain
        ),
        off!(
            "struct evtchn_bind_interdomain",
            "remote_dom",
            evtchn::EvtchnBindInterdomain,
            remote_dom
        ),
        off!(
            "struct evtchn_bind_interdomain",
            "remote_port",
            evtchn::EvtchnBindInterdomain,
            remote_port
        ),
        off!(
            "struct evtchn_bind_interdomain",
            "local_port",
            evtchn::EvtchnBindInterdomain,
            local_port
        ),
        sz!("struct evtchn_bind_virq", evtchn::EvtchnBindVirq),
        off!(
            "struct evtchn_bind_virq",
            "virq",
            evtchn::EvtchnBindVirq,
            virq
        ),
        off!(
            "struct evtchn_bind_virq",
            "vcpu",
            evtchn::EvtchnBindVirq,
            vcpu
        ),
        off!(
            "struct evtchn_bind_virq",
            "port",
            evtchn::EvtchnBindVirq,
            port
        ),
        sz!("struct evtchn_bind_ipi", evtchn::EvtchnBindIpi),
        off!(
            "struct evtchn_bind_ipi",
            "vcpu",
            evtchn::EvtchnBindIpi,
            vcpu
        ),
        off!(
            "struct evtchn_bind_ipi",
            "port",
            evtchn::EvtchnBindIpi,
            port
        ),
        sz!("struct evtchn_close", evtchn::EvtchnClose),
        off!("struct evtchn_close", "port", evtchn::EvtchnClose, port),
        sz!("struct evtchn_send", evtchn::EvtchnSend),
        off!("struct evtchn_send", "port", evtchn::EvtchnSend, port),
        sz!("struct evtchn_status", evtchn::EvtchnStatus),
        off!("struct evtchn_status", "dom", evtchn::EvtchnStatus, dom),
        off!("struct evtchn_status", "port", evtchn::EvtchnStatus, port),
        off!(
            "struct evtchn_status",
            "status",
            evtchn::EvtchnStatus,
            status
        ),
        off!("struct evtchn_status", "vcpu", evtchn::EvtchnStatus, vcpu),
        off!(
            "struct evtchn_status",
            "u.unbound.dom",
            evtchn::EvtchnStatus,
            u_word0
        ),
        off!(
            "struct evtchn_status",
            "u.interdomain.dom",
            evtchn::EvtchnStatus,
            u_word0
        ),
        off!(
            "struct evtchn_status",
            "u.pirq",
            evtchn::EvtchnStatus,
            u_word0
        ),
        off!(
            "struct evtchn_status",
            "u.virq",
            evtchn::EvtchnStatus,
            u_word0
        ),
        off!(
            "struct evtchn_status",
            "u.interdomain.port",
            evtchn::EvtchnStatus,
            u_word1
        ),
        sz!("struct evtchn_bind_vcpu", evtchn::EvtchnBindVcpu),
        off!(
            "struct evtchn_bind_vcpu",
            "port",
            evtchn::EvtchnBindVcpu,
            port
        ),
        off!(
            "struct evtchn_bind_vcpu",
            "vcpu",
            evtchn::EvtchnBindVcpu,
            vcpu
        ),
        sz!("struct evtchn_unmask", evtchn::EvtchnUnmask),
        off!("struct evtchn_unmask", "port", evtchn::EvtchnUnmask, port),
        sz!("struct evtchn_reset", evtchn::EvtchnReset),
        off!("struct evtchn_reset", "dom", evtchn::EvtchnReset, dom),
        (
            "sizeof struct shared_info",
            "sizeof(struct shared_info)",
            evtchn::shared_info::SIZE as u64,
        ),
        c_off!(
            "struct shared_info",
            "vcpu_info",
            evtchn::shared_info::VCPU_INFO
        ),
        c_off!(
            "struct shared_info",
            "evtchn_pending",
            evtchn::shared_info::EVTCHN_PENDING
        ),
        c_off!(
            "struct shared_info",
            "evtchn_mask",
            evtchn::shared_info::EVTCHN_MASK
        ),
        c_off!(
            "struct shared_info",
            "wc_version",
            evtchn::shared_info::WC_VERSION
        ),
        konst!(
            "XEN_LEGACY_MAX_VCPUS",
            evtchn::shared_info::LEGACY_MAX_VCPUS
        ),
        konst!(
            "sizeof(((struct shared_info *)0)->evtchn_pending) / sizeof(xen_ulong_t)",
            evtchn::EVTCHN_2L_WORDS
        ),
        konst!(
            "sizeof(((struct shared_info *)0)->evtchn_mask) / sizeof(xen_ulong_t)",
            evtchn::EVTCHN_2L_WORDS
        ),
        konst!("sizeof(xen_ulong_t) * 8", evtchn::EVTCHN_2L_BITS_PER_WORD),
        (
            "sizeof struct vcpu_info",
            "sizeof(struct vcpu_info)",
            evtchn::vcpu_info::SIZE as u64,
        ),
        c_off!(
            "struct vcpu_info",
            "evtchn_upcall_pending",
            evtchn::vcpu_info::EVTCHN_UPCALL_PENDING
        ),
        c_off!(
            "struct vcpu_info",
            "evtchn_upcall_mask",
            evtchn::vcpu_info::EVTCHN_UPCALL_MASK
        ),
        c_off!(
            "struct vcpu_info",
            "evtchn_pending_sel",
            evtchn::vcpu_info::EVTCHN_PENDING_SEL
        ),
        c_off!("struct vcpu_info", "time", evtchn::vcpu_info::TIME),
        konst!("sizeof(((struct vcpu_info *)0)->evtchn_pending_sel)", 8),
        konst!("EVTCHN_2L_NR_CHANNELS", evtchn::EVTCHN_2L_NR_CHANNELS),
        konst!("DOMID_SELF", evtchn::DOMID_SELF),
        konst!("DOMID_FIRST_RESERVED", evtchn::DOMID_FIRST_RESERVED),
        konst!("DOMID_INVALID", evtchn::DOMID_INVALID),
        konst!("sizeof(domid_t)", size_of::<evtchn::DomId>()),
        konst!("sizeof(evtchn_port_t)", size_of::<evtchn::EvtchnPort>()),
        konst!("EVTCHNOP_bind_interdomain", evtchn::op::BIND_INTERDOMAIN),
        konst!("EVTCHNOP_bind_virq", evtchn::op::BIND_VIRQ),
        konst!("EVTCHNOP_bind_pirq", evtchn::op::BIND_PIRQ),
        konst!("EVTCHNOP_close", evtchn::op::CLOSE),
        konst!("EVTCHNOP_send", evtchn::op::SEND),
        konst!("EVTCHNOP_status", evtchn::op::STATUS),
        konst!("EVTCHNOP_alloc_unbound", evtchn::op::ALLOC_UNBOUND),
        konst!("EVTCHNOP_bind_ipi", evtchn::op::BIND_IPI),
        konst!("EVTCHNOP_bind_vcpu", evtchn::op::BIND_VCPU),
        konst!("EVTCHNOP_unmask", evtchn::op::UNMASK),
        konst!("EVTCHNOP_reset", evtchn::op::RESET),
        konst!("EVTCHNOP_init_control", evtchn::op::INIT_CONTROL),
        konst!("EVTCHNOP_expand_array", evtchn::op::EXPAND_ARRAY),
        konst!("EVTCHNOP_set_priority", evtchn::op::SET_PRIORITY),
        konst!("EVTCHNSTAT_closed", evtchn::stat::CLOSED),
        konst!("EVTCHNSTAT_unbound", evtchn::stat::UNBOUND),
        konst!("EVTCHNSTAT_interdomain", evtchn::stat::INTERDOMAIN),
        konst!("EVTCHNSTAT_pirq", evtchn::stat::PIRQ),
        konst!("EVTCHNSTAT_virq", evtchn::stat::VIRQ),
        konst!("EVTCHNSTAT_ipi", evtchn::stat::IPI),
        konst!("VIRQ_TIMER", evtchn::virq::TIMER),
        konst!("VIRQ_DEBUG", evtchn::virq::DEBUG),
        konst!("VIRQ_CONSOLE", evtchn::virq::CONSOLE),
        konst!("VIRQ_DOM_EXC", evtchn::virq::DOM_EXC),
        konst!("VIRQ_TBUF", evtchn::virq::TBUF),
        konst!("VIRQ_DEBUGGER", evtchn::virq::DEBUGGER),
        konst!("VIRQ_XENOPROF", evtchn::virq::XENOPROF),
        konst!("VIRQ_CON_RING", evtchn::virq::CON_RING),
        konst!("VIRQ_PCPU_STATE", evtchn::virq::PCPU_STATE),
        konst!("VIRQ_MEM_EVENT", evtchn::virq::MEM_EVENT),
        konst!("VIRQ_ARGO", evtchn::virq::ARGO),
        konst!("VIRQ_ENOMEM", evtchn::virq::ENOMEM),
        konst!("VIRQ_XENPMU", evtchn::virq::XENPMU),
        konst!("VIRQ_ARCH_0", evtchn::virq::ARCH_0),
        konst!("VIRQ_ARCH_1", evtchn::virq::ARCH_1),
        konst!("VIRQ_ARCH_2", evtchn::virq::ARCH_2),
        konst!("VIRQ_ARCH_3", evtchn::virq::ARCH_3),
        konst!("VIRQ_ARCH_4", evtchn::virq::ARCH_4),
        konst!("VIRQ_ARCH_5", evtchn::virq::ARCH_5),
        konst!("VIRQ_ARCH_6", evtchn::virq::ARCH_6),
        konst!("VIRQ_ARCH_7", evtchn::virq::ARCH_7),
        konst!("NR_VIRQS", evtchn::virq::NR_VIRQS),
        sz!("struct grant_entry_v1", grant_table::GrantEntryV1),
        off!(
            "struct grant_entry_v1",
            "flags",
            grant_table::GrantEntryV1,
            flags
        ),
        off!(
            "struct grant_entry_v1",
            "domid",
            grant_table::GrantEntryV1,
            domid
        ),
        off!(
            "struct grant_entry_v1",
            "frame",
            grant_table::GrantEntryV1,
            frame
        ),
        sz!(
            "struct gnttab_map_grant_ref",
            grant_table::GnttabMapGrantRef
        ),
        off!(
            "struct gnttab_map_grant_ref",
            "host_addr",
            grant_table::GnttabMapGrantRef,
            host_addr
        ),
        off!(
            "struct gnttab_map_grant_ref",
            "flags",
            grant_table::GnttabMapGrantRef,
            flags
        ),
        off!(
            "struct gnttab_map_grant_ref",
            "ref",
            grant_table::GnttabMapGrantRef,
            ref_
        ),
        off!(
            "struct gnttab_map_grant_ref",
            "dom",
            grant_table::GnttabMapGrantRef,
            dom
        ),
        off!(
            "struct gnttab_map_grant_ref",
            "status",
            grant_table::GnttabMapGrantRef,
            status
        ),
        off!(
            "struct gnttab_map_grant_ref",
            "handle",
            grant_table::GnttabMapGrantRef,
            handle
        ),
        off!(
            "struct gnttab_map_grant_ref",
            "dev_bus_addr",
            grant_table::GnttabMapGrantRef,
            dev_bus_addr
        ),
        sz!(
            "struct gnttab_unmap_grant_ref",
            grant_table::GnttabUnmapGrantRef
        ),
        off!(
            "struct gnttab_unmap_grant_ref",
            "host_addr",
            grant_table::GnttabUnmapGrantRef,
            host_addr
        ),
        off!(
            "struct gnttab_unmap_grant_ref",
            "dev_bus_addr",
            grant_table::GnttabUnmapGrantRef,
            dev_bus_addr
        ),
        off!(
            "struct gnttab_unmap_grant_ref",
            "handle",
            grant_table::GnttabUnmapGrantRef,
            handle
        ),
        off!(
            "struct gnttab_unmap_grant_ref",
            "status",
            grant_table::GnttabUnmapGrantRef,
            status
        ),
        sz!("struct gnttab_setup_table", grant_table::GnttabSetupTable),
        off!(
            "struct gnttab_setup_table",
            "dom",
            grant_table::GnttabSetupTable,
            dom
        ),
        off!(
            "struct gnttab_setup_table",
            "nr_frames",
            grant_table::GnttabSetupTable,
            nr_frames
        ),
        off!(
            "struct gnttab_setup_table",
            "status",
            grant_table::GnttabSetupTable,
            status
        ),
        off!(
            "struct gnttab_setup_table",
            "frame_list",
            grant_table::GnttabSetupTable,
            frame_list
        ),
        sz!("struct gnttab_query_size", grant_table::GnttabQuerySize),
        off!(
            "struct gnttab_query_size",
            "dom",
            grant_table::GnttabQuerySize,
            dom
        ),
        off!(
            "struct gnttab_query_size",
            "nr_frames",
            grant_table::GnttabQuerySize,
            nr_frames
        ),
        off!(
            "struct gnttab_query_size",
            "max_nr_frames",
            grant_table::GnttabQuerySize,
            max_nr_frames
        ),
        off!(
            "struct gnttab_query_size",
            "status",
            grant_table::GnttabQuerySize,
            status
        ),
        sz!("struct gnttab_copy_ptr", grant_table::GnttabCopyPtr),
        off!("struct gnttab_copy_ptr", "u", grant_table::GnttabCopyPtr, u),
        off!(
            "struct gnttab_copy_ptr",
            "u.ref",
            grant_table::GnttabCopyPtr,
            u
        ),
        off!(
            "struct gnttab_copy_ptr",
            "u.gmfn",
            grant_table::GnttabCopyPtr,
            u
        ),
        off!(
            "struct gnttab_copy_ptr",
            "domid",
            grant_table::GnttabCopyPtr,
            domid
        ),
        off!(
            "struct gnttab_copy_ptr",
            "offset",
            grant_table::GnttabCopyPtr,
            offset
        ),
        sz!("struct gnttab_copy", grant_table::GnttabCopy),
        off!(
            "struct gnttab_copy",
            "source",
            grant_table::GnttabCopy,
            source
        ),
        off!("struct gnttab_copy", "dest", grant_table::GnttabCopy, dest),
        off!("struct gnttab_copy", "len", grant_table::GnttabCopy, len),
        off!(
            "struct gnttab_copy",
            "flags",
            grant_table::GnttabCopy,
            flags
        ),
        off!(
            "struct gnttab_copy",
            "status",
            grant_table::GnttabCopy,
            status
        ),
        sz!("struct gnttab_set_version", grant_table::GnttabSetVersion),
        off!(
            "struct gnttab_set_version",
            "version",
            grant_table::GnttabSetVersion,
            version
        ),
        sz!("struct gnttab_get_version", grant_table::GnttabGetVersion),
        off!(
            "struct gnttab_get_version",
            "dom",
            grant_table::GnttabGetVersion,
            dom
        ),
        off!(
            "struct gnttab_get_version",
            "pad",
            grant_table::GnttabGetVersion,
            pad
        ),
        off!(
            "struct gnttab_get_version",
            "version",
            grant_table::GnttabGetVersion,
            version
        ),
        konst!(
            "GNTTAB_NR_RESERVED_ENTRIES",
            grant_table::NR_RESERVED_ENTRIES
        ),
        konst!("GNTTAB_RESERVED_CONSOLE", grant_table::RESERVED_CONSOLE),
        konst!("GNTTAB_RESERVED_XENSTORE", grant_table::RESERVED_XENSTORE),
        konst!(
            "(4096 / sizeof(struct grant_entry_v1))",
            grant_table::ENTRIES_PER_FRAME
        ),
        konst!("GNTTABOP_map_grant_ref", grant_table::op::MAP_GRANT_REF),
        konst!("GNTTABOP_unmap_grant_ref", grant_table::op::UNMAP_GRANT_REF),
        konst!("GNTTABOP_setup_table", grant_table::op::SETUP_TABLE),
        konst!("GNTTABOP_dump_table", grant_table::op::DUMP_TABLE),
        konst!("GNTTABOP_transfer", grant_table::op::TRANSFER),
        konst!("GNTTABOP_copy", grant_table::op::COPY),
        konst!("GNTTABOP_query_size", grant_table::op::QUERY_SIZE),
        konst!(
            "GNTTABOP_unmap_and_replace",
            grant_table::op::UNMAP_AND_REPLACE
        ),
        konst!("GNTTABOP_set_version", grant_table::op::SET_VERSION),
        konst!(
            "GNTTABOP_get_status_frames",
            grant_table::op::GET_STATUS_FRAMES
        ),
        konst!("GNTTABOP_get_version", grant_table::op::GET_VERSION),
        konst!("GNTTABOP_swap_grant_ref", grant_table::op::SWAP_GRANT_REF),
        konst!("GNTTABOP_cache_flush", grant_table::op::CACHE_FLUSH),
        konst!("GTF_invalid", grant_table::gtf::INVALID),
        konst!("GTF_permit_access", grant_table::gtf::PERMIT_ACCESS),
        konst!("GTF_accept_transfer", grant_table::gtf::ACCEPT_TRANSFER),
        konst!("GTF_transitive", grant_table::gtf::TRANSITIVE),
        konst!("GTF_type_mask", grant_table::gtf::TYPE_MASK),
        konst!("GTF_readonly", grant_table::gtf::READONLY),
        konst!("GTF_reading", grant_table::gtf::READING),
        konst!("GTF_writing", grant_table::gtf::WRITING),
        konst!("GTF_PWT", grant_table::gtf::PWT),
        konst!("GTF_PCD", grant_table::gtf::PCD),
        konst!("GTF_PAT", grant_table::gtf::PAT),
        konst!("GTF_sub_page", grant_table::gtf::SUB_PAGE),
        konst!(
            "GTF_transfer_committed",
            grant_table::gtf::TRANSFER_COMMITTED
        ),
        konst!(
            "GTF_transfer_completed",
            grant_table::gtf::TRANSFER_COMPLETED
        ),
        konst!("GNTMAP_device_map", grant_table::gntmap::DEVICE_MAP),
        konst!("GNTMAP_host_map", grant_table::gntmap::HOST_MAP),
        konst!("GNTMAP_readonly", grant_table::gntmap::READONLY),
        konst!(
            "GNTMAP_application_map",
            grant_table::gntmap::APPLICATION_MAP
        ),
        konst!("GNTMAP_contains_pte", grant_table::gntmap::CONTAINS_PTE),
        konst!("_GNTMAP_guest_avail0", grant_table::gntmap::GUEST_AVAIL0),
        konst!(
            "GNTMAP_guest_avail_mask",
            grant_table::gntmap::GUEST_AVAIL_MASK
        ),
        konst!("GNTCOPY_source_gref", grant_table::gntcopy::SOURCE_GREF),
        konst!("GNTCOPY_dest_gref", grant_table::gntcopy::DEST_GREF),
        konst!("GNTST_okay", grant_table::gntst::OKAY),
        konst!("GNTST_general_error", grant_table::gntst::GENERAL_ERROR),
        konst!("GNTST_bad_domain", grant_table::gntst::BAD_DOMAIN),
        konst!("GNTST_bad_gntref", grant_table::gntst::BAD_GNTREF),
        konst!("GNTST_bad_handle", grant_table::gntst::BAD_HANDLE),
        konst!("GNTST_bad_virt_addr", grant_table::gntst::BAD_VIRT_ADDR),
        konst!("GNTST_bad_dev_addr", grant_table::gntst::BAD_DEV_ADDR),
        konst!("GNTST_no_device_space", grant_table::gntst::NO_DEVICE_SPACE),
        konst!(
            "GNTST_permission_denied",
            grant_table::gntst::PERMISSION_DENIED
        ),
        konst!("GNTST_bad_page", grant_table::gntst::BAD_PAGE),
        konst!("GNTST_bad_copy_arg", grant_table::gntst::BAD_COPY_ARG),
        konst!("GNTST_address_too_big", grant_table::gntst::ADDRESS_TOO_BIG),
        konst!("GNTST_eagain", grant_table::gntst::EAGAIN),
        konst!("GNTST_no_space", grant_table::gntst::NO_SPACE),
        konst!("VCPUOP_initialise", vcpu::op::INITIALISE),
        konst!("VCPUOP_up", vcpu::op::UP),
        konst!("VCPUOP_down", vcpu::op::DOWN),
        konst!("VCPUOP_is_up", vcpu::op::IS_UP),
        konst!("VCPUOP_get_runstate_info", vcpu::op::GET_RUNSTATE_INFO),
        konst!(
            "VCPUOP_register_runstate_memory_area",
            vcpu::op::REGISTER_RUNSTATE_MEMORY_AREA
        ),
        konst!("VCPUOP_set_periodic_timer", vcpu::op::SET_PERIODIC_TIMER),
        konst!("VCPUOP_stop_periodic_timer", vcpu::op::STOP_PERIODIC_TIMER),
        konst!(
            "VCPUOP_set_singleshot_timer",
            vcpu::op::SET_SINGLESHOT_TIMER
        ),
        konst!(
            "VCPUOP_stop_singleshot_timer",
            vcpu::op::STOP_SINGLESHOT_TIMER
        ),
        konst!("VCPUOP_register_vcpu_info", vcpu::op::REGISTER_VCPU_INFO),
        konst!("VCPUOP_send_nmi", vcpu::op::SEND_NMI),
        konst!("VCPUOP_get_physid", vcpu::op::GET_PHYSID),
        konst!("VCPU_SSHOTTMR_future", vcpu::SSHOTTMR_FUTURE),
        konst!(
            "sizeof(struct vcpu_set_singleshot_timer)",
            vcpu::SingleshotTimer::SIZE
        ),
        konst!("offsetof(struct vcpu_set_singleshot_timer, flags)", 8),
        konst!("VCPU_HVM_MODE_32B", vcpu::HVM_MODE_32B),
        konst!("VCPU_HVM_MODE_64B", vcpu::HVM_MODE_64B),
        konst!("sizeof(struct vcpu_hvm_context)", vcpu::HVM_CONTEXT_SIZE),
        konst!("offsetof(struct vcpu_hvm_context, cpu_regs)", 8),
        konst!(
            "offsetof(struct vcpu_hvm_context, cpu_regs.x86_32.eip)",
            8 + 32
        ),
        konst!(
            "offsetof(struct vcpu_hvm_context, cpu_regs.x86_32.efer)",
            8 + 56
        ),
        konst!(
            "offsetof(struct vcpu_hvm_context, cpu_regs.x86_32.cs_base)",
            8 + 64
        ),
        konst!(
            "offsetof(struct vcpu_hvm_context, cpu_regs.x86_32.cs_limit)",
            8 + 84
        ),
        konst!(
            "offsetof(struct vcpu_hvm_context, cpu_regs.x86_32.cs_ar)",
            8 + 104
        ),
        konst!(
            "offsetof(struct vcpu_hvm_context, cpu_regs.x86_32.tr_ar)",
            8 + 112
        ),
        konst!(
            "offsetof(struct vcpu_hvm_context, cpu_regs.x86_64.rip)",
            8 + 64
        ),
        konst!(
            "offsetof(struct vcpu_hvm_context, cpu_regs.x86_64.efer)",
            8 + 104
        ),
        konst!("XEN_DOMCTL_INTERFACE_VERSION", domctl::INTERFACE_VERSION),
        konst!("sizeof(struct xen_domctl)", domctl::SIZE),
        konst!("offsetof(struct xen_domctl, cmd)", domctl::offset::CMD),
        konst!(
            "offsetof(struct xen_domctl, interface_version)",
            domctl::offset::INTERFACE_VERSION
        ),
        konst!(
            "offsetof(struct xen_domctl, domain)",
            domctl::offset::DOMAIN
        ),
        konst!("offsetof(struct xen_domctl, u)", domctl::offset::U),
        konst!(
            "offsetof(struct xen_domctl, u.scheduler_op.sched_id)",
            domctl::offset::SCHED_ID
        ),
        konst!(
            "offsetof(struct xen_domctl, u.scheduler_op.cmd)",
            domctl::offset::SCHED_CMD
        ),
        konst!(
            "offsetof(struct xen_domctl, u.scheduler_op.u.credit.weight)",
            domctl::offset::CREDIT_WEIGHT
        ),
        konst!(
            "offsetof(struct xen_domctl, u.scheduler_op.u.credit.cap)",
            domctl::offset::CREDIT_CAP
        ),
        konst!("XEN_DOMCTL_scheduler_op", domctl::cmd::SCHEDULER_OP),
        konst!("XEN_DOMCTL_createdomain", domctl::cmd::CREATEDOMAIN),
        konst!("XEN_DOMCTL_destroydomain", domctl::cmd::DESTROYDOMAIN),
        konst!("XEN_DOMCTL_pausedomain", domctl::cmd::PAUSEDOMAIN),
        konst!("XEN_DOMCTL_unpausedomain", domctl::cmd::UNPAUSEDOMAIN),
        konst!("XEN_DOMCTL_getdomaininfo", domctl::cmd::GETDOMAININFO),
        konst!("XEN_DOMCTL_setvcpuaffinity", domctl::cmd::SETVCPUAFFINITY),
        konst!("XEN_DOMCTL_max_mem", domctl::cmd::MAX_MEM),
        konst!("XEN_DOMCTL_getvcpuinfo", domctl::cmd::GETVCPUINFO),
        konst!("XEN_DOMCTL_max_vcpus", domctl::cmd::MAX_VCPUS),
        konst!("XEN_DOMCTL_setdomainhandle", domctl::cmd::SETDOMAINHANDLE),
        konst!("XEN_DOMCTL_settimeoffset", domctl::cmd::SETTIMEOFFSET),
        konst!("XEN_DOMCTL_getvcpuaffinity", domctl::cmd::GETVCPUAFFINITY),
        konst!("XEN_DOMCTL_gethvmcontext", domctl::cmd::GETHVMCONTEXT),
        konst!("XEN_DOMCTL_sethvmcontext", domctl::cmd::SETHVMCONTEXT),
        konst!("XEN_DOMCTL_CDF_hvm", domctl::cdf::HVM),
        konst!("XEN_DOMCTL_CDF_hap", domctl::cdf::HAP),
        konst!("XEN_DOMCTL_CDF_s3_integrity", domctl::cdf::S3_INTEGRITY),
        konst!("XEN_DOMCTL_CDF_oos_off", domctl::cdf::OOS_OFF),
        konst!("XEN_DOMCTL_CDF_xs_domain", domctl::cdf::XS_DOMAIN),
        konst!("XEN_DOMCTL_CDF_iommu", domctl::cdf::IOMMU),
        konst!("XEN_DOMCTL_CDF_nested_virt", domctl::cdf::NESTED_VIRT),
        konst!("XEN_DOMCTL_CDF_vpmu", domctl::cdf::VPMU),
        konst!("XEN_DOMINF_dying", domctl::dominf::DYING),
        konst!("XEN_DOMINF_hvm_guest", domctl::dominf::HVM_GUEST),
        konst!("XEN_DOMINF_shutdown", domctl::dominf::SHUTDOWN),
        konst!("XEN_DOMINF_paused", domctl::dominf::PAUSED),
        konst!("XEN_DOMINF_blocked", domctl::dominf::BLOCKED),
        konst!("XEN_DOMINF_running", domctl::dominf::RUNNING),
        konst!("XEN_DOMINF_hap", domctl::dominf::HAP),
        konst!("XEN_DOMINF_shutdownshift", domctl::dominf::SHUTDOWN_SHIFT),
        konst!("XEN_DOMINF_shutdownmask", domctl::dominf::SHUTDOWN_MASK),
        konst!(
            "offsetof(struct xen_domctl, u.max_mem.max_memkb)",
            domctl::MAX_MEMKB
        ),
        konst!(
            "offsetof(struct xen_domctl, u.max_vcpus.max)",
            domctl::MAX_VCPUS_MAX
        ),
        konst!(
            "offsetof(struct xen_domctl, u.setdomainhandle.handle)",
            domctl::HANDLE
        ),
        konst!(
            "offsetof(struct xen_domctl, u.createdomain)",
            domctl::offset::U
        ),
        konst!(
            "offsetof(struct xen_domctl, u.getdomaininfo)",
            domctl::offset::U
        ),
        konst!(
            "offsetof(struct xen_domctl, u.hvmcontext)",
            domctl::offset::U
        ),
        konst!("XEN_SYSCTL_INTERFACE_VERSION", sysctl::INTERFACE_VERSION),
        konst!("sizeof(struct xen_sysctl)", sysctl::SIZE),
        konst!("offsetof(struct xen_sysctl, cmd)", sysctl::offset::CMD),
        konst!(
            "offsetof(struct xen_sysctl, interface_version)",
            sysctl::offset::INTERFACE_VERSION
        ),
        konst!("offsetof(struct xen_sysctl, u)", sysctl::offset::U),
        konst!("XEN_SYSCTL_readconsole", sysctl::cmd::READCONSOLE),
        konst!("XEN_SYSCTL_physinfo", sysctl::cmd::PHYSINFO),
        konst!("XEN_SYSCTL_sched_id", sysctl::cmd::SCHED_ID),
        konst!(
            "XEN_SYSCTL_getdomaininfolist",
            sysctl::cmd::GETDOMAININFOLIST
        ),
        konst!("XEN_SYSCTL_getcpuinfo", sysctl::cmd::GETCPUINFO),
        konst!("XEN_SYSCTL_debug_keys", sysctl::cmd::DEBUG_KEYS),
        sz!("struct xen_domctl_getvcpuinfo", domctl::GetVcpuInfo),
        off!(
            "struct xen_domctl_getvcpuinfo",
            "vcpu",
            domctl::GetVcpuInfo,
            vcpu
        ),
        off!(
            "struct xen_domctl_getvcpuinfo",
            "online",
            domctl::GetVcpuInfo,
            online
        ),
        off!(
            "struct xen_domctl_getvcpuinfo",
            "blocked",
            domctl::GetVcpuInfo,
            blocked
        ),
        off!(
            "struct xen_domctl_getvcpuinfo",
            "running",
            domctl::GetVcpuInfo,
            running
        ),
        off!(
            "struct xen_domctl_getvcpuinfo",
            "cpu_time",
            domctl::GetVcpuInfo,
            cpu_time
        ),
        off!(
            "struct xen_domctl_getvcpuinfo",
            "cpu",
            domctl::GetVcpuInfo,
            cpu
        ),
        sz!("struct xenctl_bitmap", domctl::CtlBitmap),
        off!("struct xenctl_bitmap", "bitmap", domctl::CtlBitmap, bitmap),
        off!(
            "struct xenctl_bitmap",
            "nr_bits",
            domctl::CtlBitmap,
            nr_bits
        ),
        sz!("struct xen_domctl_vcpuaffinity", domctl::VcpuAffinity),
        off!(
            "struct xen_domctl_vcpuaffinity",
            "vcpu",
            domctl::VcpuAffinity,
            vcpu
        ),
        off!(
            "struct xen_domctl_vcpuaffinity",
            "flags",
            domctl::VcpuAffinity,
            flags
        ),
        off!(
            "struct xen_domctl_vcpuaffinity",
            "cpumap_hard",
            domctl::VcpuAffinity,
            cpumap_hard
        ),
        off!(
            "struct xen_domctl_vcpuaffinity",
            "cpumap_soft",
            domctl::VcpuAffinity,
            cpumap_soft
        ),
        konst!("XEN_VCPUAFFINITY_HARD", domctl::affinity::HARD),
        konst!("XEN_VCPUAFFINITY_SOFT", domctl::affinity::SOFT),
        konst!("XEN_VCPUAFFINITY_FORCE", domctl::affinity::FORCE),
        konst!(
            "offsetof(struct xen_domctl, u.settimeoffset.time_offset_seconds)",
            domctl::TIME_OFFSET_SECONDS
        ),
        sz!("struct xen_sysctl_getcpuinfo", sysctl::GetCpuInfo),
        off!(
            "struct xen_sysctl_getcpuinfo",
            "max_cpus",
            sysctl::GetCpuInfo,
            max_cpus
        ),
        off!(
            "struct xen_sysctl_getcpuinfo",
            "info",
            sysctl::GetCpuInfo,
            info
        ),
        off!(
            "struct xen_sysctl_getcpuinfo",
            "nr_cpus",
            sysctl::GetCpuInfo,
            nr_cpus
        ),
        konst!("sizeof(struct xen_sysctl_cpuinfo)", 8),
        sz!("struct xen_sysctl_scheduler_op", sysctl::SchedulerOp),
        off!(
            "struct xen_sysctl_scheduler_op",
            "cpupool_id",
            sysctl::SchedulerOp,
            cpupool_id
        ),
        off!(
            "struct xen_sysctl_scheduler_op",
            "sched_id",
            sysctl::SchedulerOp,
            sched_id
        ),
        off!(
            "struct xen_sysctl_scheduler_op",
            "cmd",
            sysctl::SchedulerOp,
            cmd
        ),
        off!(
            "struct xen_sysctl_scheduler_op",
            "u.sched_credit.tslice_ms",
            sysctl::SchedulerOp,
            tslice_ms
        ),
        off!(
            "struct xen_sysctl_scheduler_op",
            "u.sched_credit.ratelimit_us",
            sysctl::SchedulerOp,
            ratelimit_us
        ),
        off!(
            "struct xen_sysctl_scheduler_op",
            "u.sched_credit.vcpu_migr_delay_us",
            sysctl::SchedulerOp,
            vcpu_migr_delay_us
        ),
        konst!("XEN_SYSCTL_scheduler_op", sysctl::cmd::SCHEDULER_OP),
        konst!("XEN_SYSCTL_SCHEDOP_putinfo", sysctl::schedop::PUTINFO),
        konst!("XEN_SYSCTL_SCHEDOP_getinfo", sysctl::schedop::GETINFO),
        konst!(
            "XEN_SYSCTL_CSCHED_TSLICE_MIN",
            sysctl::csched::TSLICE_MIN_MS
        ),
        konst!(
            "XEN_SYSCTL_CSCHED_TSLICE_MAX",
            sysctl::csched::TSLICE_MAX_MS
        ),
        konst!(
            "XEN_SYSCTL_SCHED_RATELIMIT_MIN",
            sysctl::csched::RATELIMIT_MIN_US
        ),
        konst!(
            "XEN_SYSCTL_SCHED_RATELIMIT_MAX",
            sysctl::csched::RATELIMIT_MAX_US
        ),
        konst!(
            "XEN_SYSCTL_CSCHED_MGR_DLY_MAX_US",
            sysctl::csched::MIGR_DELAY_MAX_US
        ),
        sz!("struct xen_sysctl_readconsole", sysctl::ReadConsole),
        off!(
            "struct xen_sysctl_readconsole",
            "clear",
            sysctl::ReadConsole,
            clear
        ),
        off!(
            "struct xen_sysctl_readconsole",
            "incremental",
            sysctl::ReadConsole,
            incremental
        ),
        off!(
            "struct xen_sysctl_readconsole",
            "index",
            sysctl::ReadConsole,
            index
        ),
        off!(
            "struct xen_sysctl_readconsole",
            "buffer",
            sysctl::ReadConsole,
            buffer
        ),
        off!(
            "struct xen_sysctl_readconsole",
            "count",
            sysctl::ReadConsole,
            count
        ),
        sz!("struct xen_sysctl_debug_keys", sysctl::DebugKeys),
        off!(
            "struct xen_sysctl_debug_keys",
            "keys",
            sysctl::DebugKeys,
            keys
        ),
        off!(
            "struct xen_sysctl_debug_keys",
            "nr_keys",
            sysctl::DebugKeys,
            nr_keys
        ),
        konst!("XEN_SYSCTL_PHYSCAP_hvm", sysctl::physcap::HVM),
        konst!("XEN_SYSCTL_PHYSCAP_hap", sysctl::physcap::HAP),
        konst!("XENMEM_populate_physmap", memory::POPULATE_PHYSMAP),
        konst!("XENMEM_remove_from_physmap", memory::REMOVE_FROM_PHYSMAP),
        konst!("XENMEM_add_to_physmap_batch", memory::ADD_TO_PHYSMAP_BATCH),
        konst!("XENMAPSPACE_gmfn_foreign", memory::MAPSPACE_GMFN_FOREIGN),
        konst!("HVM_FILE_MAGIC", hvm_save::FILE_MAGIC),
        konst!("HVM_FILE_VERSION", hvm_save::FILE_VERSION),
        konst!("HVM_SAVE_CODE(END)", hvm_save::code::END),
        konst!("HVM_SAVE_CODE(HEADER)", hvm_save::code::HEADER),
        konst!("HVM_SAVE_CODE(CPU)", hvm_save::code::CPU),
        konst!("sizeof(struct hvm_hw_cpu)", hvm_save::CPU_SIZE),
        konst!("offsetof(struct hvm_hw_cpu, rax)", hvm_save::cpu::RAX),
        konst!("offsetof(struct hvm_hw_cpu, rip)", hvm_save::cpu::RIP),
        konst!("offsetof(struct hvm_hw_cpu, rflags)", hvm_save::cpu::RFLAGS),
        konst!("offsetof(struct hvm_hw_cpu, cr0)", hvm_save::cpu::CR0),
        konst!("offsetof(struct hvm_hw_cpu, cr2)", hvm_save::cpu::CR2),
        konst!("offsetof(struct hvm_hw_cpu, cr3)", hvm_save::cpu::CR3),
        konst!("offsetof(struct hvm_hw_cpu, cr4)", hvm_save::cpu::CR4),
        konst!("offsetof(struct hvm_hw_cpu, dr0)", hvm_save::cpu::DR0),
        konst!("offsetof(struct hvm_hw_cpu, cs_sel)", hvm_save::cpu::CS_SEL),
        konst!(
            "offsetof(struct hvm_hw_cpu, cs_limit)",
            hvm_save::cpu::CS_LIMIT
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, cs_base)",
            hvm_save::cpu::CS_BASE
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, cs_arbytes)",
            hvm_save::cpu::CS_ARBYTES
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, sysenter_cs)",
            hvm_save::cpu::SYSENTER_CS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, shadow_gs)",
            hvm_save::cpu::SHADOW_GS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, msr_flags)",
            hvm_save::cpu::MSR_FLAGS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, msr_lstar)",
            hvm_save::cpu::MSR_LSTAR
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, msr_efer)",
            hvm_save::cpu::MSR_EFER
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, msr_tsc_aux)",
            hvm_save::cpu::MSR_TSC_AUX
        ),
        konst!("offsetof(struct hvm_hw_cpu, tsc)", hvm_save::cpu::TSC),
        konst!(
            "offsetof(struct hvm_hw_cpu, pending_event)",
            hvm_save::cpu::PENDING_EVENT
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, error_code)",
            hvm_save::cpu::ERROR_CODE
        ),
        konst!("offsetof(struct hvm_hw_cpu, flags)", hvm_save::cpu::FLAGS),
        konst!(
            "offsetof(struct hvm_hw_cpu, ds_sel)",
            hvm_save::cpu::CS_SEL + 4 * hvm_save::seg::DS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ds_base)",
            hvm_save::cpu::CS_BASE + 8 * hvm_save::seg::DS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ds_limit)",
            hvm_save::cpu::CS_LIMIT + 4 * hvm_save::seg::DS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ds_arbytes)",
            hvm_save::cpu::CS_ARBYTES + 4 * hvm_save::seg::DS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, es_sel)",
            hvm_save::cpu::CS_SEL + 4 * hvm_save::seg::ES
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, es_base)",
            hvm_save::cpu::CS_BASE + 8 * hvm_save::seg::ES
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, es_limit)",
            hvm_save::cpu::CS_LIMIT + 4 * hvm_save::seg::ES
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, es_arbytes)",
            hvm_save::cpu::CS_ARBYTES + 4 * hvm_save::seg::ES
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, fs_sel)",
            hvm_save::cpu::CS_SEL + 4 * hvm_save::seg::FS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, fs_base)",
            hvm_save::cpu::CS_BASE + 8 * hvm_save::seg::FS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, fs_limit)",
            hvm_save::cpu::CS_LIMIT + 4 * hvm_save::seg::FS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, fs_arbytes)",
            hvm_save::cpu::CS_ARBYTES + 4 * hvm_save::seg::FS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, gs_sel)",
            hvm_save::cpu::CS_SEL + 4 * hvm_save::seg::GS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, gs_base)",
            hvm_save::cpu::CS_BASE + 8 * hvm_save::seg::GS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, gs_limit)",
            hvm_save::cpu::CS_LIMIT + 4 * hvm_save::seg::GS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, gs_arbytes)",
            hvm_save::cpu::CS_ARBYTES + 4 * hvm_save::seg::GS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ss_sel)",
            hvm_save::cpu::CS_SEL + 4 * hvm_save::seg::SS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ss_base)",
            hvm_save::cpu::CS_BASE + 8 * hvm_save::seg::SS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ss_limit)",
            hvm_save::cpu::CS_LIMIT + 4 * hvm_save::seg::SS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ss_arbytes)",
            hvm_save::cpu::CS_ARBYTES + 4 * hvm_save::seg::SS
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, tr_sel)",
            hvm_save::cpu::CS_SEL + 4 * hvm_save::seg::TR
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, tr_base)",
            hvm_save::cpu::CS_BASE + 8 * hvm_save::seg::TR
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, tr_limit)",
            hvm_save::cpu::CS_LIMIT + 4 * hvm_save::seg::TR
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, tr_arbytes)",
            hvm_save::cpu::CS_ARBYTES + 4 * hvm_save::seg::TR
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ldtr_sel)",
            hvm_save::cpu::CS_SEL + 4 * hvm_save::seg::LDTR
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ldtr_base)",
            hvm_save::cpu::CS_BASE + 8 * hvm_save::seg::LDTR
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ldtr_limit)",
            hvm_save::cpu::CS_LIMIT + 4 * hvm_save::seg::LDTR
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, ldtr_arbytes)",
            hvm_save::cpu::CS_ARBYTES + 4 * hvm_save::seg::LDTR
        ),
        konst!("offsetof(struct hvm_hw_cpu, rbx)", hvm_save::cpu::RAX + 8),
        konst!(
            "offsetof(struct hvm_hw_cpu, rcx)",
            hvm_save::cpu::RAX + 8 * 2
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, rdx)",
            hvm_save::cpu::RAX + 8 * 3
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, rbp)",
            hvm_save::cpu::RAX + 8 * 4
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, rsi)",
            hvm_save::cpu::RAX + 8 * 5
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, rdi)",
            hvm_save::cpu::RAX + 8 * 6
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, rsp)",
            hvm_save::cpu::RAX + 8 * 7
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, r8)",
            hvm_save::cpu::RAX + 8 * 8
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, r9)",
            hvm_save::cpu::RAX + 8 * 9
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, r10)",
            hvm_save::cpu::RAX + 8 * 10
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, r11)",
            hvm_save::cpu::RAX + 8 * 11
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, r12)",
            hvm_save::cpu::RAX + 8 * 12
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, r13)",
            hvm_save::cpu::RAX + 8 * 13
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, r14)",
            hvm_save::cpu::RAX + 8 * 14
        ),
        konst!(
            "offsetof(struct hvm_hw_cpu, r15)",
            hvm_save::cpu::RAX + 8 * 15
        ),
        sz!("struct xen_domctl_createdomain", domctl::CreateDomain),
        off!(
            "struct xen_domctl_createdomain",
            "ssidref",
            domctl::CreateDomain,
            ssidref
        ),
        off!(
            "struct xen_domctl_createdomain",
            "handle",
            domctl::CreateDomain,
            handle0
        ),
        off!(
            "struct xen_domctl_createdomain",
            "flags",
            domctl::CreateDomain,
            flags
        ),
        off!(
            "struct xen_domctl_createdomain",
            "iommu_opts",
            domctl::CreateDomain,
            iommu_opts
        ),
        off!(
            "struct xen_domctl_createdomain",
            "max_vcpus",
            domctl::CreateDomain,
            max_vcpus
        ),
        off!(
            "struct xen_domctl_createdomain",
            "max_evtchn_port",
            domctl::CreateDomain,
            max_evtchn_port
        ),
        off!(
            "struct xen_domctl_createdomain",
            "max_grant_frames",
            domctl::CreateDomain,
            max_grant_frames
        ),
        off!(
            "struct xen_domctl_createdomain",
            "max_maptrack_frames",
            domctl::CreateDomain,
            max_maptrack_frames
        ),
        off!(
            "struct xen_domctl_createdomain",
            "grant_opts",
            domctl::CreateDomain,
            grant_opts
        ),
        off!(
            "struct xen_domctl_createdomain",
            "vmtrace_size",
            domctl::CreateDomain,
            vmtrace_size
        ),
        off!(
            "struct xen_domctl_createdomain",
            "cpupool_id",
            domctl::CreateDomain,
            cpupool_id
        ),
        off!(
            "struct xen_domctl_createdomain",
            "arch.emulation_flags",
            domctl::CreateDomain,
            emulation_flags
        ),
        off!(
            "struct xen_domctl_createdomain",
            "arch.misc_flags",
            domctl::CreateDomain,
            misc_flags
        ),
        sz!("struct xen_domctl_getdomaininfo", domctl::DomainInfo),
        off!(
            "struct xen_domctl_getdomaininfo",
            "domain",
            domctl::DomainInfo,
            domain
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "flags",
            domctl::DomainInfo,
            flags
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "tot_pages",
            domctl::DomainInfo,
            tot_pages
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "max_pages",
            domctl::DomainInfo,
            max_pages
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "outstanding_pages",
            domctl::DomainInfo,
            outstanding_pages
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "shr_pages",
            domctl::DomainInfo,
            shr_pages
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "paged_pages",
            domctl::DomainInfo,
            paged_pages
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "shared_info_frame",
            domctl::DomainInfo,
            shared_info_frame
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "cpu_time",
            domctl::DomainInfo,
            cpu_time
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "nr_online_vcpus",
            domctl::DomainInfo,
            nr_online_vcpus
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "max_vcpu_id",
            domctl::DomainInfo,
            max_vcpu_id
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "ssidref",
            domctl::DomainInfo,
            ssidref
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "handle",
            domctl::DomainInfo,
            handle0
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "cpupool",
            domctl::DomainInfo,
            cpupool
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "gpaddr_bits",
            domctl::DomainInfo,
            gpaddr_bits
        ),
        off!(
            "struct xen_domctl_getdomaininfo",
            "arch_config",
            domctl::DomainInfo,
            emulation_flags
        ),
        sz!("struct xen_domctl_hvmcontext", domctl::HvmContextBuf),
        off!(
            "struct xen_domctl_hvmcontext",
            "size",
            domctl::HvmContextBuf,
            size
        ),
        off!(
            "struct xen_domctl_hvmcontext",
            "buffer",
            domctl::HvmContextBuf,
            buffer
        ),
        sz!(
            "struct xen_sysctl_getdomaininfolist",
            sysctl::GetDomainInfoList
        ),
        off!(
            "struct xen_sysctl_getdomaininfolist",
            "first_domain",
            sysctl::GetDomainInfoList,
            first_domain
        ),
        off!(
            "struct xen_sysctl_getdomaininfolist",
            "max_domains",
            sysctl::GetDomainInfoList,
            max_domains
        ),
        off!(
            "struct xen_sysctl_getdomaininfolist",
            "buffer",
            sysctl::GetDomainInfoList,
            buffer
        ),
        off!(
            "struct xen_sysctl_getdomaininfolist",
            "num_domains",
            sysctl::GetDomainInfoList,
            num_domains
        ),
        sz!("struct xen_sysctl_physinfo", sysctl::PhysInfo),
        off!(
            "struct xen_sysctl_physinfo",
            "threads_per_core",
            sysctl::PhysInfo,
            threads_per_core
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "cores_per_socket",
            sysctl::PhysInfo,
            cores_per_socket
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "nr_cpus",
            sysctl::PhysInfo,
            nr_cpus
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "max_cpu_id",
            sysctl::PhysInfo,
            max_cpu_id
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "nr_nodes",
            sysctl::PhysInfo,
            nr_nodes
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "max_node_id",
            sysctl::PhysInfo,
            max_node_id
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "cpu_khz",
            sysctl::PhysInfo,
            cpu_khz
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "capabilities",
            sysctl::PhysInfo,
            capabilities
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "arch_capabilities",
            sysctl::PhysInfo,
            arch_capabilities
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "total_pages",
            sysctl::PhysInfo,
            total_pages
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "free_pages",
            sysctl::PhysInfo,
            free_pages
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "scrub_pages",
            sysctl::PhysInfo,
            scrub_pages
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "outstanding_pages",
            sysctl::PhysInfo,
            outstanding_pages
        ),
        off!(
            "struct xen_sysctl_physinfo",
            "max_mfn",
            sysctl::PhysInfo,
            max_mfn
        ),
        sz!("struct xen_memory_reservation", memory::MemoryReservation),
        off!(
            "struct xen_memory_reservation",
            "extent_start",
            memory::MemoryReservation,
            extent_start
        ),
        off!(
            "struct xen_memory_reservation",
            "nr_extents",
            memory::MemoryReservation,
            nr_extents
        ),
        off!(
            "struct xen_memory_reservation",
            "extent_order",
            memory::MemoryReservation,
            extent_order
        ),
        off!(
            "struct xen_memory_reservation",
            "mem_flags",
            memory::MemoryReservation,
            mem_flags
        ),
        off!(
            "struct xen_memory_reservation",
            "domid",
            memory::MemoryReservation,
            domid
        ),
        sz!("struct xen_add_to_physmap_batch", memory::AddToPhysmapBatch),
        off!(
            "struct xen_add_to_physmap_batch",
            "domid",
            memory::AddToPhysmapBatch,
            domid
        ),
        off!(
            "struct xen_add_to_physmap_batch",
            "space",
            memory::AddToPhysmapBatch,
            space
        ),
        off!(
            "struct xen_add_to_physmap_batch",
            "size",
            memory::AddToPhysmapBatch,
            size
        ),
        off!(
            "struct xen_add_to_physmap_batch",
            "u.foreign_domid",
            memory::AddToPhysmapBatch,
            foreign_domid
        ),
        off!(
            "struct xen_add_to_physmap_batch",
            "idxs",
            memory::AddToPhysmapBatch,
            idxs
        ),
        off!(
            "struct xen_add_to_physmap_batch",
            "gpfns",
            memory::AddToPhysmapBatch,
            gpfns
        ),
        off!(
            "struct xen_add_to_physmap_batch",
            "errs",
            memory::AddToPhysmapBatch,
            errs
        ),
        sz!("struct xen_remove_from_physmap", memory::RemoveFromPhysmap),
        off!(
            "struct xen_remove_from_physmap",
            "domid",
            memory::RemoveFromPhysmap,
            domid
        ),
        off!(
            "struct xen_remove_from_physmap",
            "gpfn",
            memory::RemoveFromPhysmap,
            gpfn
        ),
        sz!("struct hvm_save_descriptor", hvm_save::Descriptor),
        off!(
            "struct hvm_save_descriptor",
            "typecode",
            hvm_save::Descriptor,
            typecode
        ),
        off!(
            "struct hvm_save_descriptor",
            "instance",
            hvm_save::Descriptor,
            instance
        ),
        off!(
            "struct hvm_save_descriptor",
            "length",
            hvm_save::Descriptor,
            length
        ),
        sz!("struct hvm_save_header", hvm_save::Header),
        off!("struct hvm_save_header", "magic", hvm_save::Header, magic),
        off!(
            "struct hvm_save_header",
            "version",
            hvm_save::Header,
            version
        ),
        off!(
            "struct hvm_save_header",
            "changeset",
            hvm_save::Header,
            changeset
        ),
        off!("struct hvm_save_header", "cpuid", hvm_save::Header, cpuid),
        off!(
            "struct hvm_save_header",
            "gtsc_khz",
            hvm_save::Header,
            gtsc_khz
        ),
        konst!("XEN_SCHEDULER_CREDIT", domctl::SCHEDULER_CREDIT),
        konst!("XEN_DOMCTL_SCHEDOP_putinfo", domctl::SCHEDOP_PUTINFO),
        konst!("XEN_DOMCTL_SCHEDOP_getinfo", domctl::SCHEDOP_GETINFO),
        konst!("HVMOP_set_param", hvm::HVMOP_SET_PARAM),
        konst!("HVMOP_get_param", hvm::HVMOP_GET_PARAM),
        konst!("sizeof(struct xen_hvm_param)", hvm::HvmParam::SIZE),
        konst!("offsetof(struct xen_hvm_param, index)", 4),
        konst!("offsetof(struct xen_hvm_param, value)", 8),
        konst!("HVM_PARAM_CALLBACK_IRQ", hvm::param::CALLBACK_IRQ),
        konst!("HVM_PARAM_STORE_PFN", hvm::param::STORE_PFN),
        konst!("HVM_PARAM_STORE_EVTCHN", hvm::param::STORE_EVTCHN),
        konst!("HVM_PARAM_CONSOLE_PFN", hvm::param::CONSOLE_PFN),
        konst!("HVM_PARAM_CONSOLE_EVTCHN", hvm::param::CONSOLE_EVTCHN),
        konst!("HVM_NR_PARAMS", hvm::param::NR),
        konst!("HVM_PARAM_CALLBACK_TYPE_VECTOR", hvm::CALLBACK_TYPE_VECTOR),
        konst!("XENMEM_add_to_physmap", memory::ADD_TO_PHYSMAP),
        konst!("XENMEM_current_reservation", memory::CURRENT_RESERVATION),
        konst!("XENMEM_maximum_reservation", memory::MAXIMUM_RESERVATION),
        konst!("XENMEM_maximum_gpfn", memory::MAXIMUM_GPFN),
        konst!("XENMAPSPACE_shared_info", memory::MAPSPACE_SHARED_INFO),
        konst!("XENMAPSPACE_grant_table", memory::MAPSPACE_GRANT_TABLE),
        konst!(
            "sizeof(struct xen_add_to_physmap)",
            memory::AddToPhysmap::SIZE
        ),
        konst!("offsetof(struct xen_add_to_physmap, space)", 4),
        konst!("offsetof(struct xen_add_to_physmap, idx)", 8),
        konst!("offsetof(struct xen_add_to_physmap, gpfn)", 16),
        konst!("sizeof(struct vcpu_register_vcpu_info)", 16),
        konst!("offsetof(struct vcpu_register_vcpu_info, offset)", 8),
        konst!("sizeof(struct sched_poll)", 24),
        konst!("offsetof(struct sched_poll, nr_ports)", 8),
        konst!("offsetof(struct sched_poll, timeout)", 16),
        konst!("XS_CONTROL", xs_wire::msg::CONTROL),
        konst!("XS_DIRECTORY", xs_wire::msg::DIRECTORY),
        konst!("XS_READ", xs_wire::msg::READ),
        konst!("XS_GET_PERMS", xs_wire::msg::GET_PERMS),
        konst!("XS_WATCH", xs_wire::msg::WATCH),
        konst!("XS_UNWATCH", xs_wire::msg::UNWATCH),
        konst!("XS_TRANSACTION_START", xs_wire::msg::TRANSACTION_START),
        konst!("XS_TRANSACTION_END", xs_wire::msg::TRANSACTION_END),
        konst!("XS_INTRODUCE", xs_wire::msg::INTRODUCE),
        konst!("XS_RELEASE", xs_wire::msg::RELEASE),
        konst!("XS_GET_DOMAIN_PATH", xs_wire::msg::GET_DOMAIN_PATH),
        konst!("XS_WRITE", xs_wire::msg::WRITE),
        konst!("XS_MKDIR", xs_wire::msg::MKDIR),
        konst!("XS_RM", xs_wire::msg::RM),
        konst!("XS_SET_PERMS", xs_wire::msg::SET_PERMS),
        konst!("XS_WATCH_EVENT", xs_wire::msg::WATCH_EVENT),
        konst!("XS_ERROR", xs_wire::msg::ERROR),
        konst!(
            "XS_IS_DOMAIN_INTRODUCED",
            xs_wire::msg::IS_DOMAIN_INTRODUCED
        ),
        konst!("XS_RESUME", xs_wire::msg::RESUME),
        konst!("XS_SET_TARGET", xs_wire::msg::SET_TARGET),
        konst!("XS_RESET_WATCHES", xs_wire::msg::RESET_WATCHES),
        konst!("XS_DIRECTORY_PART", xs_wire::msg::DIRECTORY_PART),
        konst!("sizeof(struct xsd_sockmsg)", xs_wire::HEADER_SIZE),
        konst!("XENSTORE_PAYLOAD_MAX", xs_wire::PAYLOAD_MAX),
        konst!("XENSTORE_RING_SIZE", xs_wire::RING_SIZE),
        konst!(
            "offsetof(struct xenstore_domain_interface, req)",
            xs_wire::REQ
        ),
        konst!(
            "offsetof(struct xenstore_domain_interface, rsp)",
            xs_wire::RSP
        ),
        konst!(
            "offsetof(struct xenstore_domain_interface, req_cons)",
            xs_wire::REQ_CONS
        ),
        konst!(
            "offsetof(struct xenstore_domain_interface, req_prod)",
            xs_wire::REQ_PROD
        ),
        konst!(
            "offsetof(struct xenstore_domain_interface, rsp_cons)",
            xs_wire::RSP_CONS
        ),
        konst!(
            "offsetof(struct xenstore_domain_interface, rsp_prod)",
            xs_wire::RSP_PROD
        ),
        konst!(
            "offsetof(struct xenstore_domain_interface, server_features)",
            xs_wire::SERVER_FEATURES
        ),
        konst!(
            "offsetof(struct xenstore_domain_interface, connection)",
            xs_wire::CONNECTION
        ),
        konst!(
            "offsetof(struct xenstore_domain_interface, error)",
            xs_wire::ERROR
        ),
        konst!("XENSTORE_ERROR_NONE", xs_wire::ERROR_NONE),
        konst!("XENSTORE_ERROR_COMM", xs_wire::ERROR_COMM),
        konst!("XENSTORE_ERROR_RINGIDX", xs_wire::ERROR_RINGIDX),
        konst!("XENSTORE_ERROR_PROTO", xs_wire::ERROR_PROTO),
        konst!(
            "XENSTORE_SERVER_FEATURE_RECONNECTION",
            xs_wire::SERVER_FEATURE_RECONNECTION
        ),
        konst!(
            "XENSTORE_SERVER_FEATURE_ERROR",
            xs_wire::SERVER_FEATURE_ERROR
        ),
        konst!("offsetof(struct xencons_interface, in)", xencons::IN),
        konst!(
            "sizeof(((struct xencons_interface *)0)->in)",
            xencons::IN_SIZE
        ),
        konst!("offsetof(struct xencons_interface, out)", xencons::OUT),
        konst!(
            "sizeof(((struct xencons_interface *)0)->out)",
            xencons::OUT_SIZE
        ),
        konst!(
            "offsetof(struct xencons_interface, in_cons)",
            xencons::IN_CONS
        ),
        konst!(
            "offsetof(struct xencons_interface, in_prod)",
            xencons::IN_PROD
        ),
        konst!(
            "offsetof(struct xencons_interface, out_cons)",
            xencons::OUT_CONS
        ),
        konst!(
            "offsetof(struct xencons_interface, out_prod)",
            xencons::OUT_PROD
        ),
        sz!("struct xen_add_to_physmap", memory::AddToPhysmap),
        off!(
            "struct xen_add_to_physmap",
            "size",
            memory::AddToPhysmap,
            size
        ),
        off!(
            "struct xen_add_to_physmap",
            "space",
            memory::AddToPhysmap,
            space
        ),
        off!(
            "struct xen_add_to_physmap",
            "idx",
            memory::AddToPhysmap,
            idx
        ),
        off!(
            "struct xen_add_to_physmap",
            "gpfn",
            memory::AddToPhysmap,
            gpfn
        ),
        sz!("struct xen_hvm_param", hvm::HvmParam),
        off!("struct xen_hvm_param", "index", hvm::HvmParam, index),
        off!("struct xen_hvm_param", "value", hvm::HvmParam, value),
        sz!("struct sched_remote_shutdown", SchedRemoteShutdown),
        off!(
            "struct sched_remote_shutdown",
            "reason",
            SchedRemoteShutdown,
            reason
        ),
        sz!("struct sched_poll", SchedPoll),
        off!("struct sched_poll", "nr_ports", SchedPoll, nr_ports),
        off!("struct sched_poll", "timeout", SchedPoll, timeout),
        sz!("struct vcpu_register_vcpu_info", vcpu::RegisterVcpuInfo),
        off!(
            "struct vcpu_register_vcpu_info",
            "offset",
            vcpu::RegisterVcpuInfo,
            offset
        ),
        sz!("struct vcpu_set_periodic_timer", vcpu::PeriodicTimer),
        sz!("struct vcpu_runstate_info", vcpu::RunstateInfo),
        off!(
            "struct vcpu_runstate_info",
            "state_entry_time",
            vcpu::RunstateInfo,
            state_entry_time
        ),
        konst!("offsetof(struct vcpu_runstate_info, time[0])", 16),
        konst!("offsetof(struct vcpu_runstate_info, time[3])", 40),
        konst!("RUNSTATE_running", vcpu::runstate::RUNNING),
        konst!("RUNSTATE_runnable", vcpu::runstate::RUNNABLE),
        konst!("RUNSTATE_blocked", vcpu::runstate::BLOCKED),
        konst!("RUNSTATE_offline", vcpu::runstate::OFFLINE),
        sz!(
            "struct vcpu_register_runstate_memory_area",
            vcpu::RegisterRunstateMemoryArea
        ),
        sz!("struct vcpu_set_singleshot_timer", vcpu::SingleshotTimer),
        off!(
            "struct vcpu_set_singleshot_timer",
            "flags",
            vcpu::SingleshotTimer,
            flags
        ),
    ]
}

const MISSING: &str = "the Xen layout test needs a C compiler (`cc`) and the Xen public headers \
     (/usr/include/xen): install the Debian package `libxen-dev` (and `gcc`)";

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "oxen-abi-layout-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Compiles and runs the C side; returns its `name = value` lines.
fn c_values(exps: &[(&str, &str, u64)]) -> HashMap<String, u64> {
    let mut src = String::from(HEADERS);
    src.push_str("int main(void) {\n");
    for (name, expr, _) in exps {
        src.push_str(&format!(
            "    printf(\"%s = %llu\\n\", \"{name}\", (unsigned long long)({expr}));\n"
        ));
    }
    src.push_str("    return 0;\n}\n");

    let dir = temp_dir();
    let c = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c, &src).expect("write C source");
    let out = Command::new("cc")
        .arg("-Wall")
        .arg("-o")
        .arg(&exe)
        .arg(&c)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `cc` ({e}): {MISSING}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No such file"),
        "Xen headers not found: {MISSING}\n{stderr}"
    );
    assert!(
        out.status.success(),
        "compiling the header probe failed (if headers are missing: {MISSING})\n{stderr}"
    );
    let run = Command::new(&exe).output().expect("run header probe");
    assert!(run.status.success(), "header probe failed");
    let _ = std::fs::remove_dir_all(&dir);

    let text = String::from_utf8(run.stdout).expect("probe output is UTF-8");
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once(" = ").expect("probe line");
            (k.to_string(), v.parse().expect("probe value"))
        })
        .collect()
}

#[test]
fn layouts_and_constants_match_the_xen_headers() {
    let exps = expectations();
    let c = c_values(&exps);
    assert_eq!(c.len(), exps.len(), "every probe printed a value");
    let mut bad = Vec::new();
    for (name, _, rust) in &exps {
        let cv = c[*name];
        if cv != *rust {
            bad.push(format!("{name}: C {cv}, Rust {rust}"));
        }
    }
    assert!(bad.is_empty(), "mismatches:\n{}", bad.join("\n"));
}

#[test]
fn byte_helpers_follow_the_c_offsets() {
    // A field written through `to_bytes` lands at the C offset the probe reports.
    let exps = expectations();
    let c = c_values(&exps);
    let s = HvmStartInfo {
        memmap_entries: 0xa1b2_c3d4,
        rsdp_paddr: 0x0102_0304_0506_0708,
        ..Default::default()
    };
    let b = s.to_bytes();
    assert_eq!(b.len() as u64, c["sizeof struct hvm_start_info"]);
    let off = c["offsetof struct hvm_start_info.memmap_entries"] as usize;
    assert_eq!(&b[off..off + 4], &0xa1b2_c3d4u32.to_le_bytes());
    let off = c["offsetof struct hvm_start_info.rsdp_paddr"] as usize;
    assert_eq!(&b[off..off + 8], &0x0102_0304_0506_0708u64.to_le_bytes());

    let e = HvmMemmapEntry {
        type_: 7,
        ..Default::default()
    };
    let off = c["offsetof struct hvm_memmap_table_entry.type"] as usize;
    assert_eq!(e.to_bytes()[off], 7);
}

#[test]
fn evtchn_byte_helpers_follow_the_c_offsets() {
    let exps = expectations();
    let c = c_values(&exps);
    let at = |k: &str| c[k] as usize;

    let mut st = evtchn::EvtchnStatus {
        dom: 0x0102,
        port: 0x0a0b_0c0d,
        status: evtchn::stat::INTERDOMAIN,
        vcpu: 3,
        ..Default::default()
    };
    st.set_interdomain(0x7ff0, 0x1122_3344);
    let b = st.to_bytes();
    assert_eq!(b.len(), at("sizeof struct evtchn_status"));
    let off = at("offsetof struct evtchn_status.dom");
    assert_eq!(&b[off..off + 2], &0x0102u16.to_le_bytes());
    let off = at("offsetof struct evtchn_status.port");
    assert_eq!(&b[off..off + 4], &0x0a0b_0c0du32.to_le_bytes());
    let off = at("offsetof struct evtchn_status.u.interdomain.dom");
    assert_eq!(&b[off..off + 2], &0x7ff0u16.to_le_bytes());
    let off = at("offsetof struct evtchn_status.u.interdomain.port");
    assert_eq!(&b[off..off + 4], &0x1122_3344u32.to_le_bytes());

    let bind = evtchn::EvtchnBindInterdomain {
        remote_dom: 5,
        remote_port: 6,
        local_port: 7,
    };
    let b = bind.to_bytes();
    assert_eq!(b.len(), at("sizeof struct evtchn_bind_interdomain"));
    assert_eq!(
        b[at("offsetof struct evtchn_bind_interdomain.remote_dom")],
        5
    );
    assert_eq!(
        b[at("offsetof struct evtchn_bind_interdomain.remote_port")],
        6
    );
    assert_eq!(
        b[at("offsetof struct evtchn_bind_interdomain.local_port")],
        7
    );
}
