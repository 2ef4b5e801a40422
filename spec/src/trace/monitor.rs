//! The observer automaton for one device (SPEC §8): the cloud-visible parts of G1–G10.
//!
//! Every wire code is classified with the spec's one table ([`crate::classify()`]), so the
//! monitor, the grader and the device client agree on what a code means.

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use super::observation::{Credential, DpsRequest, Observed, Side, TraceCheck};
use crate::backoff::saturation;
use crate::classify::{Class, WireSignal, classify};
use crate::config::Config;
use crate::guarantee::Guarantee;
use crate::time::{Millis, ms};

mod dps;
mod hub;
#[cfg(test)]
mod tests;

/// What the next attempt must be, set by the last failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Next {
    /// A hub connect (G5 after a plain 500 or a drop; G10 after DPS did not answer).
    Hub(Guarantee),
    /// A DPS request (G5/G6: DPS failed and the device knows no hub).
    Dps(Guarantee),
}

/// The observer automaton for one device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Monitor {
    /// When the request or CONNECT in flight started; the device abandons it after
    /// `attempt_timeout`, so an unanswered attempt stops counting then.
    in_flight: Option<Millis>,
    /// Connected, with the token's expiry when it is a SAS token.
    connected: Option<Live>,
    /// When the connection up now counts as stable; an incident ends only with a stable
    /// connection (the gate survives a hub that accepts and drops at once).
    stable_at: Option<Millis>,
    /// A hub connect awaiting its CONNACK, with the credential it carried.
    pending: Option<Pending>,
    last_start: Option<Millis>,
    unreachable: u32,
    unavailable: u32,
    auth_refusals: u32,
    refused_fingerprint: Option<u64>,
    /// The device asked DPS since the incident began (the threshold rules are then met).
    asked: bool,
    /// An incident reached its G1/G2/G3 threshold: no hub connect after this (the refusal,
    /// plus `reprovision_spread` when the device paces its question) without asking DPS.
    question_due: Option<(Millis, Guarantee)>,
    blocked: bool,
    /// The hub DPS just assigned, until the device connects.
    assigned: Option<String>,
    /// The assignment sent the device back to the hub that refused: it backs off first.
    assigned_backoff: bool,
    /// The hub the device holds an assignment for, as far as the cloud can tell.
    known_hub: Option<String>,
    next: Option<Next>,
    not_before: Option<(Millis, Guarantee)>,
    dps_not_before: Option<Millis>,
    /// G9: DPS registrations of the incident, and when the last one started.
    questions: u32,
    last_question: Option<Millis>,
    quiet_since: Option<Millis>,
}

pub(super) type Broken = (Guarantee, String);

/// A live connection: the token's expiry when it is a SAS token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Live {
    expiry: Option<Millis>,
}

/// A hub connect awaiting its CONNACK, with the credential it carried (`None` for X.509).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Pending {
    credential: Option<Credential>,
}

impl Monitor {
    /// Feeds one observation of this device; `Err` names the violated guarantee.
    pub fn observe(
        &mut self,
        check: &TraceCheck,
        at: Millis,
        event: &Observed,
    ) -> Result<(), Broken> {
        let cfg = &check.config;
        let tol = check.tolerance;
        self.check_bounds(cfg, tol, at)?;
        if self.stable_at.is_some_and(|t| at >= t) {
            // The connection lasted `stable_after`: the incident is over.
            self.stable_at = None;
            self.asked = false;
            self.questions = 0;
            self.last_question = None;
        }
        match event {
            Observed::HubConnect { hub, credential } => {
                self.hub_connect(cfg, tol, at, hub, *credential)?;
            }
            Observed::DpsRequest(DpsRequest::Register) => self.register(cfg, tol, at)?,
            Observed::DpsRequest(DpsRequest::Poll) => {
                if self.still_in_flight(cfg, tol, at) {
                    return Err((
                        Guarantee::G7,
                        String::from("poll while another request is in flight"),
                    ));
                }
                if let Some(Next::Hub(g)) = self.next.take() {
                    return Err((g, String::from("polled DPS where the hub was due")));
                }
                self.check_dps_not_before(tol, at)?;
                self.in_flight = Some(at);
                self.asked = true;
            }
            Observed::DpsResponse(answer) => self.dps_answer(cfg, at, answer),
            Observed::ConnAck { code } => self.connack(cfg, at, *code),
            Observed::HubRefused { hub } => {
                if self.pending.is_none() {
                    // Refused at TCP accept, before any CONNECT: the attempt starts here, and
                    // is judged like any other (spacing, floors, thresholds).
                    self.hub_attempt(cfg, tol, at, hub)?;
                }
                self.in_flight = None;
                self.pending = None;
                self.unreachable_failure(cfg, at);
            }
            Observed::Disconnect { by } => self.disconnect(cfg, at, *by),
            Observed::End => self.end(cfg, tol, at)?,
        }
        Ok(())
    }

    /// Moves every remembered time `delta` ms towards the epoch (for the model checks).
    #[must_use]
    pub fn shifted(&self, delta: u64) -> Self {
        let sh = |t: Option<Millis>| t.map(|t| t.minus_ms(delta));
        let mut m = self.clone();
        m.connected = m.connected.map(|l| Live {
            expiry: sh(l.expiry),
        });
        m.stable_at = sh(m.stable_at);
        m.last_start = sh(m.last_start);
        m.in_flight = sh(m.in_flight);
        m.not_before = m.not_before.map(|(t, g)| (t.minus_ms(delta), g));
        m.question_due = m.question_due.map(|(t, g)| (t.minus_ms(delta), g));
        m.dps_not_before = sh(m.dps_not_before);
        m.last_question = sh(m.last_question);
        m.quiet_since = sh(m.quiet_since);
        m
    }

    /// The monitor with every remembered time that can no longer matter at `now` forgotten
    /// or clamped, so that equivalent monitors compare equal (for the model checks).
    #[must_use]
    pub fn normalized(&self, check: &TraceCheck, now: Millis) -> Self {
        let cfg = &check.config;
        let ago = |d: Duration| Millis(now.0.saturating_sub(ms(d)));
        let mut m = self.clone();
        m.last_start = m.last_start.map(|t| t.max(ago(cfg.spacing(true))));
        m.in_flight = m.in_flight.map(|t| t.max(ago(cfg.attempt_timeout)));
        m.not_before = m.not_before.filter(|(t, _)| *t > now);
        m.question_due = m
            .question_due
            .map(|(t, g)| (t.max(ago(Duration::from_millis(1))), g));
        m.stable_at = m.stable_at.map(|t| t.max(now));
        m.dps_not_before = m.dps_not_before.filter(|t| *t > now);
        let longest_gate = cfg.recheck_floor(saturation(&cfg.recheck));
        m.last_question = m.last_question.map(|t| t.max(ago(longest_gate)));
        m.questions = m.questions.min(saturation(&cfg.recheck) + 1);
        let quiet = quiet_bound(cfg) + check.tolerance;
        m.quiet_since = m
            .quiet_since
            .map(|t| t.max(ago(quiet + Duration::from_millis(1))));
        m.unreachable = m.unreachable.min(cfg.unreachable_threshold);
        m.unavailable = m.unavailable.min(cfg.unavailable_threshold);
        m.auth_refusals = m.auth_refusals.min(2);
        m
    }

    /// The guarantee whose timing bound the next request must respect, if any.
    pub fn awaiting(&self) -> Option<Guarantee> {
        if self.dps_not_before.is_some() {
            return Some(Guarantee::G6);
        }
        self.not_before.map(|(_, g)| g)
    }

    /// Forgets what the next attempt must satisfy (after a reported divergence, so that one
    /// fault is reported once).
    pub fn forget_expectations(&mut self) {
        self.next = None;
        self.not_before = None;
        self.dps_not_before = None;
        self.quiet_since = None;
        self.in_flight = None;
        self.connected = None;
        self.unreachable = 0;
        self.unavailable = 0;
        self.refused_fingerprint = None;
        self.assigned = None;
        self.questions = 0;
        self.last_question = None;
    }

    /// Forgets expectations after the application intervened (a command the cloud cannot see).
    pub fn app_intervened(&mut self) {
        self.next = None;
        self.not_before = None;
        self.dps_not_before = None;
        self.quiet_since = None;
        self.assigned = None;
        self.known_hub = None;
        self.clear_incident(true);
    }

    fn check_bounds(&self, cfg: &Config, tol: Duration, at: Millis) -> Result<(), Broken> {
        if let Some(Live {
            expiry: Some(expiry),
        }) = self.connected
            && at > expiry.plus(tol)
        {
            return Err((
                Guarantee::G7,
                format!("connection outlived its token (expired {expiry})"),
            ));
        }
        if let Some(since) = self.quiet_since {
            if self.blocked && at > since.plus(cfg.slow.cap + cfg.spacing(true) + tol) {
                return Err((
                    Guarantee::G4,
                    format!("blocked, and no retry within one slow period after {since}"),
                ));
            }
            if at > since.plus(quiet_bound(cfg) + tol) {
                return Err((
                    Guarantee::G7,
                    format!("no attempt for longer than the cap after the failure at {since}"),
                ));
            }
        }
        Ok(())
    }

    fn attempt_start(
        &mut self,
        cfg: &Config,
        tol: Duration,
        at: Millis,
        hub: bool,
    ) -> Result<(), Broken> {
        if self.still_in_flight(cfg, tol, at) {
            return Err((
                Guarantee::G7,
                String::from("a new attempt while another is in flight"),
            ));
        }
        if let Some(last) = self.last_start {
            if self.blocked && at.plus(tol) < last.plus(cfg.slow.floor) {
                return Err((
                    Guarantee::G4,
                    format!("blocked, yet attempts {} ms apart", at.0 - last.0),
                ));
            }
            if at.plus(tol) < last.plus(cfg.min_attempt_spacing) {
                return Err((
                    Guarantee::G7,
                    format!("attempts {} ms apart", at.0.saturating_sub(last.0)),
                ));
            }
        }
        match (self.next.take(), hub) {
            (Some(Next::Hub(g)), false) => {
                let why = if g == Guarantee::G10 {
                    "asked DPS again instead of trying the cached hub after DPS did not answer"
                } else {
                    "asked DPS after a plain 500, a drop or CONNACK 1, before the G3 threshold"
                };
                return Err((g, String::from(why)));
            }
            (Some(Next::Dps(g)), true) => {
                return Err((
                    g,
                    String::from(
                        "connected to a hub after a DPS error without a cached hub, instead of asking DPS",
                    ),
                ));
            }
            _ => {}
        }
        if let Some((t, g)) = self.not_before.take()
            && at.plus(tol) < t
        {
            return Err((g, format!("next attempt at {at}, not before {t} allowed")));
        }
        self.in_flight = Some(at);
        self.connected = None;
        self.stable_at = None;
        self.last_start = Some(at);
        self.quiet_since = None;
        Ok(())
    }

    /// An attempt is still in flight at `at` when it has had no answer and the device cannot
    /// yet have abandoned it (SPEC §3.2: `AttemptTimeout`).
    fn still_in_flight(&self, cfg: &Config, tol: Duration, at: Millis) -> bool {
        self.in_flight
            .is_some_and(|since| at.plus(tol) < since.plus(cfg.attempt_timeout))
    }

    fn check_dps_not_before(&mut self, tol: Duration, at: Millis) -> Result<(), Broken> {
        if let Some(t) = self.dps_not_before.take()
            && at.plus(tol) < t
        {
            return Err((
                Guarantee::G6,
                format!("DPS request at {at}, retry-after allowed none before {t}"),
            ));
        }
        self.quiet_since = None;
        Ok(())
    }

    fn unreachable_failure(&mut self, cfg: &Config, at: Millis) {
        self.unreachable += 1;
        if self.unreachable >= cfg.unreachable_threshold {
            self.threshold(cfg, at, Guarantee::G1);
        }
        self.failed(at, None, cfg.fast.floor);
    }

    /// True when the incident may ask DPS: a threshold was reached, a refusal of the auth
    /// class was seen, or DPS was already asked (the gate decides when).
    fn owed(&self, cfg: &Config) -> bool {
        self.question_due.is_some()
            || self.asked
            || self.auth_refusals > 0
            || self.unreachable >= cfg.unreachable_threshold
            || self.unavailable >= cfg.unavailable_threshold
    }

    /// An incident reached a threshold: DPS is due, at once or at the paced time.
    fn threshold(&mut self, cfg: &Config, at: Millis, g: Guarantee) {
        if !self.asked && self.question_due.is_none() {
            self.question_due = Some((at.plus(cfg.reprovision_spread), g));
        }
    }

    fn failed(&mut self, at: Millis, next: Option<Next>, floor: Duration) {
        self.next = next;
        self.not_before = Some((at.plus(floor), Guarantee::G5));
        self.quiet_since = Some(at);
    }

    /// Clears the threshold counters; `gate` also ends the incident's DPS rounds.
    fn clear_incident(&mut self, gate: bool) {
        self.unreachable = 0;
        self.unavailable = 0;
        self.auth_refusals = 0;
        self.refused_fingerprint = None;
        self.question_due = None;
        if gate {
            self.asked = false;
            self.questions = 0;
            self.last_question = None;
        }
    }

    fn connack(&mut self, cfg: &Config, at: Millis, code: u8) {
        self.in_flight = None;
        let credential = self.pending.take().and_then(|p| p.credential);
        match classify(&WireSignal::ConnAck(code)) {
            Class::Accepted => {
                self.connected = Some(Live {
                    expiry: credential.map(|c| at.plus(c.valid_for)),
                });
                self.stable_at = Some(at.plus(cfg.stable_after));
                self.clear_incident(false);
                self.blocked = false;
                self.next = None;
                self.not_before = None;
            }
            Class::AuthRefused => {
                self.auth_refusals += 1;
                self.refused_fingerprint = credential.map(|c| c.fingerprint);
                self.quiet_since = Some(at);
                let needed = if credential.is_some() { 2 } else { 1 };
                if self.auth_refusals >= needed && !self.asked {
                    self.threshold(cfg, at, Guarantee::G2);
                } else if self.asked {
                    // G2: once DPS was asked in the incident, refusals back off first.
                    self.not_before = Some((at.plus(cfg.fast.floor), Guarantee::G2));
                }
            }
            Class::ClientBug => {
                // Never a reason to ask DPS, unless the incident already owes a question.
                let next = (!self.owed(cfg)).then_some(Next::Hub(Guarantee::G5));
                self.failed(at, next, cfg.slow.floor);
            }
            _ => {
                self.unavailable += 1;
                if self.unavailable >= cfg.unavailable_threshold {
                    self.threshold(cfg, at, Guarantee::G3);
                }
                let next = (!self.owed(cfg)).then_some(Next::Hub(Guarantee::G5));
                let floor = cfg.profile(self.blocked).floor;
                self.failed(at, next, floor);
            }
        }
    }

    fn disconnect(&mut self, cfg: &Config, at: Millis, by: Side) {
        let was_connected = self.connected.take().is_some();
        self.stable_at = None;
        if !was_connected && self.in_flight.is_some() {
            // Closed during CONNECT: a refusal below MQTT.
            self.in_flight = None;
            self.pending = None;
            if by == Side::Cloud {
                self.unreachable_failure(cfg, at);
            }
            return;
        }
        if was_connected && by == Side::Cloud {
            self.failed(at, Some(Next::Hub(Guarantee::G5)), cfg.fast.floor);
        }
    }

    fn end(&self, cfg: &Config, tol: Duration, at: Millis) -> Result<(), Broken> {
        let backoff = if self.assigned_backoff {
            cfg.fast.cap
        } else {
            Duration::ZERO
        };
        if let Some(hub) = &self.assigned
            && let Some(since) = self.quiet_since
            && at > since.plus(backoff + cfg.spacing(false) + cfg.attempt_timeout + tol)
        {
            return Err((
                Guarantee::G8,
                format!("DPS assigned {hub} at {since}, but the device never connected"),
            ));
        }
        Ok(())
    }
}

/// The longest silence after a failure: the longest delay, plus a timeout and the spacing.
fn quiet_bound(cfg: &Config) -> Duration {
    cfg.longest_delay() + cfg.attempt_timeout + cfg.spacing(true)
}
