//! Benchmark: what a hubswap client costs its device.
//!
//! ```text
//! cargo bench -p hubswap-conformance --bench client_cost
//! cargo bench -p hubswap-conformance --bench client_cost -- --fleets 100,1000 --messages 20000
//! ```
//!
//! - **RSS per connected idle client, one client per process**: a child process (this
//!   executable, `--client-child single`, tokio's current-thread runtime, as a small device
//!   would run it) starts one `DeviceClient`, waits until it is `Connected` (provisioned over DPS
//!   MQTT, subscribed, twin synced), idles, and reads its own `VmRSS`: the whole process, and the
//!   growth over the same process before the client started.
//! - **RSS per client in a fleet**: a child process per fleet size N (`--fleets`), multi-thread
//!   runtime, N clients; (`VmRSS` with all N connected and idle − `VmRSS` before) / N.
//! - **The shipped binary**: `hubswap-device`, built with the `device` profile, connected to the
//!   same mock and idle, read from `/proc/PID/status` (`client_cost/device.rs`).
//! - **CPU time per telemetry message**: in the single-client process, `getrusage` (user + sys,
//!   all threads) around `--messages` calls of `send_telemetry` (each awaits its PUBACK), once
//!   one at a time and once from `--pipeline` concurrent senders; divided by the messages.
//!
//! The mock cloud runs in its own child process (`--serve-mock`) so that neither side's memory
//! or CPU is counted in the other. The session's step cost is the criterion bench
//! `cargo bench -p hubswap-conformance --bench step`; the spec's model checks time themselves in
//! `cargo test --release -p hubswap-spec -- --nocapture`.
//!
//! Options (also as `HUBSWAP_BENCH_<NAME>` environment variables): `--fleets 100,1000`,
//! `--messages`, `--pipeline`, `--payload` (bytes), `--idle` (s). Without `--bench` (as under
//! `cargo test --benches`) the defaults shrink to a smoke run.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary reports on the terminal"
)]

#[path = "common/mod.rs"]
mod common;
#[path = "client_cost/device.rs"]
mod device;

use std::io::{BufRead as _, BufReader};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::{
    MockProcess, Opts, Result, float, mib, micros_each, own_cpu, per_sec, status_kib, table,
    telemetry_payload,
};
use hubswap_client::{DeviceClient, DpsTransport, LocalCloud, StatusKind, Telemetry, WhenFull};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

const MODEL: &str = "dtmi:com:example:Thermostat;1";

/// What a client child needs to reach the mock (sent on its stdin: it holds the group key).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Setup {
    group_key: String,
    cloud: LocalCloud,
}

fn builder(setup: &Setup, registration_id: &str) -> hubswap_client::DeviceClientBuilder {
    DeviceClient::builder()
        .local_cloud(&setup.cloud, DpsTransport::Mqtt)
        .registration_id(registration_id)
        .group_key(setup.group_key.as_str())
        .model_id(MODEL)
        .memory_store()
}

fn own_kib(field: &str) -> u64 {
    status_kib(std::process::id(), field).unwrap_or(0)
}

/// One `send_telemetry` run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SendRun {
    senders: usize,
    messages: u64,
    failed: u64,
    cpu_us: u64,
    wall_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SingleResult {
    rss_base_kib: u64,
    rss_idle_kib: u64,
    /// `RssAnon` (heap and stacks) before and idle; the rest of `VmRSS` is mapped files
    /// (code pages) and shared memory.
    anon_base_kib: u64,
    anon_idle_kib: u64,
    hwm_kib: u64,
    threads: u64,
    connect_ms: u64,
    runs: Vec<SendRun>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FleetResult {
    n: usize,
    connected: usize,
    rss_base_kib: u64,
    rss_idle_kib: u64,
    anon_base_kib: u64,
    anon_idle_kib: u64,
    threads: u64,
    connect_ms: u64,
}

fn read_setup() -> Result<Setup> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the setup: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("setup: {e}"))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn wait_connected(client: &DeviceClient, until: tokio::time::Instant) -> bool {
    let mut status = client.status();
    tokio::time::timeout_at(until, status.wait_for(|s| s.kind == StatusKind::Connected))
        .await
        .is_ok_and(|r| r.is_ok())
}

async fn send_run(client: &DeviceClient, senders: usize, messages: u64, payload: &[u8]) -> SendRun {
    let per = messages / senders as u64;
    let (cpu0, t0) = (own_cpu(), Instant::now());
    let mut set = JoinSet::new();
    for _ in 0..senders {
        let (client, payload) = (client.clone(), payload.to_vec());
        set.spawn(async move {
            let mut failed = 0u64;
            for _ in 0..per {
                if client
                    .send_telemetry(Telemetry::new(payload.clone()), WhenFull::Wait)
                    .await
                    .is_err()
                {
                    failed += 1;
                }
            }
            failed
        });
    }
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        failed += r.unwrap_or(per);
    }
    SendRun {
        senders,
        messages: per * senders as u64,
        failed,
        cpu_us: u64::try_from(own_cpu().saturating_sub(cpu0).as_micros()).unwrap_or(u64::MAX),
        wall_ms: ms(t0.elapsed()),
    }
}

/// The single-client child: one client, idle RSS, then CPU per message.
fn single_child(idle: Duration, messages: u64, pipeline: usize, payload: usize) -> Result<()> {
    let setup = read_setup()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async move {
        let mut r = SingleResult {
            rss_base_kib: own_kib("VmRSS"),
            anon_base_kib: own_kib("RssAnon"),
            ..SingleResult::default()
        };
        let t0 = Instant::now();
        let (client, mut events) = builder(&setup, "cost-single")
            .build()
            .map_err(|e| format!("client: {e}"))?;
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        if !wait_connected(
            &client,
            tokio::time::Instant::now() + Duration::from_mins(2),
        )
        .await
        {
            return Err(format!(
                "the client did not connect within 120 s (status {:?})",
                *client.status().borrow()
            ));
        }
        r.connect_ms = ms(t0.elapsed());
        tokio::time::sleep(idle).await;
        r.rss_idle_kib = own_kib("VmRSS");
        r.anon_idle_kib = own_kib("RssAnon");
        r.hwm_kib = own_kib("VmHWM");
        r.threads = own_kib("Threads");
        let body = telemetry_payload(payload);
        // A short warm-up so that one-time allocations are not counted per message.
        let _ = send_run(&client, 1, 100, &body).await;
        r.runs.push(send_run(&client, 1, messages, &body).await);
        r.runs
            .push(send_run(&client, pipeline.max(1), messages, &body).await);
        client.shutdown().await;
        println!(
            "RESULT {}",
            serde_json::to_string(&r).map_err(|e| e.to_string())?
        );
        Ok(())
    })
}

/// The fleet child: `n` clients in one process, RSS per client.
fn fleet_child(n: usize, idle: Duration) -> Result<()> {
    let setup = read_setup()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async move {
        let mut r = FleetResult {
            n,
            rss_base_kib: own_kib("VmRSS"),
            anon_base_kib: own_kib("RssAnon"),
            ..FleetResult::default()
        };
        let t0 = Instant::now();
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            let (client, mut events) = builder(&setup, &format!("cost-f{n}-{i}"))
                .jitter_seed(i as u64)
                .build()
                .map_err(|e| format!("client {i}: {e}"))?;
            tokio::spawn(async move { while events.recv().await.is_some() {} });
            clients.push(client);
        }
        let until = tokio::time::Instant::now() + Duration::from_mins(5);
        let mut set = JoinSet::new();
        for c in &clients {
            let c = c.clone();
            set.spawn(async move { wait_connected(&c, until).await });
        }
        while let Some(ok) = set.join_next().await {
            if ok.unwrap_or(false) {
                r.connected += 1;
            }
        }
        r.connect_ms = ms(t0.elapsed());
        tokio::time::sleep(idle).await;
        r.rss_idle_kib = own_kib("VmRSS");
        r.anon_idle_kib = own_kib("RssAnon");
        r.threads = own_kib("Threads");
        println!(
            "RESULT {}",
            serde_json::to_string(&r).map_err(|e| e.to_string())?
        );
        Ok(())
    })
}

/// Runs this executable as a client child and returns its `RESULT` line.
fn run_child<T: for<'de> Deserialize<'de>>(args: &[String], setup: &Setup) -> Result<T> {
    let json = serde_json::to_string(setup).map_err(|e| e.to_string())?;
    let (mut child, stdin, stdout) = common::spawn_self(args, &json, "client child")?;
    let result = BufReader::new(stdout)
        .lines()
        .map_while(std::result::Result::ok)
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned));
    drop(stdin);
    let status = child.wait().map_err(|e| e.to_string())?;
    let line =
        result.ok_or_else(|| format!("the client child ended ({status}) without a result"))?;
    serde_json::from_str(&line).map_err(|e| format!("client child result: {e}"))
}

fn main() -> ExitCode {
    let mut opts = Opts::from_env();
    let result = child_or_run(&mut opts);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client_cost: {e}");
            ExitCode::FAILURE
        }
    }
}

fn child_or_run(opts: &mut Opts) -> Result<()> {
    if opts.flag("serve-mock") {
        let hubs = opts.get("mock-hubs", 2usize)?;
        let devices = opts.get("mock-devices", 0usize)?;
        opts.finish()?;
        return common::serve_mock_child(hubs, devices);
    }
    let full = opts.bench;
    let fleets: String = opts.get("fleets", if full { "100,1000" } else { "5" }.to_owned())?;
    let messages: u64 = opts.get("messages", if full { 20_000 } else { 200 })?;
    let pipeline: usize = opts.get("pipeline", 16)?;
    let payload: usize = opts.get("payload", 64)?;
    let idle = Duration::from_secs_f64(opts.get("idle", if full { 5.0 } else { 0.5 })?);
    let child: String = opts.get("client-child", String::new())?;
    let fleet: usize = opts.get("fleet", 0)?;
    opts.finish()?;
    if pipeline == 0 || messages == 0 {
        return Err("--pipeline and --messages must be > 0".into());
    }
    match child.as_str() {
        "single" => return single_child(idle, messages, pipeline, payload),
        "fleet" => return fleet_child(fleet, idle),
        "" => {}
        other => return Err(format!("unknown --client-child {other:?}")),
    }
    let fleets: Vec<usize> = fleets
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|e| format!("--fleets {s:?}: {e}")))
        .collect::<Result<_>>()?;
    let limit = common::raise_fd_limit();
    if let Some(big) = fleets
        .iter()
        .find(|n| **n * 2 + 256 > usize::try_from(limit).unwrap_or(usize::MAX))
    {
        return Err(format!(
            "the open-file limit is {limit}, too low for a fleet of {big}: raise it (ulimit -n)"
        ));
    }
    println!("hubswap client cost benchmark");
    if !full {
        println!("(smoke configuration: `cargo bench` runs the full defaults)");
    }
    println!("machine: {}", common::machine_note());
    let group_key = hubswap_mock_cloud::sas::random_key();
    let mock = MockProcess::spawn(2, 0, &group_key)?;
    let setup = Setup {
        group_key,
        cloud: mock.info.cloud.clone(),
    };
    let common_args = |mode: &str| -> Vec<String> {
        vec![
            "--client-child".into(),
            mode.into(),
            "--idle".into(),
            idle.as_secs_f64().to_string(),
            "--messages".into(),
            messages.to_string(),
            "--pipeline".into(),
            pipeline.to_string(),
            "--payload".into(),
            payload.to_string(),
        ]
    };
    println!("[single] one client in its own process ...");
    let single: SingleResult = run_child(&common_args("single"), &setup)?;
    let mut fleet_results = Vec::new();
    for n in &fleets {
        println!("[fleet] {n} clients in one process ...");
        let mut args = common_args("fleet");
        args.extend(["--fleet".to_owned(), n.to_string()]);
        fleet_results.push(run_child::<FleetResult>(&args, &setup)?);
    }
    println!("[device] hubswap-device, built with the device profile ...");
    let device = device::measure(&setup.cloud, &setup.group_key, idle);
    mock.stop();
    print_tables(&single, &fleet_results, payload);
    device::print(&device);
    Ok(())
}

#[allow(clippy::too_many_lines, reason = "two tables and their notes")]
fn print_tables(single: &SingleResult, fleets: &[FleetResult], payload: usize) {
    // "RSS (of which heap)" per client: VmRSS growth and RssAnon growth, divided by `n`.
    let per = |rss: f64, anon: f64, n: f64| {
        if n > 0.0 {
            format!("{:.1} KiB ({:.1} KiB)", rss / n, anon / n)
        } else {
            "-".into()
        }
    };
    let grown = |base: u64, idle: u64| common::kib_f(idle) - common::kib_f(base);
    let mut rows = vec![vec![
        "1 (own process, current-thread runtime)".to_owned(),
        "1".to_owned(),
        format!("{:.1} s", float(single.connect_ms) / 1000.0),
        mib(single.rss_base_kib),
        mib(single.rss_idle_kib),
        per(
            grown(single.rss_base_kib, single.rss_idle_kib),
            grown(single.anon_base_kib, single.anon_idle_kib),
            1.0,
        ),
        single.threads.to_string(),
    ]];
    for f in fleets {
        rows.push(vec![
            format!("{} (one process, multi-thread runtime)", f.n),
            f.connected.to_string(),
            format!("{:.1} s", float(f.connect_ms) / 1000.0),
            mib(f.rss_base_kib),
            mib(f.rss_idle_kib),
            per(
                grown(f.rss_base_kib, f.rss_idle_kib),
                grown(f.anon_base_kib, f.anon_idle_kib),
                float(f.connected as u64),
            ),
            f.threads.to_string(),
        ]);
    }
    // The marginal cost: the growth between the two largest fleets, which cancels what every
    // process pays once (runtime, TLS provider, code pages).
    let mut sorted: Vec<&FleetResult> = fleets.iter().filter(|f| f.connected > 0).collect();
    sorted.sort_by_key(|f| f.connected);
    if let [.., a, b] = sorted.as_slice()
        && b.connected > a.connected
    {
        rows.push(vec![
            format!("marginal, {} → {} clients", a.connected, b.connected),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            per(
                grown(b.rss_base_kib, b.rss_idle_kib) - grown(a.rss_base_kib, a.rss_idle_kib),
                grown(b.anon_base_kib, b.anon_idle_kib) - grown(a.anon_base_kib, a.anon_idle_kib),
                float((b.connected - a.connected) as u64),
            ),
            "-".into(),
        ]);
    }
    table(
        "Client memory: connected (DPS-provisioned, subscribed, twin synced) and idle",
        &[
            "clients",
            "connected",
            "time to all connected",
            "process RSS before",
            "process RSS idle",
            "RSS per client (of which heap, RssAnon)",
            "threads",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = single
        .runs
        .iter()
        .map(|r| {
            let wall = Duration::from_millis(r.wall_ms);
            vec![
                if r.senders == 1 {
                    "1 (one at a time)".to_owned()
                } else {
                    format!("{} concurrent", r.senders)
                },
                r.messages.to_string(),
                r.failed.to_string(),
                format!(
                    "{:.1} µs",
                    micros_each(Duration::from_micros(r.cpu_us), r.messages)
                ),
                format!("{:.0}", per_sec(r.messages, wall)),
            ]
        })
        .collect();
    table(
        &format!(
            "Client CPU per telemetry message (`send_telemetry`, QoS 1, {payload} B payload, user + sys of the client process)"
        ),
        &["senders", "messages", "failed", "CPU per message", "msgs/s"],
        &rows,
    );
    println!();
    println!(
        "note: the session's step cost: `cargo bench -p hubswap-conformance --bench step` (criterion)"
    );
    println!(
        "note: the spec's model checks time themselves: `cargo test --release -p hubswap-spec -- --nocapture`"
    );
}
