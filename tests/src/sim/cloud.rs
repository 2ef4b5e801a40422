//! The model of the cloud: DPS with its quotas and the hubs with their connection throttle.
//!
//! Every rendering follows the mock cloud's defaults (`mock-cloud/README.md`): a moved or
//! disabled device gets CONNACK 3 on its old hub, a blocked one CONNACK 5 and a `failed`
//! operation (400209) at DPS, a hub-wide internal error drops live connections and answers
//! CONNACK 3, an unreachable hub never answers, and a 429 carries `retry-after`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Everything about the cloud a simulation is run against. Every field is a CLI flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudParams {
    /// IoT hubs behind DPS; devices are allocated round-robin by index.
    pub hubs: u8,
    /// DPS register requests admitted per sliding minute (the whole DPS instance).
    pub registrations_per_minute: u32,
    /// DPS operation polls admitted per sliding minute.
    pub polls_per_minute: u32,
    /// Polls admitted per device per `poll_window_secs` (DPS: 5 per 10 s).
    pub polls_per_device: u32,
    /// The per-device poll window (s).
    pub poll_window_secs: u32,
    /// The `retry-after` (s) of a 202 `assigning` answer.
    pub assigning_retry_after_secs: u32,
    /// How long DPS takes to finish an assignment after admitting the register (ms); a poll
    /// before that gets 202 again.
    pub assign_ms: u64,
    /// DPS round trip (ms), drawn uniformly from `[min, max]`.
    pub dps_latency_ms: (u64, u64),
    /// Hub connect round trip, TCP + TLS + CONNECT (ms), drawn uniformly from `[min, max]`.
    pub hub_latency_ms: (u64, u64),
    /// New CONNECTs each hub processes per second (IoT Hub S1: 100/s).
    pub hub_connects_per_second: u32,
    /// CONNECTs a hub queues beyond its rate before it refuses with CONNACK 3.
    pub hub_queue: u32,
    /// The hub drops a connection whose token expires, and refuses an expired token (CONNACK 5).
    pub enforce_expiry: bool,
}

impl Default for CloudParams {
    fn default() -> Self {
        Self {
            hubs: 2,
            registrations_per_minute: 1_000,
            polls_per_minute: 1_000,
            polls_per_device: 5,
            poll_window_secs: 10,
            assigning_retry_after_secs: 3,
            assign_ms: 1_500,
            dps_latency_ms: (40, 200),
            hub_latency_ms: (50, 300),
            hub_connects_per_second: 100,
            hub_queue: 1_000,
            enforce_expiry: true,
        }
    }
}

/// A sliding one-minute window that admits at most `limit` requests.
#[derive(Debug)]
pub(crate) struct Window {
    limit: usize,
    admitted: VecDeque<u64>,
}

/// The one-minute window, in ms.
const MINUTE: u64 = 60_000;

impl Window {
    pub(crate) fn new(limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Self {
            limit,
            admitted: VecDeque::with_capacity(limit.min(1 << 20)),
        }
    }

    /// Admits a request at `now`, or says after how many whole seconds a slot frees (the
    /// `retry-after` of the 429), at least 1.
    pub(crate) fn admit(&mut self, now: u64) -> Result<(), u32> {
        while self.admitted.front().is_some_and(|&t| t + MINUTE <= now) {
            self.admitted.pop_front();
        }
        if self.admitted.len() < self.limit {
            self.admitted.push_back(now);
            return Ok(());
        }
        let frees_at = self.admitted.front().map_or(now, |&t| t + MINUTE);
        let secs = frees_at.saturating_sub(now).div_ceil(1000).max(1);
        Err(u32::try_from(secs).unwrap_or(u32::MAX))
    }
}

/// How a hub is failing, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum HubDown {
    /// Healthy.
    Up,
    /// Internal error: CONNACK 3 to every CONNECT.
    Error500,
    /// No answer at all: connects time out.
    Unreachable,
}

/// One hub's front door: its condition and its connection throttle.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) down: HubDown,
    /// When (µs) the throttle can process the next CONNECT.
    next_free_us: u64,
    /// µs between two CONNECTs at the throttle's rate.
    gap_us: u64,
    /// Queue bound, in µs of backlog.
    backlog_limit_us: u64,
}

/// What the throttle does with a CONNECT arriving now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Processed at this time (ms), now or later.
    ServeAt(u64),
    /// The queue is full: CONNACK 3 now.
    Refuse,
}

impl Hub {
    pub(crate) fn new(p: &CloudParams) -> Self {
        let gap_us = 1_000_000 / u64::from(p.hub_connects_per_second.max(1));
        Self {
            down: HubDown::Up,
            next_free_us: 0,
            gap_us,
            backlog_limit_us: gap_us.saturating_mul(u64::from(p.hub_queue)),
        }
    }

    /// Takes a throttle slot for a CONNECT arriving at `now_ms`, or refuses it.
    pub(crate) fn admit(&mut self, now_ms: u64) -> Admission {
        let now_us = now_ms.saturating_mul(1000);
        let start = self.next_free_us.max(now_us);
        if start - now_us > self.backlog_limit_us {
            return Admission::Refuse;
        }
        self.next_free_us = start + self.gap_us;
        Admission::ServeAt(start.div_ceil(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides_and_names_the_wait() {
        let mut w = Window::new(2);
        assert_eq!(w.admit(0), Ok(()));
        assert_eq!(w.admit(10_000), Ok(()));
        assert_eq!(w.admit(20_000), Err(40));
        assert_eq!(w.admit(59_999), Err(1));
        assert_eq!(w.admit(60_000), Ok(()));
        assert_eq!(w.admit(60_001), Err(10));
    }

    #[test]
    fn the_throttle_queues_then_refuses() {
        let p = CloudParams {
            hub_connects_per_second: 10,
            hub_queue: 2,
            ..CloudParams::default()
        };
        let mut h = Hub::new(&p);
        assert_eq!(h.admit(1_000), Admission::ServeAt(1_000));
        assert_eq!(h.admit(1_000), Admission::ServeAt(1_100));
        assert_eq!(h.admit(1_000), Admission::ServeAt(1_200));
        assert_eq!(h.admit(1_000), Admission::Refuse);
        assert_eq!(h.admit(1_150), Admission::ServeAt(1_300));
    }
}
