//! DPS over HTTPS against a scripted TLS server on `127.0.0.1:0`: malformed answers are
//! classified, `retry-after` is carried to the spec.

use std::sync::Arc;
use std::time::Duration;

use hubswap_spec::{DpsReply, WireSignal};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::{DpsRequest, DpsSettings, DpsTransport, request};
use crate::auth::SecretKey;
use crate::tls::{client_config, roots};

/// Serves each connection one canned HTTP response; returns the port and the CA PEM.
async fn server(responses: Vec<String>) -> (u16, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
    let pk = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], pk)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for resp in responses {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut buf = vec![0u8; 8192];
            let _ = tls.read(&mut buf).await.unwrap();
            tls.write_all(resp.as_bytes()).await.unwrap();
            tls.shutdown().await.unwrap();
        }
    });
    (port, cert.pem())
}

fn http(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

fn settings(port: u16, ca: &str) -> Arc<DpsSettings> {
    Arc::new(DpsSettings {
        id_scope: "0ne0001".into(),
        registration_id: "dev1".into(),
        model_id: None,
        key: Some(SecretKey::new("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()),
        tls: client_config(roots(Some(ca.as_bytes())).unwrap(), None).unwrap(),
        host: "127.0.0.1".into(),
        port,
        transport: DpsTransport::Https,
        timeout: Duration::from_secs(10),
    })
}

fn register() -> DpsRequest {
    DpsRequest {
        operation: None,
        rid: "1".into(),
        token_expiry: 2_000_000_000,
    }
}

#[tokio::test]
async fn https_answers_are_classified_and_retry_after_is_kept() {
    let (port, ca) = server(vec![
        http("200 OK", "", "{this is not json"),
        http("200 OK", "", r#"{"status":"assigned"}"#),
        http("429 Too Many Requests", "retry-after: 7\r\n", "{}"),
        http(
            "202 Accepted",
            "retry-after: 3\r\n",
            r#"{"operationId":"op-1","status":"assigning"}"#,
        ),
        http(
            "200 OK",
            "",
            r#"{"status":"assigned","registrationState":{"assignedHub":"h","deviceId":"dev1"}}"#,
        ),
    ])
    .await;
    let s = settings(port, &ca);
    // Malformed JSON and a body missing required fields: the spec's `DpsMalformed` row.
    assert_eq!(
        request(s.clone(), register()).await,
        WireSignal::DpsMalformed
    );
    assert_eq!(
        request(s.clone(), register()).await,
        WireSignal::DpsMalformed
    );
    assert_eq!(
        request(s.clone(), register()).await,
        WireSignal::Dps(DpsReply::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(7))
        })
    );
    assert_eq!(
        request(s.clone(), register()).await,
        WireSignal::Dps(DpsReply::Assigning {
            operation: "op-1".into(),
            retry_after: Some(Duration::from_secs(3))
        })
    );
    let poll = DpsRequest {
        operation: Some("op-1".into()),
        ..register()
    };
    assert!(matches!(
        request(s, poll).await,
        WireSignal::Dps(DpsReply::Assigned(_))
    ));
}

#[tokio::test]
async fn an_unreachable_dps_is_transient() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let (_, ca) = server(vec![]).await;
    assert_eq!(
        request(settings(port, &ca), register()).await,
        WireSignal::DpsUnreachable
    );
}
