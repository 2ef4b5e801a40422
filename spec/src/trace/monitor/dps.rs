//! The monitor's DPS side: registrations (the G9 gate) and answers (G4, G6, G10).

use alloc::format;
use core::time::Duration;

use super::{Broken, Monitor, Next};
use crate::classify::Class;
use crate::config::Config;
use crate::guarantee::Guarantee;
use crate::time::Millis;
use crate::trace::observation::DpsAnswer;

impl Monitor {
    pub(super) fn register(
        &mut self,
        cfg: &Config,
        tol: Duration,
        at: Millis,
    ) -> Result<(), Broken> {
        // Retry-after first: a device that ignores it is reported for that (G6), even when
        // it also skipped its cached hub (G10).
        self.check_dps_not_before(tol, at)?;
        self.attempt_start(cfg, tol, at, false)?;
        let incident = self.unreachable > 0 || self.unavailable > 0 || self.auth_refusals > 0;
        if incident && self.known_hub.is_some() && !self.blocked {
            let k = self.questions;
            if k >= 1
                && let Some(last) = self.last_question
                && at.plus(tol) < last.plus(cfg.recheck_floor(k - 1))
            {
                return Err((
                    Guarantee::G9,
                    format!(
                        "DPS registration {} of the incident {} ms after the previous one",
                        k + 1,
                        at.0.saturating_sub(last.0)
                    ),
                ));
            }
            self.questions = k + 1;
            self.last_question = Some(at);
        }
        self.asked = true;
        self.question_due = None;
        self.assigned = None;
        Ok(())
    }

    pub(super) fn dps_answer(&mut self, cfg: &Config, at: Millis, answer: &DpsAnswer) {
        self.in_flight = None;
        let fallback = self.known_hub.is_some() && !self.blocked;
        match answer.class() {
            Class::Assigned(a) => {
                let incident =
                    self.unreachable > 0 || self.unavailable > 0 || self.auth_refusals > 0;
                let same = self.known_hub.as_deref() == Some(a.hub.as_str()) && incident;
                if !same {
                    self.clear_incident(true);
                }
                self.assigned_backoff = same;
                self.known_hub = Some(a.hub.clone());
                self.assigned = Some(a.hub);
                self.blocked = false;
                self.next = None;
                self.not_before = None;
                self.quiet_since = Some(at);
            }
            Class::Assigning { .. } => {}
            Class::Blocked => {
                self.blocked = true;
                self.clear_incident(true);
                self.next = None;
                self.quiet_since = Some(at);
            }
            Class::Throttled { retry_after } => {
                let wait = retry_after.unwrap_or_default().min(cfg.max_retry_after);
                self.dps_not_before = Some(at.plus(wait));
                self.next = Some(if fallback {
                    Next::Hub(Guarantee::G10)
                } else {
                    Next::Dps(Guarantee::G6)
                });
                self.quiet_since = Some(at);
            }
            class => {
                let floor = if class == Class::ClientBug && !fallback || self.blocked {
                    cfg.slow.floor
                } else {
                    cfg.fast.floor
                };
                let next = if fallback {
                    Next::Hub(Guarantee::G10)
                } else {
                    Next::Dps(Guarantee::G5)
                };
                self.failed(at, Some(next), floor);
            }
        }
    }
}
