//! R1FS blocks at rest on a node:
//!
//! * [`store`]: [`BlockStore`], block files plus a RocksDB index of sizes, reference counts and
//!   pins; a quota; garbage collection; [`Lease`], which keeps an import's blocks until it pins.
//! * [`walk`]: which blocks a root reaches, each checked against its CID on the way.

pub mod store;
pub mod walk;

pub use store::{BlockStore, Collected, Lease, Pin, StoreError, Usage};
pub use walk::{WalkError, reachable};
