//! The agent's durable memory, in RocksDB under its data directory: the workloads it should run,
//! what it assigned to them (host ports), and the last command nonce accepted from each oracle.
//! Every write is synced before it is acknowledged, so a crash loses no accepted command.

use std::collections::BTreeMap;
use std::path::Path;

use r1_protocol::Address;
use r1_protocol::messages::{PortProtocol, WorkloadId, WorkloadSpec};
use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

const DESIRED: &str = "desired";
const NONCES: &str = "nonces";

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused an operation.
    #[error("state store: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored record does not decode (written by an incompatible version, or corrupted).
    #[error("state store: record {key} does not decode: {reason}")]
    Corrupt {
        /// Key of the record.
        key: String,
        /// Decoder error.
        reason: String,
    },
}

/// A workload the node has been told to run, with what the node chose for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredWorkload {
    /// The spec from the oracle's deploy command.
    pub spec: WorkloadSpec,
    /// Host port chosen for each container port (by the oracle or, when it left it open, by the
    /// node); kept so a restarted agent exposes the same ports.
    pub host_ports: BTreeMap<u16, u16>,
    /// The same for its UDP ports.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub udp_host_ports: BTreeMap<u16, u16>,
    /// The oracle whose command created or last changed this workload.
    pub ordered_by: Address,
}

impl DesiredWorkload {
    /// Host port chosen for each container port of `protocol`.
    pub fn host_ports_of(&self, protocol: PortProtocol) -> &BTreeMap<u16, u16> {
        match protocol {
            PortProtocol::Tcp => &self.host_ports,
            PortProtocol::Udp => &self.udp_host_ports,
        }
    }
}

/// The agent's RocksDB database.
pub struct Store {
    db: DB,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = [DESIRED, NONCES]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, dir, families)?;
        Ok(Self { db })
    }

    fn synced() -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        options
    }

    fn family(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| unreachable!("column family {name} is created on open"))
    }

    /// Every workload the node should run.
    pub fn desired(&self) -> Result<BTreeMap<WorkloadId, DesiredWorkload>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self
            .db
            .iterator_cf(self.family(DESIRED), rocksdb::IteratorMode::Start)
        {
            let (key, value) = item?;
            let workload: DesiredWorkload =
                serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: e.to_string(),
                })?;
            out.insert(workload.spec.id, workload);
        }
        Ok(out)
    }

    /// Records that `workload` should run, together with the nonce of the command that said so,
    /// in one synced write.
    pub fn put_desired(&self, workload: &DesiredWorkload, nonce: u64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let value = serde_json::to_vec(workload).map_err(|e| StoreError::Corrupt {
            key: workload_key(workload.spec.id),
            reason: e.to_string(),
        })?;
        batch.put_cf(self.family(DESIRED), workload_key(workload.spec.id), value);
        batch.put_cf(
            self.family(NONCES),
            workload.ordered_by.as_slice(),
            nonce.to_be_bytes(),
        );
        self.db.write_opt(batch, &Self::synced())?;
        Ok(())
    }

    /// Forgets workload `id` and records the nonce of the command that said so, in one synced
    /// write.
    pub fn remove_desired(
        &self,
        id: WorkloadId,
        sender: Address,
        nonce: u64,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.family(DESIRED), workload_key(id));
        batch.put_cf(self.family(NONCES), sender.as_slice(), nonce.to_be_bytes());
        self.db.write_opt(batch, &Self::synced())?;
        Ok(())
    }

    /// Records the nonce of an accepted command that changed no workload (a repeated one).
    pub fn put_nonce(&self, sender: Address, nonce: u64) -> Result<(), StoreError> {
        self.db.put_cf_opt(
            self.family(NONCES),
            sender.as_slice(),
            nonce.to_be_bytes(),
            &Self::synced(),
        )?;
        Ok(())
    }

    /// The last nonce accepted from each sender, so replays stay refused across restarts.
    pub fn nonces(&self) -> Result<BTreeMap<Address, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self
            .db
            .iterator_cf(self.family(NONCES), rocksdb::IteratorMode::Start)
        {
            let (key, value) = item?;
            let corrupt = || StoreError::Corrupt {
                key: r1_protocol::hex::encode(&key),
                reason: "expected a 20-byte address and an 8-byte nonce".into(),
            };
            let address = Address::try_from(key.as_ref()).map_err(|_| corrupt())?;
            let nonce: [u8; 8] = value.as_ref().try_into().map_err(|_| corrupt())?;
            out.insert(address, u64::from_be_bytes(nonce));
        }
        Ok(out)
    }
}

/// Keys sort by job then replica, so listings come out in order.
fn workload_key(id: WorkloadId) -> String {
    format!("{:020}/{:010}", id.job, id.replica)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(job: u64, replica: u32) -> WorkloadSpec {
        WorkloadSpec {
            id: WorkloadId { job, replica },
            revision: "r1".into(),
            image: "localhost/x:1".into(),
            command: vec![],
            args: vec![],
            env: BTreeMap::new(),
            ports: vec![],
            cpu_millis: 100,
            memory_bytes: 1 << 20,
            gpu: 0,
            health: None,
            secrets: None,
            tunnel: None,
            security: None,
        }
    }

    #[test]
    fn desired_workloads_and_nonces_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let oracle = Address::repeat_byte(7);
        {
            let store = Store::open(dir.path()).unwrap();
            for (job, replica) in [(12, 1), (3, 0), (12, 0)] {
                let workload = DesiredWorkload {
                    spec: spec(job, replica),
                    host_ports: BTreeMap::from([(8080, 31000)]),
                    udp_host_ports: BTreeMap::from([(5353, 31001)]),
                    ordered_by: oracle,
                };
                store
                    .put_desired(&workload, job * 10 + u64::from(replica))
                    .unwrap();
            }
            store
                .remove_desired(WorkloadId { job: 3, replica: 0 }, oracle, 500)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let ids: Vec<_> = store.desired().unwrap().into_keys().collect();
        assert_eq!(
            ids,
            [
                WorkloadId {
                    job: 12,
                    replica: 0
                },
                WorkloadId {
                    job: 12,
                    replica: 1
                }
            ]
        );
        assert_eq!(store.nonces().unwrap(), BTreeMap::from([(oracle, 500)]));
        assert_eq!(store.desired().unwrap()[&ids[0]].host_ports[&8080], 31000);
        assert_eq!(
            store.desired().unwrap()[&ids[0]].udp_host_ports[&5353],
            31001
        );
    }

    #[test]
    fn a_record_written_before_udp_ports_reads_as_having_none() {
        let workload = DesiredWorkload {
            spec: spec(4, 0),
            host_ports: BTreeMap::from([(8080, 31000)]),
            udp_host_ports: BTreeMap::new(),
            ordered_by: Address::repeat_byte(7),
        };
        let text = serde_json::to_string(&workload).unwrap();
        assert!(!text.contains("udp"), "{text}");
        let read: DesiredWorkload = serde_json::from_str(&text).unwrap();
        assert_eq!(read, workload);
    }
}
