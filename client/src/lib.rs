//! `hubswap-client`: the embeddable IoT Central device client that survives hub moves.
//!
//! # Architecture
//!
//! ```text
//!  application ──► DeviceClient ──(mpsc)──► driver task (tokio) ───── handle_event(now, ..) ──► Session
//!        ▲          telemetry, twin,          one clock read per turn  handle_timeout(now)      (sans-IO)
//!        │          command answers,          ▲   performs outputs ◄── poll_action()              │
//!        │          reprovision, shutdown     │   sleeps until     ◄── poll_timeout()             │
//!   DeviceEvent, watch<ConnectionStatus>      │                                                   │
//!                                             ├─► hub task: rumqttc EventLoop (polled only while  │ spec::step decides
//!                                             │   the session wants a connection)                 │ every policy input
//!                                             ├─► DPS task: MQTT (rumqttc) or HTTPS (hyper)       ▼
//!                                             ├─► Store (assignment cache: file or memory)     hubswap-spec
//!                                             └─► Journal (outbox files, optional)
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`session`] | every protocol decision: the spec's policy, the online sub-states (statig), the outbox, packet ids, twin requests and their retries, request ids, one timer table |
//! | `driver` | the thin tokio loop: one input per turn, the clock, the IO seam that performs the session's outputs |
//! | `hub` | the task that owns rumqttc's event loop; after an error it waits for the next connect command |
//! | [`dps`] | DPS register and poll over MQTT or HTTPS; each answer becomes the spec's wire signal |
//! | [`auth`] | SAS tokens and group-key derivation (hmac + sha2) |
//! | [`tls`] | rustls configurations with the ring provider, X.509 identities |
//! | `journal` | the optional on-disk outbox journal (IO only) |
//! | [`store`] | the assignment cache: [`Store`], [`FileStore`] (atomic, 0600), [`MemoryStore`] |
//! | [`wire`] | topics, property bags, DPS and twin payloads; bad input becomes a typed error |
//! | [`status`], [`api`], [`error`] | what the application sees |
//!
//! # The session refines the spec
//!
//! Connection policy (when to back off, retry the same hub, mint a token, or ask DPS) is not
//! re-implemented: the [`session::Session`] holds a [`hubswap_spec::State`] and advances it with
//! [`hubswap_spec::step()`] for every policy input, performing the returned actions. What the
//! spec does not have (`subscribing → syncing → ready` inside `Connected`) is a small statig
//! machine in [`session::online`]. The session's tests drive it in virtual time with random IO
//! (duplicate, late and out-of-order PUBACKs, drops at every point, stale events, late timers)
//! and check, from its outputs alone, that it does what a reference `spec::step` does and that
//! no accepted message is lost.
//!
//! # Delivery
//!
//! Telemetry accepted by [`DeviceClient::send_telemetry`] is delivered at least once (it
//! carries a `$.mid` for de-duplication) or reported failed when its time-to-live runs out.
//! rumqttc discards unacknowledged QoS 1 publishes on a new session, so the session's outbox
//! keeps every message until its PUBACK and requeues it whenever the connection goes down:
//! through reconnects, token renewals, re-provisioning and hub switches.
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
mod journal;
mod local;
pub mod session;
pub mod status;
pub mod store;
mod telemetry;
pub mod tls;
pub mod wire;

pub use api::{C2dMessage, CommandRequest, Delivery, DeviceEvent, Twin, WhenFull};
pub use builder::{DeviceClientBuilder, GLOBAL_DPS_HOST, HubResolver, MAX_MESSAGE};
pub use client::{DeviceClient, component_patch};
pub use dps::DpsTransport;
pub use error::{ClientError, ConfigError, SendError};
pub use local::LocalCloud;
pub use status::{ConnectionStatus, Reason, StatusKind};
pub use store::{FileStore, MemoryStore, Store, StoreError};
pub use telemetry::Telemetry;
