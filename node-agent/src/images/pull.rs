//! One image pull: resolve the reference to a manifest for this node's platform, download the
//! config and layers into a staging directory (each checked against its digest and size as it
//! arrives), and store the image in containerd. Nothing gets a name in containerd until every
//! blob is verified, so a pull that fails leaves no half-imported image.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use r1_registry::{Client, Credentials, ImageName, RegistryError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::from_peers::{Outcome, PeerBlobs};
use super::gc::{ImageGc, MakeRoomError, QuotaShort};
use super::metrics::ImageMetrics;
use crate::oci::{self, OciError};
use crate::runtime::containerd::{Containerd, RuntimeError};
use crate::runtime::images::{BlobSource, ImageParts};

/// Layers of one image downloaded at the same time.
const PARALLEL_LAYERS: usize = 3;

/// Largest image config accepted (real ones are a few KiB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry refused, lacked or corrupted something.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The image's documents are malformed or not for this node.
    #[error("{0}")]
    Image(#[from] OciError),
    /// containerd refused the image.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The image does not fit under the node's image quota.
    #[error(transparent)]
    Quota(QuotaShort),
    /// The staging directory cannot be used.
    #[error("staging directory {path}: {source}")]
    Staging {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// How far a pull is: bytes expected (0 until the manifest is read) and a counter of bytes
/// downloaded per blob.
#[derive(Debug, Default)]
pub struct Progress {
    total: AtomicU64,
    blobs: Mutex<Vec<Arc<AtomicU64>>>,
}

impl Progress {
    /// Counts the bytes of one more blob in `counter`.
    fn track(&self, counter: Arc<AtomicU64>) {
        self.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(counter);
    }

    /// A new counter for one more blob.
    fn counter(&self) -> Arc<AtomicU64> {
        let counter = Arc::new(AtomicU64::new(0));
        self.track(counter.clone());
        counter
    }

    /// Downloaded share, 0-100.
    pub fn percent(&self) -> u8 {
        let total = self.total.load(Ordering::Relaxed);
        let done: u64 = self
            .blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        let done = done.min(total);
        u8::try_from(done.saturating_mul(100).checked_div(total).unwrap_or(0)).unwrap_or(100)
    }
}

/// What a pull needs: the registry client, containerd, and a directory for downloads.
#[derive(Clone)]
pub struct Pull {
    /// Registry client.
    pub registry: Client,
    /// Where the image goes.
    pub containerd: Containerd,
    /// Downloads in flight (removed when the pull ends).
    pub staging: PathBuf,
    /// Progress the supervisor reports.
    pub progress: Arc<Progress>,
    /// Peers asked for blobs before the registry; `None` when the node does not share.
    pub peers: Option<PeerBlobs>,
    /// The image quota, checked (and room made) before anything is downloaded.
    pub gc: Arc<ImageGc>,
    /// Where downloaded bytes are counted.
    pub metrics: Arc<ImageMetrics>,
}

impl Pull {
    /// Pulls `reference` (with `credentials` when the job gave some) and stores it in
    /// containerd under its [`super::stored_name`]. Returns the digest of the manifest stored.
    pub async fn run(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, PullError> {
        let name = ImageName::parse(reference)?;
        let top = self
            .registry
            .manifest(&name, name.reference(), credentials)
            .await?;
        let manifest = if oci::INDEX_TYPES.contains(&top.media_type.as_str()) {
            let index = oci::parse_index(&top.bytes)?;
            let entry = oci::select_manifest(&index, &oci::host_platform())?;
            let digest = entry.digest.clone();
            self.registry.manifest(&name, &digest, credentials).await?
        } else {
            top
        };
        if !oci::MANIFEST_TYPES.contains(&manifest.media_type.as_str()) {
            return Err(OciError::MediaType(manifest.media_type).into());
        }
        let parsed = oci::parse_manifest(&manifest.bytes)?;
        let blobs = || std::iter::once(&parsed.config).chain(&parsed.layers);
        let size = |d: &oci::Descriptor| u64::try_from(d.size).unwrap_or(0);
        self.progress
            .total
            .store(blobs().map(size).sum(), Ordering::Relaxed);
        let mut need = 0;
        for blob in blobs() {
            if !self.containerd.has_blob(&blob.digest).await? {
                need += size(blob);
            }
        }
        self.gc
            .make_room(need, r1_protocol::now_ms())
            .await
            .map_err(|e| match e {
                MakeRoomError::Short(short) => PullError::Quota(short),
                MakeRoomError::Runtime(e) => PullError::Runtime(e),
            })?;
        // One directory per stored name: the same image pulled with and without credentials
        // at once downloads into two places.
        let stored = super::stored_name(reference, credentials);
        let scope = oci::digest_of(stored.as_bytes());
        let staging = self.staging.join(scope.replace(':', "-"));
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|source| PullError::Staging {
                path: staging.clone(),
                source,
            })?;
        let fetch = Fetch {
            pull: self.clone(),
            name,
            credentials: credentials.cloned(),
            staging: staging.clone(),
        };
        let result = fetch.fetch_and_store(&stored, &manifest, &parsed).await;
        if let Some(peers) = &self.peers {
            for blob in std::iter::once(&parsed.config).chain(&parsed.layers) {
                peers.shelf().forget(&blob.digest);
            }
        }
        let _ = tokio::fs::remove_dir_all(&staging).await;
        result.map(|()| manifest.digest)
    }
}

/// One image's downloads: where from, with what credentials, into which directory.
#[derive(Clone)]
struct Fetch {
    pull: Pull,
    name: ImageName,
    credentials: Option<Credentials>,
    staging: PathBuf,
}

impl Fetch {
    async fn fetch_and_store(
        &self,
        name: &str,
        manifest: &r1_registry::Manifest,
        parsed: &oci::Manifest,
    ) -> Result<(), PullError> {
        let config = &parsed.config;
        if u64::try_from(config.size).unwrap_or(u64::MAX) > MAX_CONFIG_BYTES {
            return Err(OciError::Parse {
                what: "image config",
                reason: format!(
                    "{} bytes is over the {MAX_CONFIG_BYTES}-byte limit",
                    config.size
                ),
            }
            .into());
        }
        let config_path = self.download(config.clone()).await?;
        let config_bytes =
            tokio::fs::read(&config_path)
                .await
                .map_err(|source| PullError::Staging {
                    path: config_path.clone(),
                    source,
                })?;
        oci::parse_config(&config_bytes, parsed)?;
        let layers = self.layers(&parsed.layers).await?;
        let target = oci::Descriptor {
            media_type: manifest.media_type.clone(),
            digest: manifest.digest.clone(),
            size: i64::try_from(manifest.bytes.len()).unwrap_or(i64::MAX),
            platform: None,
            annotations: BTreeMap::new(),
        };
        self.pull
            .containerd
            .store_image(ImageParts {
                name,
                target: &target,
                manifest_bytes: &manifest.bytes,
                config_bytes: &config_bytes,
                layers,
                private: self.credentials.is_some(),
                pulled: true,
            })
            .await?;
        Ok(())
    }

    /// Every layer containerd lacks, downloaded [`PARALLEL_LAYERS`] at a time; by digest.
    async fn layers(
        &self,
        layers: &[oci::Descriptor],
    ) -> Result<BTreeMap<String, BlobSource<'static>>, PullError> {
        let slots = Arc::new(Semaphore::new(PARALLEL_LAYERS));
        let mut tasks = JoinSet::new();
        for layer in layers.iter().cloned() {
            let fetch = self.clone();
            let slots = slots.clone();
            tasks.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let digest = layer.digest.clone();
                if fetch.pull.containerd.has_blob(&digest).await? {
                    let size = u64::try_from(layer.size).unwrap_or(0);
                    fetch.pull.progress.counter().store(size, Ordering::Relaxed);
                    return Ok((digest, BlobSource::Stored));
                }
                let path = fetch.download(layer).await?;
                Ok::<_, PullError>((digest, BlobSource::File(path)))
            });
        }
        let mut fetched = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            let (digest, source) = done.map_err(|e| PullError::Staging {
                path: self.staging.clone(),
                source: std::io::Error::other(e),
            })??;
            fetched.insert(digest, source);
        }
        Ok(fetched)
    }

    /// Gets one blob into the staging directory, verified: from peers when one holds it or is
    /// getting it (public images only), else from the registry. Returns its path.
    async fn download(&self, blob: oci::Descriptor) -> Result<PathBuf, PullError> {
        let path = self.staging.join(blob.digest.replace(':', "-"));
        let size = u64::try_from(blob.size).map_err(|_| OciError::Parse {
            what: "image manifest",
            reason: format!("blob {} has a negative size", blob.digest),
        })?;
        let counter = match self.peers() {
            Some(peers) => {
                let fetched = self.pull.progress.counter();
                match peers.fetch(&blob.digest, size, &path, &fetched).await {
                    Outcome::Fetched => {
                        self.pull.metrics.downloaded("peers", size);
                        return Ok(path);
                    }
                    Outcome::Registry(have) => {
                        fetched.store(0, Ordering::Relaxed);
                        self.pull.progress.track(have.clone());
                        have
                    }
                }
            }
            None => self.pull.progress.counter(),
        };
        self.pull
            .registry
            .blob_to_file(
                &self.name,
                &blob.digest,
                size,
                self.credentials.as_ref(),
                &path,
                &counter,
            )
            .await?;
        self.pull.metrics.downloaded("registry", size);
        Ok(path)
    }

    /// The peers to ask, unless the node does not share or the image is private.
    fn peers(&self) -> Option<&PeerBlobs> {
        self.pull
            .peers
            .as_ref()
            .filter(|_| self.credentials.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_a_bounded_percentage_over_every_blob() {
        let progress = Progress::default();
        assert_eq!(progress.percent(), 0, "nothing known yet");
        progress.total.store(200, Ordering::Relaxed);
        progress.counter().store(30, Ordering::Relaxed);
        let shared = Arc::new(AtomicU64::new(20));
        progress.track(shared.clone());
        assert_eq!(progress.percent(), 25);
        shared.store(500, Ordering::Relaxed);
        assert_eq!(progress.percent(), 100, "never over 100");
    }
}
