//! DPS: attestation, allocation and operations, shared by the HTTPS REST front
//! ([`rest`]) and the MQTT front (`crate::mqtt::dps`). Both turn a request into a
//! [`DpsReply`] here and only differ in how they put it on the wire (spec/PROTOCOL.md §2, §3).

mod answer;
pub(crate) mod rest;

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};

use crate::Error;
use crate::fault::BlockedDps;
use crate::log::{DpsRequestKind, Event, Transport};
use crate::overlay::Overlay;
use crate::registry::{
    Device, DeviceAuth, GroupAttestation, HubIdentity, Operation, Registry, State, Twin,
};
use crate::sas::SasToken;
use answer::{BLOCKED, Refusal, assigned_state, failed_state, parse_register_body, refuse};

/// How a DPS request authenticated.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DpsAuth<'a> {
    /// The SAS token (`Authorization` header or MQTT password), if any.
    Sas(Option<&'a str>),
    /// The TLS client chain, leaf first.
    Chain(&'a [CertificateDer<'static>]),
}

/// An answer, before it is rendered on HTTP or MQTT.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DpsReply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u32>,
}

/// What attestation matched.
enum Attested {
    Group(String),
    Individual,
    X509Group(String),
}

/// DPS: the id scope it serves, over the registry and the fault overlay.
#[derive(Debug)]
pub(crate) struct Dps {
    registry: Arc<Registry>,
    faults: Arc<Overlay>,
    id_scope: String,
    /// The `retry-after` of a 202 register answer, in seconds.
    retry_after: u32,
}

impl Dps {
    pub(crate) fn new(
        registry: Arc<Registry>,
        faults: Arc<Overlay>,
        id_scope: String,
        retry_after: u32,
    ) -> Self {
        Self {
            registry,
            faults,
            id_scope,
            retry_after,
        }
    }

    /// `PUT .../register` or `$dps/registrations/PUT/iotdps-register`.
    pub(crate) fn register(
        &self,
        transport: Transport,
        scope: &str,
        reg_id: &str,
        auth: DpsAuth<'_>,
        body: &[u8],
    ) -> DpsReply {
        self.log_dps_request(transport, DpsRequestKind::Register, reg_id, None);
        let reply = self
            .injected(transport, DpsRequestKind::Register, reg_id)
            .map_or_else(|| self.start_operation(scope, reg_id, auth, body), Err)
            .unwrap_or_else(|r| self.error_reply(&r));
        self.log_dps_reply(transport, reg_id, &reply);
        reply
    }

    /// `GET .../operations/{id}` or `$dps/registrations/GET/iotdps-get-operationstatus`.
    pub(crate) fn poll(
        &self,
        transport: Transport,
        scope: &str,
        reg_id: &str,
        operation_id: &str,
        auth: DpsAuth<'_>,
    ) -> DpsReply {
        self.log_dps_request(transport, DpsRequestKind::Poll, reg_id, Some(operation_id));
        let reply = self
            .injected(transport, DpsRequestKind::Poll, reg_id)
            .map_or_else(
                || self.operation_status(scope, reg_id, operation_id, auth),
                Err,
            )
            .unwrap_or_else(|r| self.error_reply(&r));
        self.log_dps_reply(transport, reg_id, &reply);
        reply
    }

    /// `POST /{scope}/registrations/{id}`: the current registration state.
    pub(crate) fn lookup(
        &self,
        transport: Transport,
        scope: &str,
        reg_id: &str,
        auth: DpsAuth<'_>,
    ) -> DpsReply {
        self.log_dps_request(transport, DpsRequestKind::Lookup, reg_id, None);
        let result = (|| {
            self.check_scope(scope)?;
            let state = self.registry.lock();
            self.attest(&state, scope, reg_id, auth)?;
            let device = state
                .devices
                .get(reg_id)
                .ok_or_else(|| refuse(404, 404_201, "registration not found"))?;
            Ok(DpsReply {
                status: 200,
                body: assigned_state(device, self.faults.lock().public_hub(&device.hub)),
                retry_after: None,
            })
        })();
        let reply = result.unwrap_or_else(|r| self.error_reply(&r));
        self.log_dps_reply(transport, reg_id, &reply);
        reply
    }

    fn start_operation(
        &self,
        scope: &str,
        reg_id: &str,
        auth: DpsAuth<'_>,
        body: &[u8],
    ) -> Result<DpsReply, Refusal> {
        self.check_scope(scope)?;
        let model_id = parse_register_body(reg_id, body)?;
        let blocked_dps = self.faults.options().blocked_dps;
        let mut state = self.registry.lock();
        let attested = self.attest(&state, scope, reg_id, auth)?;
        let now = self.registry.clock.utc_string();
        let (status, registration_state) = if enrollment_disabled(&state, reg_id, &attested) {
            (
                "disabled",
                json!({"registrationId": reg_id, "status": "disabled", "lastUpdatedDateTimeUtc": now}),
            )
        } else if state.devices.get(reg_id).is_some_and(|d| d.blocked) {
            if blocked_dps == BlockedDps::Unauthorized {
                return Err(refuse(401, 400_209, BLOCKED));
            }
            ("failed", failed_state(reg_id, &now, 400_209, BLOCKED))
        } else if let Some(device) = Self::allocate(&mut state, reg_id, attested, model_id, &now) {
            let mut faults = self.faults.lock();
            // Registered again: the hub identity accepts the device's key from here on.
            faults.stale_identity.remove(reg_id);
            let hub = faults.public_hub(&device.hub).to_owned();
            drop(faults);
            ("assigned", assigned_state(&device, &hub))
        } else {
            (
                "failed",
                failed_state(
                    reg_id,
                    &now,
                    400_208,
                    "No IoT hub is available for allocation.",
                ),
            )
        };
        let operation_id = format!(
            "4.{}.{}",
            crate::certs::random_hex::<8>(),
            crate::certs::random_hex::<16>()
        );
        state.operations.insert(
            operation_id.clone(),
            Operation {
                registration_id: reg_id.to_owned(),
                registration_state,
                status: status.to_owned(),
            },
        );
        drop(state);
        self.registry.touch();
        Ok(DpsReply {
            status: 202,
            body: json!({"operationId": operation_id, "status": "assigning"}),
            retry_after: Some(self.retry_after),
        })
    }

    /// An error answer a `dps-error` or `throttle` fault imposes on this request.
    fn injected(
        &self,
        transport: Transport,
        request: DpsRequestKind,
        reg_id: &str,
    ) -> Option<Refusal> {
        let (status, code, retry_after, why) = self.faults.dps_fault(transport, request, reg_id)?;
        Some(Refusal {
            status,
            code,
            message: format!("{why} (HTTP {status})"),
            retry_after,
        })
    }

    fn operation_status(
        &self,
        scope: &str,
        reg_id: &str,
        operation_id: &str,
        auth: DpsAuth<'_>,
    ) -> Result<DpsReply, Refusal> {
        self.check_scope(scope)?;
        let state = self.registry.lock();
        self.attest(&state, scope, reg_id, auth)?;
        let op = state
            .operations
            .get(operation_id)
            .filter(|op| op.registration_id.eq_ignore_ascii_case(reg_id))
            .ok_or_else(|| refuse(404, 404_202, format!("operation {operation_id} not found")))?;
        Ok(DpsReply {
            status: 200,
            body: json!({"operationId": operation_id, "status": op.status, "registrationState": op.registration_state}),
            retry_after: None,
        })
    }

    fn check_scope(&self, scope: &str) -> Result<(), Refusal> {
        if scope.eq_ignore_ascii_case(&self.id_scope) {
            Ok(())
        } else {
            Err(refuse(404, 404_200, format!("unknown id scope {scope}")))
        }
    }

    fn attest(
        &self,
        state: &State,
        scope: &str,
        reg_id: &str,
        auth: DpsAuth<'_>,
    ) -> Result<Attested, Refusal> {
        let unauthorized = |why: &str| refuse(401, 401_002, format!("Unauthorized: {why}"));
        match auth {
            DpsAuth::Chain(chain) if !chain.is_empty() => {
                let cn = chain
                    .first()
                    .and_then(crate::certs::common_name)
                    .unwrap_or_default();
                if cn != reg_id {
                    return Err(unauthorized(
                        "certificate CN does not match the registration id",
                    ));
                }
                state
                    .groups
                    .values()
                    .find_map(|g| match &g.attestation {
                        GroupAttestation::X509 { ca_pem } => crate::certs::first_pem_der(ca_pem)
                            .ok()
                            .filter(|ca| crate::tls::chain_leads_to(ca, chain))
                            .map(|_| Attested::X509Group(g.id.clone())),
                        GroupAttestation::SymmetricKey { .. } => None,
                    })
                    .ok_or_else(|| unauthorized("invalid certificate"))
            }
            DpsAuth::Chain(_) | DpsAuth::Sas(None) => Err(unauthorized("no credentials")),
            DpsAuth::Sas(Some(token)) => {
                let token = SasToken::parse(token).map_err(|_| unauthorized("malformed token"))?;
                let resource = format!("{scope}/registrations/{reg_id}");
                let now = self.registry.clock.unix_secs();
                if let Some(e) = state.individuals.get(reg_id) {
                    let keys = [e.primary_key.clone(), e.secondary_key.clone()];
                    if token.verify(&resource, now, &keys).is_ok() {
                        return Ok(Attested::Individual);
                    }
                }
                let mut last = crate::sas::SasError::BadSignature;
                for g in state.groups.values() {
                    let GroupAttestation::SymmetricKey {
                        primary_key,
                        secondary_key,
                    } = &g.attestation
                    else {
                        continue;
                    };
                    let keys: Vec<String> = [primary_key, secondary_key]
                        .into_iter()
                        .filter_map(|k| crate::sas::derive_device_key(k, reg_id))
                        .collect();
                    match token.verify(&resource, now, &keys) {
                        Ok(()) => return Ok(Attested::Group(g.id.clone())),
                        Err(e) => last = e,
                    }
                }
                Err(unauthorized(&format!("{last:?}")))
            }
        }
    }

    /// Picks the device's hub: its current one, else the enabled hub with the fewest devices.
    fn allocate(
        state: &mut State,
        reg_id: &str,
        attested: Attested,
        model_id: Option<String>,
        now: &str,
    ) -> Option<Device> {
        let auth = match attested {
            Attested::Group(group) => DeviceAuth::Group { group },
            Attested::Individual => DeviceAuth::Individual,
            Attested::X509Group(group) => DeviceAuth::X509Group { group },
        };
        if let Some(device) = state.devices.get_mut(reg_id) {
            device.auth = auth;
            if model_id.is_some() {
                device.model_id = model_id;
            }
            return Some(device.clone());
        }
        let hub = state
            .hubs
            .iter()
            .filter(|h| h.enabled)
            .min_by_key(|h| state.devices.values().filter(|d| d.hub == h.host).count())?
            .host
            .clone();
        let device = Device {
            id: reg_id.to_owned(),
            hub: hub.clone(),
            identities: [(hub, HubIdentity { enabled: true })].into(),
            auth,
            blocked: false,
            model_id,
            created: now.to_owned(),
            last_updated: now.to_owned(),
            substatus: "initialAssignment".into(),
            twin: Twin::new(),
        };
        state.devices.insert(reg_id.to_owned(), device.clone());
        Some(device)
    }

    /// Registers a device as DPS would (allocation to the least loaded hub) without a device
    /// asking, as a member of `group` (default: the first symmetric-key group); returns the
    /// existing device unchanged.
    pub(crate) fn preregister(&self, id: &str, group: Option<&str>) -> Result<Device, Error> {
        let mut state = self.registry.lock();
        if let Some(d) = state.devices.get(id) {
            return Ok(d.clone());
        }
        let group = match group {
            Some(g) if state.groups.contains_key(g) => g.to_owned(),
            Some(g) => return Err(Error::InvalidRequest(format!("no enrollment group {g}"))),
            None => state
                .groups
                .values()
                .find(|g| matches!(g.attestation, GroupAttestation::SymmetricKey { .. }))
                .map(|g| g.id.clone())
                .ok_or_else(|| Error::InvalidRequest("no symmetric-key group".into()))?,
        };
        let now = self.registry.clock.utc_string();
        let device = Self::allocate(&mut state, id, Attested::Group(group), None, &now)
            .ok_or_else(|| Error::InvalidRequest("no hub is available for allocation".into()))?;
        drop(state);
        self.registry
            .control(format!("device {id} registered on {}", device.hub));
        Ok(device)
    }

    fn error_reply(&self, r: &Refusal) -> DpsReply {
        DpsReply {
            status: r.status,
            body: json!({
                "errorCode": r.code,
                "trackingId": crate::certs::random_hex::<16>(),
                "message": r.message,
                "timestampUtc": self.registry.clock.utc_string(),
            }),
            retry_after: r.retry_after,
        }
    }

    fn log_dps_request(
        &self,
        transport: Transport,
        request: DpsRequestKind,
        reg_id: &str,
        operation_id: Option<&str>,
    ) {
        let event = Event::DpsRequest {
            transport,
            request,
            registration_id: reg_id.to_owned(),
            operation_id: operation_id.map(str::to_owned),
        };
        self.registry.log.record(Some(reg_id), event);
    }

    fn log_dps_reply(&self, transport: Transport, reg_id: &str, reply: &DpsReply) {
        let state = reply.body.get("registrationState");
        let error_code = reply
            .body
            .get("errorCode")
            .or_else(|| state.and_then(|s| s.get("errorCode")))
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok());
        let event = Event::DpsResponse {
            transport,
            status: reply.status,
            operation_status: reply
                .body
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_owned),
            assigned_hub: state
                .and_then(|s| s.get("assignedHub"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            error_code,
            retry_after: reply.retry_after,
        };
        self.registry.log.record(Some(reg_id), event);
    }
}

fn enrollment_disabled(state: &State, reg_id: &str, attested: &Attested) -> bool {
    match attested {
        Attested::Group(g) | Attested::X509Group(g) => {
            state.groups.get(g).is_some_and(|g| !g.enabled)
        }
        Attested::Individual => state.individuals.get(reg_id).is_some_and(|e| !e.enabled),
    }
}
