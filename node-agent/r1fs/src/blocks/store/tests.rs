use super::*;
use crate::unixfs::{CidVersion, Importer};

const CHUNK: usize = 262_144;

fn store(quota: u64) -> (tempfile::TempDir, BlockStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), quota).unwrap();
    (dir, store)
}

/// Pseudo-random bytes (xorshift), so no two chunks of a file are equal.
fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Adds `bytes` as an import does: through a lease, then pins the root.
fn add(store: &BlockStore, bytes: &[u8], version: CidVersion) -> Result<Cid, StoreError> {
    let mut lease = store.lease();
    let added = Importer::new(version)
        .add_reader(bytes, &mut lease)
        .map_err(|e| match e {
            crate::unixfs::Error::Sink(e) => *e.downcast::<StoreError>().unwrap(),
            other => panic!("{other}"),
        })?;
    store.pin(&added.cid, "local")?;
    Ok(added.cid)
}

#[test]
fn pinned_files_survive_collection_and_unpinned_ones_go() {
    let (_dir, store) = store(u64::MAX);
    let a = add(&store, &data(3 * CHUNK + 5, 1), CidVersion::V0).unwrap();
    let b = add(&store, &data(CHUNK, 2), CidVersion::V1).unwrap();
    let usage = store.usage().unwrap();
    // Four chunks and their root, and one raw chunk that is its own root.
    assert_eq!((usage.blocks, usage.pins), (4 + 1 + 1, 2));
    assert_eq!(store.collect_garbage().unwrap(), Collected::default());
    assert!(store.get(&a).unwrap().is_some());

    store.unpin(&a).unwrap();
    let collected = store.collect_garbage().unwrap();
    assert_eq!(collected.blocks, 5);
    assert!(store.get(&a).unwrap().is_none());
    assert!(store.get(&b).unwrap().is_some(), "still pinned");
    assert!(matches!(store.unpin(&a), Err(StoreError::NotPinned(_))));
    assert_eq!(
        store.pins().unwrap(),
        [Pin {
            root: b,
            owner: "local".into()
        }]
    );
}

#[test]
fn blocks_shared_by_two_pins_stay_until_both_are_gone() {
    let (_dir, store) = store(u64::MAX);
    let shared = data(CHUNK, 9);
    let mut longer = shared.clone();
    longer.extend(data(CHUNK, 3));
    let one = add(&store, &shared, CidVersion::V1).unwrap();
    let two = add(&store, &longer, CidVersion::V1).unwrap();
    store.unpin(&two).unwrap();
    store.collect_garbage().unwrap();
    assert!(
        store.get(&one).unwrap().is_some(),
        "the shared chunk is the first file"
    );
    store.pin(&one, "again").unwrap();
    assert_eq!(
        store.pins().unwrap()[0].owner,
        "local",
        "a second pin keeps the first owner"
    );
    assert_eq!(store.pinned(&one).unwrap().as_deref(), Some("local"));
    assert_eq!(store.pinned(&two).unwrap(), None);
}

#[test]
fn an_import_over_the_quota_fails_clearly_and_leaves_nothing_pinned() {
    let (_dir, store) = store(2 * CHUNK as u64);
    let error = add(&store, &data(5 * CHUNK, 4), CidVersion::V1).unwrap_err();
    assert!(matches!(error, StoreError::Quota { .. }), "{error}");
    assert!(
        error.to_string().contains("quota of 524288 bytes"),
        "{error}"
    );
    assert!(store.pins().unwrap().is_empty());
    assert_eq!(store.collect_garbage().unwrap().blocks, 2);
    assert_eq!(store.usage().unwrap().bytes, 0);
    add(&store, &data(CHUNK, 4), CidVersion::V1).expect("room again");
}

#[test]
fn a_lease_keeps_an_unfinished_import_from_collection() {
    let (_dir, store) = store(u64::MAX);
    let imported = Importer::new(CidVersion::V0).add_bytes(&data(2 * CHUNK, 5));
    let mut lease = store.lease();
    for block in &imported.blocks {
        lease.put(&block.cid, &block.data).unwrap();
    }
    assert_eq!(store.collect_garbage().unwrap().blocks, 0);
    drop(lease);
    assert_eq!(store.collect_garbage().unwrap().blocks, 3);
}

#[test]
fn wrong_bytes_and_incomplete_dags_are_refused() {
    let (_dir, store) = store(u64::MAX);
    let imported = Importer::new(CidVersion::V0).add_bytes(&data(2 * CHUNK, 6));
    let (leaf, root) = (&imported.blocks[0], imported.blocks.last().unwrap());
    assert!(matches!(
        store.put(&leaf.cid, &root.data),
        Err(StoreError::Corrupt(_))
    ));
    store.put(&root.cid, &root.data).unwrap();
    let error = store.pin(&root.cid, "local").unwrap_err();
    assert!(matches!(error, StoreError::Incomplete { .. }), "{error}");
    assert!(error.to_string().contains("missing"), "{error}");
    assert!(store.pins().unwrap().is_empty());
}

#[test]
fn a_block_altered_on_disk_is_reported_not_served() {
    let (dir, store) = store(u64::MAX);
    let cid = add(&store, b"hello", CidVersion::V0).unwrap();
    let path = store.path(cid.digest());
    assert!(path.starts_with(dir.path()));
    fs::write(&path, b"hellO-ish").unwrap();
    assert!(matches!(store.get(&cid), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_reopened_store_keeps_pins_and_sizes_and_sweeps_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cid, before) = {
        let store = BlockStore::open(dir.path(), u64::MAX).unwrap();
        let cid = add(&store, &data(CHUNK + 1, 7), CidVersion::V0).unwrap();
        (cid, store.usage().unwrap())
    };
    // A crash between writing a block file and indexing it leaves a file nobody names.
    let stray = dir.path().join("blocks").join("ab").join("ab00");
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, b"half").unwrap();

    let store = BlockStore::open(dir.path(), u64::MAX).unwrap();
    assert_eq!(store.usage().unwrap(), before);
    assert!(store.get(&cid).unwrap().is_some());
    assert_eq!(store.collect_garbage().unwrap(), Collected::default());
    assert!(!stray.exists());
    assert!(store.get(&cid).unwrap().is_some());
}
