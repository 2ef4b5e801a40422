//! `hubswap-conformance simulate`: the command line of the fleet simulator.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{
    CloudParams, PolicyName, ScenarioName, ScenarioParams, SimError, SimReport, SimRequest,
    simulate,
};

/// Why `simulate` failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A run could not start.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The spec config file is not a `hubswap_spec::Config` in JSON.
    #[error("{path}: not a spec config: {source}")]
    SpecConfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: serde_json::Error,
    },
    /// Neither a scenario nor `--matrix`.
    #[error("give --scenario NAME or --matrix")]
    NoScenario,
}

fn latency(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s
        .split_once(':')
        .ok_or_else(|| format!("expected MIN:MAX in milliseconds, got {s:?}"))?;
    let lo: u64 = lo.trim().parse().map_err(|e| format!("{lo:?}: {e}"))?;
    let hi: u64 = hi.trim().parse().map_err(|e| format!("{hi:?}: {e}"))?;
    if lo > hi {
        return Err(format!("MIN {lo} is above MAX {hi}"));
    }
    Ok((lo, hi))
}

/// Arguments of `simulate`.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// The scenario to run.
    #[arg(long, value_enum)]
    pub scenario: Option<ScenarioName>,
    /// Run every scenario x every chosen policy x every size.
    #[arg(long)]
    pub matrix: bool,
    /// Fleet sizes (comma-separated; a single run uses the first).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    pub devices: Vec<u32>,
    /// Policies (comma-separated; default: hubswap, or every policy with --matrix).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub policy: Vec<PolicyName>,
    /// The seed of every random stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report(s) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the report(s) as a self-contained HTML page here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// hubswap's spec config (JSON of `hubswap_spec::Config`) instead of the defaults.
    #[arg(long)]
    pub spec_config: Option<PathBuf>,
    /// Runs in parallel for --matrix (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// IoT hubs behind DPS.
    #[arg(long, default_value_t = CloudParams::default().hubs)]
    pub hubs: u8,
    /// DPS register requests admitted per sliding minute.
    #[arg(long, default_value_t = CloudParams::default().registrations_per_minute)]
    pub dps_registrations_per_minute: u32,
    /// DPS polls admitted per sliding minute.
    #[arg(long, default_value_t = CloudParams::default().polls_per_minute)]
    pub dps_polls_per_minute: u32,
    /// Polls admitted per device per poll window.
    #[arg(long, default_value_t = CloudParams::default().polls_per_device)]
    pub dps_polls_per_device: u32,
    /// The per-device poll window (s).
    #[arg(long, default_value_t = CloudParams::default().poll_window_secs)]
    pub dps_poll_window_secs: u32,
    /// `retry-after` of a 202 answer (s).
    #[arg(long, default_value_t = CloudParams::default().assigning_retry_after_secs)]
    pub dps_retry_after_secs: u32,
    /// Time DPS takes to finish an assignment (ms).
    #[arg(long, default_value_t = CloudParams::default().assign_ms)]
    pub dps_assign_ms: u64,
    /// DPS round trip MIN:MAX (ms).
    #[arg(long, value_parser = latency, default_value = "40:200")]
    pub dps_latency_ms: (u64, u64),
    /// Hub connect round trip MIN:MAX (ms).
    #[arg(long, value_parser = latency, default_value = "50:300")]
    pub hub_latency_ms: (u64, u64),
    /// New CONNECTs each hub processes per second.
    #[arg(long, default_value_t = CloudParams::default().hub_connects_per_second)]
    pub hub_connects_per_second: u32,
    /// CONNECTs a hub queues before it refuses with CONNACK 3.
    #[arg(long, default_value_t = CloudParams::default().hub_queue)]
    pub hub_queue: u32,
    /// Hubs do not enforce token expiry.
    #[arg(long)]
    pub no_expiry: bool,
    /// Steady state before the first fault (s).
    #[arg(long, default_value_t = ScenarioParams::default().lead_secs)]
    pub lead_secs: u64,
    /// `failover`: the TTL after which it fails back (min).
    #[arg(long, default_value_t = ScenarioParams::default().failover_ttl_mins)]
    pub failover_ttl_mins: f64,
    /// `hub-outage-500`, `hub-unreachable`: duration (min).
    #[arg(long, default_value_t = ScenarioParams::default().hub_outage_mins)]
    pub hub_outage_mins: f64,
    /// `device-disabled`, `operator-blocked`: duration (min).
    #[arg(long, default_value_t = ScenarioParams::default().device_fault_mins)]
    pub device_fault_mins: f64,
    /// `device-disabled`, `operator-blocked`: share of the fleet (percent).
    #[arg(long, default_value_t = ScenarioParams::default().device_percent)]
    pub device_percent: f64,
    /// `auth-blip`: duration (min).
    #[arg(long, default_value_t = ScenarioParams::default().auth_blip_mins)]
    pub auth_blip_mins: f64,
    /// `dps-outage-plus-hub-blip`: DPS outage (min).
    #[arg(long, default_value_t = ScenarioParams::default().dps_outage_mins)]
    pub dps_outage_mins: f64,
    /// `dps-outage-plus-hub-blip`: when the hubs drop everything (min into the outage).
    #[arg(long, default_value_t = ScenarioParams::default().blip_at_mins)]
    pub blip_at_mins: f64,
    /// `uplink-loss`: duration (min).
    #[arg(long, default_value_t = ScenarioParams::default().uplink_mins)]
    pub uplink_mins: f64,
    /// Stop this long after the last fault step, recovered or not (min).
    #[arg(long, default_value_t = ScenarioParams::default().horizon_mins)]
    pub horizon_mins: f64,
    /// A warm fleet's tokens were minted over this long before t=0 (s; default: the policy's
    /// renewal period).
    #[arg(long)]
    pub token_age_spread_secs: Option<f64>,
}

impl SimulateArgs {
    fn cloud(&self) -> CloudParams {
        CloudParams {
            hubs: self.hubs,
            registrations_per_minute: self.dps_registrations_per_minute,
            polls_per_minute: self.dps_polls_per_minute,
            polls_per_device: self.dps_polls_per_device,
            poll_window_secs: self.dps_poll_window_secs,
            assigning_retry_after_secs: self.dps_retry_after_secs,
            assign_ms: self.dps_assign_ms,
            dps_latency_ms: self.dps_latency_ms,
            hub_latency_ms: self.hub_latency_ms,
            hub_connects_per_second: self.hub_connects_per_second,
            hub_queue: self.hub_queue,
            enforce_expiry: !self.no_expiry,
        }
    }

    fn params(&self) -> ScenarioParams {
        ScenarioParams {
            lead_secs: self.lead_secs,
            failover_ttl_mins: self.failover_ttl_mins,
            hub_outage_mins: self.hub_outage_mins,
            device_fault_mins: self.device_fault_mins,
            device_percent: self.device_percent,
            auth_blip_mins: self.auth_blip_mins,
            dps_outage_mins: self.dps_outage_mins,
            blip_at_mins: self.blip_at_mins,
            uplink_mins: self.uplink_mins,
            horizon_mins: self.horizon_mins,
            token_age_spread_secs: self.token_age_spread_secs,
        }
    }

    /// The runs these arguments ask for, in report order.
    pub fn requests(&self) -> Result<Vec<SimRequest>, CliError> {
        let spec = match &self.spec_config {
            None => hubswap_spec::Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
                    path: path.clone(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|source| CliError::SpecConfig {
                    path: path.clone(),
                    source,
                })?
            }
        };
        let scenarios: Vec<ScenarioName> = match (self.matrix, self.scenario) {
            (true, None) => ScenarioName::ALL.to_vec(),
            (_, Some(s)) => vec![s],
            (false, None) => return Err(CliError::NoScenario),
        };
        let policies = match (self.policy.is_empty(), self.matrix) {
            (false, _) => self.policy.clone(),
            (true, true) => PolicyName::ALL.to_vec(),
            (true, false) => vec![PolicyName::Hubswap],
        };
        let sizes = if self.matrix {
            self.devices.clone()
        } else {
            self.devices.iter().take(1).copied().collect()
        };
        let mut out = Vec::new();
        for &devices in &sizes {
            for &scenario in &scenarios {
                for &policy in &policies {
                    out.push(SimRequest {
                        scenario,
                        policy,
                        devices,
                        seed: self.seed,
                        cloud: self.cloud(),
                        params: self.params(),
                        spec: spec.clone(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// One run's report and its wall-clock seconds.
type Outcome = Result<(SimReport, f64), SimError>;

/// One run's speed: wall time, events, events per second (not part of the report, which is a
/// function of the inputs alone).
fn speed_line(rep: &SimReport, wall: f64) -> String {
    #[allow(clippy::cast_precision_loss, reason = "event counts far below 2^52")]
    let rate = rep.events as f64 / wall.max(1e-9);
    format!(
        "{} x {} x {}: {:.1} s wall for {:.0} s simulated, {} events, {:.2} M events/s",
        rep.scenario,
        rep.policy.name,
        rep.devices,
        wall,
        rep.simulated_secs,
        rep.events,
        rate / 1e6
    )
}

/// Runs what `args` asks for, prints the report(s) and writes the files.
pub fn run(args: &SimulateArgs) -> Result<Vec<SimReport>, CliError> {
    let requests = args.requests()?;
    for r in &requests {
        r.check()?;
    }
    let bar = ProgressBar::new(requests.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} runs  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .clamp(1, requests.len().max(1));
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(requests.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = {
                        let Ok(mut n) = next.lock() else { return };
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(req) = requests.get(i) else { return };
                    let t = Instant::now();
                    let name = format!("{} x {} x {}", req.scenario, req.policy, req.devices);
                    bar.set_message(name.clone());
                    let mut tick =
                        |secs: u64| bar.set_message(format!("{name}: {secs} s simulated"));
                    let r = simulate(req, &mut tick).map(|rep| (rep, t.elapsed().as_secs_f64()));
                    if let Ok((rep, wall)) = &r {
                        let line = speed_line(rep, *wall);
                        if bar.is_hidden() {
                            eprintln!("{line}");
                        } else {
                            bar.println(line);
                        }
                    }
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut reports = Vec::new();
    for r in results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
    {
        reports.push(r?.0);
    }
    eprintln!("total {:.1} s wall", started.elapsed().as_secs_f64());
    if reports.len() == 1 && !args.matrix {
        print!("{}", reports[0].render_text());
    } else {
        print!("{}", super::report::render_matrix(&reports));
    }
    let write = |path: &PathBuf, body: String| {
        std::fs::write(path, body).map_err(|source| CliError::Io {
            path: path.clone(),
            source,
        })
    };
    if let Some(path) = &args.json {
        let body = if reports.len() == 1 && !args.matrix {
            serde_json::to_string_pretty(&reports[0])
        } else {
            serde_json::to_string_pretty(&reports)
        };
        write(path, body.unwrap_or_default())?;
    }
    if let Some(path) = &args.html {
        write(path, super::html::render(&reports))?;
    }
    Ok(reports)
}
