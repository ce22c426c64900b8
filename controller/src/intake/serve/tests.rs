use std::time::Duration;

use r1_crds::pricing::Catalogue;
use r1_ctl::remote::Client;
use r1_protocol::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::intake::http::{ApiState, router};
use crate::intake::store::ResourceStore;

const ESCROW: &str = include_str!("../../../../crds/examples/escrow.yaml");

struct Server {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
}

async fn start(limits: ServeLimits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
    let state = ApiState::new(store, Catalogue::builtin().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_router(
        listener,
        router(state),
        limits,
        std::future::pending(),
    ));
    Server { _dir: dir, addr }
}

fn limits(max_connections: usize, header_read: Duration) -> ServeLimits {
    ServeLimits {
        max_connections,
        header_read,
        body_read: Duration::from_millis(300),
        request: Duration::from_secs(10),
        connection_lifetime: Duration::from_secs(60),
        grace: Duration::from_secs(10),
        stream_lifetime: Duration::from_secs(60),
    }
}

fn csp() -> Identity {
    let secret = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    Identity::from_secret(&r1_protocol::hex::decode(secret).unwrap()).unwrap()
}

/// A connection that sent half a request head and stalls.
async fn slow(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /v1/apply HTTP/1.1\r\nHost: oracle\r\nX-R1-Addr")
        .await
        .unwrap();
    stream
}

/// Reads until the server closes the connection; what it sent, or `None` if it stayed open
/// for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn slow_connections_are_closed_while_signed_requests_pass() {
    let server = start(limits(64, Duration::from_millis(400))).await;
    let mut stalled = Vec::new();
    for _ in 0..40 {
        stalled.push(slow(server.addr).await);
    }
    let client = Client::new(&format!("http://{}", server.addr), csp()).unwrap();
    let applied = client.apply(ESCROW).await.unwrap();
    assert_eq!(applied.len(), 1);
    for stream in &mut stalled {
        assert!(
            closed_within(stream, Duration::from_secs(3))
                .await
                .is_some(),
            "a stalled connection stayed open"
        );
    }
    // Still serving afterwards.
    assert_eq!(client.apply(ESCROW).await.unwrap().len(), 1);
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let server = start(limits(2, Duration::from_secs(30))).await;
    let first = slow(server.addr).await;
    let _second = slow(server.addr).await;
    let url = format!("http://{}/healthz", server.addr);
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served past the connection cap");
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("not served once a slot freed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let server = start(limits(8, Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: oracle\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_within(&mut stream, Duration::from_secs(3))
        .await
        .expect("the idle connection stayed open");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn slow_and_oversized_bodies_are_refused() {
    let server = start(limits(8, Duration::from_secs(5))).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/apply HTTP/1.1\r\nHost: oracle\r\nContent-Length: 100\r\n\r\nkind:")
        .await
        .unwrap();
    let answer = closed_within(&mut stream, Duration::from_secs(3))
        .await
        .expect("a stalled body kept its connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(TIMEOUT), "{answer}");

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/apply HTTP/1.1\r\nHost: oracle\r\nContent-Length: {}\r\n\r\n",
        crate::intake::http::MAX_BODY_BYTES + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_millis(250), stream.read_exact(&mut buf))
        .await
        .expect("refused only after waiting for the body")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 413");
}

/// Serves `/stream`: ten lines 150 ms apart, marked [`LongStream`] when `long`.
async fn start_streaming(limits: ServeLimits, long: bool) -> SocketAddr {
    let route = move || async move {
        let lines = futures_util::stream::unfold(0u32, |n| async move {
            if n == 10 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            Some((
                Ok::<_, std::convert::Infallible>(format!("line {n}\n")),
                n + 1,
            ))
        });
        let response = Response::new(Body::from_stream(lines));
        if long {
            let mut response = response;
            response.extensions_mut().insert(LongStream);
            response
        } else {
            response
        }
    };
    let router = Router::new().route("/stream", axum::routing::get(route));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_router(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    addr
}

/// The body of `/stream` as far as it arrives.
async fn read_stream(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: oracle\r\n\r\n")
        .await
        .unwrap();
    closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("the stream never ended")
}

#[tokio::test]
async fn a_long_stream_outlives_its_connection_and_a_plain_one_does_not() {
    let limits = ServeLimits {
        connection_lifetime: Duration::from_millis(100),
        grace: Duration::from_millis(300),
        ..limits(8, Duration::from_secs(5))
    };
    let long = read_stream(start_streaming(limits, true).await).await;
    assert!(long.contains("line 9"), "the long stream was cut: {long}");
    let plain = read_stream(start_streaming(limits, false).await).await;
    assert!(plain.contains("line 0"), "{plain}");
    assert!(
        !plain.contains("line 9"),
        "a plain response outlived its grace: {plain}"
    );
}
