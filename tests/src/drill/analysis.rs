//! What the cloud's log says about a run: recovery times per phase, DPS and connection counts,
//! telemetry reconciliation, the timeline for the chart, and the grade of every guarantee.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hubswap_mock_cloud::log::{DpsRequestKind, Endpoint, to_observations};
use hubswap_mock_cloud::{Event, LogRecord};
use hubswap_spec::trace::{Observation, Observed};
use hubswap_spec::{Config, GuaranteeGrade, Millis, TraceCheck, grade};
use serde::Serialize;

use super::fleet::{FleetStats, mids_in};
use super::story::{PhaseRun, accepted_hub};
use crate::presence::Presence;

/// Seconds from `a` to `b` on the cloud's clock.
pub fn secs_between(a: Millis, b: Millis) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "milliseconds of a drill")]
    let ms = b.0.saturating_sub(a.0) as f64;
    ms / 1000.0
}

/// Per affected device of `phase`, the seconds until its first CONNACK 0 (on the target hub)
/// at or after the phase start; devices that never got one are left out.
pub fn recovery_times(records: &[LogRecord], phase: &PhaseRun) -> Vec<f64> {
    let mut first: HashMap<&str, Millis> = HashMap::new();
    for r in records.iter().filter(|r| r.seq >= phase.start_seq) {
        let (Some(d), Some(hub)) = (r.device.as_deref(), accepted_hub(r)) else {
            continue;
        };
        if phase.target_hub.as_deref().is_none_or(|t| t == hub) {
            first.entry(d).or_insert(r.at);
        }
    }
    phase
        .affected
        .iter()
        .filter_map(|d| first.get(d.as_str()))
        .map(|at| secs_between(phase.start_at, *at))
        .collect()
}

/// DPS and connection counts over the whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// DPS register requests.
    pub dps_registers: u64,
    /// DPS operation polls.
    pub dps_polls: u64,
    /// DPS answers with status 429.
    pub dps_429: u64,
    /// DPS answers with a 5xx status.
    pub dps_5xx: u64,
    /// DPS requests (register + poll) per device: mean and max.
    pub dps_per_device_mean: f64,
    /// See `dps_per_device_mean`.
    pub dps_per_device_max: u64,
    /// Hub CONNECTs per device: mean and max.
    pub connects_per_device_mean: f64,
    /// See `connects_per_device_mean`.
    pub connects_per_device_max: u64,
    /// Hub CONNECTs in total.
    pub connects: u64,
}

/// Counts DPS requests, their 429 and 5xx answers, and hub connects in `records`.
pub fn counts(records: &[LogRecord], devices: usize) -> Counts {
    let mut c = Counts::default();
    let mut dps: HashMap<&str, u64> = HashMap::new();
    let mut hub: HashMap<&str, u64> = HashMap::new();
    for r in records {
        let dev = r.device.as_deref().unwrap_or("");
        match &r.event {
            Event::DpsRequest { request, .. } => {
                match request {
                    DpsRequestKind::Register => c.dps_registers += 1,
                    DpsRequestKind::Poll => c.dps_polls += 1,
                    DpsRequestKind::Lookup => {}
                }
                *dps.entry(dev).or_insert(0) += 1;
            }
            Event::DpsResponse { status: 429, .. } => c.dps_429 += 1,
            Event::DpsResponse { status, .. } if *status >= 500 => c.dps_5xx += 1,
            Event::Connect {
                endpoint: Endpoint::Hub(_),
                ..
            } => {
                c.connects += 1;
                *hub.entry(dev).or_insert(0) += 1;
            }
            _ => {}
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "counts of a drill")]
    let per = |total: u64| total as f64 / devices.max(1) as f64;
    c.dps_per_device_mean = per(c.dps_registers + c.dps_polls);
    c.dps_per_device_max = dps.values().copied().max().unwrap_or(0);
    c.connects_per_device_mean = per(c.connects);
    c.connects_per_device_max = hub.values().copied().max().unwrap_or(0);
    c
}

/// Telemetry reconciliation between what the clients were told and what the cloud logged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Messages {
    /// Messages queued by the fleet.
    pub queued: u64,
    /// Messages whose send returned `Ok` (the hub acknowledged them).
    pub sent: u64,
    /// Acknowledged messages missing from the cloud's log (must be 0).
    pub lost: u64,
    /// Extra copies the cloud logged (at-least-once redelivery).
    pub duplicated: u64,
    /// Messages reported failed (expired, or still queued at shutdown); not acknowledged, so
    /// not lost.
    pub failed: u64,
    /// Why they failed, with how many each.
    pub failed_reasons: BTreeMap<String, u64>,
    /// Queued, and neither acknowledged nor reported failed when the drill stopped (must be 0).
    pub unsettled: u64,
}

/// Reconciles the fleet's acknowledged messages with the cloud's telemetry records.
pub fn messages(records: &[LogRecord], stats: &FleetStats) -> Messages {
    let logged = mids_in(records);
    let lost = stats
        .acked
        .iter()
        .filter(|k| !logged.contains_key(*k))
        .count();
    let duplicated: usize = logged.values().map(|n| n.saturating_sub(1)).sum();
    let mut failed_reasons = BTreeMap::new();
    for (_, reason) in &stats.failed {
        *failed_reasons.entry(reason.clone()).or_insert(0) += 1;
    }
    let (sent, failed) = (stats.acked.len() as u64, stats.failed.len() as u64);
    Messages {
        queued: stats.queued,
        sent,
        lost: lost as u64,
        duplicated: duplicated as u64,
        failed,
        failed_reasons,
        unsettled: stats.queued.saturating_sub(sent + failed),
    }
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    /// Seconds since the cloud started.
    pub t: u64,
    /// Devices connected to each hub at the end of this second.
    pub connected: BTreeMap<String, usize>,
    /// DPS requests in this second.
    pub dps_requests: u64,
    /// DPS register requests (the ones the quota counts) in this second.
    pub dps_registers: u64,
    /// DPS 429 answers in this second.
    pub dps_429: u64,
}

/// Devices connected per hub and DPS requests per second, second by second.
pub fn timeline(records: &[LogRecord], hubs: &[String]) -> Vec<Second> {
    let mut presence = Presence::default();
    let mut out: Vec<Second> = Vec::new();
    for r in records {
        let t = r.at.0 / 1000;
        while out.last().is_none_or(|s| s.t < t) {
            let next = out.last().map_or(0, |s| s.t + 1);
            out.push(Second {
                t: next,
                connected: presence.per_hub(hubs),
                ..Second::default()
            });
        }
        let Some(s) = out.last_mut() else { continue };
        presence.see(r);
        match &r.event {
            Event::DpsRequest { request, .. } => {
                s.dps_requests += 1;
                if *request == DpsRequestKind::Register {
                    s.dps_registers += 1;
                }
            }
            Event::DpsResponse { status: 429, .. } => s.dps_429 += 1,
            _ => {}
        }
        s.connected = presence.per_hub(hubs);
    }
    out
}

/// Grades every device's observations with the spec, as the conformance runner does; returns
/// the grades and the observations they index.
pub fn grades(
    records: &[LogRecord],
    config: &Config,
    tolerance: Duration,
) -> (Vec<GuaranteeGrade>, Vec<Observation>) {
    let mut obs: Vec<Observation> = to_observations(records);
    let end = records.last().map_or(Millis::ZERO, |r| r.at);
    obs.push(Observation {
        at: end,
        device: "(end)".into(),
        event: Observed::End,
    });
    let check = TraceCheck {
        config: config.clone(),
        tolerance,
    };
    (grade(&check, &obs), obs)
}
