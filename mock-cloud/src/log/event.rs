//! The log's vocabulary: [`Event`] and the types it uses, and [`LogRecord`], one log line.

use std::collections::BTreeMap;

use hubswap_spec::Millis;
use hubswap_spec::trace::{Credential, Side};
use serde::{Deserialize, Serialize};

use crate::fault::{Fault, FaultId};

/// Which listener an event happened on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// DPS over MQTT.
    DpsMqtt,
    /// DPS over HTTPS.
    DpsHttps,
    /// An IoT hub, by host name (the `assignedHub` DPS hands out).
    Hub(String),
}

/// How a DPS request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `$dps/registrations/...` over MQTT.
    Mqtt,
    /// REST over HTTPS.
    Https,
}

/// What a DPS request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpsRequestKind {
    /// Register (starts an operation).
    Register,
    /// Operation-status poll.
    Poll,
    /// Registration-status lookup (`POST /{scope}/registrations/{id}`).
    Lookup,
}

/// How a device authenticated at CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A SAS token in the password.
    Sas,
    /// A TLS client certificate.
    X509,
    /// Neither.
    None,
}

/// One event, tagged by `type` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A TCP connection was accepted.
    TcpAccepted {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number, unique per cloud.
        conn: u64,
        /// The peer address.
        peer: String,
    },
    /// The TLS handshake failed or timed out.
    TlsFailed {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// Why.
        reason: String,
    },
    /// An MQTT CONNECT arrived (the password is never recorded).
    Connect {
        /// Listener (for a DPS username on a hub listener, `dps_mqtt`).
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// The client id.
        client_id: String,
        /// The username.
        username: String,
        /// `clean_session`.
        clean_session: bool,
        /// Keep-alive in seconds.
        keep_alive: u16,
        /// How the device authenticated.
        auth: AuthMethod,
        /// The SAS token's fingerprint and remaining validity.
        credential: Option<Credential>,
    },
    /// The CONNECT was answered.
    ConnAck {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// The return code.
        code: u8,
        /// `session_present`.
        session_present: bool,
        /// The auth outcome in words.
        outcome: String,
    },
    /// A connection was closed.
    Disconnected {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// Who closed it.
        by: Side,
        /// Whether it had been accepted with CONNACK 0.
        established: bool,
        /// Why.
        reason: String,
    },
    /// The device broke a rule (malformed packet, foreign topic, QoS 2, oversize, ...).
    Violation {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// What happened.
        reason: String,
        /// What the cloud did about it.
        action: String,
    },
    /// A DPS request.
    DpsRequest {
        /// How it came.
        transport: Transport,
        /// What it asked.
        request: DpsRequestKind,
        /// The registration id in the path or topic.
        registration_id: String,
        /// The operation id, for polls.
        operation_id: Option<String>,
    },
    /// A DPS answer.
    DpsResponse {
        /// How it went.
        transport: Transport,
        /// HTTP-like status.
        status: u16,
        /// The operation status (`assigning`, `assigned`, `failed`, ...), for 2xx.
        operation_status: Option<String>,
        /// `assignedHub`, when assigned.
        assigned_hub: Option<String>,
        /// `errorCode`, for errors and failed operations.
        error_code: Option<u32>,
        /// `retry-after` in seconds.
        retry_after: Option<u32>,
    },
    /// SUBSCRIBE, with the granted QoS per filter (128 = refused).
    Subscribed {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// `(filter, granted)`.
        filters: Vec<(String, u8)>,
    },
    /// Device-to-cloud telemetry.
    Telemetry {
        /// Hub.
        hub: String,
        /// The decoded property bag (`$.ct`, custom properties, ...).
        properties: BTreeMap<String, String>,
        /// The payload as text (lossy for binary payloads).
        payload: String,
        /// The payload size in bytes.
        size: usize,
    },
    /// Twin GET.
    TwinGet {
        /// Hub.
        hub: String,
        /// `$rid`.
        rid: String,
        /// Answer status.
        status: u16,
    },
    /// Twin reported-properties PATCH.
    TwinReported {
        /// Hub.
        hub: String,
        /// `$rid`.
        rid: String,
        /// Answer status (204, or 400 for a bad body).
        status: u16,
        /// The new reported `$version`.
        version: Option<u64>,
        /// The patch.
        patch: serde_json::Value,
    },
    /// A desired-properties update (from the control API).
    TwinDesired {
        /// The new desired `$version`.
        version: u64,
        /// Whether it was pushed to a live subscribed connection.
        delivered: bool,
    },
    /// An IoT Central writable-property acknowledgement inside a reported patch.
    WritableAck {
        /// The component, when the property is inside one.
        component: Option<String>,
        /// The property name.
        property: String,
        /// `ac`.
        ac: i64,
        /// `av`.
        av: Option<u64>,
        /// `ad`.
        ad: Option<String>,
    },
    /// A direct method (or IoT Central command) sent to the device.
    MethodRequest {
        /// Hub.
        hub: String,
        /// The method name (`component*command` for components).
        name: String,
        /// `$rid`.
        rid: String,
    },
    /// The device's answer to a direct method.
    MethodResponse {
        /// Hub.
        hub: String,
        /// `$rid`.
        rid: String,
        /// The status the device returned.
        status: i32,
    },
    /// A direct method got no answer in time.
    MethodTimedOut {
        /// The method name.
        name: String,
        /// `$rid`.
        rid: String,
    },
    /// A cloud-to-device message was queued.
    C2dQueued {
        /// `$.mid`.
        message_id: String,
    },
    /// A cloud-to-device message was published to the device.
    C2dDelivered {
        /// `$.mid`.
        message_id: String,
        /// Hub.
        hub: String,
    },
    /// The device acknowledged a cloud-to-device message (PUBACK).
    C2dAcked {
        /// `$.mid`.
        message_id: String,
    },
    /// A hub refused a connection below MQTT: reset at TCP accept, reset after CONNECT, or
    /// blackholed (accepted, never answered). The device is known only when the refusal came
    /// after CONNECT; [`crate::log::to_observations_attributing`] attributes the others.
    HubRefused {
        /// Hub.
        hub: String,
        /// Connection number.
        conn: u64,
        /// The peer address.
        peer: String,
        /// `reset`, `blackhole`, `reset-after-connect`, `blackhole-after-connect`.
        how: String,
    },
    /// DPS left a request unanswered (a network blackhole for the device).
    DpsDropped {
        /// How it came.
        transport: Transport,
        /// What it asked.
        request: DpsRequestKind,
        /// Why.
        reason: String,
    },
    /// A fault was applied, cleared, expired or used up; `fault` carries its parameters.
    Fault {
        /// What happened to it.
        phase: FaultPhase,
        /// Its id (clear it with this).
        id: FaultId,
        /// The fault with every parameter.
        fault: Fault,
        /// What it did, in words (devices moved, connections dropped, ...).
        detail: String,
    },
    /// An operator action through the control API (enable, disable, ...).
    Control {
        /// What was done.
        action: String,
    },
}

/// What happened to a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPhase {
    /// It took effect.
    Applied,
    /// An operator (or a scenario step) cleared it.
    Cleared,
    /// Its duration (`for`, `ttl`) ended.
    Expired,
    /// Its count was used up.
    Exhausted,
    /// It acted once (a counted fault hit a request, a fault-injection message fired).
    Triggered,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Sequence number, from 0.
    pub seq: u64,
    /// Milliseconds since the cloud started (monotonic).
    pub at: Millis,
    /// The device (registration id), where known.
    pub device: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}
