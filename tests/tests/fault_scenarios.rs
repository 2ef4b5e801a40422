//! Conformance suite: fault scenarios end to end, with real hubswap clients against
//! a real mock cloud over loopback sockets, delays scaled down through the spec's `Config`.
//!
//! - One named case per guarantee G1–G8.
//! - A bounded randomised sweep (`HUBSWAP_SWEEP_CASES`, default 3); a failing case prints the
//!   seed that replays it: `HUBSWAP_SWEEP_SEED=<seed> cargo test -p hubswap-conformance --test
//!   fault_scenarios sweep`. Set `HUBSWAP_SWEEP_CASES=100` for a larger sweep.
#![allow(
    clippy::disallowed_methods,
    reason = "the sweep seeds itself from the clock when no seed is given"
)]

use hubswap_conformance::e2e::{FaultKind as F, Outcome, Scenario, Timed, run};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn at(at_ms: u64, fault: F) -> Timed {
    Timed { at_ms, fault }
}

fn play(name: &str, s: &Scenario) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(run(s, 7));
    println!(
        "{name}: {} devices, {} faults: sent {}, lost {}, duplicated {}, expired {} in {:?}",
        s.devices,
        s.faults.len(),
        out.sent,
        out.lost,
        out.duplicated,
        out.expired,
        out.elapsed
    );
    out
}

fn assert_clean(name: &str, s: &Scenario) {
    let out = play(name, s);
    assert!(
        out.problems.is_empty(),
        "{name}: {:#?}\nscenario {s:?}",
        out.problems
    );
    assert_eq!(out.lost, 0);
    assert!(out.sent > 0, "telemetry flowed");
}

#[test]
fn g1_unreachable_hub_then_failover() {
    assert_clean(
        "G1",
        &Scenario {
            devices: 3,
            faults: vec![at(0, F::FailoverHub(0)), at(0, F::Outage(0))],
        },
    );
}

#[test]
fn g2_expired_tokens() {
    assert_clean(
        "G2",
        &Scenario {
            devices: 3,
            faults: vec![at(0, F::ExpireToken(0)), at(300, F::ExpireToken(1))],
        },
    );
}

#[test]
fn g3_failover_and_failback() {
    assert_clean(
        "G3",
        &Scenario {
            devices: 4,
            faults: vec![at(0, F::FailoverHub(0)), at(1_500, F::Failback)],
        },
    );
}

#[test]
fn g4_operator_block() {
    assert_clean(
        "G4",
        &Scenario {
            devices: 2,
            faults: vec![at(0, F::Block(0)), at(200, F::Disable(1))],
        },
    );
}

#[test]
fn g5_internal_errors() {
    assert_clean(
        "G5",
        &Scenario {
            devices: 3,
            faults: vec![
                at(0, F::Connack3(0)),
                at(0, F::Drop(0)),
                at(100, F::Dps500(3)),
            ],
        },
    );
}

#[test]
fn g6_dps_throttling() {
    assert_clean(
        "G6",
        &Scenario {
            devices: 3,
            faults: vec![at(0, F::Dps429(3)), at(0, F::FailoverHub(0))],
        },
    );
}

#[test]
fn g7_drops_and_renewals_without_loss() {
    assert_clean(
        "G7",
        &Scenario {
            devices: 8,
            faults: vec![at(0, F::Drop(0)), at(200, F::Drop(3)), at(400, F::Drop(5))],
        },
    );
}

#[test]
fn g8_everything_then_the_cloud_behaves() {
    let faults = vec![
        at(0, F::FailoverHub(1)),
        at(100, F::Dps500(2)),
        at(200, F::Block(2)),
        at(300, F::ExpireToken(0)),
        at(400, F::Outage(1)),
        at(600, F::Failback),
    ];
    assert_clean("G8", &Scenario { devices: 5, faults });
}

fn fault() -> impl Strategy<Value = F> {
    let h = 0usize..2;
    let d = 0usize..8;
    prop_oneof![
        h.clone().prop_map(F::FailoverHub),
        Just(F::Failback),
        d.clone().prop_map(F::Drop),
        (1u32..4).prop_map(F::Dps500),
        (1u32..4).prop_map(F::Dps429),
        d.clone().prop_map(F::ExpireToken),
        d.clone().prop_map(F::Disable),
        d.prop_map(F::Block),
        h.clone().prop_map(F::Outage),
        h.prop_map(F::Connack3),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..=8,
        proptest::collection::vec(((0u64..8).prop_map(|t| t * 250), fault()), 1..=4),
    )
        .prop_map(|(devices, mut f)| {
            f.sort_by_key(|(t, _)| *t);
            Scenario {
                devices,
                faults: f
                    .into_iter()
                    .map(|(at_ms, fault)| Timed { at_ms, fault })
                    .collect(),
            }
        })
}

#[test]
fn sweep() {
    let cases = std::env::var("HUBSWAP_SWEEP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3u32);
    let seed = std::env::var("HUBSWAP_SWEEP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    println!("sweep: {cases} cases, HUBSWAP_SWEEP_SEED={seed}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let config = Config {
        cases,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let started = std::time::Instant::now();
    let totals = std::sync::Mutex::new((0usize, 0usize, 0usize));
    let result = runner.run(&scenario(), |s| {
        let out = play("sweep case", &s);
        if let Ok(mut t) = totals.lock() {
            t.0 += out.sent;
            t.1 += out.lost;
            t.2 += out.duplicated;
        }
        prop_assert!(out.problems.is_empty(), "{:#?}", out.problems);
        Ok(())
    });
    let (sent, lost, dup) = totals.lock().map(|t| *t).unwrap_or_default();
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    println!(
        "sweep: {cases} scenarios in {:.1} s ({:.1}/min): sent {sent}, lost {lost}, duplicated {dup}",
        minutes * 60.0,
        f64::from(cases) / minutes
    );
    if let Err(e) = result {
        panic!("sweep failed; replay with HUBSWAP_SWEEP_SEED={seed}: {e}");
    }
}
