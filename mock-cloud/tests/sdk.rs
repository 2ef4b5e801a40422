//! The official SDKs, unmodified, against the mock in its SDK layout (fixed port 8883 on
//! dedicated loopback IPs; Node's DPS over HTTPS on 443). No other listener runs: the admin API
//! and the event broker are off, so the two tests never contend for an address. Each test
//! prints why it skipped when the SDK is not installed or the addresses cannot be bound; with
//! `CI` set it fails instead (`.ci/run` installs both SDKs).
//!
//! Flow: provision with a key derived from the group key, connect, telemetry, get the twin,
//! report properties, then (cloud side) push a desired patch and invoke a direct method; the
//! device acknowledges the patch IoT Central style and answers the method.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hubswap_mock_cloud::log::Endpoint;
use hubswap_mock_cloud::{CloudConfig, Error, Event, MockCloud};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const STEP: Duration = Duration::from_mins(1);

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// Reports a skipped test; under `CI` a skip is a failure.
fn skip(name: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} cannot run and CI is set: {why}"
    );
    println!("SKIPPED {name}: {why}");
}

async fn start(base: Ipv4Addr, name: &str) -> Option<MockCloud> {
    hubswap_mock_cloud::tls::ensure_crypto_provider();
    let mut config = CloudConfig::sdk_layout(base, 2);
    config.admin = None;
    config.events = None;
    match MockCloud::start(config).await {
        Ok(c) => Some(c),
        Err(e @ Error::Bind { .. }) => {
            skip(name, &e.to_string());
            None
        }
        Err(e) => panic!("the mock cloud does not start: {e}"),
    }
}

/// Reads the child's stdout lines until one starts with `until`; panics on FAILED or EOF.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    until: &str,
    seen: &mut Vec<String>,
) {
    loop {
        let line = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("the SDK device makes progress")
            .unwrap();
        let Some(line) = line else {
            panic!("the SDK device exited before {until}; output: {seen:#?}")
        };
        println!("device: {line}");
        assert!(
            !line.starts_with("FAILED"),
            "the SDK device failed: {line}; output: {seen:#?}"
        );
        seen.push(line.clone());
        if line.starts_with(until) {
            return;
        }
    }
}

async fn drive(cloud: &MockCloud, mut child: Child, reg: &str, method: &str) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    read_until(&mut lines, "READY", &mut seen).await;
    let subscribed = |filter: &'static str| move |r: &hubswap_mock_cloud::LogRecord| matches!(&r.event, Event::Subscribed { filters, .. } if filters.iter().any(|(f, q)| f == filter && *q != 0x80));
    cloud
        .log()
        .wait_for(STEP, subscribed("$iothub/twin/PATCH/properties/desired/#"))
        .await
        .expect("desired subscription");
    cloud
        .log()
        .wait_for(STEP, subscribed("$iothub/methods/POST/#"))
        .await
        .expect("method subscription");

    let version = cloud
        .update_desired(reg, &json!({"targetTemperature": 22.5}))
        .unwrap();
    let answer = cloud
        .invoke_method(reg, method, &json!({"delay": 1}), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.payload["echo"], json!({"delay": 1}));
    read_until(&mut lines, "DONE", &mut seen).await;
    let status = tokio::time::timeout(STEP, child.wait())
        .await
        .expect("the SDK device exits")
        .unwrap();
    assert!(status.success(), "exit status {status}");

    let records = cloud.log().records();
    let mine = |r: &&hubswap_mock_cloud::LogRecord| r.device.as_deref() == Some(reg);
    assert!(records.iter().filter(mine).any(|r| matches!(&r.event, Event::DpsResponse { status: 200, operation_status: Some(s), .. } if s == "assigned")));
    assert!(records.iter().filter(mine).any(|r| matches!(
        &r.event,
        Event::ConnAck {
            endpoint: Endpoint::Hub(_),
            code: 0,
            ..
        }
    )));
    assert!(records.iter().filter(mine).any(|r| matches!(&r.event,
        Event::Telemetry { properties, payload, .. } if properties.contains_key("sdk") && properties.get("$.ct").map(String::as_str) == Some("application/json") && payload.contains("21.5"))));
    assert!(
        records
            .iter()
            .filter(mine)
            .any(|r| matches!(&r.event, Event::TwinGet { status: 200, .. }))
    );
    assert!(records.iter().filter(mine).any(|r| matches!(&r.event, Event::TwinReported { status: 204, patch, .. } if patch.get("firmware").is_some())));
    assert!(records.iter().filter(mine).any(|r| matches!(&r.event,
        Event::WritableAck { property, ac: 200, av: Some(v), .. } if property == "targetTemperature" && *v == version)));
    assert!(
        records
            .iter()
            .filter(mine)
            .any(|r| matches!(&r.event, Event::MethodResponse { status: 200, .. }))
    );
    assert_eq!(
        cloud.device(reg).unwrap().device.model_id.as_deref(),
        Some("dtmi:hubswap:test;1")
    );
}

#[tokio::test]
async fn python_sdk_provisions_connects_and_runs_the_iot_central_flow() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import azure.iot.device"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip(
            "python_sdk",
            "python3 cannot import azure.iot.device (pip install azure-iot-device==2.14.0)",
        );
        return;
    }
    let Some(cloud) = start(Ipv4Addr::new(127, 0, 0, 201), "python_sdk").await else {
        return;
    };
    let reg = "py-dev-1";
    let child = Command::new("python3")
        .arg(sdk_dir().join("python_device.py"))
        .args([
            "--ca",
            &cloud.ca_path().display().to_string(),
            "--provisioning-host",
            "127.0.0.201",
        ])
        .args(["--id-scope", cloud.id_scope(), "--registration-id", reg])
        .args(["--group-key", &cloud.group_key("default").unwrap()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    drive(&cloud, child, reg, "thermostat*reboot").await;
    cloud.shutdown().await;
}

#[tokio::test]
async fn node_sdk_provisions_over_https_connects_and_runs_the_iot_central_flow() {
    let node_dir = sdk_dir().join("node");
    let probe = std::process::Command::new("node")
        .args([
            "-e",
            "require('azure-iot-device');require('azure-iot-provisioning-device-http')",
        ])
        .current_dir(&node_dir)
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip(
            "node_sdk",
            "node cannot load the SDK (run `npm ci` in mock-cloud/tests/sdk/node)",
        );
        return;
    }
    let Some(cloud) = start(Ipv4Addr::new(127, 0, 0, 211), "node_sdk").await else {
        return;
    };
    let reg = "node-dev-1";
    let child = Command::new("node")
        .arg(node_dir.join("device.js"))
        .args([
            "--provisioning-host",
            "127.0.0.211",
            "--id-scope",
            cloud.id_scope(),
            "--registration-id",
            reg,
        ])
        .args(["--group-key", &cloud.group_key("default").unwrap()])
        .env("NODE_EXTRA_CA_CERTS", cloud.ca_path())
        .current_dir(&node_dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    drive(&cloud, child, reg, "reboot").await;
    cloud.shutdown().await;
}
