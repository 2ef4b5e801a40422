//! The questions the listeners ask the overlay at each step: at TCP accept, after CONNECT,
//! right after CONNACK, before each send, at twin requests, at the CONNACK decision and at the
//! DPS front.

use std::time::{Duration, Instant};

use super::{AfterConnect, Edge, FaultState, Gate, Overlay, edge};
use crate::fault::{HubErrorMode, Network, NetworkMode, OutageMode, RefuseAt};
use crate::fault::{RequestFilter, TransportFilter};
use crate::log::{DpsRequestKind, Transport};
use crate::registry::CloseHow;

fn device_matches(filter: Option<&String>, device: Option<&str>) -> bool {
    filter.is_none_or(|f| Some(f.as_str()) == device)
}

fn network_hits(f: &Network, hub: Option<&str>, device: Option<&str>) -> bool {
    match (&f.device, &f.hub) {
        (Some(d), _) => Some(d.as_str()) == device,
        (None, Some(h)) => Some(h.as_str()) == hub,
        (None, None) => false,
    }
}

impl Overlay {
    /// At TCP accept on a hub: refuse (reset), blackhole, or let through.
    pub(crate) fn hub_gate(&self, hub: &str) -> Gate {
        let mut state = self.lock();
        match state.outages.get(hub).map(|o| (o.mode, o.refuse_at)) {
            Some((OutageMode::Refuse, RefuseAt::Accept)) => return Gate::Reset,
            Some((OutageMode::Blackhole, _)) => return Gate::Blackhole,
            _ => {}
        }
        let hit = state.matching(|f| match edge(f) {
            Edge::Network(n)
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
            && let Some(o) = state.outages.get(h)
            && o.mode == OutageMode::Refuse
            && o.refuse_at == RefuseAt::Connect
        {
            return AfterConnect::Reset;
        }
        let hits = state.matching(|f| match edge(f) {
            Edge::Network(n) if network_hits(n, hub, Some(device)) => match n.mode {
                NetworkMode::Blackhole => Some(AfterConnect::Blackhole),
                NetworkMode::HoldConnack => Some(AfterConnect::Hold(n.delay)),
                NetworkMode::Drop | NetworkMode::Reset | NetworkMode::Delay => None,
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

    /// Whether a network fault of `mode` holds this device's traffic (on `hub`, or DPS).
    fn network_holds(&self, mode: NetworkMode, hub: Option<&str>, device: &str) -> bool {
        !self
            .lock()
            .matching(|f| match edge(f) {
                Edge::Network(n) if n.mode == mode && network_hits(n, hub, Some(device)) => {
                    Some(())
                }
                _ => None,
            })
            .is_empty()
    }

    /// Whether a hold-CONNACK fault for this connection is still in force.
    pub(crate) fn still_holding(&self, hub: Option<&str>, device: &str) -> bool {
        self.network_holds(NetworkMode::HoldConnack, hub, device)
    }

    /// Whether the device's traffic is blackholed (a device network fault).
    pub(crate) fn blackholed(&self, hub: Option<&str>, device: &str) -> bool {
        self.network_holds(NetworkMode::Blackhole, hub, device)
    }

    /// Right after CONNACK 0: drop the new connection? (hub-error `drop`, network with `for`.)
    pub(crate) fn drop_after_connack(&self, hub: &str, device: &str) -> Option<(CloseHow, String)> {
        let mut state = self.lock();
        let hits = state.matching(|f| match edge(f) {
            Edge::HubError(e)
                if e.mode == HubErrorMode::Drop
                    && e.hub == hub
                    && device_matches(e.device.as_ref(), Some(device)) =>
            {
                Some((CloseHow::Drop, "internal error (hub-error drop)".to_owned()))
            }
            Edge::Network(n)
                if n.lifetime.duration.is_some() && network_hits(n, Some(hub), Some(device)) =>
            {
                match n.mode {
                    NetworkMode::Drop => Some((CloseHow::Drop, "network drop".to_owned())),
                    NetworkMode::Reset => Some((CloseHow::Reset, "network reset".to_owned())),
                    NetworkMode::Delay | NetworkMode::HoldConnack | NetworkMode::Blackhole => None,
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
            .matching(|f| match edge(f) {
                Edge::Network(n)
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
        let hits = state.matching(|f| match edge(f) {
            Edge::HubError(e)
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
        state: &mut FaultState,
        hub: &str,
        device: &str,
    ) -> Option<(u8, String)> {
        if let Some(r) = state.refusals.get(device).copied() {
            if Instant::now() < r.until {
                return Some((r.code, "fault injection (strict)".into()));
            }
            state.refusals.remove(device);
        }
        let hits = state.matching(|f| match edge(f) {
            Edge::HubError(e)
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
        let hits = state.matching(|f| match edge(f) {
            Edge::DpsError(e)
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
        state
            .throttled(request, reg_id)
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
