//! The observation log: every protocol event the cloud sees, with a monotonic timestamp and
//! the device id where known. Kept in memory, optionally appended to a JSON-lines file, and
//! broadcast to live subscribers (the admin API's stream, tests waiting for an event).
//!
//! Secrets never enter the log: CONNECT passwords are dropped, SAS tokens are reduced to a
//! [`hubswap_spec::trace::Credential`] (a fingerprint of the signature and the remaining validity).
//!
//! [`LogRecord::to_observation`] converts records into the spec's trace vocabulary so that
//! `hubswap_spec::validate_trace` can grade a run.

mod convert;
mod event;

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hubswap_spec::trace::Observation;
use tokio::sync::broadcast;

pub use convert::{to_observations, to_observations_attributing};
pub use event::{AuthMethod, DpsRequestKind, Endpoint, Event, FaultPhase, LogRecord, Transport};

use crate::Error;
use crate::clock::Clock;

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
