//! The fault overlay, beside the registry: which faults are active, what they changed, and the
//! questions the listeners ask at each step of a connection or request (`gates`). Applying and
//! ending a fault (`apply`, `failover`) goes through the registry's controls; the hub listeners
//! are reached through the narrow [`Listeners`] handle the cloud passes in.
//!
//! The overlay's state has its own mutex, never held across an await. Where the registry's
//! state is needed too, the registry is locked first. Every lookup ignores faults whose time is
//! up (the timer that logs their end may run a moment later) and uses up counts.

mod apply;
mod failover;
mod gates;
mod throttle;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hubswap_spec::Millis;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::fault::{
    ActiveFault, DpsError, Fault, FaultId, FaultOptions, HubError, Network, OutageMode, RefuseAt,
    Throttle,
};
use crate::log::{Event, FaultPhase};
use crate::registry::Registry;

/// The hub listeners, as far as faults touch them: `hub-down closed` and `name-gone` close
/// one, `hub-restore` (and the end of such an outage) reopens it on the same address.
pub(crate) trait Listeners: Send + Sync + 'static {
    /// Closes the hub's listener: new connections are refused by the kernel.
    fn stop(&self, hub: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Reopens the hub's listener on its previous address (no-op when it listens).
    fn start(&self, hub: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// What happens to a connection at TCP accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Open,
    Reset,
    Blackhole,
}

/// What happens after CONNECT, before CONNACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterConnect {
    Proceed,
    Reset,
    Blackhole,
    /// Hold CONNACK this long (`None`: while the fault lasts).
    Hold(Option<Duration>),
}

/// A fault in force.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    pub fault: Fault,
    pub applied: Millis,
    pub until: Option<Instant>,
    pub until_ms: Option<Millis>,
    pub remaining: Option<u32>,
    /// For a hub failover: the hub's allocation flag before it.
    pub allocation_before: Option<(String, bool)>,
}

impl Active {
    fn live(&self, now: Instant) -> bool {
        self.until.is_none_or(|u| now < u) && self.remaining != Some(0)
    }
}

/// A device moved by a failover: where it came from, and which fault moved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Moved {
    pub from: String,
    pub to: String,
    pub fault: FaultId,
}

/// A hub outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outage {
    pub mode: OutageMode,
    pub refuse_at: RefuseAt,
    pub name: String,
    pub fault: FaultId,
}

/// A reconnect refusal after a strict fault-injection fault.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal {
    pub until: Instant,
    pub code: u8,
}

/// Everything the faults add to the cloud.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    next_id: u64,
    pub active: BTreeMap<FaultId, Active>,
    pub options: FaultOptions,
    pub failovers: BTreeMap<String, Moved>,
    pub outages: BTreeMap<String, Outage>,
    /// Revoked SAS token fingerprints per device.
    pub revoked: HashMap<String, HashSet<u64>>,
    /// Devices whose hub identity refuses every token until they register with DPS again.
    pub stale_identity: HashSet<String>,
    /// The fingerprint of the token each device last presented to a hub.
    pub last_token: HashMap<String, u64>,
    /// Register requests in the last minute (throttling).
    pub registrations: VecDeque<Instant>,
    /// Polls per device in the current window (throttling).
    pub polls: HashMap<String, VecDeque<Instant>>,
    pub refusals: HashMap<String, Refusal>,
}

impl FaultState {
    pub(crate) fn next_id(&mut self) -> FaultId {
        self.next_id += 1;
        FaultId(self.next_id)
    }

    /// The host DPS hands out for `hub` (another one while its name is gone).
    pub(crate) fn public_hub<'a>(&'a self, hub: &'a str) -> &'a str {
        match self.outages.get(hub) {
            Some(o) if o.mode == OutageMode::NameGone => &o.name,
            _ => hub,
        }
    }

    /// Whether a hub's listener is closed by an outage.
    pub(crate) fn listener_closed(&self, hub: &str) -> bool {
        self.outages
            .get(hub)
            .is_some_and(|o| matches!(o.mode, OutageMode::Closed | OutageMode::NameGone))
    }

    /// Whether this token of `device` was revoked by `expire-token`.
    pub(crate) fn revoked(&self, device: &str, fingerprint: u64) -> bool {
        self.revoked
            .get(device)
            .is_some_and(|r| r.contains(&fingerprint))
    }

    pub(crate) fn list(&self) -> Vec<ActiveFault> {
        let now = Instant::now();
        self.active
            .iter()
            .filter(|(_, a)| a.live(now))
            .map(|(id, a)| ActiveFault {
                id: *id,
                fault: a.fault.clone(),
                applied_at: a.applied,
                until: a.until_ms,
                remaining: a.remaining,
            })
            .collect()
    }

    /// The live faults, with ids, that `pick` selects.
    fn matching<T>(&self, mut pick: impl FnMut(&Fault) -> Option<T>) -> Vec<(FaultId, T)> {
        let now = Instant::now();
        self.active
            .iter()
            .filter(|(_, a)| a.live(now))
            .filter_map(|(id, a)| pick(&a.fault).map(|t| (*id, t)))
            .collect()
    }
}

/// The fault overlay: its state, and the registry it acts through.
#[derive(Debug)]
pub(crate) struct Overlay {
    registry: Arc<Registry>,
    state: Mutex<FaultState>,
    /// Bumped whenever a fault is applied or ends (for connections waiting on one).
    pub epoch: watch::Sender<u64>,
    /// Cancelled when the cloud shuts down (ends the timers of faults with a duration).
    shutdown: CancellationToken,
}

impl Overlay {
    pub(crate) fn new(registry: Arc<Registry>, shutdown: CancellationToken) -> Self {
        Self {
            registry,
            state: Mutex::new(FaultState::default()),
            epoch: watch::Sender::new(0),
            shutdown,
        }
    }

    /// Locks the overlay's state (after the registry's, when both are needed).
    pub(crate) fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How unconfirmed conditions are rendered right now.
    pub(crate) fn options(&self) -> FaultOptions {
        self.lock().options
    }

    /// Uses one count of fault `id`; logs and removes it when used up.
    pub(crate) fn use_count(&self, state: &mut FaultState, id: FaultId) {
        let Some(active) = state.active.get_mut(&id) else {
            return;
        };
        if let Some(n) = active.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0
                && let Some(a) = state.active.remove(&id)
            {
                self.log_fault(FaultPhase::Exhausted, id, &a.fault, "count used up".into());
            }
        }
    }

    /// Logs a fault record (with the device it names, if one).
    pub(crate) fn log_fault(&self, phase: FaultPhase, id: FaultId, fault: &Fault, detail: String) {
        self.registry.log.record(
            fault.device(),
            Event::Fault {
                phase,
                id,
                fault: fault.clone(),
                detail,
            },
        );
    }
}

/// What an active fault asks of the edges while it lasts. Faults that act when applied, or
/// through the registry (failover, block, ...), ask nothing.
#[derive(Debug, Clone, Copy)]
enum Edge<'a> {
    DpsError(&'a DpsError),
    HubError(&'a HubError),
    Network(&'a Network),
    Throttle(&'a Throttle),
    Nothing,
}

/// Every variant is named, so a new fault does not compile until it is placed here.
fn edge(f: &Fault) -> Edge<'_> {
    match f {
        Fault::DpsError(e) => Edge::DpsError(e),
        Fault::HubError(e) => Edge::HubError(e),
        Fault::Network(n) => Edge::Network(n),
        Fault::Throttle(t) => Edge::Throttle(t),
        Fault::Failover(_)
        | Fault::Failback(_)
        | Fault::HubDown(_)
        | Fault::HubRestore(_)
        | Fault::ExpireToken(_)
        | Fault::ClockOffset(_)
        | Fault::Disable(_)
        | Fault::Enable(_)
        | Fault::Block(_)
        | Fault::Unblock(_)
        | Fault::Inject(_)
        | Fault::Options(_)
        | Fault::Clear(_) => Edge::Nothing,
    }
}
