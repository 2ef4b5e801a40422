//! Certificates: the mock cloud's CA, its server certificate, and X.509 device identities
//! (all generated with rcgen, ECDSA P-256).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

fn cert_err(e: impl std::fmt::Display) -> Error {
    Error::Certificate(e.to_string())
}

/// `N` bytes from the OS random source (through rustls' ring provider).
///
/// # Panics
///
/// If the operating system cannot supply randomness, which leaves nothing sensible to do.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .expect("the OS random source must work");
    buf
}

/// `N` random bytes as lowercase hex (operation, tracking and message ids).
pub fn random_hex<const N: usize>() -> String {
    use std::fmt::Write as _;
    random_bytes::<N>()
        .iter()
        .fold(String::with_capacity(2 * N), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A certificate with its private key, as PEM and DER.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Identity {
    /// The private key as rustls wants it.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A certificate authority that can issue server and device certificates.
pub struct CertificateAuthority {
    identity: Identity,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.identity.cert_pem)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a new self-signed CA with this common name.
    pub fn generate(common_name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(cert_err)?;
        let identity = Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        };
        Ok(Self {
            identity,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA saved with [`CertificateAuthority::cert_pem`] and [`CertificateAuthority::key_pem`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_err)?;
        let key_der = key.serialize_der();
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(cert_err)?;
        let cert_der = first_pem_der(cert_pem)?;
        let identity = Identity {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert_der,
            key_der,
        };
        Ok(Self { identity, issuer })
    }

    /// The CA certificate, PEM (what devices trust).
    pub fn cert_pem(&self) -> &str {
        &self.identity.cert_pem
    }

    /// The CA's private key, PEM (for persisting the data folder only).
    pub fn key_pem(&self) -> &str {
        &self.identity.key_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.identity.cert_der
    }

    /// Issues a server certificate for these DNS names and IP literals.
    pub fn issue_server(&self, names: &[String]) -> Result<Identity, Error> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(cert_err)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().map_or("localhost", String::as_str),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(&params)
    }

    /// Issues a device (client) certificate whose subject CN is `common_name`.
    pub fn issue_device(&self, common_name: &str) -> Result<Identity, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(&params)
    }

    fn issue(&self, params: &CertificateParams) -> Result<Identity, Error> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

/// The DER of the first certificate in a PEM text.
pub fn first_pem_der(pem: &str) -> Result<CertificateDer<'static>, Error> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(cert_err)
}

/// The subject common name of a DER certificate, if it parses and has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_certificates_carry_the_common_name_and_the_ca_reloads() {
        let ca = CertificateAuthority::generate("group-ca").expect("generate");
        let dev = ca.issue_device("dev-1").expect("issue");
        assert_eq!(common_name(&dev.cert_der).as_deref(), Some("dev-1"));
        let again = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).expect("reload");
        let dev2 = again.issue_device("dev-2").expect("issue after reload");
        assert_eq!(common_name(&dev2.cert_der).as_deref(), Some("dev-2"));
        assert_eq!(again.cert_der(), ca.cert_der());
    }
}
