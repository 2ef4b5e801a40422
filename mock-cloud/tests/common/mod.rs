//! Shared helpers for the integration tests: a rumqttc device over real TLS on loopback, DPS
//! over MQTT, raw TLS sockets for malformed input, and a tiny HTTPS client.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::time::Duration;

use hubswap_mock_cloud::certs::Identity;
use hubswap_mock_cloud::{CloudConfig, LogRecord, MockCloud};
use rumqttc::{
    AsyncClient, ConnAck, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS,
    TlsConfiguration, Transport,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Generous bound for anything that should happen "at once" on loopback.
pub const WAIT: Duration = Duration::from_secs(10);

pub async fn start(hubs: usize) -> MockCloud {
    hubswap_mock_cloud::tls::ensure_crypto_provider();
    let mut config = CloudConfig::for_tests(hubs);
    config.admin = None;
    MockCloud::start(config)
        .await
        .expect("the mock cloud starts on ephemeral ports")
}

pub fn far_future() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

/// MQTT options for a TLS connection to `127.0.0.1:port`.
pub fn options(
    cloud: &MockCloud,
    client_id: &str,
    port: u16,
    client_auth: Option<(Vec<u8>, Vec<u8>)>,
) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: cloud.ca_pem().as_bytes().to_vec(),
        alpn: None,
        client_auth,
    }));
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(512 * 1024, 512 * 1024);
    o
}

/// Hub options with a SAS token minted from `key`.
pub fn hub_options(
    cloud: &MockCloud,
    hub: &str,
    device: &str,
    key: &str,
    clean: bool,
) -> MqttOptions {
    let port = cloud.hub_addr(hub).expect("hub exists").port();
    let mut o = options(cloud, device, port, None);
    let token =
        hubswap_mock_cloud::sas::mint(key, &format!("{hub}/devices/{device}"), far_future(), None)
            .unwrap();
    o.set_credentials(format!("{hub}/{device}/?api-version=2021-04-12"), token);
    o.set_clean_session(clean);
    o
}

/// A connected device whose event loop runs in a task.
pub struct Device {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Result<Packet, String>>,
    pub connack: ConnAck,
}

impl Device {
    /// The next incoming PUBLISH (skipping acks), or `None` when the connection ended.
    pub async fn publish(&mut self) -> Option<Publish> {
        loop {
            match tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .expect("an incoming packet in time")?
            {
                Ok(Packet::Publish(p)) => return Some(p),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next incoming packet of any kind; `Err` when the connection ended.
    pub async fn packet(&mut self) -> Result<Packet, String> {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a packet in time")
            .unwrap_or_else(|| Err("ended".into()))
    }

    /// Waits until the connection ends; returns the error text.
    pub async fn closed(&mut self) -> String {
        self.closed_counting_pubacks().await.0
    }

    /// Like [`Device::closed`], also counting the PUBACKs received before the close.
    pub async fn closed_counting_pubacks(&mut self) -> (String, usize) {
        let mut acks = 0;
        loop {
            match self.packet().await {
                Err(e) => return (e, acks),
                Ok(Packet::PubAck(_)) => acks += 1,
                Ok(_) => {}
            }
        }
    }
}

/// Connects; `Err` carries rumqttc's error (e.g. a refusing CONNACK).
pub async fn connect(opts: MqttOptions) -> Result<Device, ConnectionError> {
    let (client, mut el) = AsyncClient::new(opts, 16);
    let connack = first_connack(&mut el).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(p)) => {
                    if tx.send(Ok(p)).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(Device {
        client,
        rx,
        connack,
    })
}

async fn first_connack(el: &mut EventLoop) -> Result<ConnAck, ConnectionError> {
    loop {
        match tokio::time::timeout(WAIT, el.poll())
            .await
            .expect("CONNACK in time")
        {
            Ok(Event::Incoming(Packet::ConnAck(a))) => return Ok(a),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The CONNACK refusal code of a failed connect.
pub fn refusal(e: &ConnectionError) -> Option<u8> {
    match e {
        ConnectionError::ConnectionRefused(code) => Some(*code as u8),
        _ => None,
    }
}

/// Provisions over DPS MQTT with a SAS key (or an X.509 identity); returns the DPS answer body.
pub async fn provision_mqtt(
    cloud: &MockCloud,
    reg: &str,
    key: Option<&str>,
    client_auth: Option<(Vec<u8>, Vec<u8>)>,
) -> Value {
    let mut o = options(cloud, reg, cloud.dps_mqtt_addr().port(), client_auth);
    let username = format!(
        "{}/registrations/{reg}/api-version=2019-03-31",
        cloud.id_scope()
    );
    let password = key
        .map(|k| {
            hubswap_mock_cloud::sas::mint(
                k,
                &format!("{}/registrations/{reg}", cloud.id_scope()),
                far_future(),
                Some("registration"),
            )
            .unwrap()
        })
        .unwrap_or_default();
    o.set_credentials(username, password);
    o.set_clean_session(true);
    let mut d = connect(o).await.expect("DPS accepts the CONNECT");
    d.client
        .subscribe("$dps/registrations/res/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let body =
        serde_json::json!({"registrationId": reg, "payload": {"modelId": "dtmi:test:model;1"}})
            .to_string();
    d.client
        .publish(
            "$dps/registrations/PUT/iotdps-register/?$rid=1",
            QoS::AtLeastOnce,
            false,
            body,
        )
        .await
        .unwrap();
    let first = d.publish().await.expect("a register answer");
    let v: Value = serde_json::from_slice(&first.payload).unwrap();
    if !first
        .topic
        .starts_with("$dps/registrations/res/202/?$rid=1")
    {
        return v;
    }
    assert!(
        first.topic.ends_with("&retry-after=1"),
        "202 carries retry-after: {}",
        first.topic
    );
    let op = v["operationId"]
        .as_str()
        .expect("202 has an operationId")
        .to_owned();
    let poll =
        format!("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={op}");
    d.client
        .publish(poll, QoS::AtLeastOnce, false, " ")
        .await
        .unwrap();
    let second = d.publish().await.expect("a poll answer");
    assert!(
        second
            .topic
            .starts_with("$dps/registrations/res/200/?$rid=2"),
        "{}",
        second.topic
    );
    let _ = d.client.disconnect().await;
    serde_json::from_slice(&second.payload).unwrap()
}

/// Provisions `reg` from the default group and connects it to its hub.
pub async fn provision_and_connect(cloud: &MockCloud, reg: &str, clean: bool) -> (Device, String) {
    let key = cloud.device_key("default", reg).unwrap();
    let answer = provision_mqtt(cloud, reg, Some(&key), None).await;
    let hub = answer["registrationState"]["assignedHub"]
        .as_str()
        .expect("assigned")
        .to_owned();
    let device = connect(hub_options(cloud, &hub, reg, &key, clean))
        .await
        .expect("the hub accepts");
    (device, hub)
}

/// A raw TLS connection trusting the cloud's CA.
pub async fn raw_tls(cloud: &MockCloud, port: u16) -> TlsStream<TcpStream> {
    raw_tls_as(cloud, port, None).await
}

/// A raw TLS connection trusting the cloud's CA, presenting `identity` as client certificate.
pub async fn raw_tls_as(
    cloud: &MockCloud,
    port: u16,
    identity: Option<&Identity>,
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(hubswap_mock_cloud::certs::first_pem_der(cloud.ca_pem()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(vec![id.cert_der.clone()], id.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Reads until the peer closes (or `WAIT`); returns what arrived.
pub async fn read_to_close(s: &mut TlsStream<TcpStream>) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the cloud closes the connection");
    out
}

/// An HTTP answer: status, headers (lowercase names) and body.
pub type HttpAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTPS request (HTTP/1.1, `Connection: close`); returns status, headers (lowercase) and body.
pub async fn https(
    cloud: &MockCloud,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> HttpAnswer {
    https_as(cloud, None, method, path, auth, body).await
}

/// [`https`] presenting a TLS client certificate.
pub async fn https_as(
    cloud: &MockCloud,
    identity: Option<&Identity>,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> HttpAnswer {
    let mut s = raw_tls_as(cloud, cloud.dps_https_addr().port(), identity).await;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str("Authorization: ");
        head.push_str(a);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let raw = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.as_bytes().to_vec())
}

/// Waits for a log record matching `pred`.
pub async fn logged(cloud: &MockCloud, pred: impl Fn(&LogRecord) -> bool) -> LogRecord {
    cloud
        .log()
        .wait_for(WAIT, pred)
        .await
        .expect("the expected log record")
}

/// Starts a test cloud after `adjust` changed its config.
pub async fn start_with(hubs: usize, adjust: impl FnOnce(&mut CloudConfig)) -> MockCloud {
    hubswap_mock_cloud::tls::ensure_crypto_provider();
    let mut config = CloudConfig::for_tests(hubs);
    config.admin = None;
    adjust(&mut config);
    MockCloud::start(config)
        .await
        .expect("the mock cloud starts on ephemeral ports")
}

/// Registers `id` through DPS allocation (no provisioning round trip) and connects it to its
/// hub with a group-derived key; returns the device and the hub.
pub async fn register_and_connect(cloud: &MockCloud, id: &str) -> (Device, String) {
    let hub = cloud.register_device(id, None).unwrap().hub;
    let key = cloud.device_key("default", id).unwrap();
    let d = connect(hub_options(cloud, &hub, id, &key, true))
        .await
        .expect("the hub accepts");
    (d, hub)
}

/// The CONNACK refusal code of a fresh CONNECT for `id` to `hub` (0 when accepted).
pub async fn connack(cloud: &MockCloud, hub: &str, id: &str) -> u8 {
    let key = cloud.device_key("default", id).unwrap();
    match connect(hub_options(cloud, hub, id, &key, true)).await {
        Ok(d) => {
            let _ = d.client.disconnect().await;
            0
        }
        Err(e) => refusal(&e).unwrap_or_else(|| panic!("not a CONNACK refusal: {e}")),
    }
}

/// Registers over DPS REST (register, then one poll); returns the final answer's status and body.
pub async fn rest_register(cloud: &MockCloud, id: &str) -> (u16, Vec<(String, String)>, Value) {
    let scope = cloud.id_scope().to_owned();
    let key = cloud.device_key("default", id).unwrap();
    let token = hubswap_mock_cloud::sas::mint(
        &key,
        &format!("{scope}/registrations/{id}"),
        far_future(),
        Some("registration"),
    )
    .unwrap();
    let path = format!("/{scope}/registrations/{id}/register?api-version=2021-06-01");
    let (status, headers, body) = https(cloud, "PUT", &path, Some(&token), b"{}").await;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 202 {
        return (status, headers, v);
    }
    let op = v["operationId"].as_str().unwrap().to_owned();
    let poll = format!("/{scope}/registrations/{id}/operations/{op}?api-version=2021-06-01");
    let (status, headers, body) = https(cloud, "GET", &poll, Some(&token), b"").await;
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// A response header by lowercase name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Applies a fault from its JSON form (as scenario files and the admin API write it).
pub async fn apply(cloud: &MockCloud, fault: Value) -> hubswap_mock_cloud::FaultId {
    let f: hubswap_mock_cloud::Fault = serde_json::from_value(fault).unwrap();
    cloud.apply(f).await.unwrap()
}

/// Waits for the fault record of `id` in `phase` (`applied`, `expired`, ...).
pub async fn fault_logged(
    cloud: &MockCloud,
    id: hubswap_mock_cloud::FaultId,
    phase: &str,
) -> LogRecord {
    logged(cloud, |r| {
        matches!(&r.event, hubswap_mock_cloud::Event::Fault { id: i, phase: p, .. }
            if *i == id && serde_json::to_value(p).ok().as_ref().and_then(Value::as_str) == Some(phase))
    })
    .await
}
