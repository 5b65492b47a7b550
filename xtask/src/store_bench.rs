//! The XenStore part of `cargo xtask bench`: runs the load generator
//! `oxen-xsload report` (dom0-tools/xenstored) against the host daemon and
//! the engine in process, and draws its cost curves.
//!
//! The load generator prints `figure KEY VALUE WHAT` lines (kept as results)
//! and `point CHART "SERIES" X Y` lines (drawn, with X on a log10 axis).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::Result;
use crate::plot::{Chart, Series, svg};

/// What the load generator reported.
#[derive(Debug, Default, PartialEq)]
pub struct StoreReport {
    /// (key, value, what), in the order printed.
    pub figures: Vec<(String, String, String)>,
    /// chart → series → (x, y) points, in the order printed.
    pub points: BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>>,
}

/// Parses `oxen-xsload report`'s output.
pub fn parse(text: &str) -> Result<StoreReport> {
    let mut report = StoreReport::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("figure ") {
            let mut words = rest.splitn(3, ' ');
            let (Some(key), Some(value), Some(what)) = (words.next(), words.next(), words.next())
            else {
                return Err(format!("bad figure line: {line}"));
            };
            value
                .parse::<f64>()
                .map_err(|_| format!("not a number in: {line}"))?;
            report.figures.push((key.into(), value.into(), what.into()));
        } else if let Some(rest) = line.strip_prefix("point ") {
            let bad = || format!("bad point line: {line}");
            let (chart, rest) = rest.split_once(" \"").ok_or_else(bad)?;
            let (series, rest) = rest.split_once("\" ").ok_or_else(bad)?;
            let (x, y) = rest.split_once(' ').ok_or_else(bad)?;
            let (x, y): (f64, f64) = (x.parse().map_err(|_| bad())?, y.parse().map_err(|_| bad())?);
            report
                .points
                .entry(chart.into())
                .or_default()
                .entry(series.into())
                .or_default()
                .push((x, y));
        }
    }
    if report.figures.is_empty() {
        return Err("the store load generator reported no figures".into());
    }
    Ok(report)
}

impl StoreReport {
    /// Every figure, then every point as a figure of its own
    /// (`xenstore_children_read_at_1000`, …): (key, value, what).
    pub fn rows(&self) -> Vec<(String, String, String)> {
        let mut rows = self.figures.clone();
        for (chart, series) in &self.points {
            let unit = if chart == "children" {
                "ns per operation"
            } else {
                "us per round trip"
            };
            for (name, points) in series {
                let slug: String = name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                for &(x, y) in points {
                    rows.push((
                        format!("xenstore_{chart}_{slug}_at_{x}"),
                        y.to_string(),
                        format!("{name}: {unit} beside {x} {chart}"),
                    ));
                }
            }
        }
        rows
    }
}

/// Builds and runs the load generator; `seconds` per throughput run.
pub fn run(seconds: f64) -> Result<StoreReport> {
    let cargo = env!("CARGO");
    let build = std::process::Command::new(cargo)
        .current_dir(crate::root())
        .args(["build", "-q", "--release", "-p", "oxen-xenstored"])
        .status()
        .map_err(|e| format!("cannot build oxen-xenstored: {e}"))?;
    if !build.success() {
        return Err("building oxen-xenstored failed".into());
    }
    let program = crate::root().join("target/release/oxen-xsload");
    let out = std::process::Command::new(&program)
        .args(["report", "--seconds", &seconds.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the store load generator failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Draws each chart of `report` into `dir`; returns the files written.
pub fn plots(report: &StoreReport, dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (chart, series) in &report.points {
        let (title, x_label, y_label) = match chart.as_str() {
            "children" => (
                "XenStore: cost per operation by directory size (in process)",
                "log10 of the number of children",
                "ns per operation",
            ),
            "connections" => (
                "XenStore: a round trip by number of connections",
                "log10 of the number of connections",
                "us per round trip",
            ),
            _ => (chart.as_str(), "log10 of x", "y"),
        };
        let chart_data = Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: series
                .iter()
                .map(|(name, points)| Series {
                    name: name.clone(),
                    points: points.iter().map(|&(x, y)| (x.log10(), y)).collect(),
                    target: None,
                })
                .collect(),
            y_max: None,
        };
        let path = dir.join(format!("store-{chart}.svg"));
        std::fs::write(&path, svg(&chart_data)).map_err(|e| e.to_string())?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_parses_into_figures_and_series() {
        let text = "figure xenstore_read_1c_socket_per_s 23353 operations per second, 1 client(s)\n\
                    point children \"read\" 10 357\n\
                    point children \"create and remove\" 100000 2211\n\
                    point children \"read\" 1000 405\n\
                    noise\n";
        let report = parse(text).unwrap();
        assert_eq!(
            report.figures,
            vec![(
                "xenstore_read_1c_socket_per_s".to_string(),
                "23353".to_string(),
                "operations per second, 1 client(s)".to_string()
            )]
        );
        let children = &report.points["children"];
        assert_eq!(children["read"], vec![(10.0, 357.0), (1000.0, 405.0)]);
        assert_eq!(children["create and remove"], vec![(100000.0, 2211.0)]);
        let rows = report.rows();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[1],
            (
                "xenstore_children_create_and_remove_at_100000".to_string(),
                "2211".to_string(),
                "create and remove: ns per operation beside 100000 children".to_string()
            )
        );
    }

    #[test]
    fn a_report_without_figures_or_with_bad_lines_is_an_error() {
        assert!(parse("point children \"read\" 10 357\n").is_err());
        assert!(parse("figure k notanumber what\n").is_err());
        assert!(parse("figure k 1 w\npoint children read 10 357\n").is_err());
    }
}
