//! Oracle commands: a deploy or stop is obeyed only when it is signed by a trusted oracle,
//! fresh, never seen before and addressed to this node. Everything else is refused and logged
//! with the reason. An accepted command is written to the store (synced) before it takes
//! effect; a repeated one changes nothing. Session orders (a CSP's logs or exec, see
//! [`crate::sessions`]) pass the same checks and go to the sessions task; an opening's nonce is
//! stored like a command's, so it is never obeyed twice, not even after a restart.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use r1_protocol::messages::{DeployCommand, LivenessProbe, PortProtocol, StopCommand, WorkloadId};
use r1_protocol::services::ServiceTable;
use r1_protocol::sessions::{SessionId, SessionInput, SessionOpen};
use r1_protocol::{Address, Envelope, Freshness, MessageKind, Verifier, VerifyError};
use tokio::sync::mpsc;

use crate::config::PortsConfig;
use crate::metrics::Metrics;
use crate::ports;
use crate::services::ServiceMesh;
use crate::sessions::SessionEvent;
use crate::state::NodeState;
use crate::store::{DesiredWorkload, Store, StoreError};

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The envelope failed verification.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Signed correctly, but for another node.
    #[error("command addressed to {target}, not to this node")]
    WrongTarget {
        /// The node named in the command.
        target: Address,
    },
    /// Not a command kind.
    #[error("{0:?} messages are not commands")]
    NotACommand(MessageKind),
    /// A port the workload needs cannot be given.
    #[error("cannot expose the workload's ports: {0}")]
    Ports(String),
    /// The command could not be made durable; it is not acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A session order the sessions task cannot take now.
    #[error("sessions are not available: {0}")]
    Sessions(&'static str),
    /// A service table that is malformed or oversized, or that this node does not take.
    #[error("service table refused: {0}")]
    Services(String),
}

impl Refusal {
    /// Label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Verify(e) => e.label(),
            Self::WrongTarget { .. } => "wrong_target",
            Self::NotACommand(_) => "not_a_command",
            Self::Ports(_) => "ports",
            Self::Store(_) => "store",
            Self::Sessions(_) => "sessions",
            Self::Services(_) => "services",
        }
    }
}

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new or changed workload is now desired.
    Deployed(WorkloadId),
    /// The same workload at the same revision was already desired.
    AlreadyDeployed(WorkloadId),
    /// The workload is no longer desired.
    Stopped(WorkloadId),
    /// It was not desired anyway.
    AlreadyStopped(WorkloadId),
    /// A session order was handed to the sessions task.
    Session(SessionId),
    /// A project's service table: newer than the one held (taken) or not.
    ServiceTable {
        /// The project.
        project: String,
        /// Whether it replaced the one held.
        taken: bool,
    },
    /// An oracle asked whether the node is alive: the node answers with a heartbeat now.
    Probed,
}

/// Checks and applies commands.
pub struct CommandHandler {
    me: Address,
    verifier: Verifier<HashSet<Address>>,
    store: Arc<Store>,
    state: Arc<NodeState>,
    ports: PortsConfig,
    metrics: Arc<Metrics>,
    sessions: Option<mpsc::Sender<SessionEvent>>,
    services: Option<ServiceMesh>,
}

impl CommandHandler {
    /// A handler for node `me`, obeying `oracles`, remembering the nonces already in `store`.
    pub fn new(
        me: Address,
        oracles: &[Address],
        freshness: Freshness,
        store: Arc<Store>,
        state: Arc<NodeState>,
        ports: PortsConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let mut verifier = Verifier::new(oracles.iter().copied().collect(), freshness);
        for (sender, nonce) in store.nonces()? {
            verifier.remember(sender, nonce);
        }
        Ok(Self {
            me,
            verifier,
            store,
            state,
            ports,
            metrics,
            sessions: None,
            services: None,
        })
    }

    /// The same handler, handing session orders to `sessions` (without it they are refused).
    pub fn with_sessions(self, sessions: mpsc::Sender<SessionEvent>) -> Self {
        Self {
            sessions: Some(sessions),
            ..self
        }
    }

    /// The same handler, handing service tables to `services` (without it they are refused).
    pub fn with_services(self, services: ServiceMesh) -> Self {
        Self {
            services: Some(services),
            ..self
        }
    }

    /// Checks and applies one command received at `now_ms`; counts and logs the outcome.
    pub fn handle(&mut self, bytes: &[u8], now_ms: u64) -> Result<Outcome, Refusal> {
        let kind = Envelope::from_bytes(bytes).map(|e| e.kind).ok();
        let kind_name = match kind {
            Some(MessageKind::Deploy) => "deploy",
            Some(MessageKind::Stop) => "stop",
            Some(MessageKind::SessionOpen) => "session-open",
            Some(MessageKind::SessionInput) => "session-input",
            Some(MessageKind::ServiceTable) => "service-table",
            Some(MessageKind::Probe) => "probe",
            _ => "unknown",
        };
        let result = match kind {
            Some(MessageKind::Stop) => self.stop(bytes, now_ms),
            Some(MessageKind::SessionOpen) => self.open_session(bytes, now_ms),
            Some(MessageKind::SessionInput) => self.session_input(bytes, now_ms),
            Some(MessageKind::ServiceTable) => self.service_table(bytes, now_ms),
            Some(MessageKind::Probe) => self.probe(bytes, now_ms),
            Some(MessageKind::Deploy) | None => self.deploy(bytes, now_ms),
            Some(other) => Err(Refusal::NotACommand(other)),
        };
        match &result {
            Ok(outcome) => {
                let label = match outcome {
                    Outcome::Deployed(_)
                    | Outcome::Stopped(_)
                    | Outcome::Session(_)
                    | Outcome::Probed
                    | Outcome::ServiceTable { taken: true, .. } => "accepted",
                    Outcome::AlreadyDeployed(_)
                    | Outcome::AlreadyStopped(_)
                    | Outcome::ServiceTable { taken: false, .. } => "repeated",
                };
                self.metrics.command(kind_name, label);
                if matches!(
                    outcome,
                    Outcome::Session(_) | Outcome::ServiceTable { .. } | Outcome::Probed
                ) {
                    tracing::debug!(?outcome, "session order accepted");
                } else {
                    tracing::info!(?outcome, "command accepted");
                }
            }
            Err(refusal) => {
                self.metrics.command(kind_name, refusal.label());
                tracing::warn!(
                    kind = kind_name,
                    reason = refusal.label(),
                    "command refused: {refusal}"
                );
            }
        }
        result
    }

    /// A probe is not stored: answering it twice costs one heartbeat.
    fn probe(&mut self, bytes: &[u8], now_ms: u64) -> Result<Outcome, Refusal> {
        let probe = self
            .verifier
            .verify::<LivenessProbe>(bytes, now_ms)?
            .message;
        if probe.target != self.me {
            return Err(Refusal::WrongTarget {
                target: probe.target,
            });
        }
        Ok(Outcome::Probed)
    }

    fn service_table(&mut self, bytes: &[u8], now_ms: u64) -> Result<Outcome, Refusal> {
        let table = self.verifier.verify::<ServiceTable>(bytes, now_ms)?.message;
        if table.target != self.me {
            return Err(Refusal::WrongTarget {
                target: table.target,
            });
        }
        if let Some(problem) = table.problem() {
            return Err(Refusal::Services(problem));
        }
        let services = self
            .services
            .as_ref()
            .ok_or_else(|| Refusal::Services("calls between jobs are off".into()))?;
        let project = table.project.clone();
        let taken = services.offer(table);
        Ok(Outcome::ServiceTable { project, taken })
    }

    fn open_session(&mut self, bytes: &[u8], now_ms: u64) -> Result<Outcome, Refusal> {
        let verified = self.verifier.verify::<SessionOpen>(bytes, now_ms)?;
        let open = verified.message;
        if open.target != self.me {
            return Err(Refusal::WrongTarget {
                target: open.target,
            });
        }
        let sessions = self.sessions.as_ref().ok_or(Refusal::Sessions("off"))?;
        self.store.put_nonce(verified.sender, verified.nonce)?;
        let session = open.session.clone();
        sessions
            .try_send(SessionEvent::Open {
                open,
                oracle: verified.sender,
            })
            .map_err(|_| Refusal::Sessions("busy"))?;
        Ok(Outcome::Session(session))
    }

    /// Input is not stored: a session does not outlive the agent, so input replayed after a
    /// restart finds no session to go to.
    fn session_input(&mut self, bytes: &[u8], now_ms: u64) -> Result<Outcome, Refusal> {
        let verified = self.verifier.verify::<SessionInput>(bytes, now_ms)?;
        let input = verified.message;
        if input.target != self.me {
            return Err(Refusal::WrongTarget {
                target: input.target,
            });
        }
        let sessions = self.sessions.as_ref().ok_or(Refusal::Sessions("off"))?;
        let session = input.session.clone();
        sessions
            .try_send(SessionEvent::Input {
                input,
                oracle: verified.sender,
            })
            .map_err(|_| Refusal::Sessions("busy"))?;
        Ok(Outcome::Session(session))
    }

    fn deploy(&mut self, bytes: &[u8], now_ms: u64) -> Result<Outcome, Refusal> {
        let verified = self.verifier.verify::<DeployCommand>(bytes, now_ms)?;
        let command = verified.message;
        if command.target != self.me {
            return Err(Refusal::WrongTarget {
                target: command.target,
            });
        }
        let id = command.workload.id;
        let current = self.state.desired_one(id);
        if current
            .as_ref()
            .is_some_and(|c| c.spec.same_workload(&command.workload))
        {
            self.store.put_nonce(verified.sender, verified.nonce)?;
            return Ok(Outcome::AlreadyDeployed(id));
        }
        let host_ports = self.host_ports(&command, current.as_ref())?;
        let workload = DesiredWorkload {
            spec: command.workload,
            host_ports: host_ports.tcp,
            udp_host_ports: host_ports.udp,
            ordered_by: verified.sender,
        };
        self.store.put_desired(&workload, verified.nonce)?;
        self.state.set_desired(id, Some(workload));
        Ok(Outcome::Deployed(id))
    }

    /// Host ports for a workload, TCP and UDP apart: as the oracle asked, else as before (same
    /// workload, earlier revision), else a free one from the node's range. A fixed host port
    /// may be shared only with workloads of the same job (the generations of a rollout; see
    /// [`crate::ports`]).
    fn host_ports(
        &self,
        command: &DeployCommand,
        current: Option<&DesiredWorkload>,
    ) -> Result<HostPorts, Refusal> {
        let id = command.workload.id;
        let desired = self.state.desired();
        let ports_of = |same_job: bool, protocol: PortProtocol| -> BTreeSet<u16> {
            desired
                .iter()
                .filter(|(other, _)| **other != id && (other.job == id.job) == same_job)
                .flat_map(|(_, w)| w.host_ports_of(protocol).values().copied())
                .collect()
        };
        let mut out = HostPorts::default();
        for protocol in [PortProtocol::Tcp, PortProtocol::Udp] {
            let mut taken = ports_of(false, protocol);
            let shared = ports_of(true, protocol);
            let chosen = out.of_mut(protocol);
            for (i, mapping) in command.workload.ports.iter().enumerate() {
                if mapping.protocol != protocol {
                    continue;
                }
                let host = match mapping.host_port {
                    Some(port) => {
                        if taken.contains(&port) {
                            return Err(Refusal::Ports(format!(
                                "host port {port}/{protocol} is already used by another job's \
                                 workload"
                            )));
                        }
                        port
                    }
                    None => match current
                        .and_then(|c| c.host_ports_of(protocol).get(&mapping.container_port))
                    {
                        Some(&port) => port,
                        None => ports::choose_host_port(
                            protocol,
                            self.ports.bind_address,
                            self.ports.first,
                            self.ports.last,
                            &taken.union(&shared).copied().collect(),
                            id.job
                                .wrapping_mul(7919)
                                .wrapping_add(u64::from(id.replica) + i as u64),
                        )
                        .map_err(|e| Refusal::Ports(e.to_string()))?,
                    },
                };
                taken.insert(host);
                chosen.insert(mapping.container_port, host);
            }
        }
        Ok(out)
    }

    fn stop(&mut self, bytes: &[u8], now_ms: u64) -> Result<Outcome, Refusal> {
        let verified = self.verifier.verify::<StopCommand>(bytes, now_ms)?;
        let command = verified.message;
        if command.target != self.me {
            return Err(Refusal::WrongTarget {
                target: command.target,
            });
        }
        let id = command.workload;
        if self.state.desired_one(id).is_none() {
            self.store.put_nonce(verified.sender, verified.nonce)?;
            return Ok(Outcome::AlreadyStopped(id));
        }
        tracing::info!(?id, reason = command.reason, "stopping workload");
        self.store
            .remove_desired(id, verified.sender, verified.nonce)?;
        self.state.set_desired(id, None);
        Ok(Outcome::Stopped(id))
    }
}

/// The host ports chosen for a workload: container port → host port, per protocol.
#[derive(Debug, Default)]
struct HostPorts {
    tcp: BTreeMap<u16, u16>,
    udp: BTreeMap<u16, u16>,
}

impl HostPorts {
    fn of_mut(&mut self, protocol: PortProtocol) -> &mut BTreeMap<u16, u16> {
        match protocol {
            PortProtocol::Tcp => &mut self.tcp,
            PortProtocol::Udp => &mut self.udp,
        }
    }
}

#[cfg(test)]
mod tests {
    use r1_protocol::Identity;
    use r1_protocol::envelope::Sealer;
    use r1_protocol::messages::{PortMapping, WorkloadSpec};

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        handler: CommandHandler,
        oracle: Sealer,
        me: Address,
        store: Arc<Store>,
        state: Arc<NodeState>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let state = NodeState::new(BTreeMap::new());
        let oracle = Sealer::new(Identity::generate());
        let me = Identity::generate().address();
        let handler = CommandHandler::new(
            me,
            &[oracle.address()],
            Freshness::default(),
            store.clone(),
            state.clone(),
            PortsConfig {
                bind_address: [127, 0, 0, 1].into(),
                ..Default::default()
            },
            Metrics::new(),
        )
        .unwrap();
        Fixture {
            _dir: dir,
            handler,
            oracle,
            me,
            store,
            state,
        }
    }

    fn spec(revision: &str) -> WorkloadSpec {
        WorkloadSpec {
            id: WorkloadId { job: 4, replica: 1 },
            revision: revision.into(),
            image: "localhost/x:1".into(),
            command: vec![],
            args: vec![],
            env: BTreeMap::new(),
            ports: vec![PortMapping {
                container_port: 8080,
                host_port: None,
                protocol: PortProtocol::Tcp,
            }],
            cpu_millis: 100,
            memory_bytes: 1 << 24,
            gpu: 0,
            health: None,
            secrets: None,
            tunnel: None,
            security: None,
        }
    }

    fn deploy(f: &Fixture, target: Address, revision: &str) -> Vec<u8> {
        let command = DeployCommand {
            target,
            workload: spec(revision),
        };
        f.oracle.seal(&command, now()).unwrap().to_bytes()
    }

    fn now() -> u64 {
        r1_protocol::now_ms()
    }

    #[test]
    fn deploy_is_durable_idempotent_and_keeps_its_port_across_revisions() {
        let mut f = fixture();
        let first = deploy(&f, f.me, "a");
        let id = WorkloadId { job: 4, replica: 1 };
        assert_eq!(
            f.handler.handle(&first, now()).unwrap(),
            Outcome::Deployed(id)
        );
        let port = f.state.desired_one(id).unwrap().host_ports[&8080];
        assert!((30000..=32767).contains(&port));
        assert_eq!(f.store.desired().unwrap()[&id].host_ports[&8080], port);
        let again = deploy(&f, f.me, "a");
        assert_eq!(
            f.handler.handle(&again, now()).unwrap(),
            Outcome::AlreadyDeployed(id)
        );
        let changed = deploy(&f, f.me, "b");
        assert_eq!(
            f.handler.handle(&changed, now()).unwrap(),
            Outcome::Deployed(id)
        );
        let stored = f.store.desired().unwrap();
        assert_eq!(
            (
                stored[&id].spec.revision.as_str(),
                stored[&id].host_ports[&8080]
            ),
            ("b", port)
        );
    }

    #[test]
    fn refuses_replays_even_after_a_restart() {
        let mut f = fixture();
        let bytes = deploy(&f, f.me, "a");
        f.handler.handle(&bytes, now()).unwrap();
        let err = f.handler.handle(&bytes, now()).unwrap_err();
        assert_eq!(err.label(), "replayed");
        let mut restarted = CommandHandler::new(
            f.me,
            &[f.oracle.address()],
            Freshness::default(),
            f.store.clone(),
            f.state.clone(),
            PortsConfig::default(),
            Metrics::new(),
        )
        .unwrap();
        assert_eq!(
            restarted.handle(&bytes, now()).unwrap_err().label(),
            "replayed"
        );
    }

    #[test]
    fn refuses_strangers_forgeries_stale_and_misaddressed_commands() {
        let mut f = fixture();
        let stranger = Sealer::new(Identity::generate());
        let command = DeployCommand {
            target: f.me,
            workload: spec("a"),
        };
        let from_stranger = stranger.seal(&command, now()).unwrap().to_bytes();
        assert_eq!(
            f.handler.handle(&from_stranger, now()).unwrap_err().label(),
            "unknown_sender"
        );
        let mut forged = f.oracle.seal(&command, now()).unwrap();
        forged.payload = forged.payload.replace("localhost/x:1", "localhost/evil:1");
        assert_eq!(
            f.handler
                .handle(&forged.to_bytes(), now())
                .unwrap_err()
                .label(),
            "bad_signature"
        );
        let stale = f.oracle.seal(&command, now() - 120_000).unwrap().to_bytes();
        assert_eq!(
            f.handler.handle(&stale, now()).unwrap_err().label(),
            "stale"
        );
        let elsewhere = deploy(&f, Address::repeat_byte(9), "a");
        assert_eq!(
            f.handler.handle(&elsewhere, now()).unwrap_err().label(),
            "wrong_target"
        );
        assert_eq!(
            f.handler.handle(b"{}", now()).unwrap_err().label(),
            "malformed"
        );
        assert!(f.state.desired().is_empty());
        assert!(f.store.desired().unwrap().is_empty());
    }

    #[test]
    fn stop_removes_and_repeats_harmlessly() {
        let mut f = fixture();
        let id = WorkloadId { job: 4, replica: 1 };
        f.handler.handle(&deploy(&f, f.me, "a"), now()).unwrap();
        let stop = |f: &Fixture| {
            let command = StopCommand {
                target: f.me,
                workload: id,
                reason: "job closed".into(),
            };
            f.oracle.seal(&command, now()).unwrap().to_bytes()
        };
        assert_eq!(
            f.handler.handle(&stop(&f), now()).unwrap(),
            Outcome::Stopped(id)
        );
        assert!(f.store.desired().unwrap().is_empty());
        assert_eq!(
            f.handler.handle(&stop(&f), now()).unwrap(),
            Outcome::AlreadyStopped(id)
        );
    }
}
