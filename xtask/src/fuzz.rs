//! `cargo xtask fuzz`: the libFuzzer target over the XenStore codec and engine
//! (`dom0-tools/xenstore/fuzz`, in cargo-fuzz's layout), built the way `cargo fuzz
//! build` builds it and run for a bounded time, without needing cargo-fuzz.
//!
//! The target judges each input with `oxen_xenstore::fuzz::run` (framing, reply order,
//! `Engine::check`). It starts from the repository's seed corpus
//! (`dom0-tools/xenstore/tests/fuzz-corpus`, shared with the `fuzz` test) and writes
//! the inputs it finds into a temporary directory, so the repository is never
//! modified; a failing input is written to `target/fuzz/artifacts/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::{Args, Result, root};

/// The budget of `cargo xtask fuzz` without `--seconds`.
const DEFAULT_SECONDS: u64 = 10;

/// The budget of the run in `cargo xtask test`'s host tests.
pub const TEST_SECONDS: u64 = 5;

/// The fuzz target (a `[[bin]]` of the fuzz package).
const TARGET: &str = "engine";

/// What `cargo fuzz build` gives rustc by default on Linux, less the sanitizer (its
/// default is AddressSanitizer; the engine has no `unsafe`): libFuzzer's coverage
/// instrumentation (8-bit counters, the PC table, comparison tracing, stack depth),
/// `--cfg fuzzing`, no branch folding, one codegen unit, and debug assertions (which
/// bring overflow checks; spelled out here).
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cdebug-assertions",
    "-Coverflow-checks",
    "-Ccodegen-units=1",
];

/// The fuzz package.
fn package() -> PathBuf {
    root().join("dom0-tools/xenstore/fuzz")
}

/// The seed corpus, read but never written.
fn corpus() -> PathBuf {
    root().join("dom0-tools/xenstore/tests/fuzz-corpus")
}

/// The instrumented build's own target directory, and the artifacts.
fn target_dir() -> PathBuf {
    root().join("target").join("fuzz")
}

pub fn cmd_fuzz(args: &[String]) -> Result<()> {
    let mut args = Args::new(args);
    let seconds = match args.value("--seconds")? {
        None => DEFAULT_SECONDS,
        Some(s) => s
            .parse()
            .ok()
            .filter(|&n: &u64| n > 0)
            .ok_or_else(|| format!("--seconds needs a whole number above 0, not '{s}'"))?,
    };
    args.finish()?;
    run(seconds)
}

/// The triple rustc builds for by default (the fuzz build names it, as cargo-fuzz
/// does, so that RUSTFLAGS reach the target but not the build scripts: libFuzzer's
/// instrumentation would not link into them).
fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .current_dir(root())
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| "rustc -vV names no host triple".to_string())
}

/// Builds the fuzz target (release, instrumented) and returns its path.
fn build() -> Result<PathBuf> {
    let triple = host_triple()?;
    let mut rustflags = RUSTFLAGS.join(" ");
    // Like cargo-fuzz: the caller's RUSTFLAGS come last, so they win.
    if let Ok(extra) = std::env::var("RUSTFLAGS") {
        rustflags.push(' ');
        rustflags.push_str(&extra);
    }
    let manifest = package().join("Cargo.toml");
    println!("== fuzz: building {} (target {TARGET})", manifest.display());
    let status = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .args(["--bin", TARGET, "--target", &triple])
        .args(["--config", "profile.release.debug=\"line-tables-only\""])
        .env("CARGO_TARGET_DIR", target_dir())
        .env("RUSTFLAGS", rustflags)
        // It would override RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the fuzz target failed (see above)".into());
    }
    Ok(target_dir().join(triple).join("release").join(TARGET))
}

/// Builds the target and fuzzes for `seconds`; a crash, timeout or running out of
/// memory is an error naming the input libFuzzer saved.
pub fn run(seconds: u64) -> Result<()> {
    let engine = build()?;
    let artifacts = target_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts)
        .map_err(|e| format!("cannot create {}: {e}", artifacts.display()))?;
    // libFuzzer adds what it finds to the first corpus directory: a scratch one.
    let found = std::env::temp_dir().join(format!("oxen-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&found)
        .map_err(|e| format!("cannot create {}: {e}", found.display()))?;
    println!(
        "== fuzz: {TARGET} for {seconds} s from {}",
        corpus().display()
    );
    let started = SystemTime::now();
    // The prefix is pasted before the file name: it needs its trailing slash.
    let mut prefix = std::ffi::OsString::from("-artifact_prefix=");
    prefix.push(artifacts.join(""));
    // libFuzzer's own log (hundreds of lines) goes to a file; a summary is printed, or
    // the end of the log if it failed.
    let log_path = target_dir().join("last-run.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let status = Command::new(&engine)
        .stderr(log)
        .current_dir(root())
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048")
        // One input takes about a millisecond: seconds mean a hang.
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .arg(prefix)
        .arg(&found)
        .arg(corpus())
        .status();
    let _ = std::fs::remove_dir_all(&found);
    let status = status.map_err(|e| format!("cannot run {}: {e}", engine.display()))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if status.success() {
        println!(
            "== fuzz: {} (libFuzzer's log: {})",
            summary(&text),
            log_path.display()
        );
        return Ok(());
    }
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(60)..] {
        eprintln!("{line}");
    }
    let saved = written_since(&artifacts, started);
    if saved.is_empty() {
        return Err(format!(
            "the fuzz target failed ({status}) and saved no input in {}",
            artifacts.display()
        ));
    }
    let names: Vec<String> = saved.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "the fuzz target failed ({status}) on {}; rerun that input alone with `{} {}`, \
         and once fixed add it to the corpus as {}/<what-it-tests>.bin",
        names.join(", "),
        engine.display(),
        names[0],
        corpus().display()
    ))
}

/// libFuzzer's last status line (`#RUNS DONE cov: … ft: … corp: … exec/s: …`) and
/// its final figures, in one line.
fn summary(log: &str) -> String {
    // The last status line's coverage and corpus figures (`… cov: N ft: N corp: N/…`).
    let done = log
        .lines()
        .rev()
        .find_map(|l| l.split_once(" cov: ").map(|(_, rest)| rest))
        .map(|rest| format!("cov: {}", rest.split(" lim:").next().unwrap_or(rest).trim()))
        .unwrap_or_else(|| "no status line".into());
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    match (
        stat("stat::number_of_executed_units:"),
        stat("stat::average_exec_per_sec:"),
        stat("stat::peak_rss_mb:"),
    ) {
        (Some(runs), Some(rate), Some(rss)) => {
            format!("{runs} inputs ({rate}/s), peak RSS {rss} MB, {done}")
        }
        _ => done,
    }
}

/// The files of `dir` modified at or after `since`.
fn written_since(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_takes_libfuzzers_last_figures() {
        let log = "INFO: seed corpus: files: 10\n\
                   #2\tINITED cov: 1874 ft: 4255 corp: 9/1Kb exec/s: 0 rss: 30Mb\n\
                   #7446\tDONE   cov: 2474 ft: 11285 corp: 1068/1179Kb lim: 4096 exec/s: 1861 rss: 34Mb\n\
                   Done 7446 runs in 4 second(s)\n\
                   stat::number_of_executed_units: 7446\n\
                   stat::average_exec_per_sec:     1861\n\
                   stat::peak_rss_mb:              34\n";
        assert_eq!(
            summary(log),
            "7446 inputs (1861/s), peak RSS 34 MB, cov: 2474 ft: 11285 corp: 1068/1179Kb"
        );
        assert_eq!(summary(""), "no status line");
    }
}
