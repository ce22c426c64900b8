//! UnixFS import with the CIDs kubo's `ipfs add` gives, module by module:
//!
//! * [`importer`]: [`Importer`], the entry point (bytes, a stream, a file, a directory tree).
//! * [`cid`]: [`Cid`] and its text and binary forms; [`verify`], the per-block hash check.
//! * [`sink`]: [`BlockSink`], where each block goes as soon as it is made.
//! * [`chunker`]: fixed 256 KiB chunks read into one reused buffer.
//! * [`layout`]: the balanced file tree (at most 174 links a node), streaming.
//! * [`dir`]: directory nodes and the rule for when one is sharded.
//! * [`hamt`]: HAMT-sharded directories (fanout 256, murmur3 of the names).
//! * [`dag_pb`]: the canonical dag-pb block encoding, and a strict decoder.
//! * [`data`]: the UnixFS `Data` protobuf inside a dag-pb node.
//! * [`murmur3`], [`multibase`], [`varint`]: the small encodings and the hash the rest needs.
//! * [`reader`]: [`Reader`], the way back: a file's bytes, a directory's entries, a root's kind.
//! * [`error`]: [`Error`], why an import failed.

pub mod chunker;
pub mod cid;
pub mod dag_pb;
pub mod data;
pub mod dir;
pub mod error;
pub mod hamt;
pub mod importer;
pub mod layout;
pub mod multibase;
pub mod murmur3;
pub mod reader;
pub mod sink;
pub mod varint;

pub use cid::{Cid, CidError, CidVersion, Codec, verify};
pub use error::Error;
pub use importer::{Added, Imported, Importer};
pub use reader::{Kind, ReadError, Reader, Stat};
pub use sink::{Block, BlockSink, Discard, FnSink, SinkError};
