//! The harness's real OCI registry: images pushed with skopeo are served under their digests,
//! htpasswd authentication refuses anonymous requests, a corrupted blob is served corrupted,
//! blob downloads are counted, and a restarted registry still holds its images.

use std::path::Path;
use std::time::Duration;

use r1_e2e::images::{ImageInfo, OciImageBuilder, digest};
use r1_e2e::registry::LocalRegistry;

/// The OCI manifest media type, asked for in `Accept`.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Where the test image goes in the registry.
const REPOSITORY: &str = "r1/busybox";
const TAG: &str = "1";

/// A registry's answer to one request.
struct Reply {
    status: u16,
    content_digest: Option<String>,
    body: Vec<u8>,
}

/// A blocking HTTP client for the registry's API.
struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // No pooled connections: one kept alive across a registry restart would be dead.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        Self { runtime, client }
    }

    /// `GET http://<registry><path>`, with basic credentials when given.
    fn get(&self, registry: &LocalRegistry, path: &str, login: Option<(&str, &str)>) -> Reply {
        let url = format!("http://{}{path}", registry.host());
        let mut request = self.client.get(url).header("Accept", OCI_MANIFEST);
        if let Some((user, password)) = login {
            request = request.basic_auth(user, Some(password));
        }
        self.runtime.block_on(async {
            let response = request.send().await.expect("registry answers");
            let status = response.status().as_u16();
            let content_digest = response
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let body = response.bytes().await.expect("body").to_vec();
            Reply {
                status,
                content_digest,
                body,
            }
        })
    }
}

/// Writes a small busybox image archive into `dir`.
fn busybox_archive(dir: &Path) -> (std::path::PathBuf, ImageInfo) {
    let archive = dir.join("busybox.tar");
    let info = OciImageBuilder::new("r1.test/busybox:1")
        .applets(&["sh", "echo"])
        .cmd(&["echo", "hello"])
        .write_archive(&archive)
        .expect("image archive");
    (archive, info)
}

#[test]
fn pushed_image_is_served_under_its_digest_and_blob_downloads_are_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let (archive, info) = busybox_archive(dir.path());
    let pushed = registry
        .push_archive(&archive, &info.reference, &format!("{REPOSITORY}:{TAG}"))
        .expect("push");
    assert_eq!(pushed, info.manifest_digest, "digests are preserved");

    let http = Http::new();
    let manifest = http.get(
        &registry,
        &format!("/v2/{REPOSITORY}/manifests/{TAG}"),
        None,
    );
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.content_digest.as_deref(), Some(pushed.as_str()));
    assert_eq!(digest(&manifest.body), pushed);

    let before = registry.blob_downloads().expect("count");
    let layer_path = format!("/v2/{REPOSITORY}/blobs/{}", info.layer_diff_id);
    let layer = http.get(&registry, &layer_path, None);
    assert_eq!(layer.status, 200);
    assert_eq!(digest(&layer.body), info.layer_diff_id);
    assert!(
        r1_e2e::wait::until(Duration::from_secs(5), || {
            registry.blob_downloads().expect("count") == before + 1
        }),
        "one blob download counted, not {}",
        registry.blob_downloads().expect("count") - before
    );
}

#[test]
fn corrupted_blob_is_served_with_the_same_size_and_another_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let (archive, info) = busybox_archive(dir.path());
    registry
        .push_archive(&archive, &info.reference, &format!("{REPOSITORY}:{TAG}"))
        .expect("push");
    let http = Http::new();
    let layer_path = format!("/v2/{REPOSITORY}/blobs/{}", info.layer_diff_id);
    let intact = http.get(&registry, &layer_path, None);

    registry.corrupt_blob(&info.layer_diff_id).expect("corrupt");
    let corrupted = http.get(&registry, &layer_path, None);
    assert_eq!(corrupted.status, 200);
    assert_eq!(corrupted.body.len(), intact.body.len());
    assert_ne!(digest(&corrupted.body), info.layer_diff_id);
    assert!(registry.corrupt_blob("sha256:nothex").is_err());
}

#[test]
fn authenticated_registry_refuses_anonymous_requests_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (user, password) = ("puller", "s3cret pass");
    let mut registry =
        LocalRegistry::start_with_auth(dir.path(), user, password).expect("registry");
    let http = Http::new();
    assert_eq!(http.get(&registry, "/v2/", None).status, 401);
    assert_eq!(
        http.get(&registry, "/v2/", Some((user, "wrong"))).status,
        401
    );
    assert_eq!(
        http.get(&registry, "/v2/", Some((user, password))).status,
        200
    );

    let (archive, info) = busybox_archive(dir.path());
    let pushed = registry
        .push_archive(&archive, &info.reference, &format!("{REPOSITORY}:{TAG}"))
        .expect("push with credentials");
    let manifest_path = format!("/v2/{REPOSITORY}/manifests/{TAG}");
    assert_eq!(http.get(&registry, &manifest_path, None).status, 401);

    let host = registry.host();
    registry.stop();
    assert!(!r1_e2e::wait::tcp_accepts(registry.addr().port()));
    registry.restart().expect("restart");
    assert_eq!(registry.host(), host);
    let manifest = http.get(&registry, &manifest_path, Some((user, password)));
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.content_digest, Some(pushed));
}
