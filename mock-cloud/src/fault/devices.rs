//! Parameters of the hub and device faults: failover and failback, outages, tokens, disable,
//! block.

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use super::{Lifetime, duration};

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
    /// When it ends by itself (`for`).
    #[command(flatten)]
    #[serde(flatten)]
    pub lifetime: Lifetime,
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

/// A device's token to expire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct ExpireToken {
    /// The device.
    #[arg(long)]
    pub device: String,
    /// The hub also refuses every token of the device (CONNACK 5) until the device registers
    /// with DPS again, as when its hub identity no longer accepts its key until DPS
    /// re-registers it: a fresh token does not help, DPS does.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_reprovisioned: bool,
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
    /// When it ends by itself (`for`).
    #[command(flatten)]
    #[serde(flatten)]
    pub lifetime: Lifetime,
}

/// An operator block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// The device.
    #[arg(long)]
    pub device: String,
    /// When it ends by itself (`for`).
    #[command(flatten)]
    #[serde(flatten)]
    pub lifetime: Lifetime,
}
