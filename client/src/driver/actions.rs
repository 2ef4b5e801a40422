//! Performing the machine's actions: spec actions (DPS, tokens, hub connects, timers, the
//! cache) and the client's own (subscriptions, twin GET, the outbox gate).

use hubswap_spec::{self as spec, Assignment, Millis};
use rumqttc::{MqttOptions, QoS, SubscribeFilter, TlsConfiguration, Transport};

use super::{Driver, unix_now};
use crate::builder::MAX_MESSAGE;
use crate::dps::{DpsRequest, request as dps_request};
use crate::machine::Action;
use crate::wire::hub as topics;

impl Driver {
    pub(super) fn perform(&mut self, a: Action, now: Millis) {
        match a {
            Action::Policy(p) => self.perform_policy(p, now),
            Action::Subscribe => {
                let device = self
                    .assignment
                    .as_ref()
                    .map_or("", |a| a.device_id.as_str());
                let filters = topics::subscriptions(device)
                    .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce));
                if let Err(e) = self.hub.client.try_subscribe_many(filters) {
                    tracing::warn!(error = %e, "cannot queue the subscriptions");
                }
            }
            Action::GetTwin => {
                let rid = self.next_rid();
                if self.publish(topics::twin_get_topic(&rid), Vec::new(), None) {
                    self.twin_sync_rid = Some(rid);
                }
            }
            Action::ArmClientTimer { timer, at } => {
                let at = self.instant(at);
                self.client_timers.insert(timer, at);
            }
            Action::CancelClientTimer(t) => {
                self.client_timers.remove(&t);
            }
            Action::OpenOutbox => self.outbox.open(),
            Action::SuspendOutbox => {
                self.outbox.suspend();
                self.sent.clear();
                self.pkids.clear();
                self.twin.interrupt();
                self.twin_sync_rid = None;
            }
            Action::Offline => {}
        }
    }

    fn perform_policy(&mut self, a: spec::Action, now: Millis) {
        match a {
            spec::Action::Register => self.start_dps(None),
            spec::Action::Poll { operation } => self.start_dps(Some(operation)),
            spec::Action::MintToken { expires_at } => {
                // The token itself is signed at connect time, for the hub being connected to.
                // `se` has one-second resolution: a token minted again within the same second
                // would be byte-identical to the refused one, so a fresh token always moves
                // `se` forward (SPEC §3.3, G2).
                let se = unix_now() + expires_at.since(now).as_secs();
                self.token_expiry = se.max(self.token_expiry + 1);
            }
            spec::Action::ConnectHub(a) => self.connect(a),
            spec::Action::Close => {
                self.hub.close();
                self.abort_dps();
                self.sent.clear();
                self.pkids.clear();
            }
            spec::Action::ArmTimer { timer, at } => {
                let at = self.instant(at);
                self.spec_timers.insert(timer, at);
            }
            spec::Action::CancelTimer(t) => {
                self.spec_timers.remove(&t);
            }
            spec::Action::PersistAssignment(a) => {
                if let Err(e) = self.s.store.save(&self.s.identity, &a) {
                    tracing::warn!(error = %e, "cannot persist the assignment");
                }
            }
            spec::Action::InvalidateAssignment => {
                if let Err(e) = self.s.store.clear(&self.s.identity) {
                    tracing::warn!(error = %e, "cannot invalidate the cached assignment");
                }
            }
        }
    }

    fn start_dps(&mut self, operation: Option<String>) {
        self.abort_dps();
        self.dps_attempt += 1;
        let attempt = self.dps_attempt;
        let rid = self.next_rid();
        let req = DpsRequest {
            operation,
            rid,
            token_expiry: unix_now() + 3600,
        };
        let settings = self.s.dps.clone();
        let tx = self.dps_tx.clone();
        self.dps = Some(tokio::spawn(async move {
            let sig = dps_request(settings, req).await;
            let _ = tx.send((attempt, sig));
        }));
    }

    pub(super) fn abort_dps(&mut self) {
        if let Some(task) = self.dps.take() {
            task.abort();
        }
        self.dps_attempt += 1;
    }

    fn connect(&mut self, a: Assignment) {
        let (host, port) = (self.s.resolver)(&a.hub);
        let mut o = MqttOptions::new(a.device_id.clone(), host, port);
        let username = topics::username(&a.hub, &a.device_id, self.s.model_id.as_deref());
        let password = match &self.s.hub_key {
            Some(key) => {
                let resource = format!("{}/devices/{}", a.hub, a.device_id);
                match crate::auth::SasToken::new(key, &resource, self.token_expiry, None) {
                    Ok(t) => t.expose().to_owned(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot sign the hub token");
                        String::new()
                    }
                }
            }
            None => String::new(),
        };
        o.set_credentials(username, password);
        o.set_clean_session(false);
        o.set_keep_alive(self.s.keep_alive);
        o.set_max_packet_size(MAX_MESSAGE + 16 * 1024, MAX_MESSAGE + 16 * 1024);
        o.set_inflight(u16::try_from(self.s.outbox_window + 8).unwrap_or(u16::MAX));
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(
            self.s.hub_tls.clone(),
        )));
        tracing::info!(hub = %a.hub, device = %a.device_id, "connecting to the hub");
        self.assignment = Some(a);
        self.sent.clear();
        self.pkids.clear();
        self.hub.connect(o);
    }
}
