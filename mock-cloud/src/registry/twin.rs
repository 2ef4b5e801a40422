//! Device twins: desired and reported sections with their `$version`s, JSON merge patch
//! (`null` deletes), and IoT Central writable-property acks (spec/PROTOCOL.md §4.3, §4.6).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The desired and reported sections of a twin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Twin {
    /// Desired properties (set by the cloud), without `$version`.
    pub desired: Map<String, Value>,
    /// The desired `$version`.
    pub desired_version: u64,
    /// Reported properties (set by the device), without `$version`.
    pub reported: Map<String, Value>,
    /// The reported `$version`.
    pub reported_version: u64,
}

/// An IoT Central writable-property acknowledgement found in a reported patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WritableAck {
    /// The component, when nested in one (`"__t":"c"`).
    pub(crate) component: Option<String>,
    /// The property.
    pub(crate) property: String,
    /// `ac`.
    pub(crate) ac: i64,
    /// `av`.
    pub(crate) av: Option<u64>,
    /// `ad`.
    pub(crate) ad: Option<String>,
}

impl Twin {
    /// A fresh twin; both versions start at 1 as on IoT Hub.
    pub fn new() -> Self {
        Self {
            desired_version: 1,
            reported_version: 1,
            ..Self::default()
        }
    }

    /// The body of a twin GET answer.
    pub fn document(&self) -> Value {
        let mut desired = self.desired.clone();
        desired.insert("$version".into(), self.desired_version.into());
        let mut reported = self.reported.clone();
        reported.insert("$version".into(), self.reported_version.into());
        serde_json::json!({ "desired": desired, "reported": reported })
    }

    /// Applies a reported patch; returns the new reported version.
    pub fn patch_reported(&mut self, patch: &Map<String, Value>) -> u64 {
        merge(&mut self.reported, patch);
        self.reported_version += 1;
        self.reported_version
    }

    /// Applies a desired patch; returns the new desired version and the body to push.
    pub fn patch_desired(&mut self, patch: &Map<String, Value>) -> (u64, Value) {
        merge(&mut self.desired, patch);
        self.desired_version += 1;
        let mut body = patch.clone();
        body.remove("$version");
        body.insert("$version".into(), self.desired_version.into());
        (self.desired_version, Value::Object(body))
    }
}

/// RFC 7396 JSON merge patch on objects; `$`-prefixed metadata keys in the patch are skipped.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let entry = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// The writable-property acks in a reported patch: `{"p":{"value":..,"ac":200,"av":3}}` at the
/// root, or inside a component marked `"__t":"c"`.
pub(crate) fn writable_acks(patch: &Map<String, Value>) -> Vec<WritableAck> {
    let mut acks = Vec::new();
    for (name, value) in patch {
        let Value::Object(obj) = value else { continue };
        if let Some(ack) = ack_of(None, name, obj) {
            acks.push(ack);
        } else if obj.get("__t").and_then(Value::as_str) == Some("c") {
            for (prop, inner) in obj {
                if let Value::Object(inner) = inner
                    && let Some(ack) = ack_of(Some(name), prop, inner)
                {
                    acks.push(ack);
                }
            }
        }
    }
    acks
}

fn ack_of(
    component: Option<&str>,
    property: &str,
    obj: &Map<String, Value>,
) -> Option<WritableAck> {
    let ac = obj.get("ac")?.as_i64()?;
    Some(WritableAck {
        component: component.map(str::to_owned),
        property: property.to_owned(),
        ac,
        av: obj.get("av").and_then(Value::as_u64),
        ad: obj.get("ad").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn reported_patches_merge_and_bump_the_version() {
        let mut t = Twin::new();
        assert_eq!(t.patch_reported(&obj(json!({"a": 1, "b": {"c": 2}}))), 2);
        assert_eq!(t.patch_reported(&obj(json!({"a": null, "b": {"d": 3}}))), 3);
        assert_eq!(
            t.document()["reported"],
            json!({"b": {"c": 2, "d": 3}, "$version": 3})
        );
        assert_eq!(t.document()["desired"], json!({"$version": 1}));
    }

    #[test]
    fn desired_patches_carry_the_new_version() {
        let mut t = Twin::new();
        let (v, body) = t.patch_desired(&obj(json!({"target": 21.5, "$version": 99})));
        assert_eq!(v, 2);
        assert_eq!(body, json!({"target": 21.5, "$version": 2}));
    }

    #[test]
    fn finds_root_and_component_writable_acks() {
        let patch = obj(json!({
            "target": {"value": 21.5, "ac": 200, "av": 2, "ad": "completed"},
            "thermostat1": {"__t": "c", "setpoint": {"value": 3, "ac": 400, "av": 5}},
            "plain": 4
        }));
        let acks = writable_acks(&patch);
        assert_eq!(acks.len(), 2);
        assert!(acks.iter().any(|a| a.property == "target"
            && a.ac == 200
            && a.av == Some(2)
            && a.component.is_none()));
        assert!(
            acks.iter()
                .any(|a| a.property == "setpoint" && a.component.as_deref() == Some("thermostat1"))
        );
    }
}
