//! Grading: a verdict per guarantee, with evidence (SPEC §8.1).
//!
//! [`super::validate_trace_with()`] stops at the first divergence; a conformance report needs more:
//! for each of G1–G10, whether the trace exercised it at all, whether it held, and which
//! observations decided it. [`grade`] runs the same [`Monitor`] per device, keeps going after a
//! divergence (forgetting the broken expectation so one fault is reported once), and records
//! which observations exercised which guarantee.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::monitor::Monitor;
use super::observation::{Divergence, Observation, Observed, Side, TraceCheck};
use super::situations::Situations;
use crate::classify::{Class, WireSignal, classify};
use crate::guarantee::Guarantee;

/// The verdict on one guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    /// Its deciding situation happened (for some device), and it was never violated.
    Pass,
    /// Violated at least once.
    Fail,
    /// Its deciding situation never happened (SPEC §8.1), and nothing violated it.
    NotApplicable,
}

/// The grade of one guarantee.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuaranteeGrade {
    /// Which guarantee.
    pub guarantee: Guarantee,
    /// Pass, fail or not applicable.
    pub verdict: Verdict,
    /// Every divergence found for it.
    pub divergences: Vec<Divergence>,
    /// Indices (into the trace) of the observations that exercised it, first ones first.
    pub evidence: Vec<usize>,
    /// Whether its deciding situation happened: only then can it pass.
    pub decided: bool,
}

/// The guarantees an observation exercises: the situations each one governs.
pub fn exercises(event: &Observed) -> &'static [Guarantee] {
    use Guarantee as G;
    match event {
        Observed::HubRefused { .. } => &[G::G1, G::G9],
        Observed::ConnAck { code } => match classify(&WireSignal::ConnAck(*code)) {
            Class::AuthRefused => &[G::G2, G::G9],
            Class::Unavailable => &[G::G3, G::G5, G::G9],
            Class::ClientBug => &[G::G5],
            _ => &[],
        },
        Observed::DpsResponse(answer) => match answer.class() {
            Class::Blocked => &[G::G4],
            Class::Throttled { .. } => &[G::G6, G::G10],
            Class::DpsTransient | Class::ClientBug => &[G::G5, G::G10],
            _ => &[],
        },
        Observed::Disconnect { by: Side::Cloud } => &[G::G5],
        Observed::HubConnect { .. } | Observed::DpsRequest(_) => &[G::G7],
        Observed::End => &[G::G8],
        Observed::Disconnect { .. } => &[],
    }
}

/// Grades a trace: one [`GuaranteeGrade`] per guarantee, in order G1–G10.
///
/// A guarantee passes only when its deciding situation happened (SPEC §8.1); G8's is an
/// [`Observed::End`] after at least one failure: only then is "connected again by the end" a
/// claim the trace can support.
pub fn grade(check: &TraceCheck, observations: &[Observation]) -> Vec<GuaranteeGrade> {
    let mut grades: Vec<GuaranteeGrade> = Guarantee::ALL
        .into_iter()
        .map(|guarantee| GuaranteeGrade {
            guarantee,
            verdict: Verdict::NotApplicable,
            divergences: Vec::new(),
            evidence: Vec::new(),
            decided: false,
        })
        .collect();
    let slot = |g: Guarantee| Guarantee::ALL.iter().position(|x| *x == g).unwrap_or(0);
    let mut monitors: BTreeMap<&str, Monitor> = BTreeMap::new();
    let mut situations: BTreeMap<&str, Situations> = BTreeMap::new();
    let mut failures_seen = false;
    let end = observations
        .iter()
        .enumerate()
        .filter(|(_, o)| o.event == Observed::End)
        .max_by_key(|(_, o)| o.at);
    for (i, o) in observations.iter().enumerate() {
        if o.event == Observed::End {
            continue;
        }
        for g in exercises(&o.event) {
            failures_seen |= *g != Guarantee::G7;
            push_evidence(&mut grades[slot(*g)], i);
        }
        let s = situations.entry(o.device.as_str()).or_default();
        for g in s.observe(&check.config, &o.event) {
            grades[slot(g)].decided = true;
        }
        let m = monitors.entry(o.device.as_str()).or_default();
        if let Err((g, reason)) = m.observe(check, o.at, &o.event) {
            record(
                &mut grades[slot(g)],
                Divergence {
                    guarantee: g,
                    step: i,
                    at: o.at,
                    device: o.device.clone(),
                    reason,
                },
            );
            m.forget_expectations();
        }
    }
    if let Some((i, end)) = end {
        if failures_seen {
            push_evidence(&mut grades[slot(Guarantee::G8)], i);
            grades[slot(Guarantee::G8)].decided = true;
        }
        for (device, m) in &mut monitors {
            if let Err((g, reason)) = m.observe(check, end.at, &Observed::End) {
                let d = Divergence {
                    guarantee: g,
                    step: i,
                    at: end.at,
                    device: String::from(*device),
                    reason,
                };
                record(&mut grades[slot(g)], d);
            }
        }
    }
    for g in &mut grades {
        g.verdict = if !g.divergences.is_empty() {
            Verdict::Fail
        } else if g.decided {
            Verdict::Pass
        } else {
            Verdict::NotApplicable
        };
    }
    grades
}

fn push_evidence(g: &mut GuaranteeGrade, i: usize) {
    const KEEP: usize = 16;
    if g.evidence.len() < KEEP {
        g.evidence.push(i);
    }
}

fn record(g: &mut GuaranteeGrade, d: Divergence) {
    push_evidence(g, d.step);
    g.divergences.push(d);
}
