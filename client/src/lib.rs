//! `hubswap-client`: the embeddable IoT Central device client.
#![allow(missing_docs)]

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
