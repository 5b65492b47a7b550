//! The load generator `oxen-xsload` end to end against a daemon of its own:
//! every reply it gets is checked (it fails otherwise), and its figures show
//! costs that do not grow with a directory's size or the number of
//! connections. The bounds are loose on purpose (the host may be busy):
//! they catch costs that grow with n and stalls of seconds, the defects of
//! the old engine; the figures themselves are `cargo xtask bench`'s.

use std::collections::BTreeMap;
use std::process::Command;

/// A report's `figure` values by key.
type Figures = BTreeMap<String, f64>;
/// A report's `point` values by (chart, series, x).
type Points = BTreeMap<(String, String, u64), f64>;

/// The `figure` and `point` values of a report.
fn report() -> (Figures, Points) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxen-xsload"))
        .args(["report", "--seconds", "0.05"])
        .output()
        .expect("run oxen-xsload");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "oxen-xsload failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut figures, mut points) = (BTreeMap::new(), BTreeMap::new());
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        if words[0] == "figure" {
            figures.insert(words[1].to_string(), words[2].parse().unwrap());
        } else if words[0] == "point" {
            let (chart, rest) = line["point ".len()..].split_once(" \"").unwrap();
            let (series, rest) = rest.split_once("\" ").unwrap();
            let (x, y) = rest.split_once(' ').unwrap();
            points.insert(
                (chart.to_string(), series.to_string(), x.parse().unwrap()),
                y.parse().unwrap(),
            );
        }
    }
    (figures, points)
}

#[test]
fn the_store_keeps_its_costs_flat_under_load() {
    let (figures, points) = report();
    for op in ["read", "write", "directory", "tx_own", "tx_shared"] {
        for clients in [1, 8] {
            for transport in ["socket", "inproc"] {
                let key = format!("xenstore_{op}_{clients}c_{transport}_per_s");
                assert!(figures[&key] > 0.0, "{key}");
            }
        }
    }
    let at =
        |chart: &str, series: &str, x: u64| points[&(chart.to_string(), series.to_string(), x)];
    for series in ["read", "write", "create and remove", "directory part"] {
        let (small, big) = (
            at("children", series, 1_000),
            at("children", series, 100_000),
        );
        eprintln!("{series}: {small} ns beside 1,000 children, {big} ns beside 100,000");
        assert!(big < small * 10.0, "{series}: {small} ns -> {big} ns");
    }
    // Over the socket a round trip is two thread wake-ups: too noisy on a
    // busy host for a ratio; the engine's own cost is what could grow.
    for series in ["read in process", "write in process"] {
        let (one, many) = (
            at("connections", series, 1),
            at("connections", series, 1_000),
        );
        eprintln!("{series}: {one} us alone, {many} us beside 1,000 connections");
        assert!(many < one * 10.0, "{series}: {one} us -> {many} us");
    }
    eprintln!(
        "100,000 children over the socket in {} s; steady client's worst wait {} ms meanwhile, {} ms during 10,000 churned connections",
        figures["xenstore_100k_children_socket_s"],
        figures["xenstore_100k_children_worst_wait_ms"],
        figures["xenstore_churn_worst_wait_ms"]
    );
    assert!(figures["xenstore_100k_children_socket_s"] < 20.0);
    assert!(figures["xenstore_100k_children_worst_wait_ms"] < 500.0);
    assert!(figures["xenstore_churn_worst_wait_ms"] < 500.0);
}
