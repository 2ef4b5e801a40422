//! The session in virtual time, without sockets: a harness plays the link (numbering packet
//! ids the way rumqttc does on a fresh connection), DPS and the application.

mod delivery;
mod random;
mod twin;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use hubswap_spec::{self as spec, Assignment, DpsReply, Millis, WireSignal};

use super::{Event, HubEvent, Output, Qos, Session, SessionConfig};
use crate::telemetry::Telemetry;

pub(super) fn hub(name: &str) -> Assignment {
    Assignment {
        hub: format!("{name}.azure-devices.net"),
        device_id: "dev1".into(),
    }
}

/// Millisecond-scale timing so that a test walks many reconnects quickly.
pub(super) fn fast() -> spec::Config {
    let c = spec::Config {
        fast: spec::Profile {
            floor: Duration::from_millis(50),
            initial: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        },
        min_attempt_spacing: Duration::from_millis(50),
        stable_after: Duration::from_millis(500),
        ..spec::Config::default()
    };
    c.validate().expect("valid");
    c
}

/// The `$.mid` a telemetry topic carries.
pub(super) fn mid_of(topic: &str) -> Option<String> {
    let rest = topic.split("%24.mid=").nth(1)?;
    Some(rest.split('&').next().unwrap_or(rest).to_owned())
}

/// A publish the link was handed on one connection.
#[derive(Debug, Clone)]
pub(super) struct Written {
    pub(super) topic: String,
    pub(super) qos: Qos,
}

/// A session plus the world around it.
pub(super) struct Harness {
    pub(super) s: Session,
    pub(super) now: Millis,
    /// Every output so far.
    pub(super) log: Vec<Output>,
    /// The current connection's generation, as the session announced it.
    pub(super) generation: u64,
    /// Publishes handed out on the current connection and not yet written.
    pub(super) unwritten: VecDeque<Written>,
    /// Written QoS 1 publishes awaiting PUBACK: packet id → `$.mid`.
    pub(super) unacked: BTreeMap<u16, String>,
    /// rumqttc's last packet id on this connection.
    last_pkid: u16,
    /// The DPS attempt in flight.
    pub(super) dps: Option<(u64, Option<String>)>,
    /// The resync twin GET's `$rid`, if one is outstanding.
    pub(super) twin_rid: Option<String>,
    next_handle: u64,
}

impl Harness {
    pub(super) fn new(cfg: spec::Config, cache: Option<Assignment>, seed: u64) -> Self {
        Self {
            s: Session::new(SessionConfig {
                spec: cfg,
                window: 4,
                default_ttl: None,
                seed,
                cache,
                restored: Vec::new(),
            }),
            now: Millis::ZERO,
            log: Vec::new(),
            generation: 0,
            unwritten: VecDeque::new(),
            unacked: BTreeMap::new(),
            last_pkid: 0,
            dps: None,
            twin_rid: None,
            next_handle: 0,
        }
    }

    /// Drains the session, tracking what the link and DPS were told; returns the outputs.
    pub(super) fn drain(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        while let Some(o) = self.s.poll_action() {
            match &o {
                Output::Connect { generation, .. } | Output::Close { generation } => {
                    self.generation = *generation;
                    self.unwritten.clear();
                    self.unacked.clear();
                    self.last_pkid = 0;
                    self.twin_rid = None;
                }
                Output::Publish { topic, qos, .. } => {
                    if let Some(rid) = topic.strip_prefix("$iothub/twin/GET/?$rid=") {
                        self.twin_rid = Some(rid.to_owned());
                    }
                    self.unwritten.push_back(Written {
                        topic: topic.clone(),
                        qos: *qos,
                    });
                }
                Output::Dps {
                    attempt, operation, ..
                } => self.dps = Some((*attempt, operation.clone())),
                Output::AbortDps => self.dps = None,
                _ => {}
            }
            outs.push(o);
        }
        self.log.extend(outs.iter().cloned());
        outs
    }

    pub(super) fn feed(&mut self, ev: Event) -> Vec<Output> {
        self.s.handle_event(self.now, ev);
        self.drain()
    }

    pub(super) fn hub_event(&mut self, event: HubEvent) -> Vec<Output> {
        let generation = self.generation;
        self.feed(Event::Hub { generation, event })
    }

    pub(super) fn start(&mut self) -> Vec<Output> {
        self.feed(Event::Command(spec::Command::Start))
    }

    /// Moves the clock to the session's next deadline (if any) and fires it.
    pub(super) fn fire_next(&mut self) -> Vec<Output> {
        if let Some(at) = self.s.poll_timeout() {
            self.now = self.now.max(at);
        }
        self.s.handle_timeout(self.now);
        self.drain()
    }

    pub(super) fn queue(&mut self, body: &str) -> u64 {
        self.next_handle += 1;
        let handle = self.next_handle;
        self.feed(Event::Telemetry {
            handle,
            msg: Telemetry::new(body),
        });
        handle
    }

    /// Queues a message with a time-to-live.
    pub(super) fn next_ttl_queue(&mut self, body: &str, ttl: Duration) -> u64 {
        self.next_handle += 1;
        let handle = self.next_handle;
        self.feed(Event::Telemetry {
            handle,
            msg: Telemetry::new(body).ttl(ttl),
        });
        handle
    }

    /// The link writes what it was handed, numbering QoS 1 publishes as rumqttc does.
    pub(super) fn write_all(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        while let Some(w) = self.unwritten.pop_front() {
            let pkid = match w.qos {
                Qos::AtMostOnce => 0,
                Qos::AtLeastOnce => {
                    self.last_pkid += 1;
                    if let Some(mid) = mid_of(&w.topic) {
                        self.unacked.insert(self.last_pkid, mid);
                    }
                    self.last_pkid
                }
            };
            outs.extend(self.hub_event(HubEvent::Sent(pkid)));
        }
        outs
    }

    /// The hub acknowledges every written QoS 1 publish.
    pub(super) fn ack_all(&mut self) -> Vec<Output> {
        let pkids: Vec<u16> = self.unacked.keys().copied().collect();
        let mut outs = Vec::new();
        for p in pkids {
            self.unacked.remove(&p);
            outs.extend(self.hub_event(HubEvent::PubAck(p)));
        }
        outs
    }

    /// CONNACK 0, SUBACK, and a valid twin for the resync GET: the session is ready.
    pub(super) fn come_online(&mut self) {
        self.hub_event(HubEvent::ConnAck(0));
        self.hub_event(HubEvent::SubAck { refused: false });
        self.write_all();
        self.answer_resync();
    }

    /// A valid twin for the outstanding resync GET: the session is ready.
    pub(super) fn answer_resync(&mut self) {
        let rid = self.twin_rid.clone().expect("a resync GET");
        self.hub_event(HubEvent::Publish {
            topic: format!("$iothub/twin/res/200/?$rid={rid}"),
            payload: br#"{"desired":{"$version":1},"reported":{}}"#.to_vec(),
        });
        assert_eq!(self.s.status().kind, crate::StatusKind::Connected);
    }

    /// Answers the DPS request in flight.
    pub(super) fn dps_answer(&mut self, reply: DpsReply) -> Vec<Output> {
        let (attempt, _) = self.dps.take().expect("a DPS request in flight");
        self.feed(Event::Dps {
            attempt,
            signal: WireSignal::Dps(reply),
        })
    }

    /// How each telemetry handle settled, in order.
    pub(super) fn settled(&self) -> Vec<(Option<u64>, Result<String, crate::SendError>)> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Settled(s) => Some((s.handle, s.result.clone())),
                _ => None,
            })
            .collect()
    }

    /// The hubs connected to, in order.
    pub(super) fn connects(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Connect { assignment, .. } => Some(assignment.hub.clone()),
                _ => None,
            })
            .collect()
    }
}
