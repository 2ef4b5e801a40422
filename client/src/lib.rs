//! `hubswap-client`: the embeddable IoT Central device client that survives hub moves.
//!
//! # Architecture
//!
//! ```text
//!  application ──► DeviceClient ──(mpsc)──► driver task ──► Machine (statig, sans-IO)
//!        ▲          send_telemetry           │  ▲   clock,        │ refines hubswap-spec:
//!        │          report / ack / twin      │  │   sleeps,       │ spec::step decides every
//!        │          reprovision / shutdown   │  │   jitter seed   ▼ connection-policy input
//!        │                                   │  └──── actions ◄── Vec<Action>
//!   DeviceEvent (commands, C2D,              ├─► hub task: rumqttc EventLoop (polled only
//!   desired patches, twin)                   │   while the machine wants a connection)
//!   watch<ConnectionStatus>                  ├─► DPS task: MQTT (rumqttc) or HTTPS (hyper)
//!                                            ├─► Outbox (at-least-once, optional journal)
//!                                            └─► Store (assignment cache: file or memory)
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`machine`] | the hierarchical statig state machine, its abstraction function to [`hubswap_spec::State`], and the refinement tests (G1–G10) |
//! | `driver` | the only task that reads the clock or sleeps: feeds inputs to the machine, performs its actions |
//! | `hub` | the task that owns rumqttc's event loop; after an error it waits for the next connect command |
//! | [`dps`] | DPS register and poll over MQTT or HTTPS, honouring `retry-after` through the spec |
//! | [`auth`] | SAS tokens and group-key derivation (hmac + sha2) |
//! | [`tls`] | rustls configurations with the ring provider, X.509 identities |
//! | [`outbox`] | the bounded telemetry outbox that owns redelivery |
//! | [`store`] | the assignment cache: [`Store`], [`FileStore`] (atomic, 0600), [`MemoryStore`] |
//! | [`wire`] | topics, property bags, DPS and twin payloads; bad input becomes a typed error |
//! | [`status`], [`api`], [`error`] | what the application sees |
//!
//! # The machine refines the spec
//!
//! Connection policy (when to back off, retry the same hub, mint a token, or ask DPS) is not
//! re-implemented: every spec input goes through [`hubswap_spec::step()`] from the spec state
//! that [`machine::abstraction`] computes, and the machine adopts the result. The client adds
//! the states the spec does not need (`subscribing → syncing → ready` inside the spec's
//! `Connected`) and the events that drive them. Tests in `machine/tests` walk every guarantee
//! and check each step against `spec::step`.
//!
//! # Delivery
//!
//! Telemetry accepted by [`DeviceClient::send_telemetry`] is delivered at least once (it
//! carries a `$.mid` for de-duplication) or reported failed when its time-to-live runs out.
//! rumqttc discards unacknowledged QoS 1 publishes on a new session, so the [`outbox`] keeps
//! every message until its PUBACK and requeues it whenever the connection goes down: through
//! reconnects, token renewals, re-provisioning and hub switches.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hubswap_client::{DeviceClient, DeviceEvent, Telemetry, WhenFull};
//!
//! let (client, mut events) = DeviceClient::builder()
//!     .id_scope("0ne00000A0A")
//!     .registration_id("thermostat-1")
//!     .group_key("<base64 group key>")
//!     .model_id("dtmi:com:example:Thermostat;1")
//!     .build()?;
//! let mid = client.send_telemetry(Telemetry::json(&serde_json::json!({"temperature": 21.5})), WhenFull::Wait).await?;
//! while let Some(ev) = events.recv().await {
//!     if let DeviceEvent::Command(cmd) = ev {
//!         cmd.respond(200, &serde_json::json!({}));
//!     }
//! }
//! # let _ = mid; Ok(()) }
//! ```

pub mod api;
pub mod auth;
mod builder;
mod client;
pub mod dps;
mod driver;
pub mod error;
mod hub;
pub mod machine;
pub mod outbox;
pub mod status;
pub mod store;
pub mod tls;
pub mod wire;

pub use api::{C2dMessage, CommandRequest, Delivery, DeviceEvent, Twin, WhenFull};
pub use builder::{DeviceClientBuilder, GLOBAL_DPS_HOST, HubResolver, MAX_MESSAGE};
pub use client::{DeviceClient, component_patch};
pub use dps::DpsTransport;
pub use error::{ClientError, ConfigError, SendError};
pub use outbox::Telemetry;
pub use status::{ConnectionStatus, Reason, StatusKind};
pub use store::{FileStore, MemoryStore, Store, StoreError};
