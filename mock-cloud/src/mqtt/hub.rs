//! An accepted hub connection: telemetry, twin, methods, C2D, subscriptions and the topic ACL
//! (protocol.md §4). One task per connection; the registry reaches it through a control
//! channel (kick, publish, C2D available).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hubswap_spec::trace::Side;
use rumqttc::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PubAck, Publish, QoS, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use serde_json::Value;
use tokio::sync::mpsc;

use super::conn::{Inbound, Wire, closed};
pub(crate) use super::hub_faults::Accepted;
use super::hub_faults::{SessionFaults, applied_from_telemetry, inject_from_properties};
use super::topics::{C2D_FILTER, HubTopic, hub_filter, parse_hub_publish};
use crate::fault::state::CloseHow;
use crate::log::{Endpoint, Event};
use crate::registry::{ConnControl, Core, LiveConn, writable_acks};

/// How the session loop ended.
struct End {
    by: Side,
    reason: String,
    graceful: bool,
    how: CloseHow,
}

fn end(by: Side, reason: impl Into<String>) -> End {
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

struct HubSession {
    core: Arc<Core>,
    hub: String,
    device: String,
    conn: u64,
    inflight: HashMap<u16, String>,
    sent: HashSet<String>,
    next_pkid: u16,
    faults: SessionFaults,
}

/// Runs an accepted hub connection: CONNACK 0, then the session loop, then cleanup.
#[allow(
    clippy::too_many_lines,
    reason = "session set-up, loop and cleanup belong together"
)]
pub(crate) async fn serve(core: Arc<Core>, mut wire: Wire, accepted: Accepted, connect: Connect) {
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
        let mut state = core.lock();
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
    if !wire
        .send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            session_present,
        )))
        .await
    {
        core.lock().live.retain(|_, l| l.conn != conn);
        return;
    }
    core.log.record(
        Some(&device),
        Event::ConnAck {
            endpoint: endpoint.clone(),
            conn,
            code: 0,
            session_present,
            outcome: "accepted".into(),
        },
    );
    let mut s = HubSession {
        faults: SessionFaults::new(&core, token),
        core: Arc::clone(&core),
        hub,
        device,
        conn,
        inflight: HashMap::new(),
        sent: HashSet::new(),
        next_pkid: 1,
    };
    let mut will = connect.last_will;
    let shutdown = core.shutdown.clone();
    let outcome = if let Some(drop) = core.drop_after_connack(&s.hub, &s.device) {
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
                    Some(ConnControl::Recheck) => if let Some(e) = s.faults.recheck(&core, &s.device) { break kicked(e) },
                    Some(ConnControl::Inject { inject, id }) => s.faults.schedule(inject, id),
                    None => break end(Side::Cloud, "connection superseded"),
                },
                () = until(s.faults.deadline()) => if let Some(e) = s.faults.on_deadline(&core, &s.device) { break kicked(e) },
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
        let mut state = core.lock();
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
    core.log.record(
        Some(&s.device),
        closed(endpoint, conn, outcome.by, true, &outcome.reason),
    );
    if let Some(w) = will {
        s.forward_will(&w);
    }
}

impl HubSession {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Hub(self.hub.clone())
    }

    fn violation(&self, reason: String) -> End {
        let event = Event::Violation {
            endpoint: self.endpoint(),
            conn: self.conn,
            reason: reason.clone(),
            action: "disconnected".into(),
        };
        self.core.log.record(Some(&self.device), event);
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
        // The hub kills the connection before the PUBACK of a fault-injection message (§6).
        let puback = inject.is_none() || self.core.lock().faults.options.inject_puback;
        if p.qos == QoS::AtLeastOnce
            && puback
            && !wire.send(Packet::PubAck(PubAck::new(p.pkid))).await
        {
            return Some(end(Side::Device, "socket closed"));
        }
        if let Some(i) = inject {
            let id = applied_from_telemetry(&self.core, &i);
            self.faults.schedule(i, id);
        }
        let reply = match topic {
            HubTopic::Telemetry { mut properties } => {
                if p.payload.len() > self.core.max_message_size {
                    return Some(self.violation(format!(
                        "telemetry of {} bytes exceeds the limit",
                        p.payload.len()
                    )));
                }
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
        self.core.log.record(Some(&self.device), event);
    }

    /// A `$iothub/twin/res/{status}` failure under a hub-error `twin` fault.
    fn twin_failed(&self, rid: &str, status: u16) -> Publish {
        self.core.log.record(
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
            Vec::new(),
        )
    }

    fn twin_get(&self, rid: &str) -> Publish {
        if let Some(status) = self.core.twin_error(&self.hub, &self.device) {
            return self.twin_failed(rid, status);
        }
        let doc = self
            .core
            .lock()
            .devices
            .get(&self.device)
            .map(|d| d.twin.document());
        let (status, body) = match doc {
            Some(doc) => (200, doc.to_string()),
            None => (404, String::new()),
        };
        self.core.log.record(
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

    fn twin_reported(&self, rid: &str, payload: &[u8]) -> Publish {
        if let Some(status) = self.core.twin_error(&self.hub, &self.device) {
            return self.twin_failed(rid, status);
        }
        let patch = serde_json::from_slice::<Value>(payload).ok();
        let (status, version, patch) = match patch {
            Some(Value::Object(obj)) => {
                let version = self
                    .core
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
                    self.core.log.record(Some(&self.device), event);
                }
                self.core.touch();
                (
                    if version.is_some() { 204 } else { 404 },
                    version,
                    Value::Object(obj),
                )
            }
            other => (400, None, other.unwrap_or(Value::Null)),
        };
        let event = Event::TwinReported {
            hub: self.hub.clone(),
            rid: rid.to_owned(),
            status,
            version,
            patch,
        };
        self.core.log.record(Some(&self.device), event);
        let topic = match version {
            Some(v) => format!("$iothub/twin/res/{status}/?$rid={rid}&$version={v}"),
            None => format!("$iothub/twin/res/{status}/?$rid={rid}"),
        };
        Publish::new(topic, QoS::AtMostOnce, Vec::new())
    }

    fn method_response(&self, status: i32, rid: &str, payload: &[u8]) {
        let pending = {
            let mut state = self.core.lock();
            match state.methods.get(rid) {
                Some(p) if p.device == self.device => state.methods.remove(rid),
                _ => None,
            }
        };
        self.core.log.record(
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

    async fn subscribe(&mut self, wire: &mut Wire, sub: Subscribe) -> Option<End> {
        let mut granted = Vec::new();
        let mut codes = Vec::new();
        let mut c2d_added = false;
        {
            let mut state = self.core.lock();
            let session = state
                .sessions
                .entry((self.hub.clone(), self.device.clone()))
                .or_default();
            for f in &sub.filters {
                if let Some(normal) = hub_filter(&self.device, &f.path) {
                    c2d_added |=
                        normal == C2D_FILTER && !session.subscriptions.contains(C2D_FILTER);
                    session.subscriptions.insert(normal.to_owned());
                    // QoS 2 is granted as 1 (§4.5).
                    let qos = if f.qos == QoS::AtMostOnce {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    };
                    codes.push(SubscribeReasonCode::Success(qos));
                    granted.push((f.path.clone(), qos as u8));
                } else {
                    codes.push(SubscribeReasonCode::Failure);
                    granted.push((f.path.clone(), 0x80));
                }
            }
        }
        for (path, _) in granted.iter().filter(|(_, q)| *q == 0x80) {
            let event = Event::Violation {
                endpoint: self.endpoint(),
                conn: self.conn,
                reason: format!("subscription to {path} not allowed"),
                action: "refused in SUBACK".into(),
            };
            self.core.log.record(Some(&self.device), event);
        }
        self.core.log.record(
            Some(&self.device),
            Event::Subscribed {
                endpoint: self.endpoint(),
                conn: self.conn,
                filters: granted,
            },
        );
        if !wire
            .send(Packet::SubAck(SubAck::new(sub.pkid, codes)))
            .await
        {
            return Some(end(Side::Device, "socket closed"));
        }
        if c2d_added {
            self.deliver_c2d(wire).await;
        }
        None
    }

    async fn unsubscribe(&mut self, wire: &mut Wire, u: Unsubscribe) -> Option<End> {
        {
            let mut state = self.core.lock();
            if let Some(session) = state
                .sessions
                .get_mut(&(self.hub.clone(), self.device.clone()))
            {
                for f in &u.topics {
                    if let Some(normal) = hub_filter(&self.device, f) {
                        session.subscriptions.remove(normal);
                    }
                }
            }
        }
        (!wire.send(Packet::UnsubAck(UnsubAck::new(u.pkid))).await)
            .then(|| end(Side::Device, "socket closed"))
    }

    /// Publishes every queued C2D message not yet sent on this connection (QoS 1).
    async fn deliver_c2d(&mut self, wire: &mut Wire) {
        let todo: Vec<_> = {
            let state = self.core.lock();
            let Some(session) = state.sessions.get(&(self.hub.clone(), self.device.clone())) else {
                return;
            };
            if !session.subscriptions.contains(C2D_FILTER) {
                return;
            }
            session
                .c2d
                .iter()
                .filter(|m| !self.sent.contains(&m.id))
                .cloned()
                .collect()
        };
        for m in todo {
            let pkid = self.pkid();
            let mut p = Publish::from_bytes(m.topic.clone(), QoS::AtLeastOnce, m.payload.clone());
            p.pkid = pkid;
            if !wire.send(Packet::Publish(p)).await {
                return;
            }
            self.sent.insert(m.id.clone());
            self.inflight.insert(pkid, m.id.clone());
            self.core.log.record(
                Some(&self.device),
                Event::C2dDelivered {
                    message_id: m.id,
                    hub: self.hub.clone(),
                },
            );
        }
    }

    fn acked(&mut self, pkid: u16) {
        let Some(id) = self.inflight.remove(&pkid) else {
            return;
        };
        if let Some(session) = self
            .core
            .lock()
            .sessions
            .get_mut(&(self.hub.clone(), self.device.clone()))
        {
            session.c2d.retain(|m| m.id != id);
        }
        self.core
            .log
            .record(Some(&self.device), Event::C2dAcked { message_id: id });
    }

    fn pkid(&mut self) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&id) {
                return id;
            }
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
                self.core.log.record(Some(&self.device), event);
            }
        }
    }
}
