//! Following a DAG from its root: which blocks a pin holds, read through any block source, with
//! each block's bytes checked against its CID before its links are trusted.

use std::collections::BTreeSet;

use crate::unixfs::dag_pb::{self, DagPbError};
use crate::unixfs::{Cid, Codec, verify};

/// Why a DAG could not be followed to its leaves.
#[derive(Debug, thiserror::Error)]
pub enum WalkError<E> {
    /// A block the DAG links to is not there.
    #[error("block {0} is missing")]
    Missing(Cid),
    /// A block's bytes do not hash to its CID.
    #[error("block {0} does not match its CID")]
    Corrupt(Cid),
    /// A dag-pb block does not decode.
    #[error("block {cid}: {error}")]
    Decode {
        /// The block.
        cid: Cid,
        /// Why it does not decode.
        error: DagPbError,
    },
    /// The source failed.
    #[error(transparent)]
    Source(E),
}

/// Every distinct block reachable from `root`, the root included, reading each once through
/// `read` (`Ok(None)`: the block is not there).
pub fn reachable<E>(
    root: Cid,
    mut read: impl FnMut(&Cid) -> Result<Option<Vec<u8>>, E>,
) -> Result<BTreeSet<Cid>, WalkError<E>> {
    let mut seen = BTreeSet::new();
    let mut digests = BTreeSet::new();
    let mut pending = vec![root];
    while let Some(cid) = pending.pop() {
        if !digests.insert(*cid.digest()) {
            continue;
        }
        seen.insert(cid);
        let bytes = read(&cid)
            .map_err(WalkError::Source)?
            .ok_or(WalkError::Missing(cid))?;
        if !verify(&cid, &bytes) {
            return Err(WalkError::Corrupt(cid));
        }
        if cid.codec() == Codec::DagPb {
            let node = dag_pb::decode(&bytes).map_err(|error| WalkError::Decode { cid, error })?;
            pending.extend(node.links.into_iter().map(|link| link.cid));
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use super::*;
    use crate::unixfs::{CidVersion, Importer};

    fn blocks(data: &[u8], version: CidVersion) -> (Cid, BTreeMap<[u8; 32], Vec<u8>>) {
        let imported = Importer::new(version).add_bytes(data);
        let map = imported
            .blocks
            .into_iter()
            .map(|b| (*b.cid.digest(), b.data))
            .collect();
        (imported.root, map)
    }

    #[test]
    fn a_file_reaches_its_root_and_each_distinct_chunk_once() {
        // Three chunks: two equal, one different, plus the root.
        let mut data = vec![0u8; 2 * 262_144];
        data.extend(std::iter::repeat_n(7u8, 1000));
        for version in [CidVersion::V0, CidVersion::V1] {
            let (root, map) = blocks(&data, version);
            let mut reads = 0;
            let found = reachable(root, |cid| {
                reads += 1;
                Ok::<_, Infallible>(map.get(cid.digest()).cloned())
            })
            .unwrap();
            assert_eq!(found.len(), 3, "{version:?}");
            assert_eq!(reads, 3);
            assert!(found.contains(&root));
        }
    }

    #[test]
    fn a_missing_or_altered_block_is_named() {
        let data = vec![1u8; 3 * 262_144];
        let (root, mut map) = blocks(&data, CidVersion::V0);
        let leaf = *map.keys().find(|d| *d != root.digest()).unwrap();
        let mut altered = map.clone();
        altered.get_mut(&leaf).unwrap()[20] ^= 1;
        let read = |m: &BTreeMap<[u8; 32], Vec<u8>>, cid: &Cid| {
            Ok::<_, Infallible>(m.get(cid.digest()).cloned())
        };
        assert!(matches!(
            reachable(root, |c| read(&altered, c)),
            Err(WalkError::Corrupt(cid)) if *cid.digest() == leaf
        ));
        map.remove(&leaf);
        assert!(matches!(
            reachable(root, |c| read(&map, c)),
            Err(WalkError::Missing(cid)) if *cid.digest() == leaf
        ));
    }
}
