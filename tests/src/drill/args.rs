//! The drill's options and why it could not run.

use std::path::PathBuf;
use std::time::Duration;

use hubswap_spec::Config;

/// The drill's options; every number is a flag.
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 200)]
    pub devices: usize,
    /// DPS register requests accepted per (wall-clock) minute across the fleet.
    #[arg(long, default_value_t = 120)]
    pub registrations_per_minute: u32,
    /// The spec's delays are divided by this factor (clients and grading alike).
    #[arg(long, default_value_t = 60)]
    pub time_scale: u32,
    /// After scaling, the timing floors (the fast floor, the attempt spacing and the
    /// retry-after jitter) are kept at least this long, in milliseconds: a floor shorter than
    /// the grading tolerance is a rule that cannot fail.
    #[arg(long, default_value_t = 500)]
    pub min_floor_ms: u64,
    /// The clients' backoff (the three profiles, the attempt spacing and the retry-after
    /// jitter) is the spec's divided by this factor instead, while the grade keeps
    /// `--time-scale` and `--min-floor-ms`: a fleet tuned faster than the spec it is graded
    /// against (for example 100000: a fleet that retries at once).
    #[arg(long)]
    pub fleet_backoff_scale: Option<u32>,
    /// Telemetry interval per device, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub telemetry_interval_ms: u64,
    /// Devices whose token is expired in the token phase.
    #[arg(long, default_value_t = 10)]
    pub token_devices: usize,
    /// How long the blocked device stays blocked, in milliseconds.
    #[arg(long, default_value_t = 4000)]
    pub block_ms: u64,
    /// Devices disabled in the disable phase, and devices whose hub connection fails with
    /// internal errors in the internal-error phase.
    #[arg(long, default_value_t = 5)]
    pub faulty_devices: usize,
    /// How long devices stay disabled, and how long the internal errors last, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub hold_ms: u64,
    /// DPS 500 answers in the burst (applied just before the failback).
    #[arg(long, default_value_t = 20)]
    pub dps_errors: u32,
    /// DPS 429 answers (retry-after 1 s) in the same burst, on top of the quota's own.
    #[arg(long, default_value_t = 10)]
    pub dps_throttled: u32,
    /// Quiet time between phases, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// The longest a phase may take to recover, in seconds, before the drill moves on.
    #[arg(long, default_value_t = 240)]
    pub phase_timeout_secs: u64,
    /// How long the fleet gets to connect the first time, in seconds.
    #[arg(long, default_value_t = 120)]
    pub connect_timeout_secs: u64,
    /// Timing slack between the devices and the cloud when grading, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub tolerance_ms: u64,
    /// Where `report.json` and `report.html` go.
    #[arg(long, default_value = "hubswap-drill-out")]
    pub out_dir: PathBuf,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub no_progress_bar: bool,
    /// Fleet pacing (SPEC §4.1): the clients are told that half the fleet (one hub's worth)
    /// may move together under `registrations_per_minute`, and spread the DPS registrations
    /// that follow a hub failure over N/R plus 10 % (wall clock, not scaled).
    #[arg(long)]
    pub pace: bool,
}

impl Default for DrillArgs {
    fn default() -> Self {
        <Self as clap::FromArgMatches>::from_arg_matches(
            &<Self as clap::Args>::augment_args(clap::Command::new("drill"))
                .get_matches_from(["drill"]),
        )
        .unwrap_or_else(|_| unreachable!("the defaults parse"))
    }
}

impl DrillArgs {
    /// The spec config the clients run and are graded against.
    pub fn spec_config(&self) -> Config {
        let mut scaled = Config::default().scaled_down(self.time_scale.max(1));
        let min = Duration::from_millis(self.min_floor_ms);
        scaled.fast.floor = scaled.fast.floor.max(min);
        scaled.fast.cap = scaled.fast.cap.max(scaled.fast.floor);
        scaled.min_attempt_spacing = scaled.min_attempt_spacing.max(min);
        scaled.retry_after_jitter = scaled.retry_after_jitter.max(min);
        self.paced(scaled)
    }

    /// The spec config the fleet's clients run: the graded one, with the backoff of
    /// `--fleet-backoff-scale` when it is given.
    pub fn fleet_config(&self) -> Config {
        let mut c = self.spec_config();
        if let Some(f) = self.fleet_backoff_scale {
            let fast = Config::default().scaled_down(f.max(1));
            c.fast = fast.fast;
            c.slow = fast.slow;
            c.recheck = fast.recheck;
            c.min_attempt_spacing = fast.min_attempt_spacing;
            c.retry_after_jitter = fast.retry_after_jitter;
        }
        c
    }

    fn paced(&self, scaled: Config) -> Config {
        if !self.pace {
            return scaled;
        }
        // The throttle window is wall-clock time, so the spread is sized after scaling.
        let moving = u32::try_from(self.devices.div_ceil(2)).unwrap_or(u32::MAX);
        scaled.paced_for_fleet(moving, self.registrations_per_minute)
    }
}

/// Why the drill could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The options do not make sense.
    #[error("bad option: {0}")]
    Options(String),
    /// The mock cloud failed.
    #[error("mock cloud: {0}")]
    Cloud(#[from] hubswap_mock_cloud::Error),
    /// A client could not be built.
    #[error("client {device}: {reason}")]
    Client {
        /// The device.
        device: String,
        /// Why.
        reason: String,
    },
    /// The fleet did not connect in time.
    #[error("only {connected} of {devices} devices connected within {timeout:?}")]
    Connect {
        /// How many connected.
        connected: usize,
        /// The fleet size.
        devices: usize,
        /// The bound.
        timeout: Duration,
    },
    /// The cloud's observation log evicted records, so the report would judge part of the run.
    #[error(
        "the mock cloud's observation log overflowed ({dropped} records dropped); run fewer devices or a shorter story"
    )]
    LogOverflow {
        /// Records evicted from memory.
        dropped: u64,
    },
    /// A report file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

pub(super) fn check(a: &DrillArgs) -> Result<(), DrillError> {
    let bad = |s: &str| Err(DrillError::Options(s.to_owned()));
    if a.devices < 2 {
        return bad("--devices must be at least 2 (one hub each)");
    }
    if a.registrations_per_minute == 0 {
        return bad("--registrations-per-minute must be positive");
    }
    if a.token_devices >= a.devices {
        return bad("--token-devices must be below --devices");
    }
    if a.telemetry_interval_ms == 0 {
        return bad("--telemetry-interval-ms must be positive");
    }
    a.spec_config()
        .validate()
        .map_err(|e| DrillError::Options(format!("--time-scale gives an invalid config: {e}")))?;
    a.fleet_config().validate().map_err(|e| {
        DrillError::Options(format!(
            "--fleet-backoff-scale gives an invalid config: {e}"
        ))
    })
}
