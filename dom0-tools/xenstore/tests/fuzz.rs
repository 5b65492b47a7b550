//! Drives the fuzz harness `oxen_xenstore::fuzz` (feature `fuzzing`) for a
//! bounded time as an ordinary test.
//!
//! `oxen_xenstore::fuzz::run` judges one input: a small program that
//! drives seven connections of every kind against an engine, checking
//! `Engine::check` (tree shape, node and per-domain accounting, indexes),
//! the framing of all output and the order and ids of every reply after
//! each step (see its module documentation).
//!
//! The seed corpus is `tests/fuzz-corpus/*.bin`; each seed runs as is,
//! then mutations of the seeds (from a fixed pseudo-random sequence) run
//! until the time budget is spent: `OXEN_FUZZ_SECS` (default 3). A failing
//! input is written to `target/fuzz-failure.bin` (add it to the corpus once
//! fixed). The same harness and corpus serve the libFuzzer target in
//! `fuzz/` (`cargo xtask fuzz`, or `cargo fuzz run engine`).

use std::time::{Duration, Instant};

use oxen_xenstore::fuzz::{Stats, run};
use oxen_xenstore::wire::{Decoder, Message, MsgType, PAYLOAD_MAX};

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A mutation of `seed` (bytes flipped, inserted, removed, spliced).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(8) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
            2 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.remove(i);
            }
            3 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from) + 1;
                let at = rng.below(out.len() + 1);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
            _ => out.extend((0..rng.below(32)).map(|_| rng.next() as u8)),
        }
    }
    out.truncate(4096);
    out
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-corpus");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("the seed corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 4, "the seed corpus is missing");
    seeds
}

fn fail(input: &[u8], what: &str) -> ! {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/fuzz-failure.bin");
    let _ = std::fs::write(path, input);
    panic!("{what} (input written to {path}, {} bytes)", input.len());
}

#[test]
fn fuzz_codec_and_engine() {
    let seeds = corpus();
    let mut stats = Stats::default();
    for (name, bytes) in &seeds {
        match run(bytes) {
            Ok(s) => stats.add(s),
            Err(e) => fail(bytes, &format!("seed {name}: {e}")),
        }
    }
    let secs = std::env::var("OXEN_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = Rng(0x000d_dc0f_fee5_eed5);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let seed = &seeds[rng.below(seeds.len())].1;
        let other = &seeds[rng.below(seeds.len())].1;
        let input = mutate(&mut rng, seed, other);
        match run(&input) {
            Ok(s) => stats.add(s),
            Err(e) => fail(&input, &format!("mutation {runs}: {e}")),
        }
        runs += 1;
    }
    eprintln!(
        "fuzz: {} seeds and {runs} mutations in {secs} s: {stats:?}",
        seeds.len()
    );
    assert!(stats.replies > 1000 && stats.errors > 100 && stats.events > 100);
    assert!(stats.transactions > 10 && stats.closed > 10, "{stats:?}");
}

/// The decoder alone: any split of any byte stream yields the same frames.
#[test]
fn fuzz_decoder_splits() {
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let mut stream = Vec::new();
        for _ in 0..rng.below(6) {
            let len = rng.below(64);
            let msg = Message::new(MsgType::Write, rng.next() as u32, 0, vec![b'x'; len]);
            stream.extend(msg.to_bytes());
        }
        if rng.below(3) == 0 {
            stream.extend((0..rng.below(40)).map(|_| rng.next() as u8));
        }
        let whole: Vec<_> = {
            let mut d = Decoder::new();
            let mut input = &stream[..];
            std::iter::from_fn(|| d.decode(&mut input)).collect()
        };
        let mut d = Decoder::new();
        let mut split = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = (rng.below(20) + 1).min(rest.len());
            let mut chunk = &rest[..n];
            while let Some(frame) = d.decode(&mut chunk) {
                split.push(frame);
            }
            rest = &rest[n..];
        }
        assert_eq!(split, whole);
        assert!(
            split
                .iter()
                .all(|f| f.as_ref().map_or(true, |m| m.payload.len() <= PAYLOAD_MAX))
        );
    }
}
