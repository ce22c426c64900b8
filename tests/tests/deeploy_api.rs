//! The Deeploy API as a CSP uses it: the real `r1ctl` binary against the HTTP server running
//! in-process on 127.0.0.1 over a fresh store, with the example manifests and the Hardhat
//! account they name as owner.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions, where the usual exemption does not reach

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use r1_controller::intake::http::{ApiState, serve};
use r1_controller::intake::store::ResourceStore;
use r1_crds::api::object::ObjectKey;
use r1_crds::api::wire::ErrorBody;
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use r1_e2e::process::bin_path;
use r1_protocol::{Identity, api_auth};

/// Hardhat account #1, the owner in `crds/examples/`.
const CSP_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const CSP_ADDRESS: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
/// Hardhat account #2, another CSP.
const OTHER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/examples")
}

fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

fn identity(secret: &str) -> Identity {
    Identity::from_secret(&r1_protocol::hex::decode(secret).unwrap()).unwrap()
}

struct Server {
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    url: String,
    store: Arc<ResourceStore>,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ResourceStore::open(&dir.path().join("store")).unwrap());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let state = ApiState::new(store.clone(), Catalogue::builtin().unwrap());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(serve(listener, state));
        for (name, secret) in [("csp.key", CSP_KEY), ("other.key", OTHER_KEY)] {
            r1_protocol::keyfile::write(&dir.path().join(name), &identity(secret)).unwrap();
        }
        Self {
            runtime,
            dir,
            url,
            store,
        }
    }

    fn key(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Runs `r1ctl` signing with key file `key`.
    fn r1ctl_as(&self, key: &str, args: &[&str]) -> Output {
        Command::new(bin_path("r1ctl").unwrap())
            .args(args)
            .env("R1_SERVER", &self.url)
            .env("R1_KEY", self.key(key))
            .output()
            .unwrap()
    }

    fn r1ctl(&self, args: &[&str]) -> Output {
        self.r1ctl_as("csp.key", args)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn apply_examples(&self) -> Output {
        self.r1ctl(&[
            "apply",
            "-f",
            &example("escrow.yaml"),
            "-f",
            &example("project.yaml"),
            "-f",
            &example("tunnel.yaml"),
            "-f",
            &example("job-http.yaml"),
        ])
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn job_key() -> ObjectKey {
    ObjectKey::new(Kind::Job, "default", "hello-web")
}

#[test]
fn apply_get_describe_reapply_change_and_delete() {
    let server = Server::start();
    let out = server.apply_examples();
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    for line in [
        "Escrow default/acme-escrow created",
        "DeeployProject default/hello created",
        "Tunnel default/hello-web created",
        "DeeployJob default/hello-web created",
    ] {
        assert!(printed.contains(line), "{printed}");
    }
    let job = server.store.get(&job_key()).unwrap().unwrap();
    assert_eq!(job.metadata.generation, 1);
    assert_eq!(job.metadata.owner.to_checksum(None), CSP_ADDRESS);

    // A table with empty status columns until the reconciler reports.
    let out = server.r1ctl(&["get", "djob"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = text(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "NAME        PHASE   READY   NODES   EPOCH   BUDGET LEFT   AGE"
    );
    assert!(lines[1].starts_with("hello-web "), "{table}");
    assert_eq!(lines.len(), 2, "{table}");
    let out = server.r1ctl(&["get", "deeployjobs", "-o", "wide"]);
    assert!(
        text(&out).contains("localhost:5000/r1-examples/httpd:1"),
        "{}",
        text(&out)
    );
    let out = server.r1ctl(&["get", "esc", "acme-escrow", "-o", "yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let yaml: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(yaml["kind"].as_str(), Some("Escrow"));
    assert_eq!(yaml["metadata"]["generation"].as_i64(), Some(1));
    assert_eq!(yaml["spec"]["chainId"].as_u64(), Some(31337));
    let out = server.r1ctl(&["get", "dproj", "-A", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "hello");
    let out = server.r1ctl(&["get", "tun", "-n", "elsewhere"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("No resources found in elsewhere namespace."));

    let out = server.r1ctl(&["describe", "djob", "hello-web", "-n", "default"]);
    assert!(out.status.success(), "{}", text(&out));
    let described = text(&out);
    for expected in [
        "Name:               hello-web\n",
        "Kind:               DeeployJob\n",
        &format!("Owner:              {CSP_ADDRESS}\n"),
        "Generation:         1\n",
        "Deletion:           not requested\n",
        "  image: localhost:5000/r1-examples/httpd:1\n",
        "<none yet",
    ] {
        assert!(described.contains(expected), "{expected:?} in\n{described}");
    }

    // The same files again change nothing.
    let version = server.store.resource_version();
    let out = server.apply_examples();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches(" unchanged").count(),
        4,
        "{}",
        text(&out)
    );
    assert_eq!(server.store.resource_version(), version);

    // A new image is a new generation.
    let job_yaml = std::fs::read_to_string(examples().join("job-http.yaml")).unwrap();
    let changed = server.write("job-v2.yaml", &job_yaml.replace("httpd:1", "httpd:2"));
    let out = server.r1ctl(&["apply", "-f", &changed]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("DeeployJob default/hello-web configured (generation 2)"),
        "{}",
        text(&out)
    );
    let job = server.store.get(&job_key()).unwrap().unwrap();
    assert_eq!(job.metadata.generation, 2);
    assert_eq!(
        job.spec.job().unwrap().image.as_deref(),
        Some("localhost:5000/r1-examples/httpd:2")
    );

    // What the reconciler writes shows up in the table.
    server
        .store
        .update_status(
            &job_key(),
            Some(job.metadata.resource_version),
            &serde_json::json!({
                "phase": "Running", "ready": "2/2", "currentEpoch": 12, "budgetLeft": "2.25",
                "assignments": [{"replica": 0, "node": "0x90F79bf6EB2c4f870365E785982E1f101E93b906", "state": "running"}]
            }),
        )
        .unwrap();
    let out = server.r1ctl(&["get", "djob", "hello-web"]);
    let row = text(&out);
    assert!(
        row.contains("hello-web   Running   2/2     0x90F7…b906   12      2.25"),
        "{row}"
    );

    // Delete marks; the reconciler finalizes later.
    let out = server.r1ctl(&["delete", "djob", "hello-web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("DeeployJob default/hello-web deletion requested"),
        "{}",
        text(&out)
    );
    let job = server.store.get(&job_key()).unwrap().unwrap();
    assert!(job.metadata.deletion_requested);
    assert!(text(&server.r1ctl(&["get", "djob"])).contains("Deleting"));
    let out = server.r1ctl(&["describe", "djob", "hello-web"]);
    assert!(
        text(&out).contains("Deletion:           requested at "),
        "{}",
        text(&out)
    );

    // The rest by file, in an order that frees what jobs use first.
    let out = server.r1ctl(&["delete", "-f", &examples().display().to_string()]);
    let printed = text(&out);
    assert!(
        printed.contains("DeeployJob default/hello-web deletion already requested"),
        "{printed}"
    );
    assert!(
        printed.contains("Escrow default/acme-escrow deletion requested"),
        "{printed}"
    );
    // shop-project.yaml names a namespace nobody applied anything in.
    assert!(
        printed.contains("error: DeeployJob shop/web not found"),
        "{printed}"
    );
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        server
            .store
            .list_all(Some("default"))
            .unwrap()
            .iter()
            .all(|o| o.metadata.deletion_requested)
    );

    server.store.finalize_delete(&job_key(), None).unwrap();
    let out = server.r1ctl(&["get", "djob", "hello-web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("DeeployJob default/hello-web not found"),
        "{}",
        text(&out)
    );
}

#[test]
fn invalid_manifests_are_rejected_with_their_paths_and_nothing_is_stored() {
    let server = Server::start();
    // Caught before sending.
    let out = server.r1ctl(&[
        "apply",
        "-f",
        &examples()
            .join("invalid/memory-not-a-quantity.yaml")
            .display()
            .to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("spec.resources.memory: \"12XB\" is not a quantity"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("nothing was sent"), "{}", text(&out));

    // Only the oracle can tell: references and owners.
    let out = server.r1ctl(&["apply", "-f", &example("job-http.yaml")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("error: DeeployJob default/hello-web: spec.projectRef.name: DeeployProject \"hello\" not found in namespace \"default\""),
        "{printed}"
    );
    assert!(printed.contains("spec.escrowRef.name"), "{printed}");
    assert!(printed.contains("nothing was applied"), "{printed}");

    let out = server.r1ctl(&[
        "apply",
        "-f",
        &example("project.yaml"),
        "-f",
        &examples()
            .join("invalid/escrow-of-another-owner.yaml")
            .display()
            .to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("Escrow default/other-escrow: spec.owner: 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC is not the signer"), "{printed}");
    assert!(
        printed.contains("DeeployJob default/broken: spec.escrowRef.name"),
        "{printed}"
    );

    assert!(server.store.list_all(None).unwrap().is_empty());
    assert_eq!(server.store.resource_version(), 0);
    assert_eq!(server.store.namespace_owner("default").unwrap(), None);

    // An immutable field, once the objects exist.
    assert!(server.apply_examples().status.success());
    let escrow = std::fs::read_to_string(examples().join("escrow.yaml")).unwrap();
    let moved = server.write("escrow-base.yaml", &escrow.replace("31337", "8453"));
    let out = server.r1ctl(&["apply", "-f", &moved]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("spec.chainId: is immutable after creation (was 31337, now 8453)"),
        "{}",
        text(&out)
    );
}

#[test]
fn another_key_is_refused_in_the_namespace() {
    let server = Server::start();
    assert!(server.apply_examples().status.success());
    let tunnel = std::fs::read_to_string(examples().join("tunnel.yaml")).unwrap();
    let theirs = server.write(
        "their-tunnel.yaml",
        &tunnel.replace("name: hello-web", "name: theirs"),
    );
    // An apply is refused without naming the owner; reads and deletes answer as for objects
    // that do not exist, and listing the namespace shows nothing.
    for (args, refusal) in [
        (
            vec!["apply", "-f", theirs.as_str()],
            "namespace default is not yours",
        ),
        (
            vec!["get", "djob", "hello-web"],
            "DeeployJob default/hello-web not found",
        ),
        (
            vec!["describe", "esc", "acme-escrow"],
            "Escrow default/acme-escrow not found",
        ),
        (
            vec!["delete", "djob", "hello-web"],
            "DeeployJob default/hello-web not found",
        ),
    ] {
        let out = server.r1ctl_as("other.key", &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(refusal), "{args:?}: {}", text(&out));
        assert!(
            !text(&out).contains(CSP_ADDRESS),
            "{args:?}: {}",
            text(&out)
        );
    }
    for args in [vec!["get", "djob"], vec!["get", "djob", "-A"]] {
        let out = server.r1ctl_as("other.key", &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("No resources found"), "{}", text(&out));
    }
    let job = server.store.get(&job_key()).unwrap().unwrap();
    assert!(!job.metadata.deletion_requested);
    assert!(
        server
            .store
            .get(&ObjectKey::new(Kind::Tunnel, "default", "theirs"))
            .unwrap()
            .is_none()
    );

    // In a namespace of its own, the other CSP is at home.
    let own = server.write(
        "own-tunnel.yaml",
        &tunnel.replace("name: hello-web", "name: theirs\n  namespace: other"),
    );
    let out = server.r1ctl_as("other.key", &["apply", "-f", &own]);
    assert!(out.status.success(), "{}", text(&out));
    let out = server.r1ctl(&["get", "tun", "theirs", "-n", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("Tunnel other/theirs not found"),
        "{}",
        text(&out)
    );
}

#[test]
fn unsigned_forged_and_stale_requests_are_refused() {
    let server = Server::start();
    assert!(server.apply_examples().status.success());
    let path = "/v1/deeployjobs/default/hello-web";
    let url = format!("{}{path}", server.url);
    let now = r1_protocol::now_ms();
    let csp = identity(CSP_KEY);
    let other = identity(OTHER_KEY);
    let send =
        |method: reqwest::Method, headers: Option<api_auth::SignedHeaders>, body: &'static str| {
            server.runtime.block_on(async {
                let mut request = reqwest::Client::new().request(method, &url).body(body);
                if let Some(h) = headers {
                    request = request
                        .header(api_auth::ADDRESS_HEADER, h.address)
                        .header(api_auth::TIMESTAMP_HEADER, h.timestamp)
                        .header(api_auth::SIGNATURE_HEADER, h.signature);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let body: ErrorBody = response.json().await.unwrap_or(ErrorBody {
                    error: "ok".into(),
                    reason: String::new(),
                    errors: Vec::new(),
                });
                (status, body.error)
            })
        };
    let sign = |who: &Identity, method: &str, at: u64, body: &str| {
        api_auth::sign(who, method, path, at, body.as_bytes()).unwrap()
    };
    use reqwest::Method;

    assert_eq!(send(Method::GET, None, ""), (401, "unsigned".into()));
    // The other key's signature under the CSP's address.
    let forged = api_auth::SignedHeaders {
        address: CSP_ADDRESS.into(),
        ..sign(&other, "GET", now, "")
    };
    assert_eq!(
        send(Method::GET, Some(forged), ""),
        (401, "address_mismatch".into())
    );
    // A signed GET turned into a DELETE, or given a body.
    assert_eq!(
        send(Method::DELETE, Some(sign(&csp, "GET", now, "")), ""),
        (401, "address_mismatch".into())
    );
    assert_eq!(
        send(Method::GET, Some(sign(&csp, "GET", now, "")), "x"),
        (401, "address_mismatch".into())
    );
    // Garbage in the signature header.
    let garbage = api_auth::SignedHeaders {
        signature: "0x1234".into(),
        ..sign(&csp, "GET", now, "")
    };
    assert_eq!(
        send(Method::GET, Some(garbage), ""),
        (401, "malformed_credentials".into())
    );
    assert_eq!(
        send(Method::GET, Some(sign(&csp, "GET", now - 61_000, "")), ""),
        (401, "stale".into())
    );
    assert_eq!(
        send(Method::GET, Some(sign(&csp, "GET", now + 30_000, "")), ""),
        (401, "future".into())
    );
    // The genuine request passes.
    assert_eq!(
        send(Method::GET, Some(sign(&csp, "GET", now, "")), ""),
        (200, "ok".into())
    );
    assert!(
        !server
            .store
            .get(&job_key())
            .unwrap()
            .unwrap()
            .metadata
            .deletion_requested
    );

    // r1ctl says plainly when the server is not there, and refuses an open key file.
    let out = Command::new(bin_path("r1ctl").unwrap())
        .args([
            "get",
            "djob",
            "--server",
            "http://127.0.0.1:9",
            "--key",
            &server.key("csp.key"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("cannot reach http://127.0.0.1:9/"),
        "{}",
        text(&out)
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        server.key("csp.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = server.r1ctl(&["get", "djob"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
}
