//! What the client adds inside the spec's `Connected` phase: `subscribing → syncing → ready`.
//!
//! The spec decides when the device connects and disconnects; this statig machine only walks
//! the steps a connection takes before it is fully usable, and performs the entry and exit
//! duties of being online (subscribe, open and suspend the outbox, cancel the twin retry).
//!
//! ```text
//!            ┌────────────── online (entry: Subscribe, OpenOutbox; exit: SuspendOutbox) ──┐
//! offline ─Up─►  subscribing ──Subscribed──► syncing {tries} ──TwinSynced──► ready        │
//!    ▲       │                 (GetTwin)       │  TwinRetry: GetTwin                      │
//!    │       │                                 └─ TwinFailed: arm TwinRetry (backoff)     │
//!    └─Down──┴────────────────────────────────────────────────────────────────────────────┘
//! ```

// The statig macro turns handler parameters into the fields of the generated `State` enum, and
// generates that enum without docs; each variant is documented by its handler below.
#![allow(
    clippy::unused_self,
    clippy::needless_pass_by_ref_mut,
    clippy::trivially_copy_pass_by_ref,
    missing_docs
)]

use hubswap_spec::{self as spec, Draw, Millis};
use statig::prelude::*;

/// An input to the online machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The spec entered `Connected` (CONNACK 0).
    Up,
    /// The spec left `Connected`.
    Down,
    /// The hub acknowledged the subscriptions.
    Subscribed,
    /// The twin GET was answered with a valid document.
    TwinSynced,
    /// The twin GET failed at the request level (429, 5xx, or a body that is not a twin).
    TwinFailed,
    /// The twin retry timer fired.
    TwinRetry,
}

/// What the session does for the online machine, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Subscribe to the hub topics.
    Subscribe,
    /// Send the resync twin GET.
    GetTwin,
    /// Arm the twin retry timer.
    ArmTwinRetry(Millis),
    /// Disarm it.
    CancelTwinRetry,
    /// The outbox may publish.
    OpenOutbox,
    /// Stop publishing and requeue everything unacknowledged.
    SuspendOutbox,
}

/// The context of one step: the time, a draw for the retry's jitter, the profile it backs off
/// on, and the duties emitted.
#[derive(Debug)]
pub struct Ctx {
    /// Now.
    pub now: Millis,
    /// The jitter draw.
    pub draw: Draw,
    /// The backoff profile of twin retries (the spec's fast profile).
    pub profile: spec::Profile,
    /// The duties, in order.
    pub out: Vec<Duty>,
}

/// The machine's storage (none: everything lives in the states).
#[derive(Debug, Default)]
pub struct Online;

#[state_machine(
    initial = "State::offline()",
    state(derive(Debug, Clone, PartialEq, Eq)),
    superstate(derive(Debug))
)]
impl Online {
    /// No connection.
    #[state]
    fn offline(event: &Step) -> Outcome<State> {
        match event {
            Step::Up => Transition(State::subscribing()),
            _ => Handled,
        }
    }

    /// CONNACK 0 received. A `Down` from any sub-state goes offline; an event the sub-state
    /// does not expect is a duplicate or late, and changes nothing.
    #[superstate(entry_action = "enter_online", exit_action = "exit_online")]
    fn online(event: &Step) -> Outcome<State> {
        match event {
            Step::Down => Transition(State::offline()),
            _ => Handled,
        }
    }

    #[action]
    fn enter_online(context: &mut Ctx) {
        context.out.push(Duty::Subscribe);
        context.out.push(Duty::OpenOutbox);
    }

    #[action]
    fn exit_online(context: &mut Ctx) {
        context.out.push(Duty::CancelTwinRetry);
        context.out.push(Duty::SuspendOutbox);
    }

    /// Waiting for the SUBACK (methods, C2D, twin responses, desired patches).
    #[state(superstate = "online")]
    fn subscribing(context: &mut Ctx, event: &Step) -> Outcome<State> {
        match event {
            Step::Subscribed => {
                context.out.push(Duty::GetTwin);
                Transition(State::syncing(0))
            }
            _ => Super,
        }
    }

    /// The resync twin GET is in flight (or waiting for its retry).
    #[state(superstate = "online")]
    fn syncing(tries: &mut u32, context: &mut Ctx, event: &Step) -> Outcome<State> {
        match event {
            Step::TwinSynced => Transition(State::ready()),
            Step::TwinRetry => {
                context.out.push(Duty::GetTwin);
                Handled
            }
            Step::TwinFailed => {
                let delay = spec::backoff(*tries, &context.profile, None, context.draw);
                *tries = tries.saturating_add(1);
                context
                    .out
                    .push(Duty::ArmTwinRetry(context.now.plus(delay)));
                Handled
            }
            _ => Super,
        }
    }

    /// Subscribed and in sync with the twin: fully online.
    #[state(superstate = "online")]
    fn ready(event: &Step) -> Outcome<State> {
        let _ = event;
        Super
    }
}

#[cfg(test)]
mod tests {
    use statig::blocking::{InitializedStateMachine, IntoStateMachineExt as _};

    use super::*;

    fn step(sm: &mut InitializedStateMachine<Online>, s: Step) -> Vec<Duty> {
        let mut ctx = Ctx {
            now: Millis(1_000),
            draw: Draw::MAX,
            profile: spec::Config::default().fast,
            out: Vec::new(),
        };
        sm.handle_with_context(&s, &mut ctx);
        ctx.out
    }

    #[test]
    fn a_connection_walks_subscribe_sync_ready_and_leaving_suspends() {
        let mut ctx = Ctx {
            now: Millis::ZERO,
            draw: Draw::MIN,
            profile: spec::Config::default().fast,
            out: Vec::new(),
        };
        let mut sm = Online
            .uninitialized_state_machine()
            .init_with_context(&mut ctx);
        assert_eq!(step(&mut sm, Step::Subscribed), vec![]);
        assert_eq!(
            step(&mut sm, Step::Up),
            vec![Duty::Subscribe, Duty::OpenOutbox]
        );
        assert_eq!(step(&mut sm, Step::Subscribed), vec![Duty::GetTwin]);
        let failed = step(&mut sm, Step::TwinFailed);
        assert!(matches!(failed[..], [Duty::ArmTwinRetry(at)] if at > Millis(1_000)));
        assert_eq!(step(&mut sm, Step::TwinRetry), vec![Duty::GetTwin]);
        assert_eq!(step(&mut sm, Step::TwinSynced), vec![]);
        assert_eq!(sm.state(), &State::Ready {});
        // Late or duplicate events change nothing.
        assert_eq!(step(&mut sm, Step::Subscribed), vec![]);
        assert_eq!(step(&mut sm, Step::TwinRetry), vec![]);
        assert_eq!(
            step(&mut sm, Step::Down),
            vec![Duty::CancelTwinRetry, Duty::SuspendOutbox]
        );
        assert_eq!(sm.state(), &State::Offline {});
        assert_eq!(step(&mut sm, Step::TwinSynced), vec![]);
    }
}
