//! Seeded mutants of the spec, used only to prove that the checks can fail (SPEC §7.3).
//!
//! This module exists only with the `verification` feature, which is off by default: the default
//! build of [`crate::step()`] and [`crate::backoff()`] has no mutation branch. The model checks,
//! the SPIN export and the trace validator's tests turn the feature on (the crate's
//! dev-dependency on itself) and run `step_mutated` to show that each check rejects a wrong
//! policy.

/// One deliberate bug in the policy, named after what it breaks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Mutation {
    /// The faithful spec.
    None,
    /// G1: unreachable hubs are retried forever; DPS is never asked.
    NeverAskDpsOnUnreachable,
    /// G2: an auth refusal backs off on the same hub with the same token.
    NoFreshTokenRetry,
    /// G3: CONNACK 3 is treated as a plain busy hub forever.
    NeverAskDpsOnConnack3,
    /// G4: a blocked device keeps the fast profile.
    BlockedUsesFastProfile,
    /// G5: a plain CONNACK 3 (internal error) asks DPS at once.
    AskDpsOnPlain500,
    /// G5: the fast profile's ceiling never grows (no exponential backoff).
    FastBackoffNeverGrows,
    /// G6: DPS `retry-after` is ignored.
    IgnoreRetryAfter,
    /// G7: the backoff returns exactly the cap once it is reached.
    DropJitterAtCap,
    /// G7: the next attempt starts without honouring `min_attempt_spacing`.
    NoAttemptSpacing,
    /// G7: the backoff resets on CONNACK 0 instead of after `stable_after`.
    ResetBackoffOnConnAck,
    /// G7: the token is never renewed by a planned reconnect.
    SkipTokenRenewal,
    /// G7: a stop command does not cancel the pending timers.
    ActAfterStop,
    /// G8: a blocked device gives up and never wakes again.
    GiveUpWhenBlocked,
    /// G8, liveness only: an assignment that answers a poll starts another poll at once, so
    /// the device livelocks between polling and waiting without time passing. Every safety
    /// property holds; only the LTL check under fairness sees it.
    PollAgainAfterAssigned,
    /// G9: the gate is ignored: DPS at every threshold crossing (the v1 storm).
    NoGate,
    /// G9: an assignment to the hub that just refused clears the escalation, as v1 did.
    ForgetEscalationOnSameHub,
    /// G10: reaching the threshold deletes the cached assignment (v1).
    InvalidateOnHubFailure,
    /// G10: an unanswered DPS request is repeated instead of going back to the cached hub.
    RetryDpsWithoutFallback,
}

impl Mutation {
    /// Every mutant that a safety property rejects (without [`Mutation::None`]).
    pub const MUTANTS: [Self; 17] = [
        Self::NeverAskDpsOnUnreachable,
        Self::NoFreshTokenRetry,
        Self::NeverAskDpsOnConnack3,
        Self::BlockedUsesFastProfile,
        Self::AskDpsOnPlain500,
        Self::FastBackoffNeverGrows,
        Self::IgnoreRetryAfter,
        Self::DropJitterAtCap,
        Self::NoAttemptSpacing,
        Self::ResetBackoffOnConnAck,
        Self::SkipTokenRenewal,
        Self::ActAfterStop,
        Self::GiveUpWhenBlocked,
        Self::NoGate,
        Self::ForgetEscalationOnSameHub,
        Self::InvalidateOnHubFailure,
        Self::RetryDpsWithoutFallback,
    ];

    /// The guarantee the mutant breaks.
    pub fn breaks(self) -> Option<crate::Guarantee> {
        use crate::Guarantee as G;
        Some(match self {
            Self::None => return None,
            Self::NeverAskDpsOnUnreachable => G::G1,
            Self::NoFreshTokenRetry => G::G2,
            Self::NeverAskDpsOnConnack3 => G::G3,
            Self::BlockedUsesFastProfile => G::G4,
            Self::AskDpsOnPlain500 | Self::FastBackoffNeverGrows => G::G5,
            Self::IgnoreRetryAfter => G::G6,
            Self::DropJitterAtCap
            | Self::NoAttemptSpacing
            | Self::ResetBackoffOnConnAck
            | Self::SkipTokenRenewal
            | Self::ActAfterStop => G::G7,
            Self::GiveUpWhenBlocked | Self::PollAgainAfterAssigned => G::G8,
            Self::NoGate | Self::ForgetEscalationOnSameHub => G::G9,
            Self::InvalidateOnHubFailure | Self::RetryDpsWithoutFallback => G::G10,
        })
    }
}
