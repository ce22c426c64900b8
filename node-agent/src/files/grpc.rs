//! The R1FS half of the local gRPC API (`r1.node.v1.R1fs`), which `r1ctl fs` speaks: whoever
//! reaches the node's socket is the node's operator, so adds and pins belong to
//! [`LOCAL_OWNER`].

use std::path::Path;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use r1_protocol::node_api::r1fs_server::R1fs;
use r1_protocol::node_api::{
    AddRequest, AddResponse, CidRequest, FileChunk, LsEntry, LsResponse, PinResponse, StatResponse,
    UnpinResponse,
};
use r1_r1fs::blocks::StoreError;
use r1_r1fs::crypt::CryptError;
use r1_r1fs::unixfs::{CidVersion, ReadError};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::service::{Files, FilesError, LOCAL_OWNER, parse_cid, parse_key};

/// The R1FS gRPC service over the node's [`Files`].
pub struct FilesApi(pub Files);

/// The gRPC status of a failed call: the caller's mistakes as such, the rest as internal.
pub fn status(error: FilesError) -> Status {
    let message = error.to_string();
    match error {
        FilesError::BadCid { .. } => Status::invalid_argument(message),
        FilesError::PathRefused { .. } => Status::permission_denied(message),
        FilesError::NotOwner { .. } => Status::permission_denied(message),
        FilesError::Unavailable(_) | FilesError::Store(StoreError::NotPinned(_)) => {
            Status::not_found(message)
        }
        FilesError::Store(StoreError::Quota { .. }) => Status::resource_exhausted(message),
        FilesError::Read(ReadError::Kind { .. }) => Status::failed_precondition(message),
        FilesError::Crypt(CryptError::BadKey(_)) => Status::invalid_argument(message),
        FilesError::Crypt(_) => Status::data_loss(message),
        _ => Status::internal(message),
    }
}

fn version(number: u32) -> Result<CidVersion, Status> {
    match number {
        0 => Ok(CidVersion::V0),
        1 => Ok(CidVersion::V1),
        other => Err(Status::invalid_argument(format!(
            "CID version {other}: 0 or 1"
        ))),
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<FileChunk, Status>> + Send>>;

#[tonic::async_trait]
impl R1fs for FilesApi {
    async fn add(&self, request: Request<AddRequest>) -> Result<Response<AddResponse>, Status> {
        let r = request.into_inner();
        let file = self
            .0
            .add_path(
                Path::new(&r.path),
                version(r.cid_version)?,
                LOCAL_OWNER,
                r.encrypt,
            )
            .await
            .map_err(status)?;
        tracing::info!(path = %r.path, cid = %file.added.cid, encrypted = r.encrypt, "added");
        Ok(Response::new(AddResponse {
            cid: file.added.cid.to_string(),
            dag_size: file.added.dag_size,
            key: file.key.map(|k| k.to_hex()).unwrap_or_default(),
        }))
    }

    type CatStream = ChunkStream;

    async fn cat(&self, request: Request<CidRequest>) -> Result<Response<ChunkStream>, Status> {
        let r = request.into_inner();
        let root = parse_cid(&r.cid).map_err(status)?;
        let key = parse_key(&r.key).map_err(status)?;
        let chunks = self.0.cat(root, LOCAL_OWNER, key).await.map_err(status)?;
        let stream = ReceiverStream::new(chunks)
            .map(|chunk| chunk.map(|data| FileChunk { data }).map_err(status));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ls(&self, request: Request<CidRequest>) -> Result<Response<LsResponse>, Status> {
        let root = parse_cid(&request.into_inner().cid).map_err(status)?;
        let entries = self.0.ls(root).await.map_err(status)?;
        Ok(Response::new(LsResponse {
            entries: entries
                .into_iter()
                .map(|e| LsEntry {
                    name: e.name,
                    cid: e.cid.to_string(),
                    tsize: e.tsize,
                })
                .collect(),
        }))
    }

    async fn pin(&self, request: Request<CidRequest>) -> Result<Response<PinResponse>, Status> {
        let root = parse_cid(&request.into_inner().cid).map_err(status)?;
        let fetched = self.0.pin(root, LOCAL_OWNER).await.map_err(status)?;
        Ok(Response::new(match fetched {
            None => PinResponse::default(),
            Some(f) => PinResponse {
                fetched: true,
                blocks_from: f
                    .from
                    .iter()
                    .map(|(peer, n)| (peer.to_checksum(None), *n as u64))
                    .collect(),
                blocks_held: f.held as u64,
                penalised: f.penalised.iter().map(|p| p.to_checksum(None)).collect(),
            },
        }))
    }

    async fn unpin(&self, request: Request<CidRequest>) -> Result<Response<UnpinResponse>, Status> {
        let root = parse_cid(&request.into_inner().cid).map_err(status)?;
        self.0.unpin(root, LOCAL_OWNER).await.map_err(status)?;
        Ok(Response::new(UnpinResponse {}))
    }

    async fn stat(&self, request: Request<CidRequest>) -> Result<Response<StatResponse>, Status> {
        let root = parse_cid(&request.into_inner().cid).map_err(status)?;
        let stat = self.0.stat(root).await.map_err(status)?;
        let owner = self.0.owner(root).map_err(status)?;
        let usage = self.0.usage().map_err(status)?;
        Ok(Response::new(StatResponse {
            kind: stat.kind.to_string(),
            size: stat.size,
            links: stat.links as u64,
            owner: owner.unwrap_or_default(),
            store_bytes: usage.bytes,
            store_quota: usage.quota,
        }))
    }
}
