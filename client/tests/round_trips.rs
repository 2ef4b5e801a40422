//! Provisioning over both DPS transports and the telemetry, property, command and C2D round
//! trips, against the mock cloud on ephemeral loopback ports.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{MODEL, builder, cloud, init_tracing, next_event, wait_log, wait_status};
use hubswap_client::{DeviceEvent, DpsTransport, StatusKind, Telemetry, WhenFull};
use hubswap_mock_cloud::{Event, MockCloud};
use serde_json::json;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_over_mqtt_and_round_trips_everything() {
    init_tracing();
    let cloud = cloud(2).await;
    let (client, mut events) = builder(&cloud, "thermo-1", DpsTransport::Mqtt)
        .build()
        .unwrap();
    let mut status = client.status();
    wait_status(&mut status, StatusKind::Connected).await;

    // Provisioned with the model id, which also went into the hub username.
    let info = cloud.device("thermo-1").unwrap();
    assert_eq!(info.device.model_id.as_deref(), Some(MODEL));
    assert!(info.connected_to.is_some());
    wait_log(&cloud, |r| matches!(&r.event, Event::Connect { username, .. } if username.contains("model-id=dtmi%3Acom"))).await;
    // The resync after connect delivered the twin.
    next_event(&mut events, |e| matches!(e, DeviceEvent::Twin(_))).await;

    // Telemetry with a component, content type and a custom property; resolves on PUBACK.
    let msg = Telemetry::json(&json!({"temperature": 21.5}))
        .component("thermostat1")
        .property("unit", "C");
    let mid = client.send_telemetry(msg, WhenFull::Fail).await.unwrap();
    let rec = wait_log(&cloud, |r| matches!(&r.event, Event::Telemetry { properties, .. } if properties.get("$.mid") == Some(&mid))).await;
    let Event::Telemetry {
        properties,
        payload,
        ..
    } = rec.event
    else {
        unreachable!()
    };
    assert_eq!(
        properties.get("$.sub").map(String::as_str),
        Some("thermostat1")
    );
    assert_eq!(
        properties.get("$.ct").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(properties.get("unit").map(String::as_str), Some("C"));
    assert_eq!(payload, r#"{"temperature":21.5}"#);

    // Reported properties of a component carry the `__t` marker.
    let mut props = serde_json::Map::new();
    props.insert("maxTempSinceLastReboot".into(), json!(30.0));
    let v = client
        .report_component(Some("thermostat1"), props)
        .await
        .unwrap();
    assert!(v.is_some());
    let twin = cloud.twin("thermo-1").unwrap();
    assert_eq!(twin.reported["thermostat1"]["__t"], "c");

    // A writable property arrives as a desired patch and is acknowledged the Central way.
    let version = cloud
        .update_desired("thermo-1", &json!({"targetTemperature": 23}))
        .unwrap();
    let DeviceEvent::Desired {
        version: got,
        patch,
    } = next_event(&mut events, |e| matches!(e, DeviceEvent::Desired { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(got, Some(version));
    assert_eq!(patch["targetTemperature"], 23);
    client
        .ack_writable(
            None,
            "targetTemperature",
            json!(23),
            200,
            version,
            "completed",
        )
        .await
        .unwrap();
    wait_log(&cloud, |r| matches!(&r.event, Event::WritableAck { property, ac: 200, av: Some(av), .. } if property == "targetTemperature" && *av == version)).await;

    command_round_trip(&cloud, &mut events).await;

    // C2D with a property bag.
    cloud
        .send_c2d(
            "thermo-1",
            "hello device",
            &[("k".to_owned(), Some("v".to_owned()))],
        )
        .unwrap();
    let DeviceEvent::C2d(c2d) = next_event(&mut events, |e| matches!(e, DeviceEvent::C2d(_))).await
    else {
        unreachable!()
    };
    assert_eq!(c2d.payload, b"hello device");
    assert!(c2d.properties.iter().any(|(k, v)| k == "k" && v == "v"));

    // Twin GET on demand.
    let twin = client.get_twin().await.unwrap();
    assert_eq!(twin.desired["targetTemperature"], 23);

    client.shutdown().await;
    assert_eq!(client.status().borrow().kind, StatusKind::Stopped);
    cloud.shutdown().await;
}

/// A component command with a status and a payload.
async fn command_round_trip(cloud: &MockCloud, events: &mut mpsc::UnboundedReceiver<DeviceEvent>) {
    let args = json!({"since": "x"});
    let invoke = cloud.invoke_method(
        "thermo-1",
        "thermostat1*getMaxMinReport",
        &args,
        Duration::from_secs(20),
    );
    let respond = async {
        let DeviceEvent::Command(cmd) =
            next_event(events, |e| matches!(e, DeviceEvent::Command(_))).await
        else {
            unreachable!()
        };
        assert_eq!(cmd.component.as_deref(), Some("thermostat1"));
        assert_eq!(cmd.name, "getMaxMinReport");
        let req: serde_json::Value = serde_json::from_slice(&cmd.payload).unwrap();
        assert_eq!(req["since"], "x");
        cmd.respond(200, &json!({"maxTemp": 30}));
    };
    let (resp, ()) = tokio::join!(invoke, respond);
    let resp = resp.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.payload["maxTemp"], 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_over_https_and_sends_telemetry() {
    init_tracing();
    let cloud = cloud(1).await;
    let (client, _events) = builder(&cloud, "thermo-https", DpsTransport::Https)
        .build()
        .unwrap();
    let mut status = client.status();
    wait_status(&mut status, StatusKind::Connected).await;
    wait_log(&cloud, |r| {
        matches!(&r.event, Event::DpsRequest { transport, .. } if format!("{transport:?}").to_lowercase().contains("http"))
    })
    .await;
    let mid = client
        .send_telemetry(Telemetry::new("x"), WhenFull::Wait)
        .await
        .unwrap();
    wait_log(&cloud, |r| {
        matches!(&r.event, Event::Telemetry { properties, .. } if properties.get("$.mid") == Some(&mid))
    })
    .await;
    assert_eq!(
        cloud
            .device("thermo-https")
            .unwrap()
            .device
            .model_id
            .as_deref(),
        Some(MODEL)
    );
    client.shutdown().await;
    cloud.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_an_x509_device_over_both_dps_transports() {
    init_tracing();
    let cloud = cloud(1).await;
    let ca = cloud.add_x509_group("x509-group").unwrap();
    // The device presents its chain over TLS to DPS (MQTT or HTTPS, no SAS) and to the hub.
    for (id, transport) in [
        ("x509-mqtt", DpsTransport::Mqtt),
        ("x509-https", DpsTransport::Https),
    ] {
        let device = ca.issue_device(id).unwrap();
        // The registration id comes from the certificate's CN.
        let b = hubswap_client::DeviceClient::builder()
            .local_cloud(&common::local(&cloud), transport)
            .x509(device.cert_pem.clone(), device.key_pem.clone())
            .memory_store()
            .timing(common::fast_timing());
        let (client, _events) = b.build().unwrap();
        wait_status(&mut client.status(), StatusKind::Connected).await;
        client
            .send_telemetry(Telemetry::new(id), WhenFull::Fail)
            .await
            .unwrap();
        assert!(cloud.device(id).unwrap().connected_to.is_some());
        client.shutdown().await;
    }
    cloud.shutdown().await;
}
