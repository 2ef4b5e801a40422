//! Conformance suite: the client machine refines `spec::step`.
//!
//! What this checks, and what it cannot: the machine computes its policy by calling
//! `spec::step`, so "the actions equal the spec's" holds by construction and is not evidence.
//! The evidence is the rest of the harness (`tests/src/refinement.rs`): the statig state the
//! machine is in maps to the spec's phase after every step, client-only events (publishes,
//! twin traffic, shutdown) never move the abstraction or emit a policy action, and the spec's
//! invariants hold on the abstraction under adversarial, out-of-phase and stale inputs.
//!
//! `PROPTEST_CASES` overrides the number of cases (default 2,000 sequences of up to 80 moves).
//! A failure prints the minimal sequence and its seed, and is saved under
//! `tests/proptest-regressions/` (committed) so that it replays on every run.
#![allow(clippy::disallowed_methods, reason = "the test times itself")]

use std::time::Instant;

use hubswap_conformance::refinement::{check_run, faithful, run_strategy};
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

/// A runner; `persist` saves failures to the committed regression file (not for mutants,
/// whose failures are expected).
fn runner(cases: u32, persist: bool) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proptest-regressions/refinement.txt"
    );
    TestRunner::new(Config {
        cases,
        failure_persistence: persist.then(|| Box::new(FileFailurePersistence::Direct(file)) as _),
        ..Config::default()
    })
}

#[test]
fn client_machine_refines_the_spec() {
    let mut runner = runner(2_000, true);
    let cases = runner.config().cases;
    let started = Instant::now();
    let result = runner.run(&run_strategy(80), |(cached, moves)| {
        check_run(faithful, cached, &moves)
            .map_err(|m| proptest::test_runner::TestCaseError::fail(m.to_string()))
    });
    let elapsed = started.elapsed();
    println!(
        "refinement: {cases} cases in {elapsed:?} ({:.0} cases/s)",
        f64::from(cases) / elapsed.as_secs_f64()
    );
    if let Err(e) = result {
        panic!("the client diverged from the spec: {e}");
    }
}
