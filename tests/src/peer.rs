//! A raw participant on the control plane, for adversarial scenarios: it signs any message with
//! any identity (a stranger's, or a real oracle's key to play a byzantine oracle), publishes it on
//! any topic, and records every envelope it hears on the channels it listens to (to replay a real
//! oracle's command, for instance). Unlike [`crate::node::TestOracle`] it checks nothing it
//! hears and speaks on every channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use r1_protocol::envelope::Sealer;
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::{Address, Envelope, Identity, Message};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use crate::node::{NodeHarnessError, TOPIC_ROOT};

/// One envelope heard on the broker.
#[derive(Debug, Clone)]
pub struct Heard {
    /// The channel it arrived on.
    pub channel: Channel,
    /// The address in its topic (the node or oracle the topic belongs to).
    pub owner: Address,
    /// The bytes, exactly as published.
    pub bytes: Vec<u8>,
}

/// An MQTT client that signs as one identity and records what it hears.
pub struct MqttPeer {
    sealer: Sealer,
    client: Client,
    topics: Topics,
    heard: Arc<Mutex<Vec<Heard>>>,
}

impl MqttPeer {
    /// Connects to `broker_url` (`mqtt://host:port`) as `identity`, subscribed to every topic of
    /// each channel in `listen`; returns once the subscriptions are acknowledged.
    pub fn connect(
        broker_url: &str,
        identity: Identity,
        listen: &[Channel],
    ) -> Result<Self, NodeHarnessError> {
        let (host, port) = host_port(broker_url)?;
        let id = format!(
            "test-peer-{}-{}",
            r1_protocol::hex::encode_bare(&identity.address()[..6]),
            rand::random::<u32>()
        );
        let mut options = MqttOptions::new(id, host, port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut connection) = Client::new(options, 64);
        let topics = Topics::new(TOPIC_ROOT);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let filters: Vec<String> = listen.iter().map(|c| topics.all(*c)).collect();
        let thread_heard = heard.clone();
        let thread_topics = topics.clone();
        let subscriber = client.clone();
        std::thread::spawn(move || {
            let mut acked = 0;
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        acked = 0;
                        if filters.is_empty() {
                            let _ = ready_tx.send(());
                        }
                        for filter in &filters {
                            let _ = subscriber.subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acked += 1;
                        if acked == filters.len() {
                            let _ = ready_tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Some((channel, owner)) = thread_topics.parse(&p.topic)
                            && let Ok(mut heard) = thread_heard.lock()
                        {
                            heard.push(Heard {
                                channel,
                                owner,
                                bytes: p.payload.to_vec(),
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| NodeHarnessError::Broker(format!("no subscription on {broker_url}")))?;
        Ok(Self {
            sealer: Sealer::new(identity),
            client,
            topics,
            heard,
        })
    }

    /// The address this peer signs as.
    pub fn address(&self) -> Address {
        self.sealer.address()
    }

    /// Signs `message` as this peer with timestamp `at_ms` (a past or future one to play a stale
    /// or early message).
    pub fn seal_at<M: Message>(&self, message: &M, at_ms: u64) -> Envelope {
        self.sealer
            .seal(message, at_ms)
            .unwrap_or_else(|e| panic!("seal: {e}"))
    }

    /// Publishes `bytes` on the `channel` topic of `owner` (a node's commands, an oracle's
    /// observations, …), whatever they are and whoever signed them.
    pub fn publish_raw(&self, channel: Channel, owner: Address, bytes: Vec<u8>) {
        self.client
            .publish(
                self.topics.topic(channel, &owner),
                QoS::AtLeastOnce,
                false,
                bytes,
            )
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// Signs `message` now and publishes it on the `channel` topic of `owner`; returns what was
    /// sent.
    pub fn send<M: Message>(&self, channel: Channel, owner: Address, message: &M) -> Envelope {
        let envelope = self.seal_at(message, r1_protocol::now_ms());
        self.publish_raw(channel, owner, envelope.to_bytes());
        envelope
    }

    /// Everything heard so far, in arrival order.
    pub fn heard(&self) -> Vec<Heard> {
        self.heard.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// `host` and `port` of `mqtt://host:port`.
fn host_port(url: &str) -> Result<(String, u16), NodeHarnessError> {
    let bad = |reason: &str| NodeHarnessError::Broker(format!("{url}: {reason}"));
    let rest = url
        .strip_prefix("mqtt://")
        .ok_or_else(|| bad("not mqtt://"))?;
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .ok_or_else(|| bad("no port"))?;
    let port = port.parse().map_err(|_| bad("bad port"))?;
    Ok((host.to_owned(), port))
}
