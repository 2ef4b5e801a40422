//! The state of the spec (SPEC §1.1): where the device is, plus everything the policy remembers.

use alloc::string::String;

use crate::time::Millis;

/// What DPS assigned: the hub to connect to and the device id to use there.
///
/// This is the assignment cache's content. It is part of the state, and a cached assignment is
/// used at start-up without calling DPS (SPEC §1.3).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Assignment {
    /// The hub host name DPS returned as `assignedHub`.
    pub hub: String,
    /// The device id DPS returned as `deviceId`.
    pub device_id: String,
}

/// The attempt a [`Phase::Waiting`] state starts when its timer fires.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Next {
    /// A DPS registration (register request).
    Register,
    /// A poll of a DPS operation, part of the registration that created it.
    Poll {
        /// The DPS operation id.
        operation: String,
    },
    /// A hub connect to the cached assignment.
    Connect,
}

/// Where the device is.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Phase {
    /// Not started.
    Idle,
    /// Nothing in flight; [`Timer::Wake`] starts `next`.
    Waiting {
        /// The attempt to start.
        next: Next,
    },
    /// A DPS register request is in flight.
    Registering,
    /// A DPS operation poll is in flight.
    Polling {
        /// The DPS operation id.
        operation: String,
    },
    /// A hub CONNECT is in flight.
    Connecting {
        /// Whether the token was minted for this attempt (G2's fresh-token retry).
        fresh_token: bool,
    },
    /// CONNACK 0 received; the connection is up.
    Connected {
        /// When CONNACK 0 arrived.
        since: Millis,
    },
    /// Stopped by the application; terminal.
    Stopped,
}

/// Kinds of [`Phase`], for tables, coverage and messages.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PhaseKind {
    /// [`Phase::Idle`].
    Idle,
    /// [`Phase::Waiting`].
    Waiting,
    /// [`Phase::Registering`].
    Registering,
    /// [`Phase::Polling`].
    Polling,
    /// [`Phase::Connecting`].
    Connecting,
    /// [`Phase::Connected`].
    Connected,
    /// [`Phase::Stopped`].
    Stopped,
}

impl PhaseKind {
    /// Every kind.
    pub const ALL: [Self; 7] = [
        Self::Idle,
        Self::Waiting,
        Self::Registering,
        Self::Polling,
        Self::Connecting,
        Self::Connected,
        Self::Stopped,
    ];
}

impl Phase {
    /// The fieldless kind.
    pub fn kind(&self) -> PhaseKind {
        match self {
            Self::Idle => PhaseKind::Idle,
            Self::Waiting { .. } => PhaseKind::Waiting,
            Self::Registering => PhaseKind::Registering,
            Self::Polling { .. } => PhaseKind::Polling,
            Self::Connecting { .. } => PhaseKind::Connecting,
            Self::Connected { .. } => PhaseKind::Connected,
            Self::Stopped => PhaseKind::Stopped,
        }
    }

    /// True while a DPS request or a hub CONNECT is in flight.
    pub fn is_in_flight(&self) -> bool {
        matches!(
            self,
            Self::Registering | Self::Polling { .. } | Self::Connecting { .. }
        )
    }
}

/// Where the G2 fresh-token retry stands in the current auth incident.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum AuthStage {
    /// No auth refusal since the last CONNACK 0.
    #[default]
    Clear,
    /// A refused stale token was replaced by a fresh one.
    FreshTokenTried,
    /// A fresh token was refused too (or the device uses X.509): the refusals count as a
    /// hub-side failure, and DPS is asked through the gate (G2, G9).
    DpsAsked,
}

/// The spec's timers. Each is armed by [`crate::Action::ArmTimer`] and reported back by
/// [`crate::Input::TimerFired`]; a firing for a timer that is not armed is stale and ignored.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Timer {
    /// Start the [`Next`] attempt of [`Phase::Waiting`].
    Wake,
    /// Abandon the attempt in flight.
    AttemptTimeout,
    /// The connection has been up for `stable_after`: reset the backoff.
    Stable,
    /// The token reached its renewal point: planned reconnect.
    Renew,
}

impl Timer {
    /// Every timer, in firing order for equal deadlines.
    pub const ALL: [Self; 4] = [Self::Wake, Self::AttemptTimeout, Self::Stable, Self::Renew];

    fn index(self) -> usize {
        match self {
            Self::Wake => 0,
            Self::AttemptTimeout => 1,
            Self::Stable => 2,
            Self::Renew => 3,
        }
    }
}

/// The armed deadline of every timer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timers([Option<Millis>; 4]);

impl Timers {
    /// The deadline of `t`, if armed.
    pub fn get(&self, t: Timer) -> Option<Millis> {
        self.0[t.index()]
    }

    pub(crate) fn set(&mut self, t: Timer, at: Option<Millis>) {
        self.0[t.index()] = at;
    }

    /// The earliest armed deadline and its timer.
    pub fn earliest(&self) -> Option<(Timer, Millis)> {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.get(t).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// The hub token the device holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Token {
    /// When it was minted.
    pub minted_at: Millis,
    /// Its `se`, on the driver's clock.
    pub expires_at: Millis,
}

/// The full state of the spec.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct State {
    /// Where the device is.
    pub phase: Phase,
    /// The assignment cache (SPEC §1.3).
    pub cache: Option<Assignment>,
    /// The attempt number fed to [`crate::backoff()`]; saturates at the profile's saturation.
    pub attempt: u32,
    /// Consecutive unreachable-class hub failures since the last assignment or CONNACK 0 (G1).
    pub unreachable: u32,
    /// Consecutive CONNACK 1/3 refusals since the last assignment or CONNACK 0 (G3).
    pub unavailable: u32,
    /// The fresh-token retry of the current auth incident (G2).
    pub auth: AuthStage,
    /// DPS reported the device blocked and has not assigned it since (G4).
    pub blocked: bool,
    /// DPS registrations of the current incident that DPS answered with the hub that refused,
    /// or did not answer; saturates where the gate's ceiling meets its cap (G9).
    pub rounds: u32,
    /// No DPS registration of the current incident starts before this (G9, G6).
    pub recheck_at: Option<Millis>,
    /// The hub token, once minted.
    pub token: Option<Token>,
    /// When the last attempt (hub CONNECT or DPS registration) started (G7).
    pub last_attempt: Option<Millis>,
    /// The armed timers.
    pub timers: Timers,
}

impl State {
    /// The state before [`crate::Command::Start`], with the cache as the store holds it.
    pub fn new(cache: Option<Assignment>) -> Self {
        Self {
            phase: Phase::Idle,
            cache,
            attempt: 0,
            unreachable: 0,
            unavailable: 0,
            auth: AuthStage::Clear,
            blocked: false,
            rounds: 0,
            recheck_at: None,
            token: None,
            last_attempt: None,
            timers: Timers::default(),
        }
    }

    /// The state moved `delta` ms towards the epoch.
    ///
    /// The spec is invariant under time translation: `step(s.shifted(d), t - d)` equals
    /// `step(s, t)` shifted by `d`. The model checks rely on this to keep the state space finite.
    #[must_use]
    pub fn shifted(&self, delta: u64) -> Self {
        let mut s = self.clone();
        if let Phase::Connected { since } = &mut s.phase {
            *since = since.minus_ms(delta);
        }
        s.token = s.token.map(|t| Token {
            minted_at: t.minted_at.minus_ms(delta),
            expires_at: t.expires_at.minus_ms(delta),
        });
        s.last_attempt = s.last_attempt.map(|t| t.minus_ms(delta));
        s.recheck_at = s.recheck_at.map(|t| t.minus_ms(delta));
        for t in Timer::ALL {
            s.timers
                .set(t, s.timers.get(t).map(|at| at.minus_ms(delta)));
        }
        s
    }
}
