//! The R1FS API workloads reach from inside their containers: an HTTP server the agent opens on
//! 127.0.0.1 in each running container's own network namespace, so nothing outside the
//! container reaches it and every request is known to come from that workload. What a workload
//! adds or pins is owned by its job (`job-<id>`), and only that job may unpin it.
//!
//! ```text
//! POST   /v0/add[?cid-version=1][&encrypt=true]  body: the file
//!                                      → {"cid": "...", "dagSize": n[, "key": "<64 hex>"]}
//! GET    /v0/cat/{cid}[?key=<64 hex>]                        → the file's bytes
//! GET    /v0/ls/{cid}                                        → [{"name", "cid", "tsize"}]
//! GET    /v0/stat/{cid}                                      → {"kind", "size", "links"}
//! POST   /v0/pin/{cid}                                       → fetched from peers and pinned
//! DELETE /v0/pin/{cid}                                       → unpinned
//! ```
//!
//! The container finds the API in `R1FS_API_URL`. Uploads are bounded by
//! `r1fs.maxUploadBytes` and by an idle timeout; one that ends early is refused and leaves
//! nothing pinned.

use std::io::{self, Read};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use r1_protocol::messages::WorkloadId;
use r1_r1fs::blocks::StoreError;
use r1_r1fs::crypt::CryptError;
use r1_r1fs::unixfs::{CidVersion, ReadError};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::service::{Files, FilesError, parse_cid, parse_key};
use crate::ports::PidTable;

/// How long an upload may send nothing before it is dropped.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);

/// Longest a call other than an upload or a file read may take (a fetch from peers included).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The variable that tells a workload where the API is, for the given port.
pub fn env(port: u16) -> (String, String) {
    ("R1FS_API_URL".into(), format!("http://127.0.0.1:{port}"))
}

/// The owner of what a job's workloads add.
pub fn owner(id: WorkloadId) -> String {
    format!("job-{}", id.job)
}

#[derive(Clone)]
struct Caller {
    files: Files,
    owner: String,
    max_upload: u64,
}

/// Serves the API in each running container as containers come and go.
pub async fn run(files: Files, pids: PidTable, port: u16, max_upload: u64) {
    crate::in_container::serve_each(pids, port, "R1FS workload API", move |id, listener| {
        let caller = Caller {
            files: files.clone(),
            owner: owner(id),
            max_upload,
        };
        async move {
            if let Err(e) = axum::serve(listener, router(caller)).await {
                tracing::warn!(
                    job = id.job,
                    replica = id.replica,
                    "R1FS workload API stopped: {e}"
                );
            }
        }
    })
    .await;
}

fn router(caller: Caller) -> Router {
    Router::new()
        .route("/v0/add", post(add))
        .route("/v0/cat/{cid}", get(cat))
        .route("/v0/ls/{cid}", get(ls))
        .route("/v0/stat/{cid}", get(stat))
        .route("/v0/pin/{cid}", post(pin).delete(unpin))
        .with_state(caller)
}

/// An R1FS failure as an HTTP answer.
struct Failure(StatusCode, String);

impl From<FilesError> for Failure {
    fn from(error: FilesError) -> Self {
        let code = match &error {
            FilesError::BadCid { .. } => StatusCode::BAD_REQUEST,
            FilesError::PathRefused { .. } | FilesError::NotOwner { .. } => StatusCode::FORBIDDEN,
            FilesError::Unavailable(_) | FilesError::Store(StoreError::NotPinned(_)) => {
                StatusCode::NOT_FOUND
            }
            FilesError::Store(StoreError::Quota { .. }) => StatusCode::INSUFFICIENT_STORAGE,
            FilesError::Read(ReadError::Kind { .. }) => StatusCode::CONFLICT,
            FilesError::Import(_) | FilesError::Crypt(CryptError::BadKey(_)) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(code, error.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

async fn timed<T>(call: impl Future<Output = Result<T, FilesError>>) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Failure(
            StatusCode::GATEWAY_TIMEOUT,
            format!("not done within {} s", CALL_TIMEOUT.as_secs()),
        )),
    }
}

#[derive(Deserialize)]
struct AddQuery {
    #[serde(rename = "cid-version", default)]
    cid_version: u8,
    #[serde(default)]
    encrypt: bool,
}

#[derive(Deserialize)]
struct CatQuery {
    #[serde(default)]
    key: String,
}

async fn add(
    State(caller): State<Caller>,
    Query(query): Query<AddQuery>,
    body: Body,
) -> Result<Json<serde_json::Value>, Failure> {
    let version = match query.cid_version {
        0 => CidVersion::V0,
        1 => CidVersion::V1,
        other => {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("cid-version {other}: 0 or 1"),
            ));
        }
    };
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(pump(body, tx));
    let reader = BodyReader {
        chunks: rx,
        current: Bytes::new(),
        read: 0,
        limit: caller.max_upload,
    };
    let owner = caller.owner.clone();
    let files = caller.files.clone();
    let encrypt = query.encrypt;
    let file = tokio::task::spawn_blocking(move || {
        files.add_reader_blocking(reader, version, &owner, encrypt)
    })
    .await
    .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    tracing::info!(owner = %caller.owner, cid = %file.added.cid, encrypt, "workload added a file");
    let mut answer = json!({ "cid": file.added.cid.to_string(), "dagSize": file.added.dag_size });
    if let Some(key) = file.key {
        answer["key"] = json!(key.to_hex());
    }
    Ok(Json(answer))
}

/// Moves an upload's bytes to the importing thread, failing it when the client goes quiet.
async fn pump(body: Body, tx: mpsc::Sender<io::Result<Bytes>>) {
    let mut stream = body.into_data_stream();
    loop {
        let next = match tokio::time::timeout(UPLOAD_IDLE, stream.next()).await {
            Ok(Some(Ok(bytes))) => Ok(bytes),
            Ok(Some(Err(e))) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("upload broken off: {e}"),
            )),
            Ok(None) => return,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("upload idle for {} s", UPLOAD_IDLE.as_secs()),
            )),
        };
        let failed = next.is_err();
        if tx.send(next).await.is_err() || failed {
            return;
        }
    }
}

/// An upload as the importer reads it, refused past its byte limit.
struct BodyReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    read: u64,
    limit: u64,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.current = chunk?,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("upload over {} bytes (r1fs.maxUploadBytes)", self.limit),
            ));
        }
        Ok(n)
    }
}

async fn cat(
    State(caller): State<Caller>,
    Path(cid): Path<String>,
    Query(query): Query<CatQuery>,
) -> Result<Response, Failure> {
    let root = parse_cid(&cid)?;
    let key = parse_key(&query.key)?;
    let chunks = timed(caller.files.cat(root, &caller.owner, key)).await?;
    let stream = ReceiverStream::new(chunks).map(|chunk| chunk.map(Bytes::from));
    Ok(Body::from_stream(stream).into_response())
}

async fn ls(
    State(caller): State<Caller>,
    Path(cid): Path<String>,
) -> Result<Json<serde_json::Value>, Failure> {
    let root = parse_cid(&cid)?;
    let entries = timed(caller.files.ls(root)).await?;
    let entries: Vec<_> = entries
        .into_iter()
        .map(|e| json!({ "name": e.name, "cid": e.cid.to_string(), "tsize": e.tsize }))
        .collect();
    Ok(Json(json!(entries)))
}

async fn stat(
    State(caller): State<Caller>,
    Path(cid): Path<String>,
) -> Result<Json<serde_json::Value>, Failure> {
    let root = parse_cid(&cid)?;
    let stat = timed(caller.files.stat(root)).await?;
    Ok(Json(json!({
        "kind": stat.kind.to_string(),
        "size": stat.size,
        "links": stat.links,
    })))
}

async fn pin(
    State(caller): State<Caller>,
    Path(cid): Path<String>,
) -> Result<Json<serde_json::Value>, Failure> {
    let root = parse_cid(&cid)?;
    let fetched = timed(caller.files.pin(root, &caller.owner)).await?;
    Ok(Json(json!({
        "cid": root.to_string(),
        "fetched": fetched.is_some(),
        "owner": caller.files.owner(root)?,
    })))
}

async fn unpin(
    State(caller): State<Caller>,
    Path(cid): Path<String>,
) -> Result<StatusCode, Failure> {
    let root = parse_cid(&cid)?;
    timed(caller.files.unpin(root, &caller.owner)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests;
