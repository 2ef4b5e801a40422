//! The runner's self-tests: hubswap's own `hubswap-device` passes every guarantee, and each
//! deliberately broken device fails exactly the guarantees it breaks.
//!
//! These run real device processes against a real mock cloud on loopback, in real time, with
//! the compressed spec config below (the device and the grader use the same one).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hubswap_conformance::report::Report;
use hubswap_conformance::runner::{self, RunOptions, Scenario};
use hubswap_spec::{Config, Guarantee, Profile, Verdict};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Compressed timing: long enough that a timing violation stands well clear of scheduling
/// noise on a loaded 2-core machine, short enough that a scenario takes seconds.
fn profile() -> Config {
    let c = Config {
        fast: Profile {
            floor: ms(200),
            initial: ms(200),
            cap: ms(2_000),
        },
        slow: Profile {
            floor: ms(1_000),
            initial: ms(1_000),
            cap: ms(4_000),
        },
        // A DPS round trip takes about a second here (the mock's 202 says retry-after 1 s): a
        // gate that opens sooner could not tell a device without one from a device with one.
        recheck: Profile {
            floor: ms(2_000),
            initial: ms(2_000),
            cap: ms(8_000),
        },
        min_attempt_spacing: ms(200),
        stable_after: ms(1_000),
        attempt_timeout: ms(3_000),
        token_ttl: ms(60_000),
        retry_after_jitter: ms(200),
        max_retry_after: ms(5_000),
        dps_poll_default: ms(500),
        ..Config::default()
    };
    c.validate().expect("the self-test profile is valid");
    c
}

/// The `hubswap-device` binary: built next to this test by `cargo test --workspace`, or built
/// here on demand.
fn hubswap_device() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let bin = dir.join("hubswap-device");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "hubswap-client", "--bin", "hubswap-device"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building hubswap-device failed");
    }
    bin
}

fn options(cmd: String, scenarios: &[Scenario], name: &str) -> RunOptions {
    let work = std::env::temp_dir().join(format!("hubswap-selftest-{}-{name}", std::process::id()));
    let mut o = RunOptions::new(cmd, 1, work);
    o.config = profile();
    o.timing = runner::default_timing(&o.config);
    o.timing.hold = Duration::from_secs(3);
    o.tolerance = ms(50);
    o.connect_timeout = Duration::from_secs(30);
    o.scenarios = scenarios.to_vec();
    o
}

fn failed(r: &Report) -> BTreeSet<Guarantee> {
    r.guarantees
        .iter()
        .filter(|g| g.verdict == Verdict::Fail)
        .map(|g| g.guarantee)
        .collect()
}

const PLACEHOLDERS: &str = "--id-scope {id_scope} --registration-id {registration_id} --group-key {group_key} \
     --ca-file {ca_file} --dps-host {dps_host} --dps-port {dps_port} --hub-port {hub_port}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubswap_device_passes_every_guarantee() {
    let cmd = format!(
        "{} {PLACEHOLDERS} --store {{state_dir}}/assignment.json --spec-config {{spec_config}} --interval-ms 200",
        hubswap_device().display()
    );
    let opts = options(cmd, &Scenario::ALL, "hubswap-device");
    let report = runner::run(&opts).await.expect("the run completes");
    println!("{}", report.render_text());
    assert!(
        report.passed(),
        "hubswap-device must pass:\n{}",
        report.render_text()
    );
    for g in &report.guarantees {
        assert_eq!(
            g.verdict,
            Verdict::Pass,
            "{} must be exercised and pass",
            g.guarantee
        );
    }
}

/// Grades `bug` on the whole catalogue: `Err` unless it fails every guarantee of `must` and
/// nothing outside `must` and `may`.
async fn broken(bug: &'static str, must: &[Guarantee], may: &[Guarantee]) -> Result<(), String> {
    let cmd = format!(
        "{} --bug {bug} {PLACEHOLDERS}",
        env!("CARGO_BIN_EXE_broken-device")
    );
    let report = runner::run(&options(cmd, &Scenario::ALL, bug))
        .await
        .map_err(|e| format!("{bug}: the run did not complete: {e}"))?;
    let got = failed(&report);
    let must: BTreeSet<Guarantee> = must.iter().copied().collect();
    let allowed: BTreeSet<Guarantee> = must.iter().chain(may).copied().collect();
    if !must.is_subset(&got) {
        return Err(format!(
            "{bug} must fail {must:?}, failed {got:?}:\n{}",
            report.render_text()
        ));
    }
    if !got.is_subset(&allowed) {
        return Err(format!(
            "{bug} failed {:?}, which its bug does not break:\n{}",
            got.difference(&allowed).collect::<Vec<_>>(),
            report.render_text()
        ));
    }
    println!("{bug}: failed {got:?}, as it must");
    Ok(())
}

/// How many broken devices are graded at once: each run mostly waits out its scenarios' holds.
const AT_ONCE: usize = 4;

/// Each broken device is graded on the whole catalogue and must fail the guarantees it
/// exists to break; it may also fail the ones listed after `also`, which its bug breaks too
/// (whether a run shows them depends on timing), and nothing else. The devices are graded
/// [`AT_ONCE`] at a time, each against its own mock cloud; every failure is reported.
macro_rules! broken_device {
    ($($what:literal: $bug:literal => [$($g:ident),+] also [$($m:ident),*];)+) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_broken_device_fails_its_guarantee() {
            let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
            let mut runs = tokio::task::JoinSet::new();
            $(
                let g = std::sync::Arc::clone(&gate);
                runs.spawn(async move {
                    let _permit = g.acquire_owned().await.expect("the gate stays open");
                    broken($bug, &[$(Guarantee::$g),+], &[$(Guarantee::$m),*])
                        .await
                        .map_err(|e| format!("{}: {e}", $what))
                });
            )+
            let mut failures = Vec::new();
            while let Some(run) = runs.join_next().await {
                if let Err(e) = run.expect("a run does not panic") {
                    failures.push(e);
                }
            }
            assert!(failures.is_empty(), "{}", failures.join("\n\n"));
        }

        #[test]
        fn every_guarantee_has_a_broken_device() {
            let covered: BTreeSet<Guarantee> = [$($(Guarantee::$g),+),+].into_iter().collect();
            let all: BTreeSet<Guarantee> = Guarantee::ALL.into_iter().collect();
            assert_eq!(covered, all, "a guarantee without a broken device cannot be shown to be graded");
        }
    };
}

broken_device! {
    "a device that never reprovisions fails g1 and g3": "never-reprovision" => [G1, G3] also [G2, G8];
    "a device that reuses a refused token fails g2": "stale-token" => [G2] also [G8];
    "a device that ignores being blocked fails g4": "fast-when-blocked" => [G4] also [];
    "a device that reprovisions on every error fails g5": "reprovision-always" => [G5] also [];
    "a device that ignores retry after fails g6": "ignore-retry-after" => [G6] also [G10];
    "a device that hot loops fails g7": "hot-loop" => [G7] also [G2, G4, G5, G8];
    "a device that gives up fails g8": "give-up" => [G8] also [G7];
    "a device without a dps gate fails g9": "dps-every-two-failures" => [G9] also [G4];
    "a device that forgets its cache fails g10": "forget-cache" => [G10] also [];
}
