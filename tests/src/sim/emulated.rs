//! The state machine that runs an emulation's [`Rules`] in the spec's vocabulary.

use std::time::Duration;

use hubswap_spec::{Action, Assignment, Class, Command, Env, Input, Millis, Timer, classify};

use super::emulation::{Reprovision, Rules};
use super::policy::{Policy, PolicyInfo};

/// An emulated policy: [`Rules`] read by one small state machine.
#[derive(Debug, Clone)]
pub struct Emulated {
    rules: Rules,
}

impl Emulated {
    /// The machine for these rules.
    pub fn new(rules: Rules) -> Self {
        Self { rules }
    }
}

/// The attempt a waiting device starts next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    Register,
    Poll(String),
    Connect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    Waiting(Next),
    Registering,
    Polling(String),
    Connecting,
    Connected,
}

/// What an emulated device remembers.
#[derive(Debug, Clone)]
pub struct EmuState {
    phase: Phase,
    cache: Option<Assignment>,
    hub_failures: u32,
    dps_failures: u32,
    outer: u32,
    first_failure: Option<Millis>,
    token_minted: Option<Millis>,
    /// Deadlines of `Wake`, `AttemptTimeout` and `Renew`.
    timers: [Option<Millis>; 3],
}

fn slot(t: Timer) -> Option<usize> {
    match t {
        Timer::Wake => Some(0),
        Timer::AttemptTimeout => Some(1),
        Timer::Renew => Some(2),
        Timer::Stable => None,
    }
}

struct Cx<'a> {
    r: &'a Rules,
    s: &'a mut EmuState,
    env: Env,
    out: &'a mut Vec<Action>,
}

impl Policy for Emulated {
    type State = EmuState;

    fn info(&self) -> PolicyInfo {
        PolicyInfo {
            name: self.rules.name.to_owned(),
            label: self.rules.label.to_owned(),
            source: self.rules.source.to_owned(),
        }
    }

    fn init(&self, cache: Option<Assignment>) -> EmuState {
        EmuState {
            phase: Phase::Idle,
            cache,
            hub_failures: 0,
            dps_failures: 0,
            outer: 0,
            first_failure: None,
            token_minted: None,
            timers: [None; 3],
        }
    }

    fn step(&self, state: &mut EmuState, input: &Input, env: Env, out: &mut Vec<Action>) {
        let mut cx = Cx {
            r: &self.rules,
            s: state,
            env,
            out,
        };
        cx.handle(input);
    }

    fn renew_after(&self) -> Duration {
        self.rules.renew_after
    }
}

impl Cx<'_> {
    fn handle(&mut self, input: &Input) {
        match input {
            Input::Command(Command::Start) if self.s.phase == Phase::Idle => {
                if self.s.cache.is_some() {
                    self.start(Next::Connect);
                } else {
                    self.start(Next::Register);
                }
            }
            Input::Command(_) => {}
            Input::TimerFired(t) => {
                let Some(i) = slot(*t) else { return };
                match self.s.timers[i] {
                    Some(at) if at <= self.env.now => self.s.timers[i] = None,
                    _ => return,
                }
                self.timer(*t);
            }
            Input::Signal(sig) => self.signal(&classify(sig)),
        }
    }

    fn timer(&mut self, t: Timer) {
        match (t, self.s.phase.clone()) {
            (Timer::Wake, Phase::Waiting(next)) => self.start(next),
            (Timer::AttemptTimeout, Phase::Connecting) => {
                self.out.push(Action::Close);
                self.hub_failure(false);
            }
            (Timer::AttemptTimeout, Phase::Registering | Phase::Polling(_)) => {
                self.out.push(Action::Close);
                self.dps_failure();
            }
            (Timer::Renew, Phase::Connected) => {
                self.out.push(Action::Close);
                self.start(Next::Connect);
            }
            _ => {}
        }
    }

    fn signal(&mut self, class: &Class) {
        let phase = self.s.phase.clone();
        let request = match &phase {
            Phase::Registering => Some(Next::Register),
            Phase::Polling(op) => Some(Next::Poll(op.clone())),
            _ => None,
        };
        match (phase, class) {
            (Phase::Connecting, Class::Accepted) => {
                self.cancel(Timer::AttemptTimeout);
                self.connected();
            }
            (Phase::Connecting, Class::Unreachable | Class::Unavailable) => {
                self.cancel(Timer::AttemptTimeout);
                self.hub_failure(false);
            }
            (Phase::Connecting, Class::AuthRefused) => {
                self.cancel(Timer::AttemptTimeout);
                self.hub_failure(true);
            }
            (Phase::Connected, Class::Dropped) => {
                self.cancel(Timer::Renew);
                self.hub_failure(false);
            }
            (Phase::Registering | Phase::Polling(_), c) => {
                let Some(request) = request else { return };
                self.cancel(Timer::AttemptTimeout);
                match c {
                    Class::Assigned(a) => {
                        self.s.cache = Some(a.clone());
                        self.out.push(Action::PersistAssignment(a.clone()));
                        self.s.dps_failures = 0;
                        self.s.hub_failures = 0;
                        self.start(Next::Connect);
                    }
                    Class::Assigning {
                        operation,
                        retry_after,
                    } => {
                        let d = self.retry_after(*retry_after);
                        self.wait(Next::Poll(operation.clone()), d);
                    }
                    Class::Throttled { retry_after } => {
                        let d = self.retry_after(*retry_after);
                        self.wait(request, d);
                    }
                    _ => self.dps_failure(),
                }
            }
            _ => {}
        }
    }

    fn retry_after(&self, ra: Option<Duration>) -> Duration {
        let (lo, hi) = self.r.retry_after_range;
        match ra {
            Some(d) if (lo..=hi).contains(&d.as_secs()) => d,
            _ => self.r.retry_after_fallback,
        }
    }

    fn connected(&mut self) {
        self.s.phase = Phase::Connected;
        self.s.hub_failures = 0;
        self.s.dps_failures = 0;
        self.s.outer = 0;
        self.s.first_failure = None;
        let now = self.env.now;
        let renew = self
            .s
            .token_minted
            .map_or(now, |m| m.plus(self.r.renew_after));
        self.arm(Timer::Renew, renew.max(now));
    }

    fn hub_failure(&mut self, auth: bool) {
        self.s.hub_failures += 1;
        let n = self.s.hub_failures - 1;
        let now = self.env.now;
        let first = *self.s.first_failure.get_or_insert(now);
        let delay = self.r.hub_retry.delay(n, self.env.draw);
        match self.r.reprovision {
            Reprovision::AfterFailures(k) if self.s.hub_failures >= k => self.reprovision(),
            Reprovision::OnAuthRefused if auth => self.reprovision(),
            Reprovision::WhenDelayExceeds(x) if delay > x => self.reprovision(),
            Reprovision::EveryFailure => self.reprovision(),
            Reprovision::AfterElapsed { step, cap, .. } if self.s.outer > 0 => {
                self.invalidate();
                self.outer_wait(step, cap);
            }
            Reprovision::AfterElapsed { after, .. } if now.since(first) >= after => {
                self.s.outer = 1;
                self.reprovision();
            }
            _ => self.wait(Next::Connect, delay),
        }
    }

    fn dps_failure(&mut self) {
        self.s.dps_failures += 1;
        match self.r.reprovision {
            Reprovision::AfterElapsed { step, cap, .. } if self.s.outer > 0 => {
                self.outer_wait(step, cap);
            }
            _ => {
                let d = self
                    .r
                    .dps_retry
                    .delay(self.s.dps_failures - 1, self.env.draw);
                self.wait(Next::Register, d);
            }
        }
    }

    /// The device bridge's outer loop: full jitter over `min(step * k, cap)`.
    fn outer_wait(&mut self, step: Duration, cap: Duration) {
        self.s.outer += 1;
        let window = step.saturating_mul(self.s.outer - 1).min(cap);
        let d = self.env.draw.scale(window);
        self.wait(Next::Register, d);
    }

    fn reprovision(&mut self) {
        self.invalidate();
        self.s.hub_failures = 0;
        self.start(Next::Register);
    }

    fn invalidate(&mut self) {
        if self.s.cache.take().is_some() {
            self.out.push(Action::InvalidateAssignment);
        }
    }

    fn wait(&mut self, next: Next, d: Duration) {
        if d.is_zero() {
            self.start(next);
        } else {
            self.s.phase = Phase::Waiting(next);
            self.arm(Timer::Wake, self.env.now.plus(d));
        }
    }

    fn start(&mut self, next: Next) {
        let now = self.env.now;
        match next {
            Next::Register => {
                self.out.push(Action::Register);
                self.s.phase = Phase::Registering;
            }
            Next::Poll(operation) => {
                self.out.push(Action::Poll {
                    operation: operation.clone(),
                });
                self.s.phase = Phase::Polling(operation);
            }
            Next::Connect => {
                let Some(a) = self.s.cache.clone() else {
                    return self.start(Next::Register);
                };
                let stale = self
                    .s
                    .token_minted
                    .is_none_or(|m| now >= m.plus(self.r.renew_after));
                if stale {
                    self.s.token_minted = Some(now);
                    self.out.push(Action::MintToken {
                        expires_at: now.plus(self.r.token_ttl),
                    });
                }
                self.out.push(Action::ConnectHub(a));
                self.s.phase = Phase::Connecting;
            }
        }
        self.arm(Timer::AttemptTimeout, now.plus(self.r.attempt_timeout));
    }

    fn arm(&mut self, t: Timer, at: Millis) {
        if let Some(i) = slot(t) {
            self.s.timers[i] = Some(at);
            self.out.push(Action::ArmTimer { timer: t, at });
        }
    }

    fn cancel(&mut self, t: Timer) {
        if let Some(i) = slot(t)
            && self.s.timers[i].take().is_some()
        {
            self.out.push(Action::CancelTimer(t));
        }
    }
}
