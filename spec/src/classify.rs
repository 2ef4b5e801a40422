//! The wire-signal classification: one table and one function (SPEC §2).
//!
//! Every signal the network can hand the device maps to exactly one [`Class`]; the reaction to
//! each class lives in [`crate::step()`]. Ambiguity (spec/PROTOCOL.md §5.5) is not resolved here but by
//! state: counters ([`crate::State::unreachable`], [`crate::State::unavailable`]), the
//! fresh-token retry ([`crate::AuthStage`]) and asking DPS.

use alloc::string::String;
use core::time::Duration;

use crate::state::Assignment;

/// Why a hub connection failed before any CONNACK arrived.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ConnectFailure {
    /// TCP connection refused (the listener is gone).
    Refused,
    /// No CONNACK within the attempt timeout (blackholed hub, or a stalled handshake).
    Timeout,
    /// The connection was reset or closed before CONNACK.
    Reset,
    /// The hub's host name does not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
}

/// What DPS answered, over MQTT or HTTPS (spec/PROTOCOL.md §2.3–§3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DpsReply {
    /// 200 with `status: assigned`.
    Assigned(Assignment),
    /// 202 with `status: assigning` (or `unassigned`), an operation id and maybe `retry-after`.
    Assigning {
        /// The operation to poll.
        operation: String,
        /// The server's `retry-after`.
        retry_after: Option<Duration>,
    },
    /// 2xx with `status: failed` and `registrationState.errorCode` (400209: blocked/unapproved).
    Failed {
        /// The DPS error code, for example 400209.
        error_code: u32,
    },
    /// 2xx with `status: disabled`.
    Disabled,
    /// A non-2xx status (401, 403, 404, 429, 5xx, ...), with the `retry-after` if sent.
    Status {
        /// The HTTP or MQTT-topic status.
        status: u16,
        /// The server's `retry-after`.
        retry_after: Option<Duration>,
    },
}

/// A signal from the wire, as the device's transport reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WireSignal {
    /// The hub connect failed before CONNACK.
    ConnectFailed(ConnectFailure),
    /// The hub answered CONNECT with this return code (0 accepted, 1–5 refused).
    ConnAck(u8),
    /// An established hub connection (after CONNACK 0) was closed by the peer or the network.
    ConnectionLost,
    /// DPS answered.
    Dps(DpsReply),
    /// DPS could not be reached (refused, reset, DNS, TLS, timeout).
    DpsUnreachable,
    /// The hub token reached its renewal point.
    TokenNearExpiry,
    /// A twin request was answered with this status while connected.
    TwinStatus(u16),
}

/// The class of a signal: what it means for the connection policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Class {
    /// CONNACK 0: connected.
    Accepted,
    /// The hub cannot be reached (G1).
    Unreachable,
    /// CONNACK 2, 4, 5: expired token, bad key, deleted or blocked device (G2, G4).
    AuthRefused,
    /// CONNACK 1, 3 or unknown: disabled, moved, or a busy hub (G3, G5).
    Unavailable,
    /// The connection dropped after CONNACK 0: internal error, failover, expiry (G5).
    Dropped,
    /// DPS assigned a hub.
    Assigned(Assignment),
    /// DPS accepted the registration; poll the operation after the delay.
    Assigning {
        /// The operation to poll.
        operation: String,
        /// The server's `retry-after`.
        retry_after: Option<Duration>,
    },
    /// DPS refused the device: blocked, unapproved, disabled, or credentials refused (G4).
    Blocked,
    /// DPS 429 (G6).
    Throttled {
        /// The server's `retry-after`.
        retry_after: Option<Duration>,
    },
    /// DPS 5xx, unreachable, or any other transient DPS failure (G5).
    DpsTransient,
    /// The token must be renewed by a planned reconnect (G7).
    RenewToken,
    /// A request failed but the connection stands; the request is retried (twin 429/5xx).
    RequestTransient,
    /// Nothing to react to (twin 2xx).
    Benign,
}

/// Classifies one wire signal. This function *is* the table in SPEC §2.
pub fn classify(signal: &WireSignal) -> Class {
    match signal {
        WireSignal::ConnectFailed(_) => Class::Unreachable,
        WireSignal::ConnAck(0) => Class::Accepted,
        WireSignal::ConnAck(2 | 4 | 5) => Class::AuthRefused,
        WireSignal::ConnAck(_) => Class::Unavailable,
        WireSignal::ConnectionLost => Class::Dropped,
        WireSignal::Dps(reply) => classify_dps(reply),
        WireSignal::DpsUnreachable => Class::DpsTransient,
        WireSignal::TokenNearExpiry => Class::RenewToken,
        WireSignal::TwinStatus(s) if *s < 300 => Class::Benign,
        WireSignal::TwinStatus(_) => Class::RequestTransient,
    }
}

fn classify_dps(reply: &DpsReply) -> Class {
    match reply {
        DpsReply::Assigned(a) => Class::Assigned(a.clone()),
        DpsReply::Assigning {
            operation,
            retry_after,
        } => Class::Assigning {
            operation: operation.clone(),
            retry_after: *retry_after,
        },
        DpsReply::Failed { .. } | DpsReply::Disabled => Class::Blocked,
        DpsReply::Status {
            status: 429,
            retry_after,
        } => Class::Throttled {
            retry_after: *retry_after,
        },
        DpsReply::Status { status, .. } if (400..500).contains(status) => Class::Blocked,
        DpsReply::Status { .. } => Class::DpsTransient,
    }
}

/// One row of the classification table, rendered in SPEC §2.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The wire signal, in protocol terms.
    pub signal: &'static str,
    /// The class [`classify`] gives it.
    pub class: &'static str,
    /// What the device does, and why.
    pub reaction: &'static str,
}

/// The classification table, row by row. A unit test checks every row against [`classify`],
/// and another checks that SPEC.md contains exactly this table.
pub const TABLE: &[Row] = &[
    Row {
        signal: "TCP refused / timeout / reset / DNS / TLS before CONNACK",
        class: "Unreachable",
        reaction: "fast backoff, same hub; DPS after `unreachable_threshold` in a row (G1)",
    },
    Row {
        signal: "CONNACK 0",
        class: "Accepted",
        reaction: "connected; counters clear; backoff resets after `stable_after` (G7)",
    },
    Row {
        signal: "CONNACK 1 (protocol)",
        class: "Unavailable",
        reaction: "as CONNACK 3: this endpoint will not serve us",
    },
    Row {
        signal: "CONNACK 2 (identifier)",
        class: "AuthRefused",
        reaction: "as CONNACK 5",
    },
    Row {
        signal: "CONNACK 3 (server unavailable)",
        class: "Unavailable",
        reaction: "fast backoff, same hub; DPS after `unavailable_threshold` in a row (G3, G5)",
    },
    Row {
        signal: "CONNACK 4 (bad user name or password)",
        class: "AuthRefused",
        reaction: "as CONNACK 5",
    },
    Row {
        signal: "CONNACK 5 (not authorized)",
        class: "AuthRefused",
        reaction: "stale token: mint and retry once; fresh token: DPS, once per incident, then backoff (G2)",
    },
    Row {
        signal: "connection lost after CONNACK 0",
        class: "Dropped",
        reaction: "fast backoff, same hub; refusals that follow count toward G1/G3",
    },
    Row {
        signal: "DPS 200 `assigned`",
        class: "Assigned",
        reaction: "persist the assignment; connect to its hub; leave the blocked regime",
    },
    Row {
        signal: "DPS 202 `assigning` (+ retry-after)",
        class: "Assigning",
        reaction: "poll the operation after retry-after (default `dps_poll_default`)",
    },
    Row {
        signal: "DPS `failed` (400209 blocked, 400207, 400208, ...)",
        class: "Blocked",
        reaction: "slow profile, never give up, ask DPS each period (G4)",
    },
    Row {
        signal: "DPS `disabled`",
        class: "Blocked",
        reaction: "as `failed`",
    },
    Row {
        signal: "DPS 401 / 403 / 404 / other 4xx",
        class: "Blocked",
        reaction: "as `failed`: the device cannot fix it, so it waits slowly",
    },
    Row {
        signal: "DPS 429 (+ retry-after)",
        class: "Throttled",
        reaction: "same DPS request after max(backoff, retry-after + jitter) (G6)",
    },
    Row {
        signal: "DPS 5xx",
        class: "DpsTransient",
        reaction: "fast backoff, same DPS request (G5)",
    },
    Row {
        signal: "DPS unreachable",
        class: "DpsTransient",
        reaction: "as DPS 5xx",
    },
    Row {
        signal: "token at `renew_at_percent` of its lifetime",
        class: "RenewToken",
        reaction: "planned reconnect with a fresh token (G7)",
    },
    Row {
        signal: "twin 429 / 5xx",
        class: "RequestTransient",
        reaction: "retry the request; the connection stands (G5)",
    },
    Row {
        signal: "twin 2xx",
        class: "Benign",
        reaction: "nothing",
    },
];

/// Renders [`TABLE`] as the markdown table that SPEC.md embeds.
pub fn render_table() -> String {
    use core::fmt::Write as _;
    let mut out = String::from("| wire signal | class | reaction |\n| --- | --- | --- |\n");
    for row in TABLE {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} |",
            row.signal, row.class, row.reaction
        );
    }
    out
}

#[cfg(test)]
mod tests;
