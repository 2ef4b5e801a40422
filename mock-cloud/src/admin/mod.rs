//! The admin REST API: JSON in and out, loopback by default. The same controls as the Rust
//! API, plus reading (`GET /api/log`) and streaming (`GET /api/log/stream`, JSON lines) the
//! observation log. [`client::AdminClient`] drives it from the CLI.
//!
//! | method | route | body / answer |
//! | --- | --- | --- |
//! | GET | `/api/info` | [`crate::CloudInfo`] |
//! | GET | `/api/enrollments` | [`crate::Enrollments`] |
//! | POST | `/api/enrollments/groups` | `{id, primary_key?, ca_pem?}` → group |
//! | POST | `/api/enrollments/individuals` | `{registration_id, primary_key?}` → enrollment |
//! | GET | `/api/devices`, `/api/devices/{id}` | [`crate::DeviceInfo`] |
//! | POST | `/api/devices` | `{id, hub, primary_key?}` → device |
//! | POST | `/api/devices/{id}/{enable,disable}` | `{hub?}` |
//! | POST | `/api/devices/{id}/{block,unblock,kick}` | — |
//! | GET | `/api/devices/{id}/twin` | twin document |
//! | PATCH | `/api/devices/{id}/twin/desired` | patch → `{version}` |
//! | POST | `/api/devices/{id}/methods/{name}` | `{payload?, timeout_secs?}` → `{status, payload}` |
//! | POST | `/api/devices/{id}/c2d` | `{payload, properties?}` → `{message_id}` |
//! | GET | `/api/hubs` | [`crate::HubInfo`] list |
//! | POST | `/api/hubs/{host}/{stop,start,allocate,deallocate}` | — |
//! | GET | `/api/log?since=N` | log records |
//! | GET | `/api/log/stream?since=N` | JSON lines, live |
//! | GET | `/api/observations` | spec observations |
//! | PUT | `/api/clock` | `{offset_secs}` (logged as a `clock-offset` fault) |
//! | POST | `/api/devices/register` | `{id, group?}` → device (DPS allocation, no device needed) |
//! | POST | `/api/faults` | a [`crate::Fault`] (`{"action": "failover", ...}`) → `{id}` |
//! | GET | `/api/faults` | `{active: [ActiveFault], options: FaultOptions}` |
//! | DELETE | `/api/faults`, `/api/faults/{id}` | clear all, clear one → `{ok}` |
//!
//! Failures are `{error}` with 400 (bad request or fault), 404 (no such device, hub or route),
//! 409 (`inject` on an offline device is 404 too), 504 (method timeout).

pub mod client;
mod faults;

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::BroadcastStream;

use crate::{CloudHandle, Error};

pub(crate) type S = State<CloudHandle>;

/// Starts the admin API on a bound listener.
pub(crate) fn spawn(
    cloud: CloudHandle,
    listener: std::net::TcpListener,
) -> Result<JoinHandle<()>, Error> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::Config(format!("admin listener: {e}")))?;
    let shutdown = cloud.shutdown_token().clone();
    let app = router(cloud);
    Ok(tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "admin API stopped");
        }
    }))
}

fn router(cloud: CloudHandle) -> Router {
    Router::new()
        .route("/api/info", get(info))
        .route("/api/enrollments", get(enrollments))
        .route("/api/enrollments/groups", post(add_group))
        .route("/api/enrollments/individuals", post(add_individual))
        .route("/api/devices", get(devices).post(create_device))
        .route("/api/devices/{id}", get(device))
        .route("/api/devices/{id}/{action}", post(device_action))
        .route("/api/devices/{id}/twin", get(twin))
        .route(
            "/api/devices/{id}/twin/desired",
            axum::routing::patch(desired),
        )
        .route("/api/devices/{id}/methods/{name}", post(method))
        .route("/api/devices/{id}/c2d", post(c2d))
        .route("/api/hubs", get(hubs))
        .route("/api/hubs/{host}/{action}", post(hub_action))
        .route("/api/log", get(log))
        .route("/api/log/stream", get(log_stream))
        .route("/api/observations", get(observations))
        .route("/api/clock", put(clock))
        .merge(faults::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(cloud)
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

fn fail(e: &Error) -> Response {
    let status = match e {
        Error::DeviceNotFound(_) | Error::HubNotFound(_) | Error::DeviceNotOnline(_) => {
            StatusCode::NOT_FOUND
        }
        Error::MethodTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::QueueFull(_) => StatusCode::FORBIDDEN,
        Error::InvalidRequest(_) | Error::Json(_) | Error::Certificate(_) => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}

pub(crate) fn ok(v: impl serde::Serialize) -> Response {
    axum::Json(v).into_response()
}

pub(crate) fn reply<T: serde::Serialize>(r: Result<T, Error>) -> Response {
    match r {
        Ok(v) => ok(v),
        Err(e) => fail(&e),
    }
}

/// Parses a JSON body, answering 400 with a JSON error on garbage.
#[allow(
    clippy::result_large_err,
    reason = "the error is the ready HTTP answer"
)]
pub(crate) fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Response> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

async fn info(State(s): S) -> Response {
    ok(s.info())
}

async fn enrollments(State(s): S) -> Response {
    ok(s.enrollments())
}

#[derive(Deserialize)]
struct NewGroup {
    id: String,
    primary_key: Option<String>,
    ca_pem: Option<String>,
}

async fn add_group(State(s): S, b: Bytes) -> Response {
    let g: NewGroup = match body(&b) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match g.ca_pem {
        Some(ca) => reply(s.add_x509_group_with_ca(&g.id, &ca)),
        None => ok(s.add_symmetric_group(&g.id, g.primary_key.as_deref())),
    }
}

#[derive(Deserialize)]
struct NewIndividual {
    registration_id: String,
    primary_key: Option<String>,
}

async fn add_individual(State(s): S, b: Bytes) -> Response {
    match body::<NewIndividual>(&b) {
        Ok(e) => ok(s.add_individual(&e.registration_id, e.primary_key.as_deref())),
        Err(r) => r,
    }
}

async fn devices(State(s): S) -> Response {
    ok(s.devices())
}

async fn device(State(s): S, Path(id): Path<String>) -> Response {
    reply(s.device(&id))
}

#[derive(Deserialize)]
struct NewDevice {
    id: String,
    hub: String,
    primary_key: Option<String>,
}

async fn create_device(State(s): S, b: Bytes) -> Response {
    match body::<NewDevice>(&b) {
        Ok(d) => reply(s.create_device(&d.id, &d.hub, d.primary_key.as_deref())),
        Err(r) => r,
    }
}

#[derive(Deserialize, Default)]
struct HubArg {
    hub: Option<String>,
}

async fn device_action(
    State(s): S,
    Path((id, action)): Path<(String, String)>,
    b: Bytes,
) -> Response {
    let arg: HubArg = match body(&b) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = match action.as_str() {
        "enable" => s.set_device_enabled(&id, arg.hub.as_deref(), true),
        "disable" => s.set_device_enabled(&id, arg.hub.as_deref(), false),
        "block" => s.set_device_blocked(&id, true),
        "unblock" => s.set_device_blocked(&id, false),
        "kick" => return ok(json!({"kicked": s.kick(&id)})),
        _ => return error(StatusCode::NOT_FOUND, "no such device action"),
    };
    reply(result.map(|()| json!({"ok": true})))
}

async fn twin(State(s): S, Path(id): Path<String>) -> Response {
    reply(s.twin(&id).map(|t| t.document()))
}

async fn desired(State(s): S, Path(id): Path<String>, b: Bytes) -> Response {
    match body::<Value>(&b) {
        Ok(patch) => reply(s.update_desired(&id, &patch).map(|v| json!({"version": v}))),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct MethodCall {
    #[serde(default)]
    payload: Value,
    timeout_secs: Option<f64>,
}

async fn method(State(s): S, Path((id, name)): Path<(String, String)>, b: Bytes) -> Response {
    let call: MethodCall = match body(&b) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let secs = call.timeout_secs.unwrap_or(30.0);
    if !(0.0..=300.0).contains(&secs) {
        return error(
            StatusCode::BAD_REQUEST,
            "timeout_secs must be within 0..=300",
        );
    }
    reply(
        s.invoke_method(&id, &name, &call.payload, Duration::from_secs_f64(secs))
            .await,
    )
}

#[derive(Deserialize)]
struct C2d {
    payload: String,
    #[serde(default)]
    properties: std::collections::BTreeMap<String, Option<String>>,
}

async fn c2d(State(s): S, Path(id): Path<String>, b: Bytes) -> Response {
    let msg: C2d = match body(&b) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let props: Vec<_> = msg.properties.into_iter().collect();
    reply(
        s.send_c2d(&id, Bytes::from(msg.payload), &props)
            .map(|mid| json!({"message_id": mid})),
    )
}

async fn hubs(State(s): S) -> Response {
    ok(s.hubs().await)
}

async fn hub_action(State(s): S, Path((host, action)): Path<(String, String)>) -> Response {
    let result = match action.as_str() {
        "stop" => s.stop_hub_listener(&host).await,
        "start" => s.start_hub_listener(&host).await,
        "allocate" => s.set_hub_allocation(&host, true),
        "deallocate" => s.set_hub_allocation(&host, false),
        _ => return error(StatusCode::NOT_FOUND, "no such hub action"),
    };
    reply(result.map(|()| json!({"ok": true})))
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn log(State(s): S, Query(q): Query<Since>) -> Response {
    ok(s.log().since(q.since.unwrap_or(0)))
}

/// Past records from `since`, then live ones, one JSON object per line, until shutdown.
async fn log_stream(State(s): S, Query(q): Query<Since>) -> Response {
    let live = BroadcastStream::new(s.log().subscribe());
    let past = s.log().since(q.since.unwrap_or(0));
    let last = past.last().map(|r| r.seq);
    let past = futures_util::stream::iter(past.into_iter().map(Ok::<_, std::convert::Infallible>));
    let live = live.filter_map(move |r| async move {
        r.ok().filter(|r| last.is_none_or(|l| r.seq > l)).map(Ok)
    });
    let shutdown = s.shutdown_token().clone();
    let lines = past
        .chain(live)
        .map(|r| {
            r.map(|rec| {
                Bytes::from(format!(
                    "{}\n",
                    serde_json::to_string(&rec).unwrap_or_default()
                ))
            })
        })
        .take_until(async move { shutdown.cancelled().await });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

async fn observations(State(s): S) -> Response {
    ok(s.observations())
}

#[derive(Deserialize)]
struct ClockArg {
    offset_secs: i64,
}

async fn clock(State(s): S, b: Bytes) -> Response {
    match body::<ClockArg>(&b) {
        Ok(c) => {
            let fault = crate::Fault::ClockOffset(crate::fault::ClockOffset {
                secs: c.offset_secs,
            });
            reply(
                s.apply(fault)
                    .await
                    .map(|_| json!({"offset_secs": c.offset_secs})),
            )
        }
        Err(r) => r,
    }
}
