//! Bad input of every kind gets its refusal, is logged, never panics, and never disturbs a
//! healthy device on the same hub.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod common;

use std::time::Duration;

use common::{logged, provision_and_connect, raw_tls, read_to_close, start};
use hubswap_mock_cloud::{CloudConfig, Event, MockCloud};
use rumqttc::{Packet, QoS};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// A CONNECT whose client id bytes are not UTF-8.
fn connect_with_bad_utf8() -> Vec<u8> {
    let mut v = vec![0x10, 0];
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c];
    body.extend_from_slice(&[0x00, 0x02, 0xff, 0xfe]);
    v[1] = u8::try_from(body.len()).unwrap();
    v.extend_from_slice(&body);
    v
}

async fn healthy_device_still_works(cloud: &MockCloud, d: &mut common::Device) {
    d.client
        .publish("$iothub/twin/GET/?$rid=99", QoS::AtMostOnce, false, "")
        .await
        .unwrap();
    let p = d
        .publish()
        .await
        .expect("the healthy device still gets answers");
    assert_eq!(p.topic, "$iothub/twin/res/200/?$rid=99");
    assert!(cloud.device("healthy").unwrap().connected_to.is_some());
}

#[tokio::test]
async fn malformed_packets_invalid_utf8_and_non_tls_bytes_are_dropped_and_logged() {
    let cloud = start(1).await;
    let (mut healthy, hub) = provision_and_connect(&cloud, "healthy", true).await;
    d_subscribe(&mut healthy).await;
    let port = cloud.hub_addr(&hub).unwrap().port();

    let cases: [(&[u8], &str); 4] = [
        (&[0xf0, 0x00], "malformed"), // reserved packet type
        (&[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f], "malformed"), // bad remaining length
        (&[0x30, 0x03, 0x00, 0x01, b'a'], "not CONNECT"), // PUBLISH before CONNECT
        (&connect_with_bad_utf8(), "malformed"),
    ];
    for (bytes, expect) in cases {
        let before = cloud.log().records().len() as u64;
        let mut s = raw_tls(&cloud, port).await;
        s.write_all(bytes).await.unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(answer.is_empty(), "no CONNACK for garbage: {answer:?}");
        logged(&cloud, |r| {
            r.seq >= before
                && matches!(&r.event, Event::Violation { reason, .. } if reason.contains(expect))
        })
        .await;
    }
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    logged(&cloud, |r| matches!(&r.event, Event::TlsFailed { .. })).await;
    healthy_device_still_works(&cloud, &mut healthy).await;
    cloud.shutdown().await;
}

async fn d_subscribe(d: &mut common::Device) {
    d.client
        .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
        .await
        .unwrap();
    assert!(matches!(d.packet().await, Ok(Packet::SubAck(_))));
}

#[tokio::test]
async fn oversized_telemetry_and_unknown_topics_disconnect_only_the_offender() {
    let cloud = start(1).await;
    let (mut healthy, _) = provision_and_connect(&cloud, "healthy", true).await;
    d_subscribe(&mut healthy).await;

    let (mut big, _) = provision_and_connect(&cloud, "big", true).await;
    big.client
        .publish(
            "devices/big/messages/events/",
            QoS::AtLeastOnce,
            false,
            vec![b'x'; 256 * 1024 + 1],
        )
        .await
        .unwrap();
    let (_, acks) = big.closed_counting_pubacks().await;
    assert_eq!(
        acks, 0,
        "an oversized message is refused, never acknowledged"
    );
    logged(&cloud, |r| r.device.as_deref() == Some("big") && matches!(&r.event, Event::Violation { reason, .. } if reason.contains("exceeds the limit"))).await;
    let (exact, _) = provision_and_connect(&cloud, "exact", true).await;
    exact
        .client
        .publish(
            "devices/exact/messages/events/",
            QoS::AtLeastOnce,
            false,
            vec![b'y'; 256 * 1024],
        )
        .await
        .unwrap();
    logged(
        &cloud,
        |r| matches!(&r.event, Event::Telemetry { size, .. } if *size == 256 * 1024),
    )
    .await;

    let (mut lost, _) = provision_and_connect(&cloud, "lost", true).await;
    lost.client
        .publish("$iothub/unknown/?$rid=1", QoS::AtMostOnce, false, "")
        .await
        .unwrap();
    lost.closed().await;
    logged(&cloud, |r| r.device.as_deref() == Some("lost") && matches!(&r.event, Event::Violation { reason, .. } if reason.contains("unknown topic"))).await;
    healthy_device_still_works(&cloud, &mut healthy).await;
    cloud.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_connect_timeout() {
    hubswap_mock_cloud::tls::ensure_crypto_provider();
    let mut config = CloudConfig::for_tests(1);
    config.admin = None;
    config.timeouts.connect = Duration::from_millis(300);
    let cloud = MockCloud::start(config).await.unwrap();
    let port = cloud.hub_addr(&cloud.hub_hosts()[0]).unwrap().port();
    let started = std::time::Instant::now();
    let mut s = raw_tls(&cloud, port).await;
    read_to_close(&mut s).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    logged(
        &cloud,
        |r| matches!(&r.event, Event::Violation { reason, .. } if reason == "no CONNECT in time"),
    )
    .await;
    cloud.shutdown().await;
}
