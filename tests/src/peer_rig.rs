//! Node agents that talk peer to peer around a stand-in oracle, without a chain: the
//! [`TestOracle`] signs the roster itself (whom it lists is up to the test), so R1FS and CSTORE
//! tests control exactly who may connect. The oracle's own roster (from heartbeats and the
//! chain's licences) is `tests/peer_to_peer.rs`'s subject.

use std::time::Duration;

use r1_protocol::Identity;
use r1_protocol::messages::{Roster, RosterEntry};

use crate::broker::{Broker, Role, Rumqttd};
use crate::containerd::PrivateContainerd;
use crate::network::NodeNamespaces;
use crate::node::{NodeAgent, NodeHarnessError, NodeSettings, TestOracle};

/// How long the nodes have to send a first heartbeat and to connect.
const WAIT: Duration = Duration::from_secs(30);

/// Why a rig could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerRigError {
    /// A part failed to start.
    #[error("{0}")]
    Start(String),
    /// The nodes did not come up or connect in time.
    #[error("{0}")]
    Timeout(String),
}

impl From<NodeHarnessError> for PeerRigError {
    fn from(e: NodeHarnessError) -> Self {
        Self::Start(e.to_string())
    }
}

/// Node agents on one broker and one containerd (a namespace each), obeying one stand-in
/// oracle.
pub struct PeerRig {
    // Dropped in order: agents, then containerd, then the namespaces' traces, then the broker.
    nodes: Vec<NodeAgent>,
    /// The stand-in oracle.
    pub oracle: TestOracle,
    containerd: PrivateContainerd,
    _namespaces: NodeNamespaces,
    _broker: Box<dyn Broker>,
}

impl PeerRig {
    /// Starts `count` node agents and waits for a heartbeat from each that announces its
    /// peer-to-peer addresses. No roster yet: see [`PeerRig::publish_roster`].
    pub fn start(count: usize) -> Result<Self, PeerRigError> {
        Self::start_with(count, "")
    }

    /// Starts the nodes as [`PeerRig::start`] does, with `config` (top-level YAML lines)
    /// added to every node's configuration.
    pub fn start_with(count: usize, config: &str) -> Result<Self, PeerRigError> {
        let broker: Box<dyn Broker> =
            Box::new(Rumqttd::start().map_err(|e| PeerRigError::Start(e.to_string()))?);
        let containerd =
            PrivateContainerd::start().map_err(|e| PeerRigError::Start(e.to_string()))?;
        let oracle = TestOracle::connect(broker.as_ref())?;
        let mut namespaces = NodeNamespaces(Vec::new());
        let mut nodes = Vec::with_capacity(count);
        for index in 0..count {
            let namespace = format!("{}-n{index}", containerd.namespace());
            namespaces.0.push(namespace.clone());
            let identity = Identity::generate();
            let mut node = NodeAgent::new(
                &NodeSettings {
                    containerd_socket: containerd.socket().to_owned(),
                    namespace,
                    broker_url: broker
                        .admit(identity.address(), Role::Node)
                        .map_err(|e| PeerRigError::Start(e.to_string()))?,
                    ca_file: broker.ca_file(),
                    oracles: vec![oracle.address()],
                    heartbeat_seconds: 1,
                    backoff_initial_ms: 300,
                    labels: Vec::new(),
                },
                &identity,
            )?;
            node.add_config(config)?;
            node.start()?;
            nodes.push(node);
        }
        let rig = Self {
            nodes,
            oracle,
            containerd,
            _namespaces: namespaces,
            _broker: broker,
        };
        let announced = |node: &NodeAgent| {
            rig.oracle
                .heartbeat(node.address)
                .is_some_and(|(_, hb)| !hb.p2p_addrs.is_empty())
        };
        if !crate::wait::until(WAIT, || rig.nodes.iter().all(announced)) {
            let silent: Vec<String> = rig
                .nodes
                .iter()
                .filter(|n| !announced(n))
                .map(|n| n.log())
                .collect();
            return Err(PeerRigError::Timeout(format!(
                "no heartbeat with p2p addresses; logs:\n{}",
                silent.join("\n----\n")
            )));
        }
        Ok(rig)
    }

    /// The node agents.
    pub fn nodes(&self) -> &[NodeAgent] {
        &self.nodes
    }

    /// The node agents, to kill or restart.
    pub fn nodes_mut(&mut self) -> &mut [NodeAgent] {
        &mut self.nodes
    }

    /// The shared containerd.
    pub fn containerd(&self) -> &PrivateContainerd {
        &self.containerd
    }

    /// The containerd namespace of node `index`.
    pub fn namespace(&self, index: usize) -> String {
        format!("{}-n{index}", self.containerd.namespace())
    }

    /// The roster entry of node `index`, with the addresses its last heartbeat announced.
    pub fn entry(&self, index: usize) -> RosterEntry {
        let node = &self.nodes[index];
        RosterEntry {
            address: node.address,
            addrs: self
                .oracle
                .heartbeat(node.address)
                .map(|(_, hb)| hb.p2p_addrs)
                .unwrap_or_default(),
        }
    }

    /// Signs and publishes a roster of every node plus `extra`, then waits until each node is
    /// connected to every other node of the rig.
    pub fn publish_roster(&self, extra: Vec<RosterEntry>) -> Result<(), PeerRigError> {
        let mut entries: Vec<RosterEntry> = (0..self.nodes.len()).map(|i| self.entry(i)).collect();
        entries.extend(extra);
        self.oracle.publish_roster(&Roster {
            issued_ms: r1_protocol::now_ms(),
            nodes: entries,
        });
        let others = (self.nodes.len() - 1) as f64;
        let connected = |node: &NodeAgent| node.metric("r1_node_p2p_connected_peers") >= others;
        if crate::wait::until(WAIT, || self.nodes.iter().all(connected)) {
            Ok(())
        } else {
            Err(PeerRigError::Timeout(format!(
                "nodes not connected: {:?}; first node's log:\n{}",
                self.nodes
                    .iter()
                    .map(|n| n.metric("r1_node_p2p_connected_peers"))
                    .collect::<Vec<_>>(),
                self.nodes[0].log()
            )))
        }
    }
}
