//! `hubswap-conformance`: grade a device program against the spec through the mock cloud.
//!
//! ```text
//! hubswap-conformance run --device-cmd 'python3 my_device.py --scope {id_scope} ...'
//! ```
//!
//! Placeholders: `{dps_host}`, `{dps_port}`, `{dps_https_port}`, `{id_scope}`,
//! `{registration_id}`, `{device_key}`, `{group_key}`, `{ca_file}`, `{hub_port}`,
//! `{state_dir}`, `{time_scale}`, `{spec_config}`. The exit code is 0 when nothing failed and every
//! scenario exercised the guarantees it exists to exercise, 1 when a guarantee failed or a
//! scenario could not run, 2 on bad arguments, 3 when nothing failed but a scenario did not
//! exercise what it exists to exercise (inconclusive).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hubswap_conformance::report::Conclusion;
use hubswap_conformance::runner::{self, RunOptions, Scenario};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Grade a device program against the hubswap spec through a local mock cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the conformance scenarios against a device command and grade it.
    Run(RunArgs),
    /// A fleet failover drill with a recovery report (terminal, report.json, report.html).
    Drill(hubswap_conformance::drill::DrillArgs),
    /// The fleet simulator: a scenario x policy x fleet size in virtual time (or --matrix).
    Simulate(hubswap_conformance::sim::cli::SimulateArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The device command (run with `sh -c`), with placeholders.
    #[arg(long)]
    device_cmd: String,
    /// Only these scenarios (repeatable; default: all).
    #[arg(long = "scenario", value_enum)]
    scenarios: Vec<Scenario>,
    /// Grade against the spec's defaults with every delay divided by this factor.
    #[arg(long, default_value_t = 1)]
    time_scale: u32,
    /// Grade against this spec config (JSON of `hubswap_spec::Config`) instead.
    #[arg(long)]
    spec_config: Option<PathBuf>,
    /// Timing slack between the device and the cloud, in milliseconds.
    #[arg(long, default_value_t = 150)]
    tolerance_ms: u64,
    /// How long each fault is held, in seconds (default: derived from the spec config).
    #[arg(long)]
    hold_secs: Option<f64>,
    /// How long the device gets to reconnect after a fault, in seconds (default: derived).
    #[arg(long)]
    recovery_secs: Option<f64>,
    /// How long the device gets to reconnect after an unblock, in seconds (default: derived).
    #[arg(long)]
    blocked_recovery_secs: Option<f64>,
    /// How long the device gets to connect the first time, in seconds.
    #[arg(long, default_value_t = 60.0)]
    connect_timeout_secs: f64,
    /// DPS listens on this loopback address; hub i on the following ones.
    #[arg(long, default_value = "127.0.0.40")]
    base_ip: Ipv4Addr,
    /// The port every hub listens on (0: a free one; the Python SDK needs 8883).
    #[arg(long, default_value_t = 0)]
    hub_port: u16,
    /// The DPS MQTT port (0: a free one; the Python SDK needs 8883).
    #[arg(long, default_value_t = 0)]
    dps_port: u16,
    /// The DPS HTTPS port (0: a free one; the Node SDK needs 443).
    #[arg(long, default_value_t = 0)]
    dps_https_port: u16,
    /// Where device state, logs and observations go.
    #[arg(long, default_value = "hubswap-conformance-out")]
    work_dir: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the report as JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
}

fn secs(v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|e| format!("bad duration {v}: {e}"))
}

fn options(a: &RunArgs) -> Result<RunOptions, String> {
    let mut o = RunOptions::new(
        a.device_cmd.clone(),
        a.time_scale.max(1),
        a.work_dir.clone(),
    );
    if let Some(path) = &a.spec_config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--spec-config {}: {e}", path.display()))?;
        o.config = serde_json::from_str(&text)
            .map_err(|e| format!("--spec-config {}: {e}", path.display()))?;
        o.config
            .validate()
            .map_err(|e| format!("--spec-config {}: {e}", path.display()))?;
        o.timing = runner::default_timing(&o.config);
    }
    if !a.scenarios.is_empty() {
        o.scenarios.clone_from(&a.scenarios);
    }
    o.tolerance = Duration::from_millis(a.tolerance_ms);
    if let Some(v) = a.hold_secs {
        o.timing.hold = secs(v)?;
    }
    if let Some(v) = a.recovery_secs {
        o.timing.recovery = secs(v)?;
    }
    if let Some(v) = a.blocked_recovery_secs {
        o.timing.blocked_recovery = secs(v)?;
    }
    o.connect_timeout = secs(a.connect_timeout_secs)?;
    o.layout = runner::Layout {
        base_ip: a.base_ip,
        hub_port: a.hub_port,
        dps_port: a.dps_port,
        dps_https_port: a.dps_https_port,
    };
    Ok(o)
}

async fn run(a: RunArgs) -> Result<Conclusion, String> {
    let opts = options(&a)?;
    let report = runner::run(&opts).await.map_err(|e| e.to_string())?;
    print!("{}", report.render_text());
    if let Some(path) = &a.json {
        std::fs::write(path, report.to_json()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &a.junit {
        std::fs::write(path, report.to_junit()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report.conclusion())
}

async fn drill(a: hubswap_conformance::drill::DrillArgs) -> Result<bool, String> {
    use hubswap_conformance::drill;
    let report = drill::run(&a).await.map_err(|e| e.to_string())?;
    print!("{}", report.render_text());
    let (json, html) = drill::write_files(&a, &report).map_err(|e| e.to_string())?;
    println!("report: {} and {}", json.display(), html.display());
    Ok(report.passed())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(a) => run(a).await,
        Command::Drill(a) => drill(a).await.map(|passed| {
            if passed {
                Conclusion::Pass
            } else {
                Conclusion::Fail
            }
        }),
        Command::Simulate(a) => hubswap_conformance::sim::cli::run(&a)
            .map(|_| Conclusion::Pass)
            .map_err(|e| e.to_string()),
    };
    match outcome {
        Ok(Conclusion::Pass) => ExitCode::SUCCESS,
        Ok(Conclusion::Fail) => ExitCode::from(1),
        Ok(Conclusion::Inconclusive) => ExitCode::from(3),
        Err(e) => {
            eprintln!("hubswap-conformance: {e}");
            ExitCode::from(2)
        }
    }
}
