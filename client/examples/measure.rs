//! Measures the sample device: the size of the `hubswap-device` binary and the idle resident
//! memory (RSS) of a connected `hubswap-device` process.
//!
//! It starts the mock cloud in this process (loopback, ephemeral ports), runs the binary as a
//! child process against it with `--idle`, waits until the child prints `Connected`, lets it
//! sit idle for `IDLE_SECS` (default 5), then reads the child's `VmRSS`/`VmHWM` from `/proc`.
//!
//! ```text
//! cargo build --release -p hubswap-client --bin hubswap-device
//! cargo run --release -p hubswap-client --example measure [-- path/to/hubswap-device]
//! ```

#![allow(
    clippy::disallowed_methods,
    reason = "the measurement idles for a fixed time on purpose"
)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hubswap_mock_cloud::{CloudConfig, MockCloud};

fn proc_status(pid: u32, field: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bin = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe()?
            .parent()
            .and_then(|d| d.parent())
            .ok_or("no target dir")?
            .join("hubswap-device"),
    };
    let size = std::fs::metadata(&bin)
        .map_err(|e| format!("{}: {e} (build it first)", bin.display()))?
        .len();
    println!(
        "binary {}: {size} bytes ({} KiB)",
        bin.display(),
        size / 1024
    );

    let cloud = MockCloud::start(CloudConfig::for_tests(2)).await?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cloud.ca_pem())?;
    let mut cmd = Command::new(&bin);
    cmd.args([
        "--id-scope",
        cloud.id_scope(),
        "--registration-id",
        "measure-1",
    ])
    .args([
        "--group-key",
        &cloud.group_key("default").ok_or("no default group")?,
    ])
    .args([
        "--ca-file",
        ca.to_str().ok_or("path")?,
        "--dps-host",
        "127.0.0.1",
    ])
    .args([
        "--dps-port",
        &cloud.dps_mqtt_addr().port().to_string(),
        "--idle",
    ])
    .args(["--store", dir.path().join("a.json").to_str().ok_or("path")?]);
    for h in cloud.info().hubs {
        cmd.args([
            "--hub-address",
            &format!("{}=127.0.0.1:{}", h.host, h.addr.port()),
        ]);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("stdout")?;
    // Read the child's output on a thread (and keep draining it) until it reports Connected.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("status: Connected")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    if tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .is_err()
    {
        let _ = child.kill();
        return Err("the device never connected".into());
    }
    let idle: u64 = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    tokio::time::sleep(Duration::from_secs(idle)).await;
    println!("connected and idle for {idle} s:");
    println!("  VmRSS {}", proc_status(pid, "VmRSS:").unwrap_or_default());
    println!("  VmHWM {}", proc_status(pid, "VmHWM:").unwrap_or_default());
    println!(
        "  threads {}",
        proc_status(pid, "Threads:").unwrap_or_default()
    );
    let _ = child.kill();
    let _ = child.wait();
    cloud.shutdown().await;
    Ok(())
}
