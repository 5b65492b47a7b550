//! The boot archive: find it, validate it, list it, read the boot configuration.

use alloc::string::ToString;
use alloc::vec::Vec;
use oxen_core::archive::{self, Archive};
use oxen_core::config::{BootConfig, DomainConfig, LogLevel};
use oxen_core::units::Bytes;

/// Validates the archive and returns the boot configuration it carries. A missing or
/// damaged archive (or configuration) is reported and the defaults are used: the
/// hypervisor comes up without boot-time domains rather than crashing.
pub fn load_archive(ramdisk: Option<&'static [u8]>) -> (BootConfig, Option<Archive<'static>>) {
    let Some(bytes) = ramdisk else {
        log::warn!("boot: no boot archive (the bootloader loaded no ramdisk); using defaults");
        return (BootConfig::default(), None);
    };
    let archive = match Archive::parse(bytes) {
        Ok(a) => a,
        Err(e) => {
            log::error!("boot: boot archive rejected: {e}; continuing without it");
            return (BootConfig::default(), None);
        }
    };
    let config = read_config(&archive);
    (config, Some(archive))
}

/// A boot-time domain: its configuration and the archive entries it names.
pub struct BootDomain {
    pub cfg: DomainConfig,
    pub kernel: &'static [u8],
    pub ramdisk: Option<&'static [u8]>,
}

/// The domain configurations the boot configuration names, with their kernel images
/// and ramdisks. A domain whose configuration, kernel or ramdisk is missing or invalid
/// is reported and skipped.
pub fn domain_configs(config: &BootConfig, archive: &Archive<'static>) -> Vec<BootDomain> {
    let mut out = Vec::new();
    for name in &config.domains {
        let Some(entry) = archive.get(name) else {
            log::error!("boot: domain configuration {name} is not in the archive");
            continue;
        };
        let parsed = core::str::from_utf8(entry.data)
            .map_err(|_| alloc::string::String::from("not UTF-8"))
            .and_then(|t| DomainConfig::parse(t).map_err(|e| alloc::format!("{e}")));
        let cfg = match parsed {
            Ok(c) => c,
            Err(e) => {
                log::error!("boot: {name} rejected: {e}");
                continue;
            }
        };
        let Some(kernel) = archive.get(&cfg.kernel) else {
            log::error!("boot: {name}: kernel {} is not in the archive", cfg.kernel);
            continue;
        };
        let ramdisk = match &cfg.ramdisk {
            None => None,
            Some(r) if r == oxen_core::archive::WHOLE_ARCHIVE => Some(archive.bytes()),
            Some(r) => match archive.get(r) {
                Some(e) => Some(e.data),
                None => {
                    log::error!("boot: {name}: ramdisk {r} is not in the archive");
                    continue;
                }
            },
        };
        out.push(BootDomain {
            cfg,
            kernel: kernel.data,
            ramdisk,
        });
    }
    out
}

fn read_config(archive: &Archive<'static>) -> BootConfig {
    log::info!(
        "boot: archive of {} holds {} entries, CRC-32 {:#010x} ok",
        Bytes(archive.byte_len() as u64),
        archive.len(),
        archive.crc()
    );
    for entry in archive.entries() {
        log::info!(
            "boot:   {:<24} {:>10}",
            entry.name,
            Bytes(entry.data.len() as u64).to_string()
        );
    }
    let Some(cfg) = archive.get(archive::CONFIG_NAME) else {
        log::warn!(
            "boot: the archive has no {}; using defaults",
            archive::CONFIG_NAME
        );
        return BootConfig::default();
    };
    let parsed = core::str::from_utf8(cfg.data)
        .map_err(|_| alloc::string::String::from("not UTF-8"))
        .and_then(|text| BootConfig::parse(text).map_err(|e| alloc::format!("{e}")));
    match parsed {
        Ok(config) => {
            for key in &config.unknown {
                log::warn!(
                    "boot: {}: unknown setting '{key}' ignored",
                    archive::CONFIG_NAME
                );
            }
            log::set_max_level(match config.log_level {
                LogLevel::Error => log::LevelFilter::Error,
                LogLevel::Warn => log::LevelFilter::Warn,
                LogLevel::Info => log::LevelFilter::Info,
                LogLevel::Debug => log::LevelFilter::Debug,
                LogLevel::Trace => log::LevelFilter::Trace,
            });
            log::info!(
                "boot: {} read: on_ready {:?}, log level {:?}",
                archive::CONFIG_NAME,
                config.on_ready,
                config.log_level
            );
            config
        }
        Err(e) => {
            log::error!(
                "boot: {} rejected: {e}; using defaults",
                archive::CONFIG_NAME
            );
            BootConfig::default()
        }
    }
}

/// Test-only: touch an unmapped address so the exception report can be checked.
#[cfg(feature = "test-fault")]
pub fn deliberate_fault() {
    log::info!("test-fault: writing to unmapped address 0xdeadb000");
    // SAFETY: deliberately unsound: this build exists to prove the #PF report.
    unsafe { core::arch::asm!("mov qword ptr [{}], 0", in(reg) 0xdead_b000u64, options(nostack)) };
}
