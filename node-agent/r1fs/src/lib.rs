//! R1FS content addressing: files and directories as IPFS UnixFS DAGs whose CIDs are the ones
//! kubo's `ipfs add` prints with its default settings (checked against an independent
//! implementation, `ipfs-unixfs-importer`, in `tests/kubo_cids.rs`).
//!
//! * [`unixfs`]: the importer and its parts, pure apart from reading the input.
//!   * [`unixfs::Importer`]: bytes, a stream, a file or a directory tree to a root CID, every
//!     block handed to a [`unixfs::BlockSink`] as it is made (a large file is never held whole).
//!   * [`unixfs::Cid`]: parse and print CIDv0 (`Qm…`) and CIDv1 (`bafy…`, `bafk…`);
//!     [`unixfs::verify`] checks a fetched block against its CID.
//!   * [`unixfs::Reader`]: the way back, a file's bytes and a directory's entries, every block
//!     checked.
//!   * The encodings below them: chunking, the balanced layout, directories and HAMT shards,
//!     dag-pb, the UnixFS `Data` message, varints, base58/base32, murmur3.
//!
//! * [`blocks`]: the blocks a node keeps: files by digest, a RocksDB index of pins and
//!   reference counts, a quota and garbage collection.
//! * [`exchange`]: the block exchange between nodes: its wire format and the fetch schedule.
//! * [`crypt`]: optional AES-256-GCM encryption of a file's content before it is added, so
//!   the nodes that store and serve its blocks never see the plaintext.
//!
//! `kubo-cids/` holds the reference script and its pinned npm packages (`make deps` installs
//! them).

pub mod blocks;
pub mod crypt;
pub mod exchange;
pub mod unixfs;
