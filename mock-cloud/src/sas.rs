//! SAS tokens (spec/PROTOCOL.md §1): parsing, verification, key derivation and minting.
//!
//! The signature is checked over the `sr` substring *exactly as received* plus `"\n"` plus the
//! raw `se` (§1.2 mock rule), so every SDK's encoding of `sr` verifies. The resource is compared
//! separately, after percent-decoding, case-insensitively. The comparison of signatures is
//! constant-time (`hmac`'s `verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SasError {
    /// Not `SharedAccessSignature sr=..&sig=..&se=..`.
    Malformed,
    /// `sr` names another resource.
    WrongResource,
    /// `se` is in the past on the mock's clock.
    Expired,
    /// The signature does not match any acceptable key.
    BadSignature,
}

/// A parsed token; every field borrows the raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SasToken<'a> {
    /// `sr` exactly as sent.
    pub sr: &'a str,
    /// `sig` exactly as sent (still percent-encoded).
    pub sig: &'a str,
    /// `se` exactly as sent.
    pub se: &'a str,
    /// `skn`, when present.
    pub skn: Option<&'a str>,
}

impl<'a> SasToken<'a> {
    /// Parses `SharedAccessSignature k=v&k=v...` with the fields in any order (§1.1).
    pub fn parse(token: &'a str) -> Result<Self, SasError> {
        let body = token
            .strip_prefix("SharedAccessSignature ")
            .ok_or(SasError::Malformed)?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for pair in body.split('&') {
            let (k, v) = pair.split_once('=').ok_or(SasError::Malformed)?;
            let slot = match k {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                _ => continue,
            };
            if slot.replace(v).is_some() {
                return Err(SasError::Malformed);
            }
        }
        match (sr, sig, se) {
            (Some(sr), Some(sig), Some(se)) if !sig.is_empty() => Ok(Self { sr, sig, se, skn }),
            _ => Err(SasError::Malformed),
        }
    }

    /// The expiry in Unix seconds.
    pub fn expiry(&self) -> Result<u64, SasError> {
        self.se.parse().map_err(|_| SasError::Malformed)
    }

    /// The resource, percent-decoded.
    pub fn resource(&self) -> Result<String, SasError> {
        percent_decode(self.sr).ok_or(SasError::Malformed)
    }

    /// A non-secret fingerprint that differs between tokens: the first 8 bytes of SHA-256 of `sig`.
    pub fn fingerprint(&self) -> u64 {
        let digest = Sha256::digest(self.sig.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    /// Checks the signature against one key (raw bytes), in constant time.
    pub fn signed_by(&self, key: &[u8]) -> bool {
        let Some(sig) = percent_decode(self.sig) else {
            return false;
        };
        let Ok(sig) = B64.decode(sig.as_bytes()) else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            return false;
        };
        mac.update(self.sr.as_bytes());
        mac.update(b"\n");
        mac.update(self.se.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }

    /// Full check: resource (case-insensitive), expiry against `now_unix`, then the signature
    /// against any of `keys` (base64 strings).
    pub fn verify(&self, resource: &str, now_unix: u64, keys: &[String]) -> Result<(), SasError> {
        if !self.resource()?.eq_ignore_ascii_case(resource) {
            return Err(SasError::WrongResource);
        }
        if self.expiry()? <= now_unix {
            return Err(SasError::Expired);
        }
        let signed = keys
            .iter()
            .filter_map(|k| B64.decode(k).ok())
            .any(|k| self.signed_by(&k));
        if signed {
            Ok(())
        } else {
            Err(SasError::BadSignature)
        }
    }
}

/// `base64(HMAC-SHA256(key, message))` with a base64 key (§1.1).
pub fn sign(key_b64: &str, message: &str) -> Option<String> {
    let key = B64.decode(key_b64).ok()?;
    let mut mac = HmacSha256::new_from_slice(&key).ok()?;
    mac.update(message.as_bytes());
    Some(B64.encode(mac.finalize().into_bytes()))
}

/// The group-enrollment device key: `base64(HMAC-SHA256(base64decode(group), registration id))`
/// (§1.4).
pub fn derive_device_key(group_key_b64: &str, registration_id: &str) -> Option<String> {
    sign(group_key_b64, registration_id)
}

/// Mints a token the way the Python SDK does (`sr` fully percent-encoded, uppercase hex).
pub fn mint(
    key_b64: &str,
    resource: &str,
    expiry_unix: u64,
    key_name: Option<&str>,
) -> Option<String> {
    let sr = urlencoding::encode(resource);
    let sig = sign(key_b64, &format!("{sr}\n{expiry_unix}"))?;
    let mut token = format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry_unix}",
        urlencoding::encode(&sig)
    );
    if let Some(name) = key_name {
        token.push_str("&skn=");
        token.push_str(name);
    }
    Some(token)
}

/// Decodes `%XX` escapes (either case); `+` stays `+`. `None` on a bad escape or bad UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A fresh random 64-byte key (the size IoT Central generates), base64.
pub fn random_key() -> String {
    B64.encode(crate::certs::random_bytes::<64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str =
        "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
    const REG: &str = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";
    const DERIVED: &str = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=";

    #[test]
    fn derives_the_documented_group_device_key() {
        assert_eq!(derive_device_key(GROUP, REG).as_deref(), Some(DERIVED));
    }

    #[test]
    fn hub_token_vector_signs_and_verifies() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let sig = sign(key, "myhub.azure-devices.net%2Fdevices%2Fdev1\n1700000000");
        assert_eq!(
            sig.as_deref(),
            Some("i+YmMcSSZc4KzBi6ejz3l0iL+2sN0CE3q6vSm837h2g=")
        );
        let wire = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1&sig=i%2BYmMcSSZc4KzBi6ejz3l0iL%2B2sN0CE3q6vSm837h2g%3D&se=1700000000";
        let token = SasToken::parse(wire).expect("well-formed");
        assert_eq!(
            token.verify(
                "myhub.azure-devices.net/devices/dev1",
                1_600_000_000,
                &[key.into()]
            ),
            Ok(())
        );
        assert_eq!(
            token.verify(
                "myhub.azure-devices.net/devices/dev1",
                1_700_000_000,
                &[key.into()]
            ),
            Err(SasError::Expired)
        );
        assert_eq!(
            token.verify("myhub.azure-devices.net/devices/dev2", 1, &[key.into()]),
            Err(SasError::WrongResource)
        );
        let other = "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        assert_eq!(
            token.verify("myhub.azure-devices.net/devices/dev1", 1, &[other.into()]),
            Err(SasError::BadSignature)
        );
    }

    fn dps_token(sr: &str, sig: &str, tail: &str) -> String {
        format!(
            "SharedAccessSignature sr={sr}&sig={}&se=1700000000{tail}",
            urlencoding::encode(sig)
        )
    }

    #[test]
    fn dps_token_vectors_verify_in_all_three_encodings() {
        let resource = format!("0ne00000A0A/registrations/{REG}");
        let cases = [
            (
                format!("0ne00000A0A%2Fregistrations%2F{REG}"),
                "t6/8JHWQuQgM9mXdYf/uIqa3dKECOEk9Rr4WrFV19q0=",
                "&skn=registration",
            ),
            (
                format!("0ne00000A0A%2fregistrations%2f{REG}"),
                "d0v1ROtrJfDl1lL+6Gm6mCyZUBsvFsT3HgNEOWfYmE0=",
                "",
            ),
            (
                format!("0ne00000A0A/registrations/{REG}"),
                "hUOH8hSLSay+bfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4=",
                "&skn=registration",
            ),
        ];
        for (sr, sig, tail) in cases {
            assert_eq!(
                sign(DERIVED, &format!("{sr}\n1700000000")).as_deref(),
                Some(sig),
                "vector for {sr}"
            );
            let wire = dps_token(&sr, sig, tail);
            let token = SasToken::parse(&wire).expect("well-formed");
            assert_eq!(
                token.verify(&resource, 1_699_999_999, &[DERIVED.into()]),
                Ok(()),
                "{sr}"
            );
            // The same signature over a differently encoded `sr` must fail.
            let tampered = dps_token(&resource.replace('/', "%2F").to_lowercase(), sig, tail);
            let token = SasToken::parse(&tampered).expect("well-formed");
            assert_eq!(
                token.verify(&resource, 1, &[DERIVED.into()]),
                Err(SasError::BadSignature)
            );
        }
    }

    #[test]
    fn fields_parse_in_any_order_and_junk_is_malformed() {
        let node = "SharedAccessSignature sr=a%2Fb&sig=abc&skn=registration&se=5";
        let t = SasToken::parse(node).expect("node order");
        assert_eq!((t.sr, t.se, t.skn), ("a%2Fb", "5", Some("registration")));
        let docs = "SharedAccessSignature sig=abc&se=5&skn=registration&sr=a%2Fb";
        assert_eq!(SasToken::parse(docs).map(|t| t.sr), Ok("a%2Fb"));
        for bad in [
            "",
            "Bearer x",
            "SharedAccessSignature sr=a&se=1",
            "SharedAccessSignature sr=a&sig=b&se=1&sr=c",
            "SharedAccessSignature sr",
        ] {
            assert_eq!(SasToken::parse(bad), Err(SasError::Malformed), "{bad}");
        }
        let t = SasToken::parse("SharedAccessSignature sr=a&sig=b&se=soon").expect("parses");
        assert_eq!(t.expiry(), Err(SasError::Malformed));
    }

    #[test]
    fn minted_tokens_verify_and_fingerprints_differ() {
        let a = mint(DERIVED, "hub/devices/d1", 2_000_000_000, None).expect("valid key");
        let b = mint(DERIVED, "hub/devices/d1", 2_000_000_001, None).expect("valid key");
        let (ta, tb) = (
            SasToken::parse(&a).expect("a"),
            SasToken::parse(&b).expect("b"),
        );
        assert_eq!(ta.verify("HUB/devices/d1", 1, &[DERIVED.into()]), Ok(()));
        assert_ne!(ta.fingerprint(), tb.fingerprint());
    }

    #[test]
    fn percent_decoding_keeps_plus_and_rejects_bad_escapes() {
        assert_eq!(percent_decode("a+b%2Fc%2f").as_deref(), Some("a+b/c/"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
