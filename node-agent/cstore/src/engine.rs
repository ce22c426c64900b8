//! One node's CSTORE: the replica in memory, every entry also in RocksDB, the node's clock and
//! key. A command's writes are stamped, applied and written to RocksDB's log before its reply
//! is sent, so a reply the client saw survives the agent being killed at any point (the log
//! write reaches the operating system before the reply; an OS crash or power loss can still
//! take the last writes, as with Redis's default `appendfsync everysec`).
//!
//! Local writes are logged unsealed and queued; [`Engine::seal_pending`] signs what is queued
//! as one batch (see [`crate::seal`]) and returns the sealed entries to replicate. Unsealed
//! entries found on opening are queued again, so a kill between a write and its seal loses
//! nothing. Remote entries are checked (seal, stamp) before they are merged and logged.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use alloy_primitives::Address;
use indexmap::IndexSet;
use r1_protocol::Identity;
use rocksdb::{DB, Options, WriteBatch, WriteOptions};
use tokio::sync::Notify;

use crate::access::{self, Access, Denied, Principal, SYSTEM};
use crate::clock::{Clock, ClockError};
use crate::commands::{COMMANDS, Session, command_index};
use crate::entry::{Entry, EntryError, Key};
use crate::replica::{Applied, Replica};
use crate::resp::Reply;
use crate::seal::{self, Verifier};

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
    /// A received entry of the system namespace not written by an oracle.
    #[error("{writer} wrote in the system namespace {SYSTEM}, which only oracles write")]
    NotOracle {
        /// The writer.
        writer: Address,
    },
}

struct State {
    replica: Replica,
    clock: Clock,
    /// Keys of local writes not sealed yet, first written first; a key written again before
    /// its seal stays queued once (the seal covers its latest write).
    pending: IndexSet<Key>,
    /// Who may write the system namespace (the network's oracles).
    oracles: HashSet<Address>,
    /// The latest [`RECENT_WRITES`] local writes sealed, oldest first (what `WAIT` asks about).
    recent: VecDeque<Written>,
    /// A buffer the write path reuses for each entry's RocksDB key and bytes.
    scratch: Vec<u8>,
}

/// A node's CSTORE.
pub struct Engine {
    state: Mutex<State>,
    identity: Identity,
    db: DB,
    written: Notify,
    denied: AtomicU64,
    /// Commands run, by their place in [`COMMANDS`]; the last counts unknown ones.
    ops: Vec<AtomicU64>,
}

/// Local writes `WAIT` asks other replicas about: the latest this many sealed.
pub const RECENT_WRITES: usize = 1024;

/// A write a command made: where, and the version written (what `WAIT` asks replicas about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The key (or hash field).
    pub key: Key,
    /// The entry's version: its stamp and writer.
    pub version: (crate::clock::Stamp, Address),
}

/// Access already checked within one batch of commands.
#[derive(Default)]
struct Allowed {
    read: Option<Result<(), Denied>>,
    write: Option<Result<(), Denied>>,
}

/// What a batch of remote entries did.
#[derive(Debug, Default)]
pub struct Merged {
    /// Entries that were new here or newer than what was held.
    pub new: Vec<Entry>,
    /// Entries already held, or older than what was.
    pub stale: usize,
    /// Entries refused, with the reason.
    pub refused: Vec<(Key, EngineError)>,
}

/// How sealed versions are written: without RocksDB's log. The unsealed version is already in
/// the log, so a crash before the memtable reaches disk only brings back the unsealed version,
/// which is sealed again on opening (peers take the second seal like the first: same
/// contents, ties settled by bytes). Seals with their proofs are most of what a write costs on
/// disk, so this keeps the log to the writes themselves.
fn seals_unlogged() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.disable_wal(true);
    options
}

/// The RocksDB key of an entry: namespace, key and field, each length-prefixed.
fn db_key(key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.namespace.len() + key.key.len());
    write_db_key(key, &mut out);
    out
}

/// Appends the RocksDB key of `key` to `out`.
fn write_db_key(key: &Key, out: &mut Vec<u8>) {
    out.push(key.namespace.len() as u8);
    out.extend_from_slice(key.namespace.as_bytes());
    out.extend_from_slice(&(key.key.len() as u32).to_be_bytes());
    out.extend_from_slice(&key.key);
    if let Some(field) = &key.field {
        out.push(1);
        out.extend_from_slice(field);
    }
}

impl Engine {
    /// Opens (or creates) the store in `dir`, writing as `identity`, refusing remote stamps more
    /// than `max_ahead_ms` ahead of the local clock and system entries not written by one of
    /// `oracles`. Every stored entry is loaded; this node's unsealed ones are queued for
    /// sealing.
    pub fn open(
        dir: &Path,
        identity: Identity,
        max_ahead_ms: u64,
        oracles: HashSet<Address>,
    ) -> Result<Self, EngineError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, dir)?;
        let mut replica = Replica::new();
        let mut clock = Clock::new(max_ahead_ms);
        let mut pending = IndexSet::new();
        let me = identity.address();
        for item in db.iterator(rocksdb::IteratorMode::Start) {
            let (_, bytes) = item?;
            let entry = Entry::from_bytes(&bytes)?;
            if !entry.is_sealed() {
                if entry.writer != me {
                    tracing::warn!(writer = %entry.writer, "skipping another node's unsealed entry");
                    continue;
                }
                pending.insert(entry.key.clone());
            }
            clock.observe(entry.stamp, u64::MAX)?;
            replica.apply(entry);
        }
        let engine = Self {
            state: Mutex::new(State {
                replica,
                clock,
                pending,
                oracles,
                recent: VecDeque::new(),
                scratch: Vec::new(),
            }),
            identity,
            db,
            written: Notify::new(),
            denied: AtomicU64::new(0),
            ops: (0..=COMMANDS.len()).map(|_| AtomicU64::new(0)).collect(),
        };
        if !engine.state().pending.is_empty() {
            engine.written.notify_one();
        }
        Ok(engine)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one Redis command for the node's operator in `namespace` at `now_ms`; its writes
    /// are applied and logged before the reply is returned. Returns the reply and the writes.
    pub fn execute(
        &self,
        namespace: &str,
        args: &[Vec<u8>],
        now_ms: u64,
    ) -> Result<(Reply, Vec<Written>), EngineError> {
        let mut state = self.state();
        let mut batch = WriteBatch::default();
        let who = (Principal::Operator, &mut Allowed::default());
        let mut written = Vec::new();
        let target = (namespace, Some(&mut written));
        let mut args = args.to_vec();
        let (reply, count) = self.run(&mut state, &mut batch, who, target, &mut args, now_ms)?;
        if count > 0 {
            self.db.write(batch)?;
            self.written.notify_one();
        }
        Ok((reply, written))
    }

    /// Runs pipelined commands of `who` in `namespace` at `now_ms` in order, each seeing the
    /// writes of the ones before, with one log write for all of them before any reply is
    /// returned. A command `who` may not run gets Redis's
    /// `NOPERM` error and writes nothing.
    pub fn execute_all(
        &self,
        who: Principal,
        namespace: &str,
        commands: &mut [Vec<Vec<u8>>],
        now_ms: u64,
    ) -> Vec<Reply> {
        let mut state = self.state();
        let mut batch = WriteBatch::default();
        let mut replies = Vec::with_capacity(commands.len());
        let mut wrote = false;
        // The rules cannot change within the batch (it holds the lock): check once.
        let mut allowed = Allowed::default();
        for args in commands.iter_mut() {
            let who = (who, &mut allowed);
            match self.run(&mut state, &mut batch, who, (namespace, None), args, now_ms) {
                Ok((reply, count)) => {
                    wrote |= count > 0;
                    replies.push(reply);
                }
                Err(e) => replies.push(Reply::err(e.to_string())),
            }
        }
        if wrote {
            if let Err(e) = self.db.write(batch) {
                let error = Reply::err(EngineError::Db(e).to_string());
                return vec![error; replies.len()];
            }
            self.written.notify_one();
        }
        replies
    }

    /// One command: refused if `who` may not read `namespace` or, when it writes, write it;
    /// else its writes stamped, applied, queued for sealing, added to `batch` and, when asked,
    /// to `written`. Returns the reply and how many entries it wrote.
    fn run(
        &self,
        state: &mut State,
        batch: &mut WriteBatch,
        (who, known): (Principal, &mut Allowed),
        (namespace, mut written): (&str, Option<&mut Vec<Written>>),
        args: &mut [Vec<u8>],
        now_ms: u64,
    ) -> Result<(Reply, usize), EngineError> {
        self.count(args.first().map_or(&[][..], Vec::as_slice));
        let mut allowed = |access| {
            let slot = match access {
                Access::Read => &mut known.read,
                Access::Write => &mut known.write,
            };
            slot.get_or_insert_with(|| {
                access::check(&state.replica, who, namespace, access, now_ms)
            })
            .clone()
        };
        if let Err(denied) = allowed(Access::Read) {
            return Ok((self.refuse(&denied), 0));
        }
        let outcome = Session {
            replica: &state.replica,
            namespace,
            now_ms,
        }
        .run(args);
        if !outcome.writes.is_empty()
            && let Err(denied) = allowed(Access::Write)
        {
            return Ok((self.refuse(&denied), 0));
        }
        let mut entries = Vec::with_capacity(outcome.writes.len());
        for write in outcome.writes {
            let stamp = state.clock.tick(now_ms)?;
            entries.push(Entry::unsealed(
                write.key,
                write.value,
                write.expires_ms,
                stamp,
                self.identity.address(),
            )?);
        }
        let count = entries.len();
        for entry in entries {
            // One buffer for the key and the bytes of every entry of the command.
            state.scratch.clear();
            write_db_key(&entry.key, &mut state.scratch);
            let key_len = state.scratch.len();
            entry.write_bytes(&mut state.scratch);
            let (key, bytes) = state.scratch.split_at(key_len);
            batch.put(key, bytes);
            if !state.pending.contains(&entry.key) {
                state.pending.insert(entry.key.clone());
            }
            if let Some(written) = written.as_deref_mut() {
                written.push(Written {
                    key: entry.key.clone(),
                    version: entry.version(),
                });
            }
            state.replica.apply_local(entry);
        }
        Ok((outcome.reply, count))
    }

    fn refuse(&self, denied: &Denied) -> Reply {
        self.denied.fetch_add(1, Ordering::Relaxed);
        Reply::Error(format!("NOPERM {denied}"))
    }

    /// Counts one command named `name` (the server counts those it answers itself).
    pub fn count(&self, name: &[u8]) {
        let op = command_index(name).unwrap_or(COMMANDS.len());
        if let Some(count) = self.ops.get(op) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Commands run since the engine opened, by name (upper case; `unknown` for the rest).
    pub fn ops(&self) -> Vec<(&'static str, u64)> {
        let names = COMMANDS.iter().copied().chain(std::iter::once("unknown"));
        names
            .zip(&self.ops)
            .map(|(name, count)| (name, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// Commands refused for want of access since the engine opened.
    pub fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    /// Whether `who` may `access` `namespace` now; a refusal is counted.
    pub fn check(
        &self,
        who: Principal,
        namespace: &str,
        access: Access,
        now_ms: u64,
    ) -> Result<(), Denied> {
        let checked = access::check(&self.state().replica, who, namespace, access, now_ms);
        if checked.is_err() {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        checked
    }

    /// The namespace job `job`'s workloads own, once the oracles have published it.
    pub fn own_namespace(&self, job: u64, now_ms: u64) -> Option<String> {
        access::own_namespace(&self.state().replica, job, now_ms)
    }

    /// Waits until local writes are queued for sealing (returns at once if some were queued
    /// since the last call).
    pub async fn written(&self) {
        self.written.notified().await;
    }

    /// Waits for fresh local writes, lets more gather for `delay` (so one signature covers
    /// them all under load), and seals them: what to replicate, in batches of at most `max`.
    pub async fn next_sealed(
        &self,
        delay: std::time::Duration,
        max: usize,
    ) -> Result<Vec<Vec<Entry>>, EngineError> {
        self.written().await;
        tokio::time::sleep(delay).await;
        let mut batches = Vec::new();
        loop {
            let sealed = self.seal_pending(max)?;
            if sealed.is_empty() {
                return Ok(batches);
            }
            batches.push(sealed);
        }
    }

    /// Seals up to `max` queued local writes as one batch, logs the sealed entries and returns
    /// them (to replicate). Writes replaced since by a newer one are left out: the newer one
    /// is queued too.
    pub fn seal_pending(&self, max: usize) -> Result<Vec<Entry>, EngineError> {
        let keys: Vec<Key> = {
            let mut state = self.state();
            let take = max.min(state.pending.len());
            if take < state.pending.len() {
                self.written.notify_one();
            }
            state.pending.drain(..take).collect()
        };
        let unsealed: Vec<Entry> = {
            let state = self.state();
            keys.iter()
                .filter_map(|key| state.replica.entry(key).filter(|e| !e.is_sealed()).cloned())
                .collect()
        };
        if unsealed.is_empty() {
            return Ok(Vec::new());
        }
        // Hashed here rather than on the write path: beside it, and once per key however
        // often it was written since the last seal.
        let digests: Vec<seal::Hash> = unsealed.iter().map(Entry::digest).collect();
        let seals = seal::seal_batch(&digests, &self.identity).map_err(|e| {
            self.requeue(&unsealed);
            EntryError::Signing(e)
        })?;
        let mut state = self.state();
        let mut batch = WriteBatch::default();
        let mut sealed = Vec::with_capacity(unsealed.len());
        for ((entry, seal), digest) in unsealed.into_iter().zip(seals).zip(digests) {
            let still_held = state
                .replica
                .entry(&entry.key)
                .is_some_and(|held| !held.is_sealed() && held.version() == entry.version());
            if still_held {
                let entry = entry.with_seal(seal);
                batch.put(db_key(&entry.key), entry.to_bytes());
                sealed.push((entry, digest));
            }
        }
        if let Err(e) = self.db.write_opt(batch, &seals_unlogged()) {
            drop(state);
            let entries: Vec<Entry> = sealed.into_iter().map(|(entry, _)| entry).collect();
            self.requeue(&entries);
            return Err(e.into());
        }
        for (entry, digest) in &sealed {
            if let Some(seal) = entry.seal() {
                state
                    .replica
                    .attach_seal(&entry.key, entry.version(), seal.clone(), *digest);
            }
            state.recent.push_back(Written {
                key: entry.key.clone(),
                version: entry.version(),
            });
        }
        let over = state.recent.len().saturating_sub(RECENT_WRITES);
        state.recent.drain(..over);
        Ok(sealed.into_iter().map(|(entry, _)| entry).collect())
    }

    fn requeue(&self, entries: &[Entry]) {
        let mut state = self.state();
        state.pending.extend(entries.iter().map(|e| e.key.clone()));
        self.written.notify_one();
    }

    /// Takes in entries other nodes wrote: each one's seal checked (one recovery per batch),
    /// its stamp bounded, then merged and, when it won, logged.
    pub fn apply_remote(&self, entries: Vec<Entry>, now_ms: u64) -> Result<Merged, EngineError> {
        let mut verifier = Verifier::new();
        let mut merged = Merged::default();
        let mut checked = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry.verify_with(&mut verifier) {
                Ok(()) => checked.push(entry),
                Err(e) => merged.refused.push((entry.key, e.into())),
            }
        }
        let mut state = self.state();
        let mut batch = WriteBatch::default();
        for entry in checked {
            if entry.key.namespace == SYSTEM && !state.oracles.contains(&entry.writer) {
                let writer = entry.writer;
                merged
                    .refused
                    .push((entry.key, EngineError::NotOracle { writer }));
                continue;
            }
            if let Err(e) = state.clock.observe(entry.stamp, now_ms) {
                merged.refused.push((entry.key, e.into()));
                continue;
            }
            let (key, bytes) = (db_key(&entry.key), entry.to_bytes());
            match state.replica.apply(entry.clone()) {
                Applied::New => {
                    batch.put(key, bytes);
                    merged.new.push(entry);
                }
                Applied::Stale => merged.stale += 1,
            }
        }
        self.db.write(batch)?;
        Ok(merged)
    }

    /// Runs `read` on the replica as it is now (for anti-entropy answers and listings).
    pub fn read<T>(&self, read: impl FnOnce(&Replica) -> T) -> T {
        read(&self.state().replica)
    }

    /// Drops the tombstones stamped before `horizon_ms`, from memory and disk; returns how
    /// many.
    pub fn collect_tombstones(&self, horizon_ms: u64) -> Result<usize, EngineError> {
        let mut state = self.state();
        let mut batch = WriteBatch::default();
        for entry in state.replica.entries() {
            if entry.value.is_none() && entry.stamp.wall_ms < horizon_ms {
                batch.delete(db_key(&entry.key));
            }
        }
        if batch.is_empty() {
            return Ok(0);
        }
        self.db.write(batch)?;
        Ok(state.replica.collect_tombstones(horizon_ms))
    }

    /// This node's latest writes once every write made so far is sealed (at most
    /// [`RECENT_WRITES`]); `None` while some are not sealed yet.
    pub fn settled_writes(&self) -> Option<Vec<Written>> {
        let state = self.state();
        state
            .pending
            .is_empty()
            .then(|| state.recent.iter().cloned().collect())
    }

    /// How many of `writes` are held here, each as that version or a newer one.
    pub fn holds(&self, writes: &[Written]) -> usize {
        let state = self.state();
        writes
            .iter()
            .filter(|w| {
                state
                    .replica
                    .entry(&w.key)
                    .is_some_and(|held| held.version() >= w.version)
            })
            .count()
    }

    /// Entries held, tombstones included.
    pub fn len(&self) -> usize {
        self.state().replica.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Local writes not sealed yet.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
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
            let engine = Engine::open(dir.path(), node.clone(), 5_000, HashSet::new()).unwrap();
            for i in 0..50 {
                engine
                    .execute("app", &args(&format!("SET k{i} v{i}")), 1_000 + i)
                    .unwrap();
            }
            engine.execute("app", &args("HSET h f x"), 2_000).unwrap();
            engine.execute("app", &args("DEL k7"), 2_001).unwrap();
        }
        let engine = Engine::open(dir.path(), node, 5_000, HashSet::new()).unwrap();
        let get = |line: &str| engine.execute("app", &args(line), 3_000).unwrap().0;
        assert_eq!(get("GET k49"), Reply::Bulk(Some(b"v49".to_vec())));
        assert_eq!(get("GET k7"), Reply::Bulk(None));
        assert_eq!(get("HGET h f"), Reply::Bulk(Some(b"x".to_vec())));
        let (_, written) = engine
            .execute("app", &args("SET after reopen"), 10)
            .unwrap();
        assert!(
            written[0].version.0.wall_ms >= 2_001,
            "the clock resumes past every stored stamp"
        );
    }

    #[test]
    fn writes_are_sealed_in_batches_and_a_kill_before_the_seal_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let node = Identity::generate();
        {
            let engine = Engine::open(dir.path(), node.clone(), 5_000, HashSet::new()).unwrap();
            let mut commands: Vec<_> = (0..10).map(|i| args(&format!("SET k{i} v{i}"))).collect();
            let replies = engine.execute_all(Principal::Operator, "app", &mut commands, 1_000);
            assert!(
                replies.iter().all(|r| *r == Reply::Simple("OK")),
                "{replies:?}"
            );
            assert_eq!(
                engine.execute_all(
                    Principal::Operator,
                    "app",
                    &mut [args("SET k0 again"), args("GET k0")],
                    1_001,
                )[1],
                Reply::Bulk(Some(b"again".to_vec())),
                "a pipelined command sees the writes before it"
            );
            assert!(
                engine.settled_writes().is_none(),
                "writes wait to be sealed"
            );
            let sealed = engine.seal_pending(4).unwrap();
            assert_eq!(sealed.len(), 4);
            let mut verifier = seal::Verifier::new();
            for entry in &sealed {
                entry.verify_with(&mut verifier).unwrap();
            }
            assert_eq!(engine.pending(), 6, "k0, written twice, was queued once");
        }
        let engine = Engine::open(dir.path(), node, 5_000, HashSet::new()).unwrap();
        assert_eq!(
            engine.pending(),
            6,
            "unsealed writes are queued again (k0's latest was sealed in the first batch)"
        );
        let sealed = engine.seal_pending(100).unwrap();
        assert_eq!(sealed.len(), 6);
        assert!(engine.read(|r| r.entries().all(Entry::is_sealed)));
        assert_eq!(
            engine.execute("app", &args("GET k0"), 2_000).unwrap().0,
            Reply::Bulk(Some(b"again".to_vec()))
        );
    }

    #[test]
    fn remote_entries_are_checked_merged_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), Identity::generate(), 5_000, HashSet::new()).unwrap();
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
        let merged = engine.apply_remote(vec![entry.clone()], 100).unwrap();
        assert_eq!(merged.new, vec![entry.clone()]);
        assert_eq!(engine.apply_remote(vec![entry], 100).unwrap().stale, 1);
        let ahead = Entry::signed(
            key.clone(),
            Some(b"x".to_vec()),
            None,
            stamp(100_000),
            &other,
        )
        .unwrap();
        let mut forged =
            Entry::signed(key.clone(), Some(b"y".to_vec()), None, stamp(200), &other).unwrap();
        forged.writer = Identity::generate().address();
        let unsealed =
            Entry::unsealed(key, Some(b"z".to_vec()), None, stamp(200), other.address()).unwrap();
        let merged = engine
            .apply_remote(vec![ahead, forged, unsealed], 200)
            .unwrap();
        assert!(merged.new.is_empty());
        let reasons: Vec<String> = merged.refused.iter().map(|(_, e)| e.to_string()).collect();
        assert!(
            matches!(
                merged.refused[0].1,
                EngineError::Entry(EntryError::Forged { .. })
            ),
            "{reasons:?}"
        );
        assert!(
            matches!(
                merged.refused[1].1,
                EngineError::Entry(EntryError::Unsealed)
            ),
            "{reasons:?}"
        );
        assert!(
            matches!(
                merged.refused[2].1,
                EngineError::Clock(ClockError::TooFarAhead { .. })
            ),
            "{reasons:?}"
        );
        let (reply, _) = engine.execute("app", &args("GET k"), 300).unwrap();
        assert_eq!(reply, Reply::Bulk(Some(b"theirs".to_vec())));
    }

    #[test]
    fn jobs_use_the_namespaces_oracles_assign_and_only_oracles_write_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let oracle = Identity::generate();
        let engine = Engine::open(
            dir.path(),
            Identity::generate(),
            5_000,
            HashSet::from([oracle.address()]),
        )
        .unwrap();
        let stamp = crate::clock::Stamp {
            wall_ms: 100,
            logical: 0,
        };
        let rule = |by: &Identity, job: u64, ns: &str| {
            Entry::signed(
                access::job_key(job),
                Some(ns.as_bytes().to_vec()),
                None,
                stamp,
                by,
            )
            .unwrap()
        };
        let stranger = Identity::generate();
        let merged = engine
            .apply_remote(
                vec![rule(&oracle, 1, "p.acme"), rule(&stranger, 2, "p.acme")],
                100,
            )
            .unwrap();
        assert_eq!(merged.new.len(), 1);
        assert!(matches!(merged.refused[0].1, EngineError::NotOracle { .. }));

        let job = |n, ns: &str, line: &str| {
            engine
                .execute_all(Principal::Job(n), ns, &mut [args(line)], 200)
                .remove(0)
        };
        assert_eq!(job(1, "p.acme", "SET k v"), Reply::Simple("OK"));
        assert_eq!(job(1, "p.acme", "GET k"), Reply::Bulk(Some(b"v".to_vec())));
        let refused = [
            job(2, "p.acme", "GET k"),
            job(1, "p.other", "SET k v"),
            job(1, SYSTEM, "SET job:1 p.other"),
        ];
        for reply in &refused {
            assert!(
                matches!(reply, Reply::Error(e) if e.starts_with("NOPERM")),
                "{reply:?}"
            );
        }
        assert_eq!(engine.denied(), 3);
        let ops: std::collections::BTreeMap<_, _> = engine.ops().into_iter().collect();
        assert_eq!((ops["SET"], ops["GET"]), (3, 2), "{ops:?}");
        assert!(
            matches!(engine.execute(SYSTEM, &args("SET job:1 p.other"), 200).unwrap().0,
                Reply::Error(e) if e.starts_with("NOPERM")),
            "the operator does not write the rules either"
        );
        assert_eq!(engine.own_namespace(1, 200).as_deref(), Some("p.acme"));
    }
}
