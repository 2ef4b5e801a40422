//! The observation log: every protocol event the cloud sees, with a monotonic timestamp and
//! the device id where known. Kept in memory, optionally appended to a JSON-lines file, and
//! broadcast to live subscribers (the admin API's stream, tests waiting for an event).
//!
//! Secrets never enter the log: CONNECT passwords are dropped, SAS tokens are reduced to a
//! [`Credential`] (a fingerprint of the signature and the remaining validity).
//!
//! [`LogRecord::to_observation`] converts records into the spec's trace vocabulary so that
//! `hubswap_spec::validate_trace` can grade a run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hubswap_spec::Millis;
use hubswap_spec::trace::{Credential, DpsAnswer, DpsRequest, Observation, Observed, Side};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::Error;
use crate::clock::Clock;

/// Which listener an event happened on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// DPS over MQTT.
    DpsMqtt,
    /// DPS over HTTPS.
    DpsHttps,
    /// An IoT hub, by host name (the `assignedHub` DPS hands out).
    Hub(String),
}

/// How a DPS request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `$dps/registrations/...` over MQTT.
    Mqtt,
    /// REST over HTTPS.
    Https,
}

/// What a DPS request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpsRequestKind {
    /// Register (starts an operation).
    Register,
    /// Operation-status poll.
    Poll,
    /// Registration-status lookup (`POST /{scope}/registrations/{id}`).
    Lookup,
}

/// How a device authenticated at CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A SAS token in the password.
    Sas,
    /// A TLS client certificate.
    X509,
    /// Neither.
    None,
}

/// One event, tagged by `type` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A TCP connection was accepted.
    TcpAccepted {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number, unique per cloud.
        conn: u64,
        /// The peer address.
        peer: String,
    },
    /// The TLS handshake failed or timed out.
    TlsFailed {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// Why.
        reason: String,
    },
    /// An MQTT CONNECT arrived (the password is never recorded).
    Connect {
        /// Listener (for a DPS username on a hub listener, `dps_mqtt`).
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// The client id.
        client_id: String,
        /// The username.
        username: String,
        /// `clean_session`.
        clean_session: bool,
        /// Keep-alive in seconds.
        keep_alive: u16,
        /// How the device authenticated.
        auth: AuthMethod,
        /// The SAS token's fingerprint and remaining validity.
        credential: Option<Credential>,
    },
    /// The CONNECT was answered.
    ConnAck {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// The return code.
        code: u8,
        /// `session_present`.
        session_present: bool,
        /// The auth outcome in words.
        outcome: String,
    },
    /// A connection was closed.
    Disconnected {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// Who closed it.
        by: Side,
        /// Whether it had been accepted with CONNACK 0.
        established: bool,
        /// Why.
        reason: String,
    },
    /// The device broke a rule (malformed packet, foreign topic, QoS 2, oversize, ...).
    Violation {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// What happened.
        reason: String,
        /// What the cloud did about it.
        action: String,
    },
    /// A DPS request.
    DpsRequest {
        /// How it came.
        transport: Transport,
        /// What it asked.
        request: DpsRequestKind,
        /// The registration id in the path or topic.
        registration_id: String,
        /// The operation id, for polls.
        operation_id: Option<String>,
    },
    /// A DPS answer.
    DpsResponse {
        /// How it went.
        transport: Transport,
        /// HTTP-like status.
        status: u16,
        /// The operation status (`assigning`, `assigned`, `failed`, ...), for 2xx.
        operation_status: Option<String>,
        /// `assignedHub`, when assigned.
        assigned_hub: Option<String>,
        /// `errorCode`, for errors and failed operations.
        error_code: Option<u32>,
        /// `retry-after` in seconds.
        retry_after: Option<u32>,
    },
    /// SUBSCRIBE, with the granted QoS per filter (128 = refused).
    Subscribed {
        /// Listener.
        endpoint: Endpoint,
        /// Connection number.
        conn: u64,
        /// `(filter, granted)`.
        filters: Vec<(String, u8)>,
    },
    /// Device-to-cloud telemetry.
    Telemetry {
        /// Hub.
        hub: String,
        /// The decoded property bag (`$.ct`, custom properties, ...).
        properties: BTreeMap<String, String>,
        /// The payload as text (lossy for binary payloads).
        payload: String,
        /// The payload size in bytes.
        size: usize,
    },
    /// Twin GET.
    TwinGet {
        /// Hub.
        hub: String,
        /// `$rid`.
        rid: String,
        /// Answer status.
        status: u16,
    },
    /// Twin reported-properties PATCH.
    TwinReported {
        /// Hub.
        hub: String,
        /// `$rid`.
        rid: String,
        /// Answer status (204, or 400 for a bad body).
        status: u16,
        /// The new reported `$version`.
        version: Option<u64>,
        /// The patch.
        patch: serde_json::Value,
    },
    /// A desired-properties update (from the control API).
    TwinDesired {
        /// The new desired `$version`.
        version: u64,
        /// Whether it was pushed to a live subscribed connection.
        delivered: bool,
    },
    /// An IoT Central writable-property acknowledgement inside a reported patch.
    WritableAck {
        /// The component, when the property is inside one.
        component: Option<String>,
        /// The property name.
        property: String,
        /// `ac`.
        ac: i64,
        /// `av`.
        av: Option<u64>,
        /// `ad`.
        ad: Option<String>,
    },
    /// A direct method (or IoT Central command) sent to the device.
    MethodRequest {
        /// Hub.
        hub: String,
        /// The method name (`component*command` for components).
        name: String,
        /// `$rid`.
        rid: String,
    },
    /// The device's answer to a direct method.
    MethodResponse {
        /// Hub.
        hub: String,
        /// `$rid`.
        rid: String,
        /// The status the device returned.
        status: i32,
    },
    /// A direct method got no answer in time.
    MethodTimedOut {
        /// The method name.
        name: String,
        /// `$rid`.
        rid: String,
    },
    /// A cloud-to-device message was queued.
    C2dQueued {
        /// `$.mid`.
        message_id: String,
    },
    /// A cloud-to-device message was published to the device.
    C2dDelivered {
        /// `$.mid`.
        message_id: String,
        /// Hub.
        hub: String,
    },
    /// The device acknowledged a cloud-to-device message (PUBACK).
    C2dAcked {
        /// `$.mid`.
        message_id: String,
    },
    /// An operator action through the control API (enable, disable, ...).
    Control {
        /// What was done.
        action: String,
    },
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Sequence number, from 0.
    pub seq: u64,
    /// Milliseconds since the cloud started (monotonic).
    pub at: Millis,
    /// The device (registration id), where known.
    pub device: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

impl LogRecord {
    /// The spec's view of this record, if it is one the spec's trace vocabulary covers.
    pub fn to_observation(&self) -> Option<Observation> {
        let device = self.device.clone()?;
        let event = match &self.event {
            Event::DpsRequest {
                request: DpsRequestKind::Register,
                ..
            } => Observed::DpsRequest(DpsRequest::Register),
            Event::DpsRequest {
                request: DpsRequestKind::Poll,
                ..
            } => Observed::DpsRequest(DpsRequest::Poll),
            Event::DpsResponse {
                status,
                operation_status,
                assigned_hub,
                error_code,
                retry_after,
                ..
            } => Observed::DpsResponse(dps_answer(
                *status,
                operation_status.as_deref(),
                assigned_hub.as_deref(),
                *error_code,
                *retry_after,
            )?),
            Event::Connect {
                endpoint: Endpoint::Hub(hub),
                credential,
                ..
            } => Observed::HubConnect {
                hub: hub.clone(),
                credential: *credential,
            },
            Event::ConnAck {
                endpoint: Endpoint::Hub(_),
                code,
                ..
            } => Observed::ConnAck { code: *code },
            Event::Disconnected {
                endpoint: Endpoint::Hub(_),
                by,
                established: true,
                ..
            } => Observed::Disconnect { by: *by },
            _ => return None,
        };
        Some(Observation {
            at: self.at,
            device,
            event,
        })
    }
}

fn dps_answer(
    status: u16,
    operation_status: Option<&str>,
    assigned_hub: Option<&str>,
    error_code: Option<u32>,
    retry_after: Option<u32>,
) -> Option<DpsAnswer> {
    if !(200..300).contains(&status) {
        let retry_after = retry_after.map(|s| Duration::from_secs(u64::from(s)));
        return Some(DpsAnswer::Status {
            status,
            retry_after,
        });
    }
    Some(match operation_status? {
        "assigned" => DpsAnswer::Assigned {
            hub: assigned_hub?.to_owned(),
        },
        "failed" => DpsAnswer::Failed {
            error_code: error_code.unwrap_or(0),
        },
        "disabled" => DpsAnswer::Disabled,
        _ => DpsAnswer::Assigning,
    })
}

/// Converts records to the spec's observations, skipping what the vocabulary does not cover.
pub fn to_observations(records: &[LogRecord]) -> Vec<Observation> {
    records
        .iter()
        .filter_map(LogRecord::to_observation)
        .collect()
}

struct Inner {
    records: Vec<LogRecord>,
    file: Option<BufWriter<File>>,
}

/// The shared, append-only observation log.
pub struct ObservationLog {
    clock: Arc<Clock>,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<LogRecord>,
}

impl std::fmt::Debug for ObservationLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservationLog").finish_non_exhaustive()
    }
}

impl ObservationLog {
    /// An in-memory log; with `path`, every record is also appended there as one JSON line.
    pub fn new(clock: Arc<Clock>, path: Option<&Path>) -> Result<Self, Error> {
        let file = match path {
            Some(p) => {
                let f = File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| Error::File {
                        path: p.to_owned(),
                        source,
                    })?;
                Some(BufWriter::new(f))
            }
            None => None,
        };
        let (tx, _) = broadcast::channel(4096);
        Ok(Self {
            clock,
            inner: Mutex::new(Inner {
                records: Vec::new(),
                file,
            }),
            tx,
        })
    }

    /// Appends one record and returns its sequence number.
    pub fn record(&self, device: Option<&str>, event: Event) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = inner.records.len() as u64;
        let record = LogRecord {
            seq,
            at: self.clock.now(),
            device: device.map(str::to_owned),
            event,
        };
        if let Some(file) = inner.file.as_mut()
            && let Ok(line) = serde_json::to_string(&record)
        {
            // A full disk must not take the cloud down; the in-memory log stays complete.
            let _ = writeln!(file, "{line}").and_then(|()| file.flush());
        }
        tracing::debug!(target: "hubswap_mock_cloud::log", seq, device = ?record.device, event = ?record.event);
        let _ = self.tx.send(record.clone());
        inner.records.push(record);
        seq
    }

    /// All records with `seq >= since`.
    pub fn since(&self, since: u64) -> Vec<LogRecord> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let start = usize::try_from(since)
            .unwrap_or(usize::MAX)
            .min(inner.records.len());
        inner.records[start..].to_vec()
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<LogRecord> {
        self.since(0)
    }

    /// The spec observations of every record so far.
    pub fn observations(&self) -> Vec<Observation> {
        to_observations(&self.records())
    }

    /// Live records from now on. Pair with [`ObservationLog::since`] to miss nothing.
    pub fn subscribe(&self) -> broadcast::Receiver<LogRecord> {
        self.tx.subscribe()
    }

    /// Waits until a record matching `pred` exists (already logged or logged later), up to
    /// `timeout`. This is how tests synchronise with the cloud: on events, never on sleeps.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&LogRecord) -> bool,
    ) -> Option<LogRecord> {
        let mut rx = self.subscribe();
        if let Some(r) = self.records().into_iter().find(|r| pred(r)) {
            return Some(r);
        }
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(r) if pred(&r) => return Some(r),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(r) = self.records().into_iter().find(|r| pred(r)) {
                            return Some(r);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(device: &str, event: Event) -> LogRecord {
        LogRecord {
            seq: 0,
            at: Millis(5),
            device: Some(device.into()),
            event,
        }
    }

    #[test]
    fn records_convert_to_the_spec_vocabulary() {
        let connect = rec(
            "d",
            Event::Connect {
                endpoint: Endpoint::Hub("h".into()),
                conn: 1,
                client_id: "d".into(),
                username: "h/d/?api-version=1".into(),
                clean_session: false,
                keep_alive: 60,
                auth: AuthMethod::Sas,
                credential: Some(Credential {
                    fingerprint: 7,
                    valid_for: Duration::from_secs(9),
                }),
            },
        );
        let o = connect.to_observation().expect("hub connect maps");
        assert_eq!(
            o.event,
            Observed::HubConnect {
                hub: "h".into(),
                credential: Some(Credential {
                    fingerprint: 7,
                    valid_for: Duration::from_secs(9)
                })
            }
        );
        let assigned = rec(
            "d",
            Event::DpsResponse {
                transport: Transport::Mqtt,
                status: 200,
                operation_status: Some("assigned".into()),
                assigned_hub: Some("h".into()),
                error_code: None,
                retry_after: None,
            },
        );
        assert_eq!(
            assigned.to_observation().map(|o| o.event),
            Some(Observed::DpsResponse(DpsAnswer::Assigned {
                hub: "h".into()
            }))
        );
        let throttled = rec(
            "d",
            Event::DpsResponse {
                transport: Transport::Https,
                status: 429,
                operation_status: None,
                assigned_hub: None,
                error_code: Some(429_001),
                retry_after: Some(3),
            },
        );
        assert_eq!(
            throttled.to_observation().map(|o| o.event),
            Some(Observed::DpsResponse(DpsAnswer::Status {
                status: 429,
                retry_after: Some(Duration::from_secs(3))
            }))
        );
        let dps_connect = rec(
            "d",
            Event::Connect {
                endpoint: Endpoint::DpsMqtt,
                conn: 2,
                client_id: "d".into(),
                username: "s/registrations/d/api-version=1".into(),
                clean_session: true,
                keep_alive: 60,
                auth: AuthMethod::Sas,
                credential: None,
            },
        );
        assert_eq!(dps_connect.to_observation(), None);
        let refused_close = rec(
            "d",
            Event::Disconnected {
                endpoint: Endpoint::Hub("h".into()),
                conn: 1,
                by: Side::Cloud,
                established: false,
                reason: "refused".into(),
            },
        );
        assert_eq!(refused_close.to_observation(), None);
    }

    #[tokio::test]
    async fn wait_for_sees_past_and_future_records() {
        let log = Arc::new(ObservationLog::new(Arc::new(Clock::new()), None).expect("memory log"));
        log.record(
            Some("a"),
            Event::Control {
                action: "first".into(),
            },
        );
        let found = log
            .wait_for(Duration::from_secs(1), |r| r.device.as_deref() == Some("a"))
            .await;
        assert_eq!(found.map(|r| r.seq), Some(0));
        let waiter = {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.wait_for(Duration::from_secs(5), |r| r.device.as_deref() == Some("b"))
                    .await
            })
        };
        tokio::task::yield_now().await;
        log.record(
            Some("b"),
            Event::Control {
                action: "second".into(),
            },
        );
        assert_eq!(waiter.await.expect("joins").map(|r| r.seq), Some(1));
        assert!(
            log.wait_for(Duration::from_millis(20), |r| r.device.as_deref()
                == Some("c"))
                .await
                .is_none()
        );
    }
}
