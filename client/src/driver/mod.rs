//! The driver: one tokio task that feeds inputs to the [`Machine`] and performs its actions.
//!
//! It is the only place that reads the clock (`tokio::time::Instant` for the spec's
//! milliseconds, `SystemTime` for SAS expiries) or sleeps, and it seeds the jitter draws. The
//! loop takes exactly one input per turn (an API request, a hub event, a DPS answer, or the
//! earliest due timer), hands it to the machine, performs every action in order, then lets the
//! outbox and the twin queue flow while the machine says the connection is up.

#![allow(
    clippy::disallowed_methods,
    reason = "the driver is the clock: the one place that reads it and sleeps"
)]

mod actions;
mod incoming;
mod twin;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubswap_spec::{self as spec, Assignment, Draw, Env, Millis, Timer};
use rumqttc::{MqttOptions, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::{DeviceEvent, Request};
use crate::builder::{MAX_MESSAGE, Settings};
use crate::error::SendError;
use crate::hub::HubLink;
use crate::machine::{ClientTimer, Event, Machine, State};
use crate::outbox::Outbox;
use crate::status::ConnectionStatus;
use crate::wire::hub as topics;
pub(crate) use twin::{Answered, TwinOp, TwinRequests};

/// SplitMix64: the driver's jitter source, seeded once.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn draw(&mut self) -> Draw {
        Draw(u32::try_from(self.next_u64() >> 32).unwrap_or(u32::MAX))
    }
}

/// A seed from the OS (via the std hasher's random keys) mixed with the wall clock.
fn os_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

pub(crate) struct Driver {
    s: Arc<Settings>,
    m: Machine,
    epoch: Instant,
    rng: Rng,
    hub: HubLink,
    /// The assignment of the current (or last) hub connection.
    assignment: Option<Assignment>,
    /// The `se` of the hub token, in Unix seconds.
    token_expiry: u64,
    spec_timers: BTreeMap<Timer, Instant>,
    client_timers: BTreeMap<ClientTimer, Instant>,
    dps: Option<JoinHandle<()>>,
    dps_attempt: u64,
    dps_tx: mpsc::UnboundedSender<(u64, spec::WireSignal)>,
    outbox: Outbox,
    /// Publishes handed to rumqttc, in order, awaiting their packet id (`Some(seq)` for telemetry).
    sent: VecDeque<Option<u64>>,
    pkids: HashMap<u16, u64>,
    twin: TwinRequests,
    twin_sync_rid: Option<String>,
    rid: u64,
    mid_prefix: String,
    events: mpsc::UnboundedSender<DeviceEvent>,
    api: mpsc::WeakUnboundedSender<Request>,
    status: watch::Sender<ConnectionStatus>,
}

/// The receiving ends the loop selects on.
pub(crate) struct Inputs {
    pub api: mpsc::UnboundedReceiver<Request>,
    pub hub: mpsc::UnboundedReceiver<crate::hub::HubEvent>,
    pub dps: mpsc::UnboundedReceiver<(u64, spec::WireSignal)>,
}

impl Driver {
    /// Prepares the driver (reads the cache) without starting it.
    pub(crate) fn new(
        s: Arc<Settings>,
        outbox: Outbox,
        events: mpsc::UnboundedSender<DeviceEvent>,
        api: mpsc::WeakUnboundedSender<Request>,
        status: watch::Sender<ConnectionStatus>,
        api_rx: mpsc::UnboundedReceiver<Request>,
    ) -> Result<(Self, Inputs), crate::error::ConfigError> {
        let cache = s.store.load(&s.identity)?;
        let m = Machine::new(s.spec.clone(), cache);
        let seed = s.seed.unwrap_or_else(os_seed);
        let mut rng = Rng(seed);
        let mid_prefix = format!("{:08x}", rng.next_u64() >> 32);
        let seed_opts = MqttOptions::new(s.registration_id.clone(), "localhost", 8883);
        let cap = s.outbox_window * 2 + 32;
        let (hub, hub_rx) = HubLink::spawn(seed_opts, cap, s.spec.attempt_timeout.as_secs() + 1);
        let (dps_tx, dps_rx) = mpsc::unbounded_channel();
        let d = Self {
            s,
            m,
            epoch: Instant::now(),
            rng,
            hub,
            assignment: None,
            token_expiry: 0,
            spec_timers: BTreeMap::new(),
            client_timers: BTreeMap::new(),
            dps: None,
            dps_attempt: 0,
            dps_tx,
            outbox,
            sent: VecDeque::new(),
            pkids: HashMap::new(),
            twin: TwinRequests::default(),
            twin_sync_rid: None,
            rid: 0,
            mid_prefix,
            events,
            api,
            status,
        };
        Ok((
            d,
            Inputs {
                api: api_rx,
                hub: hub_rx,
                dps: dps_rx,
            },
        ))
    }

    /// The run loop.
    pub(crate) async fn run(mut self, mut inputs: Inputs) {
        self.feed(&Event::command(spec::Command::Start));
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                req = inputs.api.recv() => match req {
                    Some(Request::Shutdown { done }) => {
                        self.shutdown();
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.shutdown();
                        return;
                    }
                    Some(r) => self.api_request(r),
                },
                Some(ev) = inputs.hub.recv() => self.hub_event(ev),
                Some((attempt, sig)) = inputs.dps.recv() => {
                    if attempt == self.dps_attempt {
                        self.dps = None;
                        self.feed(&Event::signal(sig));
                    }
                }
                () = sleep_until(deadline) => self.fire_due(),
            }
            self.pump();
        }
    }

    fn millis(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn instant(&self, at: Millis) -> Instant {
        self.epoch + Duration::from_millis(at.0)
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let ttl = self.outbox.expire(Instant::now());
        self.spec_timers
            .values()
            .chain(self.client_timers.values())
            .copied()
            .chain(ttl)
            .chain(self.twin.next_release())
            .min()
    }

    /// Fires every due timer, spec timers first in the spec's order, then expires telemetry.
    fn fire_due(&mut self) {
        let now = Instant::now();
        for t in Timer::ALL {
            if self.spec_timers.get(&t).is_some_and(|at| *at <= now) {
                self.spec_timers.remove(&t);
                self.feed(&Event::timer(t));
            }
        }
        let due: Vec<_> = self
            .client_timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            self.client_timers.remove(&t);
            self.feed(&Event::ClientTimerFired(t));
        }
        self.outbox.expire(now);
        self.twin.release_due(now);
    }

    /// Hands one event to the machine and performs its actions.
    fn feed(&mut self, ev: &Event) {
        let env = Env {
            now: self.millis(),
            draw: self.rng.draw(),
        };
        let actions = self.m.handle(ev, env);
        tracing::trace!(?ev, state = ?self.m.state(), ?actions, "step");
        for a in actions {
            self.perform(a, env.now);
        }
        let status = self.m.status();
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn next_rid(&mut self) -> String {
        self.rid += 1;
        self.rid.to_string()
    }

    /// Hands a publish to rumqttc; telemetry (QoS 1) carries its outbox sequence number.
    fn publish(&mut self, topic: String, payload: Vec<u8>, seq: Option<u64>) -> bool {
        let qos = if seq.is_some() {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        match self.hub.client.try_publish(topic, qos, false, payload) {
            Ok(()) => {
                self.sent.push_back(seq);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot queue a publish");
                false
            }
        }
    }

    /// Lets queued telemetry and twin requests flow while the machine is online.
    fn pump(&mut self) {
        let Some(device) = self.assignment.as_ref().map(|a| a.device_id.clone()) else {
            return;
        };
        let now = Instant::now();
        while let Some(e) = self.outbox.next_to_send(now) {
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
            if !self.publish(topic, payload, Some(seq)) {
                break;
            }
        }
        if matches!(self.m.state(), State::Ready { .. }) {
            while let Some(q) = self.twin.next_waiting() {
                let rid = self.next_rid();
                let (topic, body) = match &q.op {
                    TwinOp::Get(_) => (topics::twin_get_topic(&rid), Vec::new()),
                    TwinOp::Patch { patch, .. } => (
                        topics::twin_patch_topic(&rid),
                        patch.to_string().into_bytes(),
                    ),
                };
                if self.publish(topic, body, None) {
                    self.twin.mark_sent(rid, q);
                } else {
                    self.twin.push_front(q);
                    break;
                }
            }
        }
    }

    fn api_request(&mut self, r: Request) {
        match r {
            Request::Telemetry(mut e) => {
                if e.msg.payload.len() > MAX_MESSAGE {
                    let _ = e.done.take().map(|tx| {
                        tx.send(Err(SendError::TooLarge {
                            size: e.msg.payload.len(),
                            limit: MAX_MESSAGE,
                        }))
                    });
                    return;
                }
                e.mid = format!("{}-{}", self.mid_prefix, self.outbox.next_seq());
                if e.deadline.is_none() {
                    e.deadline = e.msg.ttl.or(self.s.default_ttl).map(|t| Instant::now() + t);
                }
                if let Err(failed) = self.outbox.push(e) {
                    let (mut e, err) = *failed;
                    let _ = e.done.take().map(|tx| tx.send(Err(err)));
                }
            }
            Request::Report { patch, done } => self.twin.push(TwinOp::Patch { patch, done }),
            Request::GetTwin { done } => self.twin.push(TwinOp::Get(done)),
            Request::MethodResponse {
                generation,
                rid,
                status,
                payload,
            } => {
                if generation == self.hub.generation()
                    && self.m.status().kind != crate::status::StatusKind::Stopped
                {
                    self.publish(topics::method_response_topic(status, &rid), payload, None);
                } else {
                    tracing::info!(rid, "dropping a command response: its connection is gone");
                }
            }
            Request::Reprovision => self.feed(&Event::command(spec::Command::ReprovisionNow)),
            Request::Shutdown { .. } => {}
        }
    }

    fn shutdown(&mut self) {
        self.feed(&Event::command(spec::Command::Stop));
        self.abort_dps();
        self.outbox.close(&SendError::Shutdown);
        self.twin.close();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
