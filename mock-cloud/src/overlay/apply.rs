//! Applying and clearing faults: the registry changes, the kicks, the listener changes, the
//! timers that end faults with a duration, and the log record for each step.

use std::sync::Arc;
use std::time::Instant;

use super::{Active, Listeners, Outage, Overlay};
use crate::Error;
use crate::fault::{
    Failover, Fault, FaultId, HubDown, HubError, HubErrorMode, Network, NetworkMode, OptionsPatch,
    OutageMode,
};
use crate::log::FaultPhase;
use crate::registry::{CloseHow, ConnControl, LiveConn, Registry};

pub(super) fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidRequest(msg.into())
}

fn check_code(name: &str, code: Option<u8>) -> Result<(), Error> {
    match code {
        Some(c) if !(1..=5).contains(&c) => Err(bad(format!(
            "{name} must be a refusing CONNACK code 1..=5, got {c}"
        ))),
        _ => Ok(()),
    }
}

impl Overlay {
    /// Applies a fault (or an ending control) and logs it; returns its id.
    #[allow(
        clippy::too_many_lines,
        reason = "one arm per fault, then the shared bookkeeping"
    )]
    pub(crate) async fn apply<L: Listeners>(
        self: &Arc<Self>,
        fault: Fault,
        listeners: &Arc<L>,
    ) -> Result<FaultId, Error> {
        let registry = &self.registry;
        let id = self.lock().next_id();
        // Uses of a counted fault spent while applying it (connections dropped at once).
        let mut spent = 0;
        let detail = match &fault {
            Fault::Failover(f) => self.failover(f, id)?,
            Fault::Failback(f) => self.failback(f),
            Fault::HubDown(f) => self.hub_down(f, id, listeners.as_ref()).await?,
            Fault::HubRestore(h) => {
                self.hub_restore(&h.hub, FaultPhase::Cleared, listeners.as_ref())
                    .await?
            }
            Fault::ExpireToken(e) => self.expire_token(&e.device, e.until_reprovisioned)?,
            Fault::ClockOffset(c) => {
                let before = registry.clock.offset();
                registry.clock.set_offset(c.secs);
                registry.recheck_all();
                format!("clock offset {before} s -> {} s", c.secs)
            }
            Fault::Disable(d) => {
                let hub = registry.set_device_enabled(&d.device, d.hub.as_deref(), false)?;
                format!("{} disabled on {hub}", d.device)
            }
            Fault::Enable(d) => {
                let hub = registry.set_device_enabled(&d.device, d.hub.as_deref(), true)?;
                self.end_matching(|f| matches!(f, Fault::Disable(x) if x.device == d.device));
                format!("{} enabled on {hub}", d.device)
            }
            Fault::Block(b) => {
                registry.set_blocked(&b.device, true)?;
                format!("{} blocked", b.device)
            }
            Fault::Unblock(d) => {
                registry.set_blocked(&d.device, false)?;
                self.end_matching(|f| matches!(f, Fault::Block(x) if x.device == d.device));
                format!("{} unblocked", d.device)
            }
            Fault::DpsError(e) => {
                if !(400..=599).contains(&e.status) {
                    return Err(bad("dps-error status must be 400..=599"));
                }
                "DPS answers with an error".into()
            }
            Fault::HubError(e) => {
                let (detail, dropped) = self.hub_error(e)?;
                spent = dropped;
                detail
            }
            Fault::Throttle(t) => {
                if t.registrations_per_minute.is_none() && t.polls.is_none() {
                    return Err(bad("throttle needs registrations_per_minute or polls"));
                }
                "DPS throttled".into()
            }
            Fault::Network(n) => self.network(n)?,
            Fault::Inject(i) => {
                let order = ConnControl::Inject {
                    inject: i.clone(),
                    id,
                };
                if !registry.order(&i.device, order) {
                    return Err(Error::DeviceNotOnline(i.device.clone()));
                }
                format!("{:?} scheduled on the live connection", i.kind)
            }
            Fault::Options(p) => self.set_options(p)?,
            Fault::Clear(c) => {
                let ids: Vec<FaultId> = match c.id {
                    Some(id) if self.lock().active.contains_key(&id) => vec![id],
                    Some(id) => return Err(bad(format!("no active fault {id}"))),
                    None => self.lock().active.keys().copied().collect(),
                };
                for id in &ids {
                    self.end(*id, FaultPhase::Cleared, listeners.as_ref()).await;
                }
                if c.id.is_none() {
                    self.lock().stale_identity.clear();
                }
                format!("{} fault(s) cleared", ids.len())
            }
        };
        let used_up = fault.count().is_some_and(|c| c <= spent);
        if stays_active(&fault) && !used_up {
            let until = fault.duration().map(|d| Instant::now() + d);
            let mut state = registry.lock();
            let allocation_before = if let Fault::Failover(Failover { hub: Some(h), .. }) = &fault {
                state
                    .hubs
                    .iter_mut()
                    .find(|s| s.host == *h)
                    .map(|s| (h.clone(), std::mem::replace(&mut s.enabled, false)))
            } else {
                None
            };
            self.lock().active.insert(
                id,
                Active {
                    fault: fault.clone(),
                    applied: registry.clock.now(),
                    until,
                    until_ms: fault.duration().map(|d| {
                        hubswap_spec::Millis(
                            registry.clock.now().0
                                + u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                        )
                    }),
                    remaining: fault.count().map(|c| c - spent),
                    allocation_before,
                },
            );
            drop(state);
        }
        self.log_fault(FaultPhase::Applied, id, &fault, detail);
        if used_up {
            self.log_fault(FaultPhase::Exhausted, id, &fault, "count used up".into());
        }
        self.epoch.send_modify(|e| *e += 1);
        if let Some(d) = fault
            .duration()
            .filter(|_| stays_active(&fault) && !used_up)
        {
            let overlay = Arc::clone(self);
            let listeners = Arc::clone(listeners);
            tokio::spawn(async move {
                tokio::select! {
                    () = overlay.shutdown.cancelled() => {}
                    () = tokio::time::sleep(d) => {
                        overlay.end(id, FaultPhase::Expired, listeners.as_ref()).await;
                    }
                }
            });
        }
        registry.touch();
        Ok(id)
    }

    /// Ends an active fault (undoing what it did) and logs `phase`; no-op when not active.
    pub(crate) async fn end(&self, id: FaultId, phase: FaultPhase, listeners: &impl Listeners) {
        let Some(active) = self.lock().active.remove(&id) else {
            return;
        };
        let registry = &self.registry;
        let detail = match &active.fault {
            Fault::Failover(_) => {
                let devices: Vec<String> = self
                    .lock()
                    .failovers
                    .iter()
                    .filter(|(_, m)| m.fault == id)
                    .map(|(d, _)| d.clone())
                    .collect();
                self.move_back(&devices);
                format!("{} device(s) failed back", devices.len())
            }
            Fault::HubDown(h) => self
                .hub_restore(&h.hub, phase, listeners)
                .await
                .unwrap_or_else(|e| e.to_string()),
            Fault::Disable(d) => {
                match registry.set_device_enabled(&d.device, d.hub.as_deref(), true) {
                    Ok(hub) => format!("{} enabled on {hub}", d.device),
                    Err(e) => e.to_string(),
                }
            }
            Fault::Block(b) => match registry.set_blocked(&b.device, false) {
                Ok(()) => format!("{} unblocked", b.device),
                Err(e) => e.to_string(),
            },
            Fault::DpsError(_)
            | Fault::HubError(_)
            | Fault::Throttle(_)
            | Fault::Network(_)
            | Fault::Failback(_)
            | Fault::HubRestore(_)
            | Fault::ExpireToken(_)
            | Fault::ClockOffset(_)
            | Fault::Enable(_)
            | Fault::Unblock(_)
            | Fault::Inject(_)
            | Fault::Options(_)
            | Fault::Clear(_) => "removed".into(),
        };
        restore_allocation(&self.registry, active.allocation_before.as_ref());
        self.log_fault(phase, id, &active.fault, detail);
        self.epoch.send_modify(|e| *e += 1);
        registry.touch();
    }

    /// Ends (as cleared) every active fault `pick` selects, without undoing it again.
    fn end_matching(&self, pick: impl Fn(&Fault) -> bool) {
        let ended: Vec<(FaultId, Active)> = {
            let mut state = self.lock();
            let ids: Vec<FaultId> = state
                .active
                .iter()
                .filter(|(_, a)| pick(&a.fault))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| state.active.remove(&id).map(|a| (id, a)))
                .collect()
        };
        for (id, a) in ended {
            self.log_fault(
                FaultPhase::Cleared,
                id,
                &a.fault,
                "undone by its inverse".into(),
            );
        }
    }

    async fn hub_down(
        &self,
        f: &HubDown,
        id: FaultId,
        listeners: &impl Listeners,
    ) -> Result<String, Error> {
        let registry = &self.registry;
        {
            let state = registry.lock();
            state.hub_exists(&f.hub)?;
            let name = f
                .name
                .clone()
                .unwrap_or_else(|| format!("{}.gone.invalid", f.hub));
            self.lock().outages.insert(
                f.hub.clone(),
                Outage {
                    mode: f.mode,
                    refuse_at: f.refuse_at,
                    name,
                    fault: id,
                },
            );
        }
        let live = match f.mode {
            OutageMode::Blackhole => registry.silence_where(|_, l| l.hub == f.hub),
            OutageMode::Refuse => {
                registry.kick_where(|_, l| l.hub == f.hub, "hub unreachable", CloseHow::Reset)
            }
            OutageMode::Closed | OutageMode::NameGone => {
                registry.kick_where(|_, l| l.hub == f.hub, "hub unreachable", CloseHow::Drop)
            }
        };
        if matches!(f.mode, OutageMode::Closed | OutageMode::NameGone) {
            listeners.stop(&f.hub).await?;
        }
        Ok(format!(
            "hub {} down ({:?}); {live} live connection(s) affected",
            f.hub, f.mode
        ))
    }

    async fn hub_restore(
        &self,
        hub: &str,
        phase: FaultPhase,
        listeners: &impl Listeners,
    ) -> Result<String, Error> {
        let outage = {
            let state = self.registry.lock();
            state.hub_exists(hub)?;
            self.lock().outages.remove(hub)
        };
        listeners.start(hub).await?;
        if let Some(o) = &outage
            && phase == FaultPhase::Cleared
        {
            let active = self.lock().active.remove(&o.fault);
            if let Some(a) = active {
                self.log_fault(
                    FaultPhase::Cleared,
                    o.fault,
                    &a.fault,
                    format!("hub {hub} restored"),
                );
            }
        }
        Ok(format!("hub {hub} restored"))
    }

    fn expire_token(&self, device: &str, until_reprovisioned: bool) -> Result<String, Error> {
        let fp = {
            let registry = self.registry.lock();
            if !registry.devices.contains_key(device) {
                return Err(Error::DeviceNotFound(device.to_owned()));
            }
            let mut state = self.lock();
            if until_reprovisioned {
                state.stale_identity.insert(device.to_owned());
            }
            let Some(fp) = state.last_token.get(device).copied() else {
                return Ok(format!(
                    "{device} has presented no SAS token to a hub yet; nothing expired"
                ));
            };
            state
                .revoked
                .entry(device.to_owned())
                .or_default()
                .insert(fp);
            fp
        };
        self.registry.recheck(device);
        let until = if until_reprovisioned {
            "; every token refused until it registers with DPS again"
        } else {
            ""
        };
        Ok(format!("token {fp:016x} of {device} expired{until}"))
    }

    /// Returns the detail and how many connections were dropped at once.
    fn hub_error(&self, e: &HubError) -> Result<(String, u32), Error> {
        self.registry.lock().hub_exists(&e.hub)?;
        check_code("code", e.code)?;
        if e.mode != HubErrorMode::Drop {
            return Ok((format!("hub {} fails ({:?})", e.hub, e.mode), 0));
        }
        let mut budget = e.count.unwrap_or(u32::MAX);
        let n = self.registry.kick_where(
            |d, l| {
                let hit =
                    l.hub == e.hub && e.device.as_deref().is_none_or(|x| x == d) && budget > 0;
                budget = budget.saturating_sub(u32::from(hit));
                hit
            },
            "internal error (hub-error drop)",
            CloseHow::Drop,
        );
        Ok((
            format!("hub {} drops connections; {n} dropped now", e.hub),
            u32::try_from(n).unwrap_or(u32::MAX),
        ))
    }

    fn network(&self, n: &Network) -> Result<String, Error> {
        match (&n.device, &n.hub) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(bad("network needs exactly one of device or hub"));
            }
            (None, Some(h)) => self.registry.lock().hub_exists(h)?,
            (Some(_), None) => {}
        }
        if matches!(n.mode, NetworkMode::Delay) && n.delay.is_none() {
            return Err(bad("network delay needs delay"));
        }
        let hits = |d: &str, l: &LiveConn| match (&n.device, &n.hub) {
            (Some(x), _) => x == d,
            (None, Some(h)) => *h == l.hub,
            (None, None) => false,
        };
        let affected = match n.mode {
            NetworkMode::Drop => self
                .registry
                .kick_where(hits, "network drop", CloseHow::Drop),
            NetworkMode::Reset => self
                .registry
                .kick_where(hits, "network reset", CloseHow::Reset),
            NetworkMode::Blackhole => self.registry.silence_where(hits),
            NetworkMode::Delay | NetworkMode::HoldConnack => 0,
        };
        Ok(format!(
            "{:?}; {affected} live connection(s) affected now",
            n.mode
        ))
    }

    fn set_options(&self, p: &OptionsPatch) -> Result<String, Error> {
        check_code("disabled_connack", p.disabled_connack)?;
        check_code("blocked_connack", p.blocked_connack)?;
        check_code("expired_connack", p.expired_connack)?;
        let options = {
            let mut state = self.lock();
            let o = &mut state.options;
            o.disabled_connack = p.disabled_connack.unwrap_or(o.disabled_connack);
            o.blocked_connack = p.blocked_connack.unwrap_or(o.blocked_connack);
            o.expired_connack = p.expired_connack.unwrap_or(o.expired_connack);
            o.blocked_dps = p.blocked_dps.unwrap_or(o.blocked_dps);
            o.token_grace_secs = p.token_grace_secs.unwrap_or(o.token_grace_secs);
            o.drop_on_expiry = p.drop_on_expiry.unwrap_or(o.drop_on_expiry);
            o.inject_puback = p.inject_puback.unwrap_or(o.inject_puback);
            o.inject_strict = p.inject_strict.unwrap_or(o.inject_strict);
            *o
        };
        self.registry.recheck_all();
        Ok(serde_json::to_string(&options).unwrap_or_default())
    }
}

/// Gives a hub back the allocation flag it had before a whole-hub failover.
pub(super) fn restore_allocation(registry: &Registry, before: Option<&(String, bool)>) {
    if let Some((hub, was)) = before
        && let Some(s) = registry.lock().hubs.iter_mut().find(|s| s.host == *hub)
    {
        s.enabled = *was;
    }
}

/// Whether a fault stays in force after it is applied (and so can be listed and cleared).
fn stays_active(fault: &Fault) -> bool {
    match fault {
        Fault::Failover(_)
        | Fault::HubDown(_)
        | Fault::Disable(_)
        | Fault::Block(_)
        | Fault::DpsError(_)
        | Fault::HubError(_)
        | Fault::Throttle(_) => true,
        Fault::Network(n) => {
            matches!(
                n.mode,
                NetworkMode::Delay | NetworkMode::HoldConnack | NetworkMode::Blackhole
            ) || n.lifetime.duration.is_some()
                || n.count.is_some()
        }
        Fault::Failback(_)
        | Fault::HubRestore(_)
        | Fault::ExpireToken(_)
        | Fault::ClockOffset(_)
        | Fault::Enable(_)
        | Fault::Unblock(_)
        | Fault::Inject(_)
        | Fault::Options(_)
        | Fault::Clear(_) => false,
    }
}
