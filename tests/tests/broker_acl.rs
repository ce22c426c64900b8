//! Both test brokers — the embedded rumqttd behind its gate and mosquitto with r1's generated
//! configuration — refuse anonymous and forged logins, keep nodes to their own topics, give a
//! session's output to the one oracle it is addressed to, keep nothing retained, refuse oversized packets, carry the legitimate node ↔ oracle exchange, hold
//! what an oracle that fell behind has not read yet, and
//! serve `mqtts` to clients trusting the test CA (and nothing to plain clients on that port).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use r1_e2e::broker::{Broker, Mosquitto, Role, Rumqttd};
use r1_e2e::node::TOPIC_ROOT;
use r1_protocol::mqtt::{MAX_PACKET_BYTES, client_options};
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::{Address, Identity};
use rumqttc::{Client, Event, MqttOptions, Packet, Publish, QoS};

/// How long a message that should arrive may take.
const ARRIVES: Duration = Duration::from_secs(10);
/// How long to listen for a message that must not arrive.
const QUIET: Duration = Duration::from_millis(1500);

/// A connected test client and what it received: `Some(event)`, or `None` when its
/// connection failed or was cut.
struct Peer {
    address: Address,
    client: Client,
    events: mpsc::Receiver<Option<Event>>,
}

impl Peer {
    /// Connects as a new key admitted with `role`; waits for the CONNACK.
    fn join(broker: &dyn Broker, role: Role) -> Self {
        Self::join_as(broker, Identity::generate(), role)
    }

    /// Connects as `identity` admitted with `role`; waits for the CONNACK.
    fn join_as(broker: &dyn Broker, identity: Identity, role: Role) -> Self {
        let url = broker.admit(identity.address(), role).expect("admit");
        let peer = Self::connect(broker, &url, &identity, MAX_PACKET_BYTES);
        assert!(
            peer.wait(ARRIVES, |e| matches!(
                e,
                Some(Event::Incoming(Packet::ConnAck(_)))
            ))
            .is_some(),
            "{} was not let in at {url}",
            peer.address
        );
        peer
    }

    /// A client for `url` as `identity` sending packets up to `max_packet` bytes.
    fn connect(broker: &dyn Broker, url: &str, identity: &Identity, max_packet: usize) -> Self {
        let (mut options, login) = client_options(
            &url.parse().expect("url"),
            broker.ca_file().as_deref(),
            &format!("acl-{}", rand::random::<u32>()),
            identity,
        )
        .expect("options");
        options.set_max_packet_size(max_packet, max_packet);
        Self::spawn(identity.address(), options, Some(login))
    }

    /// A client with exactly `options`, never refreshing its login.
    fn spawn(
        address: Address,
        options: MqttOptions,
        login: Option<r1_protocol::mqtt::Login>,
    ) -> Self {
        let (client, mut connection) = Client::new(options, 16);
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                match connection.recv() {
                    Ok(Ok(event)) => {
                        if tx.send(Some(event)).is_err() {
                            return;
                        }
                    }
                    Ok(Err(_)) => {
                        if tx.send(None).is_err() {
                            return;
                        }
                        if let Some(login) = &login {
                            let _ = login.refresh(&mut connection.eventloop.mqtt_options);
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(_) => return,
                }
            }
        });
        Self {
            address,
            client,
            events,
        }
    }

    /// The first event within `timeout` that `accept` takes.
    fn wait(
        &self,
        timeout: Duration,
        accept: impl Fn(&Option<Event>) -> bool,
    ) -> Option<Option<Event>> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(event) if accept(&event) => return Some(event),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Subscribes to `filter` and waits for the SUBACK (or the cut, for a refused filter).
    fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("subscribe");
        self.wait(ARRIVES, |e| {
            matches!(e, None | Some(Event::Incoming(Packet::SubAck(_))))
        });
    }

    fn publish(&self, topic: &str, retain: bool, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .expect("publish");
    }

    /// The first message on `topic` with `payload` within `timeout`.
    fn hears(&self, topic: &str, payload: &[u8], timeout: Duration) -> bool {
        self.wait(timeout, |e| {
            is_publish(e, |p| p.topic == topic && p.payload == payload)
        })
        .is_some()
    }

    /// Whether any message arrives within `timeout`.
    fn hears_anything(&self, timeout: Duration) -> Option<Publish> {
        match self.wait(timeout, |e| is_publish(e, |_| true)) {
            Some(Some(Event::Incoming(Packet::Publish(p)))) => Some(p),
            _ => None,
        }
    }

    /// Whether the connection is cut within `timeout`.
    fn is_cut(&self, timeout: Duration) -> bool {
        self.wait(timeout, Option::is_none).is_some()
    }
}

fn is_publish(event: &Option<Event>, accept: impl Fn(&Publish) -> bool) -> bool {
    matches!(event, Some(Event::Incoming(Packet::Publish(p))) if accept(p))
}

fn topics() -> Topics {
    Topics::new(TOPIC_ROOT)
}

/// A client that offers `login` (or none) is not let in.
fn refused(broker: &dyn Broker, login: Option<(String, String)>, what: &str) {
    let mut options = MqttOptions::new(
        format!("acl-{}", rand::random::<u32>()),
        "127.0.0.1",
        broker.port(),
    );
    options.set_keep_alive(Duration::from_secs(5));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let peer = Peer::spawn(Address::ZERO, options, None);
    let first = peer.wait(ARRIVES, |_| true);
    assert!(
        matches!(first, Some(None)),
        "{what}: expected a refusal, got {first:?}"
    );
}

fn authentication(broker: &dyn Broker) {
    refused(broker, None, "anonymous");
    let node = Identity::generate();
    let url = broker.admit(node.address(), Role::Node).expect("admit");
    let parsed: url::Url = url.parse().expect("url");
    if parsed.username().is_empty() {
        // A signature by another key under this node's name.
        let forger = Identity::generate();
        let client_id = "forged";
        let mut login = r1_protocol::broker_auth::sign(&forger, client_id, r1_protocol::now_ms())
            .expect("sign");
        login.username = r1_protocol::hex::encode(node.address().as_slice());
        let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.port());
        options.set_credentials(login.username, login.password);
        let peer = Peer::spawn(node.address(), options, None);
        assert!(
            matches!(peer.wait(ARRIVES, |_| true), Some(None)),
            "a forged signature was let in"
        );
        // A genuine signature from ten minutes ago.
        let stale =
            r1_protocol::broker_auth::sign(&node, client_id, r1_protocol::now_ms() - 600_000)
                .expect("sign");
        refused(
            broker,
            Some((stale.username, stale.password)),
            "stale signature",
        );
    } else {
        refused(
            broker,
            Some((parsed.username().to_owned(), "wrong".to_owned())),
            "wrong password",
        );
    }
}

fn nodes_speak_only_for_themselves(broker: &dyn Broker, cuts: bool) {
    let topics = topics();
    let oracle = Peer::join(broker, Role::Oracle);
    oracle.subscribe(&topics.all(Channel::Heartbeat));
    oracle.subscribe(&topics.all(Channel::Observations));
    let (a, b) = (
        Peer::join(broker, Role::Node),
        Peer::join(broker, Role::Node),
    );
    let b_heartbeat = topics.topic(Channel::Heartbeat, &b.address);
    a.publish(&b_heartbeat, false, b"forged".to_vec());
    if cuts {
        assert!(
            a.is_cut(ARRIVES),
            "the gate kept a node publishing as another"
        );
    }
    b.publish(&b_heartbeat, false, b"genuine".to_vec());
    let heard_forged = oracle.wait(ARRIVES, |e| {
        is_publish(e, |p| p.payload == "forged" || p.payload == "genuine")
    });
    assert!(
        is_publish(&heard_forged.unwrap_or(None), |p| p.payload == "genuine"),
        "the oracle did not hear the genuine heartbeat first"
    );
    assert!(
        !oracle.hears(&b_heartbeat, b"forged", QUIET),
        "a node's heartbeat forged by another reached the oracle"
    );
    // An oracle's channels are not a node's, even under its own address.
    let c = Peer::join(broker, Role::Node);
    let c_observations = topics.topic(Channel::Observations, &c.address);
    c.publish(&c_observations, false, b"not an oracle".to_vec());
    let d = Peer::join(broker, Role::Node);
    let d_heartbeat = topics.topic(Channel::Heartbeat, &d.address);
    d.publish(&d_heartbeat, false, b"own".to_vec());
    assert!(
        oracle.hears(&d_heartbeat, b"own", ARRIVES),
        "a node's own heartbeat did not reach the oracle"
    );
    assert!(
        !oracle.hears(&c_observations, b"not an oracle", QUIET),
        "a node published as an oracle"
    );
}

fn nodes_hear_only_their_own_commands(broker: &dyn Broker) {
    let topics = topics();
    let target = Peer::join(broker, Role::Node);
    let target_commands = topics.topic(Channel::Commands, &target.address);
    target.subscribe(&target_commands);
    let spies: Vec<Peer> = [
        target_commands.clone(),
        topics.all(Channel::Commands),
        format!("{TOPIC_ROOT}/#"),
        "#".to_owned(),
    ]
    .iter()
    .map(|filter| {
        let spy = Peer::join(broker, Role::Node);
        spy.subscribe(filter);
        spy
    })
    .collect();
    let oracle = Peer::join(broker, Role::Oracle);
    oracle.publish(&target_commands, false, b"deploy".to_vec());
    assert!(
        target.hears(&target_commands, b"deploy", ARRIVES),
        "the node did not hear the oracle's command"
    );
    for spy in &spies {
        assert_eq!(
            spy.hears_anything(QUIET).map(|p| p.topic),
            None,
            "a node heard another node's commands"
        );
    }
}

fn session_output_reaches_only_the_oracle_it_is_addressed_to(broker: &dyn Broker) {
    let topics = topics();
    let opener = Peer::join(broker, Role::Oracle);
    opener.subscribe(&topics.session_outputs_to(&opener.address));
    let other = Peer::join(broker, Role::Oracle);
    other.subscribe(&topics.session_outputs_to(&other.address));
    let spies: Vec<Peer> = [
        format!("{}/+", topics.all(Channel::Sessions)),
        topics.session_outputs_to(&opener.address),
        format!("{TOPIC_ROOT}/#"),
    ]
    .iter()
    .map(|filter| {
        let spy = Peer::join(broker, Role::Oracle);
        spy.subscribe(filter);
        spy
    })
    .collect();
    let node = Peer::join(broker, Role::Node);
    let output = topics.session_output(&node.address, &opener.address);
    node.publish(&output, false, b"secret output".to_vec());
    assert!(
        opener.hears(&output, b"secret output", ARRIVES),
        "the oracle that opened the session did not hear its output"
    );
    for peer in spies.iter().chain([&other]) {
        assert_eq!(
            peer.hears_anything(QUIET).map(|p| p.topic),
            None,
            "another oracle heard a session's output"
        );
    }
}

fn nothing_is_retained(broker: &dyn Broker) {
    let topics = topics();
    let oracle = Peer::join(broker, Role::Oracle);
    let own = topics.topic(Channel::Observations, &oracle.address);
    oracle.publish(&own, true, b"retained".to_vec());
    assert!(oracle.is_cut(ARRIVES), "a retained publish was accepted");
    let late = Peer::join(broker, Role::Oracle);
    late.subscribe(&topics.all(Channel::Observations));
    assert_eq!(
        late.hears_anything(QUIET).map(|p| p.topic),
        None,
        "a retained message was kept"
    );
}

fn oversized_packets_are_refused(broker: &dyn Broker) {
    let topics = topics();
    let listener = Peer::join(broker, Role::Oracle);
    listener.subscribe(&topics.all(Channel::Observations));
    let identity = Identity::generate();
    let url = broker
        .admit(identity.address(), Role::Oracle)
        .expect("admit");
    let big = Peer::connect(broker, &url, &identity, 2 * MAX_PACKET_BYTES);
    assert!(
        big.wait(ARRIVES, |e| matches!(
            e,
            Some(Event::Incoming(Packet::ConnAck(_)))
        ))
        .is_some()
    );
    let own = topics.topic(Channel::Observations, &identity.address());
    big.publish(&own, false, vec![b'x'; MAX_PACKET_BYTES + 1]);
    assert!(big.is_cut(ARRIVES), "an oversized publish was accepted");
    drop(big);
    assert_eq!(
        listener.hears_anything(QUIET).map(|p| p.payload.len()),
        None,
        "an oversized message was delivered"
    );
    // The largest publish an r1 client sends passes: rumqttc counts the whole packet (fixed
    // header of 5 bytes at this size, topic length, topic, packet id, payload) against it.
    let fits = Peer::join_as(broker, identity, Role::Oracle);
    let payload = vec![b'y'; MAX_PACKET_BYTES - 5 - 2 - own.len() - 2];
    fits.publish(&own, false, payload.clone());
    assert!(
        listener.hears(&own, &payload, ARRIVES),
        "a message at the limit was not delivered"
    );
}

fn enforces_everything(broker: &dyn Broker, cuts_acl_violations: bool) {
    authentication(broker);
    nodes_speak_only_for_themselves(broker, cuts_acl_violations);
    nodes_hear_only_their_own_commands(broker);
    session_output_reaches_only_the_oracle_it_is_addressed_to(broker);
    nothing_is_retained(broker);
    oversized_packets_are_refused(broker);
}

#[test]
fn the_rumqttd_gate_authenticates_and_enforces_the_acl() {
    let broker = Rumqttd::start().expect("rumqttd");
    enforces_everything(&broker, true);
}

#[test]
fn mosquitto_with_the_generated_config_authenticates_and_enforces_the_acl() {
    let broker = Mosquitto::start().expect("mosquitto");
    enforces_everything(&broker, false);
}

/// Node messages published while the subscribing oracle reads nothing (a busy process).
const WHILE_BEHIND: usize = 3_000;

/// An oracle that stops reading for a while gets every node message published meanwhile once
/// it reads again: the broker holds seconds of a fleet's messages for it (mosquitto's default
/// holds 1,000 per client and silently drops the rest: at 10,000 nodes, one second of
/// heartbeats).
fn a_subscriber_that_falls_behind_loses_nothing(broker: &dyn Broker) {
    let topics = topics();
    let identity = Identity::generate();
    let url = broker
        .admit(identity.address(), Role::Oracle)
        .expect("admit");
    let (options, _login) = client_options(
        &url.parse().expect("url"),
        broker.ca_file().as_deref(),
        "behind",
        &identity,
    )
    .expect("options");
    // Not a `Peer`: its thread reads every event as it comes, and this oracle must read none.
    let (client, mut oracle) = Client::new(options, 16);
    client
        .subscribe(topics.all(Channel::Heartbeat), QoS::AtLeastOnce)
        .expect("subscribe");
    loop {
        match oracle.recv_timeout(ARRIVES) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("the oracle was not subscribed: {other:?}"),
        }
    }
    let nodes: Vec<Peer> = (0..3).map(|_| Peer::join(broker, Role::Node)).collect();
    for (n, node) in nodes.iter().enumerate() {
        let topic = topics.topic(Channel::Heartbeat, &node.address);
        for i in (n..WHILE_BEHIND).step_by(nodes.len()) {
            node.publish(&topic, false, format!("{i:01024}").into_bytes());
        }
    }
    for (n, node) in nodes.iter().enumerate() {
        for _ in (n..WHILE_BEHIND).step_by(nodes.len()) {
            let acked = node.wait(ARRIVES, |e| {
                matches!(e, Some(Event::Incoming(Packet::PubAck(_))))
            });
            assert!(acked.is_some(), "the broker did not take every message");
        }
    }
    let mut heard = 0;
    let deadline = Instant::now() + ARRIVES;
    while heard < WHILE_BEHIND
        && let Some(left) = deadline.checked_duration_since(Instant::now())
    {
        match oracle.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => heard += 1,
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    assert_eq!(
        heard, WHILE_BEHIND,
        "messages published while the oracle read nothing were lost"
    );
}

#[test]
fn the_rumqttd_gate_holds_what_a_slow_oracle_has_not_read() {
    a_subscriber_that_falls_behind_loses_nothing(&Rumqttd::start().expect("rumqttd"));
}

#[test]
fn mosquitto_holds_what_a_slow_oracle_has_not_read() {
    a_subscriber_that_falls_behind_loses_nothing(&Mosquitto::start().expect("mosquitto"));
}

/// Over `mqtts` with the test CA a node and an oracle talk; a plain client on that port is
/// not let in.
fn serves_tls(broker: &dyn Broker) {
    assert!(broker.url().starts_with("mqtts://"), "{}", broker.url());
    let topics = topics();
    let oracle = Peer::join(broker, Role::Oracle);
    oracle.subscribe(&topics.all(Channel::Heartbeat));
    let node = Peer::join(broker, Role::Node);
    let heartbeat = topics.topic(Channel::Heartbeat, &node.address);
    node.publish(&heartbeat, false, b"over tls".to_vec());
    assert!(
        oracle.hears(&heartbeat, b"over tls", ARRIVES),
        "no heartbeat over mqtts"
    );
    let identity = Identity::generate();
    let url = broker.admit(identity.address(), Role::Node).expect("admit");
    let plain = Peer::connect(
        broker,
        &url.replacen("mqtts://", "mqtt://", 1),
        &identity,
        1024,
    );
    assert!(
        matches!(plain.wait(ARRIVES, |_| true), Some(None)),
        "a plain client was let in on the TLS port"
    );
}

#[test]
fn the_rumqttd_gate_serves_mqtts() {
    serves_tls(&Rumqttd::start_tls().expect("rumqttd"));
}

#[test]
fn mosquitto_serves_mqtts() {
    serves_tls(&Mosquitto::start_tls().expect("mosquitto"));
}
