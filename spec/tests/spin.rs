//! SPEC §7.2: liveness (G8) checked by SPIN on a Promela export generated from `step`.
//!
//! The export is committed under `spec/model/`; this test regenerates it and fails if the
//! committed copy differs (`HUBSWAP_BLESS=1` rewrites it). When `spin` is installed it then
//! checks `ltl g8 { (<>[] good) -> []<> connected }`:
//! - with weak fairness (`pan -a -f`): no acceptance cycle (G8 holds);
//! - the `GiveUpWhenBlocked` and `PollAgainAfterAssigned` mutants with weak fairness: an
//!   acceptance cycle each, which must be found. The second passes every safety property of
//!   the stateright model, so this is the check that gives SPIN its meaning.
#![allow(
    clippy::disallowed_methods,
    reason = "the tests time the checks; the spec itself never reads a clock"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hubswap_spec::Mutation;
use hubswap_spec::model::Instance;
use hubswap_spec::promela::{Export, HEADER, explore, render};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model")
}

fn export(m: Mutation) -> Export {
    render(&explore(&Instance::liveness(m)))
}

#[test]
fn committed_promela_matches_the_spec() {
    let fresh = export(Mutation::None);
    for (name, text) in [("hubswap.pml", &fresh.promela), (HEADER, &fresh.header)] {
        let path = model_dir().join(name);
        if std::env::var_os("HUBSWAP_BLESS").is_some() {
            std::fs::write(&path, text).expect("write the export");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == *text,
            "{} is stale: regenerate with HUBSWAP_BLESS=1 cargo test -p hubswap-spec --test spin",
            path.display()
        );
    }
}

fn spin_available() -> bool {
    Command::new("spin")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds `pan` for `model` in a fresh directory and returns the directory.
fn build_pan(name: &str, model: &Export) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hubswap-spin-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("model.pml"), &model.promela).expect("write model");
    std::fs::write(dir.join(HEADER), &model.header).expect("write header");
    let spin = Command::new("spin")
        .args(["-a", "model.pml"])
        .current_dir(&dir)
        .output()
        .expect("run spin");
    assert!(
        spin.status.success(),
        "spin -a failed: {}",
        String::from_utf8_lossy(&spin.stderr)
    );
    let gcc = Command::new("gcc")
        .args(["-O1", "-DNFAIR=3", "-o", "pan", "pan.c"])
        .current_dir(&dir)
        .output()
        .expect("run gcc");
    assert!(
        gcc.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&gcc.stderr)
    );
    dir
}

/// Runs `pan -a [-f] -N g8` and returns (errors, the report).
fn run_pan(dir: &Path, fair: bool) -> (u64, String) {
    let mut args = vec!["-a", "-m100000"];
    if fair {
        args.push("-f");
    }
    args.extend(["-N", "g8"]);
    let out = Command::new("./pan")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("run pan");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once("errors: ")
                .map(|(_, n)| n.trim().parse::<u64>().unwrap_or(u64::MAX))
        })
        .unwrap_or_else(|| panic!("pan printed no error count:\n{text}"));
    (errors, text)
}

fn summary(text: &str) -> String {
    text.lines()
        .filter(|l| {
            l.contains("states, stored") || l.contains("errors:") || l.contains("acceptance cycle")
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

/// True when `spin` can run; without it the test is skipped, except under CI, where a
/// skipped check is a failed one.
fn spin_or_skip() -> bool {
    if spin_available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but spin is not installed: .ci/run installs it"
    );
    println!("SKIPPED: spin is not installed (apt-get install -y spin)");
    false
}

#[test]
fn g8_holds_under_weak_fairness() {
    if !spin_or_skip() {
        return;
    }
    let started = Instant::now();
    let dir = build_pan("faithful", &export(Mutation::None));
    let built = started.elapsed();
    let (errors, text) = run_pan(&dir, true);
    println!(
        "spin g8 with weak fairness: {} (build {built:?}, total {:?})",
        summary(&text),
        started.elapsed()
    );
    assert_eq!(errors, 0, "G8 must hold under weak fairness:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The two G8 mutants under weak fairness. `GiveUpWhenBlocked` also breaks an invariant;
/// `PollAgainAfterAssigned` breaks no safety property at all (`spec/tests/model_check.rs`
/// asserts it), so this is the one check that can reject it: a livelock in which no time
/// passes, invisible to the time-bounded G8 of the stateright model.
#[test]
fn g8_mutants_are_rejected_by_spin_under_fairness() {
    if !spin_or_skip() {
        return;
    }
    for (name, m) in [
        ("giveup", Mutation::GiveUpWhenBlocked),
        ("repoll", Mutation::PollAgainAfterAssigned),
    ] {
        let started = Instant::now();
        let dir = build_pan(name, &export(m));
        let (errors, text) = run_pan(&dir, true);
        println!(
            "spin g8 on {m:?} with weak fairness: {} ({:?})",
            summary(&text),
            started.elapsed()
        );
        assert!(
            errors > 0 && text.contains("acceptance cycle"),
            "the {m:?} mutant must violate G8:\n{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
