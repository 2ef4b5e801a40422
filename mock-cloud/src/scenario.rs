//! Scenario files: repeatable fault drills as TOML, a list of timed steps. Each step is a
//! [`Fault`] table (tagged by `action`, exactly as `POST /api/faults` takes it) plus `at`, the
//! time from the start of the run:
//!
//! ```toml
//! name = "hub failover and failback"
//! hubs = 2                     # hubs of a built-in cloud (default 2)
//! devices = ["dev-1", "dev-7"] # registered through DPS allocation when the cloud lacks them
//! end = "40s"                  # keep running at least this long (default: the last step,
//!                              # plus the longest `for`/`ttl`, so timed faults end on their own)
//!
//! [[step]]                     # at 5s failover hub=hub-a to=hub-b
//! at = "5s"
//! action = "failover"
//! hub = "hub-a"
//! to = "hub-b"
//!
//! [[step]]                     # at 20s block device=dev-7 for=60s
//! at = "20s"
//! action = "block"
//! device = "dev-7"
//! for = "60s"
//!
//! [[step]]                     # at 30s dps-error status=500 count=3
//! at = "30s"
//! action = "dps-error"
//! status = 500
//! count = 3
//! ```
//!
//! Hub names that are not hubs of the cloud but look like `hub-a`, `hub-b`, ... stand for the
//! cloud's first, second, ... hub, so one file runs against the test layout
//! (`hub-0.localhost`) and the SDK layout (`127.0.0.3`) alike.
//!
//! `hubswap-mock-cloud scenario FILE` runs a file against a running cloud (`--admin-url` or
//! `--data-dir`) or, with neither, against a built-in one on ephemeral ports. `--time-scale S`
//! multiplies every time in the file (`at`, `end`, `for`, `ttl`, `delay`, `poll_window`), not
//! `retry_after` seconds.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::fault::{Fault, FaultId, duration};
use crate::{AdminClient, CloudHandle, Error, MockCloud};

/// A parsed scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it drills.
    pub description: String,
    /// Hubs of a built-in cloud.
    pub hubs: usize,
    /// Devices the steps need; registered through DPS allocation when missing.
    pub devices: Vec<String>,
    /// Run at least this long.
    pub end: Option<Duration>,
    /// The steps, in time order.
    pub steps: Vec<Step>,
}

/// One timed step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "two")]
    hubs: usize,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default, with = "duration::optional")]
    end: Option<Duration>,
    #[serde(default)]
    step: Vec<toml::Table>,
}

fn two() -> usize {
    2
}

impl Scenario {
    /// Parses a scenario file's text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let file: File =
            toml::from_str(text).map_err(|e| Error::InvalidRequest(format!("scenario: {e}")))?;
        let mut steps = Vec::new();
        for (i, mut table) in file.step.into_iter().enumerate() {
            let n = i + 1;
            let at = match table.remove("at") {
                Some(toml::Value::String(s)) => duration::parse(&s),
                Some(toml::Value::Integer(s)) => u64::try_from(s)
                    .map(Duration::from_secs)
                    .map_err(|e| e.to_string()),
                Some(toml::Value::Float(s)) => {
                    Duration::try_from_secs_f64(s).map_err(|e| e.to_string())
                }
                _ => Err("needs at = \"5s\"".to_owned()),
            }
            .map_err(|e| Error::InvalidRequest(format!("step {n}: {e}")))?;
            let fault = Fault::deserialize(toml::Value::Table(table))
                .map_err(|e| Error::InvalidRequest(format!("step {n}: {e}")))?;
            steps.push(Step { at, fault });
        }
        steps.sort_by_key(|s| s.at);
        Ok(Self {
            name: file.name,
            description: file.description,
            hubs: file.hubs.max(1),
            devices: file.devices,
            end: file.end,
            steps,
        })
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::File {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// When the run is over: `end`, or the last step plus the longest timed fault.
    pub fn length(&self) -> Duration {
        let last = self
            .steps
            .iter()
            .map(|s| s.at + s.fault.duration().unwrap_or_default())
            .max()
            .unwrap_or_default();
        self.end.unwrap_or_default().max(last)
    }

    /// Multiplies every time in the scenario by `factor` (not `retry_after` seconds).
    #[must_use]
    pub fn scaled(mut self, factor: f64) -> Self {
        let s = |d: &mut Duration| *d = d.mul_f64(factor);
        if let Some(e) = self.end.as_mut() {
            s(e);
        }
        for step in &mut self.steps {
            s(&mut step.at);
            step.fault.scale(factor);
        }
        self
    }
}

impl Fault {
    /// Multiplies the fault's times (`for`, `ttl`, `delay`, `poll_window`, injection times).
    pub fn scale(&mut self, factor: f64) {
        let s = |d: &mut Option<Duration>| {
            if let Some(d) = d.as_mut() {
                *d = d.mul_f64(factor);
            }
        };
        match self {
            Self::Failover(f) => s(&mut f.ttl),
            Self::HubDown(f) => s(&mut f.lifetime.duration),
            Self::Disable(f) | Self::Enable(f) => s(&mut f.lifetime.duration),
            Self::Block(f) => s(&mut f.lifetime.duration),
            Self::DpsError(f) => s(&mut f.lifetime.duration),
            Self::HubError(f) => s(&mut f.lifetime.duration),
            Self::Throttle(f) => {
                s(&mut f.lifetime.duration);
                s(&mut f.poll_window);
            }
            Self::Network(f) => {
                s(&mut f.lifetime.duration);
                s(&mut f.delay);
            }
            Self::Inject(f) => {
                s(&mut f.delay);
                s(&mut f.duration);
            }
            Self::Failback(_)
            | Self::HubRestore(_)
            | Self::ExpireToken(_)
            | Self::ClockOffset(_)
            | Self::Unblock(_)
            | Self::Options(_)
            | Self::Clear(_) => {}
        }
    }

    /// Replaces `hub-a`, `hub-b`, ... by the cloud's hubs, where they are not real hub names.
    fn resolve_hubs(&mut self, hubs: &[String]) {
        let resolve = |h: &mut String| {
            if hubs.contains(h) {
                return;
            }
            let letter = h.strip_prefix("hub-").filter(|l| l.len() == 1);
            if let Some(i) = letter
                .and_then(|l| l.bytes().next())
                .filter(u8::is_ascii_lowercase)
                .map(|b| usize::from(b - b'a'))
                && let Some(real) = hubs.get(i)
            {
                h.clone_from(real);
            }
        };
        let opt = |h: &mut Option<String>| {
            if let Some(h) = h.as_mut() {
                resolve(h);
            }
        };
        match self {
            Self::Failover(f) => {
                opt(&mut f.hub);
                resolve(&mut f.to);
            }
            Self::Failback(f) => opt(&mut f.hub),
            Self::HubDown(f) => resolve(&mut f.hub),
            Self::HubRestore(f) => resolve(&mut f.hub),
            Self::Disable(f) | Self::Enable(f) => opt(&mut f.hub),
            Self::HubError(f) => resolve(&mut f.hub),
            Self::Network(f) => opt(&mut f.hub),
            Self::ExpireToken(_)
            | Self::ClockOffset(_)
            | Self::Block(_)
            | Self::Unblock(_)
            | Self::DpsError(_)
            | Self::Throttle(_)
            | Self::Inject(_)
            | Self::Options(_)
            | Self::Clear(_) => {}
        }
    }
}

/// Where a scenario runs: a built-in cloud or a running one through its admin API.
pub trait Target {
    /// The cloud's hubs, in allocation order.
    fn hubs(&self) -> impl Future<Output = Result<Vec<String>, Error>>;
    /// Registers a device through DPS allocation unless it exists.
    fn ensure_device(&self, id: &str) -> impl Future<Output = Result<(), Error>>;
    /// Applies a fault.
    fn apply(&self, fault: Fault) -> impl Future<Output = Result<FaultId, Error>>;
}

impl Target for MockCloud {
    async fn hubs(&self) -> Result<Vec<String>, Error> {
        Ok(self.hub_hosts())
    }

    async fn ensure_device(&self, id: &str) -> Result<(), Error> {
        self.register_device(id, None).map(|_| ())
    }

    async fn apply(&self, fault: Fault) -> Result<FaultId, Error> {
        CloudHandle::apply(self, fault).await
    }
}

impl Target for AdminClient {
    async fn hubs(&self) -> Result<Vec<String>, Error> {
        let info = self.request("GET", "/api/info", None).await?;
        Ok(info["hubs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["host"].as_str().map(str::to_owned))
            .collect())
    }

    async fn ensure_device(&self, id: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "id": id });
        self.request("POST", "/api/devices/register", Some(&body))
            .await
            .map(|_| ())
    }

    async fn apply(&self, fault: Fault) -> Result<FaultId, Error> {
        let body = serde_json::to_value(&fault)?;
        let v = self.request("POST", "/api/faults", Some(&body)).await?;
        v["id"]
            .as_u64()
            .map(FaultId)
            .ok_or_else(|| Error::Admin(format!("no fault id in {v}")))
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// The step's index (from 1).
    pub step: usize,
    /// When it was due.
    pub at: Duration,
    /// When it was applied, from the start.
    pub applied_after: Duration,
    /// The fault, with hub names resolved.
    pub fault: Fault,
    /// Its id.
    pub id: FaultId,
}

/// Runs `scenario` against `target`: registers its devices, applies each step at its time,
/// then waits until [`Scenario::length`] (and until every timed fault's end, counted from when
/// it was applied) so timed faults end on their own. `on_step` sees each
/// step as it is applied. Stops at the first step the cloud refuses.
pub async fn run<T: Target>(
    scenario: &Scenario,
    target: &T,
    mut on_step: impl FnMut(&StepOutcome),
) -> Result<Vec<StepOutcome>, Error> {
    let hubs = target.hubs().await?;
    for d in &scenario.devices {
        target.ensure_device(d).await?;
    }
    let start = tokio::time::Instant::now();
    let mut end = start + scenario.length();
    let mut outcomes = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        tokio::time::sleep_until(start + step.at).await;
        let mut fault = step.fault.clone();
        fault.resolve_hubs(&hubs);
        let id = target.apply(fault.clone()).await.map_err(|e| {
            Error::InvalidRequest(format!("step {} ({}): {e}", i + 1, fault.action()))
        })?;
        let outcome = StepOutcome {
            step: i + 1,
            at: step.at,
            applied_after: start.elapsed(),
            fault,
            id,
        };
        if let Some(d) = outcome.fault.duration() {
            end = end.max(tokio::time::Instant::now() + d);
        }
        on_step(&outcome);
        outcomes.push(outcome);
    }
    tokio::time::sleep_until(end).await;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses_resolves_and_scales() {
        let s = Scenario::parse(
            r#"
            name = "x"
            devices = ["dev-7"]
            [[step]]
            at = "30s"
            action = "dps-error"
            status = 500
            count = 3
            [[step]]
            at = "5s"
            action = "failover"
            hub = "hub-a"
            to = "hub-b"
            [[step]]
            at = "20s"
            action = "block"
            device = "dev-7"
            for = "60s"
            "#,
        )
        .expect("parses");
        assert_eq!(
            s.steps.iter().map(|s| s.at.as_secs()).collect::<Vec<_>>(),
            [5, 20, 30]
        );
        assert_eq!(s.length(), Duration::from_secs(80));
        let mut f = s.steps[0].fault.clone();
        f.resolve_hubs(&["h0".into(), "h1".into()]);
        assert!(matches!(&f, Fault::Failover(x) if x.hub.as_deref() == Some("h0") && x.to == "h1"));
        let fast = s.scaled(0.01);
        assert_eq!(fast.length(), Duration::from_millis(800));
        assert!(Scenario::parse("[[step]]\naction = \"block\"\ndevice = \"d\"\n").is_err());
        assert!(Scenario::parse("[[step]]\nat = \"1s\"\naction = \"nope\"\n").is_err());
    }
}
