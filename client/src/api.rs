//! What the application sees besides [`crate::DeviceClient`]'s methods: incoming events,
//! command requests and their responses.

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::error::{ClientError, SendError};
use crate::telemetry::Telemetry;

/// What `send_telemetry` does when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Wait until there is room.
    #[default]
    Wait,
    /// Fail at once with [`SendError::Full`].
    Fail,
}

/// A twin document.
pub type Twin = crate::wire::hub::TwinDoc;

/// Something the cloud sent the device.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// A command (direct method), to be answered with [`CommandRequest::respond`]. Boxed: it is
    /// the largest event, and every client's event channel reserves room for 32 of them.
    Command(Box<CommandRequest>),
    /// A cloud-to-device message.
    C2d(C2dMessage),
    /// A desired-properties patch (writable properties); answer with
    /// [`crate::DeviceClient::ack_writable`].
    Desired {
        /// The desired `$version`.
        version: Option<u64>,
        /// The patch, including `$version`.
        patch: serde_json::Value,
    },
    /// The full twin, after each (re)connect's resync.
    Twin(Twin),
}

/// A cloud-to-device message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2dMessage {
    /// The body.
    pub payload: Vec<u8>,
    /// The decoded property bag (system properties keep their `$.` names).
    pub properties: Vec<(String, String)>,
}

/// A command invocation.
#[derive(Debug)]
pub struct CommandRequest {
    /// The component, for `component*command` names.
    pub component: Option<String>,
    /// The command name.
    pub name: String,
    /// The request payload (JSON, or empty).
    pub payload: Vec<u8>,
    pub(crate) responder: Responder,
}

impl CommandRequest {
    /// Answers the command with a status (200 for success) and a JSON payload. The answer is
    /// dropped if the connection the request came on is gone (the hub has cancelled it).
    pub fn respond(self, status: u16, payload: &serde_json::Value) {
        self.responder
            .send(status, payload.to_string().into_bytes());
    }
}

#[derive(Debug)]
pub(crate) struct Responder {
    pub api: mpsc::WeakUnboundedSender<Request>,
    pub generation: u64,
    pub rid: String,
}

impl Responder {
    fn send(self, status: u16, payload: Vec<u8>) {
        if let Some(tx) = self.api.upgrade() {
            let _ = tx.send(Request::MethodResponse {
                generation: self.generation,
                rid: self.rid,
                status,
                payload,
            });
        }
    }
}

/// A request from the API to the driver.
#[derive(Debug)]
pub(crate) enum Request {
    Telemetry {
        /// Boxed: it is most of the enum's size, and every client's channel reserves 32 slots.
        msg: Box<Telemetry>,
        done: oneshot::Sender<Result<String, SendError>>,
        /// The outbox room this message holds until it settles.
        permit: OwnedSemaphorePermit,
    },
    Report {
        patch: serde_json::Value,
        done: oneshot::Sender<Result<Option<u64>, ClientError>>,
    },
    GetTwin {
        done: oneshot::Sender<Result<Twin, ClientError>>,
    },
    MethodResponse {
        generation: u64,
        rid: String,
        status: u16,
        payload: Vec<u8>,
    },
    Reprovision,
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// A queued telemetry message: await it for the hub's acknowledgement.
#[derive(Debug)]
pub struct Delivery {
    pub(crate) rx: oneshot::Receiver<Result<String, SendError>>,
}

impl Delivery {
    /// Waits until the hub acknowledged the message (returns its `$.mid`) or it failed.
    pub async fn acked(self) -> Result<String, SendError> {
        self.rx.await.unwrap_or(Err(SendError::Shutdown))
    }
}
