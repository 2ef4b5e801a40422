//! DPS over HTTPS REST (protocol.md §3): axum routes over rustls (axum-server).
//!
//! Every answer is JSON, including refusals: unknown routes and methods, garbage bodies and
//! bad tokens get `{errorCode, trackingId, message, timestampUtc}` with a 4xx status.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;

use super::{DpsAuth, DpsReply};
use crate::log::Transport;
use crate::registry::Core;

/// The DPS REST routes.
pub(crate) fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/{scope}/registrations/{reg}/register", put(register))
        .route("/{scope}/registrations/{reg}/operations/{op}", get(poll))
        .route("/{scope}/registrations/{reg}", post(lookup))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .with_state(core)
}

fn sas(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

async fn register(
    State(core): State<Arc<Core>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Path((scope, reg))) = path else {
        return error(&core, StatusCode::BAD_REQUEST, 400_001, "malformed path");
    };
    let reply = core.dps_register(
        Transport::Https,
        &scope,
        &reg,
        DpsAuth::Sas(sas(&headers)),
        &body,
    );
    render(&reply)
}

async fn poll(
    State(core): State<Arc<Core>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((scope, reg, op))) = path else {
        return error(&core, StatusCode::BAD_REQUEST, 400_001, "malformed path");
    };
    render(&core.dps_poll(
        Transport::Https,
        &scope,
        &reg,
        &op,
        DpsAuth::Sas(sas(&headers)),
    ))
}

async fn lookup(
    State(core): State<Arc<Core>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((scope, reg))) = path else {
        return error(&core, StatusCode::BAD_REQUEST, 400_001, "malformed path");
    };
    render(&core.dps_lookup(Transport::Https, &scope, &reg, DpsAuth::Sas(sas(&headers))))
}

async fn not_found(State(core): State<Arc<Core>>) -> Response {
    error(&core, StatusCode::NOT_FOUND, 404_000, "no such route")
}

async fn not_allowed(State(core): State<Arc<Core>>) -> Response {
    error(
        &core,
        StatusCode::METHOD_NOT_ALLOWED,
        405_000,
        "method not allowed on this route",
    )
}

fn error(core: &Core, status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "errorCode": code,
        "trackingId": crate::certs::random_hex::<16>(),
        "message": message,
        "timestampUtc": core.clock.utc_string(),
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
