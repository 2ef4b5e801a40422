//! Measures DPS provisioning and hub connect latency on loopback against an in-process mock
//! cloud (test layout, real TLS), with a rumqttc device. Not a test: it prints figures.
//!
//! `cargo run --release -p hubswap-mock-cloud --example latency -- 200`
//!
//! Provisioning here polls at once instead of honouring `retry-after: 1`, so it measures the
//! cloud's own work (two TLS + MQTT round trips); the official SDKs add their poll delay (Python
//! waits a fixed 2 s, Node the `retry-after`).

use std::time::{Duration, Instant};

use hubswap_mock_cloud::{CloudConfig, MockCloud};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

fn options(
    cloud: &MockCloud,
    id: &str,
    port: u16,
    user: String,
    pass: String,
    clean: bool,
) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: cloud.ca_pem().as_bytes().to_vec(),
        alpn: None,
        client_auth: None,
    }));
    o.set_credentials(user, pass);
    o.set_clean_session(clean);
    o
}

async fn next_publish(el: &mut rumqttc::EventLoop) -> Result<rumqttc::Publish, String> {
    loop {
        match el.poll().await.map_err(|e| e.to_string())? {
            Event::Incoming(Packet::Publish(p)) => return Ok(p),
            Event::Incoming(Packet::ConnAck(a))
                if a.code != rumqttc::ConnectReturnCode::Success =>
            {
                return Err(format!("{a:?}"));
            }
            _ => {}
        }
    }
}

async fn provision(cloud: &MockCloud, reg: &str, key: &str, se: u64) -> Result<String, String> {
    let scope = cloud.id_scope();
    let token = hubswap_mock_cloud::sas::mint(
        key,
        &format!("{scope}/registrations/{reg}"),
        se,
        Some("registration"),
    )
    .ok_or("bad key")?;
    let o = options(
        cloud,
        reg,
        cloud.dps_mqtt_addr().port(),
        format!("{scope}/registrations/{reg}/api-version=2019-03-31"),
        token,
        true,
    );
    let (client, mut el) = AsyncClient::new(o, 10);
    client
        .subscribe("$dps/registrations/res/#", QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    client
        .publish(
            "$dps/registrations/PUT/iotdps-register/?$rid=1",
            QoS::AtLeastOnce,
            false,
            "{}",
        )
        .await
        .map_err(|e| e.to_string())?;
    let first: serde_json::Value =
        serde_json::from_slice(&next_publish(&mut el).await?.payload).map_err(|e| e.to_string())?;
    let op = first["operationId"]
        .as_str()
        .ok_or("no operationId")?
        .to_owned();
    let poll =
        format!("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={op}");
    client
        .publish(poll, QoS::AtLeastOnce, false, "")
        .await
        .map_err(|e| e.to_string())?;
    let done: serde_json::Value =
        serde_json::from_slice(&next_publish(&mut el).await?.payload).map_err(|e| e.to_string())?;
    let _ = client.disconnect().await;
    done["registrationState"]["assignedHub"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "not assigned".into())
}

async fn connect(cloud: &MockCloud, hub: &str, id: &str, key: &str, se: u64) -> Result<(), String> {
    let token = hubswap_mock_cloud::sas::mint(key, &format!("{hub}/devices/{id}"), se, None)
        .ok_or("bad key")?;
    let port = cloud.hub_addr(hub).ok_or("unknown hub")?.port();
    let o = options(
        cloud,
        id,
        port,
        format!("{hub}/{id}/?api-version=2021-04-12"),
        token,
        false,
    );
    let (client, mut el) = AsyncClient::new(o, 10);
    while !matches!(
        el.poll().await.map_err(|e| e.to_string())?,
        Event::Incoming(Packet::ConnAck(_))
    ) {}
    let _ = client.disconnect().await;
    let _ = el.poll().await;
    Ok(())
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    // Nearest-rank percentile: index = ceil(p% of n) - 1, in integers.
    let pick = |percent: usize| v[(v.len() * percent).div_ceil(100).saturating_sub(1)];
    println!(
        "{name:<24} n={:<5} p50={:>8.2?} p90={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        v.len(),
        pick(50),
        pick(90),
        pick(99),
        pick(100)
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    hubswap_mock_cloud::tls::ensure_crypto_provider();
    let n: usize = std::env::args().nth(1).map_or(Ok(100), |s| s.parse())?;
    let mut config = CloudConfig::for_tests(2);
    config.admin = None;
    let cloud = MockCloud::start(config).await?;
    let se = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let (mut prov, mut conn) = (Vec::new(), Vec::new());
    for i in 0..n {
        let reg = format!("bench-{i}");
        let key = cloud
            .device_key("default", &reg)
            .ok_or("no default group")?;
        let t = Instant::now();
        let hub = provision(&cloud, &reg, &key, se).await?;
        prov.push(t.elapsed());
        let t = Instant::now();
        connect(&cloud, &hub, &reg, &key, se).await?;
        conn.push(t.elapsed());
    }
    println!("hubswap-mock-cloud latency on loopback (TLS 1.3, rumqttc device, sequential)");
    summary("DPS provision (MQTT)", prov);
    summary("hub connect (CONNACK)", conn);
    cloud.shutdown().await;
    Ok(())
}
