//! The agent's MQTT link: connects to the broker, re-subscribes to its topics (its commands,
//! the oracles' rosters) after every (re)connection, hands what arrives to the agent with the
//! topic it came on, and reconnects with backoff when
//! the broker goes away. Heartbeats and status reports are published only while connected:
//! an old heartbeat is worthless, and the next one carries the whole state anyway.

use std::sync::Arc;
use std::time::Duration;

use r1_protocol::Identity;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::{mpsc, watch};
use url::Url;

use crate::config::BrokerConfig;
use crate::metrics::Metrics;
use crate::state::NodeState;

/// Longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

/// Why the link cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The broker URL cannot be used.
    #[error("broker URL {url}: {reason}")]
    Url {
        /// The URL.
        url: Url,
        /// What is wrong.
        reason: String,
    },
    /// The node's last will could not be signed.
    #[error("cannot sign the node's last will: {0}")]
    Will(String),
}

/// One message from the broker.
#[derive(Debug)]
pub struct Inbound {
    /// The topic it was published on.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A publishing handle to the broker.
#[derive(Clone)]
pub struct Link {
    client: AsyncClient,
    state: Arc<NodeState>,
}

impl Link {
    /// Starts the connection to `broker` as `client_id`, logging in as `identity` unless the
    /// URL names a user, subscribed to `subscriptions`, leaving `will` with the broker.
    /// Messages arrive on `inbound`; `connected` turns true on every (re)connection.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        broker: &BrokerConfig,
        identity: &Identity,
        client_id: &str,
        subscriptions: Vec<String>,
        will: rumqttc::LastWill,
        state: Arc<NodeState>,
        metrics: Arc<Metrics>,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<(Self, watch::Receiver<u64>), LinkError> {
        let url = &broker.url;
        let (mut options, login) =
            r1_protocol::mqtt::client_options(url, broker.ca_file.as_deref(), client_id, identity)
                .map_err(|reason| LinkError::Url {
                    url: url.clone(),
                    reason,
                })?;
        options.set_last_will(will);
        let (client, mut events) = AsyncClient::new(options, 64);
        let (connected_tx, connected_rx) = watch::channel(0u64);
        let subscriber = client.clone();
        let link_state = state.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            let mut connections = 0u64;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        delay = Duration::from_millis(200);
                        for topic in &subscriptions {
                            if let Err(e) =
                                subscriber.try_subscribe(topic.clone(), QoS::AtLeastOnce)
                            {
                                tracing::warn!(topic, "cannot subscribe: {e}");
                            }
                        }
                        link_state.set_broker_connected(true);
                        metrics.broker_connected.set(1);
                        connections += 1;
                        tracing::info!(connections, "connected to the broker");
                        let _ = connected_tx.send(connections);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let message = Inbound {
                            topic: publish.topic,
                            payload: publish.payload.to_vec(),
                        };
                        if inbound.send(message).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if link_state.broker_connected() {
                            tracing::warn!("lost the broker: {e}; reconnecting");
                        } else {
                            tracing::debug!("broker unreachable: {e}; retrying in {delay:?}");
                        }
                        link_state.set_broker_connected(false);
                        metrics.broker_connected.set(0);
                        if let Err(e) = login.refresh(&mut events.mqtt_options) {
                            tracing::warn!("cannot sign broker credentials: {e}");
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                    }
                }
            }
        });
        Ok((Self { client, state }, connected_rx))
    }

    /// Publishes `payload` on `topic` when connected; returns whether it was queued.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) -> bool {
        if !self.state.broker_connected() {
            return false;
        }
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .is_ok()
    }
}
