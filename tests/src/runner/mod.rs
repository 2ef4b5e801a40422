//! The runner (conformance suite): grade any device program against the spec.
//!
//! For each scenario it starts a fresh mock cloud, launches the device command with the
//! placeholders filled in, waits for the device to connect, plays the scenario's faults, waits for
//! recovery, stops the device, and grades everything the cloud observed of it with
//! [`hubswap_spec::grade()`]. The report says, per guarantee, pass, fail or not applicable, with
//! the timeline of observations that decided it.

pub mod cloud;
mod error;
pub mod scenario;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hubswap_mock_cloud::fault::RefuseAt;
use hubswap_spec::trace::{DpsRequest, Observed};
use hubswap_spec::{Config, TraceCheck, grade};

use crate::device::{DeviceProcess, Placeholders};
use crate::report::{Report, ScenarioOutcome};
pub use cloud::Layout;
pub use error::RunError;
pub use scenario::{Scenario, Timing};

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The device command, with placeholders.
    pub device_cmd: String,
    /// The scenarios to play.
    pub scenarios: Vec<Scenario>,
    /// The spec config the device is graded against.
    pub config: Config,
    /// The factor the device's delays are divided by (`{time_scale}`; 1 = real time).
    pub time_scale: u32,
    /// Timing slack between the device's clock and the cloud's.
    pub tolerance: Duration,
    /// Scenario timing.
    pub timing: Timing,
    /// How long the device gets to connect the first time.
    pub connect_timeout: Duration,
    /// Where the cloud listens.
    pub layout: Layout,
    /// Where device state and logs go.
    pub work_dir: PathBuf,
}

impl RunOptions {
    /// Options for `device_cmd` with the spec's timing divided by `time_scale`, every
    /// scenario, and scenario timing derived from the scaled config.
    pub fn new(device_cmd: impl Into<String>, time_scale: u32, work_dir: PathBuf) -> Self {
        let config = Config::default().scaled_down(time_scale);
        let timing = default_timing(&config);
        Self {
            device_cmd: device_cmd.into(),
            scenarios: Scenario::ALL.to_vec(),
            config,
            time_scale,
            tolerance: Duration::from_millis(150),
            timing,
            connect_timeout: Duration::from_mins(1),
            layout: Layout {
                base_ip: Ipv4Addr::new(127, 0, 0, 40),
                hub_port: 0,
                dps_port: 0,
                dps_https_port: 0,
            },
            work_dir,
        }
    }
}

/// Scenario timing that gives a conforming device room under `c`.
pub fn default_timing(c: &Config) -> Timing {
    let margin = Duration::from_secs(5);
    let hold = (c.fast.initial * 8 + c.attempt_timeout * 2)
        .clamp(Duration::from_secs(4), Duration::from_mins(2));
    Timing {
        hold,
        // A throttled question closes the gate (SPEC §4.2): allow two rounds of it.
        recovery: c.fast.cap
            + c.attempt_timeout * 3
            + c.spacing(false)
            + c.dps_poll_default
            + hubswap_spec::backoff::ceiling(1, &c.recheck)
            + margin,
        blocked_recovery: c.slow.cap
            + c.attempt_timeout * 3
            + c.spacing(true)
            + c.dps_poll_default
            + margin,
    }
}

const DEVICE: &str = "conformance-device";

/// Runs every scenario and returns the report.
pub async fn run(opts: &RunOptions) -> Result<Report, RunError> {
    std::fs::create_dir_all(&opts.work_dir)?;
    let mut report = Report::new(opts.device_cmd.clone());
    let check = TraceCheck {
        config: opts.config.clone(),
        tolerance: opts.tolerance,
    };
    for &scenario in &opts.scenarios {
        let started = Instant::now();
        let (problems, observations) = run_one(opts, scenario).await?;
        let grades = grade(&check, &observations);
        let outcome = ScenarioOutcome {
            name: scenario.name().to_owned(),
            duration: started.elapsed(),
            problems,
            verdicts: Vec::new(),
            exercises: scenario.exercises().to_vec(),
        };
        report.add(outcome, &grades, &observations);
        // Not reconnected once the cloud behaved: liveness failed, whatever the trace shows.
        let unrecovered: Vec<String> = report
            .scenarios
            .last()
            .map(|s| {
                s.problems
                    .iter()
                    .filter(|p| p.starts_with(scenario::NOT_RECOVERED))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for p in unrecovered {
            report.fail(hubswap_spec::Guarantee::G8, &p);
        }
    }
    Ok(report)
}

async fn run_one(
    opts: &RunOptions,
    scenario: Scenario,
) -> Result<(Vec<String>, Vec<hubswap_spec::Observation>), RunError> {
    let cloud = cloud::start(&opts.layout).await?;
    let dir = opts.work_dir.join(scenario.name());
    let state_dir = dir.join("state");
    std::fs::create_dir_all(&state_dir)?;
    let info = cloud.info();
    let group_key = cloud.group_key("default").unwrap_or_default();
    let device_key = cloud.device_key("default", DEVICE).unwrap_or_default();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, cloud.ca_pem())?;
    let hub_port = cloud.hub_addr(&info.hubs[0].host).map_or(0, |a| a.port());
    let spec_config = dir.join("spec-config.json");
    std::fs::write(
        &spec_config,
        serde_json::to_vec_pretty(&opts.config).unwrap_or_default(),
    )?;
    let placeholders = Placeholders {
        dps_host: opts.layout.base_ip.to_string(),
        dps_port: cloud.dps_mqtt_addr().port(),
        dps_https_port: cloud.dps_https_addr().port(),
        id_scope: cloud.id_scope().to_owned(),
        registration_id: DEVICE.to_owned(),
        device_key,
        group_key,
        ca_file,
        hub_port,
        state_dir,
        time_scale: opts.time_scale,
        spec_config,
    };
    let command = placeholders
        .fill(&opts.device_cmd)
        .map_err(RunError::Command)?;
    let log = dir.join("device.log");
    let mut problems = Vec::new();
    let mut device = DeviceProcess::spawn(&command, &log)?;
    let connected = cloud::wait_connected(&cloud, DEVICE, 0, opts.connect_timeout).await;
    match connected {
        None => problems.push(format!(
            "never connected within {:?} (see {})",
            opts.connect_timeout,
            log.display()
        )),
        Some(hub) => {
            // The fault must meet a device at work, not one still starting up.
            if let Err(p) = cloud::wait_steady(&cloud, DEVICE, 0, opts.connect_timeout).await {
                problems.push(format!("not in steady state before the fault: {p}"));
            }
            let other = info
                .hubs
                .iter()
                .map(|h| h.host.clone())
                .find(|h| *h != hub)
                .unwrap_or_default();
            let cx = scenario::Ctx {
                cloud: &cloud,
                device: DEVICE,
                hub,
                other,
                timing: opts.timing,
                // One device per cloud: a reset at TCP accept is attributed to it.
                refuse_at: RefuseAt::Accept,
            };
            if let Err(p) = scenario::play(scenario, &cx).await {
                problems.push(p);
            }
            if scenario == Scenario::RestartCached {
                device.stop(Duration::from_secs(5)).await;
                let m = cloud::mark(&cloud);
                device = DeviceProcess::spawn(&command, &log)?;
                if cloud::wait_connected(&cloud, DEVICE, m, opts.connect_timeout)
                    .await
                    .is_none()
                {
                    problems.push("did not reconnect after a restart".into());
                } else if used_dps_after(&cloud, m) {
                    problems.push("registered with DPS after a restart instead of using its cached assignment".into());
                }
            }
            if scenario == Scenario::Steady && cloud::telemetry_count(&cloud, DEVICE) == 0 {
                problems.push("sent no telemetry".into());
            }
        }
    }
    problems.extend(ended_early(&mut device, &log));
    device.stop(Duration::from_secs(5)).await;
    if !cloud.log().complete_since(0) {
        problems.push(format!(
            "the mock cloud's observation log overflowed ({} records dropped); the grade covers only the rest",
            cloud.log().dropped()
        ));
    }
    let observations = cloud::observations(&cloud, DEVICE);
    let log_path = dir.join("observations.json");
    std::fs::write(
        &log_path,
        serde_json::to_vec_pretty(&observations).unwrap_or_default(),
    )?;
    cloud.shutdown().await;
    Ok((problems, observations))
}

fn used_dps_after(cloud: &hubswap_mock_cloud::MockCloud, after: u64) -> bool {
    cloud
        .log()
        .records()
        .iter()
        .filter(|r| r.seq >= after && r.device.as_deref() == Some(DEVICE))
        .any(|r| {
            matches!(
                r.to_observation().map(|o| o.event),
                Some(Observed::DpsRequest(DpsRequest::Register))
            )
        })
}

/// A device that exited before the runner stopped it, with the end of its output.
fn ended_early(device: &mut DeviceProcess, log: &std::path::Path) -> Option<String> {
    device.exited().map(|status| {
        format!(
            "the device exited early ({status}); the end of its output ({}):\n{}",
            log.display(),
            crate::device::tail(log, 20)
        )
    })
}
