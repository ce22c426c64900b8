//! The oracle's own durable memory (RocksDB, synced writes), beside the resource store:
//!
//! * `placements`: which node this oracle told to run which replica, and since when, so the
//!   start grace survives a restart and a replica is not placed twice;
//! * `votes`: the consensus rounds this oracle has voted in, so a restart never votes twice;
//! * `relayed`: per object, the CSP timestamp and hash of the newest signed request that
//!   touched it (a few dozen bytes: the replay guard every door and every oracle shares);
//! * `requests`: each such request, stored once by its hash however many objects it touched,
//!   re-sent to the other oracles (anti-entropy) and dropped once no object names it;
//! * `rollouts`: where each job's rollout stands and the generations it names (see
//!   [`crate::decide::job_rollout`]), so a restart carries a rollout or rollback on;
//! * `availability`: the availability table this oracle voted for, by epoch, until its pages
//!   are all recorded, so a restart between the vote and the last page records the rest.

use std::collections::BTreeMap;
use std::path::Path;

use alloy_primitives::{Address, B256};
use r1_protocol::messages::RelayedRequest;
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::decide::job_pass::Placement;
use crate::decide::job_rollout::JobRollout;

const PLACEMENTS: &str = "placements";
const VOTES: &str = "votes";
const RELAYED: &str = "relayed";
const REQUESTS: &str = "requests";
const ROLLOUTS: &str = "rollouts";
const AVAILABILITY: &str = "availability";
/// Bytes of one stored availability row: the node's address, then its byte.
const AVAILABILITY_ROW: usize = 21;

/// A failure of the oracle's state database.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB failed.
    #[error("oracle state database: {0}")]
    Db(#[from] rocksdb::Error),
    /// A record cannot be read.
    #[error("oracle state record {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// The newest signed request that touched an object: its CSP timestamp and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMark {
    /// The CSP's timestamp (unix ms).
    pub timestamp_ms: u64,
    /// The request's hash (see [`request_hash`]).
    pub request: B256,
}

/// A stored request with its timestamp, for re-sending oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedRecord {
    /// The CSP's timestamp (unix ms).
    pub timestamp_ms: u64,
    /// The request.
    pub request: RelayedRequest,
}

/// The version of a record in `relayed` before requests were stored once.
#[derive(Deserialize)]
struct LegacyRecord {
    timestamp_ms: u64,
    request: RelayedRequest,
}

/// Names a request by everything the CSP signed, so two copies of it are one. Hashed in one
/// call of `keccak256` over the length-prefixed parts: the incremental hasher is inlined into
/// this crate and runs unoptimised in the dev profile, 30 times slower (365 µs a request).
pub fn request_hash(request: &RelayedRequest) -> B256 {
    let parts = [
        &request.method,
        &request.path,
        &request.address,
        &request.timestamp,
        &request.signature,
        &request.body,
    ];
    let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bytes.extend_from_slice(part.as_bytes());
    }
    alloy_primitives::keccak256(&bytes)
}

/// The state database.
#[derive(Debug)]
pub struct OracleState {
    db: DB,
}

impl OracleState {
    /// Opens (creating if needed) the database in directory `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = [PLACEMENTS, VOTES, RELAYED, REQUESTS, ROLLOUTS, AVAILABILITY]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let state = Self {
            db: DB::open_cf_descriptors(&options, path, families)?,
        };
        state.migrate_relayed()?;
        Ok(state)
    }

    /// Rewrites records of `relayed` that still hold a whole request into a mark plus the
    /// request stored once.
    fn migrate_relayed(&self) -> Result<(), StateError> {
        let cf = self.family(RELAYED)?;
        let mut legacy = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            if let Ok(record) = serde_json::from_slice::<LegacyRecord>(&value) {
                legacy.push((String::from_utf8_lossy(&key).into_owned(), record));
            }
        }
        for (object, record) in legacy {
            self.record_request(&record.request, record.timestamp_ms, &[object])?;
        }
        Ok(())
    }

    fn synced() -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        options
    }

    fn family(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StateError> {
        self.db.cf_handle(name).ok_or_else(|| StateError::Corrupt {
            key: name.into(),
            reason: "column family missing".into(),
        })
    }

    /// Records that `placement.replica` of `placement.job` was placed on `placement.node`
    /// (keeps the first time when it already was).
    pub fn place(&self, placement: &Placement) -> Result<(), StateError> {
        let cf = self.family(PLACEMENTS)?;
        let key = placement_key(placement.job, placement.replica, &placement.node);
        if self.db.get_cf(cf, &key)?.is_none() {
            self.db
                .put_cf_opt(cf, &key, placement.since_ms.to_be_bytes(), &Self::synced())?;
        }
        Ok(())
    }

    /// Records `placement` with its own time even when the replica was placed there before,
    /// so the start grace runs again (a replica a rollback starts again on its node).
    pub fn replace(&self, placement: &Placement) -> Result<(), StateError> {
        let cf = self.family(PLACEMENTS)?;
        let key = placement_key(placement.job, placement.replica, &placement.node);
        self.db
            .put_cf_opt(cf, key, placement.since_ms.to_be_bytes(), &Self::synced())?;
        Ok(())
    }

    /// Forgets that `replica` of `job` was placed on `node`.
    pub fn unplace(&self, job: u64, replica: u32, node: &Address) -> Result<(), StateError> {
        let cf = self.family(PLACEMENTS)?;
        self.db
            .delete_cf_opt(cf, placement_key(job, replica, node), &Self::synced())?;
        Ok(())
    }

    /// Every placement of `job`.
    pub fn placements(&self, job: u64) -> Result<Vec<Placement>, StateError> {
        let cf = self.family(PLACEMENTS)?;
        let prefix = format!("{job:020}/");
        let mut found = Vec::new();
        let iter = self.db.iterator_cf(
            cf,
            IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if !key.starts_with(&prefix) {
                break;
            }
            found.push(parse_placement(&key, &value)?);
        }
        Ok(found)
    }

    /// Whether this oracle already voted under `round_key` (e.g. `nodeset/7/3`).
    pub fn voted(&self, round_key: &str) -> Result<bool, StateError> {
        Ok(self.db.get_cf(self.family(VOTES)?, round_key)?.is_some())
    }

    /// Records that the chain answered this oracle's vote under `round_key`, so it is not sent
    /// again.
    pub fn record_vote(&self, round_key: &str, proposal: &str) -> Result<(), StateError> {
        self.db.put_cf_opt(
            self.family(VOTES)?,
            round_key,
            proposal.as_bytes(),
            &Self::synced(),
        )?;
        Ok(())
    }

    /// The mark of the newest request recorded for `object` (e.g. `DeeployJob/ns/name`).
    pub fn mark(&self, object: &str) -> Result<Option<RequestMark>, StateError> {
        match self.db.get_cf(self.family(RELAYED)?, object)? {
            None => Ok(None),
            Some(bytes) => decode(object, &bytes).map(Some),
        }
    }

    /// Records `request`, signed at `timestamp_ms`, as the newest for each of `objects`, and
    /// stores the request itself once, in one synced batch.
    pub fn record_request(
        &self,
        request: &RelayedRequest,
        timestamp_ms: u64,
        objects: &[String],
    ) -> Result<(), StateError> {
        let hash = request_hash(request);
        let mark = RequestMark {
            timestamp_ms,
            request: hash,
        };
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(
            self.family(REQUESTS)?,
            hash,
            encode(&hash.to_string(), request)?,
        );
        for object in objects {
            batch.put_cf(self.family(RELAYED)?, object, encode(object, &mark)?);
        }
        self.db.write_opt(batch, &Self::synced())?;
        Ok(())
    }

    /// Whether the request named `hash` (see [`request_hash`]) is stored: accepted here once,
    /// and not yet outdated for every object it touched.
    pub fn holds_request(&self, hash: &B256) -> Result<bool, StateError> {
        Ok(self
            .db
            .get_pinned_cf(self.family(REQUESTS)?, hash)?
            .is_some())
    }

    /// Every request some object still names, oldest first; requests no object names any
    /// more (every object they touched has a newer one) are deleted.
    pub fn current_requests(&self) -> Result<Vec<RelayedRecord>, StateError> {
        let mut named: std::collections::BTreeMap<B256, u64> = std::collections::BTreeMap::new();
        for item in self
            .db
            .iterator_cf(self.family(RELAYED)?, IteratorMode::Start)
        {
            let (key, value) = item?;
            let mark: RequestMark = decode(&String::from_utf8_lossy(&key), &value)?;
            named.insert(mark.request, mark.timestamp_ms);
        }
        let requests = self.family(REQUESTS)?;
        let mut records = Vec::with_capacity(named.len());
        let mut unnamed = Vec::new();
        for item in self.db.iterator_cf(requests, IteratorMode::Start) {
            let (key, value) = item?;
            let hash = B256::try_from(key.as_ref()).map_err(|_| StateError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "not a 32-byte hash".into(),
            })?;
            match named.get(&hash) {
                Some(&timestamp_ms) => records.push(RelayedRecord {
                    timestamp_ms,
                    request: decode(&hash.to_string(), &value)?,
                }),
                None => unnamed.push(hash),
            }
        }
        for hash in unnamed {
            self.db.delete_cf(requests, hash)?;
        }
        records.sort_by_key(|r| r.timestamp_ms);
        Ok(records)
    }

    /// The rollout record of on-chain job `job`, if this oracle has one.
    pub fn rollout(&self, job: u64) -> Result<Option<JobRollout>, StateError> {
        let key = format!("{job:020}");
        match self.db.get_cf(self.family(ROLLOUTS)?, &key)? {
            None => Ok(None),
            Some(bytes) => decode(&key, &bytes).map(Some),
        }
    }

    /// Records the rollout of on-chain job `job`.
    pub fn record_rollout(&self, job: u64, rollout: &JobRollout) -> Result<(), StateError> {
        let key = format!("{job:020}");
        let bytes = encode(&key, rollout)?;
        self.db
            .put_cf_opt(self.family(ROLLOUTS)?, key, bytes, &Self::synced())?;
        Ok(())
    }

    /// Keeps the availability table this oracle voted for in `epoch`, so its pages are still
    /// recorded after a restart (21 bytes a row: 210 kB at 10,000 nodes).
    pub fn record_availability_table(
        &self,
        epoch: u64,
        rows: &[(Address, u8)],
    ) -> Result<(), StateError> {
        let mut bytes = Vec::with_capacity(rows.len() * AVAILABILITY_ROW);
        for (node, byte) in rows {
            bytes.extend_from_slice(node.as_slice());
            bytes.push(*byte);
        }
        self.db.put_cf_opt(
            self.family(AVAILABILITY)?,
            epoch.to_be_bytes(),
            bytes,
            &Self::synced(),
        )?;
        Ok(())
    }

    /// Every availability table kept by [`OracleState::record_availability_table`], by epoch.
    pub fn availability_tables(&self) -> Result<BTreeMap<u64, Vec<(Address, u8)>>, StateError> {
        let mut tables = BTreeMap::new();
        for item in self
            .db
            .iterator_cf(self.family(AVAILABILITY)?, IteratorMode::Start)
        {
            let (key, value) = item?;
            let corrupt = |reason: &str| StateError::Corrupt {
                key: format!("availability/{}", alloy_primitives::hex::encode(&key)),
                reason: reason.into(),
            };
            let epoch = <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("not an epoch"))?;
            if value.len() % AVAILABILITY_ROW != 0 {
                return Err(corrupt("not whole rows"));
            }
            let rows = value
                .chunks_exact(AVAILABILITY_ROW)
                .map(|row| (Address::from_slice(&row[..20]), row[20]))
                .collect();
            tables.insert(epoch, rows);
        }
        Ok(tables)
    }

    /// Forgets the availability table kept for `epoch` (all its pages are recorded, or it is
    /// too old to matter).
    pub fn forget_availability_table(&self, epoch: u64) -> Result<(), StateError> {
        self.db.delete_cf_opt(
            self.family(AVAILABILITY)?,
            epoch.to_be_bytes(),
            &Self::synced(),
        )?;
        Ok(())
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|e| StateError::Corrupt {
        key: key.into(),
        reason: e.to_string(),
    })
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        key: key.into(),
        reason: e.to_string(),
    })
}

fn placement_key(job: u64, replica: u32, node: &Address) -> String {
    format!("{job:020}/{replica:010}/{node:#x}")
}

fn parse_placement(key: &str, value: &[u8]) -> Result<Placement, StateError> {
    let corrupt = |reason: &str| StateError::Corrupt {
        key: key.into(),
        reason: reason.into(),
    };
    let mut parts = key.split('/');
    let job = parts.next().and_then(|p| p.parse().ok());
    let replica = parts.next().and_then(|p| p.parse().ok());
    let node = parts.next().and_then(|p| p.parse().ok());
    let (Some(job), Some(replica), Some(node)) = (job, replica, node) else {
        return Err(corrupt("not job/replica/node"));
    };
    let since: [u8; 8] = value
        .try_into()
        .map_err(|_| corrupt("not an 8-byte time"))?;
    Ok(Placement {
        job,
        replica,
        node,
        since_ms: u64::from_be_bytes(since),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;
    use crate::decide::workload::fixtures::template;

    /// How requests were hashed before (one incremental hasher), which stored keys hold.
    fn request_hash_incremental(request: &RelayedRequest) -> B256 {
        let mut hasher = alloy_primitives::Keccak256::new();
        for part in [
            &request.method,
            &request.path,
            &request.address,
            &request.timestamp,
            &request.signature,
            &request.body,
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize()
    }

    #[test]
    fn availability_tables_survive_a_reopen_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let table: Vec<(Address, u8)> = (1..=300u16)
            .map(|i| {
                (
                    Address::left_padding_from(&i.to_be_bytes()),
                    (i % 256) as u8,
                )
            })
            .collect();
        {
            let state = OracleState::open(dir.path()).unwrap();
            state.record_availability_table(7, &table).unwrap();
            state.record_availability_table(8, &table[..1]).unwrap();
        }
        let state = OracleState::open(dir.path()).unwrap();
        let kept = state.availability_tables().unwrap();
        assert_eq!(kept.keys().copied().collect::<Vec<_>>(), [7, 8]);
        assert_eq!(kept[&7], table);
        assert_eq!(kept[&8], table[..1]);
        state.forget_availability_table(7).unwrap();
        assert_eq!(
            state
                .availability_tables()
                .unwrap()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [8]
        );
    }

    #[test]
    fn requests_hash_as_they_did_when_stored() {
        let request = RelayedRequest {
            method: "POST".into(),
            path: "/v1/apply".into(),
            address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
            timestamp: "1000".into(),
            signature: "0xabcd".into(),
            body: "kind: DeeployProject\n".repeat(100),
        };
        assert_eq!(request_hash(&request), request_hash_incremental(&request));
        let moved = RelayedRequest {
            path: "/v1/applyk".into(),
            body: request.body[1..].into(),
            ..request.clone()
        };
        assert_ne!(
            request_hash(&request),
            request_hash(&moved),
            "lengths are part of the hash"
        );
    }

    #[test]
    fn a_request_no_object_names_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = OracleState::open(dir.path()).unwrap();
        let request = |ts: &str| RelayedRequest {
            method: "POST".into(),
            path: "/v1/apply".into(),
            address: "0x00".into(),
            timestamp: ts.into(),
            signature: "0x".into(),
            body: "x".repeat(10_000),
        };
        for ts in 1..=50u64 {
            state
                .record_request(&request(&ts.to_string()), ts, &["DeeployJob/a/b".into()])
                .unwrap();
        }
        let current = state.current_requests().unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].timestamp_ms, 50);
        let stored = state
            .db
            .iterator_cf(state.family(REQUESTS).unwrap(), IteratorMode::Start)
            .count();
        assert_eq!(stored, 1, "superseded requests are deleted");
    }

    #[test]
    fn legacy_records_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let request = RelayedRequest {
            method: "DELETE".into(),
            path: "/v1/djob/a/b".into(),
            address: "0x00".into(),
            timestamp: "9".into(),
            signature: "0x".into(),
            body: String::new(),
        };
        {
            let state = OracleState::open(dir.path()).unwrap();
            let legacy = serde_json::json!({"timestamp_ms": 9, "request": request});
            state
                .db
                .put_cf(
                    state.family(RELAYED).unwrap(),
                    "DeeployJob/a/b",
                    serde_json::to_vec(&legacy).unwrap(),
                )
                .unwrap();
        }
        let state = OracleState::open(dir.path()).unwrap();
        let mark = state.mark("DeeployJob/a/b").unwrap().unwrap();
        assert_eq!(mark.timestamp_ms, 9);
        assert_eq!(mark.request, request_hash(&request));
        assert_eq!(state.current_requests().unwrap()[0].request, request);
    }

    #[test]
    fn placements_votes_and_requests_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let node = Address::repeat_byte(7);
        {
            let state = OracleState::open(dir.path()).unwrap();
            let first = Placement {
                job: 3,
                replica: 1,
                node,
                since_ms: 100,
            };
            state.place(&first).unwrap();
            state
                .place(&Placement {
                    since_ms: 200,
                    ..first
                })
                .unwrap();
            state.place(&Placement { job: 30, ..first }).unwrap();
            state.record_vote("nodeset/3/0", "0xab").unwrap();
            let request = RelayedRequest {
                method: "POST".into(),
                path: "/v1/apply".into(),
                address: "0x00".into(),
                timestamp: "5".into(),
                signature: "0x".into(),
                body: "kind: x".into(),
            };
            state
                .record_request(
                    &request,
                    5,
                    &["DeeployJob/a/b".into(), "DeeployProject/a/p".into()],
                )
                .unwrap();
            let newer = RelayedRequest {
                timestamp: "6".into(),
                ..request
            };
            state
                .record_request(&newer, 6, &["DeeployJob/a/b".into()])
                .unwrap();
        }
        let state = OracleState::open(dir.path()).unwrap();
        let placements = state.placements(3).unwrap();
        assert_eq!(placements.len(), 1);
        assert_eq!(
            placements[0].since_ms, 100,
            "the first placement time is kept"
        );
        assert_eq!(placements[0].node, node);
        assert!(state.voted("nodeset/3/0").unwrap());
        assert!(!state.voted("nodeset/3/1").unwrap());
        assert_eq!(
            state.mark("DeeployJob/a/b").unwrap().unwrap().timestamp_ms,
            6
        );
        assert_eq!(
            state
                .mark("DeeployProject/a/p")
                .unwrap()
                .unwrap()
                .timestamp_ms,
            5
        );
        let current = state.current_requests().unwrap();
        assert_eq!(
            current.iter().map(|r| r.timestamp_ms).collect::<Vec<_>>(),
            vec![5, 6],
            "each request once, oldest first"
        );
        state.unplace(3, 1, &node).unwrap();
        assert!(state.placements(3).unwrap().is_empty());
        assert_eq!(state.placements(30).unwrap().len(), 1);
    }

    #[test]
    fn the_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = JobRollout::adopt(&template("localhost/x:1"));
        record.target(&template("localhost/x:2"), 2, 9).unwrap();
        {
            let state = OracleState::open(dir.path()).unwrap();
            assert_eq!(state.rollout(4).unwrap(), None);
            state.record_rollout(4, &record).unwrap();
        }
        let state = OracleState::open(dir.path()).unwrap();
        assert_eq!(state.rollout(4).unwrap(), Some(record));
    }
}
