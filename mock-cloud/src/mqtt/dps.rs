//! DPS over MQTT (spec/PROTOCOL.md §2): CONNECT with `{scope}/registrations/{regId}/api-version=..`,
//! SUBSCRIBE `$dps/registrations/res/#`, PUBLISH register and poll requests, answers on
//! `$dps/registrations/res/{status}/?$rid={rid}[&retry-after=n]`.
//!
//! Like the real DPS (§2.1, "auth timing"), a well-formed CONNECT for this scope is accepted and
//! the credential is judged per request, so a bad token comes back as `res/401`.

use std::sync::Arc;

use hubswap_spec::trace::Side;
use rumqttc::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish, QoS, SubAck, SubscribeReasonCode,
    UnsubAck,
};
use rustls::pki_types::CertificateDer;

use super::conn::{Inbound, Wire, before_connack, closed, log_connect, password, refuse};
use super::connect::DpsUsername;
use super::topics::{DpsTopic, dps_response_topic, parse_dps_publish};
use crate::dps::{DpsAuth, DpsReply};
use crate::log::{DpsRequestKind, Endpoint, Event, Transport};
use crate::overlay::AfterConnect;
use crate::shared::Shared;

const RESPONSE_FILTER: &str = "$dps/registrations/res/#";

/// Serves a DPS connection after its CONNECT.
#[allow(
    clippy::too_many_lines,
    reason = "the DPS session loop with its per-packet answers"
)]
pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut wire: Wire,
    conn: u64,
    connect: &Connect,
    user: DpsUsername,
    chain: Vec<CertificateDer<'static>>,
    peer: &str,
) {
    let reg = user.registration_id.clone();
    let endpoint = Endpoint::DpsMqtt;
    log_connect(&shared, Some(&reg), endpoint.clone(), conn, connect, &chain);
    match before_connack(&shared, None, &reg).await {
        AfterConnect::Blackhole => {
            tracing::debug!(%reg, %peer, "DPS connection blackholed");
            return wire.swallow(shared.shutdown.clone()).await;
        }
        AfterConnect::Reset => return wire.reset(),
        AfterConnect::Proceed | AfterConnect::Hold(_) => {}
    }
    wire.watch(Arc::clone(&shared), None, reg.clone());
    if !user.scope.eq_ignore_ascii_case(&shared.id_scope) {
        return refuse(
            &shared,
            Some(&reg),
            endpoint,
            conn,
            ConnectReturnCode::NotAuthorized,
            "unknown id scope",
            wire,
        )
        .await;
    }
    if connect.client_id != reg {
        return refuse(
            &shared,
            Some(&reg),
            endpoint,
            conn,
            ConnectReturnCode::BadClientId,
            "client id differs from the registration id",
            wire,
        )
        .await;
    }
    // Logged before it is sent, so that the log keeps cause before effect.
    shared.log.record(
        Some(&reg),
        Event::ConnAck {
            endpoint: endpoint.clone(),
            conn,
            code: 0,
            session_present: false,
            outcome: "accepted".into(),
        },
    );
    if !wire
        .send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false,
        )))
        .await
    {
        return;
    }
    let token = password(connect).map(str::to_owned);
    let auth = || {
        if chain.is_empty() {
            DpsAuth::Sas(token.as_deref())
        } else {
            DpsAuth::Chain(&chain)
        }
    };
    let shutdown = shared.shutdown.clone();
    let (by, reason) = loop {
        let inbound = tokio::select! {
            biased;
            () = shutdown.cancelled() => break (Side::Cloud, "cloud shutting down".to_owned()),
            inbound = wire.next() => inbound,
        };
        let packet = match inbound {
            Inbound::Packet(p) => p,
            Inbound::Closed => break (Side::Device, "socket closed".to_owned()),
            Inbound::KeepAliveExpired => break (Side::Cloud, "keep-alive expired".to_owned()),
            Inbound::Malformed(e) => {
                break violation(&shared, &reg, conn, format!("malformed packet: {e}"));
            }
        };
        let reply = match packet {
            Packet::Subscribe(sub) => {
                let codes = sub
                    .filters
                    .iter()
                    .map(|f| match (f.path.as_str(), f.qos) {
                        (RESPONSE_FILTER, QoS::AtMostOnce) => {
                            SubscribeReasonCode::Success(QoS::AtMostOnce)
                        }
                        (RESPONSE_FILTER, _) => SubscribeReasonCode::Success(QoS::AtLeastOnce),
                        _ => SubscribeReasonCode::Failure,
                    })
                    .collect();
                vec![Packet::SubAck(SubAck::new(sub.pkid, codes))]
            }
            Packet::Unsubscribe(u) => vec![Packet::UnsubAck(UnsubAck::new(u.pkid))],
            Packet::PingReq => vec![Packet::PingResp],
            Packet::Disconnect => break (Side::Device, "DISCONNECT".to_owned()),
            Packet::Publish(p) if p.qos == QoS::ExactlyOnce => {
                break violation(&shared, &reg, conn, "PUBLISH with QoS 2".into());
            }
            Packet::Publish(p) if shared.faults.blackholed(None, &reg) => {
                let request = match parse_dps_publish(&p.topic) {
                    Ok(DpsTopic::Poll { .. }) => DpsRequestKind::Poll,
                    _ => DpsRequestKind::Register,
                };
                let event = Event::DpsDropped {
                    transport: Transport::Mqtt,
                    request,
                    reason: "network blackhole".into(),
                };
                shared.log.record(Some(&reg), event);
                Vec::new()
            }
            Packet::Publish(p) => {
                let answer = match parse_dps_publish(&p.topic) {
                    Ok(DpsTopic::Register { rid }) => (
                        rid,
                        shared
                            .dps
                            .register(Transport::Mqtt, &user.scope, &reg, auth(), &p.payload),
                    ),
                    Ok(DpsTopic::Poll { rid, operation_id }) => (
                        rid,
                        shared
                            .dps
                            .poll(Transport::Mqtt, &user.scope, &reg, &operation_id, auth()),
                    ),
                    Err(e) => break violation(&shared, &reg, conn, e.0),
                };
                let mut out = Vec::new();
                if p.qos == QoS::AtLeastOnce {
                    out.push(Packet::PubAck(PubAck::new(p.pkid)));
                }
                out.push(Packet::Publish(response(&answer.0, &answer.1)));
                out
            }
            other => break violation(&shared, &reg, conn, format!("unexpected packet {other:?}")),
        };
        let mut sent = true;
        for packet in reply {
            sent = sent && wire.send(packet).await;
        }
        if !sent {
            break (Side::Device, "socket closed".to_owned());
        }
    };
    if by == Side::Cloud {
        drop(wire);
    } else {
        wire.close().await;
    }
    shared
        .log
        .record(Some(&reg), closed(endpoint, conn, by, true, &reason));
}

fn response(rid: &str, reply: &DpsReply) -> Publish {
    let topic = dps_response_topic(reply.status, rid, reply.retry_after);
    Publish::new(topic, QoS::AtMostOnce, reply.body.to_string())
}

fn violation(shared: &Shared, reg: &str, conn: u64, reason: String) -> (Side, String) {
    let event = Event::Violation {
        endpoint: Endpoint::DpsMqtt,
        conn,
        reason: reason.clone(),
        action: "disconnected".into(),
    };
    shared.log.record(Some(reg), event);
    (Side::Cloud, reason)
}
