//! The abstraction function: every client state maps to exactly one spec state.
//!
//! The client state is split in two. The *phase* data lives in the statig states themselves
//! ([`State`]: the operation being polled, whether the token is fresh, when the connection came
//! up). The *policy memory* (cache, counters, auth stage, token, timers) lives in the machine's
//! shared storage as a [`Memory`]. [`abstraction`] glues the two into a [`spec::State`]; the
//! client-only refinements (the three online sub-states) all map to [`spec::Phase::Connected`].

use hubswap_spec as spec;
use spec::{Assignment, AuthStage, Millis, Phase, Timers, Token};

use super::core::State;

/// The policy memory: everything a [`spec::State`] holds besides its phase.
///
/// It is only ever replaced wholesale by the state a [`spec::step`] returned, so the client
/// cannot compute a counter or a timer differently from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// The assignment cache.
    pub cache: Option<Assignment>,
    /// The backoff attempt number.
    pub attempt: u32,
    /// Consecutive unreachable-class failures (G1).
    pub unreachable: u32,
    /// Consecutive CONNACK 1/3 refusals (G3).
    pub unavailable: u32,
    /// The fresh-token retry stage (G2).
    pub auth: AuthStage,
    /// DPS reported the device blocked (G4).
    pub blocked: bool,
    /// The hub token, once minted.
    pub token: Option<Token>,
    /// When the last attempt started (G7).
    pub last_attempt: Option<Millis>,
    /// The spec's armed timers.
    pub timers: Timers,
}

impl Memory {
    /// The memory of a machine that has not started, with the cache as the store holds it.
    pub fn new(cache: Option<Assignment>) -> Self {
        Self::from_spec(&spec::State::new(cache))
    }

    /// Everything but the phase of `s`.
    pub fn from_spec(s: &spec::State) -> Self {
        Self {
            cache: s.cache.clone(),
            attempt: s.attempt,
            unreachable: s.unreachable,
            unavailable: s.unavailable,
            auth: s.auth,
            blocked: s.blocked,
            token: s.token,
            last_attempt: s.last_attempt,
            timers: s.timers,
        }
    }

    /// The spec state with this memory and `phase`.
    pub fn with_phase(&self, phase: Phase) -> spec::State {
        let mut s = spec::State::new(self.cache.clone());
        s.phase = phase;
        s.attempt = self.attempt;
        s.unreachable = self.unreachable;
        s.unavailable = self.unavailable;
        s.auth = self.auth;
        s.blocked = self.blocked;
        s.token = self.token;
        s.last_attempt = self.last_attempt;
        s.timers = self.timers;
        s
    }
}

/// The spec phase a client state refines.
pub fn phase_of(state: &State) -> Phase {
    match state {
        State::Idle {} => Phase::Idle,
        State::Waiting { next } => Phase::Waiting { next: next.clone() },
        State::Registering {} => Phase::Registering,
        State::Polling { operation } => Phase::Polling { operation: operation.clone() },
        State::Connecting { fresh_token } => Phase::Connecting { fresh_token: *fresh_token },
        State::Subscribing { since } | State::Syncing { since, .. } | State::Ready { since } => {
            Phase::Connected { since: *since }
        }
        State::Stopped {} => Phase::Stopped,
    }
}

/// The client state a spec phase enters. Entering [`Phase::Connected`] always starts at the
/// first online sub-state, [`State::Subscribing`].
pub fn state_for(phase: Phase) -> State {
    match phase {
        Phase::Idle => State::Idle {},
        Phase::Waiting { next } => State::Waiting { next },
        Phase::Registering => State::Registering {},
        Phase::Polling { operation } => State::Polling { operation },
        Phase::Connecting { fresh_token } => State::Connecting { fresh_token },
        Phase::Connected { since } => State::Subscribing { since },
        Phase::Stopped => State::Stopped {},
    }
}

/// The abstraction function: the spec state a client state (phase data plus memory) refines.
pub fn abstraction(state: &State, memory: &Memory) -> spec::State {
    memory.with_phase(phase_of(state))
}
