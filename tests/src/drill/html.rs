//! The drill's self-contained HTML page, made of the shared report pieces: the verdict, a
//! timeline chart (devices connected per hub; DPS requests and 429 answers per second against
//! the quota; each phase a numbered band from its fault to its last recovery, with its recovery
//! bound), the recovery table and the guarantees.

use std::fmt::Write as _;

use super::report::DrillReport;
use crate::report::chart::{Band, Panel, Series, TimeChart};
use crate::report::page::{esc, page};
use crate::report::recovery;

/// The drill's timeline as a chart.
#[allow(
    clippy::cast_precision_loss,
    reason = "seconds and device counts of a drill, far below 2^52"
)]
pub fn chart(r: &DrillReport) -> TimeChart {
    let t = |s: &super::analysis::Second| s.t as f64;
    // The fleet provisions before the story and its quota start; the quota panel counts from
    // the second the first phase began.
    let first = r.phases.first().map_or(0.0, |p| p.start_at_secs.floor());
    let from_first = |s: &super::analysis::Second, n: u64| if t(s) >= first { n } else { 0 };
    TimeChart {
        x_desc: String::from("seconds since the mock cloud started"),
        top: Panel {
            caption: String::from("devices connected per hub"),
            y_desc: String::from("devices"),
            area: None,
            lines: r
                .hubs
                .iter()
                .map(|hub| Series {
                    name: hub.clone(),
                    points: r
                        .timeline
                        .iter()
                        .map(|s| (t(s), s.connected.get(hub).copied().unwrap_or(0) as f64))
                        .collect(),
                })
                .collect(),
            level: Some((String::from("fleet"), r.settings.devices as f64)),
        },
        bottom: Panel {
            caption: String::from(
                "DPS load against the quota: the trailing minute, from the first phase (when the quota starts)",
            ),
            y_desc: String::from("per minute"),
            area: Some(Series {
                name: String::from("registrations"),
                points: trailing_minute(&r.timeline, |s| from_first(s, s.dps_registers)),
            }),
            lines: vec![Series {
                name: String::from("answered 429"),
                points: trailing_minute(&r.timeline, |s| from_first(s, s.dps_429)),
            }],
            level: Some((
                String::from("quota"),
                f64::from(r.settings.registrations_per_minute),
            )),
        },
        marks: Vec::new(),
        bands: r
            .phases
            .iter()
            .map(|p| Band {
                from: p.start_at_secs,
                to: p.start_at_secs + p.max_secs.unwrap_or(0.0),
                label: p.name.clone(),
                bound: p.bound.as_ref().map(|b| p.start_at_secs + b.secs),
            })
            .collect(),
    }
}

/// For each second, the sum of `count` over the 60 seconds up to it: what a sliding one-minute
/// quota sees.
#[allow(
    clippy::cast_precision_loss,
    reason = "counts of a drill, far below 2^52"
)]
fn trailing_minute(
    timeline: &[super::analysis::Second],
    count: impl Fn(&super::analysis::Second) -> u64,
) -> Vec<(f64, f64)> {
    let mut window = std::collections::VecDeque::new();
    let mut sum = 0u64;
    timeline
        .iter()
        .map(|s| {
            let n = count(s);
            window.push_back(n);
            sum += n;
            if window.len() > 60 {
                sum -= window.pop_front().unwrap_or(0);
            }
            (s.t as f64, sum as f64)
        })
        .collect()
}

/// The whole HTML page.
pub fn render(r: &DrillReport) -> String {
    let svg = chart(r)
        .svg()
        .unwrap_or_else(|e| format!("<p>chart failed: {}</p>", esc(&e)));
    let mut h = String::new();
    let verdict = if r.passed() {
        "<p class=\"ok\">PASS: 0 lost, every message settled, every guarantee held, every device recovered within its bound</p>"
    } else {
        "<p class=\"fail\">FAIL</p>"
    };
    let _ = writeln!(h, "{verdict}");
    let _ = writeln!(h, "<div id=\"chart\">{svg}</div><ol>");
    for p in &r.phases {
        let _ = writeln!(
            h,
            "<li>{:.1} s: {}: {}</li>",
            p.start_at_secs,
            esc(&p.name),
            esc(&p.what)
        );
    }
    let _ = writeln!(
        h,
        "</ol>\n<h2>Recovery per phase (seconds)</h2>\n{}",
        recovery::render_html(&r.phases)
    );
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
        "<h2>Full report</h2>\n<pre>{}</pre>",
        esc(&r.render_text())
    );
    page("hubswap drill report", &h)
}
