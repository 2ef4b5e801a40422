//! Conformance suite: fault scenarios end to end, with real hubswap clients against
//! a real mock cloud over loopback sockets, delays scaled down through the spec's `Config`.
//!
//! - One case per scenario of the conformance catalogue (`hubswap_conformance::runner::Scenario`,
//!   the list the runner grades device programs with), played by three clients at once.
//! - A sweep: fixed cases with faults on several devices at once, then a bounded random sample
//!   (`HUBSWAP_SWEEP_CASES`, default 3); a failing random case prints the
//!   seed that replays it: `HUBSWAP_SWEEP_SEED=<seed> cargo test -p hubswap-conformance --test
//!   fault_scenarios sweep`. Set `HUBSWAP_SWEEP_CASES=100` for a larger sweep.
#![allow(
    clippy::disallowed_methods,
    reason = "the sweep seeds itself from the clock when no seed is given"
)]

use hubswap_conformance::e2e::{FaultKind as F, Outcome, Plan, Scenario, Timed, run};
use hubswap_conformance::runner::Scenario as Catalogue;
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
        s.timed_faults(),
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

/// One test per scenario of the conformance catalogue, played by three hubswap clients; the
/// runner plays the same catalogue against any device program.
macro_rules! catalogue {
    ($($test:ident => $scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let s = Scenario {
                    devices: 3,
                    plan: Plan::Catalogue(Catalogue::$scenario),
                };
                assert_clean(Catalogue::$scenario.name(), &s);
            }
        )*

        #[test]
        fn every_catalogue_scenario_has_a_test() {
            let tested = [$(Catalogue::$scenario),*];
            for s in Catalogue::ALL {
                assert!(tested.contains(&s), "{} has no end-to-end test", s.name());
            }
        }
    };
}

catalogue! {
    steady_telemetry => Steady,
    restart_with_cached_assignment => RestartCached,
    unreachable_hub => UnreachableHub,
    expired_token => ExpiredToken,
    device_disabled => DeviceDisabled,
    operator_blocked => OperatorBlocked,
    internal_error_500 => InternalError,
    failover_and_failback => FailoverFailback,
    dps_throttling => DpsThrottling,
}

/// Cases the sweep always plays before its random ones: faults on several devices at once.
fn fixed_cases() -> Vec<Scenario> {
    let timed = |devices, faults| Scenario {
        devices,
        plan: Plan::Timed(faults),
    };
    vec![
        timed(
            8,
            vec![at(0, F::Drop(0)), at(200, F::Drop(3)), at(400, F::Drop(5))],
        ),
        timed(
            5,
            vec![
                at(0, F::FailoverHub(1)),
                at(100, F::Dps500(2)),
                at(200, F::Block(2)),
                at(300, F::ExpireToken(0)),
                at(400, F::Outage(1)),
                at(600, F::Failback),
            ],
        ),
        timed(
            3,
            vec![
                at(0, F::Connack3(0)),
                at(0, F::Drop(0)),
                at(100, F::Dps500(3)),
            ],
        ),
        timed(3, vec![at(0, F::Dps429(3)), at(0, F::FailoverHub(0))]),
    ]
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
                plan: Plan::Timed(
                    f.into_iter()
                        .map(|(at_ms, fault)| Timed { at_ms, fault })
                        .collect(),
                ),
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
    for (i, s) in fixed_cases().iter().enumerate() {
        let out = play(&format!("fixed case {i}"), s);
        assert!(
            out.problems.is_empty(),
            "fixed case {i}: {:#?}\nscenario {s:?}",
            out.problems
        );
        if let Ok(mut t) = totals.lock() {
            t.0 += out.sent;
            t.1 += out.lost;
            t.2 += out.duplicated;
        }
    }
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
        "sweep: {} fixed and {cases} random scenarios in {:.1} s: sent {sent}, lost {lost}, duplicated {dup}",
        fixed_cases().len(),
        minutes * 60.0
    );
    if let Err(e) = result {
        panic!("sweep failed; replay with HUBSWAP_SWEEP_SEED={seed}: {e}");
    }
}
