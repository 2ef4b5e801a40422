//! DPS over HTTPS REST (spec/PROTOCOL.md §3): axum routes over rustls (axum-server).
//!
//! Attestation: a symmetric-key device sends `Authorization: SharedAccessSignature ...`; an
//! X.509 device sends no `Authorization` header and presents its chain as the TLS client
//! certificate (§8). axum-server's rustls acceptor puts the handshake's [`TlsInfo`] (with the
//! peer chain) into every request's extensions, so handlers see the chain of their connection.
//!
//! Every answer is JSON, including refusals: unknown routes and methods, garbage bodies and
//! bad tokens get `{errorCode, trackingId, message, timestampUtc}` with a 4xx status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use axum_server::tls::TlsInfo;
use rustls::pki_types::CertificateDer;
use serde_json::json;

use super::{DpsAuth, DpsReply};
use crate::log::{DpsRequestKind, Event, Transport};
use crate::shared::Shared;

/// The DPS REST routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{scope}/registrations/{reg}/register", put(register))
        .route("/{scope}/registrations/{reg}/operations/{op}", get(poll))
        .route("/{scope}/registrations/{reg}", post(lookup))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .with_state(shared)
}

/// The TLS client chain of the request's connection (leaf first), empty without one.
type Tls = Option<Extension<Arc<TlsInfo>>>;

fn chain(tls: Tls) -> Vec<CertificateDer<'static>> {
    tls.map(|Extension(info)| {
        info.peer_certificates
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect()
    })
    .unwrap_or_default()
}

/// The `Authorization` header when present, else the client chain when one was presented.
fn auth<'a>(headers: &'a HeaderMap, chain: &'a [CertificateDer<'static>]) -> DpsAuth<'a> {
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(token) => DpsAuth::Sas(Some(token)),
        None if !chain.is_empty() => DpsAuth::Chain(chain),
        None => DpsAuth::Sas(None),
    }
}

async fn register(
    State(shared): State<Arc<Shared>>,
    tls: Tls,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Path((scope, reg))) = path else {
        return error(&shared, StatusCode::BAD_REQUEST, 400_001, "malformed path");
    };
    if let Some(stopped) = network(&shared, &reg, DpsRequestKind::Register).await {
        return stopped;
    }
    let chain = chain(tls);
    let reply = shared.dps.register(
        Transport::Https,
        &scope,
        &reg,
        auth(&headers, &chain),
        &body,
    );
    render(&reply)
}

async fn poll(
    State(shared): State<Arc<Shared>>,
    tls: Tls,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((scope, reg, op))) = path else {
        return error(&shared, StatusCode::BAD_REQUEST, 400_001, "malformed path");
    };
    if let Some(stopped) = network(&shared, &reg, DpsRequestKind::Poll).await {
        return stopped;
    }
    let chain = chain(tls);
    render(
        &shared
            .dps
            .poll(Transport::Https, &scope, &reg, &op, auth(&headers, &chain)),
    )
}

async fn lookup(
    State(shared): State<Arc<Shared>>,
    tls: Tls,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((scope, reg))) = path else {
        return error(&shared, StatusCode::BAD_REQUEST, 400_001, "malformed path");
    };
    let chain = chain(tls);
    render(
        &shared
            .dps
            .lookup(Transport::Https, &scope, &reg, auth(&headers, &chain)),
    )
}

/// Network faults for the device over HTTPS: a `delay` postpones the answer; a `blackhole`
/// leaves the request unanswered (logged as dropped) for as long as it lasts. `Some` (a 503)
/// when the cloud shuts down meanwhile.
async fn network(shared: &Shared, reg: &str, request: DpsRequestKind) -> Option<Response> {
    if wait_out_network(shared, reg, request).await {
        None
    } else {
        Some(error(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            503_000,
            "cloud stopping",
        ))
    }
}

/// `false` when the cloud shuts down while a network fault holds the request.
async fn wait_out_network(shared: &Shared, reg: &str, request: DpsRequestKind) -> bool {
    let faults = &shared.faults;
    if faults.blackholed(None, reg) {
        let event = Event::DpsDropped {
            transport: Transport::Https,
            request,
            reason: "network blackhole".into(),
        };
        shared.log.record(Some(reg), event);
        let mut epoch = faults.epoch.subscribe();
        while faults.blackholed(None, reg) {
            tokio::select! {
                () = shared.shutdown.cancelled() => return false,
                changed = epoch.changed() => if changed.is_err() { return false },
            }
        }
    }
    if let Some(d) = faults.send_delay(None, reg) {
        tokio::select! {
            () = shared.shutdown.cancelled() => return false,
            () = tokio::time::sleep(d) => {}
        }
    }
    true
}

async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    error(&shared, StatusCode::NOT_FOUND, 404_000, "no such route")
}

async fn not_allowed(State(shared): State<Arc<Shared>>) -> Response {
    error(
        &shared,
        StatusCode::METHOD_NOT_ALLOWED,
        405_000,
        "method not allowed on this route",
    )
}

fn error(shared: &Shared, status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "errorCode": code,
        "trackingId": crate::certs::random_hex::<16>(),
        "message": message,
        "timestampUtc": shared.clock.utc_string(),
    });
    render(&DpsReply {
        status: status.as_u16(),
        body,
        retry_after: None,
    })
}

/// Renders a reply: status, JSON body, `retry-after`, and `x-ms-error-code` on errors.
fn render(reply: &DpsReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(secs) = reply.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(code) = reply
        .body
        .get("errorCode")
        .and_then(serde_json::Value::as_u64)
        .filter(|_| reply.status >= 400)
    {
        headers.insert("x-ms-error-code", HeaderValue::from(code));
    }
    response
}
