//! A time chart in two panels, drawn with plotters' SVG backend: devices over time above,
//! a load (DPS requests per second) below, with numbered marks at the run's events and shaded,
//! numbered bands for its phases (from the fault to the last recovery, with a red line at the
//! phase's recovery bound). Marks and bands carry numbers, not words, staggered in height, so
//! that labels of events close in time cannot overlap; the page lists what each number is.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 1100;
/// Label rows: the k-th label sits on row k % ROWS, so neighbours never share a row.
const ROWS: usize = 6;
const HEIGHT: u32 = 620;
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
    RGBColor(140, 86, 75),
];

/// A named series of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// The points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// One panel: lines, optionally one filled area, and optionally a horizontal reference level.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Panel {
    /// The caption above it.
    pub caption: String,
    /// The y axis.
    pub y_desc: String,
    /// A filled area under the lines.
    pub area: Option<Series>,
    /// Lines.
    pub lines: Vec<Series>,
    /// A labelled horizontal line (a quota, a fleet size).
    pub level: Option<(String, f64)>,
}

/// The whole chart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeChart {
    /// The x axis.
    pub x_desc: String,
    /// The upper panel.
    pub top: Panel,
    /// The lower panel.
    pub bottom: Panel,
    /// Events: (x, what); drawn as numbered vertical lines, 1-based.
    pub marks: Vec<(f64, String)>,
    /// Phases: drawn as shaded bands, numbered after the marks.
    pub bands: Vec<Band>,
}

/// A phase of a run on the time axis.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Band {
    /// Where it starts (the fault).
    pub from: f64,
    /// Where it ends (the last recovery).
    pub to: f64,
    /// Its name (listed on the page under its number).
    pub label: String,
    /// Where its recovery bound falls, if it has one.
    pub bound: Option<f64>,
}

impl TimeChart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let (top, bottom) = root.split_vertically(HEIGHT * 11 / 20);
            let (x0, x1) = self.x_range();
            for (area, panel) in [(&top, &self.top), (&bottom, &self.bottom)] {
                draw(area, panel, &self.x_desc, (x0, x1), self).map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    fn x_range(&self) -> (f64, f64) {
        let xs = || {
            [&self.top, &self.bottom]
                .into_iter()
                .flat_map(|p| p.lines.iter().chain(p.area.iter()))
                .flat_map(|s| s.points.iter().map(|&(x, _)| x))
                .chain(self.marks.iter().map(|&(x, _)| x))
                .chain(
                    self.bands
                        .iter()
                        .flat_map(|b| [b.from, b.to].into_iter().chain(b.bound)),
                )
        };
        let lo = xs().fold(f64::INFINITY, f64::min);
        let hi = xs().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (0.0, 1.0)
        }
    }
}

fn y_max(p: &Panel) -> f64 {
    p.lines
        .iter()
        .chain(p.area.iter())
        .flat_map(|s| s.points.iter().map(|&(_, y)| y))
        .chain(p.level.iter().map(|&(_, y)| y))
        .fold(1.0, f64::max)
        * 1.1
}

fn draw(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    p: &Panel,
    x_desc: &str,
    (x0, x1): (f64, f64),
    chart: &TimeChart,
) -> Result<(), Box<dyn std::error::Error>> {
    let top = y_max(p);
    let mut c = ChartBuilder::on(area)
        .caption(&p.caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, 0.0..top)?;
    c.configure_mesh().x_desc(x_desc).y_desc(&p.y_desc).draw()?;
    if let Some(s) = &p.area {
        let colour = COLOURS[2];
        c.draw_series(AreaSeries::new(s.points.clone(), 0.0, colour.mix(0.35)))?
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], colour.filled()));
    }
    for (i, s) in p.lines.iter().enumerate() {
        let colour = if p.area.is_some() && i == 0 {
            RED
        } else {
            COLOURS[i % COLOURS.len()]
        };
        c.draw_series(LineSeries::new(s.points.clone(), colour.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
    }
    if let Some((name, y)) = &p.level {
        c.draw_series(LineSeries::new([(x0, *y), (x1, *y)], BLACK.stroke_width(1)))?
            .label(name.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    #[allow(clippy::cast_precision_loss, reason = "a handful of labels")]
    let row = |k: usize| top * (0.97 - 0.06 * (k % ROWS) as f64);
    // Bound labels have rows of their own, below the band labels.
    #[allow(clippy::cast_precision_loss, reason = "a handful of labels")]
    let bound_row = |k: usize| top * (0.60 - 0.06 * (k % ROWS) as f64);
    for (k, (x, _)) in chart.marks.iter().enumerate() {
        c.draw_series(LineSeries::new([(*x, 0.0), (*x, top)], BLACK.mix(0.3)))?;
        c.draw_series(std::iter::once(Text::new(
            format!("{}", k + 1),
            (*x, row(k)),
            ("sans-serif", 13),
        )))?;
    }
    for (i, b) in chart.bands.iter().enumerate() {
        let k = chart.marks.len() + i;
        let colour = COLOURS[i % COLOURS.len()];
        c.draw_series(std::iter::once(Rectangle::new(
            [(b.from, 0.0), (b.to.max(b.from), top)],
            colour.mix(0.15).filled(),
        )))?;
        if let Some(x) = b.bound {
            c.draw_series(LineSeries::new([(x, 0.0), (x, top)], RED.mix(0.6)))?;
            // Right-aligned, so that a bound at the chart's right edge stays inside it.
            let style = ("sans-serif", 11)
                .into_font()
                .color(&RED)
                .pos(Pos::new(HPos::Right, VPos::Top));
            c.draw_series(std::iter::once(Text::new(
                format!("{} bound ", k + 1),
                (x, bound_row(k)),
                style,
            )))?;
        }
        c.draw_series(std::iter::once(Text::new(
            format!("{}", k + 1),
            (b.from, row(k)),
            ("sans-serif", 13),
        )))?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, ys: &[f64]) -> Series {
        Series {
            name: name.into(),
            points: (0u32..).map(f64::from).zip(ys.iter().copied()).collect(),
        }
    }

    #[test]
    fn phases_are_numbered_bands_with_their_bounds() {
        let band = |from, to, bound| Band {
            from,
            to,
            label: "phase".into(),
            bound,
        };
        let chart = TimeChart {
            x_desc: "s".into(),
            top: Panel {
                lines: vec![line("hub-a", &[10.0, 0.0, 10.0, 10.0])],
                ..Panel::default()
            },
            bottom: Panel {
                area: Some(line("DPS", &[0.0, 5.0, 1.0, 0.0])),
                level: Some(("quota".into(), 1.5)),
                ..Panel::default()
            },
            marks: Vec::new(),
            bands: vec![band(1.0, 2.0, Some(2.5)), band(2.2, 2.3, None)],
        };
        let svg = chart.svg().expect("the chart draws");
        // plotters writes each text on a line of its own.
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(
            texts.contains(&"1 bound"),
            "the first phase's bound is labelled"
        );
        assert!(
            !texts.contains(&"2 bound"),
            "a phase without a bound has none"
        );
        assert!(texts.contains(&"1") && texts.contains(&"2") && texts.contains(&"quota"));
    }
}
