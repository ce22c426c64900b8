//! Real swarms on 127.0.0.1: rosters, the gate, gossip and requests. Every wait is on an
//! event or a condition with a deadline; nothing sleeps for a fixed time.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use alloy_primitives::Address;
use libp2p::Multiaddr;
use prometheus_client::registry::Registry;
use r1_p2p::{Client, Config, Error, Event, Limits, P2p, ParsedRoster};
use r1_protocol::messages::{Roster, RosterEntry};
use r1_protocol::{Envelope, Identity, now_ms};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

/// Longest any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    #[cfg_attr(not(feature = "quic"), allow(dead_code))]
    Quic,
}

struct Node {
    identity: Identity,
    client: Client,
    events: mpsc::Receiver<Event>,
    /// Events received while waiting for others.
    backlog: VecDeque<Event>,
    registry: Registry,
    addrs: Vec<Multiaddr>,
}

fn fast_limits() -> Limits {
    Limits {
        dial_backoff_initial: Duration::from_millis(100),
        dial_backoff_max: Duration::from_millis(400),
        dial_grace: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

async fn start_node(transport: Transport, limits: Limits) -> Node {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let identity = Identity::generate();
    let mut config = Config::new(identity.clone(), "test");
    let listen = match transport {
        Transport::Tcp => "/ip4/127.0.0.1/tcp/0",
        Transport::Quic => "/ip4/127.0.0.1/udp/0/quic-v1",
    };
    config.listen = vec![listen.parse().expect("multiaddr")];
    config.request_protocols = vec!["echo".into()];
    config.limits = limits;
    let mut registry = Registry::default();
    let (client, events) = P2p::start(config, &mut registry).await.expect("start");
    let addrs = client.listen_addrs().await.expect("listen addrs");
    assert!(!addrs.is_empty());
    Node {
        identity,
        client,
        events,
        backlog: VecDeque::new(),
        registry,
        addrs,
    }
}

impl Node {
    fn address(&self) -> Address {
        self.identity.address()
    }

    fn entry(&self) -> RosterEntry {
        RosterEntry {
            address: self.address(),
            addrs: self.addrs.iter().map(ToString::to_string).collect(),
        }
    }

    /// The first event `want` accepts, from the backlog or the network, within the deadline;
    /// other events are kept for later waits.
    async fn take(&mut self, what: &str, want: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.backlog.iter().position(&want) {
            return self.backlog.remove(i).expect("in the backlog");
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("event channel open");
            if want(&event) {
                return event;
            }
            self.backlog.push_back(event);
        }
    }

    /// What `pick` reads from the first event it accepts (see [`Node::take`]).
    async fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&Event) -> Option<T>) -> T {
        let event = self.take(what, |e| pick(e).is_some()).await;
        pick(&event).expect("picked")
    }

    /// The next inbound request: sender, protocol, payload and reply channel.
    async fn next_request(&mut self) -> (Address, String, Vec<u8>, oneshot::Sender<Vec<u8>>) {
        match self
            .take("a request", |e| matches!(e, Event::Request { .. }))
            .await
        {
            Event::Request {
                from,
                protocol,
                bytes,
                reply,
            } => (from, protocol, bytes, reply),
            other => panic!("not a request: {other:?}"),
        }
    }

    async fn wait_connected(&mut self, peer: Address) {
        self.wait_for("a connection", |e| match e {
            Event::PeerConnected(a) if *a == peer => Some(()),
            _ => None,
        })
        .await;
    }

    async fn wait_disconnected(&mut self, peer: Address) {
        self.wait_for("a disconnection", |e| match e {
            Event::PeerDisconnected(a) if *a == peer => Some(()),
            _ => None,
        })
        .await;
    }

    async fn wait_subscribed(&mut self, peer: Address, topic: &str) {
        self.wait_for("a subscription", |e| match e {
            Event::Subscribed { from, topic: t } if *from == peer && t == topic => Some(()),
            _ => None,
        })
        .await;
    }

    async fn wait_gossip(&mut self, topic: &str) -> (Address, Vec<u8>) {
        self.wait_for("gossip", |e| match e {
            Event::Gossip {
                from,
                topic: t,
                bytes,
            } if t == topic => Some((*from, bytes.clone())),
            _ => None,
        })
        .await
    }

    /// The value of one metric line, e.g. `p2p_refused_connections_total{reason="x"}`.
    fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

fn roster_of(issued_ms: u64, nodes: &[&Node]) -> Roster {
    Roster {
        issued_ms,
        nodes: nodes.iter().map(|n| n.entry()).collect(),
    }
}

fn parsed(issued_ms: u64, nodes: &[&Node]) -> ParsedRoster {
    ParsedRoster::from_message(&roster_of(issued_ms, nodes)).0
}

/// Waits until `check` holds, looking every 20 ms, for at most the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Oracle {
    identity: Identity,
    nonce: u64,
}

impl Oracle {
    fn new() -> Self {
        Self {
            identity: Identity::generate(),
            nonce: 0,
        }
    }

    fn set(&self) -> HashSet<Address> {
        HashSet::from([self.identity.address()])
    }

    fn seal(&mut self, roster: &Roster) -> Vec<u8> {
        self.nonce += 1;
        Envelope::seal(&self.identity, roster, self.nonce, now_ms())
            .expect("seal")
            .to_bytes()
    }
}

async fn three_connect_and_gossip(transport: Transport) {
    let mut a = start_node(transport, fast_limits()).await;
    let mut b = start_node(transport, fast_limits()).await;
    let mut c = start_node(transport, fast_limits()).await;
    for node in [&a, &b, &c] {
        assert!(node.client.subscribe("news").await.expect("subscribe"));
    }
    let mut oracle = Oracle::new();
    let envelope = oracle.seal(&roster_of(now_ms(), &[&a, &b, &c]));
    for node in [&a, &b, &c] {
        let changed = node
            .client
            .offer_roster(envelope.clone(), now_ms(), oracle.set())
            .await
            .expect("roster accepted");
        assert_eq!(changed.added.len(), 3);
        assert_eq!(changed.dropped_addrs, 0);
    }
    let (aa, ba, ca) = (a.address(), b.address(), c.address());
    for (node, others) in [(&mut a, [ba, ca]), (&mut b, [aa, ca]), (&mut c, [aa, ba])] {
        for other in others {
            node.wait_connected(other).await;
        }
        let mut expected = others.to_vec();
        expected.sort();
        assert_eq!(
            node.client.connected_peers().await.expect("peers"),
            expected
        );
        assert_eq!(node.metric("p2p_connected_peers"), 2.0);
    }

    a.wait_subscribed(ba, "news").await;
    a.wait_subscribed(ca, "news").await;
    a.client
        .publish("news", b"hello from a".to_vec())
        .await
        .expect("publish");
    for node in [&mut b, &mut c] {
        let (from, bytes) = node.wait_gossip("news").await;
        assert_eq!(from, aa);
        assert_eq!(bytes, b"hello from a");
    }
    assert_eq!(
        b.metric(r#"p2p_bytes_total{protocol="gossip/news",direction="in"}"#),
        12.0
    );
    assert_eq!(a.metric("p2p_rosters_accepted_total"), 1.0);
}

#[tokio::test]
async fn three_peers_connect_and_gossip_over_tcp() {
    three_connect_and_gossip(Transport::Tcp).await;
}

#[cfg(feature = "quic")]
#[tokio::test]
async fn three_peers_connect_and_gossip_over_quic() {
    three_connect_and_gossip(Transport::Quic).await;
}

#[tokio::test]
async fn a_stranger_cannot_connect_or_request() {
    let mut a = start_node(Transport::Tcp, fast_limits()).await;
    let b = start_node(Transport::Tcp, fast_limits()).await;
    let stranger = start_node(Transport::Tcp, fast_limits()).await;
    let roster = parsed(1, &[&a, &b]);
    a.client.set_roster(roster.clone()).await.expect("roster");
    b.client.set_roster(roster).await.expect("roster");
    a.wait_connected(b.address()).await;
    // The stranger believes it belongs: its own roster lists everyone.
    stranger
        .client
        .set_roster(parsed(1, &[&a, &b, &stranger]))
        .await
        .expect("roster");

    let answer = stranger
        .client
        .request(a.address(), "echo", b"let me in".to_vec())
        .await;
    // Its handshake completes, then A's gate names and refuses it and closes the connection.
    assert!(
        matches!(
            answer,
            Err(Error::ConnectionClosed(_) | Error::Unreachable(_))
        ),
        "{answer:?}"
    );
    eventually("a refused the stranger", || async {
        a.metric(r#"p2p_refused_connections_total{reason="not_on_roster"}"#) >= 1.0
    })
    .await;
    assert_eq!(
        a.client.connected_peers().await.expect("peers"),
        vec![b.address()]
    );
    let mut seen: Vec<Event> = a.backlog.drain(..).collect();
    while let Ok(event) = a.events.try_recv() {
        seen.push(event);
    }
    for event in &seen {
        assert!(
            !matches!(event, Event::Request { .. }),
            "the stranger's request reached a's application"
        );
        assert!(
            !matches!(event, Event::PeerConnected(p) if *p == stranger.address()),
            "the stranger connected"
        );
    }
}

#[tokio::test]
async fn an_ed25519_peer_is_refused() {
    use libp2p::futures::StreamExt;
    use libp2p::swarm::SwarmEvent;

    let a = start_node(Transport::Tcp, fast_limits()).await;
    let b = start_node(Transport::Tcp, fast_limits()).await;
    a.client
        .set_roster(parsed(1, &[&a, &b]))
        .await
        .expect("roster");
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|_| libp2p::ping::Behaviour::default())
        .expect("behaviour")
        .build();
    swarm.dial(a.addrs[0].clone()).expect("dial");
    let deadline = Instant::now() + DEADLINE;
    // The handshake completes, then a's gate refuses the peer id and closes the connection.
    loop {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .expect("the ed25519 peer heard back");
        match event {
            SwarmEvent::ConnectionClosed { .. } | SwarmEvent::OutgoingConnectionError { .. } => {
                break;
            }
            _ => {}
        }
    }
    eventually("a refused the ed25519 peer", || async {
        a.metric(r#"p2p_refused_connections_total{reason="not_secp256k1"}"#) >= 1.0
    })
    .await;
    assert!(a.client.connected_peers().await.expect("peers").is_empty());
}

#[tokio::test]
async fn a_roster_that_drops_a_peer_disconnects_it() {
    let mut a = start_node(Transport::Tcp, fast_limits()).await;
    let mut b = start_node(Transport::Tcp, fast_limits()).await;
    let mut c = start_node(Transport::Tcp, fast_limits()).await;
    let mut oracle = Oracle::new();
    let issued = now_ms();
    let all = oracle.seal(&roster_of(issued - 1, &[&a, &b, &c]));
    for node in [&a, &b, &c] {
        node.client
            .offer_roster(all.clone(), now_ms(), oracle.set())
            .await
            .expect("roster");
    }
    let (aa, ba, ca) = (a.address(), b.address(), c.address());
    for (node, others) in [(&mut a, [ba, ca]), (&mut b, [aa, ca]), (&mut c, [aa, ba])] {
        for other in others {
            node.wait_connected(other).await;
        }
    }

    // C leaves the roster; A and B learn it, C does not (it keeps trying).
    let without_c = oracle.seal(&roster_of(issued, &[&a, &b]));
    for node in [&a, &b] {
        let changed = node
            .client
            .offer_roster(without_c.clone(), now_ms(), oracle.set())
            .await
            .expect("newer roster");
        assert_eq!(changed.removed, vec![c.address()]);
    }
    a.wait_disconnected(c.address()).await;
    b.wait_disconnected(c.address()).await;
    c.wait_disconnected(a.address()).await;
    assert_eq!(
        a.client.connected_peers().await.expect("peers"),
        vec![b.address()]
    );
    assert!(a.metric(r#"p2p_refused_connections_total{reason="dropped_from_roster"}"#) >= 1.0);
    // C redials with backoff and is refused each time.
    eventually("c's redial is refused", || async {
        a.metric(r#"p2p_refused_connections_total{reason="not_on_roster"}"#)
            + b.metric(r#"p2p_refused_connections_total{reason="not_on_roster"}"#)
            >= 1.0
    })
    .await;
    assert!(
        !a.client
            .connected_peers()
            .await
            .expect("peers")
            .contains(&c.address())
    );
}

/// A and B on one roster, connected.
async fn pair(a_limits: Limits, b_limits: Limits) -> (Node, Node) {
    let mut a = start_node(Transport::Tcp, a_limits).await;
    let b = start_node(Transport::Tcp, b_limits).await;
    let roster = parsed(1, &[&a, &b]);
    a.client.set_roster(roster.clone()).await.expect("roster");
    b.client.set_roster(roster).await.expect("roster");
    a.wait_connected(b.address()).await;
    (a, b)
}

#[tokio::test]
async fn request_response_round_trip() {
    let (a, mut b) = pair(fast_limits(), fast_limits()).await;
    let (client, b_address) = (a.client.clone(), b.address());
    let asking =
        tokio::spawn(async move { client.request(b_address, "echo", b"ping".to_vec()).await });
    let (from, protocol, bytes, reply) = b.next_request().await;
    assert_eq!(
        (from, protocol.as_str(), bytes.as_slice()),
        (a.address(), "echo", &b"ping"[..])
    );
    reply.send(b"pong".to_vec()).expect("reply");
    let answer = asking.await.expect("task").expect("answer");
    assert_eq!(answer, b"pong");
    assert_eq!(
        a.metric(r#"p2p_bytes_total{protocol="echo",direction="out"}"#),
        4.0
    );
    assert_eq!(
        b.metric(r#"p2p_bytes_total{protocol="echo",direction="in"}"#),
        4.0
    );

    // A protocol B does not serve never reaches B's application.
    let refused = a.client.request(b.address(), "other", vec![1]).await;
    assert!(
        matches!(refused, Err(Error::UnknownProtocol { ref protocol, .. }) if protocol == "other"),
        "{refused:?}"
    );
    // Dropping the reply answers "no answer" at once.
    let (client, b_address) = (a.client.clone(), b.address());
    let asking = tokio::spawn(async move { client.request(b_address, "echo", vec![2]).await });
    let (_, _, _, reply) = b.next_request().await;
    drop(reply);
    let answer = asking.await.expect("task");
    assert!(
        matches!(answer, Err(Error::NoAnswer(p)) if p == b.address()),
        "{answer:?}"
    );
    // Not on the roster: refused without touching the network.
    let nobody = Identity::generate().address();
    let answer = a.client.request(nobody, "echo", vec![3]).await;
    assert!(
        matches!(answer, Err(Error::NotOnRoster(p)) if p == nobody),
        "{answer:?}"
    );
}

#[tokio::test]
async fn oversize_requests_and_responses_are_refused() {
    let small = Limits {
        max_request_bytes: 1024,
        max_response_bytes: 1024,
        ..fast_limits()
    };
    let (a, mut b) = pair(small.clone(), fast_limits()).await;

    let too_big = a.client.request(b.address(), "echo", vec![0; 1025]).await;
    assert!(
        matches!(
            too_big,
            Err(Error::RequestTooLarge {
                size: 1025,
                limit: 1024
            })
        ),
        "{too_big:?}"
    );

    // B answers 4 KiB; A reads the length, refuses it and says so.
    let (client, b_address) = (a.client.clone(), b.address());
    let asking = tokio::spawn(async move { client.request(b_address, "echo", vec![1]).await });
    let (_, _, _, reply) = b.next_request().await;
    reply.send(vec![7; 4096]).expect("reply");
    let answer = asking.await.expect("task");
    match answer {
        Err(Error::ResponseTooLarge { peer, size, limit }) => {
            assert_eq!((peer, size, limit), (b.address(), 4096, 1024));
        }
        other => panic!("expected ResponseTooLarge, got {other:?}"),
    }
    let message = a
        .client
        .request(b.address(), "echo", vec![0; 1025])
        .await
        .expect_err("too large")
        .to_string();
    assert!(
        message.contains("1025 bytes") && message.contains("1024"),
        "{message}"
    );

    // Now A answers over its own limit: it sends no payload, B hears why.
    let (client, a_address) = (b.client.clone(), a.address());
    let asking = tokio::spawn(async move { client.request(a_address, "echo", vec![1]).await });
    let mut a = a;
    let (_, _, _, reply) = a.next_request().await;
    reply.send(vec![7; 2048]).expect("reply");
    let answer = asking.await.expect("task");
    assert!(
        matches!(
            answer,
            Err(Error::RemoteResponseTooLarge { size: 2048, .. })
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_hits_the_timeout() {
    let impatient = Limits {
        request_timeout: Duration::from_millis(500),
        ..fast_limits()
    };
    let patient = Limits {
        request_timeout: Duration::from_secs(30),
        ..fast_limits()
    };
    let (a, mut b) = pair(impatient, patient).await;
    let (client, b_address) = (a.client.clone(), b.address());
    let started = Instant::now();
    let asking = tokio::spawn(async move { client.request(b_address, "echo", vec![1]).await });
    // B's application holds the request and never answers.
    let (_, _, _, _held) = b.next_request().await;
    let answer = timeout(DEADLINE, asking)
        .await
        .expect("the request ended")
        .expect("task");
    let took = started.elapsed();
    assert!(
        matches!(answer, Err(Error::Timeout(p)) if p == b.address()),
        "{answer:?}"
    );
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn rosters_from_non_oracles_or_older_ones_change_nothing() {
    let mut a = start_node(Transport::Tcp, fast_limits()).await;
    let b = start_node(Transport::Tcp, fast_limits()).await;
    let c = start_node(Transport::Tcp, fast_limits()).await;
    let mut oracle = Oracle::new();
    let issued = now_ms();

    // Signed by someone who is not an oracle (here: a licensed node).
    let mut impostor = Oracle {
        identity: b.identity.clone(),
        nonce: 0,
    };
    let forged = impostor.seal(&roster_of(issued, &[&a, &b, &c]));
    let refused = a
        .client
        .offer_roster(forged, now_ms(), oracle.set())
        .await
        .expect_err("not an oracle");
    assert!(
        matches!(&refused, Error::Roster(r) if r.label() == "unknown_sender"),
        "{refused}"
    );
    assert!(a.client.connected_peers().await.expect("peers").is_empty());

    let current = oracle.seal(&roster_of(issued, &[&a, &b]));
    a.client
        .offer_roster(current, now_ms(), oracle.set())
        .await
        .expect("accepted");
    b.client
        .set_roster(parsed(issued, &[&a, &b]))
        .await
        .expect("roster");
    a.wait_connected(b.address()).await;

    // An older roster that would let C in, and one issued at the same time: both ignored.
    let older = oracle.seal(&roster_of(issued - 1, &[&a, &b, &c]));
    let refused = a
        .client
        .offer_roster(older, now_ms(), oracle.set())
        .await
        .expect_err("older");
    assert!(
        matches!(&refused, Error::Roster(r) if r.label() == "older"),
        "{refused}"
    );
    let same = oracle.seal(&roster_of(issued, &[&a, &b, &c]));
    let refused = a
        .client
        .offer_roster(same, now_ms(), oracle.set())
        .await
        .expect_err("not newer");
    assert!(
        matches!(&refused, Error::Roster(r) if r.label() == "not_newer"),
        "{refused}"
    );

    assert_eq!(a.metric("p2p_rosters_accepted_total"), 1.0);
    for reason in ["unknown_sender", "older", "not_newer"] {
        let series = format!("p2p_rosters_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(a.metric(&series), 1.0, "{series}");
    }
    // C is still a stranger to A.
    c.client
        .set_roster(parsed(issued, &[&a, &b, &c]))
        .await
        .expect("roster");
    let answer = c.client.request(a.address(), "echo", vec![1]).await;
    assert!(answer.is_err(), "{answer:?}");
    eventually("a refused c", || async {
        a.metric(r#"p2p_refused_connections_total{reason="not_on_roster"}"#) >= 1.0
    })
    .await;
    assert_eq!(
        a.client.connected_peers().await.expect("peers"),
        vec![b.address()]
    );
}

#[tokio::test]
async fn gossip_by_an_author_off_the_roster_is_refused() {
    // A knows B; B knows A and D; D knows B. D's message reaches A only through B.
    let mut a = start_node(Transport::Tcp, fast_limits()).await;
    let mut b = start_node(Transport::Tcp, fast_limits()).await;
    let mut d = start_node(Transport::Tcp, fast_limits()).await;
    for node in [&a, &b, &d] {
        node.client.subscribe("news").await.expect("subscribe");
    }
    a.client
        .set_roster(parsed(1, &[&a, &b]))
        .await
        .expect("roster");
    b.client
        .set_roster(parsed(1, &[&a, &b, &d]))
        .await
        .expect("roster");
    d.client
        .set_roster(parsed(1, &[&b, &d]))
        .await
        .expect("roster");
    b.wait_subscribed(a.address(), "news").await;
    b.wait_subscribed(d.address(), "news").await;
    d.wait_subscribed(b.address(), "news").await;

    d.client
        .publish("news", b"from d".to_vec())
        .await
        .expect("publish");
    let (from, _) = b.wait_gossip("news").await;
    assert_eq!(from, d.address());
    eventually("a refused d's gossip", || async {
        a.metric(r#"p2p_gossip_refused_total{reason="not_on_roster"}"#) >= 1.0
    })
    .await;
    // B's own message still reaches A.
    b.client
        .publish("news", b"from b".to_vec())
        .await
        .expect("publish");
    let (from, bytes) = a.wait_gossip("news").await;
    assert_eq!((from, bytes.as_slice()), (b.address(), &b"from b"[..]));
}
