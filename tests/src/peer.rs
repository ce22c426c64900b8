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
use rumqttc::{Client, Event, Packet, QoS};

use crate::broker::{Broker, Role};
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
    /// Connects to `broker` as `identity`, admitted with `role`, subscribed to each of
    /// `filters`; returns once the subscriptions are acknowledged (or refused).
    pub fn connect(
        broker: &dyn Broker,
        identity: Identity,
        role: Role,
        filters: &[String],
    ) -> Result<Self, NodeHarnessError> {
        let broker_url = broker
            .admit(identity.address(), role)
            .map_err(|e| NodeHarnessError::Broker(e.to_string()))?;
        let id = format!(
            "test-peer-{}-{}",
            r1_protocol::hex::encode_bare(&identity.address()[..6]),
            rand::random::<u32>()
        );
        let topics = Topics::new(TOPIC_ROOT);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let filters = filters.to_vec();
        let thread_heard = heard.clone();
        let thread_topics = topics.clone();
        let mut acked = 0;
        let client = crate::mqtt_client::spawn(
            &broker_url,
            broker.ca_file().as_deref(),
            &id,
            &identity,
            move |client, event| match event {
                Some(Event::Incoming(Packet::ConnAck(_))) => {
                    acked = 0;
                    if filters.is_empty() {
                        let _ = ready_tx.send(());
                    }
                    for filter in &filters {
                        let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                }
                Some(Event::Incoming(Packet::SubAck(_))) => {
                    acked += 1;
                    if acked == filters.len() {
                        let _ = ready_tx.send(());
                    }
                }
                Some(Event::Incoming(Packet::Publish(p))) => {
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
                _ => {}
            },
        )?;
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
