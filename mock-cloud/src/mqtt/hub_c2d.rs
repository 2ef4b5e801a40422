//! Subscriptions and cloud-to-device delivery of a hub session: SUBACK with the documented
//! filters only (§4.3), persistent-session C2D at QoS 1 with pkid tracking (§4.5).

use rumqttc::{
    Packet, Publish, QoS, SubAck, Subscribe, SubscribeReasonCode, UnsubAck, Unsubscribe,
};

use super::conn::Wire;
use super::hub::{End, HubSession, end};
use super::topics::{C2D_FILTER, encode_property_bag, hub_filter};
use crate::log::Event;
use hubswap_spec::trace::Side;

impl HubSession {
    pub(super) async fn subscribe(&mut self, wire: &mut Wire, sub: Subscribe) -> Option<End> {
        let mut granted = Vec::new();
        let mut codes = Vec::new();
        let mut c2d_added = false;
        {
            let mut state = self.shared.registry.lock();
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
            self.shared.log.record(Some(&self.device), event);
        }
        self.shared.log.record(
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

    pub(super) async fn unsubscribe(&mut self, wire: &mut Wire, u: Unsubscribe) -> Option<End> {
        {
            let mut state = self.shared.registry.lock();
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
    pub(super) async fn deliver_c2d(&mut self, wire: &mut Wire) {
        let todo: Vec<_> = {
            let state = self.shared.registry.lock();
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
            let topic = format!(
                "devices/{}/messages/devicebound/{}",
                self.device,
                encode_property_bag(&m.properties)
            );
            let mut p = Publish::from_bytes(topic, QoS::AtLeastOnce, m.payload.clone());
            p.pkid = pkid;
            if !wire.send(Packet::Publish(p)).await {
                return;
            }
            self.sent.insert(m.id.clone());
            self.inflight.insert(pkid, m.id.clone());
            self.shared.log.record(
                Some(&self.device),
                Event::C2dDelivered {
                    message_id: m.id,
                    hub: self.hub.clone(),
                },
            );
        }
    }

    pub(super) fn acked(&mut self, pkid: u16) {
        let Some(id) = self.inflight.remove(&pkid) else {
            return;
        };
        if let Some(session) = self
            .shared
            .registry
            .lock()
            .sessions
            .get_mut(&(self.hub.clone(), self.device.clone()))
        {
            session.c2d.retain(|m| m.id != id);
        }
        self.shared
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
}
