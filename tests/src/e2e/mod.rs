//! End-to-end fault scenarios (conformance suite): real hubswap clients against a
//! real mock cloud over loopback, telemetry throughout, then checks. The faults are either a
//! scenario of the runner's catalogue ([`crate::runner::Scenario`], the same code the runner
//! plays against any device program) or a timed sequence in the vocabulary of [`FaultKind`].
//!
//! After the faults stop the harness checks that `spec::validate_trace` accepts the cloud's
//! observation log, that every device is connected again within the bound the spec gives, and
//! that no telemetry message is lost: every message `send_telemetry` reported acknowledged was
//! recorded by some hub (by its `$.mid`). Duplicates are counted and reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubswap_client::{DeviceClient, DpsTransport, SendError, StatusKind, Telemetry, WhenFull};
use hubswap_mock_cloud::fault::RefuseAt;
use hubswap_mock_cloud::{CloudConfig, Event, MockCloud};
use hubswap_spec::trace::{Observation, Observed};
use hubswap_spec::{Config, Profile, TraceCheck, validate_trace_with};
use serde::Serialize;

use crate::local::local_cloud;
use crate::runner::{cloud as runner_cloud, scenario as catalogue};

mod faults;
pub use faults::{FaultKind, HOLD, Timed};

/// A scenario for a fleet of hubswap clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scenario {
    /// How many devices (1 to 8).
    pub devices: usize,
    /// What goes wrong.
    pub plan: Plan,
}

/// What goes wrong in a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Plan {
    /// Faults at fixed times, in time order, each held for [`HOLD`].
    Timed(Vec<Timed>),
    /// A scenario of the conformance catalogue (the runner's), played on the first device while
    /// the others keep sending; its own checks apply (for example, that a device does not
    /// reconnect to the hub that became unreachable). `restart-with-cached-assignment` restarts
    /// a device process, which only the runner does; here it plays as steady telemetry (a
    /// client's start from its cached assignment is tested in `client/tests/resilience.rs`).
    Catalogue(catalogue::Scenario),
}

impl Scenario {
    /// How many faults the plan applies at fixed times (none for a catalogue scenario).
    pub fn timed_faults(&self) -> usize {
        match &self.plan {
            Plan::Timed(f) => f.len(),
            Plan::Catalogue(_) => 0,
        }
    }
}

/// What a scenario run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Telemetry messages the clients accepted.
    pub sent: usize,
    /// Acknowledged messages the cloud has no record of.
    pub lost: usize,
    /// Messages the cloud recorded more than once.
    pub duplicated: usize,
    /// Messages reported failed by their time-to-live.
    pub expired: usize,
    /// Problems found (empty when the run conforms).
    pub problems: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

/// The compressed spec timing the scenarios use (the grader uses the same).
pub fn timing() -> Config {
    let ms = Duration::from_millis;
    Config {
        fast: Profile {
            floor: ms(100),
            initial: ms(100),
            cap: ms(1_000),
        },
        slow: Profile {
            floor: ms(500),
            initial: ms(500),
            cap: ms(2_000),
        },
        min_attempt_spacing: ms(100),
        stable_after: ms(500),
        attempt_timeout: ms(2_000),
        token_ttl: ms(10_000),
        retry_after_jitter: ms(100),
        max_retry_after: ms(3_000),
        dps_poll_default: ms(300),
        recheck: Profile {
            floor: ms(500),
            initial: ms(1_000),
            cap: ms(2_000),
        },
        ..Config::default()
    }
}

/// The bound within which every device must be connected again once the cloud behaves.
pub fn reconnect_bound(c: &Config) -> Duration {
    c.longest_delay()
        .min(c.slow.cap.max(c.fast.cap) + c.max_retry_after + c.retry_after_jitter)
        + c.attempt_timeout * 2
        + c.spacing(true)
        + c.dps_poll_default
        + Duration::from_secs(3)
}

struct Fleet {
    clients: Vec<DeviceClient>,
    ids: Vec<String>,
}

fn start_fleet(cloud: &MockCloud, n: usize, seed: u64) -> Result<Fleet, String> {
    let local = local_cloud(cloud);
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("e2e-dev-{i}");
        let transport = if i % 2 == 0 {
            DpsTransport::Mqtt
        } else {
            DpsTransport::Https
        };
        let (client, _events) = DeviceClient::builder()
            .local_cloud(&local, transport)
            .registration_id(&id)
            .group_key(cloud.group_key("default").unwrap_or_default())
            .memory_store()
            .timing(timing())
            .jitter_seed(seed.wrapping_add(i as u64))
            .build()
            .map_err(|e| format!("client {id}: {e}"))?;
        clients.push(client);
        ids.push(id);
    }
    Ok(Fleet { clients, ids })
}

async fn all_connected(fleet: &Fleet, within: Duration) -> Result<(), String> {
    for (c, id) in fleet.clients.iter().zip(&fleet.ids) {
        let mut rx = c.status();
        let ok = tokio::time::timeout(within, rx.wait_for(|s| s.kind == StatusKind::Connected))
            .await
            .is_ok();
        if !ok {
            return Err(format!(
                "{id} not connected within {within:?} (last {:?})",
                *rx.borrow()
            ));
        }
    }
    Ok(())
}

type Results = Arc<Mutex<Vec<Result<String, SendError>>>>;

/// Runs one scenario end to end and checks it.
pub async fn run(s: &Scenario, seed: u64) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::default();
    let cloud = match MockCloud::start(CloudConfig::for_tests(2)).await {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(format!("mock cloud: {e}"));
            return out;
        }
    };
    let cfg = timing();
    let fleet = match start_fleet(&cloud, s.devices, seed) {
        Ok(f) => f,
        Err(e) => {
            out.problems.push(e);
            return out;
        }
    };
    if let Err(e) = all_connected(&fleet, Duration::from_secs(30)).await {
        out.problems.push(format!("initial connect: {e}"));
    }
    // Telemetry throughout: every device queues a message every 100 ms.
    let results: Results = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut senders = Vec::new();
    for c in &fleet.clients {
        let (c, results, mut stop) = (c.clone(), Arc::clone(&results), stop_rx.clone());
        senders.push(tokio::spawn(async move {
            let mut pending = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tick.tick() => {
                        n += 1;
                        let queued = c.queue_telemetry(Telemetry::json(&serde_json::json!({ "n": n })), WhenFull::Wait);
                        let queued = tokio::select! {
                            q = queued => q,
                            _ = stop.changed() => break,
                        };
                        if let Ok(d) = queued {
                            let results = Arc::clone(&results);
                            pending.push(tokio::spawn(async move {
                                let r = d.acked().await;
                                results.lock().map(|mut v| v.push(r)).ok();
                            }));
                        }
                    }
                }
            }
            pending
        }));
    }
    let bound = reconnect_bound(&cfg);
    match &s.plan {
        Plan::Timed(faults) => play_timed(&cloud, &fleet, faults, &mut out).await,
        Plan::Catalogue(c) => play_catalogue(&cloud, &fleet, *c, &cfg, &mut out).await,
    }
    // The cloud behaves from here on.
    cloud.clear_faults().await;
    let behaved = Instant::now();
    if let Err(e) = all_connected(&fleet, bound).await {
        out.problems
            .push(format!("not reconnected within the spec's bound: {e}"));
    } else {
        let took = behaved.elapsed();
        if took > bound {
            out.problems
                .push(format!("reconnected after {took:?}, bound {bound:?}"));
        }
    }
    let _ = stop_tx.send(true);
    wind_down(&fleet, senders, bound, &mut out).await;
    check(&cloud, &fleet, &results, &cfg, &mut out);
    cloud.shutdown().await;
    out.elapsed = started.elapsed();
    out
}

/// Applies each fault at its time, then holds the last one for [`HOLD`].
async fn play_timed(cloud: &MockCloud, fleet: &Fleet, faults: &[Timed], out: &mut Outcome) {
    let phase = Instant::now();
    for t in faults {
        tokio::time::sleep_until((phase + Duration::from_millis(t.at_ms)).into()).await;
        if let Err(e) = cloud.apply(t.fault.fault(cloud, &fleet.ids)).await {
            out.problems.push(format!("fault {:?}: {e}", t.fault));
        }
    }
    let last = faults.iter().map(|t| t.at_ms).max().unwrap_or(0);
    tokio::time::sleep_until((phase + Duration::from_millis(last) + HOLD).into()).await;
}

/// Plays a catalogue scenario on the first device, with the runner's recovery bounds for `config`.
async fn play_catalogue(
    cloud: &MockCloud,
    fleet: &Fleet,
    scenario: catalogue::Scenario,
    config: &Config,
    out: &mut Outcome,
) {
    let bound = reconnect_bound(config);
    let Some(device) = fleet.ids.first() else {
        out.problems
            .push("a catalogue scenario needs a device".into());
        return;
    };
    let Some(hub) = runner_cloud::wait_connected(cloud, device, 0, bound).await else {
        out.problems.push(format!("{device} never connected"));
        return;
    };
    let other = cloud
        .hub_hosts()
        .into_iter()
        .find(|h| *h != hub)
        .unwrap_or_default();
    let cx = catalogue::Ctx {
        cloud,
        device,
        hub,
        other,
        timing: catalogue::Timing {
            hold: HOLD,
            ..crate::runner::default_timing(config)
        },
        // With several devices on a hub, a reset at TCP accept cannot be attributed to one of
        // them (SPEC §8); after CONNECT it can.
        refuse_at: RefuseAt::Connect,
    };
    if let Err(p) = catalogue::play(scenario, &cx).await {
        out.problems.push(format!("{}: {p}", scenario.name()));
    }
}

/// Joins the telemetry senders and their pending messages, then shuts the clients down; each
/// wait is bounded, so a client that hangs is reported instead of hanging the run.
async fn wind_down(
    fleet: &Fleet,
    senders: Vec<tokio::task::JoinHandle<Vec<tokio::task::JoinHandle<()>>>>,
    bound: Duration,
    out: &mut Outcome,
) {
    // One deadline for every pending message, not one each: a stuck delivery must cost the
    // run `bound`, not `bound` per message.
    let mut pending = tokio::task::JoinSet::new();
    for s in senders {
        let Ok(joined) = tokio::time::timeout(bound, s).await else {
            out.problems
                .push(format!("a telemetry sender did not stop within {bound:?}"));
            continue;
        };
        for p in joined.unwrap_or_default() {
            pending.spawn(p);
        }
    }
    let all = async { while pending.join_next().await.is_some() {} };
    if tokio::time::timeout(bound, all).await.is_err() {
        out.problems.push(format!(
            "{} messages were neither acknowledged nor reported failed within {bound:?}",
            pending.len()
        ));
        pending.abort_all();
    }
    for (c, id) in fleet.clients.iter().zip(&fleet.ids) {
        if tokio::time::timeout(bound, c.shutdown()).await.is_err() {
            out.problems
                .push(format!("{id} did not shut down within {bound:?}"));
        }
    }
}

fn check(cloud: &MockCloud, fleet: &Fleet, results: &Results, cfg: &Config, out: &mut Outcome) {
    if !cloud.log().complete_since(0) {
        out.problems.push(format!(
            "the observation log overflowed ({} records dropped)",
            cloud.log().dropped()
        ));
    }
    let records = cloud.log().records();
    let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        if let Event::Telemetry { properties, .. } = &r.event
            && let Some(mid) = properties.get("$.mid")
        {
            *recorded.entry(mid.clone()).or_default() += 1;
        }
    }
    let results = results.lock().map(|v| v.clone()).unwrap_or_default();
    out.sent = results.len();
    for r in &results {
        match r {
            Ok(mid) if !recorded.contains_key(mid) => out.lost += 1,
            Ok(_) => {}
            Err(SendError::Expired) => out.expired += 1,
            Err(e) => out.problems.push(format!("a message failed: {e}")),
        }
    }
    out.duplicated = recorded.values().map(|n| n.saturating_sub(1)).sum();
    if out.lost > 0 {
        out.problems.push(format!(
            "{} acknowledged messages were never recorded",
            out.lost
        ));
    }
    let mut obs: Vec<Observation> = hubswap_mock_cloud::log::to_observations(&records)
        .into_iter()
        .filter(|o| fleet.ids.contains(&o.device))
        .collect();
    let end = records.last().map_or(hubswap_spec::Millis::ZERO, |r| r.at);
    obs.extend(fleet.ids.iter().map(|d| Observation {
        at: end,
        device: d.clone(),
        event: Observed::End,
    }));
    let check = TraceCheck {
        config: cfg.clone(),
        tolerance: Duration::from_millis(50),
    };
    if let Err(d) = validate_trace_with(&check, &obs) {
        out.problems.push(format!("validate_trace: {d}"));
    }
}
