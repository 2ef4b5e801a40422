//! The drill's report: recovery per phase against its bound, DPS and connection counts,
//! telemetry reconciliation, and the guarantees; rendered for a terminal and as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use hubswap_mock_cloud::LogRecord;
use hubswap_spec::{Config, Verdict};
use serde::Serialize;

use super::analysis::{self, Counts, Messages, Second};
use super::args::DrillArgs;
use super::fleet::FleetStats;
use super::story::PhaseRun;
use crate::report::GuaranteeReport;
use crate::report::recovery::{self, Bound, Recovery};

/// The settings the drill ran with.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Devices.
    pub devices: usize,
    /// DPS register requests accepted per wall-clock minute (sliding window).
    pub registrations_per_minute: u32,
    /// The spec's delays divided by this.
    pub time_scale: u32,
    /// The spec config the clients were graded against (and ran, unless
    /// `fleet_backoff_scale`).
    pub config: Config,
    /// When the clients ran the spec's backoff divided by another factor than the grade.
    pub fleet_backoff_scale: Option<u32>,
    /// Telemetry interval per device (ms).
    pub telemetry_interval_ms: u64,
    /// Grading tolerance (ms).
    pub tolerance_ms: u64,
    /// Wall-clock duration of the whole drill (s).
    pub duration_secs: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// Settings.
    pub settings: Settings,
    /// Phases in order.
    pub phases: Vec<Recovery>,
    /// DPS and connection counts.
    pub counts: Counts,
    /// Telemetry.
    pub messages: Messages,
    /// G1–G10.
    pub guarantees: Vec<GuaranteeReport>,
    /// The timeline behind the chart.
    pub timeline: Vec<Second>,
    /// The hubs, in order.
    pub hubs: Vec<String>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The bound of a phase: `moved / R` plus the spec's worst-case path for its fault.
fn bound(name: &str, moved: usize, rate: u32, c: &Config) -> (f64, f64, String) {
    #[allow(clippy::cast_precision_loss, reason = "fleet sizes")]
    let floor = moved as f64 * 60.0 / f64::from(rate.max(1));
    let fast = secs(c.fast.cap);
    let timeout = secs(c.attempt_timeout);
    let jitter = secs(c.retry_after_jitter);
    // The mock answers `assigning` with retry-after 1 s, so a registration takes a poll later.
    let poll = 1.0;
    let threshold = f64::from(c.unavailable_threshold);
    // A question DPS throttles closes the gate for up to ceiling(0, recheck) (SPEC §4.2).
    let gate = secs(hubswap_spec::backoff::ceiling(0, &c.recheck));
    let (path, formula) = match name {
        "unreachable-hub" => (
            f64::from(c.unreachable_threshold) * fast + gate + jitter + poll + timeout,
            "N/R + unreachable_threshold×fast.cap + gate ceiling (a throttled question) + retry_after_jitter + DPS poll (1 s) + attempt_timeout",
        ),
        "device-disabled" | "internal-error-500" => (
            fast + poll + timeout,
            "fast.cap + DPS poll (1 s) + attempt_timeout (the next attempt on the hub, or a registration under way)",
        ),
        "unblock" => (
            secs(c.slow.cap) + poll + timeout,
            "slow.cap + DPS poll (1 s) + attempt_timeout (G4: one slow period)",
        ),
        "token-expiry" => (
            2.0 * fast + timeout,
            "2×fast.cap + attempt_timeout (reuse refused, fresh token)",
        ),
        _ => (
            (threshold + 1.0) * fast + gate + jitter + poll + timeout,
            "N/R + (unavailable_threshold+1)×fast.cap (500s retried) + gate ceiling (a throttled question) + retry_after_jitter + DPS poll (1 s) + attempt_timeout",
        ),
    };
    // Fleet pacing (SPEC §4.1) stretches every DPS registration a hub failure causes over
    // `reprovision_spread`; the quota floor still applies when it is longer.
    let spread = secs(c.reprovision_spread);
    if spread > 0.0 && (name == "unreachable-hub" || name.starts_with("failback")) {
        return (
            floor,
            floor.max(spread) + path,
            format!(
                "max(N/R, reprovision_spread) + {}",
                formula.trim_start_matches("N/R + ")
            ),
        );
    }
    (floor, floor + path, formula.to_owned())
}

/// What no client can beat when `moved` devices must pass a sliding window of `rate`
/// registrations per minute: the first `rate` at once, then `rate` more each minute.
fn window_floor(moved: usize, rate: u32) -> Bound {
    let minutes = moved.div_ceil(rate.max(1) as usize).saturating_sub(1);
    #[allow(clippy::cast_precision_loss, reason = "a few minutes")]
    let secs = minutes as f64 * 60.0;
    Bound {
        secs,
        formula: String::from(
            "(ceil(N/R) - 1) x 60 s: the sliding window admits R registrations at once and R more per minute",
        ),
    }
}

/// Builds the report from the cloud's records and the fleet's counts.
pub fn build(
    a: &DrillArgs,
    config: &Config,
    records: &[LogRecord],
    phases: &[PhaseRun],
    stats: &FleetStats,
    elapsed: Duration,
) -> DrillReport {
    let phases = phases
        .iter()
        .map(|p| {
            let times = analysis::recovery_times(records, p);
            let [p50, p99, max] = Recovery::quantiles(&times, p.affected.len());
            let rate = a.registrations_per_minute;
            let (n_over_r, bound_secs, bound_formula) = bound(&p.name, p.moved, rate, config);
            Recovery {
                name: p.name.clone(),
                what: p.what.clone(),
                start_at_secs: analysis::secs_between(hubswap_spec::Millis::ZERO, p.start_at),
                affected: p.affected.len(),
                recovered: times.len(),
                p50_secs: p50,
                p99_secs: p99,
                max_secs: max,
                n_over_r_secs: n_over_r,
                floor: (p.moved > 0).then(|| window_floor(p.moved, rate)),
                bound: Some(Bound {
                    secs: bound_secs,
                    formula: bound_formula,
                }),
            }
        })
        .collect();
    let (grades, observations) =
        analysis::grades(records, config, Duration::from_millis(a.tolerance_ms));
    let guarantees = grades
        .iter()
        .map(|g| GuaranteeReport::of_grade("drill", g, &observations, 5))
        .collect();
    let mut hubs: Vec<String> = Vec::new();
    for r in records {
        if let Some(h) = super::story::accepted_hub(r)
            && !hubs.iter().any(|x| x == h)
        {
            hubs.push(h.to_owned());
        }
    }
    hubs.sort();
    DrillReport {
        settings: Settings {
            devices: a.devices,
            registrations_per_minute: a.registrations_per_minute,
            time_scale: a.time_scale,
            config: config.clone(),
            fleet_backoff_scale: a.fleet_backoff_scale,
            telemetry_interval_ms: a.telemetry_interval_ms,
            tolerance_ms: a.tolerance_ms,
            duration_secs: elapsed.as_secs_f64(),
        },
        phases,
        counts: analysis::counts(records, a.devices),
        messages: analysis::messages(records, stats),
        guarantees,
        timeline: analysis::timeline(records, &hubs),
        hubs,
    }
}

impl DrillReport {
    /// No acknowledged message was lost, every queued one settled, no guarantee failed, and every
    /// phase's devices recovered, within its bound where it has one.
    pub fn passed(&self) -> bool {
        self.messages.lost == 0
            && self.messages.queued == self.messages.sent + self.messages.failed
            && self.guarantees.iter().all(|g| g.verdict != Verdict::Fail)
            && self
                .phases
                .iter()
                .all(|p| p.recovered == p.affected && p.within_bound() != Some(false))
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report for a terminal.
    pub fn render_text(&self) -> String {
        let s = &self.settings;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "hubswap drill: {} devices, 2 hubs, DPS throttled at {} registrations/min (sliding 1-min window, wall clock), spec timing ÷{} (fast cap {:?}, slow cap {:?}, attempt timeout {:?}, token ttl {:?}); {:.1} s",
            s.devices,
            s.registrations_per_minute,
            s.time_scale,
            s.config.fast.cap,
            s.config.slow.cap,
            s.config.attempt_timeout,
            s.config.token_ttl,
            s.duration_secs
        );
        if let Some(f) = s.fleet_backoff_scale {
            let _ = writeln!(
                o,
                "the fleet ran the spec's backoff ÷{f}; it is graded against ÷{}",
                s.time_scale
            );
        }
        let _ = writeln!(o, "\nrecovery per phase (seconds)");
        o.push_str(&recovery::render_text(&self.phases));
        let c = &self.counts;
        let _ = writeln!(
            o,
            "\nDPS: {} registers + {} polls = {:.2} requests per device (max {}); {} answered 429, {} answered 5xx",
            c.dps_registers,
            c.dps_polls,
            c.dps_per_device_mean,
            c.dps_per_device_max,
            c.dps_429,
            c.dps_5xx
        );
        let _ = writeln!(
            o,
            "hub connection attempts: {} = {:.2} per device (max {})",
            c.connects, c.connects_per_device_mean, c.connects_per_device_max
        );
        let m = &self.messages;
        let _ = writeln!(
            o,
            "telemetry: {} queued = {} acknowledged + {} failed + {} unsettled; {} lost (acknowledged, never recorded), {} duplicated",
            m.queued, m.sent, m.failed, m.unsettled, m.lost, m.duplicated
        );
        for (reason, n) in &m.failed_reasons {
            let _ = writeln!(o, "  failed ×{n}: {reason}");
        }
        o.push_str(&timing_rules(&s.config, s.tolerance_ms));
        let _ = writeln!(
            o,
            "\nguarantees (every device graded by hubswap_spec::grade)"
        );
        o.push_str(&crate::report::render_guarantees(&self.guarantees));
        let _ = writeln!(
            o,
            "\n{}",
            if self.passed() {
                "PASS: 0 lost, every message settled, every guarantee held, every device recovered within its bound"
            } else {
                "FAIL: see above"
            }
        );
        o
    }
}

/// The timing floors the grade checks, against the tolerance it grants: a floor at or below the
/// tolerance is a rule that cannot fail in this run, and the report says so.
fn timing_rules(c: &Config, tolerance_ms: u64) -> String {
    let tolerance = Duration::from_millis(tolerance_ms);
    let rules = [
        ("G5, G7", "fast.floor", c.fast.floor),
        ("G7", "min_attempt_spacing", c.min_attempt_spacing),
        ("G2, G6", "retry_after_jitter", c.retry_after_jitter),
        ("G4", "slow.floor", c.slow.floor),
        ("G9", "recheck.floor", c.recheck.floor),
    ];
    let mut o = format!("\ntiming floors against the grading tolerance ({tolerance:?})\n");
    for (guarantees, name, floor) in rules {
        let can = if floor > tolerance {
            "can fail"
        } else {
            "CANNOT FAIL at this scale and tolerance"
        };
        let _ = writeln!(o, "  {name:<20} {floor:>10.3?}  {guarantees:<7} {can}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_within_the_tolerance_is_reported_as_unable_to_fail() {
        let scaled = Config::default().scaled_down(60);
        let text = timing_rules(&scaled, 250);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("fast.floor").contains("CANNOT FAIL"), "{text}");
        assert!(line("slow.floor").contains("can fail"), "{text}");
        // Unscaled, every floor is above a 250 ms tolerance.
        assert!(!timing_rules(&Config::default(), 250).contains("CANNOT"));
    }
}
