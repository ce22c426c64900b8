use std::collections::HashMap;
use std::convert::Infallible;

use proptest::prelude::*;

use super::*;
use crate::unixfs::chunker::CHUNK_SIZE;
use crate::unixfs::{CidVersion, Importer};

type Blocks = HashMap<Cid, Vec<u8>>;

fn source(blocks: &Blocks) -> impl FnMut(&Cid) -> Result<Option<Vec<u8>>, Infallible> + '_ {
    |cid| Ok(blocks.get(cid).cloned())
}

fn added(data: &[u8], version: CidVersion) -> (Cid, Blocks) {
    let imported = Importer::new(version).add_bytes(data);
    let blocks = imported
        .blocks
        .into_iter()
        .map(|b| (b.cid, b.data))
        .collect();
    (imported.root, blocks)
}

fn cat_all(blocks: &Blocks, root: Cid) -> Result<Vec<u8>, ReadError<Infallible>> {
    let mut reader = Reader::new(source(blocks));
    let mut out = Vec::new();
    for chunk in reader.cat(root) {
        out.extend(chunk?);
    }
    Ok(out)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[test]
fn files_of_awkward_sizes_read_back_in_both_versions() {
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * CHUNK_SIZE + 5,
    ] {
        for version in [CidVersion::V0, CidVersion::V1] {
            let data = pattern(len);
            let (root, blocks) = added(&data, version);
            assert_eq!(
                cat_all(&blocks, root).unwrap(),
                data,
                "{len} bytes {version:?}"
            );
            let stat = Reader::new(source(&blocks)).stat(&root).unwrap();
            assert_eq!((stat.kind, stat.size), (Kind::File, len as u64));
        }
    }
}

#[test]
fn a_file_two_levels_deep_reads_back() {
    let data = pattern(174 * CHUNK_SIZE + 1);
    let (root, blocks) = added(&data, CidVersion::V1);
    assert!(cat_all(&blocks, root).unwrap() == data);
}

#[test]
fn a_missing_or_corrupt_block_stops_the_read() {
    let data = pattern(3 * CHUNK_SIZE);
    let (root, mut blocks) = added(&data, CidVersion::V0);
    let leaf = *blocks.keys().find(|cid| **cid != root).unwrap();
    blocks.get_mut(&leaf).unwrap()[10] ^= 1;
    assert!(matches!(cat_all(&blocks, root), Err(ReadError::Corrupt(c)) if c == leaf));
    blocks.remove(&leaf);
    assert!(matches!(cat_all(&blocks, root), Err(ReadError::Missing(c)) if c == leaf));
}

fn directory(names: &[String], shard_threshold: u64) -> (Cid, Blocks) {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::write(dir.path().join(name), name.as_bytes()).unwrap();
    }
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/inner"), b"inner").unwrap();
    let mut sink: Vec<crate::unixfs::Block> = Vec::new();
    let added = Importer::new(CidVersion::V1)
        .shard_threshold(shard_threshold)
        .add_dir(dir.path(), &mut sink)
        .unwrap();
    (
        added.cid,
        sink.into_iter().map(|b| (b.cid, b.data)).collect(),
    )
}

#[test]
fn plain_and_sharded_directories_list_the_same_entries() {
    let names: Vec<String> = (0..300).map(|i| format!("file-{i:03}")).collect();
    let (plain, plain_blocks) = directory(&names, u64::MAX);
    let (sharded, sharded_blocks) = directory(&names, 1);
    assert_ne!(plain, sharded);
    let plain_entries = Reader::new(source(&plain_blocks)).ls(&plain).unwrap();
    let sharded_entries = Reader::new(source(&sharded_blocks)).ls(&sharded).unwrap();
    assert_eq!(plain_entries.len(), 301);
    let files = |entries: &[Entry]| -> Vec<(String, Cid)> {
        entries
            .iter()
            .filter(|e| e.name != "sub")
            .map(|e| (e.name.clone(), e.cid))
            .collect()
    };
    assert!(
        files(&plain_entries) == files(&sharded_entries),
        "the same files under the same names"
    );
    assert_eq!(
        sharded_entries.len(),
        301,
        "the sharded listing holds sub too"
    );
    let inner = plain_entries.iter().find(|e| e.name == "sub").unwrap();
    let sub = Reader::new(source(&plain_blocks)).ls(&inner.cid).unwrap();
    assert_eq!(sub[0].name, "inner");
    assert_eq!(cat_all(&plain_blocks, sub[0].cid).unwrap(), b"inner");
    let stat = Reader::new(source(&sharded_blocks)).stat(&sharded).unwrap();
    assert_eq!(stat.kind, Kind::Directory);
}

#[test]
fn a_directory_is_not_read_as_a_file_nor_a_file_listed() {
    let (dir, blocks) = directory(&["a".into()], u64::MAX);
    assert!(matches!(
        cat_all(&blocks, dir),
        Err(ReadError::Kind {
            found: Kind::Directory,
            wanted: Kind::File,
            ..
        })
    ));
    let (file, blocks) = added(b"x", CidVersion::V0);
    assert!(matches!(
        Reader::new(source(&blocks)).ls(&file),
        Err(ReadError::Kind {
            found: Kind::File,
            wanted: Kind::Directory,
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_file_reads_back_as_added(
        data in proptest::collection::vec(any::<u8>(), 0..3 * CHUNK_SIZE),
        v1 in any::<bool>(),
    ) {
        let version = if v1 { CidVersion::V1 } else { CidVersion::V0 };
        let (root, blocks) = added(&data, version);
        prop_assert!(cat_all(&blocks, root).unwrap() == data);
    }

    #[test]
    fn unixfs_data_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_data(&bytes);
    }
}
