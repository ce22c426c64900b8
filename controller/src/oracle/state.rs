//! The oracle's own durable memory (RocksDB, synced writes), beside the resource store:
//!
//! * `placements`: which node this oracle told to run which replica, and since when, so the
//!   start grace survives a restart and a replica is not placed twice;
//! * `votes`: the consensus rounds this oracle has voted in, so a restart never votes twice;
//! * `relayed`: the newest CSP-signed request that touched each object, re-sent to the other
//!   oracles (anti-entropy) and used to refuse older ones;
//! * `rollouts`: where each job's rollout stands and the generations it names (see
//!   [`crate::oracle::rollout`]), so a restart carries a rollout or rollback on.

use std::path::Path;

use alloy_primitives::Address;
use r1_protocol::messages::RelayedRequest;
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::oracle::rollout::JobRollout;

const PLACEMENTS: &str = "placements";
const VOTES: &str = "votes";
const RELAYED: &str = "relayed";
const ROLLOUTS: &str = "rollouts";

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

/// One replica this oracle placed on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// On-chain job id.
    pub job: u64,
    /// Replica index.
    pub replica: u32,
    /// The node.
    pub node: Address,
    /// When it was placed there (unix ms).
    pub since_ms: u64,
}

/// The newest signed request that touched an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedRecord {
    /// The CSP's timestamp (unix ms).
    pub timestamp_ms: u64,
    /// The request.
    pub request: RelayedRequest,
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
        let families = [PLACEMENTS, VOTES, RELAYED, ROLLOUTS]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        Ok(Self {
            db: DB::open_cf_descriptors(&options, path, families)?,
        })
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

    /// The newest request recorded for `object` (e.g. `DeeployJob/ns/name`).
    pub fn relayed(&self, object: &str) -> Result<Option<RelayedRecord>, StateError> {
        match self.db.get_cf(self.family(RELAYED)?, object)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        key: object.into(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Records `record` as the newest request for `object`.
    pub fn record_relayed(&self, object: &str, record: &RelayedRecord) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StateError::Corrupt {
            key: object.into(),
            reason: e.to_string(),
        })?;
        self.db
            .put_cf_opt(self.family(RELAYED)?, object, bytes, &Self::synced())?;
        Ok(())
    }

    /// The rollout record of on-chain job `job`, if this oracle has one.
    pub fn rollout(&self, job: u64) -> Result<Option<JobRollout>, StateError> {
        let key = format!("{job:020}");
        match self.db.get_cf(self.family(ROLLOUTS)?, &key)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        key,
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Records the rollout of on-chain job `job`.
    pub fn record_rollout(&self, job: u64, rollout: &JobRollout) -> Result<(), StateError> {
        let key = format!("{job:020}");
        let bytes = serde_json::to_vec(rollout).map_err(|e| StateError::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        self.db
            .put_cf_opt(self.family(ROLLOUTS)?, key, bytes, &Self::synced())?;
        Ok(())
    }

    /// Every distinct recorded request, oldest first.
    pub fn all_relayed(&self) -> Result<Vec<RelayedRecord>, StateError> {
        let cf = self.family(RELAYED)?;
        let mut records: Vec<RelayedRecord> = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            let record: RelayedRecord =
                serde_json::from_slice(&value).map_err(|e| StateError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: e.to_string(),
                })?;
            if !records.contains(&record) {
                records.push(record);
            }
        }
        records.sort_by_key(|r| r.timestamp_ms);
        Ok(records)
    }
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
            let record = RelayedRecord {
                timestamp_ms: 5,
                request: RelayedRequest {
                    method: "POST".into(),
                    path: "/v1/apply".into(),
                    address: "0x00".into(),
                    timestamp: "5".into(),
                    signature: "0x".into(),
                    body: "kind: x".into(),
                },
            };
            state.record_relayed("DeeployJob/a/b", &record).unwrap();
            state.record_relayed("DeeployProject/a/p", &record).unwrap();
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
            state.all_relayed().unwrap().len(),
            1,
            "one request, two objects"
        );
        state.unplace(3, 1, &node).unwrap();
        assert!(state.placements(3).unwrap().is_empty());
        assert_eq!(state.placements(30).unwrap().len(), 1);
    }
}
