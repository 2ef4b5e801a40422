//! The statig state machine. Connection-policy decisions are delegated to [`spec::step()`];
//! the machine adds the client's own states and events on top (see the module docs of
//! [`super`]).
//!
//! ```text
//! idle ──Start──► offline ─────────────────────────────► online ──────────────────────┐
//!                 ├─ waiting {next}                        ├─ subscribing {since}      │
//!                 ├─ provisioning                          ├─ syncing {since, tries}   │
//!                 │   ├─ registering                       └─ ready {since}            │
//!                 │   └─ polling {operation}                                           │
//!                 └─ connecting {fresh_token}      ◄────────── lost / renew / refused ─┘
//! any ──Stop──► stopped
//! ```

// The statig macro turns handler parameters into the fields of the generated `State` enum, so
// their types are the field types (`&mut String`, `&mut bool`), and it generates that enum
// without docs; each variant is documented by its handler below.
#![allow(
    clippy::unused_self,
    clippy::needless_pass_by_ref_mut,
    clippy::trivially_copy_pass_by_ref,
    clippy::ptr_arg,
    missing_docs
)]

use hubswap_spec as spec;
use spec::{Input, Millis, Next, Phase};
use statig::prelude::*;

use super::abstraction::{Memory, state_for};
use super::{Action, ClientTimer, Ctx, Event};
use crate::status::Reason;

/// The shared storage of the machine: the spec config and the policy memory.
#[derive(Debug)]
pub struct Core {
    /// The validated spec config.
    pub(crate) cfg: spec::Config,
    /// The policy memory (the spec state minus its phase).
    pub(crate) memory: Memory,
    /// Why the device last left (or failed to reach) the online states.
    pub(crate) reason: Option<Reason>,
}

impl Core {
    /// Runs one spec input through [`spec::step()`] from `phase`: the memory becomes the spec's,
    /// the spec's actions are emitted in order, and the machine moves to the state that refines
    /// the spec's next phase (or stays put when the phase is unchanged).
    fn policy(&mut self, phase: &Phase, context: &mut Ctx, input: &Input) -> Outcome<State> {
        let before = self.memory.with_phase(phase.clone());
        let out = spec::step(&self.cfg, &before, input, context.env);
        self.memory = Memory::from_spec(&out.state);
        if let Some(reason) = Reason::of(input, &before.phase, &out.state.phase) {
            self.reason = Some(reason);
        }
        context
            .out
            .extend(out.actions.into_iter().map(Action::Policy));
        if out.state.phase == *phase {
            Handled
        } else {
            Transition(state_for(out.state.phase))
        }
    }
}

#[state_machine(
    initial = "State::idle()",
    state(derive(Debug, Clone, PartialEq, Eq)),
    superstate(derive(Debug))
)]
impl Core {
    /// Not started: only `Start` (and `Stop`) mean anything.
    #[state]
    fn idle(&mut self, context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event.input() {
            Some(input) => self.policy(&Phase::Idle, context, input),
            None => Handled,
        }
    }

    /// Stopped for good: everything is ignored (G7).
    #[state]
    fn stopped(&mut self, context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event.input() {
            Some(input) => self.policy(&Phase::Stopped, context, input),
            None => Handled,
        }
    }

    /// Offline: no hub connection. Client events from a connection that is gone are stale.
    #[superstate(entry_action = "enter_offline")]
    fn offline(event: &Event) -> Outcome<State> {
        match event {
            Event::Subscribed
            | Event::TwinSynced
            | Event::TwinMalformed
            | Event::ClientTimerFired(_)
            | Event::Spec(_) => Handled,
        }
    }

    #[action]
    fn enter_offline(context: &mut Ctx) {
        context.out.push(Action::Offline);
    }

    /// Nothing in flight; the spec's `Wake` timer starts `next`.
    #[state(superstate = "offline")]
    fn waiting(&mut self, next: &mut Next, context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event.input() {
            Some(input) => self.policy(&Phase::Waiting { next: next.clone() }, context, input),
            None => Super,
        }
    }

    /// Talking to DPS (register or poll).
    #[superstate(superstate = "offline")]
    fn provisioning(event: &Event) -> Outcome<State> {
        let _ = event;
        Super
    }

    /// A DPS register request is in flight.
    #[state(superstate = "provisioning")]
    fn registering(&mut self, context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event.input() {
            Some(input) => self.policy(&Phase::Registering, context, input),
            None => Super,
        }
    }

    /// A DPS operation poll is in flight.
    #[state(superstate = "provisioning")]
    fn polling(
        &mut self,
        operation: &mut String,
        context: &mut Ctx,
        event: &Event,
    ) -> Outcome<State> {
        match event.input() {
            Some(input) => self.policy(
                &Phase::Polling {
                    operation: operation.clone(),
                },
                context,
                input,
            ),
            None => Super,
        }
    }

    /// A hub CONNECT is in flight.
    #[state(superstate = "offline")]
    fn connecting(
        &mut self,
        fresh_token: &mut bool,
        context: &mut Ctx,
        event: &Event,
    ) -> Outcome<State> {
        match event.input() {
            Some(input) => self.policy(
                &Phase::Connecting {
                    fresh_token: *fresh_token,
                },
                context,
                input,
            ),
            None => Super,
        }
    }

    /// Online: CONNACK 0 received. Every spec input is handled here, once for all sub-states;
    /// a spec step that keeps the connection keeps the sub-state too.
    #[superstate(entry_action = "enter_online", exit_action = "exit_online")]
    fn online(&mut self, since: &Millis, context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event.input() {
            Some(input) => self.policy(&Phase::Connected { since: *since }, context, input),
            // Client events that the current sub-state does not expect: duplicates or late.
            None => Handled,
        }
    }

    #[action]
    fn enter_online(context: &mut Ctx) {
        context.out.push(Action::Subscribe);
        context.out.push(Action::OpenOutbox);
    }

    #[action]
    fn exit_online(context: &mut Ctx) {
        context
            .out
            .push(Action::CancelClientTimer(ClientTimer::TwinRetry));
        context.out.push(Action::SuspendOutbox);
    }

    /// Waiting for the SUBACK of the hub subscriptions (methods, C2D, twin).
    #[state(superstate = "online")]
    fn subscribing(since: &mut Millis, context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            Event::Subscribed => {
                context.out.push(Action::GetTwin);
                Transition(State::syncing(*since, 0))
            }
            _ => Super,
        }
    }

    /// The twin GET (resync after every connect) is in flight.
    #[state(superstate = "online")]
    fn syncing(
        &mut self,
        since: &mut Millis,
        tries: &mut u32,
        context: &mut Ctx,
        event: &Event,
    ) -> Outcome<State> {
        match event {
            Event::TwinSynced => Transition(State::ready(*since)),
            Event::ClientTimerFired(ClientTimer::TwinRetry) => {
                context.out.push(Action::GetTwin);
                Handled
            }
            Event::TwinMalformed => {
                self.retry_twin(tries, context);
                Handled
            }
            Event::Spec(Input::Signal(sig @ spec::WireSignal::TwinStatus(_))) => {
                // The spec classifies the status; a request-level failure keeps the connection
                // and the client retries the GET with the spec's backoff.
                if spec::classify(sig) == spec::Class::RequestTransient {
                    self.retry_twin(tries, context);
                }
                Super
            }
            _ => Super,
        }
    }

    /// Subscribed and the twin is in sync: the device is fully online.
    #[state(superstate = "online")]
    fn ready(since: &mut Millis, event: &Event) -> Outcome<State> {
        let _ = since;
        let _ = event;
        Super
    }
}

impl Core {
    /// Arms the twin retry with the spec's backoff (fast profile, the GET's own attempt count).
    fn retry_twin(&mut self, tries: &mut u32, context: &mut Ctx) {
        let delay = spec::backoff(*tries, &self.cfg.fast, None, context.env.draw);
        *tries = tries.saturating_add(1);
        let at = context.env.now.plus(delay);
        context.out.push(Action::ArmClientTimer {
            timer: ClientTimer::TwinRetry,
            at,
        });
    }
}
