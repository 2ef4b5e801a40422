//! Wire formats: IoT Hub topics and property bags (spec/PROTOCOL.md §4), DPS payloads (§2–§3).
//!
//! Everything here is pure parsing and formatting. Input from the cloud never panics: it
//! parses into a typed value or a [`WireError`], which the driver logs and classifies.

pub mod dps;
pub mod hub;

/// Input from the cloud that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A JSON body did not parse or lacks a required field.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why it was rejected.
        detail: String,
    },
    /// A topic that the client never subscribed to or cannot interpret.
    #[error("unexpected topic {0:?}")]
    UnexpectedTopic(String),
    /// A payload larger than the client accepts.
    #[error("payload of {size} bytes exceeds the limit of {limit}")]
    Oversized {
        /// The payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl WireError {
    pub(crate) fn malformed(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Malformed {
            what,
            detail: detail.to_string(),
        }
    }
}

/// Decodes `%XX` escapes (and leaves `+` alone, as IoT Hub property bags do).
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a `k=v&k2=v2` query or property bag; names and values are URL-decoded.
/// A bare `k` yields an empty value.
pub fn parse_bag(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(kv), String::new()),
        })
        .collect()
}

/// The value of `key` in a parsed bag.
pub fn bag_get<'a>(bag: &'a [(String, String)], key: &str) -> Option<&'a str> {
    bag.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_tolerates_broken_ones() {
        assert_eq!(
            url_decode("%24.ct=application%2Fjson"),
            "$.ct=application/json"
        );
        assert_eq!(url_decode("a%2"), "a%2");
        assert_eq!(url_decode("%zz+"), "%zz+");
        assert_eq!(url_decode("%C3%A9"), "é");
    }

    #[test]
    fn parses_bags() {
        let bag = parse_bag("%24.mid=1&k=v%20w&flag&=x");
        assert_eq!(bag_get(&bag, "$.mid"), Some("1"));
        assert_eq!(bag_get(&bag, "k"), Some("v w"));
        assert_eq!(bag_get(&bag, "flag"), Some(""));
        assert_eq!(bag_get(&bag, ""), Some("x"));
    }
}
