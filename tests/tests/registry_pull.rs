//! Images pulled from a real registry (Debian's docker-registry on 127.0.0.1) by a node agent
//! on a real containerd: a job's image pulled and run, with the digest the registry holds; a
//! missing tag, a registry that is down and a blob that does not match its digest each back
//! off with a clear reason and leave no image behind; a private registry without credentials
//! says the image needs a pull secret, and runs with one sealed to the node (not with one
//! sealed to another node, nor with a wrong password, and a job without it does not run the
//! image the secret pulled); an image over the node's quota is refused before any
//! download, and a pulled image no workload uses is removed after its horizon; a job pinned by
//! digest runs that digest, and a multi-platform index runs the manifest for the node.

use std::path::Path;
use std::time::Duration;

use r1_e2e::broker::{Broker, Role, Rumqttd};
use r1_e2e::containerd::PrivateContainerd;
use r1_e2e::images::{self as canned, ImageInfo};
use r1_e2e::node::{NodeAgent, NodeSettings, TestOracle, http_get, workload};
use r1_e2e::noise::noise;
use r1_e2e::registry::LocalRegistry;
use r1_protocol::Identity;
use r1_protocol::messages::{
    PortMapping, PortProtocol, WorkloadId, WorkloadReport, WorkloadSpec, WorkloadState,
};
use r1_protocol::sealed;
use r1_protocol::secrets::{PullCredentials, RegistryAuth, SealedSecrets, WorkloadSecrets};

const WAIT: Duration = Duration::from_secs(30);

struct Rig {
    node: NodeAgent,
    oracle: TestOracle,
    containerd: PrivateContainerd,
    _broker: Rumqttd,
}

fn rig() -> Rig {
    rig_with("")
}

/// A node with `config` (top-level YAML lines) added to its configuration.
fn rig_with(config: &str) -> Rig {
    let broker = Rumqttd::start().expect("rumqttd");
    let containerd = PrivateContainerd::start().expect("containerd");
    let oracle = TestOracle::connect(&broker).expect("oracle");
    let identity = Identity::generate();
    let mut node = NodeAgent::new(
        &NodeSettings {
            containerd_socket: containerd.socket().to_owned(),
            namespace: containerd.namespace().to_owned(),
            broker_url: broker.admit(identity.address(), Role::Node).expect("admit"),
            ca_file: broker.ca_file(),
            oracles: vec![oracle.address()],
            heartbeat_seconds: 1,
            backoff_initial_ms: 300,
            labels: Vec::new(),
        },
        &identity,
    )
    .expect("node");
    node.add_config(config).expect("config");
    node.start().expect("start node");
    assert!(
        r1_e2e::wait::until(WAIT, || oracle.heartbeat(node.address).is_some()),
        "no heartbeat from the node; its log:\n{}",
        node.log()
    );
    Rig {
        node,
        oracle,
        containerd,
        _broker: broker,
    }
}

/// Pushes a busybox httpd image to `registry` as `repository:tag`; returns the reference a
/// job names and what identifies the image (its digests, which the registry keeps).
fn push_httpd(registry: &LocalRegistry, dir: &Path, repository_tag: &str) -> (String, ImageInfo) {
    let name = format!("localhost/{repository_tag}");
    let archive = dir.join("httpd.tar");
    let info = canned::httpd(&name)
        .write_archive(&archive)
        .expect("image archive");
    let digest = registry
        .push_archive(&archive, &name, repository_tag)
        .expect("push");
    assert_eq!(digest, info.manifest_digest);
    (format!("{}/{repository_tag}", registry.host()), info)
}

/// Images in the rig's containerd namespace.
fn images(rig: &Rig) -> Vec<String> {
    let out = rig
        .containerd
        .ctr(&["images", "ls", "-q"])
        .expect("ctr images ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

impl Rig {
    /// Waits until workload `id` reports a state `accept` takes; panics (with the node's log)
    /// saying it never `what`.
    fn wait(
        &self,
        id: WorkloadId,
        accept: impl Fn(&WorkloadReport) -> bool,
        what: &str,
    ) -> WorkloadReport {
        self.oracle
            .wait_for(self.node.address, id, WAIT, accept)
            .unwrap_or_else(|| panic!("never {what}; log:\n{}", self.node.log()))
    }

    /// Deploys `spec` on the node, then waits as [`Rig::wait`] does.
    fn deploy(
        &self,
        spec: WorkloadSpec,
        accept: impl Fn(&WorkloadReport) -> bool,
        what: &str,
    ) -> WorkloadReport {
        let id = spec.id;
        self.oracle.deploy(self.node.address, spec);
        self.wait(id, accept, what)
    }
}

fn running(w: &WorkloadReport) -> bool {
    w.state == WorkloadState::Running
}

fn backing_off(w: &WorkloadReport) -> bool {
    matches!(w.state, WorkloadState::ImagePullBackOff { .. })
}

fn reason(w: &WorkloadReport) -> String {
    match &w.state {
        WorkloadState::ImagePullBackOff { reason } => reason.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_job_whose_image_lives_in_a_registry_is_pulled_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let (reference, info) = push_httpd(&registry, dir.path(), "acme/web:1");
    let rig = rig();
    let mut spec = workload(1, 0, &reference, 64);
    spec.ports = vec![PortMapping {
        container_port: 8080,
        host_port: None,
        protocol: PortProtocol::Tcp,
    }];
    let report = rig.deploy(spec, running, "running");
    assert_eq!(
        report.image_digest.as_deref(),
        Some(info.manifest_digest.as_str())
    );
    let port = report.ports[0].host_port.expect("host port");
    let mut body = None;
    r1_e2e::wait::until(WAIT, || {
        body = http_get(port, "/");
        body.is_some()
    });
    assert_eq!(body.as_deref(), Some("hello from r1\n"));
    assert!(images(&rig).contains(&reference), "{:?}", images(&rig));
    assert!(registry.blob_downloads().expect("log") >= 1);
}

#[test]
fn a_missing_tag_backs_off_with_the_reason_and_leaves_no_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let (reference, _) = push_httpd(&registry, dir.path(), "acme/web:1");
    let missing = reference.replace(":1", ":2");
    let rig = rig();
    let spec = workload(2, 0, &missing, 64);
    let report = rig.deploy(spec, backing_off, "backed off");
    let reason = reason(&report);
    assert!(
        reason.contains(&missing) && reason.contains("not found"),
        "{reason}"
    );
    assert!(reason.contains("next try in"), "{reason}");
    assert!(images(&rig).is_empty(), "{:?}", images(&rig));
}

#[test]
fn a_registry_that_is_down_backs_off_and_the_pull_succeeds_once_it_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut registry = LocalRegistry::start(dir.path()).expect("registry");
    let (reference, _) = push_httpd(&registry, dir.path(), "acme/web:1");
    registry.stop();
    let rig = rig();
    let spec = workload(3, 0, &reference, 64);
    let id = spec.id;
    let report = rig.deploy(spec, backing_off, "backed off");
    assert!(
        reason(&report).contains("unreachable"),
        "{}",
        reason(&report)
    );
    registry.restart().expect("registry back");
    rig.wait(id, running, "running after the registry came back");
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_leaves_no_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let (reference, info) = push_httpd(&registry, dir.path(), "acme/web:1");
    let layer = info.layer_diff_id;
    registry.corrupt_blob(&layer).expect("corrupt");
    let rig = rig();
    let spec = workload(4, 0, &reference, 64);
    let report = rig.deploy(spec, backing_off, "backed off");
    assert!(reason(&report).contains(&layer), "{}", reason(&report));
    assert!(images(&rig).is_empty(), "{:?}", images(&rig));
}

#[test]
fn a_private_registry_without_credentials_says_the_image_needs_a_pull_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start_with_auth(dir.path(), "acme", "s3cret").expect("registry");
    let (reference, _) = push_httpd(&registry, dir.path(), "acme/private:1");
    let rig = rig();
    let spec = workload(5, 0, &reference, 64);
    let report = rig.deploy(spec, backing_off, "backed off");
    assert!(
        reason(&report).contains("pull secret"),
        "{}",
        reason(&report)
    );
    assert!(images(&rig).is_empty(), "{:?}", images(&rig));
}

#[test]
fn an_image_over_the_node_quota_backs_off_saying_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let name = "localhost/acme/big:1";
    let archive = dir.path().join("big.tar");
    canned::httpd(name)
        .file("/www/big.bin", noise(3 << 20, 5), 0o644)
        .write_archive(&archive)
        .expect("image archive");
    registry
        .push_archive(&archive, name, "acme/big:1")
        .expect("push");
    let rig = rig_with("registries: { quotaBytes: 2097152 }");
    let reference = format!("{}/acme/big:1", registry.host());
    let spec = workload(6, 0, &reference, 64);
    let report = rig.deploy(spec, backing_off, "backed off");
    assert!(
        reason(&report).contains("image quota of 2 MiB"),
        "{}",
        reason(&report)
    );
    assert_eq!(
        registry.blob_downloads().expect("log"),
        0,
        "nothing downloaded"
    );
}

#[test]
fn a_pulled_image_no_workload_uses_is_removed_after_its_horizon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let (reference, _) = push_httpd(&registry, dir.path(), "acme/web:1");
    let rig = rig_with("registries: { unusedImageSeconds: 1 }");
    let spec = workload(7, 0, &reference, 64);
    let id = spec.id;
    rig.deploy(spec, running, "running");
    assert!(images(&rig).contains(&reference), "kept while in use");
    rig.oracle.stop(rig.node.address, id);
    assert!(
        r1_e2e::wait::until(WAIT, || !images(&rig).contains(&reference)),
        "still there: {:?}; log:\n{}",
        images(&rig),
        rig.node.log()
    );
}

/// The raw manifest `reference` names, as skopeo reads it from the registry.
fn raw_manifest(reference: &str) -> Vec<u8> {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_job_pinned_by_digest_runs_exactly_that_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let (_, info) = push_httpd(&registry, dir.path(), "acme/web:1");
    let pinned = format!("{}/acme/web@{}", registry.host(), info.manifest_digest);
    let rig = rig();
    let spec = workload(8, 0, &pinned, 64);
    let report = rig.deploy(spec, running, "running");
    assert_eq!(
        report.image_digest.as_deref(),
        Some(info.manifest_digest.as_str())
    );
}

#[test]
fn a_multi_platform_index_runs_the_manifest_for_this_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start(dir.path()).expect("registry");
    let (native, info) = push_httpd(&registry, dir.path(), "acme/web:native");
    let decoy_name = "localhost/acme/web:decoy";
    let decoy_archive = dir.path().join("decoy.tar");
    let decoy = canned::exits_with(decoy_name, 3)
        .write_archive(&decoy_archive)
        .expect("decoy archive");
    registry
        .push_archive(&decoy_archive, decoy_name, "acme/web:decoy")
        .expect("push decoy");
    let (this, other) = match std::env::consts::ARCH {
        "aarch64" => ("arm64", "amd64"),
        _ => ("amd64", "arm64"),
    };
    let decoy_size = raw_manifest(&format!("{}/acme/web:decoy", registry.host())).len();
    let native_size = raw_manifest(&native).len();
    let entry = |digest: &str, size: usize, architecture: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "platform": { "architecture": architecture, "os": "linux" },
        })
    };
    // The other platform's entry first: a node taking the first entry would run the decoy.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&decoy.manifest_digest, decoy_size, other),
            entry(&info.manifest_digest, native_size, this),
        ],
    });
    let url = format!("http://{}/v2/acme/web/manifests/multi", registry.host());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let put = runtime
        .block_on(
            reqwest::Client::new()
                .put(url)
                .header("content-type", "application/vnd.oci.image.index.v1+json")
                .body(serde_json::to_vec(&index).expect("index"))
                .send(),
        )
        .expect("put index");
    assert!(put.status().is_success(), "index refused: {}", put.status());
    let rig = rig();
    let spec = workload(9, 0, &format!("{}/acme/web:multi", registry.host()), 64);
    let report = rig.deploy(spec, running, "running");
    assert_eq!(
        report.image_digest.as_deref(),
        Some(info.manifest_digest.as_str()),
        "the {this} manifest runs"
    );
}

#[test]
fn a_private_image_runs_with_credentials_sealed_to_its_node_and_only_with_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::start_with_auth(dir.path(), "acme", "s3cret").expect("registry");
    let (reference, _) = push_httpd(&registry, dir.path(), "acme/private:1");
    let rig = rig();
    let node = rig.node.identity();
    let key = sealed::public_key(&node);
    let secret = |password: &str, sealed_for: (r1_protocol::Address, &[u8; 33]), job: u64| {
        let secrets = WorkloadSecrets {
            env: std::collections::BTreeMap::new(),
            registry: Some(RegistryAuth {
                registry: registry.host(),
                credentials: PullCredentials::Basic {
                    username: "acme".into(),
                    password: password.into(),
                },
            }),
            tunnel_token: None,
        };
        SealedSecrets::seal(&secrets, sealed_for, job).expect("seal")
    };
    let deploy = |job: u64, secrets: SealedSecrets| {
        let mut spec = workload(job, 0, &reference, 64);
        spec.secrets = Some(secrets);
        let id = spec.id;
        rig.oracle.deploy(rig.node.address, spec);
        id
    };

    let stranger = Identity::generate();
    let stranger_key = sealed::public_key(&stranger);
    let misdirected = deploy(
        10,
        secret("s3cret", (stranger.address(), &stranger_key), 10),
    );
    let wrong = deploy(11, secret("guess", (node.address(), &key), 11));
    let right = deploy(12, secret("s3cret", (node.address(), &key), 12));

    rig.wait(right, running, "running with the secret");
    let report = rig.wait(
        misdirected,
        |w| matches!(w.state, WorkloadState::Failed { .. }),
        "failed with another node's secret",
    );
    assert!(
        reason(&report).contains("cannot be opened"),
        "{}",
        reason(&report)
    );
    let report = rig.wait(wrong, backing_off, "backed off with a wrong password");
    assert!(
        reason(&report).contains("denied") || reason(&report).contains("refused"),
        "{}",
        reason(&report)
    );
    // The image is on the node now, but a job without the credentials does not get to run it.
    let freeloader = workload(13, 0, &reference, 64);
    let report = rig.deploy(freeloader, backing_off, "backed off without the secret");
    assert!(
        reason(&report).contains("pull secret"),
        "{}",
        reason(&report)
    );
    let log = rig.node.log();
    assert!(!log.contains("s3cret"), "the password is never logged");
}
