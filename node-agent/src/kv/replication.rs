//! CSTORE between nodes, on the peer-to-peer layer: fresh local writes are sealed a few
//! milliseconds after they are logged and gossiped at once (topic `cstore`); every peer is
//! pulled from with anti-entropy (request-response protocol `cstore`) as soon as it connects
//! and then every `antiEntropySeconds`, which repairs whatever gossip missed (a partition, a
//! restart, a write too large to gossip). Every received entry's seal and stamp are checked by
//! the engine before it is merged; refusals are logged and counted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r1_cstore::access::SYSTEM;
use r1_cstore::anti_entropy::{self, Answer, Limits, Request};
use r1_cstore::delta;
use r1_cstore::engine::{Engine, EngineError};
use r1_cstore::{Entry, EntryError};
use r1_p2p::{Client, Event};
use r1_protocol::{Address, now_ms};
use tokio::sync::{Semaphore, mpsc};

use super::metrics::KvMetrics;

/// The request-response protocol anti-entropy runs on.
pub const PROTOCOL: &str = "cstore";
/// The gossip topic of fresh writes.
pub const TOPIC: &str = "cstore";

/// How long fresh writes wait to be sealed together.
const SEAL_DELAY: Duration = Duration::from_millis(2);
/// Most writes sealed under one signature.
const MAX_BATCH: usize = 4096;
/// Most request-answer rounds of one pull; a pull that needs more resumes at the next one.
const MAX_ROUNDS: usize = 64;
/// Peers' anti-entropy requests answered at once.
const CONCURRENT_ANSWERS: usize = 4;
/// How long to wait after sealing failed.
const RETRY: Duration = Duration::from_secs(1);

/// This node's side of CSTORE replication.
#[derive(Clone)]
pub struct Replication {
    engine: Arc<Engine>,
    client: Client,
    metrics: Arc<KvMetrics>,
    limits: Limits,
    gossip_bytes: usize,
    pulling: Arc<Mutex<HashSet<Address>>>,
}

/// The metric label of a refusal.
fn refusal(error: &EngineError) -> &'static str {
    match error {
        EngineError::Entry(EntryError::Forged { .. }) => "forged",
        EngineError::Entry(EntryError::Unsealed) => "unsealed",
        EngineError::Clock(_) => "clock",
        EngineError::NotOracle { .. } => "not_oracle",
        _ => "invalid",
    }
}

impl Replication {
    /// Replicates `engine` over `client`, gossiping messages of at most `gossip_bytes`.
    pub fn new(
        engine: Arc<Engine>,
        client: Client,
        metrics: Arc<KvMetrics>,
        gossip_bytes: usize,
    ) -> Self {
        Self {
            engine,
            client,
            metrics,
            limits: Limits::default(),
            gossip_bytes,
            pulling: Arc::default(),
        }
    }

    /// The peer-to-peer client replication runs on.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Seals fresh local writes in batches and gossips them, for as long as the node runs.
    pub async fn publish_writes(self) {
        loop {
            let batches = match self.engine.next_sealed(SEAL_DELAY, MAX_BATCH).await {
                Ok(batches) => batches,
                Err(e) => {
                    tracing::warn!("CSTORE: cannot seal fresh writes: {e}");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            for sealed in batches {
                self.metrics.published.inc_by(sealed.len() as u64);
                for message in delta::encode(&sealed, self.gossip_bytes) {
                    if let Err(e) = self.client.publish(TOPIC, message).await {
                        tracing::debug!("CSTORE delta not gossiped: {e}");
                    }
                }
            }
        }
    }

    /// Merges entries received from `from` via `via`; returns how many were new here.
    fn merge(&self, from: Address, entries: Vec<Entry>, via: &str) -> usize {
        let received = entries.len();
        let merged = match self.engine.apply_remote(entries, now_ms()) {
            Ok(merged) => merged,
            Err(e) => {
                tracing::warn!(%from, "CSTORE: cannot merge {received} entries: {e}");
                return 0;
            }
        };
        let now = now_ms();
        for entry in &merged.new {
            let lag_ms = now.saturating_sub(entry.stamp.wall_ms);
            self.metrics.lag_seconds.observe(lag_ms as f64 / 1000.0);
        }
        for (key, error) in &merged.refused {
            tracing::warn!(%from, namespace = key.namespace, via, "CSTORE entry refused: {error}");
            self.metrics.count_merged(via, refusal(error), 1);
        }
        self.metrics
            .count_merged(via, "new", merged.new.len() as u64);
        self.metrics.count_merged(via, "stale", merged.stale as u64);
        merged.new.len()
    }

    /// Takes a gossiped delta from `from`.
    fn take_delta(&self, from: Address, bytes: &[u8]) {
        match delta::decode(bytes) {
            Ok(delta) => {
                self.merge(from, delta.entries, "gossip");
                if delta.pull {
                    tokio::spawn(self.clone().pull_from(from));
                }
            }
            Err(e) => {
                tracing::warn!(%from, "CSTORE gossip refused: {e}");
                self.metrics.count_merged("gossip", "invalid", 1);
            }
        }
    }

    /// Takes the access rules oracle `from` published over MQTT: entries of the system
    /// namespace only (the engine refuses any whose writer is not one of this node's oracles);
    /// anything else on that channel is refused.
    pub fn take_rules(&self, from: Address, bytes: &[u8]) {
        let entries = match delta::decode(bytes) {
            Ok(delta) => delta.entries,
            Err(e) => {
                tracing::warn!(%from, "CSTORE rules refused: {e}");
                self.metrics.count_merged("oracle", "invalid", 1);
                return;
            }
        };
        let (rules, other): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|entry| entry.key.namespace == SYSTEM);
        if !other.is_empty() {
            tracing::warn!(%from, count = other.len(), "CSTORE entries outside {SYSTEM} refused on the rules channel");
            self.metrics
                .count_merged("oracle", "invalid", other.len() as u64);
        }
        self.merge(from, rules, "oracle");
    }

    /// Pulls from `peer` whatever it holds that this node lacks or holds older; one pull per
    /// peer at a time.
    pub async fn pull_from(self, peer: Address) {
        {
            let mut pulling = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
            if !pulling.insert(peer) {
                return;
            }
        }
        let outcome = self.pull(peer).await;
        self.pulling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer);
        match outcome {
            Ok((rounds, repaired)) => {
                self.metrics.count_pull("done");
                if repaired > 0 {
                    tracing::info!(%peer, rounds, repaired, "CSTORE anti-entropy repaired entries");
                }
            }
            Err(e) => {
                self.metrics.count_pull("failed");
                tracing::debug!(%peer, "CSTORE anti-entropy failed: {e}");
            }
        }
    }

    async fn pull(&self, peer: Address) -> Result<(usize, usize), String> {
        let mut request = self.engine.read(anti_entropy::open);
        let mut repaired = 0;
        for round in 1..=MAX_ROUNDS {
            self.metrics.pull_rounds.inc();
            let bytes = self
                .client
                .request(peer, PROTOCOL, request.encode())
                .await
                .map_err(|e| e.to_string())?;
            let answer = Answer::decode(&bytes, &self.limits).map_err(|e| e.to_string())?;
            let (entries, next) = self
                .engine
                .read(|replica| anti_entropy::follow(replica, &answer));
            repaired += self.merge(peer, entries, "anti_entropy");
            match next {
                Some(next) => request = next,
                None => return Ok((round, repaired)),
            }
        }
        Ok((MAX_ROUNDS, repaired))
    }

    /// Whether every write `from` asks about is held here; when one is not, a pull from it
    /// starts at once.
    fn holds(&self, from: Address, question: &[u8]) -> bool {
        let Some(writes) = super::confirm::read_question(question) else {
            tracing::warn!(%from, "malformed CSTORE confirmation question");
            return false;
        };
        let all = self.engine.holds(&writes) == writes.len();
        if !all {
            tokio::spawn(self.clone().pull_from(from));
        }
        all
    }

    /// Answers a peer's anti-entropy request; `None` for a malformed one.
    fn answer(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let request = Request::decode(bytes, &self.limits).ok()?;
        let answer = self
            .engine
            .read(|replica| anti_entropy::answer(replica, &request, &self.limits));
        self.metrics.answered.inc();
        Some(answer.encode())
    }

    /// Every `every`: pulls from each connected peer and collects tombstones older than
    /// `horizon`.
    pub async fn run_rounds(self, every: Duration, horizon: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.client.connected_peers().await {
                Ok(peers) => {
                    for peer in peers {
                        tokio::spawn(self.clone().pull_from(peer));
                    }
                }
                Err(e) => tracing::warn!("CSTORE: peer-to-peer layer: {e}"),
            }
            let before = now_ms().saturating_sub(horizon.as_millis() as u64);
            match self.engine.collect_tombstones(before) {
                Ok(n) => {
                    self.metrics.tombstones_collected.inc_by(n as u64);
                }
                Err(e) => tracing::warn!("CSTORE: cannot collect tombstones: {e}"),
            }
        }
    }

    /// Copies the engine's counts into the metrics every `every`.
    pub async fn run_metrics(self, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            self.refresh_metrics();
        }
    }

    fn refresh_metrics(&self) {
        for (command, count) in self.engine.ops() {
            let counter = self.metrics.ops.get_or_create(&super::metrics::Command {
                command: command.to_owned(),
            });
            counter.inc_by(count.saturating_sub(counter.get()));
        }
        let by_namespace = self.engine.read(|replica| {
            let mut counts = std::collections::BTreeMap::<String, i64>::new();
            for entry in replica.entries() {
                *counts.entry(entry.key.namespace.clone()).or_default() += 1;
            }
            counts
        });
        self.metrics.namespace_entries.clear();
        for (namespace, n) in by_namespace {
            self.metrics
                .namespace_entries
                .get_or_create(&super::metrics::Namespace { namespace })
                .set(n);
        }
        let denied = self.engine.denied();
        let counted = self.metrics.denied.get();
        self.metrics.denied.inc_by(denied.saturating_sub(counted));
        self.metrics.entries.set(self.engine.len() as i64);
        self.metrics.pending.set(self.engine.pending() as i64);
    }

    /// Takes CSTORE's peer-to-peer events: deltas merged, anti-entropy requests answered (a
    /// few at a time), and a pull from every peer that connects.
    pub async fn serve(self, mut events: mpsc::Receiver<Event>) {
        let answering = Arc::new(Semaphore::new(CONCURRENT_ANSWERS));
        while let Some(event) = events.recv().await {
            match event {
                Event::Gossip { from, topic, bytes } if topic == TOPIC => {
                    self.take_delta(from, &bytes);
                }
                Event::Request {
                    from,
                    protocol,
                    bytes,
                    reply,
                } if protocol == PROTOCOL => {
                    let Ok(permit) = answering.clone().acquire_owned().await else {
                        return;
                    };
                    let this = self.clone();
                    tokio::task::spawn_blocking(move || {
                        match this.answer(&bytes) {
                            Some(answer) => {
                                let _ = reply.send(answer);
                            }
                            None => tracing::warn!(%from, "malformed CSTORE anti-entropy request"),
                        }
                        drop(permit);
                    });
                }
                Event::Request {
                    from,
                    protocol,
                    bytes,
                    reply,
                } if protocol == super::confirm::PROTOCOL => {
                    let _ = reply.send(vec![u8::from(self.holds(from, &bytes))]);
                }
                Event::PeerConnected(peer) => {
                    tokio::spawn(self.clone().pull_from(peer));
                }
                _ => {}
            }
        }
    }
}
