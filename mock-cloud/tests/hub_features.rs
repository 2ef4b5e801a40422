//! IoT hub features over real TLS on loopback: telemetry, twins, direct methods, C2D, and
//! persistent sessions keeping subscriptions and undelivered C2D across reconnects.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use std::time::Duration;

use common::{Device, connect, hub_options, logged, provision_and_connect, start};
use hubswap_mock_cloud::Event;
use rumqttc::{Packet, QoS};
use serde_json::json;

async fn twin_response(d: &mut Device) -> (String, serde_json::Value) {
    let p = d.publish().await.expect("a twin response");
    (
        p.topic.clone(),
        serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn telemetry_twin_methods_and_c2d_work_end_to_end() {
    let cloud = start(2).await;
    let (mut d, hub) = provision_and_connect(&cloud, "dev-c", true).await;
    for f in [
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
        "$iothub/methods/POST/#",
        "devices/dev-c/messages/devicebound/#",
    ] {
        d.client.subscribe(f, QoS::AtLeastOnce).await.unwrap();
    }
    for _ in 0..4 {
        assert!(matches!(d.packet().await, Ok(Packet::SubAck(_))));
    }
    // Telemetry with both property-bag spellings.
    d.client
        .publish(
            "devices/dev-c/messages/events/%24.ct=application%2Fjson&a=1",
            QoS::AtLeastOnce,
            false,
            r#"{"t":1}"#,
        )
        .await
        .unwrap();
    d.client
        .publish(
            "devices/dev-c/messages/events/$.ce=utf-8&b=2",
            QoS::AtMostOnce,
            false,
            "x",
        )
        .await
        .unwrap();
    let t = logged(&cloud, |r| matches!(&r.event, Event::Telemetry { properties, .. } if properties.get("b").is_some())).await;
    let Event::Telemetry { properties, .. } = t.event else {
        unreachable!()
    };
    assert_eq!(properties.get("$.ce").map(String::as_str), Some("utf-8"));
    logged(&cloud, |r| matches!(&r.event, Event::Telemetry { properties, payload, .. } if properties.get("$.ct").map(String::as_str) == Some("application/json") && payload == r#"{"t":1}"#)).await;

    // Twin GET and reported PATCH.
    d.client
        .publish("$iothub/twin/GET/?$rid=10", QoS::AtMostOnce, false, "")
        .await
        .unwrap();
    let (topic, body) = twin_response(&mut d).await;
    assert_eq!(topic, "$iothub/twin/res/200/?$rid=10");
    assert_eq!(
        body,
        json!({"desired": {"$version": 1}, "reported": {"$version": 1}})
    );
    let ack = json!({"target": {"value": 20, "ac": 200, "av": 1}});
    d.client
        .publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=11",
            QoS::AtMostOnce,
            false,
            ack.to_string(),
        )
        .await
        .unwrap();
    let (topic, _) = twin_response(&mut d).await;
    assert_eq!(topic, "$iothub/twin/res/204/?$rid=11&$version=2");
    logged(&cloud, |r| matches!(&r.event, Event::WritableAck { property, ac: 200, av: Some(1), .. } if property == "target")).await;
    d.client
        .publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=12",
            QoS::AtMostOnce,
            false,
            "not json",
        )
        .await
        .unwrap();
    assert_eq!(
        twin_response(&mut d).await.0,
        "$iothub/twin/res/400/?$rid=12"
    );

    // Desired push.
    assert_eq!(
        cloud
            .update_desired("dev-c", &json!({"target": 21}))
            .unwrap(),
        2
    );
    let (topic, body) = twin_response(&mut d).await;
    assert_eq!(topic, "$iothub/twin/PATCH/properties/desired/?$version=2");
    assert_eq!(body, json!({"target": 21, "$version": 2}));

    // A component command, answered by the device.
    let client = d.client.clone();
    let answer = tokio::spawn(async move {
        let p = d.publish().await.expect("a method request");
        assert!(
            p.topic
                .starts_with("$iothub/methods/POST/thermostat*getReport/?$rid="),
            "{}",
            p.topic
        );
        let rid = p.topic.rsplit("$rid=").next().unwrap().to_owned();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap(),
            json!({"since": 3})
        );
        client
            .publish(
                format!("$iothub/methods/res/201/?$rid={rid}"),
                QoS::AtMostOnce,
                false,
                r#"{"max":30}"#,
            )
            .await
            .unwrap();
        d
    });
    let r = cloud
        .invoke_method(
            "dev-c",
            "thermostat*getReport",
            &json!({"since": 3}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.payload), (201, json!({"max": 30})));
    let mut d = answer.await.unwrap();

    // C2D with a property bag; a method nobody answers times out.
    let mid = cloud
        .send_c2d(
            "dev-c",
            "hello",
            &[
                ("method-name".into(), Some("reboot".into())),
                ("flag".into(), None),
            ],
        )
        .unwrap();
    let p = d.publish().await.expect("a C2D message");
    assert!(
        p.topic.starts_with("devices/dev-c/messages/devicebound/"),
        "{}",
        p.topic
    );
    assert!(
        p.topic.contains(&format!("%24.mid={mid}"))
            && p.topic.contains("method-name=reboot")
            && p.topic.ends_with("&flag"),
        "{}",
        p.topic
    );
    assert_eq!((p.qos, &p.payload[..]), (QoS::AtLeastOnce, &b"hello"[..]));
    logged(
        &cloud,
        |r| matches!(&r.event, Event::C2dAcked { message_id } if *message_id == mid),
    )
    .await;
    let started = std::time::Instant::now();
    let late = cloud
        .invoke_method("dev-c", "slow", &json!(null), Duration::from_millis(300))
        .await;
    assert!(matches!(
        late,
        Err(hubswap_mock_cloud::Error::MethodTimeout { .. })
    ));
    assert!(
        started.elapsed() >= Duration::from_millis(300)
            && started.elapsed() < Duration::from_secs(5)
    );
    let _ = d.publish().await; // the unanswered request
    assert_eq!(
        cloud.device("dev-c").unwrap().connected_to.as_deref(),
        Some(hub.as_str())
    );
    assert!(matches!(
        cloud
            .invoke_method("nobody", "x", &json!(null), Duration::from_secs(1))
            .await,
        Err(hubswap_mock_cloud::Error::DeviceNotFound(_))
    ));
    cloud.shutdown().await;
}

#[tokio::test]
async fn persistent_sessions_keep_subscriptions_and_undelivered_c2d() {
    let cloud = start(1).await;
    let (d, hub) = provision_and_connect(&cloud, "dev-d", false).await;
    assert!(!d.connack.session_present);
    d.client
        .subscribe("devices/dev-d/messages/devicebound/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    logged(&cloud, |r| {
        matches!(&r.event, Event::Subscribed { .. }) && r.device.as_deref() == Some("dev-d")
    })
    .await;
    d.client.disconnect().await.unwrap();
    logged(&cloud, |r| {
        matches!(
            &r.event,
            Event::Disconnected {
                established: true,
                ..
            }
        ) && r.device.as_deref() == Some("dev-d")
    })
    .await;
    let mid = cloud.send_c2d("dev-d", "queued", &[]).unwrap();

    let key = cloud.device_key("default", "dev-d").unwrap();
    let mut again = connect(hub_options(&cloud, &hub, "dev-d", &key, false))
        .await
        .unwrap();
    assert!(
        again.connack.session_present,
        "clean_session=0 resumes the session"
    );
    let p = again
        .publish()
        .await
        .expect("the queued C2D arrives without a new SUBSCRIBE");
    assert_eq!(&p.payload[..], b"queued");
    logged(
        &cloud,
        |r| matches!(&r.event, Event::C2dAcked { message_id } if *message_id == mid),
    )
    .await;
    again.client.disconnect().await.unwrap();
    logged(&cloud, |r| {
        matches!(
            &r.event,
            Event::Disconnected {
                established: true,
                ..
            }
        ) && r.seq > 0
            && r.device.as_deref() == Some("dev-d")
            && matches!(&r.event, Event::Disconnected { reason, .. } if reason == "DISCONNECT")
    })
    .await;

    let fresh = connect(hub_options(&cloud, &hub, "dev-d", &key, true))
        .await
        .unwrap();
    assert!(
        !fresh.connack.session_present,
        "clean_session=1 starts over"
    );
    cloud.shutdown().await;
}
