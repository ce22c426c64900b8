//! The running oracle: opens its stores, connects to the chain and the broker, serves the
//! Deeploy API, and runs the reconcile pass (availability, validation, closure, rewards) every
//! loop period and whenever a CSP changes something.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use r1_contracts::epoch::EpochClock;
use r1_contracts::{Deployment, Suite};
use r1_crds::api::object::ObjectKey;
use r1_crds::api::wire::{ApiInfo, ErrorBody};
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use r1_protocol::Message;
use r1_protocol::envelope::{Envelope, MessageKind, Sealer};
use r1_protocol::identity::Identity;
use r1_protocol::messages::{LivenessProbe, OracleObservation, OraclePresence, RelayedRequest};
use r1_protocol::now_ms;
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::verify::{Freshness, Verified, Verifier};
use tokio::sync::Mutex;
use url::Url;

use crate::config::OracleConfig;
use crate::decide::cstore_rules::{self, Grants, JobRef};
use crate::decide::liveness::{
    BrokerLink, LivenessConfig, LivenessView, NodeLiveness, PROBE_PATIENCE_MS,
};
use crate::decide::median::AvailabilityTables;
use crate::decide::node_registry::{NodeChannel, Refusal, Registry, Standing, authenticate};
use crate::decide::placement::Candidates;
use crate::decide::roster::RosterSchedule;
use crate::intake::delegation::{ChainDelegations, Delegations};
use crate::intake::http::{ApiState, router};
use crate::intake::links::ChainLinkAttestor;
use crate::intake::store::ResourceStore;
use crate::intake::writes::WriteHook;
use crate::kube::funding::ClusterFunding;
use crate::kube::pinning::ImagePinner;
use crate::kube::secrets::SecretSealer;
use crate::kube::signed::{Network, SignedWrites, Writes};
use crate::oracle::admission::Known;
use crate::oracle::answers::{Answers, Recheck};
use crate::oracle::broker;
use crate::oracle::chain::{ChainSnapshot, EscrowBook, WholeRead, escrow_book, within};
use crate::oracle::chain_watch::WatchedEscrows;
use crate::oracle::cstore_rules::RulesPublisher;
use crate::oracle::mesh::{DropCounter, Inbound, Mesh};
use crate::oracle::metrics::{Metrics, RefusalLog};
use crate::oracle::oracle_keys::OracleKeyBook;
use crate::oracle::quiet::{QuietJobs, ReportDigests};
use crate::oracle::relay;
use crate::oracle::sessions::SessionHub;
use crate::oracle::state::OracleState;
use crate::oracle::votes::{Ballots, VoteQueue};
use futures_util::future::BoxFuture;

/// Nodes whose licences one `nodeStandings` call reads.
const STANDINGS_PER_CALL: usize = 200;

/// Unknown job ids nodes report that are looked up on chain in one pass.
const ORPHAN_LOOKUPS_PER_PASS: usize = 8;

/// The shortest time between the starts of two reconcile passes: node reports and CSP writes
/// wake a pass, and a burst of them wakes one every this often, not one each.
const MIN_PASS_GAP: Duration = Duration::from_millis(100);

/// How long "this unknown job is open" is believed before asking again.
const ORPHAN_RECHECK_MS: u64 = 60_000;

/// How long a working node's licence reading stays good. Every change of a standing the chain
/// announces (link, unlink, blacklist, suspension) is read at once from its events
/// ([`r1_contracts::Suite::standing_changes`]), so this is a guard: re-reading 10,000 nodes
/// every 30 s had cost each oracle 330 standings a second on the chain node.
const STANDING_MAX_AGE_MS: u64 = 600_000;

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

/// Each stored job's on-chain id as this pass's visit found it (linked jobs only): what the
/// service tables and tunnels link the nodes' reports through, without decoding every job's
/// status again.
pub(crate) type ChainIds = HashMap<ObjectKey, u64>;

/// What one pass knows, shared by every job of the pass.
#[derive(Debug)]
pub(crate) struct Pass {
    pub now_ms: u64,
    pub link: BrokerLink,
    pub chain: Option<ChainSnapshot>,
    pub chain_fresh: bool,
    /// Every node's liveness, worked out once for the whole pass.
    pub liveness: LivenessView,
    pub candidates: Candidates,
    /// Every (replica, node) nodes report, by job.
    pub reports: BTreeMap<u64, Vec<(u32, Address)>>,
    /// What the nodes report of each job, with their liveness, digested.
    pub report_digests: ReportDigests,
    /// The node-set votes the pass decided, cast together at its end.
    pub ballots: Ballots,
}

/// The verifiers of other oracles' observations and relayed requests.
type OracleVerifiers = (Verifier<HashSet<Address>>, Verifier<HashSet<Address>>);

/// One oracle.
pub struct Oracle {
    pub(crate) me: Address,
    pub(crate) sealer: Sealer,
    pub(crate) suite: Suite,
    pub(crate) store: Arc<ResourceStore>,
    pub(crate) state: Arc<OracleState>,
    pub(crate) registry: Mutex<Registry>,
    /// Votes passes decided, waiting for the voter ([`Oracle::vote_forever`]).
    pub(crate) votes: VoteQueue,
    /// The newest fresh chain snapshot, for the money task ([`Oracle::money_forever`]).
    pub(crate) money: tokio::sync::watch::Sender<Option<ChainSnapshot>>,
    pub(crate) mesh: Mesh,
    topics: Topics,
    pub(crate) catalogue: Catalogue,
    pub(crate) config: OracleConfig,
    pub(crate) liveness: LivenessConfig,
    pub(crate) clock: EpochClock,
    pub(crate) metrics: Metrics,
    /// Held while a CSP write is checked, applied and recorded, by the API and the relay alike,
    /// so the newest-request-wins rule holds between concurrent writes.
    write_order: Mutex<()>,
    stable: std::sync::Mutex<HashMap<u64, (BTreeSet<Address>, u64)>>,
    /// The availability tables of recent epochs, this oracle's and the others'.
    pub(crate) availability_tables: Mutex<AvailabilityTables>,
    /// The availability tables this oracle voted for, by epoch, until their pages are recorded.
    pub(crate) availability_pages: Mutex<BTreeMap<u64, Arc<r1_contracts::AvailabilityTable>>>,
    /// When each closable job was first seen closable (unix ms), for the closure backoff.
    pub(crate) closable_since: Mutex<BTreeMap<u64, u64>>,
    /// The last chain snapshot read, and what it was read for.
    last_chain: Mutex<Option<(ChainSnapshot, SnapshotKey)>>,
    /// The open jobs the guard last read whole, until a pass follows on from them.
    pub(crate) whole_read: std::sync::Mutex<Option<WholeRead>>,
    /// The last block whose standing changes (links, unlinks, blacklist, suspensions) were read.
    standing_block: Mutex<Option<u64>>,
    /// When this oracle last tried to burn the queued fees (unix ms), to pace retries.
    pub(crate) burn_tried_ms: std::sync::atomic::AtomicU64,
    /// When this oracle's last availability submission failed (unix ms, 0: never).
    pub(crate) availability_failed_ms: std::sync::atomic::AtomicU64,
    /// When this oracle last sent an availability page (unix ms), to pace the pages.
    pub(crate) availability_page_ms: std::sync::atomic::AtomicU64,
    escrow_book: Mutex<EscrowBook>,
    oracle_messages: Mutex<OracleVerifiers>,
    /// Chain jobs nodes report that no resource here pays for: settled once closed.
    orphans: Mutex<Answers<u64, ()>>,
    refusal_log: RefusalLog,
    /// The embedded broker's oracle set, kept equal to the chain's.
    gate_oracles: broker::GateOracles,
    /// The roster last published to the nodes.
    roster: Mutex<RosterSchedule>,
    /// The CSTORE access rules last published to the nodes.
    cstore_rules: Mutex<RulesPublisher>,
    /// The service tables last sent to the nodes.
    pub(crate) service_tables: Mutex<crate::decide::service_table::TableSchedule>,
    /// The oracles' public keys, for the API to list.
    pub(crate) oracle_keys: Arc<OracleKeyBook>,
    /// Which delegate keys may act for which escrow owners, read from the chain.
    delegations: Arc<ChainDelegations>,
    /// Rung when a node reports a workload change or the chain records a job change, so the
    /// next pass runs now rather than at the end of the loop period.
    pass_wanted: tokio::sync::Notify,
    /// The escrows whose events wake a pass.
    pub(crate) watched_escrows: WatchedEscrows,
    /// The jobs settled at their last visit, skipped while their inputs stand still.
    pub(crate) quiet_jobs: QuietJobs,
    /// The earliest time (unix ms) a pass asked the next one to run by (a running set done
    /// settling, a vote to read back); `u64::MAX` when none.
    next_pass_ms: std::sync::atomic::AtomicU64,
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
    let voted_availability: BTreeMap<u64, Arc<r1_contracts::AvailabilityTable>> = state
        .availability_tables()
        .map_err(|e| fail("oracle state")(e.to_string()))?
        .into_iter()
        .map(|(epoch, rows)| {
            (
                epoch,
                Arc::new(r1_contracts::AvailabilityTable::new(epoch, rows)),
            )
        })
        .collect();
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
    let rule = within(suite.quorum_rule())
        .await
        .map_err(|e| fail("quorum rule")(e.to_string()))?;
    match (config.chain.quorum, rule) {
        (Some(agreed), Some(deployed)) if agreed != deployed => {
            return Err(StartError::Start(format!(
                "chain.quorum: this oracle agreed to the {agreed} rule, but the PoAI manager decides by the {deployed} rule"
            )));
        }
        (_, None) => {
            return Err(StartError::Start(
                "quorum rule: the PoAI manager names a rule this oracle does not know".into(),
            ));
        }
        (_, Some(deployed)) => {
            tracing::info!(quorum = %deployed, "the PoAI manager's consensus rule")
        }
    }
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
    let metrics = Metrics::new();
    let refused = metrics.refused.clone();
    let dropped: DropCounter = Arc::new(move |reason: &'static str| {
        refused
            .get_or_create(&crate::oracle::metrics::Name {
                name: reason.into(),
            })
            .inc();
    });
    let (mesh, inbox) = Mesh::start(
        &broker_url,
        config.broker.ca_file.as_deref(),
        &format!("r1-oracle-{me:#x}"),
        &identity,
        &topics,
        dropped,
    )
    .map_err(|e| fail("broker")(e.to_string()))?;

    let oracle_keys = Arc::new(OracleKeyBook::new(
        me,
        r1_protocol::sealed::public_key(&identity),
    ));
    let delegations = Arc::new(ChainDelegations::new(suite.clone()));
    let links = Arc::new(ChainLinkAttestor::new(
        suite.clone(),
        identity.clone(),
        config.chain.chain_id,
    ));
    let oracle = Arc::new(Oracle {
        me,
        oracle_keys: oracle_keys.clone(),
        delegations: delegations.clone(),
        pass_wanted: tokio::sync::Notify::new(),
        watched_escrows: WatchedEscrows::default(),
        quiet_jobs: QuietJobs::default(),
        next_pass_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
        cstore_rules: Mutex::new(RulesPublisher::new(identity.clone())),
        service_tables: Mutex::default(),
        sealer: Sealer::new(identity),
        suite,
        store: store.clone(),
        state,
        registry: Mutex::new(Registry::default()),
        mesh,
        topics: topics.clone(),
        catalogue: catalogue.clone(),
        liveness,
        clock,
        metrics,
        write_order: Mutex::new(()),
        stable: std::sync::Mutex::new(HashMap::new()),
        availability_tables: Mutex::new(AvailabilityTables::default()),
        availability_pages: Mutex::new(voted_availability),
        closable_since: Mutex::new(BTreeMap::new()),
        last_chain: Mutex::new(None),
        whole_read: std::sync::Mutex::new(None),
        standing_block: Mutex::new(None),
        burn_tried_ms: std::sync::atomic::AtomicU64::new(0),
        availability_failed_ms: std::sync::atomic::AtomicU64::new(0),
        availability_page_ms: std::sync::atomic::AtomicU64::new(0),
        escrow_book: Mutex::new(escrow_book()),
        oracle_messages: Mutex::new((
            Verifier::new(HashSet::new(), Freshness::default()),
            Verifier::new(HashSet::new(), Freshness::default()),
        )),
        orphans: Mutex::new(Answers::new(Recheck {
            after_ms: ORPHAN_RECHECK_MS,
            per_pass: ORPHAN_LOOKUPS_PER_PASS,
            max_remembered: 100_000,
        })),
        refusal_log: RefusalLog::default(),
        gate_oracles,
        roster: Mutex::default(),
        votes: VoteQueue::default(),
        money: tokio::sync::watch::Sender::new(None),
        config: config.clone(),
    });

    let info = ApiInfo {
        oracle: me,
        chain_id: config.chain.chain_id,
        poai_manager: manager,
        epoch_seconds: length,
        genesis_unix: genesis,
    };
    let claims = Arc::new(crate::intake::claims::EscrowHolders::new(
        oracle.suite.clone(),
    ));
    let sessions = Arc::new(SessionHub::new(oracle.clone(), topics));
    let api_router = router(
        ApiState::new(store, catalogue)
            .with_quotas(config.api.quotas)
            .with_sessions(sessions.clone())
            .with_info(info)
            .with_claims(claims)
            .with_writes(Arc::new(RelayWrites(oracle.clone())))
            .with_oracle_keys(oracle_keys)
            .with_delegations(delegations)
            .with_links(links),
    );
    let api = api_router.clone().merge(metrics_router(oracle.clone()));
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|e| fail("api.listen")(e.to_string()))?;
    tracing::info!(oracle = %me, api = %config.api.listen, broker = %broker_url, "oracle started");
    tokio::spawn(async move {
        if let Err(e) = crate::intake::serve::serve_api(listener, api).await {
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
        let mut network =
            kube_network(&settings, api_router, &rpc, manager, config.chain.chain_id).await?;
        network.secrets = Some(Arc::new(SecretSealer::new(
            client.clone(),
            oracle.sealer.identity().clone(),
            oracle.oracle_keys.clone(),
        )));
        network.pinning = match ImagePinner::new() {
            Ok(pinner) => Some(Arc::new(pinner)),
            Err(e) => {
                tracing::warn!(error = %e, "image tags on the Kubernetes path are not pinned");
                None
            }
        };
        let store = oracle.store.clone();
        let catalogue = oracle.catalogue.clone();
        let metrics = oracle.metrics.kube.clone();
        tokio::spawn(async move {
            let never = std::future::pending::<()>();
            let run = crate::kube::run_with_metrics(
                client, settings, store, catalogue, network, metrics, never,
            );
            if let Err(e) = run.await {
                tracing::error!(error = %e, "the Kubernetes adapter stopped");
            }
        });
    }
    tokio::spawn(oracle.clone().receive_nodes(
        inbox.licensed_status,
        inbox.licensed_nodes,
        inbox.other_nodes,
    ));
    tokio::spawn(oracle.clone().receive_observations(inbox.observations));
    tokio::spawn(oracle.clone().receive_requests(inbox.requests));
    tokio::spawn(sessions.receive(inbox.sessions));
    tokio::spawn(oracle.clone().resync());
    tokio::spawn(oracle.clone().watch_chain());
    tokio::spawn(oracle.clone().guard_jobs());
    tokio::spawn(oracle.clone().vote_forever());
    tokio::spawn(oracle.clone().money_forever());
    let passes = tokio::spawn(oracle.clone().reconcile_forever());
    shutdown_signal().await;
    passes.abort();
    tracing::info!("oracle stopped");
    Ok(())
}

/// How the Kubernetes adapter reaches the network: signed with `kube.delegateKeyFile`'s key
/// through the oracle's own API (`api`), funding jobs on the chain at `rpc` when
/// `kube.fundJobs`; without a delegate key, into this oracle's store only.
async fn kube_network(
    settings: &crate::kube::KubeSettings,
    api: axum::Router,
    rpc: &Url,
    manager: Address,
    chain_id: u64,
) -> Result<Network, StartError> {
    let Some(path) = &settings.delegate_key_file else {
        tracing::warn!(
            "kube.delegateKeyFile is unset: resources mirrored from the cluster stay in this oracle and are not funded"
        );
        return Ok(Network::default());
    };
    let delegate = r1_protocol::keyfile::load(path)
        .map_err(|e| fail("kube.delegateKeyFile")(e.to_string()))?;
    tracing::info!(delegate = %delegate.address(), "the Kubernetes adapter signs with a delegate key");
    let funding = if settings.fund_jobs {
        let provider = r1_contracts::devchain::connect(rpc, delegate.signer().clone());
        let deployment = within(Deployment::from_manager(&provider, manager))
            .await
            .map_err(|e| fail("kube funding")(e.to_string()))?;
        let suite = Suite::new(provider, delegate.address(), deployment);
        let (genesis, length) = within(suite.epoch_clock())
            .await
            .map_err(|e| fail("epoch clock")(e.to_string()))?;
        let clock =
            EpochClock::new(genesis, length).map_err(|e| fail("epoch clock")(e.to_string()))?;
        Some(Arc::new(ClusterFunding::new(suite, chain_id, clock)))
    } else {
        None
    };
    Ok(Network {
        writes: Writes::Signed(SignedWrites::new(delegate, api)),
        funding,
        secrets: None,
        pinning: None,
    })
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

/// Orders the CSP writes this oracle's API receives (see [`relay`]): a write older than one
/// recorded for an object it touches is refused with 409; one the API accepts is recorded and
/// relayed to the other oracles.
struct RelayWrites(Arc<Oracle>);

impl std::fmt::Debug for RelayWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayWrites")
            .field("oracle", &self.0.me)
            .finish()
    }
}

impl WriteHook for RelayWrites {
    fn around<'a>(
        &'a self,
        write: RelayedRequest,
        handle: BoxFuture<'a, Response>,
    ) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            let oracle = &self.0;
            let _order = oracle.write_order.lock().await;
            let state = oracle.state.clone();
            let checked = {
                let write = write.clone();
                tokio::task::spawn_blocking(move || relay::admit(&state, &write)).await
            };
            let keys = match checked {
                Ok(Ok(keys)) => keys,
                Ok(Err(e @ relay::RelayError::Superseded { .. })) => {
                    tracing::warn!(signer = write.address, path = write.path, reason = %e, "refused a superseded write");
                    oracle.metrics.refuse("superseded_write");
                    return (
                        StatusCode::CONFLICT,
                        axum::Json(ErrorBody {
                            error: "superseded".into(),
                            reason: e.to_string(),
                            errors: Vec::new(),
                        }),
                    )
                        .into_response();
                }
                // Not an object write (an unknown kind, say): the API answers it.
                Ok(Err(_)) | Err(_) => return handle.await,
            };
            let response = handle.await;
            if response.status().is_success() {
                let state = oracle.state.clone();
                let recorded = {
                    let write = write.clone();
                    tokio::task::spawn_blocking(move || {
                        relay::record_accepted(&state, &write, &keys)
                    })
                    .await
                };
                if !matches!(recorded, Ok(Ok(()))) {
                    tracing::warn!(path = write.path, "cannot record the accepted request");
                }
                oracle.broadcast(Channel::Requests, &write);
            }
            response
        })
    }
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

    /// Publishes the roster of licensed nodes when it changed or is due again.
    async fn publish_roster(&self, nodes: Vec<r1_protocol::messages::RosterEntry>, now: u64) {
        let mut schedule = self.roster.lock().await;
        if let Some(roster) = schedule.due(nodes, now)
            && self.broadcast(Channel::Roster, &roster)
        {
            schedule.published(roster);
        }
    }

    /// Publishes the CSTORE access rules for `jobs` and the stored projects' grants when they
    /// changed or are due again.
    async fn publish_cstore_rules(&self, jobs: &[JobRef], now: u64) {
        let grants: Vec<Grants> = self
            .store
            .list(Kind::Project, None)
            .unwrap_or_default()
            .iter()
            .filter_map(|object| {
                let spec = object.spec.project()?;
                let key = object.key();
                Some(Grants {
                    namespace: key.namespace,
                    project: key.name,
                    readers: spec.cstore_readers.clone(),
                })
            })
            .collect();
        let desired = cstore_rules::rules(jobs, &grants);
        let messages = match self.cstore_rules.lock().await.due(&desired, now) {
            Ok(messages) => messages,
            Err(e) => {
                tracing::error!(error = %e, "cannot seal the CSTORE rules");
                return;
            }
        };
        let topic = self.topics.topic(Channel::Cstore, &self.me);
        for message in messages {
            self.mesh.publish(&topic, message);
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

    /// Handles node heartbeats and status reports: licensed nodes' status reports first, then
    /// their heartbeats, then other nodes' messages.
    async fn receive_nodes(
        self: Arc<Self>,
        mut status: tokio::sync::mpsc::Receiver<Inbound>,
        mut licensed: tokio::sync::mpsc::Receiver<Inbound>,
        mut others: tokio::sync::mpsc::Receiver<Inbound>,
    ) {
        loop {
            let message = tokio::select! {
                biased;
                Some(message) = status.recv() => message,
                Some(message) = licensed.recv() => message,
                Some(message) = others.recv() => message,
                else => return,
            };
            let Some((channel, sender)) = self.topics.parse(&message.topic) else {
                continue;
            };
            let now = message.received_ms;
            // A will shares the status topic: the broker publishes it there for the node.
            let will = channel == Channel::Status
                && Envelope::from_bytes(&message.payload)
                    .is_ok_and(|e| e.kind == MessageKind::Gone);
            let outcome = match channel {
                Channel::Heartbeat => {
                    self.take_node_message(NodeChannel::Heartbeat, sender, &message, |r, v| {
                        r.take_heartbeat(sender, v, now, &self.liveness)
                    })
                    .await
                }
                Channel::Status if will => {
                    self.registry
                        .lock()
                        .await
                        .on_gone(sender, &message.payload, now)
                }
                Channel::Status => {
                    self.take_node_message(NodeChannel::Status, sender, &message, |r, v| {
                        r.take_status(sender, v, now)
                    })
                    .await
                }
                _ => continue,
            };
            match outcome {
                Ok(_) if will => {
                    tracing::info!(node = %sender, "the broker says the node's session ended; probing it");
                    self.metrics.accept("will");
                    self.wake_pass("node");
                }
                Ok(_) if channel == Channel::Status => {
                    self.metrics.accept("status");
                    self.wake_pass("node");
                }
                Ok(_) => self.metrics.accept("heartbeat"),
                Err(e) => self.refused(&message.topic, sender, e.label(), &e.to_string()),
            }
        }
    }

    /// Takes in one node message: the registry's cheap refusals first, then the signature is
    /// checked without the registry's lock (the pass reads the registry meanwhile), then `take`
    /// records it under the lock.
    async fn take_node_message<M: Message>(
        &self,
        channel: NodeChannel,
        sender: Address,
        message: &Inbound,
        take: impl FnOnce(&mut Registry, Verified<M>) -> Result<Address, Refusal>,
    ) -> Result<Address, Refusal> {
        let now = message.received_ms;
        if !self.registry.lock().await.wants(channel, &sender, now)? {
            return Ok(sender);
        }
        let verified = authenticate::<M>(&message.payload, now)?;
        take(&mut *self.registry.lock().await, verified)
    }

    /// Handles the other oracles' observations and presence messages (whose signatures tell
    /// their keys, see [`OracleKeyBook`]).
    async fn receive_observations(
        self: Arc<Self>,
        mut inbound: tokio::sync::mpsc::Receiver<Inbound>,
    ) {
        while let Some(message) = inbound.recv().await {
            let kind = Envelope::from_bytes(&message.payload).map(|e| e.kind);
            if matches!(kind, Ok(MessageKind::Presence)) {
                self.from_other_oracle::<OraclePresence>(&message, |v| &mut v.0)
                    .await;
                continue;
            }
            if let Some((sender, observation)) = self
                .from_other_oracle::<OracleObservation>(&message, |v| &mut v.0)
                .await
            {
                self.availability_tables.lock().await.observe(
                    sender,
                    observation.epoch,
                    observation.availability,
                );
            }
        }
    }

    /// Handles requests relayed by the other oracles, one at a time, in the write order.
    async fn receive_requests(self: Arc<Self>, mut inbound: tokio::sync::mpsc::Receiver<Inbound>) {
        while let Some(message) = inbound.recv().await {
            let Some((sender, request)) = self
                .from_other_oracle::<RelayedRequest>(&message, |v| &mut v.1)
                .await
            else {
                continue;
            };
            let delegation_held = match self.delegation_held(&request).await {
                Ok(held) => held,
                Err(e) => {
                    self.refused(&message.topic, sender, "relay_refused", &e);
                    continue;
                }
            };
            let _order = self.write_order.lock().await;
            let oracle = self.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                relay::receive(
                    &oracle.state,
                    &oracle.store,
                    &oracle.catalogue,
                    oracle.config.api.quotas,
                    &request,
                    delegation_held,
                )
            })
            .await;
            match outcome {
                Ok(Ok(outcome)) => tracing::debug!(from = %sender, ?outcome, "relayed request"),
                Ok(Err(e)) => self.refused(&message.topic, sender, "relay_refused", &e.to_string()),
                Err(e) => self.refused(&message.topic, sender, "relay_failed", &e.to_string()),
            }
        }
    }

    /// Whether the chain says the signer of `request` may act for the owner it names (false
    /// when it names none); an error when the owner is malformed or the chain cannot tell.
    async fn delegation_held(&self, request: &RelayedRequest) -> Result<bool, String> {
        let Some(owner) = relay::delegated_owner(request).map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        let Ok(signer) = request.address.parse::<Address>() else {
            return Ok(false);
        };
        self.delegations.permits(owner, signer).await
    }

    /// The message another oracle published as `message`, checked by the verifier `pick`
    /// chooses and against the oracle named in the topic; `None` for this oracle's own messages
    /// and for refused ones (counted and logged).
    async fn from_other_oracle<M: Message>(
        &self,
        message: &Inbound,
        pick: fn(&mut OracleVerifiers) -> &mut Verifier<HashSet<Address>>,
    ) -> Option<(Address, M)> {
        let (_, sender) = self.topics.parse(&message.topic)?;
        if sender == self.me {
            return None;
        }
        let verified = pick(&mut *self.oracle_messages.lock().await)
            .verify::<M>(&message.payload, message.received_ms);
        match verified {
            Ok(v) if v.sender == sender => {
                if self.oracle_keys.learn(sender, v.public_key) {
                    tracing::info!(oracle = %sender, "learned an oracle's public key");
                }
                return Some((sender, v.message));
            }
            Ok(_) => self.refused(
                &message.topic,
                sender,
                "topic_mismatch",
                "message under another oracle's topic",
            ),
            Err(e) => self.refused(&message.topic, sender, e.label(), &e.to_string()),
        }
        None
    }

    /// Counts and logs a refused message: the first of each reason in a while at warn level,
    /// the rest at debug, so a flood of refusals does not become a flood of log lines.
    fn refused(&self, topic: &str, sender: Address, label: &'static str, reason: &str) {
        self.metrics.refuse(label);
        if self.refusal_log.should_warn(label, now_ms()) {
            tracing::warn!(topic, %sender, label, reason, "refused a message (more of this reason in the next minute are logged at debug level)");
        } else {
            tracing::debug!(topic, %sender, label, reason, "refused a message");
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
            let state = self.state.clone();
            match tokio::task::spawn_blocking(move || state.current_requests()).await {
                Ok(Ok(records)) => {
                    for (i, record) in records.iter().enumerate() {
                        self.broadcast(Channel::Requests, &record.request);
                        if i % 100 == 99 {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot read relayed requests"),
                Err(e) => tracing::warn!(error = %e, "cannot read relayed requests"),
            }
        }
    }

    /// Asks for a pass now (at most one per [`MIN_PASS_GAP`]); `cause` labels the metric.
    pub(crate) fn wake_pass(&self, cause: &str) {
        self.metrics.wake(cause);
        self.pass_wanted.notify_one();
    }

    /// Asks for the next pass to run by `at_ms` (unix ms) at the latest.
    pub(crate) fn pass_due_at(&self, at_ms: u64) {
        self.next_pass_ms
            .fetch_min(at_ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs a pass every loop period, and sooner when a CSP changed something, a node reported
    /// a workload change or a pass asked for an earlier one (at most one pass per
    /// [`MIN_PASS_GAP`]).
    async fn reconcile_forever(self: Arc<Self>) {
        let period = Duration::from_millis(self.config.loops.period_ms);
        let mut changes = self.store.subscribe();
        loop {
            let started = Instant::now();
            self.next_pass_ms
                .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
            self.pass_once().await;
            self.metrics
                .pass("reconcile", started.elapsed().as_secs_f64());
            let due = self
                .next_pass_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                .saturating_sub(now_ms());
            let _ = tokio::time::timeout(period.min(Duration::from_millis(due)), async {
                tokio::select! {
                    _ = changes.changed() => {}
                    () = self.pass_wanted.notified() => {}
                }
            })
            .await;
            tokio::time::sleep(MIN_PASS_GAP.saturating_sub(started.elapsed())).await;
        }
    }

    /// The running set of `job` at the last pass and since when it had been so.
    pub(crate) fn stable_of(&self, job: u64) -> Option<(BTreeSet<Address>, u64)> {
        self.stable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&job)
            .cloned()
    }

    /// Keeps the running set of `job` and since when, for the next pass.
    pub(crate) fn keep_stable(&self, job: u64, stable: (BTreeSet<Address>, u64)) {
        self.stable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job, stable);
    }

    async fn read_chain(&self) -> (Option<ChainSnapshot>, bool) {
        let mut owners: BTreeSet<Address> = BTreeSet::new();
        match self.store.namespaces() {
            Ok(namespaces) => owners.extend(namespaces.into_iter().map(|(_, owner)| owner)),
            Err(e) => tracing::warn!(error = %e, "cannot list namespaces"),
        }
        let mut last = self.last_chain.lock().await;
        let now = now_ms();
        let key = SnapshotKey {
            head: within(self.suite.head()).await.ok(),
            epoch: self.clock.epoch_at_ms(now).unwrap_or(0),
            owners,
            read_ms: now,
        };
        if let Some((snapshot, read_for)) = last.as_ref()
            && read_for.still_holds(&key)
        {
            return (Some(snapshot.clone()), true);
        }
        let mut book = self.escrow_book.lock().await;
        let previous = last.as_ref().map(|(snapshot, _)| snapshot);
        let guarded = self
            .whole_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .filter(|whole| previous.is_none_or(|p| whole.newer_than(p)))
            .map(|whole| whole.base(previous.map_or(&BTreeMap::new(), |p| &p.escrows)));
        let previous = guarded.as_ref().or(previous);
        match ChainSnapshot::read(
            &self.suite,
            key.epoch,
            &key.owners,
            &mut book,
            now,
            key.head,
            previous,
        )
        .await
        {
            Ok(snapshot) => {
                self.metrics.chain_reachable.set(1);
                let oracles: HashSet<Address> = snapshot.oracles.iter().copied().collect();
                self.gate_oracles.set(oracles.iter().copied());
                self.oracle_keys.set_oracles(oracles.clone());
                let mut verifiers = self.oracle_messages.lock().await;
                *verifiers.0.policy_mut() = oracles.clone();
                *verifiers.1.policy_mut() = oracles.clone();
                self.mesh.set_known(Known {
                    oracles,
                    licensed: self.registry.lock().await.licensed(),
                });
                self.watched_escrows.set(snapshot.escrows.values().copied());
                *last = Some((snapshot.clone(), key));
                (Some(snapshot), true)
            }
            Err(e) => {
                self.metrics.chain_reachable.set(0);
                tracing::warn!(error = %e, "cannot read the chain; it is Unknown this pass");
                (last.as_ref().map(|(snapshot, _)| snapshot.clone()), false)
            }
        }
    }

    /// Reads again the standing of every node the chain changed since the last pass (a fresh
    /// link is thus seen at once, not at the unlicensed node's next recheck), then of the nodes
    /// whose reading is old.
    async fn refresh_standings(&self, now: u64) {
        let epoch = self.clock.epoch_at_ms(now).unwrap_or(0);
        {
            let mut block = self.standing_block.lock().await;
            match within(self.suite.standing_changes(*block)).await {
                Ok((changed, last)) => {
                    *block = Some(last);
                    let mut registry = self.registry.lock().await;
                    for node in changed {
                        registry.forget_standing(&node);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the chain's standing changes"),
            }
        }
        let stale = self
            .registry
            .lock()
            .await
            .stale_standings(now, STANDING_MAX_AGE_MS);
        let pages: Vec<_> = futures_util::future::join_all(
            stale
                .chunks(STANDINGS_PER_CALL)
                .map(|page| async move { (page, within(self.suite.node_licences(page)).await) }),
        )
        .await;
        let mut registry = self.registry.lock().await;
        for (page, reading) in pages {
            let licences = match reading {
                Ok(licences) if licences.len() == page.len() => licences,
                Ok(licences) => {
                    tracing::warn!(
                        asked = page.len(),
                        answered = licences.len(),
                        "the chain answered a page of licences with the wrong length"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(nodes = page.len(), error = %e, "cannot read the nodes' licences");
                    continue;
                }
            };
            for (node, licence) in page.iter().zip(licences) {
                let standing = Standing {
                    licensed: licence.is_some_and(|l| !l.blacklisted),
                    idle: licence.is_some_and(|l| !l.may_work(epoch)),
                    operator: licence.map_or(Address::ZERO, |l| l.owner),
                    checked_ms: now,
                };
                registry.set_standing(*node, standing);
            }
        }
    }

    /// Sends a liveness probe to every node suspected gone and not probed since, and asks for
    /// the pass that judges the answers.
    fn probe_suspects(&self, registry: &mut Registry, now: u64) {
        for node in registry.probes_due() {
            if self.send(node, &LivenessProbe { target: node }) {
                self.metrics.command("probe");
                registry.probed(&node, now);
                self.pass_due_at(now.saturating_add(PROBE_PATIENCE_MS));
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
        let mut phase = PhaseClock::start(&self.metrics);
        // The nodes' standings are read beside the snapshot: neither waits for the other's
        // round trips. An unreachable chain fails both reads, which keep what they had.
        let ((chain, chain_fresh), ()) =
            tokio::join!(self.read_chain(), self.refresh_standings(now));
        phase.done("chain");
        // The registry is read under its lock and nothing else is done under it: heartbeats
        // wait for the lock meanwhile.
        let (liveness, candidates, reports, report_digests, roster) = {
            let mut registry = self.registry.lock().await;
            registry.expire(now);
            self.probe_suspects(&mut registry, now);
            let states = ["alive", "suspect", "lost", "unknown"];
            let mut by_state = [0_i64; 4];
            let mut reports: BTreeMap<u64, Vec<(u32, Address)>> = BTreeMap::new();
            let mut report_digests = ReportDigests::default();
            let (liveness, candidates) =
                registry.survey(link, now, &self.liveness, |node, record, node_liveness| {
                    by_state[match node_liveness {
                        NodeLiveness::Alive => 0,
                        NodeLiveness::Suspect => 1,
                        NodeLiveness::Lost => 2,
                        NodeLiveness::Unknown => 3,
                    }] += 1;
                    if !record.reports_count() {
                        return;
                    }
                    for w in &record.heartbeat.workloads {
                        reports
                            .entry(w.id.job)
                            .or_default()
                            .push((w.id.replica, *node));
                        report_digests.add(w.id.job, node, w, node_liveness);
                    }
                });
            for (state, count) in states.into_iter().zip(by_state) {
                self.metrics
                    .nodes
                    .get_or_create(&crate::oracle::metrics::Name { name: state.into() })
                    .set(count);
            }
            (
                liveness,
                candidates,
                reports,
                report_digests,
                registry.roster_entries(),
            )
        };
        phase.done("registry");
        self.publish_roster(roster, now).await;
        if matches!(link, BrokerLink::Connected { .. }) && self.oracle_keys.presence_due(now) {
            self.broadcast(Channel::Observations, &OraclePresence::default());
        }
        let pass = Pass {
            now_ms: now,
            link,
            chain,
            chain_fresh,
            liveness,
            candidates,
            reports,
            report_digests,
            ballots: Ballots::default(),
        };

        let jobs = self.store.list(Kind::Job, None).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list jobs");
            Vec::new()
        });
        let mut phases: BTreeMap<String, i64> = BTreeMap::new();
        let mut linked: BTreeSet<u64> = BTreeSet::new();
        let mut job_refs = Vec::new();
        let mut chain_ids = ChainIds::with_capacity(jobs.len());
        let mut wrote = false;
        let mut present = HashSet::with_capacity(jobs.len());
        for object in &jobs {
            let key = object.key();
            let inputs = self.job_inputs(object, &pass);
            let outcome = match self.quiet_jobs.unchanged(&key, inputs, now) {
                Some(outcome) => outcome,
                None => {
                    let outcome = self.reconcile_job(object, &pass).await;
                    self.quiet_jobs.visited(&key, inputs, outcome, now);
                    outcome
                }
            };
            if let Some(id) = outcome.chain_job {
                chain_ids.insert(key.clone(), id);
            }
            present.insert(key);
            wrote |= outcome.wrote;
            *phases.entry(format!("{:?}", outcome.phase)).or_default() += 1;
            linked.extend(outcome.chain_job);
            if let (Some(chain_job), Some(spec)) = (outcome.chain_job, object.spec.job()) {
                job_refs.push(JobRef {
                    chain_job,
                    namespace: object.key().namespace,
                    project: spec.project_ref.name.clone(),
                });
            }
        }
        self.quiet_jobs.retain(&present);
        // The jobs' votes go to the voter now, not after the tables and closures: a new job is
        // validated that much sooner. What the closures vote follows at the pass's end.
        self.queue_votes(&pass);
        phase.done("jobs");
        self.publish_cstore_rules(&job_refs, now).await;
        // Read again when the passes above wrote a job (a status with a chain id, a deletion
        // finalized); at steady state nothing changed and the jobs read stand.
        let stored_jobs = if wrote {
            self.store.list(Kind::Job, None).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot list jobs");
                Vec::new()
            })
        } else {
            jobs
        };
        self.tunnel_statuses(&stored_jobs, &chain_ids).await;
        self.send_service_tables(&stored_jobs, &chain_ids, &pass.report_digests, now)
            .await;
        phase.done("tables");
        self.metrics.jobs.clear();
        for (phase, count) in phases {
            self.metrics
                .jobs
                .get_or_create(&crate::oracle::metrics::Name { name: phase })
                .set(count);
        }
        self.finalize_unused();
        if pass.chain_fresh {
            self.stop_orphans(&pass, &linked).await;
            self.closure_pass(&pass).await;
            if let Some(chain) = &pass.chain {
                self.hand_to_money(chain);
            }
        }
        self.queue_votes(&pass);
        phase.done("closure");
    }

    /// Stops workloads of jobs no resource here pays for, once the chain confirms their job
    /// is closed (an unknown job may simply belong to a CSP whose request has not reached this
    /// oracle yet). At most [`ORPHAN_LOOKUPS_PER_PASS`] are looked up a pass, an open one again
    /// after [`ORPHAN_RECHECK_MS`], a closed one never.
    async fn stop_orphans(&self, pass: &Pass, linked: &BTreeSet<u64>) {
        let Some(chain) = &pass.chain else { return };
        let unknown: BTreeSet<u64> = pass
            .reports
            .keys()
            .filter(|job| !chain.jobs.contains_key(job) && !linked.contains(job))
            .copied()
            .collect();
        let due = self.orphans.lock().await.due(&unknown, pass.now_ms);
        let answers: Vec<_> = futures_util::future::join_all(
            due.into_iter()
                .map(|job| async move { (job, within(self.suite.job(job)).await) }),
        )
        .await;
        let mut book = self.orphans.lock().await;
        for (job, answer) in answers {
            match answer {
                Ok(j) => book.record(job, (j.closed || j.id.is_zero()).then_some(()), pass.now_ms),
                Err(e) => tracing::debug!(job, error = %e, "cannot read an unknown job"),
            }
        }
        for job in unknown.iter().filter(|job| book.settled(job).is_some()) {
            self.stop_everywhere(*job, "job closed", pass);
        }
    }
}

/// How long a chain snapshot is used at most while the chain's head stands still: a guard
/// against an RPC endpoint whose block number lags what its calls answer from.
const SNAPSHOT_MAX_AGE_MS: u64 = 30_000;

/// What a chain snapshot was read for: the chain's head, the epoch and the CSPs the store
/// knows. While none of them changes (no block came: a devnet mining on demand between
/// transactions, or the gap between blocks), the snapshot is used again instead of read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SnapshotKey {
    /// The latest block when the read started; `None` when it could not be read.
    head: Option<u64>,
    epoch: u64,
    owners: BTreeSet<Address>,
    /// When the snapshot was read (unix ms).
    read_ms: u64,
}

impl SnapshotKey {
    /// Whether a snapshot read for `self` answers for `now` as a fresh read would.
    fn still_holds(&self, now: &SnapshotKey) -> bool {
        self.head.is_some()
            && self.head == now.head
            && self.epoch == now.epoch
            && self.owners == now.owners
            && now.read_ms.saturating_sub(self.read_ms) < SNAPSHOT_MAX_AGE_MS
    }
}

/// Times the phases of a pass one after the other, each into the loop histogram as
/// `pass_<phase>`: where a slow pass spends its time, read from `/metrics`.
struct PhaseClock<'a> {
    metrics: &'a crate::oracle::metrics::Metrics,
    since: Instant,
}

impl<'a> PhaseClock<'a> {
    fn start(metrics: &'a crate::oracle::metrics::Metrics) -> Self {
        Self {
            metrics,
            since: Instant::now(),
        }
    }

    /// Records the time since the previous phase ended as `phase`'s.
    fn done(&mut self, phase: &str) {
        let now = Instant::now();
        self.metrics
            .pass(&format!("pass_{phase}"), (now - self.since).as_secs_f64());
        self.since = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(head: Option<u64>, epoch: u64, owners: &[u8], read_ms: u64) -> SnapshotKey {
        SnapshotKey {
            head,
            epoch,
            owners: owners.iter().map(|o| Address::with_last_byte(*o)).collect(),
            read_ms,
        }
    }

    #[test]
    fn a_snapshot_holds_while_head_epoch_and_owners_stand_still_for_a_while() {
        let read = key(Some(7), 3, &[1, 2], 1_000);
        assert!(read.still_holds(&key(Some(7), 3, &[1, 2], 2_000)));
        assert!(
            !read.still_holds(&key(Some(8), 3, &[1, 2], 2_000)),
            "a block came"
        );
        assert!(
            !read.still_holds(&key(Some(7), 4, &[1, 2], 2_000)),
            "a new epoch"
        );
        assert!(
            !read.still_holds(&key(Some(7), 3, &[1, 2, 3], 2_000)),
            "a new CSP"
        );
        assert!(
            !read.still_holds(&key(None, 3, &[1, 2], 2_000)),
            "head unknown now"
        );
        assert!(!key(None, 3, &[1, 2], 1_000).still_holds(&key(None, 3, &[1, 2], 2_000)));
        assert!(!read.still_holds(&key(Some(7), 3, &[1, 2], 1_000 + SNAPSHOT_MAX_AGE_MS)));
    }
}
