//! The fleet simulator's speed and memory: every scenario at 100,000 devices with hubswap's
//! policy (wall time, events per second, wall time per simulated hour), then one failover of
//! 1,000,000 devices with the process's peak resident memory.
//!
//! ```text
//! cargo bench -p hubswap-conformance --bench fleet_sim -- [--devices 100000] [--big 1000000]
//!     [--big-hubs 10] [--policy hubswap] [--scenarios failover,auth-blip] [--no-big]
//! ```
//!
//! Targets: 100,000 devices x one simulated hour of any scenario in at most 60 s on 2 cores;
//! 1,000,000 devices through a failover in at most 10 min, within 1 GiB. The big fleet is spread
//! over `--big-hubs` hubs (default 10, so the failing hub holds 100,000 devices, the size of one
//! real hub's failover); with 2 hubs, 500,000 devices move and N/R alone is 8 h 20 min.

use std::time::Instant;

use clap::ValueEnum;
use hubswap_conformance::sim::{self, PolicyName, ScenarioName, SimRequest};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A `kB` line of `/proc/self/status` (`VmHWM`, `VmRSS`), in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[allow(clippy::cast_precision_loss, reason = "event counts and seconds")]
fn one(req: &SimRequest) -> Option<(f64, u64, f64)> {
    let t = Instant::now();
    let r = match sim::simulate(req, &mut |_| {}) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{} x {}: {e}", req.scenario, req.policy);
            return None;
        }
    };
    let wall = t.elapsed().as_secs_f64();
    let per_hour = wall * 3600.0 / r.simulated_secs.max(1.0);
    println!(
        "{:<26} {:>9} {:>10.0} {:>9.1} {:>12} {:>10.2} {:>12.1} {:>8}",
        req.scenario.as_str(),
        req.devices,
        r.simulated_secs,
        wall,
        r.events,
        r.events as f64 / wall.max(1e-9) / 1e6,
        per_hour,
        r.not_connected_at_end
    );
    Some((wall, r.events, r.simulated_secs))
}

fn header() {
    println!(
        "{:<26} {:>9} {:>10} {:>9} {:>12} {:>10} {:>12} {:>8}",
        "scenario", "devices", "sim s", "wall s", "events", "M ev/s", "wall s/sim h", "down"
    );
}

#[allow(clippy::cast_precision_loss, reason = "memory figures")]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let devices: u32 = arg(&args, "--devices")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let big: u32 = arg(&args, "--big")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let big_hubs: u8 = arg(&args, "--big-hubs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let policy = arg(&args, "--policy")
        .and_then(|s| PolicyName::from_str(&s, true).ok())
        .unwrap_or(PolicyName::Hubswap);
    let scenarios: Vec<ScenarioName> = arg(&args, "--scenarios").map_or_else(
        || ScenarioName::ALL.to_vec(),
        |s| {
            s.split(',')
                .filter_map(|x| ScenarioName::from_str(x.trim(), true).ok())
                .collect()
        },
    );
    println!("fleet simulator, policy {policy}, one thread per run");
    header();
    let mut worst: f64 = 0.0;
    for &s in &scenarios {
        if let Some((wall, _, secs)) = one(&SimRequest::new(s, policy, devices)) {
            worst = worst.max(wall * 3600.0 / secs.max(1.0));
        }
    }
    println!(
        "worst wall time per simulated hour at {devices} devices: {worst:.1} s (target <= 60 s)"
    );
    if args.iter().any(|a| a == "--no-big") {
        return;
    }
    let before = status_kib("VmHWM:").unwrap_or(0);
    let baseline = status_kib("VmRSS:").unwrap_or(0);
    header();
    let mut req = SimRequest::new(ScenarioName::Failover, policy, big);
    req.cloud.hubs = big_hubs;
    println!("{big} devices over {big_hubs} hubs; hub-0 fails over to hub-1, then fails back");
    let Some((wall, _, _)) = one(&req) else {
        return;
    };
    let peak = status_kib("VmHWM:").unwrap_or(0).max(before);
    let grown = peak.saturating_sub(baseline);
    println!(
        "{big} devices through a failover: {wall:.1} s wall (target <= 600 s); peak RSS {:.0} MiB, \
         {:.0} MiB above the {:.0} MiB before it, {:.0} bytes per device (target <= 1 GiB, 1 KiB per device)",
        peak as f64 / 1024.0,
        grown as f64 / 1024.0,
        baseline as f64 / 1024.0,
        grown as f64 * 1024.0 / f64::from(big.max(1))
    );
}
