//! A telemetry message, as the application builds it and the journal stores it.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// A telemetry message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// The body.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// `$.ct`, for example `application/json`.
    pub content_type: Option<String>,
    /// `$.ce`, for example `utf-8`.
    pub content_encoding: Option<String>,
    /// `$.sub`: the component the telemetry belongs to.
    pub component: Option<String>,
    /// Application properties.
    pub properties: Vec<(String, String)>,
    /// How long the message may wait for delivery; `None` waits forever.
    #[serde(skip)]
    pub ttl: Option<Duration>,
}

impl Telemetry {
    /// A message with a raw body.
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Self {
            payload: payload.into(),
            ..Self::default()
        }
    }

    /// A JSON message (`$.ct=application/json`, `$.ce=utf-8`).
    pub fn json(value: &serde_json::Value) -> Self {
        Self::new(value.to_string())
            .content_type("application/json")
            .content_encoding("utf-8")
    }

    /// Sets `$.ct`.
    #[must_use]
    pub fn content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }

    /// Sets `$.ce`.
    #[must_use]
    pub fn content_encoding(mut self, ce: impl Into<String>) -> Self {
        self.content_encoding = Some(ce.into());
        self
    }

    /// Sets `$.sub`.
    #[must_use]
    pub fn component(mut self, c: impl Into<String>) -> Self {
        self.component = Some(c.into());
        self
    }

    /// Adds an application property.
    #[must_use]
    pub fn property(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.properties.push((k.into(), v.into()));
        self
    }

    /// Sets the time-to-live.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

mod b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s).map_err(serde::de::Error::custom)
    }
}
