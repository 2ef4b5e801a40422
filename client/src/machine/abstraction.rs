//! The abstraction function: every client state maps to exactly one spec state.
//!
//! The client state is split in two. The *phase* data lives in the statig states themselves
//! ([`State`]: the operation being polled, whether the token is fresh, when the connection came
//! up). The *policy memory* (cache, counters, auth stage, token, timers) lives in the machine's
//! shared storage as a [`Memory`]. [`abstraction`] glues the two into a [`spec::State`]; the
//! client-only refinements (the three online sub-states) all map to [`spec::Phase::Connected`].

use hubswap_spec as spec;
use spec::{Assignment, Phase};

use super::core::State;

/// The policy memory: everything a [`spec::State`] holds besides its phase.
///
/// It is a spec state whose phase is always [`Phase::Idle`]: the real phase lives in the statig
/// state. It is only ever replaced wholesale by the state a [`spec::step()`] returned, so the
/// client cannot compute a counter or a timer differently from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory(spec::State);

impl Memory {
    /// The memory of a machine that has not started, with the cache as the store holds it.
    pub fn new(cache: Option<Assignment>) -> Self {
        Self(spec::State::new(cache))
    }

    /// Everything but the phase of `s`.
    pub fn from_spec(s: &spec::State) -> Self {
        let mut m = s.clone();
        m.phase = Phase::Idle;
        Self(m)
    }

    /// The spec state with this memory and `phase`.
    pub fn with_phase(&self, phase: Phase) -> spec::State {
        let mut s = self.0.clone();
        s.phase = phase;
        s
    }

    /// The cached assignment.
    pub fn cache(&self) -> Option<&Assignment> {
        self.0.cache.as_ref()
    }
}

/// The spec phase a client state refines.
pub fn phase_of(state: &State) -> Phase {
    match state {
        State::Idle {} => Phase::Idle,
        State::Waiting { next } => Phase::Waiting { next: next.clone() },
        State::Registering {} => Phase::Registering,
        State::Polling { operation } => Phase::Polling {
            operation: operation.clone(),
        },
        State::Connecting { fresh_token } => Phase::Connecting {
            fresh_token: *fresh_token,
        },
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
