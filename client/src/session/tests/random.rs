//! Random IO against the session: duplicate, late and out-of-order PUBACKs, drops at every
//! point, stale connection events and DPS answers, timers firing late.
//!
//! Two things are checked after every move:
//! 1. **Refinement, from outside.** A reference runs `spec::step` on its own state, fed with the
//!    spec inputs this test derives from the IO events (its own translation: a CONNACK of the
//!    current connection is `ConnAck`, a stale one is nothing, ...), its own timer table and
//!    the same draw sequence. The policy outputs the session emitted (connect, close, DPS
//!    register and poll, persist, invalidate) must equal the reference's actions, in order,
//!    and the session's next timeout must not be later than the reference's earliest timer.
//! 2. **The outbox.** A message is settled at most once; it is settled as delivered only by a
//!    PUBACK of a publish that carried its `$.mid`; and once the cloud behaves, every accepted
//!    message is settled (none is silently dropped).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hubswap_spec::{self as spec, ConnectFailure, DpsReply, Millis, Timer, WireSignal};
use proptest::prelude::*;

use super::{Harness, fast, hub};
use crate::session::{Event, HubEvent, Output, Rng};

#[derive(Debug, Clone)]
enum Move {
    Queue,
    Write,
    /// PUBACK for the n-th written, unacknowledged publish (wrapping), or an unknown id.
    Ack(usize),
    DuplicateAck,
    ConnAck(u8),
    Fail(ConnectFailure),
    Lost,
    SubAck,
    TwinOk,
    /// An event of the previous connection, delivered late.
    StaleConnAck,
    Dps(WireSignal),
    StaleDps,
    Reprovision,
    /// Advance the clock by this much (past deadlines, too) and fire what is due.
    Sleep(u64),
    /// Advance to the next deadline and fire it.
    FireNext,
}

fn moves() -> impl Strategy<Value = Move> {
    let dps = prop_oneof![
        3 => prop_oneof![Just("a"), Just("b")].prop_map(|h| WireSignal::Dps(DpsReply::Assigned(hub(h)))),
        1 => (0u64..3).prop_map(|s| WireSignal::Dps(DpsReply::Assigning { operation: "op".into(), retry_after: Some(Duration::from_secs(s)) })),
        1 => prop_oneof![Just(429u16), Just(500), Just(401)].prop_map(|status| WireSignal::Dps(DpsReply::Status { status, retry_after: None })),
        1 => Just(WireSignal::DpsUnreachable),
        1 => Just(WireSignal::DpsMalformed),
    ];
    prop_oneof![
        4 => Just(Move::Queue),
        4 => Just(Move::Write),
        4 => (0usize..8).prop_map(Move::Ack),
        1 => Just(Move::DuplicateAck),
        4 => prop_oneof![4 => Just(0u8), 1 => Just(3), 1 => Just(5), 1 => Just(2)].prop_map(Move::ConnAck),
        1 => prop_oneof![Just(ConnectFailure::Refused), Just(ConnectFailure::Timeout), Just(ConnectFailure::Tls)].prop_map(Move::Fail),
        2 => Just(Move::Lost),
        2 => Just(Move::SubAck),
        2 => Just(Move::TwinOk),
        1 => Just(Move::StaleConnAck),
        3 => dps.prop_map(Move::Dps),
        1 => Just(Move::StaleDps),
        1 => Just(Move::Reprovision),
        2 => (0u64..90_000).prop_map(Move::Sleep),
        4 => Just(Move::FireNext),
    ]
}

/// The reference: `spec::step` with its own state, timers and draws.
struct Reference {
    cfg: spec::Config,
    state: spec::State,
    timers: BTreeMap<Timer, Millis>,
    rng: Rng,
    actions: Vec<spec::Action>,
}

impl Reference {
    fn step(&mut self, now: Millis, input: &spec::Input) {
        let env = spec::Env {
            now,
            draw: self.rng.draw(),
        };
        let out = spec::step(&self.cfg, &self.state, input, env);
        self.state = out.state;
        for a in out.actions {
            match &a {
                spec::Action::ArmTimer { timer, at } => {
                    self.timers.insert(*timer, *at);
                }
                spec::Action::CancelTimer(t) => {
                    self.timers.remove(t);
                }
                spec::Action::MintToken { .. } => {}
                _ => self.actions.push(a),
            }
        }
    }

    fn fire_due(&mut self, now: Millis) {
        for t in Timer::ALL {
            if self.timers.get(&t).is_some_and(|at| *at <= now) {
                self.timers.remove(&t);
                self.step(now, &spec::Input::TimerFired(t));
            }
        }
    }
}

/// The policy actions the session's outputs stand for.
fn policy_actions(outs: &[Output]) -> Vec<spec::Action> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Connect { assignment, .. } => {
                Some(spec::Action::ConnectHub(assignment.clone()))
            }
            Output::Close { .. } => Some(spec::Action::Close),
            Output::Dps {
                operation: None, ..
            } => Some(spec::Action::Register),
            Output::Dps {
                operation: Some(op),
                ..
            } => Some(spec::Action::Poll {
                operation: op.clone(),
            }),
            Output::SaveAssignment(a) => Some(spec::Action::PersistAssignment(a.clone())),
            Output::ClearAssignment => Some(spec::Action::InvalidateAssignment),
            _ => None,
        })
        .collect()
}

struct World {
    h: Harness,
    r: Reference,
    prev_generation: Option<u64>,
    /// The last acknowledged packet id and its connection.
    last_acked: Option<(u64, u16)>,
    /// `$.mid` of the publish each settled-OK message must have been acknowledged through.
    acked_mids: BTreeSet<String>,
    settled: BTreeSet<u64>,
    queued: u64,
}

impl World {
    fn new(seed: u64, cached: bool) -> Self {
        let cache = cached.then(|| hub("a"));
        let mut w = Self {
            h: Harness::new(fast(), cache.clone(), seed),
            r: Reference {
                cfg: fast(),
                state: spec::State::new(cache),
                timers: BTreeMap::new(),
                rng: Rng::new(seed),
                actions: Vec::new(),
            },
            prev_generation: None,
            last_acked: None,
            acked_mids: BTreeSet::new(),
            settled: BTreeSet::new(),
            queued: 0,
        };
        let outs = w.h.start();
        w.r.step(Millis::ZERO, &spec::Input::Command(spec::Command::Start));
        w.check(&outs).expect("start");
        w
    }

    fn hub(&mut self, ev: HubEvent, input: Option<spec::Input>) -> Vec<Output> {
        let outs = self.h.hub_event(ev);
        if let Some(i) = input {
            self.r.step(self.h.now, &i);
        }
        outs
    }

    fn ack(&mut self, generation: u64, n: usize) -> Vec<Output> {
        let len = self.h.unacked.len().max(1);
        match self.h.unacked.keys().copied().nth(n % len) {
            Some(p) => {
                if let Some(mid) = self.h.unacked.remove(&p) {
                    self.acked_mids.insert(mid);
                }
                self.last_acked = Some((generation, p));
                self.hub(HubEvent::PubAck(p), None)
            }
            None => self.hub(HubEvent::PubAck(777), None),
        }
    }

    /// The last PUBACK again, on its own connection: ignored there, and dropped as stale once
    /// that connection is gone. (A hub never acknowledges a packet id of an older connection
    /// on a newer one, so an id in use again is not sent.)
    fn duplicate_ack(&mut self, generation: u64) -> Vec<Output> {
        match self.last_acked {
            Some((g, p)) if !(g == generation && self.h.unacked.contains_key(&p)) => {
                self.h.feed(Event::Hub {
                    generation: g,
                    event: HubEvent::PubAck(p),
                })
            }
            _ => Vec::new(),
        }
    }

    fn apply(&mut self, m: &Move) -> Result<(), String> {
        let generation = self.h.generation;
        let outs = match m {
            Move::Queue => {
                self.queued += 1;
                self.h.queue(&format!("q{}", self.queued));
                Vec::new()
            }
            Move::Write => self.h.write_all(),
            Move::Ack(n) => self.ack(generation, *n),
            Move::DuplicateAck => self.duplicate_ack(generation),
            Move::ConnAck(c) => self.hub(
                HubEvent::ConnAck(*c),
                Some(spec::Input::Signal(WireSignal::ConnAck(*c))),
            ),
            Move::Fail(f) => self.hub(
                HubEvent::Failed(*f),
                Some(spec::Input::Signal(WireSignal::ConnectFailed(*f))),
            ),
            Move::Lost => self.hub(
                HubEvent::Lost,
                Some(spec::Input::Signal(WireSignal::ConnectionLost)),
            ),
            Move::SubAck => self.hub(HubEvent::SubAck { refused: false }, None),
            Move::TwinOk => match self.h.twin_rid.clone() {
                Some(rid) => self.hub(
                    HubEvent::Publish {
                        topic: format!("$iothub/twin/res/200/?$rid={rid}"),
                        payload: br#"{"desired":{},"reported":{}}"#.to_vec(),
                    },
                    None,
                ),
                None => Vec::new(),
            },
            Move::StaleConnAck => match self.prev_generation {
                Some(g) => self.h.feed(Event::Hub {
                    generation: g,
                    event: HubEvent::ConnAck(0),
                }),
                None => Vec::new(),
            },
            Move::Dps(sig) => match self.h.dps.take() {
                Some((attempt, _)) => {
                    let outs = self.h.feed(Event::Dps {
                        attempt,
                        signal: sig.clone(),
                    });
                    self.r.step(self.h.now, &spec::Input::Signal(sig.clone()));
                    outs
                }
                None => Vec::new(),
            },
            Move::StaleDps => self.h.feed(Event::Dps {
                attempt: 0,
                signal: WireSignal::DpsUnreachable,
            }),
            Move::Reprovision => {
                let outs = self.h.feed(Event::Command(spec::Command::ReprovisionNow));
                self.r.step(
                    self.h.now,
                    &spec::Input::Command(spec::Command::ReprovisionNow),
                );
                outs
            }
            Move::Sleep(ms) => {
                self.h.now = self.h.now.plus(Duration::from_millis(*ms));
                self.h.s.handle_timeout(self.h.now);
                let outs = self.h.drain();
                self.r.fire_due(self.h.now);
                outs
            }
            Move::FireNext => {
                let outs = self.h.fire_next();
                self.r.fire_due(self.h.now);
                outs
            }
        };
        if self.h.generation != generation {
            self.prev_generation = Some(generation);
        }
        self.check(&outs)
    }

    fn check(&mut self, outs: &[Output]) -> Result<(), String> {
        let got = policy_actions(outs);
        let want = std::mem::take(&mut self.r.actions);
        if got != want {
            return Err(format!(
                "policy actions differ: session {got:?}, spec {want:?}"
            ));
        }
        if let Some(t) = self.r.timers.values().min()
            && self.h.s.poll_timeout().is_none_or(|s| s > *t)
        {
            return Err(format!(
                "session timeout {:?} after the spec's {t:?}",
                self.h.s.poll_timeout()
            ));
        }
        for o in outs {
            if let Output::Settled(s) = o {
                if !self.settled.insert(s.seq) {
                    return Err(format!("message {} settled twice", s.seq));
                }
                if let Ok(mid) = &s.result
                    && !self.acked_mids.contains(mid)
                {
                    return Err(format!(
                        "{mid} settled as delivered without a PUBACK of its publish"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The cloud behaves until the outbox is empty.
    fn recover(&mut self) -> Result<(), String> {
        for _ in 0..400 {
            if self.h.s.outbox_len() == 0 {
                return Ok(());
            }
            let phase = self.h.s.policy().phase.clone();
            let m = match phase {
                spec::Phase::Connecting { .. } => Move::ConnAck(0),
                spec::Phase::Registering | spec::Phase::Polling { .. } if self.h.dps.is_some() => {
                    Move::Dps(WireSignal::Dps(DpsReply::Assigned(hub("a"))))
                }
                spec::Phase::Connected { .. } if !self.h.unwritten.is_empty() => Move::Write,
                spec::Phase::Connected { .. } if !self.h.unacked.is_empty() => Move::Ack(0),
                _ => Move::FireNext,
            };
            self.apply(&m)?;
        }
        Err(format!("{} messages never settled", self.h.s.outbox_len()))
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_io_refines_the_spec_and_loses_no_message(
        seed in any::<u64>(),
        cached in any::<bool>(),
        run in prop::collection::vec(moves(), 1..120),
    ) {
        let mut w = World::new(seed, cached);
        for (i, m) in run.iter().enumerate() {
            w.apply(m).map_err(|e| TestCaseError::fail(format!("move {i} {m:?}: {e}")))?;
        }
        w.recover().map_err(TestCaseError::fail)?;
        prop_assert_eq!(w.settled.len() as u64, w.queued, "every accepted message settled once");
    }
}
