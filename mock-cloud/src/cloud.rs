//! [`MockCloud`]: starting every listener, the admin API and the data folder's saver, and
//! graceful shutdown. The cloud owns the hub listeners and hands the fault overlay a narrow
//! handle to them ([`crate::overlay::Listeners`]); its control API is [`CloudHandle`].

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::certs::CertificateAuthority;
use crate::clock::Clock;
use crate::config::CloudConfig;
use crate::dps::Dps;
use crate::events::EventStream;
use crate::handle::{CloudHandle, Inner};
use crate::log::ObservationLog;
use crate::mqtt::listeners::{HubListeners, HubRuntime};
use crate::mqtt::{self, Listener, Role};
use crate::overlay::Overlay;
use crate::registry::Registry;
use crate::shared::Shared;
use crate::{Error, persist, tls};

/// A running mock cloud: one DPS (MQTT and HTTPS) and N IoT hubs, plus the admin API. It
/// derefs to its [`CloudHandle`], the control API; [`MockCloud::shutdown`] stops it all.
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
    handle: CloudHandle,
    shared: Arc<Shared>,
    listeners: Arc<HubListeners>,
    dps_mqtt: Listener,
    dps_https: axum_server::Handle<SocketAddr>,
    events: Option<EventStream>,
    tracker: TaskTracker,
    /// Where state is saved at shutdown, when the cloud has a data folder.
    saved_in: Option<PathBuf>,
    tasks: Vec<JoinHandle<()>>,
}

impl Deref for MockCloud {
    type Target = CloudHandle;

    fn deref(&self) -> &CloudHandle {
        &self.handle
    }
}

impl std::fmt::Debug for MockCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MockCloud").field(&self.handle).finish()
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
        let registry = Arc::new(Registry::new(Arc::clone(&clock), Arc::clone(&log)));
        persist::restore(&registry, &config, saved);
        let shutdown = CancellationToken::new();
        let faults = Arc::new(Overlay::new(Arc::clone(&registry), shutdown.clone()));
        let shared = Arc::new(Shared {
            dps: Dps::new(
                Arc::clone(&registry),
                Arc::clone(&faults),
                id_scope.clone(),
                config.dps.retry_after_secs,
            ),
            registry,
            faults,
            log,
            clock,
            id_scope,
            max_message_size: config.max_message_size,
            timeouts: config.timeouts,
            shutdown,
        });

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
            Arc::clone(&shared),
            dps_mqtt_std,
            Arc::clone(&mqtt_tls),
            Role::Dps,
            tracker.clone(),
        )?;
        let mut hubs = Vec::new();
        for (host, std) in hub_std {
            let l = mqtt::spawn(
                Arc::clone(&shared),
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
        let listeners = Arc::new(HubListeners::new(
            Arc::clone(&shared),
            Arc::clone(&mqtt_tls),
            tracker.clone(),
            hubs,
        ));
        let events = match config.events {
            Some(addr) => Some(crate::events::start(Arc::clone(&shared), addr).await?),
            None => None,
        };
        let router = crate::dps::rest::router(Arc::clone(&shared));
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.serve(router.into_make_service()).await {
                tracing::error!(error = %e, "DPS HTTPS server stopped");
            }
        })];
        let admin_addr = admin_std.as_ref().and_then(|l| l.local_addr().ok());
        let handle = CloudHandle::new(Inner {
            shared: Arc::clone(&shared),
            listeners: Arc::clone(&listeners),
            ca,
            ca_path,
            dps_host: config.dps.host.clone(),
            dps_mqtt_addr: dps_mqtt.addr,
            dps_https_addr,
            hub_addrs,
            admin_addr,
            events_addr: events.as_ref().map(|e| e.addr),
        });
        if let Some(std) = admin_std {
            tasks.push(crate::admin::spawn(handle.clone(), std)?);
        }
        if persisted {
            tasks.push(persist::spawn_saver(handle.clone(), data_dir.clone()));
            persist::write_cloud_json(&handle, &data_dir)?;
        }
        Ok(Self {
            handle,
            shared,
            listeners,
            dps_mqtt,
            dps_https,
            events,
            tracker,
            saved_in: persisted.then_some(data_dir),
            tasks,
        })
    }

    /// Stops every listener, closes every connection, saves state, and waits (up to 5 s).
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        self.dps_https
            .graceful_shutdown(Some(Duration::from_secs(1)));
        self.dps_mqtt.stop().await;
        self.listeners.stop_all().await;
        if let Some(e) = self.events {
            e.stop();
        }
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(dir) = &self.saved_in
            && let Err(e) = persist::save(&self.handle, dir)
        {
            tracing::error!(error = %e, "could not save state");
        }
    }
}
