//! Directories: one UnixFS `Directory` node linking every entry by name, sorted by name bytes,
//! or a HAMT ([`super::hamt`]) once that node would grow past kubo's sharding threshold.
//!
//! The threshold rule is boxo's (kubo's `Import.UnixFSHAMTDirectorySizeThreshold`, 256 KiB,
//! estimation mode "links"): the estimated size is the sum over entries of the name's byte
//! length plus the child CID's byte length (34 for CIDv0, 36 for CIDv1), and the directory is
//! sharded when that sum is strictly greater than the threshold. Every entry counts,
//! subdirectories included (kubo's MFS links a subdirectory as soon as it makes it).

use super::cid::{Cid, CidVersion, Codec};
use super::dag_pb::{self, Link};
use super::data;
use super::error::Error;
use super::hamt;
use super::sink::BlockSink;

/// Kubo's default sharding threshold: 256 KiB of estimated directory size.
pub const SHARD_THRESHOLD: u64 = 262_144;

/// One directory entry: the child's name, CID and cumulative size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry name (one path component).
    pub name: String,
    /// The child's root CID.
    pub cid: Cid,
    /// The child's block size plus everything below it.
    pub tsize: u64,
}

/// The size boxo estimates for a directory of these entries (names plus CID bytes).
pub fn estimated_size(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .map(|e| (e.name.len() + e.cid.encoded_len()) as u64)
        .sum()
}

/// Builds the directory of `entries` (names distinct), flat or sharded by `threshold`, hands its
/// blocks to `sink` and returns its CID and cumulative size.
pub fn build<S: BlockSink + ?Sized>(
    mut entries: Vec<Entry>,
    version: CidVersion,
    threshold: u64,
    sink: &mut S,
) -> Result<(Cid, u64), Error>
where
    Error: From<S::Error>,
{
    if estimated_size(&entries) > threshold {
        return hamt::build(entries, version, sink);
    }
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let below: u64 = entries.iter().map(|e| e.tsize).sum();
    let links: Vec<Link> = entries
        .into_iter()
        .map(|e| Link {
            cid: e.cid,
            name: e.name,
            tsize: e.tsize,
        })
        .collect();
    let block = dag_pb::encode(&links, &data::directory());
    let cid = Cid::of(version, Codec::DagPb, &block);
    sink.put(&cid, &block)?;
    Ok((cid, block.len() as u64 + below))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::sink::Discard;

    fn entry(name: &str, version: CidVersion) -> Entry {
        let codec = if version == CidVersion::V0 {
            Codec::DagPb
        } else {
            Codec::Raw
        };
        Entry {
            name: name.into(),
            cid: Cid::of(version, codec, name.as_bytes()),
            tsize: 10,
        }
    }

    #[test]
    fn entries_are_linked_in_name_byte_order() {
        let entries = ["b", "B", "a", "é", "a0"]
            .map(|n| entry(n, CidVersion::V0))
            .to_vec();
        let mut blocks = Vec::new();
        build(entries, CidVersion::V0, SHARD_THRESHOLD, &mut blocks).expect("build");
        let node = dag_pb::decode(&blocks[0].data).expect("decode");
        let names: Vec<&str> = node.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["B", "a", "a0", "b", "é"]);
        assert_eq!(node.data.as_deref(), Some(&[0x08, 0x01][..]));
    }

    #[test]
    fn shards_only_above_the_threshold() {
        // 5958 names of 10 bytes with CIDv0 links: 5958 × 44 = 262 152 bytes estimated.
        let entries: Vec<Entry> = (0..5958)
            .map(|i| entry(&format!("file{i:06}"), CidVersion::V0))
            .collect();
        let size = estimated_size(&entries);
        assert_eq!(size, 262_152);
        let shard_type = |threshold| {
            let mut blocks = Vec::new();
            build(entries.clone(), CidVersion::V0, threshold, &mut blocks).expect("build");
            let root = blocks.last().expect("root");
            dag_pb::decode(&root.data)
                .expect("decode")
                .data
                .expect("data")[1]
        };
        assert_eq!(
            shard_type(size),
            0x01,
            "exactly at the threshold stays flat"
        );
        assert_eq!(shard_type(size - 1), 0x05, "one byte over is sharded");
        assert_eq!(shard_type(SHARD_THRESHOLD), 0x05);
    }

    #[test]
    fn an_empty_directory_is_the_bare_directory_node() {
        let (cid, size) =
            build(Vec::new(), CidVersion::V0, SHARD_THRESHOLD, &mut Discard).expect("build");
        assert_eq!(size, 4);
        assert_eq!(
            cid,
            Cid::of(CidVersion::V0, Codec::DagPb, &[0x0a, 0x02, 0x08, 0x01])
        );
    }
}
