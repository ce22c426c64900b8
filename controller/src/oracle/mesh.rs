//! The oracle's MQTT link: subscribes to every node's heartbeats and status reports and to the
//! other oracles' observations and relayed requests, hands what arrives to the runtime, publishes
//! commands, and tells the liveness rules whether this oracle could hear anything at all (now,
//! and over an epoch: [`LinkHistory`]).
//!
//! What arrives is sorted by [`crate::oracle::admission`] into bounded lanes ([`Inbox`]), each
//! read by its own handler: the event loop never waits for a handler (a full lane drops the
//! message and counts it), and a flood on one lane leaves the others untouched.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use r1_protocol::topics::Topics;
use r1_protocol::{Identity, now_ms};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::{mpsc, watch};
use url::Url;

use crate::decide::liveness::BrokerLink;
use crate::oracle::admission::{Admission, Known, Lane};

/// Messages each lane holds before it drops: licensed nodes' status reports, their
/// heartbeats, other nodes, observations, requests, session output.
const LANE_CAPACITY: [usize; 6] = [2048, 8192, 512, 1024, 8192, 2048];

/// Longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Connections remembered by [`LinkHistory`]: days of a flapping link at one per minute.
const MAX_CONNECTIONS: usize = 4096;

/// When this oracle was connected to the broker. What it heard during a span it was not
/// connected for says nothing about the nodes, so its availability table for an epoch counts
/// only if it was connected for (almost) all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkHistory {
    /// Connections, oldest first: start and, once it ended, end (unix ms).
    connections: VecDeque<(u64, Option<u64>)>,
}

impl LinkHistory {
    /// A connection started at `at_ms` (ending any still open one there).
    pub fn connected(&mut self, at_ms: u64) {
        self.disconnected(at_ms);
        self.connections.push_back((at_ms, None));
        if self.connections.len() > MAX_CONNECTIONS {
            self.connections.pop_front();
        }
    }

    /// The current connection, if any, ended at `at_ms`.
    pub fn disconnected(&mut self, at_ms: u64) {
        if let Some((_, end @ None)) = self.connections.back_mut() {
            *end = Some(at_ms);
        }
    }

    /// Milliseconds of `[start_ms, end_ms)` this oracle was connected, counting an open
    /// connection as lasting until `now_ms`.
    pub fn connected_ms(&self, start_ms: u64, end_ms: u64, now_ms: u64) -> u64 {
        self.connections
            .iter()
            .map(|&(from, to)| {
                let to = to.unwrap_or(now_ms).min(end_ms);
                to.saturating_sub(from.max(start_ms))
            })
            .sum()
    }
}

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

/// The lanes messages arrive on (see [`Lane`]).
#[derive(Debug)]
pub struct Inbox {
    /// Status reports of licensed nodes.
    pub licensed_status: mpsc::Receiver<Inbound>,
    /// Heartbeats of licensed nodes.
    pub licensed_nodes: mpsc::Receiver<Inbound>,
    /// Heartbeats and status reports of every other node.
    pub other_nodes: mpsc::Receiver<Inbound>,
    /// Other oracles' observations.
    pub observations: mpsc::Receiver<Inbound>,
    /// Other oracles' relayed requests.
    pub requests: mpsc::Receiver<Inbound>,
    /// Output of logs and exec sessions.
    pub sessions: mpsc::Receiver<Inbound>,
}

/// Counts one message dropped before it was read, by reason.
pub type DropCounter = Arc<dyn Fn(&'static str) + Send + Sync>;

/// A publishing handle plus the link state.
#[derive(Clone)]
pub struct Mesh {
    client: AsyncClient,
    link: watch::Receiver<BrokerLink>,
    history: Arc<Mutex<LinkHistory>>,
    admission: Arc<Mutex<Admission>>,
}

impl Mesh {
    /// Connects to `url` (trusting `ca_file` for `mqtts`) as `client_id`, logging in as
    /// `identity` unless the URL names a user, and subscribes to the oracle's channels under
    /// `topics` after every (re)connection. Messages arrive in the returned [`Inbox`]; each
    /// one dropped before it is read is counted by `dropped`.
    pub fn start(
        url: &Url,
        ca_file: Option<&std::path::Path>,
        client_id: &str,
        identity: &Identity,
        topics: &Topics,
        dropped: DropCounter,
    ) -> Result<(Self, Inbox), MeshError> {
        let (options, login) = r1_protocol::mqtt::client_options(url, ca_file, client_id, identity)
            .map_err(|reason| MeshError::Url {
                url: url.clone(),
                reason,
            })?;
        let (client, mut events) = AsyncClient::new(options, 256);
        let (link_tx, link_rx) = watch::channel(BrokerLink::Disconnected);
        let [status, licensed, others, observations, requests, sessions] =
            LANE_CAPACITY.map(mpsc::channel);
        let lanes = [
            status.0,
            licensed.0,
            others.0,
            observations.0,
            requests.0,
            sessions.0,
        ];
        let inbox = Inbox {
            licensed_status: status.1,
            licensed_nodes: licensed.1,
            other_nodes: others.1,
            observations: observations.1,
            requests: requests.1,
            sessions: sessions.1,
        };
        let admission = Arc::new(Mutex::new(Admission::default()));
        let admit = admission.clone();
        let topics = topics.clone();
        let filters: Vec<String> = r1_protocol::broker_acl::ORACLE_HEARS
            .into_iter()
            .map(|c| topics.all(c))
            .chain([topics.session_outputs_to(&identity.address())])
            .collect();
        let subscriber = client.clone();
        let history = Arc::new(Mutex::new(LinkHistory::default()));
        let record = history.clone();
        let remember = move |change: fn(&mut LinkHistory, u64)| {
            change(
                &mut record.lock().unwrap_or_else(PoisonError::into_inner),
                now_ms(),
            );
        };
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
                        remember(LinkHistory::connected);
                        let _ = link_tx.send(BrokerLink::Connected { since_ms: now_ms() });
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let now = now_ms();
                        let Some((channel, sender)) = topics.parse(&publish.topic) else {
                            dropped("bad_topic");
                            continue;
                        };
                        let lane = admit
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .admit(channel, sender, now);
                        let lane = match lane {
                            Ok(lane) => lane,
                            Err(reason) => {
                                dropped(reason.label());
                                continue;
                            }
                        };
                        let inbound = Inbound {
                            topic: publish.topic.clone(),
                            payload: publish.payload.to_vec(),
                            received_ms: now,
                        };
                        let queue = &lanes[match lane {
                            Lane::LicensedStatus => 0,
                            Lane::LicensedNodes => 1,
                            Lane::OtherNodes => 2,
                            Lane::Observations => 3,
                            Lane::Requests => 4,
                            Lane::Sessions => 5,
                        }];
                        match queue.try_send(inbound) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => dropped("queue_full"),
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if matches!(*link_tx.borrow(), BrokerLink::Connected { .. }) {
                            tracing::warn!("lost the broker: {e}; reconnecting");
                        } else {
                            tracing::debug!("broker unreachable: {e}; retrying in {delay:?}");
                        }
                        remember(LinkHistory::disconnected);
                        let _ = link_tx.send(BrokerLink::Disconnected);
                        if let Err(e) = login.refresh(&mut events.mqtt_options) {
                            tracing::warn!("cannot sign broker credentials: {e}");
                        }
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
                history,
                admission,
            },
            inbox,
        ))
    }

    /// Tells admission who the chain says the oracles and licensed nodes are.
    pub fn set_known(&self, known: Known) {
        self.admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_known(known);
    }

    /// The link right now.
    pub fn link(&self) -> BrokerLink {
        *self.link.borrow()
    }

    /// Milliseconds of `[start_ms, end_ms)` this oracle was connected to the broker.
    pub fn connected_ms(&self, start_ms: u64, end_ms: u64) -> u64 {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .connected_ms(start_ms, end_ms, now_ms())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_time_is_counted_inside_the_span_only() {
        let mut history = LinkHistory::default();
        assert_eq!(history.connected_ms(0, 1_000, 2_000), 0);
        history.connected(100);
        history.disconnected(400);
        history.disconnected(450);
        history.connected(600);
        // [100, 400) and [600, now = 900) inside [0, 1000).
        assert_eq!(history.connected_ms(0, 1_000, 900), 300 + 300);
        // Clipped to the span.
        assert_eq!(history.connected_ms(200, 700, 900), 200 + 100);
        assert_eq!(history.connected_ms(400, 600, 900), 0);
        // A reconnection without a noticed loss ends the previous connection.
        history.connected(950);
        assert_eq!(history.connected_ms(0, 1_000, 1_000), 300 + 350 + 50);
    }

    #[test]
    fn the_history_is_bounded() {
        let mut history = LinkHistory::default();
        for i in 0..(MAX_CONNECTIONS as u64 + 10) {
            history.connected(i * 10);
            history.disconnected(i * 10 + 5);
        }
        assert_eq!(history.connections.len(), MAX_CONNECTIONS);
        assert_eq!(history.connected_ms(0, 100, 100), 0);
    }
}
