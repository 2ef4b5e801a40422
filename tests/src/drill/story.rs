//! The IoT Central story the drill plays, once every device is at work (subscribed, twin
//! fetched, telemetry acknowledged): every seed error and a failover and failback. A hub fails
//! over and stops answering (unreachable hub), a few devices are disabled and enabled again,
//! one is blocked and unblocked, a set of tokens expires, a few devices' hub connections fail
//! with internal errors (a drop, then CONNACK 3) until they clear, and the hub fails back, met
//! by a burst of DPS 500 and 429 answers.
//!
//! Each phase applies its faults, then waits on the cloud's log until every affected device is
//! accepted again (or the phase timeout passes). The pauses between phases and the time a
//! device stays blocked are the scenario's timeline, not synchronisation.

use std::collections::HashSet;
use std::time::Duration;

use hubswap_mock_cloud::fault::{
    Block, DeviceArg, DeviceOnHub, DpsError, ExpireToken, Failback, Failover, HubArg, HubDown,
    HubError, HubErrorMode, Lifetime, OutageMode, RefuseAt,
};
use hubswap_mock_cloud::{Event, Fault, LogRecord, MockCloud};
use hubswap_spec::Millis;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::args::{DrillArgs, DrillError};
use super::fleet::Fleet;
use super::progress::Progress;

/// One phase as it was played.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseRun {
    /// Short name.
    pub name: String,
    /// What happened, in words.
    pub what: String,
    /// Recovery is measured from this log sequence number...
    pub start_seq: u64,
    /// ...and this cloud time (the fault, or the unblock).
    pub start_at: Millis,
    /// The devices that had to recover.
    pub affected: Vec<String>,
    /// The hub they had to reach (`None`: any).
    pub target_hub: Option<String>,
    /// Devices that had to move through DPS (for the throttle bound).
    pub moved: usize,
    /// Whether every affected device recovered before the phase timeout.
    pub complete: bool,
}

pub use crate::presence::accepted_hub;

fn matches(r: &LogRecord, after: u64, hub: Option<&str>) -> Option<String> {
    let got = accepted_hub(r)?;
    (r.seq >= after && hub.is_none_or(|h| h == got))
        .then(|| r.device.clone())
        .flatten()
}

/// Waits until each of `devices` has a CONNACK 0 (on `hub`, if given) at or after log sequence
/// `after`, or `timeout` passes; returns how many did.
pub async fn wait_accepted(
    cloud: &MockCloud,
    devices: &[String],
    after: u64,
    hub: Option<&str>,
    timeout: Duration,
) -> usize {
    let wanted: HashSet<&str> = devices.iter().map(String::as_str).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut sub = cloud.log().subscribe();
    let scan = |records: Vec<LogRecord>, seen: &mut HashSet<String>| {
        for r in records {
            if let Some(d) = matches(&r, after, hub)
                && wanted.contains(d.as_str())
            {
                seen.insert(d);
            }
        }
    };
    scan(cloud.log().since(after), &mut seen);
    let wait = async {
        while seen.len() < wanted.len() {
            match sub.recv().await {
                Ok(r) => scan(vec![r], &mut seen),
                Err(RecvError::Lagged(_)) => scan(cloud.log().since(after), &mut seen),
                Err(RecvError::Closed) => return,
            }
        }
    };
    let _ = tokio::time::timeout(timeout, wait).await;
    seen.len()
}

/// Waits for the whole fleet's first connection; returns how many connected.
pub async fn wait_all_connected(
    cloud: &MockCloud,
    devices: &[String],
    after: u64,
    timeout: Duration,
) -> usize {
    wait_accepted(cloud, devices, after, None, timeout).await
}

/// Applies a fault and returns the sequence number and time of its `applied` record.
async fn apply(cloud: &MockCloud, fault: Fault) -> Result<(u64, Millis), DrillError> {
    let id = cloud.apply(fault).await?;
    let rec = cloud
        .log()
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(&r.event, Event::Fault { id: i, .. } if *i == id),
        )
        .await;
    Ok(rec.map_or_else(|| now(cloud), |r| (r.seq, r.at)))
}

fn now(cloud: &MockCloud) -> (u64, Millis) {
    cloud
        .log()
        .records()
        .last()
        .map_or((0, Millis::ZERO), |r| (r.seq + 1, r.at))
}

struct Ctx<'a> {
    cloud: &'a MockCloud,
    ids: &'a [String],
    a: &'a DrillArgs,
    timeout: Duration,
    home: String,
    away: String,
    on_home: Vec<String>,
    on_away: Vec<String>,
}

/// Plays the story; returns the phases in order.
pub async fn play(
    cloud: &MockCloud,
    fleet: &Fleet,
    progress: &Progress,
    a: &DrillArgs,
) -> Result<Vec<PhaseRun>, DrillError> {
    let hubs = cloud.hub_hosts();
    let (home, away) = match hubs.as_slice() {
        [a, b, ..] => (a.clone(), b.clone()),
        _ => return Err(DrillError::Options("the drill needs two hubs".into())),
    };
    let on_home: Vec<String> = cloud
        .devices()
        .into_iter()
        .filter(|d| d.device.hub == home && fleet.ids.contains(&d.device.id))
        .map(|d| d.device.id)
        .collect();
    let on_away: Vec<String> = fleet
        .ids
        .iter()
        .filter(|id| !on_home.contains(id))
        .cloned()
        .collect();
    let cx = Ctx {
        cloud,
        ids: &fleet.ids,
        a,
        timeout: Duration::from_secs(a.phase_timeout_secs),
        home,
        away,
        on_home,
        on_away,
    };
    let settle = Duration::from_millis(a.settle_ms);
    let mut phases = Vec::new();
    progress.set_phase("steady state");
    at_work(cloud, &fleet.ids, cx.timeout).await;
    let blocked = blocked_device(&cx);
    progress.set_phase("unreachable hub");
    phases.push(unreachable(&cx).await?);
    tokio::time::sleep(settle).await;
    progress.set_phase("device disabled");
    phases.push(disabled(&cx).await?);
    tokio::time::sleep(settle).await;
    progress.set_phase("block");
    phases.push(block(&cx).await?);
    tokio::time::sleep(settle).await;
    progress.set_phase("token expiry");
    phases.push(token_expiry(&cx, &blocked).await?);
    tokio::time::sleep(settle).await;
    progress.set_phase("internal errors");
    phases.push(internal_errors(&cx).await?);
    tokio::time::sleep(settle).await;
    progress.set_phase("failback + DPS 500s");
    phases.push(failback(&cx).await?);
    progress.set_phase("settling");
    tokio::time::sleep(settle).await;
    Ok(phases)
}

/// Waits until every device is at work (subscribed, twin fetched, telemetry acknowledged), so
/// that the first fault meets a fleet in steady state.
async fn at_work(cloud: &MockCloud, ids: &[String], timeout: Duration) {
    for id in ids {
        if let Err(e) = crate::runner::cloud::wait_steady(cloud, id, 0, timeout).await {
            tracing::warn!(device = %id, "{e}; the story starts anyway");
        }
    }
}

async fn unreachable(cx: &Ctx<'_>) -> Result<PhaseRun, DrillError> {
    let (seq, at) = apply(
        cx.cloud,
        Fault::Failover(Failover {
            hub: Some(cx.home.clone()),
            to: cx.away.clone(),
            ..Failover::default()
        }),
    )
    .await?;
    // The hub stops answering: it resets every connection after its CONNECT, where the cloud
    // still learns which device it refused (a reset at TCP accept could not be attributed).
    let down = apply(
        cx.cloud,
        Fault::HubDown(HubDown {
            hub: cx.home.clone(),
            mode: OutageMode::Refuse,
            refuse_at: RefuseAt::Connect,
            ..HubDown::default()
        }),
    )
    .await;
    let done = wait_accepted(cx.cloud, &cx.on_home, seq, Some(&cx.away), cx.timeout).await;
    down?;
    apply(
        cx.cloud,
        Fault::HubRestore(HubArg {
            hub: cx.home.clone(),
        }),
    )
    .await?;
    Ok(PhaseRun {
        name: "unreachable-hub".into(),
        what: format!(
            "{} fails over to {} and stops answering: its {} devices move",
            cx.home,
            cx.away,
            cx.on_home.len()
        ),
        start_seq: seq,
        start_at: at,
        affected: cx.on_home.clone(),
        target_hub: Some(cx.away.clone()),
        moved: cx.on_home.len(),
        complete: done == cx.on_home.len(),
    })
}

/// The devices the disable and internal-error phases pick: the first of those that started on
/// the other hub.
fn faulty(cx: &Ctx<'_>) -> Vec<String> {
    cx.on_away
        .iter()
        .take(cx.a.faulty_devices)
        .cloned()
        .collect()
}

async fn disabled(cx: &Ctx<'_>) -> Result<PhaseRun, DrillError> {
    let devices = faulty(cx);
    let fault = |d: &String| DeviceOnHub {
        device: d.clone(),
        hub: None,
        lifetime: Lifetime::default(),
    };
    for d in &devices {
        apply(cx.cloud, Fault::Disable(fault(d))).await?;
    }
    tokio::time::sleep(Duration::from_millis(cx.a.hold_ms)).await;
    let mut first = None;
    for d in &devices {
        first.get_or_insert(apply(cx.cloud, Fault::Enable(fault(d))).await?);
    }
    let (seq, at) = first.unwrap_or_else(|| now(cx.cloud));
    let done = wait_accepted(cx.cloud, &devices, seq, None, cx.timeout).await;
    let what = format!(
        "{} devices disabled on their hub (CONNACK 3) for {} ms, then enabled (recovery from the enable)",
        devices.len(),
        cx.a.hold_ms
    );
    Ok(in_place("device-disabled", what, (seq, at), devices, done))
}

async fn internal_errors(cx: &Ctx<'_>) -> Result<PhaseRun, DrillError> {
    let devices = faulty(cx);
    let mut refusals = Vec::new();
    for d in &devices {
        let on = |mode, code| HubError {
            hub: cx.away.clone(),
            mode,
            code,
            device: Some(d.clone()),
            ..HubError::default()
        };
        let drop = HubError {
            count: Some(1),
            ..on(HubErrorMode::Drop, None)
        };
        apply(cx.cloud, Fault::HubError(drop)).await?;
        refusals.push(
            cx.cloud
                .apply(Fault::HubError(on(HubErrorMode::Connack, Some(3))))
                .await?,
        );
    }
    tokio::time::sleep(Duration::from_millis(cx.a.hold_ms)).await;
    for id in refusals {
        cx.cloud.clear_fault(id).await?;
    }
    let (seq, at) = now(cx.cloud);
    let done = wait_accepted(cx.cloud, &devices, seq, None, cx.timeout).await;
    let what = format!(
        "the hub drops {} devices and answers their CONNECTs with CONNACK 3 for {} ms (recovery from the clearing)",
        devices.len(),
        cx.a.hold_ms
    );
    Ok(in_place(
        "internal-error-500",
        what,
        (seq, at),
        devices,
        done,
    ))
}

/// A phase whose devices recover in place: no hub to reach, nothing moved through DPS.
fn in_place(
    name: &str,
    what: String,
    (start_seq, start_at): (u64, Millis),
    affected: Vec<String>,
    recovered: usize,
) -> PhaseRun {
    PhaseRun {
        name: name.into(),
        what,
        start_seq,
        start_at,
        complete: recovered == affected.len(),
        affected,
        target_hub: None,
        moved: 0,
    }
}

/// The device the operator blocks: the last of those that started on the other hub.
fn blocked_device(cx: &Ctx<'_>) -> String {
    cx.on_away
        .last()
        .or(cx.ids.last())
        .cloned()
        .unwrap_or_default()
}

async fn block(cx: &Ctx<'_>) -> Result<PhaseRun, DrillError> {
    let blocked = blocked_device(cx);
    let (bseq, _) = apply(
        cx.cloud,
        Fault::Block(Block {
            device: blocked.clone(),
            lifetime: Lifetime::default(),
        }),
    )
    .await?;
    // The device learns it is blocked from DPS (`failed`, 400209); hold the block from then.
    let _ = cx
        .cloud
        .log()
        .wait_for(cx.timeout, |r| {
            r.seq >= bseq
                && r.device.as_deref() == Some(blocked.as_str())
                && matches!(
                    r.event,
                    Event::DpsResponse {
                        error_code: Some(400_209),
                        ..
                    }
                )
        })
        .await;
    tokio::time::sleep(Duration::from_millis(cx.a.block_ms)).await;
    let (seq, at) = apply(
        cx.cloud,
        Fault::Unblock(DeviceArg {
            device: blocked.clone(),
        }),
    )
    .await?;
    let one = vec![blocked.clone()];
    let done = wait_accepted(cx.cloud, &one, seq, None, cx.timeout).await;
    let phase = PhaseRun {
        name: "unblock".into(),
        what: format!(
            "{blocked} blocked by an operator until DPS refused it, held {} ms, then unblocked (recovery from the unblock)",
            cx.a.block_ms
        ),
        start_seq: seq,
        start_at: at,
        affected: one,
        target_hub: None,
        moved: 0,
        complete: done == 1,
    };
    Ok(phase)
}

async fn token_expiry(cx: &Ctx<'_>, blocked: &str) -> Result<PhaseRun, DrillError> {
    let expiring: Vec<String> = cx
        .ids
        .iter()
        .filter(|id| *id != blocked)
        .take(cx.a.token_devices)
        .cloned()
        .collect();
    let mut first = None;
    for d in &expiring {
        let applied = apply(
            cx.cloud,
            Fault::ExpireToken(ExpireToken {
                device: d.clone(),
                until_reprovisioned: false,
            }),
        )
        .await?;
        first.get_or_insert(applied);
    }
    let (seq, at) = first.unwrap_or_else(|| now(cx.cloud));
    let done = wait_accepted(cx.cloud, &expiring, seq, None, cx.timeout).await;
    Ok(PhaseRun {
        name: "token-expiry".into(),
        what: format!("the SAS tokens of {} devices expire", expiring.len()),
        start_seq: seq,
        start_at: at,
        complete: done == expiring.len(),
        affected: expiring,
        target_hub: None,
        moved: 0,
    })
}

async fn failback(cx: &Ctx<'_>) -> Result<PhaseRun, DrillError> {
    let (seq, at) = apply(
        cx.cloud,
        Fault::DpsError(DpsError {
            status: 500,
            count: Some(cx.a.dps_errors),
            ..DpsError::default()
        }),
    )
    .await?;
    if cx.a.dps_throttled > 0 {
        apply(
            cx.cloud,
            Fault::DpsError(DpsError {
                status: 429,
                retry_after: Some(1),
                count: Some(cx.a.dps_throttled),
                ..DpsError::default()
            }),
        )
        .await?;
    }
    apply(
        cx.cloud,
        Fault::Failback(Failback {
            hub: Some(cx.home.clone()),
            ..Failback::default()
        }),
    )
    .await?;
    let done = wait_accepted(cx.cloud, &cx.on_home, seq, Some(&cx.home), cx.timeout).await;
    Ok(PhaseRun {
        name: "failback+dps-500".into(),
        what: format!(
            "a burst of {} DPS 500 and {} 429 answers, then {} fails back to {}: {} devices move back",
            cx.a.dps_errors,
            cx.a.dps_throttled,
            cx.away,
            cx.home,
            cx.on_home.len()
        ),
        start_seq: seq,
        start_at: at,
        affected: cx.on_home.clone(),
        target_hub: Some(cx.home.clone()),
        moved: cx.on_home.len(),
        complete: done == cx.on_home.len(),
    })
}
