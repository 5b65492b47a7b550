//! The platforms oxen boots on: QEMU/KVM with nested VMX, Bochs with VT-x, QEMU TCG.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::{self, Firmware};
use crate::{Args, Result, out_dir, setup};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// QEMU with KVM and nested VMX (Intel hosts that allow it).
    Kvm,
    /// Bochs built with VMX: VT-x, EPT and VPID emulated, slow but everywhere.
    Bochs,
    /// QEMU's TCG: fast, no VMX.
    Qemu,
}

impl Platform {
    pub fn parse(s: &str) -> Result<Option<Self>> {
        match s {
            "auto" => Ok(None),
            "kvm" => Ok(Some(Platform::Kvm)),
            "bochs" => Ok(Some(Platform::Bochs)),
            "qemu" => Ok(Some(Platform::Qemu)),
            _ => Err(format!("unknown platform '{s}' (auto, kvm, bochs, qemu)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Kvm => "qemu-kvm",
            Platform::Bochs => "bochs",
            Platform::Qemu => "qemu-tcg",
        }
    }
}

/// Whether this host can give a QEMU guest VT-x: an Intel CPU, /dev/kvm, nested on.
pub fn kvm_nested_vmx() -> bool {
    let nested =
        std::fs::read_to_string("/sys/module/kvm_intel/parameters/nested").unwrap_or_default();
    Path::new("/dev/kvm").exists() && matches!(nested.trim(), "Y" | "1")
}

/// The best platform available: KVM with nested VMX, else Bochs with VT-x, else QEMU.
pub fn best() -> Platform {
    if kvm_nested_vmx() {
        Platform::Kvm
    } else if setup::bochs_binary().is_some() {
        Platform::Bochs
    } else {
        Platform::Qemu
    }
}

/// One boot of one image.
pub struct Machine {
    pub platform: Platform,
    pub firmware: Firmware,
    pub cpus: u32,
    pub memory_mib: u32,
    pub image: PathBuf,
    /// Where the serial console goes; `None` = this terminal.
    pub serial: Option<PathBuf>,
    /// Directory for the emulator's own files (config, log, firmware variables).
    pub work: PathBuf,
    /// QEMU CPU model (TCG only), e.g. `qemu64` (xAPIC) or `max` (x2APIC).
    pub qemu_cpu: &'static str,
    /// Bochs only: the serial port connects to this TCP port on the loopback (xtask
    /// listens there, copies the output to `serial` and types input), instead of
    /// writing to the `serial` file itself.
    pub serial_socket: Option<u16>,
}

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const OVMF_BOCHS: &str = "/usr/share/ovmf/OVMF.fd";
const BOCHS_BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
const VGA_BIOS: &str = "/usr/share/vgabios/vgabios-stdvga.bin";

impl Machine {
    /// The command that boots this machine.
    pub fn command(&self) -> Result<Command> {
        std::fs::create_dir_all(&self.work).map_err(|e| format!("{}: {e}", self.work.display()))?;
        match self.platform {
            Platform::Kvm | Platform::Qemu => self.qemu(),
            Platform::Bochs => self.bochs(),
        }
    }

    fn qemu(&self) -> Result<Command> {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-display", "none", "-no-reboot"]);
        cmd.args([
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            &self.cpus.to_string(),
        ]);
        cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        if self.platform == Platform::Kvm {
            cmd.args(["-enable-kvm", "-cpu", "host,+vmx"]);
        } else {
            cmd.args(["-cpu", self.qemu_cpu]);
        }
        if self.firmware == Firmware::Uefi {
            let vars = self.work.join("OVMF_VARS.fd");
            std::fs::copy(OVMF_VARS, &vars)
                .map_err(|e| format!("{OVMF_VARS}: {e} (install the ovmf package)"))?;
            cmd.arg("-drive")
                .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
            cmd.arg("-drive")
                .arg(format!("if=pflash,format=raw,file={}", vars.display()));
        }
        cmd.arg("-drive")
            .arg(format!("format=raw,file={}", self.image.display()));
        match &self.serial {
            Some(path) => cmd.arg("-serial").arg(format!("file:{}", path.display())),
            None => cmd.args(["-serial", "mon:stdio"]),
        };
        Ok(cmd)
    }

    fn bochs(&self) -> Result<Command> {
        let bochs = setup::bochs_binary()
            .ok_or("Bochs with VT-x is not built yet: run `cargo xtask setup`")?;
        // Bochs wants the disk's size to be whole cylinders of 16 heads x 63 sectors.
        let disk = self.work.join("disk.img");
        std::fs::copy(&self.image, &disk).map_err(|e| format!("{}: {e}", self.image.display()))?;
        let cylinder = 16 * 63 * 512;
        let len = std::fs::metadata(&disk).map_err(|e| e.to_string())?.len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&disk)
            .map_err(|e| e.to_string())?;
        file.set_len(len.div_ceil(cylinder) * cylinder)
            .map_err(|e| e.to_string())?;
        let cylinders = len.div_ceil(cylinder);

        let serial = match &self.serial {
            Some(path) => path.clone(),
            None => self.work.join("serial.txt"),
        };
        let rom = match self.firmware {
            Firmware::Uefi => format!("romimage: file={OVMF_BOCHS}, address=0xffe00000"),
            Firmware::Bios => format!("romimage: file={BOCHS_BIOS}"),
        };
        // One package of `cpus` cores, so CPUID's topology leaf reports them all (OVMF
        // under Bochs installs no ACPI tables, and oxen then counts CPUs by CPUID).
        let rc = format!(
            "megs: {mem}\n{rom}\nvgaromimage: file={VGA_BIOS}\ndisplay_library: nogui\n\
             pci: enabled=1, chipset=i440fx\n\
             ata0-master: type=disk, path=\"{disk}\", mode=flat, cylinders={cylinders}, heads=16, spt=63\n\
             boot: disk\n\
             cpu: count=1:{cpus}:1, ips=200000000, model=corei7_skylake_x, reset_on_triple_fault=0, ignore_bad_msrs=1\n\
             {com1}\n\
             log: \"{log}\"\n\
             panic: action=fatal\nerror: action=report\ninfo: action=ignore\ndebug: action=ignore\n\
             clock: sync=none, time0=local\n",
            mem = self.memory_mib,
            disk = disk.display(),
            cpus = self.cpus,
            com1 = match self.serial_socket {
                Some(port) => format!("com1: enabled=1, mode=socket-client, dev=127.0.0.1:{port}"),
                None => format!("com1: enabled=1, mode=file, dev=\"{}\"", serial.display()),
            },
            log = self.work.join("bochs.log").display(),
        );
        let rc_path = self.work.join("bochsrc");
        std::fs::write(&rc_path, rc).map_err(|e| format!("{}: {e}", rc_path.display()))?;
        let mut cmd = Command::new(bochs);
        cmd.arg("-q").arg("-unlock").arg("-f").arg(&rc_path);
        Ok(cmd)
    }
}

pub fn cmd_run(args: &[String]) -> Result<()> {
    let mut args = Args::new(args);
    let platform = match args.value("--platform")? {
        Some(p) => Platform::parse(&p)?,
        None => None,
    }
    .unwrap_or_else(best);
    let firmware = Firmware::parse(&args.value("--firmware")?.unwrap_or_else(|| "uefi".into()))?;
    let cpus: u32 = args
        .value("--cpus")?
        .map_or(Ok(2), |v| v.parse())
        .map_err(|_| "--cpus takes a number")?;
    let memory_mib: u32 = args
        .value("--memory")?
        .map_or(Ok(512), |v| v.parse())
        .map_err(|_| "--memory takes a number of MiB")?;
    let config = args
        .value("--config")?
        .map(PathBuf::from)
        .unwrap_or_else(build::demo_config);
    let linux = args.flag("--linux");
    args.finish()?;
    if platform == Platform::Kvm && !kvm_nested_vmx() {
        return Err(
            "this host offers no KVM with nested VMX (needs an Intel CPU and kvm_intel nested=1)"
                .into(),
        );
    }

    let image = build::images(&config, firmware, linux)?;
    let work = out_dir().join("run");
    // Under Bochs the serial port is a socket xtask serves: output to this terminal,
    // typed keys to the machine (the control domain's shell reads them).
    let listener = match platform {
        Platform::Bochs => Some(
            std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| format!("serial socket: {e}"))?,
        ),
        _ => None,
    };
    let serial_socket = match &listener {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?.port()),
        None => None,
    };
    let machine = Machine {
        platform,
        firmware,
        cpus,
        memory_mib,
        image,
        serial: None,
        work: work.clone(),
        qemu_cpu: "max",
        serial_socket,
    };
    eprintln!(
        "xtask: booting oxen on {} ({} firmware, {cpus} CPUs, {memory_mib} MiB); {}",
        platform.name(),
        firmware.name(),
        match platform {
            Platform::Bochs => "Ctrl-C stops Bochs",
            _ => "Ctrl-A X stops QEMU",
        }
    );
    let mut cmd = machine.command()?;
    if platform != Platform::Bochs {
        let status = cmd
            .status()
            .map_err(|e| format!("cannot start QEMU: {e} (run `cargo xtask setup`)"))?;
        eprintln!("xtask: QEMU exited ({status})");
        return Ok(());
    }
    let serial = work.join("serial.txt");
    let _ = std::fs::remove_file(&serial);
    // Bochs talks on stdout and stderr too; keep that off the console.
    let chatter = std::fs::File::create(work.join("bochs.out")).map_err(|e| e.to_string())?;
    cmd.stdout(chatter.try_clone().map_err(|e| e.to_string())?)
        .stderr(chatter);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start Bochs: {e}"))?;
    let listener = listener.expect("Bochs runs with a serial socket");
    let terminal = Terminal::keys_one_by_one();
    let log = serial.clone();
    std::thread::spawn(move || serve_console(listener, &log));
    loop {
        let done = child.try_wait().map_err(|e| e.to_string())?;
        if let Some(status) = done {
            let log = work.join("bochs.log");
            // Bochs ends with status 1 and a "panic" line when the machine powers itself
            // off through the shutdown port: that is the normal end of a run.
            let powered_off = std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("Shutdown port: shutdown requested"));
            if powered_off {
                eprintln!(
                    "xtask: the machine powered off; Bochs stopped (its log is {})",
                    log.display()
                );
            } else {
                eprintln!(
                    "xtask: Bochs exited ({status}); its log is {}",
                    log.display()
                );
            }
            drop(terminal);
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The far end of Bochs's serial port for `run`: what the machine sends goes to this
/// terminal (and to `log`), what is typed goes to the machine, byte by byte.
fn serve_console(listener: std::net::TcpListener, log: &std::path::Path) {
    use std::io::{Read, Write};
    let Ok((stream, _)) = listener.accept() else {
        return;
    };
    if let Ok(mut to_machine) = stream.try_clone() {
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut b = [0u8; 64];
            while let Ok(n) = stdin.read(&mut b) {
                if n == 0 || to_machine.write_all(&b[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let mut from_machine = stream;
    let mut file = std::fs::File::create(log).ok();
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    while let Ok(n) = from_machine.read(&mut buf) {
        if n == 0 {
            break;
        }
        let _ = out.write_all(&buf[..n]);
        let _ = out.flush();
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(&buf[..n]);
        }
    }
}

/// This terminal with keys delivered one by one and not echoed (the machine echoes
/// them), as long as the value lives; Ctrl-C still stops the run. Put back as it was
/// when dropped, and by a watcher in its own session if xtask is killed instead.
struct Terminal {
    saved: Option<String>,
}

impl Terminal {
    fn keys_one_by_one() -> Self {
        let stty = |args: &[&str]| -> Option<String> {
            let tty = std::fs::File::open("/dev/tty").ok()?;
            let out = Command::new("stty").args(args).stdin(tty).output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let Some(saved) = stty(&["-g"]) else {
            return Terminal { saved: None };
        };
        if stty(&["-icanon", "-echo", "min", "1"]).is_none() {
            return Terminal { saved: None };
        }
        // Puts the terminal back once this process is gone, however it ends.
        let watcher = format!(
            "while kill -0 {} 2>/dev/null; do sleep 0.5; done; stty {saved} < /dev/tty",
            std::process::id()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &watcher])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        Terminal { saved: Some(saved) }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let (Some(saved), Ok(tty)) = (&self.saved, std::fs::File::open("/dev/tty")) {
            let _ = Command::new("stty").arg(saved).stdin(tty).status();
        }
    }
}
