//! Images in containerd: blobs written into its content store (from memory or streamed from
//! files), layers unpacked into snapshots, image records, and reading an image back to run it.
//! Images come from OCI archives in the node's image directory or from registry pulls
//! (`crate::images`); both go through [`Containerd::store_image`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteImageRequest, GetImageRequest, Image, InfoRequest,
    ListContentRequest, ListImagesRequest, ReadContentRequest, UpdateImageRequest, WriteAction,
    WriteContentRequest,
};
use containerd_client::types::Descriptor;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::AsyncReadExt;
use tonic::Code;

use super::containerd::{CHUNK, Containerd, ResolvedImage, RuntimeError, SNAPSHOTTER};
use crate::oci::{self, Manifest, OciError};

/// Where a blob's bytes come from when it is written into containerd.
pub enum BlobSource<'a> {
    /// Already in memory (archives, manifests, configs).
    Bytes(&'a [u8]),
    /// A verified download on disk (pulled layers), streamed in chunks.
    File(PathBuf),
    /// Already in containerd's content store (a layer another image shares).
    Stored,
}

/// A file's bytes as a stream of chunks of at most [`CHUNK`] bytes; a read error ends the
/// stream early, which containerd then refuses as a short blob.
async fn file_chunks(path: PathBuf) -> std::io::Result<BoxStream<'static, Vec<u8>>> {
    let file = tokio::fs::File::open(&path).await?;
    Ok(futures_util::stream::unfold(file, |mut file| async move {
        let mut chunk = vec![0; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match file.read(&mut chunk[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    tracing::warn!("reading a blob to import: {e}");
                    return None;
                }
            }
        }
        chunk.truncate(filled);
        (filled > 0).then_some((chunk, file))
    })
    .boxed())
}

/// The parts of one image to store: the name it runs under, its manifest's descriptor and
/// bytes, its config, and where each layer's bytes are (by digest).
pub struct ImageParts<'a> {
    /// The reference workloads name it by.
    pub name: &'a str,
    /// The manifest's descriptor (media type, digest, size).
    pub target: &'a oci::Descriptor,
    /// The manifest.
    pub manifest_bytes: &'a [u8],
    /// The image config.
    pub config_bytes: &'a [u8],
    /// Each layer's bytes, by digest.
    pub layers: BTreeMap<String, BlobSource<'a>>,
    /// Pulled with a job's credentials: its blobs are labelled [`PRIVATE_LABEL`] and never
    /// served to peers.
    pub private: bool,
    /// Pulled from a registry (labelled [`PULLED_LABEL`]): the node may delete it when no
    /// workload has used it for a while, and pull it again when one needs it.
    pub pulled: bool,
}

/// Label of blobs pulled with credentials, which the node keeps to itself.
pub const PRIVATE_LABEL: &str = "ai.ratio1.private";

/// Label of images pulled from a registry, which garbage collection may delete.
pub const PULLED_LABEL: &str = "ai.ratio1.pulled";

impl Containerd {
    async fn read_blob(&self, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        self.read_blob_range(digest, 0, 0).await
    }

    /// `len` bytes of blob `digest` from `offset` (0: to its end).
    pub async fn read_blob_range(
        &self,
        digest: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, RuntimeError> {
        let mut stream = self
            .client
            .content()
            .read(self.request(ReadContentRequest {
                digest: digest.to_owned(),
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                size: i64::try_from(len).unwrap_or(i64::MAX),
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

    /// Whether containerd's content store holds blob `digest`.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, RuntimeError> {
        Ok(self.blob_info(digest).await?.is_some())
    }

    /// The size and labels of blob `digest`, when containerd's content store holds it.
    pub async fn blob_info(
        &self,
        digest: &str,
    ) -> Result<Option<(u64, BTreeMap<String, String>)>, RuntimeError> {
        match self
            .client
            .content()
            .info(self.request(InfoRequest {
                digest: digest.to_owned(),
            }))
            .await
        {
            Ok(response) => Ok(response.into_inner().info.map(|info| {
                let size = u64::try_from(info.size).unwrap_or(0);
                (size, info.labels.into_iter().collect())
            })),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(RuntimeError::rpc("content info")(status)),
        }
    }

    /// Writes the blob `digest` of `size` bytes from `source` (skipped when present), with
    /// garbage-collection labels tying it to the blobs and snapshots it references. containerd
    /// checks the size and digest when it commits, so a short or altered source fails here.
    async fn write_blob(
        &self,
        digest: &str,
        size: u64,
        source: BlobSource<'_>,
        labels: BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        let reference = format!("r1-import-{digest}");
        let total = i64::try_from(size).unwrap_or(i64::MAX);
        let chunks: BoxStream<'static, Vec<u8>> = match source {
            BlobSource::Bytes(bytes) => {
                let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK).map(|c| c.to_vec()).collect();
                futures_util::stream::iter(chunks).boxed()
            }
            BlobSource::Stored => futures_util::stream::empty().boxed(),
            BlobSource::File(path) => {
                file_chunks(path).await.map_err(|e| RuntimeError::Archive {
                    path: PathBuf::from(digest),
                    reason: e.to_string(),
                })?
            }
        };
        let commit = WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference.clone(),
            total,
            expected: digest.to_owned(),
            offset: total,
            data: Vec::new(),
            labels: labels.into_iter().collect(),
        };
        // The requests are fed through a channel by their own task: a stream of combinators
        // here would make the caller's future lose `Send` (a known rustc limitation).
        let (requests, feed) = tokio::sync::mpsc::channel(4);
        let expected = digest.to_owned();
        tokio::spawn(async move {
            let mut chunks = chunks;
            let mut offset = 0i64;
            while let Some(data) = chunks.next().await {
                let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
                let request = WriteContentRequest {
                    action: WriteAction::Write as i32,
                    r#ref: reference.clone(),
                    total,
                    expected: expected.clone(),
                    offset,
                    data,
                    labels: Default::default(),
                };
                offset += len;
                if requests.send(request).await.is_err() {
                    return;
                }
            }
            let _ = requests.send(commit).await;
        });
        let requests = tokio_stream::wrappers::ReceiverStream::new(feed);
        let mut responses = self
            .client
            .content()
            .write(self.request(requests))
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
            let blob = |digest: &String| {
                blobs
                    .get(digest)
                    .map(Vec::as_slice)
                    .ok_or_else(|| archive_error(format!("blob {digest} is missing")))
            };
            let manifest_bytes = blob(&entry.digest)?;
            let image_error = |source| RuntimeError::Image {
                reference: name.clone(),
                source,
            };
            let manifest = oci::parse_manifest(manifest_bytes).map_err(image_error)?;
            let mut layers = BTreeMap::new();
            for layer in &manifest.layers {
                layers.insert(
                    layer.digest.clone(),
                    BlobSource::Bytes(blob(&layer.digest)?),
                );
            }
            let parts = ImageParts {
                name: &name,
                target: entry,
                manifest_bytes,
                config_bytes: blob(&manifest.config.digest)?,
                layers,
                private: false,
                pulled: false,
            };
            self.store_image(parts).await?;
            names.push(name);
        }
        Ok(names)
    }

    /// Stores a verified image under `parts.name`: its layers, config and manifest with the
    /// labels containerd's garbage collector follows, the layers unpacked, and the image record
    /// last, so an image that fails half-way has no name and nothing runs it. All of it is
    /// written under a lease, so containerd's garbage collector leaves the parts alone until
    /// the image record holds them.
    pub async fn store_image(&self, parts: ImageParts<'_>) -> Result<(), RuntimeError> {
        let leased = self.begin_lease().await?;
        let stored = leased.store_leased(parts).await;
        leased.end_lease().await;
        stored
    }

    async fn store_leased(&self, parts: ImageParts<'_>) -> Result<(), RuntimeError> {
        let image_error = |source| RuntimeError::Image {
            reference: parts.name.to_owned(),
            source,
        };
        if !oci::MANIFEST_TYPES.contains(&parts.target.media_type.as_str()) {
            return Err(image_error(OciError::MediaType(
                parts.target.media_type.clone(),
            )));
        }
        let manifest = oci::parse_manifest(parts.manifest_bytes).map_err(image_error)?;
        let config = oci::parse_config(parts.config_bytes, &manifest).map_err(image_error)?;
        let chain = oci::chain_ids(&config.rootfs.diff_ids);
        let top = chain.last().cloned().unwrap_or_default();
        let mut layers = parts.layers;
        let privacy: BTreeMap<String, String> = if parts.private {
            BTreeMap::from([(PRIVATE_LABEL.to_owned(), "true".to_owned())])
        } else {
            BTreeMap::new()
        };
        for layer in &manifest.layers {
            let source = layers.remove(&layer.digest).ok_or_else(|| {
                image_error(OciError::Parse {
                    what: "image manifest",
                    reason: format!("layer {} was not fetched", layer.digest),
                })
            })?;
            let size = u64::try_from(layer.size).unwrap_or_default();
            self.write_blob(&layer.digest, size, source, privacy.clone())
                .await?;
        }
        let mut config_labels = privacy.clone();
        if !top.is_empty() {
            config_labels.insert(
                format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
                top.clone(),
            );
        }
        let config_size = parts.config_bytes.len() as u64;
        let config_source = BlobSource::Bytes(parts.config_bytes);
        self.write_blob(
            &manifest.config.digest,
            config_size,
            config_source,
            config_labels,
        )
        .await?;
        let mut manifest_labels = privacy;
        manifest_labels.extend([(
            "containerd.io/gc.ref.content.config".to_owned(),
            manifest.config.digest.clone(),
        )]);
        for (i, layer) in manifest.layers.iter().enumerate() {
            manifest_labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                layer.digest.clone(),
            );
        }
        let manifest_size = parts.manifest_bytes.len() as u64;
        let manifest_source = BlobSource::Bytes(parts.manifest_bytes);
        self.write_blob(
            &parts.target.digest,
            manifest_size,
            manifest_source,
            manifest_labels,
        )
        .await?;
        self.unpack(&manifest, &chain).await?;
        let labels = if parts.pulled {
            HashMap::from([(PULLED_LABEL.to_owned(), "true".to_owned())])
        } else {
            HashMap::new()
        };
        self.put_image(parts.name, parts.target, labels).await
    }

    /// Bytes of every blob in the namespace's content store: what images take on disk before
    /// unpacking, as the image quota counts them.
    pub async fn content_bytes(&self) -> Result<u64, RuntimeError> {
        let mut stream = self
            .client
            .content()
            .list(self.request(ListContentRequest::default()))
            .await
            .map_err(RuntimeError::rpc("list content"))?
            .into_inner();
        let mut total = 0u64;
        while let Some(page) = stream.next().await {
            let page = page.map_err(RuntimeError::rpc("list content"))?;
            let sizes = page.info.iter().map(|i| u64::try_from(i.size).unwrap_or(0));
            total = total.saturating_add(sizes.sum());
        }
        Ok(total)
    }

    /// Names of the images this node pulled from registries ([`PULLED_LABEL`]).
    pub async fn pulled_images(&self) -> Result<Vec<String>, RuntimeError> {
        let images = self
            .client
            .images()
            .list(self.request(ListImagesRequest {
                filters: vec![format!("labels.\"{PULLED_LABEL}\"")],
            }))
            .await
            .map_err(RuntimeError::rpc("list images"))?
            .into_inner()
            .images;
        Ok(images.into_iter().map(|image| image.name).collect())
    }

    /// Deletes image `name` and waits for containerd to collect what only it used (blobs,
    /// unpacked layers).
    pub async fn remove_image(&self, name: &str) -> Result<(), RuntimeError> {
        match self
            .client
            .images()
            .delete(self.request(DeleteImageRequest {
                name: name.to_owned(),
                sync: true,
                target: None,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(RuntimeError::rpc("delete image")(status)),
        }
    }

    async fn put_image(
        &self,
        name: &str,
        target: &oci::Descriptor,
        labels: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let image = Image {
            name: name.to_owned(),
            labels,
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

    /// Whether snapshot `key` exists (an unpacked layer is named by its chain id).
    pub async fn snapshot_exists(&self, key: &str) -> Result<bool, RuntimeError> {
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
