//! The simulator's self-contained HTML page, made of the shared report pieces: the matrix as a
//! table, then per run its recovery table and a chart over time of devices per state, DPS
//! requests per second against the quota, and 429s.

use std::fmt::Write as _;

use super::report::{SimReport, render_matrix};
use crate::report::chart::{Panel, Series, TimeChart};
use crate::report::page::{esc, page};
use crate::report::recovery;

/// One run's chart.
#[allow(clippy::cast_precision_loss, reason = "seconds far below 2^52")]
pub fn chart(r: &SimReport) -> TimeChart {
    let tl = &r.timeline;
    let xs = || tl.t.iter().map(|&t| t as f64);
    let series = |name: &str, ys: &[f64]| Series {
        name: name.to_owned(),
        points: xs().zip(ys.iter().copied()).collect(),
    };
    TimeChart {
        x_desc: String::from("seconds since the timeline started"),
        top: Panel {
            caption: format!("{} x {}: devices per state", r.scenario, r.policy.name),
            y_desc: String::from("devices"),
            area: None,
            lines: tl
                .states
                .iter()
                .map(|(name, ys)| Series {
                    name: name.clone(),
                    points: xs().zip(ys.iter().map(|&y| f64::from(y))).collect(),
                })
                .collect(),
            level: None,
        },
        bottom: Panel {
            caption: String::from("DPS requests per second"),
            y_desc: String::from("requests / s"),
            area: Some(series("DPS requests", &tl.dps_per_second)),
            lines: vec![series("answered 429", &tl.throttled_per_second)],
            level: Some((
                String::from("quota (registers + polls)"),
                f64::from(r.dps.registration_quota + r.dps.poll_quota) / 60.0,
            )),
        },
        marks: tl.marks.clone(),
        bands: Vec::new(),
    }
}

/// The whole page for one run or a matrix of runs.
pub fn render(runs: &[SimReport]) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h2>Matrix</h2><pre>{}</pre>",
        esc(&render_matrix(runs))
    );
    for (k, r) in runs.iter().enumerate() {
        let svg = chart(r)
            .svg()
            .unwrap_or_else(|e| format!("<p>chart failed: {}</p>", esc(&e)));
        let _ = writeln!(
            body,
            "<section id=\"run-{k}\"><h2>{} x {} ({} devices)</h2><p>{}</p><p>{}</p>{}\
             <div class=\"chart\">{svg}</div><ol>",
            r.scenario,
            esc(&r.policy.name),
            r.devices,
            esc(&r.what),
            esc(&r.policy.label),
            recovery::render_html(&r.incidents),
        );
        for (t, what) in &r.timeline.marks {
            let _ = writeln!(body, "<li>{t:.0} s: {}</li>", esc(what));
        }
        let _ = writeln!(body, "</ol><pre>{}</pre></section>", esc(&r.render_text()));
    }
    page("hubswap fleet simulation", &body)
}
