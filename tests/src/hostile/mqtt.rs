//! An outsider on the broker: one MQTT connection that publishes whatever it is given under any
//! topic (heartbeats sealed by keys no chain knows, for instance) and records every topic it
//! hears on the filters it subscribed to.
//!
//! Every connection is built by [`options`], which goes through
//! [`r1_protocol::mqtt::client_options`] like the oracles' and nodes' own: when the broker starts
//! asking for credentials derived from the client's key, that function (and this one call) is
//! the only place to change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r1_protocol::envelope::Sealer;
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::{Address, Identity, Message};
use rumqttc::{Client, ConnectionError, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};

use crate::node::TOPIC_ROOT;

/// How long [`Attacker::connect`] waits for the broker's verdict.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(10);

/// The MQTT options of a client of the broker at `url` signing as `identity`.
pub fn options(url: &str, identity: &Identity) -> Result<MqttOptions, String> {
    let url = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let client_id = format!(
        "outsider-{}-{}",
        r1_protocol::hex::encode_bare(&identity.address()[..6]),
        rand::random::<u32>()
    );
    r1_protocol::mqtt::client_options(&url, None, &client_id, identity).map(|(options, _)| options)
}

/// What the broker made of the attacker's connection and subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing heard yet.
    Pending,
    /// Connected; subscriptions (if any) granted.
    Admitted,
    /// Connected, but a subscription was refused.
    SubscriptionRefused,
    /// The connection was refused or dropped before it was admitted.
    Refused(String),
}

#[derive(Debug, Default)]
struct Shared {
    verdict: Option<Verdict>,
    heard: Vec<String>,
}

/// An MQTT connection of an outsider; its event loop stops when it drops.
pub struct Attacker {
    client: Client,
    topics: Topics,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl Attacker {
    /// Connects to the broker at `url` as `identity`, subscribes to `filters` (raw MQTT
    /// filters such as `#`), and waits for the broker's verdict. A refusal is not an error: it
    /// is what [`Attacker::verdict`] reports.
    pub fn connect(url: &str, identity: &Identity, filters: &[&str]) -> Result<Self, String> {
        let (client, mut connection) = Client::new(options(url, identity)?, 1024);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        let (thread_shared, thread_stop, subscriber) =
            (shared.clone(), stop.clone(), client.clone());
        std::thread::spawn(move || {
            let record = |verdict: Verdict| {
                if let Ok(mut shared) = thread_shared.lock()
                    && shared
                        .verdict
                        .as_ref()
                        .is_none_or(|v| *v == Verdict::Pending)
                {
                    shared.verdict = Some(verdict);
                }
            };
            for event in connection.iter() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if filters.is_empty() {
                            record(Verdict::Admitted);
                        }
                        for filter in &filters {
                            let _ = subscriber.subscribe(filter.clone(), QoS::AtMostOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, SubscribeReasonCode::Failure));
                        record(if refused {
                            Verdict::SubscriptionRefused
                        } else {
                            Verdict::Admitted
                        });
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(mut shared) = thread_shared.lock() {
                            shared.heard.push(p.topic);
                        }
                    }
                    Ok(_) => {}
                    Err(ConnectionError::RequestsDone) => break,
                    Err(e) => {
                        record(Verdict::Refused(e.to_string()));
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        });
        let attacker = Self {
            client,
            topics: Topics::new(TOPIC_ROOT),
            shared,
            stop,
        };
        crate::wait::until(VERDICT_TIMEOUT, || attacker.verdict() != Verdict::Pending);
        Ok(attacker)
    }

    /// What the broker made of the connection so far.
    pub fn verdict(&self) -> Verdict {
        self.shared
            .lock()
            .ok()
            .and_then(|s| s.verdict.clone())
            .unwrap_or(Verdict::Pending)
    }

    /// Every topic heard so far, in arrival order.
    pub fn heard(&self) -> Vec<String> {
        self.shared
            .lock()
            .map(|s| s.heard.clone())
            .unwrap_or_default()
    }

    /// Heard topics of `channel`, whoever's.
    pub fn heard_on(&self, channel: Channel) -> Vec<String> {
        self.heard()
            .into_iter()
            .filter(|t| self.topics.parse(t).is_some_and(|(c, _)| c == channel))
            .collect()
    }

    /// Publishes `bytes` on `owner`'s `channel` topic; false when the client refused it.
    pub fn publish(&self, channel: Channel, owner: Address, bytes: Vec<u8>) -> bool {
        self.client
            .publish(
                self.topics.topic(channel, &owner),
                QoS::AtMostOnce,
                false,
                bytes,
            )
            .is_ok()
    }

    /// Seals `message` as `sealer` now and publishes it on the sealer's own `channel` topic (a
    /// node's heartbeat under its own name, as the oracles expect).
    pub fn publish_as<M: Message>(&self, sealer: &Sealer, channel: Channel, message: &M) -> bool {
        match sealer.seal(message, r1_protocol::now_ms()) {
            Ok(envelope) => self.publish(channel, sealer.address(), envelope.to_bytes()),
            Err(_) => false,
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.disconnect();
    }
}
