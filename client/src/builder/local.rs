//! [`LocalCloud`]: a cloud that runs on this machine, such as the hubswap mock cloud.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::DeviceClientBuilder;
use crate::dps::DpsTransport;

/// Where a cloud on this machine listens, and the CA its servers' certificates chain to.
///
/// DPS still assigns hubs by host name; [`DeviceClientBuilder::local_cloud`] maps those names
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

impl DeviceClientBuilder {
    /// Points the client at a local cloud: its id scope, its DPS endpoint for `transport`, its
    /// CA as the only trust root, and its hubs' addresses for the host names DPS assigns. A
    /// host name the cloud does not list is dialled as itself on the hub port.
    #[must_use]
    pub fn local_cloud(self, cloud: &LocalCloud, transport: DpsTransport) -> Self {
        let dps = match transport {
            DpsTransport::Mqtt => cloud.dps_mqtt,
            DpsTransport::Https => cloud.dps_https,
        };
        let hubs: HashMap<String, SocketAddr> = cloud.hubs.iter().cloned().collect();
        let hub_port = self.hub_port;
        self.id_scope(cloud.id_scope.as_str())
            .dps_transport(transport)
            .dps_endpoint(dps.ip().to_string(), dps.port())
            .trust_ca_pem(cloud.ca_pem.as_bytes().to_vec())
            .hub_resolver(move |host| match hubs.get(host) {
                Some(a) => (a.ip().to_string(), a.port()),
                None => (host.to_owned(), hub_port),
            })
    }
}
