//! IoT Hub MQTT topics, property bags and twin documents (spec/PROTOCOL.md §4).

use super::{WireError, bag_get, parse_bag};
use urlencoding::encode as url_encode;

/// The api-version sent in the hub username.
pub const API_VERSION: &str = "2021-04-12";

/// The hub username: `{hub}/{device}/?api-version=..[&model-id=..]`.
pub fn username(hub: &str, device_id: &str, model_id: Option<&str>) -> String {
    let mut u = format!(
        "{hub}/{device_id}/?api-version={API_VERSION}&DeviceClientType=hubswap-client%2F0.1"
    );
    if let Some(m) = model_id {
        u.push_str("&model-id=");
        u.push_str(&url_encode(m));
    }
    u
}

/// The filters the client subscribes to after every connect.
pub fn subscriptions(device_id: &str) -> [String; 4] {
    [
        "$iothub/methods/POST/#".to_owned(),
        format!("devices/{device_id}/messages/devicebound/#"),
        "$iothub/twin/res/#".to_owned(),
        "$iothub/twin/PATCH/properties/desired/#".to_owned(),
    ]
}

/// The telemetry topic with its property bag; system properties use the `%24.` prefix.
pub fn telemetry_topic(
    device_id: &str,
    system: &[(&str, &str)],
    custom: &[(String, String)],
) -> String {
    let mut t = format!("devices/{device_id}/messages/events/");
    let mut first = true;
    let mut push = |k: &str, v: &str| {
        if !first {
            t.push('&');
        }
        first = false;
        t.push_str(&url_encode(k));
        t.push('=');
        t.push_str(&url_encode(v));
    };
    for (k, v) in system {
        push(k, v);
    }
    for (k, v) in custom {
        push(k, v);
    }
    t
}

/// The twin GET topic.
pub fn twin_get_topic(rid: &str) -> String {
    format!("$iothub/twin/GET/?$rid={rid}")
}

/// The reported-properties PATCH topic.
pub fn twin_patch_topic(rid: &str) -> String {
    format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}")
}

/// The method (command) response topic.
pub fn method_response_topic(status: u16, rid: &str) -> String {
    format!("$iothub/methods/res/{status}/?$rid={rid}")
}

/// A message the hub sent, by topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A response to a twin GET or PATCH.
    TwinResponse {
        /// The status (200 GET, 204 PATCH, 4xx/5xx failures).
        status: u16,
        /// The request id.
        rid: String,
        /// The new reported version after a PATCH.
        version: Option<u64>,
    },
    /// A desired-properties patch.
    DesiredPatch {
        /// The desired version.
        version: Option<u64>,
    },
    /// A direct method or IoT Central command (`component*command`).
    Method {
        /// The component, if the name had one.
        component: Option<String>,
        /// The command name.
        name: String,
        /// The request id to answer.
        rid: String,
    },
    /// A cloud-to-device message with its property bag.
    C2d {
        /// The decoded property bag.
        properties: Vec<(String, String)>,
    },
}

/// Classifies an incoming topic. Topics the client never subscribed to are errors.
pub fn parse_incoming(topic: &str, device_id: &str) -> Result<Incoming, WireError> {
    let bad = || WireError::UnexpectedTopic(topic.to_owned());
    if let Some(rest) = topic.strip_prefix("$iothub/twin/res/") {
        let (status, query) = rest.split_once("/?").ok_or_else(bad)?;
        let status = status.parse().map_err(|_| bad())?;
        let bag = parse_bag(query);
        let rid = bag_get(&bag, "$rid").ok_or_else(bad)?.to_owned();
        let version = bag_get(&bag, "$version").and_then(|v| v.parse().ok());
        return Ok(Incoming::TwinResponse {
            status,
            rid,
            version,
        });
    }
    if let Some(rest) = topic.strip_prefix("$iothub/twin/PATCH/properties/desired/") {
        let bag = parse_bag(rest.trim_start_matches('?'));
        return Ok(Incoming::DesiredPatch {
            version: bag_get(&bag, "$version").and_then(|v| v.parse().ok()),
        });
    }
    if let Some(rest) = topic.strip_prefix("$iothub/methods/POST/") {
        let (name, query) = rest.split_once("/?").ok_or_else(bad)?;
        let bag = parse_bag(query);
        let rid = bag_get(&bag, "$rid").ok_or_else(bad)?.to_owned();
        if name.is_empty() {
            return Err(bad());
        }
        let (component, name) = match name.split_once('*') {
            Some((c, n)) => (Some(c.to_owned()), n.to_owned()),
            None => (None, name.to_owned()),
        };
        return Ok(Incoming::Method {
            component,
            name,
            rid,
        });
    }
    let c2d_prefix = format!("devices/{device_id}/messages/devicebound/");
    if let Some(rest) = topic.strip_prefix(&c2d_prefix) {
        return Ok(Incoming::C2d {
            properties: parse_bag(rest),
        });
    }
    Err(bad())
}

/// A twin document as a GET returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinDoc {
    /// The desired section (with `$version`).
    pub desired: serde_json::Value,
    /// The reported section (with `$version`).
    pub reported: serde_json::Value,
}

/// Parses a twin GET body; it must be an object with object `desired` and `reported`.
pub fn parse_twin(body: &[u8]) -> Result<TwinDoc, WireError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| WireError::malformed("twin", e))?;
    let section = |name: &str| match v.get(name) {
        Some(s @ serde_json::Value::Object(_)) => Ok(s.clone()),
        None => Ok(serde_json::json!({})),
        Some(_) => Err(WireError::malformed(
            "twin",
            format!("`{name}` is not an object"),
        )),
    };
    if !v.is_object() {
        return Err(WireError::malformed("twin", "not an object"));
    }
    Ok(TwinDoc {
        desired: section("desired")?,
        reported: section("reported")?,
    })
}

/// Parses a desired-properties patch body (a JSON object).
pub fn parse_patch(body: &[u8]) -> Result<serde_json::Value, WireError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(WireError::malformed("desired patch", "not an object")),
        Err(e) => Err(WireError::malformed("desired patch", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_subscribed_topic() {
        assert_eq!(
            parse_incoming("$iothub/twin/res/204/?$rid=3&$version=7", "d"),
            Ok(Incoming::TwinResponse {
                status: 204,
                rid: "3".into(),
                version: Some(7)
            })
        );
        assert_eq!(
            parse_incoming("$iothub/twin/PATCH/properties/desired/?$version=4", "d"),
            Ok(Incoming::DesiredPatch { version: Some(4) })
        );
        assert_eq!(
            parse_incoming(
                "$iothub/methods/POST/thermostat1*getMaxMinReport/?$rid=9",
                "d"
            ),
            Ok(Incoming::Method {
                component: Some("thermostat1".into()),
                name: "getMaxMinReport".into(),
                rid: "9".into()
            })
        );
        assert_eq!(
            parse_incoming("$iothub/methods/POST/reboot/?$rid=1", "d"),
            Ok(Incoming::Method {
                component: None,
                name: "reboot".into(),
                rid: "1".into()
            })
        );
        let Ok(Incoming::C2d { properties }) =
            parse_incoming("devices/d/messages/devicebound/%24.mid=5&k=v", "d")
        else {
            panic!()
        };
        assert_eq!(bag_get(&properties, "$.mid"), Some("5"));
    }

    #[test]
    fn unexpected_topics_are_errors() {
        for t in [
            "devices/other/messages/devicebound/x",
            "$iothub/twin/res/abc/?$rid=1",
            "$iothub/twin/res/200",
            "$iothub/methods/POST//?$rid=1",
            "$iothub/methods/POST/x/?nope=1",
            "random/topic",
            "",
        ] {
            assert!(
                matches!(parse_incoming(t, "d"), Err(WireError::UnexpectedTopic(_))),
                "{t}"
            );
        }
    }

    #[test]
    fn builds_telemetry_topics_with_encoded_bags() {
        let t = telemetry_topic(
            "d",
            &[("$.mid", "m1"), ("$.ct", "application/json")],
            &[("k v".into(), "a&b".into())],
        );
        assert_eq!(
            t,
            "devices/d/messages/events/%24.mid=m1&%24.ct=application%2Fjson&k%20v=a%26b"
        );
    }

    #[test]
    fn twin_documents_are_validated() {
        let doc =
            parse_twin(br#"{"desired":{"$version":2,"t":1},"reported":{"$version":1}}"#).unwrap();
        assert_eq!(doc.desired["t"], 1);
        for bad in [&b"nope"[..], b"[1]", br#"{"desired":3}"#, b"\xff"] {
            assert!(parse_twin(bad).is_err());
        }
        assert!(parse_patch(b"12").is_err());
        assert!(parse_patch(br#"{"$version":3}"#).is_ok());
    }

    #[test]
    fn username_carries_the_encoded_model_id() {
        let u = username("h", "d", Some("dtmi:com:example:Thermostat;1"));
        assert!(u.starts_with("h/d/?api-version="));
        assert!(u.ends_with("&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"));
    }
}
