//! The client's error types, one per layer.

use crate::auth::AuthError;

/// A builder option that does not validate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No id scope was given.
    #[error("the id scope is required")]
    MissingIdScope,
    /// The id scope has characters DPS does not allow.
    #[error("invalid id scope {0:?}: letters and digits only, at most 64")]
    InvalidIdScope(String),
    /// No registration id was given (and no certificate to take it from).
    #[error("the registration id is required")]
    MissingRegistrationId,
    /// The registration id breaks the DPS rules (spec/PROTOCOL.md §1.4).
    #[error(
        "invalid registration id {0:?}: up to 128 of a-z A-Z 0-9 - . _ :, ending alphanumeric or -"
    )]
    InvalidRegistrationId(String),
    /// No group key, device key or certificate was given.
    #[error("a group key, a device key or a certificate is required")]
    MissingCredential,
    /// More than one credential was given.
    #[error("give exactly one of group key, device key or certificate")]
    ConflictingCredentials,
    /// A symmetric key is not valid.
    #[error("invalid key: {0}")]
    InvalidKey(#[from] AuthError),
    /// A certificate, private key or CA file does not parse.
    #[error("invalid {what}: {detail}")]
    InvalidPem {
        /// Which input.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The TLS configuration was refused by rustls.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The model id is not a DTMI.
    #[error("invalid model id {0:?}: expected dtmi:...;N")]
    InvalidModelId(String),
    /// A host name or port is unusable.
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// The outbox needs room for at least one message.
    #[error("the outbox capacity must be at least 1")]
    ZeroOutboxCapacity,
    /// The spec's timing options do not validate.
    #[error("timing: {0}")]
    Spec(#[from] hubswap_spec::ConfigError),
    /// The keep-alive is outside 1 s..=1177 s (spec/PROTOCOL.md §4.2).
    #[error("keep-alive must be within 1..=1177 s")]
    KeepAlive,
    /// The assignment store could not be read.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The outbox journal directory is unusable.
    #[error("outbox journal: {0}")]
    Journal(String),
    /// `build` was called outside a tokio runtime.
    #[error("the client must be built inside a tokio runtime")]
    NoRuntime,
}

/// Why a telemetry message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The outbox is full and the caller chose not to wait.
    #[error("the outbox is full")]
    Full,
    /// The message's time-to-live ran out before the hub acknowledged it.
    #[error("the message expired before delivery")]
    Expired,
    /// The client shut down first (a journaled message is resent on the next start).
    #[error("the client shut down")]
    Shutdown,
    /// The message could not be written to the outbox journal.
    #[error("outbox journal: {0}")]
    Journal(String),
    /// The message is larger than IoT Hub accepts.
    #[error("message of {size} bytes exceeds {limit}")]
    TooLarge {
        /// The payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Why a request (twin, properties, command response) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client shut down.
    #[error("the client shut down")]
    Shutdown,
    /// The hub answered with a failure status: a 4xx at once, or a 429 / 5xx still answered
    /// after the client's retries (five sends in all, full-jitter backoff on the fast profile).
    #[error("the hub answered {status}")]
    Rejected {
        /// The status.
        status: u16,
    },
    /// The connection dropped before the hub answered; the request may be retried.
    #[error("the connection dropped before the hub answered")]
    Interrupted,
    /// The request body is not acceptable.
    #[error("invalid request: {0}")]
    Invalid(String),
}
