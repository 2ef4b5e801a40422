//! The shipped device binary's own footprint: `hubswap-device`, built with the `device` profile
//! (the workspace's `Cargo.toml`), connected to the mock cloud and idle.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hubswap_client::LocalCloud;

use crate::common::status_kib;

/// What `/proc/PID/status` said of the idle, connected device.
pub(crate) struct DeviceRss {
    pub binary_bytes: u64,
    pub rss_kib: u64,
    pub anon_kib: u64,
    pub connect_ms: u64,
}

/// Builds `hubswap-device` with the `device` profile and returns its path.
fn build() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--locked",
            "--profile",
            "device",
            "-p",
            "hubswap-client",
        ])
        .args(["--bin", "hubswap-device"])
        .status()
        .map_err(|e| format!("cargo build --profile device: {e}"))?;
    if !status.success() {
        return Err("building hubswap-device with the device profile failed".into());
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    Ok(target.join("device").join("hubswap-device"))
}

/// Runs the device against `cloud` until it reports `Connected`, lets it idle, reads its RSS.
pub(crate) fn measure(
    cloud: &LocalCloud,
    group_key: &str,
    idle: Duration,
) -> Result<DeviceRss, String> {
    let bin = build()?;
    let binary_bytes = std::fs::metadata(&bin).map_err(|e| e.to_string())?.len();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cloud.ca_pem).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&bin);
    cmd.args([
        "--id-scope",
        &cloud.id_scope,
        "--registration-id",
        "rss-device",
    ])
    .args(["--group-key", group_key, "--ca-file"])
    .arg(&ca)
    .args(["--dps-host", &cloud.dps_mqtt.ip().to_string()])
    .args(["--dps-port", &cloud.dps_mqtt.port().to_string()])
    .args(["--interval-ms", "3600000", "--store"])
    .arg(dir.path().join("assignment.json"));
    for (host, addr) in &cloud.hubs {
        cmd.args(["--hub-address", &format!("{host}={addr}")]);
    }
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id();
    // The reader keeps draining stdout after `Connected`, so later lines never hit a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("status: Connected") {
                    let _ = tx.send(());
                }
            }
        });
    }
    let connected = rx.recv_timeout(Duration::from_mins(1)).is_ok();
    let connect_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // Idling is what is measured; nothing to synchronise with.
    std::thread::sleep(idle);
    let rss = (status_kib(pid, "VmRSS"), status_kib(pid, "RssAnon"));
    let _ = child.kill();
    let _ = child.wait();
    match (connected, rss) {
        (true, (Some(rss_kib), Some(anon_kib))) => Ok(DeviceRss {
            binary_bytes,
            rss_kib,
            anon_kib,
            connect_ms,
        }),
        (false, _) => Err("hubswap-device never reported `status: Connected`".into()),
        _ => Err(format!("cannot read /proc/{pid}/status")),
    }
}

/// The device's table (or why it could not be measured).
pub(crate) fn print(result: &Result<DeviceRss, String>) {
    match result {
        Ok(d) => crate::common::table(
            "The device binary: `hubswap-device` (`device` profile), connected and idle",
            &[
                "binary",
                "time to connected",
                "process RSS idle",
                "of which heap (RssAnon)",
            ],
            &[vec![
                format!("{:.2} MB", crate::common::float(d.binary_bytes) / 1e6),
                format!("{:.1} s", crate::common::float(d.connect_ms) / 1000.0),
                crate::common::mib(d.rss_kib),
                crate::common::mib(d.anon_kib),
            ]],
        ),
        Err(e) => println!("\nhubswap-device not measured: {e}"),
    }
}
