//! The node's blocks on disk: one file per block, named by its digest, and a RocksDB index of
//! block sizes, reference counts and pins.
//!
//! A block is written (temporary file, rename) before the index names it. Neither is synced
//! block by block: a pin first syncs the file system the store lives on (one `syncfs`), then
//! writes the pin synchronously, so everything a pin holds is on disk before the pin is. A
//! crash can leave unpinned blocks half-written or files the index does not know; the
//! [`BlockStore::collect_garbage`] a node runs at start removes both (nothing is leased then).
//! A pin counts one reference on every distinct block its DAG reaches; garbage collection
//! deletes the blocks no pin references and no import in progress holds ([`Lease`]).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rocksdb::{DB, IteratorMode, Options, WriteBatch, WriteOptions};

use super::walk::{WalkError, reachable};
use crate::unixfs::{BlockSink, Cid, verify};

const BLOCK_PREFIX: u8 = b'b';
const PIN_PREFIX: u8 = b'p';

/// Why the block store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bytes do not hash to the CID they came with.
    #[error("block {0} does not match its CID")]
    Corrupt(Cid),
    /// Storing the block would go over the node's R1FS quota.
    #[error("R1FS quota of {quota} bytes reached ({used} used, {wanted} more wanted)")]
    Quota {
        /// The quota.
        quota: u64,
        /// Bytes stored.
        used: u64,
        /// Bytes the refused write needed.
        wanted: u64,
    },
    /// A DAG to pin is not wholly here, or not sound.
    #[error("cannot pin {root}: {reason}")]
    Incomplete {
        /// The root asked for.
        root: Cid,
        /// What is wrong below it.
        reason: String,
    },
    /// The root is not pinned.
    #[error("{0} is not pinned")]
    NotPinned(Cid),
    /// The index.
    #[error("block index: {0}")]
    Index(#[from] rocksdb::Error),
    /// The block files.
    #[error("block files: {0}")]
    Io(#[from] io::Error),
    /// An index entry this store did not write.
    #[error("block index entry {0} is malformed")]
    Malformed(String),
}

/// How full the store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Blocks stored.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Roots pinned.
    pub pins: u64,
    /// The quota, bytes.
    pub quota: u64,
}

/// What one garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blocks deleted.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A pin: a root kept with everything below it, and who it is kept for (a job's tag, or
/// `local` for the node's own adds), so quotas and access rules can apply per owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The root.
    pub root: Cid,
    /// Who pinned it.
    pub owner: String,
}

/// The block store of one node.
pub struct BlockStore {
    dir: PathBuf,
    index: DB,
    quota: u64,
    state: Mutex<State>,
    leases: Arc<Mutex<HashMap<[u8; 32], usize>>>,
}

/// Sizes and counts, guarded together so quota checks and writes do not race.
struct State {
    bytes: u64,
    blocks: u64,
}

/// One index entry of a block: its size and how many pins reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    size: u64,
    refs: u64,
}

impl Entry {
    fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..].copy_from_slice(&self.refs.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let size = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let refs = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
        Some(Self { size, refs })
    }
}

fn block_key(digest: &[u8; 32]) -> [u8; 33] {
    let mut key = [BLOCK_PREFIX; 33];
    key[1..].copy_from_slice(digest);
    key
}

fn pin_key(root: &Cid) -> Vec<u8> {
    let mut key = vec![PIN_PREFIX];
    root.write_bytes(&mut key);
    key
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

impl BlockStore {
    /// Opens (or creates) the store in `dir`, holding at most `quota` bytes of blocks.
    pub fn open(dir: impl AsRef<Path>, quota: u64) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(dir.join("blocks"))?;
        let mut options = Options::default();
        options.create_if_missing(true);
        let index = DB::open(&options, dir.join("index"))?;
        let mut state = State {
            bytes: 0,
            blocks: 0,
        };
        for item in index.prefix_iterator([BLOCK_PREFIX]) {
            let (key, value) = item?;
            if key.first() != Some(&BLOCK_PREFIX) {
                break;
            }
            let entry = Entry::decode(&value).ok_or_else(|| StoreError::Malformed(hex(&key)))?;
            state.bytes += entry.size;
            state.blocks += 1;
        }
        Ok(Self {
            dir,
            index,
            quota,
            state: Mutex::new(state),
            leases: Arc::default(),
        })
    }

    fn path(&self, digest: &[u8; 32]) -> PathBuf {
        self.dir
            .join("blocks")
            .join(hex(&digest[..1]))
            .join(hex(digest))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, digest: &[u8; 32]) -> Result<Option<Entry>, StoreError> {
        match self.index.get_pinned(block_key(digest))? {
            None => Ok(None),
            Some(bytes) => Entry::decode(&bytes)
                .map(Some)
                .ok_or_else(|| StoreError::Malformed(hex(digest))),
        }
    }

    /// Stores a block after checking it against its CID; a block already here costs nothing.
    pub fn put(&self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        if !verify(cid, data) {
            return Err(StoreError::Corrupt(*cid));
        }
        self.store_hashed(cid, data)
    }

    /// Stores a block whose CID its caller computed from these very bytes (the importer) or
    /// just checked them against (a fetch), so they are not hashed a second time.
    fn store_hashed(&self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        let digest = cid.digest();
        let mut state = self.state();
        if self.entry(digest)?.is_some() {
            return Ok(());
        }
        let size = data.len() as u64;
        if state.bytes + size > self.quota {
            return Err(StoreError::Quota {
                quota: self.quota,
                used: state.bytes,
                wanted: size,
            });
        }
        let path = self.path(digest);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let temporary = path.with_extension("partial");
        let mut file = fs::File::create(&temporary)?;
        file.write_all(data)?;
        fs::rename(&temporary, &path)?;
        self.index
            .put(block_key(digest), Entry { size, refs: 0 }.encode())?;
        state.bytes += size;
        state.blocks += 1;
        Ok(())
    }

    /// The block's bytes, checked against its CID; `None` when it is not here.
    pub fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        if self.entry(cid.digest())?.is_none() {
            return Ok(None);
        }
        let data = match fs::read(self.path(cid.digest())) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !verify(cid, &data) {
            return Err(StoreError::Corrupt(*cid));
        }
        Ok(Some(data))
    }

    /// Whether the block is here.
    pub fn has(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.entry(cid.digest())?.is_some())
    }

    /// Pins `root` for `owner`: every block below it must be here and sound. Pinning a pinned
    /// root again changes nothing (the first owner stays).
    pub fn pin(&self, root: &Cid, owner: &str) -> Result<(), StoreError> {
        let _state = self.state();
        if self.index.get_pinned(pin_key(root))?.is_some() {
            return Ok(());
        }
        let blocks = self.reachable(root)?;
        let mut batch = WriteBatch::default();
        for digest in blocks {
            let mut entry = self
                .entry(&digest)?
                .ok_or_else(|| StoreError::Malformed(hex(&digest)))?;
            entry.refs += 1;
            batch.put(block_key(&digest), entry.encode());
        }
        batch.put(pin_key(root), owner.as_bytes());
        self.sync_blocks()?;
        self.index.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Puts every block file written so far on disk (one `syncfs` of the store's file system).
    fn sync_blocks(&self) -> Result<(), StoreError> {
        let dir = fs::File::open(self.dir.join("blocks"))?;
        nix::unistd::syncfs(&dir).map_err(io::Error::from)?;
        Ok(())
    }

    /// Unpins `root`; its blocks stay until garbage collection finds nothing else holds them.
    pub fn unpin(&self, root: &Cid) -> Result<(), StoreError> {
        let _state = self.state();
        if self.index.get_pinned(pin_key(root))?.is_none() {
            return Err(StoreError::NotPinned(*root));
        }
        let blocks = self.reachable(root)?;
        let mut batch = WriteBatch::default();
        for digest in blocks {
            let mut entry = self
                .entry(&digest)?
                .ok_or_else(|| StoreError::Malformed(hex(&digest)))?;
            entry.refs = entry.refs.saturating_sub(1);
            batch.put(block_key(&digest), entry.encode());
        }
        batch.delete(pin_key(root));
        self.index.write_opt(batch, &synced())?;
        Ok(())
    }

    fn reachable(&self, root: &Cid) -> Result<BTreeSet<[u8; 32]>, StoreError> {
        let found = reachable(*root, |cid| self.get(cid)).map_err(|e| match e {
            WalkError::Source(e) => e,
            other => StoreError::Incomplete {
                root: *root,
                reason: other.to_string(),
            },
        })?;
        Ok(found.iter().map(|cid| *cid.digest()).collect())
    }

    /// Who pinned `root`, when it is pinned.
    pub fn pinned(&self, root: &Cid) -> Result<Option<String>, StoreError> {
        Ok(self
            .index
            .get_pinned(pin_key(root))?
            .map(|owner| String::from_utf8_lossy(&owner).into_owned()))
    }

    /// Every pin, by root.
    pub fn pins(&self) -> Result<Vec<Pin>, StoreError> {
        let mut pins = Vec::new();
        for item in self.index.prefix_iterator([PIN_PREFIX]) {
            let (key, value) = item?;
            if key.first() != Some(&PIN_PREFIX) {
                break;
            }
            let root = Cid::from_bytes(&key[1..]).map_err(|_| StoreError::Malformed(hex(&key)))?;
            pins.push(Pin {
                root,
                owner: String::from_utf8_lossy(&value).into_owned(),
            });
        }
        Ok(pins)
    }

    /// How full the store is.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let pins = self.pins()?.len() as u64;
        let state = self.state();
        Ok(Usage {
            blocks: state.blocks,
            bytes: state.bytes,
            pins,
            quota: self.quota,
        })
    }

    /// A lease for an import: blocks put through it survive garbage collection until it is
    /// dropped, so a root can be pinned once the import has finished.
    pub fn lease(&self) -> Lease<'_> {
        Lease {
            store: self,
            held: BTreeSet::new(),
        }
    }

    /// Deletes every block no pin references and no lease holds, and block files the index
    /// does not name (left by a crash between writing a file and indexing it).
    pub fn collect_garbage(&self) -> Result<Collected, StoreError> {
        let mut state = self.state();
        let leased: BTreeSet<[u8; 32]> = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        let mut collected = Collected::default();
        let mut known = BTreeSet::new();
        let mut batch = WriteBatch::default();
        let mut doomed = Vec::new();
        for item in self.index.iterator(IteratorMode::From(
            &[BLOCK_PREFIX],
            rocksdb::Direction::Forward,
        )) {
            let (key, value) = item?;
            if key.first() != Some(&BLOCK_PREFIX) {
                break;
            }
            let digest: [u8; 32] = key[1..]
                .try_into()
                .map_err(|_| StoreError::Malformed(hex(&key)))?;
            let entry = Entry::decode(&value).ok_or_else(|| StoreError::Malformed(hex(&key)))?;
            known.insert(hex(&digest));
            if entry.refs == 0 && !leased.contains(&digest) {
                batch.delete(&key);
                doomed.push((digest, entry.size));
            }
        }
        self.index.write_opt(batch, &synced())?;
        for (digest, size) in doomed {
            remove_if_present(&self.path(&digest))?;
            collected.blocks += 1;
            collected.bytes += size;
            state.bytes -= size;
            state.blocks -= 1;
        }
        for shard in fs::read_dir(self.dir.join("blocks"))? {
            for file in fs::read_dir(shard?.path())? {
                let path = file?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if !known.contains(name) {
                    remove_if_present(&path)?;
                }
            }
        }
        Ok(collected)
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Blocks an import in progress holds against garbage collection (see [`BlockStore::lease`]);
/// a [`BlockSink`], so the importer writes through it.
pub struct Lease<'a> {
    store: &'a BlockStore,
    held: BTreeSet<[u8; 32]>,
}

impl Lease<'_> {
    /// Stores a block and holds it for this lease. The caller vouches that `data` hashes to
    /// `cid` (the importer made the CID from it; a fetch checked it), so it is not hashed
    /// again; reads still check every block.
    pub fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        self.hold(cid);
        self.store.store_hashed(cid, data)
    }

    /// Holds a block already in the store (one a resumed fetch does not fetch again).
    pub fn hold(&mut self, cid: &Cid) {
        let digest = *cid.digest();
        if self.held.insert(digest) {
            *self
                .store
                .leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(digest)
                .or_default() += 1;
        }
    }
}

impl BlockSink for Lease<'_> {
    type Error = StoreError;

    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        Lease::put(self, cid, data)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut leases = self.store.leases.lock().unwrap_or_else(|e| e.into_inner());
        for digest in &self.held {
            if let Some(count) = leases.get_mut(digest) {
                *count -= 1;
                if *count == 0 {
                    leases.remove(digest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
