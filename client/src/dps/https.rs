//! DPS over HTTPS REST (spec/PROTOCOL.md §3): hyper's HTTP/1.1 client over tokio-rustls.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{DpsError, DpsRequest, DpsSettings, RawAnswer};
use crate::wire::dps::{API_VERSION, parse_retry_after, register_body};

/// The largest DPS answer read (DPS messages are at most 96 KB).
const MAX_BODY: usize = 96 * 1024;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) async fn request(s: &DpsSettings, req: &DpsRequest) -> Result<RawAnswer, DpsError> {
    let tcp = tokio::time::timeout(s.timeout, TcpStream::connect((s.host.as_str(), s.port)))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let name =
        ServerName::try_from(s.host.clone()).map_err(|e| DpsError::ServerName(e.to_string()))?;
    let tls = TlsConnector::from(s.tls.clone()).connect(name, tcp).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| DpsError::Http(e.to_string()))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));

    let scope = &s.id_scope;
    let reg = urlencoding::encode(&s.registration_id);
    let (method, path, body) = match &req.operation {
        None => (
            "PUT",
            format!("/{scope}/registrations/{reg}/register?api-version={API_VERSION}"),
            register_body(&s.registration_id, s.model_id.as_deref()),
        ),
        Some(op) => (
            "GET",
            format!(
                "/{scope}/registrations/{reg}/operations/{}?api-version={API_VERSION}",
                urlencoding::encode(op)
            ),
            Vec::new(),
        ),
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, format!("{}:{}", s.host, s.port))
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, "hubswap-client/0.1");
    if !body.is_empty() {
        builder = builder.header(
            hyper::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        );
    }
    if let Some(token) = s.token(req.token_expiry)? {
        builder = builder.header(hyper::header::AUTHORIZATION, token.expose());
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| DpsError::Http(e.to_string()))?;
    let resp = sender
        .send_request(request)
        .await
        .map_err(|e| DpsError::Http(e.to_string()))?;
    let status = resp.status().as_u16();
    let retry_after = parse_retry_after(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
    );
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| DpsError::Http(e.to_string()))?
        .to_bytes()
        .to_vec();
    Ok(RawAnswer {
        status,
        retry_after,
        body,
    })
}
