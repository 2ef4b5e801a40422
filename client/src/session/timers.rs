//! The session's one timer table: every deadline the session has, under one key each.

use std::collections::BTreeMap;

use hubswap_spec::{Millis, Timer};

/// A deadline's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey {
    /// One of the spec's timers (armed and cancelled by `spec::step`'s actions).
    Spec(Timer),
    /// The retry of the resync twin GET.
    TwinRetry,
    /// The earliest backoff of an application twin request answered 429 or 5xx.
    TwinRelease,
    /// The earliest time-to-live of a queued telemetry message.
    Expiry,
}

/// Deadlines by key; a key holds at most one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Timers(BTreeMap<TimerKey, Millis>);

impl Timers {
    /// Arms (or re-arms) `key` at `at`.
    pub fn arm(&mut self, key: TimerKey, at: Millis) {
        self.0.insert(key, at);
    }

    /// Disarms `key`.
    pub fn cancel(&mut self, key: TimerKey) {
        self.0.remove(&key);
    }

    /// Arms `key` at `at`, or disarms it for `None`.
    pub fn set(&mut self, key: TimerKey, at: Option<Millis>) {
        match at {
            Some(at) => self.arm(key, at),
            None => self.cancel(key),
        }
    }

    /// When `key` fires, if armed.
    pub fn get(&self, key: TimerKey) -> Option<Millis> {
        self.0.get(&key).copied()
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Millis> {
        self.0.values().min().copied()
    }

    /// Disarms and returns `key` if it is due at `now`.
    pub fn take_due(&mut self, key: TimerKey, now: Millis) -> bool {
        if self.get(key).is_some_and(|at| at <= now) {
            self.cancel(key);
            true
        } else {
            false
        }
    }
}
