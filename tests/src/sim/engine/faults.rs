//! The scenario's changes to the cloud: failover and failback, failing hubs, disabled and
//! blocked devices, fleet-wide conditions; each drops the connections it breaks.

use super::{BLOCKED, DISABLED, Dev, Engine, MOVED, NONE, SUBSET, in_the_subset};
use crate::sim::cloud::HubDown;
use crate::sim::policy::Policy;
use crate::sim::scenario::Change;

impl<P: Policy> Engine<'_, P> {
    /// Drops every connection for which `pred(dev)` holds, after `update(dev)`.
    pub(super) fn each(&mut self, pred: impl Fn(&Dev) -> bool, update: impl Fn(&mut Dev)) {
        for d in 0..self.n() {
            let dev = &mut self.devs[d as usize];
            let linked = dev.link != NONE && pred(dev);
            update(dev);
            if linked {
                self.drop_link(d);
            }
        }
    }

    pub(super) fn change(&mut self, c: Change) {
        match c {
            Change::IncidentStart(i) => {
                let target = self.plan.incidents[i].target;
                let devs = self
                    .devs
                    .iter()
                    .map(|d| (d.first_home, in_the_subset(d), d.status));
                self.stats.incident_start(i, self.now, target, devs);
            }
            Change::IncidentClear(i) => self.stats.incident_clear(i, self.now),
            Change::Failover { from, to } => self.each(
                |d| d.home == from && d.link == from,
                |d| {
                    if d.home == from {
                        d.home = to;
                        d.flags |= MOVED;
                    }
                },
            ),
            Change::Failback { from, to } => self.each(
                |d| d.flags & MOVED != 0 && d.link == to,
                |d| {
                    if d.flags & MOVED != 0 {
                        d.home = from;
                        d.flags &= !MOVED;
                    }
                },
            ),
            Change::Hub(h, down) => {
                if let Some(hub) = self.hubs.get_mut(usize::from(h)) {
                    hub.down = down;
                }
                if down != HubDown::Up {
                    self.each(|d| d.link == h, |_| {});
                }
            }
            Change::Disable(on) => self.flag(DISABLED, on),
            Change::Block(on) => self.flag(BLOCKED, on),
            Change::AuthBlip(on) => {
                self.now_failing.auth_blip = on;
                if on {
                    self.each(|_| true, |_| {});
                }
            }
            Change::DpsOutage(on) => self.now_failing.dps_outage = on,
            Change::UplinkDown(on) => {
                self.now_failing.uplink_down = on;
                if on {
                    self.each(|_| true, |_| {});
                }
            }
            Change::DropAll => self.each(|_| true, |_| {}),
        }
    }

    /// Sets or clears `flag` on the subset, dropping the subset's connections when set.
    pub(super) fn flag(&mut self, flag: u8, on: bool) {
        self.each(
            |d| on && d.flags & SUBSET != 0,
            |d| {
                if d.flags & SUBSET != 0 {
                    if on {
                        d.flags |= flag;
                    } else {
                        d.flags &= !flag;
                    }
                }
            },
        );
    }
}
