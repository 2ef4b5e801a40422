//! DPS answers (SPEC §3.4): a registration is a question, and only an assignment changes the
//! cache.

use core::time::Duration;

use super::{Cx, mutant};
use crate::backoff::{RetryAfter, recheck_delay, saturation};
use crate::classify::Class;
#[cfg(feature = "verification")]
use crate::mutation::Mutation;
use crate::state::{AuthStage, Next, Phase};

impl Cx<'_> {
    /// A DPS answer to the request `request`.
    pub(super) fn dps_answer(&mut self, class: &Class, request: Next) {
        match class {
            Class::Assigned(a) => {
                let same = self.s.cache.as_ref() == Some(a) && self.in_incident();
                if same && !mutant!(self, ForgetEscalationOnSameHub) {
                    // Sent back to the hub that refused: the failure is hub-side (G9).
                    self.s.blocked = false;
                    self.close_gate(None);
                    let d = self.fail_delay(None);
                    self.schedule(Next::Connect, d);
                    return;
                }
                if self.s.cache.as_ref() != Some(a) {
                    self.s.cache = Some(a.clone());
                    self.act(crate::io::Action::PersistAssignment(a.clone()));
                }
                self.s.blocked = false;
                self.clear_incident();
                if mutant!(self, PollAgainAfterAssigned) && matches!(request, Next::Poll { .. }) {
                    let now = self.env.now;
                    self.wait(request, now);
                    return;
                }
                self.schedule(Next::Connect, Duration::ZERO);
            }
            Class::Assigning {
                operation,
                retry_after,
            } => {
                let wanted = match retry_after {
                    Some(ra) if !mutant!(self, IgnoreRetryAfter) => *ra,
                    _ => self.cfg.dps_poll_default,
                };
                let at = self.env.now.plus(wanted.min(self.cfg.max_retry_after));
                self.wait(
                    Next::Poll {
                        operation: operation.clone(),
                    },
                    at,
                );
            }
            Class::Blocked => {
                self.s.blocked = true;
                self.clear_incident();
                if mutant!(self, GiveUpWhenBlocked) {
                    self.s.phase = Phase::Waiting {
                        next: Next::Register,
                    };
                    return;
                }
                let d = self.fail_delay(None);
                self.schedule(Next::Register, d);
            }
            Class::Throttled { retry_after } => {
                let ra = retry_after
                    .filter(|_| !mutant!(self, IgnoreRetryAfter))
                    .map(|v| RetryAfter {
                        value: v.min(self.cfg.max_retry_after),
                        jitter: self.cfg.retry_after_jitter,
                    });
                self.no_answer(request, ra, false);
            }
            Class::ClientBug => self.no_answer(request, None, true),
            // DpsTransient, and hub-only classes that cannot answer a DPS request.
            _ => self.no_answer(request, None, false),
        }
    }

    /// DPS did not answer the question. With a cached assignment the device goes back to the
    /// cached hub, and the gate closes for at least the retry-after (G10, G9, G6); without
    /// one, or while blocked, it repeats the request after a backoff (G5, G6).
    fn no_answer(&mut self, request: Next, ra: Option<RetryAfter>, slow: bool) {
        let fallback = self.s.cache.is_some() && !self.s.blocked;
        if fallback && !mutant!(self, RetryDpsWithoutFallback) {
            self.close_gate(ra);
            let d = self.fail_delay(None);
            self.schedule(Next::Connect, d);
            return;
        }
        let d = if slow {
            self.delay_on(self.cfg.slow, ra)
        } else {
            self.fail_delay(ra)
        };
        self.schedule(request, d);
    }

    /// Ends a round of the incident: the next registration waits `recheck_delay(rounds)`,
    /// and at least the retry-after plus jitter.
    fn close_gate(&mut self, ra: Option<RetryAfter>) {
        let wait = recheck_delay(self.s.rounds, &self.cfg.recheck, self.env.draw);
        let wait = ra.map_or(wait, |r| wait.max(r.value + self.env.draw.scale(r.jitter)));
        self.s.recheck_at = Some(self.env.now.plus(wait));
        self.s.rounds = (self.s.rounds + 1).min(saturation(&self.cfg.recheck));
    }

    /// True while a hub-side failure is being handled: a threshold counter is up, or a fresh
    /// token was refused.
    fn in_incident(&self) -> bool {
        self.s.unreachable > 0 || self.s.unavailable > 0 || self.s.auth == AuthStage::DpsAsked
    }

    fn clear_incident(&mut self) {
        self.s.unreachable = 0;
        self.s.unavailable = 0;
        self.s.auth = AuthStage::Clear;
        self.s.rounds = 0;
        self.s.recheck_at = None;
    }
}
