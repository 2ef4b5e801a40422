//! One TCP connection, from accept to close: the TLS handshake (with a timeout, inside this
//! task so a stalled client never blocks the accept loop), CONNECT, the CONNACK decision, then
//! the DPS or hub session.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hubswap_spec::trace::{Credential, Side};
use rumqttc::{ConnAck, Connect, ConnectReturnCode, Packet};
use rustls::pki_types::CertificateDer;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::codec::Framed;

use super::Role;
use super::connect::{
    ConnectRequest, HubDecision, decide_hub_connect, parse_dps_username, parse_hub_username,
};
use crate::log::{AuthMethod, Endpoint, Event};
use crate::overlay::AfterConnect;
use crate::registry::CloseHow;
use crate::sas::SasToken;
use crate::shared::Shared;

/// Room for the topic and property bag on top of the largest payload.
const PACKET_OVERHEAD: usize = 16 * 1024;

/// The framed MQTT stream of one connection.
pub(crate) struct Wire {
    framed: Framed<TlsStream<TcpStream>, rumqttc::mqttbytes::v4::Codec>,
    keep_alive: Option<Duration>,
    deadline: Option<Instant>,
    /// Once the device is known: where to ask for a `network delay` before each send.
    watch: Option<(Arc<Shared>, Option<String>, String)>,
}

/// What the device sent next.
pub(crate) enum Inbound {
    Packet(Packet),
    Closed,
    Malformed(String),
    KeepAliveExpired,
}

impl Wire {
    fn new(stream: TlsStream<TcpStream>, max_payload: usize) -> Self {
        let max = max_payload + PACKET_OVERHEAD;
        let codec = rumqttc::mqttbytes::v4::Codec {
            max_incoming_size: max,
            max_outgoing_size: max,
        };
        Self {
            framed: Framed::new(stream, codec),
            keep_alive: None,
            deadline: None,
            watch: None,
        }
    }

    /// Applies `network delay` faults for `device` (on `hub`, or DPS) to every later send.
    pub(crate) fn watch(&mut self, shared: Arc<Shared>, hub: Option<String>, device: String) {
        self.watch = Some((shared, hub, device));
    }

    /// Sets the server-side keep-alive: 1.5 × the client's, capped at 1767 s (§4.2); 0 = none.
    fn set_keep_alive(&mut self, client_secs: u16) {
        self.keep_alive = (client_secs > 0).then(|| {
            Duration::from_millis(u64::from(client_secs) * 1500).min(Duration::from_secs(1767))
        });
        self.deadline = self.keep_alive.map(|k| Instant::now() + k);
    }

    /// The next packet, a close, a codec error, or keep-alive expiry.
    pub(crate) async fn next(&mut self) -> Inbound {
        let read = self.framed.next();
        let item = match self.deadline {
            Some(d) => match tokio::time::timeout_at(d, read).await {
                Ok(item) => item,
                Err(_) => return Inbound::KeepAliveExpired,
            },
            None => read.await,
        };
        if let Some(k) = self.keep_alive {
            self.deadline = Some(Instant::now() + k);
        }
        match item {
            Some(Ok(p)) => Inbound::Packet(p),
            Some(Err(rumqttc::mqttbytes::Error::Io(_))) | None => Inbound::Closed,
            Some(Err(e)) => Inbound::Malformed(e.to_string()),
        }
    }

    /// Sends one packet (late, under a `network delay` fault); `false` when the socket is gone.
    pub(crate) async fn send(&mut self, packet: Packet) -> bool {
        if let Some(delay) = self
            .watch
            .as_ref()
            .and_then(|(shared, hub, device)| shared.faults.send_delay(hub.as_deref(), device))
        {
            tokio::time::sleep(delay).await;
        }
        self.framed.send(packet).await.is_ok()
    }

    /// Closes cleanly (TLS `close_notify`, then FIN).
    pub(crate) async fn close(mut self) {
        let _ = self.framed.get_mut().shutdown().await;
    }

    /// Resets the TCP connection (RST), with no MQTT or TLS goodbye.
    pub(crate) fn reset(self) {
        let _ = self.framed.get_ref().get_ref().0.set_zero_linger();
    }

    /// Closes the way `how` says.
    pub(crate) async fn close_how(self, how: CloseHow) {
        match how {
            CloseHow::Drop => drop(self),
            CloseHow::Reset => self.reset(),
            CloseHow::Graceful => self.close().await,
        }
    }

    /// Never answers again: reads and discards until the device gives up.
    pub(crate) async fn swallow(self, stop: tokio_util::sync::CancellationToken) {
        super::swallow(stop, self.framed.into_inner()).await;
    }
}

/// Serves one accepted TCP connection to the end.
#[allow(
    clippy::too_many_lines,
    reason = "the connection lifecycle, step by step"
)]
pub(crate) async fn run(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    role: Role,
    conn: u64,
) {
    let endpoint = role.endpoint();
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let tls = match tokio::time::timeout(shared.timeouts.tls_handshake, acceptor.accept(tcp)).await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.log.record(
                None,
                Event::TlsFailed {
                    endpoint,
                    conn,
                    reason: e.to_string(),
                },
            );
            return;
        }
        Err(_) => {
            shared.log.record(
                None,
                Event::TlsFailed {
                    endpoint,
                    conn,
                    reason: "handshake timed out".into(),
                },
            );
            return;
        }
    };
    let chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let mut wire = Wire::new(tls, shared.max_message_size);
    let first = tokio::time::timeout(shared.timeouts.connect, wire.next()).await;
    let connect = match first {
        Ok(Inbound::Packet(Packet::Connect(c))) => c,
        Ok(Inbound::Packet(p)) => {
            return violation(
                &shared,
                None,
                endpoint,
                conn,
                &format!("first packet was {p:?}, not CONNECT"),
                wire,
            )
            .await;
        }
        Ok(Inbound::Malformed(e)) => {
            return violation(
                &shared,
                None,
                endpoint,
                conn,
                &format!("malformed CONNECT: {e}"),
                wire,
            )
            .await;
        }
        Ok(Inbound::Closed | Inbound::KeepAliveExpired) => {
            shared.log.record(
                None,
                closed(endpoint, conn, Side::Device, false, "closed before CONNECT"),
            );
            return;
        }
        Err(_) => {
            return violation(&shared, None, endpoint, conn, "no CONNECT in time", wire).await;
        }
    };
    wire.set_keep_alive(connect.keep_alive);
    let username = connect
        .login
        .as_ref()
        .map(|l| l.username.clone())
        .unwrap_or_default();
    if let Some(dps) = parse_dps_username(&username) {
        return super::dps::serve(shared, wire, conn, &connect, dps, chain, &peer).await;
    }
    let Role::Hub(hub) = role else {
        let device = (!connect.client_id.is_empty()).then_some(connect.client_id.as_str());
        log_connect(&shared, device, Endpoint::DpsMqtt, conn, &connect, &chain);
        return refuse(
            &shared,
            device,
            Endpoint::DpsMqtt,
            conn,
            ConnectReturnCode::NotAuthorized,
            "not a DPS username",
            wire,
        )
        .await;
    };
    let parsed = parse_hub_username(&username);
    let device = parsed
        .as_ref()
        .map(|u| u.device_id.clone())
        .or_else(|| (!connect.client_id.is_empty()).then(|| connect.client_id.clone()));
    let endpoint = Endpoint::Hub(hub.clone());
    log_connect(
        &shared,
        device.as_deref(),
        endpoint.clone(),
        conn,
        &connect,
        &chain,
    );
    if let Some(d) = device.as_deref() {
        match before_connack(&shared, Some(&hub), d).await {
            AfterConnect::Proceed | AfterConnect::Hold(_) => {}
            AfterConnect::Reset => {
                super::refused(&shared, Some(d), &hub, conn, &peer, "reset-after-connect");
                return wire.reset();
            }
            AfterConnect::Blackhole => {
                super::refused(
                    &shared,
                    Some(d),
                    &hub,
                    conn,
                    &peer,
                    "blackhole-after-connect",
                );
                return wire.swallow(shared.shutdown.clone()).await;
            }
        }
        wire.watch(Arc::clone(&shared), Some(hub.clone()), d.to_owned());
    }
    let req = ConnectRequest {
        client_id: &connect.client_id,
        password: password(&connect),
        chain: &chain,
    };
    match decide_hub_connect(
        &shared.registry,
        &shared.faults,
        &hub,
        parsed.as_ref(),
        &req,
    ) {
        HubDecision::Refuse { code, reason } => {
            refuse(
                &shared,
                device.as_deref(),
                endpoint,
                conn,
                code,
                &reason,
                wire,
            )
            .await;
        }
        HubDecision::Accept {
            device,
            model_id,
            token,
        } => {
            let accepted = super::hub::Accepted {
                hub,
                conn,
                device,
                model_id,
                token,
            };
            super::hub::serve(shared, wire, accepted, connect).await;
        }
    }
}

/// Faults between CONNECT and CONNACK: waits out a `hold-connack`, then says whether to go on,
/// reset or blackhole.
pub(crate) async fn before_connack(
    shared: &Shared,
    hub: Option<&str>,
    device: &str,
) -> AfterConnect {
    match shared.faults.after_connect(hub, device) {
        AfterConnect::Hold(Some(d)) => {
            tokio::select! {
                () = shared.shutdown.cancelled() => {}
                () = tokio::time::sleep(d) => {}
            }
            AfterConnect::Proceed
        }
        AfterConnect::Hold(None) => {
            let mut epoch = shared.faults.epoch.subscribe();
            while shared.faults.still_holding(hub, device) {
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    changed = epoch.changed() => if changed.is_err() { break },
                }
            }
            AfterConnect::Proceed
        }
        other => other,
    }
}

/// The password, unless empty (X.509 devices send none or an empty one).
pub(crate) fn password(connect: &Connect) -> Option<&str> {
    connect
        .login
        .as_ref()
        .map(|l| l.password.as_str())
        .filter(|p| !p.is_empty())
}

/// Logs a CONNECT without its secret.
pub(crate) fn log_connect(
    shared: &Shared,
    device: Option<&str>,
    endpoint: Endpoint,
    conn: u64,
    c: &Connect,
    chain: &[CertificateDer<'_>],
) {
    let token = password(c).and_then(|p| SasToken::parse(p).ok());
    let credential = token.map(|t| {
        let left = t
            .expiry()
            .unwrap_or(0)
            .saturating_sub(shared.clock.unix_secs());
        Credential {
            fingerprint: t.fingerprint(),
            valid_for: Duration::from_secs(left),
        }
    });
    let auth = match (password(c), chain.is_empty()) {
        (Some(_), _) => AuthMethod::Sas,
        (None, false) => AuthMethod::X509,
        (None, true) => AuthMethod::None,
    };
    shared.log.record(
        device,
        Event::Connect {
            endpoint,
            conn,
            client_id: c.client_id.clone(),
            username: c
                .login
                .as_ref()
                .map(|l| l.username.clone())
                .unwrap_or_default(),
            clean_session: c.clean_session,
            keep_alive: c.keep_alive,
            auth,
            credential,
        },
    );
}

/// Sends a refusing CONNACK, logs it, and closes.
pub(crate) async fn refuse(
    shared: &Shared,
    device: Option<&str>,
    endpoint: Endpoint,
    conn: u64,
    code: ConnectReturnCode,
    reason: &str,
    mut wire: Wire,
) {
    // Logged before it is sent: the device may react (reconnect) before this task runs again,
    // and the log must keep cause before effect (SPEC §8 orders observations by the log).
    shared.log.record(
        device,
        Event::ConnAck {
            endpoint: endpoint.clone(),
            conn,
            code: code_of(code),
            session_present: false,
            outcome: reason.to_owned(),
        },
    );
    let _ = wire.send(Packet::ConnAck(ConnAck::new(code, false))).await;
    wire.close().await;
    shared.log.record(
        device,
        closed(endpoint, conn, Side::Cloud, false, "CONNECT refused"),
    );
}

/// Logs a protocol violation and drops the connection.
pub(crate) async fn violation(
    shared: &Shared,
    device: Option<&str>,
    endpoint: Endpoint,
    conn: u64,
    reason: &str,
    wire: Wire,
) {
    shared.log.record(
        device,
        Event::Violation {
            endpoint: endpoint.clone(),
            conn,
            reason: reason.to_owned(),
            action: "disconnected".into(),
        },
    );
    wire.close().await;
    shared
        .log
        .record(device, closed(endpoint, conn, Side::Cloud, false, reason));
}

/// A `Disconnected` event.
pub(crate) fn closed(
    endpoint: Endpoint,
    conn: u64,
    by: Side,
    established: bool,
    reason: &str,
) -> Event {
    Event::Disconnected {
        endpoint,
        conn,
        by,
        established,
        reason: reason.to_owned(),
    }
}

/// The numeric CONNACK code.
pub(crate) fn code_of(code: ConnectReturnCode) -> u8 {
    // rumqttc declares the enum `#[repr(u8)]` with the MQTT 3.1.1 numbers (0 = accepted ... 5).
    code as u8
}
