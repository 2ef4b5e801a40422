//! IoT hub behaviour over real TLS on loopback: CONNACK decisions, sessions, features, ACL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use std::time::Duration;

use common::{Device, connect, hub_options, logged, provision_and_connect, refusal, start};
use hubswap_mock_cloud::Event;
use hubswap_spec::trace::{DpsAnswer, DpsRequest, Observed, Side};
use rumqttc::{Packet, QoS};
use serde_json::json;

#[tokio::test]
async fn connack_codes_follow_the_refusal_table() {
    let cloud = start(2).await;
    let (_ok, hub) = provision_and_connect(&cloud, "dev-a", true).await;
    let other = cloud.hub_hosts().into_iter().find(|h| *h != hub).unwrap();
    let key = cloud.device_key("default", "dev-a").unwrap();
    let wrong = cloud.device_key("default", "someone-else").unwrap();

    let bad_sig = connect(hub_options(&cloud, &hub, "dev-a", &wrong, true))
        .await
        .err();
    assert_eq!(bad_sig.as_ref().and_then(refusal), Some(5), "bad signature");
    let unknown = connect(hub_options(&cloud, &hub, "ghost", &key, true))
        .await
        .err();
    assert_eq!(
        unknown.as_ref().and_then(refusal),
        Some(5),
        "unknown device"
    );
    let elsewhere = connect(hub_options(&cloud, &other, "dev-a", &key, true))
        .await
        .err();
    assert_eq!(
        elsewhere.as_ref().and_then(refusal),
        Some(5),
        "not registered on that hub"
    );

    let mut expired = hub_options(&cloud, &hub, "dev-a", &key, true);
    let token =
        hubswap_mock_cloud::sas::mint(&key, &format!("{hub}/devices/dev-a"), 1_000, None).unwrap();
    expired.set_credentials(format!("{hub}/dev-a/?api-version=2021-04-12"), token);
    assert_eq!(
        connect(expired).await.err().as_ref().and_then(refusal),
        Some(5),
        "expired token"
    );

    let mut mismatch = hub_options(&cloud, &hub, "dev-a", &key, true);
    mismatch.set_client_id("not-dev-a".into());
    assert_eq!(
        connect(mismatch).await.err().as_ref().and_then(refusal),
        Some(2),
        "client id mismatch"
    );

    cloud.set_device_enabled("dev-a", None, false).unwrap();
    assert_eq!(
        connect(hub_options(&cloud, &hub, "dev-a", &key, true))
            .await
            .err()
            .as_ref()
            .and_then(refusal),
        Some(3),
        "disabled"
    );
    cloud.set_device_enabled("dev-a", None, true).unwrap();
    cloud.set_device_blocked("dev-a", true).unwrap();
    assert_eq!(
        connect(hub_options(&cloud, &hub, "dev-a", &key, true))
            .await
            .err()
            .as_ref()
            .and_then(refusal),
        Some(5),
        "blocked"
    );
    cloud.set_device_blocked("dev-a", false).unwrap();
    assert!(
        connect(hub_options(&cloud, &hub, "dev-a", &key, true))
            .await
            .is_ok(),
        "restored"
    );

    let refusals: Vec<u8> = cloud
        .log()
        .records()
        .iter()
        .filter_map(|r| match &r.event {
            Event::ConnAck { code, .. } if *code != 0 => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals,
        vec![5, 5, 5, 5, 2, 3, 5],
        "every refusal is logged with its code"
    );
    cloud.shutdown().await;
}

#[tokio::test]
async fn a_second_connect_closes_the_first_and_disabling_drops_without_a_packet() {
    let cloud = start(1).await;
    let (mut first, hub) = provision_and_connect(&cloud, "dev-b", true).await;
    let key = cloud.device_key("default", "dev-b").unwrap();
    let mut second = connect(hub_options(&cloud, &hub, "dev-b", &key, true))
        .await
        .unwrap();
    first.closed().await;
    logged(&cloud, |r| matches!(&r.event, Event::Disconnected { reason, .. } if reason == "replaced by a new connection")).await;
    cloud.set_device_enabled("dev-b", None, false).unwrap();
    let why = second.closed().await;
    assert!(!why.is_empty());
    logged(&cloud, |r| matches!(&r.event, Event::Disconnected { reason, by: Side::Cloud, .. } if reason == "device disabled")).await;
    cloud.shutdown().await;
}

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

#[tokio::test]
async fn qos2_and_foreign_topics_are_refused_and_logged() {
    let cloud = start(1).await;
    let (mut d, _) = provision_and_connect(&cloud, "dev-e", true).await;
    d.client
        .subscribe_many([
            rumqttc::SubscribeFilter::new("$iothub/twin/res/#".into(), QoS::ExactlyOnce),
            rumqttc::SubscribeFilter::new(
                "devices/dev-x/messages/devicebound/#".into(),
                QoS::AtLeastOnce,
            ),
        ])
        .await
        .unwrap();
    let Ok(Packet::SubAck(ack)) = d.packet().await else {
        panic!("a SUBACK")
    };
    assert_eq!(
        ack.return_codes,
        vec![
            rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce),
            rumqttc::SubscribeReasonCode::Failure
        ]
    );
    logged(
        &cloud,
        |r| matches!(&r.event, Event::Violation { reason, .. } if reason.contains("devices/dev-x")),
    )
    .await;

    d.client
        .publish(
            "devices/dev-x/messages/events/",
            QoS::AtMostOnce,
            false,
            "spoof",
        )
        .await
        .unwrap();
    d.closed().await;
    logged(&cloud, |r| matches!(&r.event, Event::Violation { reason, action, .. } if reason.contains("devices/dev-x/messages/events") && action == "disconnected")).await;

    let (mut q2, _) = provision_and_connect(&cloud, "dev-f", true).await;
    q2.client
        .publish(
            "devices/dev-f/messages/events/",
            QoS::ExactlyOnce,
            false,
            "x",
        )
        .await
        .unwrap();
    q2.closed().await;
    logged(
        &cloud,
        |r| matches!(&r.event, Event::Violation { reason, .. } if reason.contains("QoS 2")),
    )
    .await;
    cloud.shutdown().await;
}

#[tokio::test]
async fn the_log_converts_to_spec_observations_that_the_trace_check_grades() {
    let cloud = start(2).await;
    let (d, hub) = provision_and_connect(&cloud, "dev-g", true).await;
    d.client.disconnect().await.unwrap();
    logged(&cloud, |r| {
        matches!(
            &r.event,
            Event::Disconnected {
                established: true,
                ..
            }
        ) && r.device.as_deref() == Some("dev-g")
            && !matches!(
                &r.event,
                Event::Disconnected {
                    endpoint: hubswap_mock_cloud::log::Endpoint::DpsMqtt,
                    ..
                }
            )
    })
    .await;
    let obs = cloud.observations();
    let kinds: Vec<&Observed> = obs
        .iter()
        .filter(|o| o.device == "dev-g")
        .map(|o| &o.event)
        .collect();
    assert!(matches!(
        kinds[0],
        Observed::DpsRequest(DpsRequest::Register)
    ));
    assert!(matches!(
        kinds[1],
        Observed::DpsResponse(DpsAnswer::Assigning)
    ));
    assert!(matches!(kinds[2], Observed::DpsRequest(DpsRequest::Poll)));
    assert_eq!(
        kinds[3],
        &Observed::DpsResponse(DpsAnswer::Assigned { hub: hub.clone() })
    );
    let Observed::HubConnect {
        hub: h,
        credential: Some(c),
    } = kinds[4]
    else {
        panic!("a SAS hub connect, got {:?}", kinds[4])
    };
    assert_eq!(h, &hub);
    assert!(c.valid_for > Duration::from_mins(50) && c.valid_for <= Duration::from_hours(1));
    assert_eq!(kinds[5], &Observed::ConnAck { code: 0 });
    assert_eq!(kinds[6], &Observed::Disconnect { by: Side::Device });
    assert_eq!(kinds.len(), 7);
    let mine: Vec<_> = obs.into_iter().filter(|o| o.device == "dev-g").collect();
    // This raw test client polls DPS at once instead of honouring `retry-after: 1`, and the
    // spec's trace check, fed from the log, catches exactly that.
    let divergence = hubswap_spec::validate_trace(&mine).expect_err("the impatient poll breaks G7");
    assert_eq!(divergence.guarantee, hubswap_spec::Guarantee::G7);
    cloud.shutdown().await;
}
