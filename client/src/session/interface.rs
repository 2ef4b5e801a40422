//! The session's vocabulary: what it is built from, what comes in, what goes out.

use std::time::Duration;

use hubswap_spec::{self as spec, Assignment, ConnectFailure, Millis, WireSignal};

use super::{Entry, Settled, TwinOp, TwinResult};
use crate::status::ConnectionStatus;
use crate::telemetry::Telemetry;

/// What the session is built from.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The validated spec config.
    pub spec: spec::Config,
    /// How many telemetry messages may be unacknowledged at once.
    pub window: usize,
    /// The time-to-live of a message that sets none; `None` waits forever.
    pub default_ttl: Option<Duration>,
    /// The seed of the jitter draws.
    pub seed: u64,
    /// The cached assignment.
    pub cache: Option<Assignment>,
    /// Messages a previous run left in the journal.
    pub restored: Vec<Entry>,
}

/// An input from the outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An application command: start, stop for good, or provision again.
    Command(spec::Command),
    /// A telemetry message the application queued; `handle` names its waiting caller.
    Telemetry {
        /// The caller.
        handle: u64,
        /// The message.
        msg: Telemetry,
    },
    /// A twin request of the application.
    Twin {
        /// The caller.
        handle: u64,
        /// The request.
        op: TwinOp,
    },
    /// The application's answer to a command, on the connection it came in on.
    MethodResponse {
        /// The connection ([`Inbound::Command::generation`]).
        generation: u64,
        /// The request id.
        rid: String,
        /// The status.
        status: u16,
        /// The JSON body.
        payload: Vec<u8>,
    },
    /// Something happened on the hub connection of `generation`.
    Hub {
        /// The connection ([`Output::Connect::generation`]).
        generation: u64,
        /// What happened.
        event: HubEvent,
    },
    /// The DPS request of `attempt` ended.
    Dps {
        /// The attempt ([`Output::Dps::attempt`]).
        attempt: u64,
        /// Its outcome in the spec's vocabulary.
        signal: WireSignal,
    },
}

/// An event on a hub connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// CONNACK with this return code (0 accepted).
    ConnAck(u8),
    /// The connect failed before any CONNACK.
    Failed(ConnectFailure),
    /// The connection dropped after CONNACK 0.
    Lost,
    /// SUBACK; `refused` when the hub refused a filter.
    SubAck {
        /// Whether any filter was refused.
        refused: bool,
    },
    /// The link wrote a publish with this packet id (0 for QoS 0), in the order of
    /// [`Output::Publish`].
    Sent(u16),
    /// PUBACK for this packet id.
    PubAck(u16),
    /// The hub published to the device.
    Publish {
        /// The topic.
        topic: String,
        /// The body.
        payload: Vec<u8>,
    },
}

/// MQTT quality of service of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Fire and forget (twin requests, command responses).
    AtMostOnce,
    /// Acknowledged (telemetry).
    AtLeastOnce,
}

/// Something the cloud sent that the application receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// The full twin, after each connection's resync.
    Twin(crate::api::Twin),
    /// A desired-properties patch.
    Desired {
        /// Its `$version`.
        version: Option<u64>,
        /// The patch.
        patch: serde_json::Value,
    },
    /// A cloud-to-device message.
    C2d {
        /// The body.
        payload: Vec<u8>,
        /// The property bag.
        properties: Vec<(String, String)>,
    },
    /// A command (direct method); answer with [`Event::MethodResponse`].
    Command {
        /// The component.
        component: Option<String>,
        /// The command name.
        name: String,
        /// The request body.
        payload: Vec<u8>,
        /// The connection it came in on.
        generation: u64,
        /// Its request id.
        rid: String,
    },
}

/// Something the session wants done, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Drop any hub connection and connect to `assignment` with a SAS token expiring at
    /// `token_expires_at` (session time; at least a second after the previous one).
    Connect {
        /// The connection's generation; its events carry it.
        generation: u64,
        /// Where.
        assignment: Assignment,
        /// The token's expiry.
        token_expires_at: Millis,
    },
    /// Drop any hub connection and stay idle.
    Close {
        /// The generation that replaces the closed one.
        generation: u64,
    },
    /// Subscribe to these filters (QoS 1).
    Subscribe(Vec<String>),
    /// Publish on the current connection.
    Publish {
        /// The topic.
        topic: String,
        /// The body.
        payload: Vec<u8>,
        /// Its quality of service.
        qos: Qos,
    },
    /// Start a DPS request (abandoning any in flight): register, or poll `operation`.
    Dps {
        /// The attempt; its answer carries it.
        attempt: u64,
        /// The request id (DPS over MQTT).
        rid: String,
        /// The operation to poll; `None` registers.
        operation: Option<String>,
    },
    /// Abandon the DPS request in flight.
    AbortDps,
    /// Persist the assignment.
    SaveAssignment(Assignment),
    /// Forget the persisted assignment.
    ClearAssignment,
    /// A telemetry message left the outbox.
    Settled(Settled),
    /// A twin request is answered.
    TwinAnswered {
        /// The caller.
        handle: u64,
        /// The answer.
        result: TwinResult,
    },
    /// Hand this to the application.
    Deliver(Inbound),
    /// The connection status changed.
    Status(ConnectionStatus),
}
