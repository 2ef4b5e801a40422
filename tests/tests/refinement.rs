//! Conformance suite: the client machine refines `spec::step`.
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

/// A client whose machine runs a spec mutant must fail the same check.
#[test]
fn a_seeded_client_mutant_is_rejected() {
    use hubswap_client::machine::Machine;
    use hubswap_spec::Mutation;
    for mutation in [
        Mutation::ReprovisionOnPlain500,
        Mutation::NoFreshTokenRetry,
        Mutation::IgnoreRetryAfter,
    ] {
        let mut runner = runner(2_000, false);
        let result = runner.run(&run_strategy(80), |(cached, moves)| {
            check_run(
                |cfg, cache| Machine::with_mutation(cfg, cache, mutation),
                cached,
                &moves,
            )
            .map_err(|m| proptest::test_runner::TestCaseError::fail(m.to_string()))
        });
        let err = result.expect_err("the refinement check must reject the mutant client");
        println!("{mutation:?} rejected: {err}");
    }
}
