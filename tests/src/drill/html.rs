//! The self-contained HTML report: the terminal report's numbers as tables, and a timeline chart
//! drawn with plotters' SVG backend and inlined (no scripts, no external files).

use std::fmt::Write as _;

use plotters::prelude::*;

use super::report::DrillReport;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 640;
const HUB_COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The timeline chart as an SVG document: devices connected per hub (top) and DPS requests and
/// 429 answers per second (bottom), with the phases marked.
pub fn chart_svg(r: &DrillReport) -> Result<String, String> {
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
    reason = "seconds and device counts of a drill, far below 2^52"
)]
fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    r: &DrillReport,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT * 3 / 5);
    let t_max = r.timeline.last().map_or(1.0, |s| s.t as f64 + 1.0);
    let t0 = r.timeline.first().map_or(0.0, |s| s.t as f64);
    let devices = r.settings.devices as f64;
    let mut c = ChartBuilder::on(&top)
        .caption("devices connected per hub", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(t0..t_max, 0.0..devices * 1.05)?;
    c.configure_mesh()
        .x_desc("seconds since the mock cloud started")
        .y_desc("devices")
        .draw()?;
    for (i, hub) in r.hubs.iter().enumerate() {
        let colour = HUB_COLOURS[i % HUB_COLOURS.len()];
        let points = r.timeline.iter().map(|s| {
            (
                s.t as f64,
                s.connected.get(hub).copied().unwrap_or(0) as f64,
            )
        });
        c.draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(hub.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
    }
    for p in &r.phases {
        let x = p.start_at_secs;
        c.draw_series(LineSeries::new(
            [(x, 0.0), (x, devices * 1.05)],
            BLACK.mix(0.3),
        ))?;
        c.draw_series(std::iter::once(Text::new(
            p.name.clone(),
            (x, devices),
            ("sans-serif", 12),
        )))?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let peak = r
        .timeline
        .iter()
        .map(|s| s.dps_requests)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut d = ChartBuilder::on(&bottom)
        .caption("DPS requests per second", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(t0..t_max, 0.0..peak * 1.1)?;
    d.configure_mesh().y_desc("requests / s").draw()?;
    let reqs = r
        .timeline
        .iter()
        .map(|s| (s.t as f64, s.dps_requests as f64));
    d.draw_series(AreaSeries::new(reqs, 0.0, HUB_COLOURS[2].mix(0.4)))?
        .label("DPS requests")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], HUB_COLOURS[2].filled()));
    let throttled = r.timeline.iter().map(|s| (s.t as f64, s.dps_429 as f64));
    d.draw_series(LineSeries::new(throttled, RED.stroke_width(2)))?
        .label("answered 429")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
    d.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The whole HTML page.
pub fn render(r: &DrillReport) -> String {
    let chart = chart_svg(r).unwrap_or_else(|e| format!("<p>chart failed: {}</p>", esc(&e)));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hubswap drill report</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;max-width:1150px}}table{{border-collapse:collapse;margin:.5em 0}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .fail{{color:#b00;font-weight:bold}}.ok{{color:#080}}pre{{background:#f4f4f4;padding:.5em;white-space:pre-wrap}}</style>\
         </head><body>\n<h1>hubswap drill report</h1>\n"
    );
    let verdict = if r.passed() {
        "<p class=\"ok\">PASS: 0 lost, every guarantee held, every device recovered</p>"
    } else {
        "<p class=\"fail\">FAIL</p>"
    };
    let _ = writeln!(h, "{verdict}");
    let _ = writeln!(h, "<div id=\"chart\">{chart}</div>");
    let _ = writeln!(
        h,
        "<h2>Recovery per phase (seconds)</h2>\n<table><tr><th>phase</th><th>recovered</th><th>p50</th><th>p99</th><th>max</th><th>N/R</th><th>bound</th><th>within</th></tr>"
    );
    for p in &r.phases {
        let _ = writeln!(
            h,
            "<tr><td title=\"{}\">{}</td><td>{}/{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td title=\"{}\">{:.2}</td><td>{}</td></tr>",
            esc(&p.what),
            esc(&p.name),
            p.recovered,
            p.affected,
            p.recovery.p50,
            p.recovery.p99,
            p.recovery.max,
            p.floor_secs,
            esc(&p.bound_formula),
            p.bound_secs,
            if p.within_bound {
                "yes"
            } else {
                "<span class=\"fail\">no</span>"
            }
        );
    }
    let _ = writeln!(h, "</table>");
    let _ = writeln!(
        h,
        "<h2>Guarantees</h2>\n<table><tr><th>guarantee</th><th>verdict</th><th>failing devices</th><th>statement</th></tr>"
    );
    for g in &r.guarantees {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{:?}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            g.guarantee,
            g.verdict,
            g.failing_devices,
            esc(&g.title)
        );
    }
    let _ = writeln!(h, "</table>");
    let _ = writeln!(
        h,
        "<h2>Full report</h2>\n<pre>{}</pre>\n</body></html>",
        esc(&r.render_text())
    );
    h
}
