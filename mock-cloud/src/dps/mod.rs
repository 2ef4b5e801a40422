//! DPS: attestation, allocation and operations, shared by the HTTPS REST front
//! ([`rest`]) and the MQTT front (`crate::mqtt::dps`). Both turn a request into a
//! [`DpsReply`] here and only differ in how they put it on the wire (spec/PROTOCOL.md §2, §3).

pub(crate) mod rest;

use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};

use crate::Error;
use crate::fault::BlockedDps;
use crate::log::{DpsRequestKind, Event, Transport};
use crate::registry::{
    Core, Device, DeviceAuth, GroupAttestation, HubIdentity, Operation, State, Twin,
};
use crate::sas::SasToken;

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

/// A refusal before any operation exists.
struct Refusal {
    status: u16,
    code: u32,
    message: String,
    retry_after: Option<u32>,
}

fn refuse(status: u16, code: u32, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

/// IoT Central's DPS text for a blocked device (spec/PROTOCOL.md §5.3).
const BLOCKED: &str = "Device is blocked from connecting to IoT Central application. Unblock the device in IoT Central and retry.";

impl Core {
    /// `PUT .../register` or `$dps/registrations/PUT/iotdps-register`.
    pub(crate) fn dps_register(
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
            .map_or_else(|| self.register(scope, reg_id, auth, body), Err)
            .unwrap_or_else(|r| self.error_reply(&r));
        self.log_dps_reply(transport, reg_id, &reply);
        reply
    }

    /// `GET .../operations/{id}` or `$dps/registrations/GET/iotdps-get-operationstatus`.
    pub(crate) fn dps_poll(
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
            .map_or_else(|| self.poll(scope, reg_id, operation_id, auth), Err)
            .unwrap_or_else(|r| self.error_reply(&r));
        self.log_dps_reply(transport, reg_id, &reply);
        reply
    }

    /// `POST /{scope}/registrations/{id}`: the current registration state.
    pub(crate) fn dps_lookup(
        &self,
        transport: Transport,
        scope: &str,
        reg_id: &str,
        auth: DpsAuth<'_>,
    ) -> DpsReply {
        self.log_dps_request(transport, DpsRequestKind::Lookup, reg_id, None);
        let result = (|| {
            self.check_scope(scope)?;
            let state = self.lock();
            self.attest(&state, scope, reg_id, auth)?;
            let device = state
                .devices
                .get(reg_id)
                .ok_or_else(|| refuse(404, 404_201, "registration not found"))?;
            Ok(DpsReply {
                status: 200,
                body: assigned_state(device, state.faults.public_hub(&device.hub)),
                retry_after: None,
            })
        })();
        let reply = result.unwrap_or_else(|r| self.error_reply(&r));
        self.log_dps_reply(transport, reg_id, &reply);
        reply
    }

    fn register(
        &self,
        scope: &str,
        reg_id: &str,
        auth: DpsAuth<'_>,
        body: &[u8],
    ) -> Result<DpsReply, Refusal> {
        self.check_scope(scope)?;
        let model_id = parse_register_body(reg_id, body)?;
        let mut state = self.lock();
        let attested = self.attest(&state, scope, reg_id, auth)?;
        let now = self.clock.utc_string();
        let (status, registration_state) = if enrollment_disabled(&state, reg_id, &attested) {
            (
                "disabled",
                json!({"registrationId": reg_id, "status": "disabled", "lastUpdatedDateTimeUtc": now}),
            )
        } else if state.devices.get(reg_id).is_some_and(|d| d.blocked) {
            if state.faults.options.blocked_dps == BlockedDps::Unauthorized {
                return Err(refuse(401, 400_209, BLOCKED));
            }
            ("failed", failed_state(reg_id, &now, 400_209, BLOCKED))
        } else if let Some(device) = Self::allocate(&mut state, reg_id, attested, model_id, &now) {
            let hub = state.faults.public_hub(&device.hub).to_owned();
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
        self.touch();
        Ok(DpsReply {
            status: 202,
            body: json!({"operationId": operation_id, "status": "assigning"}),
            retry_after: Some(self.dps_retry_after),
        })
    }

    /// An error answer a `dps-error` or `throttle` fault imposes on this request.
    fn injected(
        &self,
        transport: Transport,
        request: DpsRequestKind,
        reg_id: &str,
    ) -> Option<Refusal> {
        let (status, code, retry_after, why) = self.dps_fault(transport, request, reg_id)?;
        Some(Refusal {
            status,
            code,
            message: format!("{why} (HTTP {status})"),
            retry_after,
        })
    }

    fn poll(
        &self,
        scope: &str,
        reg_id: &str,
        operation_id: &str,
        auth: DpsAuth<'_>,
    ) -> Result<DpsReply, Refusal> {
        self.check_scope(scope)?;
        let state = self.lock();
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
                let now = self.clock.unix_secs();
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
        let mut state = self.lock();
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
        let now = self.clock.utc_string();
        let device = Self::allocate(&mut state, id, Attested::Group(group), None, &now)
            .ok_or_else(|| Error::InvalidRequest("no hub is available for allocation".into()))?;
        drop(state);
        self.control(format!("device {id} registered on {}", device.hub));
        Ok(device)
    }

    fn error_reply(&self, r: &Refusal) -> DpsReply {
        DpsReply {
            status: r.status,
            body: json!({
                "errorCode": r.code,
                "trackingId": crate::certs::random_hex::<16>(),
                "message": r.message,
                "timestampUtc": self.clock.utc_string(),
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
        self.log.record(Some(reg_id), event);
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
        self.log.record(Some(reg_id), event);
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

/// Checks the register body (`null`, `{}`, `" "` or a DeviceRegistration) and returns the model id.
fn parse_register_body(reg_id: &str, body: &[u8]) -> Result<Option<String>, Refusal> {
    let bad = |why: &str| refuse(400, 400_004, format!("invalid request body: {why}"));
    let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let obj = match value {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        _ => return Err(bad("not a JSON object")),
    };
    match obj.get("registrationId") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) if id.eq_ignore_ascii_case(reg_id) => {}
        Some(_) => return Err(bad("registrationId does not match the path")),
    }
    let payload = obj.get("payload");
    let model = payload
        .and_then(|p| p.get("modelId").or_else(|| p.get("iotcModelId")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(model)
}

fn group_of(device: &Device) -> Option<(&'static str, String)> {
    match &device.auth {
        DeviceAuth::Group { group } => Some(("symmetricKey", group.clone())),
        DeviceAuth::X509Group { group } => Some(("x509", group.clone())),
        DeviceAuth::Individual | DeviceAuth::Keys { .. } => None,
    }
}

/// The `registrationState` of an assigned device; `hub` is the host DPS hands out (another
/// one while the hub's name is gone).
fn assigned_state(device: &Device, hub: &str) -> Value {
    let group = group_of(device);
    let mut s = json!({
        "registrationId": device.id,
        "createdDateTimeUtc": device.created,
        "assignedHub": hub,
        "deviceId": device.id,
        "status": "assigned",
        "substatus": device.substatus,
        "lastUpdatedDateTimeUtc": device.last_updated,
        "etag": format!("\"{}\"", device.last_updated),
    });
    if let (Some((kind, id)), Some(obj)) = (group, s.as_object_mut()) {
        obj.insert(kind.to_owned(), json!({"enrollmentGroupId": id}));
    }
    s
}

fn failed_state(reg_id: &str, now: &str, code: u32, message: &str) -> Value {
    json!({
        "registrationId": reg_id,
        "createdDateTimeUtc": now,
        "status": "failed",
        "errorCode": code,
        "errorMessage": message,
        "lastUpdatedDateTimeUtc": now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_bodies_from_every_sdk_are_accepted() {
        for body in [
            "",
            " ",
            "null",
            "{}",
            r#"{"payload": null, "registrationId": "dev1"}"#,
        ] {
            assert!(
                parse_register_body("dev1", body.as_bytes()).is_ok(),
                "{body}"
            );
        }
        let model = parse_register_body(
            "dev1",
            br#"{"registrationId":"dev1","payload":{"modelId":"dtmi:a;1"}}"#,
        );
        assert_eq!(model.ok().flatten().as_deref(), Some("dtmi:a;1"));
        let legacy = parse_register_body("dev1", br#"{"payload":{"iotcModelId":"dtmi:b;1"}}"#);
        assert_eq!(legacy.ok().flatten().as_deref(), Some("dtmi:b;1"));
    }

    #[test]
    fn garbage_register_bodies_are_400() {
        for body in [
            &b"{not json"[..],
            b"[1]",
            b"\xff\xfe",
            br#"{"registrationId":"other"}"#,
        ] {
            assert_eq!(
                parse_register_body("dev1", body).err().map(|r| r.status),
                Some(400)
            );
        }
    }
}
