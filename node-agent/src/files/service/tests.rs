use std::sync::Arc;

use prometheus_client::registry::Registry;
use r1_r1fs::blocks::BlockStore;

use super::*;
use crate::files::metrics::FilesMetrics;

struct Node {
    files: Files,
    allowed: PathBuf,
    outside: PathBuf,
    _dir: tempfile::TempDir,
}

/// A node's service over a store of `quota` bytes, adding only from `<dir>/allowed`, with a
/// peer-to-peer layer that has no roster (so no peers).
async fn node(quota: u64) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let mut registry = Registry::default();
    let mut config = r1_p2p::Config::new(r1_protocol::Identity::generate(), "files-test");
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (client, _events) = r1_p2p::P2p::start(config, &mut registry).await.unwrap();
    let metrics = Arc::new(FilesMetrics::register(&mut registry));
    let store = Arc::new(BlockStore::open(dir.path().join("store"), quota).unwrap());
    let files = Files::new(
        store,
        Net::new(client, metrics.clone()),
        std::slice::from_ref(&allowed),
        metrics,
    );
    Node {
        files,
        allowed,
        outside,
        _dir: dir,
    }
}

fn nothing_kept(files: &Files) -> bool {
    let usage = files.usage().unwrap();
    usage.pins == 0 && usage.blocks == 0
}

#[tokio::test]
async fn paths_outside_the_add_directories_are_refused_even_through_a_symlink() {
    let node = node(u64::MAX).await;
    std::fs::write(node.outside.join("secret"), b"not yours").unwrap();
    std::fs::write(node.allowed.join("fine"), b"yours").unwrap();
    std::os::unix::fs::symlink(node.outside.join("secret"), node.allowed.join("link")).unwrap();
    for path in [
        node.outside.join("secret"),
        node.allowed.join("link"),
        node.allowed.join("../outside/secret"),
        PathBuf::from("/etc/passwd"),
    ] {
        let refused = node
            .files
            .add_path(&path, CidVersion::V0, LOCAL_OWNER, false)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("outside the directories"),
            "{}: {refused}",
            path.display()
        );
    }
    let missing = node
        .files
        .add_path(
            &node.allowed.join("absent"),
            CidVersion::V0,
            LOCAL_OWNER,
            false,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, FilesError::PathRefused { .. }),
        "{missing}"
    );
    assert!(nothing_kept(&node.files));
    let added = node
        .files
        .add_path(
            &node.allowed.join("fine"),
            CidVersion::V0,
            LOCAL_OWNER,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        node.files.owner(added.added.cid).unwrap().as_deref(),
        Some(LOCAL_OWNER)
    );
}

#[tokio::test]
async fn a_file_over_the_quota_is_refused_and_leaves_nothing() {
    let node = node(1 << 20).await;
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(node.allowed.join("big"), &big).unwrap();
    let refused = node
        .files
        .add_path(
            &node.allowed.join("big"),
            CidVersion::V1,
            LOCAL_OWNER,
            false,
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("quota"), "{refused}");
    assert!(nothing_kept(&node.files), "{:?}", node.files.usage());
    let small = node
        .files
        .add_reader_blocking(&big[..1000], CidVersion::V1, "job-3", false)
        .unwrap();
    assert_eq!(
        node.files.owner(small.added.cid).unwrap().as_deref(),
        Some("job-3"),
        "the store still takes what fits"
    );
}

#[tokio::test]
async fn a_directory_is_added_whole_but_not_encrypted() {
    let node = node(u64::MAX).await;
    let dir = node.allowed.join("site");
    std::fs::create_dir_all(dir.join("css")).unwrap();
    std::fs::write(dir.join("index.html"), b"<h1>hi</h1>").unwrap();
    std::fs::write(dir.join("css/site.css"), b"h1 {}").unwrap();
    let refused = node
        .files
        .add_path(&dir, CidVersion::V0, LOCAL_OWNER, true)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("only a file"), "{refused}");
    let added = node
        .files
        .add_path(&dir, CidVersion::V0, LOCAL_OWNER, false)
        .await
        .unwrap();
    let names: Vec<String> = node
        .files
        .ls(added.added.cid)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["css", "index.html"]);
    let stat = node.files.stat(added.added.cid).await.unwrap();
    assert_eq!(stat.kind, r1_r1fs::unixfs::Kind::Directory);
}
