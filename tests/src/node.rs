//! A node agent under test, and a stand-in oracle that talks to it over a real broker: it signs
//! commands with its own key and watches the heartbeats and status reports the node sends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r1_protocol::envelope::Sealer;
use r1_protocol::messages::{
    DeployCommand, Heartbeat, JobStatusReport, Roster, StopCommand, WorkloadId, WorkloadReport,
    WorkloadSpec,
};
use r1_protocol::topics::{Channel, Topics};
use r1_protocol::{Address, Envelope, Identity, Message};
use rumqttc::{Client, Event, Packet, QoS};

use crate::broker::{Broker, Role};
use crate::process::{ChildGuard, ProcessError, bin_path};

/// The topic root the tests use.
pub const TOPIC_ROOT: &str = "r1/test";

/// Each test node's R1FS quota.
pub const R1FS_QUOTA: u64 = 2 << 30;

/// Each test node's largest workload upload.
pub const R1FS_MAX_UPLOAD: u64 = 64 << 20;

/// Why a node or oracle stand-in could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NodeHarnessError {
    /// A file could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The agent process could not be started.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The key file could not be created.
    #[error("key file: {0}")]
    Key(String),
    /// The broker could not be reached.
    #[error("broker: {0}")]
    Broker(String),
}

/// Settings of a node agent under test.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// containerd socket.
    pub containerd_socket: PathBuf,
    /// containerd namespace.
    pub namespace: String,
    /// Broker URL, as the broker admitted the node ([`Broker::admit`]).
    pub broker_url: String,
    /// CA certificate for an `mqtts` broker.
    pub ca_file: Option<PathBuf>,
    /// Oracles the node obeys.
    pub oracles: Vec<Address>,
    /// Heartbeat interval in seconds.
    pub heartbeat_seconds: u64,
    /// First restart delay in milliseconds.
    pub backoff_initial_ms: u64,
    /// Labels besides `kyb: "true"`.
    pub labels: Vec<(&'static str, &'static str)>,
}

/// An `r1-node` process with its own key, data directory, config and API socket.
pub struct NodeAgent {
    dir: tempfile::TempDir,
    identity: Identity,
    /// The node's address.
    pub address: Address,
    /// Its metrics port on 127.0.0.1.
    pub metrics_port: u16,
    host_ports: (u16, u16),
    process: Option<ChildGuard>,
}

impl NodeAgent {
    /// Prepares a node with key `identity` (config, directories) without starting it.
    pub fn new(settings: &NodeSettings, identity: &Identity) -> Result<Self, NodeHarnessError> {
        let dir = tempfile::Builder::new().prefix("r1n").tempdir_in("/tmp")?;
        let key = dir.path().join("node.key");
        r1_protocol::keyfile::write(&key, identity)
            .map_err(|e| NodeHarnessError::Key(e.to_string()))?;
        let metrics_port = crate::free_port();
        let (first_port, last_port) = crate::ports::host_port_range();
        let oracles: Vec<String> = settings
            .oracles
            .iter()
            .map(|a| format!("\"{}\"", a.to_checksum(None)))
            .collect();
        let config = format!(
            "keyFile: {key}\ndataDir: {data}\nalias: test-node\nlabels: {{ kyb: \"true\"{labels} }}\n\
             oracles: [{oracles}]\nbroker: {{ url: \"{broker}\", topicRoot: {TOPIC_ROOT}{ca} }}\n\
             containerd: {{ socket: {socket}, namespace: {namespace} }}\n\
             heartbeatIntervalSeconds: {hb}\napiSocket: {api}\nmetricsListen: 127.0.0.1:{metrics_port}\n\
             ports: {{ bindAddress: 127.0.0.1, first: {first_port}, last: {last_port} }}\n\
             restartBackoff: {{ initialMs: {backoff}, maxMs: 5000, resetAfterMs: 60000 }}\n\
             p2p: {{ listen: [\"/ip4/127.0.0.1/tcp/0\"] }}\n\
             r1fs: {{ quotaBytes: {R1FS_QUOTA}, addDirs: [{add}], workloadPort: 4102, maxUploadBytes: {R1FS_MAX_UPLOAD} }}\n\
             network: {{ egress: {{ mode: none }} }}\n",
            add = dir.path().join("add").display(),
            labels = settings
                .labels
                .iter()
                .map(|(k, v)| format!(", {k:?}: {v:?}"))
                .collect::<String>(),
            key = key.display(),
            data = dir.path().join("data").display(),
            oracles = oracles.join(", "),
            broker = settings.broker_url,
            ca = settings
                .ca_file
                .as_ref()
                .map(|ca| format!(", caFile: {}", ca.display()))
                .unwrap_or_default(),
            socket = settings.containerd_socket.display(),
            namespace = settings.namespace,
            hb = settings.heartbeat_seconds,
            api = dir.path().join("api.sock").display(),
            backoff = settings.backoff_initial_ms,
        );
        std::fs::write(dir.path().join("node.yaml"), config)?;
        std::fs::create_dir_all(dir.path().join("data/images"))?;
        std::fs::create_dir_all(dir.path().join("add"))?;
        Ok(Self {
            address: identity.address(),
            identity: identity.clone(),
            dir,
            metrics_port,
            host_ports: (first_port, last_port),
            process: None,
        })
    }

    /// The host ports the node offers (`ports.first`, `ports.last`): a fixed host port outside
    /// them is refused.
    pub fn host_ports(&self) -> (u16, u16) {
        self.host_ports
    }

    /// Offers host ports `first..=last` instead, from the next start on (so that a job's fixed
    /// host port lies in the range of every node of a network).
    pub fn set_host_ports(&mut self, first: u16, last: u16) -> Result<(), NodeHarnessError> {
        let path = self.dir.path().join("node.yaml");
        let (old_first, old_last) = self.host_ports;
        let text = std::fs::read_to_string(&path)?.replace(
            &format!("first: {old_first}, last: {old_last} }}"),
            &format!("first: {first}, last: {last} }}"),
        );
        std::fs::write(&path, text)?;
        self.host_ports = (first, last);
        Ok(())
    }

    /// Adds top-level `lines` (YAML) to the node's configuration before it starts.
    pub fn add_config(&self, lines: &str) -> Result<(), NodeHarnessError> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("node.yaml"))?;
        writeln!(file, "{lines}")?;
        Ok(())
    }

    /// Replaces the node's `network` block (egress off: loopback only, by default) with
    /// `block`, a YAML flow mapping; before [`NodeAgent::start`].
    pub fn set_network(&self, block: &str) -> Result<(), NodeHarnessError> {
        let path = self.dir.path().join("node.yaml");
        let text: String = std::fs::read_to_string(&path)?
            .lines()
            .map(|line| {
                if line.starts_with("network:") {
                    format!("network: {block}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        std::fs::write(path, text)?;
        Ok(())
    }

    /// The node's key, e.g. to listen on its command topic as it.
    pub fn identity(&self) -> Identity {
        self.identity.clone()
    }

    /// Where the node imports image archives from.
    pub fn images_dir(&self) -> PathBuf {
        self.dir.path().join("data/images")
    }

    /// The local API socket.
    pub fn api_socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    /// The directory `r1ctl fs add` may add from on this node.
    pub fn add_dir(&self) -> PathBuf {
        self.dir.path().join("add")
    }

    /// The agent's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The agent's log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the agent's log (stdout and stderr) is written.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("r1-node.log")
    }

    /// Starts the agent process.
    pub fn start(&mut self) -> Result<(), NodeHarnessError> {
        let mut command = Command::new(bin_path("r1-node")?);
        command
            .arg("--config")
            .arg(self.dir.path().join("node.yaml"))
            .arg("run")
            .env("R1_LOG", "info,r1_node=debug");
        self.process = Some(ChildGuard::spawn_logged(
            &mut command,
            "r1-node",
            self.dir.path(),
        )?);
        Ok(())
    }

    /// Kills the agent with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill_leader();
        }
    }

    /// Stops the agent with SIGTERM.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.stop();
        }
    }

    /// Runs `r1ctl node` against this node's API socket.
    pub fn r1ctl(&self, args: &[&str]) -> std::process::Output {
        self.r1ctl_on("node", args)
    }

    /// Runs `r1ctl fs` against this node's API socket.
    pub fn r1ctl_fs(&self, args: &[&str]) -> std::process::Output {
        self.r1ctl_on("fs", args)
    }

    /// Runs `r1ctl cstore` against this node's API socket.
    pub fn r1ctl_cstore(&self, args: &[&str]) -> std::process::Output {
        self.r1ctl_on("cstore", args)
    }

    /// The host ports of the running workloads of `job` on this node, as `r1ctl node ps`
    /// shows them.
    pub fn published_ports(&self, job: u64) -> Vec<u16> {
        published_ports(&self.api_socket())
            .into_iter()
            .filter(|(id, _)| id.job == job)
            .map(|(_, port)| port)
            .collect()
    }

    fn r1ctl_on(&self, group: &str, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(bin_path("r1ctl").unwrap_or_else(|e| panic!("{e}")));
        command
            .arg(group)
            .arg("--socket")
            .arg(self.api_socket())
            .args(args);
        command.output().unwrap_or_else(|e| panic!("r1ctl: {e}"))
    }

    /// The agent's Prometheus metrics text; panics when the agent does not answer.
    pub fn metrics(&self) -> String {
        scrape_metrics(self.metrics_port, &format!("node {}", self.address))
    }

    /// The current value of the metric line starting with `prefix` (0 when absent).
    pub fn metric(&self, prefix: &str) -> f64 {
        metric_value(&self.metrics(), prefix)
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        self.stop();
        // The agent leaves its workloads' scratch disks mounted for containers that outlive it;
        // the test is over, so nothing may stay mounted (or hold a loop device).
        let scratch = self.dir.path().join("data/scratch");
        for problem in crate::containerd::cleanup::unmount_all(&scratch) {
            eprintln!("r1-e2e: node cleanup: {problem}");
        }
    }
}

/// Every host port of every running workload of the node agent at `socket`, asked with
/// `r1ctl node ps` (panics when the agent does not answer).
pub fn published_ports(socket: &Path) -> Vec<(r1_protocol::messages::WorkloadId, u16)> {
    let ps = Command::new(bin_path("r1ctl").unwrap_or_else(|e| panic!("{e}")))
        .args(["node", "--socket"])
        .arg(socket)
        .arg("ps")
        .output()
        .unwrap_or_else(|e| panic!("r1ctl: {e}"));
    let table = String::from_utf8_lossy(&ps.stdout);
    assert!(
        ps.status.success(),
        "r1ctl node ps on {}: {table}{}",
        socket.display(),
        String::from_utf8_lossy(&ps.stderr)
    );
    let mut ports = Vec::new();
    for line in table.lines().skip(1) {
        let columns: Vec<&str> = line.split_whitespace().collect();
        let (Some(workload), Some(&"running")) = (columns.first(), columns.get(1)) else {
            continue;
        };
        let id = workload
            .split_once('/')
            .and_then(|(job, replica)| Some((job.parse().ok()?, replica.parse().ok()?)))
            .map(|(job, replica)| r1_protocol::messages::WorkloadId { job, replica })
            .unwrap_or_else(|| panic!("not a workload id: {line}"));
        for published in columns.get(3).into_iter().flat_map(|c| c.split(',')) {
            if let Some((host, _)) = published.split_once("->") {
                let port = host
                    .parse()
                    .unwrap_or_else(|_| panic!("not a port: {line}"));
                ports.push((id, port));
            }
        }
    }
    ports
}

/// How long a scrape of `/metrics` may go unanswered before the test fails.
const SCRAPE_PATIENCE: Duration = Duration::from_secs(5);

/// The Prometheus text served at 127.0.0.1:`port` by `who`. Panics when nothing answers within
/// [`SCRAPE_PATIENCE`]: a process that cannot be asked is a failure, never a row of zeros.
pub fn scrape_metrics(port: u16, who: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        if let Some(text) = http_get(port, "/metrics") {
            return text;
        }
        assert!(
            started.elapsed() < SCRAPE_PATIENCE,
            "{who} did not answer /metrics on 127.0.0.1:{port} for {SCRAPE_PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the first line of a Prometheus text exposition that starts with `prefix`
/// (0 when there is none).
pub fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A plain `GET` on 127.0.0.1:`port`; the body when the status is 2xx.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status_ok = response
        .lines()
        .next()
        .is_some_and(|l| l.split(' ').nth(1).is_some_and(|c| c.starts_with('2')));
    let (_, body) = response.split_once("\r\n\r\n")?;
    status_ok.then(|| body.to_owned())
}

/// What the stand-in oracle has heard.
#[derive(Default)]
struct Heard {
    heartbeats: BTreeMap<Address, (Instant, Heartbeat)>,
    heartbeat_count: BTreeMap<Address, u64>,
    statuses: Vec<(Address, JobStatusReport)>,
    /// Each node's workloads as its latest heartbeat and the status reports since tell.
    live: BTreeMap<Address, BTreeMap<WorkloadId, WorkloadReport>>,
}

/// A stand-in oracle: signs commands and listens to nodes over the broker.
pub struct TestOracle {
    identity: Identity,
    sealer: Sealer,
    client: Client,
    topics: Topics,
    heard: Arc<Mutex<Heard>>,
}

impl TestOracle {
    /// Connects to `broker` with a new key it admits as an oracle, subscribed to every node's
    /// heartbeat and status.
    pub fn connect(broker: &dyn Broker) -> Result<Self, NodeHarnessError> {
        Self::with_identity(broker, Identity::generate())
    }

    /// Connects as `identity`, admitted by `broker` as an oracle.
    pub fn with_identity(
        broker: &dyn Broker,
        identity: Identity,
    ) -> Result<Self, NodeHarnessError> {
        let broker_url = broker
            .admit(identity.address(), Role::Oracle)
            .map_err(|e| NodeHarnessError::Broker(e.to_string()))?;
        let id = format!(
            "test-oracle-{}",
            r1_protocol::hex::encode(&identity.address()[..6])
        );
        let topics = Topics::new(TOPIC_ROOT);
        let heard = Arc::new(Mutex::new(Heard::default()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_heard = heard.clone();
        let thread_topics = topics.clone();
        let client = crate::mqtt_client::spawn(
            &broker_url,
            broker.ca_file().as_deref(),
            &id,
            &identity,
            move |client, event| match event {
                Some(Event::Incoming(Packet::ConnAck(_))) => {
                    for channel in [Channel::Heartbeat, Channel::Status] {
                        let _ = client.subscribe(thread_topics.all(channel), QoS::AtLeastOnce);
                    }
                }
                Some(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Some(Event::Incoming(Packet::Publish(p))) => {
                    record(&thread_heard, &thread_topics, &p.topic, &p.payload);
                }
                _ => {}
            },
        )?;
        // Generous: on a loaded 2-core CI machine a broker that just started can take a while.
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| NodeHarnessError::Broker(format!("no subscription on {broker_url}")))?;
        Ok(Self {
            sealer: Sealer::new(identity.clone()),
            identity,
            client,
            topics,
            heard,
        })
    }

    /// The oracle's address.
    pub fn address(&self) -> Address {
        self.sealer.address()
    }

    /// Signs `message` as this oracle, sealed now.
    pub fn seal<M: Message>(&self, message: &M) -> Envelope {
        self.seal_at(message, r1_protocol::now_ms())
    }

    /// Signs `message` as this oracle with timestamp `at_ms`.
    pub fn seal_at<M: Message>(&self, message: &M, at_ms: u64) -> Envelope {
        self.sealer
            .seal(message, at_ms)
            .unwrap_or_else(|e| panic!("seal: {e}"))
    }

    /// Publishes raw bytes on `node`'s command topic.
    pub fn send_raw(&self, node: Address, bytes: Vec<u8>) {
        let topic = self.topics.topic(Channel::Commands, &node);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, bytes)
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// Publishes CSTORE access rules written and sealed by this oracle on its `cstore` topic:
    /// job `job` owns namespace `namespace` for each `(job, namespace)` of `jobs`, and for each
    /// `(namespace, reader)` of `grants`, `reader`'s jobs may read `namespace`.
    pub fn publish_cstore_rules(&self, jobs: &[(u64, &str)], grants: &[(&str, &str)]) {
        use r1_cstore::access::{grant_key, job_key};
        let stamp = r1_cstore::Stamp {
            wall_ms: r1_protocol::now_ms(),
            logical: 0,
        };
        let rules = jobs
            .iter()
            .map(|(job, namespace)| (job_key(*job), namespace.as_bytes().to_vec()))
            .chain(
                grants
                    .iter()
                    .map(|(namespace, reader)| (grant_key(namespace, reader), b"1".to_vec())),
            );
        let entries: Vec<r1_cstore::Entry> = rules
            .enumerate()
            .map(|(i, (key, value))| {
                let stamp = r1_cstore::Stamp {
                    logical: i as u32,
                    ..stamp
                };
                r1_cstore::Entry::signed(key, Some(value), None, stamp, &self.identity)
                    .unwrap_or_else(|e| panic!("rule: {e}"))
            })
            .collect();
        let topic = self.topics.topic(Channel::Cstore, &self.address());
        for message in r1_cstore::delta::encode(&entries, 60_000) {
            self.client
                .publish(topic.clone(), QoS::AtLeastOnce, false, message)
                .unwrap_or_else(|e| panic!("publish: {e}"));
        }
    }

    /// Publishes `roster` signed by this oracle on its roster topic, retained by no broker:
    /// nodes subscribed now take it.
    pub fn publish_roster(&self, roster: &Roster) {
        let topic = self.topics.topic(Channel::Roster, &self.address());
        self.client
            .publish(topic, QoS::AtLeastOnce, false, self.seal(roster).to_bytes())
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// Orders `node` to run `workload`.
    pub fn deploy(&self, node: Address, workload: WorkloadSpec) {
        let envelope = self.seal(&DeployCommand {
            target: node,
            workload,
        });
        self.send_raw(node, envelope.to_bytes());
    }

    /// Orders `node` to stop `workload`.
    pub fn stop(&self, node: Address, workload: WorkloadId) {
        let envelope = self.seal(&StopCommand {
            target: node,
            workload,
            reason: "test".into(),
        });
        self.send_raw(node, envelope.to_bytes());
    }

    /// The latest heartbeat from `node` and when it arrived.
    pub fn heartbeat(&self, node: Address) -> Option<(Instant, Heartbeat)> {
        self.heard.lock().ok()?.heartbeats.get(&node).cloned()
    }

    /// The workloads `node` runs as far as it told: its latest heartbeat with every status
    /// report since applied (a node reports each change at once, but heartbeats only every
    /// interval, so this is what a test that samples a fast change must read).
    pub fn live_workloads(&self, node: Address) -> Vec<WorkloadReport> {
        self.heard
            .lock()
            .map(|h| {
                h.live
                    .get(&node)
                    .map(|live| live.values().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Heartbeats received from `node` so far.
    pub fn heartbeat_count(&self, node: Address) -> u64 {
        self.heard
            .lock()
            .map(|h| h.heartbeat_count.get(&node).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Status reports from `node` so far.
    pub fn statuses(&self, node: Address) -> Vec<JobStatusReport> {
        self.heard
            .lock()
            .map(|h| {
                h.statuses
                    .iter()
                    .filter(|(a, _)| *a == node)
                    .map(|(_, r)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until a heartbeat of `node` reports `workload` in a state `accept`s, and returns
    /// that report.
    pub fn wait_for(
        &self,
        node: Address,
        workload: WorkloadId,
        timeout: Duration,
        accept: impl Fn(&WorkloadReport) -> bool,
    ) -> Option<WorkloadReport> {
        let mut found = None;
        crate::wait::until(timeout, || {
            found = self.heartbeat(node).and_then(|(_, hb)| {
                hb.workloads
                    .into_iter()
                    .find(|w| w.id == workload && accept(w))
            });
            found.is_some()
        });
        found
    }

    /// Waits until a heartbeat of `node` lists exactly `count` workloads.
    pub fn wait_for_count(&self, node: Address, count: usize, timeout: Duration) -> bool {
        crate::wait::until(timeout, || {
            self.heartbeat(node)
                .is_some_and(|(_, hb)| hb.workloads.len() == count)
        })
    }
}

fn record(heard: &Mutex<Heard>, topics: &Topics, topic: &str, payload: &[u8]) {
    let Some((channel, sender)) = topics.parse(topic) else {
        return;
    };
    let Ok(envelope) = Envelope::from_bytes(payload) else {
        return;
    };
    if envelope.recover_signer() != Some(sender) || envelope.sender != sender {
        return;
    }
    let Ok(mut heard) = heard.lock() else { return };
    match channel {
        Channel::Heartbeat => {
            if let Ok(hb) = serde_json::from_str::<Heartbeat>(&envelope.payload) {
                let live = hb.workloads.iter().map(|w| (w.id, w.clone())).collect();
                heard.live.insert(sender, live);
                heard.heartbeats.insert(sender, (Instant::now(), hb));
                *heard.heartbeat_count.entry(sender).or_default() += 1;
            }
        }
        Channel::Status => {
            if let Ok(report) = serde_json::from_str::<JobStatusReport>(&envelope.payload) {
                let live = heard.live.entry(sender).or_default();
                if report.is_removal() {
                    live.remove(&report.workload.id);
                } else {
                    live.insert(report.workload.id, report.workload.clone());
                }
                heard.statuses.push((sender, report));
            }
        }
        _ => {}
    }
}

/// A workload spec for tests: `image`, 250 m CPU, `memory_mib` MiB, no ports.
pub fn workload(job: u64, replica: u32, image: &str, memory_mib: u64) -> WorkloadSpec {
    WorkloadSpec {
        id: WorkloadId { job, replica },
        revision: format!("rev-{job}-{replica}"),
        image: image.to_owned(),
        command: vec![],
        args: vec![],
        env: BTreeMap::new(),
        ports: vec![],
        cpu_millis: 250,
        memory_bytes: memory_mib << 20,
        gpu: 0,
        health: None,
        secrets: None,
        tunnel: None,
        security: None,
    }
}
