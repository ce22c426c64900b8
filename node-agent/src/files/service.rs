//! The node's R1FS service: adds files into the block store and pins them for an owner, makes
//! a root local by fetching it from the peers that have it, and reads files and directories
//! back. The local gRPC API, the workload API and the peer-to-peer answers all go through it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r1_protocol::Address;
use r1_r1fs::blocks::{BlockStore, StoreError, Usage};
use r1_r1fs::crypt::{CryptError, Decryptor, Encryptor, Key};
use r1_r1fs::exchange::{self, FetchError, Fetched, Peers, wire};
use r1_r1fs::unixfs::reader::Entry;
use r1_r1fs::unixfs::{Added, Cid, CidVersion, Importer, ReadError, Reader, Stat, verify};
use tokio::sync::mpsc;

use super::metrics::FilesMetrics;
use super::net::Net;

/// Blocks in flight per provider during a fetch.
const FETCH_WINDOW: usize = 8;

/// How long a provider that sent wrong bytes is left out of fetches.
const PENALTY: Duration = Duration::from_secs(600);

/// Largest answer this node sends to one block request.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// File chunks buffered between the reading thread and a slow reader of `cat`.
const CAT_BUFFER: usize = 8;

/// How often a `cat` that is ahead of its fetch looks for the next block.
const ARRIVAL_POLL: Duration = Duration::from_millis(2);

/// The owner of what the node's operator adds (`r1ctl fs add`).
pub const LOCAL_OWNER: &str = "local";

/// Why an R1FS call failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The text is not a CID.
    #[error("{text:?} is not a CID: {reason}")]
    BadCid {
        /// What was given.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A path the node may not add from.
    #[error("{path}: {reason}")]
    PathRefused {
        /// The path asked for.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The root is neither here nor on any connected peer.
    #[error("{0} is not on this node and no connected peer has it")]
    Unavailable(Cid),
    /// Importing failed (unreadable input, a refused block, a truncated upload).
    #[error("add failed: {0}")]
    Import(#[from] r1_r1fs::unixfs::Error),
    /// The block store refused or failed (quota, disk).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fetch from peers failed.
    #[error("fetch failed: {0}")]
    Fetch(#[from] FetchError),
    /// Reading the DAG failed.
    #[error(transparent)]
    Read(#[from] ReadError<StoreError>),
    /// Encrypting or decrypting failed (a bad key, altered or truncated ciphertext).
    #[error("encryption: {0}")]
    Crypt(#[from] CryptError),
    /// The call is owned by another workload.
    #[error("{root} is pinned by {owner}; only it may unpin it")]
    NotOwner {
        /// The root.
        root: Cid,
        /// Its owner.
        owner: String,
    },
    /// The blocking task running the call died.
    #[error("R1FS task failed: {0}")]
    Task(String),
}

/// Parses a CID given as text.
pub fn parse_cid(text: &str) -> Result<Cid, FilesError> {
    text.trim()
        .parse()
        .map_err(|e: r1_r1fs::unixfs::CidError| FilesError::BadCid {
            text: text.chars().take(120).collect(),
            reason: e.to_string(),
        })
}

/// Parses a content key given as hex; empty means none.
pub fn parse_key(text: &str) -> Result<Option<Key>, FilesError> {
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(Key::from_hex(text.trim())?))
}

/// The R1FS service of one node; clones share it.
#[derive(Clone)]
pub struct Files {
    store: Arc<BlockStore>,
    net: Net,
    metrics: Arc<FilesMetrics>,
    add_dirs: Arc<Vec<PathBuf>>,
    penalised: Arc<Mutex<HashMap<Address, Instant>>>,
}

impl Files {
    /// The service over `store`, fetching through `net`, adding by path only below `add_dirs`
    /// (those that do not exist are left out, with a warning), counting in `metrics`.
    pub fn new(
        store: Arc<BlockStore>,
        net: Net,
        add_dirs: &[PathBuf],
        metrics: Arc<FilesMetrics>,
    ) -> Self {
        let add_dirs = add_dirs
            .iter()
            .filter_map(|dir| match dir.canonicalize() {
                Ok(dir) => Some(dir),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "r1fs.addDirs entry left out: {e}");
                    None
                }
            })
            .collect();
        let files = Self {
            store,
            net,
            metrics,
            add_dirs: Arc::new(add_dirs),
            penalised: Arc::default(),
        };
        files.refresh_usage();
        files
    }

    /// Sets the store gauges from the store.
    fn refresh_usage(&self) {
        match self.store.usage() {
            Ok(usage) => self.metrics.set_usage(&usage),
            Err(e) => tracing::warn!("R1FS usage: {e}"),
        }
    }

    /// Counts an add and refreshes the store gauges.
    fn added(&self, added: Result<AddedFile, FilesError>) -> Result<AddedFile, FilesError> {
        let outcome = if added.is_ok() { "ok" } else { "failed" };
        FilesMetrics::count(&self.metrics.adds, outcome);
        self.refresh_usage();
        added
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &FilesMetrics {
        &self.metrics
    }

    /// Adds the file or directory at `path` (which must lie in one of the add directories)
    /// and pins it for `owner`; with `encrypt`, a file's content is encrypted under a fresh
    /// key first (directories are refused).
    pub async fn add_path(
        &self,
        path: &Path,
        version: CidVersion,
        owner: &str,
        encrypt: bool,
    ) -> Result<AddedFile, FilesError> {
        let real = self.allowed(path)?;
        if encrypt && real.is_dir() {
            return Err(FilesError::PathRefused {
                path: path.to_path_buf(),
                reason: "only a file can be added encrypted, not a directory".into(),
            });
        }
        let files = self.clone();
        let owner = owner.to_owned();
        let added = blocking(move || {
            if real.is_dir() {
                let added = swept_on_failure(&files.store, || {
                    let mut lease = files.store.lease();
                    let added = Importer::new(version).add_dir(&real, &mut lease)?;
                    files.store.pin(&added.cid, &owner)?;
                    Ok(added)
                })?;
                Ok(AddedFile { added, key: None })
            } else {
                let file = std::fs::File::open(&real).map_err(|e| FilesError::PathRefused {
                    path: real.clone(),
                    reason: e.to_string(),
                })?;
                files.add_unrecorded(file, version, &owner, encrypt)
            }
        })
        .await;
        self.added(added)
    }

    /// Adds the bytes `reader` gives and pins them for `owner`, encrypted under a fresh key
    /// with `encrypt`, on the calling thread (call it where blocking is allowed). A reader that
    /// fails (a truncated upload) leaves nothing pinned; its blocks are collected at once.
    pub fn add_reader_blocking(
        &self,
        reader: impl Read,
        version: CidVersion,
        owner: &str,
        encrypt: bool,
    ) -> Result<AddedFile, FilesError> {
        let added = self.add_unrecorded(reader, version, owner, encrypt);
        self.added(added)
    }

    fn add_unrecorded(
        &self,
        reader: impl Read,
        version: CidVersion,
        owner: &str,
        encrypt: bool,
    ) -> Result<AddedFile, FilesError> {
        let key = if encrypt {
            Some(Key::generate()?)
        } else {
            None
        };
        let added = swept_on_failure(&self.store, || {
            let mut lease = self.store.lease();
            let importer = Importer::new(version);
            let added = match &key {
                Some(key) => importer.add_reader(Encryptor::new(reader, key)?, &mut lease)?,
                None => importer.add_reader(reader, &mut lease)?,
            };
            self.store.pin(&added.cid, owner)?;
            Ok(added)
        })?;
        Ok(AddedFile { added, key })
    }

    fn allowed(&self, path: &Path) -> Result<PathBuf, FilesError> {
        let refused = |reason: String| FilesError::PathRefused {
            path: path.to_path_buf(),
            reason,
        };
        if self.add_dirs.is_empty() {
            return Err(refused(
                "this node adds nothing by path (r1fs.addDirs is empty)".into(),
            ));
        }
        let real = path.canonicalize().map_err(|e| refused(e.to_string()))?;
        if self.add_dirs.iter().any(|dir| real.starts_with(dir)) {
            Ok(real)
        } else {
            let dirs: Vec<String> = self
                .add_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            Err(refused(format!(
                "outside the directories this node adds from ({})",
                dirs.join(", ")
            )))
        }
    }

    /// Makes `root` and everything below it local and pinned (for `owner` when it was not
    /// pinned yet), fetching what is missing from the connected peers that have the root.
    /// `None` when it was pinned already.
    pub async fn pin(&self, root: Cid, owner: &str) -> Result<Option<Fetched>, FilesError> {
        if self.store.pinned(&root)?.is_some() {
            return Ok(None);
        }
        let providers = self.providers(root).await;
        self.fetch(root, owner, providers).await.map(Some)
    }

    /// Fetches the DAG under `root` from `providers` in parallel and pins it for `owner`.
    async fn fetch(
        &self,
        root: Cid,
        owner: &str,
        providers: Vec<Address>,
    ) -> Result<Fetched, FilesError> {
        let fetched = exchange::fetch(
            &self.store,
            &self.net,
            root,
            providers.clone(),
            FETCH_WINDOW,
            owner,
        )
        .await;
        self.refresh_usage();
        let outcome = if fetched.is_ok() { "ok" } else { "failed" };
        FilesMetrics::count(&self.metrics.fetches, outcome);
        let fetched = fetched.map_err(|e| match e {
            FetchError::Stuck(_) if providers.is_empty() => FilesError::Unavailable(root),
            other => FilesError::Fetch(other),
        })?;
        let received: usize = fetched.from.values().sum();
        self.metrics.blocks_fetched.inc_by(received as u64);
        self.metrics
            .providers_penalised
            .inc_by(fetched.penalised.len() as u64);
        if !fetched.penalised.is_empty() {
            let mut penalised = self.penalised.lock().unwrap_or_else(|e| e.into_inner());
            for peer in &fetched.penalised {
                penalised.insert(*peer, Instant::now());
            }
        }
        tracing::info!(%root, from = ?fetched.from, held = fetched.held, "fetched");
        Ok(fetched)
    }

    /// Connected peers that hold `root`, less the ones recently penalised.
    async fn providers(&self, root: Cid) -> Vec<Address> {
        let found = self.net.providers(root).await;
        let mut penalised = self.penalised.lock().unwrap_or_else(|e| e.into_inner());
        penalised.retain(|_, since| since.elapsed() < PENALTY);
        found
            .into_iter()
            .filter(|peer| !penalised.contains_key(peer))
            .collect()
    }

    /// Unpins `root`, when `owner` pinned it (the node's operator, [`LOCAL_OWNER`], may unpin
    /// anything). Its blocks go at the next garbage collection.
    pub async fn unpin(&self, root: Cid, owner: &str) -> Result<(), FilesError> {
        let store = self.store.clone();
        let owner = owner.to_owned();
        let unpinned = blocking(move || {
            let pinned = store.pinned(&root)?.ok_or(StoreError::NotPinned(root))?;
            if owner != LOCAL_OWNER && pinned != owner {
                return Err(FilesError::NotOwner {
                    root,
                    owner: pinned,
                });
            }
            store.unpin(&root)?;
            let collected = store.collect_garbage()?;
            tracing::info!(%root, blocks = collected.blocks, bytes = collected.bytes, "unpinned");
            Ok(())
        })
        .await;
        self.refresh_usage();
        unpinned
    }

    /// What `root` is; its block is asked from peers when it is not here.
    pub async fn stat(&self, root: Cid) -> Result<Stat, FilesError> {
        let through = self.read_through(root).await?;
        blocking(move || Ok(Reader::new(|cid: &Cid| through.get(cid)).stat(&root)?)).await
    }

    /// The entries of the directory `root`; its blocks (the root, and a sharded directory's
    /// shards) are asked from peers when they are not here.
    pub async fn ls(&self, root: Cid) -> Result<Vec<Entry>, FilesError> {
        let through = self.read_through(root).await?;
        blocking(move || Ok(Reader::new(|cid: &Cid| through.get(cid)).ls(&root)?)).await
    }

    /// A block source for reading a few blocks of `root`: the store, else the peers that hold
    /// the root (found only when the root is not here).
    async fn read_through(&self, root: Cid) -> Result<ReadThrough, FilesError> {
        let providers = if self.store.has(&root)? {
            Vec::new()
        } else {
            let providers = self.providers(root).await;
            if providers.is_empty() {
                return Err(FilesError::Unavailable(root));
            }
            providers
        };
        Ok(ReadThrough {
            store: self.store.clone(),
            net: self.net.clone(),
            providers,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The bytes of the file `root`, chunk by chunk; a read error ends the stream with that
    /// error. A file not pinned here is fetched from its providers in parallel and pinned for
    /// `owner` while its first chunks are already streamed, in order, as they arrive.
    pub async fn cat(
        &self,
        root: Cid,
        owner: &str,
        key: Option<Key>,
    ) -> Result<mpsc::Receiver<Result<Vec<u8>, FilesError>>, FilesError> {
        let fetching = if self.store.pinned(&root)?.is_some() {
            None
        } else {
            let providers = self.providers(root).await;
            if providers.is_empty() && !self.store.has(&root)? {
                return Err(FilesError::Unavailable(root));
            }
            let outcome: FetchOutcome = Arc::default();
            let (files, done, owner) = (self.clone(), outcome.clone(), owner.to_owned());
            tokio::spawn(async move {
                let fetched = files.fetch(root, &owner, providers).await;
                let result = fetched.map(|_| ()).map_err(|e| e.to_string());
                *done.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            });
            Some(outcome)
        };
        let store = self.store.clone();
        let (tx, rx) = mpsc::channel(CAT_BUFFER);
        tokio::task::spawn_blocking(move || {
            let source = |cid: &Cid| arriving(&store, cid, root, fetching.as_deref());
            let mut reader = Reader::new(source);
            let chunks = reader
                .cat(root)
                .map(|chunk| chunk.map_err(FilesError::from));
            let streamed = match key {
                None => send_all(chunks, &tx),
                Some(key) => decrypt_to(chunks, &key, &tx),
            };
            if let Err(error) = streamed {
                let _ = tx.blocking_send(Err(error));
            }
        });
        Ok(rx)
    }

    /// Who pinned `root`, when it is pinned.
    pub fn owner(&self, root: Cid) -> Result<Option<String>, FilesError> {
        Ok(self.store.pinned(&root)?)
    }

    /// How full the store is.
    pub fn usage(&self) -> Result<Usage, FilesError> {
        Ok(self.store.usage()?)
    }

    /// The answer to a peer's block request.
    pub async fn answer(&self, request: Vec<u8>) -> Option<Vec<u8>> {
        let store = self.store.clone();
        let answer = tokio::task::spawn_blocking(move || {
            exchange::answer(&store, &request, MAX_ANSWER_BYTES).ok()
        })
        .await
        .ok()
        .flatten();
        if answer.is_some() {
            self.metrics.requests_answered.inc();
        }
        answer
    }
}

/// What an add made: the root, and the key its content was encrypted under, if it was.
#[derive(Debug)]
pub struct AddedFile {
    /// The root and its size.
    pub added: Added,
    /// The content's key, for an encrypted add.
    pub key: Option<Key>,
}

/// Runs an add; when it fails, collects the blocks it wrote (nothing pins them once its lease
/// is gone), so a failed add leaves nothing behind.
fn swept_on_failure(
    store: &BlockStore,
    add: impl FnOnce() -> Result<Added, FilesError>,
) -> Result<Added, FilesError> {
    let added = add();
    if added.is_err() {
        match store.collect_garbage() {
            Ok(swept) => tracing::debug!(blocks = swept.blocks, "failed add swept"),
            Err(e) => tracing::warn!("sweeping a failed add: {e}"),
        }
    }
    added
}

/// Sends `chunks` to a `cat`'s reader until one fails (that error is returned, to be sent
/// last) or the reader goes away.
fn send_all(
    chunks: impl Iterator<Item = Result<Vec<u8>, FilesError>>,
    tx: &mpsc::Sender<Result<Vec<u8>, FilesError>>,
) -> Result<(), FilesError> {
    for chunk in chunks {
        if tx.blocking_send(Ok(chunk?)).is_err() {
            break;
        }
    }
    Ok(())
}

/// The sending end of a `cat` as a writer (for the decryptor): a reader gone is `BrokenPipe`.
struct Sender<'a>(&'a mpsc::Sender<Result<Vec<u8>, FilesError>>);

impl std::io::Write for Sender<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decrypts `chunks` under `key` into `tx`: nothing of a segment goes out before its tag is
/// checked, and a missing end or an altered byte ends the stream with the error.
fn decrypt_to(
    chunks: impl Iterator<Item = Result<Vec<u8>, FilesError>>,
    key: &Key,
    tx: &mpsc::Sender<Result<Vec<u8>, FilesError>>,
) -> Result<(), FilesError> {
    use std::io::Write;
    let mut decryptor = Decryptor::new(Sender(tx), key);
    for chunk in chunks {
        decryptor.write_all(&chunk?).map_err(CryptError::from)?;
    }
    decryptor.finish()?;
    Ok(())
}

/// How a background fetch ended: `None` while it runs.
type FetchOutcome = Arc<Mutex<Option<Result<(), String>>>>;

/// A block of `root` from the store, waiting while a fetch in progress may still bring it.
fn arriving(
    store: &BlockStore,
    cid: &Cid,
    root: Cid,
    fetching: Option<&Mutex<Option<Result<(), String>>>>,
) -> Result<Option<Vec<u8>>, StoreError> {
    loop {
        if let Some(bytes) = store.get(cid)? {
            return Ok(Some(bytes));
        }
        let Some(fetching) = fetching else {
            return Ok(None);
        };
        match &*fetching.lock().unwrap_or_else(|e| e.into_inner()) {
            None => {}
            Some(Ok(())) => return Ok(None),
            Some(Err(reason)) => {
                return Err(StoreError::Incomplete {
                    root,
                    reason: reason.clone(),
                });
            }
        }
        std::thread::sleep(ARRIVAL_POLL);
    }
}

/// Blocks for a short read (stat, ls): the store's, else one request to each provider in turn
/// until one sends the block; fetched blocks are stored unpinned (garbage collection takes
/// them unless a pin comes to hold them).
struct ReadThrough {
    store: Arc<BlockStore>,
    net: Net,
    providers: Vec<Address>,
    runtime: tokio::runtime::Handle,
}

impl ReadThrough {
    /// Called on a blocking thread.
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(bytes) = self.store.get(cid)? {
            return Ok(Some(bytes));
        }
        for provider in &self.providers {
            let request = wire::encode_request(&[*cid]);
            let Ok(answer) = self.runtime.block_on(self.net.request(*provider, request)) else {
                continue;
            };
            let found = wire::decode_answer(&answer).unwrap_or_default();
            if let Some((_, bytes)) = found
                .into_iter()
                .find(|(got, bytes)| got == cid && verify(cid, bytes))
            {
                self.store.put(cid, &bytes)?;
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }
}

/// Runs `call` on the blocking pool.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, FilesError> + Send + 'static,
) -> Result<T, FilesError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| FilesError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests;
