//! The finite instance that the model checks explore (SPEC §7.1).
//!
//! A [`World`] is the spec's [`State`] plus an adversarial cloud and ghost observers. The
//! cloud may answer any attempt in flight with a representative of every class, or stay
//! silent until the attempt times out, and may drop a live connection. Time is abstract:
//! answers arrive at once, and only timers move the clock, to the earliest deadline. After each
//! move, the world is shifted so that "now" is always [`ORIGIN`]; with bounded delays
//! and saturating counters this makes the state space finite.
//!
//! Every move is checked three ways: the state invariants ([`crate::invariants`]), the trace
//! monitor fed with what the cloud saw ([`crate::trace::Monitor`]), and the model-only ghosts
//! (stop is final, full jitter, the backoff only resets once stable).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use crate::backoff::Draw;
use crate::classify::{ConnectFailure, DpsReply, WireSignal};
use crate::config::{Config, CredentialKind, Profile};
use crate::guarantee::Guarantee;
use crate::io::{Command, Env, Input};
use crate::mutation::Mutation;
use crate::state::{Assignment, Next, Phase, State, Timer};
use crate::step::step_mutated;
use crate::time::Millis;
use crate::trace::{Monitor, Observed, TraceCheck};

mod checks;
mod ghost;

pub use ghost::Ghost;

/// The parameters of the finite instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The spec config, with small delays.
    pub cfg: Config,
    /// The hubs DPS can assign.
    pub hubs: Vec<String>,
    /// The random draws the cloud may hand in (the extremes of each jitter window).
    pub draws: Vec<Draw>,
    /// Whether the application may issue Stop and `ReprovisionNow` at any time.
    pub app_commands: bool,
    /// The mutant under test ([`Mutation::None`] for the faithful spec).
    pub mutation: Mutation,
    /// Whether the G8 ghost measures how long the cloud has behaved (the time-bounded
    /// liveness of stateright). The SPIN export leaves it out: SPIN checks unbounded
    /// liveness, and the ghost would multiply its graph.
    pub time_bound: bool,
}

/// Where "now" sits after every move. Remembered times older than the horizon that can
/// still matter are clamped (see [`Instance::normalize`]), so 60 s of history is plenty.
pub const ORIGIN: u64 = 60_000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl Instance {
    /// The instance SPEC §7.1 states: 2 hubs, thresholds 2, delays in whole seconds.
    pub fn standard(mutation: Mutation) -> Self {
        let cfg = Config {
            unreachable_threshold: 2,
            unavailable_threshold: 2,
            fast: Profile {
                floor: secs(1),
                initial: secs(1),
                cap: secs(4),
            },
            slow: Profile {
                floor: secs(8),
                initial: secs(8),
                cap: secs(16),
            },
            min_attempt_spacing: secs(1),
            stable_after: secs(5),
            attempt_timeout: secs(3),
            token_ttl: secs(10),
            renew_at_percent: 80,
            retry_after_jitter: secs(1),
            max_retry_after: secs(6),
            dps_poll_default: secs(1),
            reprovision_spread: secs(6),
            recheck: Profile {
                floor: secs(2),
                initial: secs(4),
                cap: secs(8),
            },
            credential: CredentialKind::Sas,
        };
        Self {
            cfg,
            hubs: alloc::vec!["hub-a".to_string(), "hub-b".to_string()],
            draws: alloc::vec![Draw::MIN, Draw::MAX],
            app_commands: true,
            mutation,
            time_bound: true,
        }
    }

    /// The standard instance for an X.509 device: no tokens, no fresh-token retry, no renewal.
    pub fn x509(mutation: Mutation) -> Self {
        let mut i = Self::standard(mutation);
        i.cfg.credential = CredentialKind::X509;
        i
    }

    /// The smaller instance exported to SPIN: no application commands, the longest draw only.
    pub fn liveness(mutation: Mutation) -> Self {
        Self {
            app_commands: false,
            time_bound: false,
            draws: alloc::vec![Draw::MAX],
            ..Self::standard(mutation)
        }
    }

    /// The initial worlds: without and with a cached assignment.
    pub fn init(&self) -> Vec<World> {
        let mut out = alloc::vec![World::new(State::new(None))];
        if let Some(hub) = self.hubs.first() {
            out.push(World::new(State::new(Some(Self::assignment(hub)))));
        }
        out
    }

    fn assignment(hub: &str) -> Assignment {
        Assignment {
            hub: hub.to_string(),
            device_id: "dev".to_string(),
        }
    }

    /// Every move the cloud, the timers and the application can make in `w`.
    pub fn moves(&self, w: &World) -> Vec<Move> {
        let mut out = Vec::new();
        if w.violation.is_some() {
            return out;
        }
        let s = &w.device;
        let mut push = |input: Input, advance: u64, good: bool| {
            for &draw in &self.draws {
                out.push(Move {
                    input: input.clone(),
                    draw,
                    advance,
                    good,
                });
            }
        };
        if s.phase == Phase::Idle {
            push(Input::Command(Command::Start), 0, true);
            return out;
        }
        if let Some((_, at)) = s.timers.earliest() {
            for t in Timer::ALL {
                if s.timers.get(t) == Some(at) {
                    push(
                        Input::TimerFired(t),
                        at.0.saturating_sub(ORIGIN),
                        t != Timer::AttemptTimeout,
                    );
                }
            }
        }
        let sig = |w: WireSignal| Input::Signal(w);
        match &s.phase {
            Phase::Connecting { .. } => {
                push(sig(WireSignal::ConnAck(0)), 0, true);
                push(sig(WireSignal::ConnAck(1)), 0, false);
                push(sig(WireSignal::ConnAck(3)), 0, false);
                push(sig(WireSignal::ConnAck(5)), 0, false);
                push(
                    sig(WireSignal::ConnectFailed(ConnectFailure::Reset)),
                    0,
                    false,
                );
            }
            Phase::Registering | Phase::Polling { .. } => {
                for hub in &self.hubs {
                    push(
                        sig(WireSignal::Dps(DpsReply::Assigned(Self::assignment(hub)))),
                        0,
                        true,
                    );
                }
                let registering = s.phase == Phase::Registering;
                let assigning = DpsReply::Assigning {
                    operation: "op".to_string(),
                    retry_after: Some(secs(2)),
                };
                push(sig(WireSignal::Dps(assigning)), 0, registering);
                push(
                    sig(WireSignal::Dps(DpsReply::Failed {
                        error_code: 400_209,
                    })),
                    0,
                    false,
                );
                let throttled = DpsReply::Status {
                    status: 429,
                    retry_after: Some(secs(3)),
                };
                push(sig(WireSignal::Dps(throttled)), 0, false);
                push(
                    sig(WireSignal::Dps(DpsReply::Status {
                        status: 500,
                        retry_after: None,
                    })),
                    0,
                    false,
                );
                push(sig(WireSignal::DpsConnAck(1)), 0, false);
            }
            Phase::Connected { .. } => push(sig(WireSignal::ConnectionLost), 0, false),
            Phase::Idle | Phase::Waiting { .. } | Phase::Stopped => {}
        }
        if self.app_commands && s.phase != Phase::Stopped {
            push(Input::Command(Command::Stop), 0, false);
            push(Input::Command(Command::ReprovisionNow), 0, false);
        }
        out
    }

    /// Applies a move: one spec step, the three checks, then the shift back to [`ORIGIN`].
    pub fn apply(&self, w: &World, mv: &Move) -> World {
        self.apply_observed(w, mv).0
    }

    /// [`Instance::apply`], also returning what the cloud saw (at the move's time, relative to
    /// [`ORIGIN`] before the shift: add `mv.advance` to the running clock).
    pub fn apply_observed(&self, w: &World, mv: &Move) -> (World, Vec<Observed>) {
        let now = Millis(ORIGIN + mv.advance);
        let env = Env { now, draw: mv.draw };
        let out = step_mutated(&self.cfg, &w.device, &mv.input, env, self.mutation);
        let mut next = World {
            device: out.state,
            monitor: w.monitor.clone(),
            fingerprint: w.fingerprint,
            stopped: w.stopped,
            ghost: w.ghost,
            violation: None,
        };
        let mut seen = Vec::new();
        next.violation = self
            .check(w, &mut next, mv, now, &out.actions, &mut seen)
            .err();
        next.device = next.device.shifted(mv.advance);
        next.monitor = next.monitor.shifted(mv.advance);
        next.ghost = next.ghost.shifted(mv.advance);
        self.normalize(&mut next);
        (next, seen)
    }

    /// Clamps or forgets what can no longer influence any future move, so that equivalent
    /// worlds compare equal. Each rule is exact for the spec and the monitor:
    /// - an attempt start older than the largest spacing only ever satisfies the spacing;
    /// - a token past its renewal point is never reused, so its exact age is irrelevant;
    /// - a stopped world has no future (its timers are kept: the invariants check them).
    pub fn normalize(&self, w: &mut World) {
        let now = Millis(ORIGIN);
        let cfg = &self.cfg;
        let s = &mut w.device;
        let horizon = Millis(ORIGIN.saturating_sub(crate::time::ms(cfg.spacing(true))));
        s.last_attempt = s.last_attempt.map(|t| t.max(horizon));
        // A gate that has opened only matters as "open": clamp it to now.
        s.recheck_at = s.recheck_at.map(|t| t.max(now));
        if let Some(t) = &mut s.token {
            let stale_from = Millis(ORIGIN.saturating_sub(crate::time::ms(cfg.renew_after())));
            if t.minted_at <= stale_from {
                t.minted_at = stale_from;
                t.expires_at = stale_from.plus(cfg.token_ttl);
            }
        }
        if s.phase == Phase::Stopped {
            let timers = s.timers;
            *s = State::new(None);
            s.phase = Phase::Stopped;
            s.timers = timers;
            w.monitor = Monitor::default();
            w.fingerprint = false;
            w.ghost = Ghost::default();
        }
        w.ghost = w.ghost.normalized(cfg, now);
        let check = TraceCheck {
            config: cfg.clone(),
            tolerance: Duration::ZERO,
        };
        w.monitor = w.monitor.normalized(&check, now);
    }
}

/// One move of the environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Move {
    /// The input handed to the spec.
    pub input: Input,
    /// The random draw handed with it.
    pub draw: Draw,
    /// How far the clock moves first (timers only).
    pub advance: u64,
    /// Whether a cloud that behaves may make this move (for the liveness premise).
    pub good: bool,
}

/// A spec state plus the ghosts that watch it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct World {
    /// The device.
    pub device: State,
    /// The trace monitor, fed with what the cloud saw.
    pub monitor: Monitor,
    /// Ghost token fingerprint: flips on every mint.
    pub fingerprint: bool,
    /// Ghost: Stop was applied.
    pub stopped: bool,
    /// The ghosts of G6, G8 and G9.
    pub ghost: Ghost,
    /// The first broken guarantee, if any (the world is then terminal).
    pub violation: Option<(Guarantee, String)>,
}

impl World {
    fn new(device: State) -> Self {
        Self {
            device,
            monitor: Monitor::default(),
            fingerprint: false,
            stopped: false,
            ghost: Ghost::default(),
            violation: None,
        }
    }

    /// Whether the device is connected.
    pub fn is_connected(&self) -> bool {
        matches!(self.device.phase, Phase::Connected { .. })
    }

    /// Whether the device waits to start `next`.
    pub fn waits_for(&self, next: &Next) -> bool {
        matches!(&self.device.phase, Phase::Waiting { next: n } if n == next)
    }
}
