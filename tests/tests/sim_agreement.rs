//! The fleet simulator against the sockets: the same small scenarios run in the simulator and
//! against the real mock cloud with real hubswap clients on loopback, in the same time scale,
//! DPS quota included, and the two must agree.
//!
//! Each scenario has 20 devices over two hubs, the spec's defaults divided by 10, and a DPS
//! quota of 8 registrations per (real) minute, applied once the fleet is connected. Compared:
//! DPS registrations per device, hub CONNECT attempts per device, and the recovery's median and
//! maximum. The simulator's side is the mean over `SIM_SEEDS` seeds, so that the tolerance
//! covers the socket run's own randomness and not two random draws at once. The systematic
//! differences the tolerances allow for are listed in the `sim` module's documentation.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hubswap_conformance::drill::fleet::{Fleet, FleetSpec};
use hubswap_conformance::drill::story::{accepted_hub, wait_accepted, wait_all_connected};
use hubswap_conformance::sim::{
    self, CloudParams, PolicyName, ScenarioName, ScenarioParams, SimReport, SimRequest,
};
use hubswap_mock_cloud::fault::{Failover, HubError, HubErrorMode, Lifetime, Throttle};
use hubswap_mock_cloud::log::{DpsRequestKind, Endpoint};
use hubswap_mock_cloud::{CloudConfig, Event, Fault, LogRecord, MockCloud};
use hubswap_spec::{Config, Profile};

const DEVICES: usize = 20;
const SCALE: u32 = 10;
const RATE: u32 = 8;
const SIM_SEEDS: u64 = 20;
/// How long the hub-wide internal error lasts, in real seconds.
const OUTAGE: Duration = Duration::from_secs(15);

/// The defaults scaled down. For a failover, the DPS gate is shorter, so that a throttled
/// question is repeated within the test's time (the default gate, scaled, waits 90 s or more).
fn config(scenario: ScenarioName) -> Config {
    let scaled = Config::default().scaled_down(SCALE);
    if scenario != ScenarioName::Failover {
        return scaled;
    }
    Config {
        recheck: Profile {
            floor: Duration::from_secs(5),
            initial: Duration::from_secs(10),
            cap: Duration::from_mins(2),
        },
        ..scaled
    }
}

/// The four figures both sides are compared on.
#[derive(Debug, Clone, Copy)]
struct Figures {
    registrations: f64,
    connects: f64,
    p50: f64,
    max: f64,
}

#[allow(clippy::cast_precision_loss, reason = "20 devices")]
fn median_and_max(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    let p50 = xs.get(xs.len().div_ceil(2).saturating_sub(1)).copied();
    (
        p50.unwrap_or(f64::NAN),
        xs.last().copied().unwrap_or(f64::NAN),
    )
}

/// What the cloud saw after `mark`: per-device DPS registrations and hub CONNECTs over the
/// whole fleet, and the recovery of `affected` (first CONNACK 0 on `hub` after `mark`, counted
/// from `from_ms` on the cloud's clock).
#[allow(clippy::cast_precision_loss, reason = "20 devices")]
fn measure(records: &[LogRecord], affected: &HashSet<String>, hub: &str, from_ms: u64) -> Figures {
    let (mut registrations, mut connects) = (0u64, 0u64);
    let mut back: HashMap<&str, u64> = HashMap::new();
    for r in records {
        match &r.event {
            Event::DpsRequest {
                request: DpsRequestKind::Register,
                ..
            } => registrations += 1,
            Event::Connect {
                endpoint: Endpoint::Hub(_),
                ..
            } => connects += 1,
            _ => {}
        }
        if accepted_hub(r) == Some(hub)
            && let Some(d) = r.device.as_deref()
            && affected.contains(d)
        {
            back.entry(d).or_insert(r.at.0);
        }
    }
    assert_eq!(
        back.len(),
        affected.len(),
        "every affected device recovered"
    );
    let times = back
        .values()
        .map(|&t| t.saturating_sub(from_ms) as f64 / 1000.0)
        .collect();
    let (p50, max) = median_and_max(times);
    Figures {
        registrations: registrations as f64 / DEVICES as f64,
        connects: connects as f64 / DEVICES as f64,
        p50,
        max,
    }
}

/// The mock cloud with the fleet connected and the quota applied; returns the cloud, the
/// fleet, the hubs, and the devices on the first hub.
async fn connected_fleet(
    prefix: &str,
    scenario: ScenarioName,
) -> (MockCloud, Fleet, Vec<String>, HashSet<String>) {
    let mut cfg = CloudConfig::for_tests(2);
    cfg.admin = None;
    let cloud = MockCloud::start(cfg).await.expect("the mock cloud starts");
    let spec = FleetSpec {
        devices: DEVICES,
        prefix: prefix.to_owned(),
        config: config(scenario),
        shared_seed: None,
        telemetry: None,
        reprovision_on_disconnect: false,
    };
    let fleet = Fleet::start_spec(&cloud, &spec).expect("the fleet starts");
    let n = wait_all_connected(&cloud, &fleet.ids, 0, Duration::from_mins(1)).await;
    assert_eq!(n, DEVICES, "the fleet connected");
    let hubs = cloud.hub_hosts();
    let mut on_first = HashSet::new();
    for r in cloud.log().records() {
        if let (Some(hub), Some(d)) = (accepted_hub(&r), r.device.as_deref()) {
            if hub == hubs[0] {
                on_first.insert(d.to_owned());
            } else {
                on_first.remove(d);
            }
        }
    }
    cloud
        .apply(Fault::Throttle(Throttle {
            registrations_per_minute: Some(RATE),
            ..Throttle::default()
        }))
        .await
        .expect("the quota applies");
    (cloud, fleet, hubs, on_first)
}

/// Applies `fault` and returns the log sequence and cloud time of its record.
async fn apply(cloud: &MockCloud, fault: Fault) -> (u64, u64) {
    let id = cloud.apply(fault).await.expect("the fault applies");
    let rec = cloud
        .log()
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(&r.event, Event::Fault { id: i, .. } if *i == id),
        )
        .await
        .expect("the fault is logged");
    (rec.seq, rec.at.0)
}

/// The simulator's figures for the same scenario: the mean over `SIM_SEEDS` seeds.
fn simulated(scenario: ScenarioName, params: &ScenarioParams, rate: u32) -> Figures {
    let mut sum = Figures {
        registrations: 0.0,
        connects: 0.0,
        p50: 0.0,
        max: 0.0,
    };
    for seed in 1..=SIM_SEEDS {
        let req = SimRequest {
            scenario,
            policy: PolicyName::Hubswap,
            devices: u32::try_from(DEVICES).unwrap_or(u32::MAX),
            seed,
            cloud: loopback_cloud(rate),
            params: params.clone(),
            spec: config(scenario),
        };
        let r: SimReport = sim::simulate(&req, &mut |_| {}).expect("the simulation runs");
        let inc = &r.incidents[0];
        assert_eq!(
            inc.recovered, inc.affected,
            "seed {seed}: every device recovered"
        );
        sum.registrations += r.dps.registrations.mean;
        sum.connects += r.hub.connects.mean;
        sum.p50 += inc.p50_secs.unwrap_or(f64::NAN);
        sum.max += inc.max_secs.unwrap_or(f64::NAN);
    }
    #[allow(clippy::cast_precision_loss, reason = "a handful of seeds")]
    let k = SIM_SEEDS as f64;
    Figures {
        registrations: sum.registrations / k,
        connects: sum.connects / k,
        p50: sum.p50 / k,
        max: sum.max / k,
    }
}

/// The mock cloud as the simulator models it on loopback: no connection throttle, no poll
/// quota, millisecond round trips, DPS answering the first poll, `retry-after: 1` on a 202.
fn loopback_cloud(rate: u32) -> CloudParams {
    CloudParams {
        hubs: 2,
        registrations_per_minute: rate,
        polls_per_minute: 1_000_000,
        polls_per_device: 1_000_000,
        assigning_retry_after_secs: 1,
        assign_ms: 0,
        dps_latency_ms: (2, 20),
        hub_latency_ms: (2, 20),
        hub_connects_per_second: 100_000,
        hub_queue: 100_000,
        ..CloudParams::default()
    }
}

fn params() -> ScenarioParams {
    ScenarioParams {
        lead_secs: 1,
        failover_ttl_mins: 0.0,
        hub_outage_mins: OUTAGE.as_secs_f64() / 60.0,
        token_age_spread_secs: Some(1.0),
        ..ScenarioParams::default()
    }
}

/// `what` of the simulator within `abs` or `rel` (a fraction) of the sockets'.
fn close(what: &str, sim: f64, real: f64, abs: f64, rel: f64) -> Result<(), String> {
    let d = (sim - real).abs();
    if d <= abs.max(rel * real.abs()) {
        Ok(())
    } else {
        Err(format!(
            "{what}: simulator {sim:.2} vs sockets {real:.2} (tolerance {abs} or {:.0} %)",
            rel * 100.0
        ))
    }
}

fn compare(sim: Figures, real: Figures) -> Result<(), String> {
    // Counts: the same policy, the same refusals; the draws differ, so allow a quarter.
    close(
        "DPS registrations per device",
        sim.registrations,
        real.registrations,
        0.3,
        0.25,
    )?;
    close(
        "hub attempts per device",
        sim.connects,
        real.connects,
        0.5,
        0.25,
    )?;
    // Recovery: where each device is in its backoff when the fault clears decides it, and
    // the fast cap is 12 s here, so one run of ten devices on the sockets scatters: the
    // median within a few floors, the maximum within a third of the cap.
    close("recovery p50 (s)", sim.p50, real.p50, 2.5, 0.5)?;
    close("recovery max (s)", sim.max, real.max, 4.0, 0.15)
}

/// The simulator agrees with the sockets, and the comparison is sharp enough to reject a
/// simulator with the model error that matters most for the scenario: for a failover, a DPS
/// without a quota; for a hub-wide internal error (one DPS question per device, so the quota
/// hardly matters), a hub whose outage lasts a quarter as long.
fn agree(scenario: ScenarioName, real: Figures) {
    let sim = simulated(scenario, &params(), RATE);
    println!("{scenario}: simulator {sim:?}\n{scenario}: sockets   {real:?}");
    if let Err(e) = compare(sim, real) {
        panic!("{scenario}: {e}");
    }
    let broken = if scenario == ScenarioName::Failover {
        simulated(scenario, &params(), 1_000_000)
    } else {
        let short = ScenarioParams {
            hub_outage_mins: params().hub_outage_mins / 4.0,
            ..params()
        };
        simulated(scenario, &short, RATE)
    };
    assert!(
        compare(broken, real).is_err(),
        "{scenario}: a simulator with the model error agrees too: {broken:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_agrees_with_the_sockets() {
    let (cloud, fleet, hubs, on_first) = connected_fleet("agree-fo", ScenarioName::Failover).await;
    let (mark, at) = apply(
        &cloud,
        Fault::Failover(Failover {
            hub: Some(hubs[0].clone()),
            to: hubs[1].clone(),
            ..Failover::default()
        }),
    )
    .await;
    let ids: Vec<String> = on_first.iter().cloned().collect();
    let n = wait_accepted(&cloud, &ids, mark, Some(&hubs[1]), Duration::from_secs(150)).await;
    assert_eq!(n, ids.len(), "every moved device reached the new hub");
    let real = measure(&cloud.log().since(mark), &on_first, &hubs[1], at);
    let _ = fleet.finish(&cloud).await;
    cloud.shutdown().await;
    agree(ScenarioName::Failover, real);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_wide_internal_error_agrees_with_the_sockets() {
    let (cloud, fleet, hubs, on_first) =
        connected_fleet("agree-500", ScenarioName::HubOutage500).await;
    let refuse = HubError {
        hub: hubs[0].clone(),
        mode: HubErrorMode::Connack,
        code: Some(3),
        lifetime: Lifetime::lasting(OUTAGE),
        ..HubError::default()
    };
    let (mark, at) = apply(&cloud, Fault::HubError(refuse)).await;
    let drop = HubError {
        hub: hubs[0].clone(),
        mode: HubErrorMode::Drop,
        count: Some(u32::try_from(on_first.len()).unwrap_or(u32::MAX)),
        ..HubError::default()
    };
    apply(&cloud, Fault::HubError(drop)).await;
    let ids: Vec<String> = on_first.iter().cloned().collect();
    let wait = OUTAGE + Duration::from_mins(4);
    let n = wait_accepted(&cloud, &ids, mark, Some(&hubs[0]), wait).await;
    assert_eq!(n, ids.len(), "every device is back on its hub");
    let clear = at + u64::try_from(OUTAGE.as_millis()).unwrap_or(0);
    let real = measure(&cloud.log().since(mark), &on_first, &hubs[0], clear);
    let _ = fleet.finish(&cloud).await;
    cloud.shutdown().await;
    agree(ScenarioName::HubOutage500, real);
}
