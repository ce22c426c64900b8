//! The durable resource store: every applied resource, its bookkeeping and its status, in
//! RocksDB with synced writes, so an acknowledged apply survives a crash.
//!
//! Keys: `obj/<Kind>/<namespace>/<name>` holds a [`StoredObject`] as JSON, `ns/<namespace>` the
//! CSP address that owns the namespace, `meta/resourceVersion` the store-wide write counter.
//! Names and namespaces are DNS labels, so `/` never occurs inside them.
//!
//! Writers take one lock, so a read-check-write sequence (an apply, a status update with a
//! resource version precondition) sees no other writer. Readers never block.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use alloy_primitives::{Address, keccak256};
use r1_crds::api::object::{ObjectKey, StoredObject};
use r1_crds::manifest::{Kind, Manifest};
use r1_crds::validate::ResourceIndex;
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::Serialize;
use tokio::sync::watch;

use decoded::Decoded;

/// Prefix of object keys.
const OBJECT_PREFIX: &str = "obj/";
/// Prefix of namespace ownership keys.
const NAMESPACE_PREFIX: &str = "ns/";
/// Key of the last resource version handed out.
const RESOURCE_VERSION_KEY: &[u8] = b"meta/resourceVersion";

/// A raw key and value read from RocksDB.
type RawEntry = (Box<[u8]>, Box<[u8]>);

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed (disk full, corruption, a second process holding the lock).
    #[error("resource store: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored value cannot be read back.
    #[error("resource store: value under {key} is unreadable: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value cannot be encoded.
    #[error("resource store: cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Underlying error.
        source: serde_json::Error,
    },
    /// No such object.
    #[error("{0} not found")]
    NotFound(ObjectKey),
    /// The object changed since the caller read it.
    #[error("{key} is at resource version {actual}, not {expected}")]
    Conflict {
        /// The object.
        key: ObjectKey,
        /// The version the caller based its write on.
        expected: u64,
        /// The version stored.
        actual: u64,
    },
    /// Finalizing a deletion nobody asked for.
    #[error("{0} is not marked for deletion")]
    NotMarkedForDeletion(ObjectKey),
}

/// The resource store of one oracle.
#[derive(Debug)]
pub struct ResourceStore {
    db: DB,
    writes: Mutex<()>,
    changes: watch::Sender<u64>,
    decoded: Decoded,
}

impl ResourceStore {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path)?;
        let version = match db.get(RESOURCE_VERSION_KEY)? {
            None => 0,
            Some(bytes) => decode_version(&bytes).ok_or_else(|| StoreError::Corrupt {
                key: "meta/resourceVersion".into(),
                reason: "not an 8-byte counter".into(),
            })?,
        };
        Ok(Self {
            db,
            writes: Mutex::new(()),
            changes: watch::Sender::new(version),
            decoded: Decoded::default(),
        })
    }

    /// The resource version of the last committed write (0 for an empty store).
    pub fn resource_version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// A receiver that sees the resource version change after every committed write, so a
    /// reconcile loop can sleep until something changed and then re-list.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The object under `key`, if any.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>, StoreError> {
        let raw = object_key(key);
        match self.db.get(&raw)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(Arc::unwrap_or_clone(
                self.decoded.decode(&raw, &bytes)?,
            ))),
        }
    }

    /// Objects of `kind`, in one namespace or all, ordered by namespace and name: shared with
    /// the store's decodings, so a listing copies no object (change one by cloning it).
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<Vec<Arc<StoredObject>>, StoreError> {
        let prefix = match namespace {
            Some(ns) => format!("{OBJECT_PREFIX}{}/{ns}/", kind.as_str()),
            None => format!("{OBJECT_PREFIX}{}/", kind.as_str()),
        };
        self.scan(prefix.as_bytes())?
            .into_iter()
            .map(|(key, value)| self.decoded.decode(&key, &value))
            .collect()
    }

    /// Objects of every kind in one namespace or all, in [`Kind::ALL`] order.
    pub fn list_all(&self, namespace: Option<&str>) -> Result<Vec<Arc<StoredObject>>, StoreError> {
        let mut all = Vec::new();
        for kind in Kind::ALL {
            all.extend(self.list(kind, namespace)?);
        }
        Ok(all)
    }

    /// The CSP address that owns `namespace`, once anything was applied in it.
    pub fn namespace_owner(&self, namespace: &str) -> Result<Option<Address>, StoreError> {
        let key = format!("{NAMESPACE_PREFIX}{namespace}");
        match self.db.get(key.as_bytes())? {
            None => Ok(None),
            Some(bytes) => <[u8; 20]>::try_from(bytes.as_slice())
                .map(|b| Some(Address::from(b)))
                .map_err(|_| StoreError::Corrupt {
                    key,
                    reason: "not a 20-byte address".into(),
                }),
        }
    }

    /// How many objects (of every kind, being deleted or not) `namespace` holds, without
    /// decoding them: what a quota counts.
    pub fn count_objects(&self, namespace: &str) -> Result<usize, StoreError> {
        let mut count = 0;
        for kind in Kind::ALL {
            let prefix = format!("{OBJECT_PREFIX}{}/{namespace}/", kind.as_str());
            for item in self.db.prefix_iterator(prefix.as_bytes()) {
                let (key, _) = item?;
                if !key.starts_with(prefix.as_bytes()) {
                    break;
                }
                count += 1;
            }
        }
        Ok(count)
    }

    /// Every namespace with its owner.
    pub fn namespaces(&self) -> Result<Vec<(String, Address)>, StoreError> {
        self.scan(NAMESPACE_PREFIX.as_bytes())?
            .into_iter()
            .map(|(key, value)| {
                let name = String::from_utf8_lossy(&key[NAMESPACE_PREFIX.len()..]).into_owned();
                <[u8; 20]>::try_from(&value[..])
                    .map(|b| (name, Address::from(b)))
                    .map_err(|_| StoreError::Corrupt {
                        key: String::from_utf8_lossy(&key).into_owned(),
                        reason: "not a 20-byte address".into(),
                    })
            })
            .collect()
    }

    /// Replaces the status of the object under `key`. With `expected_version`, refuses when the
    /// object was written since (someone else's newer view must not be overwritten). Spec,
    /// metadata and generation stay as they are; the resource version advances.
    pub fn update_status<S: Serialize>(
        &self,
        key: &ObjectKey,
        expected_version: Option<u64>,
        status: &S,
    ) -> Result<StoredObject, StoreError> {
        let status = serde_json::to_value(status).map_err(|source| StoreError::Encode {
            what: format!("status of {key}"),
            source,
        })?;
        let mut tx = self.begin();
        let mut object = tx
            .get(key)?
            .ok_or_else(|| StoreError::NotFound(key.clone()))?;
        check_version(key, &object, expected_version)?;
        object.status = status;
        let object = tx.put(object)?;
        tx.commit()?;
        Ok(object)
    }

    /// Removes an object whose deletion was requested, once the reconciler has cleaned up
    /// after it (closed its job on chain, stopped its workloads) — or found nothing to clean
    /// up. Refuses objects nobody asked to delete.
    pub fn finalize_delete(
        &self,
        key: &ObjectKey,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin();
        let object = tx
            .get(key)?
            .ok_or_else(|| StoreError::NotFound(key.clone()))?;
        check_version(key, &object, expected_version)?;
        if !object.metadata.deletion_requested {
            return Err(StoreError::NotMarkedForDeletion(key.clone()));
        }
        tx.remove(key);
        tx.commit()?;
        Ok(())
    }

    /// A snapshot of the live (not being deleted) objects among `keys`, for resolving the
    /// references of manifests being validated. Only the objects named are read: loading whole
    /// namespaces made each apply cost as much as the CSP's objects (22 ms a request at 600).
    pub fn index(
        &self,
        keys: impl IntoIterator<Item = ObjectKey>,
    ) -> Result<StoreIndex, StoreError> {
        let mut index = StoreIndex::default();
        for key in keys {
            let Some(object) = self.get(&key)? else {
                continue;
            };
            if object.metadata.deletion_requested {
                continue;
            }
            match object.to_manifest() {
                Ok(manifest) => {
                    index.by_key.insert(key, manifest);
                }
                Err(errors) => tracing::warn!(
                    object = %key,
                    ?errors,
                    "stored object no longer parses; ignored for reference checks"
                ),
            }
        }
        Ok(index)
    }

    /// Starts a write: holds the writer lock until committed or dropped.
    pub fn begin(&self) -> Transaction<'_> {
        // The lock guards no data, only the order of writers: a poisoned lock is still usable.
        let guard = self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Transaction {
            store: self,
            _guard: guard,
            batch: WriteBatch::default(),
            version: self.resource_version(),
            dirty: false,
        }
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<RawEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key, value));
        }
        Ok(out)
    }
}

fn check_version(
    key: &ObjectKey,
    object: &StoredObject,
    expected: Option<u64>,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != object.metadata.resource_version => {
            Err(StoreError::Conflict {
                key: key.clone(),
                expected,
                actual: object.metadata.resource_version,
            })
        }
        _ => Ok(()),
    }
}

/// One all-or-nothing write: changes collect in a RocksDB write batch and land together, synced,
/// on [`Transaction::commit`]. Reads see the committed state, not the staged changes.
pub struct Transaction<'s> {
    store: &'s ResourceStore,
    _guard: MutexGuard<'s, ()>,
    batch: WriteBatch,
    version: u64,
    dirty: bool,
}

impl Transaction<'_> {
    /// The committed object under `key`.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>, StoreError> {
        self.store.get(key)
    }

    /// The committed owner of `namespace`.
    pub fn namespace_owner(&self, namespace: &str) -> Result<Option<Address>, StoreError> {
        self.store.namespace_owner(namespace)
    }

    /// A fresh uid for a new object under `key`: unique because resource versions never repeat
    /// in one store and the time differs between stores.
    pub fn new_uid(&self, key: &ObjectKey) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = format!("{key}\n{}\n{nanos}", self.version + 1);
        let hash = keccak256(seed.as_bytes());
        let h = r1_protocol::hex::encode(&hash[..16]);
        let h = &h[2..];
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Stages `object`, giving it the next resource version; returns it as it will be stored.
    pub fn put(&mut self, mut object: StoredObject) -> Result<StoredObject, StoreError> {
        self.version += 1;
        object.metadata.resource_version = self.version;
        let key = object_key(&object.key());
        let bytes = serde_json::to_vec(&object).map_err(|source| StoreError::Encode {
            what: object.key().to_string(),
            source,
        })?;
        self.batch.put(key, bytes);
        self.dirty = true;
        Ok(object)
    }

    /// Stages the removal of the object under `key`.
    pub fn remove(&mut self, key: &ObjectKey) {
        self.version += 1;
        let raw = object_key(key);
        self.store.decoded.forget(&raw);
        self.batch.delete(raw);
        self.dirty = true;
    }

    /// Stages `owner` as the owner of `namespace`.
    pub fn claim_namespace(&mut self, namespace: &str, owner: Address) {
        self.batch
            .put(format!("{NAMESPACE_PREFIX}{namespace}"), owner.as_slice());
        self.dirty = true;
    }

    /// Writes everything staged in one synced batch and wakes the watchers; returns the store's
    /// resource version afterwards. A transaction with nothing staged writes nothing.
    pub fn commit(mut self) -> Result<u64, StoreError> {
        if !self.dirty {
            return Ok(self.version);
        }
        self.batch
            .put(RESOURCE_VERSION_KEY, self.version.to_be_bytes());
        let mut options = WriteOptions::default();
        options.set_sync(true);
        let batch = std::mem::take(&mut self.batch);
        self.store.db.write_opt(batch, &options)?;
        self.store.changes.send_replace(self.version);
        Ok(self.version)
    }
}

/// Live objects of some namespaces, loaded for reference checks. (`ResourceIndex` hands out
/// references, so validation reads a snapshot rather than the store itself.)
#[derive(Debug, Default)]
pub struct StoreIndex {
    by_key: HashMap<ObjectKey, Manifest>,
}

impl ResourceIndex for StoreIndex {
    fn lookup(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Manifest> {
        self.by_key.get(&ObjectKey::new(kind, namespace, name))
    }
}

fn object_key(key: &ObjectKey) -> Vec<u8> {
    format!(
        "{OBJECT_PREFIX}{}/{}/{}",
        key.kind.as_str(),
        key.namespace,
        key.name
    )
    .into_bytes()
}

fn decode_object(key: &[u8], bytes: &[u8]) -> Result<StoredObject, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn decode_version(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

mod decoded;
#[cfg(test)]
mod tests;
