//! [`DeviceClientBuilder`]: every option, validated into a typed [`ConfigError`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hubswap_spec as spec;
use rustls::ClientConfig;

use crate::auth::SecretKey;
use crate::dps::{DpsSettings, DpsTransport};
use crate::error::ConfigError;
use crate::local::LocalCloud;
use crate::store::{FileStore, MemoryStore, Store};
use crate::tls::{Identity, client_config, roots};

/// Maps an assigned hub host name to the `(host, port)` to connect to. The TLS server name is
/// the connect host.
pub type HubResolver = Arc<dyn Fn(&str) -> (String, u16) + Send + Sync>;

/// The global DPS endpoint.
pub const GLOBAL_DPS_HOST: &str = "global.azure-devices-provisioning.net";

/// The largest telemetry payload IoT Hub accepts (spec/PROTOCOL.md §7).
pub const MAX_MESSAGE: usize = 256 * 1024;

/// The validated settings the driver runs with.
pub(crate) struct Settings {
    pub identity: String,
    pub registration_id: String,
    pub model_id: Option<String>,
    pub hub_key: Option<SecretKey>,
    pub hub_tls: Arc<ClientConfig>,
    pub dps: Arc<DpsSettings>,
    pub resolver: HubResolver,
    pub store: Arc<dyn Store>,
    pub outbox_capacity: usize,
    pub outbox_window: usize,
    pub journal: Option<PathBuf>,
    pub default_ttl: Option<Duration>,
    pub spec: spec::Config,
    pub keep_alive: Duration,
    pub seed: Option<u64>,
}

enum Credential {
    GroupKey(String),
    DeviceKey(String),
    X509 { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

/// Builds a [`crate::DeviceClient`]. Only the id scope, the registration id (or a certificate
/// whose CN is the registration id) and one credential are required.
pub struct DeviceClientBuilder {
    id_scope: Option<String>,
    registration_id: Option<String>,
    credentials: Vec<Credential>,
    model_id: Option<String>,
    dps_transport: DpsTransport,
    dps_host: String,
    dps_port: Option<u16>,
    ca_pem: Option<Vec<u8>>,
    store: Option<Arc<dyn Store>>,
    outbox_capacity: usize,
    outbox_window: usize,
    journal: Option<PathBuf>,
    default_ttl: Option<Duration>,
    timing: spec::Config,
    keep_alive: Duration,
    resolver: Option<HubResolver>,
    hub_port: u16,
    seed: Option<u64>,
}

impl Default for DeviceClientBuilder {
    fn default() -> Self {
        Self {
            id_scope: None,
            registration_id: None,
            credentials: Vec::new(),
            model_id: None,
            dps_transport: DpsTransport::Mqtt,
            dps_host: GLOBAL_DPS_HOST.to_owned(),
            dps_port: None,
            ca_pem: None,
            store: None,
            outbox_capacity: 1000,
            outbox_window: 16,
            journal: None,
            default_ttl: None,
            timing: spec::Config::default(),
            keep_alive: Duration::from_mins(1),
            resolver: None,
            hub_port: 8883,
            seed: None,
        }
    }
}

impl std::fmt::Debug for DeviceClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClientBuilder")
            .field("id_scope", &self.id_scope)
            .field("registration_id", &self.registration_id)
            .field("dps_transport", &self.dps_transport)
            .finish_non_exhaustive()
    }
}

#[allow(clippy::return_self_not_must_use)]
impl DeviceClientBuilder {
    /// The DPS id scope (IoT Central: Permissions → Device connection groups).
    pub fn id_scope(mut self, v: impl Into<String>) -> Self {
        self.id_scope = Some(v.into());
        self
    }
    /// The registration id (IoT Central: the device id).
    pub fn registration_id(mut self, v: impl Into<String>) -> Self {
        self.registration_id = Some(v.into());
        self
    }
    /// A group enrollment key (base64); the device key is derived from it.
    pub fn group_key(mut self, v: impl Into<String>) -> Self {
        self.credentials.push(Credential::GroupKey(v.into()));
        self
    }
    /// An individual device key (base64).
    pub fn device_key(mut self, v: impl Into<String>) -> Self {
        self.credentials.push(Credential::DeviceKey(v.into()));
        self
    }
    /// An X.509 client certificate chain (leaf first) and its key, as PEM.
    pub fn x509(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.credentials.push(Credential::X509 {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }
    /// The IoT Plug and Play model id, sent in the DPS payload and the hub username.
    pub fn model_id(mut self, v: impl Into<String>) -> Self {
        self.model_id = Some(v.into());
        self
    }
    /// DPS over MQTT (default) or HTTPS.
    pub fn dps_transport(mut self, t: DpsTransport) -> Self {
        self.dps_transport = t;
        self
    }
    /// The DPS host and port (default: the global endpoint on the transport's port).
    pub fn dps_endpoint(mut self, host: impl Into<String>, port: u16) -> Self {
        self.dps_host = host.into();
        self.dps_port = Some(port);
        self
    }
    /// Trust only the CA certificates in this PEM (default: the Mozilla roots).
    pub fn trust_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }
    /// Where the assignment cache lives (default: a [`FileStore`] at
    /// `.hubswap/{registration id}.assignment.json`).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }
    /// Keep the assignment cache in memory only.
    pub fn memory_store(self) -> Self {
        self.store(MemoryStore::new())
    }
    /// How many telemetry messages may wait for delivery (default 1000).
    pub fn outbox_capacity(mut self, n: usize) -> Self {
        self.outbox_capacity = n;
        self
    }
    /// How many telemetry messages may be unacknowledged on the wire (default 16, at most 64).
    pub fn outbox_window(mut self, n: usize) -> Self {
        self.outbox_window = n.clamp(1, 64);
        self
    }
    /// Journal the outbox in this directory so that queued messages survive a restart.
    pub fn outbox_journal(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal = Some(dir.into());
        self
    }
    /// The time-to-live of telemetry that sets none (default: no limit).
    pub fn telemetry_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }
    /// The spec's timing options (thresholds, backoff profiles, token TTL, timeouts). For a
    /// fleet, [`spec::Config::paced_for_fleet`] spreads the DPS registrations that follow a hub
    /// failure over the time the DPS quota needs (SPEC §4.1).
    pub fn timing(mut self, cfg: spec::Config) -> Self {
        self.timing = cfg;
        self
    }
    /// The MQTT keep-alive (default 60 s).
    pub fn keep_alive(mut self, d: Duration) -> Self {
        self.keep_alive = d;
        self
    }
    /// Maps assigned hub host names to connect addresses (for local mock clouds).
    pub fn hub_resolver(
        mut self,
        f: impl Fn(&str) -> (String, u16) + Send + Sync + 'static,
    ) -> Self {
        self.resolver = Some(Arc::new(f));
        self
    }
    /// The hub port when no resolver is set (default 8883).
    pub fn hub_port(mut self, port: u16) -> Self {
        self.hub_port = port;
        self
    }
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
    /// Seeds the backoff jitter (default: seeded from the OS at start).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks every option.
    pub(crate) fn validate(self) -> Result<Settings, ConfigError> {
        let id_scope = self.id_scope.ok_or(ConfigError::MissingIdScope)?;
        if id_scope.is_empty()
            || id_scope.len() > 64
            || !id_scope.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ConfigError::InvalidIdScope(id_scope));
        }
        let mut creds = self.credentials;
        if creds.len() > 1 {
            return Err(ConfigError::ConflictingCredentials);
        }
        let cred = creds.pop().ok_or(ConfigError::MissingCredential)?;
        let identity = match &cred {
            Credential::X509 { cert_pem, key_pem } => Some(Identity::from_pem(cert_pem, key_pem)?),
            _ => None,
        };
        let registration_id = self
            .registration_id
            .or_else(|| identity.as_ref().and_then(Identity::common_name))
            .ok_or(ConfigError::MissingRegistrationId)?;
        check_registration_id(&registration_id)?;
        let key = match cred {
            Credential::GroupKey(k) => {
                Some(SecretKey::new(k)?.derive_device_key(&registration_id)?)
            }
            Credential::DeviceKey(k) => Some(SecretKey::new(k)?),
            Credential::X509 { .. } => None,
        };
        if let Some(m) = &self.model_id
            && !(m.starts_with("dtmi:")
                && m.contains(';')
                && m.len() <= 256
                && !m.contains(char::is_whitespace))
        {
            return Err(ConfigError::InvalidModelId(m.clone()));
        }
        if self.outbox_capacity == 0 {
            return Err(ConfigError::ZeroOutboxCapacity);
        }
        self.timing.validate()?;
        if self.keep_alive < Duration::from_secs(1) || self.keep_alive > Duration::from_secs(1177) {
            return Err(ConfigError::KeepAlive);
        }
        let dps_port = self
            .dps_port
            .unwrap_or_else(|| self.dps_transport.default_port());
        if self.dps_host.is_empty() || dps_port == 0 || self.hub_port == 0 {
            return Err(ConfigError::InvalidEndpoint(format!(
                "{}:{dps_port}",
                self.dps_host
            )));
        }
        let tls = client_config(roots(self.ca_pem.as_deref())?, identity.as_ref())?;
        let store = match self.store {
            Some(s) => s,
            None => Arc::new(FileStore::new(format!(
                ".hubswap/{registration_id}.assignment.json"
            ))),
        };
        let hub_port = self.hub_port;
        let resolver = self
            .resolver
            .unwrap_or_else(|| Arc::new(move |h: &str| (h.to_owned(), hub_port)));
        let dps = Arc::new(DpsSettings {
            id_scope: id_scope.clone(),
            registration_id: registration_id.clone(),
            model_id: self.model_id.clone(),
            key: key.clone(),
            tls: tls.clone(),
            host: self.dps_host,
            port: dps_port,
            transport: self.dps_transport,
            timeout: self.timing.attempt_timeout,
        });
        let hub_key_is_sas = key.is_some();
        Ok(Settings {
            identity: format!("{id_scope}/{registration_id}"),
            registration_id,
            model_id: self.model_id,
            hub_key: key,
            hub_tls: tls,
            dps,
            resolver,
            store,
            outbox_capacity: self.outbox_capacity,
            outbox_window: self.outbox_window,
            journal: self.journal,
            default_ttl: self.default_ttl,
            // The spec is told the credential kind: X.509 has no token to retry or renew.
            spec: spec::Config {
                credential: if hub_key_is_sas {
                    spec::CredentialKind::Sas
                } else {
                    spec::CredentialKind::X509
                },
                ..self.timing
            },
            keep_alive: self.keep_alive,
            seed: self.seed,
        })
    }
}

/// DPS rules: at most 128 of `A-Z a-z 0-9 - . _ :`, the last alphanumeric or `-`.
fn check_registration_id(id: &str) -> Result<(), ConfigError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    let last_ok = id
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
    if id.is_empty() || id.len() > 128 || !id.chars().all(ok_char) || !last_ok {
        return Err(ConfigError::InvalidRegistrationId(id.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
