//! Shared helpers: a mock cloud on ephemeral loopback ports and a client pointed at it.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use hubswap_client::{
    DeviceClient, DeviceClientBuilder, DeviceEvent, DpsTransport, LocalCloud, StatusKind,
};
use hubswap_mock_cloud::{CloudConfig, Event, LogRecord, MockCloud};
use hubswap_spec as spec;
use tokio::sync::{mpsc, watch};

pub const MODEL: &str = "dtmi:com:example:Thermostat;1";
/// Generous upper bounds: real sockets and TLS on a shared 2-core machine.
pub const LONG: Duration = Duration::from_secs(30);

pub async fn cloud(hubs: usize) -> MockCloud {
    MockCloud::start(CloudConfig::for_tests(hubs))
        .await
        .expect("mock cloud starts")
}

/// Millisecond-scale timing so that failures and renewals happen within a test.
pub fn fast_timing() -> spec::Config {
    let c = spec::Config {
        fast: spec::Profile {
            floor: Duration::from_millis(50),
            initial: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        },
        slow: spec::Profile {
            floor: Duration::from_secs(1),
            initial: Duration::from_secs(1),
            cap: Duration::from_secs(5),
        },
        min_attempt_spacing: Duration::from_millis(50),
        stable_after: Duration::from_millis(500),
        attempt_timeout: Duration::from_secs(10),
        dps_poll_default: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(2),
        retry_after_jitter: Duration::from_millis(100),
        ..spec::Config::default()
    };
    c.validate().expect("fast timing is valid");
    c
}

/// The mock's id scope, CA, DPS listeners and hubs, as the client's [`LocalCloud`].
pub fn local(cloud: &MockCloud) -> LocalCloud {
    let hubs = cloud.info().hubs.into_iter().map(|h| (h.host, h.addr));
    let (dps_mqtt, dps_https) = (cloud.dps_mqtt_addr(), cloud.dps_https_addr());
    let (id_scope, ca_pem) = (cloud.id_scope().to_owned(), cloud.ca_pem().to_owned());
    let hubs = hubs.collect();
    LocalCloud {
        id_scope,
        ca_pem,
        dps_mqtt,
        dps_https,
        hubs,
    }
}

/// A builder for `reg_id` in the mock's `default` group, with fast timing.
pub fn builder(cloud: &MockCloud, reg_id: &str, transport: DpsTransport) -> DeviceClientBuilder {
    DeviceClient::builder()
        .local_cloud(&local(cloud), transport)
        .registration_id(reg_id)
        .group_key(cloud.group_key("default").expect("default group"))
        .model_id(MODEL)
        .memory_store()
        .timing(fast_timing())
        .jitter_seed(7)
}

pub async fn wait_status(
    rx: &mut watch::Receiver<hubswap_client::ConnectionStatus>,
    kind: StatusKind,
) {
    let reached = tokio::time::timeout(LONG, rx.wait_for(|s| s.kind == kind))
        .await
        .is_ok();
    assert!(
        reached,
        "status {kind:?} not reached; last {:?}",
        *rx.borrow()
    );
}

/// Waits for a log record matching `pred` (already logged, or logged later).
pub async fn wait_log(cloud: &MockCloud, pred: impl Fn(&LogRecord) -> bool) -> LogRecord {
    let mut sub = cloud.log().subscribe();
    if let Some(r) = cloud.log().records().into_iter().find(|r| pred(r)) {
        return r;
    }
    tokio::time::timeout(LONG, async {
        loop {
            match sub.recv().await {
                Ok(r) if pred(&r) => return r,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(r) = cloud.log().records().into_iter().find(|r| pred(r)) {
                        return r;
                    }
                }
                Err(e) => panic!("log closed: {e}"),
            }
        }
    })
    .await
    .expect("log record within the bound")
}

/// Every telemetry `$.mid` the cloud recorded, in order, with its hub.
pub fn telemetry_mids(cloud: &MockCloud) -> Vec<(String, String)> {
    cloud
        .log()
        .records()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Telemetry {
                hub, properties, ..
            } => properties.get("$.mid").map(|m| (m.clone(), hub)),
            _ => None,
        })
        .collect()
}

pub async fn next_event(
    events: &mut mpsc::UnboundedReceiver<DeviceEvent>,
    pred: impl Fn(&DeviceEvent) -> bool,
) -> DeviceEvent {
    tokio::time::timeout(LONG, async {
        loop {
            let e = events.recv().await.expect("events open");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event within the bound")
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Waits until the cloud has recorded telemetry with every one of `mids`. (The mock sends its
/// PUBACK before it records the message, so an acknowledged message may be logged a moment
/// after the client learns of the acknowledgement.)
pub async fn wait_mids(cloud: &MockCloud, mids: &[String]) {
    let mut sub = cloud.log().subscribe();
    let all_seen = |cloud: &MockCloud| {
        let seen = telemetry_mids(cloud);
        mids.iter().all(|m| seen.iter().any(|(s, _)| s == m))
    };
    let done = tokio::time::timeout(LONG, async {
        while !all_seen(cloud) {
            let _ = sub.recv().await;
        }
    })
    .await;
    let seen = telemetry_mids(cloud);
    let missing: Vec<_> = mids
        .iter()
        .filter(|m| !seen.iter().any(|(s, _)| s == *m))
        .collect();
    assert!(
        done.is_ok() && missing.is_empty(),
        "never recorded: {missing:?}"
    );
}
