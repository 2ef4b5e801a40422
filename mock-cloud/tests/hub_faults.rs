//! Hub faults on the wire: outages (refuse, blackhole, closed, name gone), tokens (clock offset,
//! expiry while connected, force expire), disable, block, internal errors, network faults and
//! IoT Hub fault injection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use std::time::{Duration, Instant};

use common::{
    WAIT, apply, connack, connect, fault_logged, hub_options, logged, provision_mqtt,
    register_and_connect, rest_register, start,
};
use hubswap_mock_cloud::Event;
use hubswap_mock_cloud::log::to_observations_attributing;
use hubswap_spec::trace::Observed;
use rumqttc::{Packet, QoS};
use serde_json::json;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// What a raw TCP client sees on `port`: `refused` (no listener), `reset`, `closed`, or
/// `silent` (nothing within `quiet`).
async fn tcp_fate(port: u16, quiet: Duration) -> &'static str {
    let mut s = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return "refused",
        Err(e) => panic!("connect: {e}"),
    };
    let mut buf = [0u8; 16];
    match tokio::time::timeout(quiet, s.read(&mut buf)).await {
        Err(_) => "silent",
        Ok(Ok(0)) => "closed",
        Ok(Ok(_)) => "data",
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset",
        Ok(Err(e)) => panic!("read: {e}"),
    }
}

#[tokio::test]
async fn hub_outages_refuse_blackhole_close_or_lose_their_name_and_come_back() {
    let cloud = start(1).await;
    let (mut d, hub) = register_and_connect(&cloud, "out-1").await;
    let port = cloud.hub_addr(&hub).unwrap().port();

    // Refuse: accept, then RST at once; logged, attributable for a lone device under test.
    apply(
        &cloud,
        json!({"action": "hub-down", "hub": hub, "mode": "refuse"}),
    )
    .await;
    assert!(
        d.closed().await.to_lowercase().contains("reset"),
        "live connection reset"
    );
    assert_eq!(tcp_fate(port, WAIT).await, "reset");
    let refused = logged(
        &cloud,
        |r| matches!(&r.event, Event::HubRefused { how, .. } if how == "reset"),
    )
    .await;
    assert_eq!(refused.device, None);
    let obs = to_observations_attributing(&cloud.log().records(), "out-1");
    assert!(
        obs.iter()
            .any(|o| o.event == Observed::HubRefused { hub: hub.clone() })
    );
    apply(&cloud, json!({"action": "hub-restore", "hub": hub})).await;
    assert_eq!(connack(&cloud, &hub, "out-1").await, 0);

    // Refuse after CONNECT: the device is known in the log.
    apply(
        &cloud,
        json!({"action": "hub-down", "hub": hub, "mode": "refuse", "refuse_at": "connect"}),
    )
    .await;
    let key = cloud.device_key("default", "out-1").unwrap();
    assert!(
        connect(hub_options(&cloud, &hub, "out-1", &key, true))
            .await
            .is_err()
    );
    let r = logged(
        &cloud,
        |r| matches!(&r.event, Event::HubRefused { how, .. } if how == "reset-after-connect"),
    )
    .await;
    assert_eq!(r.device.as_deref(), Some("out-1"));
    assert!(
        cloud
            .observations()
            .iter()
            .any(|o| o.device == "out-1" && matches!(o.event, Observed::HubRefused { .. }))
    );
    apply(&cloud, json!({"action": "hub-restore", "hub": hub})).await;

    // Blackhole: accepted, never answered.
    apply(
        &cloud,
        json!({"action": "hub-down", "hub": hub, "mode": "blackhole"}),
    )
    .await;
    assert_eq!(tcp_fate(port, Duration::from_millis(300)).await, "silent");
    logged(
        &cloud,
        |r| matches!(&r.event, Event::HubRefused { how, .. } if how == "blackhole"),
    )
    .await;
    apply(&cloud, json!({"action": "hub-restore", "hub": hub})).await;

    // Closed listener: the kernel refuses; nothing reaches the log.
    let before = cloud.log().records().len();
    apply(
        &cloud,
        json!({"action": "hub-down", "hub": hub, "mode": "closed"}),
    )
    .await;
    assert_eq!(tcp_fate(port, WAIT).await, "refused");
    assert!(
        !cloud
            .log()
            .since(before as u64)
            .iter()
            .any(|r| matches!(r.event, Event::TcpAccepted { .. }))
    );
    assert!(cloud.hubs().await.iter().all(|h| !h.listening));
    apply(&cloud, json!({"action": "hub-restore", "hub": hub})).await;
    assert_eq!(connack(&cloud, &hub, "out-1").await, 0);

    // Name gone: DPS hands out a host that resolves nowhere.
    let id = apply(
        &cloud,
        json!({"action": "hub-down", "hub": hub, "mode": "name-gone", "for": "300ms"}),
    )
    .await;
    let (_, _, v) = rest_register(&cloud, "out-1").await;
    let gone = v["registrationState"]["assignedHub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(gone, format!("{hub}.gone.invalid"));
    assert_eq!(cloud.hub_addr(&gone), None);
    assert_eq!(tcp_fate(port, WAIT).await, "refused");
    fault_logged(&cloud, id, "expired").await;
    let (_, _, v) = rest_register(&cloud, "out-1").await;
    assert_eq!(v["registrationState"]["assignedHub"], hub.as_str());
    assert_eq!(connack(&cloud, &hub, "out-1").await, 0);
    cloud.shutdown().await;
}

#[tokio::test]
async fn tokens_expire_by_clock_offset_while_connected_and_by_force() {
    let cloud = start(1).await;
    let (mut d, hub) = register_and_connect(&cloud, "tok-1").await;
    // The cloud's clock jumps two hours: the one-hour token is now expired.
    apply(&cloud, json!({"action": "clock-offset", "secs": 7200})).await;
    d.closed().await;
    logged(
        &cloud,
        |r| matches!(&r.event, Event::Disconnected { reason, .. } if reason == "SAS token expired"),
    )
    .await;
    assert_eq!(connack(&cloud, &hub, "tok-1").await, 5);
    // A grace period makes it acceptable again.
    apply(
        &cloud,
        json!({"action": "options", "token_grace_secs": 7200}),
    )
    .await;
    assert_eq!(connack(&cloud, &hub, "tok-1").await, 0);
    apply(&cloud, json!({"action": "options", "token_grace_secs": 0})).await;
    apply(&cloud, json!({"action": "clock-offset", "secs": 0})).await;

    // A token that runs out while connected drops the connection at its `se`.
    let key = cloud.device_key("default", "tok-1").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut o = hub_options(&cloud, &hub, "tok-1", &key, true);
    let short = hubswap_mock_cloud::sas::mint(&key, &format!("{hub}/devices/tok-1"), now + 2, None)
        .unwrap();
    o.set_credentials(format!("{hub}/tok-1/?api-version=2021-04-12"), short);
    let t0 = Instant::now();
    let mut d = connect(o).await.unwrap();
    d.closed().await;
    let took = t0.elapsed();
    assert!(
        Duration::from_millis(500) <= took && took <= Duration::from_secs(4),
        "dropped at expiry, after {took:?}"
    );

    // Force expire: the current token is invalid, a fresh one works.
    let with_token = |se: u64| {
        let mut o = hub_options(&cloud, &hub, "tok-1", &key, true);
        let t =
            hubswap_mock_cloud::sas::mint(&key, &format!("{hub}/devices/tok-1"), se, None).unwrap();
        o.set_credentials(format!("{hub}/tok-1/?api-version=2021-04-12"), t);
        o
    };
    let se = common::far_future();
    let mut d = connect(with_token(se)).await.unwrap();
    cloud.expire_token("tok-1").await.unwrap();
    d.closed().await;
    logged(&cloud, |r| matches!(&r.event, Event::Disconnected { reason, .. } if reason == "SAS token expired (forced)")).await;
    assert_eq!(
        connect(with_token(se))
            .await
            .err()
            .as_ref()
            .and_then(common::refusal),
        Some(5)
    );
    assert!(
        connect(with_token(se + 60)).await.is_ok(),
        "a fresh token works"
    );

    // Until reprovisioned: the fresh token is refused too, until DPS registers the device.
    apply(
        &cloud,
        json!({"action": "expire-token", "device": "tok-1", "until_reprovisioned": true}),
    )
    .await;
    let refused = connect(with_token(se + 120)).await.err();
    assert_eq!(
        refused.as_ref().and_then(common::refusal),
        Some(5),
        "fresh token, stale identity"
    );
    let (status, _, _) = rest_register(&cloud, "tok-1").await;
    assert_eq!(status, 200, "DPS registers the device again");
    assert!(
        connect(with_token(se + 180)).await.is_ok(),
        "after the registration the hub accepts the key again"
    );
    cloud.shutdown().await;
}

#[tokio::test]
async fn disable_and_block_refuse_with_their_codes_and_dps_renders_the_block() {
    let cloud = start(1).await;
    let (mut d, hub) = register_and_connect(&cloud, "db-1").await;
    let id = apply(
        &cloud,
        json!({"action": "disable", "device": "db-1", "for": "300ms"}),
    )
    .await;
    d.closed().await;
    assert_eq!(connack(&cloud, &hub, "db-1").await, 3);
    fault_logged(&cloud, id, "expired").await;
    assert_eq!(
        connack(&cloud, &hub, "db-1").await,
        0,
        "enabled again after `for`"
    );

    let (mut d, _) = register_and_connect(&cloud, "db-1").await;
    apply(&cloud, json!({"action": "block", "device": "db-1"})).await;
    d.closed().await;
    assert_eq!(connack(&cloud, &hub, "db-1").await, 5);
    let key = cloud.device_key("default", "db-1").unwrap();
    let answer = provision_mqtt(&cloud, "db-1", Some(&key), None).await;
    assert_eq!(answer["status"], "failed");
    assert_eq!(answer["registrationState"]["errorCode"], 400_209);
    apply(
        &cloud,
        json!({"action": "options", "blocked_dps": "unauthorized"}),
    )
    .await;
    let (status, _, v) = rest_register(&cloud, "db-1").await;
    assert_eq!((status, v["errorCode"].as_u64()), (401, Some(400_209)));
    apply(&cloud, json!({"action": "unblock", "device": "db-1"})).await;
    assert!(cloud.faults().is_empty(), "unblock ends the block fault");
    let (status, _, v) = rest_register(&cloud, "db-1").await;
    assert_eq!((status, v["status"].as_str()), (200, Some("assigned")));
    assert_eq!(connack(&cloud, &hub, "db-1").await, 0);
    cloud.shutdown().await;
}

#[tokio::test]
async fn internal_errors_refuse_drop_or_fail_twin_requests_for_a_count() {
    let cloud = start(1).await;
    let hub = cloud.register_device("ie-1", None).unwrap().hub;
    let id = apply(
        &cloud,
        json!({"action": "hub-error", "hub": hub, "mode": "connack", "count": 2}),
    )
    .await;
    assert_eq!(connack(&cloud, &hub, "ie-1").await, 3);
    assert_eq!(connack(&cloud, &hub, "ie-1").await, 3);
    fault_logged(&cloud, id, "exhausted").await;
    assert_eq!(connack(&cloud, &hub, "ie-1").await, 0);

    let (mut d, _) = register_and_connect(&cloud, "ie-1").await;
    apply(
        &cloud,
        json!({"action": "hub-error", "hub": hub, "mode": "drop", "count": 2}),
    )
    .await;
    d.closed().await;
    let key = cloud.device_key("default", "ie-1").unwrap();
    let mut again = connect(hub_options(&cloud, &hub, "ie-1", &key, true))
        .await
        .expect("CONNACK 0 first");
    again.closed().await;
    logged(&cloud, |r| matches!(&r.event, Event::Disconnected { reason, .. } if reason.starts_with("internal error"))).await;

    let (mut d, _) = register_and_connect(&cloud, "ie-1").await;
    d.client
        .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
        .await
        .unwrap();
    assert!(matches!(d.packet().await, Ok(Packet::SubAck(_))));
    apply(
        &cloud,
        json!({"action": "hub-error", "hub": hub, "mode": "twin", "count": 1}),
    )
    .await;
    d.client
        .publish("$iothub/twin/GET/?$rid=7", QoS::AtMostOnce, false, "")
        .await
        .unwrap();
    assert_eq!(
        d.publish().await.unwrap().topic,
        "$iothub/twin/res/500/?$rid=7"
    );
    d.client
        .publish("$iothub/twin/GET/?$rid=8", QoS::AtMostOnce, false, "")
        .await
        .unwrap();
    assert_eq!(
        d.publish().await.unwrap().topic,
        "$iothub/twin/res/200/?$rid=8"
    );
    cloud.shutdown().await;
}

#[tokio::test]
async fn network_faults_delay_hold_blackhole_and_reset() {
    let cloud = start(1).await;
    let (mut d, hub) = register_and_connect(&cloud, "net-1").await;
    d.client
        .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
        .await
        .unwrap();
    assert!(matches!(d.packet().await, Ok(Packet::SubAck(_))));
    let delay = Duration::from_millis(300);
    let id = apply(
        &cloud,
        json!({"action": "network", "device": "net-1", "mode": "delay", "delay": "300ms"}),
    )
    .await;
    let t0 = Instant::now();
    d.client
        .publish("$iothub/twin/GET/?$rid=1", QoS::AtMostOnce, false, "")
        .await
        .unwrap();
    d.publish().await.unwrap();
    let took = t0.elapsed();
    assert!(
        delay <= took && took <= delay + WAIT,
        "answer after {took:?}"
    );
    cloud.clear_fault(id).await.unwrap();

    apply(
        &cloud,
        json!({"action": "network", "device": "net-1", "mode": "reset"}),
    )
    .await;
    assert!(d.closed().await.to_lowercase().contains("reset"));

    let id = apply(&cloud, json!({"action": "network", "device": "net-1", "mode": "hold-connack", "delay": "300ms", "count": 1})).await;
    let t0 = Instant::now();
    assert_eq!(connack(&cloud, &hub, "net-1").await, 0);
    let took = t0.elapsed();
    assert!(
        delay <= took && took <= delay + WAIT,
        "CONNACK after {took:?}"
    );
    fault_logged(&cloud, id, "exhausted").await;

    apply(
        &cloud,
        json!({"action": "network", "hub": hub, "mode": "blackhole", "count": 1}),
    )
    .await;
    let port = cloud.hub_addr(&hub).unwrap().port();
    assert_eq!(tcp_fate(port, Duration::from_millis(300)).await, "silent");
    let id = apply(
        &cloud,
        json!({"action": "network", "device": "net-1", "mode": "blackhole"}),
    )
    .await;
    let key = cloud.device_key("default", "net-1").unwrap();
    let silent = tokio::time::timeout(
        Duration::from_millis(300),
        connect(hub_options(&cloud, &hub, "net-1", &key, true)),
    )
    .await;
    assert!(silent.is_err(), "no CONNACK while blackholed");
    let r = logged(
        &cloud,
        |r| matches!(&r.event, Event::HubRefused { how, .. } if how == "blackhole-after-connect"),
    )
    .await;
    assert_eq!(r.device.as_deref(), Some("net-1"));
    cloud.clear_fault(id).await.unwrap();
    assert_eq!(connack(&cloud, &hub, "net-1").await, 0);
    cloud.shutdown().await;
}

#[tokio::test]
async fn fault_injection_properties_kill_or_shut_down_the_connection_and_strict_mode_refuses() {
    let cloud = start(1).await;
    let (mut d, hub) = register_and_connect(&cloud, "fi-1").await;
    // KillTcp from telemetry: no PUBACK for the trigger, then an RST.
    d.client
        .publish(
            "devices/fi-1/messages/events/AzIoTHub_FaultOperationType=KillTcp&AzIoTHub_FaultOperationCloseReason=boom&AzIoTHub_FaultOperationDelayInSecs=0&AzIoTHub_FaultOperationDurationInSecs=1",
            QoS::AtLeastOnce,
            false,
            "{}",
        )
        .await
        .unwrap();
    let mut acked = false;
    let why = loop {
        match d.packet().await {
            Ok(Packet::PubAck(_)) => acked = true,
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(!acked, "the fault message is not acknowledged");
    assert!(why.to_lowercase().contains("reset"), "{why}");
    logged(&cloud, |r| {
        matches!(
            &r.event,
            Event::Fault {
                phase: hubswap_mock_cloud::log::FaultPhase::Triggered,
                ..
            }
        )
    })
    .await;
    assert_eq!(
        connack(&cloud, &hub, "fi-1").await,
        0,
        "one-shot: reconnects succeed"
    );

    // ShutDownMqtt through the API: TLS close_notify, then FIN.
    let (mut d, _) = register_and_connect(&cloud, "fi-1").await;
    apply(
        &cloud,
        json!({"action": "inject", "device": "fi-1", "kind": "ShutDownMqtt"}),
    )
    .await;
    let why = d.closed().await;
    assert!(!why.to_lowercase().contains("reset"), "{why}");

    // Strict mode: InvokeAuthError refuses reconnects with CONNACK 5 for its duration.
    apply(&cloud, json!({"action": "options", "inject_strict": true})).await;
    let (mut d, _) = register_and_connect(&cloud, "fi-1").await;
    apply(
        &cloud,
        json!({"action": "inject", "device": "fi-1", "kind": "InvokeAuthError", "duration": "30s"}),
    )
    .await;
    d.closed().await;
    assert_eq!(connack(&cloud, &hub, "fi-1").await, 5);
    cloud.shutdown().await;
}
