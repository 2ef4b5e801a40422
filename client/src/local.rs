//! [`LocalCloud`]: a cloud that runs on this machine, such as the hubswap mock cloud.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Where a cloud on this machine listens, and the CA its servers' certificates chain to.
///
/// DPS still assigns hubs by host name; [`DeviceClientBuilder::local_cloud`](crate::DeviceClientBuilder::local_cloud) maps those names
/// to the listed addresses. The id scope and the CA are public; keys are not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCloud {
    /// The DPS id scope.
    pub id_scope: String,
    /// The PEM of the CA to trust instead of the public roots.
    pub ca_pem: String,
    /// DPS over MQTT.
    pub dps_mqtt: SocketAddr,
    /// DPS over HTTPS.
    pub dps_https: SocketAddr,
    /// Each hub's host name (as DPS assigns it) and listen address.
    pub hubs: Vec<(String, SocketAddr)>,
}
