//! A whole r1 network on one machine: a development chain with the suite deployed and prices
//! set, one MQTT broker, `r1-oracle`s registered on chain, `r1-node`s licensed on chain (sharing
//! one private containerd, each in its own namespace, each holding the example httpd image), and
//! a funded CSP with an escrow. Everything stops and is cleaned up when the network drops.
//!
//! [`Network::prepare`] sets up every part without starting a process, so the chain, broker and
//! node parts can be used without the oracles; [`Network::start`] also starts them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use r1_crds::pricing::{Catalogue, CatalogueError};
use r1_protocol::{Address, Identity};

use crate::broker::{Broker, BrokerError, Mosquitto, Role, Rumqttd};
use crate::chain::{self, ChainError, TestChain};
use crate::containerd::{ContainerdError, PrivateContainerd};
use crate::images::ImageError;
use crate::node::{NodeAgent, NodeHarnessError, NodeSettings, TOPIC_ROOT};
use crate::oracle::{OracleHarnessError, OracleProcess, OracleSettings};
use crate::process::{ProcessError, bin_path};
use crate::proxy::{Proxy, ProxyError};
use crate::registry::LocalRegistry;

/// The image `crds/examples/job-http.yaml` runs: every node holds its archive, or, with
/// [`NetworkSettings::registry_port`], a registry on that port serves it.
pub const HTTPD_IMAGE: &str = "localhost:5000/r1-examples/httpd:1";

/// The image `crds/examples/shop-devnet.yaml` runs ([`crate::images::shop`]), served by the
/// registry of [`NetworkSettings::registry_port`].
pub const SHOP_IMAGE: &str = "localhost:5000/r1-examples/shop:1";

/// Where the devnet's registry listens, as [`HTTPD_IMAGE`] names it.
pub const EXAMPLES_REGISTRY_PORT: u16 = 5000;

/// USDC the CSP starts with.
pub const CSP_USDC: u64 = 1_000;

/// How long an oracle gets to answer `/healthz` after being started.
pub const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which broker carries the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// rumqttd (the `r1-test-broker` binary).
    Rumqttd,
    /// Debian's mosquitto.
    Mosquitto,
}

/// The shape and timing of a network.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// Number of oracles.
    pub oracles: usize,
    /// Number of nodes.
    pub nodes: usize,
    /// Epoch length in seconds.
    pub epoch_seconds: u64,
    /// Nodes' heartbeat interval in seconds (the oracles are told the same).
    pub heartbeat_seconds: u64,
    /// Milliseconds between two passes of the oracles' loops.
    pub loop_period_ms: u64,
    /// Missed heartbeats after which an oracle considers a node lost (at least 2).
    pub grace_missed: u32,
    /// The broker.
    pub broker: BrokerKind,
    /// The objects one owner may keep in each oracle's store (`None`: the oracle's default).
    pub object_quota: Option<usize>,
    /// Route the oracles' chain RPC through a [`Proxy`] ([`Network::chain_proxy`]), so a test can
    /// cut the chain off from them; r1ctl and the test itself keep the direct endpoint.
    pub proxy_chain: bool,
    /// Serve [`HTTPD_IMAGE`] and [`SHOP_IMAGE`] from Debian's docker-registry on this port of
    /// 127.0.0.1 (the devnet's [`EXAMPLES_REGISTRY_PORT`]), so nodes pull them; `None`: every
    /// node gets an archive of [`HTTPD_IMAGE`] instead.
    pub registry_port: Option<u16>,
    /// Labels of node `i` besides `kyb: "true"` (for nodeSelectors); nodes past the list get
    /// none.
    pub node_labels: Vec<Vec<(&'static str, &'static str)>>,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            oracles: 3,
            nodes: 3,
            epoch_seconds: 30,
            heartbeat_seconds: 1,
            loop_period_ms: 500,
            grace_missed: 3,
            broker: BrokerKind::Rumqttd,
            object_quota: None,
            proxy_chain: false,
            registry_port: None,
            node_labels: Vec::new(),
        }
    }
}

/// Starts Debian's docker-registry on 127.0.0.1:`port` with its storage under `dir` and
/// pushes [`HTTPD_IMAGE`] and [`SHOP_IMAGE`] to it.
fn examples_registry(dir: &std::path::Path, port: u16) -> Result<LocalRegistry, NetworkError> {
    let storage = dir.join("registry");
    std::fs::create_dir_all(&storage)?;
    let registry = LocalRegistry::start_on(&storage, port)?;
    for image in [
        crate::images::httpd(HTTPD_IMAGE),
        crate::images::shop(SHOP_IMAGE),
    ] {
        let reference = image.reference();
        let archive = storage.join("image.tar");
        image.write_archive(&archive)?;
        let repository_tag = reference
            .split_once('/')
            .map_or(reference, |(_, rest)| rest);
        registry.push_archive(&archive, reference, repository_tag)?;
    }
    Ok(registry)
}

/// Why a network could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The chain failed.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The built-in price catalogue is unusable.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The broker failed.
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    /// containerd failed.
    #[error("containerd: {0}")]
    Containerd(#[from] ContainerdError),
    /// An oracle failed.
    #[error(transparent)]
    Oracle(#[from] OracleHarnessError),
    /// A node failed.
    #[error("node: {0}")]
    Node(#[from] NodeHarnessError),
    /// The httpd image archive could not be written.
    #[error("image: {0}")]
    Image(#[from] ImageError),
    /// The CSP key file could not be written.
    #[error("CSP key file: {0}")]
    Key(#[from] r1_protocol::keyfile::KeyFileError),
    /// A binary could not be found or started.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The chain proxy could not start.
    #[error("chain proxy: {0}")]
    Proxy(#[from] ProxyError),
    /// The examples' registry failed.
    #[error("registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    /// A file or process could not be handled.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A command needs an oracle and the network has none.
    #[error("the network has no oracle")]
    NoOracle,
    /// There is no node with this index.
    #[error("the network has no node {0}")]
    NoNode(usize),
}

/// A running (or prepared) r1 network; dropping it stops and removes everything.
pub struct Network {
    // Fields drop in this order: processes first, then containerd (which kills every container
    // of every namespace), then the nodes' namespace traces, then the broker and the chain.
    nodes: Vec<NodeAgent>,
    oracles: Vec<OracleProcess>,
    containerd: PrivateContainerd,
    namespaces: NodeNamespaces,
    broker: Box<dyn Broker>,
    chain_proxy: Option<Proxy>,
    registry: Option<LocalRegistry>,
    chain: TestChain,
    csp: Identity,
    escrow: Address,
    dir: tempfile::TempDir,
}

impl Network {
    /// Prepares a network with [`Network::prepare`], starts the oracles (waiting until each is
    /// healthy), then the nodes.
    pub fn start(settings: &NetworkSettings) -> Result<Self, NetworkError> {
        let mut network = Self::prepare(settings)?;
        network.start_oracles()?;
        network.start_nodes()?;
        Ok(network)
    }

    /// Sets up every part without starting oracles or nodes: chain (suite, catalogue prices,
    /// oracles registered and given ether, nodes licensed, CSP funded with an escrow), broker,
    /// containerd, and the oracles' and nodes' keys, configs and directories.
    pub fn prepare(settings: &NetworkSettings) -> Result<Self, NetworkError> {
        let chain = TestChain::start(settings.epoch_seconds)?;
        chain.set_catalogue_prices(&Catalogue::builtin()?)?;
        let broker: Box<dyn Broker> = match settings.broker {
            BrokerKind::Rumqttd => Box::new(Rumqttd::start()?),
            BrokerKind::Mosquitto => Box::new(Mosquitto::start()?),
        };
        let containerd = PrivateContainerd::start()?;
        let mut namespaces = NodeNamespaces(Vec::new());

        let chain_proxy = if settings.proxy_chain {
            let port = chain.devchain().url().port().unwrap_or(80);
            Some(Proxy::start(std::net::SocketAddr::from((
                std::net::Ipv4Addr::LOCALHOST,
                port,
            )))?)
        } else {
            None
        };
        let oracle_settings = OracleSettings {
            rpc_url: chain_proxy
                .as_ref()
                .map_or_else(|| chain.url(), |p| format!("http://127.0.0.1:{}", p.port())),
            chain_id: chain.chain_id(),
            manager: chain.manager(),
            broker_url: broker.url(),
            ca_file: broker.ca_file(),
            topic_root: TOPIC_ROOT.to_owned(),
            loop_period_ms: settings.loop_period_ms,
            heartbeat_seconds: settings.heartbeat_seconds,
            grace_missed: settings.grace_missed,
            start_grace_seconds: 30,
            resync_seconds: 5,
            object_quota: settings.object_quota,
        };
        let mut oracles = Vec::with_capacity(settings.oracles);
        for _ in 0..settings.oracles {
            let identity = Identity::generate();
            let settings = OracleSettings {
                broker_url: broker.admit(identity.address(), Role::Oracle)?,
                ..oracle_settings.clone()
            };
            let oracle = OracleProcess::new(&settings, identity)?;
            chain.add_oracle(oracle.address)?;
            chain.give_ether(oracle.address, chain::FUNDING_ETHER)?;
            oracles.push(oracle);
        }
        let oracle_addresses: Vec<Address> = oracles.iter().map(|o| o.address).collect();

        let mut nodes = Vec::with_capacity(settings.nodes);
        for index in 0..settings.nodes {
            let namespace = format!("{}-n{index}", containerd.namespace());
            namespaces.0.push(namespace.clone());
            let identity = Identity::generate();
            let node = NodeAgent::new(
                &NodeSettings {
                    containerd_socket: containerd.socket().to_owned(),
                    namespace,
                    broker_url: broker.admit(identity.address(), Role::Node)?,
                    ca_file: broker.ca_file(),
                    oracles: oracle_addresses.clone(),
                    heartbeat_seconds: settings.heartbeat_seconds,
                    backoff_initial_ms: 300,
                    labels: settings.node_labels.get(index).cloned().unwrap_or_default(),
                },
                &identity,
            )?;
            if settings.registry_port.is_none() {
                crate::images::httpd(HTTPD_IMAGE)
                    .write_archive(&node.images_dir().join("httpd.tar"))?;
            }
            let attestor = oracles.first().ok_or(NetworkError::NoOracle)?;
            chain.license_node(identity.signer(), attestor.identity().signer())?;
            nodes.push(node);
        }

        let dir = tempfile::Builder::new().prefix("r1w").tempdir_in("/tmp")?;
        let registry = match settings.registry_port {
            Some(port) => Some(examples_registry(dir.path(), port)?),
            None => None,
        };
        let csp = Identity::from_secret(&chain::signer(chain::CSP_KEY)?.to_bytes().0)
            .map_err(|_| ChainError::Key)?;
        r1_protocol::keyfile::write(&dir.path().join("csp.key"), &csp)?;
        chain.fund_csp(csp.address(), CSP_USDC)?;
        let escrow = chain.deploy_escrow(csp.address())?;

        Ok(Self {
            nodes,
            oracles,
            containerd,
            namespaces,
            broker,
            chain_proxy,
            registry,
            chain,
            csp,
            escrow,
            dir,
        })
    }

    /// The registry serving the examples' image, when the network runs one.
    pub fn registry(&self) -> Option<&LocalRegistry> {
        self.registry.as_ref()
    }

    /// Starts every oracle, then waits until each answers `/healthz`.
    pub fn start_oracles(&mut self) -> Result<(), NetworkError> {
        for oracle in &mut self.oracles {
            oracle.start()?;
        }
        for oracle in &mut self.oracles {
            oracle.wait_healthy(HEALTHY_TIMEOUT)?;
        }
        Ok(())
    }

    /// Starts every node agent.
    pub fn start_nodes(&mut self) -> Result<(), NetworkError> {
        for node in &mut self.nodes {
            node.start()?;
        }
        Ok(())
    }

    /// The chain.
    pub fn chain(&self) -> &TestChain {
        &self.chain
    }

    /// The proxy between the oracles and the chain, when [`NetworkSettings::proxy_chain`] asked
    /// for one: cut it to take the chain away from the oracles.
    pub fn chain_proxy(&self) -> Option<&Proxy> {
        self.chain_proxy.as_ref()
    }

    /// The oracles, in creation order.
    pub fn oracles(&self) -> &[OracleProcess] {
        &self.oracles
    }

    /// The oracles, to stop, kill or restart them.
    pub fn oracles_mut(&mut self) -> &mut [OracleProcess] {
        &mut self.oracles
    }

    /// The oracles' addresses, in creation order.
    pub fn oracle_addresses(&self) -> Vec<Address> {
        self.oracles.iter().map(|o| o.address).collect()
    }

    /// The node agents, in creation order.
    pub fn nodes(&self) -> &[NodeAgent] {
        &self.nodes
    }

    /// The node agents, to stop, kill or restart them.
    pub fn nodes_mut(&mut self) -> &mut [NodeAgent] {
        &mut self.nodes
    }

    /// The nodes' addresses, in creation order.
    pub fn node_addresses(&self) -> Vec<Address> {
        self.nodes.iter().map(|n| n.address).collect()
    }

    /// The containerd namespace of node `index`.
    pub fn node_namespace(&self, index: usize) -> Option<&str> {
        self.namespaces.0.get(index).map(String::as_str)
    }

    /// The broker.
    pub fn broker(&self) -> &dyn Broker {
        self.broker.as_ref()
    }

    /// The broker, to stop and start it again.
    pub fn broker_mut(&mut self) -> &mut dyn Broker {
        self.broker.as_mut()
    }

    /// The containerd all nodes share.
    pub fn containerd(&self) -> &PrivateContainerd {
        &self.containerd
    }

    /// `ctr` on the shared containerd, in node `index`'s namespace.
    pub fn node_ctr(&self, index: usize, args: &[&str]) -> Result<Output, NetworkError> {
        let namespace = self
            .node_namespace(index)
            .ok_or(NetworkError::NoNode(index))?;
        let output = Command::new("ctr")
            .arg("-a")
            .arg(self.containerd.socket())
            .args(["-n", namespace])
            .args(args)
            .output()?;
        Ok(output)
    }

    /// The CSP (Hardhat account #1): its key signs r1ctl's requests and its escrow pays.
    pub fn csp(&self) -> &Identity {
        &self.csp
    }

    /// The CSP's private key, `0x` + 64 hex digits.
    pub fn csp_key_hex(&self) -> String {
        r1_protocol::hex::encode(&self.csp.secret())
    }

    /// The CSP's key file, as r1ctl reads it (`R1_KEY`).
    pub fn csp_key_file(&self) -> PathBuf {
        self.dir.path().join("csp.key")
    }

    /// The CSP's escrow, deployed by governance.
    pub fn escrow(&self) -> Address {
        self.escrow
    }

    /// A scratch directory that lives as long as the network (for manifests and the like).
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// An `r1ctl` command acting as the CSP against the first oracle: `R1_SERVER` is its API,
    /// `R1_KEY` the CSP's key file, `R1_RPC_URL` the chain.
    pub fn r1ctl_command(&self) -> Result<Command, NetworkError> {
        let oracle = self.oracles.first().ok_or(NetworkError::NoOracle)?;
        let mut command = Command::new(bin_path("r1ctl")?);
        command
            .env("R1_SERVER", oracle.api_url())
            .env("R1_KEY", self.csp_key_file())
            .env("R1_RPC_URL", self.chain.url());
        Ok(command)
    }

    /// Runs `r1ctl <args>` as [`Network::r1ctl_command`] sets it up and returns its output.
    pub fn r1ctl(&self, args: &[&str]) -> Result<Output, NetworkError> {
        Ok(self.r1ctl_command()?.args(args).output()?)
    }

    /// Runs `r1ctl <args>` as [`Network::r1ctl`] does, but as whoever's key file is `key` (an
    /// operator, governance, a stranger) instead of the CSP.
    pub fn r1ctl_as(&self, key: &Path, args: &[&str]) -> Result<Output, NetworkError> {
        Ok(self
            .r1ctl_command()?
            .env("R1_KEY", key)
            .args(args)
            .output()?)
    }
}

/// The nodes' containerd namespaces. [`PrivateContainerd`] removes the traces of its own
/// namespace only; once it has dropped (and with it every container and shim), this removes the
/// cgroups and runc state the other namespaces left behind.
pub(crate) struct NodeNamespaces(pub(crate) Vec<String>);

impl Drop for NodeNamespaces {
    fn drop(&mut self) {
        for namespace in &self.0 {
            for problem in remove_namespace_traces(namespace) {
                eprintln!("r1-e2e: namespace {namespace} cleanup: {problem}");
            }
        }
    }
}

/// Removes the `<namespace>` cgroups of every hierarchy and runc's state for `namespace`;
/// returns what could not be removed.
fn remove_namespace_traces(namespace: &str) -> Vec<String> {
    let root = Path::new("/sys/fs/cgroup");
    let mut tops = vec![root.join(namespace)];
    if let Ok(entries) = std::fs::read_dir(root) {
        tops.extend(
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                .map(|entry| entry.path().join(namespace)),
        );
    }
    let mut problems = Vec::new();
    for top in tops.iter().filter(|top| top.is_dir()) {
        let removed = crate::wait::until(Duration::from_secs(5), || {
            for dir in dirs_deepest_first(top) {
                let _ = std::fs::remove_dir(dir);
            }
            !top.exists()
        });
        if !removed {
            problems.push(format!("cgroup {} cannot be removed", top.display()));
        }
    }
    let runc = Path::new("/run/containerd/runc").join(namespace);
    if let Err(error) = std::fs::remove_dir_all(&runc)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        problems.push(format!("removing {}: {error}", runc.display()));
    }
    problems
}

/// `dir` and every directory below it, children before parents.
fn dirs_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .flat_map(|entry| dirs_deepest_first(&entry.path()))
        .collect();
    if dir.is_dir() {
        found.push(dir.to_owned());
    }
    found
}
