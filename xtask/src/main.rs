//! `cargo xtask`: builds oxen images, boots them in emulators, runs the tests and the
//! benchmarks, and installs what all of that needs.

mod bench;
mod build;
mod fuzz;
mod linux;
mod platform;
mod plot;
mod scenario;
mod sched_log;
mod setup;
mod store_bench;

use std::path::PathBuf;
use std::process::ExitCode;

/// A failure to report to the user; the message says what went wrong and what to do.
pub type Result<T> = std::result::Result<T, String>;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  setup                 install what is missing: Debian packages, Bochs with VT-x (built once
                        into ~/.cache/oxen; OXEN_BOCHS=path uses an existing binary,
                        OXEN_BOCHS_TARBALL=path another source tarball)
  build [--features F]  build the hypervisor (release)
  image [--config FILE] build the UEFI and BIOS disk images and the boot archive
  run [options]         boot oxen with the console on this terminal
      --platform P      auto (default: kvm with nested VMX, else bochs, else qemu), kvm, bochs, qemu
      --firmware F      uefi (default) or bios
      --cpus N          CPU count (default 2)
      --memory MIB      memory in MiB (default 512)
      --config FILE     boot configuration (default guests/boot/demo.cfg)
      --linux           put Debian's kernel (linux.elf) and the busybox ramdisk
                        (linux-initrd.cpio) into the archive, for linux.cfg and
                        linux-smp.cfg (e.g. --config guests/boot/linux.cfg)
  (run and image also add every file of the folder OXEN_FILES names)
  test [options]        host tests (lints, cargo test, 5 s of fuzz), then every boot scenario
      --host-only       only the host tests
      --boot-only       only the boot scenarios
      --scenario NAME   only the named scenario (repeatable)
      --list            list the scenarios
  fuzz [--seconds N]    build the XenStore libFuzzer target (dom0-tools/xenstore/fuzz) as
                        cargo-fuzz does and fuzz for N seconds (default 10) from its corpus
                        (dom0-tools/xenstore/tests/fuzz-corpus, never modified); failing
                        inputs go to target/fuzz/artifacts/
  bench                 run the benchmarks; results in target/oxen/bench/results.json
  bench --exit-path     only the null hypercall and CPUID round trips (about 15 s)
  bench --store         only the XenStore load generator on the host (about 20 s)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "setup" => setup::run(rest),
        "build" => build::cmd_build(rest),
        "image" => build::cmd_image(rest),
        "run" => platform::cmd_run(rest),
        "test" => scenario::cmd_test(rest),
        "bench" => bench::cmd_bench(rest),
        "fuzz" => fuzz::cmd_fuzz(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where xtask puts everything it makes.
pub fn out_dir() -> PathBuf {
    root().join("target").join("oxen")
}

/// A tiny flag parser: `--name value` options and `--switch` flags, in any order.
pub struct Args {
    items: Vec<String>,
}

impl Args {
    pub fn new(items: &[String]) -> Self {
        Args {
            items: items.to_vec(),
        }
    }

    /// Removes and returns the value of `--name value`, if present.
    pub fn value(&mut self, name: &str) -> Result<Option<String>> {
        match self.items.iter().position(|a| a == name) {
            None => Ok(None),
            Some(i) if i + 1 < self.items.len() => {
                let v = self.items.remove(i + 1);
                self.items.remove(i);
                Ok(Some(v))
            }
            Some(_) => Err(format!("{name} needs a value")),
        }
    }

    /// Removes and returns every value of a repeatable `--name value`.
    pub fn values(&mut self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        while let Some(v) = self.value(name)? {
            out.push(v);
        }
        Ok(out)
    }

    /// Removes `--name` and says whether it was there.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|a| a != name);
        self.items.len() != before
    }

    /// Fails if anything was not consumed.
    pub fn finish(self) -> Result<()> {
        match self.items.first() {
            None => Ok(()),
            Some(a) => Err(format!("unexpected argument '{a}' (see cargo xtask help)")),
        }
    }
}
