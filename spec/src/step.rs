//! The transition function (SPEC §3): one pure `step` per input.
//!
//! The policy in one paragraph: the cached assignment survives every hub failure and is
//! replaced only by a DPS answer (G10). A hub failure retries the same hub with fast backoff;
//! at the G1/G3 threshold, or when a fresh token is refused (G2), the device *asks* DPS, after
//! a jittered delay. If DPS sends it back to the hub that refused, or does not answer, the
//! failure is hub-side: the device keeps its escalation, goes back to the cached hub, and the
//! next DPS registration of the incident waits for the gate, which doubles each round (G9).

use alloc::vec::Vec;
use core::time::Duration;

use crate::backoff::{RetryAfter, saturation};
use crate::classify::{Class, classify};
use crate::config::{Config, CredentialKind, Profile};
use crate::io::{Action, Command, Env, Input};
#[cfg(feature = "verification")]
use crate::mutation::Mutation;
use crate::state::{AuthStage, Next, Phase, State, Timer, Token};

mod dps;

pub use crate::backoff::recheck_delay;

/// Whether the seeded mutant `$m` is active. Without the `verification` feature this is the
/// literal `false`: the default build has no mutation branch.
#[cfg(feature = "verification")]
macro_rules! mutant {
    ($cx:expr, $m:ident) => {
        $cx.m == Mutation::$m
    };
}
#[cfg(not(feature = "verification"))]
macro_rules! mutant {
    ($cx:expr, $m:ident) => {
        false
    };
}
pub(crate) use mutant;

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
    step_owned(cfg, state.clone(), input, env)
}

/// [`step`] on a state the caller gives up, so that nothing is copied: the same transition,
/// for drivers that keep one state per device (a fleet simulator steps millions of them).
pub fn step_owned(cfg: &Config, state: State, input: &Input, env: Env) -> Step {
    let mut cx = Cx {
        cfg,
        s: state,
        actions: Vec::new(),
        env,
        #[cfg(feature = "verification")]
        m: Mutation::None,
    };
    cx.handle(input);
    Step {
        state: cx.s,
        actions: cx.actions,
    }
}

/// [`step`] with a seeded mutant (SPEC §7.3); only with the `verification` feature.
#[cfg(feature = "verification")]
pub fn step_mutated(
    cfg: &Config,
    state: &State,
    input: &Input,
    env: Env,
    mutation: Mutation,
) -> Step {
    let mut cx = Cx {
        cfg,
        s: state.clone(),
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
    #[cfg(feature = "verification")]
    m: Mutation,
}

impl Cx<'_> {
    fn handle(&mut self, input: &Input) {
        if self.s.phase == Phase::Stopped {
            // G7: after a stop command, no further action. (The mutant keeps acting.)
            if mutant!(self, ActAfterStop)
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
                if !mutant!(self, ActAfterStop) {
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
                self.s.rounds = 0;
                self.s.recheck_at = None;
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
            (Timer::Stable, Phase::Connected { .. }) => {
                self.s.attempt = 0;
                self.s.rounds = 0;
                self.s.recheck_at = None;
            }
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
            (Phase::Connecting { .. }, Class::ClientBug) => {
                // Not a reason to ask DPS; but a question the incident already owes stands.
                self.cancel(Timer::AttemptTimeout);
                let d = self.delay_on(self.cfg.slow, None);
                let owed = self.owed();
                self.hub_failed(owed, d, false);
            }
            (Phase::Connected { .. }, Class::Dropped) => {
                self.cancel(Timer::Stable);
                self.cancel(Timer::Renew);
                let d = self.fail_delay(None);
                self.schedule(Next::Connect, d);
            }
            (Phase::Connected { .. }, Class::RenewToken)
                if self.cfg.credential == CredentialKind::Sas =>
            {
                self.cancel(Timer::Renew);
                self.renew();
            }
            (Phase::Registering, c) if c.is_dps_answer() => {
                self.cancel(Timer::AttemptTimeout);
                self.dps_answer(c, Next::Register);
            }
            (Phase::Polling { operation }, c) if c.is_dps_answer() => {
                self.cancel(Timer::AttemptTimeout);
                self.dps_answer(c, Next::Poll { operation });
            }
            // Stale, duplicate or out-of-phase signals, and request-level classes
            // (RequestTransient, RequestRejected, Benign) leave the connection policy untouched.
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
        if mutant!(self, ResetBackoffOnConnAck) {
            self.s.attempt = 0;
        }
        self.arm(Timer::Stable, now.plus(self.cfg.stable_after));
        if self.cfg.credential == CredentialKind::Sas && !mutant!(self, SkipTokenRenewal) {
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
        let ask = self.owed();
        self.hub_failed(ask, d, true);
    }

    /// G3 and G5: CONNACK 3 (and codes MQTT 3.1.1 does not define).
    fn unavailable(&mut self) {
        self.s.unavailable = (self.s.unavailable + 1).min(self.cfg.unavailable_threshold);
        let d = self.fail_delay(None);
        let ask = self.owed() || mutant!(self, AskDpsOnPlain500);
        self.hub_failed(ask, d, true);
    }

    /// True when the incident owes DPS a question: a G1 or G3 threshold is reached, or a
    /// fresh token was refused (G2).
    fn owed(&self) -> bool {
        let unreachable = self.s.unreachable >= self.cfg.unreachable_threshold
            && !mutant!(self, NeverAskDpsOnUnreachable);
        let unavailable = self.s.unavailable >= self.cfg.unavailable_threshold
            && !mutant!(self, NeverAskDpsOnConnack3);
        unreachable || unavailable || self.s.auth == AuthStage::DpsAsked
    }

    /// G2: CONNACK 2, 4 or 5.
    fn auth_refused(&mut self, fresh_token: bool) {
        if mutant!(self, NoFreshTokenRetry) {
            let d = self.fail_delay(None);
            self.schedule(Next::Connect, d);
            return;
        }
        let sas = self.cfg.credential == CredentialKind::Sas;
        if sas && self.s.auth == AuthStage::Clear && !fresh_token {
            self.s.auth = AuthStage::FreshTokenTried;
            self.schedule(Next::Connect, Duration::ZERO);
            return;
        }
        self.s.auth = AuthStage::DpsAsked;
        let d = self.fail_delay(None);
        self.hub_failed(true, d, true);
    }

    /// After a hub failure: ask DPS when the threshold says so and the gate is open (G9),
    /// otherwise back off on the same hub. The cache is kept either way (G10). With `early`,
    /// a gate that opens within `d` is met when it opens.
    fn hub_failed(&mut self, ask: bool, d: Duration, early: bool) {
        if mutant!(self, InvalidateOnHubFailure) && ask {
            self.invalidate();
        }
        let at = self.env.now.plus(d);
        let open = self.s.recheck_at.is_none_or(|t| at >= t) || mutant!(self, NoGate);
        if !(ask && open) {
            return self.schedule(Next::Connect, d);
        }
        let paced = self.paced(d);
        if paced > d && self.s.recheck_at.is_none() {
            // Fleet pacing (SPEC §4.1): the incident's first question waits for its paced
            // time, and the cached hub is tried meanwhile.
            self.s.recheck_at = Some(self.env.now.plus(paced));
            return self.schedule(Next::Connect, d);
        }
        // The gate opens within `d`: ask when it opens, not a whole backoff later.
        let now = self.env.now;
        let wait = match self.s.recheck_at {
            Some(t) if t > now && early => t.since(now).min(d),
            _ => d,
        };
        self.schedule(Next::Register, wait);
    }

    // ---- helpers ----

    /// The backoff delay after a failure on the profile in force; advances the attempt number.
    fn fail_delay(&mut self, retry_after: Option<RetryAfter>) -> Duration {
        let blocked = self.s.blocked && !mutant!(self, BlockedUsesFastProfile);
        let profile = *self.cfg.profile(blocked);
        self.delay_on(profile, retry_after)
    }

    /// The backoff delay on `profile`; advances the attempt number (G5, G4).
    fn delay_on(&mut self, profile: Profile, retry_after: Option<RetryAfter>) -> Duration {
        let d = self.backoff(self.s.attempt, &profile, retry_after);
        let limit = saturation(&self.cfg.fast).max(saturation(&self.cfg.slow));
        self.s.attempt = (self.s.attempt + 1).min(limit);
        d
    }

    /// [`crate::backoff()`] with the input's draw. The one production path; a seeded mutant
    /// (feature `verification`) branches off before it.
    fn backoff(&self, attempt: u32, p: &Profile, ra: Option<RetryAfter>) -> Duration {
        #[cfg(feature = "verification")]
        if self.m != Mutation::None {
            let never_grows = self.m == Mutation::FastBackoffNeverGrows && *p == self.cfg.fast;
            let attempt = if never_grows { 0 } else { attempt };
            return crate::backoff::backoff_mutated(attempt, p, ra, self.env.draw, self.m);
        }
        crate::backoff::backoff(attempt, p, ra, self.env.draw)
    }

    /// Fleet pacing (SPEC §4.1): a hub failure is sending the device to DPS, so the delay `d`
    /// widens to `draw * reprovision_spread` when that is longer. The same draw is used, so
    /// `Draw::MIN` still yields `d` and the result stays monotone in the draw.
    fn paced(&self, d: Duration) -> Duration {
        d.max(self.env.draw.scale(self.cfg.reprovision_spread))
    }

    /// Starts `next` after `delay`, but never sooner than the spacing allows (G7, G4).
    fn schedule(&mut self, next: Next, delay: Duration) {
        let mut at = self.env.now.plus(delay);
        let spaced = !matches!(next, Next::Poll { .. }) && !mutant!(self, NoAttemptSpacing);
        if spaced && let Some(last) = self.s.last_attempt {
            let blocked = self.s.blocked && !mutant!(self, BlockedUsesFastProfile);
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
                let fresh = self.cfg.credential == CredentialKind::Sas
                    && (self.s.auth != AuthStage::Clear
                        || self
                            .s
                            .token
                            .is_none_or(|t| now >= t.minted_at.plus(self.cfg.renew_after())));
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
