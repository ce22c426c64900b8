//! Images imported while containerd collects garbage arrive whole. What an import writes
//! (blobs, unpacked layers) is referenced by nothing until its image record is written last,
//! and containerd collects unreferenced content just after it starts and after every deletion;
//! the node imports under a lease, so a collection in the middle takes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use containerd_client::Client;
use containerd_client::services::v1::{CreateRequest, DeleteRequest, ListRequest};
use containerd_client::tonic::Request;
use r1_e2e::containerd::PrivateContainerd;
use r1_e2e::images as canned;
use r1_node::runtime::containerd::Containerd;

const ROUNDS: usize = 15;

/// `message` addressed to `namespace`.
fn request<T>(namespace: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = namespace.parse().expect("namespace");
    request.metadata_mut().insert("containerd-namespace", value);
    request
}

/// Runs a full garbage collection of `namespace` back to back until `stop` (a lease deleted
/// with `sync` collects at once); counts them in `done`.
async fn collect_garbage(
    containerd: &PrivateContainerd,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) {
    let client = Client::from_path(containerd.socket())
        .await
        .expect("client");
    let namespace = containerd.namespace().to_owned();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = format!("collector-{n}");
        client
            .leases()
            .create(request(
                &namespace,
                CreateRequest {
                    id: id.clone(),
                    labels: Default::default(),
                },
            ))
            .await
            .expect("create lease");
        client
            .leases()
            .delete(request(&namespace, DeleteRequest { id, sync: true }))
            .await
            .expect("collect");
        done.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn an_image_imported_while_containerd_collects_garbage_arrives_whole() {
    let containerd = Arc::new(PrivateContainerd::start().expect("containerd"));
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("sleeper.tar");
    let reference = "localhost/r1-test/collected:1";
    canned::sleeper(reference)
        .write_archive(&archive)
        .expect("image");
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(async {
        let node = Containerd::connect(containerd.socket(), containerd.namespace())
            .await
            .expect("connect");
        let stop = Arc::new(AtomicBool::new(false));
        let collections = Arc::new(AtomicUsize::new(0));
        let collector = tokio::spawn({
            let (containerd, stop, done) = (containerd.clone(), stop.clone(), collections.clone());
            async move { collect_garbage(&containerd, stop, done).await }
        });
        for round in 0..ROUNDS {
            let before = collections.load(Ordering::Relaxed);
            node.import_archive(&archive)
                .await
                .unwrap_or_else(|e| panic!("import {round}: {e}"));
            let image = node
                .resolve_image(reference)
                .await
                .expect("resolve")
                .expect("the imported image is stored");
            assert!(
                node.snapshot_exists(&image.top_chain_id)
                    .await
                    .expect("stat snapshot"),
                "import {round}: the unpacked layers are there"
            );
            assert!(
                collections.load(Ordering::Relaxed) > before,
                "import {round}: containerd collected garbage during the import"
            );
            node.remove_image(reference).await.expect("remove image");
        }
        stop.store(true, Ordering::Relaxed);
        collector.await.expect("collector");
        let client = Client::from_path(containerd.socket())
            .await
            .expect("client");
        let leases = client
            .leases()
            .list(request(containerd.namespace(), ListRequest::default()))
            .await
            .expect("list leases")
            .into_inner()
            .leases;
        assert!(
            leases.is_empty(),
            "every import released its lease: {leases:?}"
        );
    });
}
