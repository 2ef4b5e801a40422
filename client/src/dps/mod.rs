//! DPS over MQTT (rumqttc) or HTTPS (hyper over tokio-rustls), selectable.
//!
//! A request is one register or one operation poll; each runs in its own task that the driver
//! aborts on [`hubswap_spec::Action::Close`]. No retry, backoff or polling loop lives here:
//! the spec's `Waiting` phase and timers do that, and `retry-after` is handed to the spec.

mod https;
mod mqtt;

use std::sync::Arc;
use std::time::Duration;

use hubswap_spec::WireSignal;
use rustls::ClientConfig;

use crate::auth::{SasToken, SecretKey};
use crate::wire::dps::parse_reply;

/// How the client talks to DPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpsTransport {
    /// MQTT over TLS, port 8883 by default.
    #[default]
    Mqtt,
    /// HTTPS REST, port 443 by default.
    Https,
}

impl DpsTransport {
    /// The default port of the transport.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Mqtt => 8883,
            Self::Https => 443,
        }
    }
}

/// Everything a DPS request needs.
#[derive(Debug)]
pub(crate) struct DpsSettings {
    pub id_scope: String,
    pub registration_id: String,
    pub model_id: Option<String>,
    /// The device key for SAS attestation; `None` for X.509 (the TLS identity attests).
    pub key: Option<SecretKey>,
    pub tls: Arc<ClientConfig>,
    pub host: String,
    pub port: u16,
    pub transport: DpsTransport,
    /// The network timeout of one request (the spec's attempt timeout ends it anyway).
    pub timeout: Duration,
}

/// One DPS request.
#[derive(Debug, Clone)]
pub(crate) struct DpsRequest {
    /// `None` registers; `Some(op)` polls the operation.
    pub operation: Option<String>,
    /// The request id (MQTT `$rid`).
    pub rid: String,
    /// The `se` of the DPS SAS token, in Unix seconds (the driver reads the clock).
    pub token_expiry: u64,
}

/// What DPS answered on the wire.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// A DPS transport failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DpsError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS server name: {0}")]
    ServerName(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// DPS refused the MQTT CONNECT with this return code.
    #[error("CONNACK {0}")]
    Refused(u8),
    #[error("SAS: {0}")]
    Auth(#[from] crate::auth::AuthError),
}

impl DpsSettings {
    pub(crate) fn resource(&self) -> String {
        format!("{}/registrations/{}", self.id_scope, self.registration_id)
    }

    pub(crate) fn token(&self, expiry: u64) -> Result<Option<SasToken>, DpsError> {
        self.key
            .as_ref()
            .map(|k| SasToken::new(k, &self.resource(), expiry, Some("registration")))
            .transpose()
            .map_err(Into::into)
    }
}

/// Runs one request and classifies the outcome as the spec's wire signal.
///
/// A 2xx body that does not parse is logged and reported as [`WireSignal::DpsMalformed`], and
/// a CONNACK refusal from DPS's MQTT endpoint as [`WireSignal::DpsConnAck`]: the spec's table
/// (`hubswap_spec::classify`) decides what each means.
pub(crate) async fn request(s: Arc<DpsSettings>, req: DpsRequest) -> WireSignal {
    let answer = match s.transport {
        DpsTransport::Https => https::request(&s, &req).await,
        DpsTransport::Mqtt => mqtt::request(&s, &req).await,
    };
    match answer {
        Ok(a) => match parse_reply(a.status, a.retry_after, &a.body) {
            Ok(reply) => {
                tracing::debug!(status = a.status, ?reply, "DPS answered");
                WireSignal::Dps(reply)
            }
            Err(e) => {
                tracing::warn!(status = a.status, error = %e, "malformed DPS answer");
                WireSignal::DpsMalformed
            }
        },
        Err(DpsError::Refused(code)) => {
            tracing::warn!(code, "DPS refused the MQTT CONNECT");
            WireSignal::DpsConnAck(code)
        }
        Err(e) => {
            tracing::warn!(error = %e, "DPS unreachable");
            WireSignal::DpsUnreachable
        }
    }
}

#[cfg(test)]
mod tests;
