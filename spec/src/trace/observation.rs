//! The trace vocabulary: what a cloud can see of a device (DPS requests and answers, hub
//! connects, CONNACK codes, refusals, disconnects), a divergence, and a check's parameters.

use alloc::string::String;
use core::time::Duration;

use crate::classify::{Class, DpsReply, WireSignal, classify};
use crate::config::Config;
use crate::guarantee::Guarantee;
use crate::state::Assignment;
use crate::time::Millis;

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
