//! Reference devices on the official Python SDK (`tests/examples/python_reference_device.py`,
//! azure-iot-device 2.14), one per reconnect policy seen in the field, graded by the runner.
//! Each test asserts the verdicts that policy earns, so a change to the grader that stops
//! seeing a field behaviour, or a policy that starts passing for the wrong reason, fails here.
//!
//! The SDK dials port 8883, so each test's cloud listens on its own loopback addresses (the
//! runner's SDK layout); no other port is fixed. Without python3 and the SDK a test prints why
//! it skipped; with `CI` set it fails instead (`.ci/run` installs the SDK).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use hubswap_conformance::runner::{self, RunOptions, Scenario};
use hubswap_spec::{Config, Guarantee, Profile, Verdict};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The grading profile: compressed, with room for the SDK's own pacing (its connect and
/// provisioning round trips take tens of milliseconds).
fn profile() -> Config {
    let c = Config {
        fast: Profile {
            floor: ms(300),
            initial: ms(300),
            cap: ms(3_000),
        },
        slow: Profile {
            floor: ms(1_500),
            initial: ms(1_500),
            cap: ms(6_000),
        },
        recheck: Profile {
            floor: ms(1_500),
            initial: ms(1_500),
            cap: ms(6_000),
        },
        min_attempt_spacing: ms(200),
        stable_after: ms(2_000),
        attempt_timeout: ms(5_000),
        retry_after_jitter: ms(500),
        max_retry_after: ms(5_000),
        dps_poll_default: ms(1_000),
        ..Config::default()
    };
    c.validate().expect("the reference profile is valid");
    c
}

/// The scenarios that tell the four policies apart.
const SCENARIOS: [Scenario; 6] = [
    Scenario::UnreachableHub,
    Scenario::FailoverFailback,
    Scenario::InternalError,
    Scenario::OperatorBlocked,
    Scenario::ExpiredToken,
    Scenario::ExpiredTokenReprovision,
];

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/python_reference_device.py")
}

/// Whether python3 can import the SDK; under `CI` its absence is a failure.
fn sdk_available(name: &str) -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import azure.iot.device"])
        .output();
    if probe.is_ok_and(|o| o.status.success()) {
        return true;
    }
    let why = "python3 cannot import azure.iot.device (pip install azure-iot-device==2.14.0)";
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} cannot run and CI is set: {why}"
    );
    println!("SKIPPED {name}: {why}");
    false
}

async fn grade(policy: &str, base: Ipv4Addr) -> Option<BTreeMap<Guarantee, Verdict>> {
    if !sdk_available(policy) {
        return None;
    }
    let cmd = format!(
        "python3 {} --policy {policy} --ca {{ca_file}} --provisioning-host {{dps_host}} \
         --id-scope {{id_scope}} --registration-id {{registration_id}} --group-key {{group_key}} \
         --state-dir {{state_dir}} --spec-config {{spec_config}}",
        script().display()
    );
    let work =
        std::env::temp_dir().join(format!("hubswap-reference-{}-{policy}", std::process::id()));
    let mut o = RunOptions::new(cmd, 1, work);
    o.config = profile();
    o.timing = runner::default_timing(&o.config);
    o.timing.hold = Duration::from_secs(6);
    o.tolerance = ms(100);
    o.connect_timeout = Duration::from_mins(1);
    o.scenarios = SCENARIOS.to_vec();
    o.layout.base_ip = base;
    o.layout.hub_port = 8883;
    o.layout.dps_port = 8883;
    let report = runner::run(&o).await.expect("the run completes");
    println!("{}", report.render_text());
    Some(
        report
            .guarantees
            .iter()
            .map(|g| (g.guarantee, g.verdict))
            .collect(),
    )
}

/// Asserts the verdicts that differ from "not applicable".
fn expect(policy: &str, got: &BTreeMap<Guarantee, Verdict>, want: &[(Guarantee, Verdict)]) {
    let decided: BTreeMap<Guarantee, Verdict> = got
        .iter()
        .filter(|(_, v)| **v != Verdict::NotApplicable)
        .map(|(g, v)| (*g, *v))
        .collect();
    let want: BTreeMap<Guarantee, Verdict> = want.iter().copied().collect();
    assert_eq!(decided, want, "{policy}: the verdicts it earns");
}

macro_rules! reference {
    ($($test:ident: $policy:literal at $ip:literal => { $($g:ident: $v:ident),* };)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let base: Ipv4Addr = $ip.parse().expect("an address");
                if let Some(got) = grade($policy, base).await {
                    expect($policy, &got, &[$((Guarantee::$g, Verdict::$v)),*]);
                }
            }
        )+
    };
}

reference! {
    // Never asks DPS again: stuck after every move (G1, G3, G8), the refused token's branch
    // never reaches DPS (G2), and the SDK's own reconnect comes milliseconds after a drop (G5,
    // G7).
    sdk_retry_only_never_reprovisions: "sdk-retry-only" at "127.0.0.60" => {
        G1: Fail, G2: Fail, G3: Fail, G5: Fail, G7: Fail, G8: Fail
    };
    // DPS right after every drop (G5) and at once after a DPS error (G7, G10); it does get
    // back (G8), and a blocked device's DPS round trips happen to be slow enough (G4).
    dps_on_every_disconnect_storms_dps: "dps-every-disconnect" at "127.0.0.70" => {
        G4: Pass, G5: Fail, G7: Fail, G8: Pass, G10: Fail
    };
    // Reprovisions on every error: DPS after a plain drop (G5) while the SDK is reconnecting
    // too (G7); after the hub refused the fresh token as well, the SDK's reconnect tries the
    // hub again before the device asks DPS (G2); and DPS again instead of the cached hub (G10).
    reprovision_on_every_error: "reprovision-on-every-error" at "127.0.0.80" => {
        G1: Pass, G2: Fail, G3: Pass, G4: Pass, G5: Fail, G7: Fail, G8: Pass, G9: Pass, G10: Fail
    };
    // The best practice passes everything the SDK lets it do. G10 fails: the SDK retries a DPS
    // 5xx inside `register()` itself (every 2 s), so after DPS fails the next attempt is DPS
    // again, not the cached hub, and the application cannot see the 500 to stop it.
    best_practice: "best-practice" at "127.0.0.90" => {
        G1: Pass, G2: Pass, G3: Pass, G4: Pass, G5: Pass, G7: Pass, G8: Pass, G9: Pass, G10: Fail
    };
}
