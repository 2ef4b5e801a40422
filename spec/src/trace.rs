//! Trace validation (SPEC §8): is a run the cloud recorded a behaviour the spec allows?
//!
//! The vocabulary holds only what a cloud can see — DPS requests and answers, hub connects,
//! their CONNACK codes, refusals and disconnects, each with a timestamp — so the same check
//! grades devices that hubswap did not write. Each device is checked by a [`Monitor`], an
//! observer automaton whose rules are the cloud-visible parts of G1–G8.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use core::time::Duration;

use crate::config::Config;
use crate::guarantee::Guarantee;
use crate::time::Millis;

pub mod grade;

pub use grade::{GuaranteeGrade, Verdict, grade};

/// What a DPS request was.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DpsRequest {
    /// A register request: starts a registration (an attempt).
    Register,
    /// An operation-status poll: part of the registration that created the operation.
    Poll,
}

/// What DPS answered, as the cloud recorded it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DpsAnswer {
    /// `assigned` to this hub.
    Assigned {
        /// The `assignedHub`.
        hub: String,
    },
    /// 202 `assigning`.
    Assigning,
    /// `failed` with this error code (400209: blocked).
    Failed {
        /// The DPS error code.
        error_code: u32,
    },
    /// `disabled`.
    Disabled,
    /// A non-2xx status (401, 429, 500, ...).
    Status {
        /// The status.
        status: u16,
        /// The `retry-after` sent with it.
        retry_after: Option<Duration>,
    },
    /// The cloud did not answer (blackholed or dropped the request).
    Dropped,
}

/// The credential a hub CONNECT carried, without any secret.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Credential {
    /// A fingerprint that differs between tokens (for example a hash of the signature).
    pub fingerprint: u64,
    /// How long the token was still valid when the CONNECT arrived.
    pub valid_for: Duration,
}

/// Who closed a hub connection.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Side {
    /// The device closed it (DISCONNECT or socket close).
    Device,
    /// The cloud closed it (drop, kick, expiry, fault).
    Cloud,
}

/// One cloud-visible event.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Observed {
    /// DPS received a request.
    DpsRequest(DpsRequest),
    /// DPS answered (or dropped) the request.
    DpsResponse(DpsAnswer),
    /// A hub received a CONNECT.
    HubConnect {
        /// The hub.
        hub: String,
        /// The SAS token's fingerprint and remaining validity; `None` for X.509.
        credential: Option<Credential>,
    },
    /// The hub answered CONNECT with this code.
    ConnAck {
        /// The return code.
        code: u8,
    },
    /// The hub refused the connection below MQTT (reset, blackhole, TLS).
    HubRefused {
        /// The hub.
        hub: String,
    },
    /// An established connection closed.
    Disconnect {
        /// Who closed it.
        by: Side,
    },
    /// The recording ends here; end-of-trace bounds are checked against it.
    End,
}

/// One observation: when, which device, what.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Observation {
    /// On the cloud's monotonic clock.
    pub at: Millis,
    /// The device (registration id) it concerns.
    pub device: String,
    /// What happened.
    pub event: Observed,
}

/// A run that the spec does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{guarantee} violated by {device} at step {step} ({at}): {reason}")]
pub struct Divergence {
    /// The violated guarantee.
    pub guarantee: Guarantee,
    /// The index of the offending observation in the trace.
    pub step: usize,
    /// Its timestamp.
    pub at: Millis,
    /// The device.
    pub device: String,
    /// What went wrong, in words.
    pub reason: String,
}

/// The parameters of a trace check: the device's spec config and the timing tolerance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceCheck {
    /// The config the device claims to run.
    pub config: Config,
    /// Slack for timing bounds (network latency between device and cloud clocks).
    pub tolerance: Duration,
}

impl Default for TraceCheck {
    fn default() -> Self {
        Self {
            config: Config::default(),
            tolerance: Duration::from_millis(100),
        }
    }
}

/// Checks a trace against the default [`Config`] with a 100 ms tolerance.
pub fn validate_trace(observations: &[Observation]) -> Result<(), Divergence> {
    validate_trace_with(&TraceCheck::default(), observations)
}

/// Checks a trace, device by device, in timestamp order within each device.
pub fn validate_trace_with(
    check: &TraceCheck,
    observations: &[Observation],
) -> Result<(), Divergence> {
    let mut monitors: BTreeMap<&str, Monitor> = BTreeMap::new();
    let end = observations
        .iter()
        .filter(|o| o.event == Observed::End)
        .map(|o| o.at)
        .max();
    for (i, o) in observations.iter().enumerate() {
        if o.event == Observed::End {
            continue;
        }
        let m = monitors.entry(o.device.as_str()).or_default();
        m.observe(check, o.at, &o.event)
            .map_err(|(g, reason)| Divergence {
                guarantee: g,
                step: i,
                at: o.at,
                device: o.device.clone(),
                reason,
            })?;
    }
    if let Some(end) = end {
        for (device, m) in &mut monitors {
            m.observe(check, end, &Observed::End)
                .map_err(|(g, reason)| Divergence {
                    guarantee: g,
                    step: observations.len().saturating_sub(1),
                    at: end,
                    device: String::from(*device),
                    reason,
                })?;
        }
    }
    Ok(())
}

/// What the next attempt must satisfy, set by the last failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Next {
    /// Anything.
    Free,
    /// A hub connect (G5: same endpoint after a plain 500 or a drop).
    Hub,
    /// A DPS request (G5 after DPS 5xx; G2 after a refused fresh token).
    Dps(Guarantee),
}

/// The observer automaton for one device (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Monitor {
    /// When the request or CONNECT in flight started; the device abandons it after
    /// `attempt_timeout`, so an unanswered attempt stops counting then.
    in_flight: Option<Millis>,
    /// Connected, with the token's expiry when it is a SAS token.
    connected: Option<Live>,
    /// A hub connect awaiting its CONNACK, with the credential it carried.
    pending: Option<Pending>,
    last_start: Option<Millis>,
    unreachable: u32,
    unavailable: u32,
    auth_refusals: u32,
    refused_fingerprint: Option<u64>,
    dps_in_incident: bool,
    blocked: bool,
    assigned: Option<String>,
    next: Option<Next>,
    not_before: Option<(Millis, Guarantee)>,
    quiet_since: Option<Millis>,
}

type Broken = (Guarantee, String);

/// A live connection, as the monitor tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Live {
    expiry: Option<Millis>,
}

/// A hub connect awaiting its CONNACK.
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
        match event {
            Observed::HubConnect { hub, credential } => {
                self.attempt_start(cfg, tol, at, true)?;
                if self.unreachable >= cfg.unreachable_threshold {
                    return Err((
                        Guarantee::G1,
                        format!(
                            "hub connect after {} unreachable failures without DPS",
                            self.unreachable
                        ),
                    ));
                }
                if self.unavailable >= cfg.unavailable_threshold {
                    return Err((
                        Guarantee::G3,
                        format!(
                            "hub connect after {} CONNACK 3 refusals without DPS",
                            self.unavailable
                        ),
                    ));
                }
                if let Some(assigned) = &self.assigned
                    && assigned != hub
                {
                    return Err((
                        Guarantee::G1,
                        format!("connected to {hub}, but DPS assigned {assigned}"),
                    ));
                }
                if let (Some(fp), Some(c)) = (self.refused_fingerprint, credential)
                    && c.fingerprint == fp
                {
                    return Err((
                        Guarantee::G2,
                        String::from("reconnected with the token the hub refused"),
                    ));
                }
                self.pending = Some(Pending {
                    credential: *credential,
                });
                self.refused_fingerprint = None;
                self.assigned = None;
            }
            Observed::DpsRequest(DpsRequest::Register) => {
                self.attempt_start(cfg, tol, at, false)?;
                self.unreachable = 0;
                self.unavailable = 0;
                if self.auth_refusals > 0 {
                    self.dps_in_incident = true;
                }
                self.assigned = None;
            }
            Observed::DpsRequest(DpsRequest::Poll) => {
                if self.still_in_flight(cfg, tol, at) {
                    return Err((
                        Guarantee::G7,
                        String::from("poll while another request is in flight"),
                    ));
                }
                self.check_not_before(tol, at)?;
                self.in_flight = Some(at);
            }
            Observed::DpsResponse(answer) => self.dps_answer(cfg, at, answer),
            Observed::ConnAck { code } => self.connack(cfg, at, *code),
            Observed::HubRefused { .. } => {
                self.in_flight = None;
                self.pending = None;
                self.unreachable += 1;
                self.failed(at, Next::Free, cfg.fast.floor);
            }
            Observed::Disconnect { by } => self.disconnect(cfg, at, *by),
            Observed::End => self.end(cfg, tol, at)?,
        }
        Ok(())
    }

    /// Moves every remembered time `delta` ms towards the epoch (for the model checks).
    #[must_use]
    pub fn shifted(&self, delta: u64) -> Self {
        let mut m = self.clone();
        m.connected = m.connected.map(|l| Live {
            expiry: l.expiry.map(|t| t.minus_ms(delta)),
        });
        m.last_start = m.last_start.map(|t| t.minus_ms(delta));
        m.in_flight = m.in_flight.map(|t| t.minus_ms(delta));
        m.not_before = m.not_before.map(|(t, g)| (t.minus_ms(delta), g));
        m.quiet_since = m.quiet_since.map(|t| t.minus_ms(delta));
        m
    }

    /// The monitor with every remembered time that can no longer matter at `now` forgotten
    /// or clamped, so that equivalent monitors compare equal (for the model checks).
    #[must_use]
    pub fn normalized(&self, check: &TraceCheck, now: Millis) -> Self {
        let cfg = &check.config;
        let mut m = self.clone();
        let spacing_horizon = Millis(now.0.saturating_sub(crate::time::ms(cfg.spacing(true))));
        m.last_start = m.last_start.map(|t| t.max(spacing_horizon));
        let abandon_horizon = Millis(now.0.saturating_sub(crate::time::ms(cfg.attempt_timeout)));
        m.in_flight = m.in_flight.map(|t| t.max(abandon_horizon));
        m.not_before = m.not_before.filter(|(t, _)| *t > now);
        let quiet = cfg.longest_delay() + cfg.attempt_timeout + cfg.spacing(true) + check.tolerance;
        let quiet_horizon = Millis(now.0.saturating_sub(crate::time::ms(quiet) + 1));
        m.quiet_since = m.quiet_since.map(|t| t.max(quiet_horizon));
        m.unreachable = m.unreachable.min(cfg.unreachable_threshold);
        m.unavailable = m.unavailable.min(cfg.unavailable_threshold);
        m.auth_refusals = m.auth_refusals.min(2);
        m
    }

    /// The guarantee whose timing bound the next request must respect, if any.
    pub fn awaiting(&self) -> Option<Guarantee> {
        self.not_before.map(|(_, g)| g)
    }

    /// Forgets what the next attempt must satisfy (after a reported divergence, so that one
    /// fault is reported once).
    pub fn forget_expectations(&mut self) {
        self.next = None;
        self.not_before = None;
        self.quiet_since = None;
        self.in_flight = None;
        self.connected = None;
        self.unreachable = 0;
        self.unavailable = 0;
        self.refused_fingerprint = None;
        self.assigned = None;
    }

    /// Forgets expectations after the application intervened (a command the cloud cannot see).
    pub fn app_intervened(&mut self) {
        self.next = None;
        self.not_before = None;
        self.quiet_since = None;
        self.assigned = None;
        self.unreachable = 0;
        self.unavailable = 0;
        self.auth_refusals = 0;
        self.refused_fingerprint = None;
        self.dps_in_incident = false;
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
            let bound = cfg.longest_delay() + cfg.attempt_timeout + cfg.spacing(true) + tol;
            if at > since.plus(bound) {
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
                    format!("blocked, yet attempts {} apart", at.0 - last.0),
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
            (Some(Next::Hub), false) => {
                return Err((
                    Guarantee::G5,
                    String::from("asked DPS after a plain 500 or drop, before the G3 threshold"),
                ));
            }
            (Some(Next::Dps(g)), true) => {
                let why = if g == Guarantee::G2 {
                    "a refused fresh token"
                } else {
                    "a DPS error"
                };
                return Err((
                    g,
                    format!("connected to a hub after {why} instead of asking DPS"),
                ));
            }
            _ => {}
        }
        self.check_not_before(tol, at)?;
        self.in_flight = Some(at);
        self.connected = None;
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

    fn check_not_before(&mut self, tol: Duration, at: Millis) -> Result<(), Broken> {
        if let Some((t, g)) = self.not_before.take()
            && at.plus(tol) < t
        {
            return Err((g, format!("next request at {at}, not before {t} allowed")));
        }
        self.quiet_since = None;
        Ok(())
    }

    fn failed(&mut self, at: Millis, next: Next, floor: Duration) {
        self.next = Some(next);
        self.not_before = Some((at.plus(floor), Guarantee::G5));
        self.quiet_since = Some(at);
    }

    fn connack(&mut self, cfg: &Config, at: Millis, code: u8) {
        self.in_flight = None;
        let credential = self.pending.take().and_then(|p| p.credential);
        match code {
            0 => {
                self.connected = Some(Live {
                    expiry: credential.map(|c| at.plus(c.valid_for)),
                });
                self.unreachable = 0;
                self.unavailable = 0;
                self.auth_refusals = 0;
                self.refused_fingerprint = None;
                self.dps_in_incident = false;
                self.blocked = false;
                self.next = None;
                self.not_before = None;
            }
            2 | 4 | 5 => {
                self.auth_refusals += 1;
                self.refused_fingerprint = credential.map(|c| c.fingerprint);
                self.quiet_since = Some(at);
                if self.auth_refusals >= 2 && !self.dps_in_incident {
                    self.next = Some(Next::Dps(Guarantee::G2));
                } else if self.dps_in_incident {
                    // G2: DPS at most once per incident before backing off.
                    self.not_before = Some((at.plus(cfg.fast.floor), Guarantee::G2));
                }
            }
            _ => {
                self.unavailable += 1;
                let next = if self.unavailable < cfg.unavailable_threshold {
                    Next::Hub
                } else {
                    Next::Free
                };
                let floor = cfg.profile(self.blocked).floor;
                self.failed(at, next, floor);
            }
        }
    }

    fn disconnect(&mut self, cfg: &Config, at: Millis, by: Side) {
        let was_connected = self.connected.take().is_some();
        if !was_connected && self.in_flight.is_some() {
            // Closed during CONNECT: a refusal below MQTT.
            self.in_flight = None;
            self.pending = None;
            if by == Side::Cloud {
                self.unreachable += 1;
                self.failed(at, Next::Free, cfg.fast.floor);
            }
            return;
        }
        if was_connected && by == Side::Cloud {
            self.failed(at, Next::Hub, cfg.fast.floor);
        }
    }

    fn dps_answer(&mut self, cfg: &Config, at: Millis, answer: &DpsAnswer) {
        self.in_flight = None;
        match answer {
            DpsAnswer::Assigned { hub } => {
                self.assigned = Some(hub.clone());
                self.blocked = false;
                self.next = None;
                self.not_before = None;
                self.quiet_since = Some(at);
            }
            DpsAnswer::Assigning => {}
            DpsAnswer::Failed { .. } | DpsAnswer::Disabled => self.blocked_answer(at),
            DpsAnswer::Status {
                status: 429,
                retry_after,
            } => {
                self.next = Some(Next::Dps(Guarantee::G6));
                let wait = retry_after.unwrap_or_default().min(cfg.max_retry_after);
                self.not_before = Some((at.plus(wait), Guarantee::G6));
                self.quiet_since = Some(at);
            }
            DpsAnswer::Status { status, .. } if (400..500).contains(status) => {
                self.blocked_answer(at);
            }
            DpsAnswer::Status { .. } | DpsAnswer::Dropped => {
                let floor = cfg.profile(self.blocked).floor;
                self.failed(at, Next::Dps(Guarantee::G5), floor);
            }
        }
    }

    fn blocked_answer(&mut self, at: Millis) {
        self.blocked = true;
        self.next = None;
        self.quiet_since = Some(at);
    }

    fn end(&self, cfg: &Config, tol: Duration, at: Millis) -> Result<(), Broken> {
        if let Some(hub) = &self.assigned
            && let Some(since) = self.quiet_since
            && at > since.plus(cfg.spacing(false) + cfg.attempt_timeout + tol)
        {
            return Err((
                Guarantee::G8,
                format!("DPS assigned {hub} at {since}, but the device never connected"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
