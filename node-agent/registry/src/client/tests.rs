#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::fake::{Fake, Mode, PASSWORD, Served, USER};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn config() -> Config {
    Config {
        first_backoff: Duration::from_millis(1),
        ..Config::default()
    }
}

fn client(config: Config) -> Client {
    Client::new(config).unwrap()
}

fn alice() -> Credentials {
    Credentials::Basic {
        username: USER.to_owned(),
        password: PASSWORD.to_owned(),
    }
}

/// A manifest document, its digest, and how the fake serves it (with its digest announced).
fn manifest_doc() -> (Vec<u8>, String, Served) {
    let bytes =
        format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#).into_bytes();
    let digest = digest::of(&bytes);
    let served = Served {
        bytes: bytes.clone(),
        content_type: Some(OCI_MANIFEST.to_owned()),
        digest_header: Some(digest.clone()),
        ..Served::default()
    };
    (bytes, digest, served)
}

/// Blob bytes and their digest.
fn blob(size: usize) -> (Vec<u8>, String) {
    let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let digest = digest::of(&bytes);
    (bytes, digest)
}

/// The fake with one tagged manifest (`1`, also under its digest) and `blobs`, serving.
async fn start(mut fake: Fake, blobs: &[(&[u8], &str, Served)]) -> (Arc<Fake>, ImageName) {
    let (_, digest, served) = manifest_doc();
    fake.manifests.insert("1".to_owned(), served.clone());
    fake.manifests.insert(digest, served);
    for (bytes, digest, served) in blobs {
        let served = Served {
            bytes: bytes.to_vec(),
            ..served.clone()
        };
        fake.blobs.insert((*digest).to_owned(), served);
    }
    let (fake, authority) = fake.serve().await;
    let name = ImageName::parse(&format!("{authority}/team/app:1")).unwrap();
    (fake, name)
}

#[tokio::test]
async fn manifest_by_tag_and_by_digest() {
    let (fake, name) = start(Fake::default(), &[]).await;
    let client = client(config());
    let (bytes, digest, _) = manifest_doc();
    let by_tag = client.manifest(&name, "1", None).await.unwrap();
    assert_eq!(
        by_tag,
        Manifest {
            media_type: OCI_MANIFEST.to_owned(),
            digest: digest.clone(),
            bytes,
        }
    );
    let by_digest = client.manifest(&name, &digest, None).await.unwrap();
    assert_eq!(by_digest, by_tag);
    let requests = fake.requests("/v2/");
    assert_eq!(requests[0].0, "/v2/team/app/manifests/1");
}

#[tokio::test]
async fn manifest_digest_mismatch_is_not_retried() {
    let (_, digest, served) = manifest_doc();
    let mut fake = Fake::default();
    let lying = Served {
        digest_header: Some(digest::of(b"something else")),
        ..served.clone()
    };
    fake.manifests.insert("liar".to_owned(), lying);
    let other = digest::of(b"not this one");
    fake.manifests.insert(other.clone(), served);
    let (fake, name) = start(fake, &[]).await;
    let client = client(config());
    let error = client.manifest(&name, &other, None).await.unwrap_err();
    assert!(
        matches!(&error, RegistryError::DigestMismatch { expected, actual } if *expected == other && *actual == digest),
        "{error}"
    );
    let error = client.manifest(&name, "liar", None).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::DigestMismatch { .. }),
        "{error}"
    );
    assert_eq!(fake.requests("/v2/").len(), 2, "no retry");
}

#[tokio::test]
async fn manifest_size_is_capped() {
    let (_, _, served) = manifest_doc();
    let mut fake = Fake::default();
    let streamed = Served {
        chunked: true,
        digest_header: None,
        bytes: vec![b' '; 5000],
        ..served
    };
    fake.manifests.insert("big".to_owned(), streamed);
    let (_, name) = start(fake, &[]).await;
    let client = client(Config {
        max_manifest_bytes: 40,
        ..config()
    });
    for tag in ["1", "big"] {
        let error = client.manifest(&name, tag, None).await.unwrap_err();
        assert!(
            matches!(error, RegistryError::TooLarge { limit: 40, .. }),
            "{tag}: {error}"
        );
    }
}

#[tokio::test]
async fn missing_things_are_not_found_and_not_retried() {
    let (fake, name) = start(Fake::default(), &[]).await;
    let client = client(config());
    let error = client.manifest(&name, "nope", None).await.unwrap_err();
    assert!(
        matches!(&error, RegistryError::NotFound { what, .. } if what == "manifest nope"),
        "{error}"
    );
    assert!(!error.is_transient());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let (_, digest) = blob(10);
    let error = client
        .blob_to_file(&name, &digest, 10, None, &path, &AtomicU64::new(0))
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::NotFound { .. }), "{error}");
    assert!(!path.exists());
    assert_eq!(fake.requests("/v2/").len(), 2, "one request each");
}

#[tokio::test]
async fn invalid_references_are_refused_before_asking() {
    let (fake, name) = start(Fake::default(), &[]).await;
    let client = client(config());
    let sha512 = format!("sha512:{}", "0".repeat(128));
    for reference in [sha512.as_str(), "sha256:abc", "a/b", "-x", ""] {
        let error = client.manifest(&name, reference, None).await.unwrap_err();
        assert!(
            matches!(error, RegistryError::InvalidReference(_)),
            "{reference:?}: {error}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    std::fs::write(&path, b"stale").unwrap();
    let error = client
        .blob_to_file(&name, &sha512, 1, None, &path, &AtomicU64::new(0))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("only sha256"), "{error}");
    assert!(!path.exists(), "a failed download leaves no file");
    assert!(fake.requests("/").is_empty());
}

#[tokio::test]
async fn token_flow() {
    let fake = Fake {
        mode: Mode::Bearer,
        token_lifetime: 300,
        ..Fake::default()
    };
    let (fake, name) = start(fake, &[]).await;
    let client = client(config());

    let error = client.manifest(&name, "1", None).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsRequired { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("needs a pull secret"), "{error}");

    let wrong = Credentials::Basic {
        username: USER.to_owned(),
        password: "wrong".to_owned(),
    };
    let error = client.manifest(&name, "1", Some(&wrong)).await.unwrap_err();
    assert!(matches!(error, RegistryError::Denied { .. }), "{error}");

    let before = fake.requests("/v2/").len();
    client.manifest(&name, "1", Some(&alice())).await.unwrap();
    client.manifest(&name, "1", Some(&alice())).await.unwrap();
    assert_eq!(fake.tokens.load(Ordering::SeqCst), 1, "the token is cached");
    let requests = fake.requests("/v2/");
    assert_eq!(
        requests.len() - before,
        3,
        "401, the retry with the token, then the token straight away"
    );
    assert!(requests.last().unwrap().1.as_deref() == Some("Bearer tok-0"));
    let token_requests = fake.requests("/token");
    let last = &token_requests.last().unwrap().0;
    assert!(
        last.contains("service=fake") && last.contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{last}"
    );

    let error = client.manifest(&name, "1", None).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsRequired { .. }),
        "another job's token is not borrowed: {error}"
    );
}

#[tokio::test]
async fn short_lived_tokens_are_not_kept() {
    let fake = Fake {
        mode: Mode::Bearer,
        token_lifetime: 5,
        ..Fake::default()
    };
    let (fake, name) = start(fake, &[]).await;
    let client = client(config());
    for _ in 0..2 {
        client.manifest(&name, "1", Some(&alice())).await.unwrap();
    }
    assert_eq!(fake.tokens.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn basic_challenge() {
    let fake = Fake {
        mode: Mode::Basic,
        ..Fake::default()
    };
    let (_, name) = start(fake, &[]).await;
    let client = client(config());
    client.manifest(&name, "1", Some(&alice())).await.unwrap();
    let error = client.manifest(&name, "1", None).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsRequired { .. }),
        "{error}"
    );
    let token = Credentials::Token("t".to_owned());
    let error = client.manifest(&name, "1", Some(&token)).await.unwrap_err();
    assert!(matches!(error, RegistryError::Denied { .. }), "{error}");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let fake = Fake {
        fail_first: 2.into(),
        ..Fake::default()
    };
    let (fake, name) = start(fake, &[]).await;
    let client = client(config());
    client.manifest(&name, "1", None).await.unwrap();
    assert_eq!(fake.requests("/v2/").len(), 3);

    fake.fail_first.store(100, Ordering::SeqCst);
    let error = client.manifest(&name, "1", None).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Status { status: 503, .. }),
        "{error}"
    );
    assert!(error.is_transient());
    assert_eq!(fake.requests("/v2/").len(), 3 + 4, "Config::attempts tries");
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let fake = Fake {
        fail_first: 1.into(),
        failure: (429, Some("0")),
        ..Fake::default()
    };
    let (fake, name) = start(fake, &[]).await;
    // A backoff longer than the test's patience: only Retry-After: 0 lets it pass in time.
    let client = client(Config {
        first_backoff: Duration::from_secs(3600),
        ..config()
    });
    tokio::time::timeout(Duration::from_secs(10), client.manifest(&name, "1", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.requests("/v2/").len(), 2);
}

#[tokio::test]
async fn unreachable_after_all_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    drop(listener);
    let name = ImageName::parse(&format!("{authority}/team/app")).unwrap();
    let client = client(Config {
        attempts: 2,
        ..config()
    });
    let error = client.manifest(&name, "latest", None).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { attempts: 2, .. }),
        "{error}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn blob_to_file_verifies_and_counts() {
    let (bytes, digest) = blob(10_000);
    let served = Served {
        chunked: true,
        ..Served::default()
    };
    let (_, name) = start(Fake::default(), &[(&bytes, &digest, served)]).await;
    let client = client(config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let progress = AtomicU64::new(7);
    client
        .blob_to_file(&name, &digest, 10_000, None, &path, &progress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(progress.load(Ordering::Relaxed), 7 + 10_000);
}

#[tokio::test]
async fn blob_digest_mismatch_removes_the_file() {
    let (bytes, _) = blob(3000);
    let (_, claimed) = blob(2999);
    let (_, name) = start(Fake::default(), &[(&bytes, &claimed, Served::default())]).await;
    let client = client(config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let progress = AtomicU64::new(0);
    let error = client
        .blob_to_file(&name, &claimed, 3000, None, &path, &progress)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::DigestMismatch { expected, .. } if *expected == claimed),
        "{error}"
    );
    assert!(!path.exists());
    assert_eq!(progress.load(Ordering::Relaxed), 0, "progress taken back");
}

#[tokio::test]
async fn blob_size_overrun_stops_reading() {
    let (bytes, digest) = blob(50_000);
    let streamed = Served {
        chunked: true,
        ..Served::default()
    };
    let (_, name) = start(Fake::default(), &[(&bytes, &digest, streamed)]).await;
    let client = client(config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let error = client
        .blob_to_file(&name, &digest, 2500, None, &path, &AtomicU64::new(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::SizeMismatch {
                expected: 2500,
                actual: 3000,
                ..
            }
        ),
        "the first chunk past the size stops it: {error}"
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn blob_announced_size_mismatch() {
    let (bytes, digest) = blob(100);
    let (_, name) = start(Fake::default(), &[(&bytes, &digest, Served::default())]).await;
    let client = client(config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let error = client
        .blob_to_file(&name, &digest, 99, None, &path, &AtomicU64::new(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::SizeMismatch {
                expected: 99,
                actual: 100,
                ..
            }
        ),
        "{error}"
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn stalled_blob_times_out_and_is_retried() {
    let (bytes, digest) = blob(5000);
    let stalling = Served {
        stall_after: Some(2000),
        ..Served::default()
    };
    let (fake, name) = start(Fake::default(), &[(&bytes, &digest, stalling)]).await;
    let client = client(Config {
        read_timeout: Duration::from_millis(200),
        attempts: 2,
        ..config()
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let progress = AtomicU64::new(0);
    let error = client
        .blob_to_file(&name, &digest, 5000, None, &path, &progress)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { attempts: 2, .. }),
        "{error}"
    );
    assert!(!path.exists());
    assert_eq!(progress.load(Ordering::Relaxed), 0);
    assert_eq!(fake.requests("/v2/").len(), 2);
}

#[tokio::test]
async fn redirected_blobs_do_not_carry_credentials() {
    let (bytes, digest) = blob(1234);
    let fake = Fake {
        mode: Mode::Basic,
        redirect_blobs: true,
        ..Fake::default()
    };
    let (fake, name) = start(fake, &[(&bytes, &digest, Served::default())]).await;
    let client = client(config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    client
        .blob_to_file(
            &name,
            &digest,
            1234,
            Some(&alice()),
            &path,
            &AtomicU64::new(0),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let registry = fake.requests("/v2/");
    assert!(
        registry.last().unwrap().1.is_some(),
        "the registry got credentials"
    );
    let storage = fake.requests("/storage/");
    assert_eq!(storage.len(), 1);
    assert_eq!(storage[0].1, None, "the storage host did not");
}

/// What a caller spawns: a task owning a client that fetches through `&self` methods.
struct Puller {
    client: Client,
}

impl Puller {
    async fn pull(&self, reference: &str, credentials: Option<&Credentials>) {
        let name = ImageName::parse(reference).unwrap();
        let manifest = self
            .client
            .manifest(&name, name.reference(), credentials)
            .await;
        let progress = AtomicU64::new(0);
        let path = std::path::PathBuf::from("blob");
        if let Ok(manifest) = manifest {
            let _ = self
                .client
                .blob_to_file(&name, &manifest.digest, 1, credentials, &path, &progress)
                .await;
        }
    }
}

#[test]
fn futures_can_be_spawned() {
    fn spawnable<F: Future + Send + 'static>(_: F) {}
    let puller = Puller {
        client: client(config()),
    };
    let credentials = Some(alice());
    spawnable(async move { puller.pull("nginx", credentials.as_ref()).await });
}
