//! The simulator's self-contained HTML page: the figures as tables and, per run, a plotters
//! chart over time of devices per state, DPS requests per second against the quota, and 429s.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::report::SimReport;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 560;
const COLOURS: [RGBColor; 5] = [
    RGBColor(44, 160, 44),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One run's chart as an SVG document.
pub fn chart_svg(r: &SimReport) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, r).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[allow(
    clippy::cast_precision_loss,
    reason = "seconds and device counts far below 2^52"
)]
fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    r: &SimReport,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT * 11 / 20);
    let tl = &r.timeline;
    let t_max = tl.t.last().map_or(1.0, |&t| (t + tl.step_secs) as f64);
    let devices = f64::from(r.devices);
    let mut c = ChartBuilder::on(&top)
        .caption(
            format!("{} x {}: devices per state", r.scenario, r.policy.name),
            ("sans-serif", 18),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..devices * 1.05)?;
    c.configure_mesh()
        .x_desc("seconds since the timeline started")
        .y_desc("devices")
        .draw()?;
    for (i, (name, series)) in tl.states.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points =
            tl.t.iter()
                .zip(series)
                .map(|(&t, &v)| (t as f64, f64::from(v)));
        c.draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
    }
    for (k, (x, _)) in tl.marks.iter().enumerate() {
        c.draw_series(LineSeries::new(
            [(*x, 0.0), (*x, devices * 1.05)],
            BLACK.mix(0.3),
        ))?;
        c.draw_series(std::iter::once(Text::new(
            format!("{}", k + 1),
            (*x, devices * (1.0 - 0.05 * (k % 4) as f64)),
            ("sans-serif", 12),
        )))?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let quota = f64::from(r.dps.registration_quota + r.dps.poll_quota) / 60.0;
    let peak = tl
        .dps_per_second
        .iter()
        .copied()
        .fold(quota, f64::max)
        .max(1.0);
    let mut d = ChartBuilder::on(&bottom)
        .caption("DPS requests per second", ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..peak * 1.1)?;
    d.configure_mesh().y_desc("requests / s").draw()?;
    let at = |xs: &[f64]| -> Vec<(f64, f64)> {
        tl.t.iter().zip(xs).map(|(&t, &v)| (t as f64, v)).collect()
    };
    d.draw_series(AreaSeries::new(
        at(&tl.dps_per_second),
        0.0,
        COLOURS[1].mix(0.4),
    ))?
    .label("DPS requests")
    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], COLOURS[1].filled()));
    d.draw_series(LineSeries::new(
        at(&tl.throttled_per_second),
        RED.stroke_width(2),
    ))?
    .label("answered 429")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
    d.draw_series(LineSeries::new(
        [(0.0, quota), (t_max, quota)],
        BLACK.stroke_width(1),
    ))?
    .label("quota (registers + polls)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    d.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The matrix table: one row per run and incident.
fn table(h: &mut String, runs: &[SimReport]) {
    let _ = writeln!(
        h,
        "<table><tr><th>scenario</th><th>policy</th><th>N</th><th>incident</th><th>reg/dev mean</th><th>p99</th><th>max</th>\
         <th>polls/dev</th><th>cache deleted</th><th>peak DPS/min</th><th>429 %</th><th>peak CONNECT/s</th>\
         <th>t99 (s)</th><th>t100 (s)</th><th>floor (s)</th><th>down at end</th></tr>"
    );
    for r in runs {
        for i in &r.incidents {
            let f = |x: Option<f64>| x.map_or_else(|| String::from("never"), |v| format!("{v:.1}"));
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{:.2}</td>\
                 <td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td title=\"{}\">{:.1}</td><td>{}</td></tr>",
                r.scenario,
                esc(&r.policy.label),
                esc(&r.policy.name),
                r.devices,
                esc(&i.name),
                r.dps.registrations.mean,
                r.dps.registrations.p99,
                r.dps.registrations.max,
                r.dps.polls.mean,
                r.dps.devices_deleted_cache,
                r.dps.peak_requests_per_minute,
                r.dps.throttled_share * 100.0,
                r.hub.peak_connects_per_second,
                f(i.t99_secs),
                f(i.t100_secs),
                esc(&i.floor_formula),
                i.floor_secs,
                r.not_connected_at_end
            );
        }
    }
    let _ = writeln!(h, "</table>");
}

/// The whole page for one run or a matrix of runs.
pub fn render(runs: &[SimReport]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hubswap fleet simulation</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;max-width:1100px}}table{{border-collapse:collapse;margin:.5em 0}}\
         td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right;font-size:90%}}td:first-child,th:first-child{{text-align:left}}\
         pre{{background:#f4f4f4;padding:.5em;white-space:pre-wrap}}</style></head><body>\n<h1>hubswap fleet simulation</h1>\n"
    );
    table(&mut h, runs);
    for (k, r) in runs.iter().enumerate() {
        let chart = chart_svg(r).unwrap_or_else(|e| format!("<p>chart failed: {}</p>", esc(&e)));
        let _ = writeln!(
            h,
            "<section id=\"run-{k}\"><h2>{} x {} ({} devices)</h2><div class=\"chart\">{chart}</div><ol>",
            r.scenario, r.policy.name, r.devices
        );
        for (t, what) in &r.timeline.marks {
            let _ = writeln!(h, "<li>{t:.0} s: {}</li>", esc(what));
        }
        let _ = writeln!(h, "</ol><pre>{}</pre></section>", esc(&r.render_text()));
    }
    let _ = writeln!(h, "</body></html>");
    h
}
