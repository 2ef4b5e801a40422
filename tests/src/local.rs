//! The mock cloud as the client's [`LocalCloud`]: how every in-process client here reaches it.

use hubswap_client::LocalCloud;
use hubswap_mock_cloud::MockCloud;

/// The mock's id scope, CA, DPS listeners and hubs.
pub fn local_cloud(cloud: &MockCloud) -> LocalCloud {
    let hubs = cloud.info().hubs.into_iter().map(|h| (h.host, h.addr));
    LocalCloud {
        id_scope: cloud.id_scope().to_owned(),
        ca_pem: cloud.ca_pem().to_owned(),
        dps_mqtt: cloud.dps_mqtt_addr(),
        dps_https: cloud.dps_https_addr(),
        hubs: hubs.collect(),
    }
}
