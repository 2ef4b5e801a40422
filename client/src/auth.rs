//! SAS tokens and group-key derivation (spec/PROTOCOL.md §1), built with `hmac` and `sha2`.
//!
//! Keys and tokens are wrapped in [`SecretKey`] and [`SasToken`], whose `Debug` output is
//! redacted, so that they cannot end up in a log by accident.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// A malformed key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The key is not valid base64.
    #[error("the symmetric key is not valid base64")]
    NotBase64,
    /// The key decodes to zero bytes.
    #[error("the symmetric key is empty")]
    Empty,
}

/// A base64 symmetric key (group key or device key). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps and checks a base64 key.
    pub fn new(base64_key: impl Into<String>) -> Result<Self, AuthError> {
        let k = Self(base64_key.into().trim().to_owned());
        k.bytes()?;
        Ok(k)
    }

    fn bytes(&self) -> Result<Vec<u8>, AuthError> {
        let raw = B64
            .decode(self.0.as_bytes())
            .map_err(|_| AuthError::NotBase64)?;
        if raw.is_empty() {
            Err(AuthError::Empty)
        } else {
            Ok(raw)
        }
    }

    /// `base64(HMAC-SHA256(key, msg))`.
    pub fn sign(&self, msg: &[u8]) -> Result<String, AuthError> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.bytes()?).map_err(|_| AuthError::Empty)?;
        mac.update(msg);
        Ok(B64.encode(mac.finalize().into_bytes()))
    }

    /// The device key of `registration_id` in a group enrollment whose key is `self`
    /// (spec/PROTOCOL.md §1.4): `base64(HMAC-SHA256(group key, registration id))`.
    pub fn derive_device_key(&self, registration_id: &str) -> Result<Self, AuthError> {
        Ok(Self(self.sign(registration_id.as_bytes())?))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A SAS token (`SharedAccessSignature sr=..&sig=..&se=..[&skn=..]`). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken(String);

impl SasToken {
    /// Builds a token for `resource` (unencoded, for example `{hub}/devices/{id}`) that
    /// expires at `expiry` (seconds since the Unix epoch).
    ///
    /// `sr` is URL-encoded with uppercase hex (`%2F`), the Python and C# SDK style; the
    /// signature covers `{sr}\n{se}` exactly as sent (spec/PROTOCOL.md §1.1–§1.2).
    pub fn new(
        key: &SecretKey,
        resource: &str,
        expiry: u64,
        key_name: Option<&str>,
    ) -> Result<Self, AuthError> {
        let sr = urlencoding::encode(resource);
        let sig = key.sign(format!("{sr}\n{expiry}").as_bytes())?;
        let mut token = format!(
            "SharedAccessSignature sr={sr}&sig={}&se={expiry}",
            urlencoding::encode(&sig)
        );
        if let Some(skn) = key_name {
            token.push_str("&skn=");
            token.push_str(&urlencoding::encode(skn));
        }
        Ok(Self(token))
    }

    /// The token text, to put in an MQTT password or an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SasToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SasToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP_KEY: &str =
        "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
    const REG_ID: &str = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";

    fn sig_of(token: &SasToken) -> String {
        let t = token.expose();
        let start = t.find("&sig=").expect("sig") + 5;
        let end = t[start..].find('&').map_or(t.len(), |e| start + e);
        t[start..end].to_owned()
    }

    #[test]
    fn group_key_derivation_matches_the_published_example() {
        let dev = SecretKey::new(GROUP_KEY)
            .unwrap()
            .derive_device_key(REG_ID)
            .unwrap();
        assert_eq!(dev.0, "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=");
    }

    #[test]
    fn hub_token_matches_the_vector_and_url_encodes_the_signature() {
        let key = SecretKey::new("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let t = SasToken::new(
            &key,
            "myhub.azure-devices.net/devices/dev1",
            1_700_000_000,
            None,
        )
        .unwrap();
        assert_eq!(
            t.expose(),
            "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1\
             &sig=i%2BYmMcSSZc4KzBi6ejz3l0iL%2B2sN0CE3q6vSm837h2g%3D&se=1700000000"
        );
    }

    #[test]
    fn dps_token_matches_the_python_style_vector() {
        let dev = SecretKey::new(GROUP_KEY)
            .unwrap()
            .derive_device_key(REG_ID)
            .unwrap();
        let t = SasToken::new(
            &dev,
            &format!("0ne00000A0A/registrations/{REG_ID}"),
            1_700_000_000,
            Some("registration"),
        )
        .unwrap();
        assert_eq!(
            sig_of(&t),
            urlencoding::encode("t6/8JHWQuQgM9mXdYf/uIqa3dKECOEk9Rr4WrFV19q0=")
        );
        assert!(t.expose().ends_with("&skn=registration"));
    }

    #[test]
    fn other_sr_encodings_sign_differently_as_documented() {
        // The ESDK (lowercase %2f) and Node (raw) vectors: signing the raw sts directly.
        let dev = SecretKey::new(GROUP_KEY)
            .unwrap()
            .derive_device_key(REG_ID)
            .unwrap();
        let esdk = format!("0ne00000A0A%2fregistrations%2f{REG_ID}\n1700000000");
        assert_eq!(
            dev.sign(esdk.as_bytes()).unwrap(),
            "d0v1ROtrJfDl1lL+6Gm6mCyZUBsvFsT3HgNEOWfYmE0="
        );
        let node = format!("0ne00000A0A/registrations/{REG_ID}\n1700000000");
        assert_eq!(
            dev.sign(node.as_bytes()).unwrap(),
            "hUOH8hSLSay+bfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4="
        );
    }

    #[test]
    fn bad_keys_are_rejected_and_secrets_are_not_printed() {
        assert_eq!(SecretKey::new("not base64!"), Err(AuthError::NotBase64));
        assert_eq!(SecretKey::new(""), Err(AuthError::Empty));
        let key = SecretKey::new(GROUP_KEY).unwrap();
        assert!(!format!("{key:?}").contains("8isr"));
        let t = SasToken::new(&key, "h/devices/d", 1, None).unwrap();
        assert!(!format!("{t:?}").contains("sig"));
    }
}
