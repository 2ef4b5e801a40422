//! IoT hub connections over real TLS on loopback: CONNACK decisions, one connection per
//! device, the topic ACL, and the log graded as spec observations. Features (telemetry, twins,
//! methods, C2D, persistent sessions) are in `hub_features.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use std::time::Duration;

use common::{connect, hub_options, logged, provision_and_connect, refusal, start};
use hubswap_mock_cloud::Event;
use hubswap_spec::trace::{DpsAnswer, DpsRequest, Observed, Side};
use rumqttc::{Packet, QoS};

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
