//! Faults: the cloud misbehaving on purpose, the way the real one does (protocol.md §5, §6).
//!
//! One type, [`Fault`], describes every fault with its parameters. The same value is applied
//! from all four places: the Rust API ([`crate::MockCloud::apply`]), the admin API
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

mod apply;
pub mod duration;
pub(crate) mod state;
mod throttle;

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use hubswap_spec::Millis;
use serde::{Deserialize, Serialize};

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
    /// Invalidate a device's current SAS token (drops it; CONNACK 5 when reused).
    ExpireToken(DeviceArg),
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

/// Devices to fail over: one, several, or every device of a hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// One device.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Several devices (comma-separated on the command line).
    #[arg(long, value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Every device currently assigned to this hub (the hub also leaves DPS allocation).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// The hub to move them to.
    #[arg(long)]
    pub to: String,
    /// Fail back automatically after this long (`az iot central device manual-failover --ttl-minutes`).
    #[arg(long, alias = "for", value_parser = duration::parse)]
    #[serde(
        default,
        alias = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub ttl: Option<Duration>,
}

/// Devices to fail back; none given means every failed-over device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Failback {
    /// One device.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Several devices.
    #[arg(long, value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Every device that was failed over away from this hub.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
}

/// How a hub is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OutageMode {
    /// Accept TCP, then reset it at once (logged as `hub_refused`).
    #[default]
    Refuse,
    /// Accept TCP and never answer (logged as `hub_refused` at accept).
    Blackhole,
    /// Close the listener: the kernel refuses; nothing reaches the log.
    Closed,
    /// DPS hands out a host name that resolves nowhere; the listener is closed.
    NameGone,
}

/// When a refusing hub resets the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RefuseAt {
    /// Right after TCP accept (the device is unknown in the log).
    #[default]
    Accept,
    /// After the TLS handshake and CONNECT, before CONNACK (the device is known).
    Connect,
}

/// A hub outage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct HubDown {
    /// The hub.
    #[arg(long)]
    pub hub: String,
    /// How it is unreachable.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub mode: OutageMode,
    /// For `refuse`: reset at TCP accept or after CONNECT.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub refuse_at: RefuseAt,
    /// For `name-gone`: the host DPS hands out (default `{hub}.gone.invalid`).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Restore automatically after this long.
    #[arg(long = "for", value_parser = duration::parse)]
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
}

/// A hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct HubArg {
    /// The hub.
    #[arg(long)]
    pub hub: String,
}

/// A device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct DeviceArg {
    /// The device.
    #[arg(long)]
    pub device: String,
}

/// The cloud's clock offset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct ClockOffset {
    /// Seconds added to the cloud's Unix clock (negative: the cloud runs behind).
    #[arg(long, allow_hyphen_values = true)]
    pub secs: i64,
}

/// A device on one hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct DeviceOnHub {
    /// The device.
    #[arg(long)]
    pub device: String,
    /// The hub (default: the one DPS assigns it).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// Undo automatically after this long.
    #[arg(long = "for", value_parser = duration::parse)]
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
}

/// An operator block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// The device.
    #[arg(long)]
    pub device: String,
    /// Unblock automatically after this long.
    #[arg(long = "for", value_parser = duration::parse)]
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
}

/// Which DPS transport a DPS fault hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TransportFilter {
    /// MQTT and HTTPS.
    #[default]
    Any,
    /// `$dps/registrations/...` over MQTT only.
    Mqtt,
    /// REST over HTTPS only.
    Https,
}

/// Which DPS requests a DPS fault hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RequestFilter {
    /// Register and poll.
    #[default]
    Any,
    /// Register requests only.
    Register,
    /// Operation-status polls only.
    Poll,
}

/// DPS error answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct DpsError {
    /// The HTTP-like status.
    #[arg(long, default_value_t = 500)]
    #[serde(default = "status_500")]
    pub status: u16,
    /// The body's `errorCode` (default `status * 1000`, e.g. 500000).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// A `retry-after` to send with it, in seconds.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    /// Only this transport.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub transport: TransportFilter,
    /// Only these requests.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub request: RequestFilter,
    /// Only this registration id.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Answer this many requests, then clear.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Clear after this long.
    #[arg(long = "for", value_parser = duration::parse)]
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
}

fn status_500() -> u16 {
    500
}

impl Default for DpsError {
    fn default() -> Self {
        Self {
            status: 500,
            error_code: None,
            retry_after: None,
            transport: TransportFilter::Any,
            request: RequestFilter::Any,
            device: None,
            count: None,
            duration: None,
        }
    }
}

/// How a hub fails internally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HubErrorMode {
    /// Refuse CONNECT with CONNACK `code`.
    #[default]
    Connack,
    /// Drop live connections, and new ones right after CONNACK 0.
    Drop,
    /// Answer twin GET and PATCH with `res/{status}`.
    Twin,
}

/// An internal error on a hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct HubError {
    /// The hub.
    #[arg(long)]
    pub hub: String,
    /// What fails.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub mode: HubErrorMode,
    /// For `connack`: the CONNACK code (default 3, server unavailable).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    /// For `twin`: the status on `$iothub/twin/res/{status}` (default 500).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Only this device.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Hit this many CONNECTs, connections or twin requests, then clear.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Clear after this long.
    #[arg(long = "for", value_parser = duration::parse)]
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
}

/// DPS throttling (real DPS: 1,000 registrations per minute, 5 polls per 10 s per device).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Register requests allowed per minute, across all devices.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrations_per_minute: Option<u32>,
    /// Operation polls allowed per device per `poll_window`.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polls: Option<u32>,
    /// The poll window (default 10 s).
    #[arg(long, value_parser = duration::parse)]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub poll_window: Option<Duration>,
    /// A fixed `retry-after` in seconds (default: until the window frees a slot).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    /// Clear after this long.
    #[arg(long = "for", value_parser = duration::parse)]
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
}

/// What a network fault does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// Close the TCP connection (FIN), no MQTT or TLS goodbye.
    #[default]
    Drop,
    /// Reset the TCP connection (RST).
    Reset,
    /// Send every packet `delay` late.
    Delay,
    /// Hold CONNACK for `delay` (for as long as the fault lasts without one).
    HoldConnack,
    /// Never answer.
    Blackhole,
}

/// A network fault for one device or one hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The device (on every hub and on DPS).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The hub (every connection on it).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// What happens.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub mode: NetworkMode,
    /// For `delay` and `hold-connack`: how long.
    #[arg(long, value_parser = duration::parse)]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub delay: Option<Duration>,
    /// Hit this many connections, then clear (`drop`, `reset`, `hold-connack`, `blackhole`).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Keep it up this long (`drop` and `reset` without it are one-shot).
    #[arg(long = "for", value_parser = duration::parse)]
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
}

/// IoT Hub fault-injection types (`AzIoTHub_FaultOperationType`, protocol.md §6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
pub enum InjectKind {
    /// Sever the TCP connection (RST).
    #[default]
    #[value(name = "KillTcp")]
    KillTcp,
    /// Shut MQTT down cleanly (TLS `close_notify`, then FIN).
    #[value(name = "ShutDownMqtt")]
    ShutDownMqtt,
    /// Throttling: on MQTT the connection drops.
    #[value(name = "InvokeThrottling")]
    InvokeThrottling,
    /// Daily quota exceeded: on MQTT the connection drops.
    #[value(name = "InvokeMaxMessageQuota")]
    InvokeMaxMessageQuota,
    /// Authentication error: on MQTT the connection drops.
    #[value(name = "InvokeAuthError")]
    InvokeAuthError,
}

impl InjectKind {
    /// Parses the property value (as the SDKs' e2e tests send it).
    pub fn from_property(value: &str) -> Option<Self> {
        Some(match value.trim() {
            "KillTcp" => Self::KillTcp,
            "ShutDownMqtt" => Self::ShutDownMqtt,
            "InvokeThrottling" => Self::InvokeThrottling,
            "InvokeMaxMessageQuota" => Self::InvokeMaxMessageQuota,
            "InvokeAuthError" => Self::InvokeAuthError,
            _ => return None,
        })
    }
}

/// An IoT Hub fault-injection fault on a device's live connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Inject {
    /// The device.
    #[arg(long)]
    pub device: String,
    /// The fault type.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub kind: InjectKind,
    /// `AzIoTHub_FaultOperationDelayInSecs`: wait this long before acting.
    #[arg(long, value_parser = duration::parse)]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub delay: Option<Duration>,
    /// `AzIoTHub_FaultOperationDurationInSecs`: in strict mode, refuse reconnects this long.
    #[arg(long, value_parser = duration::parse)]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
    /// `AzIoTHub_FaultOperationCloseReason`, recorded only.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How DPS answers a blocked device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BlockedDps {
    /// 202, then an operation `failed` with `errorCode` 400209 (field logs, protocol.md §5.3).
    #[default]
    Failed,
    /// A 401 response with `errorCode` 400209 (the alternative reading of the docs).
    Unauthorized,
}

/// How conditions whose real rendering is unconfirmed are rendered (protocol.md §5.2, §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultOptions {
    /// CONNACK for a device disabled on the hub (or failed over away from it).
    pub disabled_connack: u8,
    /// CONNACK for a blocked device.
    pub blocked_connack: u8,
    /// CONNACK for an expired or force-expired token.
    pub expired_connack: u8,
    /// DPS answer for a blocked device.
    pub blocked_dps: BlockedDps,
    /// Seconds a token stays acceptable past its `se` (negative: refused that early).
    pub token_grace_secs: i64,
    /// Whether a token that expires while connected drops the connection.
    pub drop_on_expiry: bool,
    /// Fault injection: PUBACK the trigger message before acting (default: no PUBACK).
    pub inject_puback: bool,
    /// Fault injection: refuse reconnects for `DurationInSecs` (default: reconnects succeed).
    pub inject_strict: bool,
}

impl Default for FaultOptions {
    fn default() -> Self {
        Self {
            disabled_connack: 3,
            blocked_connack: 5,
            expired_connack: 5,
            blocked_dps: BlockedDps::Failed,
            token_grace_secs: 0,
            drop_on_expiry: true,
            inject_puback: false,
            inject_strict: false,
        }
    }
}

/// A change to [`FaultOptions`]; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct OptionsPatch {
    /// CONNACK for a disabled or failed-over device (3 or 5).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_connack: Option<u8>,
    /// CONNACK for a blocked device.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_connack: Option<u8>,
    /// CONNACK for an expired token.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_connack: Option<u8>,
    /// DPS answer for a blocked device.
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_dps: Option<BlockedDps>,
    /// Seconds a token stays acceptable past its `se`.
    #[arg(long, allow_hyphen_values = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_grace_secs: Option<i64>,
    /// Whether expiry while connected drops the connection.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_on_expiry: Option<bool>,
    /// PUBACK fault-injection triggers before acting.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_puback: Option<bool>,
    /// Refuse reconnects for the fault-injection duration.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_strict: Option<bool>,
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
            Self::HubDown(f) => f.duration,
            Self::Disable(f) => f.duration,
            Self::Block(f) => f.duration,
            Self::DpsError(f) => f.duration,
            Self::HubError(f) => f.duration,
            Self::Throttle(f) => f.duration,
            Self::Network(f) => f.duration,
            _ => None,
        }
    }

    /// How many uses it has before it clears itself, if counted.
    pub fn count(&self) -> Option<u32> {
        match self {
            Self::DpsError(f) => f.count,
            Self::HubError(f) => f.count,
            Self::Network(f) => f.count,
            _ => None,
        }
    }

    /// The device the fault is about, when it names exactly one.
    pub fn device(&self) -> Option<&str> {
        match self {
            Self::Failover(f) => f.device.as_deref(),
            Self::Failback(f) => f.device.as_deref(),
            Self::ExpireToken(f) | Self::Unblock(f) => Some(&f.device),
            Self::Disable(f) | Self::Enable(f) => Some(&f.device),
            Self::Block(f) => Some(&f.device),
            Self::Inject(f) => Some(&f.device),
            Self::DpsError(f) => f.device.as_deref(),
            Self::HubError(f) => f.device.as_deref(),
            Self::Network(f) => f.device.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_cli_parses_the_same_structs() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            fault: Fault,
        }
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
