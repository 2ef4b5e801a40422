//! Live hub connections: the orders a connection task takes on its control channel (the
//! registry's controls over them, kick, silence, re-judge the token, are in `control.rs`).

use rumqttc::Publish;
use tokio::sync::mpsc;

use crate::fault::{FaultId, Inject};

/// How a connection is closed by the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CloseHow {
    /// FIN with no MQTT packet and no TLS `close_notify` (3.1.1 has no server DISCONNECT).
    #[default]
    Drop,
    /// RST.
    Reset,
    /// TLS `close_notify`, then FIN.
    Graceful,
}

/// Orders for a live connection task.
#[derive(Debug)]
pub(crate) enum ConnControl {
    /// Close the connection (no MQTT packet: 3.1.1 has no server DISCONNECT).
    Kick { reason: String, how: CloseHow },
    /// Stop answering (a blackhole): read and discard until the device gives up.
    Silence,
    /// Re-judge the connection's SAS token (clock, grace or revocation changed).
    Recheck,
    /// Fire a fault-injection fault.
    Inject { inject: Inject, id: FaultId },
    /// Publish this to the device.
    Publish(Publish),
    /// New C2D messages are queued in the session.
    C2dAvailable,
}

/// A device's live hub connection.
#[derive(Debug, Clone)]
pub(crate) struct LiveConn {
    pub hub: String,
    pub conn: u64,
    pub tx: mpsc::UnboundedSender<ConnControl>,
}
