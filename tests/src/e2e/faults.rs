//! The fault vocabulary of the randomised scenarios: a few kinds, addressed by hub and device
//! index, each standing for one mock cloud [`Fault`].

use std::time::Duration;

use hubswap_mock_cloud::MockCloud;
use hubswap_mock_cloud::fault::{
    Block, DeviceOnHub, DpsError, ExpireToken, Failback, Failover, Fault, HubDown, HubError,
    HubErrorMode, Lifetime, Network, NetworkMode, OutageMode, RefuseAt,
};
use serde::Serialize;

/// How long a held fault lasts.
pub const HOLD: Duration = Duration::from_millis(1_500);

/// One fault of a scenario. Hubs and devices are indices (modulo the counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FaultKind {
    /// Fail a hub over to the other one.
    FailoverHub(usize),
    /// Fail back every failed-over device.
    Failback,
    /// Drop a device's TCP connection.
    Drop(usize),
    /// DPS answers 500 to the next `n` requests.
    Dps500(u32),
    /// DPS answers 429 with retry-after 1 s to the next `n` requests.
    Dps429(u32),
    /// Invalidate a device's token.
    ExpireToken(usize),
    /// Disable a device on its hub for a while.
    Disable(usize),
    /// Block a device for a while.
    Block(usize),
    /// Make a hub unreachable (reset at accept) for a while.
    Outage(usize),
    /// A hub refuses CONNECTs with CONNACK 3 for a while.
    Connack3(usize),
}

/// A fault at a time offset from the start of the fault phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timed {
    /// Milliseconds into the fault phase.
    pub at_ms: u64,
    /// The fault.
    pub fault: FaultKind,
}

fn hub_of(cloud: &MockCloud, i: usize) -> String {
    let hosts = cloud.hub_hosts();
    hosts[i % hosts.len()].clone()
}

impl FaultKind {
    /// The mock cloud fault this stands for, with hub and device indices taken modulo the
    /// cloud's hubs and `devices`.
    pub fn fault(&self, cloud: &MockCloud, devices: &[String]) -> Fault {
        let dev = |i: usize| devices[i % devices.len()].clone();
        match self {
            Self::FailoverHub(h) => {
                let (hub, to) = (hub_of(cloud, *h), hub_of(cloud, h + 1));
                Fault::Failover(Failover {
                    hub: Some(hub),
                    to,
                    ..Failover::default()
                })
            }
            Self::Failback => Fault::Failback(Failback::default()),
            Self::Drop(i) => Fault::Network(Network {
                device: Some(dev(*i)),
                mode: NetworkMode::Drop,
                ..Network::default()
            }),
            Self::Dps500(n) => Fault::DpsError(DpsError {
                status: 500,
                count: Some(*n),
                ..DpsError::default()
            }),
            Self::Dps429(n) => Fault::DpsError(DpsError {
                status: 429,
                retry_after: Some(1),
                count: Some(*n),
                ..DpsError::default()
            }),
            Self::ExpireToken(i) => Fault::ExpireToken(ExpireToken {
                device: dev(*i),
                until_reprovisioned: false,
            }),
            Self::Disable(i) => Fault::Disable(DeviceOnHub {
                device: dev(*i),
                hub: None,
                lifetime: Lifetime::lasting(HOLD),
            }),
            Self::Block(i) => Fault::Block(Block {
                device: dev(*i),
                lifetime: Lifetime::lasting(HOLD),
            }),
            // Reset after CONNECT, so that the cloud knows which device it refused: with several
            // devices a reset at TCP accept cannot be attributed (SPEC §8).
            Self::Outage(h) => Fault::HubDown(HubDown {
                hub: hub_of(cloud, *h),
                mode: OutageMode::Refuse,
                refuse_at: RefuseAt::Connect,
                lifetime: Lifetime::lasting(HOLD),
                ..HubDown::default()
            }),
            Self::Connack3(h) => Fault::HubError(HubError {
                hub: hub_of(cloud, *h),
                mode: HubErrorMode::Connack,
                code: Some(3),
                lifetime: Lifetime::lasting(HOLD),
                ..HubError::default()
            }),
        }
    }
}
