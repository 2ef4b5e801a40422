//! The mock cloud the runner starts: DPS and two hubs on their own loopback addresses, the hubs
//! sharing one port so that a device only needs `{hub_port}` (official SDKs need 8883).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use hubswap_mock_cloud::log::Endpoint;
use hubswap_mock_cloud::log::to_observations_attributing;
use hubswap_mock_cloud::{CloudConfig, Event, HubConfig, LogRecord, MockCloud};
use hubswap_spec::trace::{Observation, Observed};

use super::error::RunError;

/// Where the runner's mock cloud listens.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// DPS listens here; hub *i* on the next addresses.
    pub base_ip: Ipv4Addr,
    /// The port every hub listens on (0: a free one; official SDKs need 8883).
    pub hub_port: u16,
    /// DPS over MQTT (0: a free one).
    pub dps_port: u16,
    /// DPS over HTTPS (0: a free one; the Node SDK needs 443).
    pub dps_https_port: u16,
}

/// Picks a port that is free on every address in `ips` (0 when `wanted` is 0 means "any").
pub(crate) fn shared_port(ips: &[Ipv4Addr], wanted: u16) -> Result<u16, RunError> {
    if wanted != 0 {
        return Ok(wanted);
    }
    for _ in 0..50 {
        let first = TcpListener::bind((ips[0], 0))
            .map_err(|e| RunError::Bind(format!("{}: {e}", ips[0])))?;
        let port = first
            .local_addr()
            .map_err(|e| RunError::Bind(e.to_string()))?
            .port();
        let others: Result<Vec<_>, _> = ips[1..]
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if others.is_ok() {
            return Ok(port);
        }
    }
    Err(RunError::Bind("no port free on every hub address".into()))
}

fn ip_at(base: Ipv4Addr, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(offset))
}

/// The cloud config for `layout`: DPS on the base address, hub *i* on base + 1 + *i*.
pub(crate) fn config(layout: &Layout) -> Result<CloudConfig, RunError> {
    let hub_ips: Vec<Ipv4Addr> = (0..2).map(|i| ip_at(layout.base_ip, 1 + i)).collect();
    let hub_port = shared_port(&hub_ips, layout.hub_port)?;
    let mut cfg = CloudConfig::for_tests(0);
    cfg.dps.host = layout.base_ip.to_string();
    cfg.dps.mqtt = SocketAddr::new(IpAddr::V4(layout.base_ip), layout.dps_port);
    cfg.dps.https = SocketAddr::new(IpAddr::V4(layout.base_ip), layout.dps_https_port);
    cfg.hubs = hub_ips
        .iter()
        .map(|ip| HubConfig {
            host: ip.to_string(),
            listen: SocketAddr::new(IpAddr::V4(*ip), hub_port),
        })
        .collect();
    cfg.admin = None;
    cfg.events = None;
    Ok(cfg)
}

/// Starts the cloud, or explains which address could not be bound.
pub(crate) async fn start(layout: &Layout) -> Result<MockCloud, RunError> {
    let cfg = config(layout)?;
    MockCloud::start(cfg)
        .await
        .map_err(|e| RunError::Cloud(e.to_string()))
}

/// The hub a record's CONNACK 0 came from, if it is one for `device`.
pub(crate) fn accepted_on(r: &LogRecord, device: &str) -> Option<String> {
    (r.device.as_deref() == Some(device))
        .then(|| crate::presence::accepted_hub(r).map(str::to_owned))
        .flatten()
}

/// Waits for `device` to be accepted by a hub after log sequence number `after`.
pub(crate) async fn wait_connected(
    cloud: &MockCloud,
    device: &str,
    after: u64,
    timeout: Duration,
) -> Option<String> {
    cloud
        .log()
        .wait_for(timeout, |r| {
            r.seq >= after && accepted_on(r, device).is_some()
        })
        .await
        .and_then(|r| accepted_on(&r, device))
}

/// A step towards steady state: its name, and the record that shows it.
type Milestone = (&'static str, fn(&Event) -> bool);

/// Waits until `device`, connected since log sequence number `after`, is in steady state on its
/// hub: subscribed, its twin fetched, and a telemetry message acknowledged (the hub records a
/// message before it acknowledges it). Names the first step it did not reach.
pub(crate) async fn wait_steady(
    cloud: &MockCloud,
    device: &str,
    after: u64,
    timeout: Duration,
) -> Result<(), String> {
    let steps: [Milestone; 3] = [
        ("subscribed on its hub", |e| {
            matches!(
                e,
                Event::Subscribed {
                    endpoint: Endpoint::Hub(_),
                    ..
                }
            )
        }),
        ("fetched its twin", |e| {
            matches!(e, Event::TwinGet { status: 200, .. })
        }),
        ("had telemetry acknowledged", |e| {
            matches!(e, Event::Telemetry { .. })
        }),
    ];
    let deadline = tokio::time::Instant::now() + timeout;
    for (what, reached) in steps {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let seen = cloud
            .log()
            .wait_for(left, |r| {
                r.seq >= after && r.device.as_deref() == Some(device) && reached(&r.event)
            })
            .await;
        if seen.is_none() {
            return Err(format!("had not {what} within {timeout:?} of connecting"));
        }
    }
    Ok(())
}

/// The next log sequence number.
pub(crate) fn mark(cloud: &MockCloud) -> u64 {
    cloud.log().next_seq()
}

/// What the cloud saw of `device` (refusals at TCP accept are attributed to it: it is the only
/// client), ending with [`Observed::End`].
pub(crate) fn observations(cloud: &MockCloud, device: &str) -> Vec<Observation> {
    let records = cloud.log().records();
    let mut obs: Vec<Observation> = to_observations_attributing(&records, device)
        .into_iter()
        .filter(|o| o.device == device)
        .collect();
    let end = records.last().map_or(hubswap_spec::Millis::ZERO, |r| r.at);
    obs.push(Observation {
        at: end,
        device: device.to_owned(),
        event: Observed::End,
    });
    obs
}

/// Telemetry messages the cloud recorded for `device`.
pub(crate) fn telemetry_count(cloud: &MockCloud, device: &str) -> usize {
    cloud
        .log()
        .records()
        .iter()
        .filter(|r| {
            r.device.as_deref() == Some(device) && matches!(r.event, Event::Telemetry { .. })
        })
        .count()
}
