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
    /// DPS's MQTT endpoint refused the CONNECT with this return code (DPS over MQTT only).
    DpsConnAck(u8),
    /// DPS answered 2xx with a body that is not a registration state (spec/PROTOCOL.md §2.3).
    DpsMalformed,
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
    /// CONNACK 3 or a code MQTT 3.1.1 does not define: disabled, moved, or a busy hub (G3, G5).
    Unavailable,
    /// CONNACK 1 (from the hub or DPS): the server does not speak our protocol. A bug or a
    /// misconfiguration in the device; DPS cannot fix it, so retry slowly on the same endpoint.
    ClientBug,
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
    /// DPS 5xx, unreachable, malformed, or any other transient DPS failure (G5).
    DpsTransient,
    /// The token must be renewed by a planned reconnect (G7).
    RenewToken,
    /// A request failed but the connection stands; the request is retried (twin 429/5xx).
    RequestTransient,
    /// A request was refused for good (twin 4xx other than 429); the connection stands.
    RequestRejected,
    /// Nothing to react to (twin 2xx).
    Benign,
}

impl Class {
    /// The variant's name, as the table in SPEC §2 writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Accepted => "Accepted",
            Self::Unreachable => "Unreachable",
            Self::AuthRefused => "AuthRefused",
            Self::Unavailable => "Unavailable",
            Self::ClientBug => "ClientBug",
            Self::Dropped => "Dropped",
            Self::Assigned(_) => "Assigned",
            Self::Assigning { .. } => "Assigning",
            Self::Blocked => "Blocked",
            Self::Throttled { .. } => "Throttled",
            Self::DpsTransient => "DpsTransient",
            Self::RenewToken => "RenewToken",
            Self::RequestTransient => "RequestTransient",
            Self::RequestRejected => "RequestRejected",
            Self::Benign => "Benign",
        }
    }

    /// True for the classes that answer a DPS request.
    pub fn is_dps_answer(&self) -> bool {
        matches!(
            self,
            Self::Assigned(_)
                | Self::Assigning { .. }
                | Self::Blocked
                | Self::Throttled { .. }
                | Self::DpsTransient
                | Self::ClientBug
        )
    }
}

/// Classifies one wire signal. This function *is* the table in SPEC §2.
pub fn classify(signal: &WireSignal) -> Class {
    match signal {
        WireSignal::ConnectFailed(_) => Class::Unreachable,
        WireSignal::ConnAck(code) => connack(*code),
        WireSignal::ConnectionLost => Class::Dropped,
        WireSignal::Dps(reply) => classify_dps(reply),
        WireSignal::DpsConnAck(1) => Class::ClientBug,
        WireSignal::DpsConnAck(2 | 4 | 5) => Class::Blocked,
        WireSignal::DpsUnreachable | WireSignal::DpsMalformed | WireSignal::DpsConnAck(_) => {
            Class::DpsTransient
        }
        WireSignal::TokenNearExpiry => Class::RenewToken,
        WireSignal::TwinStatus(s) if *s < 300 => Class::Benign,
        WireSignal::TwinStatus(s) if *s == 429 || (500..600).contains(s) => Class::RequestTransient,
        WireSignal::TwinStatus(_) => Class::RequestRejected,
    }
}

fn connack(code: u8) -> Class {
    match code {
        0 => Class::Accepted,
        1 => Class::ClientBug,
        2 | 4 | 5 => Class::AuthRefused,
        _ => Class::Unavailable,
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

const fn row(signal: &'static str, class: &'static str, reaction: &'static str) -> Row {
    Row {
        signal,
        class,
        reaction,
    }
}

/// The classification table, row by row. A unit test checks every row against [`classify`],
/// and another checks that SPEC.md contains exactly this table.
pub const TABLE: &[Row] = &[
    row(
        "TCP refused / timeout / reset / DNS / TLS before CONNACK",
        "Unreachable",
        "fast backoff, same hub; DPS (through the gate) after `unreachable_threshold` in a row (G1, G9)",
    ),
    row(
        "CONNACK 0",
        "Accepted",
        "connected; counters clear; backoff and gate reset after `stable_after` (G7)",
    ),
    row(
        "CONNACK 1 (unacceptable protocol version)",
        "ClientBug",
        "slow backoff, same hub, never DPS: a device bug that DPS cannot fix",
    ),
    row(
        "CONNACK 2 (identifier rejected)",
        "AuthRefused",
        "as CONNACK 5: the hub does not know this device id",
    ),
    row(
        "CONNACK 3 (server unavailable)",
        "Unavailable",
        "fast backoff, same hub; DPS (through the gate) after `unavailable_threshold` in a row (G3, G5, G9)",
    ),
    row(
        "CONNACK 4 (bad user name or password)",
        "AuthRefused",
        "as CONNACK 5: a token the hub cannot verify",
    ),
    row(
        "CONNACK 5 (not authorized)",
        "AuthRefused",
        "SAS with a stale token: mint and retry once; then (X.509 at once) DPS through the gate, jittered (G2, G9)",
    ),
    row(
        "CONNACK 6–255 (not in MQTT 3.1.1)",
        "Unavailable",
        "as CONNACK 3",
    ),
    row(
        "connection lost after CONNACK 0",
        "Dropped",
        "fast backoff, same hub; refusals that follow count toward G1/G3",
    ),
    row(
        "DPS 200 `assigned`, another hub (or no incident)",
        "Assigned",
        "cache and persist it; connect at once; counters, gate and blocked regime clear",
    ),
    row(
        "DPS 200 `assigned`, the hub that just refused",
        "Assigned",
        "evidence of a hub-side failure: keep the cache and the escalation, close the gate, back off on the hub (G9)",
    ),
    row(
        "DPS 202 `assigning` (+ retry-after)",
        "Assigning",
        "poll the operation after retry-after (default `dps_poll_default`)",
    ),
    row(
        "DPS `failed` (400209 blocked, 400207, 400208, ...)",
        "Blocked",
        "slow profile, never give up, ask DPS each period; the cache is kept (G4)",
    ),
    row("DPS `disabled`", "Blocked", "as `failed`"),
    row(
        "DPS 401 / 403 / 404 / other 4xx",
        "Blocked",
        "as `failed`: the device cannot fix it, so it waits slowly",
    ),
    row(
        "DPS 429 (+ retry-after)",
        "Throttled",
        "no answer: with a cache, back to the cached hub and the gate opens no sooner than retry-after + jitter; without, the same request after max(backoff, retry-after + jitter) (G6, G10)",
    ),
    row(
        "DPS 5xx",
        "DpsTransient",
        "no answer: with a cache, back to the cached hub through the gate; without, fast backoff and the same request (G5, G10)",
    ),
    row("DPS unreachable", "DpsTransient", "as DPS 5xx"),
    row(
        "DPS 2xx whose body is not a registration state",
        "DpsTransient",
        "as DPS 5xx",
    ),
    row(
        "DPS-over-MQTT CONNACK 1",
        "ClientBug",
        "as DPS 5xx, on the slow profile",
    ),
    row("DPS-over-MQTT CONNACK 2 / 4 / 5", "Blocked", "as DPS 401"),
    row(
        "DPS-over-MQTT CONNACK 3 / 6–255",
        "DpsTransient",
        "as DPS 5xx",
    ),
    row(
        "SAS token at `renew_at_percent` of its lifetime",
        "RenewToken",
        "planned reconnect with a fresh token; X.509 devices have none (G7)",
    ),
    row(
        "twin 429 / 5xx",
        "RequestTransient",
        "retry the request; the connection stands (G5)",
    ),
    row(
        "twin 3xx / 4xx other than 429",
        "RequestRejected",
        "the request fails for good; the connection stands",
    ),
    row("twin 2xx", "Benign", "nothing"),
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
