//! CSTORE, the key-value store every r1 node holds a replica of: any node accepts writes, every
//! write reaches the others, and replicas that have seen the same writes hold the same state.
//!
//! The pure parts come first (clock, entries, the merge, the protocol, the commands); the
//! engine and server put them on disk and on a socket:
//!
//! * [`clock`]: the hybrid logical clock that stamps every write, and the bound on how far
//!   ahead of the local clock a remote stamp may be.
//! * [`entry`]: an entry (a namespace's key, or a field of a hash, with its value or a
//!   tombstone), sealed by the node that wrote it, and its bounded byte form.
//! * [`seal`]: one signature over a batch of a writer's entries, a Merkle proof per entry.
//! * [`delta`]: freshly sealed entries packed into bounded broadcast messages.
//! * [`replica`]: the last-writer-wins merge on (stamp, writer), tombstones and their
//!   collection after a horizon; property-tested to converge whatever the delivery order.
//! * [`anti_entropy`]: range-based set reconciliation, a node pulling from a peer only the
//!   entries it lacks or holds older, by comparing fingerprints of key ranges.
//! * [`access`]: which namespaces a job's workloads may read and write, by the rules oracles
//!   write in the system namespace.
//! * [`resp`]: the Redis protocol (RESP2): bounded command parsing, replies.
//! * [`commands`]: the Redis commands apps use, as reads of a replica and the writes they make,
//!   inside the caller's namespace.
//! * [`engine`]: a node's store: the replica, RocksDB under it, the clock and the node's key;
//!   local commands (access-checked), sealing, and remote entries all go through it.
//! * [`replicas`]: the other replicas as `WAIT` asks them (the node agent answers).
//! * [`server`]: the Redis-protocol server over an engine, one caller per listener.
//!
//! The node agent (`r1-node`'s `kv` module) carries deltas and anti-entropy over the
//! peer-to-peer layer and serves the Redis port inside every container.

pub mod access;
pub mod anti_entropy;
pub mod clock;
pub mod commands;
pub mod delta;
pub mod engine;
pub mod entry;
pub mod replica;
pub mod replicas;
pub mod resp;
pub mod seal;
pub mod server;

pub use clock::{Clock, ClockError, Stamp};
pub use entry::{Entry, EntryError, Key};
pub use replica::{Applied, Replica};
