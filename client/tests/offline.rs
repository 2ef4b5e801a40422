//! Delivery while the cloud cannot be reached: a full outbox waits or fails, time-to-live
//! expiry is reported, and a journaled outbox survives a restart.
#![allow(clippy::unwrap_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests measure elapsed time to assert bounds"
)]

mod common;

use std::time::Duration;

use common::{LONG, builder, cloud, fast_timing, init_tracing, telemetry_mids, wait_log};
use hubswap_client::{
    DeviceClient, DeviceClientBuilder, DpsTransport, SendError, Telemetry, WhenFull,
};

/// A client whose DPS endpoint refuses connections: it never gets online.
async fn unreachable_builder(reg_id: &str) -> DeviceClientBuilder {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    DeviceClient::builder()
        .id_scope("0ne0000TEST")
        .registration_id(reg_id)
        .device_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .dps_endpoint("127.0.0.1", port)
        .memory_store()
        .timing(fast_timing())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_fails_or_waits_and_ttl_expiry_is_reported() {
    init_tracing();
    let (client, _e) = unreachable_builder("offline-1")
        .await
        .outbox_capacity(2)
        .build()
        .unwrap();
    let ttl = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let first = client
        .queue_telemetry(Telemetry::new("a").ttl(ttl), WhenFull::Fail)
        .await
        .unwrap();
    let second = client
        .queue_telemetry(Telemetry::new("b").ttl(ttl), WhenFull::Fail)
        .await
        .unwrap();
    assert_eq!(
        client
            .queue_telemetry(Telemetry::new("c"), WhenFull::Fail)
            .await
            .unwrap_err(),
        SendError::Full
    );
    // Waiting for room: room appears when the first two expire.
    let third = client
        .queue_telemetry(Telemetry::new("d"), WhenFull::Wait)
        .await
        .unwrap();
    assert_eq!(first.acked().await, Err(SendError::Expired));
    assert_eq!(second.acked().await, Err(SendError::Expired));
    let elapsed = started.elapsed();
    assert!(elapsed >= ttl && elapsed < LONG, "{elapsed:?}");
    client.shutdown().await;
    assert_eq!(third.acked().await, Err(SendError::Shutdown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_outbox_is_delivered_after_a_restart() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (offline, _e) = unreachable_builder("journal-1")
        .await
        .outbox_journal(dir.path())
        .build()
        .unwrap();
    let mut queued = Vec::new();
    for i in 0..3 {
        queued.push(
            offline
                .queue_telemetry(Telemetry::new(format!("j{i}")), WhenFull::Fail)
                .await
                .unwrap(),
        );
    }
    offline.shutdown().await;
    for d in queued {
        assert_eq!(d.acked().await, Err(SendError::Shutdown));
    }

    let cloud = cloud(1).await;
    let (client, _e) = builder(&cloud, "journal-1", DpsTransport::Mqtt)
        .outbox_journal(dir.path())
        .build()
        .unwrap();
    // A new message after the restored ones; once it is acknowledged, so are they (in order).
    client
        .send_telemetry(Telemetry::new("after restart"), WhenFull::Wait)
        .await
        .unwrap();
    // Restored messages go first on the same connection, so once the new one is recorded the
    // restored ones are too.
    wait_log(&cloud, |r| {
        matches!(&r.event, hubswap_mock_cloud::Event::Telemetry { payload, .. } if payload == "after restart")
    })
    .await;
    let payloads: Vec<String> = cloud
        .log()
        .records()
        .into_iter()
        .filter_map(|r| match r.event {
            hubswap_mock_cloud::Event::Telemetry { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    for p in ["j0", "j1", "j2", "after restart"] {
        assert!(
            payloads.iter().any(|x| x == p),
            "{p} missing from {payloads:?}"
        );
    }
    assert_eq!(telemetry_mids(&cloud).len(), payloads.len());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "delivered messages leave the journal"
    );
    client.shutdown().await;
    cloud.shutdown().await;
}

/// After a failure the driver does not poll rumqttc again until the machine asks: a hub that
/// accepts and drops every connection sees attempts spaced by the spec's backoff, not a spin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hub_is_retried_at_the_spec_pace_not_in_a_loop() {
    init_tracing();
    let hub = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hub.local_addr().unwrap().port();
    let timing = hubswap_spec::Config {
        unreachable_threshold: 50,
        fast: hubswap_spec::Profile {
            floor: Duration::from_millis(200),
            initial: Duration::from_millis(100),
            cap: Duration::from_millis(400),
        },
        min_attempt_spacing: Duration::from_millis(200),
        ..fast_timing()
    };
    let cached = hubswap_spec::Assignment {
        hub: "flaky.hub".into(),
        device_id: "flaky-1".into(),
    };
    let (client, _e) = unreachable_builder("flaky-1")
        .await
        .timing(timing)
        .store(hubswap_client::MemoryStore::with(
            "0ne0000TEST/flaky-1",
            cached,
        ))
        .hub_resolver(move |_| ("127.0.0.1".to_owned(), port))
        .build()
        .unwrap();
    let attempts = 5;
    let started = tokio::time::Instant::now();
    for _ in 0..attempts {
        let (sock, _) = tokio::time::timeout(LONG, hub.accept())
            .await
            .unwrap()
            .unwrap();
        drop(sock);
    }
    let elapsed = started.elapsed();
    // Four gaps of at least the spacing (200 ms) between five attempts; a spinning event loop
    // would reconnect within microseconds.
    assert!(elapsed >= Duration::from_millis(4 * 200), "{elapsed:?}");
    let reason = client.status().borrow().reason.clone();
    assert!(
        matches!(reason, Some(hubswap_client::Reason::HubUnreachable(_))),
        "{reason:?}"
    );
    client.shutdown().await;
}
