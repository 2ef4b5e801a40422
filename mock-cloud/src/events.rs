//! The service-side event stream: an embedded rumqttd broker on a loopback port on which the
//! mock cloud publishes what it sees, as JSON on plain topics, the local analogue of IoT
//! Central's data export. Any MQTT tool can watch a drill: `mosquitto_sub -t 'hubswap/#'`.
//!
//! | topic | payload (JSON, camelCase) |
//! | --- | --- |
//! | `hubswap/devices/{id}/telemetry` | `deviceId, hub, properties, telemetry` (the payload as JSON, or text), `size` |
//! | `hubswap/devices/{id}/properties` | `deviceId, kind` = `reported` (`version, patch, status`), `desired` (`version, delivered`) or `writable_ack` (`component, property, ac, av, ad`) |
//! | `hubswap/devices/{id}/connection` | `deviceId, hub, event` = `connected` / `refused` (`code, outcome`), `disconnected` (`by, reason`), `refused_below_mqtt` (`how`) |
//! | `hubswap/hubs/{hub}/connection` | `event = refused_below_mqtt, hub, how` for refusals before any device was known |
//! | `hubswap/dps/registrations` | `deviceId, transport, status, operationStatus, assignedHub, errorCode, retryAfter`, or `dropped: true` |
//! | `hubswap/faults` | `phase` (`applied`, `cleared`, `expired`, `exhausted`, `triggered`), `id, action, fault` (every parameter), `detail, deviceId` |
//!
//! Every payload also has `seq` (the observation log's sequence number), `atMs` (the cloud's
//! monotonic milliseconds) and `time` (UTC). Messages are QoS 0 and not retained.
//!
//! rumqttd cannot report the port it bound, so for port 0 the cloud picks a free loopback port,
//! starts rumqttd's `Server` on it (on the cloud's runtime; the router is rumqttd's own OS
//! thread), probes it with an MQTT CONNECT, and retries with another port if the bind lost a
//! race. rumqttd has no shutdown API: stopping aborts the listener task, and the router thread
//! ends once every link to it is gone.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use rumqttd::local::LinkBuilder;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::Error;
use crate::log::{Endpoint, Event, LogRecord};
use crate::shared::Shared;

/// A running event stream.
#[derive(Debug)]
pub(crate) struct EventStream {
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl EventStream {
    /// Stops the listener and the publisher.
    pub(crate) fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

fn settings(listen: SocketAddr) -> ServerSettings {
    ServerSettings {
        name: "hubswap-events".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

fn router_config() -> RouterConfig {
    RouterConfig {
        max_connections: 1000,
        max_outgoing_packet_count: 1024,
        max_segment_size: 1024 * 1024,
        max_segment_count: 10,
        ..RouterConfig::default()
    }
}

/// Starts the broker on `listen` (port 0: a free port) and the publisher.
///
/// Attaching the publisher's local link to a freshly spawned rumqttd router fails now and then
/// under load (the router drops the link before acknowledging it: "Channel recv error"); the
/// whole broker is then started again, up to three times.
pub(crate) async fn start(shared: Arc<Shared>, listen: SocketAddr) -> Result<EventStream, Error> {
    let mut tries = 0;
    loop {
        tries += 1;
        match start_once(Arc::clone(&shared), listen).await {
            Err(Error::Config(e)) if tries < 3 && e.starts_with(LINK_ERROR) => {
                tracing::warn!(error = %e, tries, "event broker link failed; starting the broker again");
            }
            other => return other,
        }
    }
}

const LINK_ERROR: &str = "event broker link: ";

async fn start_once(shared: Arc<Shared>, listen: SocketAddr) -> Result<EventStream, Error> {
    if listen.port() != 0 {
        // rumqttd only logs a failed bind: find out first, and name the flag.
        drop(StdListener::bind(listen).map_err(|e| bind_error(listen, e))?);
    }
    let router_tx = Router::new(0, router_config()).spawn();
    let tries = if listen.port() == 0 { 10 } else { 1 };
    let mut last = None;
    let mut server = None;
    for _ in 0..tries {
        let addr = if listen.port() == 0 {
            free_port(listen)?
        } else {
            listen
        };
        let mut s = Server::new(settings(addr), router_tx.clone(), rumqttd::protocol::v4::V4);
        let task = tokio::spawn(async move {
            if let Err(e) = s.start(LinkType::Remote).await {
                tracing::debug!(error = %e, "event broker listener ended");
            }
        });
        if probe(addr, &task).await {
            server = Some((addr, task));
            break;
        }
        task.abort();
        last = Some(addr);
    }
    let Some((addr, server)) = server else {
        let e = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        return Err(bind_error(last.unwrap_or(listen), e));
    };
    let built = tokio::task::spawn_blocking(move || {
        LinkBuilder::new("hubswap-mock-cloud", router_tx)
            .build()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let (mut link_tx, mut link_rx, _) = match built {
        Ok(link) => link,
        Err(e) => {
            // Free the listener (a fixed port is needed again by the next try).
            server.abort();
            let _ = server.await;
            return Err(Error::Config(format!("{LINK_ERROR}{e}")));
        }
    };
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = link_rx.next().await {} });
    let publisher = tokio::spawn(async move {
        let mut rx = shared.log.subscribe();
        let mut next = shared.log.next_seq();
        loop {
            let batch = tokio::select! {
                () = shared.shutdown.cancelled() => return,
                r = rx.recv() => match r {
                    Ok(r) if r.seq >= next => vec![r],
                    Ok(_) => Vec::new(),
                    Err(RecvError::Lagged(_)) => shared.log.since(next),
                    Err(RecvError::Closed) => return,
                },
            };
            for record in batch {
                next = record.seq + 1;
                if let Some((topic, payload)) = render(&record, &shared.clock.utc_string())
                    && let Err(e) = link_tx.try_publish(topic, payload.to_string())
                {
                    tracing::warn!(error = %e, "event broker full; event dropped");
                }
            }
        }
    });
    Ok(EventStream {
        addr,
        tasks: vec![server, drain, publisher],
    })
}

fn bind_error(addr: SocketAddr, source: std::io::Error) -> Error {
    Error::Bind {
        addr,
        what: "service-side event broker".into(),
        flag: "--events (CloudConfig::events)".into(),
        source,
    }
}

/// A port that was free a moment ago on `listen`'s address.
fn free_port(listen: SocketAddr) -> Result<SocketAddr, Error> {
    let l = StdListener::bind(listen).map_err(|e| bind_error(listen, e))?;
    l.local_addr().map_err(|e| Error::Config(e.to_string()))
}

/// Waits until the broker on `addr` answers an MQTT CONNECT with CONNACK 0, or its task ended
/// (its bind failed). A readiness probe: rumqttd says nothing when it is listening.
async fn probe(addr: SocketAddr, task: &JoinHandle<()>) -> bool {
    // CONNECT, MQTT 3.1.1, clean session, keep-alive 60, client id "hubswap-probe".
    const CONNECT: &[u8] = b"\x10\x19\x00\x04MQTT\x04\x02\x00\x3c\x00\x0dhubswap-probe";
    for _ in 0..100 {
        if task.is_finished() {
            return false;
        }
        if let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
        {
            let mut ack = [0u8; 4];
            let ok = s.write_all(CONNECT).await.is_ok()
                && tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut ack))
                    .await
                    .is_ok_and(|r| r.is_ok())
                && ack == [0x20, 0x02, 0x00, 0x00];
            let _ = s.write_all(&[0xe0, 0x00]).await;
            return ok && !task.is_finished();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// The topic and JSON payload for a log record, if it is one the stream carries.
#[allow(
    clippy::too_many_lines,
    reason = "one match arm per streamed event: the topic table in code"
)]
pub(crate) fn render(r: &LogRecord, time: &str) -> Option<(String, Value)> {
    let device = r.device.as_deref();
    let (topic, mut body) = match (&r.event, device) {
        (
            Event::Telemetry {
                hub,
                properties,
                payload,
                size,
            },
            Some(d),
        ) => (
            format!("hubswap/devices/{d}/telemetry"),
            json!({"hub": hub, "properties": properties, "size": size,
                "telemetry": serde_json::from_str::<Value>(payload).unwrap_or_else(|_| Value::String(payload.clone()))}),
        ),
        (
            Event::TwinReported {
                version,
                patch,
                status,
                hub,
                ..
            },
            Some(d),
        ) => (
            format!("hubswap/devices/{d}/properties"),
            json!({"kind": "reported", "hub": hub, "version": version, "patch": patch, "status": status}),
        ),
        (Event::TwinDesired { version, delivered }, Some(d)) => (
            format!("hubswap/devices/{d}/properties"),
            json!({"kind": "desired", "version": version, "delivered": delivered}),
        ),
        (
            Event::WritableAck {
                component,
                property,
                ac,
                av,
                ad,
            },
            Some(d),
        ) => (
            format!("hubswap/devices/{d}/properties"),
            json!({"kind": "writable_ack", "component": component, "property": property, "ac": ac, "av": av, "ad": ad}),
        ),
        (
            Event::ConnAck {
                endpoint: Endpoint::Hub(hub),
                code,
                outcome,
                session_present,
                ..
            },
            Some(d),
        ) => (
            format!("hubswap/devices/{d}/connection"),
            json!({"event": if *code == 0 { "connected" } else { "refused" }, "hub": hub,
                "code": code, "outcome": outcome, "sessionPresent": session_present}),
        ),
        (
            Event::Disconnected {
                endpoint: Endpoint::Hub(hub),
                by,
                reason,
                established: true,
                ..
            },
            Some(d),
        ) => (
            format!("hubswap/devices/{d}/connection"),
            json!({"event": "disconnected", "hub": hub, "by": by, "reason": reason}),
        ),
        (Event::HubRefused { hub, how, .. }, d) => (
            d.map_or_else(
                || format!("hubswap/hubs/{hub}/connection"),
                |d| format!("hubswap/devices/{d}/connection"),
            ),
            json!({"event": "refused_below_mqtt", "hub": hub, "how": how}),
        ),
        (
            Event::DpsResponse {
                transport,
                status,
                operation_status,
                assigned_hub,
                error_code,
                retry_after,
            },
            _,
        ) => (
            "hubswap/dps/registrations".to_owned(),
            json!({"transport": transport, "status": status, "operationStatus": operation_status,
                "assignedHub": assigned_hub, "errorCode": error_code, "retryAfter": retry_after}),
        ),
        (
            Event::DpsDropped {
                transport,
                request,
                reason,
            },
            _,
        ) => (
            "hubswap/dps/registrations".to_owned(),
            json!({"transport": transport, "request": request, "dropped": true, "reason": reason}),
        ),
        (
            Event::Fault {
                phase,
                id,
                fault,
                detail,
            },
            _,
        ) => (
            "hubswap/faults".to_owned(),
            json!({"phase": phase, "id": id, "action": fault.action(), "fault": fault, "detail": detail}),
        ),
        _ => return None,
    };
    if let Value::Object(o) = &mut body {
        o.insert("seq".into(), json!(r.seq));
        o.insert("atMs".into(), json!(r.at.0));
        o.insert("time".into(), json!(time));
        if let Some(d) = device {
            o.insert("deviceId".into(), json!(d));
        }
    }
    Some((topic, body))
}

#[cfg(test)]
mod tests {
    use hubswap_spec::Millis;

    use super::*;

    fn rec(device: Option<&str>, event: Event) -> LogRecord {
        LogRecord {
            seq: 7,
            at: Millis(9),
            device: device.map(str::to_owned),
            event,
        }
    }

    #[test]
    fn records_map_to_documented_topics() {
        let t = rec(
            Some("d1"),
            Event::Telemetry {
                hub: "h".into(),
                properties: [("k".to_owned(), "v".to_owned())].into(),
                payload: r#"{"t":21}"#.into(),
                size: 8,
            },
        );
        let (topic, body) = render(&t, "now").expect("telemetry is streamed");
        assert_eq!(topic, "hubswap/devices/d1/telemetry");
        assert_eq!(body["telemetry"]["t"], 21);
        assert_eq!(
            (body["seq"].as_u64(), body["deviceId"].as_str()),
            (Some(7), Some("d1"))
        );
        let refused = rec(
            None,
            Event::HubRefused {
                hub: "h".into(),
                conn: 1,
                peer: "p".into(),
                how: "reset".into(),
            },
        );
        assert_eq!(
            render(&refused, "now").map(|(t, _)| t).as_deref(),
            Some("hubswap/hubs/h/connection")
        );
        let control = rec(None, Event::Control { action: "x".into() });
        assert!(render(&control, "now").is_none());
    }
}
