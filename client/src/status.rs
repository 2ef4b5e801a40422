//! The connection status an application shows or logs: where the client is, and why.

use hubswap_spec as spec;
use spec::{Class, ConnectFailure, Input, Phase, Timer, WireSignal};

use crate::session::online;

/// Where the client is, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusKind {
    /// Not started yet.
    Idle,
    /// Waiting before the next attempt (backoff, spacing, or a DPS poll delay).
    Waiting,
    /// Talking to DPS.
    Provisioning,
    /// A hub CONNECT is in flight.
    Connecting,
    /// Connected to the hub; subscriptions and the twin resync are still in progress.
    Syncing,
    /// Connected, subscribed and in sync with the twin.
    Connected,
    /// Shut down.
    Stopped,
}

/// Why the client last left, or failed to reach, the connected states.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The hub could not be reached.
    HubUnreachable(ConnectFailure),
    /// The hub refused the CONNECT with this CONNACK code.
    Refused(u8),
    /// The connection dropped after CONNACK 0.
    ConnectionLost,
    /// A planned reconnect to renew the SAS token.
    TokenRenewal,
    /// An attempt got no answer within the attempt timeout.
    AttemptTimeout,
    /// DPS refused the device (blocked, unapproved, disabled, or credentials refused).
    DpsBlocked,
    /// DPS throttled the device (429).
    DpsThrottled,
    /// DPS failed transiently (5xx, unreachable, malformed answer).
    DpsTransient,
    /// The application asked to provision again.
    ReprovisionRequested,
    /// The application shut the client down.
    Shutdown,
}

impl Reason {
    /// The reason a spec step records: only steps that change the phase record one, so stale
    /// inputs that the spec ignores leave the reason alone.
    pub(crate) fn of(input: &Input, before: &Phase, after: &Phase) -> Option<Self> {
        if before == after {
            return None;
        }
        match input {
            Input::Command(spec::Command::Stop) => Some(Self::Shutdown),
            Input::Command(spec::Command::ReprovisionNow) => Some(Self::ReprovisionRequested),
            Input::TimerFired(Timer::AttemptTimeout) => Some(Self::AttemptTimeout),
            Input::TimerFired(Timer::Renew) => Some(Self::TokenRenewal),
            Input::Command(spec::Command::Start)
            | Input::TimerFired(Timer::Wake | Timer::Stable) => None,
            Input::Signal(sig) => Self::of_signal(sig),
        }
    }

    fn of_signal(sig: &WireSignal) -> Option<Self> {
        match (spec::classify(sig), sig) {
            (Class::Unreachable, WireSignal::ConnectFailed(f)) => Some(Self::HubUnreachable(*f)),
            (Class::AuthRefused | Class::Unavailable, WireSignal::ConnAck(code)) => {
                Some(Self::Refused(*code))
            }
            (Class::Dropped, _) => Some(Self::ConnectionLost),
            (Class::RenewToken, _) => Some(Self::TokenRenewal),
            (Class::Blocked, _) => Some(Self::DpsBlocked),
            (Class::Throttled { .. }, _) => Some(Self::DpsThrottled),
            (Class::DpsTransient, _) => Some(Self::DpsTransient),
            _ => None,
        }
    }
}

/// The status published on the client's `watch` channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionStatus {
    /// Where the client is.
    pub kind: StatusKind,
    /// Why it last left (or failed to reach) the connected states, if it ever did.
    pub reason: Option<Reason>,
}

impl ConnectionStatus {
    /// The status of a session: the spec's phase, refined inside `Connected` by the online
    /// sub-state.
    pub(crate) fn of(phase: &Phase, online: &online::State, reason: Option<Reason>) -> Self {
        let kind = match phase {
            Phase::Idle => StatusKind::Idle,
            Phase::Waiting { .. } => StatusKind::Waiting,
            Phase::Registering | Phase::Polling { .. } => StatusKind::Provisioning,
            Phase::Connecting { .. } => StatusKind::Connecting,
            Phase::Connected { .. } if matches!(online, online::State::Ready {}) => {
                StatusKind::Connected
            }
            Phase::Connected { .. } => StatusKind::Syncing,
            Phase::Stopped => StatusKind::Stopped,
        };
        Self { kind, reason }
    }

    /// True when the client is connected and in sync.
    pub fn is_connected(&self) -> bool {
        self.kind == StatusKind::Connected
    }
}

impl std::fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            Some(r) => write!(f, "{:?} (last: {r:?})", self.kind),
            None => write!(f, "{:?}", self.kind),
        }
    }
}
