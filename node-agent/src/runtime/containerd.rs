//! containerd over its gRPC socket: one namespace, the overlayfs snapshotter and the runc v2
//! shim. Containers and their tasks live in containerd (and its shims), not in the agent, so
//! they keep running while the agent restarts; the agent finds them again by their labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use containerd_client::Client;
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetRequest, KillRequest, ListContainersRequest, ListTasksRequest,
    StartRequest,
};
use containerd_client::types::Mount;
use containerd_client::types::v1::Status;
use prost::Message;
use r1_protocol::messages::WorkloadState;
use tonic::{Code, Request, Status as RpcStatus};

use super::remap;
use super::spec::IdMap;
use crate::oci::{ImageConfig, OciError};
use crate::reconcile::TaskState;

/// Label every r1 container carries: the workload it runs (`<job>/<replica>`).
pub const WORKLOAD_LABEL: &str = "ai.ratio1.workload";
/// Label with the revision of the workload spec the container runs.
pub const REVISION_LABEL: &str = "ai.ratio1.revision";

/// The snapshotter every r1 container's root file system comes from.
pub(super) const SNAPSHOTTER: &str = "overlayfs";
const RUNC_SHIM: &str = "io.containerd.runc.v2";
pub(super) const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
pub(super) const CHUNK: usize = 1 << 20;
/// Type URL of the runc shim's task options.
const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";

/// The runc shim's task options (`containerd.runc.v1.Options`), the fields r1 sets.
#[derive(Clone, PartialEq, prost::Message)]
struct RuncOptions {
    /// Owner of the task's stdio pipes.
    #[prost(uint32, tag = "4")]
    io_uid: u32,
    /// Group of the task's stdio pipes.
    #[prost(uint32, tag = "5")]
    io_gid: u32,
}

/// A failure talking to containerd or reading an image.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The socket cannot be reached.
    #[error("cannot connect to containerd at {socket}: {reason}")]
    Connect {
        /// Socket path.
        socket: PathBuf,
        /// Transport error.
        reason: String,
    },
    /// containerd refused or failed a call.
    #[error("containerd {op}: {status}")]
    Rpc {
        /// What the agent asked for.
        op: &'static str,
        /// containerd's answer.
        status: Box<RpcStatus>,
    },
    /// The image is malformed or unsupported.
    #[error("image {reference}: {source}")]
    Image {
        /// Image reference.
        reference: String,
        /// What is wrong.
        source: OciError,
    },
    /// The image is being pulled; the workload starts once it is stored.
    #[error("image {reference} is being pulled ({percent}%)")]
    ImagePulling {
        /// Image reference.
        reference: String,
        /// Share downloaded.
        percent: u8,
    },
    /// The image cannot be pulled; the pull is retried with backoff.
    #[error("{reason}")]
    ImagePull {
        /// Why, and when the next try comes.
        reason: String,
    },
    /// The workload's secrets cannot be opened by this node; nothing starts without them.
    #[error("{reason}")]
    Secrets {
        /// Why.
        reason: String,
    },
    /// An OCI archive cannot be read.
    #[error("OCI archive {path}: {reason}")]
    Archive {
        /// Archive path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file the node prepares for the container cannot be made.
    #[error("{path}: {reason}")]
    HostFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An image snapshot cannot be shifted into the user namespace's ids.
    #[error("cannot shift image snapshot {parent} into the user namespace: {reason}")]
    Remap {
        /// The snapshot.
        parent: String,
        /// What went wrong.
        reason: String,
    },
    /// The node's sandbox settings do not allow the workload, or its scratch disk cannot be
    /// made; it is not started.
    #[error("{reason}")]
    Sandbox {
        /// Why.
        reason: String,
    },
    /// The container's runtime spec cannot be built.
    #[error(transparent)]
    Spec(#[from] super::spec::SpecError),
    /// A command cannot be run inside a container.
    #[error("exec in {container}: {reason}")]
    Exec {
        /// Container id.
        container: String,
        /// What went wrong.
        reason: String,
    },
}

impl RuntimeError {
    pub(super) fn rpc(op: &'static str) -> impl FnOnce(RpcStatus) -> Self {
        move |status| Self::Rpc {
            op,
            status: Box::new(status),
        }
    }

    /// Whether a container's writable snapshot is missing (a creation cut short): the
    /// container must be created again.
    pub fn is_missing_snapshot(&self) -> bool {
        matches!(self, Self::Rpc { op: "snapshot mounts", status } if status.code() == Code::NotFound)
    }

    /// The state a workload that cannot start yet reports: `pulling` or `imagePullBackOff`
    /// while it waits for its image, `failed` when its secrets do not open or the node's
    /// sandbox refuses it.
    pub fn pull_state(&self) -> Option<WorkloadState> {
        match self {
            Self::ImagePulling { percent, .. } => {
                Some(WorkloadState::Pulling { percent: *percent })
            }
            Self::ImagePull { reason } => Some(WorkloadState::ImagePullBackOff {
                reason: reason.clone(),
            }),
            Self::Secrets { reason } | Self::Sandbox { reason } => Some(WorkloadState::Failed {
                reason: reason.clone(),
            }),
            _ => None,
        }
    }

    /// Whether containerd itself is unreachable (as opposed to refusing one call).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Rpc { status, .. } => matches!(status.code(), Code::Unavailable | Code::Unknown),
            _ => false,
        }
    }
}

/// An image ready to run: its manifest digest, how to run it, and its top snapshot.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Image reference.
    pub reference: String,
    /// Digest of the manifest (what heartbeats report).
    pub digest: String,
    /// The image config.
    pub config: ImageConfig,
    /// Chain id of the topmost layer: the parent of a container's snapshot.
    pub top_chain_id: String,
}

/// A container in the agent's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Container id.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its task.
    pub task: TaskState,
}

/// A containerd connection bound to one namespace.
#[derive(Clone)]
pub struct Containerd {
    pub(super) client: std::sync::Arc<Client>,
    namespace: String,
    /// The lease every request is made under, if any ([`super::lease`]).
    pub(super) lease: Option<String>,
}

impl Containerd {
    /// Connects to containerd at `socket`, working in `namespace`.
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Self, RuntimeError> {
        let client = Client::from_path(socket)
            .await
            .map_err(|e| RuntimeError::Connect {
                socket: socket.to_owned(),
                reason: e.to_string(),
            })?;
        let containerd = Self {
            client: std::sync::Arc::new(client),
            namespace: namespace.to_owned(),
            lease: None,
        };
        containerd.version().await?;
        Ok(containerd)
    }

    /// This connection making its requests under `lease` ([`super::lease`]), or under none.
    pub(super) fn under_lease(&self, lease: Option<String>) -> Self {
        Self {
            lease,
            ..self.clone()
        }
    }

    /// The containerd namespace the agent works in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(super) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = self.namespace.parse() {
            request.metadata_mut().insert("containerd-namespace", value);
        }
        if let Some(value) = self.lease.as_ref().and_then(|lease| lease.parse().ok()) {
            request.metadata_mut().insert(super::lease::HEADER, value);
        }
        request
    }

    /// containerd's version, also a liveness check.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let response = self
            .client
            .version()
            .version(())
            .await
            .map_err(RuntimeError::rpc("version"))?;
        Ok(response.into_inner().version)
    }

    pub(super) async fn remove_snapshot(&self, key: &str) -> Result<(), RuntimeError> {
        match self
            .client
            .snapshots()
            .remove(self.request(RemoveSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: key.to_owned(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(RuntimeError::rpc("remove snapshot")(status)),
        }
    }

    /// Creates container `id` from `image` with the OCI runtime `spec`, on a fresh writable
    /// snapshot of the image. The container record comes first so that containerd's garbage
    /// collector sees the snapshot referenced from the moment it exists; a leftover snapshot of
    /// a half-created container is replaced.
    ///
    /// With an `id_map` (a user namespace), the snapshot's parent is the image shifted into the
    /// map's ids ([`Containerd::remapped_snapshot`]), kept alive by the container's labels.
    pub async fn create_container(
        &self,
        id: &str,
        image: &ResolvedImage,
        spec: &serde_json::Value,
        mut labels: BTreeMap<String, String>,
        id_map: Option<IdMap>,
    ) -> Result<(), RuntimeError> {
        self.remove_snapshot(id).await?;
        let prep = format!("{id}-idmap");
        if let Some(map) = id_map {
            labels.extend(remap::keep_labels(&[
                remap::remapped_key(&image.top_chain_id, map),
                prep.clone(),
            ]));
        }
        let container = Container {
            id: id.to_owned(),
            labels: labels.into_iter().collect(),
            image: image.reference.clone(),
            runtime: Some(Runtime {
                name: RUNC_SHIM.into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE.into(),
                value: spec.to_string().into_bytes(),
            }),
            snapshotter: SNAPSHOTTER.into(),
            snapshot_key: id.to_owned(),
            ..Default::default()
        };
        self.client
            .containers()
            .create(self.request(CreateContainerRequest {
                container: Some(container),
            }))
            .await
            .map_err(RuntimeError::rpc("create container"))?;
        let parent = match id_map {
            Some(map) => {
                self.remapped_snapshot(&image.top_chain_id, map, &prep)
                    .await?
            }
            None => image.top_chain_id.clone(),
        };
        self.client
            .snapshots()
            .prepare(self.request(PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: id.to_owned(),
                parent,
                labels: Default::default(),
            }))
            .await
            .map_err(RuntimeError::rpc("prepare snapshot"))?;
        Ok(())
    }

    /// Creates the task of container `id` without starting it: its namespaces exist and its
    /// process waits before running the workload's program, so the node can give the network
    /// namespace its interface first ([`Containerd::start_created_task`] runs it). Its output
    /// is appended to `log` by the shim (so logging goes on while the agent is down). With an
    /// `id_map`, the task's stdio pipes belong to the container's root, so its processes may
    /// reopen them (`/proc/1/fd/1`) as they could without a user namespace. Returns the pid.
    pub async fn create_task(
        &self,
        id: &str,
        log: &Path,
        id_map: Option<IdMap>,
    ) -> Result<u32, RuntimeError> {
        let rootfs: Vec<Mount> = self
            .client
            .snapshots()
            .mounts(self.request(MountsRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: id.to_owned(),
            }))
            .await
            .map_err(RuntimeError::rpc("snapshot mounts"))?
            .into_inner()
            .mounts;
        let log_uri = format!("file://{}", log.display());
        let created = self
            .client
            .tasks()
            .create(self.request(CreateTaskRequest {
                container_id: id.to_owned(),
                rootfs,
                stdout: log_uri.clone(),
                stderr: log_uri,
                options: id_map.map(|map| {
                    prost_types::Any {
                        type_url: RUNC_OPTIONS_TYPE.into(),
                        value: RuncOptions {
                            io_uid: map.host_base,
                            io_gid: map.host_base,
                        }
                        .encode_to_vec(),
                    }
                }),
                ..Default::default()
            }))
            .await
            .map_err(RuntimeError::rpc("create task"))?;
        Ok(created.into_inner().pid)
    }

    /// Runs the program of container `id`'s created task. Returns the pid.
    pub async fn start_created_task(&self, id: &str) -> Result<u32, RuntimeError> {
        let started = self
            .client
            .tasks()
            .start(self.request(StartRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
            }))
            .await
            .map_err(RuntimeError::rpc("start task"))?;
        Ok(started.into_inner().pid)
    }

    /// Every container in the namespace that carries [`WORKLOAD_LABEL`], with its task.
    pub async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let containers = self
            .client
            .containers()
            .list(self.request(ListContainersRequest {
                filters: vec![format!("labels.\"{WORKLOAD_LABEL}\"")],
            }))
            .await
            .map_err(RuntimeError::rpc("list containers"))?
            .into_inner()
            .containers;
        let tasks = self
            .client
            .tasks()
            .list(self.request(ListTasksRequest {
                filter: String::new(),
            }))
            .await
            .map_err(RuntimeError::rpc("list tasks"))?
            .into_inner()
            .tasks;
        let tasks: BTreeMap<String, TaskState> = tasks
            .into_iter()
            .map(|t| {
                let id = if t.container_id.is_empty() {
                    t.id.clone()
                } else {
                    t.container_id.clone()
                };
                (id, task_state(&t))
            })
            .collect();
        Ok(containers
            .into_iter()
            .map(|c| ContainerStatus {
                task: tasks.get(&c.id).copied().unwrap_or(TaskState::Absent),
                labels: c.labels.into_iter().collect(),
                id: c.id,
            })
            .collect())
    }

    /// The task state of container `id`.
    pub async fn task(&self, id: &str) -> Result<TaskState, RuntimeError> {
        match self
            .client
            .tasks()
            .get(self.request(GetRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
            }))
            .await
        {
            Ok(response) => Ok(response
                .into_inner()
                .process
                .map_or(TaskState::Absent, |p| task_state(&p))),
            Err(status) if status.code() == Code::NotFound => Ok(TaskState::Absent),
            Err(status) => Err(RuntimeError::rpc("get task")(status)),
        }
    }

    /// Sends `signal` to every process of container `id`'s task.
    pub async fn kill(&self, id: &str, signal: u32) -> Result<(), RuntimeError> {
        match self
            .client
            .tasks()
            .kill(self.request(KillRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
                signal,
                all: true,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(RuntimeError::rpc("kill task")(status)),
        }
    }

    /// Deletes the (stopped) task of container `id`; returns its exit status when it had one.
    pub async fn delete_task(&self, id: &str) -> Result<Option<u32>, RuntimeError> {
        match self
            .client
            .tasks()
            .delete(self.request(DeleteTaskRequest {
                container_id: id.to_owned(),
            }))
            .await
        {
            Ok(response) => Ok(Some(response.into_inner().exit_status)),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(RuntimeError::rpc("delete task")(status)),
        }
    }

    /// Stops container `id` (SIGTERM, then SIGKILL after `grace`), and removes its task, the
    /// container and its writable snapshot. Removing what is already gone succeeds.
    pub async fn remove(&self, id: &str, grace: std::time::Duration) -> Result<(), RuntimeError> {
        if matches!(self.task(id).await?, TaskState::Running { .. }) {
            self.kill(id, 15).await?;
            let deadline = tokio::time::Instant::now() + grace;
            while matches!(self.task(id).await?, TaskState::Running { .. }) {
                if tokio::time::Instant::now() >= deadline {
                    self.kill(id, 9).await?;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        self.delete_task(id).await?;
        match self
            .client
            .containers()
            .delete(self.request(DeleteContainerRequest { id: id.to_owned() }))
            .await
        {
            Ok(_) => {}
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => return Err(RuntimeError::rpc("delete container")(status)),
        }
        self.remove_snapshot(id).await
    }
}

fn task_state(process: &containerd_client::types::v1::Process) -> TaskState {
    match Status::try_from(process.status) {
        Ok(Status::Created) => TaskState::Created,
        Ok(Status::Running) => TaskState::Running { pid: process.pid },
        Ok(Status::Stopped) => TaskState::Stopped {
            exit_status: process.exit_status,
        },
        _ => TaskState::Other,
    }
}
