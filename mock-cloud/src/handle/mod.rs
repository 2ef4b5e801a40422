//! [`CloudHandle`]: the control API of a running cloud, cheap to clone. [`crate::MockCloud`]
//! derefs to it; the admin API and the data folder's saver hold one. The controls are in
//! `control.rs` (devices, twins, ...) and `faults.rs` (faults).

mod control;
mod faults;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::certs::CertificateAuthority;
use crate::mqtt::listeners::HubListeners;
use crate::overlay::Listeners as _;
use crate::registry::{EnrollmentGroup, GroupAttestation, HubStatus, IndividualEnrollment};
use crate::shared::Shared;

/// Where everything is, as written to `cloud.json` and served at `GET /api/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudInfo {
    /// The DPS id scope.
    pub id_scope: String,
    /// The DPS global endpoint host name.
    pub dps_host: String,
    /// DPS over MQTT.
    pub dps_mqtt: SocketAddr,
    /// DPS over HTTPS.
    pub dps_https: SocketAddr,
    /// The hubs: host name (`assignedHub`) and listen address.
    pub hubs: Vec<HubInfo>,
    /// The admin API's base URL, if it runs.
    pub admin_url: Option<String>,
    /// The service-side event broker (`mqtt://127.0.0.1:PORT`), if it runs.
    #[serde(default)]
    pub events_url: Option<String>,
    /// The CA certificate devices must trust.
    pub ca_path: PathBuf,
    /// The symmetric-key enrollment groups and their primary keys.
    pub groups: Vec<GroupKey>,
}

/// A hub's host and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubInfo {
    /// Host name, as DPS assigns it.
    pub host: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether the listener is accepting.
    pub listening: bool,
    /// Whether DPS allocates devices to it.
    pub allocating: bool,
}

/// A symmetric-key group's id and primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupKey {
    /// The group id.
    pub id: String,
    /// The primary key (base64).
    pub primary_key: String,
}

/// All enrollments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollments {
    /// Enrollment groups.
    pub groups: Vec<EnrollmentGroup>,
    /// Individual enrollments.
    pub individuals: Vec<IndividualEnrollment>,
}

/// What a [`CloudHandle`] is made of.
pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    /// The hub listeners; faults reach them through [`crate::overlay::Listeners`].
    pub listeners: Arc<HubListeners>,
    pub ca: CertificateAuthority,
    pub ca_path: PathBuf,
    pub dps_host: String,
    pub dps_mqtt_addr: SocketAddr,
    pub dps_https_addr: SocketAddr,
    pub hub_addrs: Vec<(String, SocketAddr)>,
    pub admin_addr: Option<SocketAddr>,
    pub events_addr: Option<SocketAddr>,
}

/// The control API of a running mock cloud: addresses, enrollments, devices, twins, methods,
/// C2D, the observation log and faults. Clones share one cloud; it stops when the
/// [`crate::MockCloud`] it came from shuts down.
#[derive(Clone)]
pub struct CloudHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CloudHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudHandle")
            .field("info", &self.info())
            .finish_non_exhaustive()
    }
}

impl CloudHandle {
    pub(crate) fn new(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The CA devices trust (its key too, for the data folder).
    pub(crate) fn ca(&self) -> &CertificateAuthority {
        &self.inner.ca
    }

    /// Cancelled when the cloud shuts down.
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shared.shutdown
    }

    /// Waits for the next change worth persisting.
    pub(crate) async fn changed(&self) {
        self.inner.shared.registry.changed.notified().await;
    }

    /// Where everything is.
    pub fn info(&self) -> CloudInfo {
        let inner = &self.inner;
        let state = inner.shared.registry.lock();
        let faults = inner.shared.faults.lock();
        let groups = state
            .groups
            .values()
            .filter_map(|g| match &g.attestation {
                GroupAttestation::SymmetricKey { primary_key, .. } => Some(GroupKey {
                    id: g.id.clone(),
                    primary_key: primary_key.clone(),
                }),
                GroupAttestation::X509 { .. } => None,
            })
            .collect();
        let allocating = |host: &str| {
            state
                .hubs
                .iter()
                .any(|h: &HubStatus| h.host == host && h.enabled)
        };
        CloudInfo {
            id_scope: inner.shared.id_scope.clone(),
            dps_host: inner.dps_host.clone(),
            dps_mqtt: inner.dps_mqtt_addr,
            dps_https: inner.dps_https_addr,
            hubs: inner
                .hub_addrs
                .iter()
                .map(|(host, addr)| HubInfo {
                    host: host.clone(),
                    addr: *addr,
                    listening: !faults.listener_closed(host),
                    allocating: allocating(host),
                })
                .collect(),
            admin_url: inner.admin_addr.map(|a| format!("http://{a}")),
            events_url: inner.events_addr.map(|a| format!("mqtt://{a}")),
            ca_path: inner.ca_path.clone(),
            groups,
        }
    }

    /// All enrollments.
    pub fn enrollments(&self) -> Enrollments {
        let state = self.inner.shared.registry.lock();
        Enrollments {
            groups: state.groups.values().cloned().collect(),
            individuals: state.individuals.values().cloned().collect(),
        }
    }

    /// The hubs with their listener and allocation status.
    pub async fn hubs(&self) -> Vec<HubInfo> {
        let statuses = self.inner.shared.registry.hubs();
        self.inner
            .listeners
            .status()
            .await
            .into_iter()
            .map(|(host, addr, listening)| HubInfo {
                allocating: statuses.iter().any(|s| s.host == host && s.enabled),
                host,
                addr,
                listening,
            })
            .collect()
    }

    /// Stops a hub's listener (new connections are refused; live ones stay).
    pub async fn stop_hub_listener(&self, host: &str) -> Result<(), Error> {
        self.inner.listeners.stop(host).await?;
        self.inner
            .shared
            .registry
            .control(format!("hub {host} listener stopped"));
        Ok(())
    }

    /// Restarts a stopped hub listener on its previous address.
    pub async fn start_hub_listener(&self, host: &str) -> Result<(), Error> {
        self.inner.listeners.start(host).await?;
        self.inner
            .shared
            .registry
            .control(format!("hub {host} listener started"));
        Ok(())
    }
}
