//! DPS payloads and MQTT topics (spec/PROTOCOL.md §2.2–§2.5, §3).

use std::time::Duration;

use hubswap_spec::{Assignment, DpsReply};
use serde::Deserialize;

use super::{WireError, bag_get, parse_bag};

/// The api-version the client sends to DPS.
pub const API_VERSION: &str = "2021-06-01";
/// The MQTT filter for DPS responses.
pub const RESPONSE_FILTER: &str = "$dps/registrations/res/#";

/// The register request body: `{"registrationId":..,"payload":{"modelId":..}}`.
pub fn register_body(registration_id: &str, model_id: Option<&str>) -> Vec<u8> {
    let payload = model_id.map(|m| serde_json::json!({ "modelId": m }));
    let body = serde_json::json!({ "registrationId": registration_id, "payload": payload });
    body.to_string().into_bytes()
}

/// The MQTT topic of a register request.
pub fn register_topic(rid: &str) -> String {
    format!("$dps/registrations/PUT/iotdps-register/?$rid={rid}")
}

/// The MQTT topic of an operation poll.
pub fn poll_topic(rid: &str, operation: &str) -> String {
    format!("$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={operation}")
}

/// A parsed DPS response topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseTopic {
    /// The status, as on HTTP.
    pub status: u16,
    /// The request id echoed back.
    pub rid: String,
    /// The `retry-after`, if sent.
    pub retry_after: Option<Duration>,
}

/// Parses `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]`.
pub fn parse_response_topic(topic: &str) -> Result<ResponseTopic, WireError> {
    let bad = || WireError::UnexpectedTopic(topic.to_owned());
    let rest = topic
        .strip_prefix("$dps/registrations/res/")
        .ok_or_else(bad)?;
    let (status, query) = rest.split_once("/?").ok_or_else(bad)?;
    let status = status.parse::<u16>().map_err(|_| bad())?;
    let bag = parse_bag(query);
    let rid = bag_get(&bag, "$rid").ok_or_else(bad)?.to_owned();
    Ok(ResponseTopic {
        status,
        rid,
        retry_after: parse_retry_after(bag_get(&bag, "retry-after")),
    })
}

/// A `retry-after` in whole seconds; anything else is ignored.
pub fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationStatus {
    operation_id: Option<String>,
    status: Option<String>,
    registration_state: Option<RegistrationState>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationState {
    assigned_hub: Option<String>,
    device_id: Option<String>,
    error_code: Option<u32>,
    error_message: Option<String>,
}

/// Turns a DPS answer (status, `retry-after`, body) into the spec's [`DpsReply`].
///
/// Non-2xx answers become [`DpsReply::Status`] whatever their body. A 2xx body that is not a
/// registration operation status is a [`WireError::Malformed`].
pub fn parse_reply(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<DpsReply, WireError> {
    if !(200..300).contains(&status) {
        return Ok(DpsReply::Status {
            status,
            retry_after,
        });
    }
    let op: OperationStatus =
        serde_json::from_slice(body).map_err(|e| WireError::malformed("DPS response", e))?;
    let state = op.registration_state;
    match op.status.as_deref() {
        Some("assigned") => {
            let s = state.ok_or_else(|| {
                WireError::malformed("DPS response", "assigned without registrationState")
            })?;
            match (s.assigned_hub, s.device_id) {
                (Some(hub), Some(device_id)) if !hub.is_empty() && !device_id.is_empty() => {
                    Ok(DpsReply::Assigned(Assignment { hub, device_id }))
                }
                _ => Err(WireError::malformed(
                    "DPS response",
                    "assigned without assignedHub and deviceId",
                )),
            }
        }
        Some("assigning" | "unassigned") => {
            let operation = op.operation_id.filter(|o| !o.is_empty()).ok_or_else(|| {
                WireError::malformed("DPS response", "assigning without operationId")
            })?;
            Ok(DpsReply::Assigning {
                operation,
                retry_after,
            })
        }
        Some("failed") => {
            let error_code = state.as_ref().and_then(|s| s.error_code).unwrap_or(0);
            if let Some(msg) = state.and_then(|s| s.error_message) {
                tracing::warn!(error_code, message = %msg, "DPS registration failed");
            }
            Ok(DpsReply::Failed { error_code })
        }
        Some("disabled") => Ok(DpsReply::Disabled),
        other => Err(WireError::malformed(
            "DPS response",
            format!("unknown status {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_bodies() {
        let assigning = br#"{"operationId":"4.d0a6","status":"assigning"}"#;
        assert_eq!(
            parse_reply(202, Some(Duration::from_secs(3)), assigning),
            Ok(DpsReply::Assigning {
                operation: "4.d0a6".into(),
                retry_after: Some(Duration::from_secs(3))
            })
        );
        let assigned = br#"{"operationId":"x","status":"assigned","registrationState":{"x509":{},
            "registrationId":"dev1","assignedHub":"contoso.azure-devices.net","deviceId":"dev1",
            "status":"assigned","substatus":"initialAssignment"}}"#;
        assert_eq!(
            parse_reply(200, None, assigned),
            Ok(DpsReply::Assigned(Assignment {
                hub: "contoso.azure-devices.net".into(),
                device_id: "dev1".into()
            }))
        );
        let failed = br#"{"operationId":"x","status":"failed","registrationState":{"errorCode":400209,"errorMessage":"blocked"}}"#;
        assert_eq!(
            parse_reply(200, None, failed),
            Ok(DpsReply::Failed {
                error_code: 400_209
            })
        );
        assert_eq!(
            parse_reply(200, None, br#"{"status":"disabled"}"#),
            Ok(DpsReply::Disabled)
        );
        assert_eq!(
            parse_reply(429, Some(Duration::from_secs(5)), b"<html>"),
            Ok(DpsReply::Status {
                status: 429,
                retry_after: Some(Duration::from_secs(5))
            })
        );
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for body in [
            &b"not json"[..],
            b"",
            b"[]",
            br#"{"status":"assigned"}"#,
            br#"{"status":"assigned","registrationState":{"assignedHub":"h"}}"#,
            br#"{"status":"assigning"}"#,
            br#"{"status":"weird"}"#,
            br#"{"status":7}"#,
        ] {
            assert!(
                matches!(
                    parse_reply(200, None, body),
                    Err(WireError::Malformed { .. })
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn parses_response_topics() {
        assert_eq!(
            parse_response_topic("$dps/registrations/res/202/?$rid=7&retry-after=3"),
            Ok(ResponseTopic {
                status: 202,
                rid: "7".into(),
                retry_after: Some(Duration::from_secs(3))
            })
        );
        for bad in [
            "$dps/registrations/res/abc/?$rid=1",
            "$dps/other",
            "$dps/registrations/res/200/?x=1",
        ] {
            assert!(parse_response_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn register_body_carries_the_model_id() {
        let v: serde_json::Value =
            serde_json::from_slice(&register_body("dev1", Some("dtmi:x;1"))).unwrap();
        assert_eq!(v["payload"]["modelId"], "dtmi:x;1");
        let v: serde_json::Value = serde_json::from_slice(&register_body("dev1", None)).unwrap();
        assert!(v["payload"].is_null());
    }
}
