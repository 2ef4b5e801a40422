//! DPS faults on the wire: error statuses over REST and MQTT for a count, and throttling with
//! 429 and `retry-after`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use common::{apply, connect, far_future, fault_logged, header, options, rest_register, start};
use hubswap_spec::trace::{DpsAnswer, Observed};
use rumqttc::QoS;
use serde_json::{Value, json};

/// One DPS MQTT register request; returns the response topic and body.
async fn mqtt_register(cloud: &hubswap_mock_cloud::MockCloud, reg: &str) -> (String, Value) {
    let mut o = options(cloud, reg, cloud.dps_mqtt_addr().port(), None);
    let key = cloud.device_key("default", reg).unwrap();
    let token = hubswap_mock_cloud::sas::mint(
        &key,
        &format!("{}/registrations/{reg}", cloud.id_scope()),
        far_future(),
        Some("registration"),
    )
    .unwrap();
    o.set_credentials(
        format!(
            "{}/registrations/{reg}/api-version=2019-03-31",
            cloud.id_scope()
        ),
        token,
    );
    let mut d = connect(o).await.unwrap();
    d.client
        .subscribe("$dps/registrations/res/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    d.client
        .publish(
            "$dps/registrations/PUT/iotdps-register/?$rid=1",
            QoS::AtMostOnce,
            false,
            "{}",
        )
        .await
        .unwrap();
    let p = d.publish().await.unwrap();
    let _ = d.client.disconnect().await;
    (p.topic.clone(), serde_json::from_slice(&p.payload).unwrap())
}

#[tokio::test]
async fn dps_errors_answer_500_over_rest_and_mqtt_for_their_count() {
    let cloud = start(1).await;
    let id = apply(
        &cloud,
        json!({"action": "dps-error", "status": 500, "count": 2}),
    )
    .await;
    let (status, headers, v) = rest_register(&cloud, "de-1").await;
    assert_eq!(status, 500);
    assert_eq!(v["errorCode"], 500_000);
    assert!(v["trackingId"].is_string() && v["timestampUtc"].is_string());
    assert_eq!(header(&headers, "x-ms-error-code"), Some("500000"));
    let (topic, v) = mqtt_register(&cloud, "de-2").await;
    assert_eq!(topic, "$dps/registrations/res/500/?$rid=1");
    assert_eq!(v["errorCode"], 500_000);
    fault_logged(&cloud, id, "exhausted").await;
    let (status, _, v) = rest_register(&cloud, "de-1").await;
    assert_eq!((status, v["status"].as_str()), (200, Some("assigned")));
    assert!(cloud.observations().iter().any(|o| o.event
        == Observed::DpsResponse(DpsAnswer::Status {
            status: 500,
            retry_after: None
        })));

    // A retry-after travels with the error on both transports.
    apply(
        &cloud,
        json!({"action": "dps-error", "status": 503, "retry_after": 3, "transport": "mqtt", "count": 1}),
    )
    .await;
    let (topic, _) = mqtt_register(&cloud, "de-3").await;
    assert_eq!(topic, "$dps/registrations/res/503/?$rid=1&retry-after=3");
    cloud.shutdown().await;
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after_for_registrations_and_polls() {
    let cloud = start(1).await;
    apply(
        &cloud,
        json!({"action": "throttle", "registrations_per_minute": 2, "polls": 1, "poll_window": "10s"}),
    )
    .await;
    for id in ["th-1", "th-2"] {
        assert_eq!(
            rest_register(&cloud, id).await.0,
            200,
            "{id} is within the limit"
        );
    }
    let (status, headers, v) = rest_register(&cloud, "th-3").await;
    assert_eq!(status, 429);
    assert_eq!(v["errorCode"], 429_001);
    let retry: u32 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    // Over MQTT the same limit answers res/429 with retry-after.
    let (topic, _) = mqtt_register(&cloud, "th-4").await;
    assert!(
        topic.starts_with("$dps/registrations/res/429/?$rid=1&retry-after="),
        "{topic}"
    );

    // Polls: one per window; the second gets 429.
    cloud.clear_faults().await;
    apply(&cloud, json!({"action": "throttle", "polls": 1})).await;
    let scope = cloud.id_scope().to_owned();
    let key = cloud.device_key("default", "th-5").unwrap();
    let token = hubswap_mock_cloud::sas::mint(
        &key,
        &format!("{scope}/registrations/th-5"),
        far_future(),
        None,
    )
    .unwrap();
    let reg = format!("/{scope}/registrations/th-5/register?api-version=2021-06-01");
    let (_, _, body) = common::https(&cloud, "PUT", &reg, Some(&token), b"{}").await;
    let op = serde_json::from_slice::<Value>(&body).unwrap()["operationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = format!("/{scope}/registrations/th-5/operations/{op}?api-version=2021-06-01");
    assert_eq!(
        common::https(&cloud, "GET", &poll, Some(&token), b"")
            .await
            .0,
        200
    );
    let (status, headers, _) = common::https(&cloud, "GET", &poll, Some(&token), b"").await;
    assert_eq!(status, 429);
    let retry: u32 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry));
    cloud.shutdown().await;
}
