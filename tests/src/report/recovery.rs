//! Recovery rows: how long the devices an incident affected took to be connected again, against
//! N/R (a reference), a floor no policy can beat, and the spec's bound. The drill's phases and the
//! simulator's incidents are both made of these.

use std::fmt::Write as _;

use serde::Serialize;

use super::page::esc;

/// A bound on a recovery time, with how it is computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bound {
    /// Seconds.
    pub secs: f64,
    /// The formula.
    pub formula: String,
}

/// One incident's recovery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovery {
    /// The incident.
    pub name: String,
    /// What happened.
    pub what: String,
    /// When recovery is measured from (seconds since the run's start).
    pub start_at_secs: f64,
    /// Devices that had to recover.
    pub affected: usize,
    /// Of those, connected again.
    pub recovered: usize,
    /// Seconds until half of the affected were connected again; `None` when that share never
    /// was (nearest rank, over the affected: a device that never recovered counts as infinite).
    pub p50_secs: Option<f64>,
    /// The same for 99 %.
    pub p99_secs: Option<f64>,
    /// The same for all of them.
    pub max_secs: Option<f64>,
    /// N/R: the devices that must pass DPS divided by its quota (s). A reference, not a floor:
    /// a sliding window admits R at once.
    pub n_over_r_secs: f64,
    /// What no policy can beat, when the report knows it.
    pub floor: Option<Bound>,
    /// What the spec promises, when the report knows it.
    pub bound: Option<Bound>,
}

impl Recovery {
    /// The p50, p99 and max of `times` (seconds) over `affected` devices, nearest rank.
    pub fn quantiles(times: &[f64], affected: usize) -> [Option<f64>; 3] {
        let mut v = times.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: usize| -> Option<f64> {
            if affected == 0 {
                return Some(0.0);
            }
            let rank = (affected * q).div_ceil(100).max(1) - 1;
            v.get(rank).copied()
        };
        [at(50), at(99), at(100)]
    }

    /// Every affected device recovered within the bound; `None` without a bound.
    pub fn within_bound(&self) -> Option<bool> {
        self.bound
            .as_ref()
            .map(|b| self.recovered == self.affected && self.max_secs.is_some_and(|m| m <= b.secs))
    }
}

fn within_word<'a>(r: &Recovery, no: &'a str) -> &'a str {
    match r.within_bound() {
        Some(true) => "yes",
        Some(false) => no,
        None => "-",
    }
}

fn cell(x: Option<f64>) -> String {
    x.map_or_else(|| String::from("never"), |v| format!("{v:.2}"))
}

fn bound_cell(b: Option<&Bound>) -> String {
    b.map_or_else(|| String::from("-"), |b| format!("{:.2}", b.secs))
}

/// The rows as a terminal table, each followed by what happened and how its floor and bound
/// are computed.
pub fn render_text(rows: &[Recovery]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "  {:<18} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  within",
        "incident", "recovered", "p50", "p99", "max", "N/R", "floor", "bound"
    );
    for r in rows {
        let within = within_word(r, "NO");
        let _ = writeln!(
            o,
            "  {:<18} {:>5}/{:<5} {:>8} {:>8} {:>8} {:>8.2} {:>8} {:>8}  {within}",
            r.name,
            r.recovered,
            r.affected,
            cell(r.p50_secs),
            cell(r.p99_secs),
            cell(r.max_secs),
            r.n_over_r_secs,
            bound_cell(r.floor.as_ref()),
            bound_cell(r.bound.as_ref()),
        );
        if !r.what.is_empty() {
            let _ = writeln!(o, "    {}", r.what);
        }
        for (word, b) in [("floor", &r.floor), ("bound", &r.bound)] {
            if let Some(b) = b {
                let _ = writeln!(o, "    {word}: {}", b.formula);
            }
        }
    }
    o
}

/// The rows as an HTML table; formulas in the cells' titles.
pub fn render_html(rows: &[Recovery]) -> String {
    let mut h = String::from(
        "<table><tr><th>incident</th><th>recovered</th><th>p50</th><th>p99</th><th>max</th>\
         <th>N/R</th><th>floor</th><th>bound</th><th>within</th></tr>\n",
    );
    for r in rows {
        let title = |b: Option<&Bound>| b.map_or_else(String::new, |b| esc(&b.formula));
        let within = within_word(r, "<span class=\"fail\">no</span>");
        let _ = writeln!(
            h,
            "<tr><td title=\"{}\">{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td>\
             <td title=\"{}\">{}</td><td title=\"{}\">{}</td><td>{within}</td></tr>",
            esc(&r.what),
            esc(&r.name),
            r.recovered,
            r.affected,
            cell(r.p50_secs),
            cell(r.p99_secs),
            cell(r.max_secs),
            r.n_over_r_secs,
            title(r.floor.as_ref()),
            bound_cell(r.floor.as_ref()),
            title(r.bound.as_ref()),
            bound_cell(r.bound.as_ref()),
        );
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_count_the_unrecovered_as_never() {
        let times = [3.0, 1.0, 2.0];
        assert_eq!(
            Recovery::quantiles(&times, 3),
            [Some(2.0), Some(3.0), Some(3.0)]
        );
        assert_eq!(Recovery::quantiles(&times, 4), [Some(2.0), None, None]);
        assert_eq!(Recovery::quantiles(&[], 0), [Some(0.0); 3]);
    }

    #[test]
    fn within_needs_everyone_back_inside_the_bound() {
        let mut r = Recovery {
            name: "x".into(),
            what: String::new(),
            start_at_secs: 0.0,
            affected: 2,
            recovered: 2,
            p50_secs: Some(1.0),
            p99_secs: Some(2.0),
            max_secs: Some(2.0),
            n_over_r_secs: 0.0,
            floor: None,
            bound: Some(Bound {
                secs: 2.0,
                formula: "b".into(),
            }),
        };
        assert_eq!(r.within_bound(), Some(true));
        r.max_secs = Some(2.5);
        assert_eq!(r.within_bound(), Some(false));
        r.max_secs = Some(1.0);
        r.recovered = 1;
        assert_eq!(r.within_bound(), Some(false));
        r.bound = None;
        assert_eq!(r.within_bound(), None);
    }
}
