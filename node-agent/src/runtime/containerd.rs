//! containerd over its gRPC socket: one namespace, the overlayfs snapshotter and the runc v2
//! shim. Containers and their tasks live in containerd (and its shims), not in the agent, so
//! they keep running while the agent restarts; the agent finds them again by their labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use containerd_client::Client;
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
    StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, Container, CreateContainerRequest, CreateImageRequest, CreateTaskRequest,
    DeleteContainerRequest, DeleteTaskRequest, GetImageRequest, GetRequest, Image, InfoRequest,
    KillRequest, ListContainersRequest, ListTasksRequest, ReadContentRequest, StartRequest,
    UpdateImageRequest, WriteAction, WriteContentRequest,
};
use containerd_client::types::v1::Status;
use containerd_client::types::{Descriptor, Mount};
use futures_util::StreamExt;
use tonic::{Code, Request, Status as RpcStatus};

use crate::oci::{self, ImageConfig, Manifest, OciError};
use crate::reconcile::TaskState;

/// Label every r1 container carries: the workload it runs (`<job>/<replica>`).
pub const WORKLOAD_LABEL: &str = "ai.ratio1.workload";
/// Label with the revision of the workload spec the container runs.
pub const REVISION_LABEL: &str = "ai.ratio1.revision";

const SNAPSHOTTER: &str = "overlayfs";
const RUNC_SHIM: &str = "io.containerd.runc.v2";
pub(super) const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const CHUNK: usize = 1 << 20;

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
    /// The image is neither in containerd nor in the node's image archives.
    #[error(
        "image {reference} is not on this node and registry pulls are not built; put an OCI archive of it in {archives}"
    )]
    ImageNotFound {
        /// Image reference.
        reference: String,
        /// The directory searched for archives.
        archives: String,
    },
    /// An OCI archive cannot be read.
    #[error("OCI archive {path}: {reason}")]
    Archive {
        /// Archive path.
        path: PathBuf,
        /// What went wrong.
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
        };
        containerd.version().await?;
        Ok(containerd)
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

    async fn read_blob(&self, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        let mut stream = self
            .client
            .content()
            .read(self.request(ReadContentRequest {
                digest: digest.to_owned(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(RuntimeError::rpc("read content"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend(chunk.map_err(RuntimeError::rpc("read content"))?.data);
        }
        Ok(out)
    }

    async fn has_blob(&self, digest: &str) -> Result<bool, RuntimeError> {
        match self
            .client
            .content()
            .info(self.request(InfoRequest {
                digest: digest.to_owned(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(RuntimeError::rpc("content info")(status)),
        }
    }

    /// Writes `bytes` as the blob `digest` (skipped when present), with garbage-collection
    /// labels tying it to the blobs and snapshots it references.
    async fn write_blob(
        &self,
        digest: &str,
        bytes: &[u8],
        labels: BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        let reference = format!("r1-import-{digest}");
        let total = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        let mut requests = Vec::new();
        let mut offset = 0usize;
        for chunk in bytes.chunks(CHUNK) {
            requests.push(WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                expected: digest.to_owned(),
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                data: chunk.to_vec(),
                labels: Default::default(),
            });
            offset += chunk.len();
        }
        requests.push(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total,
            expected: digest.to_owned(),
            offset: total,
            data: Vec::new(),
            labels: labels.into_iter().collect(),
        });
        let mut responses = self
            .client
            .content()
            .write(self.request(tokio_stream::iter(requests)))
            .await
            .map_err(RuntimeError::rpc("write content"))?
            .into_inner();
        while let Some(response) = responses.next().await {
            match response {
                Ok(_) => {}
                Err(status) if status.code() == Code::AlreadyExists => return Ok(()),
                Err(status) => return Err(RuntimeError::rpc("write content")(status)),
            }
        }
        Ok(())
    }

    /// Imports every image of an OCI image-layout archive (a tar of `oci-layout`,
    /// `index.json` and `blobs/`), names each after its `io.containerd.image.name` or
    /// `org.opencontainers.image.ref.name` annotation, and unpacks it. Returns the names.
    pub async fn import_archive(&self, path: &Path) -> Result<Vec<String>, RuntimeError> {
        let archive_error = |reason: String| RuntimeError::Archive {
            path: path.to_owned(),
            reason,
        };
        let owned = path.to_owned();
        let blobs = tokio::task::spawn_blocking(move || read_layout(&owned))
            .await
            .map_err(|e| archive_error(e.to_string()))?
            .map_err(archive_error)?;
        let index_bytes = blobs
            .get("index.json")
            .ok_or_else(|| archive_error("no index.json".into()))?;
        let index = oci::parse_index(index_bytes).map_err(|e| archive_error(e.to_string()))?;
        let blob = |digest: &str| -> Result<&Vec<u8>, RuntimeError> {
            blobs
                .get(digest)
                .ok_or_else(|| archive_error(format!("blob {digest} is missing")))
        };
        let mut names = Vec::new();
        for entry in &index.manifests {
            let name = entry
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| entry.annotations.get("org.opencontainers.image.ref.name"))
                .ok_or_else(|| {
                    archive_error(format!("manifest {} has no image name", entry.digest))
                })?
                .clone();
            let image_error = |source| RuntimeError::Image {
                reference: name.clone(),
                source,
            };
            if !oci::MANIFEST_TYPES.contains(&entry.media_type.as_str()) {
                return Err(image_error(OciError::MediaType(entry.media_type.clone())));
            }
            let manifest_bytes = blob(&entry.digest)?;
            let manifest = oci::parse_manifest(manifest_bytes).map_err(image_error)?;
            let config_bytes = blob(&manifest.config.digest)?;
            let config = oci::parse_config(config_bytes, &manifest).map_err(image_error)?;
            let chain = oci::chain_ids(&config.rootfs.diff_ids);
            let top = chain.last().cloned().unwrap_or_default();
            for layer in &manifest.layers {
                self.write_blob(&layer.digest, blob(&layer.digest)?, BTreeMap::new())
                    .await?;
            }
            let mut config_labels = BTreeMap::new();
            if !top.is_empty() {
                config_labels.insert(
                    format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
                    top.clone(),
                );
            }
            self.write_blob(&manifest.config.digest, config_bytes, config_labels)
                .await?;
            let mut manifest_labels = BTreeMap::from([(
                "containerd.io/gc.ref.content.config".to_owned(),
                manifest.config.digest.clone(),
            )]);
            for (i, layer) in manifest.layers.iter().enumerate() {
                manifest_labels.insert(
                    format!("containerd.io/gc.ref.content.l.{i}"),
                    layer.digest.clone(),
                );
            }
            self.write_blob(&entry.digest, manifest_bytes, manifest_labels)
                .await?;
            self.unpack(&manifest, &chain).await?;
            self.put_image(&name, entry).await?;
            names.push(name);
        }
        Ok(names)
    }

    async fn put_image(&self, name: &str, target: &oci::Descriptor) -> Result<(), RuntimeError> {
        let image = Image {
            name: name.to_owned(),
            target: Some(Descriptor {
                media_type: target.media_type.clone(),
                digest: target.digest.clone(),
                size: target.size,
                annotations: Default::default(),
            }),
            ..Default::default()
        };
        match self
            .client
            .images()
            .create(self.request(CreateImageRequest {
                image: Some(image.clone()),
                source_date_epoch: None,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => {
                self.client
                    .images()
                    .update(self.request(UpdateImageRequest {
                        image: Some(image),
                        update_mask: None,
                        source_date_epoch: None,
                    }))
                    .await
                    .map_err(RuntimeError::rpc("update image"))?;
                Ok(())
            }
            Err(status) => Err(RuntimeError::rpc("create image")(status)),
        }
    }

    async fn snapshot_exists(&self, key: &str) -> Result<bool, RuntimeError> {
        match self
            .client
            .snapshots()
            .stat(self.request(StatSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: key.to_owned(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(RuntimeError::rpc("stat snapshot")(status)),
        }
    }

    /// Applies each layer onto its parent snapshot and commits it under its chain id.
    async fn unpack(&self, manifest: &Manifest, chain: &[String]) -> Result<(), RuntimeError> {
        for (i, layer) in manifest.layers.iter().enumerate() {
            let name = &chain[i];
            if self.snapshot_exists(name).await? {
                continue;
            }
            let parent = if i == 0 {
                String::new()
            } else {
                chain[i - 1].clone()
            };
            let key = format!("r1-extract-{}-{name}", std::process::id());
            let _ = self.remove_snapshot(&key).await;
            let mounts = self
                .client
                .snapshots()
                .prepare(self.request(PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.clone(),
                    parent,
                    labels: Default::default(),
                }))
                .await
                .map_err(RuntimeError::rpc("prepare snapshot"))?
                .into_inner()
                .mounts;
            self.client
                .diff()
                .apply(self.request(ApplyRequest {
                    diff: Some(Descriptor {
                        media_type: layer.media_type.clone(),
                        digest: layer.digest.clone(),
                        size: layer.size,
                        annotations: Default::default(),
                    }),
                    mounts,
                    payloads: Default::default(),
                    sync_fs: false,
                }))
                .await
                .map_err(RuntimeError::rpc("apply layer"))?;
            match self
                .client
                .snapshots()
                .commit(self.request(CommitSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    name: name.clone(),
                    key: key.clone(),
                    labels: Default::default(),
                }))
                .await
            {
                Ok(_) => {}
                Err(status) if status.code() == Code::AlreadyExists => {
                    self.remove_snapshot(&key).await?;
                }
                Err(status) => return Err(RuntimeError::rpc("commit snapshot")(status)),
            }
        }
        Ok(())
    }

    /// The image `reference` as stored in containerd, or `None` when it is not there.
    pub async fn resolve_image(
        &self,
        reference: &str,
    ) -> Result<Option<ResolvedImage>, RuntimeError> {
        let image = match self
            .client
            .images()
            .get(self.request(GetImageRequest {
                name: reference.to_owned(),
            }))
            .await
        {
            Ok(response) => response.into_inner().image,
            Err(status) if status.code() == Code::NotFound => return Ok(None),
            Err(status) => return Err(RuntimeError::rpc("get image")(status)),
        };
        let image_error = |source| RuntimeError::Image {
            reference: reference.to_owned(),
            source,
        };
        let Some(target) = image.and_then(|i| i.target) else {
            return Ok(None);
        };
        let mut manifest_digest = target.digest.clone();
        let mut bytes = self.read_blob(&target.digest).await?;
        if oci::INDEX_TYPES.contains(&target.media_type.as_str()) {
            let index = oci::parse_index(&bytes).map_err(image_error)?;
            let entry = oci::select_manifest(&index, &oci::host_platform()).map_err(image_error)?;
            manifest_digest = entry.digest.clone();
            bytes = self.read_blob(&entry.digest).await?;
        } else if !oci::MANIFEST_TYPES.contains(&target.media_type.as_str()) {
            return Err(image_error(OciError::MediaType(target.media_type)));
        }
        let manifest = oci::parse_manifest(&bytes).map_err(image_error)?;
        let config_bytes = self.read_blob(&manifest.config.digest).await?;
        let config = oci::parse_config(&config_bytes, &manifest).map_err(image_error)?;
        let chain = oci::chain_ids(&config.rootfs.diff_ids);
        self.unpack(&manifest, &chain).await?;
        Ok(Some(ResolvedImage {
            reference: reference.to_owned(),
            digest: manifest_digest,
            top_chain_id: chain.last().cloned().unwrap_or_default(),
            config,
        }))
    }

    async fn remove_snapshot(&self, key: &str) -> Result<(), RuntimeError> {
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
    pub async fn create_container(
        &self,
        id: &str,
        image: &ResolvedImage,
        spec: &serde_json::Value,
        labels: BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        self.remove_snapshot(id).await?;
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
        self.client
            .snapshots()
            .prepare(self.request(PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: id.to_owned(),
                parent: image.top_chain_id.clone(),
                labels: Default::default(),
            }))
            .await
            .map_err(RuntimeError::rpc("prepare snapshot"))?;
        Ok(())
    }

    /// Creates and starts the task of container `id`, its output appended to `log` by the
    /// shim (so logging goes on while the agent is down). Returns the pid.
    pub async fn start_task(&self, id: &str, log: &Path) -> Result<u32, RuntimeError> {
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
        self.client
            .tasks()
            .create(self.request(CreateTaskRequest {
                container_id: id.to_owned(),
                rootfs,
                stdout: log_uri.clone(),
                stderr: log_uri,
                ..Default::default()
            }))
            .await
            .map_err(RuntimeError::rpc("create task"))?;
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

/// Reads an OCI layout tar into memory: `index.json` under its name and each blob under its
/// digest (`sha256:<hex>`), checking every blob's digest.
fn read_layout(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(file);
    let mut out = BTreeMap::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let key = if name == "index.json" {
            name
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            format!("sha256:{hex}")
        } else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        if key != "index.json" && oci::digest_of(&bytes) != key {
            return Err(format!("blob {key} does not match its digest"));
        }
        out.insert(key, bytes);
    }
    Ok(out)
}
