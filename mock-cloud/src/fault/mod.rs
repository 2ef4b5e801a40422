//! Faults: the cloud misbehaving on purpose, the way the real one does (spec/PROTOCOL.md §5, §6).
//!
//! One type, [`Fault`], describes every fault with its parameters. The same value is applied
//! from all four places: the Rust API ([`crate::CloudHandle::apply`]), the admin API
//! (`POST /api/faults`, the JSON form below), the CLI (`hubswap-mock-cloud fault <action>
//! --flags`, derived from the same structs) and scenario files (`[[step]]` tables, see
//! [`crate::scenario`]). In JSON and TOML a fault is a table tagged by `action`:
//!
//! ```toml
//! action = "failover"
//! hub = "hub-a"
//! to = "hub-b"
//! ttl = "5m"
//! ```
//!
//! Every fault applied, cleared, expired or used up is recorded in the observation log as an
//! [`crate::Event::Fault`] with all its parameters, so a trace shows cause and effect. Faults
//! with a duration (`for`, `ttl`) clear themselves; counted ones (`count`) clear when used up.
//!
//! | action | wire rendering (default) | option that changes it |
//! | --- | --- | --- |
//! | `failover` | DPS assigns `to`; the old hub drops the live connection with no MQTT packet and answers reconnects with CONNACK 3 | `ttl` fails back automatically; `options --disabled-connack 5` |
//! | `failback` | DPS assigns the original hub again; the failover hub drops and refuses (CONNACK 3) | — |
//! | `hub-down` `refuse` | TCP accepted, then reset (RST) at once; logged `hub_refused` | `refuse_at = "connect"`: TLS and CONNECT first, then RST (attributable to the device) |
//! | `hub-down` `blackhole` | TCP accepted, nothing ever answered; logged `hub_refused` at accept; live connections go silent | — |
//! | `hub-down` `closed` | the listener is closed: the kernel answers RST (ECONNREFUSED); **invisible to the log** | — |
//! | `hub-down` `name-gone` | DPS hands out `name` (default `{hub}.gone.invalid`), which resolves nowhere; the listener is closed | `name` |
//! | `expire-token` | the device's current SAS token counts as expired: live connection dropped, CONNACK 5 when reused | `options --expired-connack` |
//! | `clock-offset` | the cloud's clock moves; tokens whose `se` is now past drop live and get CONNACK 5 | `options --token-grace-secs`, `--drop-on-expiry` |
//! | `disable` | live connection on the hub dropped (no packet); reconnects CONNACK 3 | `options --disabled-connack 5` |
//! | `block` | live connection dropped; hub CONNACK 5; DPS operation `failed` with `errorCode` 400209 | `options --blocked-dps unauthorized` (DPS 401); `--blocked-connack` |
//! | `dps-error` | DPS answers `status` (500) with a JSON error body over REST and `res/{status}` over MQTT | `status`, `error_code`, `retry_after`, `transport`, `request`, `device`, `count`, `for` |
//! | `hub-error` `connack` | CONNACK `code` (3) | `code`, `count`, `for`, `device` |
//! | `hub-error` `drop` | live connections dropped; new ones dropped right after CONNACK 0 | `count`, `for`, `device` |
//! | `hub-error` `twin` | twin GET and PATCH answered `$iothub/twin/res/{status}` (500) | `status`, `count`, `for`, `device` |
//! | `throttle` | DPS registrations over the per-minute limit, or polls over `polls` per `poll_window`, get 429 with `retry-after` (`errorCode` 429001) | `registrations_per_minute`, `polls`, `poll_window`, `retry_after` |
//! | `network` `drop` / `reset` | live connections closed with FIN / RST, no MQTT packet; with `for`, new ones too, right after CONNACK | `device` or `hub`, `for` |
//! | `network` `delay` | every packet to the device (hub and DPS MQTT, DPS HTTPS answers) sent `delay` late | `delay`, `for` |
//! | `network` `hold-connack` | CONNECT read, CONNACK sent only after `delay` (or never while active) | `delay`, `for` |
//! | `network` `blackhole` | a device: after CONNECT nothing is answered (logged `hub_refused`, `dps_dropped`); a hub: as `hub-down blackhole` | `for` |
//! | `inject` (and telemetry with `AzIoTHub_FaultOperationType`) | no PUBACK for the trigger; after `delay`: `KillTcp` RST, `ShutDownMqtt` TLS close_notify + FIN, `Invoke*` drop; reconnects succeed | `options --inject-puback true`; `--inject-strict true` refuses reconnects for `duration` (CONNACK 3 throttling/quota, 5 auth) |

mod devices;
pub mod duration;
mod errors;
mod lifetime;
mod options;

use std::time::Duration;

use clap::{Args, Subcommand};
use hubswap_spec::Millis;
use serde::{Deserialize, Serialize};

pub use devices::{
    Block, ClockOffset, DeviceArg, DeviceOnHub, ExpireToken, Failback, Failover, HubArg, HubDown,
    OutageMode, RefuseAt,
};
pub use errors::{
    DpsError, HubError, HubErrorMode, Inject, InjectKind, Network, NetworkMode, RequestFilter,
    Throttle, TransportFilter,
};
pub use lifetime::Lifetime;
pub use options::{BlockedDps, FaultOptions, OptionsPatch};

/// Identifies an active fault (to clear it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(pub u64);

impl std::str::FromStr for FaultId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl std::fmt::Display for FaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A fault, or a control that ends one, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Subcommand)]
#[serde(tag = "action", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Fault {
    /// Fail devices over to another hub: DPS assigns the new hub, the old one drops them and
    /// refuses them with CONNACK 3 (IoT Central manual failover).
    Failover(Failover),
    /// Move failed-over devices back to their original hub.
    Failback(Failback),
    /// Make a hub unreachable: refuse (reset), blackhole, close its listener, or let its name go.
    HubDown(HubDown),
    /// Bring a hub back after `hub-down`.
    HubRestore(HubArg),
    /// Invalidate a device's current SAS token (drops it; CONNACK 5 when reused); with
    /// `--until-reprovisioned`, every token until the device registers with DPS again.
    ExpireToken(ExpireToken),
    /// Shift the cloud's clock (simulated clock skew): tokens are judged on the shifted clock.
    ClockOffset(ClockOffset),
    /// Disable a device on a hub: live connection dropped, reconnects refused (CONNACK 3).
    Disable(DeviceOnHub),
    /// Enable a device on a hub again.
    Enable(DeviceOnHub),
    /// Block a device as an IoT Central operator (CONNACK 5; DPS `failed` 400209).
    Block(Block),
    /// Unblock a device; it gets back its previous state.
    Unblock(DeviceArg),
    /// Make DPS answer with an error status (500 by default) over REST and MQTT.
    DpsError(DpsError),
    /// Make a hub fail internally: refuse CONNECTs, drop connections, or fail twin requests.
    HubError(HubError),
    /// Throttle DPS: registrations per minute and operation polls per window get 429.
    Throttle(Throttle),
    /// Network trouble for one device or a whole hub: drop, reset, delay, hold CONNACK, blackhole.
    Network(Network),
    /// Fire an IoT Hub fault-injection fault on a device's connection (as its telemetry would).
    Inject(Inject),
    /// Change how unconfirmed conditions are rendered (CONNACK codes, DPS block answer, ...).
    Options(OptionsPatch),
    /// Clear one active fault by id, or all of them.
    Clear(Clear),
}

/// Which faults to clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Clear {
    /// One fault by id; none clears every active fault.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FaultId>,
}

/// An active fault, as listed by the control APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Its id.
    pub id: FaultId,
    /// The fault.
    pub fault: Fault,
    /// When it was applied (cloud milliseconds).
    pub applied_at: Millis,
    /// When it ends by itself, if it does.
    pub until: Option<Millis>,
    /// Uses left, for counted faults.
    pub remaining: Option<u32>,
}

impl Fault {
    /// The `action` name, as in JSON and scenario files.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Failover(_) => "failover",
            Self::Failback(_) => "failback",
            Self::HubDown(_) => "hub-down",
            Self::HubRestore(_) => "hub-restore",
            Self::ExpireToken(_) => "expire-token",
            Self::ClockOffset(_) => "clock-offset",
            Self::Disable(_) => "disable",
            Self::Enable(_) => "enable",
            Self::Block(_) => "block",
            Self::Unblock(_) => "unblock",
            Self::DpsError(_) => "dps-error",
            Self::HubError(_) => "hub-error",
            Self::Throttle(_) => "throttle",
            Self::Network(_) => "network",
            Self::Inject(_) => "inject",
            Self::Options(_) => "options",
            Self::Clear(_) => "clear",
        }
    }

    /// How long it lasts before it clears itself, if it does.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Self::Failover(f) => f.ttl,
            Self::HubDown(f) => f.lifetime.duration,
            Self::Disable(f) | Self::Enable(f) => f.lifetime.duration,
            Self::Block(f) => f.lifetime.duration,
            Self::DpsError(f) => f.lifetime.duration,
            Self::HubError(f) => f.lifetime.duration,
            Self::Throttle(f) => f.lifetime.duration,
            Self::Network(f) => f.lifetime.duration,
            Self::Failback(_)
            | Self::HubRestore(_)
            | Self::ExpireToken(_)
            | Self::ClockOffset(_)
            | Self::Unblock(_)
            | Self::Inject(_)
            | Self::Options(_)
            | Self::Clear(_) => None,
        }
    }

    /// How many uses it has before it clears itself, if counted.
    pub fn count(&self) -> Option<u32> {
        match self {
            Self::DpsError(f) => f.count,
            Self::HubError(f) => f.count,
            Self::Network(f) => f.count,
            Self::Failover(_)
            | Self::Failback(_)
            | Self::HubDown(_)
            | Self::HubRestore(_)
            | Self::ExpireToken(_)
            | Self::ClockOffset(_)
            | Self::Disable(_)
            | Self::Enable(_)
            | Self::Block(_)
            | Self::Unblock(_)
            | Self::Throttle(_)
            | Self::Inject(_)
            | Self::Options(_)
            | Self::Clear(_) => None,
        }
    }

    /// The device the fault is about, when it names exactly one.
    pub fn device(&self) -> Option<&str> {
        match self {
            Self::Failover(f) => f.device.as_deref(),
            Self::Failback(f) => f.device.as_deref(),
            Self::ExpireToken(f) => Some(&f.device),
            Self::Unblock(f) => Some(&f.device),
            Self::Disable(f) | Self::Enable(f) => Some(&f.device),
            Self::Block(f) => Some(&f.device),
            Self::Inject(f) => Some(&f.device),
            Self::DpsError(f) => f.device.as_deref(),
            Self::HubError(f) => f.device.as_deref(),
            Self::Network(f) => f.device.as_deref(),
            Self::HubDown(_)
            | Self::HubRestore(_)
            | Self::ClockOffset(_)
            | Self::Throttle(_)
            | Self::Options(_)
            | Self::Clear(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI's `fault` subcommand.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        fault: Fault,
    }

    #[test]
    fn faults_read_from_json_and_toml_tables_tagged_by_action() {
        let f: Fault =
            serde_json::from_str(r#"{"action":"failover","hub":"hub-a","to":"hub-b","ttl":"5m"}"#)
                .expect("failover");
        assert_eq!(
            f,
            Fault::Failover(Failover {
                hub: Some("hub-a".into()),
                to: "hub-b".into(),
                ttl: Some(Duration::from_mins(5)),
                ..Failover::default()
            })
        );
        let f: Fault = toml::from_str("action = \"block\"\ndevice = \"dev-7\"\nfor = \"60s\"\n")
            .expect("block");
        assert_eq!(f.duration(), Some(Duration::from_mins(1)));
        let f: Fault =
            toml::from_str("action = \"dps-error\"\nstatus = 500\ncount = 3\n").expect("dps");
        assert_eq!(f.count(), Some(3));
        let back: Fault =
            serde_json::from_value(serde_json::to_value(&f).expect("json")).expect("round trip");
        assert_eq!(back, f);
        assert!(
            serde_json::from_str::<Fault>(r#"{"action":"block","device":"d","fro":"1s"}"#).is_err(),
            "typos are refused"
        );
        assert!(serde_json::from_str::<Fault>(r#"{"action":"explode"}"#).is_err());
    }

    #[test]
    fn the_flattened_lifetime_keeps_the_for_key_and_flag() {
        let block = Fault::Block(Block {
            device: "dev-7".into(),
            lifetime: Lifetime::lasting(Duration::from_mins(1)),
        });
        assert_eq!(
            serde_json::to_value(&block).expect("json"),
            serde_json::json!({"action": "block", "device": "dev-7", "for": "60s"})
        );
        let dps: Fault =
            serde_json::from_str(r#"{"action":"dps-error","status":503,"count":2,"for":"5s"}"#)
                .expect("dps-error");
        assert_eq!(
            (dps.count(), dps.duration()),
            (Some(2), Some(Duration::from_secs(5)))
        );
        assert!(
            serde_json::from_str::<Fault>(r#"{"action":"block","device":"d","count":1}"#).is_err(),
            "a fault without a count takes none"
        );
        let cli = <Cli as clap::Parser>::try_parse_from([
            "x",
            "dps-error",
            "--count",
            "3",
            "--for",
            "2m",
        ])
        .expect("parses");
        assert_eq!(
            (cli.fault.count(), cli.fault.duration()),
            (Some(3), Some(Duration::from_mins(2)))
        );
        assert!(
            <Cli as clap::Parser>::try_parse_from(["x", "block", "--device", "d", "--count", "1"])
                .is_err()
        );
    }

    #[test]
    fn the_cli_parses_the_same_structs() {
        let cli = <Cli as clap::Parser>::try_parse_from([
            "x", "failover", "--hub", "hub-a", "--to", "hub-b", "--ttl", "90s",
        ])
        .expect("parses");
        assert_eq!(cli.fault.duration(), Some(Duration::from_secs(90)));
        let cli = <Cli as clap::Parser>::try_parse_from([
            "x",
            "inject",
            "--device",
            "d",
            "--kind",
            "ShutDownMqtt",
        ])
        .expect("parses");
        assert!(matches!(
            cli.fault,
            Fault::Inject(Inject {
                kind: InjectKind::ShutDownMqtt,
                ..
            })
        ));
        let cli = <Cli as clap::Parser>::try_parse_from(["x", "clock-offset", "--secs", "-600"])
            .expect("negative offsets");
        assert_eq!(cli.fault, Fault::ClockOffset(ClockOffset { secs: -600 }));
    }
}
