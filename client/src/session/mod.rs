//! The device session: every protocol decision of the client, sans-IO.
//!
//! A [`Session`] owns the connection policy (a [`spec::State`] advanced by [`spec::step()`]
//! itself), the online sub-states the spec does not have (`subscribing → syncing → ready`, a
//! statig machine in [`online`]), the telemetry outbox and its gate, the packet-id ↔ message
//! map, the application's twin requests and their retries, request-id allocation, and one
//! timer table. It reads no clock, does no IO and draws no OS randomness: time comes in with
//! every call, jitter comes from a generator seeded at construction, and everything the
//! session wants done comes out as an [`Output`].
//!
//! # Interface (in the manner of quinn-proto)
//!
//! - in: [`Session::handle_event`]`(now, event)` and [`Session::handle_timeout`]`(now)`;
//! - out: [`Session::poll_action`] and [`Session::poll_timeout`].
//!
//! **Drain invariant.** After every `handle_*` call the caller drains `poll_action` until it
//! returns `None`, performing each output in order, and then reads `poll_timeout`, which is
//! the earliest time at which `handle_timeout` has work. Outputs and the timeout change only
//! inside `handle_*`; calling `handle_timeout` early is harmless (nothing is due), calling it
//! late only delays what was due.
//!
//! # What the outside sees
//!
//! Hub events carry the generation of the [`Output::Connect`] they belong to; events of an
//! abandoned connection are dropped here. DPS answers carry the attempt of their
//! [`Output::Dps`]. Every telemetry message accepted by [`Event::Telemetry`] leaves through
//! exactly one [`Output::Settled`]: delivered (its PUBACK arrived), expired, or shut down.

mod incoming;
mod interface;
pub mod online;
pub mod outbox;
mod policy;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod twin;

use std::collections::{HashMap, VecDeque};

use hubswap_spec::{self as spec, Assignment, Draw, Millis, Phase};
use statig::blocking::{InitializedStateMachine, IntoStateMachineExt as _};

pub use interface::{Event, HubEvent, Inbound, Output, Qos, SessionConfig};
pub use outbox::{Entry, Settled};
pub use timers::{TimerKey, Timers};
pub use twin::{TwinOp, TwinResult};

use crate::builder::MAX_MESSAGE;
use crate::error::SendError;
use crate::status::{ConnectionStatus, Reason};
use crate::telemetry::Telemetry;
use crate::wire::hub as topics;
use outbox::Outbox;
use twin::TwinRequests;

/// SplitMix64, seeded once: the session's jitter.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn draw(&mut self) -> Draw {
        Draw(u32::try_from(self.next_u64() >> 32).unwrap_or(u32::MAX))
    }
}

/// What the session knows of the current hub connection.
#[derive(Debug, Default)]
struct Link {
    /// The generation of the latest connect or close.
    generation: u64,
    /// The assignment of the current (or last) connection.
    assignment: Option<Assignment>,
    /// Publishes handed out on this connection, in order, awaiting their packet id
    /// (`Some(seq)` for telemetry).
    sent: VecDeque<Option<u64>>,
    /// Packet id → outbox sequence number, for the publishes written on this connection.
    pkids: HashMap<u16, u64>,
}

impl Link {
    fn renew(&mut self) {
        self.generation += 1;
        self.sent.clear();
        self.pkids.clear();
    }
}

/// The session. See the module docs.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    policy: spec::State,
    online: InitializedStateMachine<online::Online>,
    reason: Option<Reason>,
    /// One draw per spec step, in order.
    policy_rng: Rng,
    /// Draws for the retries of twin requests.
    twin_rng: Rng,
    timers: Timers,
    outbox: Outbox,
    twin: TwinRequests,
    twin_sync_rid: Option<u64>,
    link: Link,
    dps_attempt: u64,
    /// The attempt whose answer is awaited.
    dps_in_flight: Option<u64>,
    token_expires_at: Millis,
    next_id: u64,
    mid_prefix: String,
    status: ConnectionStatus,
    out: VecDeque<Output>,
}

impl Session {
    /// A session that has not started (feed [`spec::Command::Start`]).
    pub fn new(mut cfg: SessionConfig) -> Self {
        let mut ctx = online::Ctx {
            now: Millis::ZERO,
            draw: Draw::MIN,
            profile: cfg.spec.fast,
            out: Vec::new(),
        };
        let online = online::Online
            .uninitialized_state_machine()
            .init_with_context(&mut ctx);
        let mut prefix_rng = Rng::new(cfg.seed ^ 0x6D69_645F_7072_6566);
        let restored = std::mem::take(&mut cfg.restored);
        Self {
            policy: spec::State::new(cfg.cache.clone()),
            online,
            reason: None,
            policy_rng: Rng::new(cfg.seed),
            twin_rng: Rng::new(cfg.seed ^ 0x7477_696E_5F72_6E67),
            timers: Timers::default(),
            outbox: Outbox::new(cfg.window, restored),
            twin: TwinRequests::default(),
            twin_sync_rid: None,
            link: Link::default(),
            dps_attempt: 0,
            dps_in_flight: None,
            token_expires_at: Millis::ZERO,
            next_id: 0,
            mid_prefix: format!("{:08x}", prefix_rng.next_u64() >> 32),
            status: ConnectionStatus {
                kind: crate::status::StatusKind::Idle,
                reason: None,
            },
            out: VecDeque::new(),
            cfg,
        }
    }

    /// Handles one input at `now`.
    pub fn handle_event(&mut self, now: Millis, event: Event) {
        match event {
            Event::Command(c) => self.command(now, c),
            Event::Telemetry { handle, msg } => self.accept(now, handle, msg),
            Event::Twin { handle, op } => {
                if self.policy.phase == Phase::Stopped {
                    let result = op.failed(crate::error::ClientError::Shutdown);
                    self.out.push_back(Output::TwinAnswered { handle, result });
                } else {
                    self.twin.push(handle, op);
                }
            }
            Event::MethodResponse {
                generation,
                rid,
                status,
                payload,
            } => {
                if generation == self.link.generation && self.policy.phase != Phase::Stopped {
                    self.publish(topics::method_response_topic(status, &rid), payload, None);
                } else {
                    tracing::info!(rid, "dropping a command response: its connection is gone");
                }
            }
            Event::Hub { generation, event } => {
                if generation == self.link.generation {
                    self.hub(now, event);
                } else {
                    tracing::trace!(generation, "dropping an event of an abandoned connection");
                }
            }
            Event::Dps { attempt, signal } => {
                if self.dps_in_flight == Some(attempt) {
                    self.dps_in_flight = None;
                    self.step(now, &spec::Input::Signal(signal));
                } else {
                    tracing::debug!(attempt, "dropping the answer of an abandoned DPS request");
                }
            }
        }
        self.settle_turn(now);
    }

    /// Fires everything due at `now`: spec timers in the spec's order, the twin retry, the
    /// twin requests' backoffs, and telemetry time-to-live.
    pub fn handle_timeout(&mut self, now: Millis) {
        for t in spec::Timer::ALL {
            if self.timers.take_due(TimerKey::Spec(t), now) {
                self.step(now, &spec::Input::TimerFired(t));
            }
        }
        if self.timers.take_due(TimerKey::TwinRetry, now) {
            self.online_step(now, online::Step::TwinRetry);
        }
        self.twin.release_due(now);
        self.settle_turn(now);
    }

    /// The next output, in order.
    pub fn poll_action(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Session::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.next()
    }

    /// The sequence number and `$.mid` the next accepted telemetry message gets (so that the
    /// driver can journal it before handing it over).
    pub fn next_telemetry(&self) -> (u64, String) {
        let seq = self.outbox.next_seq();
        (seq, self.mid(seq))
    }

    /// The spec state of the connection policy.
    pub fn policy(&self) -> &spec::State {
        &self.policy
    }

    /// The online sub-state.
    pub fn online(&self) -> &online::State {
        self.online.state()
    }

    /// The current connection status.
    pub fn status(&self) -> &ConnectionStatus {
        &self.status
    }

    /// Messages accepted and not yet settled.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    fn mid(&self, seq: u64) -> String {
        format!("{}-{seq}", self.mid_prefix)
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn command(&mut self, now: Millis, c: spec::Command) {
        self.step(now, &spec::Input::Command(c));
        if c == spec::Command::Stop {
            self.dps_in_flight = None;
            self.out.push_back(Output::AbortDps);
            for s in self.outbox.close(&SendError::Shutdown) {
                self.out.push_back(Output::Settled(s));
            }
            for (handle, result) in self.twin.close() {
                self.out.push_back(Output::TwinAnswered { handle, result });
            }
        }
    }

    fn accept(&mut self, now: Millis, handle: u64, msg: Telemetry) {
        let seq = self.outbox.next_seq();
        let refused = if msg.payload.len() > MAX_MESSAGE {
            Some(SendError::TooLarge {
                size: msg.payload.len(),
                limit: MAX_MESSAGE,
            })
        } else if self.policy.phase == Phase::Stopped {
            Some(SendError::Shutdown)
        } else {
            None
        };
        if let Some(e) = refused {
            self.out.push_back(Output::Settled(Settled {
                handle: Some(handle),
                seq,
                result: Err(e),
            }));
            return;
        }
        let deadline = msg.ttl.or(self.cfg.default_ttl).map(|t| now.plus(t));
        self.outbox.push(Entry {
            seq,
            mid: self.mid(seq),
            msg,
            deadline,
            handle: Some(handle),
        });
    }

    /// Queues a publish on the current connection; telemetry carries its sequence number.
    fn publish(&mut self, topic: String, payload: Vec<u8>, seq: Option<u64>) {
        let qos = if seq.is_some() {
            Qos::AtLeastOnce
        } else {
            Qos::AtMostOnce
        };
        self.link.sent.push_back(seq);
        self.out.push_back(Output::Publish {
            topic,
            payload,
            qos,
        });
    }

    /// The end of every turn: expire, let the outbox and twin requests flow, refresh the
    /// derived deadlines and the status.
    fn settle_turn(&mut self, now: Millis) {
        for s in self.outbox.expire(now) {
            self.out.push_back(Output::Settled(s));
        }
        self.flow();
        self.timers
            .set(TimerKey::TwinRelease, self.twin.next_release());
        self.timers
            .set(TimerKey::Expiry, self.outbox.next_deadline());
        let status =
            ConnectionStatus::of(&self.policy.phase, self.online.state(), self.reason.clone());
        if status != self.status {
            self.status = status.clone();
            self.out.push_back(Output::Status(status));
        }
    }

    /// Lets queued telemetry flow while the outbox is open, and twin requests while ready.
    fn flow(&mut self) {
        let Some(device) = self.link.assignment.as_ref().map(|a| a.device_id.clone()) else {
            return;
        };
        while let Some(e) = self.outbox.next_to_send() {
            let mut system: Vec<(&str, &str)> = vec![("$.mid", e.mid.as_str())];
            if let Some(ct) = &e.msg.content_type {
                system.push(("$.ct", ct));
            }
            if let Some(ce) = &e.msg.content_encoding {
                system.push(("$.ce", ce));
            }
            if let Some(sub) = &e.msg.component {
                system.push(("$.sub", sub));
            }
            let topic = topics::telemetry_topic(&device, &system, &e.msg.properties);
            let (payload, seq) = (e.msg.payload.clone(), e.seq);
            self.publish(topic, payload, Some(seq));
        }
        if matches!(self.online.state(), online::State::Ready {}) {
            while let Some(q) = self.twin.next_waiting() {
                let rid = self.next_id();
                let (topic, body) = match &q.op {
                    TwinOp::Get => (topics::twin_get_topic(&rid.to_string()), Vec::new()),
                    TwinOp::Patch(patch) => (
                        topics::twin_patch_topic(&rid.to_string()),
                        patch.to_string().into_bytes(),
                    ),
                };
                self.publish(topic, body, None);
                self.twin.mark_sent(rid, q);
            }
        }
    }
}
