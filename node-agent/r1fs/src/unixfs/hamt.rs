//! HAMT-sharded directories as go-unixfs/boxo write them (and kubo reads them): fanout 256,
//! entries placed by the murmur3-x64-64 hash of their name, one byte of the hash per level
//! from the most significant down.
//!
//! In each shard node, a slot holding one entry links it under the slot's two upper-case hex
//! digits followed by the name (`"A3photo.jpg"`); a slot holding several links a child shard
//! under the two digits alone. The node's data is a UnixFS `HAMTShard` with the occupied slots
//! as a big-endian bitfield (leading zero bytes dropped), `hashType` 0x22 and `fanout` 256.
//! The shape depends only on the set of names, not on the order they were added in.

use super::cid::{Cid, CidVersion, Codec};
use super::dag_pb::{self, Link};
use super::data;
use super::dir::Entry;
use super::error::Error;
use super::murmur3;
use super::sink::BlockSink;

/// Slots per shard node (kubo's default `--max-hamt-fanout`).
pub const FANOUT: u64 = 256;

/// Levels a 64-bit hash gives at 8 bits a level.
const MAX_DEPTH: u32 = 8;

/// Builds the sharded directory of `entries` (names distinct): its CID and cumulative size.
pub fn build<S: BlockSink + ?Sized>(
    entries: Vec<Entry>,
    version: CidVersion,
    sink: &mut S,
) -> Result<(Cid, u64), Error>
where
    Error: From<S::Error>,
{
    let mut hashed: Vec<(u64, Entry)> = entries
        .into_iter()
        .map(|e| (murmur3::x64_64(e.name.as_bytes()), e))
        .collect();
    // Ordered by hash, the entries of any slot at any depth are contiguous and in slot order.
    hashed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    shard(&hashed, 0, version, sink)
}

/// The slot of `hash` at `depth`: its `depth`-th byte, most significant first.
fn slot(hash: u64, depth: u32) -> u8 {
    (hash >> (56 - 8 * depth)) as u8
}

/// Builds the shard node of `entries` (sorted by hash, sharing their first `depth` bytes).
fn shard<S: BlockSink + ?Sized>(
    entries: &[(u64, Entry)],
    depth: u32,
    version: CidVersion,
    sink: &mut S,
) -> Result<(Cid, u64), Error>
where
    Error: From<S::Error>,
{
    let mut links = Vec::new();
    let mut bitfield = [0u8; FANOUT as usize / 8];
    let mut rest = entries;
    while let Some(((hash, _), _)) = rest.split_first() {
        let here = slot(*hash, depth);
        let n = rest
            .iter()
            .take_while(|(h, _)| slot(*h, depth) == here)
            .count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        bitfield[bitfield.len() - 1 - usize::from(here / 8)] |= 1 << (here % 8);
        let link = match group {
            [(_, entry)] => Link {
                cid: entry.cid,
                name: format!("{here:02X}{}", entry.name),
                tsize: entry.tsize,
            },
            [(_, a), (_, b), ..] if depth + 1 == MAX_DEPTH => {
                return Err(Error::HashCollision(a.name.clone(), b.name.clone()));
            }
            _ => {
                let (cid, tsize) = shard(group, depth + 1, version, sink)?;
                Link {
                    cid,
                    name: format!("{here:02X}"),
                    tsize,
                }
            }
        };
        links.push(link);
    }
    let below: u64 = links.iter().map(|l| l.tsize).sum();
    let first = bitfield
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bitfield.len());
    let block = dag_pb::encode(&links, &data::hamt_shard(&bitfield[first..], FANOUT));
    let cid = Cid::of(version, Codec::DagPb, &block);
    sink.put(&cid, &block)?;
    Ok((cid, block.len() as u64 + below))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(names: impl IntoIterator<Item = String>) -> Vec<Entry> {
        names
            .into_iter()
            .map(|name| Entry {
                cid: Cid::of(CidVersion::V0, Codec::DagPb, name.as_bytes()),
                name,
                tsize: 7,
            })
            .collect()
    }

    #[test]
    fn slots_are_the_hash_bytes_from_the_top() {
        assert_eq!(slot(0x0123_4567_89ab_cdef, 0), 0x01);
        assert_eq!(slot(0x0123_4567_89ab_cdef, 1), 0x23);
        assert_eq!(slot(0x0123_4567_89ab_cdef, 7), 0xef);
    }

    #[test]
    fn shard_links_are_sorted_and_sized() {
        let names: Vec<String> = (0..600).map(|i| format!("entry-{i}")).collect();
        let mut blocks = Vec::new();
        let (root, tsize) =
            build(entries(names.clone()), CidVersion::V0, &mut blocks).expect("build");
        assert_eq!(blocks.last().map(|b| b.cid), Some(root));
        let total: u64 = blocks.iter().map(|b| b.data.len() as u64).sum();
        assert_eq!(
            tsize,
            total + 600 * 7,
            "Tsize counts every shard block and every entry"
        );
        // Every entry appears exactly once under its slot prefix, at some depth.
        let mut found = Vec::new();
        for block in &blocks {
            let node = dag_pb::decode(&block.data).expect("canonical dag-pb");
            let data = node.data.expect("data");
            assert_eq!(&data[..2], [0x08, 0x05]);
            assert!(data.ends_with(&[0x28, 0x22, 0x30, 0x80, 0x02]));
            for link in node.links {
                if link.name.len() > 2 {
                    found.push(link.name[2..].to_string());
                }
            }
        }
        found.sort();
        let mut expected = names;
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_shape_does_not_depend_on_the_order_of_entries() {
        let names: Vec<String> = (0..300).map(|i| format!("n{i}")).collect();
        let forward = build(
            entries(names.clone()),
            CidVersion::V1,
            &mut crate::unixfs::sink::Discard,
        )
        .expect("build");
        let backward = build(
            entries(names.into_iter().rev()),
            CidVersion::V1,
            &mut crate::unixfs::sink::Discard,
        )
        .expect("build");
        assert_eq!(forward, backward);
    }
}
