//! The cloud's side of a request: DPS (quotas, the 202 → poll flow, outcomes) and the hubs
//! (throttle, renderings), each deciding when a device's request reaches it.

use hubswap_spec::{Assignment, DpsReply, Input, WireSignal};

use super::{BLOCKED, DISABLED, Dev, Engine, FAILED};
use crate::sim::cloud::{Admission, HubDown};
use crate::sim::policy::Policy;
use crate::sim::queue::Ev;
use crate::sim::stats::Status;

impl<P: Policy> Engine<'_, P> {
    pub(super) fn dps(&mut self, d: u32, seq: u32, poll: bool) {
        let now = self.now;
        if self.devs[d as usize].seq != seq || self.now_failing.uplink_down {
            return;
        }
        self.stats.dps_request(now, poll);
        let status = |status, retry_after: Option<u32>| {
            WireSignal::Dps(DpsReply::Status {
                status,
                retry_after: retry_after.map(|s| std::time::Duration::from_secs(u64::from(s))),
            })
        };
        if self.now_failing.dps_outage {
            self.stats.dps_error(now);
            return self.answer(d, status(503, None));
        }
        let assigning = |dev: &Dev, ra: u32| {
            WireSignal::Dps(DpsReply::Assigning {
                operation: format!("{d}-{}", dev.op),
                retry_after: Some(std::time::Duration::from_secs(u64::from(ra))),
            })
        };
        let ra = self.cloud.assigning_retry_after_secs;
        if !poll {
            if let Err(wait) = self.register_quota.admit(now) {
                self.stats.dps_throttled(now);
                return self.answer(d, status(429, Some(wait)));
            }
            self.stats.dps_admitted(now);
            let dev = &mut self.devs[d as usize];
            dev.op += 1;
            dev.op_ready = now + self.cloud.assign_ms;
            dev.op_hub = if dev.flags & BLOCKED == 0 {
                dev.home
            } else {
                FAILED
            };
            let reply = assigning(dev, ra);
            return self.answer(d, reply);
        }
        let window = u64::from(self.cloud.poll_window_secs) * 1000;
        let dev = &mut self.devs[d as usize];
        if now >= dev.poll_window_start + window {
            dev.poll_window_start = now;
            dev.polls_in_window = 0;
        }
        if u32::from(dev.polls_in_window) >= self.cloud.polls_per_device {
            let wait = (dev.poll_window_start + window - now).div_ceil(1000).max(1);
            self.stats.dps_throttled(now);
            return self.answer(d, status(429, u32::try_from(wait).ok()));
        }
        dev.polls_in_window = dev.polls_in_window.saturating_add(1);
        if let Err(wait) = self.poll_quota.admit(now) {
            self.stats.dps_throttled(now);
            return self.answer(d, status(429, Some(wait)));
        }
        let dev = &self.devs[d as usize];
        let reply = if dev.poll_op != dev.op {
            status(404, None)
        } else if now < dev.op_ready {
            assigning(dev, ra)
        } else if dev.op_hub == FAILED {
            WireSignal::Dps(DpsReply::Failed {
                error_code: 400_209,
            })
        } else {
            WireSignal::Dps(DpsReply::Assigned(self.assignment(dev.op_hub)))
        };
        self.answer(d, reply);
    }

    /// DPS's answer. The device id is left empty: nothing in the model reads it, and a name per
    /// device would cost a heap allocation per device and per copy.
    pub(super) fn assignment(&self, hub: u8) -> Assignment {
        Assignment {
            hub: self.hub_names[usize::from(hub)].clone(),
            device_id: String::new(),
        }
    }

    pub(super) fn hub_arrive(&mut self, d: u32, seq: u32, hub: u8) {
        if self.devs[d as usize].seq != seq || self.now_failing.uplink_down {
            return;
        }
        let Some(h) = self.hubs.get_mut(usize::from(hub)) else {
            return; // an unknown host: nothing answers
        };
        self.stats.hub_connect(self.now, hub);
        if h.down == HubDown::Unreachable {
            return;
        }
        match h.admit(self.now) {
            Admission::Refuse => {
                self.stats.throttle_refusals += 1;
                self.answer(d, WireSignal::ConnAck(3));
            }
            Admission::ServeAt(t) if t <= self.now => self.hub_serve(d, seq, hub),
            Admission::ServeAt(t) => self.q.push(t, Ev::HubServe { dev: d, seq, hub }),
        }
    }

    pub(super) fn hub_serve(&mut self, d: u32, seq: u32, hub: u8) {
        let dev = &self.devs[d as usize];
        let down = self.hubs[usize::from(hub)].down;
        if dev.seq != seq || self.now_failing.uplink_down || down == HubDown::Unreachable {
            return;
        }
        let expired = self.cloud.enforce_expiry && dev.token_exp <= self.now;
        let code = if down == HubDown::Error500 {
            3
        } else if self.now_failing.auth_blip || dev.flags & BLOCKED != 0 {
            5
        } else if dev.home != hub || dev.flags & DISABLED != 0 {
            3
        } else if expired {
            5
        } else {
            0
        };
        if code != 0 {
            return self.answer(d, WireSignal::ConnAck(code));
        }
        let exp = dev.token_exp;
        self.devs[d as usize].link = hub;
        self.set_status(d, Status::Connected);
        if self.cloud.enforce_expiry {
            self.q.push(exp, Ev::Expire { dev: d, seq });
        }
        self.feed(d, &Input::Signal(WireSignal::ConnAck(0)));
    }
}
