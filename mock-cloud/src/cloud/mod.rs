//! [`MockCloud`]: starting every listener and graceful shutdown; the control API is in
//! `control.rs` (devices, twins, ...) and `faults.rs` (faults).

mod control;
mod faults;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::certs::CertificateAuthority;
use crate::clock::Clock;
use crate::config::CloudConfig;
use crate::events::EventStream;
use crate::fault::OutageMode;
use crate::log::ObservationLog;
use crate::mqtt::{self, HubListeners, HubRuntime, Listener, Role};
use crate::registry::{Core, EnrollmentGroup, GroupAttestation, HubStatus, IndividualEnrollment};
use crate::{Error, persist, tls};

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
    pub hub_addrs: Vec<(String, SocketAddr)>,
    pub admin_addr: Option<SocketAddr>,
    pub events: std::sync::Mutex<Option<EventStream>>,
    pub events_addr: Option<SocketAddr>,
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
            config.log_capacity,
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
        let hub_addrs: Vec<(String, SocketAddr)> =
            hubs.iter().map(|h| (h.host.clone(), h.addr)).collect();
        let _ = core.listeners.set(HubListeners::new(
            Arc::clone(&mqtt_tls),
            tracker.clone(),
            hubs,
        ));
        let events = match config.events {
            Some(addr) => Some(crate::events::start(Arc::clone(&core), addr).await?),
            None => None,
        };
        let router = crate::dps::rest::router(Arc::clone(&core));
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.serve(router.into_make_service()).await {
                tracing::error!(error = %e, "DPS HTTPS server stopped");
            }
        })];
        let admin_addr = admin_std.as_ref().and_then(|l| l.local_addr().ok());
        let inner = Arc::new(Inner {
            hub_addrs,
            events_addr: events.as_ref().map(|e| e.addr),
            events: std::sync::Mutex::new(events),
            dps_mqtt_addr: dps_mqtt.addr,
            core: Arc::clone(&core),
            ca,
            ca_path,
            data_dir,
            dps_host: config.dps.host.clone(),
            dps_mqtt: AsyncMutex::new(Some(dps_mqtt)),
            dps_https_addr,
            dps_https,
            admin_addr,
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
        if let Some(l) = inner.core.listeners.get() {
            l.stop_all().await;
        }
        let events = inner
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(e) = events {
            e.stop();
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
                    listening: !state.faults.outages.get(host).is_some_and(|o| {
                        matches!(o.mode, OutageMode::Closed | OutageMode::NameGone)
                    }),
                    allocating: allocating(host),
                })
                .collect(),
            admin_url: self.admin_addr.map(|a| format!("http://{a}")),
            events_url: self.events_addr.map(|a| format!("mqtt://{a}")),
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
        let Some(listeners) = self.core.listeners.get() else {
            return Vec::new();
        };
        listeners
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

    pub(crate) async fn stop_hub_listener(&self, host: &str) -> Result<(), Error> {
        if let Some(l) = self.core.listeners.get() {
            l.stop(host).await?;
        }
        self.core.control(format!("hub {host} listener stopped"));
        Ok(())
    }

    pub(crate) async fn start_hub_listener(&self, host: &str) -> Result<(), Error> {
        if let Some(l) = self.core.listeners.get() {
            l.start(&self.core, host).await?;
        }
        self.core.control(format!("hub {host} listener started"));
        Ok(())
    }
}
