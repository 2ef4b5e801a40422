//! Publishes from the hub: parsed, classified by the spec's table, and delivered. Bad input is
//! logged and dropped; it never panics and never touches the outbox.

use hubswap_spec::{self as spec, Millis};

use super::online::Step;
use super::twin::Answered;
use super::{Inbound, Output, Session};
use crate::builder::MAX_MESSAGE;
use crate::wire::WireError;
use crate::wire::hub::{Incoming, parse_incoming, parse_patch, parse_twin};

impl Session {
    pub(super) fn incoming(&mut self, now: Millis, topic: &str, payload: &[u8]) {
        if payload.len() > MAX_MESSAGE {
            let e = WireError::Oversized {
                size: payload.len(),
                limit: MAX_MESSAGE,
            };
            tracing::warn!(topic, error = %e, "dropping an oversized message");
            return;
        }
        let device = self
            .link
            .assignment
            .as_ref()
            .map_or("", |a| a.device_id.as_str());
        let msg = match parse_incoming(topic, device) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a message on an unexpected topic");
                return;
            }
        };
        match msg {
            Incoming::TwinResponse {
                status,
                rid,
                version,
            } => self.twin_response(now, status, &rid, version, payload),
            Incoming::DesiredPatch { version } => match parse_patch(payload) {
                Ok(patch) => self
                    .out
                    .push_back(Output::Deliver(Inbound::Desired { version, patch })),
                Err(e) => tracing::warn!(error = %e, "ignoring an invalid desired patch"),
            },
            Incoming::Method {
                component,
                name,
                rid,
            } => self.out.push_back(Output::Deliver(Inbound::Command {
                component,
                name,
                payload: payload.to_vec(),
                generation: self.link.generation,
                rid,
            })),
            Incoming::C2d { properties } => self.out.push_back(Output::Deliver(Inbound::C2d {
                payload: payload.to_vec(),
                properties,
            })),
        }
    }

    fn twin_response(
        &mut self,
        now: Millis,
        status: u16,
        rid: &str,
        version: Option<u64>,
        body: &[u8],
    ) {
        let Ok(rid) = rid.parse::<u64>() else {
            tracing::debug!(rid, status, "a twin response to no request of ours");
            return;
        };
        let signal = spec::WireSignal::TwinStatus(status);
        if self.twin_sync_rid == Some(rid) {
            self.twin_sync_rid = None;
            if (200..300).contains(&status) {
                match parse_twin(body) {
                    Ok(doc) => {
                        self.out.push_back(Output::Deliver(Inbound::Twin(doc)));
                        self.online_step(now, Step::TwinSynced);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "invalid twin document");
                        self.online_step(now, Step::TwinFailed);
                    }
                }
            } else {
                // The spec classifies the status; a request-level failure keeps the connection
                // and the resync GET is retried with the spec's backoff.
                if spec::classify(&signal) == spec::Class::RequestTransient {
                    self.online_step(now, Step::TwinFailed);
                }
                self.step(now, &spec::Input::Signal(signal));
            }
            return;
        }
        let retry = (now, &self.cfg.spec.fast, self.twin_rng.draw());
        match self.twin.answer(rid, status, version, body, retry) {
            Answered::Unknown => {
                tracing::debug!(rid, status, "a twin response to no pending request");
                return;
            }
            Answered::Done(handle, result) => {
                self.out.push_back(Output::TwinAnswered { handle, result });
            }
            Answered::Held => {}
        }
        self.step(now, &spec::Input::Signal(signal));
    }
}
