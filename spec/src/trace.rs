//! Trace validation (SPEC §8): is a run the cloud recorded a behaviour the spec allows?
//!
//! The vocabulary holds only what a cloud can see — DPS requests and answers, hub connects,
//! their CONNACK codes, refusals and disconnects, each with a timestamp — so the same check
//! grades devices that hubswap did not write. Each device is checked by a [`Monitor`], an
//! observer automaton whose rules are the cloud-visible parts of G1–G10.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::time::Duration;

use crate::classify::{Class, DpsReply, WireSignal, classify};
use crate::config::Config;
use crate::guarantee::Guarantee;
use crate::state::Assignment;
use crate::time::Millis;

pub mod grade;
mod monitor;

pub use grade::{GuaranteeGrade, Verdict, grade};
pub use monitor::Monitor;

/// What a DPS request was.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DpsRequest {
    /// A register request: starts a registration (an attempt).
    Register,
    /// An operation-status poll: part of the registration that created the operation.
    Poll,
}

/// What DPS answered, as the cloud recorded it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DpsAnswer {
    /// `assigned` to this hub.
    Assigned {
        /// The `assignedHub`.
        hub: String,
    },
    /// 202 `assigning`.
    Assigning,
    /// `failed` with this error code (400209: blocked).
    Failed {
        /// The DPS error code.
        error_code: u32,
    },
    /// `disabled`.
    Disabled,
    /// A non-2xx status (401, 429, 500, ...).
    Status {
        /// The status.
        status: u16,
        /// The `retry-after` sent with it.
        retry_after: Option<Duration>,
    },
    /// The cloud did not answer (blackholed or dropped the request).
    Dropped,
    /// DPS's MQTT endpoint refused the CONNECT with this return code.
    Refused {
        /// The CONNACK return code.
        code: u8,
    },
    /// A 2xx answer whose body is not a registration state.
    Malformed,
}

impl DpsAnswer {
    /// The wire signal the device receives for this answer, so that the monitor and the
    /// grader classify it with the spec's one table ([`crate::classify()`]).
    pub fn signal(&self) -> WireSignal {
        match self {
            Self::Assigned { hub } => WireSignal::Dps(DpsReply::Assigned(Assignment {
                hub: hub.clone(),
                device_id: String::new(),
            })),
            Self::Assigning => WireSignal::Dps(DpsReply::Assigning {
                operation: String::new(),
                retry_after: None,
            }),
            Self::Failed { error_code } => WireSignal::Dps(DpsReply::Failed {
                error_code: *error_code,
            }),
            Self::Disabled => WireSignal::Dps(DpsReply::Disabled),
            Self::Status {
                status,
                retry_after,
            } => WireSignal::Dps(DpsReply::Status {
                status: *status,
                retry_after: *retry_after,
            }),
            Self::Dropped => WireSignal::DpsUnreachable,
            Self::Refused { code } => WireSignal::DpsConnAck(*code),
            Self::Malformed => WireSignal::DpsMalformed,
        }
    }

    /// The answer's class in the spec's table.
    pub fn class(&self) -> Class {
        classify(&self.signal())
    }
}

/// The credential a hub CONNECT carried, without any secret.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Credential {
    /// A fingerprint that differs between tokens (for example a hash of the signature).
    pub fingerprint: u64,
    /// How long the token was still valid when the CONNECT arrived.
    pub valid_for: Duration,
}

/// Who closed a hub connection.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Side {
    /// The device closed it (DISCONNECT or socket close).
    Device,
    /// The cloud closed it (drop, kick, expiry, fault).
    Cloud,
}

/// One cloud-visible event.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Observed {
    /// DPS received a request.
    DpsRequest(DpsRequest),
    /// DPS answered (or dropped) the request.
    DpsResponse(DpsAnswer),
    /// A hub received a CONNECT.
    HubConnect {
        /// The hub.
        hub: String,
        /// The SAS token's fingerprint and remaining validity; `None` for X.509.
        credential: Option<Credential>,
    },
    /// The hub answered CONNECT with this code.
    ConnAck {
        /// The return code.
        code: u8,
    },
    /// The hub refused the connection below MQTT (reset, blackhole, TLS).
    HubRefused {
        /// The hub.
        hub: String,
    },
    /// An established connection closed.
    Disconnect {
        /// Who closed it.
        by: Side,
    },
    /// The recording ends here; end-of-trace bounds are checked against it.
    End,
}

/// One observation: when, which device, what.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Observation {
    /// On the cloud's monotonic clock.
    pub at: Millis,
    /// The device (registration id) it concerns.
    pub device: String,
    /// What happened.
    pub event: Observed,
}

/// A run that the spec does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{guarantee} violated by {device} at step {step} ({at}): {reason}")]
pub struct Divergence {
    /// The violated guarantee.
    pub guarantee: Guarantee,
    /// The index of the offending observation in the trace.
    pub step: usize,
    /// Its timestamp.
    pub at: Millis,
    /// The device.
    pub device: String,
    /// What went wrong, in words.
    pub reason: String,
}

/// The parameters of a trace check: the device's spec config and the timing tolerance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceCheck {
    /// The config the device claims to run.
    pub config: Config,
    /// Slack for timing bounds (network latency between device and cloud clocks).
    pub tolerance: Duration,
}

impl Default for TraceCheck {
    fn default() -> Self {
        Self {
            config: Config::default(),
            tolerance: Duration::from_millis(100),
        }
    }
}

/// Checks a trace against the default [`Config`] with a 100 ms tolerance.
pub fn validate_trace(observations: &[Observation]) -> Result<(), Divergence> {
    validate_trace_with(&TraceCheck::default(), observations)
}

/// Checks a trace, device by device, in timestamp order within each device.
pub fn validate_trace_with(
    check: &TraceCheck,
    observations: &[Observation],
) -> Result<(), Divergence> {
    let mut monitors: BTreeMap<&str, Monitor> = BTreeMap::new();
    let end = observations
        .iter()
        .filter(|o| o.event == Observed::End)
        .map(|o| o.at)
        .max();
    for (i, o) in observations.iter().enumerate() {
        if o.event == Observed::End {
            continue;
        }
        let m = monitors.entry(o.device.as_str()).or_default();
        m.observe(check, o.at, &o.event)
            .map_err(|(g, reason)| Divergence {
                guarantee: g,
                step: i,
                at: o.at,
                device: o.device.clone(),
                reason,
            })?;
    }
    if let Some(end) = end {
        for (device, m) in &mut monitors {
            m.observe(check, end, &Observed::End)
                .map_err(|(g, reason)| Divergence {
                    guarantee: g,
                    step: observations.len().saturating_sub(1),
                    at: end,
                    device: String::from(*device),
                    reason,
                })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
