//! The Deeploy API over HTTP: signed requests in, [`crate::intake::apply`] calls, JSON out.
//!
//! * `POST /v1/apply` — body: YAML or JSON, one or more documents; 200 with what was applied,
//!   422 with every problem by field path, 403 in another CSP's namespace.
//! * `GET /v1/{kind}?namespace=` — list (all of the caller's namespaces without `namespace`).
//! * `GET /v1/{kind}/{namespace}/{name}` — one object with its status.
//! * `DELETE /v1/{kind}/{namespace}/{name}` — request deletion.
//! * `GET /healthz` — unauthenticated liveness.
//! * `GET /v1/info` — unauthenticated: the oracle's address and its chain (see
//!   [`crate::intake::wire::ApiInfo`]); 503 `no_chain` when the oracle runs without a chain.
//!
//! Kinds go by plural (`deeployjobs`), singular or short name (`djob`). Every other `/v1` request
//! must be signed (see [`crate::intake::auth`]); failures are 401 with `{error, reason}`.

use std::future::Future;
use std::sync::Arc;

use alloy_primitives::Address;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use r1_crds::pricing::Catalogue;
use r1_protocol::now_ms;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::intake::apply::{self, ApplyError};
use crate::intake::auth::{self, AuthError, Credentials, ReplayGuard};
use crate::intake::kinds;
use crate::intake::object::ObjectKey;
use crate::intake::store::ResourceStore;
use crate::intake::wire::{ApiInfo, ApplyResponse, ErrorBody, Health, ListResponse};
use crate::intake::writes::{self, WriteHook};
use r1_protocol::messages::RelayedRequest;

/// Error code of `GET /v1/info` when the oracle runs without a chain.
pub const NO_CHAIN: &str = "no_chain";

/// Largest request body accepted (manifests are small; this bounds memory per request).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What the handlers share: the store, the price catalogue, the delete replay guard and what
/// `GET /v1/info` tells.
#[derive(Clone, Debug)]
pub struct ApiState {
    inner: Arc<Inner>,
    info: Option<ApiInfo>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<ResourceStore>,
    catalogue: Catalogue,
    replays: ReplayGuard,
    writes: Option<Arc<dyn WriteHook>>,
}

impl ApiState {
    /// State over `store`, validating with `catalogue`.
    pub fn new(store: Arc<ResourceStore>, catalogue: Catalogue) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                catalogue,
                replays: ReplayGuard::default(),
                writes: None,
            }),
            info: None,
        }
    }

    /// Runs every authenticated apply and delete through `hook` (see [`crate::intake::writes`]).
    pub fn with_writes(self, hook: Arc<dyn WriteHook>) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            store: shared.store.clone(),
            catalogue: shared.catalogue.clone(),
            replays: ReplayGuard::default(),
            writes: shared.writes.clone(),
        });
        Self {
            inner: Arc::new(Inner {
                writes: Some(hook),
                ..inner
            }),
            ..self
        }
    }

    /// The same state, answering `GET /v1/info` with `info` (the oracle runtime sets it once it
    /// knows its chain).
    pub fn with_info(self, info: ApiInfo) -> Self {
        Self {
            info: Some(info),
            ..self
        }
    }

    /// The store the API writes to.
    pub fn store(&self) -> &Arc<ResourceStore> {
        &self.inner.store
    }
}

/// The signer of the request being handled, set by the authentication layer.
#[derive(Debug, Clone, Copy)]
struct Caller(Address);

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let signed = Router::new()
        .route("/v1/apply", post(apply_handler))
        .route("/v1/{kind}", get(list_handler))
        .route(
            "/v1/{kind}/{namespace}/{name}",
            get(get_handler).delete(delete_handler),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(health_handler))
        .route("/v1/info", get(info_handler))
        .merge(signed)
        .fallback(|| async {
            refusal(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such API path".into(),
            )
        })
        .with_state(state)
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: TcpListener, state: ApiState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// Serves the API on `listener` until `shutdown` completes, then finishes requests in flight.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Checks the request's signature and time, refuses replayed deletes, and passes the signer on.
async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        );
    };
    // A header that is not visible ASCII is present but unreadable: malformed, not missing.
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default())
    };
    let credentials = Credentials {
        address: header(auth::ADDRESS_HEADER),
        timestamp: header(auth::TIMESTAMP_HEADER),
        signature: header(auth::SIGNATURE_HEADER),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |p| p.as_str());
    let now = now_ms();
    let verified =
        auth::verify(&credentials, parts.method.as_str(), path, &body, now).and_then(|verified| {
            if parts.method == Method::DELETE {
                state.inner.replays.first_use(&verified, now)?;
            }
            Ok(verified.signer)
        });
    let signer = match verified {
        Ok(signer) => signer,
        Err(e) => {
            tracing::warn!(
                method = %parts.method,
                path,
                claimed = credentials.address.unwrap_or("-"),
                reason = %e,
                "refused unauthenticated request"
            );
            return unauthorized(&e);
        }
    };
    let write = match &state.inner.writes {
        Some(hook) if writes::is_write(parts.method.as_str(), parts.uri.path()) => {
            let write = RelayedRequest {
                method: parts.method.to_string(),
                path: path.to_owned(),
                address: credentials.address.unwrap_or_default().to_owned(),
                timestamp: credentials.timestamp.unwrap_or_default().to_owned(),
                signature: credentials.signature.unwrap_or_default().to_owned(),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            Some((hook.clone(), write))
        }
        _ => None,
    };
    parts.extensions.insert(Caller(signer));
    let request = Request::from_parts(parts, Body::from(body));
    match write {
        Some((hook, write)) => hook.around(write, Box::pin(next.run(request))).await,
        None => next.run(request).await,
    }
}

async fn health_handler(State(state): State<ApiState>) -> Response {
    axum::Json(Health {
        status: "ok".into(),
        resource_version: state.store().resource_version(),
    })
    .into_response()
}

async fn info_handler(State(state): State<ApiState>) -> Response {
    match state.info {
        Some(info) => axum::Json(info).into_response(),
        None => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            NO_CHAIN,
            "this oracle has no chain configured, so it cannot tell where jobs are funded".into(),
        ),
    }
}

async fn apply_handler(
    State(state): State<ApiState>,
    Extension(Caller(signer)): Extension<Caller>,
    body: Bytes,
) -> Response {
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be UTF-8 YAML or JSON".into(),
        );
    };
    let inner = state.inner.clone();
    let result =
        blocking(move || apply::apply(&inner.store, &inner.catalogue, signer, &text)).await;
    match result {
        Ok(applied) => axum::Json(ApplyResponse { applied }).into_response(),
        Err(response) => response,
    }
}

/// `?namespace=` of a list.
#[derive(Debug, Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

async fn list_handler(
    State(state): State<ApiState>,
    Extension(Caller(signer)): Extension<Caller>,
    Path(kind): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let Some(kind) = kinds::parse(&kind) else {
        return unknown_kind(&kind);
    };
    let store = state.store().clone();
    let result =
        blocking(move || apply::list(&store, signer, Some(kind), query.namespace.as_deref())).await;
    match result {
        Ok(items) => axum::Json(ListResponse { items }).into_response(),
        Err(response) => response,
    }
}

async fn get_handler(
    State(state): State<ApiState>,
    Extension(Caller(signer)): Extension<Caller>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Response {
    let Some(kind) = kinds::parse(&kind) else {
        return unknown_kind(&kind);
    };
    let key = ObjectKey::new(kind, namespace, name);
    let store = state.store().clone();
    match blocking(move || apply::get(&store, signer, &key)).await {
        Ok(object) => axum::Json(object).into_response(),
        Err(response) => response,
    }
}

async fn delete_handler(
    State(state): State<ApiState>,
    Extension(Caller(signer)): Extension<Caller>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Response {
    let Some(kind) = kinds::parse(&kind) else {
        return unknown_kind(&kind);
    };
    let key = ObjectKey::new(kind, namespace, name);
    let store = state.store().clone();
    match blocking(move || apply::delete(&store, signer, &key)).await {
        Ok(deleted) => axum::Json(deleted).into_response(),
        Err(response) => response,
    }
}

/// Runs a store call off the async workers (RocksDB syncs to disk); refusals become responses.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApplyError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(apply_error),
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed inside the oracle".into(),
            ))
        }
    }
}

fn unknown_kind(text: &str) -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "unknown_kind",
        format!(
            "{text:?} is not an r1 resource kind (one of {})",
            kinds::known()
        ),
    )
}

fn apply_error(error: ApplyError) -> Response {
    let reason = error.to_string();
    match error {
        ApplyError::Invalid(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(ErrorBody {
                error: "invalid".into(),
                reason,
                errors,
            }),
        )
            .into_response(),
        ApplyError::Forbidden { .. } => refusal(StatusCode::FORBIDDEN, "forbidden", reason),
        ApplyError::Terminating(_) | ApplyError::InUse { .. } => {
            refusal(StatusCode::CONFLICT, "conflict", reason)
        }
        ApplyError::NotFound(_) => refusal(StatusCode::NOT_FOUND, "not_found", reason),
        ApplyError::Store(e) => {
            tracing::error!(error = %e, "resource store failed");
            refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", reason)
        }
    }
}

fn unauthorized(error: &AuthError) -> Response {
    refusal(StatusCode::UNAUTHORIZED, error.code(), error.to_string())
}

fn refusal(status: StatusCode, code: &str, reason: String) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: code.into(),
            reason,
            errors: Vec::new(),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
