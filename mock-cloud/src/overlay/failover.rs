//! Failover and failback, IoT Central style: the device's assignment moves, its identity on
//! the hub it leaves is disabled (CONNACK 3), and its live connection there is dropped.

use super::apply::{bad, restore_allocation};
use super::{Moved, Overlay};
use crate::Error;
use crate::fault::{Failback, Failover, Fault, FaultId};
use crate::log::FaultPhase;
use crate::registry::{CloseHow, HubIdentity, State};

impl Overlay {
    pub(super) fn failover(&self, f: &Failover, id: FaultId) -> Result<String, Error> {
        let mut moved = Vec::new();
        {
            let mut state = self.registry.lock();
            state.hub_exists(&f.to)?;
            let devices = select(&state, f.device.as_ref(), &f.devices, f.hub.as_ref())?;
            let now = self.registry.clock.utc_string();
            let mut faults = self.lock();
            for id_ in devices {
                let Some(device) = state.devices.get_mut(&id_) else {
                    return Err(Error::DeviceNotFound(id_));
                };
                if device.hub == f.to {
                    continue;
                }
                let from = std::mem::replace(&mut device.hub, f.to.clone());
                device
                    .identities
                    .insert(f.to.clone(), HubIdentity { enabled: true });
                device
                    .identities
                    .insert(from.clone(), HubIdentity { enabled: false });
                device.substatus = "deviceDataMigrated".into();
                device.last_updated.clone_from(&now);
                let origin = faults
                    .failovers
                    .get(&id_)
                    .map_or_else(|| from.clone(), |m| m.from.clone());
                if origin == f.to {
                    // Failed over back to where it started: home, nothing left to fail back.
                    faults.failovers.remove(&id_);
                } else {
                    faults.failovers.insert(
                        id_.clone(),
                        Moved {
                            from: origin,
                            to: f.to.clone(),
                            fault: id,
                        },
                    );
                }
                moved.push((id_, from));
            }
        }
        for (device, from) in &moved {
            self.registry.kick_how(
                device,
                Some(from),
                &format!("failed over to {}", f.to),
                CloseHow::Drop,
            );
        }
        Ok(format!(
            "{} device(s) moved to {}: {}",
            moved.len(),
            f.to,
            moved
                .iter()
                .map(|(d, _)| d.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ))
    }

    pub(super) fn failback(&self, f: &Failback) -> String {
        let devices = {
            let state = self.lock();
            let all = f.device.is_none() && f.devices.is_empty() && f.hub.is_none();
            state
                .failovers
                .iter()
                .filter(|(d, m)| {
                    all || f.device.as_deref() == Some(d.as_str())
                        || f.devices.contains(d)
                        || f.hub.as_deref() == Some(m.from.as_str())
                })
                .map(|(d, _)| d.clone())
                .collect::<Vec<_>>()
        };
        self.move_back(&devices);
        // A failover fault with no device left away from home has ended.
        let done: Vec<FaultId> = {
            let state = self.lock();
            state
                .active
                .iter()
                .filter(|(id, a)| {
                    matches!(a.fault, Fault::Failover(_))
                        && !state.failovers.values().any(|m| m.fault == **id)
                })
                .map(|(id, _)| *id)
                .collect()
        };
        for id in done {
            let removed = self.lock().active.remove(&id);
            if let Some(a) = removed {
                restore_allocation(&self.registry, a.allocation_before.as_ref());
                self.log_fault(FaultPhase::Cleared, id, &a.fault, "failed back".into());
            }
        }
        format!(
            "{} device(s) failed back: {}",
            devices.len(),
            devices.join(",")
        )
    }

    /// Moves failed-over devices home: DPS assigns the original hub, the failover hub drops them.
    pub(super) fn move_back(&self, devices: &[String]) {
        let mut kicks = Vec::new();
        {
            let mut state = self.registry.lock();
            let mut faults = self.lock();
            let now = self.registry.clock.utc_string();
            for d in devices {
                let Some(m) = faults.failovers.remove(d) else {
                    continue;
                };
                if let Some(device) = state.devices.get_mut(d) {
                    device.hub.clone_from(&m.from);
                    device
                        .identities
                        .insert(m.from.clone(), HubIdentity { enabled: true });
                    device
                        .identities
                        .insert(m.to.clone(), HubIdentity { enabled: false });
                    device.substatus = "reprovisionedToInitialAssignment".into();
                    device.last_updated.clone_from(&now);
                }
                kicks.push((d.clone(), m.to, m.from));
            }
        }
        for (d, to, from) in kicks {
            self.registry.kick_how(
                &d,
                Some(&to),
                &format!("failed back to {from}"),
                CloseHow::Drop,
            );
        }
    }
}

/// The devices a failover names: one, several, or every device on a hub.
pub(super) fn select(
    state: &State,
    device: Option<&String>,
    devices: &[String],
    hub: Option<&String>,
) -> Result<Vec<String>, Error> {
    let named = usize::from(device.is_some())
        + usize::from(!devices.is_empty())
        + usize::from(hub.is_some());
    if named != 1 {
        return Err(bad("name exactly one of device, devices or hub"));
    }
    if let Some(h) = hub {
        state.hub_exists(h)?;
        return Ok(state
            .devices
            .values()
            .filter(|d| d.hub == *h)
            .map(|d| d.id.clone())
            .collect());
    }
    let list: Vec<String> = device
        .into_iter()
        .cloned()
        .chain(devices.iter().cloned())
        .collect();
    for d in &list {
        if !state.devices.contains_key(d) {
            return Err(Error::DeviceNotFound(d.clone()));
        }
    }
    Ok(list)
}
