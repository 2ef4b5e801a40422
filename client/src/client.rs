//! [`DeviceClient`]: the handle a product uses.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::api::{Delivery, DeviceEvent, Request, Twin, WhenFull};
use crate::builder::DeviceClientBuilder;
use crate::driver::Driver;
use crate::error::{ClientError, ConfigError, SendError};
use crate::journal::Journal;
use crate::status::{ConnectionStatus, StatusKind};
use crate::telemetry::Telemetry;

/// A connected (or connecting) device. Cheap to clone; all clones drive the same connection.
#[derive(Debug, Clone)]
pub struct DeviceClient {
    api: mpsc::UnboundedSender<Request>,
    status: watch::Receiver<ConnectionStatus>,
    room: Arc<Semaphore>,
}

impl DeviceClient {
    /// Starts building a client.
    pub fn builder() -> DeviceClientBuilder {
        DeviceClientBuilder::default()
    }

    /// Validates the options, loads the cached assignment and spawns the driver task. The
    /// client starts at once: from the cache if there is one, else by registering with DPS.
    ///
    /// Returns the client and the stream of [`DeviceEvent`]s (commands, C2D, desired patches,
    /// twin resyncs). Must be called inside a tokio runtime.
    pub fn start(
        builder: DeviceClientBuilder,
    ) -> Result<(Self, mpsc::UnboundedReceiver<DeviceEvent>), ConfigError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let s = Arc::new(builder.validate()?);
        let (journal, restored) = match &s.journal {
            Some(dir) => {
                let (j, restored) =
                    Journal::open(dir).map_err(|e| ConfigError::Journal(e.to_string()))?;
                (Some(j), restored)
            }
            None => (None, Vec::new()),
        };
        let room = Arc::new(Semaphore::new(
            s.outbox_capacity.saturating_sub(restored.len()).max(1),
        ));
        let (api_tx, api_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(ConnectionStatus {
            kind: StatusKind::Idle,
            reason: None,
        });
        let _guard = handle.enter();
        let (driver, inputs) = Driver::new(
            s,
            journal,
            restored,
            ev_tx,
            api_tx.downgrade(),
            status_tx,
            api_rx,
        )?;
        handle.spawn(driver.run(inputs));
        Ok((
            Self {
                api: api_tx,
                status: status_rx,
                room,
            },
            ev_rx,
        ))
    }

    /// Queues a telemetry message and returns at once with a [`Delivery`] to await the hub's
    /// acknowledgement. When the outbox is full it waits for room or fails, as `when_full` says.
    pub async fn queue_telemetry(
        &self,
        msg: Telemetry,
        when_full: WhenFull,
    ) -> Result<Delivery, SendError> {
        let permit = match when_full {
            WhenFull::Wait => self
                .room
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| SendError::Shutdown)?,
            WhenFull::Fail => self.room.clone().try_acquire_owned().map_err(|e| match e {
                tokio::sync::TryAcquireError::NoPermits => SendError::Full,
                tokio::sync::TryAcquireError::Closed => SendError::Shutdown,
            })?,
        };
        let (done, rx) = oneshot::channel();
        self.api
            .send(Request::Telemetry {
                msg: Box::new(msg),
                done,
                permit,
            })
            .map_err(|_| SendError::Shutdown)?;
        Ok(Delivery { rx })
    }

    /// Sends a telemetry message; resolves with its `$.mid` once the hub has acknowledged it
    /// (at least once, across reconnects and hub switches) or with the reason it failed.
    pub async fn send_telemetry(
        &self,
        msg: Telemetry,
        when_full: WhenFull,
    ) -> Result<String, SendError> {
        self.queue_telemetry(msg, when_full).await?.acked().await
    }

    /// Sends a reported-properties patch; resolves with the new reported `$version`.
    pub async fn report_properties(
        &self,
        patch: serde_json::Value,
    ) -> Result<Option<u64>, ClientError> {
        if !patch.is_object() {
            return Err(ClientError::Invalid(
                "a reported patch must be a JSON object".into(),
            ));
        }
        let (done, rx) = oneshot::channel();
        self.api
            .send(Request::Report { patch, done })
            .map_err(|_| ClientError::Shutdown)?;
        rx.await.unwrap_or(Err(ClientError::Shutdown))
    }

    /// Reports properties of a component (`{"comp":{"__t":"c", ..}}`), or of the root
    /// component when `component` is `None`.
    pub async fn report_component(
        &self,
        component: Option<&str>,
        properties: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<u64>, ClientError> {
        self.report_properties(component_patch(component, properties))
            .await
    }

    /// Acknowledges a writable property the IoT Central way: `{"name":{"value":..,"ac":..,
    /// "av":..,"ad":..}}`, inside the component (with `__t`) if there is one.
    pub async fn ack_writable(
        &self,
        component: Option<&str>,
        name: &str,
        value: serde_json::Value,
        ac: u16,
        av: u64,
        ad: &str,
    ) -> Result<Option<u64>, ClientError> {
        let mut props = serde_json::Map::new();
        props.insert(
            name.to_owned(),
            serde_json::json!({ "value": value, "ac": ac, "av": av, "ad": ad }),
        );
        self.report_component(component, props).await
    }

    /// Fetches the twin (waits until the client is connected).
    pub async fn get_twin(&self) -> Result<Twin, ClientError> {
        let (done, rx) = oneshot::channel();
        self.api
            .send(Request::GetTwin { done })
            .map_err(|_| ClientError::Shutdown)?;
        rx.await.unwrap_or(Err(ClientError::Shutdown))
    }

    /// The connection status; `changed().await` on it to follow transitions.
    pub fn status(&self) -> watch::Receiver<ConnectionStatus> {
        self.status.clone()
    }

    /// Drops the cached assignment and provisions again through DPS.
    pub fn reprovision(&self) {
        let _ = self.api.send(Request::Reprovision);
    }

    /// Stops for good: closes the connection, fails what is still queued with
    /// [`SendError::Shutdown`] (journaled messages stay on disk) and ends the driver.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.api.send(Request::Shutdown { done }).is_ok() {
            let _ = rx.await;
        }
        self.room.close();
    }
}

/// The reported patch for a component's properties.
pub fn component_patch(
    component: Option<&str>,
    mut properties: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    match component {
        Some(c) => {
            properties.insert("__t".into(), serde_json::Value::String("c".into()));
            serde_json::json!({ c: properties })
        }
        None => serde_json::Value::Object(properties),
    }
}

impl DeviceClientBuilder {
    /// Shorthand for [`DeviceClient::start`].
    pub fn build(
        self,
    ) -> Result<(DeviceClient, mpsc::UnboundedReceiver<DeviceEvent>), ConfigError> {
        DeviceClient::start(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_patches_carry_the_marker() {
        let mut m = serde_json::Map::new();
        m.insert("t".into(), 1.into());
        assert_eq!(
            component_patch(Some("th1"), m.clone()),
            serde_json::json!({"th1": {"__t": "c", "t": 1}})
        );
        assert_eq!(component_patch(None, m), serde_json::json!({"t": 1}));
    }

    #[test]
    fn building_outside_a_runtime_is_a_typed_error() {
        let b = DeviceClient::builder()
            .id_scope("s")
            .registration_id("d")
            .device_key("AAAA")
            .memory_store();
        assert!(matches!(b.build(), Err(ConfigError::NoRuntime)));
    }
}
