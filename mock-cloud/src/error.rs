//! The crate's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the mock cloud's control surface.
///
/// Device-side misbehaviour never surfaces here: a bad packet or token is answered on the wire
/// (CONNACK code, disconnect, HTTP 4xx) and recorded in the observation log instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not be bound; `flag` names the CLI flag or config field that moves it.
    #[error("cannot listen on {addr} for {what}: {source} (change it with {flag})")]
    Bind {
        /// The address that was tried.
        addr: SocketAddr,
        /// Which endpoint it was for.
        what: String,
        /// The flag or config field that changes the address.
        flag: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file in the data folder could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificates or keys could not be generated or parsed.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The TLS configuration was rejected by rustls.
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Persisted state or a JSON document could not be parsed.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// No device with this id exists.
    #[error("device {0} not found")]
    DeviceNotFound(String),
    /// No hub with this name exists.
    #[error("hub {0} not found")]
    HubNotFound(String),
    /// The device has no live connection that can take the request (404103 DeviceNotOnline).
    #[error("device {0} is not online")]
    DeviceNotOnline(String),
    /// The device did not answer a direct method in time (504101 GatewayTimeout).
    #[error("device {device} did not answer method {method} within {timeout_ms} ms")]
    MethodTimeout {
        /// The device.
        device: String,
        /// The method name.
        method: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The device's C2D queue is full (403004 DeviceMaximumQueueDepthExceeded).
    #[error("device {0} already has the maximum of pending cloud-to-device messages")]
    QueueFull(String),
    /// A request was malformed (bad key, bad JSON patch, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An admin API call to a running mock cloud failed.
    #[error("admin API: {0}")]
    Admin(String),
    /// The mock cloud is shutting down.
    #[error("the mock cloud is shutting down")]
    ShuttingDown,
}
