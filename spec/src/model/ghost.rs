//! The model's ghost state: what the guarantees need remembered beyond the spec's own state.

use crate::backoff::saturation;
use crate::config::Config;
use crate::time::{Millis, ms};

/// Model-only observers: what the guarantees need remembered beyond the spec's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ghost {
    /// G8: ms the cloud has behaved since it last misbehaved or the device was last
    /// connected (only when [`Instance::time_bound`](super::Instance::time_bound)).
    pub good_for: u64,
    /// G9: DPS registrations of the current hub-side incident, saturating.
    pub questions: u32,
    /// G9: when the last of them started.
    pub last_question: Option<Millis>,
    /// G6: with the longest draw, the next DPS request comes no sooner than this.
    pub dps_not_before: Option<Millis>,
}

impl Ghost {
    pub(super) fn shifted(self, delta: u64) -> Self {
        Self {
            last_question: self.last_question.map(|t| t.minus_ms(delta)),
            dps_not_before: self.dps_not_before.map(|t| t.minus_ms(delta)),
            ..self
        }
    }

    /// Forgets what can no longer matter at `now`: a deadline that has passed, a question
    /// older than the gate's longest floor.
    pub(super) fn normalized(self, cfg: &Config, now: Millis) -> Self {
        let longest = cfg.recheck_floor(saturation(&cfg.recheck));
        let horizon = Millis(now.0.saturating_sub(ms(longest)));
        Self {
            last_question: self.last_question.map(|t| t.max(horizon)),
            dps_not_before: self.dps_not_before.filter(|t| *t > now),
            ..self
        }
    }
}
