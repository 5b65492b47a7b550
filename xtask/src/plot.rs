//! Plots for benchmark reports: CPU share over time, as SVG.
//!
//! [`svg`] turns a [`Chart`] (some named series of `(time s, share %)` points, each with an
//! optional target share) into a self-contained SVG 1.1 line chart. Standard library only.

use std::fmt::{self, Write};

/// One line on the chart.
pub struct Series {
    pub name: String,
    /// `(time in seconds, share in percent)`; points with a NaN or infinite coordinate are
    /// skipped.
    pub points: Vec<(f64, f64)>,
    /// The share this series should get, in percent: drawn as a dashed horizontal line in the
    /// series' colour.
    pub target: Option<f64>,
}

/// A line chart: x from 0 to the last time, y from 0 to `y_max`.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// The top of the y axis; `None` rounds the largest value (data or target) up to a nice
    /// number.
    pub y_max: Option<f64>,
}

/// Okabe–Ito colours, distinguishable with the common colour-vision deficiencies (yellow
/// left out: it is unreadable on white). Series beyond the seventh reuse them in order.
const PALETTE: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
/// Room left of the plot area for the y tick labels and the y axis label.
const LEFT: f64 = 64.0;
/// Room right of the plot area for the legend.
const RIGHT: f64 = 160.0;
/// Room above the plot area for the title.
const TOP: f64 = 40.0;
/// Room below the plot area for the x tick labels and the x axis label.
const BOTTOM: f64 = 56.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
const PLOT_HEIGHT: f64 = HEIGHT - TOP - BOTTOM;
/// At most this many tick intervals on an axis.
const MAX_TICK_INTERVALS: f64 = 8.0;
const TICK_LENGTH: f64 = 5.0;
/// How far lines may reach outside the plot area, so that a line or point on its edge is
/// drawn whole.
const CLIP_MARGIN: f64 = 4.0;

/// Renders `chart` as an SVG document.
pub fn svg(chart: &Chart) -> String {
    let mut out = String::new();
    write_svg(&mut out, chart).expect("writing to a String cannot fail");
    out
}

/// The data-to-pixel mapping of the plot area.
struct Frame {
    x_max: f64,
    y_max: f64,
}

impl Frame {
    fn for_chart(chart: &Chart) -> Frame {
        let points = || chart.series.iter().flat_map(finite_points);
        let x_max = points().map(|(x, _)| x).fold(0.0, f64::max);
        let x_max = if x_max > 0.0 { x_max } else { 1.0 };
        let y_max = match chart.y_max {
            Some(y) if y.is_finite() && y > 0.0 => y,
            _ => {
                let targets = chart.series.iter().filter_map(|s| s.target);
                let highest = points()
                    .map(|(_, y)| y)
                    .chain(targets.filter(|t| t.is_finite()))
                    .fold(0.0, f64::max);
                nice_ceiling(highest)
            }
        };
        Frame { x_max, y_max }
    }

    fn x_px(&self, x: f64) -> f64 {
        LEFT + x / self.x_max * PLOT_WIDTH
    }

    fn y_px(&self, y: f64) -> f64 {
        TOP + PLOT_HEIGHT - y / self.y_max * PLOT_HEIGHT
    }
}

/// A 1, 2 or 5 × 10^k tick step splitting `0..=range` into at most `max_intervals` intervals.
/// A range that is not positive and finite gets a step of 1.
fn nice_step(range: f64, max_intervals: f64) -> f64 {
    let raw = range / max_intervals;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// `value` rounded up to a multiple of its tick step; 1 when there is nothing to show.
fn nice_ceiling(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let step = nice_step(value, MAX_TICK_INTERVALS);
    (value / step - 1e-9).ceil() * step
}

/// The tick values `0, step, 2·step, …` up to `max`, and the decimals their labels need.
fn ticks(max: f64) -> (Vec<f64>, usize) {
    let step = nice_step(max, MAX_TICK_INTERVALS);
    let count = (max / step + 1e-9).floor() as usize;
    let decimals = (-step.log10() - 1e-9).ceil().max(0.0) as usize;
    ((0..=count).map(|i| i as f64 * step).collect(), decimals)
}

fn finite_points(series: &Series) -> impl Iterator<Item = (f64, f64)> + '_ {
    series
        .points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// `text` with the characters that are special in XML text and attributes escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

fn write_svg(out: &mut String, chart: &Chart) -> fmt::Result {
    let frame = Frame::for_chart(chart);
    let (left, right) = (LEFT, LEFT + PLOT_WIDTH);
    let (top, bottom) = (TOP, TOP + PLOT_HEIGHT);

    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    )?;
    writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    )?;
    writeln!(
        out,
        r#"<clipPath id="plot-area"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
        left - CLIP_MARGIN,
        top - CLIP_MARGIN,
        PLOT_WIDTH + 2.0 * CLIP_MARGIN,
        PLOT_HEIGHT + 2.0 * CLIP_MARGIN
    )?;
    writeln!(
        out,
        r#"<text x="{:.1}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        left + PLOT_WIDTH / 2.0,
        escape(&chart.title)
    )?;

    // Grid lines, ticks and tick labels.
    let (x_ticks, x_decimals) = ticks(frame.x_max);
    for x in x_ticks {
        let px = frame.x_px(x);
        writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{top:.1}" x2="{px:.1}" y2="{:.1}" stroke="#e0e0e0"/>"##,
            bottom + TICK_LENGTH
        )?;
        writeln!(
            out,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{x:.x_decimals$}</text>"#,
            bottom + TICK_LENGTH + 14.0
        )?;
    }
    let (y_ticks, y_decimals) = ticks(frame.y_max);
    for y in y_ticks {
        let py = frame.y_px(y);
        writeln!(
            out,
            r##"<line x1="{:.1}" y1="{py:.1}" x2="{right:.1}" y2="{py:.1}" stroke="#e0e0e0"/>"##,
            left - TICK_LENGTH
        )?;
        writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{y:.y_decimals$}</text>"#,
            left - TICK_LENGTH - 3.0,
            py + 4.0
        )?;
    }

    // Axes and their labels.
    writeln!(
        out,
        r#"<path d="M {left} {top} V {bottom} H {right}" fill="none" stroke="black"/>"#
    )?;
    writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + PLOT_WIDTH / 2.0,
        HEIGHT - 12.0,
        escape(&chart.x_label)
    )?;
    writeln!(
        out,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + PLOT_HEIGHT / 2.0,
        escape(&chart.y_label)
    )?;

    // The data, clipped to (just around) the plot area in case `y_max` is below some values.
    writeln!(out, r#"<g clip-path="url(#plot-area)" fill="none">"#)?;
    for (series, colour) in chart.series.iter().zip(PALETTE.iter().cycle()) {
        if let Some(target) = series.target.filter(|t| t.is_finite()) {
            let py = frame.y_px(target);
            writeln!(
                out,
                r#"<line x1="{left:.1}" y1="{py:.1}" x2="{right:.1}" y2="{py:.1}" stroke="{colour}" stroke-dasharray="6 4"/>"#
            )?;
        }
        let points: Vec<(f64, f64)> = finite_points(series)
            .map(|(x, y)| (frame.x_px(x), frame.y_px(y)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let coordinates: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        writeln!(
            out,
            r#"<polyline points="{}" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>"#,
            coordinates.join(" ")
        )?;
        // A lone point makes an invisible polyline: mark it.
        if let [(x, y)] = points[..] {
            writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
            )?;
        }
    }
    writeln!(out, "</g>")?;

    // The legend, right of the plot area: a swatch and the name, in the series' colour.
    for (i, (series, colour)) in chart.series.iter().zip(PALETTE.iter().cycle()).enumerate() {
        let y = top + 10.0 + 20.0 * i as f64;
        writeln!(
            out,
            r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2"/>"#,
            right + 12.0,
            right + 32.0
        )?;
        writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
            right + 38.0,
            y + 4.0,
            escape(&series.name)
        )?;
    }

    writeln!(out, "</svg>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: &[(f64, f64)], target: Option<f64>) -> Series {
        Series {
            name: name.to_string(),
            points: points.to_vec(),
            target,
        }
    }

    fn chart(series: Vec<Series>, y_max: Option<f64>) -> Chart {
        Chart {
            title: "CPU share".to_string(),
            x_label: "time (s)".to_string(),
            y_label: "share (%)".to_string(),
            series,
            y_max,
        }
    }

    /// The `points` attribute of each polyline in `svg`.
    fn polylines(svg: &str) -> Vec<&str> {
        svg.split("<polyline points=\"")
            .skip(1)
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect()
    }

    #[test]
    fn is_an_svg_document() {
        let svg = svg(&chart(vec![series("dom1", &[(0.0, 10.0)], None)], None));
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.contains(r#"width="720" height="420""#));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">CPU share</text>"));
        assert!(svg.contains(">time (s)</text>"));
        assert!(svg.contains(">share (%)</text>"));
    }

    #[test]
    fn one_polyline_per_non_empty_series_and_one_dashed_line_per_target() {
        let svg = svg(&chart(
            vec![
                series("a", &[(0.0, 10.0), (1.0, 20.0)], Some(25.0)),
                series("b", &[], Some(50.0)),
                series("c", &[(0.0, 30.0), (1.0, 40.0)], None),
                series("d", &[(f64::NAN, 1.0)], None),
            ],
            None,
        ));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
    }

    #[test]
    fn series_get_distinct_palette_colours_in_lines_targets_and_legend() {
        let svg = svg(&chart(
            vec![
                series("first", &[(0.0, 1.0), (1.0, 2.0)], Some(5.0)),
                series("second", &[(0.0, 3.0), (1.0, 4.0)], None),
            ],
            None,
        ));
        let (first, second) = (PALETTE[0], PALETTE[1]);
        assert_ne!(first, second);
        assert!(svg.contains(&format!(
            r#"stroke="{first}" stroke-width="2" stroke-linejoin"#
        )));
        assert!(svg.contains(&format!(
            r#"stroke="{second}" stroke-width="2" stroke-linejoin"#
        )));
        assert!(svg.contains(&format!(r#"stroke="{first}" stroke-dasharray"#)));
        assert!(svg.contains(&format!(r#"fill="{first}">first</text>"#)));
        assert!(svg.contains(&format!(r#"fill="{second}">second</text>"#)));
    }

    #[test]
    fn text_is_escaped() {
        let mut c = chart(vec![series(r#"a "b""#, &[(0.0, 1.0)], None)], None);
        c.title = "<&>".to_string();
        let svg = svg(&c);
        assert!(svg.contains(">&lt;&amp;&gt;</text>"));
        assert!(svg.contains(">a &quot;b&quot;</text>"));
        assert!(!svg.contains("<&>"));
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn tick_steps_are_1_2_5_times_a_power_of_ten() {
        assert_eq!(nice_step(87.0, 8.0), 20.0);
        assert_eq!(nice_step(100.0, 8.0), 20.0);
        assert_eq!(nice_step(80.0, 8.0), 10.0);
        assert_eq!(nice_step(30.0, 8.0), 5.0);
        assert_eq!(nice_step(10.0, 8.0), 2.0);
        assert_eq!(nice_step(8.0, 8.0), 1.0);
        assert_eq!(nice_step(0.5, 8.0), 0.1);
        assert_eq!(nice_step(3000.0, 8.0), 500.0);
        assert_eq!(nice_step(0.0, 8.0), 1.0);
        assert_eq!(nice_step(f64::NAN, 8.0), 1.0);
        assert_eq!(nice_step(f64::INFINITY, 8.0), 1.0);
    }

    #[test]
    fn ticks_stay_within_the_axis() {
        let (values, decimals) = ticks(100.0);
        assert_eq!(values, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(decimals, 0);
        let (values, _) = ticks(87.0);
        assert_eq!(values, [0.0, 20.0, 40.0, 60.0, 80.0]);
        let (values, decimals) = ticks(0.5);
        assert_eq!(values.len(), 6);
        assert_eq!(decimals, 1);
        assert!(values.len() <= MAX_TICK_INTERVALS as usize + 1);
    }

    #[test]
    fn y_axis_ceiling_is_a_nice_number_above_data_and_targets() {
        assert_eq!(nice_ceiling(87.0), 100.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(101.0), 120.0);
        assert!((nice_ceiling(0.3) - 0.3).abs() < 1e-12);
        assert_eq!(nice_ceiling(0.0), 1.0);
        let frame = Frame::for_chart(&chart(vec![series("a", &[(0.0, 30.0)], Some(87.0))], None));
        assert_eq!(frame.y_max, 100.0);
        let frame = Frame::for_chart(&chart(vec![series("a", &[(0.0, 30.0)], None)], Some(50.0)));
        assert_eq!(frame.y_max, 50.0);
    }

    #[test]
    fn points_map_to_pixels() {
        let svg = svg(&chart(
            vec![series("a", &[(0.0, 0.0), (5.0, 50.0), (10.0, 100.0)], None)],
            Some(100.0),
        ));
        // The plot area spans x 64..560 and y 40..364.
        assert_eq!(polylines(&svg), ["64.0,364.0 312.0,202.0 560.0,40.0"]);
    }

    #[test]
    fn non_finite_points_are_skipped() {
        let svg = svg(&chart(
            vec![series(
                "a",
                &[
                    (0.0, 0.0),
                    (f64::NAN, 5.0),
                    (1.0, f64::INFINITY),
                    (f64::NEG_INFINITY, 1.0),
                    (2.0, 100.0),
                ],
                Some(f64::NAN),
            )],
            None,
        ));
        assert_eq!(polylines(&svg), ["64.0,364.0 560.0,40.0"]);
        assert!(!svg.contains("stroke-dasharray"));
        assert!(!svg.contains("NaN"));
        assert!(!svg.contains("inf"));
    }

    #[test]
    fn edge_cases_do_not_panic() {
        let charts = [
            chart(vec![], None),
            chart(vec![series("empty", &[], None)], None),
            chart(vec![series("one", &[(3.0, 40.0)], None)], None),
            chart(vec![series("zero", &[(0.0, 0.0), (0.0, 0.0)], None)], None),
            chart(
                vec![series("zeros", &[(0.0, 0.0), (4.0, 0.0)], Some(0.0))],
                None,
            ),
            chart(
                vec![series("nan", &[(f64::NAN, f64::NAN)], None)],
                Some(f64::NAN),
            ),
            chart(vec![series("neg", &[(-1.0, -5.0)], None)], Some(-3.0)),
            chart(
                (0..20)
                    .map(|i| series(&format!("s{i}"), &[(0.0, i as f64)], None))
                    .collect(),
                Some(0.0),
            ),
        ];
        for c in &charts {
            let svg = svg(c);
            assert!(svg.starts_with("<svg"));
            assert!(!svg.contains("NaN"));
            assert!(!svg.contains("inf"));
        }
        let lone = svg(&charts[2]);
        assert_eq!(lone.matches("<polyline").count(), 1);
        assert!(lone.contains("<circle"));
    }
}
