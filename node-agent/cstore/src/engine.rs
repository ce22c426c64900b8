//! One node's CSTORE: the replica in memory, every entry also in RocksDB, the node's clock and
//! key. A command's writes are stamped, signed, applied and written to RocksDB's log before
//! its reply is sent, so a reply the client saw survives the agent being killed at any point
//! (the log write reaches the operating system before the reply; an OS crash or power loss
//! can still take the last writes, as with Redis's default `appendfsync everysec`).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use r1_protocol::Identity;
use rocksdb::{DB, Options, WriteBatch};

use crate::clock::{Clock, ClockError};
use crate::commands::Session;
use crate::entry::{Entry, EntryError, Key};
use crate::replica::{Applied, Replica};
use crate::resp::Reply;

/// Why the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// RocksDB failed.
    #[error("CSTORE database: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored or received entry is not valid.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// A received entry's stamp is refused, or the clock ran out.
    #[error(transparent)]
    Clock(#[from] ClockError),
}

struct State {
    replica: Replica,
    clock: Clock,
}

/// A node's CSTORE.
pub struct Engine {
    state: Mutex<State>,
    identity: Identity,
    db: DB,
}

/// The RocksDB key of an entry: namespace, key and field, each length-prefixed.
fn db_key(key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.namespace.len() + key.key.len());
    out.push(key.namespace.len() as u8);
    out.extend_from_slice(key.namespace.as_bytes());
    out.extend_from_slice(&(key.key.len() as u32).to_be_bytes());
    out.extend_from_slice(&key.key);
    if let Some(field) = &key.field {
        out.push(1);
        out.extend_from_slice(field);
    }
    out
}

impl Engine {
    /// Opens (or creates) the store in `dir`, writing as `identity`, refusing remote stamps more
    /// than `max_ahead_ms` ahead of the local clock. Every stored entry is loaded.
    pub fn open(dir: &Path, identity: Identity, max_ahead_ms: u64) -> Result<Self, EngineError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, dir)?;
        let mut replica = Replica::new();
        let mut clock = Clock::new(max_ahead_ms);
        for item in db.iterator(rocksdb::IteratorMode::Start) {
            let (_, bytes) = item?;
            let entry = Entry::from_bytes(&bytes)?;
            clock.observe(entry.stamp, u64::MAX)?;
            replica.apply(entry);
        }
        Ok(Self {
            state: Mutex::new(State { replica, clock }),
            identity,
            db,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one Redis command in `namespace` at `now_ms`; its writes are applied and logged
    /// before the reply is returned. Returns the reply and the entries written (to replicate).
    pub fn execute(
        &self,
        namespace: &str,
        args: &[Vec<u8>],
        now_ms: u64,
    ) -> Result<(Reply, Vec<Entry>), EngineError> {
        let mut state = self.state();
        let outcome = Session {
            replica: &state.replica,
            namespace,
            now_ms,
        }
        .run(args);
        if outcome.writes.is_empty() {
            return Ok((outcome.reply, Vec::new()));
        }
        let mut batch = WriteBatch::default();
        let mut written = Vec::with_capacity(outcome.writes.len());
        for write in outcome.writes {
            let stamp = state.clock.tick(now_ms)?;
            let entry = Entry::signed(
                write.key,
                write.value,
                write.expires_ms,
                stamp,
                &self.identity,
            )?;
            batch.put(db_key(&entry.key), entry.to_bytes());
            written.push(entry);
        }
        self.db.write(batch)?;
        for entry in &written {
            state.replica.apply(entry.clone());
        }
        Ok((outcome.reply, written))
    }

    /// Takes in an entry another node wrote: its signature checked, its stamp bounded, then
    /// merged and, when it won, logged.
    pub fn apply_remote(&self, entry: Entry, now_ms: u64) -> Result<Applied, EngineError> {
        entry.verify()?;
        let mut state = self.state();
        state.clock.observe(entry.stamp, now_ms)?;
        let bytes = entry.to_bytes();
        let key = db_key(&entry.key);
        let applied = state.replica.apply(entry);
        if applied == Applied::New {
            self.db.put(key, bytes)?;
        }
        Ok(applied)
    }

    /// Entries held, tombstones included.
    pub fn len(&self) -> usize {
        self.state().replica.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn acknowledged_writes_are_there_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let node = Identity::generate();
        {
            let engine = Engine::open(dir.path(), node.clone(), 5_000).unwrap();
            for i in 0..50 {
                engine
                    .execute("app", &args(&format!("SET k{i} v{i}")), 1_000 + i)
                    .unwrap();
            }
            engine.execute("app", &args("HSET h f x"), 2_000).unwrap();
            engine.execute("app", &args("DEL k7"), 2_001).unwrap();
        }
        let engine = Engine::open(dir.path(), node, 5_000).unwrap();
        let get = |line: &str| engine.execute("app", &args(line), 3_000).unwrap().0;
        assert_eq!(get("GET k49"), Reply::Bulk(Some(b"v49".to_vec())));
        assert_eq!(get("GET k7"), Reply::Bulk(None));
        assert_eq!(get("HGET h f"), Reply::Bulk(Some(b"x".to_vec())));
        let (_, written) = engine
            .execute("app", &args("SET after reopen"), 10)
            .unwrap();
        assert!(
            written[0].stamp.wall_ms >= 2_001,
            "the clock resumes past every stored stamp"
        );
    }

    #[test]
    fn remote_entries_are_checked_merged_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), Identity::generate(), 5_000).unwrap();
        let other = Identity::generate();
        let key = Key::new("app", b"k".to_vec(), None).unwrap();
        let stamp = |wall_ms| crate::clock::Stamp {
            wall_ms,
            logical: 0,
        };
        let entry = Entry::signed(
            key.clone(),
            Some(b"theirs".to_vec()),
            None,
            stamp(100),
            &other,
        )
        .unwrap();
        assert_eq!(
            engine.apply_remote(entry.clone(), 100).unwrap(),
            Applied::New
        );
        assert_eq!(engine.apply_remote(entry, 100).unwrap(), Applied::Stale);
        let ahead = Entry::signed(
            key.clone(),
            Some(b"x".to_vec()),
            None,
            stamp(100_000),
            &other,
        )
        .unwrap();
        assert!(matches!(
            engine.apply_remote(ahead, 100),
            Err(EngineError::Clock(ClockError::TooFarAhead { .. }))
        ));
        let mut forged = Entry::signed(key, Some(b"y".to_vec()), None, stamp(200), &other).unwrap();
        forged.writer = Identity::generate().address();
        assert!(matches!(
            engine.apply_remote(forged, 200),
            Err(EngineError::Entry(EntryError::Forged { .. }))
        ));
        let (reply, _) = engine.execute("app", &args("GET k"), 300).unwrap();
        assert_eq!(reply, Reply::Bulk(Some(b"theirs".to_vec())));
    }
}
