//! The fleet failover drill: a mock cloud with two hubs and a throttled DPS, a fleet of
//! hubswap clients in this process sending telemetry, an IoT Central-style story of faults, live
//! progress, and a recovery report (terminal, `report.json`, `report.html`).
//!
//! ```text
//! cargo run --release -p hubswap-conformance -- drill
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`fleet`] | the clients: start, telemetry senders, delivery accounting, shutdown |
//! | [`story`] | the phases: failover, block and unblock, token expiry, DPS 500s and failback |
//! | [`progress`] | live progress (indicatif on a terminal, plain lines otherwise) |
//! | [`analysis`] | what the cloud's log says: recovery times, DPS and connection counts, timeline |
//! | [`report`] | the report: terminal text and JSON |
//! | [`html`] | the self-contained HTML report with a plotters timeline chart |
//!
//! Time is compressed: the clients run `hubswap_spec::Config::default().scaled_down(time_scale)`
//! and are graded against the same config. DPS throttling is the mock's `throttle` fault, a
//! sliding one-minute window of `registrations_per_minute` register requests (wall-clock time,
//! not scaled), applied once the fleet is connected. With `--pace` the clients also get fleet
//! pacing (SPEC §4.1) sized for one hub's worth of devices under that quota.

pub mod analysis;
mod args;
pub mod fleet;
pub mod html;
pub mod progress;
pub mod report;
pub mod story;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hubswap_mock_cloud::fault::Throttle;
use hubswap_mock_cloud::{CloudConfig, Fault, MockCloud};

pub use args::{DrillArgs, DrillError};
pub use report::DrillReport;

use args::check;

/// Runs the drill and returns its report; the files are written by [`write_files`].
pub async fn run(a: &DrillArgs) -> Result<DrillReport, DrillError> {
    check(a)?;
    let started = Instant::now();
    let config = a.spec_config();
    let mut cloud_cfg = CloudConfig::for_tests(2);
    cloud_cfg.admin = None;
    let cloud = MockCloud::start(cloud_cfg).await?;
    let fleet = fleet::Fleet::start(&cloud, a, &a.fleet_config())?;
    let progress = progress::Progress::start(&cloud, &fleet, a.no_progress_bar);
    let outcome = drive(&cloud, &fleet, &progress, a).await;
    let stats = fleet.finish(&cloud).await;
    progress.finish();
    let records = cloud.log().records();
    let dropped = cloud.log().dropped();
    cloud.shutdown().await;
    let phases = outcome?;
    if dropped > 0 {
        return Err(DrillError::LogOverflow { dropped });
    }
    Ok(report::build(
        a,
        &config,
        &records,
        &phases,
        &stats,
        started.elapsed(),
    ))
}

async fn drive(
    cloud: &MockCloud,
    fleet: &fleet::Fleet,
    progress: &progress::Progress,
    a: &DrillArgs,
) -> Result<Vec<story::PhaseRun>, DrillError> {
    progress.set_phase("connecting");
    let timeout = Duration::from_secs(a.connect_timeout_secs);
    let connected = story::wait_all_connected(cloud, &fleet.ids, 0, timeout).await;
    if connected < fleet.ids.len() {
        return Err(DrillError::Connect {
            connected,
            devices: fleet.ids.len(),
            timeout,
        });
    }
    cloud
        .apply(Fault::Throttle(Throttle {
            registrations_per_minute: Some(a.registrations_per_minute),
            ..Throttle::default()
        }))
        .await?;
    story::play(cloud, fleet, progress, a).await
}

/// Writes `report.json` and `report.html` into `--out-dir`; returns their paths.
pub fn write_files(a: &DrillArgs, r: &DrillReport) -> Result<(PathBuf, PathBuf), DrillError> {
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| DrillError::Io { path, source }
    };
    std::fs::create_dir_all(&a.out_dir).map_err(io(&a.out_dir))?;
    let json = a.out_dir.join("report.json");
    std::fs::write(&json, r.to_json()).map_err(io(&json))?;
    let html = a.out_dir.join("report.html");
    std::fs::write(&html, html::render(r)).map_err(io(&html))?;
    Ok((json, html))
}
