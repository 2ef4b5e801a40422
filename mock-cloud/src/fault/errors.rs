//! Parameters of the error faults: DPS errors, hub internal errors, throttling, network faults
//! and IoT Hub fault injection.

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use super::{Lifetime, duration};

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
    /// When it ends by itself (`for`).
    #[command(flatten)]
    #[serde(flatten)]
    pub lifetime: Lifetime,
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
            lifetime: Lifetime::default(),
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
    /// When it ends by itself (`for`).
    #[command(flatten)]
    #[serde(flatten)]
    pub lifetime: Lifetime,
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
    /// When it ends by itself (`for`).
    #[command(flatten)]
    #[serde(flatten)]
    pub lifetime: Lifetime,
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

/// A network fault for one device or one hub. `drop` and `reset` without `for` or `count` are
/// one-shot: they close the live connections and end.
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
    /// When it ends by itself (`for`).
    #[command(flatten)]
    #[serde(flatten)]
    pub lifetime: Lifetime,
}

/// IoT Hub fault-injection types (`AzIoTHub_FaultOperationType`, spec/PROTOCOL.md §6).
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
