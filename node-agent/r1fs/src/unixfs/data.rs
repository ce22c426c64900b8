//! The UnixFS `Data` protobuf that sits in a dag-pb node's data field, written as kubo writes it.
//!
//! ```text
//! message Data {
//!   enum DataType { Raw = 0; Directory = 1; File = 2; Metadata = 3; Symlink = 4; HAMTShard = 5; }
//!   required DataType Type = 1;  optional bytes Data = 2;     optional uint64 filesize = 3;
//!   repeated uint64 blocksizes = 4;  optional uint64 hashType = 5;  optional uint64 fanout = 6;
//! }
//! ```
//!
//! Fields go out in field-number order; `blocksizes` is repeated one tag per value, not packed;
//! an empty `Data` is left out; a file always carries `filesize` (0 for an empty file); mode and
//! mtime are never written (kubo's defaults do not keep them).

use super::varint;

/// The UnixFS node types this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// A directory whose entries are all links of this node.
    Directory = 1,
    /// A file: its bytes in `Data` (a leaf) or below its links (with `blocksizes`).
    File = 2,
    /// One node of a HAMT-sharded directory.
    HamtShard = 5,
}

/// The `hashType` of a HAMT shard: murmur3-x64-64 (multicodec 0x22).
pub const HAMT_HASH_MURMUR3: u64 = 0x22;

/// `Data` of a directory: the type alone.
pub fn directory() -> Vec<u8> {
    vec![0x08, DataType::Directory as u8]
}

/// `Data` of a file node whose bytes are in its children, `blocksizes[i]` bytes below link `i`.
pub fn file_node(blocksizes: &[u64]) -> Vec<u8> {
    let filesize: u64 = blocksizes.iter().sum();
    let mut out = Vec::with_capacity(4 + 11 + blocksizes.len() * 5);
    out.extend([0x08, DataType::File as u8, 0x18]);
    varint::encode(filesize, &mut out);
    for &size in blocksizes {
        out.push(0x20);
        varint::encode(size, &mut out);
    }
    out
}

/// `Data` of one HAMT shard node: the occupancy bitfield, the fanout and the hash function.
pub fn hamt_shard(bitfield: &[u8], fanout: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 + bitfield.len() + 2 + 4);
    out.extend([0x08, DataType::HamtShard as u8]);
    if !bitfield.is_empty() {
        out.push(0x12);
        varint::encode(bitfield.len() as u64, &mut out);
        out.extend_from_slice(bitfield);
    }
    out.push(0x28);
    varint::encode(HAMT_HASH_MURMUR3, &mut out);
    out.push(0x30);
    varint::encode(fanout, &mut out);
    out
}

/// Writes the whole dag-pb block of a file leaf holding `chunk` into `out` (cleared first):
/// `PBNode { Data: Data { Type: File, Data: chunk, filesize: len } }`, with no copy of the chunk
/// other than into `out`.
pub fn write_file_leaf_block(chunk: &[u8], out: &mut Vec<u8>) {
    let len = chunk.len() as u64;
    let data_field = if chunk.is_empty() {
        0
    } else {
        1 + varint::encoded_len(len) + chunk.len()
    };
    let inner = 2 + data_field + 1 + varint::encoded_len(len);
    out.clear();
    out.reserve(1 + varint::encoded_len(inner as u64) + inner);
    out.push(0x0a);
    varint::encode(inner as u64, out);
    out.extend([0x08, DataType::File as u8]);
    if !chunk.is_empty() {
        out.push(0x12);
        varint::encode(len, out);
        out.extend_from_slice(chunk);
    }
    out.push(0x18);
    varint::encode(len, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::dag_pb;

    #[test]
    fn file_node_writes_blocksizes_unpacked() {
        assert_eq!(
            file_node(&[262_144, 1]),
            [
                0x08, 0x02, 0x18, 0x81, 0x80, 0x10, 0x20, 0x80, 0x80, 0x10, 0x20, 0x01
            ]
        );
    }

    #[test]
    fn hamt_shard_fields_in_order() {
        assert_eq!(
            hamt_shard(&[0x81], 256),
            [0x08, 0x05, 0x12, 0x01, 0x81, 0x28, 0x22, 0x30, 0x80, 0x02]
        );
    }

    #[test]
    fn a_leaf_block_is_the_dag_pb_node_of_its_data() {
        for chunk in [&b""[..], b"hello", &[7u8; 300]] {
            let mut unixfs = vec![0x08, 0x02];
            if !chunk.is_empty() {
                unixfs.push(0x12);
                varint::encode(chunk.len() as u64, &mut unixfs);
                unixfs.extend_from_slice(chunk);
            }
            unixfs.push(0x18);
            varint::encode(chunk.len() as u64, &mut unixfs);
            let mut block = vec![1, 2, 3];
            write_file_leaf_block(chunk, &mut block);
            assert_eq!(block, dag_pb::encode(&[], &unixfs));
        }
        let mut empty = Vec::new();
        write_file_leaf_block(b"", &mut empty);
        assert_eq!(empty, [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
    }
}
