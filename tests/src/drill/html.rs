//! The drill's self-contained HTML page, made of the shared report pieces: the verdict, a
//! timeline chart (devices connected per hub; DPS requests and 429 answers per second, with
//! the phases marked), the recovery table and the guarantees.

use std::fmt::Write as _;

use super::report::DrillReport;
use crate::report::chart::{Panel, Series, TimeChart};
use crate::report::page::{esc, page};
use crate::report::recovery;

/// The drill's timeline as a chart.
#[allow(
    clippy::cast_precision_loss,
    reason = "seconds and device counts of a drill, far below 2^52"
)]
pub fn chart(r: &DrillReport) -> TimeChart {
    let t = |s: &super::analysis::Second| s.t as f64;
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
            caption: String::from("DPS requests per second"),
            y_desc: String::from("requests / s"),
            area: Some(Series {
                name: String::from("DPS requests"),
                points: r
                    .timeline
                    .iter()
                    .map(|s| (t(s), s.dps_requests as f64))
                    .collect(),
            }),
            lines: vec![Series {
                name: String::from("answered 429"),
                points: r
                    .timeline
                    .iter()
                    .map(|s| (t(s), s.dps_429 as f64))
                    .collect(),
            }],
            level: Some((
                String::from("quota"),
                f64::from(r.settings.registrations_per_minute) / 60.0,
            )),
        },
        marks: r
            .phases
            .iter()
            .map(|p| (p.start_at_secs, p.name.clone()))
            .collect(),
    }
}

/// The whole HTML page.
pub fn render(r: &DrillReport) -> String {
    let svg = chart(r)
        .svg()
        .unwrap_or_else(|e| format!("<p>chart failed: {}</p>", esc(&e)));
    let mut h = String::new();
    let verdict = if r.passed() {
        "<p class=\"ok\">PASS: 0 lost, every guarantee held, every device recovered</p>"
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
