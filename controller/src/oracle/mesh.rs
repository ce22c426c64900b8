//! The oracle's MQTT link: subscribes to every node's heartbeats and status reports and to the
//! other oracles' observations and relayed requests, hands what arrives to the runtime, publishes
//! commands, and tells the liveness rules whether this oracle could hear anything at all.

use std::time::Duration;

use r1_protocol::now_ms;
use r1_protocol::topics::{Channel, Topics};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::{mpsc, watch};
use url::Url;

use crate::decide::liveness::BrokerLink;

/// Largest MQTT packet sent or accepted (relayed manifests are bounded by the API's 1 MiB).
const MAX_PACKET_BYTES: usize = 4 << 20;

/// Longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Why the link cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The broker URL cannot be used.
    #[error("broker URL {url}: {reason}")]
    Url {
        /// The URL.
        url: Url,
        /// What is wrong.
        reason: String,
    },
}

/// One message received from the broker.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Topic it arrived on.
    pub topic: String,
    /// The envelope bytes.
    pub payload: Vec<u8>,
    /// When it arrived (unix ms).
    pub received_ms: u64,
}

/// A publishing handle plus the link state.
#[derive(Clone)]
pub struct Mesh {
    client: AsyncClient,
    link: watch::Receiver<BrokerLink>,
}

impl Mesh {
    /// Connects to `url` as `client_id` and subscribes to the oracle's channels under
    /// `topics` after every (re)connection. Messages arrive on the returned receiver.
    pub fn start(
        url: &Url,
        client_id: &str,
        topics: &Topics,
    ) -> Result<(Self, mpsc::Receiver<Inbound>), MeshError> {
        let options = r1_protocol::mqtt::client_options(url, client_id, MAX_PACKET_BYTES).map_err(
            |reason| MeshError::Url {
                url: url.clone(),
                reason,
            },
        )?;
        let (client, mut events) = AsyncClient::new(options, 256);
        let (link_tx, link_rx) = watch::channel(BrokerLink::Disconnected);
        let (inbound_tx, inbound_rx) = mpsc::channel(4096);
        let filters: Vec<String> = [
            Channel::Heartbeat,
            Channel::Status,
            Channel::Observations,
            Channel::Requests,
        ]
        .into_iter()
        .map(|c| topics.all(c))
        .collect();
        let subscriber = client.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        delay = Duration::from_millis(100);
                        for filter in &filters {
                            if let Err(e) =
                                subscriber.try_subscribe(filter.clone(), QoS::AtLeastOnce)
                            {
                                tracing::warn!(filter, "cannot subscribe: {e}");
                            }
                        }
                        tracing::info!("connected to the broker");
                        let _ = link_tx.send(BrokerLink::Connected { since_ms: now_ms() });
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let inbound = Inbound {
                            topic: publish.topic.clone(),
                            payload: publish.payload.to_vec(),
                            received_ms: now_ms(),
                        };
                        if inbound_tx.send(inbound).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if matches!(*link_tx.borrow(), BrokerLink::Connected { .. }) {
                            tracing::warn!("lost the broker: {e}; reconnecting");
                        } else {
                            tracing::debug!("broker unreachable: {e}; retrying in {delay:?}");
                        }
                        let _ = link_tx.send(BrokerLink::Disconnected);
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                    }
                }
            }
        });
        Ok((
            Self {
                client,
                link: link_rx,
            },
            inbound_rx,
        ))
    }

    /// The link right now.
    pub fn link(&self) -> BrokerLink {
        *self.link.borrow()
    }

    /// Publishes `payload` on `topic` when connected; returns whether it was queued.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) -> bool {
        if !matches!(self.link(), BrokerLink::Connected { .. }) {
            return false;
        }
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .is_ok()
    }
}
