//! SPEC §7.2: liveness (G8) checked by SPIN on a Promela export generated from `step`.
//!
//! The export is committed under `spec/model/`; this test regenerates it and fails if the
//! committed copy differs (`HUBSWAP_BLESS=1` rewrites it). When `spin` is installed it then
//! checks `ltl g8 { (<>[] good) -> []<> connected }`:
//! - with weak fairness (`pan -a -f`): no acceptance cycle (G8 holds);
//! - without fairness: an acceptance cycle (the device is starved), which must be found;
//! - the `GiveUpWhenBlocked` mutant with weak fairness: an acceptance cycle, which must be found.
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

#[test]
fn g8_holds_under_weak_fairness_and_fails_without_it() {
    if !spin_available() {
        println!("SKIPPED: spin is not installed (apt-get install -y spin); CI always has it");
        return;
    }
    let started = Instant::now();
    let dir = build_pan("faithful", &export(Mutation::None));
    let built = started.elapsed();
    let (fair_errors, fair) = run_pan(&dir, true);
    println!(
        "spin g8 with weak fairness: {} (build {built:?})",
        summary(&fair)
    );
    assert_eq!(fair_errors, 0, "G8 must hold under weak fairness:\n{fair}");
    let (unfair_errors, unfair) = run_pan(&dir, false);
    println!("spin g8 without fairness: {}", summary(&unfair));
    assert!(
        unfair_errors > 0 && unfair.contains("acceptance cycle"),
        "without fairness SPIN must find the starvation cycle:\n{unfair}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    println!("spin total {:?}", started.elapsed());
}

#[test]
fn g8_mutant_is_rejected_by_spin() {
    if !spin_available() {
        println!("SKIPPED: spin is not installed (apt-get install -y spin); CI always has it");
        return;
    }
    let dir = build_pan("giveup", &export(Mutation::GiveUpWhenBlocked));
    let (errors, text) = run_pan(&dir, true);
    println!(
        "spin g8 on GiveUpWhenBlocked with weak fairness: {}",
        summary(&text)
    );
    assert!(
        errors > 0 && text.contains("acceptance cycle"),
        "the give-up mutant must violate G8:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
