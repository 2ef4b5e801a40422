//! The guarantees G1–G10 (SPEC §5), named so that checks and divergences can cite them.

use core::fmt;

/// One guarantee of SPEC §5, stated as what the cloud observes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Guarantee {
    /// Unreachable hub: DPS is asked after at most `unreachable_threshold` failed connects.
    G1,
    /// Expired token: a fresh token first (SAS), then DPS through the gate, jittered.
    G2,
    /// Disabled or moved device: DPS is asked within `unavailable_threshold` CONNACK 3 refusals.
    G3,
    /// Operator blocked: the slow profile, at most one attempt per `slow.floor`, a retry
    /// within one slow period, never give up.
    G4,
    /// Internal error 500: the fast profile, growing to its cap, on the same endpoint; no early
    /// DPS.
    G5,
    /// DPS 429: the next DPS request no sooner than retry-after, plus jitter.
    G6,
    /// Always: one attempt in flight, spacing, caps, stable reset, token renewal, stop.
    G7,
    /// Liveness: once the cloud behaves, connected within `Config::recovery_bound`.
    G8,
    /// The DPS budget: a persistent hub-side failure of duration d costs at most
    /// `Config::dps_budget(d)` DPS registrations.
    G9,
    /// Cache retention: no hub failure and no unanswered DPS request invalidates the cached
    /// assignment; the device keeps trying the cached hub while DPS does not answer.
    G10,
}

impl Guarantee {
    /// All guarantees in order.
    pub const ALL: [Self; 10] = [
        Self::G1,
        Self::G2,
        Self::G3,
        Self::G4,
        Self::G5,
        Self::G6,
        Self::G7,
        Self::G8,
        Self::G9,
        Self::G10,
    ];

    /// The one-line statement.
    pub fn title(self) -> &'static str {
        match self {
            Self::G1 => "unreachable hub: DPS after at most unreachable_threshold failed connects",
            Self::G2 => "expired token: fresh token first, then DPS through the gate, jittered",
            Self::G3 => "disabled or moved device: DPS within unavailable_threshold refusals",
            Self::G4 => {
                "operator blocked: slow profile, one attempt per slow floor, retry within a slow period"
            }
            Self::G5 => "internal error 500: fast profile growing to its cap, same endpoint",
            Self::G6 => "DPS 429: next DPS request no sooner than retry-after plus jitter",
            Self::G7 => {
                "always: one in flight, spacing, caps, stable reset, token renewal, stop is final"
            }
            Self::G8 => "liveness: connected within recovery_bound once the cloud behaves",
            Self::G9 => "DPS budget: at most B(d) registrations for a hub-side failure of length d",
            Self::G10 => "cache retention: no hub failure deletes the cached assignment",
        }
    }
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
