//! Getting a blob from peers before the registry. The node marks the blob wanted, asks its
//! connected peers where they stand ([`BlobState`]), and [`decide`]s: fetch from those that
//! hold it or are downloading it (byte ranges spread over them, written in place, the whole
//! checked against the digest), wait for a peer with a lower address that wants it too and
//! will go to the registry, or go to the registry itself (marked as downloading at once, so
//! peers asking from then on fetch from it). A peer that serves wrong bytes or stalls only
//! sends the node back to the registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use r1_protocol::Address;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::share::{
    BlobRequest, BlobState, PROTOCOL, RANGE_BYTES, Shelf, decode_range, decode_state,
    encode_request,
};

/// Pause after marking a blob wanted and before asking, so nodes starting the same image
/// within it see each other's wants and agree on one of them going to the registry.
const SETTLE: Duration = Duration::from_millis(300);
/// How long a peer may take to say where it stands.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a peer with a lower address that wants the blob to start downloading it.
const WAIT_FOR_PEER: Duration = Duration::from_secs(10);
/// Between two rounds of asking while waiting.
const POLL: Duration = Duration::from_millis(200);
/// Range requests in flight for one blob.
const PARALLEL_RANGES: usize = 8;
/// A fetch that gets no byte for this long gives up (and the node goes to the registry).
const STALL: Duration = Duration::from_secs(30);
/// Most peers asked about one blob.
const MAX_PEERS_ASKED: usize = 32;

/// What to do about a blob, given where the peers stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Fetch it from these peers (holders first).
    Fetch(Vec<Address>),
    /// Wait: a peer with a lower address wants it too and will download it.
    Wait,
    /// Download it from the registry.
    Registry,
}

/// The pure choice: peers that hold the blob or download it are sources; otherwise the lowest
/// address among the nodes that want it goes to the registry and the others wait for it.
pub fn decide(me: Address, peers: &[(Address, BlobState)]) -> Decision {
    let holders = peers
        .iter()
        .filter(|(_, s)| matches!(s, BlobState::Complete { .. }));
    let downloading = peers
        .iter()
        .filter(|(_, s)| matches!(s, BlobState::Downloading { .. }));
    let sources: Vec<Address> = holders.chain(downloading).map(|(a, _)| *a).collect();
    if !sources.is_empty() {
        return Decision::Fetch(sources);
    }
    let lower_wants = peers
        .iter()
        .any(|(a, s)| *s == BlobState::Wanted && *a < me);
    if lower_wants {
        Decision::Wait
    } else {
        Decision::Registry
    }
}

/// Why a fetch from peers did not deliver the blob.
#[derive(Debug, thiserror::Error)]
pub enum PeerFetchError {
    /// No peer gave a range for [`STALL`].
    #[error("peers stalled on {0}")]
    Stalled(String),
    /// Every source refused or failed.
    #[error("no peer could serve {digest}: {reason}")]
    NoSource {
        /// The blob.
        digest: String,
        /// The last failure.
        reason: String,
    },
    /// What the peers sent does not hash to the digest.
    #[error("the bytes peers sent for {0} do not match it")]
    Mismatch(String),
    /// The file could not be written or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How a blob is to be had.
pub enum Outcome {
    /// Fetched from peers into the file, verified.
    Fetched,
    /// Download it from the registry, counting bytes in this counter (which peers see).
    Registry(Arc<AtomicU64>),
}

/// Blobs from peers over the peer-to-peer layer.
#[derive(Clone)]
pub struct PeerBlobs {
    client: r1_p2p::Client,
    shelf: Arc<Shelf>,
    me: Address,
}

impl PeerBlobs {
    /// Fetching over `client` for node `me`, recording wants and downloads in `shelf`.
    pub fn new(client: r1_p2p::Client, shelf: Arc<Shelf>, me: Address) -> Self {
        Self { client, shelf, me }
    }

    /// The shelf this node's downloads are recorded in.
    pub fn shelf(&self) -> &Arc<Shelf> {
        &self.shelf
    }

    /// Gets blob `digest` of `size` bytes into `path` from peers when one holds it or is
    /// getting it (adding bytes to `progress`), else says to go to the registry (at once
    /// when no peer is connected).
    pub async fn fetch(
        &self,
        digest: &str,
        size: u64,
        path: &Path,
        progress: &AtomicU64,
    ) -> Outcome {
        let alone = self
            .client
            .connected_peers()
            .await
            .is_ok_and(|peers| peers.is_empty());
        if alone {
            return Outcome::Registry(self.shelf.downloading(digest, path.to_owned(), size));
        }
        self.shelf.want(digest);
        tokio::time::sleep(SETTLE).await;
        let deadline = tokio::time::Instant::now() + WAIT_FOR_PEER;
        loop {
            let states = self.ask_all(digest).await;
            match decide(self.me, &states) {
                Decision::Fetch(sources) => {
                    let mut added = 0;
                    match self
                        .ranges(digest, size, path, &sources, progress, &mut added)
                        .await
                    {
                        Ok(()) => return Outcome::Fetched,
                        Err(e) => {
                            progress.fetch_sub(added, Ordering::Relaxed);
                            let _ = tokio::fs::remove_file(path).await;
                            tracing::warn!(
                                digest,
                                "fetch from peers failed, going to the registry: {e}"
                            );
                            break;
                        }
                    }
                }
                Decision::Wait if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                Decision::Wait | Decision::Registry => break,
            }
        }
        Outcome::Registry(self.shelf.downloading(digest, path.to_owned(), size))
    }

    async fn ask_all(&self, digest: &str) -> Vec<(Address, BlobState)> {
        let mut peers = self.client.connected_peers().await.unwrap_or_default();
        peers.truncate(MAX_PEERS_ASKED);
        let request = encode_request(&BlobRequest::Ask {
            digest: digest.to_owned(),
        });
        let mut asks = JoinSet::new();
        for peer in peers {
            let client = self.client.clone();
            let request = request.clone();
            asks.spawn(async move {
                let answer =
                    tokio::time::timeout(ASK_TIMEOUT, client.request(peer, PROTOCOL, request))
                        .await;
                let state = match answer {
                    Ok(Ok(bytes)) => decode_state(&bytes),
                    _ => BlobState::Absent,
                };
                (peer, state)
            });
        }
        let mut states = Vec::new();
        while let Some(Ok(answer)) = asks.join_next().await {
            states.push(answer);
        }
        states.sort_by_key(|(peer, _)| *peer);
        states
    }

    /// Fetches every range of the blob from `sources` into `path`, then checks the digest.
    async fn ranges(
        &self,
        digest: &str,
        size: u64,
        path: &Path,
        sources: &[Address],
        progress: &AtomicU64,
        added: &mut u64,
    ) -> Result<(), PeerFetchError> {
        let file = Arc::new(std::fs::File::create(path)?);
        file.set_len(size)?;
        let starts: Vec<u64> = (0..size.div_ceil(RANGE_BYTES))
            .map(|i| i * RANGE_BYTES)
            .collect();
        let mut next = starts.into_iter().enumerate();
        let mut tasks = JoinSet::new();
        loop {
            while tasks.len() < PARALLEL_RANGES {
                let Some((i, offset)) = next.next() else {
                    break;
                };
                let len = RANGE_BYTES.min(size - offset);
                let range = Range {
                    client: self.client.clone(),
                    digest: digest.to_owned(),
                    file: file.clone(),
                    offset,
                    len,
                    sources: sources.to_vec(),
                    first: i,
                };
                tasks.spawn(range.fetch());
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            match done.map_err(std::io::Error::other)? {
                Ok(fetched) => {
                    progress.fetch_add(fetched, Ordering::Relaxed);
                    *added += fetched;
                }
                Err(error) => return Err(error),
            }
        }
        drop(file);
        if sha256_of(path.to_owned()).await? != digest {
            return Err(PeerFetchError::Mismatch(digest.to_owned()));
        }
        Ok(())
    }
}

/// One range of a blob, fetched from the first source that serves it.
struct Range {
    client: r1_p2p::Client,
    digest: String,
    file: Arc<std::fs::File>,
    offset: u64,
    len: u64,
    sources: Vec<Address>,
    first: usize,
}

impl Range {
    /// Fetches the range, writing it in place, turning to the next source when one fails;
    /// returns its length.
    async fn fetch(self) -> Result<u64, PeerFetchError> {
        let mut got = 0;
        let mut turn = self.first;
        let mut last_progress = tokio::time::Instant::now();
        let mut failures = 0;
        while got < self.len {
            let peer = self.sources[turn % self.sources.len()];
            let request = encode_request(&BlobRequest::Range {
                digest: self.digest.clone(),
                offset: self.offset + got,
                len: self.len - got,
            });
            let answer = self.client.request(peer, PROTOCOL, request).await;
            let data = match answer.as_deref().map(decode_range) {
                Ok(Ok(data)) => data.to_vec(),
                Ok(Err(reason)) => {
                    failures += 1;
                    turn += 1;
                    if failures >= self.sources.len() * 2 {
                        return Err(PeerFetchError::NoSource {
                            digest: self.digest,
                            reason,
                        });
                    }
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    turn += 1;
                    if failures >= self.sources.len() * 2 {
                        return Err(PeerFetchError::NoSource {
                            digest: self.digest,
                            reason: e.to_string(),
                        });
                    }
                    continue;
                }
            };
            if data.is_empty() {
                if last_progress.elapsed() > STALL {
                    return Err(PeerFetchError::Stalled(self.digest));
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            let taken = (data.len() as u64).min(self.len - got);
            write_at(self.file.clone(), self.offset + got, data, taken).await?;
            got += taken;
            last_progress = tokio::time::Instant::now();
        }
        Ok(got)
    }
}

async fn write_at(
    file: Arc<std::fs::File>,
    offset: u64,
    mut data: Vec<u8>,
    len: u64,
) -> std::io::Result<()> {
    data.truncate(usize::try_from(len).unwrap_or(0));
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        file.write_all_at(&data, offset)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// `sha256:<hex>` of the file at `path`.
async fn sha256_of(path: PathBuf) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 1 << 20];
        loop {
            match file.read(&mut buffer)? {
                0 => break,
                n => hasher.update(&buffer[..n]),
            }
        }
        Ok(format!(
            "sha256:{}",
            r1_protocol::hex::encode_bare(&hasher.finalize())
        ))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn addr(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    #[test]
    fn holders_and_downloaders_are_sources_holders_first() {
        let peers = [
            (addr(1), BlobState::Downloading { size: 9, have: 1 }),
            (addr(2), BlobState::Wanted),
            (addr(3), BlobState::Complete { size: 9 }),
        ];
        assert_eq!(
            decide(addr(5), &peers),
            Decision::Fetch(vec![addr(3), addr(1)])
        );
    }

    #[test]
    fn the_lowest_wanting_node_goes_to_the_registry_and_the_others_wait() {
        let wanting = [(addr(2), BlobState::Wanted), (addr(7), BlobState::Absent)];
        assert_eq!(decide(addr(1), &wanting), Decision::Registry);
        assert_eq!(decide(addr(3), &wanting), Decision::Wait);
        assert_eq!(decide(addr(3), &[]), Decision::Registry);
    }

    proptest! {
        /// Nodes that all see each other's wants pick exactly one of them for the registry.
        #[test]
        fn nodes_that_see_each_other_pick_one_downloader(
            nodes in proptest::collection::btree_set(any::<u8>(), 1..8)
        ) {
            let nodes: Vec<Address> = nodes.into_iter().map(addr).collect();
            let downloaders = nodes.iter().filter(|me| {
                let peers: Vec<(Address, BlobState)> = nodes
                    .iter()
                    .filter(|p| p != me)
                    .map(|p| (*p, BlobState::Wanted))
                    .collect();
                decide(**me, &peers) == Decision::Registry
            });
            prop_assert_eq!(downloaders.count(), 1);
        }
    }

    #[tokio::test]
    async fn a_file_hashes_to_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_of(path).await.unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
