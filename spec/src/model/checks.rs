//! The checks every move of the model passes (SPEC §7.1): state invariants, the trace monitor
//! fed with what the cloud saw, and the ghosts for what the cloud cannot see or the monitor
//! does not bound tightly (jitter, growth and caps per profile, the DPS gate, the cache, and
//! the time-bounded liveness).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use super::ghost::Ghost;
use super::{Instance, Move, World};
use crate::backoff::{Draw, ceiling, saturation};
use crate::classify::{Class, DpsReply, WireSignal, classify};
use crate::config::Profile;
use crate::guarantee::Guarantee;
use crate::invariants;
use crate::io::{Action, Command, Input};
use crate::state::{Next, Phase, Timer};
use crate::time::{Millis, ms};
use crate::trace::{Credential, DpsAnswer, DpsRequest, Observed, Side, TraceCheck};

type Broken = (Guarantee, String);

impl Instance {
    pub(super) fn check(
        &self,
        before: &World,
        after: &mut World,
        mv: &Move,
        now: Millis,
        actions: &[Action],
        seen: &mut Vec<Observed>,
    ) -> Result<(), Broken> {
        if before.stopped && !actions.is_empty() {
            return Err((Guarantee::G7, "acted after stop".to_string()));
        }
        if let Input::Command(c) = &mv.input {
            if *c == Command::Stop {
                after.stopped = true;
            }
            after.monitor.app_intervened();
            after.ghost = Ghost {
                good_for: after.ghost.good_for,
                ..Ghost::default()
            };
        }
        invariants::check(&self.cfg, &after.device).map_err(|v| (v.guarantee(), v.to_string()))?;
        if after.device.attempt < before.device.attempt
            && mv.input != Input::TimerFired(Timer::Stable)
        {
            return Err((
                Guarantee::G7,
                "backoff reset before the connection was stable".to_string(),
            ));
        }
        self.check_delays(before, after, mv, now, actions)?;
        Self::check_cache(before, after, mv, actions)?;
        self.check_dps_ghosts(before, after, mv, now, actions)?;
        self.check_recovery(after, mv)?;
        let check = TraceCheck {
            config: self.cfg.clone(),
            tolerance: Duration::ZERO,
        };
        for ev in Self::observations(before, after, mv, now, actions) {
            seen.push(ev.clone());
            after.monitor.observe(&check, now, &ev)?;
        }
        Ok(())
    }

    /// Full jitter (G7), and growth and caps per profile (G5 fast, G4 slow): after a
    /// failure, the smallest draw waits the floor, the longest waits the ceiling of the
    /// attempt number, and nothing waits longer than the cap.
    fn check_delays(
        &self,
        before: &World,
        after: &World,
        mv: &Move,
        now: Millis,
        actions: &[Action],
    ) -> Result<(), Broken> {
        let Some(class) = failure_class(mv) else {
            return Ok(());
        };
        let failure = matches!(
            class,
            Class::Unreachable
                | Class::Unavailable
                | Class::Dropped
                | Class::Blocked
                | Class::DpsTransient
                | Class::ClientBug
        );
        if !failure || !before.device.phase.is_in_flight() && class != Class::Dropped {
            return Ok(());
        }
        let Some(wake) = actions.iter().find_map(|a| match a {
            Action::ArmTimer {
                timer: Timer::Wake,
                at,
            } => Some(*at),
            _ => None,
        }) else {
            return Ok(());
        };
        let delay = wake.since(now);
        let (profile, g): (&Profile, _) = match (&class, &after.device.phase) {
            (
                Class::ClientBug,
                Phase::Waiting {
                    next: Next::Connect,
                },
            ) if matches!(before.device.phase, Phase::Connecting { .. }) => {
                (&self.cfg.slow, Guarantee::G5)
            }
            (
                _,
                Phase::Waiting {
                    next: Next::Connect,
                },
            ) => (&self.cfg.fast, Guarantee::G5),
            (
                _,
                Phase::Waiting {
                    next: Next::Register,
                },
            ) if after.device.blocked => (&self.cfg.slow, Guarantee::G4),
            (
                _,
                Phase::Waiting {
                    next: Next::Register,
                },
            ) => {
                let floor = if class == Class::ClientBug {
                    self.cfg.slow.floor
                } else {
                    self.cfg.fast.floor
                };
                if mv.draw == Draw::MIN && delay > floor {
                    return Err((
                        Guarantee::G7,
                        "the smallest draw did not give the floor".into(),
                    ));
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let spacing = self.cfg.spacing(after.device.blocked);
        if mv.draw == Draw::MIN && delay > profile.floor.max(spacing) {
            return Err((
                Guarantee::G7,
                "the smallest draw did not give the floor: jitter lost".to_string(),
            ));
        }
        if delay > profile.cap.max(spacing) {
            return Err((g, alloc::format!("waited {delay:?}, over the cap")));
        }
        let top = ceiling(before.device.attempt, profile);
        if mv.draw == Draw::MAX && delay < top {
            return Err((
                g,
                alloc::format!("the longest draw waited {delay:?}, below the ceiling {top:?}"),
            ));
        }
        Ok(())
    }

    /// G10: only a DPS assignment (or the application) changes the cache, and an unanswered
    /// DPS request sends a device with a cache back to its hub.
    fn check_cache(
        before: &World,
        after: &World,
        mv: &Move,
        actions: &[Action],
    ) -> Result<(), Broken> {
        let app = mv.input == Input::Command(Command::ReprovisionNow);
        let class = failure_class(mv);
        let assigned = matches!(class, Some(Class::Assigned(_)));
        if after.device.cache != before.device.cache && !assigned && !app {
            return Err((Guarantee::G10, "the cache changed without DPS".to_string()));
        }
        if actions.contains(&Action::InvalidateAssignment) && !app {
            return Err((Guarantee::G10, "the cache was invalidated".to_string()));
        }
        let dps_phase = matches!(
            before.device.phase,
            Phase::Registering | Phase::Polling { .. }
        );
        let unanswered = matches!(
            class,
            Some(Class::DpsTransient | Class::Throttled { .. } | Class::ClientBug)
        );
        let to_hub = matches!(
            after.device.phase,
            Phase::Waiting {
                next: Next::Connect
            } | Phase::Connecting { .. }
        );
        if dps_phase
            && unanswered
            && before.device.cache.is_some()
            && !before.device.blocked
            && !to_hub
        {
            return Err((
                Guarantee::G10,
                "DPS did not answer, and the device did not go back to its cached hub".to_string(),
            ));
        }
        Ok(())
    }

    /// G6 (retry-after plus jitter, with the longest draw) and G9 (the gate's lower bound).
    fn check_dps_ghosts(
        &self,
        before: &World,
        after: &mut World,
        mv: &Move,
        now: Millis,
        actions: &[Action],
    ) -> Result<(), Broken> {
        let cfg = &self.cfg;
        let registers = actions.contains(&Action::Register);
        let dps = registers || actions.iter().any(|a| matches!(a, Action::Poll { .. }));
        if dps
            && let Some(t) = after.ghost.dps_not_before.take()
            && now < t
        {
            return Err((Guarantee::G6, "no jitter on top of retry-after".to_string()));
        }
        let class = match &mv.input {
            Input::Signal(sig) => Some(classify(sig)),
            _ => None,
        };
        match &class {
            Some(Class::Throttled {
                retry_after: Some(ra),
            }) if mv.draw == Draw::MAX => {
                let wait = (*ra).min(cfg.max_retry_after) + cfg.retry_after_jitter;
                after.ghost.dps_not_before = Some(now.plus(wait));
            }
            Some(Class::Accepted | Class::Blocked) => {
                after.ghost.questions = 0;
                after.ghost.last_question = None;
            }
            Some(Class::Assigned(a)) if before.device.cache.as_ref() != Some(a) => {
                after.ghost.questions = 0;
                after.ghost.last_question = None;
            }
            _ => {}
        }
        let question = registers
            && before.device.cache.is_some()
            && !before.device.blocked
            && !matches!(mv.input, Input::Command(_));
        if question {
            let k = after.ghost.questions;
            if k >= 1
                && let Some(last) = after.ghost.last_question
                && now < last.plus(cfg.recheck_floor(k - 1))
            {
                return Err((
                    Guarantee::G9,
                    alloc::format!(
                        "DPS registration {} of the incident {:?} after the previous one",
                        k + 1,
                        now.since(last)
                    ),
                ));
            }
            after.ghost.questions = (k + 1).min(saturation(&cfg.recheck) + 1);
            after.ghost.last_question = Some(now);
        }
        Ok(())
    }

    /// G8, time-bounded: once the cloud behaves, the device is connected within
    /// `recovery_bound`.
    fn check_recovery(&self, after: &mut World, mv: &Move) -> Result<(), Broken> {
        if !self.time_bound {
            return Ok(());
        }
        after.ghost.good_for = if !mv.good || after.is_connected() {
            0
        } else {
            after.ghost.good_for + mv.advance
        };
        let bound = ms(self.cfg.recovery_bound());
        if after.ghost.good_for > bound {
            return Err((
                Guarantee::G8,
                alloc::format!("not connected {bound} ms after the cloud behaved"),
            ));
        }
        Ok(())
    }

    /// What the cloud saw in this move, in order.
    fn observations(
        before: &World,
        after: &mut World,
        mv: &Move,
        now: Millis,
        actions: &[Action],
    ) -> Vec<Observed> {
        let mut obs = Vec::new();
        let was = &before.device.phase;
        match &mv.input {
            Input::Signal(WireSignal::ConnAck(code)) => obs.push(Observed::ConnAck { code: *code }),
            Input::Signal(WireSignal::ConnectFailed(_)) => obs.push(Self::refused(before)),
            Input::Signal(WireSignal::ConnectionLost) => {
                obs.push(Observed::Disconnect { by: Side::Cloud });
            }
            Input::Signal(WireSignal::Dps(reply)) => obs.push(Observed::DpsResponse(answer(reply))),
            Input::Signal(WireSignal::DpsConnAck(code)) => {
                obs.push(Observed::DpsResponse(DpsAnswer::Refused { code: *code }));
            }
            Input::TimerFired(Timer::AttemptTimeout) => match was {
                Phase::Connecting { .. } => obs.push(Self::refused(before)),
                Phase::Registering | Phase::Polling { .. } => {
                    obs.push(Observed::DpsResponse(DpsAnswer::Dropped));
                }
                _ => {}
            },
            _ => {}
        }
        let mut expiry = None;
        for a in actions {
            match a {
                Action::Register => obs.push(Observed::DpsRequest(DpsRequest::Register)),
                Action::Poll { .. } => obs.push(Observed::DpsRequest(DpsRequest::Poll)),
                Action::MintToken { expires_at } => {
                    after.fingerprint = !after.fingerprint;
                    expiry = Some(*expires_at);
                }
                Action::ConnectHub(a) => {
                    let credential = after.device.token.map(|t| Credential {
                        fingerprint: u64::from(after.fingerprint),
                        valid_for: expiry.unwrap_or(t.expires_at).since(now),
                    });
                    obs.push(Observed::HubConnect {
                        hub: a.hub.clone(),
                        credential,
                    });
                }
                Action::Close if matches!(was, Phase::Connected { .. }) || was.is_in_flight() => {
                    obs.push(Observed::Disconnect { by: Side::Device });
                }
                _ => {}
            }
        }
        obs
    }

    fn refused(before: &World) -> Observed {
        let hub = before
            .device
            .cache
            .as_ref()
            .map_or_else(String::new, |a| a.hub.clone());
        Observed::HubRefused { hub }
    }
}

/// The class a move hands the spec: a signal's, and an abandoned attempt's, which the spec
/// treats as no answer (a hub connect's is `Unreachable`, but both are failures).
fn failure_class(mv: &Move) -> Option<Class> {
    match &mv.input {
        Input::Signal(sig) => Some(classify(sig)),
        Input::TimerFired(Timer::AttemptTimeout) => Some(Class::DpsTransient),
        _ => None,
    }
}

/// What the cloud recorded for a DPS reply.
fn answer(reply: &DpsReply) -> DpsAnswer {
    match reply {
        DpsReply::Assigned(a) => DpsAnswer::Assigned { hub: a.hub.clone() },
        DpsReply::Assigning { .. } => DpsAnswer::Assigning,
        DpsReply::Failed { error_code } => DpsAnswer::Failed {
            error_code: *error_code,
        },
        DpsReply::Disabled => DpsAnswer::Disabled,
        DpsReply::Status {
            status,
            retry_after,
        } => DpsAnswer::Status {
            status: *status,
            retry_after: *retry_after,
        },
    }
}
