//! The Deeploy API over HTTP: signed requests in, [`crate::intake::apply`] calls, JSON out.
//!
//! * `POST /v1/apply` — body: YAML or JSON, one or more documents; 200 with what was applied,
//!   422 with every problem by field path, 403 `forbidden` ("namespace X is not yours") in
//!   another CSP's namespace or when claiming a new namespace is not allowed (see
//!   [`crate::intake::claims`]), 403 `quota_exceeded` past the owner's [`Quotas`], 503
//!   `unavailable` when the claim policy cannot answer.
//! * `GET /v1/{kind}?namespace=` — list (all of the caller's namespaces without `namespace`;
//!   another CSP's namespace lists as empty, like an unused one).
//! * `GET /v1/{kind}/{namespace}/{name}` — one object with its status (404 `not_found` for an
//!   object in another CSP's namespace, exactly as for a missing one).
//! * `DELETE /v1/{kind}/{namespace}/{name}` — request deletion (404 likewise).
//! * `GET /v1/{kind}/{namespace}/{name}/logs`, `POST …/exec`, `POST /v1/sessions/{id}/input`
//!   — a job's logs and commands run in its replicas, for its owner (see
//!   [`crate::intake::sessions`]); 503 `no_sessions` on an API without a way to the nodes.
//! * `GET /healthz` — unauthenticated liveness.
//! * `GET /v1/info` — unauthenticated: the oracle's address and its chain (see
//!   [`r1_crds::api::wire::ApiInfo`]); 503 `no_chain` when the oracle runs without a chain.
//! * `GET /v1/oracle-keys` — unauthenticated: the oracles' public keys, for sealing secrets
//!   (see [`r1_crds::api::wire::OracleKeys`]); 503 `no_chain` likewise.
//!
//! Kinds go by plural (`deeployjobs`), singular or short name (`djob`). Every other `/v1` request
//! must be signed (see [`r1_protocol::api_auth`]); failures are 401 with `{error, reason}`. A
//! request signed by a delegate key acts for the escrow owner its `?owner=0x…` names, once the
//! chain confirms the delegation (see [`crate::intake::delegation`]): 403 `not_delegate` when it
//! does not, 503 when it cannot be checked.
//!
//! Limits: bodies over [`MAX_BODY_BYTES`] are 413 (by `Content-Length` before reading, or while
//! reading); a body that does not arrive in time is 408 `timeout`. Each signer has a request
//! rate and each peer address a rate of failed signatures ([`RateLimits`]); past either, 429
//! `rate_limited` with `Retry-After` in seconds. The failed-signature budget is checked before
//! the body is read or a signature recovered. [`serve`] adds the connection limits of
//! [`crate::intake::serve`].

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Extension, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use r1_crds::api::kinds;
use r1_crds::api::object::ObjectKey;
use r1_crds::api::selector::LabelSelector;
use r1_crds::api::wire::{
    ApiInfo, ApplyResponse, ErrorBody, Health, ListResponse, NO_CHAIN, OracleKey, OracleKeys,
};
use r1_crds::pricing::Catalogue;
use r1_protocol::api_auth::{self, AuthError, Credentials, ReplayGuard};
use r1_protocol::links::LinkAttestRequest;
use r1_protocol::now_ms;
use r1_protocol::sessions::{SessionId, SessionRequest};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::intake::apply::{self, ApplyError, Policy};
use crate::intake::claims::{AllowAll, NamespaceClaims};
use crate::intake::delegation::{self, DelegationError, Delegations};
use crate::intake::links::{LinkAttestor, LinkRefusal};
use crate::intake::quotas::Quotas;
use crate::intake::ratelimit::{Limiter, Rate};
use crate::intake::serve::{
    BodyTimedOut, LongStream, ServeLimits, serve_api, serve_router, timeout_response,
};
use crate::intake::sessions::{
    self, ExecBody, ExecQuery, InputBody, LogsQuery, ReplicaAt, SessionDoor, SessionLine,
    SessionRefused,
};
use crate::intake::store::ResourceStore;
use crate::intake::writes::{self, WriteHook};
use r1_protocol::messages::RelayedRequest;

/// Largest request body accepted (manifests are small; this bounds memory per request).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Error code of a request refused by a rate limit.
pub const RATE_LIMITED: &str = "rate_limited";

/// How often a signer may call and a peer may fail to sign.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Requests per signer (checked right after its signature).
    pub per_signer: Rate,
    /// Failed signatures per peer address (checked before a signature is recovered).
    pub failures_per_peer: Rate,
}

impl Default for RateLimits {
    /// A signer: bursts of 60, 10 per second; a peer: bursts of 20 failures, 1 per second.
    fn default() -> Self {
        Self {
            per_signer: Rate {
                burst: 60,
                per_second: 10.0,
            },
            failures_per_peer: Rate {
                burst: 20,
                per_second: 1.0,
            },
        }
    }
}

/// What the handlers share: the store, the price catalogue, the delete replay guard, what
/// `GET /v1/info` tells, and the limits on who may do how much.
#[derive(Clone, Debug)]
pub struct ApiState {
    inner: Arc<Inner>,
    info: Option<ApiInfo>,
    quotas: Quotas,
    claims: Arc<dyn NamespaceClaims>,
    rates: Arc<Rates>,
    writes: Option<Arc<dyn WriteHook>>,
    keys: Option<Arc<dyn OracleKeySource>>,
    delegations: Option<Arc<dyn Delegations>>,
    sessions: Option<Arc<dyn SessionDoor>>,
    links: Option<Arc<dyn LinkAttestor>>,
}

/// Where `GET /v1/oracle-keys` reads the oracles' public keys.
pub trait OracleKeySource: std::fmt::Debug + Send + Sync {
    /// The keys of the oracles the chain lists now.
    fn oracle_keys(&self) -> Vec<OracleKey>;
}

/// The rate limiters of one API.
#[derive(Debug)]
struct Rates {
    signers: Limiter<Address>,
    failures: Limiter<IpAddr>,
}

impl Rates {
    fn new(limits: RateLimits) -> Self {
        Self {
            signers: Limiter::new(limits.per_signer),
            failures: Limiter::new(limits.failures_per_peer),
        }
    }
}

#[derive(Debug)]
struct Inner {
    store: Arc<ResourceStore>,
    catalogue: Catalogue,
    replays: ReplayGuard,
}

impl ApiState {
    /// State over `store`, validating with `catalogue`, with default quotas and rates, and
    /// anybody allowed to claim namespaces.
    pub fn new(store: Arc<ResourceStore>, catalogue: Catalogue) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                catalogue,
                replays: ReplayGuard::default(),
            }),
            info: None,
            quotas: Quotas::default(),
            claims: Arc::new(AllowAll),
            rates: Arc::new(Rates::new(RateLimits::default())),
            writes: None,
            keys: None,
            delegations: None,
            sessions: None,
            links: None,
        }
    }

    /// The same state with `quotas` per owner.
    pub fn with_quotas(self, quotas: Quotas) -> Self {
        Self { quotas, ..self }
    }

    /// The same state asking `claims` before an apply claims a namespace.
    pub fn with_claims(self, claims: Arc<dyn NamespaceClaims>) -> Self {
        Self { claims, ..self }
    }

    /// The same state with fresh rate limiters at `limits`.
    pub fn with_rate_limits(self, limits: RateLimits) -> Self {
        Self {
            rates: Arc::new(Rates::new(limits)),
            ..self
        }
    }

    /// Runs every authenticated apply and delete through `hook` (see [`crate::intake::writes`]).
    pub fn with_writes(self, hook: Arc<dyn WriteHook>) -> Self {
        Self {
            writes: Some(hook),
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

    /// The same state, answering `GET /v1/oracle-keys` from `keys`.
    pub fn with_oracle_keys(self, keys: Arc<dyn OracleKeySource>) -> Self {
        Self {
            keys: Some(keys),
            ..self
        }
    }

    /// The same state, letting a delegate key act for an escrow's owner (`?owner=`) while
    /// `delegations` says it may (see [`crate::intake::delegation`]).
    pub fn with_delegations(self, delegations: Arc<dyn Delegations>) -> Self {
        Self {
            delegations: Some(delegations),
            ..self
        }
    }

    /// The same state, co-signing node links (`POST /v1/licences/attest`) through `links`.
    pub fn with_links(self, links: Arc<dyn LinkAttestor>) -> Self {
        Self {
            links: Some(links),
            ..self
        }
    }

    /// The same state, opening logs and exec sessions on replicas through `door`.
    pub fn with_sessions(self, door: Arc<dyn SessionDoor>) -> Self {
        Self {
            sessions: Some(door),
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
        .route("/v1/{kind}/{namespace}/{name}/logs", get(logs_handler))
        .route("/v1/{kind}/{namespace}/{name}/exec", post(exec_handler))
        .route("/v1/sessions/{id}/input", post(input_handler))
        .route("/v1/licences/attest", post(attest_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(health_handler))
        .route("/v1/info", get(info_handler))
        .route("/v1/oracle-keys", get(oracle_keys_handler))
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

/// Serves the API on `listener`, within the default [`ServeLimits`], until the process ends.
pub async fn serve(listener: TcpListener, state: ApiState) -> std::io::Result<()> {
    serve_api(listener, router(state)).await
}

/// Serves the API on `listener`, within the default [`ServeLimits`], until `shutdown`
/// completes, then finishes requests in flight.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), ServeLimits::default(), shutdown).await
}

/// Checks the request's signature and time, refuses replayed deletes, applies the rate
/// limits, and passes the signer on.
async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(peer) = peer
        && let Err(wait) = state.rates.failures.check(&peer, Instant::now())
    {
        tracing::warn!(%peer, "refused: too many failed signatures from this address");
        return rate_limited(wait, "too many unauthenticated requests from your address");
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) if BodyTimedOut::caused(&e) => {
            return timeout_response(StatusCode::REQUEST_TIMEOUT, &BodyTimedOut.to_string());
        }
        Err(_) => return too_large(),
    };
    // A header that is not visible ASCII is present but unreadable: malformed, not missing.
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default())
    };
    let credentials = Credentials {
        address: header(api_auth::ADDRESS_HEADER),
        timestamp: header(api_auth::TIMESTAMP_HEADER),
        signature: header(api_auth::SIGNATURE_HEADER),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |p| p.as_str());
    let now = now_ms();
    let verified = api_auth::verify(&credentials, parts.method.as_str(), path, &body, now)
        .and_then(|verified| {
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
            if let Some(peer) = peer {
                // Only the count matters here; the next request from the peer sees the result.
                let _counted = state.rates.failures.take(&peer, Instant::now());
            }
            return unauthorized(&e);
        }
    };
    if let Err(wait) = state.rates.signers.take(&signer, Instant::now()) {
        tracing::warn!(signer = %signer, "refused: signer over its request rate");
        return rate_limited(wait, "too many requests from your key");
    }
    let acting = match delegation::acting_for(signer, path, state.delegations.as_deref()).await {
        Ok(acting) => acting,
        Err(e) => {
            tracing::warn!(signer = %signer, path, reason = %e, "refused a delegated request");
            let status = match e {
                DelegationError::Unchecked { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            };
            return refusal(status, "not_delegate", e.to_string());
        }
    };
    let write = match &state.writes {
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
    parts.extensions.insert(Caller(acting));
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

async fn oracle_keys_handler(State(state): State<ApiState>) -> Response {
    match &state.keys {
        Some(keys) => axum::Json(OracleKeys {
            oracles: keys.oracle_keys(),
        })
        .into_response(),
        None => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            NO_CHAIN,
            "this API runs without an oracle, so it knows no oracle keys".into(),
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
    let text: Arc<str> = text.into();
    let store = state.store().clone();
    let documents = text.clone();
    let unclaimed = match blocking(move || apply::unclaimed_namespaces(&store, &documents)).await {
        Ok(unclaimed) => unclaimed,
        Err(response) => return response,
    };
    let may_claim = match unclaimed.first() {
        None => true,
        Some(namespace) => match state.claims.may_claim(signer).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(namespace, signer = %signer, "refused: signer may not claim");
                return apply_error(ApplyError::Forbidden {
                    namespace: namespace.clone(),
                });
            }
            Err(e) => {
                tracing::warn!(signer = %signer, error = %e, "cannot tell whether signer may claim");
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "cannot check now whether you may claim a new namespace; try again".into(),
                );
            }
        },
    };
    let policy = Policy {
        quotas: state.quotas,
        may_claim,
    };
    let inner = state.inner.clone();
    let result =
        blocking(move || apply::apply_with(&inner.store, &inner.catalogue, signer, &text, &policy))
            .await;
    match result {
        Ok(applied) => axum::Json(ApplyResponse { applied }).into_response(),
        Err(response) => response,
    }
}

/// Co-signs a node link for the licence's owner (see [`crate::intake::links`]).
async fn attest_handler(
    State(state): State<ApiState>,
    Extension(Caller(signer)): Extension<Caller>,
    body: Bytes,
) -> Response {
    let Some(links) = state.links.clone() else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            NO_CHAIN,
            "this oracle reads no chain, so it co-signs no links".into(),
        );
    };
    let request: LinkAttestRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body must be a link attestation request: {e}"),
            );
        }
    };
    match links.attest(signer, request.clone()).await {
        Ok(attestation) => axum::Json(attestation).into_response(),
        Err(why) => {
            tracing::warn!(%signer, node = %request.node, licence = request.licence_id, "link not co-signed: {why}");
            let status = match why {
                LinkRefusal::NotOwner { .. } => StatusCode::FORBIDDEN,
                LinkRefusal::Unreadable(_) | LinkRefusal::Signing(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                LinkRefusal::Chain(_) => StatusCode::CONFLICT,
                LinkRefusal::Deadline { .. } | LinkRefusal::NodeSignature { .. } => {
                    StatusCode::BAD_REQUEST
                }
            };
            refusal(status, "link_refused", why.to_string())
        }
    }
}

/// `?namespace=` and `?labelSelector=` of a list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    namespace: Option<String>,
    label_selector: Option<String>,
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
    let selector = match query.label_selector.as_deref().map(LabelSelector::parse) {
        None => LabelSelector::default(),
        Some(Ok(selector)) => selector,
        Some(Err(e)) => return refusal(StatusCode::BAD_REQUEST, "invalid", e.to_string()),
    };
    let store = state.store().clone();
    let namespace = query.namespace;
    let result =
        blocking(move || apply::list(&store, signer, Some(kind), namespace.as_deref(), &selector))
            .await;
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

/// The door to the nodes, or the refusal of an API without one.
fn door(state: &ApiState) -> Result<Arc<dyn SessionDoor>, Response> {
    state.sessions.clone().ok_or_else(|| {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_sessions",
            "this API does not reach the nodes".into(),
        )
    })
}

/// The replicas nodes report of `signer`'s job `namespace/name` (404 as for `GET` when the job
/// is not the signer's or has no chain job yet).
async fn job_replicas(
    state: &ApiState,
    door: &Arc<dyn SessionDoor>,
    signer: Address,
    kind: &str,
    namespace: String,
    name: String,
) -> Result<Vec<ReplicaAt>, Response> {
    let Some(kind) = sessions::has_replicas(kind) else {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind} objects have no replicas; logs and exec are for deeployjobs"),
        ));
    };
    let key = ObjectKey::new(kind, namespace, name);
    let store = state.store().clone();
    let lookup = key.clone();
    let object = blocking(move || apply::get(&store, signer, &lookup)).await?;
    let job = object
        .status
        .get("chainJobId")
        .and_then(serde_json::Value::as_str)
        .and_then(|id| id.parse::<u64>().ok())
        .ok_or_else(|| {
            refusal(
                StatusCode::CONFLICT,
                "not_running",
                format!("{key} has no chain job yet"),
            )
        })?;
    Ok(door.replicas(job).await)
}

/// Streams the lines of `sessions` (each with its replica) as one JSON object per line,
/// after `first`; a session whose reader went away is closed on its node.
fn session_stream(
    door: Arc<dyn SessionDoor>,
    signer: Address,
    first: Option<SessionLine>,
    sessions: Vec<(
        ReplicaAt,
        SessionId,
        tokio::sync::mpsc::Receiver<r1_protocol::sessions::SessionOutput>,
    )>,
) -> Response {
    let (lines, merged) = tokio::sync::mpsc::channel::<Bytes>(sessions::OUTPUT_QUEUE);
    let encode = |line: &SessionLine| {
        let mut bytes = serde_json::to_vec(line).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    };
    if let Some(first) = &first {
        let _ = lines.try_send(encode(first));
    }
    for (replica, session, mut output) in sessions {
        let lines = lines.clone();
        let door = door.clone();
        tokio::spawn(async move {
            // Until the session ends, or the reader goes (also while the session is quiet).
            loop {
                let out = tokio::select! {
                    out = output.recv() => out,
                    () = lines.closed() => None,
                };
                let Some(out) = out else { break };
                if lines
                    .send(encode(&sessions::line(&replica, out)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            if lines.is_closed() {
                let close = InputBody {
                    close: true,
                    ..InputBody::default()
                };
                let _ = door.input(&session, signer, close);
            }
        });
    }
    // An empty line now and then: a reader that went away is noticed on the next write even
    // while the sessions are quiet, and its sessions are closed on their nodes.
    let keepalive = lines.downgrade();
    drop(lines);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(sessions::KEEPALIVE).await;
            // Once every session has ended, the stream ends too.
            let Some(lines) = keepalive.upgrade() else {
                return;
            };
            if lines.send(Bytes::from_static(b"{}\n")).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(merged, |mut merged| async move {
        let line = merged.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(line), merged))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .extension(LongStream)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn session_refusal(error: SessionRefused) -> Response {
    let reason = error.to_string();
    match error {
        SessionRefused::NoSession(_) => refusal(StatusCode::NOT_FOUND, "not_found", reason),
        SessionRefused::Unreachable | SessionRefused::Full(_) => {
            refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
        }
        SessionRefused::Invalid(_) => refusal(StatusCode::BAD_REQUEST, "invalid", reason),
    }
}

async fn logs_handler(
    State(state): State<ApiState>,
    Extension(Caller(signer)): Extension<Caller>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let door = match door(&state) {
        Ok(door) => door,
        Err(response) => return response,
    };
    let replicas = match job_replicas(&state, &door, signer, &kind, namespace, name).await {
        Ok(replicas) => replicas,
        Err(response) => return response,
    };
    let picked = sessions::pick_logs(&replicas, query.replica, query.previous);
    if picked.is_empty() {
        return refusal(
            StatusCode::NOT_FOUND,
            "no_replica",
            "no node runs that replica of the job or keeps its log".into(),
        );
    }
    let request = SessionRequest::Logs {
        follow: query.follow,
        tail_lines: query.tail,
        since_ms: query
            .since
            .map(|seconds| now_ms().saturating_sub(seconds.saturating_mul(1000))),
    };
    let mut opened = Vec::new();
    for replica in picked {
        match door.open(&replica, signer, request.clone()) {
            Ok((session, output)) => opened.push((replica, session, output)),
            Err(e) => return session_refusal(e),
        }
    }
    session_stream(door, signer, None, opened)
}

async fn exec_handler(
    State(state): State<ApiState>,
    Extension(Caller(signer)): Extension<Caller>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    Query(query): Query<ExecQuery>,
    body: Bytes,
) -> Response {
    let door = match door(&state) {
        Ok(door) => door,
        Err(response) => return response,
    };
    let exec: ExecBody = match serde_json::from_slice(&body) {
        Ok(exec) => exec,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("exec body: {e}"),
            );
        }
    };
    let request = SessionRequest::Exec {
        argv: exec.argv,
        tty: exec.tty,
        size: exec.size,
        stdin: exec.stdin,
    };
    if let Some(problem) = request.problem() {
        return refusal(StatusCode::BAD_REQUEST, "invalid", problem);
    }
    let replicas = match job_replicas(&state, &door, signer, &kind, namespace, name).await {
        Ok(replicas) => replicas,
        Err(response) => return response,
    };
    let running = |r: &&ReplicaAt| r.state == Some(r1_protocol::messages::WorkloadState::Running);
    let live: Vec<ReplicaAt> = replicas.into_iter().filter(|r| r.state.is_some()).collect();
    let picked = sessions::pick(&live, query.replica);
    let Some(replica) = picked.iter().find(running).or(picked.first()).cloned() else {
        return refusal(
            StatusCode::NOT_FOUND,
            "no_replica",
            "no node reports that replica of the job now".into(),
        );
    };
    match door.open(&replica, signer, request) {
        Ok((session, output)) => {
            let first = SessionLine {
                session: Some(session.to_string()),
                node: Some(replica.node),
                replica: Some(replica.index),
                ..SessionLine::default()
            };
            session_stream(door, signer, Some(first), vec![(replica, session, output)])
        }
        Err(e) => session_refusal(e),
    }
}

async fn input_handler(
    State(state): State<ApiState>,
    Extension(Caller(signer)): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let door = match door(&state) {
        Ok(door) => door,
        Err(response) => return response,
    };
    let Some(session) = SessionId::parse(&id) else {
        return session_refusal(SessionRefused::NoSession(id));
    };
    let input: InputBody = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("input body: {e}"),
            );
        }
    };
    if let Err(e) = sessions::check_input(&input) {
        return session_refusal(e);
    }
    match door.input(&session, signer, input) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => session_refusal(e),
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
        ApplyError::Quota(_) => refusal(StatusCode::FORBIDDEN, "quota_exceeded", reason),
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

fn too_large() -> Response {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
    )
}

/// 429 with `Retry-After` in whole seconds (at least 1).
fn rate_limited(wait: Duration, reason: &str) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = refusal(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED, reason.into());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, seconds.max(1).into());
    response
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
