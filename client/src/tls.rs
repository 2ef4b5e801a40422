//! rustls client configurations, with the ring provider only (the rustls "crypto provider
//! pitfall"): the provider is passed explicitly, so no process default is needed.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::error::ConfigError;

/// A client certificate chain and its key, as PEM.
#[derive(Clone)]
pub struct Identity {
    pub(crate) certs: Vec<CertificateDer<'static>>,
    pub(crate) key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Parses a PEM chain (leaf first) and a PEM private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::InvalidPem {
                what: "certificate",
                detail: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(ConfigError::InvalidPem {
                what: "certificate",
                detail: "no certificate found".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| ConfigError::InvalidPem {
            what: "private key",
            detail: e.to_string(),
        })?;
        Ok(Self {
            certs,
            key: Arc::new(key),
        })
    }

    /// The subject common name of the leaf: the registration id of an X.509 device.
    pub fn common_name(&self) -> Option<String> {
        leaf_common_name(self.certs.first()?.as_ref())
    }
}

/// Finds the last CN (OID 2.5.4.3) in a DER certificate; the subject follows the issuer, so
/// the last one is the subject's. A minimal scan, enough for the registration id.
fn leaf_common_name(der: &[u8]) -> Option<String> {
    const CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let pos = der.windows(CN.len()).rposition(|w| w == CN)?;
    let rest = der.get(pos + CN.len()..)?;
    let (tag, len) = (*rest.first()?, usize::from(*rest.get(1)?));
    if !matches!(tag, 0x0c | 0x13 | 0x16) || len >= 0x80 {
        return None;
    }
    std::str::from_utf8(rest.get(2..2 + len)?)
        .ok()
        .map(str::to_owned)
}

/// The trust roots: the given CA PEM, or the Mozilla roots when none is given.
pub fn roots(ca_pem: Option<&[u8]>) -> Result<RootCertStore, ConfigError> {
    let mut store = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ConfigError::InvalidPem {
                    what: "CA file",
                    detail: e.to_string(),
                })?;
                store.add(cert).map_err(|e| ConfigError::InvalidPem {
                    what: "CA file",
                    detail: e.to_string(),
                })?;
            }
            if store.is_empty() {
                return Err(ConfigError::InvalidPem {
                    what: "CA file",
                    detail: "no certificate found".into(),
                });
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

/// TLS sessions remembered for resumption, per config.
const SESSION_CACHE: usize = 8;

/// A client config with the ring provider, TLS 1.2 and 1.3, and the identity if any.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
            .map_err(|e| ConfigError::Tls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    // A device resumes sessions with DPS and a hub or two, not the 256 servers rustls reserves
    // room for by default in every config.
    cfg.resumption = rustls::client::Resumption::in_memory_sessions(SESSION_CACHE);
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_generated_identity_and_its_common_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["dev-x509".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dev-x509");
        let cert = params.self_signed(&key).unwrap();
        let id = Identity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        assert_eq!(id.common_name().as_deref(), Some("dev-x509"));
        let roots = roots(Some(cert.pem().as_bytes())).unwrap();
        client_config(roots, Some(&id)).unwrap();
        assert!(!format!("{id:?}").contains("PRIVATE"));
    }

    #[test]
    fn rejects_garbage_pem() {
        assert!(Identity::from_pem(b"nope", b"nope").is_err());
        assert!(roots(Some(b"nope")).is_err());
    }

    #[test]
    fn default_roots_are_the_mozilla_set() {
        assert!(!roots(None).unwrap().is_empty());
    }
}
