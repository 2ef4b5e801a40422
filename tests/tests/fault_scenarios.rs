//! Conformance suite: fault scenarios end to end, with real hubswap clients against
//! a real mock cloud over loopback sockets, delays scaled down through the spec's `Config`.
//!
//! - One case per scenario of the conformance catalogue (`hubswap_conformance::runner::Scenario`,
//!   the list the runner grades device programs with), played by three clients at once.
//! - A sweep: fixed cases with faults on several devices at once, then random cases drawn from
//!   a fixed seed (the same every run), split over three tests that run in parallel. Each part
//!   prints its totals (scenarios per minute, sent, lost, duplicated, expired); a failing case
//!   prints the seed and count that replay it. `HUBSWAP_SWEEP_SEED` and `HUBSWAP_SWEEP_CASES`
//!   (default 30) change them, for example 1,000 cases:
//!   `HUBSWAP_SWEEP_CASES=1000 cargo test -p hubswap-conformance --test fault_scenarios sweep`.
//!   `HUBSWAP_SWEEP_FIRST=N` skips the cases before case N, so one failing case replays alone.

use hubswap_conformance::e2e::{FaultKind as F, Outcome, Plan, Scenario, Timed, run};
use hubswap_conformance::runner::Scenario as Catalogue;
use proptest::prelude::*;
use std::time::{Duration, Instant};

use proptest::strategy::ValueTree;
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
    // Every wait inside a run is bounded, yet a 1,000-case sweep once saw a case take 24 min
    // without a problem; a case that outlives this fails, so a hang names its case and seed.
    let limit = Duration::from_mins(3);
    let out = rt
        .block_on(async { tokio::time::timeout(limit, run(s, 7)).await })
        .unwrap_or_else(|_| Outcome {
            problems: vec![format!("the case did not finish within {limit:?}")],
            elapsed: limit,
            ..Outcome::default()
        });
    // Whatever a stuck case left running must not hold the test up either.
    rt.shutdown_timeout(Duration::from_secs(5));
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
    expired_token_reprovision => ExpiredTokenReprovision,
    device_disabled => DeviceDisabled,
    blocked_at_hub => BlockedAtHub,
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

/// The sweep's random cases run in this many tests, which cargo runs in parallel.
const PARTS: usize = 3;

/// The default seed: the sweep is the same on every run unless `HUBSWAP_SWEEP_SEED` says
/// otherwise.
const DEFAULT_SEED: u64 = 20_261_202;

/// How many random cases, the seed they are drawn from, and the first case to play.
fn sweep_settings() -> (usize, u64, usize) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let cases = env("HUBSWAP_SWEEP_CASES").unwrap_or(30);
    let seed = env("HUBSWAP_SWEEP_SEED").unwrap_or(DEFAULT_SEED);
    let first = env("HUBSWAP_SWEEP_FIRST").unwrap_or(0);
    (
        usize::try_from(cases).unwrap_or(30),
        seed,
        usize::try_from(first).unwrap_or(0),
    )
}

/// The random cases for `seed`: the same list in every part.
fn random_cases(seed: u64, cases: usize) -> Vec<Scenario> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = scenario();
    (0..cases)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .map(|t| t.current())
                .expect("a scenario can always be drawn")
        })
        .collect()
}

/// What a set of runs added up to.
#[derive(Default)]
struct Totals {
    runs: usize,
    sent: usize,
    lost: usize,
    duplicated: usize,
    expired: usize,
}

impl Totals {
    fn add(&mut self, out: &Outcome) {
        self.runs += 1;
        self.sent += out.sent;
        self.lost += out.lost;
        self.duplicated += out.duplicated;
        self.expired += out.expired;
    }

    fn print(&self, what: &str, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{what}: {} scenarios in {secs:.1} s ({:.1} per minute): sent {}, lost {}, duplicated {}, expired {}",
            self.runs,
            f64::from(u32::try_from(self.runs).unwrap_or(u32::MAX)) * 60.0 / secs.max(0.001),
            self.sent,
            self.lost,
            self.duplicated,
            self.expired
        );
    }
}

#[test]
fn sweep_fixed_cases() {
    let started = Instant::now();
    let mut totals = Totals::default();
    for (i, s) in fixed_cases().iter().enumerate() {
        let out = play(&format!("fixed case {i}"), s);
        assert!(
            out.problems.is_empty(),
            "fixed case {i}: {:#?}\nscenario {s:?}",
            out.problems
        );
        totals.add(&out);
    }
    totals.print("fixed cases", started);
}

/// Plays every `PARTS`-th random case, starting at `part`; a failure names the case and the
/// seed that replays it.
fn sweep_part(part: usize) {
    let (cases, seed, first) = sweep_settings();
    println!(
        "sweep: {cases} cases from HUBSWAP_SWEEP_SEED={seed}, from case {first}, part {part} of {PARTS}"
    );
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut failed = Vec::new();
    for (i, s) in random_cases(seed, cases).iter().enumerate() {
        if i % PARTS != part || i < first {
            continue;
        }
        let out = play(&format!("sweep case {i}"), s);
        if !out.problems.is_empty() {
            failed.push(format!("case {i}: {:#?}\nscenario {s:?}", out.problems));
        }
        totals.add(&out);
    }
    totals.print(&format!("sweep part {part}"), started);
    assert!(
        failed.is_empty(),
        "sweep failed; replay with HUBSWAP_SWEEP_SEED={seed} HUBSWAP_SWEEP_CASES={cases} \
         (and HUBSWAP_SWEEP_FIRST=<case> to start at a case):\n{}",
        failed.join("\n")
    );
}

#[test]
fn sweep_0() {
    sweep_part(0);
}

#[test]
fn sweep_1() {
    sweep_part(1);
}

#[test]
fn sweep_2() {
    sweep_part(2);
}
