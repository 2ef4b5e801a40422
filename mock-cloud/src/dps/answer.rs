//! DPS answers as JSON: refusals, the register body a device sends, and the
//! `registrationState` of an assigned or failed registration (spec/PROTOCOL.md §2, §3).

use serde_json::{Value, json};

use crate::registry::{Device, DeviceAuth};

/// A refusal before any operation exists.
pub(super) struct Refusal {
    pub(super) status: u16,
    pub(super) code: u32,
    pub(super) message: String,
    pub(super) retry_after: Option<u32>,
}

pub(super) fn refuse(status: u16, code: u32, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

/// IoT Central's DPS text for a blocked device (spec/PROTOCOL.md §5.3).
pub(super) const BLOCKED: &str = "Device is blocked from connecting to IoT Central application. Unblock the device in IoT Central and retry.";

/// Checks the register body (`null`, `{}`, `" "` or a DeviceRegistration) and returns the model id.
pub(super) fn parse_register_body(reg_id: &str, body: &[u8]) -> Result<Option<String>, Refusal> {
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
pub(super) fn assigned_state(device: &Device, hub: &str) -> Value {
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

pub(super) fn failed_state(reg_id: &str, now: &str, code: u32, message: &str) -> Value {
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
