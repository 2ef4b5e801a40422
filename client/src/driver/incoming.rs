//! Hub events: connection outcomes go to the machine, acks to the outbox, publishes from the
//! cloud are parsed, classified and delivered. Bad input is logged and dropped; it never
//! panics and never touches the outbox.

use hubswap_spec::WireSignal;
use rumqttc::{Publish, SubscribeReasonCode};

use super::{Answered, Driver};
use crate::api::{C2dMessage, CommandRequest, DeviceEvent, Responder};
use crate::builder::MAX_MESSAGE;
use crate::hub::{HubEvent, HubEventKind};
use crate::machine::Event;
use crate::wire::WireError;
use crate::wire::hub::{Incoming, parse_incoming, parse_patch, parse_twin};

impl Driver {
    pub(super) fn hub_event(&mut self, ev: HubEvent) {
        if ev.generation != self.hub.generation() {
            tracing::trace!(
                generation = ev.generation,
                "dropping an event of an abandoned connection"
            );
            return;
        }
        match ev.kind {
            HubEventKind::ConnAck(code) => {
                tracing::info!(code, "CONNACK");
                self.feed(&Event::signal(WireSignal::ConnAck(code)));
            }
            HubEventKind::Failed(f) => {
                tracing::info!(failure = ?f, "hub connect failed");
                self.feed(&Event::signal(WireSignal::ConnectFailed(f)));
            }
            HubEventKind::Lost(why) => {
                tracing::info!(reason = %why, "hub connection lost");
                self.feed(&Event::signal(WireSignal::ConnectionLost));
            }
            HubEventKind::SubAck(codes) => {
                if codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    tracing::warn!(?codes, "the hub refused a subscription");
                }
                self.feed(&Event::Subscribed);
            }
            HubEventKind::Sent(pkid) => match self.sent.pop_front() {
                Some(Some(seq)) if pkid != 0 => {
                    self.pkids.insert(pkid, seq);
                }
                Some(_) => {}
                None => tracing::debug!(pkid, "a publish that was not ours to track"),
            },
            HubEventKind::PubAck(pkid) => {
                if let Some(seq) = self.pkids.remove(&pkid) {
                    self.outbox.acked(seq);
                }
            }
            HubEventKind::Publish(p) => self.incoming(&p),
        }
    }

    fn incoming(&mut self, p: &Publish) {
        if p.payload.len() > MAX_MESSAGE {
            let e = WireError::Oversized {
                size: p.payload.len(),
                limit: MAX_MESSAGE,
            };
            tracing::warn!(topic = %p.topic, error = %e, "dropping an oversized message");
            return;
        }
        let device = self
            .assignment
            .as_ref()
            .map_or("", |a| a.device_id.as_str());
        let msg = match parse_incoming(&p.topic, device) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a message on an unexpected topic");
                return;
            }
        };
        match msg {
            Incoming::TwinResponse {
                status,
                rid,
                version,
            } => {
                if self.twin_sync_rid.as_deref() == Some(rid.as_str()) {
                    self.twin_sync_rid = None;
                    if (200..300).contains(&status) {
                        match parse_twin(&p.payload) {
                            Ok(doc) => {
                                let _ = self.events.send(DeviceEvent::Twin(doc));
                                self.feed(&Event::TwinSynced);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "invalid twin document");
                                self.feed(&Event::TwinMalformed);
                            }
                        }
                    } else {
                        self.feed(&Event::signal(WireSignal::TwinStatus(status)));
                    }
                } else {
                    match self.twin.answer(&rid, status, version, &p.payload) {
                        Answered::Unknown => {
                            tracing::debug!(rid, status, "a twin response to no pending request");
                            return;
                        }
                        Answered::Done => {}
                        Answered::Retry(q) => {
                            let d = hubswap_spec::backoff(
                                q.tries - 1,
                                &self.s.spec.fast,
                                None,
                                self.rng.draw(),
                            );
                            tracing::debug!(rid, status, tries = q.tries, delay = ?d, "twin request will be retried");
                            self.twin.hold(tokio::time::Instant::now() + d, q);
                        }
                    }
                    self.feed(&Event::signal(WireSignal::TwinStatus(status)));
                }
            }
            Incoming::DesiredPatch { version } => match parse_patch(&p.payload) {
                Ok(patch) => {
                    let _ = self.events.send(DeviceEvent::Desired { version, patch });
                }
                Err(e) => tracing::warn!(error = %e, "ignoring an invalid desired patch"),
            },
            Incoming::Method {
                component,
                name,
                rid,
            } => {
                let responder = Responder {
                    api: self.api.clone(),
                    generation: self.hub.generation(),
                    rid,
                };
                let req = CommandRequest {
                    component,
                    name,
                    payload: p.payload.to_vec(),
                    responder,
                };
                let _ = self.events.send(DeviceEvent::Command(req));
            }
            Incoming::C2d { properties } => {
                let _ = self.events.send(DeviceEvent::C2d(C2dMessage {
                    payload: p.payload.to_vec(),
                    properties,
                }));
            }
        }
    }
}
