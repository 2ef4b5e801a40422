//! The transition function (SPEC §3): one pure `step` per input.

use alloc::vec::Vec;
use core::time::Duration;

use crate::backoff::{RetryAfter, backoff_mutated, saturation};
use crate::classify::{Class, classify};
use crate::config::Config;
use crate::io::{Action, Command, Env, Input};
use crate::mutation::Mutation;
use crate::state::{AuthStage, Next, Phase, State, Timer, Token};

/// The result of one step: the next state and the actions to perform, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The next state.
    pub state: State,
    /// What the driver must do, in order.
    pub actions: Vec<Action>,
}

/// The spec: the next state and the actions for one input, at `env.now`, with `env.draw`.
///
/// Total and deterministic. An input that does not apply in the current phase (a stale timer,
/// a late response, a duplicate) leaves the state unchanged and yields no action.
/// `cfg` must be valid ([`Config::validate`]).
pub fn step(cfg: &Config, state: &State, input: &Input, env: Env) -> Step {
    step_mutated(cfg, state, input, env, Mutation::None)
}

/// [`step`] on a state the caller gives up, so that nothing is copied: the same transition,
/// for drivers that keep one state per device (a fleet simulator steps millions of them).
pub fn step_owned(cfg: &Config, state: State, input: &Input, env: Env) -> Step {
    step_from(cfg, state, input, env, Mutation::None)
}

/// [`step`] with a seeded mutant (SPEC §7.3).
pub fn step_mutated(
    cfg: &Config,
    state: &State,
    input: &Input,
    env: Env,
    mutation: Mutation,
) -> Step {
    step_from(cfg, state.clone(), input, env, mutation)
}

fn step_from(cfg: &Config, state: State, input: &Input, env: Env, mutation: Mutation) -> Step {
    let mut cx = Cx {
        cfg,
        s: state,
        actions: Vec::new(),
        env,
        m: mutation,
    };
    cx.handle(input);
    Step {
        state: cx.s,
        actions: cx.actions,
    }
}

struct Cx<'a> {
    cfg: &'a Config,
    s: State,
    actions: Vec<Action>,
    env: Env,
    m: Mutation,
}

impl Cx<'_> {
    fn handle(&mut self, input: &Input) {
        if self.s.phase == Phase::Stopped {
            // G7: after a stop command, no further action. (The mutant keeps acting.)
            if self.m == Mutation::ActAfterStop
                && *input == Input::TimerFired(Timer::Wake)
                && self.fire(Timer::Wake)
            {
                self.start(Next::Register);
            }
            return;
        }
        match input {
            Input::Command(c) => self.command(*c),
            Input::TimerFired(t) => {
                if self.fire(*t) {
                    self.timer(*t);
                }
            }
            Input::Signal(sig) => self.signal(&classify(sig)),
        }
    }

    // ---- commands (SPEC §3.1) ----

    fn command(&mut self, c: Command) {
        match c {
            Command::Start => {
                if self.s.phase == Phase::Idle {
                    let next = if self.s.cache.is_some() {
                        Next::Connect
                    } else {
                        Next::Register
                    };
                    self.schedule(next, Duration::ZERO);
                }
            }
            Command::Stop => {
                if self.s.phase.is_in_flight() || matches!(self.s.phase, Phase::Connected { .. }) {
                    self.act(Action::Close);
                }
                if self.m != Mutation::ActAfterStop {
                    for t in Timer::ALL {
                        self.cancel(t);
                    }
                }
                self.s.phase = Phase::Stopped;
            }
            Command::ReprovisionNow => {
                if self.s.phase == Phase::Idle {
                    return;
                }
                self.abandon_current();
                self.invalidate();
                self.schedule(Next::Register, Duration::ZERO);
            }
        }
    }

    // ---- timers (SPEC §3.2) ----

    /// Consumes a firing: true when `t` was armed and its deadline has passed.
    fn fire(&mut self, t: Timer) -> bool {
        match self.s.timers.get(t) {
            Some(at) if at <= self.env.now => {
                self.s.timers.set(t, None);
                true
            }
            _ => false,
        }
    }

    fn timer(&mut self, t: Timer) {
        match (t, self.s.phase.clone()) {
            (Timer::Wake, Phase::Waiting { next }) => self.start(next),
            (Timer::AttemptTimeout, Phase::Connecting { .. }) => {
                self.act(Action::Close);
                self.hub_unreachable();
            }
            (Timer::AttemptTimeout, Phase::Registering) => {
                self.act(Action::Close);
                self.dps_answer(&Class::DpsTransient, Next::Register);
            }
            (Timer::AttemptTimeout, Phase::Polling { operation }) => {
                self.act(Action::Close);
                self.dps_answer(&Class::DpsTransient, Next::Poll { operation });
            }
            (Timer::Stable, Phase::Connected { .. }) => self.s.attempt = 0,
            (Timer::Renew, Phase::Connected { .. }) => self.renew(),
            // A timer that does not belong to the phase: the invariants rule it out.
            _ => {}
        }
    }

    // ---- wire signals (SPEC §3.3) ----

    fn signal(&mut self, class: &Class) {
        match (self.s.phase.clone(), class) {
            (Phase::Connecting { .. }, Class::Accepted) => {
                self.cancel(Timer::AttemptTimeout);
                self.connected();
            }
            (Phase::Connecting { .. }, Class::Unreachable) => {
                self.cancel(Timer::AttemptTimeout);
                self.hub_unreachable();
            }
            (Phase::Connecting { fresh_token }, Class::AuthRefused) => {
                self.cancel(Timer::AttemptTimeout);
                self.auth_refused(fresh_token);
            }
            (Phase::Connecting { .. }, Class::Unavailable) => {
                self.cancel(Timer::AttemptTimeout);
                self.unavailable();
            }
            (Phase::Connected { .. }, Class::Dropped) => {
                self.cancel(Timer::Stable);
                self.cancel(Timer::Renew);
                let d = self.fail_delay(None);
                self.schedule(Next::Connect, d);
            }
            (Phase::Connected { .. }, Class::RenewToken) => {
                self.cancel(Timer::Renew);
                self.renew();
            }
            (Phase::Registering, c) if is_dps(c) => {
                self.cancel(Timer::AttemptTimeout);
                self.dps_answer(c, Next::Register);
            }
            (Phase::Polling { operation }, c) if is_dps(c) => {
                self.cancel(Timer::AttemptTimeout);
                self.dps_answer(c, Next::Poll { operation });
            }
            // Stale, duplicate or out-of-phase signals, and request-level classes
            // (RequestTransient, Benign) leave the connection policy untouched.
            _ => {}
        }
    }

    fn connected(&mut self) {
        let now = self.env.now;
        self.s.phase = Phase::Connected { since: now };
        self.s.unreachable = 0;
        self.s.unavailable = 0;
        self.s.auth = AuthStage::Clear;
        self.s.blocked = false;
        if self.m == Mutation::ResetBackoffOnConnAck {
            self.s.attempt = 0;
        }
        self.arm(Timer::Stable, now.plus(self.cfg.stable_after));
        if self.m != Mutation::SkipTokenRenewal {
            let renew = self
                .s
                .token
                .map_or(now, |t| t.minted_at.plus(self.cfg.renew_after()));
            self.arm(Timer::Renew, renew.max(now));
        }
    }

    fn renew(&mut self) {
        self.act(Action::Close);
        self.cancel(Timer::Stable);
        self.schedule(Next::Connect, Duration::ZERO);
    }

    /// G1: the hub could not be reached.
    fn hub_unreachable(&mut self) {
        self.s.unreachable = (self.s.unreachable + 1).min(self.cfg.unreachable_threshold);
        let d = self.fail_delay(None);
        if self.s.unreachable >= self.cfg.unreachable_threshold
            && self.m != Mutation::NeverReprovisionOnUnreachable
        {
            self.invalidate();
            let d = self.paced(d);
            self.schedule(Next::Register, d);
        } else {
            self.schedule(Next::Connect, d);
        }
    }

    /// G3 and G5: CONNACK 1 or 3.
    fn unavailable(&mut self) {
        self.s.unavailable = (self.s.unavailable + 1).min(self.cfg.unavailable_threshold);
        let d = self.fail_delay(None);
        let reprovision = match self.m {
            Mutation::ReprovisionOnPlain500 => true,
            Mutation::NeverReprovisionOnConnack3 => false,
            _ => self.s.unavailable >= self.cfg.unavailable_threshold,
        };
        if reprovision {
            self.invalidate();
            let d = self.paced(d);
            self.schedule(Next::Register, d);
        } else {
            self.schedule(Next::Connect, d);
        }
    }

    /// G2: CONNACK 2, 4 or 5.
    fn auth_refused(&mut self, fresh_token: bool) {
        if self.m == Mutation::NoFreshTokenRetry {
            let d = self.fail_delay(None);
            self.schedule(Next::Connect, d);
            return;
        }
        match self.s.auth {
            AuthStage::Clear if !fresh_token => {
                self.s.auth = AuthStage::FreshTokenTried;
                self.schedule(Next::Connect, Duration::ZERO);
            }
            AuthStage::Clear | AuthStage::FreshTokenTried => {
                self.s.auth = AuthStage::DpsAsked;
                self.invalidate();
                let d = self.paced(Duration::ZERO);
                self.schedule(Next::Register, d);
            }
            AuthStage::DpsAsked => {
                let d = self.fail_delay(None);
                self.invalidate();
                let d = self.paced(d);
                self.schedule(Next::Register, d);
            }
        }
    }

    /// A DPS answer to the request `request` (SPEC §3.4).
    fn dps_answer(&mut self, class: &Class, request: Next) {
        match class {
            Class::Assigned(a) => {
                self.s.cache = Some(a.clone());
                self.act(Action::PersistAssignment(a.clone()));
                self.s.blocked = false;
                self.s.unreachable = 0;
                self.s.unavailable = 0;
                self.schedule(Next::Connect, Duration::ZERO);
            }
            Class::Assigning {
                operation,
                retry_after,
            } => {
                let wanted = match (self.m, retry_after) {
                    (Mutation::IgnoreRetryAfter, _) | (_, None) => self.cfg.dps_poll_default,
                    (_, Some(ra)) => *ra,
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
                if self.m == Mutation::GiveUpWhenBlocked {
                    self.s.blocked = true;
                    self.s.phase = Phase::Waiting {
                        next: Next::Register,
                    };
                    return;
                }
                self.s.blocked = true;
                self.invalidate();
                let d = self.fail_delay(None);
                self.schedule(Next::Register, d);
            }
            Class::Throttled { retry_after } => {
                let ra = retry_after.map(|v| RetryAfter {
                    value: v.min(self.cfg.max_retry_after),
                    jitter: self.cfg.retry_after_jitter,
                });
                let d = self.fail_delay(ra);
                self.schedule(request, d);
            }
            // DpsTransient, and hub-only classes that cannot answer a DPS request.
            _ => {
                let d = self.fail_delay(None);
                self.schedule(request, d);
            }
        }
    }

    // ---- helpers ----

    /// The backoff delay after a failure; advances the attempt number (G5, G4).
    fn fail_delay(&mut self, retry_after: Option<RetryAfter>) -> Duration {
        let blocked = self.s.blocked && self.m != Mutation::BlockedUsesFastProfile;
        let profile = self.cfg.profile(blocked);
        let d = backoff_mutated(self.s.attempt, profile, retry_after, self.env.draw, self.m);
        let limit = saturation(&self.cfg.fast).max(saturation(&self.cfg.slow));
        self.s.attempt = (self.s.attempt + 1).min(limit);
        d
    }

    /// Fleet pacing (SPEC §4.1): a hub failure is sending the device back to DPS, so the delay
    /// `d` widens to `draw * reprovision_spread` when that is longer. The same draw is used, so
    /// `Draw::MIN` still yields `d` and the result stays monotone in the draw.
    fn paced(&self, d: Duration) -> Duration {
        d.max(self.env.draw.scale(self.cfg.reprovision_spread))
    }

    /// Starts `next` after `delay`, but never sooner than the spacing allows (G7, G4).
    fn schedule(&mut self, next: Next, delay: Duration) {
        let mut at = self.env.now.plus(delay);
        let spaced = !matches!(next, Next::Poll { .. }) && self.m != Mutation::NoAttemptSpacing;
        if spaced && let Some(last) = self.s.last_attempt {
            let blocked = self.s.blocked && self.m != Mutation::BlockedUsesFastProfile;
            at = at.max(last.plus(self.cfg.spacing(blocked)));
        }
        if at <= self.env.now {
            self.start(next);
        } else {
            self.wait(next, at);
        }
    }

    fn wait(&mut self, next: Next, at: crate::Millis) {
        self.s.phase = Phase::Waiting { next };
        self.arm(Timer::Wake, at);
    }

    /// Starts an attempt now (the caller has honoured the spacing).
    fn start(&mut self, next: Next) {
        let now = self.env.now;
        match next {
            Next::Register => {
                self.act(Action::Register);
                self.s.phase = Phase::Registering;
                self.s.last_attempt = Some(now);
            }
            Next::Poll { operation } => {
                self.act(Action::Poll {
                    operation: operation.clone(),
                });
                self.s.phase = Phase::Polling { operation };
            }
            Next::Connect => {
                let Some(assignment) = self.s.cache.clone() else {
                    return self.start(Next::Register);
                };
                let stale = self
                    .s
                    .token
                    .is_none_or(|t| now >= t.minted_at.plus(self.cfg.renew_after()));
                let fresh = stale || self.s.auth != AuthStage::Clear;
                if fresh {
                    let expires_at = now.plus(self.cfg.token_ttl);
                    self.s.token = Some(Token {
                        minted_at: now,
                        expires_at,
                    });
                    self.act(Action::MintToken { expires_at });
                }
                self.act(Action::ConnectHub(assignment));
                self.s.phase = Phase::Connecting { fresh_token: fresh };
                self.s.last_attempt = Some(now);
            }
        }
        self.arm(Timer::AttemptTimeout, now.plus(self.cfg.attempt_timeout));
    }

    /// Closes whatever is open and disarms the phase's timers (before a forced transition).
    fn abandon_current(&mut self) {
        if self.s.phase.is_in_flight() || matches!(self.s.phase, Phase::Connected { .. }) {
            self.act(Action::Close);
        }
        for t in Timer::ALL {
            self.cancel(t);
        }
    }

    fn invalidate(&mut self) {
        if self.s.cache.take().is_some() {
            self.act(Action::InvalidateAssignment);
        }
    }

    fn act(&mut self, a: Action) {
        self.actions.push(a);
    }

    fn arm(&mut self, timer: Timer, at: crate::Millis) {
        self.s.timers.set(timer, Some(at));
        self.act(Action::ArmTimer { timer, at });
    }

    fn cancel(&mut self, t: Timer) {
        if self.s.timers.get(t).is_some() {
            self.s.timers.set(t, None);
            self.act(Action::CancelTimer(t));
        }
    }
}

fn is_dps(c: &Class) -> bool {
    matches!(
        c,
        Class::Assigned(_)
            | Class::Assigning { .. }
            | Class::Blocked
            | Class::Throttled { .. }
            | Class::DpsTransient
    )
}
