//! The fault overlay on the registry: what is active, and the questions the listeners ask at
//! each step of a connection or request ("may this CONNECT through?", "is this hub refusing?").
//! It lives in the registry's `State`, under the one mutex; every lookup ignores faults whose
//! time is up (the timer that logs their end may run a moment later) and uses up counts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use hubswap_spec::Millis;

use super::{
    ActiveFault, Fault, FaultId, FaultOptions, HubErrorMode, NetworkMode, OutageMode, RefuseAt,
    RequestFilter, TransportFilter,
};
use crate::log::{DpsRequestKind, Event, FaultPhase, Transport};
use crate::registry::{Core, State};

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

/// Everything the faults add to the registry state.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub next_id: u64,
    pub active: BTreeMap<FaultId, Active>,
    pub options: FaultOptions,
    pub failovers: BTreeMap<String, Moved>,
    pub outages: BTreeMap<String, Outage>,
    /// Revoked SAS token fingerprints per device.
    pub revoked: HashMap<String, HashSet<u64>>,
    /// The fingerprint of the token each device last presented to a hub.
    pub last_token: HashMap<String, u64>,
    /// Register requests in the last minute (throttling).
    pub registrations: VecDeque<Instant>,
    /// Polls per device in the current window (throttling).
    pub polls: HashMap<String, VecDeque<Instant>>,
    pub refusals: HashMap<String, Refusal>,
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

/// How a connection is closed by the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CloseHow {
    /// FIN with no MQTT packet and no TLS `close_notify` (3.1.1 has no server DISCONNECT).
    #[default]
    Drop,
    /// RST.
    Reset,
    /// TLS `close_notify`, then FIN.
    Graceful,
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

fn device_matches(filter: Option<&String>, device: Option<&str>) -> bool {
    filter.is_none_or(|f| Some(f.as_str()) == device)
}

fn network_hits(f: &super::Network, hub: Option<&str>, device: Option<&str>) -> bool {
    match (&f.device, &f.hub) {
        (Some(d), _) => Some(d.as_str()) == device,
        (None, Some(h)) => Some(h.as_str()) == hub,
        (None, None) => false,
    }
}

impl Core {
    /// Uses one count of fault `id`; logs and removes it when used up.
    pub(crate) fn use_count(&self, state: &mut State, id: FaultId) {
        let Some(active) = state.faults.active.get_mut(&id) else {
            return;
        };
        if let Some(n) = active.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0
                && let Some(a) = state.faults.active.remove(&id)
            {
                self.log_fault(FaultPhase::Exhausted, id, &a.fault, "count used up".into());
            }
        }
    }

    /// Logs a fault record (with the device it names, if one).
    pub(crate) fn log_fault(&self, phase: FaultPhase, id: FaultId, fault: &Fault, detail: String) {
        self.log.record(
            fault.device(),
            Event::Fault {
                phase,
                id,
                fault: fault.clone(),
                detail,
            },
        );
    }

    /// At TCP accept on a hub: refuse (reset), blackhole, or let through.
    pub(crate) fn hub_gate(&self, hub: &str) -> Gate {
        let mut state = self.lock();
        match state.faults.outages.get(hub).map(|o| (o.mode, o.refuse_at)) {
            Some((OutageMode::Refuse, RefuseAt::Accept)) => return Gate::Reset,
            Some((OutageMode::Blackhole, _)) => return Gate::Blackhole,
            _ => {}
        }
        let hit = state.faults.matching(|f| match f {
            Fault::Network(n)
                if n.device.is_none()
                    && n.hub.as_deref() == Some(hub)
                    && n.mode == NetworkMode::Blackhole =>
            {
                Some(())
            }
            _ => None,
        });
        match hit.first() {
            Some((id, ())) => {
                let id = *id;
                self.use_count(&mut state, id);
                Gate::Blackhole
            }
            None => Gate::Open,
        }
    }

    /// After CONNECT from `device` (on `hub`, or on DPS when `None`).
    pub(crate) fn after_connect(&self, hub: Option<&str>, device: &str) -> AfterConnect {
        let mut state = self.lock();
        if let Some(h) = hub
            && let Some(o) = state.faults.outages.get(h)
            && o.mode == OutageMode::Refuse
            && o.refuse_at == RefuseAt::Connect
        {
            return AfterConnect::Reset;
        }
        let hits = state.faults.matching(|f| match f {
            Fault::Network(n) if network_hits(n, hub, Some(device)) => match n.mode {
                NetworkMode::Blackhole => Some(AfterConnect::Blackhole),
                NetworkMode::HoldConnack => Some(AfterConnect::Hold(n.delay)),
                _ => None,
            },
            _ => None,
        });
        match hits.first() {
            Some((id, what)) => {
                let (id, what) = (*id, *what);
                self.use_count(&mut state, id);
                what
            }
            None => AfterConnect::Proceed,
        }
    }

    /// Whether a hold-CONNACK fault for this connection is still in force.
    pub(crate) fn still_holding(&self, hub: Option<&str>, device: &str) -> bool {
        !self
            .lock()
            .faults
            .matching(|f| match f {
                Fault::Network(n)
                    if n.mode == NetworkMode::HoldConnack && network_hits(n, hub, Some(device)) =>
                {
                    Some(())
                }
                _ => None,
            })
            .is_empty()
    }

    /// Whether the device's traffic is blackholed (a device network fault).
    pub(crate) fn blackholed(&self, hub: Option<&str>, device: &str) -> bool {
        !self
            .lock()
            .faults
            .matching(|f| match f {
                Fault::Network(n)
                    if n.mode == NetworkMode::Blackhole && network_hits(n, hub, Some(device)) =>
                {
                    Some(())
                }
                _ => None,
            })
            .is_empty()
    }

    /// Right after CONNACK 0: drop the new connection? (hub-error `drop`, network with `for`.)
    pub(crate) fn drop_after_connack(&self, hub: &str, device: &str) -> Option<(CloseHow, String)> {
        let mut state = self.lock();
        let hits = state.faults.matching(|f| match f {
            Fault::HubError(e)
                if e.mode == HubErrorMode::Drop
                    && e.hub == hub
                    && device_matches(e.device.as_ref(), Some(device)) =>
            {
                Some((CloseHow::Drop, "internal error (hub-error drop)".to_owned()))
            }
            Fault::Network(n)
                if n.duration.is_some() && network_hits(n, Some(hub), Some(device)) =>
            {
                match n.mode {
                    NetworkMode::Drop => Some((CloseHow::Drop, "network drop".to_owned())),
                    NetworkMode::Reset => Some((CloseHow::Reset, "network reset".to_owned())),
                    _ => None,
                }
            }
            _ => None,
        });
        let (id, what) = hits.into_iter().next()?;
        self.use_count(&mut state, id);
        Some(what)
    }

    /// How late to send packets to `device` (on `hub`, or DPS when `None`).
    pub(crate) fn send_delay(&self, hub: Option<&str>, device: &str) -> Option<Duration> {
        self.lock()
            .faults
            .matching(|f| match f {
                Fault::Network(n)
                    if n.mode == NetworkMode::Delay && network_hits(n, hub, Some(device)) =>
                {
                    n.delay
                }
                _ => None,
            })
            .into_iter()
            .map(|(_, d)| d)
            .max()
    }

    /// A twin request's failure status, if a hub-error `twin` fault hits it.
    pub(crate) fn twin_error(&self, hub: &str, device: &str) -> Option<u16> {
        let mut state = self.lock();
        let hits = state.faults.matching(|f| match f {
            Fault::HubError(e)
                if e.mode == HubErrorMode::Twin
                    && e.hub == hub
                    && device_matches(e.device.as_ref(), Some(device)) =>
            {
                Some(e.status.unwrap_or(500))
            }
            _ => None,
        });
        let (id, status) = hits.into_iter().next()?;
        self.use_count(&mut state, id);
        Some(status)
    }

    /// A CONNECT refusal from a fault (strict fault injection, hub-error `connack`), for a
    /// device whose credentials are good.
    pub(crate) fn fault_refusal(
        &self,
        state: &mut State,
        hub: &str,
        device: &str,
    ) -> Option<(u8, String)> {
        if let Some(r) = state.faults.refusals.get(device).copied() {
            if Instant::now() < r.until {
                return Some((r.code, "fault injection (strict)".into()));
            }
            state.faults.refusals.remove(device);
        }
        let hits = state.faults.matching(|f| match f {
            Fault::HubError(e)
                if e.mode == HubErrorMode::Connack
                    && e.hub == hub
                    && device_matches(e.device.as_ref(), Some(device)) =>
            {
                Some(e.code.unwrap_or(3))
            }
            _ => None,
        });
        let (id, code) = hits.into_iter().next()?;
        self.use_count(state, id);
        Some((code, format!("internal error (fault {id})")))
    }

    /// A DPS error answer a fault imposes on this request: `(status, errorCode, retry-after)`.
    pub(crate) fn dps_fault(
        &self,
        transport: Transport,
        request: DpsRequestKind,
        reg_id: &str,
    ) -> Option<(u16, u32, Option<u32>, String)> {
        let mut state = self.lock();
        let hits = state.faults.matching(|f| match f {
            Fault::DpsError(e)
                if transport_hits(e.transport, transport)
                    && request_hits(e.request, request)
                    && device_matches(e.device.as_ref(), Some(reg_id)) =>
            {
                Some((
                    e.status,
                    e.error_code.unwrap_or(u32::from(e.status) * 1000),
                    e.retry_after,
                ))
            }
            _ => None,
        });
        if let Some((id, (status, code, retry))) = hits.into_iter().next() {
            self.use_count(&mut state, id);
            return Some((status, code, retry, format!("injected by fault {id}")));
        }
        Self::throttled(&mut state, request, reg_id)
            .map(|retry| (429, 429_001, Some(retry), "throttled".to_owned()))
    }
}

fn transport_hits(filter: TransportFilter, t: Transport) -> bool {
    matches!(
        (filter, t),
        (TransportFilter::Any, _)
            | (TransportFilter::Mqtt, Transport::Mqtt)
            | (TransportFilter::Https, Transport::Https)
    )
}

fn request_hits(filter: RequestFilter, r: DpsRequestKind) -> bool {
    matches!(
        (filter, r),
        (RequestFilter::Any, _)
            | (RequestFilter::Register, DpsRequestKind::Register)
            | (RequestFilter::Poll, DpsRequestKind::Poll)
    )
}
