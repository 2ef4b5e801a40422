//! A simulation's report: what it cost DPS and the hubs, and how fast the fleet recovered,
//! built from a finished run and rendered for a terminal (JSON is its serde form).

use std::fmt::Write as _;

use hubswap_spec::Config;
use serde::Serialize;

use super::cloud::CloudParams;
use super::engine::Dev;
use super::policy::PolicyInfo;
use super::scenario::T0;
use super::scenario::{Floor, Plan, ScenarioName, ScenarioParams, Target};
use super::stats::{DOWN, Stats, Status, UNAFFECTED};
use crate::report::recovery::{self, Bound, Recovery};

/// Mean, 99th percentile and maximum of a per-device count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Dist {
    /// Mean.
    pub mean: f64,
    /// 99th percentile (nearest rank).
    pub p99: u32,
    /// Maximum.
    pub max: u32,
}

impl Dist {
    #[allow(
        clippy::cast_precision_loss,
        reason = "request counts and fleet sizes far below 2^52"
    )]
    fn of(mut xs: Vec<u32>) -> Self {
        if xs.is_empty() {
            return Self {
                mean: 0.0,
                p99: 0,
                max: 0,
            };
        }
        xs.sort_unstable();
        let sum: u64 = xs.iter().map(|&x| u64::from(x)).sum();
        let rank = (xs.len() * 99).div_ceil(100).max(1) - 1;
        Self {
            mean: sum as f64 / xs.len() as f64,
            p99: xs[rank],
            max: xs[xs.len() - 1],
        }
    }
}

/// What the fleet cost DPS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DpsFigures {
    /// Register requests per device.
    pub registrations: Dist,
    /// Operation polls per device.
    pub polls: Dist,
    /// Both, per device.
    pub requests: Dist,
    /// Devices that deleted their cached assignment at least once.
    pub devices_deleted_cache: usize,
    /// Requests that reached DPS.
    pub total_requests: u64,
    /// Of those, answered 429.
    pub answered_429: u64,
    /// Of those, answered 5xx.
    pub answered_5xx: u64,
    /// `answered_429 / total_requests`.
    pub throttled_share: f64,
    /// The most requests (registers + polls) reaching DPS in any 60 s.
    pub peak_requests_per_minute: u64,
    /// The most register requests reaching DPS in any 60 s.
    pub peak_registrations_per_minute: u64,
    /// The most registrations DPS admitted in any 60 s (never above the quota).
    pub peak_admitted_per_minute: u64,
    /// The register quota (per minute).
    pub registration_quota: u32,
    /// The poll quota (per minute).
    pub poll_quota: u32,
}

/// What the fleet cost the hubs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubFigures {
    /// CONNECT attempts per device.
    pub connects: Dist,
    /// The most CONNECTs reaching one hub in one second.
    pub peak_connects_per_second: u32,
    /// Each hub's rate.
    pub throttle_per_second: u32,
    /// CONNECTs refused with CONNACK 3 because the hub's queue was full.
    pub refused_by_throttle: u64,
}

/// The time series behind the charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// Seconds per point.
    pub step_secs: u64,
    /// Start of each point (s from the timeline's start).
    pub t: Vec<u64>,
    /// Devices per status at the end of each point, as `(status, series)`.
    pub states: Vec<(String, Vec<u32>)>,
    /// DPS requests per second (average over the point).
    pub dps_per_second: Vec<f64>,
    /// DPS answers 429 per second.
    pub throttled_per_second: Vec<f64>,
    /// The fault steps: (s, what).
    pub marks: Vec<(f64, String)>,
}

/// One simulation's report. The same inputs give the same report, byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The scenario.
    pub scenario: ScenarioName,
    /// What happens in it.
    pub what: String,
    /// The policy.
    pub policy: PolicyInfo,
    /// The spec config, when the policy is hubswap's.
    pub spec_config: Option<Config>,
    /// Devices.
    pub devices: u32,
    /// The seed.
    pub seed: u64,
    /// The cloud model.
    pub cloud: CloudParams,
    /// The scenario's parameters.
    pub params: ScenarioParams,
    /// Virtual time simulated from the timeline's start (s).
    pub simulated_secs: f64,
    /// Events processed.
    pub events: u64,
    /// DPS figures.
    pub dps: DpsFigures,
    /// Hub figures.
    pub hub: HubFigures,
    /// Recovery per incident.
    pub incidents: Vec<Recovery>,
    /// Devices not connected when the run ended.
    pub not_connected_at_end: usize,
    /// The charts' data.
    pub timeline: Timeline,
}

/// What [`build`] reads.
pub(crate) struct Run<'a> {
    pub(crate) scenario: ScenarioName,
    pub(crate) plan: &'a Plan,
    pub(crate) policy: PolicyInfo,
    pub(crate) spec_config: Option<Config>,
    pub(crate) seed: u64,
    pub(crate) cloud: &'a CloudParams,
    pub(crate) params: &'a ScenarioParams,
    pub(crate) stats: &'a Stats,
    pub(crate) devs: &'a [Dev],
}

#[allow(
    clippy::cast_precision_loss,
    reason = "virtual milliseconds far below 2^52"
)]
fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The most of `f(bin)` in any 60 consecutive seconds.
fn peak_minute(stats: &Stats, f: impl Fn(&super::stats::Bin) -> u32) -> u64 {
    let xs: Vec<u64> = stats.bins.iter().map(|b| u64::from(f(b))).collect();
    let mut sum = 0;
    let mut peak = 0;
    for (i, x) in xs.iter().enumerate() {
        sum += x;
        if i >= 60 {
            sum -= xs[i - 60];
        }
        peak = peak.max(sum);
    }
    peak
}

#[allow(
    clippy::cast_precision_loss,
    reason = "device counts and rates far below 2^52"
)]
pub(crate) fn build(r: &Run<'_>) -> SimReport {
    let s = r.stats;
    let col = |f: fn(&super::stats::DeviceCounts) -> u32| -> Vec<u32> {
        r.devs.iter().map(|d| f(&d.counts)).collect()
    };
    let sum =
        |f: fn(&super::stats::Bin) -> u32| -> u64 { s.bins.iter().map(|b| u64::from(f(b))).sum() };
    let total = sum(|b| b.registers + b.polls);
    let throttled = sum(|b| b.throttled);
    let dps = DpsFigures {
        registrations: Dist::of(col(|c| c.registers)),
        polls: Dist::of(col(|c| c.polls)),
        requests: Dist::of(col(|c| c.registers + c.polls)),
        devices_deleted_cache: r.devs.iter().filter(|d| d.counts.invalidations > 0).count(),
        total_requests: total,
        answered_429: throttled,
        answered_5xx: sum(|b| b.errors),
        throttled_share: if total == 0 {
            0.0
        } else {
            throttled as f64 / total as f64
        },
        peak_requests_per_minute: peak_minute(s, |b| b.registers + b.polls),
        peak_registrations_per_minute: peak_minute(s, |b| b.registers),
        peak_admitted_per_minute: peak_minute(s, |b| b.admitted),
        registration_quota: r.cloud.registrations_per_minute,
        poll_quota: r.cloud.polls_per_minute,
    };
    let hub = HubFigures {
        connects: Dist::of(col(|c| c.connects)),
        peak_connects_per_second: s.hub_bins.iter().copied().max().unwrap_or(0),
        throttle_per_second: r.cloud.hub_connects_per_second,
        refused_by_throttle: s.throttle_refusals,
    };
    let incidents = r
        .plan
        .incidents
        .iter()
        .enumerate()
        .map(|(i, inc)| incident(r, i, inc))
        .collect();
    SimReport {
        scenario: r.scenario,
        what: r.plan.what.clone(),
        policy: r.policy.clone(),
        spec_config: r.spec_config.clone(),
        devices: u32::try_from(r.devs.len()).unwrap_or(u32::MAX),
        seed: r.seed,
        cloud: r.cloud.clone(),
        params: r.params.clone(),
        simulated_secs: secs(s.end.saturating_sub(T0)),
        events: s.events,
        dps,
        hub,
        incidents,
        not_connected_at_end: r
            .devs
            .iter()
            .filter(|d| d.status != Status::Connected)
            .count(),
        timeline: timeline(r),
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "device counts and rates far below 2^52"
)]
fn incident(r: &Run<'_>, index: usize, inc: &super::scenario::Incident) -> Recovery {
    let clock = r.stats.clocks[index];
    let clear = clock.clear.unwrap_or(r.stats.end);
    let rec = &r.stats.recovered[index];
    let affected = rec.iter().filter(|&&t| t != UNAFFECTED).count();
    let times: Vec<f64> = rec
        .iter()
        .filter(|&&t| t != UNAFFECTED && t != DOWN)
        .map(|&t| secs(t.saturating_sub(clear)))
        .collect();
    let down_at_clear = rec
        .iter()
        .filter(|&&t| t != UNAFFECTED && (t == DOWN || t > clear))
        .count();
    let n = down_at_clear as f64;
    let rate = f64::from(r.cloud.registrations_per_minute.max(1));
    let hubs = match inc.target {
        Target::Hub(_) => 1.0,
        Target::All | Target::Subset => f64::from(r.cloud.hubs.max(1)),
    };
    let per_second = f64::from(r.cloud.hub_connects_per_second.max(1)) * hubs;
    let (floor_secs, formula) = match inc.floor {
        Floor::DpsThenHub => (
            (((n / rate).ceil() - 1.0).max(0.0) * 60.0).max(n / per_second),
            format!(
                "max((ceil(N/R) - 1) x 60 s, N/(C x {hubs})) with N = {down_at_clear} down at the clear: the sliding \
                 window admits R registrations at once and R more per minute, and each of the {hubs} hub(s) admits \
                 C connects/s"
            ),
        ),
        Floor::Hubs => (
            n / per_second,
            format!(
                "N/(C x {hubs}) with N = {down_at_clear} down at the clear: every one reconnects through its hub's throttle"
            ),
        ),
    };
    let target = match inc.target {
        Target::All => String::from("the whole fleet"),
        Target::Hub(h) => format!("the devices first allocated to hub-{h}"),
        Target::Subset => format!("{} % of the fleet", r.params.device_percent),
    };
    let [p50, p99, max] = Recovery::quantiles(&times, affected);
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Recovery {
        name: inc.name.to_owned(),
        what: format!("{target}; measured from the clear"),
        start_at_secs: secs(clear.saturating_sub(T0)),
        affected,
        recovered: times.len(),
        p50_secs: p50,
        p99_secs: p99,
        max_secs: max,
        n_over_r_secs: round(n / rate * 60.0),
        floor: Some(Bound {
            secs: round(floor_secs),
            formula,
        }),
        bound: None,
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "per-second counts far below 2^52"
)]
fn timeline(r: &Run<'_>) -> Timeline {
    let bins = &r.stats.bins;
    let step = (bins.len() as u64).div_ceil(600).max(1);
    let chunk = usize::try_from(step).unwrap_or(1);
    let mut t = Vec::new();
    let mut states: Vec<(String, Vec<u32>)> = Status::ALL
        .iter()
        .map(|s| (s.name().to_owned(), Vec::new()))
        .collect();
    let mut dps = Vec::new();
    let mut throttled = Vec::new();
    for (k, group) in bins.chunks(chunk).enumerate() {
        t.push(k as u64 * step);
        if let Some(last) = group.last() {
            for (j, series) in states.iter_mut().enumerate() {
                series.1.push(last.status[j]);
            }
        }
        let width = group.len() as f64;
        let total: u32 = group.iter().map(|b| b.registers + b.polls).sum();
        let thr: u32 = group.iter().map(|b| b.throttled).sum();
        dps.push(f64::from(total) / width);
        throttled.push(f64::from(thr) / width);
    }
    let marks = r
        .plan
        .steps
        .iter()
        .filter(|(_, c)| !matches!(c, super::scenario::Change::IncidentStart(_)))
        .map(|(at, change)| (secs(*at), change.label(&r.plan.incidents)))
        .collect();
    Timeline {
        step_secs: step,
        t,
        states,
        dps_per_second: dps,
        throttled_per_second: throttled,
        marks,
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| String::from("never"), |v| format!("{v:.1}"))
}

impl SimReport {
    /// The report for a terminal.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let d = &self.dps;
        let h = &self.hub;
        let _ = writeln!(o, "scenario {}: {}", self.scenario, self.what);
        let _ = writeln!(o, "policy {}: {}", self.policy.name, self.policy.label);
        let _ = writeln!(
            o,
            "fleet {} devices, seed {}; DPS {} registrations/min + {} polls/min; {} hubs x {} connects/s; \
             {:.0} s simulated, {} events",
            self.devices,
            self.seed,
            d.registration_quota,
            d.poll_quota,
            self.cloud.hubs,
            h.throttle_per_second,
            self.simulated_secs,
            self.events
        );
        let _ = writeln!(o, "\nrecovery after the fault clears (seconds)");
        o.push_str(&recovery::render_text(&self.incidents));
        let _ = writeln!(
            o,
            "\nDPS per device: registrations mean {:.2} p99 {} max {}; polls mean {:.2} p99 {} max {}",
            d.registrations.mean,
            d.registrations.p99,
            d.registrations.max,
            d.polls.mean,
            d.polls.p99,
            d.polls.max
        );
        let _ = writeln!(
            o,
            "DPS load: peak {} requests/min ({} registrations/min; quota {} + {}); {} requests, {:.1} % answered 429, {} answered 5xx",
            d.peak_requests_per_minute,
            d.peak_registrations_per_minute,
            d.registration_quota,
            d.poll_quota,
            d.total_requests,
            d.throttled_share * 100.0,
            d.answered_5xx
        );
        let _ = writeln!(
            o,
            "cached assignment deleted by {} devices",
            d.devices_deleted_cache
        );
        let _ = writeln!(
            o,
            "hub CONNECTs per device: mean {:.2} p99 {} max {}; peak {}/s on one hub (throttle {}/s); {} refused by the throttle",
            h.connects.mean,
            h.connects.p99,
            h.connects.max,
            h.peak_connects_per_second,
            h.throttle_per_second,
            h.refused_by_throttle
        );
        let _ = writeln!(
            o,
            "not connected when the run ended (reconnecting to renew a token, or never back): {}",
            self.not_connected_at_end
        );
        o
    }
}

/// The matrix as a terminal table: one row per run and incident.
pub fn render_matrix(runs: &[SimReport]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<25} {:<14} {:>8} {:<11} {:>19} {:>6} {:>8} {:>8} {:>6} {:>7} {:>8} {:>8} {:>8} {:>6}",
        "scenario",
        "policy",
        "N",
        "incident",
        "reg/dev mean/p99/max",
        "polls",
        "cache-del",
        "DPS/min",
        "429 %",
        "conn/s",
        "t99 s",
        "t100 s",
        "floor s",
        "down"
    );
    for r in runs {
        for i in &r.incidents {
            let reg = &r.dps.registrations;
            let _ = writeln!(
                o,
                "{:<25} {:<14} {:>8} {:<11} {:>19} {:>6.2} {:>8} {:>8} {:>6.1} {:>7} {:>8} {:>8} {:>8.1} {:>6}",
                r.scenario.as_str(),
                r.policy.name,
                r.devices,
                i.name,
                format!("{:.2}/{}/{}", reg.mean, reg.p99, reg.max),
                r.dps.polls.mean,
                r.dps.devices_deleted_cache,
                r.dps.peak_requests_per_minute,
                r.dps.throttled_share * 100.0,
                r.hub.peak_connects_per_second,
                opt(i.p99_secs),
                opt(i.max_secs),
                i.floor.as_ref().map_or(0.0, |f| f.secs),
                r.not_connected_at_end
            );
        }
    }
    o
}
