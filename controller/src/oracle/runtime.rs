//! The running oracle: opens its stores, connects to the chain and the broker, serves the
//! Deeploy API, and runs the reconcile pass (availability, validation, closure, rewards) every
//! loop period and whenever a CSP changes something.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use r1_contracts::bindings::PoAIManager::PoAIManagerErrors;
use r1_contracts::{Deployment, Suite};
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use r1_protocol::envelope::Sealer;
use r1_protocol::identity::Identity;
use r1_protocol::messages::{Message, OracleObservation, RelayedRequest};
use r1_protocol::now_ms;
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::verify::{Freshness, Verifier};
use tokio::sync::Mutex;
use url::Url;

use crate::config::OracleConfig;
use crate::decide::epoch::EpochClock;
use crate::decide::liveness::{BrokerLink, LivenessConfig, NodeLiveness};
use crate::decide::placement::Candidate;
use crate::intake::http::{ApiState, MAX_BODY_BYTES, router};
use crate::intake::store::ResourceStore;
use crate::intake::wire::ApiInfo;
use crate::oracle::broker;
use crate::oracle::chain::{ChainSnapshot, within};
use crate::oracle::economy::Economy;
use crate::oracle::mesh::{Inbound, Mesh};
use crate::oracle::metrics::Metrics;
use crate::oracle::registry::{Registry, Standing};
use crate::oracle::relay;
use crate::oracle::state::OracleState;

/// How long a node's licence reading stays good.
const STANDING_MAX_AGE_MS: u64 = 30_000;

/// Why the oracle cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A part failed to start; the text says which and why.
    #[error("{0}")]
    Start(String),
}

fn fail(what: &str) -> impl FnOnce(String) -> StartError + '_ {
    move |e| StartError::Start(format!("{what}: {e}"))
}

/// What one pass knows, shared by every job of the pass.
#[derive(Debug)]
pub(crate) struct Pass {
    pub now_ms: u64,
    pub link: BrokerLink,
    pub chain: Option<ChainSnapshot>,
    pub chain_fresh: bool,
    pub candidates: Vec<Candidate>,
    /// Every (replica, node) nodes report, by job.
    pub reports: BTreeMap<u64, Vec<(u32, Address)>>,
}

/// One oracle.
pub struct Oracle {
    pub(crate) me: Address,
    sealer: Sealer,
    pub(crate) suite: Suite,
    pub(crate) store: Arc<ResourceStore>,
    pub(crate) state: Arc<OracleState>,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) mesh: Mesh,
    topics: Topics,
    pub(crate) catalogue: Catalogue,
    pub(crate) config: OracleConfig,
    pub(crate) liveness: LivenessConfig,
    pub(crate) clock: EpochClock,
    pub(crate) metrics: Metrics,
    stable: std::sync::Mutex<HashMap<u64, (BTreeSet<Address>, u64)>>,
    pub(crate) economy: Mutex<Economy>,
    last_chain: Mutex<Option<ChainSnapshot>>,
    oracle_messages: Mutex<(Verifier<HashSet<Address>>, Verifier<HashSet<Address>>)>,
    closed_jobs: Mutex<BTreeSet<u64>>,
    /// The embedded broker's oracle set, kept equal to the chain's.
    gate_oracles: broker::GateOracles,
}

/// Starts every part and runs until SIGINT or SIGTERM.
pub async fn run(config: OracleConfig, identity: Identity) -> Result<(), StartError> {
    let me = identity.address();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| fail("data dir")(e.to_string()))?;
    let store = Arc::new(
        ResourceStore::open(&config.data_dir.join("resources"))
            .map_err(|e| fail("resource store")(e.to_string()))?,
    );
    let state = Arc::new(
        OracleState::open(&config.data_dir.join("oracle-state"))
            .map_err(|e| fail("oracle state")(e.to_string()))?,
    );
    let catalogue = match &config.catalogue {
        Some(path) => Catalogue::from_file(path),
        None => Catalogue::builtin(),
    }
    .map_err(|e| fail("price catalogue")(e.to_string()))?;
    let manager: Address =
        config
            .chain
            .poai_manager
            .parse()
            .map_err(|e: alloy_primitives::hex::FromHexError| {
                fail("chain.poaiManager")(e.to_string())
            })?;
    let rpc: Url = config
        .chain
        .rpc_url
        .as_str()
        .parse()
        .map_err(|e: url::ParseError| fail("chain.rpcUrl")(e.to_string()))?;
    let provider = r1_contracts::devchain::connect(&rpc, identity.signer().clone());
    let deployment = loop {
        match tokio::time::timeout(
            Duration::from_secs(10),
            Deployment::from_manager(&provider, manager),
        )
        .await
        {
            Ok(Ok(deployment)) => break deployment,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the suite from the chain; retrying")
            }
            Err(_) => tracing::warn!("the chain RPC does not answer; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let suite = Suite::new(provider, me, deployment);
    let (genesis, length) = within(suite.epoch_clock())
        .await
        .map_err(|e| fail("epoch clock")(e.to_string()))?;
    if let Some(epoch) = &config.epoch
        && (epoch.genesis_unix, epoch.length_seconds) != (genesis, length)
    {
        return Err(StartError::Start(format!(
            "epoch: the config says genesis {} and {} s epochs, the PoAI manager {genesis} and {length} s",
            epoch.genesis_unix, epoch.length_seconds
        )));
    }
    let clock = EpochClock::new(genesis, length).map_err(|e| fail("epoch clock")(e.to_string()))?;
    let liveness = LivenessConfig::new(
        config.nodes.heartbeat_interval_seconds * 1000,
        config.nodes.grace_missed,
    )
    .map_err(|e| fail("nodes")(e.to_string()))?;

    let gate_oracles = broker::GateOracles::new(config.broker.oracles.iter().copied().chain([me]));
    let broker_url: Url = match &config.broker.url {
        Some(url) => url
            .as_str()
            .parse()
            .map_err(|e: url::ParseError| fail("broker.url")(e.to_string()))?,
        None => broker::start_embedded(
            config.broker.embedded_listen,
            Topics::new(config.broker.topic_root.clone()),
            gate_oracles.clone(),
            config.broker.tls.as_ref(),
        )
        .await
        .map_err(|e| fail("embedded broker")(e.to_string()))?,
    };
    let topics = Topics::new(config.broker.topic_root.clone());
    let (mesh, inbound) = Mesh::start(
        &broker_url,
        config.broker.ca_file.as_deref(),
        &format!("r1-oracle-{me:#x}"),
        &identity,
        &topics,
    )
    .map_err(|e| fail("broker")(e.to_string()))?;

    let oracle = Arc::new(Oracle {
        me,
        sealer: Sealer::new(identity),
        suite,
        store: store.clone(),
        state,
        registry: Mutex::new(Registry::default()),
        mesh,
        topics,
        catalogue: catalogue.clone(),
        liveness,
        clock,
        metrics: Metrics::new(),
        stable: std::sync::Mutex::new(HashMap::new()),
        economy: Mutex::new(Economy::default()),
        last_chain: Mutex::new(None),
        oracle_messages: Mutex::new((
            Verifier::new(HashSet::new(), Freshness::default()),
            Verifier::new(HashSet::new(), Freshness::default()),
        )),
        closed_jobs: Mutex::new(BTreeSet::new()),
        gate_oracles,
        config: config.clone(),
    });

    let info = ApiInfo {
        oracle: me,
        chain_id: config.chain.chain_id,
        poai_manager: manager,
        epoch_seconds: length,
        genesis_unix: genesis,
    };
    let api = router(ApiState::new(store, catalogue).with_info(info))
        .route_layer(middleware::from_fn_with_state(
            oracle.clone(),
            relay_accepted,
        ))
        .merge(metrics_router(oracle.clone()));
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|e| fail("api.listen")(e.to_string()))?;
    tracing::info!(oracle = %me, api = %config.api.listen, broker = %broker_url, "oracle started");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, api).await {
            tracing::error!(error = %e, "the Deeploy API stopped");
        }
    });
    if let Some(listen) = config.metrics_listen {
        serve_metrics(listen, oracle.clone()).await?;
    }
    if let Some(settings) = config.kube.clone() {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| fail("kube")(e.to_string()))?;
        let store = oracle.store.clone();
        let catalogue = oracle.catalogue.clone();
        tokio::spawn(async move {
            let never = std::future::pending::<()>();
            if let Err(e) = crate::kube::run(client, settings, store, catalogue, never).await {
                tracing::error!(error = %e, "the Kubernetes adapter stopped");
            }
        });
    }
    tokio::spawn(oracle.clone().receive(inbound));
    tokio::spawn(oracle.clone().resync());
    let passes = tokio::spawn(oracle.clone().reconcile_forever());
    shutdown_signal().await;
    passes.abort();
    tracing::info!("oracle stopped");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

fn metrics_router(oracle: Arc<Oracle>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let oracle = oracle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    oracle.metrics.render(),
                )
            }
        }),
    )
}

async fn serve_metrics(listen: SocketAddr, oracle: Arc<Oracle>) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| fail("metricsListen")(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, metrics_router(oracle)).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(())
}

/// After an apply or delete the API accepted, records the CSP's signed request and relays it
/// to the other oracles.
async fn relay_accepted(
    State(oracle): State<Arc<Oracle>>,
    request: Request,
    next: Next,
) -> Response {
    let relayable = (request.method() == Method::POST && request.uri().path() == "/v1/apply")
        || request.method() == Method::DELETE;
    if !relayable {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return next.run(Request::from_parts(parts, Body::empty())).await;
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let relayed = RelayedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        address: header(crate::intake::auth::ADDRESS_HEADER),
        timestamp: header(crate::intake::auth::TIMESTAMP_HEADER),
        signature: header(crate::intake::auth::SIGNATURE_HEADER),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status().is_success() {
        if let Err(e) = relay::record_accepted(&oracle.state, &relayed) {
            tracing::warn!(error = %e, "cannot record the accepted request");
        }
        oracle.broadcast(Channel::Requests, &relayed);
    }
    response
}

impl Oracle {
    /// Signs `message` and publishes it on this oracle's `channel`.
    fn broadcast<M: Message>(&self, channel: Channel, message: &M) -> bool {
        match self.sealer.seal(message, now_ms()) {
            Ok(envelope) => self
                .mesh
                .publish(&self.topics.topic(channel, &self.me), envelope.to_bytes()),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a message");
                false
            }
        }
    }

    /// Publishes `observation` to the other oracles.
    pub(crate) fn publish_observation(&self, observation: &OracleObservation) -> bool {
        self.broadcast(Channel::Observations, observation)
    }

    /// Signs `command` and publishes it on `node`'s command topic.
    pub(crate) fn send<M: Message>(&self, node: Address, command: &M) -> bool {
        match self.sealer.seal(command, now_ms()) {
            Ok(envelope) => self.mesh.publish(
                &self.topics.topic(Channel::Commands, &node),
                envelope.to_bytes(),
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a command");
                false
            }
        }
    }

    /// Handles everything that arrives from the broker.
    async fn receive(self: Arc<Self>, mut inbound: tokio::sync::mpsc::Receiver<Inbound>) {
        while let Some(message) = inbound.recv().await {
            let Some((channel, sender)) = self.topics.parse(&message.topic) else {
                continue;
            };
            let now = message.received_ms;
            let refused = match channel {
                Channel::Heartbeat => self
                    .registry
                    .lock()
                    .await
                    .on_heartbeat(sender, &message.payload, now)
                    .err()
                    .map(|e| (e.label(), e.to_string())),
                Channel::Status => self
                    .registry
                    .lock()
                    .await
                    .on_status(sender, &message.payload, now)
                    .err()
                    .map(|e| (e.label(), e.to_string())),
                Channel::Observations if sender != self.me => {
                    let verified = self
                        .oracle_messages
                        .lock()
                        .await
                        .0
                        .verify::<OracleObservation>(&message.payload, now);
                    match verified {
                        Ok(v) if v.sender == sender => {
                            self.economy.lock().await.observe(sender, v.message);
                            None
                        }
                        Ok(_) => Some((
                            "topic_mismatch",
                            "observation under another oracle's topic".into(),
                        )),
                        Err(e) => Some((e.label(), e.to_string())),
                    }
                }
                Channel::Requests if sender != self.me => {
                    let verified = self
                        .oracle_messages
                        .lock()
                        .await
                        .1
                        .verify::<RelayedRequest>(&message.payload, now);
                    match verified {
                        Ok(v) if v.sender == sender => {
                            let oracle = self.clone();
                            let outcome = tokio::task::spawn_blocking(move || {
                                relay::receive(
                                    &oracle.state,
                                    &oracle.store,
                                    &oracle.catalogue,
                                    &v.message,
                                )
                            })
                            .await;
                            match outcome {
                                Ok(Ok(outcome)) => {
                                    tracing::debug!(from = %sender, ?outcome, "relayed request");
                                    None
                                }
                                Ok(Err(e)) => Some(("relay_refused", e.to_string())),
                                Err(e) => Some(("relay_failed", e.to_string())),
                            }
                        }
                        Ok(_) => Some((
                            "topic_mismatch",
                            "request under another oracle's topic".into(),
                        )),
                        Err(e) => Some((e.label(), e.to_string())),
                    }
                }
                _ => None,
            };
            if let Some((label, reason)) = refused {
                self.metrics.refuse(label);
                tracing::warn!(topic = message.topic, %sender, label, reason, "refused a message");
            }
        }
    }

    /// Re-sends the newest request of every object now and then (anti-entropy).
    async fn resync(self: Arc<Self>) {
        let period = Duration::from_secs(self.config.loops.resync_seconds.max(1));
        let mut connected_since = None;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let link = self.mesh.link();
            let BrokerLink::Connected { since_ms } = link else {
                connected_since = None;
                continue;
            };
            let due = match connected_since {
                Some((since, last)) if since == since_ms => {
                    Instant::now().duration_since(last) >= period
                }
                _ => true,
            };
            if !due {
                continue;
            }
            connected_since = Some((since_ms, Instant::now()));
            match self.state.all_relayed() {
                Ok(records) => {
                    for record in records {
                        self.broadcast(Channel::Requests, &record.request);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read relayed requests"),
            }
        }
    }

    /// Runs a pass every loop period, and sooner when a CSP changed something.
    async fn reconcile_forever(self: Arc<Self>) {
        let period = Duration::from_millis(self.config.loops.period_ms);
        let mut changes = self.store.subscribe();
        loop {
            let started = Instant::now();
            self.pass_once().await;
            self.metrics
                .pass("reconcile", started.elapsed().as_secs_f64());
            let _ = tokio::time::timeout(period, changes.changed()).await;
        }
    }

    /// The time the running set of `job` was first seen as it is now.
    pub(crate) fn stable_since(&self, job: u64, running: &BTreeSet<Address>, now: u64) -> u64 {
        let mut stable = self
            .stable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = stable.entry(job).or_insert_with(|| (running.clone(), now));
        if entry.0 != *running {
            *entry = (running.clone(), now);
        }
        entry.1
    }

    /// Votes `nodes` as the node set of `job`, once per consensus round and epoch. The vote is
    /// recorded once the chain has answered it (counted, or refused with the manager's own
    /// error): a vote lost to a timeout, a dropped or out-of-gas transaction or a crash is sent
    /// again on a later pass, and since the chain refuses a second vote in a round
    /// (`AlreadyVoted`, during gas estimation), a retry never counts twice.
    pub(crate) async fn vote_nodes(&self, job: u64, nodes: &[Address], kind: &str, pass: &Pass) {
        let Some(chain) = &pass.chain else { return };
        let round = match within(self.suite.job_round(job)).await {
            Ok(round) => round,
            Err(e) => {
                tracing::warn!(job, error = %e, "cannot read the consensus round");
                return;
            }
        };
        let key = format!("nodeset/{job}/{round}/{}", chain.epoch);
        if self.state.voted(&key).unwrap_or(true) {
            return;
        }
        let answered = match within(self.suite.submit_node_update(job, nodes)).await {
            Ok(outcome) => {
                let accepted = matches!(outcome, r1_contracts::VoteOutcome::Accepted(_));
                tracing::info!(job, round, kind, nodes = ?nodes, accepted, "voted the node set");
                self.metrics
                    .vote(kind, if accepted { "accepted" } else { "pending" });
                true
            }
            Err(e) if e.refused_with(|r| matches!(r, PoAIManagerErrors::AlreadyVoted(..))) => {
                tracing::info!(
                    job,
                    round,
                    kind,
                    "this oracle's vote of the round was already counted"
                );
                true
            }
            Err(e) if e.is_refusal() => {
                tracing::warn!(job, round, kind, error = %e, "the chain refused the node-set vote");
                self.metrics.vote(kind, "refused");
                true
            }
            Err(e) => {
                tracing::warn!(job, round, kind, error = %e, "node-set vote failed; trying again next pass");
                self.metrics.vote(kind, "error");
                false
            }
        };
        if answered && let Err(e) = self.state.record_vote(&key, &format!("{nodes:?}")) {
            tracing::warn!(job, error = %e, "cannot record the vote");
        }
    }

    async fn read_chain(&self) -> (Option<ChainSnapshot>, bool) {
        let mut owners: BTreeSet<Address> = BTreeSet::new();
        match self.store.namespaces() {
            Ok(namespaces) => owners.extend(namespaces.into_iter().map(|(_, owner)| owner)),
            Err(e) => tracing::warn!(error = %e, "cannot list namespaces"),
        }
        let mut last = self.last_chain.lock().await;
        let epoch = self.clock.epoch_at_ms(now_ms()).unwrap_or(0);
        match ChainSnapshot::read(&self.suite, epoch, owners).await {
            Ok(snapshot) => {
                self.metrics.chain_reachable.set(1);
                let oracles: HashSet<Address> = snapshot.oracles.iter().copied().collect();
                self.gate_oracles.set(oracles.iter().copied());
                let mut verifiers = self.oracle_messages.lock().await;
                *verifiers.0.policy_mut() = oracles.clone();
                *verifiers.1.policy_mut() = oracles;
                *last = Some(snapshot.clone());
                (Some(snapshot), true)
            }
            Err(e) => {
                self.metrics.chain_reachable.set(0);
                tracing::warn!(error = %e, "cannot read the chain; it is Unknown this pass");
                (last.clone(), false)
            }
        }
    }

    async fn refresh_standings(&self, now: u64) {
        let stale = self
            .registry
            .lock()
            .await
            .stale_standings(now, STANDING_MAX_AGE_MS);
        for node in stale {
            match within(self.suite.node_licence(node)).await {
                Ok(licence) => {
                    let standing = Standing {
                        licensed: licence.is_some_and(|l| !l.blacklisted),
                        operator: licence.map_or(Address::ZERO, |l| l.owner),
                        checked_ms: now,
                    };
                    self.registry.lock().await.set_standing(node, standing);
                }
                Err(e) => {
                    tracing::warn!(%node, error = %e, "cannot read the node's licence");
                    return;
                }
            }
        }
    }

    /// One pass of every loop.
    async fn pass_once(&self) {
        let now = now_ms();
        let link = self.mesh.link();
        self.metrics
            .broker_connected
            .set(i64::from(matches!(link, BrokerLink::Connected { .. })));
        let (chain, chain_fresh) = self.read_chain().await;
        if chain_fresh {
            self.refresh_standings(now).await;
        }
        let (candidates, reports) = {
            let registry = self.registry.lock().await;
            let mut by_state: BTreeMap<&'static str, i64> = BTreeMap::new();
            let mut reports: BTreeMap<u64, Vec<(u32, Address)>> = BTreeMap::new();
            for (node, record) in registry.nodes() {
                let state = match registry.liveness(node, link, now, &self.liveness) {
                    NodeLiveness::Alive => "alive",
                    NodeLiveness::Suspect => "suspect",
                    NodeLiveness::Lost => "lost",
                    NodeLiveness::Unknown => "unknown",
                };
                *by_state.entry(state).or_default() += 1;
                for w in &record.heartbeat.workloads {
                    reports
                        .entry(w.id.job)
                        .or_default()
                        .push((w.id.replica, *node));
                }
            }
            for state in ["alive", "suspect", "lost", "unknown"] {
                self.metrics
                    .nodes
                    .get_or_create(&crate::oracle::metrics::Name { name: state.into() })
                    .set(by_state.get(state).copied().unwrap_or(0));
            }
            (registry.candidates(link, now, &self.liveness), reports)
        };
        let pass = Pass {
            now_ms: now,
            link,
            chain,
            chain_fresh,
            candidates,
            reports,
        };

        let jobs = self.store.list(Kind::Job, None).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list jobs");
            Vec::new()
        });
        let mut phases: BTreeMap<String, i64> = BTreeMap::new();
        let mut linked: BTreeSet<u64> = BTreeSet::new();
        for object in &jobs {
            let outcome = self.reconcile_job(object, &pass).await;
            *phases.entry(format!("{:?}", outcome.phase)).or_default() += 1;
            linked.extend(outcome.chain_job);
        }
        self.metrics.jobs.clear();
        for (phase, count) in phases {
            self.metrics
                .jobs
                .get_or_create(&crate::oracle::metrics::Name { name: phase })
                .set(count);
        }
        if pass.chain_fresh {
            self.stop_orphans(&pass, &linked).await;
            self.economy_pass(&pass).await;
            self.resource_statuses(&pass).await;
        }
    }

    /// Stops workloads of jobs no resource here pays for, once the chain confirms their job
    /// is closed (an unknown job may simply belong to a CSP whose request has not reached this
    /// oracle yet).
    async fn stop_orphans(&self, pass: &Pass, linked: &BTreeSet<u64>) {
        let Some(chain) = &pass.chain else { return };
        for job in pass.reports.keys() {
            if chain.jobs.contains_key(job) || linked.contains(job) {
                continue;
            }
            let known_closed = self.closed_jobs.lock().await.contains(job);
            let closed = known_closed
                || match within(self.suite.job(*job)).await {
                    Ok(j) => j.closed || j.id.is_zero(),
                    Err(e) => {
                        tracing::debug!(job, error = %e, "cannot read an unknown job");
                        false
                    }
                };
            if closed {
                self.closed_jobs.lock().await.insert(*job);
                self.stop_everywhere(*job, "job closed", pass);
            }
        }
    }
}
