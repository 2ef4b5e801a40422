//! The refinement harness (conformance suite): the client's statig machine against
//! `spec::step`, driven by random — and deliberately adversarial — input sequences.
//!
//! A sequence is generated without looking at the state (so that it shrinks well) and
//! interpreted against it: every [`Move`] first advances virtual time (by nothing, by a random
//! amount, or to the earliest armed deadline) and then feeds one event. Events include inputs in
//! the wrong phase, duplicates and stale timers. After every step the harness checks:
//!
//! 1. for a spec input, the client's abstraction equals `spec::step(abstraction before).state`
//!    and the client's policy actions equal the spec's actions, in order;
//! 2. for a client-only event, the abstraction is unchanged and no policy action is emitted;
//! 3. the spec's invariants hold on the abstraction.
//!
//! Check 1 holds by construction while the machine calls `spec::step` itself; checks 2 and 3,
//! and the mapping from statig states to spec phases that every step exercises, are what the
//! harness adds.

use std::time::Duration;

use hubswap_client::machine::{Action, ClientTimer, Event, Machine};
use hubswap_spec::{
    self as spec, Assignment, Command, ConnectFailure, DpsReply, Draw, Env, Millis, Timer,
    WireSignal,
};
use proptest::prelude::*;

/// How far the clock moves before an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// Not at all.
    None,
    /// By this many milliseconds.
    By(u64),
    /// To the earliest armed spec deadline (so that timers really fire).
    ToNextDeadline,
}

/// One step of a run: advance the clock, then feed the event with the draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The clock movement.
    pub advance: Advance,
    /// The event.
    pub event: Event,
    /// The random draw handed with it.
    pub draw: Draw,
}

/// Why a run diverged from the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {step} ({event:?}): {what}")]
pub struct Mismatch {
    /// The index of the move.
    pub step: usize,
    /// The event fed.
    pub event: Event,
    /// What differed.
    pub what: String,
}

fn hub(h: &str) -> Assignment {
    Assignment {
        hub: h.into(),
        device_id: "dev".into(),
    }
}

fn secs(range: std::ops::Range<u64>) -> impl Strategy<Value = Option<Duration>> {
    prop_oneof![Just(None), range.prop_map(|s| Some(Duration::from_secs(s)))]
}

fn dps_reply() -> impl Strategy<Value = DpsReply> {
    prop_oneof![
        3 => prop_oneof![Just(hub("hub-a")), Just(hub("hub-b"))].prop_map(DpsReply::Assigned),
        2 => secs(0..5).prop_map(|retry_after| DpsReply::Assigning { operation: "op-1".into(), retry_after }),
        1 => prop_oneof![Just(400_209u32), Just(400_207), Just(400_208)].prop_map(|error_code| DpsReply::Failed { error_code }),
        1 => Just(DpsReply::Disabled),
        2 => (prop_oneof![Just(401u16), Just(403), Just(404), Just(429), Just(500), Just(503), 400u16..600], secs(0..20))
            .prop_map(|(status, retry_after)| DpsReply::Status { status, retry_after }),
    ]
}

fn connect_failure() -> impl Strategy<Value = ConnectFailure> {
    prop_oneof![
        Just(ConnectFailure::Refused),
        Just(ConnectFailure::Timeout),
        Just(ConnectFailure::Reset),
        Just(ConnectFailure::Dns),
        Just(ConnectFailure::Tls),
    ]
}

fn timer() -> impl Strategy<Value = Timer> {
    prop_oneof![
        Just(Timer::Wake),
        Just(Timer::AttemptTimeout),
        Just(Timer::Stable),
        Just(Timer::Renew)
    ]
}

/// Every event, weighted so that runs make progress but still meet every wrong-state input.
pub fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => Just(Event::command(Command::Start)),
        1 => Just(Event::command(Command::ReprovisionNow)),
        1 => Just(Event::command(Command::Stop)),
        5 => timer().prop_map(Event::timer),
        4 => (0u8..7).prop_map(|c| Event::signal(WireSignal::ConnAck(c))),
        1 => connect_failure().prop_map(|f| Event::signal(WireSignal::ConnectFailed(f))),
        2 => Just(Event::signal(WireSignal::ConnectionLost)),
        4 => dps_reply().prop_map(|r| Event::signal(WireSignal::Dps(r))),
        1 => Just(Event::signal(WireSignal::DpsUnreachable)),
        1 => Just(Event::signal(WireSignal::TokenNearExpiry)),
        1 => prop_oneof![Just(200u16), Just(204), Just(429), Just(500)].prop_map(|s| Event::signal(WireSignal::TwinStatus(s))),
        3 => prop_oneof![
            Just(Event::Subscribed),
            Just(Event::TwinSynced),
            Just(Event::TwinMalformed),
            Just(Event::ClientTimerFired(ClientTimer::TwinRetry)),
        ],
    ]
}

/// One move.
pub fn a_move() -> impl Strategy<Value = Move> {
    let advance = prop_oneof![
        2 => Just(Advance::None),
        1 => (0u64..120_000).prop_map(Advance::By),
        4 => Just(Advance::ToNextDeadline),
    ];
    (advance, event(), any::<u32>()).prop_map(|(advance, event, d)| Move {
        advance,
        event,
        draw: Draw(d),
    })
}

/// A run: a start (with or without a cached assignment) and up to `len` moves.
pub fn run_strategy(len: usize) -> impl Strategy<Value = (bool, Vec<Move>)> {
    (any::<bool>(), proptest::collection::vec(a_move(), 1..len))
}

/// The spec config the harness uses: the defaults.
pub fn config() -> spec::Config {
    spec::Config::default()
}

/// Runs the moves against a machine built by `make` and checks the refinement after each.
pub fn check_run(
    make: impl Fn(spec::Config, Option<Assignment>) -> Machine,
    cached: bool,
    moves: &[Move],
) -> Result<(), Mismatch> {
    let cfg = config();
    let cache = cached.then(|| hub("hub-a"));
    let mut machine = make(cfg.clone(), cache.clone());
    // The reference: the spec state, evolved by `spec::step` alone.
    let mut reference = spec::State::new(cache);
    let mut now = Millis(1_000_000);
    for (step, mv) in moves.iter().enumerate() {
        now = match mv.advance {
            Advance::None => now,
            Advance::By(ms) => Millis(now.0 + ms),
            Advance::ToNextDeadline => reference
                .timers
                .earliest()
                .map_or(now, |(_, at)| at.max(now)),
        };
        let env = Env { now, draw: mv.draw };
        let fail = |what: String| Mismatch {
            step,
            event: mv.event.clone(),
            what,
        };
        let before = machine.abstraction();
        if before != reference {
            return Err(fail(format!(
                "abstraction {before:?} is not the reference {reference:?}"
            )));
        }
        let actions = machine.handle(&mv.event, env);
        let policy: Vec<spec::Action> = actions
            .into_iter()
            .filter_map(|a| {
                if let Action::Policy(p) = a {
                    Some(p)
                } else {
                    None
                }
            })
            .collect();
        let after = machine.abstraction();
        if let Some(input) = mv.event.input() {
            let expect = spec::step(&cfg, &reference, input, env);
            if after != expect.state {
                return Err(fail(format!(
                    "client went to {after:?}, spec::step to {:?}",
                    expect.state
                )));
            }
            if policy != expect.actions {
                return Err(fail(format!(
                    "client actions {policy:?}, spec actions {:?}",
                    expect.actions
                )));
            }
            reference = expect.state;
        } else {
            if after != reference {
                return Err(fail(format!(
                    "a client-only event changed the abstraction to {after:?}"
                )));
            }
            if !policy.is_empty() {
                return Err(fail(format!(
                    "a client-only event emitted policy actions {policy:?}"
                )));
            }
        }
        spec::invariants::check(&cfg, &after)
            .map_err(|v| fail(format!("invariant broken: {v}")))?;
    }
    Ok(())
}

/// The faithful client machine.
pub fn faithful(cfg: spec::Config, cache: Option<Assignment>) -> Machine {
    Machine::new(cfg, cache)
}
