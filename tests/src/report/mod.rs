//! Reports. Every report hubswap writes is built from the pieces here:
//!
//! | module | what | used by |
//! | --- | --- | --- |
//! | this module | a verdict per guarantee with the timeline that decided it (terminal, JSON, JUnit XML) | the runner, the drill |
//! | [`recovery`] | recovery rows (median, p99, max against N/R, a floor and a bound), as a terminal and an HTML table | the drill, the simulator |
//! | [`chart`] | a time chart in two panels (plotters, SVG) | the drill, the simulator |
//! | [`page`] | the self-contained HTML page every HTML report is | the drill, the simulator |

use std::fmt::Write as _;
use std::time::Duration;

use hubswap_spec::{Guarantee, GuaranteeGrade, Observation, Verdict};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

pub mod chart;
pub mod page;
pub mod recovery;

/// One scenario as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    /// The scenario's name.
    pub name: String,
    /// How long it ran.
    pub duration: Duration,
    /// Problems running it (the device exited, the cloud failed); empty when it ran cleanly.
    pub problems: Vec<String>,
    /// The verdict per guarantee in this scenario.
    pub verdicts: Vec<(Guarantee, Verdict)>,
    /// The guarantees the scenario exists to exercise.
    pub exercises: Vec<Guarantee>,
}

impl ScenarioOutcome {
    /// The guarantees it exists to exercise whose deciding situation did not happen: when any
    /// are, the scenario is inconclusive.
    pub fn not_exercised(&self) -> Vec<Guarantee> {
        self.exercises
            .iter()
            .copied()
            .filter(|g| self.verdicts.contains(&(*g, Verdict::NotApplicable)))
            .collect()
    }
}

/// What a report concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Conclusion {
    /// Every scenario ran cleanly and exercised what it exists to exercise; nothing failed.
    Pass,
    /// A guarantee failed, or a scenario could not run cleanly.
    Fail,
    /// Nothing failed, but some scenario did not exercise a guarantee it exists to exercise.
    Inconclusive,
}

/// One line of a timeline: what the cloud saw, when, in which scenario.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// The scenario.
    pub scenario: String,
    /// Milliseconds since the scenario started.
    pub at_ms: u64,
    /// The device.
    pub device: String,
    /// The observation, in words.
    pub event: String,
}

/// The verdict on one guarantee across all scenarios, with evidence.
#[derive(Debug, Clone, Serialize)]
pub struct GuaranteeReport {
    /// Which guarantee.
    pub guarantee: Guarantee,
    /// Its statement.
    pub title: String,
    /// Fail if any scenario failed it, pass if any exercised it, else not applicable.
    pub verdict: Verdict,
    /// Devices that failed it.
    pub failing_devices: usize,
    /// Why it failed, one line per divergence.
    pub failures: Vec<String>,
    /// The observations that decided it.
    pub timeline: Vec<TimelineEntry>,
}

impl GuaranteeReport {
    /// The report of one grade over a fleet: at most `max_failures` divergences in words, and
    /// what the cloud saw of the first failing device in the 5 s up to its first divergence.
    pub fn of_grade(
        scenario: &str,
        grade: &GuaranteeGrade,
        observations: &[Observation],
        max_failures: usize,
    ) -> Self {
        let mut devices: Vec<&str> = grade
            .divergences
            .iter()
            .map(|d| d.device.as_str())
            .collect();
        devices.sort_unstable();
        devices.dedup();
        let timeline = grade.divergences.first().map_or_else(Vec::new, |d| {
            let from = d.at.0.saturating_sub(5000);
            observations
                .iter()
                .take(d.step + 1)
                .filter(|o| o.device == d.device && o.at.0 >= from)
                .map(|o| TimelineEntry {
                    scenario: scenario.to_owned(),
                    at_ms: o.at.0,
                    device: o.device.clone(),
                    event: format!("{:?}", o.event),
                })
                .collect()
        });
        Self {
            guarantee: grade.guarantee,
            title: grade.guarantee.title().to_owned(),
            verdict: grade.verdict,
            failing_devices: devices.len(),
            failures: grade
                .divergences
                .iter()
                .take(max_failures)
                .map(ToString::to_string)
                .collect(),
            timeline,
        }
    }
}

/// Guarantees for a terminal: the verdict and statement of each, and for a failed one its
/// divergences and the observations that decided it.
pub fn render_guarantees(guarantees: &[GuaranteeReport]) -> String {
    let mut out = String::new();
    for g in guarantees {
        let _ = writeln!(
            out,
            "  {:<3} {:<13} {}",
            g.guarantee.to_string(),
            label(g.verdict),
            g.title
        );
        for f in &g.failures {
            let _ = writeln!(out, "      ✗ {f}");
        }
        if g.verdict == Verdict::Fail {
            for t in &g.timeline {
                let _ = writeln!(
                    out,
                    "        {:>9} ms  [{}] {}  {}",
                    t.at_ms, t.scenario, t.device, t.event
                );
            }
        }
    }
    out
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The device under test (its command line).
    pub device: String,
    /// The scenarios, in order.
    pub scenarios: Vec<ScenarioOutcome>,
    /// G1–G10.
    pub guarantees: Vec<GuaranteeReport>,
}

impl Report {
    /// An empty report for `device`, with every guarantee not applicable.
    pub fn new(device: impl Into<String>) -> Self {
        let guarantees = Guarantee::ALL
            .into_iter()
            .map(|guarantee| GuaranteeReport {
                guarantee,
                title: guarantee.title().to_string(),
                verdict: Verdict::NotApplicable,
                failing_devices: 0,
                failures: Vec::new(),
                timeline: Vec::new(),
            })
            .collect();
        Self {
            device: device.into(),
            scenarios: Vec::new(),
            guarantees,
        }
    }

    /// Folds one scenario's grades (over its observations) into the report.
    pub fn add(
        &mut self,
        mut outcome: ScenarioOutcome,
        grades: &[GuaranteeGrade],
        observations: &[Observation],
    ) {
        let origin = observations.first().map_or(0, |o| o.at.0);
        for grade in grades {
            outcome.verdicts.push((grade.guarantee, grade.verdict));
            let Some(entry) = self
                .guarantees
                .iter_mut()
                .find(|g| g.guarantee == grade.guarantee)
            else {
                continue;
            };
            entry.verdict = merge(entry.verdict, grade.verdict);
            if !grade.divergences.is_empty() {
                entry.failing_devices = entry.failing_devices.max(1);
            }
            for d in &grade.divergences {
                entry.failures.push(format!("[{}] {d}", outcome.name));
            }
            if grade.verdict != Verdict::NotApplicable && entry.timeline.len() < 40 {
                entry.timeline.extend(timeline(
                    &outcome.name,
                    origin,
                    observations,
                    &grade.evidence,
                ));
            }
        }
        self.scenarios.push(outcome);
    }

    /// Records a failure of `guarantee` that the runner saw rather than the trace: in the
    /// last scenario added, with `why`.
    pub fn fail(&mut self, guarantee: Guarantee, why: &str) {
        let Some(scenario) = self.scenarios.last_mut() else {
            return;
        };
        for v in scenario
            .verdicts
            .iter_mut()
            .filter(|(g, _)| *g == guarantee)
        {
            v.1 = Verdict::Fail;
        }
        if let Some(entry) = self
            .guarantees
            .iter_mut()
            .find(|g| g.guarantee == guarantee)
        {
            entry.verdict = Verdict::Fail;
            entry.failing_devices = entry.failing_devices.max(1);
            entry.failures.push(format!("[{}] {why}", scenario.name));
        }
    }

    /// Fail when a guarantee failed or a scenario had a problem; else inconclusive when a
    /// scenario did not exercise what it exists to exercise; else pass.
    pub fn conclusion(&self) -> Conclusion {
        if self.guarantees.iter().any(|g| g.verdict == Verdict::Fail)
            || self.scenarios.iter().any(|s| !s.problems.is_empty())
        {
            Conclusion::Fail
        } else if self.scenarios.iter().any(|s| !s.not_exercised().is_empty()) {
            Conclusion::Inconclusive
        } else {
            Conclusion::Pass
        }
    }

    /// True when the report concludes [`Conclusion::Pass`].
    pub fn passed(&self) -> bool {
        self.conclusion() == Conclusion::Pass
    }

    /// The report for a terminal.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "hubswap conformance report for `{}`\n", self.device);
        let _ = writeln!(out, "scenarios:");
        for s in &self.scenarios {
            let status = if !s.problems.is_empty() {
                "PROBLEM"
            } else if !s.not_exercised().is_empty() {
                "INCONCLUSIVE"
            } else {
                "ran"
            };
            let _ = writeln!(
                out,
                "  {:<28} {status:<8} {:>7.1}s",
                s.name,
                s.duration.as_secs_f64()
            );
            for p in &s.problems {
                let _ = writeln!(out, "      ! {p}");
            }
            for g in s.not_exercised() {
                let _ = writeln!(out, "      ? did not exercise {g}: {}", g.title());
            }
        }
        let _ = writeln!(out, "\nguarantees:");
        out.push_str(&render_guarantees(&self.guarantees));
        let result = match self.conclusion() {
            Conclusion::Pass => "PASS",
            Conclusion::Fail => "FAIL",
            Conclusion::Inconclusive => "INCONCLUSIVE",
        };
        let _ = writeln!(out, "\nresult: {result}");
        out
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as JUnit XML: one test suite, one test case per guarantee and per scenario.
    pub fn to_junit(&self) -> String {
        let mut report = quick_junit::Report::new("hubswap-conformance");
        let mut suite = TestSuite::new("guarantees");
        for g in &self.guarantees {
            let status = match g.verdict {
                Verdict::Pass => TestCaseStatus::success(),
                Verdict::NotApplicable => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message("not exercised: no scenario created its deciding situation");
                    s
                }
                Verdict::Fail => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(g.failures.first().cloned().unwrap_or_default());
                    s.set_description(g.failures.join("\n"));
                    s
                }
            };
            let mut case = TestCase::new(format!("{} {}", g.guarantee, g.title), status);
            case.set_classname("hubswap.guarantees");
            suite.add_test_case(case);
        }
        for s in &self.scenarios {
            let status = if !s.problems.is_empty() {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                st.set_message(s.problems.join("; "));
                st
            } else if !s.not_exercised().is_empty() {
                let mut st = TestCaseStatus::skipped();
                let names: Vec<String> =
                    s.not_exercised().iter().map(ToString::to_string).collect();
                st.set_message(format!(
                    "inconclusive: did not exercise {}",
                    names.join(", ")
                ));
                st
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(s.name.clone(), status);
            case.set_classname("hubswap.scenarios");
            case.set_time(s.duration);
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
        report
            .to_string()
            .unwrap_or_else(|e| format!("<!-- junit serialisation failed: {e} -->"))
    }
}

fn merge(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
        (Verdict::Pass, _) | (_, Verdict::Pass) => Verdict::Pass,
        _ => Verdict::NotApplicable,
    }
}

fn label(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::NotApplicable => "not exercised",
    }
}

/// The observations around each piece of evidence: three before it and the one after.
fn timeline(
    scenario: &str,
    origin: u64,
    observations: &[Observation],
    evidence: &[usize],
) -> Vec<TimelineEntry> {
    let mut picked: Vec<usize> = evidence
        .iter()
        .take(3)
        .flat_map(|&i| i.saturating_sub(3)..=(i + 1).min(observations.len().saturating_sub(1)))
        .collect();
    picked.sort_unstable();
    picked.dedup();
    picked
        .into_iter()
        .filter_map(|i| observations.get(i))
        .map(|o| TimelineEntry {
            scenario: scenario.to_string(),
            at_ms: o.at.0.saturating_sub(origin),
            device: o.device.clone(),
            event: format!("{:?}", o.event),
        })
        .collect()
}

#[cfg(test)]
mod tests;
