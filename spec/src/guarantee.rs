//! The guarantees G1–G8 (SPEC §5), named so that checks and divergences can cite them.

use core::fmt;

/// One guarantee of SPEC §5, stated as what the cloud observes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Guarantee {
    /// Unreachable hub: DPS again after at most `unreachable_threshold` failed connects.
    G1,
    /// Expired token: a fresh token first, then DPS at most once per incident before backing off.
    G2,
    /// Disabled or moved device: DPS within `unavailable_threshold` CONNACK 3 refusals.
    G3,
    /// Operator blocked: the slow profile, one attempt per `blocked_min_delay`, never give up.
    G4,
    /// Internal error 500: exponential full jitter on the same endpoint; no early DPS.
    G5,
    /// DPS 429: the next DPS request no sooner than retry-after.
    G6,
    /// Always: one attempt in flight, spacing, caps, stable reset, token renewal, stop.
    G7,
    /// Liveness: if the cloud behaves from some point on, the device eventually connects.
    G8,
}

impl Guarantee {
    /// All guarantees in order.
    pub const ALL: [Self; 8] = [
        Self::G1,
        Self::G2,
        Self::G3,
        Self::G4,
        Self::G5,
        Self::G6,
        Self::G7,
        Self::G8,
    ];

    /// The one-line statement.
    pub fn title(self) -> &'static str {
        match self {
            Self::G1 => {
                "unreachable hub: reprovision after at most unreachable_threshold failed connects"
            }
            Self::G2 => {
                "expired token: fresh token first, then DPS at most once per incident before backoff"
            }
            Self::G3 => {
                "disabled or moved device: reprovision within unavailable_threshold refusals"
            }
            Self::G4 => {
                "operator blocked: slow profile, at most one attempt per blocked_min_delay, never give up"
            }
            Self::G5 => {
                "internal error 500: exponential full jitter on the same endpoint, no early DPS"
            }
            Self::G6 => "DPS 429: next DPS request no sooner than retry-after",
            Self::G7 => {
                "always: one in flight, spacing, caps, stable reset, token renewal, stop is final"
            }
            Self::G8 => "liveness: eventually connected once the cloud behaves",
        }
    }
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
