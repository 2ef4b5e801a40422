//! The fixture's reconnect policy: what an otherwise careful device does after each failure,
//! and the one thing each bug changes.
//!
//! The delays are chosen for the runner self-test's profile (fast 200 ms to 2 s, slow 1 s to
//! 4 s, DPS gate 2 s to 8 s), the way a device maker tunes a device for one cloud:
//! - after a drop, a refusal or an unreachable hub: 250 ms, doubling to 2 s;
//! - while DPS says the device is blocked: 1 s, doubling to 4 s;
//! - DPS is asked after two failed connects in a row, and again only when the gate is open:
//!   2 s after the first question of the incident, doubling to 8 s;
//! - the incident ends with a connection that lasts [`STABLE`].

use std::time::Duration;

use tokio::time::Instant;

/// The bug a broken device has (`--bug`; see the binary's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Bug {
    NeverReprovision,
    StaleToken,
    FastWhenBlocked,
    ReprovisionAlways,
    IgnoreRetryAfter,
    HotLoop,
    GiveUp,
    DpsEveryTwoFailures,
    ForgetCache,
}

/// A connection that lasts this long ends the incident.
pub(crate) const STABLE: Duration = Duration::from_secs(2);

/// `give-up` stops after this many failed attempts without a stable connection.
pub(crate) const GIVE_UP_AFTER: u32 = 4;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The hub dropped the connection after CONNACK 0, which lasted this long.
    Dropped(Duration),
    /// The hub refused the CONNECT, or the connection failed before CONNACK.
    ConnectFailed,
    /// DPS said the device is blocked (a 4xx or a `failed`/`disabled` status).
    DpsBlocked,
    /// DPS did not assign (429, 5xx, no answer).
    DpsUnanswered,
}

/// The policy's state for one device.
#[derive(Debug)]
pub(crate) struct Policy {
    bug: Bug,
    /// Failed attempts in a row; the exponent of the next delay.
    attempts: u32,
    /// Failed connects since the last DPS question or connection.
    connect_failures: u32,
    /// DPS questions in this incident; the exponent of the gate.
    rounds: u32,
    last_question: Option<Instant>,
    /// A connect failed since the last accepted connection.
    incident: bool,
    blocked: bool,
    /// `give-up` stopped trying.
    gave_up: bool,
}

impl Policy {
    pub(crate) fn new(bug: Bug) -> Self {
        Self {
            bug,
            attempts: 0,
            connect_failures: 0,
            rounds: 0,
            last_question: None,
            incident: false,
            blocked: false,
            gave_up: false,
        }
    }

    /// Records a failure; answers whether DPS is asked next (rather than the cached hub).
    pub(crate) fn failed(&mut self, failure: Failure, now: Instant) -> bool {
        match failure {
            Failure::Dropped(lasted) => {
                if lasted >= STABLE {
                    self.attempts = 0;
                    self.rounds = 0;
                    self.last_question = None;
                }
                self.blocked = false;
                self.connect_failures = 0;
            }
            Failure::ConnectFailed => {
                self.connect_failures += 1;
                self.incident = true;
            }
            Failure::DpsBlocked => {
                // Blocked is DPS's final word on this incident: its rounds end.
                self.blocked = true;
                self.end_rounds();
                if self.bug == Bug::FastWhenBlocked {
                    // Treats the block as a new problem: fast retries from the start.
                    self.attempts = 0;
                }
            }
            Failure::DpsUnanswered => {}
        }
        self.attempts = self.attempts.saturating_add(1);
        if self.bug == Bug::GiveUp && self.attempts >= GIVE_UP_AFTER {
            self.gave_up = true;
        }
        let dps_failed = matches!(failure, Failure::DpsBlocked | Failure::DpsUnanswered);
        let ask = match self.bug {
            Bug::NeverReprovision => false,
            Bug::ReprovisionAlways => !dps_failed,
            Bug::ForgetCache => dps_failed || self.connect_failures >= 2,
            Bug::DpsEveryTwoFailures => self.connect_failures >= 2,
            _ => self.connect_failures >= 2 && self.gate_open(now),
        };
        if ask {
            self.connect_failures = 0;
        }
        ask
    }

    /// A DPS exchange ended (answered or not); the gate counts from here.
    pub(crate) fn asked(&mut self, now: Instant) {
        self.rounds = self.rounds.saturating_add(1);
        self.last_question = Some(now);
    }

    /// DPS assigned a hub. Only when it is the hub that just refused does the incident's
    /// gate stay (the failure is the hub's); any other answer ends the DPS rounds.
    pub(crate) fn assigned(&mut self, same_hub: bool) {
        if !(same_hub && self.incident) {
            self.end_rounds();
        }
    }

    fn end_rounds(&mut self) {
        self.rounds = 0;
        self.last_question = None;
    }

    /// The connection was accepted.
    pub(crate) fn connected(&mut self) {
        self.blocked = false;
        self.incident = false;
    }

    /// The device stopped trying (`give-up`).
    pub(crate) fn gave_up(&self) -> bool {
        self.gave_up
    }

    fn gate_open(&self, now: Instant) -> bool {
        self.last_question.is_none_or(|at| {
            let gate = Duration::from_secs(2) * (1 << self.rounds.saturating_sub(1).min(2));
            now.duration_since(at) >= gate
        })
    }

    /// How long to wait before the next attempt.
    pub(crate) fn delay(&self) -> Duration {
        match self.bug {
            Bug::HotLoop => return Duration::ZERO,
            // The retry loop of many samples: a fixed delay, and DPS every few failures.
            Bug::DpsEveryTwoFailures => return Duration::from_millis(250),
            _ => {}
        }
        let (base, cap) = if self.blocked && self.bug != Bug::FastWhenBlocked {
            (1_000, 4_000)
        } else {
            (250, 2_000)
        };
        let n = self.attempts.saturating_sub(1).min(4);
        Duration::from_millis((base << n).min(cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bug: Bug) -> Policy {
        Policy::new(bug)
    }

    #[test]
    fn delays_double_to_the_cap() {
        let mut p = policy(Bug::StaleToken);
        let now = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..6 {
            p.failed(Failure::Dropped(Duration::ZERO), now);
            seen.push(p.delay().as_millis());
        }
        assert_eq!(seen, [250, 500, 1000, 2000, 2000, 2000]);
    }

    #[test]
    fn blocked_uses_the_slow_delays_unless_the_bug_says_otherwise() {
        let now = Instant::now();
        let mut p = policy(Bug::StaleToken);
        p.failed(Failure::DpsBlocked, now);
        assert_eq!(p.delay(), Duration::from_secs(1));
        let mut q = policy(Bug::FastWhenBlocked);
        q.failed(Failure::DpsBlocked, now);
        assert_eq!(q.delay(), Duration::from_millis(250));
    }

    #[test]
    fn the_gate_holds_dps_back_after_the_first_question() {
        let now = Instant::now();
        let mut p = policy(Bug::StaleToken);
        p.asked(now);
        p.assigned(false);
        assert!(!p.failed(Failure::ConnectFailed, now));
        assert!(p.failed(Failure::ConnectFailed, now), "two failures: DPS");
        p.asked(now);
        p.assigned(true);
        p.failed(Failure::ConnectFailed, now);
        assert!(!p.failed(Failure::ConnectFailed, now), "gate closed");
        let later = now + Duration::from_secs(2);
        assert!(
            p.failed(Failure::ConnectFailed, later),
            "gate open after 2 s"
        );
        let mut linear = policy(Bug::DpsEveryTwoFailures);
        linear.asked(now);
        linear.failed(Failure::ConnectFailed, now);
        assert!(linear.failed(Failure::ConnectFailed, now), "no gate");
    }

    #[test]
    fn a_stable_connection_ends_the_incident() {
        let now = Instant::now();
        let mut p = policy(Bug::StaleToken);
        p.failed(Failure::ConnectFailed, now);
        p.failed(Failure::ConnectFailed, now);
        p.failed(Failure::Dropped(STABLE), now);
        assert_eq!(p.delay(), Duration::from_millis(250));
    }
}
