//! The observation log: every protocol event the cloud sees, with a monotonic timestamp and
//! the device id where known. Kept in memory up to a capacity (the oldest records go first, and
//! [`ObservationLog::dropped`] counts them), optionally appended in full to a JSON-lines file,
//! and broadcast to live subscribers (the admin API's stream, tests waiting for an event).
//!
//! Secrets never enter the log: CONNECT passwords are dropped, SAS tokens are reduced to a
//! [`hubswap_spec::trace::Credential`] (a fingerprint of the signature and the remaining validity).
//!
//! [`LogRecord::to_observation`] converts records into the spec's trace vocabulary so that
//! `hubswap_spec::validate_trace` can grade a run.

mod convert;
mod event;

use std::collections::VecDeque;
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

/// The default in-memory capacity: about 1 GiB at the ~1 KiB a telemetry record costs.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

struct Inner {
    /// The newest records; `records[0]` has sequence number `dropped`.
    records: VecDeque<LogRecord>,
    /// Records evicted from memory so far (all of them the oldest).
    dropped: u64,
    capacity: usize,
    file: Option<BufWriter<File>>,
}

impl Inner {
    fn next_seq(&self) -> u64 {
        self.dropped + self.records.len() as u64
    }

    /// The index in `records` of sequence number `seq` (clamped to what is kept).
    fn index(&self, seq: u64) -> usize {
        usize::try_from(seq.saturating_sub(self.dropped))
            .unwrap_or(usize::MAX)
            .min(self.records.len())
    }
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
    /// An in-memory log keeping the newest `capacity` records (at least one); with `path`,
    /// every record is also appended there as one JSON line.
    pub fn new(clock: Arc<Clock>, path: Option<&Path>, capacity: usize) -> Result<Self, Error> {
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
                records: VecDeque::new(),
                dropped: 0,
                capacity: capacity.max(1),
                file,
            }),
            tx,
        })
    }

    /// Appends one record and returns its sequence number.
    pub fn record(&self, device: Option<&str>, event: Event) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = inner.next_seq();
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
        if inner.records.len() >= inner.capacity {
            inner.records.pop_front();
            inner.dropped += 1;
            if inner.dropped == 1 {
                tracing::warn!(
                    capacity = inner.capacity,
                    "observation log full: the oldest records now leave memory (the log file, if any, keeps them)"
                );
            }
        }
        inner.records.push_back(record);
        seq
    }

    /// All records still in memory with `seq >= since`. When the capacity has evicted some of
    /// them, the result starts later than `since`; [`ObservationLog::complete_since`] tells.
    pub fn since(&self, since: u64) -> Vec<LogRecord> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let start = inner.index(since);
        inner.records.range(start..).cloned().collect()
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_seq()
    }

    /// How many of the oldest records have left memory because of the capacity.
    pub fn dropped(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped
    }

    /// Whether every record with `seq >= since` is still in memory; graders must not judge a
    /// run whose log lost its beginning.
    pub fn complete_since(&self, since: u64) -> bool {
        since >= self.dropped()
    }

    /// The first record in memory matching `pred`, without copying the log.
    fn find(&self, pred: &impl Fn(&LogRecord) -> bool) -> Option<LogRecord> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.records.iter().find(|r| pred(r)).cloned()
    }

    /// Every record still in memory.
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
        if let Some(r) = self.find(&pred) {
            return Some(r);
        }
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(r) if pred(&r) => return Some(r),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(r) = self.find(&pred) {
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
        let log = Arc::new(
            ObservationLog::new(Arc::new(Clock::new()), None, DEFAULT_CAPACITY)
                .expect("memory log"),
        );
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

    #[test]
    fn the_capacity_evicts_the_oldest_and_says_so() {
        let log = ObservationLog::new(Arc::new(Clock::new()), None, 3).expect("memory log");
        for i in 0..5 {
            let seq = log.record(
                None,
                Event::Control {
                    action: format!("r{i}"),
                },
            );
            assert_eq!(seq, i, "sequence numbers keep counting");
        }
        let seqs: Vec<u64> = log.records().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [2, 3, 4], "the newest three are kept");
        assert_eq!(log.dropped(), 2);
        assert_eq!(log.next_seq(), 5);
        assert_eq!(log.since(3).len(), 2);
        assert_eq!(log.since(9).len(), 0);
        assert!(!log.complete_since(0) && !log.complete_since(1));
        assert!(log.complete_since(2) && log.complete_since(4));
    }
}
