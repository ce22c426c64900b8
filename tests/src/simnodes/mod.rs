//! Simulated nodes for scale benchmarks, as kwok simulates kubelets: one process holds many
//! node keys and, for each, keeps an MQTT session of its own on the real broker, sends the
//! node's signed heartbeat on its real topic at the real interval, and obeys deploy and stop
//! commands signed by the network's oracles by reporting the workload running (no container
//! starts), and answers their liveness probes with a heartbeat. Each leaves its signed last
//! will with the broker, as agents do. Chosen nodes can be silenced: their connection drops as
//! a killed agent's does.
//!
//! [`node`] is one node's state without I/O; [`licences`] licenses thousands of nodes on the
//! chain in bulk, as the oracles require before they give a node work.

pub mod licences;
pub mod node;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r1_protocol::envelope::Sealer;
use r1_protocol::messages::{
    DeployCommand, JobStatusReport, LivenessProbe, StopCommand, WorkloadId,
};
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::{Address, Envelope, Freshness, Identity, Message, MessageKind, Verifier};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::Notify;
use url::Url;

use crate::node::TOPIC_ROOT;
use node::SimNode;

/// How many sessions open per second while the fleet starts, so the broker's gate (which
/// checks a signature per login) is not handed ten thousand logins at once.
const LOGINS_PER_SECOND: u64 = 1_000;

/// Why the fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A node's broker URL is unusable.
    #[error("broker URL {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The fleet's tokio runtime could not be built.
    #[error("cannot start the fleet's runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the fleet shares with every simulated node.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// The CA the broker's certificate chains to, for `mqtts` URLs.
    pub ca_file: Option<PathBuf>,
    /// The oracles whose commands the nodes obey.
    pub oracles: Vec<Address>,
    /// How often each node sends a heartbeat.
    pub heartbeat_interval: Duration,
}

/// Counts over the whole fleet, for the benchmark to read.
#[derive(Debug, Default)]
pub struct FleetCounters {
    /// Sessions the broker accepted (reconnections included).
    pub connections: AtomicU64,
    /// Heartbeats handed to the MQTT client.
    pub heartbeats_sent: AtomicU64,
    /// Heartbeats not sent because the node was not connected or its queue was full.
    pub heartbeats_skipped: AtomicU64,
    /// Deploy, stop and probe commands obeyed (repeats included: they change nothing).
    pub commands_obeyed: AtomicU64,
    /// Deploy, stop and probe commands refused (bad signature, unknown sender, stale, replayed,
    /// another's target).
    pub commands_refused: AtomicU64,
}

/// One simulated node as the fleet keeps it.
struct Member {
    identity: Identity,
    state: Mutex<SimNode>,
    connected: AtomicBool,
    silent: AtomicBool,
    silenced: Notify,
}

/// Simulated nodes on a broker; dropping the fleet drops every session.
pub struct Fleet {
    runtime: tokio::runtime::Runtime,
    members: Vec<Arc<Member>>,
    counters: Arc<FleetCounters>,
}

impl Fleet {
    /// Starts one simulated node per `(identity, broker URL)` (a URL per node, since
    /// mosquitto gives each client its own password), their sessions opened at
    /// [`LOGINS_PER_SECOND`] and their heartbeats spread over the interval.
    pub fn start(
        nodes: Vec<(Identity, String)>,
        settings: &FleetSettings,
    ) -> Result<Self, FleetError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(FleetError::Runtime)?;
        let counters = Arc::new(FleetCounters::default());
        let count = nodes.len().max(1) as u64;
        let mut members = Vec::with_capacity(nodes.len());
        for (index, (identity, url)) in nodes.into_iter().enumerate() {
            let member = Arc::new(Member {
                state: Mutex::new(SimNode::new(format!("sim-{index}"))),
                identity,
                connected: AtomicBool::new(false),
                silent: AtomicBool::new(false),
                silenced: Notify::new(),
            });
            let session = Session::new(member.clone(), &url, settings, counters.clone())?;
            let index = index as u64;
            let login_at = Duration::from_millis(index * 1_000 / LOGINS_PER_SECOND);
            let first_beat = settings
                .heartbeat_interval
                .mul_f64(index as f64 / count as f64);
            runtime.spawn(session.run(login_at, first_beat));
            members.push(member);
        }
        Ok(Self {
            runtime,
            members,
            counters,
        })
    }

    /// The nodes' addresses, in the order they were given.
    pub fn addresses(&self) -> Vec<Address> {
        self.members.iter().map(|m| m.identity.address()).collect()
    }

    /// The fleet's counters.
    pub fn counters(&self) -> &FleetCounters {
        &self.counters
    }

    /// Nodes whose session is open now.
    pub fn connected(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.connected.load(Ordering::Relaxed))
            .count()
    }

    /// Every workload the fleet's nodes that are not silenced run, with its node.
    pub fn running(&self) -> Vec<(Address, WorkloadId)> {
        self.members
            .iter()
            .filter(|m| !m.silent.load(Ordering::Relaxed))
            .flat_map(|m| {
                let ids: Vec<WorkloadId> = m
                    .state
                    .lock()
                    .map(|s| s.running().copied().collect())
                    .unwrap_or_default();
                let address = m.identity.address();
                ids.into_iter().map(move |id| (address, id))
            })
            .collect()
    }

    /// Silences node `address` for good: its session drops without a goodbye and it sends
    /// nothing more, as a killed agent. Returns whether the fleet has that node.
    pub fn silence(&self, address: Address) -> bool {
        let member = self
            .members
            .iter()
            .find(|m| m.identity.address() == address);
        if let Some(member) = member {
            member.silent.store(true, Ordering::Relaxed);
            member.silenced.notify_one();
        }
        member.is_some()
    }

    /// Runs `future` on the fleet's runtime (for a benchmark that needs async work beside it).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// What a simulated node sends in answer to an oracle's message.
enum Answer {
    /// A workload's new state.
    Report(JobStatusReport),
    /// A heartbeat now (a liveness probe).
    Heartbeat,
}

/// One node's broker session and what it needs to act.
struct Session {
    member: Arc<Member>,
    options: rumqttc::MqttOptions,
    login: r1_protocol::mqtt::Login,
    sealer: Sealer,
    verifier: Verifier<HashSet<Address>>,
    topics: Topics,
    interval: Duration,
    counters: Arc<FleetCounters>,
}

impl Session {
    fn new(
        member: Arc<Member>,
        url: &str,
        settings: &FleetSettings,
        counters: Arc<FleetCounters>,
    ) -> Result<Self, FleetError> {
        let fail = |reason: String| FleetError::Url {
            url: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|e| fail(e.to_string()))?;
        let address = member.identity.address();
        let client_id = format!("sim-{}", r1_protocol::hex::encode(&address[..8]));
        let (mut options, login) = r1_protocol::mqtt::client_options(
            &parsed,
            settings.ca_file.as_deref(),
            &client_id,
            &member.identity,
        )
        .map_err(fail)?;
        let topics = Topics::new(TOPIC_ROOT);
        options.set_last_will(
            r1_protocol::mqtt::node_will(&member.identity, topics.topic(Channel::Status, &address))
                .map_err(fail)?,
        );
        Ok(Self {
            sealer: Sealer::new(member.identity.clone()),
            verifier: Verifier::new(
                settings.oracles.iter().copied().collect(),
                Freshness::default(),
            ),
            member,
            options,
            login,
            topics,
            interval: settings.heartbeat_interval,
            counters,
        })
    }

    /// Logs in after `login_at`, beats first after `first_beat` and then every interval, obeys
    /// commands, until silenced.
    async fn run(mut self, login_at: Duration, first_beat: Duration) {
        tokio::time::sleep(login_at).await;
        let me = self.member.identity.address();
        let commands = self.topics.topic(Channel::Commands, &me);
        let heartbeat_topic = self.topics.topic(Channel::Heartbeat, &me);
        let status_topic = self.topics.topic(Channel::Status, &me);
        let (client, mut events) = AsyncClient::new(self.options.clone(), 16);
        let start = tokio::time::Instant::now() + first_beat;
        let mut ticker = tokio::time::interval_at(start, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.member.silenced.notified() => {
                    self.member.connected.store(false, Ordering::Relaxed);
                    return;
                }
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        self.member.connected.store(true, Ordering::Relaxed);
                        self.counters.connections.fetch_add(1, Ordering::Relaxed);
                        let _ = client.try_subscribe(commands.clone(), QoS::AtLeastOnce);
                        self.beat(&client, &heartbeat_topic);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        match self.obey(&publish.payload, me) {
                            Some(Answer::Report(report)) => {
                                self.publish(&client, &status_topic, &report);
                            }
                            Some(Answer::Heartbeat) => self.beat(&client, &heartbeat_topic),
                            None => {}
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.member.connected.store(false, Ordering::Relaxed);
                        let _ = self.login.refresh(&mut events.mqtt_options);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
                _ = ticker.tick() => self.beat(&client, &heartbeat_topic),
            }
        }
    }

    /// Sends the node's heartbeat now, when connected.
    fn beat(&self, client: &AsyncClient, topic: &str) {
        let heartbeat = match self.member.state.lock() {
            Ok(state) => state.heartbeat(self.interval),
            Err(_) => return,
        };
        let sent = self.member.connected.load(Ordering::Relaxed)
            && self.publish(client, topic, &heartbeat);
        let counter = if sent {
            &self.counters.heartbeats_sent
        } else {
            &self.counters.heartbeats_skipped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Seals `message` and queues it on `topic`; whether it was queued.
    fn publish<M: Message>(&self, client: &AsyncClient, topic: &str, message: &M) -> bool {
        let Ok(envelope) = self.sealer.seal(message, r1_protocol::now_ms()) else {
            return false;
        };
        client
            .try_publish(topic, QoS::AtLeastOnce, false, envelope.to_bytes())
            .is_ok()
    }

    /// Obeys a deploy, stop or liveness probe when an oracle signed it fresh and for this node;
    /// what the node sends in answer (nothing when a command changed nothing). Other kinds
    /// (service tables, session orders) are not simulated and are passed over.
    fn obey(&mut self, payload: &[u8], me: Address) -> Option<Answer> {
        let now = r1_protocol::now_ms();
        let outcome = match Envelope::from_bytes(payload).map(|e| e.kind) {
            Ok(MessageKind::Deploy) => self
                .verifier
                .verify::<DeployCommand>(payload, now)
                .ok()
                .filter(|v| v.message.target == me)
                .map(|v| self.lock_state(|s| s.deploy(v.message)).map(Answer::Report)),
            Ok(MessageKind::Stop) => self
                .verifier
                .verify::<StopCommand>(payload, now)
                .ok()
                .filter(|v| v.message.target == me)
                .map(|v| self.lock_state(|s| s.stop(&v.message)).map(Answer::Report)),
            Ok(MessageKind::Probe) => self
                .verifier
                .verify::<LivenessProbe>(payload, now)
                .ok()
                .filter(|v| v.message.target == me)
                .map(|_| Some(Answer::Heartbeat)),
            _ => return None,
        };
        let counter = if outcome.is_some() {
            &self.counters.commands_obeyed
        } else {
            &self.counters.commands_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        outcome.flatten()
    }

    fn lock_state<T>(&self, act: impl FnOnce(&mut SimNode) -> Option<T>) -> Option<T> {
        self.member.state.lock().ok().and_then(|mut s| act(&mut s))
    }
}
