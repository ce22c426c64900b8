//! Image blobs between nodes, over the peer-to-peer layer (protocol [`PROTOCOL`]): the wire
//! format, the [`Shelf`] of blobs this node is getting, and the [`serve`] loop that answers
//! peers. A blob is offered when containerd holds it (an image this node pulled or imported)
//! or while this node downloads it from a registry, byte ranges as they arrive, so nodes
//! starting the same image together take it from the one that went to the registry. Blobs of
//! images pulled with credentials are never offered.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use r1_p2p::Event;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};

use super::metrics::ImageMetrics;
use crate::runtime::containerd::Containerd;
use crate::runtime::images::PRIVATE_LABEL;

/// The request-response protocol image blobs travel on.
pub const PROTOCOL: &str = "image-blobs";

/// Most bytes one range request asks for (well under the layer's response limit).
pub const RANGE_BYTES: u64 = 1 << 20;

/// Largest request accepted: a digest and two numbers.
const MAX_REQUEST_BYTES: usize = 512;

/// How long a range request waits for a download in progress to reach it.
const PARTIAL_WAIT: Duration = Duration::from_secs(5);

/// Peers' requests answered at once; more wait (and time out at the asker's end).
const CONCURRENT_ANSWERS: usize = 16;

/// What a peer asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum BlobRequest {
    /// Where this node stands with a blob.
    Ask {
        /// `sha256:<hex>`.
        digest: String,
    },
    /// Up to `len` bytes of a blob from `offset`.
    Range {
        /// `sha256:<hex>`.
        digest: String,
        /// First byte.
        offset: u64,
        /// Bytes wanted (at most [`RANGE_BYTES`] are sent).
        len: u64,
    },
}

/// Where a node stands with a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase", deny_unknown_fields)]
pub enum BlobState {
    /// It holds all of it.
    Complete {
        /// Bytes.
        size: u64,
    },
    /// It is downloading it from a registry and has `have` bytes so far.
    Downloading {
        /// Bytes in all.
        size: u64,
        /// Bytes downloaded.
        have: u64,
    },
    /// It needs it too and has not started.
    Wanted,
    /// It neither has nor wants it.
    Absent,
}

/// Encodes a request.
pub fn encode_request(request: &BlobRequest) -> Vec<u8> {
    serde_json::to_vec(request).unwrap_or_default()
}

/// Decodes an answer to [`BlobRequest::Ask`]; anything malformed counts as absent.
pub fn decode_state(bytes: &[u8]) -> BlobState {
    serde_json::from_slice(bytes).unwrap_or(BlobState::Absent)
}

/// Decodes an answer to [`BlobRequest::Range`]: the bytes (possibly fewer than asked, or none
/// yet), or the peer's refusal.
pub fn decode_range(bytes: &[u8]) -> Result<&[u8], String> {
    match bytes.split_first() {
        Some((0, data)) => Ok(data),
        Some((_, reason)) => Err(String::from_utf8_lossy(reason).into_owned()),
        None => Err("empty answer".into()),
    }
}

fn range_answer(result: Result<Vec<u8>, String>) -> Vec<u8> {
    match result {
        Ok(mut data) => {
            data.insert(0, 0);
            data
        }
        Err(reason) => {
            let mut out = vec![1];
            out.extend(reason.into_bytes());
            out
        }
    }
}

/// A blob this node is getting.
#[derive(Debug, Clone)]
enum Shelved {
    Wanted,
    Downloading {
        path: PathBuf,
        size: u64,
        have: Arc<AtomicU64>,
    },
}

/// The blobs this node is getting: wanted (so peers starting the same image can agree on
/// who goes to the registry), or being downloaded from a registry into a file (offered as
/// it arrives).
#[derive(Debug, Default)]
pub struct Shelf {
    entries: Mutex<HashMap<String, Shelved>>,
}

impl Shelf {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Shelved>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that this node needs `digest`.
    pub fn want(&self, digest: &str) {
        self.entries()
            .entry(digest.to_owned())
            .or_insert(Shelved::Wanted);
    }

    /// Records that this node downloads `digest` (`size` bytes) from a registry into `path`;
    /// returns the counter of bytes downloaded the download must keep.
    pub fn downloading(&self, digest: &str, path: PathBuf, size: u64) -> Arc<AtomicU64> {
        let have = Arc::new(AtomicU64::new(0));
        self.entries().insert(
            digest.to_owned(),
            Shelved::Downloading {
                path,
                size,
                have: have.clone(),
            },
        );
        have
    }

    /// Forgets `digest` (stored in containerd, or given up).
    pub fn forget(&self, digest: &str) {
        self.entries().remove(digest);
    }

    fn get(&self, digest: &str) -> Option<Shelved> {
        self.entries().get(digest).cloned()
    }
}

/// Answers peers' blob requests from containerd and the shelf.
#[derive(Clone)]
pub struct BlobServer {
    shelf: Arc<Shelf>,
    containerd: Containerd,
    metrics: Arc<ImageMetrics>,
}

impl BlobServer {
    /// A server offering what `containerd` holds and what `shelf` downloads, counting what
    /// it serves in `metrics`.
    pub fn new(shelf: Arc<Shelf>, containerd: Containerd, metrics: Arc<ImageMetrics>) -> Self {
        Self {
            shelf,
            containerd,
            metrics,
        }
    }

    /// The answer to request `bytes`; `None` for a malformed request (left unanswered).
    pub async fn answer(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return None;
        }
        match serde_json::from_slice(bytes).ok()? {
            BlobRequest::Ask { digest } => serde_json::to_vec(&self.state(&digest).await).ok(),
            BlobRequest::Range {
                digest,
                offset,
                len,
            } => {
                let range = self.range(&digest, offset, len.min(RANGE_BYTES)).await;
                if let Ok(data) = &range {
                    self.metrics.served_bytes.inc_by(data.len() as u64);
                }
                Some(range_answer(range))
            }
        }
    }

    /// Containerd's copy first (unless private), then the shelf.
    async fn state(&self, digest: &str) -> BlobState {
        match self.containerd.blob_info(digest).await {
            Ok(Some((size, labels))) if !labels.contains_key(PRIVATE_LABEL) => {
                return BlobState::Complete { size };
            }
            Ok(Some(_)) => return BlobState::Absent,
            Ok(None) => {}
            Err(e) => tracing::debug!(digest, "content info for a peer: {e}"),
        }
        match self.shelf.get(digest) {
            Some(Shelved::Wanted) => BlobState::Wanted,
            Some(Shelved::Downloading { size, have, .. }) => BlobState::Downloading {
                size,
                have: have.load(Ordering::Relaxed),
            },
            None => BlobState::Absent,
        }
    }

    async fn range(&self, digest: &str, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        match self.state(digest).await {
            BlobState::Complete { size } if offset < size => self
                .containerd
                .read_blob_range(digest, offset, len.min(size - offset))
                .await
                .map_err(|e| e.to_string()),
            BlobState::Complete { .. } => Ok(Vec::new()),
            BlobState::Downloading { .. } => self.partial(digest, offset, len).await,
            BlobState::Wanted | BlobState::Absent => Err(format!("{digest} is not here")),
        }
    }

    /// Bytes of a download in progress, waiting up to [`PARTIAL_WAIT`] for the first of them.
    async fn partial(&self, digest: &str, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        let deadline = tokio::time::Instant::now() + PARTIAL_WAIT;
        loop {
            let Some(Shelved::Downloading { path, size, have }) = self.shelf.get(digest) else {
                return Err(format!("the download of {digest} ended"));
            };
            let have = have.load(Ordering::Relaxed).min(size);
            if offset < have {
                let len = len.min(have - offset);
                return read_at(path, offset, len).await.map_err(|e| e.to_string());
            }
            if offset >= size || tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Up to `len` bytes of the file at `path` from `offset` (fewer when not written yet).
async fn read_at(path: PathBuf, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)?;
        let mut data = vec![0; usize::try_from(len).unwrap_or(0)];
        let mut filled = 0;
        while filled < data.len() {
            match file.read_at(&mut data[filled..], offset + filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        data.truncate(filled);
        Ok(data)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Takes the image-blob requests of the peer-to-peer layer, at most [`CONCURRENT_ANSWERS`]
/// at a time.
pub async fn serve(mut events: mpsc::Receiver<Event>, server: BlobServer) {
    let answering = Arc::new(Semaphore::new(CONCURRENT_ANSWERS));
    while let Some(event) = events.recv().await {
        let Event::Request {
            from, bytes, reply, ..
        } = event
        else {
            continue;
        };
        let Ok(permit) = answering.clone().acquire_owned().await else {
            return;
        };
        let server = server.clone();
        tokio::spawn(async move {
            match server.answer(&bytes).await {
                Some(answer) => {
                    let _ = reply.send(answer);
                }
                None => tracing::debug!(%from, "malformed image-blob request; not answered"),
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn requests_and_states_keep_their_shape_on_the_wire() {
        let request = BlobRequest::Range {
            digest: DIGEST.into(),
            offset: 5,
            len: 7,
        };
        let bytes = encode_request(&request);
        assert_eq!(
            serde_json::from_slice::<BlobRequest>(&bytes).unwrap(),
            request
        );
        assert!(bytes.len() < MAX_REQUEST_BYTES);
        let state = BlobState::Downloading { size: 9, have: 3 };
        assert_eq!(decode_state(&serde_json::to_vec(&state).unwrap()), state);
        assert_eq!(decode_state(b"{\"state\":\"stolen\"}"), BlobState::Absent);
    }

    #[test]
    fn range_answers_carry_bytes_or_a_reason() {
        assert_eq!(
            decode_range(&range_answer(Ok(vec![7, 8]))),
            Ok(&[7u8, 8][..])
        );
        assert_eq!(decode_range(&range_answer(Ok(Vec::new()))), Ok(&[][..]));
        assert_eq!(
            decode_range(&range_answer(Err("gone".into()))),
            Err("gone".to_owned())
        );
        assert!(decode_range(&[]).is_err());
    }

    #[test]
    fn the_shelf_tracks_wants_and_downloads() {
        let shelf = Shelf::default();
        shelf.want(DIGEST);
        assert!(matches!(shelf.get(DIGEST), Some(Shelved::Wanted)));
        let have = shelf.downloading(DIGEST, PathBuf::from("/x"), 10);
        have.store(4, Ordering::Relaxed);
        assert!(matches!(
            shelf.get(DIGEST),
            Some(Shelved::Downloading { size: 10, ref have, .. }) if have.load(Ordering::Relaxed) == 4
        ));
        shelf.want(DIGEST);
        assert!(
            matches!(shelf.get(DIGEST), Some(Shelved::Downloading { .. })),
            "a want does not undo a download"
        );
        shelf.forget(DIGEST);
        assert!(shelf.get(DIGEST).is_none());
    }

    #[tokio::test]
    async fn a_partial_download_is_served_as_far_as_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"abcdef").unwrap();
        let data = read_at(path.clone(), 2, 10).await.unwrap();
        assert_eq!(data, b"cdef");
        assert!(read_at(path, 9, 3).await.unwrap().is_empty());
    }
}
