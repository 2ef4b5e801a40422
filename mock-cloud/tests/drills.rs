//! The drill surfaces: the service-side event stream (rumqttd) watched by a rumqttc
//! subscriber, every shipped scenario file run to completion, the admin fault routes, and the
//! CLI's `fault`, `faults` and `scenario` subcommands.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{WAIT, connack, provision_and_connect, register_and_connect, start_with};
use futures_util::future::join_all;
use hubswap_mock_cloud::scenario::{self, Scenario};
use hubswap_mock_cloud::{AdminClient, CloudConfig, Event, MockCloud};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

#[tokio::test]
async fn the_event_stream_publishes_telemetry_properties_connections_registrations_and_faults() {
    let cloud = start_with(1, |c| {
        c.events = CloudConfig::for_tests(1).with_events().events;
    })
    .await;
    let addr = cloud.events_addr().expect("the broker runs");
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert_eq!(cloud.info().events_url, Some(format!("mqtt://{addr}")));
    let mut o = MqttOptions::new("watcher", "127.0.0.1", addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = AsyncClient::new(o, 64);
    client
        .subscribe("hubswap/#", QoS::AtMostOnce)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        while let Ok(ev) = el.poll().await {
            match ev {
                MqttEvent::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = subscribed_tx.take() {
                        let _ = t.send(());
                    }
                }
                MqttEvent::Incoming(Packet::Publish(p)) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic.clone(), v)).is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(WAIT, subscribed)
        .await
        .unwrap()
        .unwrap();

    let (d, _hub) = provision_and_connect(&cloud, "ev-1", true).await;
    d.client
        .publish(
            "devices/ev-1/messages/events/k=v",
            QoS::AtLeastOnce,
            false,
            r#"{"temperature":21.5}"#,
        )
        .await
        .unwrap();
    d.client
        .publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=1",
            QoS::AtMostOnce,
            false,
            r#"{"fw":"1.0"}"#,
        )
        .await
        .unwrap();
    common::logged(&cloud, |r| matches!(r.event, Event::TwinReported { .. })).await;
    common::apply(&cloud, json!({"action": "block", "device": "ev-1"})).await;

    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let wanted = [
        "hubswap/devices/ev-1/telemetry",
        "hubswap/devices/ev-1/properties",
        "hubswap/devices/ev-1/connection",
        "hubswap/dps/registrations",
        "hubswap/faults",
    ];
    let mut disconnected = false;
    while !(wanted.iter().all(|t| seen.contains_key(*t)) && disconnected) {
        let (topic, v) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the expected events in time; seen {seen:#?}"))
            .unwrap();
        disconnected |= topic.ends_with("/connection") && v["event"] == "disconnected";
        seen.entry(topic).or_insert(v);
    }
    let t = &seen["hubswap/devices/ev-1/telemetry"];
    assert_eq!(t["telemetry"]["temperature"], 21.5);
    assert_eq!(t["properties"]["k"], "v");
    assert_eq!(t["deviceId"], "ev-1");
    assert!(t["seq"].is_u64() && t["atMs"].is_u64() && t["time"].is_string());
    assert_eq!(
        seen["hubswap/devices/ev-1/properties"]["patch"]["fw"],
        "1.0"
    );
    assert_eq!(
        seen["hubswap/devices/ev-1/connection"]["event"],
        "connected"
    );
    let dps = &seen["hubswap/dps/registrations"];
    assert_eq!(dps["deviceId"], "ev-1");
    let f = &seen["hubswap/faults"];
    assert_eq!(
        (f["phase"].as_str(), f["action"].as_str()),
        (Some("applied"), Some("block"))
    );
    assert_eq!(f["fault"]["device"], "ev-1");
    cloud.shutdown().await;
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

async fn run_file(path: PathBuf) {
    let s = Scenario::load(&path).unwrap().scaled(0.01);
    let cloud = start_with(s.hubs, |_| {}).await;
    let outcomes = scenario::run(&s, &cloud, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(outcomes.len(), s.steps.len(), "{}", path.display());
    let records = cloud.log().records();
    for (o, step) in outcomes.iter().zip(&s.steps) {
        assert!(
            o.applied_after >= step.at,
            "{}: step {} early",
            path.display(),
            o.step
        );
        assert!(
            records.iter().any(|r| matches!(&r.event, Event::Fault { id, phase: hubswap_mock_cloud::log::FaultPhase::Applied, .. } if *id == o.id)),
            "{}: step {} logged",
            path.display(),
            o.step
        );
    }
    // Every timed fault has ended by the end of the run.
    assert!(
        cloud.faults().iter().all(|f| f.fault.duration().is_none()),
        "{}: {:?}",
        path.display(),
        cloud.faults()
    );
    cloud.shutdown().await;
}

#[tokio::test]
async fn every_shipped_scenario_runs_to_completion() {
    let files = scenario_files();
    assert!(files.len() >= 7, "{files:?}");
    join_all(files.into_iter().map(run_file)).await;
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubswap-mock-cloud"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn the_admin_api_and_the_cli_apply_list_and_clear_faults() {
    hubswap_mock_cloud::tls::ensure_crypto_provider();
    let cloud = MockCloud::start(CloudConfig::for_tests(2)).await.unwrap();
    let url = format!("http://{}", cloud.admin_addr().unwrap());
    let admin = AdminClient::new(&url).unwrap();
    let (_d, a) = register_and_connect(&cloud, "cli-1").await;
    let b = cloud.hub_hosts().into_iter().find(|h| *h != a).unwrap();

    // Admin API: POST /api/faults, GET, DELETE.
    let v = admin
        .request(
            "POST",
            "/api/faults",
            Some(&json!({"action": "disable", "device": "cli-1"})),
        )
        .await
        .unwrap();
    let id = v["id"].as_u64().unwrap();
    let list = admin.request("GET", "/api/faults", None).await.unwrap();
    assert_eq!(list["active"][0]["fault"]["action"], "disable");
    assert_eq!(list["options"]["disabled_connack"], 3);
    assert_eq!(connack(&cloud, &a, "cli-1").await, 3);
    admin
        .request("DELETE", &format!("/api/faults/{id}"), None)
        .await
        .unwrap();
    assert_eq!(connack(&cloud, &a, "cli-1").await, 0);
    let bad = admin
        .request(
            "POST",
            "/api/faults",
            Some(&json!({"action": "failover", "device": "cli-1", "to": "nowhere"})),
        )
        .await;
    assert!(bad.is_err_and(|e| e.to_string().contains("404")));

    // The CLI: one subcommand per fault, then list and clear.
    let url2 = url.clone();
    let b2 = b.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        cli(&[
            "fault",
            "failover",
            "--device",
            "cli-1",
            "--to",
            &b2,
            "--admin-url",
            &url2,
        ])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert_eq!(cloud.device("cli-1").unwrap().device.hub, b);
    assert_eq!(connack(&cloud, &a, "cli-1").await, 3);
    let url2 = url.clone();
    let (ok, out) =
        tokio::task::spawn_blocking(move || cli(&["faults", "list", "--admin-url", &url2]))
            .await
            .unwrap();
    assert!(ok && out.contains("failover"), "{out}");
    let url2 = url.clone();
    let (ok, out) =
        tokio::task::spawn_blocking(move || cli(&["faults", "clear", "--admin-url", &url2]))
            .await
            .unwrap();
    assert!(ok, "{out}");
    assert_eq!(
        cloud.device("cli-1").unwrap().device.hub,
        a,
        "cleared = failed back"
    );
    let url2 = url.clone();
    let (ok, out) =
        tokio::task::spawn_blocking(move || cli(&["fault", "throttle", "--admin-url", &url2]))
            .await
            .unwrap();
    assert!(
        !ok && out.contains("registrations_per_minute"),
        "refused with a reason: {out}"
    );

    // A scenario file against the running cloud through the admin API.
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/device-disabled.toml");
    let url2 = url.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        cli(&[
            "scenario",
            file.to_str().unwrap(),
            "--time-scale",
            "0.005",
            "--admin-url",
            &url2,
        ])
    })
    .await
    .unwrap();
    assert!(
        ok && out.contains("scenario complete: 4 step(s) applied"),
        "{out}"
    );
    assert_eq!(cloud.fault_options().disabled_connack, 3);
    cloud.shutdown().await;
}

#[tokio::test]
async fn the_cli_runs_a_scenario_on_a_built_in_cloud() {
    let file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/hub-failover-failback.toml");
    let (ok, out) = tokio::task::spawn_blocking(move || {
        cli(&["scenario", file.to_str().unwrap(), "--time-scale", "0.005"])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("built-in mock cloud"), "{out}");
    assert!(
        out.contains("scenario complete: 3 step(s) applied"),
        "{out}"
    );
    assert!(
        out.contains(r#""phase":"expired""#),
        "the TTL failover expired: {out}"
    );
}
