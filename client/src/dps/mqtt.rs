//! DPS over MQTT (spec/PROTOCOL.md §2): one short-lived rumqttc connection per request.

use rumqttc::{
    AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};

use super::{DpsError, DpsRequest, DpsSettings, RawAnswer};
use crate::wire::dps::{
    RESPONSE_FILTER, parse_response_topic, poll_topic, register_body, register_topic,
};

/// The api-version in the DPS MQTT username.
const MQTT_API_VERSION: &str = "2019-03-31";

pub(super) async fn request(s: &DpsSettings, req: &DpsRequest) -> Result<RawAnswer, DpsError> {
    let mut o = MqttOptions::new(s.registration_id.clone(), s.host.clone(), s.port);
    let username = format!(
        "{}/registrations/{}/api-version={MQTT_API_VERSION}&ClientVersion=hubswap-client%2F0.1",
        s.id_scope, s.registration_id
    );
    let password = s
        .token(req.token_expiry)?
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();
    o.set_credentials(username, password);
    o.set_clean_session(true);
    o.set_keep_alive(std::time::Duration::from_secs(30));
    o.set_max_packet_size(96 * 1024, 96 * 1024);
    o.set_transport(Transport::Tls(TlsConfiguration::Rustls(s.tls.clone())));
    // One publish per connection (the registration or one poll): two in flight is room enough,
    // and rumqttc sizes its packet-id table (default 100) from this.
    o.set_inflight(2);
    let (client, mut el) = AsyncClient::new(o, 4);
    // Events are taken one at a time below; rumqttc would reserve room for 100 (14 KiB) in
    // every registration, and a fleet starting together registers all at once.
    el.state.events = std::collections::VecDeque::new();
    let mut net = el.network_options();
    net.set_connection_timeout(s.timeout.as_secs().max(1));
    el.set_network_options(net);

    let (topic, body) = match &req.operation {
        None => (
            register_topic(&req.rid),
            register_body(&s.registration_id, s.model_id.as_deref()),
        ),
        Some(op) => (poll_topic(&req.rid, op), Vec::new()),
    };
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                client
                    .try_subscribe(RESPONSE_FILTER, QoS::AtLeastOnce)
                    .map_err(|e| DpsError::Mqtt(e.to_string()))?;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                client
                    .try_publish(topic.clone(), QoS::AtLeastOnce, false, body.clone())
                    .map_err(|e| DpsError::Mqtt(e.to_string()))?;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => match parse_response_topic(&p.topic) {
                Ok(t) if t.rid == req.rid => {
                    let _ = client.try_disconnect();
                    return Ok(RawAnswer {
                        status: t.status,
                        retry_after: t.retry_after,
                        body: p.payload.to_vec(),
                    });
                }
                Ok(t) => tracing::debug!(rid = %t.rid, "ignoring a DPS answer to another request"),
                Err(e) => tracing::warn!(error = %e, "ignoring an unexpected DPS publish"),
            },
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => {
                return Err(DpsError::Refused(crate::hub::connack_code(code)));
            }
            Err(e) => return Err(DpsError::Mqtt(e.to_string())),
        }
    }
}
