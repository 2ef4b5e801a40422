//! TLS for every listener: TLS 1.2 and 1.3 (the Python SDK needs 1.2), ring only, and an
//! optional client certificate so SAS and X.509 devices share one listener.
//!
//! The handshake accepts any client chain whose handshake signature is valid (proof of
//! possession); whether the chain leads to an enrollment group's CA is decided later, at
//! CONNECT or at DPS registration, by [`chain_leads_to`], because only then is the group known.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::Error;
use crate::certs::Identity;

/// Installs ring as the process-wide rustls provider, ignoring "already installed".
///
/// rumqttc's `TlsConfiguration::Simple` and other `ClientConfig::builder()` users need a
/// process default; the mock itself always passes its provider explicitly.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config for `identity`, TLS 1.2 + 1.3, optional client certificates.
pub fn server_config(identity: &Identity, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, Error> {
    let provider = provider();
    let verifier = Arc::new(OptionalClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert_der.clone()], identity.key_der())?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Does `chain` (leaf first) verify up to the CA certificate `ca`, for client authentication?
pub fn chain_leads_to(ca: &CertificateDer<'_>, chain: &[CertificateDer<'static>]) -> bool {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return false;
    };
    let mut roots = RootCertStore::empty();
    if roots.add(ca.clone().into_owned()).is_err() {
        return false;
    }
    let Ok(verifier) =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()
    else {
        return false;
    };
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .is_ok()
}

/// Asks for a client certificate, does not require one, checks only the handshake signature.
#[derive(Debug)]
struct OptionalClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for OptionalClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::CertificateAuthority;

    #[test]
    fn chains_verify_only_to_their_own_ca() {
        let ca = CertificateAuthority::generate("a").expect("ca");
        let other = CertificateAuthority::generate("b").expect("ca");
        let dev = ca.issue_device("dev").expect("dev");
        assert!(chain_leads_to(
            ca.cert_der(),
            std::slice::from_ref(&dev.cert_der)
        ));
        assert!(!chain_leads_to(
            other.cert_der(),
            std::slice::from_ref(&dev.cert_der)
        ));
        assert!(!chain_leads_to(ca.cert_der(), &[]));
    }
}
