//! The named scenarios: each is a fault timeline against the cloud model, plus the incidents
//! whose recovery the report measures.

use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::cloud::HubDown;

/// The ten scenarios.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioName {
    /// The whole fleet boots at once with empty caches.
    ColdStart,
    /// IoT Central manual failover of hub-0 to hub-1, failing back when the TTL ends.
    Failover,
    /// hub-0 has an internal error: live connections drop, CONNECTs get CONNACK 3; DPS still
    /// assigns it.
    #[value(name = "hub-outage-500")]
    #[serde(rename = "hub-outage-500")]
    HubOutage500,
    /// hub-0 does not answer (connects time out); DPS still assigns it.
    HubUnreachable,
    /// A fraction of the fleet is disabled in its hub; DPS still assigns the same hub.
    DeviceDisabled,
    /// A fraction of the fleet is blocked by the operator (hub CONNACK 5, DPS `failed`).
    OperatorBlocked,
    /// Every device gets CONNACK 5 for a while.
    AuthBlip,
    /// DPS answers 503 for 30 min; at minute 5 the hubs drop every connection once.
    DpsOutagePlusHubBlip,
    /// The fleet's own network is down (every connect, hub or DPS, times out).
    UplinkLoss,
    /// Every device's token expires in the same minute (a fleet booted together).
    TokenWave,
}

impl ScenarioName {
    /// Every scenario, in report order.
    pub const ALL: [Self; 10] = [
        Self::ColdStart,
        Self::Failover,
        Self::HubOutage500,
        Self::HubUnreachable,
        Self::DeviceDisabled,
        Self::OperatorBlocked,
        Self::AuthBlip,
        Self::DpsOutagePlusHubBlip,
        Self::UplinkLoss,
        Self::TokenWave,
    ];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ColdStart => "cold-start",
            Self::Failover => "failover",
            Self::HubOutage500 => "hub-outage-500",
            Self::HubUnreachable => "hub-unreachable",
            Self::DeviceDisabled => "device-disabled",
            Self::OperatorBlocked => "operator-blocked",
            Self::AuthBlip => "auth-blip",
            Self::DpsOutagePlusHubBlip => "dps-outage-plus-hub-blip",
            Self::UplinkLoss => "uplink-loss",
            Self::TokenWave => "token-wave",
        }
    }
}

impl std::fmt::Display for ScenarioName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scenarios' durations and fractions. Every field is a CLI flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioParams {
    /// Steady state before the first fault (s).
    pub lead_secs: u64,
    /// `failover`: the manual failover's TTL (min), after which it fails back; 0: it never does.
    pub failover_ttl_mins: f64,
    /// `hub-outage-500` and `hub-unreachable`: how long the hub fails (min).
    pub hub_outage_mins: f64,
    /// `device-disabled` and `operator-blocked`: how long (min).
    pub device_fault_mins: f64,
    /// `device-disabled` and `operator-blocked`: the share of the fleet (percent).
    pub device_percent: f64,
    /// `auth-blip`: how long every device gets CONNACK 5 (min).
    pub auth_blip_mins: f64,
    /// `dps-outage-plus-hub-blip`: how long DPS answers 503 (min).
    pub dps_outage_mins: f64,
    /// `dps-outage-plus-hub-blip`: when, into the DPS outage, the hubs drop everything (min).
    pub blip_at_mins: f64,
    /// `uplink-loss`: how long the fleet's network is down (min).
    pub uplink_mins: f64,
    /// The run stops this long after the last fault step, recovered or not (min).
    pub horizon_mins: f64,
    /// A warm fleet's tokens were minted at times spread over this long before the timeline
    /// starts (s); default: the policy's renewal period, so renewals are spread evenly.
    pub token_age_spread_secs: Option<f64>,
}

impl Default for ScenarioParams {
    fn default() -> Self {
        Self {
            lead_secs: 60,
            failover_ttl_mins: 30.0,
            hub_outage_mins: 10.0,
            device_fault_mins: 60.0,
            device_percent: 1.0,
            auth_blip_mins: 2.0,
            dps_outage_mins: 30.0,
            blip_at_mins: 5.0,
            uplink_mins: 5.0,
            horizon_mins: 360.0,
            token_age_spread_secs: None,
        }
    }
}

/// A change to the cloud, at a point of the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Change {
    /// Incident `i` starts: its targets that are not connected count as affected.
    IncidentStart(usize),
    /// Incident `i`'s fault has cleared: recovery is measured from here.
    IncidentClear(usize),
    /// DPS moves the devices registered on `from` to `to`; `from` drops and refuses them.
    Failover { from: u8, to: u8 },
    /// DPS moves the devices that `Failover` moved back home; `to` drops and refuses them.
    Failback { from: u8, to: u8 },
    /// The hub starts failing this way (dropping its live connections), or recovers (`Up`).
    Hub(u8, HubDown),
    /// The subset is disabled in its hub (true) or enabled again.
    Disable(bool),
    /// The subset is blocked (true) or unblocked.
    Block(bool),
    /// Every hub refuses every CONNECT with CONNACK 5 (dropping live connections), or stops.
    AuthBlip(bool),
    /// DPS answers 503, or recovers.
    DpsOutage(bool),
    /// The fleet's network goes down (dropping every connection), or comes back.
    UplinkDown(bool),
    /// Every hub drops every live connection once.
    DropAll,
}

impl Change {
    /// A short label for charts.
    pub(crate) fn label(&self, incidents: &[Incident]) -> String {
        let name = |i: &usize| incidents.get(*i).map_or("?", |x| x.name);
        match self {
            Self::IncidentStart(i) => format!("{} starts", name(i)),
            Self::IncidentClear(i) => format!("{} clears", name(i)),
            Self::Failover { from, to } => format!("failover hub-{from} to hub-{to}"),
            Self::Failback { from, to } => format!("failback hub-{to} to hub-{from}"),
            Self::Hub(h, HubDown::Up) => format!("hub-{h} healthy"),
            Self::Hub(h, HubDown::Error500) => format!("hub-{h} internal error"),
            Self::Hub(h, HubDown::Unreachable) => format!("hub-{h} unreachable"),
            Self::Disable(on) => format!("subset {}", if *on { "disabled" } else { "enabled" }),
            Self::Block(on) => format!("subset {}", if *on { "blocked" } else { "unblocked" }),
            Self::AuthBlip(on) => format!("CONNACK 5 {}", if *on { "on" } else { "off" }),
            Self::DpsOutage(on) => format!("DPS 503 {}", if *on { "on" } else { "off" }),
            Self::UplinkDown(on) => format!("uplink {}", if *on { "down" } else { "up" }),
            Self::DropAll => String::from("hubs drop every connection"),
        }
    }
}

/// Which devices an incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The whole fleet.
    All,
    /// The devices DPS first allocated to this hub.
    Hub(u8),
    /// The scenario's subset (`device_percent` of the fleet).
    Subset,
}

/// What bounds an incident's recovery from below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Floor {
    /// Every affected device must pass DPS and then one hub's throttle.
    DpsThenHub,
    /// Every affected device must pass the throttle of the hubs it is spread over.
    Hubs,
}

/// An incident whose recovery the report measures.
#[derive(Debug, Clone)]
pub(crate) struct Incident {
    pub(crate) name: &'static str,
    pub(crate) target: Target,
    pub(crate) floor: Floor,
}

/// How the fleet is set up before the timeline starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    /// No device has started; the timeline boots them all at its start, caches empty.
    Cold,
    /// Every device is connected with a cached assignment, its token minted at a time spread
    /// over the policy's renewal period (so renewals are spread too).
    Warm,
    /// Connected, every token minted in the same minute before the timeline starts.
    WarmTogether,
}

/// A scenario made concrete.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) setup: Setup,
    /// Offsets from the timeline's start (ms), in order, with their change.
    pub(crate) steps: Vec<(u64, Change)>,
    pub(crate) incidents: Vec<Incident>,
    /// One line on what happens.
    pub(crate) what: String,
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "minutes of a scenario, clamped to be non-negative, far below 2^53 ms"
)]
pub(crate) fn mins(m: f64) -> u64 {
    (m.max(0.0) * 60_000.0).round() as u64
}

/// The plan for scenario `s`.
#[allow(
    clippy::too_many_lines,
    reason = "one arm per scenario: the function reads as the table of scenarios"
)]
pub(crate) fn plan(s: ScenarioName, p: &ScenarioParams) -> Plan {
    use Change::{IncidentClear as Clear, IncidentStart as Start};
    let lead = p.lead_secs * 1000;
    let one = |name, target, floor| {
        vec![Incident {
            name,
            target,
            floor,
        }]
    };
    let window = |on: Change, off: Change, dur: u64| {
        vec![
            (lead, Start(0)),
            (lead, on),
            (lead + dur, off),
            (lead + dur, Clear(0)),
        ]
    };
    let (setup, steps, incidents, what) = match s {
        ScenarioName::ColdStart => (
            Setup::Cold,
            vec![(0, Start(0)), (0, Clear(0))],
            one("cold-start", Target::All, Floor::DpsThenHub),
            String::from("the whole fleet boots at t=0 with empty caches"),
        ),
        ScenarioName::Failover => {
            let ttl = mins(p.failover_ttl_mins);
            let (a, b) = (0, 1);
            let mut steps = vec![
                (lead, Start(0)),
                (lead, Change::Failover { from: a, to: b }),
                (lead, Clear(0)),
            ];
            let mut incidents = vec![Incident {
                name: "failover",
                target: Target::Hub(a),
                floor: Floor::DpsThenHub,
            }];
            if ttl > 0 {
                steps.extend([
                    (lead + ttl, Start(1)),
                    (lead + ttl, Change::Failback { from: a, to: b }),
                    (lead + ttl, Clear(1)),
                ]);
                incidents.push(Incident {
                    name: "failback",
                    target: Target::Hub(a),
                    floor: Floor::DpsThenHub,
                });
            }
            (
                Setup::Warm,
                steps,
                incidents,
                format!(
                    "at {}s hub-0 fails over to hub-1 (manual failover, TTL {} min), then fails back",
                    p.lead_secs, p.failover_ttl_mins
                ),
            )
        }
        ScenarioName::HubOutage500 | ScenarioName::HubUnreachable => {
            let down = if s == ScenarioName::HubOutage500 {
                HubDown::Error500
            } else {
                HubDown::Unreachable
            };
            (
                Setup::Warm,
                window(
                    Change::Hub(0, down),
                    Change::Hub(0, HubDown::Up),
                    mins(p.hub_outage_mins),
                ),
                one(s.as_str(), Target::Hub(0), Floor::Hubs),
                format!(
                    "at {}s hub-0 {} for {} min; DPS keeps assigning it",
                    p.lead_secs,
                    if down == HubDown::Error500 {
                        "drops every connection and answers CONNACK 3"
                    } else {
                        "stops answering (connects time out)"
                    },
                    p.hub_outage_mins
                ),
            )
        }
        ScenarioName::DeviceDisabled | ScenarioName::OperatorBlocked => {
            let disabled = s == ScenarioName::DeviceDisabled;
            let (on, off) = if disabled {
                (Change::Disable(true), Change::Disable(false))
            } else {
                (Change::Block(true), Change::Block(false))
            };
            (
                Setup::Warm,
                window(on, off, mins(p.device_fault_mins)),
                one(s.as_str(), Target::Subset, Floor::Hubs),
                format!(
                    "at {}s {} % of the fleet is {} for {} min",
                    p.lead_secs,
                    p.device_percent,
                    if disabled {
                        "disabled in its hub (CONNACK 3; DPS keeps assigning the same hub)"
                    } else {
                        "blocked (hub CONNACK 5, DPS operation failed 400209)"
                    },
                    p.device_fault_mins
                ),
            )
        }
        ScenarioName::AuthBlip => (
            Setup::Warm,
            window(
                Change::AuthBlip(true),
                Change::AuthBlip(false),
                mins(p.auth_blip_mins),
            ),
            one("auth-blip", Target::All, Floor::Hubs),
            format!(
                "at {}s every hub drops every connection and answers CONNACK 5 for {} min",
                p.lead_secs, p.auth_blip_mins
            ),
        ),
        ScenarioName::DpsOutagePlusHubBlip => {
            let blip = lead + mins(p.blip_at_mins);
            (
                Setup::Warm,
                vec![
                    (lead, Change::DpsOutage(true)),
                    (blip, Start(0)),
                    (blip, Change::DropAll),
                    (blip, Clear(0)),
                    (lead + mins(p.dps_outage_mins), Change::DpsOutage(false)),
                ],
                one("hub-blip", Target::All, Floor::Hubs),
                format!(
                    "at {}s DPS answers 503 for {} min; {} min in, the hubs drop every connection once",
                    p.lead_secs, p.dps_outage_mins, p.blip_at_mins
                ),
            )
        }
        ScenarioName::UplinkLoss => (
            Setup::Warm,
            window(
                Change::UplinkDown(true),
                Change::UplinkDown(false),
                mins(p.uplink_mins),
            ),
            one("uplink-loss", Target::All, Floor::Hubs),
            format!(
                "at {}s the fleet's network goes down for {} min (connects time out)",
                p.lead_secs, p.uplink_mins
            ),
        ),
        ScenarioName::TokenWave => (
            Setup::WarmTogether,
            vec![(0, Start(0)), (mins(60.0), Clear(0))],
            one("token-wave", Target::All, Floor::Hubs),
            String::from(
                "every token was minted in the minute before t=0 (1 h lifetime): renewals and expiries come in one wave",
            ),
        ),
    };
    Plan {
        setup,
        steps,
        incidents,
        what,
    }
}

/// True when device `i` is in the scenario's subset of `percent` % of the fleet, spread evenly
/// over the indices (so over the hubs too).
pub(crate) fn in_subset(i: u32, percent: f64) -> bool {
    let p = (percent / 100.0).clamp(0.0, 1.0);
    let at = |k: u32| (f64::from(k) * p).floor();
    at(i + 1) > at(i)
}

/// The whole timeline's length (the last step's offset).
pub(crate) fn timeline_end(plan: &Plan) -> Duration {
    Duration::from_millis(plan.steps.iter().map(|(t, _)| *t).max().unwrap_or(0))
}

/// The timeline starts one token lifetime into virtual time, so that a warm fleet's tokens can
/// have been minted before it.
pub(crate) const T0: u64 = 3_600_000;

/// Whether device `first_home`/`subset` is one of the incident's targets.
pub(crate) fn targeted(target: Target, first_home: u8, subset: bool) -> bool {
    match target {
        Target::All => true,
        Target::Hub(h) => first_home == h,
        Target::Subset => subset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_is_the_share_asked_for() {
        let n = (0..10_000).filter(|&i| in_subset(i, 1.0)).count();
        assert_eq!(n, 100);
        assert_eq!((0..10_000).filter(|&i| in_subset(i, 100.0)).count(), 10_000);
        assert_eq!((0..10_000).filter(|&i| in_subset(i, 0.0)).count(), 0);
    }

    #[test]
    fn every_scenario_starts_and_clears_each_incident_in_order() {
        for s in ScenarioName::ALL {
            let plan = plan(s, &ScenarioParams::default());
            for i in 0..plan.incidents.len() {
                let at = |want: Change| plan.steps.iter().position(|(_, c)| *c == want);
                let start = at(Change::IncidentStart(i)).expect("a start");
                let clear = at(Change::IncidentClear(i)).expect("a clear");
                assert!(start < clear, "{s}: incident {i}");
            }
            assert!(plan.steps.windows(2).all(|w| w[0].0 <= w[1].0), "{s}");
        }
    }
}
