use std::sync::Arc;

use prometheus_client::registry::Registry;
use r1_r1fs::blocks::BlockStore;
use r1_r1fs::unixfs::Importer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::files::Net;
use crate::files::metrics::FilesMetrics;

const MAX_UPLOAD: u64 = 1 << 20;

struct Served {
    port: u16,
    files: Files,
    _dir: tempfile::TempDir,
}

/// The API of job 1 on 127.0.0.1, over a store of its own and a peer-to-peer layer with no
/// roster (so no peers).
async fn served() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::default();
    let mut config = r1_p2p::Config::new(r1_protocol::Identity::generate(), "api-test");
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (client, _events) = r1_p2p::P2p::start(config, &mut registry).await.unwrap();
    let metrics = Arc::new(FilesMetrics::register(&mut registry));
    let store = Arc::new(BlockStore::open(dir.path(), 64 << 20).unwrap());
    let files = Files::new(store, Net::new(client, metrics.clone()), &[], metrics);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let caller = Caller {
        files: files.clone(),
        owner: "job-1".into(),
        max_upload: MAX_UPLOAD,
    };
    tokio::spawn(async move { axum::serve(listener, router(caller)).await });
    Served {
        port,
        files,
        _dir: dir,
    }
}

/// Sends `head` and `body` raw, then (with `hang_up`) closes the write side; the status code
/// and the whole answer back (0 when there is none).
async fn raw(port: u16, head: &str, body: &[u8], hang_up: bool) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    if hang_up {
        stream.shutdown().await.unwrap();
    }
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes).await;
    let answer = String::from_utf8_lossy(&bytes).into_owned();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

async fn request(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: r1fs\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    raw(port, &head, body, false).await
}

fn empty(files: &Files) -> bool {
    let usage = files.usage().unwrap();
    usage.pins == 0 && usage.blocks == 0
}

#[tokio::test]
async fn an_upload_is_added_pinned_for_the_job_and_read_back() {
    let api = served().await;
    let file: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (code, answer) = request(api.port, "POST", "/v0/add?cid-version=1", &file).await;
    assert_eq!(code, 200, "{answer}");
    let expected = Importer::new(CidVersion::V1)
        .add_bytes(&file)
        .root
        .to_string();
    assert!(answer.contains(&expected), "{answer}");
    let root = parse_cid(&expected).unwrap();
    assert_eq!(api.files.owner(root).unwrap().as_deref(), Some("job-1"));

    let (code, answer) = request(api.port, "GET", &format!("/v0/stat/{expected}"), b"").await;
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("\"size\":300000"), "{answer}");
    let (code, answer) = request(api.port, "GET", &format!("/v0/ls/{expected}"), b"").await;
    assert_eq!(code, 409, "a file is not listed: {answer}");
    let (code, _) = request(api.port, "GET", &format!("/v0/cat/{expected}"), b"").await;
    assert_eq!(code, 200);
    let mut chunks = api.files.cat(root, "job-1", None).await.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        read.extend(chunk.unwrap());
    }
    assert!(read == file);
}

#[tokio::test]
async fn an_encrypted_upload_stores_only_ciphertext_and_reads_back_with_its_key() {
    let api = served().await;
    let file = b"the secret plans, repeated: the secret plans".repeat(2000);
    let (code, answer) = request(api.port, "POST", "/v0/add?encrypt=true", &file).await;
    assert_eq!(code, 200, "{answer}");
    let field = |name: &str| {
        let start = answer.find(&format!("\"{name}\":\"")).unwrap() + name.len() + 4;
        answer[start..start + answer[start..].find('"').unwrap()].to_owned()
    };
    let (cid, key) = (field("cid"), field("key"));
    assert_eq!(key.len(), 64);
    let plain = Importer::new(CidVersion::V0)
        .add_bytes(&file)
        .root
        .to_string();
    assert_ne!(cid, plain, "the CID names the ciphertext");

    let root = parse_cid(&cid).unwrap();
    let mut stored = Vec::new();
    let mut chunks = api.files.cat(root, "job-1", None).await.unwrap();
    while let Some(chunk) = chunks.recv().await {
        stored.extend(chunk.unwrap());
    }
    assert!(
        !stored.windows(18).any(|w| w == b"the secret plans, "),
        "no plaintext at rest"
    );

    let (code, answer) = request(api.port, "GET", &format!("/v0/cat/{cid}?key={key}"), b"").await;
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("the secret plans, repeated"), "decrypted");
    let mut read = Vec::new();
    let mut chunks = api
        .files
        .cat(root, "job-1", parse_key(&key).unwrap())
        .await
        .unwrap();
    while let Some(chunk) = chunks.recv().await {
        read.extend(chunk.unwrap());
    }
    assert!(read == file, "decrypted whole");
    let wrong = "0".repeat(64);
    let mut chunks = api
        .files
        .cat(root, "job-1", parse_key(&wrong).unwrap())
        .await
        .unwrap();
    let mut failed = false;
    while let Some(chunk) = chunks.recv().await {
        match chunk {
            Ok(bytes) => assert!(bytes.is_empty(), "no plaintext under a wrong key"),
            Err(e) => failed = e.to_string().contains("encryption"),
        }
    }
    assert!(failed, "a wrong key ends the read with an error");
    let (code, _) = request(api.port, "GET", &format!("/v0/cat/{cid}?key=xyz"), b"").await;
    assert_eq!(code, 400, "a malformed key");
}

#[tokio::test]
async fn a_truncated_or_oversized_upload_leaves_nothing_behind() {
    let api = served().await;
    let head = "POST /v0/add HTTP/1.1\r\nHost: r1fs\r\nContent-Length: 600000\r\n\r\n";
    raw(api.port, head, &[7u8; 400_000], true).await;
    let failed = || {
        api.files
            .metrics()
            .adds
            .get_or_create(&crate::files::metrics::Outcome {
                outcome: "failed".into(),
            })
            .get()
    };
    for _ in 0..500 {
        if failed() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(failed(), 1, "the broken-off upload failed");
    assert!(empty(&api.files), "{:?}", api.files.usage());

    let big = vec![9u8; (MAX_UPLOAD + 1) as usize];
    let (code, answer) = request(api.port, "POST", "/v0/add", &big).await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("maxUploadBytes"), "{answer}");
    assert!(empty(&api.files), "{:?}", api.files.usage());
}

#[tokio::test]
async fn bad_cids_unknown_roots_and_other_jobs_pins_are_refused() {
    let api = served().await;
    let (code, answer) = request(api.port, "GET", "/v0/cat/not-a-cid", b"").await;
    assert_eq!(code, 400, "{answer}");
    let absent = Importer::new(CidVersion::V0).add_bytes(b"nowhere").root;
    let (code, answer) = request(api.port, "GET", &format!("/v0/cat/{absent}"), b"").await;
    assert_eq!(code, 404, "{answer}");
    let (code, answer) = request(api.port, "POST", "/v0/add?cid-version=2", b"x").await;
    assert_eq!(code, 400, "{answer}");

    let theirs = api
        .files
        .add_reader_blocking(&b"job 2's file"[..], CidVersion::V0, "job-2", false)
        .unwrap()
        .added
        .cid;
    let (code, answer) = request(api.port, "DELETE", &format!("/v0/pin/{theirs}"), b"").await;
    assert_eq!(code, 403, "{answer}");
    assert_eq!(api.files.owner(theirs).unwrap().as_deref(), Some("job-2"));
}
