//! The registry: enrollments, devices and their per-hub identities, hubs, DPS operations,
//! persistent MQTT sessions and live connections, in [`Registry`], behind one mutex that is
//! never held across an await.
//!
//! It knows nothing of faults: the fault overlay (`crate::overlay`) sits beside it and uses its
//! controls, which are also the operator's: a device's identity on a hub can be disabled, a
//! device can be blocked, a hub can be taken out of allocation, and every live connection can
//! be kicked, silenced or asked to re-judge its token through its control channel (`live`).

mod control;
mod live;
mod twin;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

pub(crate) use live::{CloseHow, ConnControl, LiveConn};
pub use twin::Twin;
pub(crate) use twin::writable_acks;

use crate::Error;
use crate::clock::Clock;
use crate::log::ObservationLog;

/// How an enrollment group attests its devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GroupAttestation {
    /// Symmetric keys; each device key is derived from a group key (spec/PROTOCOL.md §1.4).
    SymmetricKey {
        /// Primary group key (base64).
        primary_key: String,
        /// Secondary group key (base64).
        secondary_key: String,
    },
    /// X.509: devices present a chain to this CA; the registration id is the leaf CN.
    X509 {
        /// The group's CA certificate (PEM).
        ca_pem: String,
    },
}

/// An enrollment group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentGroup {
    /// The group id.
    pub id: String,
    /// How its devices attest.
    pub attestation: GroupAttestation,
    /// A disabled group does not provision (DPS answers `disabled`).
    pub enabled: bool,
}

/// An individual symmetric-key enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndividualEnrollment {
    /// The registration id.
    pub registration_id: String,
    /// Primary key (base64).
    pub primary_key: String,
    /// Secondary key (base64).
    pub secondary_key: String,
    /// A disabled enrollment does not provision.
    pub enabled: bool,
}

/// How a device proves its identity to a hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceAuth {
    /// Keys derived from this symmetric-key group's keys.
    Group {
        /// The group id.
        group: String,
    },
    /// Keys of the individual enrollment with the device's id.
    Individual,
    /// A certificate chain to this X.509 group's CA with CN == device id.
    X509Group {
        /// The group id.
        group: String,
    },
    /// Keys set directly (a device created without DPS).
    Keys {
        /// Primary key (base64).
        primary_key: String,
        /// Secondary key (base64).
        secondary_key: String,
    },
}

/// A device's identity on one hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubIdentity {
    /// Disabled identities are refused with CONNACK 3 (spec/PROTOCOL.md §5.2).
    pub enabled: bool,
}

/// A device known to the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// The device id (= registration id, as in IoT Central).
    pub id: String,
    /// The hub DPS currently assigns.
    pub hub: String,
    /// The device's identity on each hub it was ever registered on.
    pub identities: BTreeMap<String, HubIdentity>,
    /// How it authenticates.
    pub auth: DeviceAuth,
    /// Blocked by an operator (refused with CONNACK 5; DPS answers `failed` 400209).
    pub blocked: bool,
    /// The model id from the DPS payload or the MQTT username.
    pub model_id: Option<String>,
    /// When DPS first registered it.
    pub created: String,
    /// When its registration last changed.
    pub last_updated: String,
    /// DPS `substatus`: `initialAssignment`, `deviceDataMigrated` after a failover,
    /// `reprovisionedToInitialAssignment` after a failback.
    #[serde(default = "initial_assignment")]
    pub substatus: String,
    /// The twin.
    pub twin: Twin,
}

fn initial_assignment() -> String {
    "initialAssignment".into()
}

/// A device's answer to a direct method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodResponse {
    /// The status the device chose.
    pub status: i32,
    /// The payload (`null` when empty or not JSON text).
    pub payload: Value,
}

/// A device with its connection status, as listed by the control APIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The registry entry.
    #[serde(flatten)]
    pub device: Device,
    /// The hub it is connected to right now, if any.
    pub connected_to: Option<String>,
}

/// A hub as the registry sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubStatus {
    /// Host name (`assignedHub`).
    pub host: String,
    /// Whether DPS allocates devices to it.
    pub enabled: bool,
}

/// A DPS operation.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub registration_id: String,
    pub registration_state: Value,
    pub status: String,
}

/// A queued cloud-to-device message; the hub session renders its topic when it delivers it.
#[derive(Debug, Clone)]
pub(crate) struct C2dMessage {
    pub id: String,
    /// The property bag: `$.mid`, `$.to`, then the caller's properties.
    pub properties: Vec<(String, Option<String>)>,
    pub payload: Bytes,
}

/// The part of an MQTT session that survives a reconnect with `clean_session = 0`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    pub subscriptions: BTreeSet<String>,
    pub c2d: VecDeque<C2dMessage>,
}

/// A direct method waiting for the device's answer.
#[derive(Debug)]
pub(crate) struct PendingMethod {
    pub device: String,
    pub name: String,
    pub reply: oneshot::Sender<MethodResponse>,
}

/// The mutable state behind [`Registry::lock`].
#[derive(Debug, Default)]
pub(crate) struct State {
    pub groups: BTreeMap<String, EnrollmentGroup>,
    pub individuals: BTreeMap<String, IndividualEnrollment>,
    pub devices: BTreeMap<String, Device>,
    pub hubs: Vec<HubStatus>,
    pub operations: HashMap<String, Operation>,
    pub sessions: HashMap<(String, String), Session>,
    pub live: HashMap<String, LiveConn>,
    pub methods: HashMap<String, PendingMethod>,
}

impl State {
    /// The base64 keys a device may sign SAS tokens with.
    pub(crate) fn device_keys(&self, device: &Device) -> Vec<String> {
        match &device.auth {
            DeviceAuth::Group { group } => match self.groups.get(group).map(|g| &g.attestation) {
                Some(GroupAttestation::SymmetricKey {
                    primary_key,
                    secondary_key,
                }) => [primary_key, secondary_key]
                    .into_iter()
                    .filter_map(|k| crate::sas::derive_device_key(k, &device.id))
                    .collect(),
                _ => Vec::new(),
            },
            DeviceAuth::Individual => self
                .individuals
                .get(&device.id)
                .map(|e| vec![e.primary_key.clone(), e.secondary_key.clone()])
                .unwrap_or_default(),
            DeviceAuth::Keys {
                primary_key,
                secondary_key,
            } => vec![primary_key.clone(), secondary_key.clone()],
            DeviceAuth::X509Group { .. } => Vec::new(),
        }
    }

    /// `Ok` when `hub` is one of the cloud's hubs.
    pub(crate) fn hub_exists(&self, hub: &str) -> Result<(), Error> {
        if self.hubs.iter().any(|h| h.host == hub) {
            Ok(())
        } else {
            Err(Error::HubNotFound(hub.to_owned()))
        }
    }

    /// The CA PEM an X.509 device's chain must lead to.
    pub(crate) fn device_ca(&self, device: &Device) -> Option<&str> {
        let DeviceAuth::X509Group { group } = &device.auth else {
            return None;
        };
        match &self.groups.get(group)?.attestation {
            GroupAttestation::X509 { ca_pem } => Some(ca_pem),
            GroupAttestation::SymmetricKey { .. } => None,
        }
    }
}

/// The registry: its state, the log its controls write to, and the clock they stamp with.
#[derive(Debug)]
pub(crate) struct Registry {
    pub clock: Arc<Clock>,
    pub log: Arc<ObservationLog>,
    state: Mutex<State>,
    /// Signalled after every change worth persisting.
    pub changed: Notify,
    next_id: AtomicU64,
}

impl Registry {
    pub(crate) fn new(clock: Arc<Clock>, log: Arc<ObservationLog>) -> Self {
        Self {
            clock,
            log,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Locks the state; a panic elsewhere never poisons the cloud for other devices. When the
    /// fault overlay's state is needed too, it is locked after this one, never before.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh number for connections, request ids and message ids.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks the state as changed (for persistence).
    pub(crate) fn touch(&self) {
        self.changed.notify_one();
    }
}
