//! Token renewal, the assignment cache and a hub switch, each without losing telemetry.

#![allow(clippy::unwrap_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests measure elapsed time to assert bounds"
)]

mod common;

use std::time::Duration;

use common::{
    LONG, builder, cloud, fast_timing, init_tracing, telemetry_mids, wait_log, wait_mids,
    wait_status,
};
use hubswap_client::{DpsTransport, FileStore, Reason, StatusKind, Telemetry, WhenFull};
use hubswap_mock_cloud::log::Endpoint;
use hubswap_mock_cloud::{Event, MockCloud};

fn connacks(cloud: &MockCloud, device: &str, code: u8) -> usize {
    cloud
        .log()
        .records()
        .iter()
        .filter(|r| r.device.as_deref() == Some(device))
        .filter(|r| matches!(&r.event, Event::ConnAck { code: c, endpoint: Endpoint::Hub(_), .. } if *c == code))
        .count()
}

fn dps_requests(cloud: &MockCloud, device: &str) -> usize {
    cloud.log().records().iter().filter(|r| matches!(&r.event, Event::DpsRequest { registration_id, .. } if registration_id == device)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_renewal_by_planned_reconnect_loses_nothing() {
    init_tracing();
    let cloud = cloud(1).await;
    let mut timing = fast_timing();
    timing.token_ttl = Duration::from_secs(3);
    timing.renew_at_percent = 50;
    let (client, _events) = builder(&cloud, "renew-1", DpsTransport::Mqtt)
        .timing(timing)
        .build()
        .unwrap();
    let mut status = client.status();
    wait_status(&mut status, StatusKind::Connected).await;

    // Keep a stream of telemetry in flight until two renewals have happened.
    let mut mids = Vec::new();
    let mut saw_renewal_reason = false;
    let started = tokio::time::Instant::now();
    while connacks(&cloud, "renew-1", 0) < 3 {
        assert!(started.elapsed() < LONG, "no renewal within {LONG:?}");
        let d = client
            .queue_telemetry(Telemetry::new(format!("n{}", mids.len())), WhenFull::Wait)
            .await
            .unwrap();
        mids.push(d.acked().await.unwrap());
        saw_renewal_reason |= status.borrow().reason == Some(Reason::TokenRenewal);
    }
    let elapsed = started.elapsed();
    // Two renewals at 50 % of a 3 s token: at least ~3 s, bounded well below the test limit.
    assert!(elapsed >= Duration::from_millis(2500), "{elapsed:?}");
    assert!(saw_renewal_reason || status.borrow().reason == Some(Reason::TokenRenewal));
    // Nothing was lost across the renewals.
    wait_mids(&cloud, &mids).await;
    // Never refused: the token was renewed before the hub would reject it.
    assert_eq!(connacks(&cloud, "renew-1", 5), 0);
    client.shutdown().await;
    cloud.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_assignment_connects_without_dps() {
    init_tracing();
    let cloud = cloud(2).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assignment.json");
    let (first, _e) = builder(&cloud, "cached-1", DpsTransport::Mqtt)
        .store(FileStore::new(&path))
        .build()
        .unwrap();
    wait_status(&mut first.status(), StatusKind::Connected).await;
    first.shutdown().await;
    let registrations = dps_requests(&cloud, "cached-1");
    assert!(registrations >= 1);
    assert!(path.exists());

    let (second, _e) = builder(&cloud, "cached-1", DpsTransport::Mqtt)
        .store(FileStore::new(&path))
        .build()
        .unwrap();
    wait_status(&mut second.status(), StatusKind::Connected).await;
    assert_eq!(
        dps_requests(&cloud, "cached-1"),
        registrations,
        "the cache was not used"
    );
    assert_eq!(connacks(&cloud, "cached-1", 0), 2);
    second
        .send_telemetry(Telemetry::new("from cache"), WhenFull::Fail)
        .await
        .unwrap();
    second.shutdown().await;
    cloud.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_switch_loses_no_message() {
    init_tracing();
    let cloud = cloud(2).await;
    let id = "mover-1";
    let (client, _events) = builder(&cloud, id, DpsTransport::Https).build().unwrap();
    let mut status = client.status();
    wait_status(&mut status, StatusKind::Connected).await;
    let from = cloud.device(id).unwrap().device.hub;
    let to = cloud.hub_hosts().into_iter().find(|h| *h != from).unwrap();

    // Queue a first batch, move the device to the other hub (re-register it there through the
    // mock's API and drop its connection), then queue a second batch while it moves.
    let mut deliveries = Vec::new();
    for i in 0..20 {
        deliveries.push(
            client
                .queue_telemetry(Telemetry::new(format!("a{i}")), WhenFull::Wait)
                .await
                .unwrap(),
        );
    }
    let key = cloud.device_key("default", id).unwrap();
    cloud.create_device(id, &to, Some(&key)).unwrap();
    assert!(cloud.kick(id));
    for i in 0..20 {
        deliveries.push(
            client
                .queue_telemetry(Telemetry::new(format!("b{i}")), WhenFull::Wait)
                .await
                .unwrap(),
        );
    }
    let mut mids = Vec::new();
    for d in deliveries {
        mids.push(
            tokio::time::timeout(LONG, d.acked())
                .await
                .expect("acked within the bound")
                .unwrap(),
        );
    }
    let info = cloud.device(id).unwrap();
    assert_eq!(info.connected_to.as_deref(), Some(to.as_str()));
    // No message was lost in the switch.
    wait_mids(&cloud, &mids).await;
    let seen = telemetry_mids(&cloud);
    assert!(
        seen.iter().any(|(_, hub)| *hub == to),
        "nothing arrived on the new hub"
    );
    wait_log(
        &cloud,
        |r| matches!(&r.event, Event::DpsRequest { registration_id, .. } if registration_id == id),
    )
    .await;
    client.shutdown().await;
    cloud.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprovision_asks_dps_again_and_reconnects() {
    init_tracing();
    let cloud = cloud(1).await;
    let (client, _events) = builder(&cloud, "reprov-1", DpsTransport::Mqtt)
        .build()
        .unwrap();
    let mut status = client.status();
    wait_status(&mut status, StatusKind::Connected).await;
    let before = dps_requests(&cloud, "reprov-1");
    client.reprovision();
    status
        .wait_for(|s| s.reason == Some(Reason::ReprovisionRequested))
        .await
        .unwrap();
    wait_status(&mut status, StatusKind::Connected).await;
    assert!(dps_requests(&cloud, "reprov-1") > before);
    assert_eq!(connacks(&cloud, "reprov-1", 0), 2);
    client.shutdown().await;
    cloud.shutdown().await;
}

/// Reported-property `PATCH` requests the cloud answered `status` for `device`.
fn patches_answered(cloud: &MockCloud, device: &str, status: u16) -> usize {
    cloud
        .log()
        .records()
        .iter()
        .filter(|r| r.device.as_deref() == Some(device))
        .filter(|r| matches!(&r.event, Event::TwinReported { status: s, .. } if *s == status))
        .count()
}

/// SPEC §2: twin 429 / 5xx is `RequestTransient` — the connection stands and the request is
/// retried. A PATCH answered 500 twice goes through on the third try; one answered 429 every
/// time reaches the application as `Rejected` after `MAX_TRIES` (5) sends, on the same
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_requests_answered_429_or_5xx_are_retried_on_the_same_connection() {
    use hubswap_mock_cloud::Fault;
    use hubswap_mock_cloud::fault::{HubError, HubErrorMode};

    init_tracing();
    let cloud = cloud(1).await;
    let id = "twin-retry-1";
    let (client, _events) = builder(&cloud, id, DpsTransport::Mqtt).build().unwrap();
    let mut status = client.status();
    wait_status(&mut status, StatusKind::Connected).await;
    let hub = cloud.device(id).unwrap().device.hub;
    let fault = |status: u16, count: Option<u32>| {
        Fault::HubError(HubError {
            hub: hub.clone(),
            mode: HubErrorMode::Twin,
            status: Some(status),
            device: Some(id.to_owned()),
            count,
            ..HubError::default()
        })
    };

    cloud.apply(fault(500, Some(2))).await.unwrap();
    let version = client
        .report_properties(serde_json::json!({ "firmware": "1.2.3" }))
        .await
        .expect("the third try is accepted");
    assert!(version.is_some(), "a $version comes back");
    assert_eq!(patches_answered(&cloud, id, 500), 2);
    assert_eq!(patches_answered(&cloud, id, 204), 1);

    let id_429 = cloud.apply(fault(429, None)).await.unwrap();
    let err = client
        .report_properties(serde_json::json!({ "firmware": "1.2.4" }))
        .await
        .expect_err("throttled every time");
    assert!(
        matches!(err, hubswap_client::ClientError::Rejected { status: 429 }),
        "{err:?}"
    );
    assert_eq!(
        patches_answered(&cloud, id, 429),
        5,
        "MAX_TRIES sends in all"
    );
    assert_eq!(
        connacks(&cloud, id, 0),
        1,
        "the connection stood throughout"
    );
    cloud.clear_fault(id_429).await.unwrap();
    client.shutdown().await;
    cloud.shutdown().await;
}
