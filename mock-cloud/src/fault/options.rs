//! How conditions whose real rendering is unconfirmed are rendered, and changes to that.

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// How DPS answers a blocked device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BlockedDps {
    /// 202, then an operation `failed` with `errorCode` 400209 (field logs, spec/PROTOCOL.md §5.3).
    #[default]
    Failed,
    /// A 401 response with `errorCode` 400209 (the alternative reading of the docs).
    Unauthorized,
}

/// How conditions whose real rendering is unconfirmed are rendered (spec/PROTOCOL.md §5.2, §10).
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
