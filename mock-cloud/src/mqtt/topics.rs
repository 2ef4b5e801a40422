//! Topic grammar for IoT Hub and DPS over MQTT (spec/PROTOCOL.md §2.2, §4.3, §4.4): parsing what
//! devices publish, checking what they subscribe to, and property bags.

use std::collections::BTreeMap;

use crate::sas::percent_decode;
use urlencoding::encode as percent_encode;

/// What a device published on a hub connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HubTopic {
    /// `devices/{id}/messages/events/{bag}`.
    Telemetry {
        properties: BTreeMap<String, String>,
    },
    /// `$iothub/twin/GET/?$rid={rid}`.
    TwinGet { rid: String },
    /// `$iothub/twin/PATCH/properties/reported/?$rid={rid}`.
    TwinReported { rid: String },
    /// `$iothub/methods/res/{status}/?$rid={rid}`.
    MethodResponse { status: i32, rid: String },
}

/// Why a topic was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicError(pub String);

/// Parses a device's PUBLISH topic; `device` is the connection's device id.
pub(crate) fn parse_hub_publish(device: &str, topic: &str) -> Result<HubTopic, TopicError> {
    let events = format!("devices/{device}/messages/events");
    if let Some(rest) = topic.strip_prefix(&events) {
        let bag = match rest {
            "" | "/" => "",
            r => r
                .strip_prefix('/')
                .ok_or_else(|| TopicError(format!("not a telemetry topic: {topic}")))?,
        };
        let properties = parse_property_bag(bag)?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        return Ok(HubTopic::Telemetry { properties });
    }
    if topic.starts_with("devices/") {
        return Err(TopicError(format!(
            "foreign or unknown device topic: {topic}"
        )));
    }
    let (path, query) = topic
        .split_once('?')
        .ok_or_else(|| TopicError(format!("unknown topic: {topic}")))?;
    let rid =
        query_value(query, "$rid").ok_or_else(|| TopicError(format!("no $rid in {topic}")))?;
    match path {
        "$iothub/twin/GET/" => Ok(HubTopic::TwinGet { rid }),
        "$iothub/twin/PATCH/properties/reported/" => Ok(HubTopic::TwinReported { rid }),
        p => {
            let status = p
                .strip_prefix("$iothub/methods/res/")
                .and_then(|s| s.strip_suffix('/'))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| TopicError(format!("unknown topic: {topic}")))?;
            Ok(HubTopic::MethodResponse { status, rid })
        }
    }
}

/// The filters a hub device may subscribe to (§4.3), normalised; `None` when not allowed.
pub(crate) fn hub_filter(device: &str, filter: &str) -> Option<&'static str> {
    const C2D: &str = "devices/+/messages/devicebound/#";
    match filter {
        "$iothub/methods/POST/#" => Some("$iothub/methods/POST/#"),
        "$iothub/twin/res/#" => Some("$iothub/twin/res/#"),
        "$iothub/twin/PATCH/properties/desired/#" => {
            Some("$iothub/twin/PATCH/properties/desired/#")
        }
        // ESDK subscribes with a wildcard device segment (§9.4).
        C2D => Some(C2D),
        f if f == format!("devices/{device}/messages/devicebound/#") => Some(C2D),
        _ => None,
    }
}

/// The normalised C2D subscription.
pub(crate) const C2D_FILTER: &str = "devices/+/messages/devicebound/#";

/// What a device published on a DPS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DpsTopic {
    /// `$dps/registrations/PUT/iotdps-register/?$rid={rid}`.
    Register { rid: String },
    /// `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}`.
    Poll { rid: String, operation_id: String },
}

/// Parses a DPS PUBLISH topic (§2.2).
pub(crate) fn parse_dps_publish(topic: &str) -> Result<DpsTopic, TopicError> {
    let (path, query) = topic
        .split_once('?')
        .ok_or_else(|| TopicError(format!("unknown DPS topic: {topic}")))?;
    let rid =
        query_value(query, "$rid").ok_or_else(|| TopicError(format!("no $rid in {topic}")))?;
    match path {
        "$dps/registrations/PUT/iotdps-register/" => Ok(DpsTopic::Register { rid }),
        "$dps/registrations/GET/iotdps-get-operationstatus/" => {
            let operation_id = query_value(query, "operationId")
                .ok_or_else(|| TopicError(format!("no operationId in {topic}")))?;
            Ok(DpsTopic::Poll { rid, operation_id })
        }
        _ => Err(TopicError(format!("unknown DPS topic: {topic}"))),
    }
}

/// The DPS response topic: `$rid` first, nothing with a `$` after it (§9.1).
pub(crate) fn dps_response_topic(status: u16, rid: &str, retry_after: Option<u32>) -> String {
    match retry_after {
        Some(s) => format!("$dps/registrations/res/{status}/?$rid={rid}&retry-after={s}"),
        None => format!("$dps/registrations/res/{status}/?$rid={rid}"),
    }
}

/// One value of a `k=v&k=v` query, decoded.
pub(crate) fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v).unwrap_or_else(|| v.to_owned()))
    })
}

/// Decodes a property bag `k=v&k&k=` (names and values percent-decoded; `%24.` becomes `$.`).
pub(crate) fn parse_property_bag(bag: &str) -> Result<Vec<(String, Option<String>)>, TopicError> {
    let mut out = Vec::new();
    for pair in bag.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (pair, None),
        };
        let bad = || TopicError(format!("bad property bag encoding: {pair}"));
        let k = percent_decode(k).ok_or_else(bad)?;
        let v = v.map(|v| percent_decode(v).ok_or_else(bad)).transpose()?;
        out.push((k, v));
    }
    Ok(out)
}

/// Encodes a property bag, percent-encoding names (so `$.mid` goes out as `%24.mid`) and values.
pub(crate) fn encode_property_bag(bag: &[(String, Option<String>)]) -> String {
    bag.iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{}={}", percent_encode(k), percent_encode(v)),
            None => percent_encode(k).into_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry(topic: &str) -> BTreeMap<String, String> {
        match parse_hub_publish("d1", topic) {
            Ok(HubTopic::Telemetry { properties }) => properties,
            other => panic!("telemetry expected, got {other:?}"),
        }
    }

    #[test]
    fn telemetry_bags_decode_with_either_dollar_form() {
        let encoded =
            telemetry("devices/d1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&k=v%20w");
        assert_eq!(
            encoded.get("$.ct").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(encoded.get("k").map(String::as_str), Some("v w"));
        let literal = telemetry("devices/d1/messages/events/$.ct=application%2Fjson&flag");
        assert_eq!(
            literal.get("$.ct").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(literal.get("flag").map(String::as_str), Some(""));
        for empty in ["devices/d1/messages/events/", "devices/d1/messages/events"] {
            assert_eq!(
                parse_hub_publish("d1", empty),
                Ok(HubTopic::Telemetry {
                    properties: BTreeMap::new()
                })
            );
        }
    }

    #[test]
    fn foreign_and_unknown_topics_are_refused() {
        for bad in [
            "devices/d2/messages/events/",
            "devices/d1/messages/eventsX",
            "devices/d1/messages/events/%zz=1",
            "$iothub/twin/GET/",
            "$iothub/other/?$rid=1",
            "$iothub/methods/res/abc/?$rid=1",
            "hello",
        ] {
            assert!(parse_hub_publish("d1", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_topics_parse() {
        assert_eq!(
            parse_hub_publish("d", "$iothub/twin/GET/?$rid=7"),
            Ok(HubTopic::TwinGet { rid: "7".into() })
        );
        assert_eq!(
            parse_hub_publish("d", "$iothub/twin/PATCH/properties/reported/?$rid=a-b&x=1"),
            Ok(HubTopic::TwinReported { rid: "a-b".into() })
        );
        assert_eq!(
            parse_hub_publish("d", "$iothub/methods/res/200/?$rid=1f"),
            Ok(HubTopic::MethodResponse {
                status: 200,
                rid: "1f".into()
            })
        );
        assert_eq!(
            parse_dps_publish(
                "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.abc"
            ),
            Ok(DpsTopic::Poll {
                rid: "2".into(),
                operation_id: "4.abc".into()
            })
        );
        assert_eq!(
            parse_dps_publish("$dps/registrations/PUT/iotdps-register/?$rid=u-u"),
            Ok(DpsTopic::Register { rid: "u-u".into() })
        );
        assert!(parse_dps_publish("$dps/registrations/PUT/other/?$rid=1").is_err());
    }

    #[test]
    fn subscriptions_are_limited_to_the_documented_filters() {
        assert_eq!(
            hub_filter("d1", "devices/d1/messages/devicebound/#"),
            Some(C2D_FILTER)
        );
        assert_eq!(
            hub_filter("d1", "devices/+/messages/devicebound/#"),
            Some(C2D_FILTER)
        );
        assert_eq!(hub_filter("d1", "devices/d2/messages/devicebound/#"), None);
        assert_eq!(hub_filter("d1", "#"), None);
        assert_eq!(
            hub_filter("d1", "$iothub/twin/res/#"),
            Some("$iothub/twin/res/#")
        );
    }

    #[test]
    fn bags_round_trip_and_response_topics_put_rid_first() {
        let bag = vec![
            ("$.mid".to_owned(), Some("m 1".to_owned())),
            ("flag".to_owned(), None),
        ];
        let enc = encode_property_bag(&bag);
        assert_eq!(enc, "%24.mid=m%201&flag");
        assert_eq!(parse_property_bag(&enc), Ok(bag));
        assert_eq!(
            dps_response_topic(202, "x", Some(3)),
            "$dps/registrations/res/202/?$rid=x&retry-after=3"
        );
    }
}
