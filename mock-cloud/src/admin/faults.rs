//! The admin API's fault routes: apply any [`Fault`], list, clear; register devices for drills.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::json;

use super::{S, body, error, ok, reply};
use crate::CloudHandle;
use crate::fault::{Clear, Fault, FaultId};

pub(super) fn routes() -> Router<CloudHandle> {
    Router::new()
        .route("/api/faults", post(apply).get(list).delete(clear_all))
        .route("/api/faults/{id}", delete(clear_one))
        .route("/api/devices/register", post(register))
}

async fn apply(State(s): S, b: Bytes) -> Response {
    match body::<Fault>(&b) {
        Ok(f) => reply(s.apply(f).await.map(|id| json!({"id": id}))),
        Err(r) => r,
    }
}

async fn list(State(s): S) -> Response {
    ok(json!({"active": s.faults(), "options": s.fault_options()}))
}

async fn clear_all(State(s): S) -> Response {
    reply(
        s.apply(Fault::Clear(Clear { id: None }))
            .await
            .map(|_| json!({"ok": true})),
    )
}

async fn clear_one(State(s): S, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<FaultId>() else {
        return error(StatusCode::BAD_REQUEST, "a fault id is a number");
    };
    reply(
        s.apply(Fault::Clear(Clear { id: Some(id) }))
            .await
            .map(|_| json!({"ok": true})),
    )
}

#[derive(Deserialize)]
struct Register {
    id: String,
    group: Option<String>,
}

async fn register(State(s): S, b: Bytes) -> Response {
    match body::<Register>(&b) {
        Ok(r) => reply(s.register_device(&r.id, r.group.as_deref())),
        Err(r) => r,
    }
}
