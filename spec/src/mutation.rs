//! Seeded mutants of the spec, used only to prove that the checks can fail (SPEC §7.3).
//!
//! The public entry points ([`crate::step()`], [`crate::backoff()`], [`crate::classify()`]) always run
//! [`Mutation::None`]. The `*_mutated` twins take a mutation so that the model checks, the SPIN
//! export and the trace validator can each be shown to reject a wrong policy.

/// One deliberate bug in the policy, named after what it breaks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Mutation {
    /// The faithful spec.
    None,
    /// G1: unreachable hubs are retried forever; DPS is never asked.
    NeverReprovisionOnUnreachable,
    /// G2: an auth refusal backs off on the same hub with the same token.
    NoFreshTokenRetry,
    /// G3: CONNACK 3 is treated as a plain busy hub forever.
    NeverReprovisionOnConnack3,
    /// G4: a blocked device keeps the fast profile.
    BlockedUsesFastProfile,
    /// G5: a plain CONNACK 3 (internal error) reprovisions at once.
    ReprovisionOnPlain500,
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
}

impl Mutation {
    /// Every mutant (without [`Mutation::None`]).
    pub const MUTANTS: [Self; 12] = [
        Self::NeverReprovisionOnUnreachable,
        Self::NoFreshTokenRetry,
        Self::NeverReprovisionOnConnack3,
        Self::BlockedUsesFastProfile,
        Self::ReprovisionOnPlain500,
        Self::IgnoreRetryAfter,
        Self::DropJitterAtCap,
        Self::NoAttemptSpacing,
        Self::ResetBackoffOnConnAck,
        Self::SkipTokenRenewal,
        Self::ActAfterStop,
        Self::GiveUpWhenBlocked,
    ];

    /// The guarantee the mutant breaks.
    pub fn breaks(self) -> Option<crate::Guarantee> {
        use crate::Guarantee as G;
        Some(match self {
            Self::None => return None,
            Self::NeverReprovisionOnUnreachable => G::G1,
            Self::NoFreshTokenRetry => G::G2,
            Self::NeverReprovisionOnConnack3 => G::G3,
            Self::BlockedUsesFastProfile => G::G4,
            Self::ReprovisionOnPlain500 => G::G5,
            Self::IgnoreRetryAfter => G::G6,
            Self::DropJitterAtCap
            | Self::NoAttemptSpacing
            | Self::ResetBackoffOnConnAck
            | Self::SkipTokenRenewal
            | Self::ActAfterStop => G::G7,
            Self::GiveUpWhenBlocked => G::G8,
        })
    }
}
