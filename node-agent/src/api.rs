//! The local gRPC API (`r1.node.v1.NodeApi`, see `protocol/proto/node.proto`) on a unix
//! socket: node info, workloads and their states, and log streaming. `r1ctl node ps|logs`
//! speak to it; `r1ctl fs` speaks to the R1FS service on the same socket (`files::grpc`),
//! `r1ctl cstore` to the CSTORE one (`kv::grpc`).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::Stream;
use r1_protocol::Address;
use r1_protocol::messages::{PortProtocol, WorkloadId, WorkloadState};
use r1_protocol::node_api::cstore_server::CstoreServer;
use r1_protocol::node_api::node_api_server::{NodeApi, NodeApiServer};
use r1_protocol::node_api::r1fs_server::R1fsServer;
use r1_protocol::node_api::{
    InfoRequest, ListWorkloadsRequest, ListWorkloadsResponse, LogChunk, LogsRequest, NodeInfo,
    PortBinding, Workload, WorkloadRef,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};

use crate::files::grpc::FilesApi;
use crate::kv::grpc::CstoreApi;
use crate::logs::{self, LogDir};
use crate::reconcile;
use crate::resources::{self, Capacity};
use crate::state::NodeState;

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The API's view of the node.
pub struct Api {
    /// Node address.
    pub address: Address,
    /// Node alias.
    pub alias: String,
    /// Capacity.
    pub capacity: Capacity,
    /// Data directory (for disk figures).
    pub data_dir: PathBuf,
    /// Shared state.
    pub state: Arc<NodeState>,
    /// Log files.
    pub logs: LogDir,
    /// When the agent started.
    pub started: Instant,
}

impl Api {
    fn workload(&self, id: WorkloadId) -> Option<Workload> {
        let desired = self.state.desired_one(id)?;
        let report = self.state.reports().remove(&id);
        let (state, detail, restarts) = match report.as_ref().map(|r| &r.state) {
            None => ("starting", String::new(), 0),
            Some(state) => {
                let restarts = match state {
                    WorkloadState::Restarting { restarts, .. } => *restarts,
                    _ => 0,
                };
                let detail = state.detail();
                (state.name(), detail, restarts)
            }
        };
        Some(Workload {
            job: id.job,
            replica: id.replica,
            revision: desired.spec.revision.clone(),
            image: desired.spec.image.clone(),
            image_digest: report.and_then(|r| r.image_digest).unwrap_or_default(),
            state: state.into(),
            detail,
            restarts,
            ports: [PortProtocol::Tcp, PortProtocol::Udp]
                .into_iter()
                .flat_map(|protocol| {
                    desired
                        .host_ports_of(protocol)
                        .iter()
                        .map(move |(&c, &h)| PortBinding {
                            container_port: c.into(),
                            host_port: h.into(),
                            protocol: protocol.to_string(),
                        })
                })
                .collect(),
            container_id: reconcile::container_id(id, &desired.spec.revision),
            ordered_by: desired.ordered_by.to_checksum(None),
            cpu_millis: desired.spec.cpu_millis,
            memory_bytes: desired.spec.memory_bytes,
        })
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl NodeApi for Api {
    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<NodeInfo>, Status> {
        let desired = self.state.desired();
        let r = resources::node_resources(
            &self.capacity,
            resources::disk_free(&self.data_dir),
            desired.values().map(|w| &w.spec),
        );
        Ok(Response::new(NodeInfo {
            address: self.address.to_checksum(None),
            alias: self.alias.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            broker_connected: self.state.broker_connected(),
            cpu_millis_total: r.total.cpu_millis,
            cpu_millis_free: r.free.cpu_millis,
            memory_total: r.total.memory_bytes,
            memory_free: r.free.memory_bytes,
            gpu_total: r.total.gpu,
            gpu_model: r.gpu_model.unwrap_or_default(),
            uptime_seconds: self.started.elapsed().as_secs(),
            licence: self.state.licence(),
        }))
    }

    async fn list_workloads(
        &self,
        _: Request<ListWorkloadsRequest>,
    ) -> Result<Response<ListWorkloadsResponse>, Status> {
        let workloads = self
            .state
            .desired()
            .into_keys()
            .filter_map(|id| self.workload(id))
            .collect();
        Ok(Response::new(ListWorkloadsResponse { workloads }))
    }

    async fn get_workload(
        &self,
        request: Request<WorkloadRef>,
    ) -> Result<Response<Workload>, Status> {
        let r = request.into_inner();
        let id = WorkloadId {
            job: r.job,
            replica: r.replica,
        };
        self.workload(id).map(Response::new).ok_or_else(|| {
            Status::not_found(format!("no workload {}/{} on this node", r.job, r.replica))
        })
    }

    type StreamLogsStream = LogStream;

    async fn stream_logs(
        &self,
        request: Request<LogsRequest>,
    ) -> Result<Response<LogStream>, Status> {
        let r = request.into_inner();
        let id = WorkloadId {
            job: r.job,
            replica: r.replica,
        };
        let desired = self.state.desired_one(id).ok_or_else(|| {
            Status::not_found(format!("no workload {}/{} on this node", r.job, r.replica))
        })?;
        let path = self
            .logs
            .path(&reconcile::container_id(id, &desired.spec.revision));
        let tail_lines = usize::try_from(r.tail_lines).unwrap_or(usize::MAX);
        let (first, mut offset) =
            logs::tail(&path, tail_lines).map_err(|e| Status::internal(e.to_string()))?;
        let (tx, rx) = mpsc::channel(16);
        let state = self.state.clone();
        tokio::spawn(async move {
            if !first.is_empty() && tx.send(Ok(LogChunk { data: first })).await.is_err() {
                return;
            }
            while r.follow && state.desired_one(id).is_some() {
                tokio::time::sleep(FOLLOW_POLL).await;
                match logs::read_from(&path, offset) {
                    Ok((bytes, next)) => {
                        offset = next;
                        if !bytes.is_empty() && tx.send(Ok(LogChunk { data: bytes })).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Serves the API, R1FS's through `files` and CSTORE's through `cstore`, on the unix socket at
/// `path` (replacing a stale socket file).
pub async fn serve(
    path: &Path,
    api: Arc<Api>,
    files: FilesApi,
    cstore: CstoreApi,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    tonic::transport::Server::builder()
        .add_service(NodeApiServer::from_arc(api))
        .add_service(R1fsServer::new(files))
        .add_service(CstoreServer::new(cstore))
        .serve_with_incoming(UnixListenerStream::new(listener))
        .await
        .map_err(std::io::Error::other)
}
