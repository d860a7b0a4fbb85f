//! The run's plot: four panels (RSS, descriptors, threads, answers and errors per second) over time, as an SVG drawn with `plotters`.
//!
//! Only the SVG backend is built: text is written as SVG `<text>` for the
//! viewer to render, and plotters' built-in size estimate lays it out, so no
//! font is needed at build or run time.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::sample::Sample;
use crate::verdict::{Growth, quarters};

/// Size of the image, in pixels: four readable panels on a page.
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 1100;

/// A line: its legend label, points and colour.
type Line = (&'static str, Vec<(f64, f64)>, RGBColor);

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws the plot of `samples`; `judged` (RSS in MiB, descriptors, threads) adds
/// each quarter's median as a red segment over the second and last quarters.
pub fn draw(
    path: &Path,
    title: &str,
    samples: &[Sample],
    judged: &[Growth; 3],
) -> Result<(), String> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(text)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(text)?;
    let panels = root.split_evenly((4, 1));
    let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        samples.iter().map(|s| (s.second as f64, f(s))).collect()
    };
    let x_max = samples.last().map_or(1.0, |s| s.second as f64).max(1.0);
    let (a, b, c) = quarters(samples.len());
    let at = |i: usize| samples.get(i).map_or(0.0, |s| s.second as f64);
    let (qa, qb, qc) = (at(a), at(b), at(c));
    let medians = |g: &Growth, scale: f64| -> Vec<Line> {
        vec![
            (
                "median, 2nd quarter",
                vec![(qa, g.q2 * scale), (qb, g.q2 * scale)],
                RED,
            ),
            (
                "median, last quarter",
                vec![(qc, g.q4 * scale), (x_max, g.q4 * scale)],
                RED,
            ),
        ]
    };
    let mib = 1.0 / 1024.0;
    let mut rss = vec![("RSS", series(&|s| s.rss_kib as f64 * mib), BLUE)];
    rss.extend(medians(&judged[0], 1.0));
    let mut fds = vec![("open descriptors", series(&|s| s.fds as f64), BLUE)];
    fds.extend(medians(&judged[1], 1.0));
    let mut threads = vec![("threads", series(&|s| s.threads as f64), BLUE)];
    threads.extend(medians(&judged[2], 1.0));
    let answers = vec![
        ("answered", series(&|s| s.answered as f64), BLUE),
        (
            "throttled (503)",
            series(&|s| s.throttled as f64),
            RGBColor(230, 140, 0),
        ),
        ("errors", series(&|s| s.errors as f64), RED),
    ];
    let marks = [qa, qb, qc];
    panel(&panels[0], "RSS (MiB)", x_max, &rss, &marks)?;
    panel(&panels[1], "open file descriptors", x_max, &fds, &marks)?;
    panel(&panels[2], "threads", x_max, &threads, &marks)?;
    panel(&panels[3], "requests per second", x_max, &answers, &marks)?;
    root.present().map_err(text)
}

/// One panel: its lines, the quarter boundaries as grey verticals, a legend.
fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    caption: &str,
    x_max: f64,
    lines: &[Line],
    marks: &[f64],
) -> Result<(), String> {
    let y_max = lines
        .iter()
        .flat_map(|(_, points, _)| points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(WHITE)
        .draw()
        .map_err(text)?;
    for &x in marks {
        chart
            .draw_series(LineSeries::new(vec![(x, 0.0), (x, y_max)], BLACK.mix(0.25)))
            .map_err(text)?;
    }
    let mut labelled = Vec::new();
    for (label, points, color) in lines {
        let color = *color;
        let series = chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(text)?;
        // One legend entry per label (the two median segments share one).
        if !labelled.contains(label) && !label.starts_with("median, last") {
            let label = if label.starts_with("median") {
                "medians judged"
            } else {
                label
            };
            series.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        labelled.push(*label);
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK.mix(0.4))
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::growth;

    #[test]
    fn a_plot_is_an_svg_with_its_texts() {
        let samples: Vec<Sample> = (1..=60)
            .map(|i| Sample {
                second: i,
                rss_kib: 100_000 + i * 10,
                fds: 230,
                threads: 30,
                answered: 250,
                errors: 0,
                throttled: i % 7,
                load1: 2.0,
            })
            .collect();
        let col = |f: fn(&Sample) -> u64| samples.iter().map(|s| f(s) as f64).collect::<Vec<_>>();
        let judged = [
            growth("rss", &col(|s| s.rss_kib / 1024), 0.0, 0.0),
            growth("fds", &col(|s| s.fds), 0.0, 0.0),
            growth("threads", &col(|s| s.threads), 0.0, 0.0),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        draw(&path, "soak test plot", &samples, &judged).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for want in [
            "soak test plot",
            "RSS (MiB)",
            "threads",
            "seconds",
            "medians judged",
            "errors",
        ] {
            assert!(svg.contains(want), "no {want:?} in the SVG");
        }
    }
}
