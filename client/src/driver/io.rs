//! The IO seam: performs the session's outputs on the hub link, the DPS task, the store, the
//! journal and the application's channels. Nothing here decides anything.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hubswap_spec::{self as spec, Assignment, Millis};
use rumqttc::{MqttOptions, QoS, SubscribeFilter, TlsConfiguration, Transport};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::{C2dMessage, CommandRequest, DeviceEvent, Request, Responder, Twin};
use crate::builder::{MAX_MESSAGE, Settings};
use crate::dps::{DpsRequest, request as dps_request};
use crate::error::{ClientError, SendError};
use crate::hub::{HubEvent, HubLink};
use crate::journal::Journal;
use crate::session::{Inbound, Output, Qos, TwinResult};
use crate::status::ConnectionStatus;
use crate::wire::hub as topics;

/// rumqttc's in-flight limit: the outbox window plus room for twin requests and command answers.
fn inflight(s: &Settings) -> u16 {
    u16::try_from(s.outbox_window + 8).unwrap_or(u16::MAX)
}

/// An application call waiting for the session's answer.
pub(super) enum Caller {
    Telemetry {
        done: oneshot::Sender<Result<String, SendError>>,
        /// Outbox room, released when the message settles.
        permit: OwnedSemaphorePermit,
    },
    Report(oneshot::Sender<Result<Option<u64>, ClientError>>),
    GetTwin(oneshot::Sender<Result<Twin, ClientError>>),
}

pub(super) struct Io {
    s: Arc<Settings>,
    /// Session time zero in Unix milliseconds (for SAS expiries).
    epoch_unix_ms: u64,
    hub: HubLink,
    /// Publishes the link's request channel had no room for yet, in order.
    publishes: VecDeque<(String, Vec<u8>, QoS)>,
    /// The DPS request in flight, which answers with its attempt number.
    dps: Option<JoinHandle<(u64, spec::WireSignal)>>,
    journal: Option<Journal>,
    callers: HashMap<u64, Caller>,
    next_handle: u64,
    events: mpsc::UnboundedSender<DeviceEvent>,
    api: mpsc::WeakUnboundedSender<Request>,
    status: watch::Sender<ConnectionStatus>,
}

impl Io {
    pub(super) fn new(
        s: Arc<Settings>,
        journal: Option<Journal>,
        events: mpsc::UnboundedSender<DeviceEvent>,
        api: mpsc::WeakUnboundedSender<Request>,
        status: watch::Sender<ConnectionStatus>,
        epoch_unix_ms: u64,
    ) -> (Self, mpsc::UnboundedReceiver<HubEvent>) {
        let mut seed_opts = MqttOptions::new(s.registration_id.clone(), "localhost", 8883);
        // rumqttc sizes its packet-id table from the options it starts with; every connection
        // uses the same in-flight limit (see `options`).
        seed_opts.set_inflight(inflight(&s));
        let cap = s.outbox_window * 2 + 32;
        let (hub, hub_rx) = HubLink::spawn(seed_opts, cap, s.spec.attempt_timeout.as_secs() + 1);
        let io = Self {
            s,
            epoch_unix_ms,
            hub,
            publishes: VecDeque::new(),
            dps: None,
            journal,
            callers: HashMap::new(),
            next_handle: 0,
            events,
            api,
            status,
        };
        (io, hub_rx)
    }

    pub(super) fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Registers a waiting caller; the handle names it to the session.
    pub(super) fn wait(&mut self, c: Caller) -> u64 {
        self.next_handle += 1;
        self.callers.insert(self.next_handle, c);
        self.next_handle
    }

    pub(super) fn perform(&mut self, out: Output) {
        match out {
            Output::Connect {
                generation,
                assignment,
                token_expires_at,
            } => {
                self.publishes.clear();
                let options = self.options(&assignment, token_expires_at);
                tracing::info!(hub = %assignment.hub, device = %assignment.device_id, "connecting to the hub");
                self.hub.connect(generation, options);
            }
            Output::Close { generation } => {
                self.publishes.clear();
                self.hub.close(generation);
            }
            Output::Subscribe(filters) => {
                let filters = filters
                    .into_iter()
                    .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce));
                if let Err(e) = self.hub.client.try_subscribe_many(filters) {
                    tracing::warn!(error = %e, "cannot queue the subscriptions");
                }
            }
            Output::Publish {
                topic,
                payload,
                qos,
            } => {
                let qos = match qos {
                    Qos::AtMostOnce => QoS::AtMostOnce,
                    Qos::AtLeastOnce => QoS::AtLeastOnce,
                };
                self.publishes.push_back((topic, payload, qos));
                self.flush_publishes();
            }
            Output::Dps {
                attempt,
                rid,
                operation,
            } => self.start_dps(attempt, rid, operation),
            Output::AbortDps => {
                if let Some(task) = self.dps.take() {
                    task.abort();
                }
            }
            Output::SaveAssignment(a) => {
                if let Err(e) = self.s.store.save(&self.s.identity, &a) {
                    tracing::warn!(error = %e, "cannot persist the assignment");
                }
            }
            Output::ClearAssignment => {
                if let Err(e) = self.s.store.clear(&self.s.identity) {
                    tracing::warn!(error = %e, "cannot invalidate the cached assignment");
                }
            }
            Output::Settled(s) => {
                // A message cut short by shutdown stays journaled for the next run.
                if let Some(j) = &self.journal
                    && s.result != Err(SendError::Shutdown)
                {
                    j.forget(s.seq);
                }
                if let Some(Caller::Telemetry { done, permit }) =
                    s.handle.and_then(|h| self.callers.remove(&h))
                {
                    let _ = done.send(s.result);
                    drop(permit);
                }
            }
            Output::TwinAnswered { handle, result } => match (self.callers.remove(&handle), result)
            {
                (Some(Caller::GetTwin(tx)), TwinResult::Twin(r)) => {
                    let _ = tx.send(r);
                }
                (Some(Caller::Report(tx)), TwinResult::Reported(r)) => {
                    let _ = tx.send(r);
                }
                _ => tracing::debug!(handle, "a twin answer with no matching caller"),
            },
            Output::Deliver(inbound) => {
                let _ = self.events.send(self.event(inbound));
            }
            Output::Status(st) => {
                self.status.send_replace(st);
            }
        }
    }

    /// Hands waiting publishes to rumqttc while its request channel has room.
    pub(super) fn flush_publishes(&mut self) {
        while let Some((topic, payload, qos)) = self.publishes.pop_front() {
            match self.hub.client.try_publish(topic, qos, false, payload) {
                Ok(()) => {}
                Err(rumqttc::ClientError::TryRequest(rumqttc::Request::Publish(p))) => {
                    self.publishes
                        .push_front((p.topic, p.payload.to_vec(), p.qos));
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot queue a publish"),
            }
        }
    }

    fn event(&self, inbound: Inbound) -> DeviceEvent {
        match inbound {
            Inbound::Twin(doc) => DeviceEvent::Twin(doc),
            Inbound::Desired { version, patch } => DeviceEvent::Desired { version, patch },
            Inbound::C2d {
                payload,
                properties,
            } => DeviceEvent::C2d(C2dMessage {
                payload,
                properties,
            }),
            Inbound::Command {
                component,
                name,
                payload,
                generation,
                rid,
            } => DeviceEvent::Command(Box::new(CommandRequest {
                component,
                name,
                payload,
                responder: Responder {
                    api: self.api.clone(),
                    generation,
                    rid,
                },
            })),
        }
    }

    fn start_dps(&mut self, attempt: u64, rid: String, operation: Option<String>) {
        if let Some(task) = self.dps.take() {
            task.abort();
        }
        let req = DpsRequest {
            operation,
            rid,
            token_expiry: super::unix_now_ms() / 1000 + 3600,
        };
        let settings = self.s.dps.clone();
        self.dps = Some(tokio::spawn(async move {
            (attempt, dps_request(settings, req).await)
        }));
    }

    /// The answer of the DPS request in flight; pending while there is none. `None` when the
    /// task did not finish (it cannot be aborted while awaited here, so only a panic).
    pub(super) async fn dps_answer(&mut self) -> Option<(u64, spec::WireSignal)> {
        let Some(task) = self.dps.as_mut() else {
            return std::future::pending().await;
        };
        let answer = task.await.ok();
        self.dps = None;
        answer
    }

    fn options(&self, a: &Assignment, token_expires_at: Millis) -> MqttOptions {
        let (host, port) = (self.s.resolver)(&a.hub);
        let mut o = MqttOptions::new(a.device_id.clone(), host, port);
        let username = topics::username(&a.hub, &a.device_id, self.s.model_id.as_deref());
        let password = match &self.s.hub_key {
            Some(key) => {
                let resource = format!("{}/devices/{}", a.hub, a.device_id);
                let se = (self.epoch_unix_ms.saturating_add(token_expires_at.0)) / 1000;
                match crate::auth::SasToken::new(key, &resource, se, None) {
                    Ok(t) => t.expose().to_owned(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot sign the hub token");
                        String::new()
                    }
                }
            }
            None => String::new(),
        };
        o.set_credentials(username, password);
        o.set_clean_session(false);
        o.set_keep_alive(self.s.keep_alive);
        o.set_max_packet_size(MAX_MESSAGE + 16 * 1024, MAX_MESSAGE + 16 * 1024);
        o.set_inflight(inflight(&self.s));
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(
            self.s.hub_tls.clone(),
        )));
        o
    }
}
