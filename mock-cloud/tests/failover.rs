//! Failover and failback, IoT Central style: DPS assigns the new hub, the old hub drops the
//! device without an MQTT packet and refuses it with CONNACK 3; TTL and on-demand failback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use std::time::{Duration, Instant};

use common::{
    WAIT, apply, connack, fault_logged, logged, provision_and_connect, provision_mqtt,
    register_and_connect, rest_register, start,
};
use futures_util::future::join_all;
use hubswap_mock_cloud::Event;
use hubswap_spec::trace::Side;
use serde_json::json;

#[tokio::test]
async fn failing_one_device_over_moves_it_in_dps_and_the_old_hub_drops_and_refuses_it() {
    let cloud = start(2).await;
    let (mut d, a) = provision_and_connect(&cloud, "fo-1", true).await;
    let b = cloud.hub_hosts().into_iter().find(|h| *h != a).unwrap();
    let id = apply(
        &cloud,
        json!({"action": "failover", "device": "fo-1", "to": b}),
    )
    .await;
    // The live connection is dropped: the next thing the device sees is the socket ending.
    let why = d.closed().await;
    assert!(!why.is_empty());
    logged(&cloud, |r| {
        matches!(&r.event, Event::Disconnected { by: Side::Cloud, reason, endpoint: hubswap_mock_cloud::log::Endpoint::Hub(h), .. }
            if *h == a && reason.starts_with("failed over to"))
    })
    .await;
    assert_eq!(connack(&cloud, &a, "fo-1").await, 3, "old hub: CONNACK 3");
    let key = cloud.device_key("default", "fo-1").unwrap();
    let answer = provision_mqtt(&cloud, "fo-1", Some(&key), None).await;
    assert_eq!(answer["registrationState"]["assignedHub"], b.as_str());
    assert_eq!(
        answer["registrationState"]["substatus"],
        "deviceDataMigrated"
    );
    assert_eq!(connack(&cloud, &b, "fo-1").await, 0, "new hub accepts");

    // The rendering option: CONNACK 5 instead of 3.
    apply(&cloud, json!({"action": "options", "disabled_connack": 5})).await;
    assert_eq!(connack(&cloud, &a, "fo-1").await, 5);
    apply(&cloud, json!({"action": "options", "disabled_connack": 3})).await;

    // Failback on demand: DPS assigns the first hub again, the failover hub refuses.
    apply(&cloud, json!({"action": "failback", "device": "fo-1"})).await;
    fault_logged(&cloud, id, "cleared").await;
    let (status, _, v) = rest_register(&cloud, "fo-1").await;
    assert_eq!(status, 200);
    assert_eq!(v["registrationState"]["assignedHub"], a.as_str());
    assert_eq!(
        v["registrationState"]["substatus"],
        "reprovisionedToInitialAssignment"
    );
    assert_eq!(connack(&cloud, &b, "fo-1").await, 3);
    assert_eq!(connack(&cloud, &a, "fo-1").await, 0);
    assert!(cloud.faults().is_empty());
    cloud.shutdown().await;
}

#[tokio::test]
async fn a_failover_ttl_fails_the_device_back_by_itself() {
    let cloud = start(2).await;
    let (mut d, a) = register_and_connect(&cloud, "ttl-1").await;
    let b = cloud.hub_hosts().into_iter().find(|h| *h != a).unwrap();
    let ttl = Duration::from_millis(300);
    let t0 = Instant::now();
    let id = cloud
        .failover_devices(&["ttl-1"], &b, Some(ttl))
        .await
        .unwrap();
    d.closed().await;
    assert_eq!(cloud.device("ttl-1").unwrap().device.hub, b);
    fault_logged(&cloud, id, "expired").await;
    let took = t0.elapsed();
    assert!(
        ttl <= took && took <= ttl + WAIT,
        "failed back after {took:?}"
    );
    assert_eq!(cloud.device("ttl-1").unwrap().device.hub, a);
    let (_, _, v) = rest_register(&cloud, "ttl-1").await;
    assert_eq!(v["registrationState"]["assignedHub"], a.as_str());
    assert_eq!(connack(&cloud, &a, "ttl-1").await, 0);
    assert_eq!(connack(&cloud, &b, "ttl-1").await, 3);
    cloud.shutdown().await;
}

#[tokio::test]
async fn a_hub_failover_drops_100_connected_devices_and_dps_assigns_each_the_other_hub() {
    let cloud = start(2).await;
    let hubs = cloud.hub_hosts();
    let (a, b) = (hubs[0].clone(), hubs[1].clone());
    // Put all 100 on hub a.
    cloud.set_hub_allocation(&b, false).unwrap();
    let ids: Vec<String> = (0..100).map(|i| format!("fleet-{i:03}")).collect();
    for id in &ids {
        assert_eq!(cloud.register_device(id, None).unwrap().hub, a);
    }
    cloud.set_hub_allocation(&b, true).unwrap();
    let mut devices = Vec::new();
    for chunk in ids.chunks(20) {
        let connected = join_all(chunk.iter().map(|id| register_and_connect(&cloud, id))).await;
        devices.extend(connected.into_iter().map(|(d, _)| d));
    }
    assert_eq!(
        cloud
            .devices()
            .iter()
            .filter(|d| d.connected_to.as_deref() == Some(a.as_str()))
            .count(),
        100
    );

    let id = cloud.failover_hub(&a, &b, None).await.unwrap();
    // Every device is dropped.
    join_all(devices.iter_mut().map(common::Device::closed)).await;
    let dropped = cloud
        .log()
        .records()
        .iter()
        .filter(|r| {
            matches!(&r.event, Event::Disconnected { by: Side::Cloud, reason, .. } if reason == &format!("failed over to {b}"))
        })
        .count();
    assert_eq!(dropped, 100);
    assert!(
        cloud
            .hubs()
            .await
            .iter()
            .any(|h| h.host == a && !h.allocating),
        "the failed hub leaves allocation"
    );
    // DPS assigns every one of them the other hub.
    for chunk in ids.chunks(25) {
        let answers = join_all(chunk.iter().map(|id| rest_register(&cloud, id))).await;
        for (id, (status, _, v)) in chunk.iter().zip(answers) {
            assert_eq!(status, 200, "{id}");
            assert_eq!(v["registrationState"]["assignedHub"], b.as_str(), "{id}");
        }
    }
    assert_eq!(connack(&cloud, &a, "fleet-042").await, 3);
    // Clearing the fault fails them all back and returns the hub to allocation.
    cloud.clear_fault(id).await.unwrap();
    assert!(cloud.devices().iter().all(|d| d.device.hub == a));
    assert!(cloud.hubs().await.iter().all(|h| h.allocating));
    cloud.shutdown().await;
}

/// A device failed over to another hub and then back to its first one is home: clearing
/// both failovers leaves its home identity enabled and DPS and the hub agreeing.
#[tokio::test]
async fn failing_over_there_and_back_then_clearing_leaves_the_device_at_home() {
    let cloud = start(2).await;
    let (_d, a) = register_and_connect(&cloud, "rt-1").await;
    let b = cloud.hub_hosts().into_iter().find(|h| *h != a).unwrap();
    apply(&cloud, json!({"action": "failover", "hub": a, "to": b})).await;
    apply(&cloud, json!({"action": "failover", "hub": b, "to": a})).await;
    assert_eq!(cloud.device("rt-1").unwrap().device.hub, a);
    cloud.clear_faults().await;
    let (_, _, v) = rest_register(&cloud, "rt-1").await;
    assert_eq!(v["registrationState"]["assignedHub"], a.as_str());
    assert_eq!(connack(&cloud, &a, "rt-1").await, 0, "home hub accepts");
    assert_eq!(
        connack(&cloud, &b, "rt-1").await,
        3,
        "the other hub refuses"
    );
    cloud.shutdown().await;
}
