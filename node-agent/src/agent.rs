//! Wiring: opens the store, connects to containerd and the broker, and runs the supervisor,
//! the command handler, heartbeats, status reports, the local API and the metrics endpoint
//! until SIGINT or SIGTERM. Stopping the agent leaves workloads running; the next agent finds
//! them again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use r1_protocol::envelope::Sealer;
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::{Freshness, Identity};
use r1_r1fs::blocks::BlockStore;
use tokio::sync::mpsc;

use crate::api::{self, Api};
use crate::commands::{CommandHandler, Outcome};
use crate::config::NodeConfig;
use crate::files::{self, Files, Net, grpc::FilesApi, metrics::FilesMetrics};
use crate::heartbeat;
use crate::images::from_peers::PeerBlobs;
use crate::images::gc::ImageGc;
use crate::images::metrics::ImageMetrics;
use crate::images::puller::{Puller, PullerParts};
use crate::images::share::{self, BlobServer, Shelf};
use crate::link::{Inbound, Link, LinkError};
use crate::logs::LogDir;
use crate::metrics::{self, Metrics};
use crate::network::Networks;
use crate::peers::Peers;
use crate::ports::PortForwarder;
use crate::reconcile::Backoff;
use crate::resources;
use crate::runtime::containerd::Containerd;
use crate::sandbox;
use crate::scratch::ScratchDisks;
use crate::services::{MeshParts, ServiceMesh};
use crate::sessions::{SessionContext, Sessions};
use crate::state::NodeState;
use crate::store::{Store, StoreError};
use crate::supervisor::{Supervisor, SupervisorParts};
use crate::tunnels::TunnelTable;
use crate::tunnels::client::Binaries;
use crate::tunnels::runner::{TunnelLoop, TunnelParts};
use crate::tunnels::schedule::Schedule;
use r1_protocol::now_ms;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory cannot be used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker link cannot be set up.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// CSTORE cannot start.
    #[error("CSTORE: {0}")]
    Cstore(#[from] crate::kv::KvError),
    /// The R1FS block store cannot be opened.
    #[error("R1FS store: {0}")]
    Files(#[from] r1_r1fs::blocks::StoreError),
    /// The peer-to-peer layer cannot start.
    #[error("peer-to-peer layer: {0}")]
    P2p(#[from] r1_p2p::Error),
    /// The registry client cannot be built (no TLS roots).
    #[error("registry client: {0}")]
    Registry(#[from] r1_registry::RegistryError),
    /// The replicas' network cannot be given as configured.
    #[error("network: {0}")]
    Network(#[from] crate::network::NetworkError),
    /// A listener cannot be opened.
    #[error("{what}: {source}")]
    Listen {
        /// Which listener.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs the agent until a termination signal.
pub async fn run(config: NodeConfig, identity: Identity) -> Result<(), AgentError> {
    let started = Instant::now();
    let data_error = |source| AgentError::DataDir {
        path: config.data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(data_error)?;
    let store = Arc::new(Store::open(&config.data_dir.join("state"))?);
    let state = NodeState::new(store.desired()?);
    let mut registry = Metrics::registry();
    let (peers, peer_events) = Peers::start(&config, identity.clone(), &mut registry).await?;
    let files = open_files(&config, &peers, &mut registry)?;
    let image_metrics = Arc::new(ImageMetrics::register(&mut registry));
    let (files_tx, files_events) = mpsc::channel(256);
    let (kv_tx, kv_events) = mpsc::channel(256);
    let (images_tx, images_events) = mpsc::channel(256);
    tokio::spawn(crate::peers::route(peer_events, files_tx, kv_tx, images_tx));
    tokio::spawn(files::net::serve(files_events, files.clone()));
    let kv = crate::kv::start(
        &config,
        identity.clone(),
        peers.client(),
        kv_events,
        &state,
        &mut registry,
    )
    .await?;
    let metrics = Metrics::with_registry(registry);
    let address = identity.address();
    tracing::info!(
        address = %address.to_checksum(None),
        workloads = state.desired().len(),
        "r1-node starting"
    );

    if let Some(listen) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| AgentError::Listen {
                what: "metrics listener",
                source,
            })?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(listener, metrics).await {
                tracing::error!("metrics endpoint stopped: {e}");
            }
        });
    }

    let capacity = resources::read_capacity(&config.data_dir);
    let logs = LogDir::new(
        config.data_dir.join("logs"),
        config.logs.max_bytes,
        config.logs.keep,
        config.logs.retention(),
    )
    .map_err(data_error)?;
    let images_dir = config.images_dir();
    std::fs::create_dir_all(&images_dir).map_err(data_error)?;

    let topics = Topics::new(config.broker.topic_root.clone());
    let (inbound_tx, mut inbound_rx) = mpsc::channel::<Inbound>(256);
    let commands_topic = topics.topic(Channel::Commands, &address);
    let will = r1_protocol::mqtt::node_will(&identity, topics.topic(Channel::Status, &address))
        .map_err(LinkError::Will)?;
    let (link, connected) = Link::start(
        &config.broker,
        &identity,
        &format!("r1-node-{}", r1_protocol::hex::encode(address.as_slice())),
        vec![
            commands_topic.clone(),
            topics.all(Channel::Roster),
            topics.all(Channel::Cstore),
        ],
        will,
        state.clone(),
        metrics.clone(),
        inbound_tx,
    )?;
    let sealer = Arc::new(Sealer::new(identity.clone()));

    let (sessions_tx, sessions_rx) = mpsc::channel(256);
    let services = ServiceMesh::new(MeshParts {
        me: address,
        p2p: Some(peers.client()),
        state: state.clone(),
        hosts_dir: config.data_dir.join("services"),
        metrics: metrics.clone(),
    })
    .map_err(data_error)?;
    tokio::spawn(services.clone().run());
    if let Some(chain) = config.chain.clone() {
        tokio::spawn(crate::licence::watch(
            chain,
            identity.clone(),
            state.clone(),
        ));
    }
    let networks = Networks::new(config.network.clone(), config.data_dir.join("cni"));
    networks.check()?;
    let mut handler = CommandHandler::new(
        address,
        &config.oracles,
        Freshness {
            max_age_ms: config.command_max_age_seconds.saturating_mul(1000),
            ..Freshness::default()
        },
        store.clone(),
        state.clone(),
        config.ports.clone(),
        metrics.clone(),
    )?
    .with_sessions(sessions_tx)
    .with_services(services.clone());
    let roster_topics = topics.clone();
    let rules = kv.replication.clone();
    let roster_peers = peers.clone();
    let probed = Arc::new(tokio::sync::Notify::new());
    let answer_probes = probed.clone();
    tokio::spawn(async move {
        while let Some(message) = inbound_rx.recv().await {
            if message.topic == commands_topic {
                if let Ok(Outcome::Probed) = handler.handle(&message.payload, now_ms()) {
                    answer_probes.notify_one();
                }
            } else {
                match roster_topics.parse(&message.topic) {
                    Some((Channel::Roster, _)) => {
                        roster_peers.offer_roster(message.payload, now_ms()).await;
                    }
                    Some((Channel::Cstore, oracle)) => rules.take_rules(oracle, &message.payload),
                    _ => {}
                }
            }
        }
    });

    let (status_tx, status_rx) = mpsc::channel(256);
    tokio::spawn(heartbeat::run_status_reports(
        status_rx,
        link.clone(),
        sealer.clone(),
        topics.clone(),
    ));
    tokio::spawn(heartbeat::run_heartbeats(
        heartbeat::Identity {
            alias: config.alias.clone(),
            labels: config
                .labels
                .clone()
                .into_iter()
                .chain(sandbox::allowance_labels(&config.sandbox))
                .collect(),
            capacity: capacity.clone(),
            data_dir: config.data_dir.clone(),
            started,
            p2p_addrs: peers.announce().to_vec(),
            logs: logs.clone(),
        },
        Duration::from_secs(config.heartbeat_interval_seconds),
        state.clone(),
        link.clone(),
        sealer.clone(),
        topics.clone(),
        connected,
        probed.clone(),
        metrics.clone(),
    ));

    let api = Arc::new(Api {
        address,
        alias: config.alias.clone(),
        capacity: capacity.clone(),
        data_dir: config.data_dir.clone(),
        state: state.clone(),
        logs: logs.clone(),
        started,
    });
    let socket = config.api_socket.clone();
    let files_api = FilesApi(files.clone());
    let mut node_env = kv.env.clone();
    let cstore_api = crate::kv::grpc::CstoreApi(kv.engine.clone());
    tokio::spawn(async move {
        if let Err(e) = api::serve(&socket, api, files_api, cstore_api).await {
            tracing::error!(socket = %socket.display(), "local API stopped: {e}");
        }
    });

    if config.r1fs.workload_port != 0 {
        node_env.push(files::workload_api::env(config.r1fs.workload_port));
        tokio::spawn(files::workload_api::run(
            files.clone(),
            state.pids.clone(),
            config.r1fs.workload_port,
            config.r1fs.max_upload_bytes,
        ));
    }
    let containerd = connect_containerd(&config).await;
    let sessions_dir = config.data_dir.join("sessions");
    // Pipes of sessions that ended with the previous run of the agent.
    if let Err(e) = std::fs::remove_dir_all(&sessions_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(data_error(e));
    }
    std::fs::create_dir_all(&sessions_dir).map_err(data_error)?;
    tokio::spawn(
        Sessions::new(SessionContext {
            state: state.clone(),
            logs: logs.clone(),
            containerd: containerd.clone(),
            link: link.clone(),
            sealer: sealer.clone(),
            topics: topics.clone(),
            node: address,
            dir: sessions_dir,
            metrics: metrics.clone(),
        })
        .run(sessions_rx),
    );
    let registry = r1_registry::Client::new(r1_registry::Config {
        plain_http: config.registries.plain_http.clone(),
        ..r1_registry::Config::default()
    })?;
    let wake = {
        let state = state.clone();
        Arc::new(move || state.wake.notify_one())
    };
    let shelf = Arc::new(Shelf::default());
    tokio::spawn(share::serve(
        images_events,
        BlobServer::new(shelf.clone(), containerd.clone(), image_metrics.clone()),
    ));
    let from_peers = config
        .registries
        .share_with_peers
        .then(|| PeerBlobs::new(peers.client(), shelf, address));
    let puller = Puller::new(
        PullerParts {
            registry,
            containerd: containerd.clone(),
            staging: config.data_dir.join("pulls"),
            peers: from_peers,
            gc: Arc::new(ImageGc::new(
                containerd.clone(),
                config.registries.quota_bytes,
                config.registries.unused_image_seconds.saturating_mul(1000),
                image_metrics.clone(),
            )),
            metrics: image_metrics,
        },
        wake,
    )
    .map_err(data_error)?;
    let tunnels = TunnelTable::default();
    let tunnel_loop = TunnelLoop::new(
        TunnelParts {
            identity: identity.clone(),
            binaries: Binaries {
                bore: config.tunnels.bore_path.clone(),
                cloudflared: config.tunnels.cloudflared_path.clone(),
                ngrok: config.tunnels.ngrok_path.clone(),
            },
            local_host: if config.ports.bind_address.is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                config.ports.bind_address.to_string()
            },
            schedule: Schedule {
                backoff: Backoff {
                    initial_ms: config.restart_backoff.initial_ms,
                    max_ms: config.restart_backoff.max_ms,
                    reset_after_ms: config.restart_backoff.reset_after_ms,
                },
                ..Schedule::default()
            },
            table: tunnels.clone(),
            metrics: metrics.clone(),
        },
        state.clone(),
    );
    let supervisor = Supervisor::new(
        SupervisorParts {
            containerd,
            logs,
            images_dir,
            puller,
            identity: identity.clone(),
            backoff: Backoff {
                initial_ms: config.restart_backoff.initial_ms,
                max_ms: config.restart_backoff.max_ms,
                reset_after_ms: config.restart_backoff.reset_after_ms,
            },
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            gpus: capacity.gpus.clone(),
            forwarder: PortForwarder::new(config.ports.bind_address, state.pids.clone()),
            node_env,
            status: status_tx,
            tunnels,
            services,
            networks,
            metrics,
            sandbox: config.sandbox.clone(),
            ports: config.ports.clone(),
            scratch: ScratchDisks::new(
                config.data_dir.join("scratch"),
                config.sandbox.scratch_bytes,
            ),
        },
        state,
    );
    let supervising = tokio::spawn(supervisor.run());
    let tunneling = tokio::spawn(tunnel_loop.run());
    shutdown_signal().await;
    supervising.abort();
    // Aborting the loop drops its clients, which kills them: a tunnel never outlives its agent
    // on a clean stop.
    tunneling.abort();
    let _ = tunneling.await;
    tracing::info!("r1-node stopping; workloads keep running");
    let _ = std::fs::remove_file(&config.api_socket);
    Ok(())
}

/// Opens the R1FS block store under `<dataDir>/r1fs` and sweeps what an interrupted add or
/// fetch left unpinned.
fn open_files(
    config: &NodeConfig,
    peers: &Peers,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Files, AgentError> {
    let store = BlockStore::open(config.data_dir.join("r1fs"), config.r1fs.quota_bytes)?;
    let swept = store.collect_garbage()?;
    let usage = store.usage()?;
    tracing::info!(
        blocks = usage.blocks,
        bytes = usage.bytes,
        pins = usage.pins,
        swept_blocks = swept.blocks,
        "R1FS store open"
    );
    let metrics = Arc::new(FilesMetrics::register(registry));
    Ok(Files::new(
        Arc::new(store),
        Net::new(peers.client(), metrics.clone()),
        &config.r1fs.add_dirs,
        metrics,
    ))
}

/// Connects to containerd, retrying every second while it is down.
async fn connect_containerd(config: &NodeConfig) -> Containerd {
    let mut warned = false;
    loop {
        match Containerd::connect(&config.containerd.socket, &config.containerd.namespace).await {
            Ok(containerd) => return containerd,
            Err(e) => {
                if !warned {
                    tracing::warn!("{e}; retrying every second");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
