//! An accepted hub connection: telemetry, twin, methods, C2D, subscriptions and the topic ACL
//! (spec/PROTOCOL.md §4). One task per connection; the registry reaches it through a control
//! channel (kick, publish, C2D available).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hubswap_spec::trace::Side;
use rumqttc::{ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PubAck, Publish, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

use super::conn::{Inbound, Wire, closed};
pub(crate) use super::hub_faults::Accepted;
use super::hub_faults::{SessionFaults, applied_from_telemetry, inject_from_properties};
use super::topics::{HubTopic, parse_hub_publish};
use crate::log::{Endpoint, Event};
use crate::registry::{CloseHow, ConnControl, LiveConn, writable_acks};
use crate::shared::Shared;

/// How the session loop ended.
pub(super) struct End {
    by: Side,
    reason: String,
    graceful: bool,
    how: CloseHow,
}

pub(super) fn end(by: Side, reason: impl Into<String>) -> End {
    End {
        by,
        reason: reason.into(),
        graceful: false,
        how: CloseHow::Drop,
    }
}

fn kicked((how, reason): (CloseHow, String)) -> End {
    End {
        how,
        ..end(Side::Cloud, reason)
    }
}

/// Sleeps until `at`, or forever without one.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(super) struct HubSession {
    pub(super) shared: Arc<Shared>,
    pub(super) hub: String,
    pub(super) device: String,
    pub(super) conn: u64,
    pub(super) inflight: HashMap<u16, String>,
    pub(super) sent: HashSet<String>,
    pub(super) next_pkid: u16,
    faults: SessionFaults,
}

/// Runs an accepted hub connection: CONNACK 0, then the session loop, then cleanup.
#[allow(
    clippy::too_many_lines,
    reason = "session set-up, loop and cleanup belong together"
)]
pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut wire: Wire,
    accepted: Accepted,
    connect: Connect,
) {
    let Accepted {
        hub,
        conn,
        device,
        model_id,
        token,
    } = accepted;
    let (tx, mut ctl) = mpsc::unbounded_channel();
    let key = (hub.clone(), device.clone());
    let session_present = {
        let mut state = shared.registry.lock();
        if let Some(old) = state.live.insert(
            device.clone(),
            LiveConn {
                hub: hub.clone(),
                conn,
                tx,
            },
        ) {
            // One connection per identity: the new CONNECT closes the old one (§9.8, 400027).
            let _ = old.tx.send(ConnControl::Kick {
                reason: "replaced by a new connection".into(),
                how: CloseHow::Drop,
            });
        }
        if let (Some(m), Some(d)) = (model_id, state.devices.get_mut(&device)) {
            d.model_id = Some(m);
        }
        if connect.clean_session {
            state.sessions.remove(&key);
            false
        } else {
            let present = state.sessions.contains_key(&key);
            state.sessions.entry(key.clone()).or_default();
            present
        }
    };
    let endpoint = Endpoint::Hub(hub.clone());
    // Logged before it is sent, so that the log keeps cause before effect.
    shared.log.record(
        Some(&device),
        Event::ConnAck {
            endpoint: endpoint.clone(),
            conn,
            code: 0,
            session_present,
            outcome: "accepted".into(),
        },
    );
    if !wire
        .send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            session_present,
        )))
        .await
    {
        shared.registry.lock().live.retain(|_, l| l.conn != conn);
        return;
    }
    let mut s = HubSession {
        faults: SessionFaults::new(&shared, token),
        shared: Arc::clone(&shared),
        hub,
        device,
        conn,
        inflight: HashMap::new(),
        sent: HashSet::new(),
        next_pkid: 1,
    };
    let mut will = connect.last_will;
    let shutdown = shared.shutdown.clone();
    let outcome = if let Some(drop) = shared.faults.drop_after_connack(&s.hub, &s.device) {
        kicked(drop)
    } else {
        s.deliver_c2d(&mut wire).await;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break end(Side::Cloud, "cloud shutting down"),
                order = ctl.recv() => match order {
                    Some(ConnControl::Kick { reason, how }) => break kicked((how, reason)),
                    Some(ConnControl::Publish(_) | ConnControl::C2dAvailable) if s.faults.silent => {}
                    Some(ConnControl::Publish(p)) => if !wire.send(Packet::Publish(p)).await { break end(Side::Device, "socket closed") },
                    Some(ConnControl::C2dAvailable) => s.deliver_c2d(&mut wire).await,
                    Some(ConnControl::Silence) => s.faults.silent = true,
                    Some(ConnControl::Recheck) => if let Some(e) = s.faults.recheck(&shared, &s.device) { break kicked(e) },
                    Some(ConnControl::Inject { inject, id }) => s.faults.schedule(inject, id),
                    None => break end(Side::Cloud, "connection superseded"),
                },
                () = until(s.faults.deadline()) => if let Some(e) = s.faults.on_deadline(&shared, &s.device) { break kicked(e) },
                inbound = wire.next() => match inbound {
                    Inbound::Packet(_) if s.faults.silent => {}
                    Inbound::Packet(p) => if let Some(e) = s.handle(&mut wire, p).await { break e },
                    Inbound::Closed => break end(Side::Device, "socket closed"),
                    Inbound::KeepAliveExpired => break end(Side::Cloud, "keep-alive expired"),
                    Inbound::Malformed(e) => break s.violation(format!("malformed packet: {e}")),
                },
            }
        }
    };
    if outcome.graceful {
        will = None;
    }
    {
        let mut state = shared.registry.lock();
        if state.live.get(&s.device).is_some_and(|l| l.conn == conn) {
            state.live.remove(&s.device);
        }
        if connect.clean_session {
            state.sessions.remove(&key);
        }
    }
    if outcome.by == Side::Cloud {
        // By default no MQTT packet and no close_notify: 3.1.1 has no server DISCONNECT.
        wire.close_how(outcome.how).await;
    } else {
        wire.close().await;
    }
    shared.log.record(
        Some(&s.device),
        closed(endpoint, conn, outcome.by, true, &outcome.reason),
    );
    if let Some(w) = will {
        s.forward_will(&w);
    }
}

impl HubSession {
    pub(super) fn endpoint(&self) -> Endpoint {
        Endpoint::Hub(self.hub.clone())
    }

    fn violation(&self, reason: String) -> End {
        let event = Event::Violation {
            endpoint: self.endpoint(),
            conn: self.conn,
            reason: reason.clone(),
            action: "disconnected".into(),
        };
        self.shared.log.record(Some(&self.device), event);
        end(Side::Cloud, reason)
    }

    /// Handles one packet; `Some` ends the session.
    async fn handle(&mut self, wire: &mut Wire, packet: Packet) -> Option<End> {
        match packet {
            Packet::Publish(p) => self.publish(wire, p).await,
            Packet::PubAck(ack) => {
                self.acked(ack.pkid);
                None
            }
            Packet::Subscribe(sub) => self.subscribe(wire, sub).await,
            Packet::Unsubscribe(u) => self.unsubscribe(wire, u).await,
            Packet::PingReq => {
                (!wire.send(Packet::PingResp).await).then(|| end(Side::Device, "socket closed"))
            }
            Packet::Disconnect => Some(End {
                graceful: true,
                ..end(Side::Device, "DISCONNECT")
            }),
            other => Some(self.violation(format!("unexpected packet {other:?}"))),
        }
    }

    async fn publish(&mut self, wire: &mut Wire, p: Publish) -> Option<End> {
        if p.qos == QoS::ExactlyOnce {
            return Some(self.violation(format!("PUBLISH with QoS 2 on {}", p.topic)));
        }
        let topic = match parse_hub_publish(&self.device, &p.topic) {
            Ok(t) => t,
            Err(e) => return Some(self.violation(e.0)),
        };
        let inject = match &topic {
            HubTopic::Telemetry { properties } => inject_from_properties(&self.device, properties),
            _ => None,
        };
        if matches!(topic, HubTopic::Telemetry { .. })
            && p.payload.len() > self.shared.max_message_size
        {
            // Refused before any PUBACK: an acknowledged message is never dropped.
            return Some(self.violation(format!(
                "telemetry of {} bytes exceeds the limit",
                p.payload.len()
            )));
        }
        // Record first, acknowledge second: whatever the device saw acknowledged is in the log.
        let reply = match topic {
            HubTopic::Telemetry { mut properties } => {
                if p.retain {
                    properties.insert("mqtt-retain".into(), "true".into());
                }
                self.telemetry(properties, &p.payload);
                None
            }
            HubTopic::TwinGet { rid } => Some(self.twin_get(&rid)),
            HubTopic::TwinReported { rid } => Some(self.twin_reported(&rid, &p.payload)),
            HubTopic::MethodResponse { status, rid } => {
                self.method_response(status, &rid, &p.payload);
                None
            }
        };
        // The hub kills the connection before the PUBACK of a fault-injection message (§6).
        let puback = inject.is_none() || self.shared.faults.options().inject_puback;
        if p.qos == QoS::AtLeastOnce
            && puback
            && !wire.send(Packet::PubAck(PubAck::new(p.pkid))).await
        {
            return Some(end(Side::Device, "socket closed"));
        }
        if let Some(i) = inject {
            let id = applied_from_telemetry(&self.shared, &i);
            self.faults.schedule(i, id);
        }
        match reply {
            Some(r) => {
                (!wire.send(Packet::Publish(r)).await).then(|| end(Side::Device, "socket closed"))
            }
            None => None,
        }
    }

    fn telemetry(&self, properties: std::collections::BTreeMap<String, String>, payload: &[u8]) {
        let event = Event::Telemetry {
            hub: self.hub.clone(),
            properties,
            payload: String::from_utf8_lossy(payload).into_owned(),
            size: payload.len(),
        };
        self.shared.log.record(Some(&self.device), event);
    }

    /// A twin GET answer (`$iothub/twin/res/{status}/?$rid=`), logged.
    fn twin_answer(&self, rid: &str, status: u16, body: String) -> Publish {
        self.shared.log.record(
            Some(&self.device),
            Event::TwinGet {
                hub: self.hub.clone(),
                rid: rid.to_owned(),
                status,
            },
        );
        Publish::new(
            format!("$iothub/twin/res/{status}/?$rid={rid}"),
            QoS::AtMostOnce,
            body,
        )
    }

    fn twin_get(&self, rid: &str) -> Publish {
        // A hub-error `twin` fault answers with its status and no body.
        if let Some(status) = self.shared.faults.twin_error(&self.hub, &self.device) {
            return self.twin_answer(rid, status, String::new());
        }
        let doc = self
            .shared
            .registry
            .lock()
            .devices
            .get(&self.device)
            .map(|d| d.twin.document());
        match doc {
            Some(doc) => self.twin_answer(rid, 200, doc.to_string()),
            None => self.twin_answer(rid, 404, String::new()),
        }
    }

    fn twin_reported(&self, rid: &str, payload: &[u8]) -> Publish {
        let patch = serde_json::from_slice::<Value>(payload).ok();
        // A hub-error `twin` fault answers with its status; nothing is applied.
        let faulted = self.shared.faults.twin_error(&self.hub, &self.device);
        let (status, version, patch) = match (faulted, patch) {
            (Some(status), patch) => (status, None, patch.unwrap_or(Value::Null)),
            (None, patch) => self.apply_reported(patch),
        };
        let event = Event::TwinReported {
            hub: self.hub.clone(),
            rid: rid.to_owned(),
            status,
            version,
            patch,
        };
        self.shared.log.record(Some(&self.device), event);
        let topic = match version {
            Some(v) => format!("$iothub/twin/res/{status}/?$rid={rid}&$version={v}"),
            None => format!("$iothub/twin/res/{status}/?$rid={rid}"),
        };
        Publish::new(topic, QoS::AtMostOnce, Vec::new())
    }

    /// Applies a reported-properties patch: the status, the new `$version` and the patch.
    fn apply_reported(&self, patch: Option<Value>) -> (u16, Option<u64>, Value) {
        match patch {
            Some(Value::Object(obj)) => {
                let version = self
                    .shared
                    .registry
                    .lock()
                    .devices
                    .get_mut(&self.device)
                    .map(|d| d.twin.patch_reported(&obj));
                for a in writable_acks(&obj) {
                    let event = Event::WritableAck {
                        component: a.component,
                        property: a.property,
                        ac: a.ac,
                        av: a.av,
                        ad: a.ad,
                    };
                    self.shared.log.record(Some(&self.device), event);
                }
                self.shared.registry.touch();
                (
                    if version.is_some() { 204 } else { 404 },
                    version,
                    Value::Object(obj),
                )
            }
            other => (400, None, other.unwrap_or(Value::Null)),
        }
    }

    fn method_response(&self, status: i32, rid: &str, payload: &[u8]) {
        let pending = {
            let mut state = self.shared.registry.lock();
            match state.methods.get(rid) {
                Some(p) if p.device == self.device => state.methods.remove(rid),
                _ => None,
            }
        };
        self.shared.log.record(
            Some(&self.device),
            Event::MethodResponse {
                hub: self.hub.clone(),
                rid: rid.to_owned(),
                status,
            },
        );
        if let Some(p) = pending {
            let payload = serde_json::from_slice(payload).unwrap_or(Value::Null);
            let _ = p
                .reply
                .send(crate::registry::MethodResponse { status, payload });
            tracing::debug!(method = %p.name, %rid, status, "method answered");
        }
    }

    /// A will is forwarded as telemetry with `iothub-MessageType=Will` (§4.1).
    fn forward_will(&self, will: &LastWill) {
        if let Ok(HubTopic::Telemetry { mut properties }) =
            parse_hub_publish(&self.device, &will.topic)
        {
            {
                properties.insert("iothub-MessageType".into(), "Will".into());
                self.telemetry(properties, &will.message);
            }
        } else {
            {
                let event = Event::Violation {
                    endpoint: self.endpoint(),
                    conn: self.conn,
                    reason: format!("will topic {} not allowed", will.topic),
                    action: "will dropped".into(),
                };
                self.shared.log.record(Some(&self.device), event);
            }
        }
    }
}
