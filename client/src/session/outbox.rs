//! The telemetry outbox: at-least-once delivery across reconnects, token renewals,
//! re-provisioning and hub switches.
//!
//! rumqttc forgets unacknowledged QoS 1 publishes when a CONNACK says `session_present = 0`
//! (always on a new hub), so the session never relies on it: a message stays here from
//! `Outbox::push` until the hub's PUBACK (`Outbox::acked`), until its time-to-live runs out
//! while it waits (`Outbox::expire`), or until shutdown (`Outbox::close`). Each of those
//! returns the message as [`Settled`], exactly once. `Outbox::suspend` (every connection
//! loss) puts every unacknowledged message back at the front of the queue, in order.
//!
//! Pure: no clock (deadlines are [`Millis`] handed in), no channels (the application's waiting
//! caller is an opaque handle the driver resolves), no files (the driver journals).

use std::collections::VecDeque;

use hubswap_spec::Millis;

use crate::error::SendError;
use crate::telemetry::Telemetry;

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the outbox, increasing; also names its journal file.
    pub seq: u64,
    /// `$.mid`.
    pub mid: String,
    /// The message.
    pub msg: Telemetry,
    /// When it stops waiting for delivery (only while queued, not while in flight).
    pub deadline: Option<Millis>,
    /// The caller waiting for it; `None` for a message restored from the journal.
    pub handle: Option<u64>,
}

/// A message that left the outbox, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The caller waiting for it.
    pub handle: Option<u64>,
    /// Its sequence number.
    pub seq: u64,
    /// Its `$.mid` once the hub acknowledged it, or why it failed.
    pub result: Result<String, SendError>,
}

impl Entry {
    fn settle(self, result: Result<String, SendError>) -> Settled {
        Settled {
            handle: self.handle,
            seq: self.seq,
            result,
        }
    }
}

/// The outbox.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Entry>,
    inflight: VecDeque<Entry>,
    window: usize,
    open: bool,
    next_seq: u64,
}

impl Outbox {
    /// An empty outbox publishing at most `window` unacknowledged messages at a time; `restored`
    /// (from a journal, any order) goes first.
    pub(crate) fn new(window: usize, mut restored: Vec<Entry>) -> Self {
        restored.sort_by_key(|e| e.seq);
        Self {
            next_seq: restored.last().map_or(1, |e| e.seq + 1),
            queue: restored.into(),
            inflight: VecDeque::new(),
            window: window.max(1),
            open: false,
        }
    }

    /// The sequence number the next message gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Queues a message under the next sequence number.
    pub(crate) fn push(&mut self, mut e: Entry) {
        e.seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(e);
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

    /// The next message to publish, now in flight.
    pub(crate) fn next_to_send(&mut self) -> Option<&Entry> {
        if !self.open || self.inflight.len() >= self.window {
            return None;
        }
        let e = self.queue.pop_front()?;
        self.inflight.push_back(e);
        self.inflight.back()
    }

    /// The hub acknowledged `seq`: the message is delivered (once; a second ack is ignored).
    pub(crate) fn acked(&mut self, seq: u64) -> Option<Settled> {
        let i = self.inflight.iter().position(|e| e.seq == seq)?;
        let e = self.inflight.remove(i)?;
        let mid = e.mid.clone();
        Some(e.settle(Ok(mid)))
    }

    /// Settles every queued (not in-flight) message whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Millis) -> Vec<Settled> {
        if self.next_deadline().is_none_or(|d| d > now) {
            return Vec::new();
        }
        let (gone, keep): (VecDeque<_>, VecDeque<_>) = self
            .queue
            .drain(..)
            .partition(|e| e.deadline.is_some_and(|d| d <= now));
        self.queue = keep;
        gone.into_iter()
            .map(|e| e.settle(Err(SendError::Expired)))
            .collect()
    }

    /// The earliest deadline of a queued message.
    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.queue.iter().filter_map(|e| e.deadline).min()
    }

    /// Settles everything with `err` (shutdown).
    pub(crate) fn close(&mut self, err: &SendError) -> Vec<Settled> {
        self.inflight
            .drain(..)
            .chain(self.queue.drain(..))
            .map(|e| e.settle(Err(err.clone())))
            .collect()
    }

    /// Messages waiting plus in flight.
    pub(crate) fn len(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str, deadline: Option<u64>) -> Entry {
        Entry {
            seq: 0,
            mid: format!("m-{body}"),
            msg: Telemetry::new(body),
            deadline: deadline.map(Millis),
            handle: Some(7),
        }
    }

    fn send_all(ob: &mut Outbox) -> Vec<u64> {
        let mut v = Vec::new();
        while let Some(e) = ob.next_to_send() {
            v.push(e.seq);
        }
        v
    }

    #[test]
    fn nothing_flows_until_open_and_the_window_bounds_the_flight() {
        let mut ob = Outbox::new(2, Vec::new());
        for b in ["a", "b", "c"] {
            ob.push(entry(b, None));
        }
        assert!(send_all(&mut ob).is_empty());
        ob.open();
        assert_eq!(send_all(&mut ob), vec![1, 2]);
        assert!(ob.acked(1).is_some());
        assert_eq!(send_all(&mut ob), vec![3]);
        assert_eq!(ob.len(), 2);
    }

    #[test]
    fn suspend_requeues_in_order_and_an_ack_settles_once() {
        let mut ob = Outbox::new(8, Vec::new());
        ob.push(entry("a", None));
        ob.push(entry("b", None));
        ob.open();
        assert_eq!(send_all(&mut ob), vec![1, 2]);
        assert_eq!(ob.acked(1).map(|s| s.result), Some(Ok("m-a".into())));
        assert_eq!(ob.acked(1), None);
        ob.suspend();
        assert!(send_all(&mut ob).is_empty());
        ob.open();
        assert_eq!(send_all(&mut ob), vec![2]);
    }

    #[test]
    fn only_queued_messages_expire() {
        let mut ob = Outbox::new(1, Vec::new());
        ob.push(entry("a", Some(10)));
        ob.push(entry("b", Some(10)));
        ob.open();
        assert_eq!(send_all(&mut ob), vec![1]);
        assert_eq!(ob.next_deadline(), Some(Millis(10)));
        let gone = ob.expire(Millis(10));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].seq, 2);
        assert_eq!(gone[0].result, Err(SendError::Expired));
        assert_eq!(ob.len(), 1);
    }

    #[test]
    fn restored_messages_go_first_and_numbering_continues() {
        let mut r1 = entry("old-1", None);
        r1.seq = 5;
        let mut r2 = entry("old-2", None);
        r2.seq = 4;
        let mut ob = Outbox::new(8, vec![r1, r2]);
        assert_eq!(ob.next_seq(), 6);
        ob.push(entry("new", None));
        ob.open();
        assert_eq!(send_all(&mut ob), vec![4, 5, 6]);
        assert_eq!(ob.close(&SendError::Shutdown).len(), 3);
        assert_eq!(ob.len(), 0);
    }
}
