//! The session's connection policy: spec steps, their actions, the online machine's duties,
//! and hub connection events.

use hubswap_spec::{self as spec, Millis, Phase};
use std::time::Duration;

use super::online::{self, Duty, Step};
use super::{HubEvent, Output, Session, TimerKey};
use crate::status::Reason;
use crate::wire::hub as topics;

fn connected(p: &Phase) -> bool {
    matches!(p, Phase::Connected { .. })
}

impl Session {
    /// Runs one spec input through [`spec::step()`] with the next policy draw, adopts the
    /// state, performs the actions in order, and tells the online machine when the spec
    /// entered or left `Connected`.
    pub(super) fn step(&mut self, now: Millis, input: &spec::Input) {
        let env = spec::Env {
            now,
            draw: self.policy_rng.draw(),
        };
        let out = spec::step(&self.cfg.spec, &self.policy, input, env);
        if let Some(r) = Reason::of(input, &self.policy.phase, &out.state.phase) {
            self.reason = Some(r);
        }
        let was = connected(&self.policy.phase);
        self.policy = out.state;
        tracing::trace!(?input, phase = ?self.policy.phase, actions = ?out.actions, "step");
        for a in out.actions {
            self.perform(a);
        }
        match (was, connected(&self.policy.phase)) {
            (false, true) => self.online_step(now, Step::Up),
            (true, false) => self.online_step(now, Step::Down),
            _ => {}
        }
    }

    fn perform(&mut self, a: spec::Action) {
        match a {
            spec::Action::Register => self.dps(None),
            spec::Action::Poll { operation } => self.dps(Some(operation)),
            spec::Action::MintToken { expires_at } => {
                // `se` has one-second resolution: a token minted again within the same second
                // would be byte-identical to the refused one, so a fresh token always moves the
                // expiry forward by at least a second (spec/SPEC.md §3.3, G2).
                self.token_expires_at =
                    expires_at.max(self.token_expires_at.plus(Duration::from_secs(1)));
            }
            spec::Action::ConnectHub(assignment) => {
                self.link.renew();
                self.link.assignment = Some(assignment.clone());
                self.out.push_back(Output::Connect {
                    generation: self.link.generation,
                    assignment,
                    token_expires_at: self.token_expires_at,
                });
            }
            spec::Action::Close => {
                self.link.renew();
                self.dps_in_flight = None;
                self.out.push_back(Output::Close {
                    generation: self.link.generation,
                });
                self.out.push_back(Output::AbortDps);
            }
            spec::Action::ArmTimer { timer, at } => self.timers.arm(TimerKey::Spec(timer), at),
            spec::Action::CancelTimer(t) => self.timers.cancel(TimerKey::Spec(t)),
            spec::Action::PersistAssignment(a) => self.out.push_back(Output::SaveAssignment(a)),
            spec::Action::InvalidateAssignment => self.out.push_back(Output::ClearAssignment),
        }
    }

    fn dps(&mut self, operation: Option<String>) {
        self.dps_attempt += 1;
        self.dps_in_flight = Some(self.dps_attempt);
        let rid = self.next_id().to_string();
        self.out.push_back(Output::Dps {
            attempt: self.dps_attempt,
            rid,
            operation,
        });
    }

    /// Hands one step to the online machine and performs its duties.
    pub(super) fn online_step(&mut self, now: Millis, step: Step) {
        let mut ctx = online::Ctx {
            now,
            draw: self.twin_rng.draw(),
            profile: self.cfg.spec.fast,
            out: Vec::new(),
        };
        self.online.handle_with_context(&step, &mut ctx);
        for duty in ctx.out {
            match duty {
                Duty::Subscribe => {
                    let device = self
                        .link
                        .assignment
                        .as_ref()
                        .map_or("", |a| a.device_id.as_str());
                    self.out
                        .push_back(Output::Subscribe(topics::subscriptions(device).to_vec()));
                }
                Duty::GetTwin => {
                    let rid = self.next_id();
                    self.publish(topics::twin_get_topic(&rid.to_string()), Vec::new(), None);
                    self.twin_sync_rid = Some(rid);
                }
                Duty::ArmTwinRetry(at) => self.timers.arm(TimerKey::TwinRetry, at),
                Duty::CancelTwinRetry => self.timers.cancel(TimerKey::TwinRetry),
                Duty::OpenOutbox => self.outbox.open(),
                Duty::SuspendOutbox => {
                    // The packet-id bookkeeping goes with the connection (`Link::renew`).
                    self.outbox.suspend();
                    self.twin.interrupt();
                    self.twin_sync_rid = None;
                }
            }
        }
    }

    /// An event of the current hub connection.
    pub(super) fn hub(&mut self, now: Millis, event: HubEvent) {
        use spec::WireSignal as W;
        match event {
            HubEvent::ConnAck(code) => {
                tracing::info!(code, "CONNACK");
                self.step(now, &spec::Input::Signal(W::ConnAck(code)));
            }
            HubEvent::Failed(f) => {
                tracing::info!(failure = ?f, "hub connect failed");
                self.step(now, &spec::Input::Signal(W::ConnectFailed(f)));
            }
            HubEvent::Lost => {
                tracing::info!("hub connection lost");
                self.step(now, &spec::Input::Signal(W::ConnectionLost));
            }
            HubEvent::SubAck { refused } => {
                if refused {
                    tracing::warn!("the hub refused a subscription");
                }
                self.online_step(now, Step::Subscribed);
            }
            HubEvent::Sent(pkid) => match self.link.sent.pop_front() {
                Some(Some(seq)) if pkid != 0 => {
                    self.link.pkids.insert(pkid, seq);
                }
                Some(_) => {}
                None => tracing::debug!(pkid, "a publish that was not ours to track"),
            },
            HubEvent::PubAck(pkid) => {
                if let Some(seq) = self.link.pkids.remove(&pkid)
                    && let Some(s) = self.outbox.acked(seq)
                {
                    self.out.push_back(Output::Settled(s));
                }
            }
            HubEvent::Publish { topic, payload } => self.incoming(now, &topic, &payload),
        }
    }
}
