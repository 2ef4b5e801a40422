//! Operator controls on the registry: enrollments, devices, twins, direct methods, C2D, and
//! the live connections (kick, silence, re-judge the token).
//! [`crate::CloudHandle`] (and so the admin API) is a thin wrapper over these.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{Publish, QoS};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{
    C2dMessage, CloseHow, ConnControl, Device, DeviceAuth, DeviceInfo, EnrollmentGroup,
    GroupAttestation, HubIdentity, HubStatus, IndividualEnrollment, LiveConn, MethodResponse,
    PendingMethod, Registry, Twin,
};
use crate::log::Event;
use crate::{Error, sas};

/// Pending C2D messages per device, as on IoT Hub.
const C2D_QUEUE_LIMIT: usize = 50;

impl Registry {
    /// Adds (or replaces) a symmetric-key group; missing keys are generated.
    pub(crate) fn add_symmetric_group(
        &self,
        id: &str,
        primary: Option<String>,
        secondary: Option<String>,
    ) -> EnrollmentGroup {
        let group = EnrollmentGroup {
            id: id.to_owned(),
            attestation: GroupAttestation::SymmetricKey {
                primary_key: primary.unwrap_or_else(sas::random_key),
                secondary_key: secondary.unwrap_or_else(sas::random_key),
            },
            enabled: true,
        };
        self.lock().groups.insert(id.to_owned(), group.clone());
        self.control(format!("enrollment group {id} (symmetric key) added"));
        group
    }

    /// Adds (or replaces) an X.509 group trusting `ca_pem`.
    pub(crate) fn add_x509_group(&self, id: &str, ca_pem: &str) -> Result<EnrollmentGroup, Error> {
        crate::certs::first_pem_der(ca_pem)?;
        let group = EnrollmentGroup {
            id: id.to_owned(),
            attestation: GroupAttestation::X509 {
                ca_pem: ca_pem.to_owned(),
            },
            enabled: true,
        };
        self.lock().groups.insert(id.to_owned(), group.clone());
        self.control(format!("enrollment group {id} (X.509) added"));
        Ok(group)
    }

    /// Adds (or replaces) an individual symmetric-key enrollment.
    pub(crate) fn add_individual(
        &self,
        registration_id: &str,
        primary: Option<String>,
    ) -> IndividualEnrollment {
        let e = IndividualEnrollment {
            registration_id: registration_id.to_owned(),
            primary_key: primary.unwrap_or_else(sas::random_key),
            secondary_key: sas::random_key(),
            enabled: true,
        };
        self.lock()
            .individuals
            .insert(registration_id.to_owned(), e.clone());
        self.control(format!("individual enrollment {registration_id} added"));
        e
    }

    /// Registers a device directly on a hub (bypassing DPS) with this key.
    pub(crate) fn create_device(
        &self,
        id: &str,
        hub: &str,
        primary_key: Option<String>,
    ) -> Result<Device, Error> {
        let mut state = self.lock();
        if !state.hubs.iter().any(|h| h.host == hub) {
            return Err(Error::HubNotFound(hub.to_owned()));
        }
        let now = self.clock.utc_string();
        let device = Device {
            id: id.to_owned(),
            hub: hub.to_owned(),
            identities: [(hub.to_owned(), HubIdentity { enabled: true })].into(),
            auth: DeviceAuth::Keys {
                primary_key: primary_key.unwrap_or_else(sas::random_key),
                secondary_key: sas::random_key(),
            },
            blocked: false,
            model_id: None,
            created: now.clone(),
            last_updated: now,
            substatus: "initialAssignment".into(),
            twin: Twin::new(),
        };
        state.devices.insert(id.to_owned(), device.clone());
        drop(state);
        self.control(format!("device {id} created on {hub}"));
        Ok(device)
    }

    /// Every device with its connection status.
    pub(crate) fn devices(&self) -> Vec<DeviceInfo> {
        let state = self.lock();
        state
            .devices
            .values()
            .map(|d| DeviceInfo {
                device: d.clone(),
                connected_to: state.live.get(&d.id).map(|l| l.hub.clone()),
            })
            .collect()
    }

    /// One device.
    pub(crate) fn device(&self, id: &str) -> Result<DeviceInfo, Error> {
        self.devices()
            .into_iter()
            .find(|d| d.device.id == id)
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))
    }

    /// Enables or disables the device's identity on `hub` (default: its assigned hub). Disabling
    /// drops a live connection on that hub without an MQTT packet. Returns the hub.
    pub(crate) fn set_device_enabled(
        &self,
        id: &str,
        hub: Option<&str>,
        enabled: bool,
    ) -> Result<String, Error> {
        if let Some(h) = hub
            && !self.lock().hubs.iter().any(|s| s.host == h)
        {
            return Err(Error::HubNotFound(h.to_owned()));
        }
        let hub = self.with_device(id, |device| {
            let hub = hub.unwrap_or(&device.hub).to_owned();
            device
                .identities
                .insert(hub.clone(), HubIdentity { enabled });
            hub
        })?;
        if !enabled {
            self.kick_how(id, Some(&hub), "device disabled", CloseHow::Drop);
        }
        self.control(format!(
            "device {id} {} on {hub}",
            if enabled { "enabled" } else { "disabled" }
        ));
        Ok(hub)
    }

    fn with_device<T>(&self, id: &str, f: impl FnOnce(&mut Device) -> T) -> Result<T, Error> {
        let mut state = self.lock();
        let device = state
            .devices
            .get_mut(id)
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?;
        Ok(f(device))
    }

    /// Blocks or unblocks a device (IoT Central operator block).
    pub(crate) fn set_blocked(&self, id: &str, blocked: bool) -> Result<(), Error> {
        self.with_device(id, |device| device.blocked = blocked)?;
        if blocked {
            self.kick_on(id, None, "device blocked");
        }
        self.control(format!(
            "device {id} {}",
            if blocked { "blocked" } else { "unblocked" }
        ));
        Ok(())
    }

    /// Includes or excludes a hub from DPS allocation.
    pub(crate) fn set_hub_enabled(&self, host: &str, enabled: bool) -> Result<(), Error> {
        let mut state = self.lock();
        let hub = state
            .hubs
            .iter_mut()
            .find(|h| h.host == host)
            .ok_or_else(|| Error::HubNotFound(host.to_owned()))?;
        hub.enabled = enabled;
        drop(state);
        self.control(format!(
            "hub {host} {} for allocation",
            if enabled { "enabled" } else { "disabled" }
        ));
        Ok(())
    }

    /// The hubs.
    pub(crate) fn hubs(&self) -> Vec<HubStatus> {
        self.lock().hubs.clone()
    }

    /// The device's twin.
    pub(crate) fn twin(&self, id: &str) -> Result<Twin, Error> {
        self.lock()
            .devices
            .get(id)
            .map(|d| d.twin.clone())
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))
    }

    /// Merges a desired patch, bumps `$version`, and pushes it to a live subscribed connection.
    pub(crate) fn update_desired(&self, id: &str, patch: &Value) -> Result<u64, Error> {
        let Value::Object(patch) = patch else {
            return Err(Error::InvalidRequest(
                "a desired patch must be a JSON object".into(),
            ));
        };
        let mut state = self.lock();
        let device = state
            .devices
            .get_mut(id)
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?;
        let (version, body) = device.twin.patch_desired(patch);
        let hub = device.hub.clone();
        let subscribed = state.sessions.get(&(hub, id.to_owned())).is_some_and(|s| {
            s.subscriptions
                .contains("$iothub/twin/PATCH/properties/desired/#")
        });
        let topic = format!("$iothub/twin/PATCH/properties/desired/?$version={version}");
        let publish = Publish::new(topic, QoS::AtMostOnce, body.to_string());
        let delivered = subscribed
            && state
                .live
                .get(id)
                .is_some_and(|l| l.tx.send(ConnControl::Publish(publish)).is_ok());
        drop(state);
        self.log
            .record(Some(id), Event::TwinDesired { version, delivered });
        self.touch();
        Ok(version)
    }

    /// Invokes a direct method (or `component*command`) and waits up to `timeout` for the answer.
    pub(crate) async fn invoke_method(
        &self,
        id: &str,
        name: &str,
        payload: &Value,
        timeout: Duration,
    ) -> Result<MethodResponse, Error> {
        let rid = format!("{:x}", self.next_id());
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            let device = state
                .devices
                .get(id)
                .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?;
            let key = (device.hub.clone(), id.to_owned());
            let subscribed = state
                .sessions
                .get(&key)
                .is_some_and(|s| s.subscriptions.contains("$iothub/methods/POST/#"));
            let live = state
                .live
                .get(id)
                .filter(|_| subscribed)
                .cloned()
                .ok_or_else(|| Error::DeviceNotOnline(id.to_owned()))?;
            // ESDK takes everything after `$rid=` as the id: nothing may follow it (§4.5).
            let topic = format!("$iothub/methods/POST/{name}/?$rid={rid}");
            let body = if payload.is_null() {
                Vec::new()
            } else {
                payload.to_string().into_bytes()
            };
            state.methods.insert(
                rid.clone(),
                PendingMethod {
                    device: id.to_owned(),
                    name: name.to_owned(),
                    reply: tx,
                },
            );
            if live
                .tx
                .send(ConnControl::Publish(Publish::new(
                    topic,
                    QoS::AtMostOnce,
                    body,
                )))
                .is_err()
            {
                state.methods.remove(&rid);
                return Err(Error::DeviceNotOnline(id.to_owned()));
            }
            self.log.record(
                Some(id),
                Event::MethodRequest {
                    hub: live.hub,
                    name: name.to_owned(),
                    rid: rid.clone(),
                },
            );
        }
        if let Ok(Ok(answer)) = tokio::time::timeout(timeout, rx).await {
            return Ok(answer);
        }
        self.lock().methods.remove(&rid);
        self.log.record(
            Some(id),
            Event::MethodTimedOut {
                name: name.to_owned(),
                rid,
            },
        );
        Err(Error::MethodTimeout {
            device: id.to_owned(),
            method: name.to_owned(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Queues a C2D message with application properties; returns its message id (`$.mid`).
    pub(crate) fn send_c2d(
        &self,
        id: &str,
        payload: Bytes,
        properties: &[(String, Option<String>)],
    ) -> Result<String, Error> {
        let message_id = crate::certs::random_hex::<16>();
        let mut bag: Vec<(String, Option<String>)> = vec![
            ("$.mid".into(), Some(message_id.clone())),
            (
                "$.to".into(),
                Some(format!("/devices/{id}/messages/deviceBound")),
            ),
        ];
        bag.extend(properties.iter().cloned());
        let mut state = self.lock();
        let device = state
            .devices
            .get(id)
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?;
        let key = (device.hub.clone(), id.to_owned());
        let session = state.sessions.entry(key).or_default();
        if session.c2d.len() >= C2D_QUEUE_LIMIT {
            return Err(Error::QueueFull(id.to_owned()));
        }
        session.c2d.push_back(C2dMessage {
            id: message_id.clone(),
            properties: bag,
            payload,
        });
        if let Some(live) = state.live.get(id) {
            let _ = live.tx.send(ConnControl::C2dAvailable);
        }
        drop(state);
        self.log.record(
            Some(id),
            Event::C2dQueued {
                message_id: message_id.clone(),
            },
        );
        Ok(message_id)
    }

    /// Records an operator action in the log and marks the state changed.
    pub(crate) fn control(&self, action: String) {
        self.log.record(None, Event::Control { action });
        self.touch();
    }

    /// Closes live connections `pick` selects; returns how many.
    pub(crate) fn kick_where(
        &self,
        mut pick: impl FnMut(&str, &LiveConn) -> bool,
        reason: &str,
        how: CloseHow,
    ) -> usize {
        let state = self.lock();
        state
            .live
            .iter()
            .filter(|(d, l)| pick(d, l))
            .filter(|(_, l)| {
                l.tx.send(ConnControl::Kick {
                    reason: reason.to_owned(),
                    how,
                })
                .is_ok()
            })
            .count()
    }

    /// Drops one device's live connection (on `hub`, or wherever it is).
    pub(crate) fn kick_how(
        &self,
        device: &str,
        hub: Option<&str>,
        reason: &str,
        how: CloseHow,
    ) -> bool {
        self.kick_where(
            |d, l| d == device && hub.is_none_or(|h| h == l.hub),
            reason,
            how,
        ) > 0
    }

    /// Drops the device's live connection (on `hub`, or wherever it is). Returns whether one existed.
    pub(crate) fn kick_on(&self, id: &str, hub: Option<&str>, reason: &str) -> bool {
        self.kick_how(id, hub, reason, CloseHow::Drop)
    }

    /// Silences live connections `pick` selects (a blackhole); returns how many.
    pub(crate) fn silence_where(&self, pick: impl Fn(&str, &LiveConn) -> bool) -> usize {
        let state = self.lock();
        state
            .live
            .iter()
            .filter(|(d, l)| pick(d, l))
            .filter(|(_, l)| l.tx.send(ConnControl::Silence).is_ok())
            .count()
    }

    /// Hands an order to one device's live connection; `false` when it has none.
    pub(crate) fn order(&self, device: &str, order: ConnControl) -> bool {
        self.lock()
            .live
            .get(device)
            .is_some_and(|l| l.tx.send(order).is_ok())
    }

    /// Asks one device's live connection to re-judge its token.
    pub(crate) fn recheck(&self, device: &str) {
        self.order(device, ConnControl::Recheck);
    }

    /// Asks every live connection to re-judge its token (after a clock or option change).
    pub(crate) fn recheck_all(&self) {
        for l in self.lock().live.values() {
            let _ = l.tx.send(ConnControl::Recheck);
        }
    }
}
