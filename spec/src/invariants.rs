//! State invariants (SPEC §6): what must hold in every reachable state.

use crate::backoff::saturation;
use crate::config::Config;
use crate::guarantee::Guarantee;
use crate::state::{Phase, State, Timer};

/// A broken invariant, with the guarantee it protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A phase that waits has no wake-up armed, or a wake-up is armed outside `Waiting` (G8).
    #[error("Waiting and an armed Wake timer must coincide")]
    WakeMismatch,
    /// An attempt is in flight without a timeout, or a timeout is armed with nothing in flight (G8).
    #[error("an attempt in flight and an armed AttemptTimeout must coincide")]
    TimeoutMismatch,
    /// A SAS connection is up without its token renewal armed by the token's expiry (G7).
    #[error("Connected must arm Renew no later than the token expiry")]
    RenewalMissing,
    /// A connection timer is armed outside `Connected` (G7).
    #[error("Stable and Renew may only be armed while Connected")]
    StrayConnectionTimer,
    /// A stopped machine still has a timer armed (G7).
    #[error("Stopped must have no timer armed")]
    TimerAfterStop,
    /// A hub connect is in flight with no cached assignment.
    #[error("Connecting requires a cached assignment")]
    ConnectingWithoutAssignment,
    /// A counter exceeded its bound (G1, G3, G7).
    #[error("a counter exceeded its bound")]
    CounterOutOfRange,
}

impl Violation {
    /// The guarantee the invariant protects.
    pub fn guarantee(self) -> Guarantee {
        match self {
            Self::WakeMismatch | Self::TimeoutMismatch => Guarantee::G8,
            Self::RenewalMissing | Self::StrayConnectionTimer | Self::TimerAfterStop => {
                Guarantee::G7
            }
            Self::ConnectingWithoutAssignment | Self::CounterOutOfRange => Guarantee::G1,
        }
    }
}

/// Checks every state invariant of SPEC §6.
pub fn check(cfg: &Config, s: &State) -> Result<(), Violation> {
    let t = &s.timers;
    if s.phase == Phase::Stopped && !t.is_empty() {
        return Err(Violation::TimerAfterStop);
    }
    let waiting = matches!(s.phase, Phase::Waiting { .. });
    if waiting != t.get(Timer::Wake).is_some() {
        return Err(Violation::WakeMismatch);
    }
    if s.phase.is_in_flight() != t.get(Timer::AttemptTimeout).is_some() {
        return Err(Violation::TimeoutMismatch);
    }
    let connected = matches!(s.phase, Phase::Connected { .. });
    if !connected && (t.get(Timer::Stable).is_some() || t.get(Timer::Renew).is_some()) {
        return Err(Violation::StrayConnectionTimer);
    }
    if connected && cfg.credential == crate::config::CredentialKind::Sas {
        let renew_ok = match (t.get(Timer::Renew), s.token) {
            (Some(at), Some(tok)) => at <= tok.expires_at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !renew_ok {
            return Err(Violation::RenewalMissing);
        }
    }
    if matches!(s.phase, Phase::Connecting { .. }) && s.cache.is_none() {
        return Err(Violation::ConnectingWithoutAssignment);
    }
    let limit = saturation(&cfg.fast).max(saturation(&cfg.slow));
    if s.unreachable > cfg.unreachable_threshold
        || s.unavailable > cfg.unavailable_threshold
        || s.attempt > limit
        || s.rounds > saturation(&cfg.recheck)
    {
        return Err(Violation::CounterOutOfRange);
    }
    Ok(())
}
