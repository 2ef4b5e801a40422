//! The client's connection state machine: sans-IO, hierarchical (statig), refining the spec.
//!
//! # How it refines `hubswap-spec`
//!
//! Every input the spec knows ([`Event::Spec`]: commands, timer firings, wire signals) is
//! decided by [`spec::step()`] itself: the handler of the current state builds the spec state with
//! [`abstraction`], calls `step`, adopts the returned memory and emits the returned actions
//! unchanged (as [`Action::Policy`]), and moves to the client state that refines the returned
//! phase. So the classification ([`spec::classify()`]), the backoff ([`spec::backoff()`]) and every
//! threshold are the spec's code, not copies.
//!
//! On top of that the client has its own states and events. While the spec knows one
//! `Connected` phase, the client walks `subscribing → syncing → ready` on its own events
//! ([`Event::Subscribed`], [`Event::TwinSynced`]); these are *stuttering* steps: the abstraction
//! does not change and no spec action is emitted. The client's own outputs (subscribe, twin GET,
//! the outbox gate) are separate [`Action`] variants.
//!
//! The refinement obligation, checked step by step by the tests in `machine/tests`:
//! for every event `e` in client state `c`,
//! - if `e` is a spec input: `abstraction(c') == step(abstraction(c), e).state`, and the
//!   [`Action::Policy`] actions equal `step(..).actions`;
//! - otherwise: `abstraction(c') == abstraction(c)` and no [`Action::Policy`] is emitted.

mod abstraction;
mod core;
#[cfg(test)]
mod tests;

use hubswap_spec as spec;
use spec::{Assignment, Env, Input, Millis};
use statig::blocking::{InitializedStateMachine, IntoStateMachineExt as _};

pub use abstraction::{Memory, abstraction, phase_of, state_for};
pub use core::{Core, State};

use crate::status::{ConnectionStatus, Reason};

/// An input to the machine: the spec's inputs plus the client's own events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A spec input: a command, a spec timer firing or a wire signal.
    Spec(Input),
    /// The hub acknowledged the subscriptions (methods, C2D, twin responses, desired patches).
    Subscribed,
    /// The twin GET was answered with a valid document.
    TwinSynced,
    /// The twin GET was answered 200 with a body that is not a twin document.
    TwinMalformed,
    /// A client timer fired.
    ClientTimerFired(ClientTimer),
}

impl Event {
    /// An application command.
    pub fn command(c: spec::Command) -> Self {
        Self::Spec(Input::Command(c))
    }

    /// A spec timer fired.
    pub fn timer(t: spec::Timer) -> Self {
        Self::Spec(Input::TimerFired(t))
    }

    /// A wire signal.
    pub fn signal(s: spec::WireSignal) -> Self {
        Self::Spec(Input::Signal(s))
    }

    /// The spec input this event is, if it is one.
    pub fn input(&self) -> Option<&Input> {
        match self {
            Self::Spec(input) => Some(input),
            Self::Subscribed
            | Self::TwinSynced
            | Self::TwinMalformed
            | Self::ClientTimerFired(_) => None,
        }
    }
}

/// A timer the client adds to the spec's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientTimer {
    /// Retry the twin GET after a request-level failure.
    TwinRetry,
}

/// An effect the driver performs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A connection-policy action, exactly as [`spec::step()`] emitted it.
    Policy(spec::Action),
    /// Subscribe to the hub topics (entering the online states).
    Subscribe,
    /// Send a twin GET.
    GetTwin,
    /// Arm a client timer.
    ArmClientTimer {
        /// Which timer.
        timer: ClientTimer,
        /// When it fires.
        at: Millis,
    },
    /// Disarm a client timer.
    CancelClientTimer(ClientTimer),
    /// The connection is up: the outbox may publish.
    OpenOutbox,
    /// The connection is gone: stop publishing and requeue everything the hub has not
    /// acknowledged (rumqttc forgets it on a new session).
    SuspendOutbox,
    /// The machine entered the offline states.
    Offline,
}

/// The context handed to every handler: the time and draw of this input, and the outputs.
#[derive(Debug)]
pub struct Ctx {
    /// The time and the random draw that come with the input.
    pub env: Env,
    /// The actions emitted so far.
    pub out: Vec<Action>,
}

/// The connection machine: a statig machine plus the facade the driver uses.
pub struct Machine {
    sm: InitializedStateMachine<Core>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("state", self.sm.state())
            .field("memory", &self.sm.inner().memory)
            .finish()
    }
}

impl Machine {
    /// A machine that has not started, with the cached assignment the store holds.
    ///
    /// `cfg` must be valid ([`spec::Config::validate`]); the builder checks it.
    pub fn new(cfg: spec::Config, cache: Option<Assignment>) -> Self {
        let core = Core {
            cfg,
            memory: Memory::new(cache),
            reason: None,
        };
        let mut ctx = Ctx {
            env: Env {
                now: Millis::ZERO,
                draw: spec::Draw::MIN,
            },
            out: Vec::new(),
        };
        let sm = core
            .uninitialized_state_machine()
            .init_with_context(&mut ctx);
        Self { sm }
    }

    /// Handles one event at `env.now` with `env.draw`; returns the actions to perform, in order.
    pub fn handle(&mut self, event: &Event, env: Env) -> Vec<Action> {
        let mut ctx = Ctx {
            env,
            out: Vec::new(),
        };
        self.sm.handle_with_context(event, &mut ctx);
        ctx.out
    }

    /// The current client state.
    pub fn state(&self) -> &State {
        self.sm.state()
    }

    /// The spec state the client state refines.
    pub fn abstraction(&self) -> spec::State {
        abstraction(self.sm.state(), &self.sm.inner().memory)
    }

    /// The spec config the machine runs with.
    pub fn config(&self) -> &spec::Config {
        &self.sm.inner().cfg
    }

    /// The status an application shows: where the machine is and why.
    pub fn status(&self) -> ConnectionStatus {
        ConnectionStatus::of(self.sm.state(), self.sm.inner().reason.clone())
    }

    /// The last reason recorded.
    pub fn reason(&self) -> Option<&Reason> {
        self.sm.inner().reason.as_ref()
    }
}
