//! [`MockCloud`]: starting every listener, the Rust control API, and graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::certs::CertificateAuthority;
use crate::clock::Clock;
use crate::config::CloudConfig;
use crate::log::ObservationLog;
use crate::mqtt::{self, Listener, Role};
use crate::registry::{
    Core, DeviceInfo, EnrollmentGroup, GroupAttestation, HubStatus, IndividualEnrollment,
    MethodResponse, Twin,
};
use crate::{Error, persist, tls};

/// One hub's listener and address.
#[derive(Debug)]
pub(crate) struct HubRuntime {
    pub host: String,
    pub addr: SocketAddr,
    pub listener: Option<Listener>,
}

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

/// The shared inside of a [`MockCloud`] (also what the admin API holds).
pub(crate) struct Inner {
    pub core: Arc<Core>,
    pub ca: CertificateAuthority,
    pub ca_path: PathBuf,
    pub data_dir: PathBuf,
    pub dps_host: String,
    pub dps_mqtt: AsyncMutex<Option<Listener>>,
    pub dps_mqtt_addr: SocketAddr,
    pub dps_https_addr: SocketAddr,
    pub dps_https: axum_server::Handle<SocketAddr>,
    pub hubs: AsyncMutex<Vec<HubRuntime>>,
    pub hub_addrs: Vec<(String, SocketAddr)>,
    pub admin_addr: Option<SocketAddr>,
    pub mqtt_tls: Arc<rustls::ServerConfig>,
    pub tracker: TaskTracker,
    pub persisted: bool,
}

/// A running mock cloud: one DPS (MQTT and HTTPS) and N IoT hubs, plus the admin API.
///
/// ```no_run
/// # async fn demo() -> Result<(), hubswap_mock_cloud::Error> {
/// use hubswap_mock_cloud::{CloudConfig, MockCloud};
/// let cloud = MockCloud::start(CloudConfig::for_tests(2)).await?;
/// let key = cloud.device_key("default", "dev-1").expect("the default group exists");
/// // ... provision dev-1 at cloud.dps_mqtt_addr() with `key`, connect to the assigned hub ...
/// cloud.shutdown().await;
/// # Ok(()) }
/// ```
pub struct MockCloud {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for MockCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockCloud")
            .field("info", &self.info())
            .finish_non_exhaustive()
    }
}

impl MockCloud {
    /// Generates (or loads) certificates, binds every listener and starts serving.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] names the flag to change when a port is taken or privileged;
    /// [`Error::File`] when the data folder is unusable; [`Error::Config`] for a bad config.
    #[allow(
        clippy::too_many_lines,
        reason = "one linear start-up sequence reads best in one place"
    )]
    #[allow(
        clippy::unused_async,
        reason = "async in the public API so start-up may await later without a breaking change"
    )]
    pub async fn start(config: CloudConfig) -> Result<Self, Error> {
        config.validate()?;
        tls::ensure_crypto_provider();
        let (data_dir, persisted) = match &config.data_dir {
            Some(d) => (d.clone(), true),
            None => (
                std::env::temp_dir().join(format!(
                    "hubswap-mock-cloud-{}-{}",
                    std::process::id(),
                    crate::certs::random_hex::<4>()
                )),
                false,
            ),
        };
        std::fs::create_dir_all(&data_dir).map_err(|source| Error::File {
            path: data_dir.clone(),
            source,
        })?;
        let saved = if persisted {
            persist::load(&data_dir)?
        } else {
            None
        };
        let ca = match &saved {
            Some(s) => CertificateAuthority::from_pem(&s.ca_cert_pem, &s.ca_key_pem)?,
            None => CertificateAuthority::generate("hubswap mock cloud CA")?,
        };
        let ca_path = data_dir.join("ca.pem");
        persist::write_file(&ca_path, ca.cert_pem().as_bytes())?;
        let server = ca.issue_server(&config.certificate_names())?;
        let mqtt_tls = tls::server_config(&server, &[])?;
        let https_tls = tls::server_config(&server, &[b"http/1.1"])?;

        let clock = Arc::new(Clock::new());
        let log_path = config
            .log_file
            .clone()
            .or_else(|| persisted.then(|| data_dir.join("observations.jsonl")));
        let log = Arc::new(ObservationLog::new(
            Arc::clone(&clock),
            log_path.as_deref(),
        )?);
        let id_scope = saved
            .as_ref()
            .map_or_else(|| config.id_scope.clone(), |s| s.id_scope.clone());
        let core = Arc::new(Core::new(
            id_scope,
            config.dps.retry_after_secs,
            config.max_message_size,
            config.timeouts,
            clock,
            log,
        ));
        persist::restore(&core, &config, saved);

        // Bind everything before serving anything, so a port clash fails cleanly.
        let dps_mqtt_std = mqtt::bind(
            config.dps.mqtt,
            "DPS MQTT",
            "--base-ip/--mqtt-port (CloudConfig::dps.mqtt)",
        )?;
        let dps_https_std = mqtt::bind(
            config.dps.https,
            "DPS HTTPS",
            "--dps-https-port (CloudConfig::dps.https)",
        )?;
        let mut hub_std = Vec::new();
        for hub in &config.hubs {
            let what = format!("hub {}", hub.host);
            hub_std.push((
                hub.host.clone(),
                mqtt::bind(
                    hub.listen,
                    &what,
                    "--base-ip/--mqtt-port (CloudConfig::hubs[].listen)",
                )?,
            ));
        }
        let admin_std = match config.admin {
            Some(a) => Some(mqtt::bind(a, "admin API", "--admin (CloudConfig::admin)")?),
            None => None,
        };

        let tracker = TaskTracker::new();
        let dps_mqtt = mqtt::spawn(
            Arc::clone(&core),
            dps_mqtt_std,
            Arc::clone(&mqtt_tls),
            Role::Dps,
            tracker.clone(),
        )?;
        let mut hubs = Vec::new();
        for (host, std) in hub_std {
            let l = mqtt::spawn(
                Arc::clone(&core),
                std,
                Arc::clone(&mqtt_tls),
                Role::Hub(host.clone()),
                tracker.clone(),
            )?;
            hubs.push(HubRuntime {
                host,
                addr: l.addr,
                listener: Some(l),
            });
        }
        let dps_https_addr = dps_https_std
            .local_addr()
            .map_err(|e| Error::Config(e.to_string()))?;
        let dps_https = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(
            dps_https_std,
            axum_server::tls_rustls::RustlsConfig::from_config(https_tls),
        )
        .map_err(|e| Error::Config(format!("DPS HTTPS: {e}")))?
        .handle(dps_https.clone());
        let router = crate::dps::rest::router(Arc::clone(&core));
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.serve(router.into_make_service()).await {
                tracing::error!(error = %e, "DPS HTTPS server stopped");
            }
        })];
        let admin_addr = admin_std.as_ref().and_then(|l| l.local_addr().ok());
        let inner = Arc::new(Inner {
            hub_addrs: hubs.iter().map(|h| (h.host.clone(), h.addr)).collect(),
            dps_mqtt_addr: dps_mqtt.addr,
            core: Arc::clone(&core),
            ca,
            ca_path,
            data_dir,
            dps_host: config.dps.host.clone(),
            dps_mqtt: AsyncMutex::new(Some(dps_mqtt)),
            dps_https_addr,
            dps_https,
            hubs: AsyncMutex::new(hubs),
            admin_addr,
            mqtt_tls,
            tracker,
            persisted,
        });
        if let Some(std) = admin_std {
            tasks.push(crate::admin::spawn(Arc::clone(&inner), std)?);
        }
        if persisted {
            tasks.push(persist::spawn_saver(Arc::clone(&inner)));
            persist::write_cloud_json(&inner)?;
        }
        Ok(Self { inner, tasks })
    }

    /// Where everything is.
    pub fn info(&self) -> CloudInfo {
        self.inner.info()
    }

    /// The id scope.
    pub fn id_scope(&self) -> &str {
        &self.inner.core.id_scope
    }

    /// DPS over MQTT.
    pub fn dps_mqtt_addr(&self) -> SocketAddr {
        self.inner.dps_mqtt_addr
    }

    /// DPS over HTTPS.
    pub fn dps_https_addr(&self) -> SocketAddr {
        self.inner.dps_https_addr
    }

    /// The hubs' host names (what DPS assigns), in allocation order.
    pub fn hub_hosts(&self) -> Vec<String> {
        self.inner
            .hub_addrs
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// The address a hub host name listens on (the test layout's resolver).
    pub fn hub_addr(&self, host: &str) -> Option<SocketAddr> {
        self.inner
            .hub_addrs
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, a)| *a)
    }

    /// The admin API address, if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.inner.admin_addr
    }

    /// The CA certificate (PEM) devices must trust.
    pub fn ca_pem(&self) -> &str {
        self.inner.ca.cert_pem()
    }

    /// The path of `ca.pem`.
    pub fn ca_path(&self) -> &Path {
        &self.inner.ca_path
    }

    /// The observation log.
    pub fn log(&self) -> &ObservationLog {
        &self.inner.core.log
    }

    /// The log converted to the spec's trace vocabulary.
    pub fn observations(&self) -> Vec<hubswap_spec::Observation> {
        self.inner.core.log.observations()
    }

    /// Adds a symmetric-key enrollment group (a key is generated when `primary_key` is `None`).
    pub fn add_symmetric_group(&self, id: &str, primary_key: Option<&str>) -> EnrollmentGroup {
        self.inner
            .core
            .add_symmetric_group(id, primary_key.map(str::to_owned), None)
    }

    /// Adds an X.509 enrollment group with a freshly generated CA, returned for issuing device
    /// certificates (`ca.issue_device(registration_id)`).
    pub fn add_x509_group(&self, id: &str) -> Result<CertificateAuthority, Error> {
        let ca = CertificateAuthority::generate(&format!("{id} group CA"))?;
        self.inner.core.add_x509_group(id, ca.cert_pem())?;
        Ok(ca)
    }

    /// Adds an X.509 enrollment group trusting an existing CA certificate.
    pub fn add_x509_group_with_ca(&self, id: &str, ca_pem: &str) -> Result<EnrollmentGroup, Error> {
        self.inner.core.add_x509_group(id, ca_pem)
    }

    /// Adds an individual symmetric-key enrollment.
    pub fn add_individual(
        &self,
        registration_id: &str,
        primary_key: Option<&str>,
    ) -> IndividualEnrollment {
        self.inner
            .core
            .add_individual(registration_id, primary_key.map(str::to_owned))
    }

    /// All enrollments.
    pub fn enrollments(&self) -> Enrollments {
        self.inner.enrollments()
    }

    /// The primary key of a symmetric-key group.
    pub fn group_key(&self, group: &str) -> Option<String> {
        match self
            .inner
            .core
            .lock()
            .groups
            .get(group)
            .map(|g| g.attestation.clone())
        {
            Some(GroupAttestation::SymmetricKey { primary_key, .. }) => Some(primary_key),
            _ => None,
        }
    }

    /// The device key a group member derives from the group's primary key (§1.4).
    pub fn device_key(&self, group: &str, registration_id: &str) -> Option<String> {
        crate::sas::derive_device_key(&self.group_key(group)?, registration_id)
    }

    /// Every device with its connection status.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.inner.core.devices()
    }

    /// One device.
    pub fn device(&self, id: &str) -> Result<DeviceInfo, Error> {
        self.inner.core.device(id)
    }

    /// Registers a device directly on a hub, bypassing DPS.
    pub fn create_device(
        &self,
        id: &str,
        hub: &str,
        primary_key: Option<&str>,
    ) -> Result<crate::registry::Device, Error> {
        self.inner
            .core
            .create_device(id, hub, primary_key.map(str::to_owned))
    }

    /// Enables or disables a device's identity on a hub (default: its assigned hub).
    pub fn set_device_enabled(
        &self,
        id: &str,
        hub: Option<&str>,
        enabled: bool,
    ) -> Result<(), Error> {
        self.inner.core.set_device_enabled(id, hub, enabled)
    }

    /// Blocks or unblocks a device.
    pub fn set_device_blocked(&self, id: &str, blocked: bool) -> Result<(), Error> {
        self.inner.core.set_blocked(id, blocked)
    }

    /// Drops a device's live connection without an MQTT packet; `false` when it had none.
    pub fn kick(&self, id: &str) -> bool {
        self.inner.core.kick_on(id, None, "kicked by operator")
    }

    /// The hubs with their listener and allocation status.
    pub async fn hubs(&self) -> Vec<HubInfo> {
        self.inner.hubs().await
    }

    /// Includes or excludes a hub from DPS allocation.
    pub fn set_hub_allocation(&self, host: &str, enabled: bool) -> Result<(), Error> {
        self.inner.core.set_hub_enabled(host, enabled)
    }

    /// Stops a hub's listener (new connections are refused; live ones stay).
    pub async fn stop_hub_listener(&self, host: &str) -> Result<(), Error> {
        self.inner.stop_hub_listener(host).await
    }

    /// Restarts a stopped hub listener on its previous address.
    pub async fn start_hub_listener(&self, host: &str) -> Result<(), Error> {
        self.inner.start_hub_listener(host).await
    }

    /// A device's twin.
    pub fn twin(&self, id: &str) -> Result<Twin, Error> {
        self.inner.core.twin(id)
    }

    /// Merges a desired-properties patch and pushes it to the device if connected; returns the
    /// new desired `$version`.
    pub fn update_desired(&self, id: &str, patch: &Value) -> Result<u64, Error> {
        self.inner.core.update_desired(id, patch)
    }

    /// Invokes a direct method (`component*command` for IoT Central component commands).
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotOnline`] without a live connection subscribed to methods;
    /// [`Error::MethodTimeout`] when no answer arrives within `timeout`.
    pub async fn invoke_method(
        &self,
        id: &str,
        name: &str,
        payload: &Value,
        timeout: Duration,
    ) -> Result<MethodResponse, Error> {
        self.inner
            .core
            .invoke_method(id, name, payload, timeout)
            .await
    }

    /// Queues a cloud-to-device message with application properties; returns its `$.mid`.
    pub fn send_c2d(
        &self,
        id: &str,
        payload: impl Into<Bytes>,
        properties: &[(String, Option<String>)],
    ) -> Result<String, Error> {
        self.inner.core.send_c2d(id, payload.into(), properties)
    }

    /// Shifts the cloud's Unix clock (SAS expiry is judged on it).
    pub fn set_clock_offset(&self, secs: i64) {
        self.inner.core.clock.set_offset(secs);
    }

    /// Stops every listener, closes every connection, saves state, and waits (up to 5 s).
    pub async fn shutdown(self) {
        let inner = self.inner;
        inner.core.shutdown.cancel();
        inner
            .dps_https
            .graceful_shutdown(Some(Duration::from_secs(1)));
        if let Some(l) = inner.dps_mqtt.lock().await.take() {
            l.stop().await;
        }
        for hub in inner.hubs.lock().await.iter_mut() {
            if let Some(l) = hub.listener.take() {
                l.stop().await;
            }
        }
        inner.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), inner.tracker.wait()).await;
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if inner.persisted
            && let Err(e) = persist::save(&inner)
        {
            tracing::error!(error = %e, "could not save state");
        }
    }
}

impl Inner {
    pub(crate) fn info(&self) -> CloudInfo {
        let state = self.core.lock();
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
            id_scope: self.core.id_scope.clone(),
            dps_host: self.dps_host.clone(),
            dps_mqtt: self.dps_mqtt_addr,
            dps_https: self.dps_https_addr,
            hubs: self
                .hub_addrs
                .iter()
                .map(|(host, addr)| HubInfo {
                    host: host.clone(),
                    addr: *addr,
                    listening: true,
                    allocating: allocating(host),
                })
                .collect(),
            admin_url: self.admin_addr.map(|a| format!("http://{a}")),
            ca_path: self.ca_path.clone(),
            groups,
        }
    }

    pub(crate) fn enrollments(&self) -> Enrollments {
        let state = self.core.lock();
        Enrollments {
            groups: state.groups.values().cloned().collect(),
            individuals: state.individuals.values().cloned().collect(),
        }
    }

    pub(crate) async fn hubs(&self) -> Vec<HubInfo> {
        let statuses = self.core.hubs();
        self.hubs
            .lock()
            .await
            .iter()
            .map(|h| HubInfo {
                host: h.host.clone(),
                addr: h.addr,
                listening: h.listener.is_some(),
                allocating: statuses.iter().any(|s| s.host == h.host && s.enabled),
            })
            .collect()
    }

    pub(crate) async fn stop_hub_listener(&self, host: &str) -> Result<(), Error> {
        let mut hubs = self.hubs.lock().await;
        let hub = hubs
            .iter_mut()
            .find(|h| h.host == host)
            .ok_or_else(|| Error::HubNotFound(host.to_owned()))?;
        if let Some(l) = hub.listener.take() {
            l.stop().await;
        }
        self.core.control(format!("hub {host} listener stopped"));
        Ok(())
    }

    pub(crate) async fn start_hub_listener(&self, host: &str) -> Result<(), Error> {
        let mut hubs = self.hubs.lock().await;
        let hub = hubs
            .iter_mut()
            .find(|h| h.host == host)
            .ok_or_else(|| Error::HubNotFound(host.to_owned()))?;
        if hub.listener.is_none() {
            let std = mqtt::bind(
                hub.addr,
                &format!("hub {host}"),
                "the hub's previous address",
            )?;
            let role = Role::Hub(host.to_owned());
            hub.listener = Some(mqtt::spawn(
                Arc::clone(&self.core),
                std,
                Arc::clone(&self.mqtt_tls),
                role,
                self.tracker.clone(),
            )?);
        }
        self.core.control(format!("hub {host} listener started"));
        Ok(())
    }
}
