//! The fleet simulator: what a retry policy costs a fleet of 1,000 to 1,000,000 devices, in
//! virtual time.
//!
//! # Architecture
//!
//! ```text
//!   scenario (fault timeline) ──► engine: one event queue in virtual ms ◄── cloud model
//!                                   │  per device: Policy::step(state, input, env)   (DPS quotas,
//!                                   │  (hubswap: hubswap_spec::step itself)           hub throttles,
//!                                   ▼                                                 renderings)
//!                                 stats (per-second bins, per-device counts, incidents)
//!                                   ▼
//!                                 report: terminal, JSON, HTML (plotters)
//! ```
//!
//! - [`policy`]: the [`Policy`] trait. Every policy speaks the spec's vocabulary (inputs in,
//!   actions out, time and a random draw handed in). hubswap's policy is `hubswap_spec::step`;
//!   [`emulation`] holds the labelled emulations of the official SDKs and samples.
//! - [`cloud`]: DPS (separate sliding-minute register and poll quotas, the per-device poll limit,
//!   the 202 → poll flow with `retry-after`, 429 with the seconds until a slot frees, latency,
//!   503 outages, allocation round-robin over the hubs) and the hubs (a new-connection throttle
//!   whose queue is bounded, beyond which CONNACK 3; the mock cloud's renderings of every
//!   condition; token expiry on the hub's clock).
//! - [`scenario`]: the ten named scenarios as fault timelines, and the incidents whose recovery
//!   is measured.
//! - The engine pops one event at a time; ties are broken by insertion order and every random
//!   draw comes from a seeded stream (one per device, one for the cloud), so the same seed gives
//!   the same report, byte for byte.
//!
//! # How it differs from the sockets, systematically
//!
//! `tests/tests/sim_agreement.rs` runs the same small scenarios here and against the mock cloud
//! with real hubswap clients on loopback, and compares DPS registrations, hub attempts and
//! recovery. The differences it tolerates have these causes:
//!
//! - **Latency is lumped.** A request's whole round trip is spent before the server looks at it
//!   and the answer arrives at once; on sockets the server decides half-way. Faults that start
//!   while a request is in flight can land on the other side of it.
//! - **No processing cost.** The mock's TLS handshakes, SAS checks and log writes take CPU on a
//!   2-core machine; the model's latency is a uniform draw. Recovery on sockets is later by
//!   roughly one handshake per device queued behind others.
//! - **Timer granularity.** The client's tokio timers fire up to a millisecond late and the
//!   driver reads the clock once per turn; the engine fires timers exactly.
//! - **Drops are instant.** A hub that drops its connections does so for every device in the
//!   same virtual millisecond; on sockets the device sees the FIN or RST a little later, one
//!   by one.
//! - **Operations.** The mock decides a registration's outcome when it is admitted and answers
//!   the first poll with it (`assign_ms` = 0 reproduces that); the default model takes 1.5 s,
//!   like the real DPS, so one extra poll is normal.
//!
//! Memory is one policy state and one engine record per device plus the queue (measured by
//! `cargo bench -p hubswap-conformance --bench fleet_sim`).

pub mod cli;
pub mod cloud;
mod emulated;
pub mod emulation;
mod engine;
pub mod html;
pub mod policy;
mod policy_name;
mod queue;
pub mod report;
pub mod scenario;
mod stats;

use std::time::Duration;

use hubswap_spec::{Config, ConfigError};

pub use cloud::CloudParams;
pub use emulated::Emulated;
pub use policy::{Hubswap, Policy, PolicyInfo};
pub use policy_name::PolicyName;
pub use report::SimReport;
pub use scenario::{ScenarioName, ScenarioParams};

/// A duration in whole milliseconds.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why a simulation cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The spec config is not valid.
    #[error("the spec config is invalid: {0}")]
    Config(#[from] ConfigError),
    /// The fleet is empty.
    #[error("a fleet needs at least one device")]
    NoDevices,
    /// Failover needs somewhere to go.
    #[error("scenario {0} needs at least 2 hubs")]
    TooFewHubs(ScenarioName),
    /// A quota or rate is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
}

/// One simulation to run.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// The scenario.
    pub scenario: ScenarioName,
    /// The policy every device runs.
    pub policy: PolicyName,
    /// Fleet size.
    pub devices: u32,
    /// The seed of every random stream.
    pub seed: u64,
    /// The cloud model.
    pub cloud: CloudParams,
    /// The scenario's parameters.
    pub params: ScenarioParams,
    /// hubswap's config (`hubswap-paced` adds fleet pacing to it).
    pub spec: Config,
}

impl SimRequest {
    /// `scenario` × `policy` for `devices`, everything else at its default.
    pub fn new(scenario: ScenarioName, policy: PolicyName, devices: u32) -> Self {
        Self {
            scenario,
            policy,
            devices,
            seed: 1,
            cloud: CloudParams::default(),
            params: ScenarioParams::default(),
            spec: Config::default(),
        }
    }

    fn check(&self) -> Result<(), SimError> {
        if self.devices == 0 {
            return Err(SimError::NoDevices);
        }
        if self.scenario == ScenarioName::Failover && self.cloud.hubs < 2 {
            return Err(SimError::TooFewHubs(self.scenario));
        }
        for (name, v) in [
            ("hubs", u32::from(self.cloud.hubs)),
            (
                "registrations per minute",
                self.cloud.registrations_per_minute,
            ),
            ("polls per minute", self.cloud.polls_per_minute),
            ("polls per device", self.cloud.polls_per_device),
            (
                "hub connects per second",
                self.cloud.hub_connects_per_second,
            ),
        ] {
            if v == 0 {
                return Err(SimError::Zero(name));
            }
        }
        self.spec.validate()?;
        Ok(())
    }

    /// The config `hubswap-paced` runs: pacing sized for the devices of one hub under the
    /// register quota.
    pub fn paced_config(&self) -> Config {
        let per_hub = self.devices.div_ceil(u32::from(self.cloud.hubs.max(1)));
        self.spec
            .clone()
            .paced_for_fleet(per_hub, self.cloud.registrations_per_minute)
    }
}

/// Runs one simulation; `progress` is told the simulated seconds now and then.
pub fn simulate(req: &SimRequest, progress: &mut dyn FnMut(u64)) -> Result<SimReport, SimError> {
    req.check()?;
    if let Some(e) = req.policy.emulation() {
        return Ok(run_with(&e, None, req, progress));
    }
    let (config, name) = if req.policy == PolicyName::HubswapPaced {
        (req.paced_config(), "hubswap-paced")
    } else {
        (req.spec.clone(), "hubswap")
    };
    config.validate()?;
    let p = Hubswap {
        config: config.clone(),
        name,
    };
    Ok(run_with(&p, Some(config), req, progress))
}

fn run_with<P: Policy>(
    policy: &P,
    spec_config: Option<Config>,
    req: &SimRequest,
    progress: &mut dyn FnMut(u64),
) -> SimReport {
    let plan = scenario::plan(req.scenario, &req.params);
    let mut engine = engine::Engine::new(
        policy,
        &req.cloud,
        &req.params,
        &plan,
        req.devices,
        req.seed,
    );
    engine.run(scenario::mins(req.params.horizon_mins), progress);
    report::build(&report::Run {
        scenario: req.scenario,
        plan: &plan,
        policy: policy.info(),
        spec_config,
        seed: req.seed,
        cloud: &req.cloud,
        params: &req.params,
        stats: &engine.stats,
        devs: &engine.devs,
    })
}
