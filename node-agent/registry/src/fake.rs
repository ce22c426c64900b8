//! A registry for tests: manifests and blobs held in memory, optional token or Basic
//! authentication, and misbehaviour on demand (failures, lies, stalls, redirects).

#![allow(clippy::unwrap_used)] // test fixtures, outside #[test] functions

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

/// The user name the fake accepts.
pub(crate) const USER: &str = "alice";
/// The password the fake accepts.
pub(crate) const PASSWORD: &str = "secret";
/// `Basic` of [`USER`]:[`PASSWORD`].
const BASIC: &str = "Basic YWxpY2U6c2VjcmV0";
/// Bytes per chunk of a streamed body.
const CHUNK: usize = 1000;

/// How the fake authenticates registry requests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Anyone may pull.
    #[default]
    Open,
    /// The distribution token flow; only tokens issued for [`USER`] are accepted.
    Bearer,
    /// `Basic` with [`USER`] and [`PASSWORD`].
    Basic,
}

/// One document or blob and how to serve it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Served {
    pub(crate) bytes: Vec<u8>,
    pub(crate) content_type: Option<String>,
    /// `Docker-Content-Digest` to announce.
    pub(crate) digest_header: Option<String>,
    /// Stream without `Content-Length`.
    pub(crate) chunked: bool,
    /// Stop sending (for a minute) after this many bytes.
    pub(crate) stall_after: Option<usize>,
}

/// The fake registry's content and behaviour.
#[derive(Debug, Default)]
pub(crate) struct Fake {
    /// Manifests by tag or digest.
    pub(crate) manifests: HashMap<String, Served>,
    /// Blobs by digest.
    pub(crate) blobs: HashMap<String, Served>,
    pub(crate) mode: Mode,
    /// Registry requests still to be failed with [`Fake::failure`].
    pub(crate) fail_first: AtomicU32,
    /// The status of those failures (503 when 0), and a `Retry-After` to send with it.
    pub(crate) failure: (u16, Option<&'static str>),
    /// Redirect blob requests to `localhost` (another host than `127.0.0.1`).
    pub(crate) redirect_blobs: bool,
    /// `expires_in` of issued tokens.
    pub(crate) token_lifetime: u64,
    /// Every request: path and query, and its `Authorization`.
    pub(crate) log: Mutex<Vec<(String, Option<String>)>>,
    /// Tokens issued.
    pub(crate) tokens: AtomicU32,
}

impl Fake {
    /// Serves on `127.0.0.1` on a free port; returns the fake and its `host:port`.
    pub(crate) async fn serve(self) -> (Arc<Fake>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let fake = Arc::new(self);
        let shared = Arc::new(Shared {
            fake: fake.clone(),
            authority: authority.clone(),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, authority)
    }

    /// Logged requests whose path starts with `prefix`.
    pub(crate) fn requests(&self, prefix: &str) -> Vec<(String, Option<String>)> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .cloned()
            .collect()
    }
}

struct Shared {
    fake: Arc<Fake>,
    authority: String,
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let fake = &shared.fake;
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    fake.log
        .lock()
        .unwrap()
        .push((target, authorization.clone()));
    let path = uri.path();
    if path == "/token" {
        return token(fake, authorization.as_deref());
    }
    if let Some(digest) = path.strip_prefix("/storage/") {
        return fake.blobs.get(digest).map_or_else(not_found, serve);
    }
    let failing = fake
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        let (status, retry_after) = fake.failure;
        let mut response = Response::builder().status(if status == 0 { 503 } else { status });
        if let Some(seconds) = retry_after {
            response = response.header(RETRY_AFTER, seconds);
        }
        return response.body(Body::from("try later")).unwrap();
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found();
    };
    let (repository, kind, reference) =
        if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
            (repo, "manifests", reference)
        } else if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
            (repo, "blobs", digest)
        } else {
            return not_found();
        };
    let authorized = match fake.mode {
        Mode::Open => true,
        Mode::Bearer => authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer tok-")),
        Mode::Basic => authorization.as_deref() == Some(BASIC),
    };
    if !authorized {
        let challenge = match fake.mode {
            Mode::Bearer => format!(
                r#"Bearer realm="http://{}/token",service="fake",scope="repository:{repository}:pull""#,
                shared.authority
            ),
            _ => r#"Basic realm="fake""#.to_owned(),
        };
        return Response::builder()
            .status(401)
            .header(WWW_AUTHENTICATE, challenge)
            .body(Body::from(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ))
            .unwrap();
    }
    match kind {
        "manifests" => fake.manifests.get(reference).map_or_else(not_found, serve),
        _ if fake.redirect_blobs => {
            let port = shared.authority.rsplit_once(':').unwrap().1;
            Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(
                    LOCATION,
                    format!("http://localhost:{port}/storage/{reference}"),
                )
                .body(Body::empty())
                .unwrap()
        }
        _ => fake.blobs.get(reference).map_or_else(not_found, serve),
    }
}

/// The token service: a token for [`USER`]'s Basic credentials, an anonymous one without any.
fn token(fake: &Fake, authorization: Option<&str>) -> Response {
    let token = match authorization {
        None => "anonymous".to_owned(),
        Some(BASIC) => format!("tok-{}", fake.tokens.fetch_add(1, Ordering::SeqCst)),
        Some(_) => {
            return Response::builder()
                .status(401)
                .body(Body::from("bad credentials"))
                .unwrap();
        }
    };
    let body = serde_json::json!({ "token": token, "expires_in": fake.token_lifetime });
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn not_found() -> Response {
    Response::builder()
        .status(404)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        ))
        .unwrap()
}

fn serve(served: &Served) -> Response {
    let mut response = Response::builder();
    if let Some(content_type) = &served.content_type {
        response = response.header(CONTENT_TYPE, content_type);
    }
    if let Some(digest) = &served.digest_header {
        response = response.header("Docker-Content-Digest", digest);
    }
    let body = if served.chunked || served.stall_after.is_some() {
        let chunks: Vec<Bytes> = served
            .bytes
            .chunks(CHUNK)
            .map(Bytes::copy_from_slice)
            .collect();
        let stall_after = served.stall_after;
        let stream = futures_util::stream::unfold(
            (chunks.into_iter(), 0),
            move |(mut chunks, sent)| async move {
                if stall_after.is_some_and(|limit| sent >= limit) {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                let chunk = chunks.next()?;
                let sent = sent + chunk.len();
                Some((Ok::<_, std::io::Error>(chunk), (chunks, sent)))
            },
        );
        Body::from_stream(stream)
    } else {
        Body::from(served.bytes.clone())
    };
    response.body(body).unwrap()
}
