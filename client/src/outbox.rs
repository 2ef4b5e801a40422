//! The telemetry outbox: owns at-least-once delivery across reconnects, token renewals,
//! re-provisioning and hub switches.
//!
//! rumqttc forgets unacknowledged QoS 1 publishes when a CONNACK says `session_present = 0`
//! (always on a new hub), so the client never relies on it: a message stays in the outbox from
//! `Outbox::push` until the hub's PUBACK (`Outbox::acked`) or until its time-to-live runs
//! out while it waits (`Outbox::expire`). `Outbox::suspend` (on every connection loss) puts
//! every unacknowledged message back at the front of the queue. Capacity is enforced by the
//! caller with a semaphore whose permits travel with the entries.
//!
//! With a journal directory, every message is also written to disk (one file per message,
//! atomically) before it is queued, and removed on PUBACK, so a restart resends it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::error::SendError;

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

/// What a caller learns when its message settles.
pub(crate) type Settle = oneshot::Sender<Result<String, SendError>>;

/// One queued message.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Position in the outbox, increasing.
    pub seq: u64,
    /// `$.mid`.
    pub mid: String,
    pub msg: Telemetry,
    pub deadline: Option<Instant>,
    pub done: Option<Settle>,
    pub permit: Option<OwnedSemaphorePermit>,
}

impl Entry {
    fn settle(mut self, result: Result<String, SendError>) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(result);
        }
        drop(self.permit.take());
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    seq: u64,
    mid: String,
    msg: Telemetry,
}

/// The outbox. Not shared: the driver owns it.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Entry>,
    inflight: VecDeque<Entry>,
    window: usize,
    open: bool,
    next_seq: u64,
    journal: Option<PathBuf>,
}

impl Outbox {
    /// An empty outbox publishing at most `window` unacknowledged messages at a time.
    pub(crate) fn new(window: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            window: window.max(1),
            open: false,
            next_seq: 1,
            journal: None,
        }
    }

    /// An outbox journaled in `dir`; messages a previous run left there are queued first.
    /// They have no caller waiting and hold no capacity permit.
    pub(crate) fn with_journal(window: usize, dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut restored = Vec::new();
        for f in std::fs::read_dir(dir)? {
            let path = f?.path();
            if path.extension().is_none_or(|e| e != "msg") {
                continue;
            }
            match std::fs::read(&path).map(|b| serde_json::from_slice::<Stored>(&b)) {
                Ok(Ok(s)) => restored.push(s),
                Ok(Err(e)) => {
                    tracing::warn!(file = %path.display(), error = %e, "dropping a corrupt outbox file");
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read an outbox file");
                }
            }
        }
        restored.sort_by_key(|s| s.seq);
        let mut ob = Self::new(window);
        ob.journal = Some(dir.to_owned());
        ob.next_seq = restored.last().map_or(1, |s| s.seq + 1);
        ob.queue = restored
            .into_iter()
            .map(|s| Entry {
                seq: s.seq,
                mid: s.mid,
                msg: s.msg,
                deadline: None,
                done: None,
                permit: None,
            })
            .collect();
        Ok(ob)
    }

    fn file(&self, seq: u64) -> Option<PathBuf> {
        self.journal
            .as_ref()
            .map(|d| d.join(format!("{seq:020}.msg")))
    }

    /// The sequence number the next message gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Queues a message (journaling it first). Fails only if the journal cannot be written.
    pub(crate) fn push(&mut self, mut e: Entry) -> Result<(), Box<(Entry, SendError)>> {
        e.seq = self.next_seq;
        if let Some(path) = self.file(e.seq) {
            let stored = Stored {
                seq: e.seq,
                mid: e.mid.clone(),
                msg: e.msg.clone(),
            };
            let bytes = serde_json::to_vec(&stored).unwrap_or_default();
            if let Err(err) = crate::store::write_atomic(&path, &bytes) {
                return Err(Box::new((e, SendError::Journal(err.to_string()))));
            }
        }
        self.next_seq += 1;
        self.queue.push_back(e);
        Ok(())
    }

    /// Lets messages flow (the connection is up).
    pub(crate) fn open(&mut self) {
        self.open = true;
    }

    /// Stops the flow and requeues every unacknowledged message, in order.
    pub(crate) fn suspend(&mut self) {
        self.open = false;
        while let Some(e) = self.inflight.pop_back() {
            self.queue.push_front(e);
        }
    }

    /// The next message to publish, now in flight; expired ones are settled on the way.
    pub(crate) fn next_to_send(&mut self, now: Instant) -> Option<&Entry> {
        if !self.open || self.inflight.len() >= self.window {
            return None;
        }
        self.expire(now);
        let e = self.queue.pop_front()?;
        self.inflight.push_back(e);
        self.inflight.back()
    }

    /// The hub acknowledged `seq`: the message is delivered.
    pub(crate) fn acked(&mut self, seq: u64) {
        if let Some(i) = self.inflight.iter().position(|e| e.seq == seq) {
            let e = self.inflight.remove(i).expect("index from position");
            self.forget(e.seq);
            let mid = e.mid.clone();
            e.settle(Ok(mid));
        }
    }

    fn forget(&self, seq: u64) {
        if let Some(path) = self.file(seq)
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a delivered message from the journal");
        }
    }

    /// Settles every queued (not in-flight) message whose deadline has passed; returns the
    /// earliest deadline still pending.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
        let mut keep = VecDeque::with_capacity(self.queue.len());
        while let Some(e) = self.queue.pop_front() {
            if e.deadline.is_some_and(|d| d <= now) {
                self.forget(e.seq);
                e.settle(Err(SendError::Expired));
            } else {
                keep.push_back(e);
            }
        }
        self.queue = keep;
        self.queue.iter().filter_map(|e| e.deadline).min()
    }

    /// Settles everything with `err` (shutdown). Journaled messages stay on disk.
    pub(crate) fn close(&mut self, err: &SendError) {
        for e in self.inflight.drain(..).chain(self.queue.drain(..)) {
            e.settle(Err(err.clone()));
        }
    }

    /// Messages waiting plus in flight.
    pub(crate) fn len(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }
}

#[cfg(test)]
mod tests;
