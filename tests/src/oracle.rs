//! An `r1-oracle` under test: its own key, data directory, config file and ports on 127.0.0.1,
//! started and stopped (or killed) by the test, keeping its data across restarts.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use r1_protocol::{Address, Identity};

use crate::node::{http_get, metric_value};
use crate::process::{ChildGuard, ProcessError, bin_path};

/// Why an oracle could not be set up, started or found healthy.
#[derive(Debug, thiserror::Error)]
pub enum OracleHarnessError {
    /// A file could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The oracle process could not be started.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The key file could not be created.
    #[error("key file: {0}")]
    Key(#[from] r1_protocol::keyfile::KeyFileError),
    /// The oracle is not running (never started, stopped or killed).
    #[error("oracle {address} is not running")]
    NotStarted {
        /// The oracle.
        address: Address,
    },
    /// The oracle exited before answering `/healthz`.
    #[error("oracle {address} exited ({status}) before it was healthy; log tail:\n{log}")]
    Exited {
        /// The oracle.
        address: Address,
        /// How it exited.
        status: ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// `/healthz` did not answer 2xx in time.
    #[error("oracle {address} not healthy within {timeout:?}; log tail:\n{log}")]
    NotHealthy {
        /// The oracle.
        address: Address,
        /// How long was waited.
        timeout: Duration,
        /// The end of its log.
        log: String,
    },
}

/// Settings of an oracle under test: where the chain and broker are, and its loop timing.
#[derive(Debug, Clone)]
pub struct OracleSettings {
    /// Chain JSON-RPC endpoint.
    pub rpc_url: String,
    /// Chain id the endpoint reports.
    pub chain_id: u64,
    /// PoAI manager address.
    pub manager: Address,
    /// External broker URL, as the broker admitted the oracle (`mqtt://127.0.0.1:<port>`).
    pub broker_url: String,
    /// CA certificate for an `mqtts` broker.
    pub ca_file: Option<std::path::PathBuf>,
    /// Root of every topic; must match the nodes' ([`crate::node::TOPIC_ROOT`]).
    pub topic_root: String,
    /// Milliseconds between two passes of the reconcile loops.
    pub loop_period_ms: u64,
    /// The nodes' heartbeat interval in seconds.
    pub heartbeat_seconds: u64,
    /// Missed heartbeats after which a node is lost (at least 2).
    pub grace_missed: u32,
    /// Seconds a replica may take to start.
    pub start_grace_seconds: u64,
    /// Seconds between two re-publications of signed requests to the other oracles.
    pub resync_seconds: u64,
    /// The objects one owner may keep in the oracle's store (`None`: the oracle's default).
    pub object_quota: Option<usize>,
}

/// An `r1-oracle` process with its own key, data directory, config, API and metrics ports.
pub struct OracleProcess {
    dir: tempfile::TempDir,
    identity: Identity,
    /// The oracle's address.
    pub address: Address,
    /// Its Deeploy API (and `/healthz`) port on 127.0.0.1.
    pub api_port: u16,
    /// Its metrics port on 127.0.0.1.
    pub metrics_port: u16,
    kubeconfig: Option<PathBuf>,
    process: Option<ChildGuard>,
}

impl OracleProcess {
    /// Prepares an oracle with key `identity` (config, data directory) without starting it.
    pub fn new(settings: &OracleSettings, identity: Identity) -> Result<Self, OracleHarnessError> {
        let dir = tempfile::Builder::new().prefix("r1o").tempdir_in("/tmp")?;
        r1_protocol::keyfile::write(&dir.path().join("oracle.key"), &identity)?;
        let api_port = crate::free_port();
        let metrics_port = crate::free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let config = config_text(
            settings,
            &dir.path().join("oracle.key"),
            &data,
            api_port,
            metrics_port,
        );
        std::fs::write(dir.path().join("oracle.yaml"), config)?;
        Ok(Self {
            address: identity.address(),
            identity,
            dir,
            api_port,
            metrics_port,
            kubeconfig: None,
            process: None,
        })
    }

    /// Runs the oracle in Kubernetes mode from its next start: the API server of `kubeconfig`
    /// (given as `KUBECONFIG`), with the `kube:` section `settings` (YAML, e.g.
    /// `{delegateKeyFile: …}`) added to its config.
    pub fn enable_kube(
        &mut self,
        kubeconfig: &Path,
        settings: &str,
    ) -> Result<(), OracleHarnessError> {
        let mut config = std::fs::read_to_string(self.config_path())?;
        config.push_str(&format!("kube: {settings}\n"));
        std::fs::write(self.config_path(), config)?;
        self.kubeconfig = Some(kubeconfig.to_path_buf());
        Ok(())
    }

    /// The process id while it runs (to read its CPU time and memory).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildGuard::id)
    }

    /// The oracle's signing key, e.g. to act as it on chain (`identity().signer()`).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The config file it runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("oracle.yaml")
    }

    /// Its data directory, kept across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The Deeploy API base URL, `http://127.0.0.1:<port>`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The oracle's log (stdout and stderr) so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where its log (stdout and stderr) is written.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("r1-oracle.log")
    }

    /// Runs `r1-oracle --config <file> check-config` and returns what it said.
    pub fn check_config(&self) -> Result<Output, OracleHarnessError> {
        let output = Command::new(bin_path("r1-oracle")?)
            .arg("--config")
            .arg(self.config_path())
            .arg("check-config")
            .output()?;
        Ok(output)
    }

    /// Starts `r1-oracle --config <file> run`; its output is appended to its log.
    pub fn start(&mut self) -> Result<(), OracleHarnessError> {
        let mut command = Command::new(bin_path("r1-oracle")?);
        command
            .arg("--config")
            .arg(self.config_path())
            .arg("run")
            .env("RUST_LOG", "info")
            .env("R1_LOG", "info");
        if let Some(kubeconfig) = &self.kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        self.process = Some(ChildGuard::spawn_logged(
            &mut command,
            "r1-oracle",
            self.dir.path(),
        )?);
        Ok(())
    }

    /// Whether the process is running (started and not exited).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Whether `/healthz` answers 2xx right now.
    pub fn is_healthy(&self) -> bool {
        http_get(self.api_port, "/healthz").is_some()
    }

    /// Waits until `/healthz` answers 2xx; fails early when the process exits.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), OracleHarnessError> {
        let address = self.address;
        let mut exited = None;
        let healthy = crate::wait::until(timeout, || {
            if let Some(process) = self.process.as_mut()
                && let Ok(Some(status)) = process.try_wait()
            {
                exited = Some(status);
                return true;
            }
            http_get(self.api_port, "/healthz").is_some()
        });
        let log = || crate::process::tail(&self.dir.path().join("r1-oracle.log"), 40);
        match (self.process.is_some(), exited) {
            (false, _) => Err(OracleHarnessError::NotStarted { address }),
            (true, Some(status)) => Err(OracleHarnessError::Exited {
                address,
                status,
                log: log(),
            }),
            (true, None) if healthy => Ok(()),
            (true, None) => Err(OracleHarnessError::NotHealthy {
                address,
                timeout,
                log: log(),
            }),
        }
    }

    /// Kills the oracle with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
        }
    }

    /// Stops the oracle: SIGTERM, then SIGKILL after the grace period.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.stop();
        }
    }

    /// Stops the oracle and starts it again on the same key, data, config and ports.
    pub fn restart(&mut self) -> Result<(), OracleHarnessError> {
        self.stop();
        self.start()
    }

    /// The oracle's Prometheus metrics text; panics when the oracle does not answer.
    pub fn metrics(&self) -> String {
        crate::node::scrape_metrics(self.metrics_port, &format!("oracle {}", self.address))
    }

    /// The current value of the metric line starting with `prefix` (0 when absent).
    pub fn metric(&self, prefix: &str) -> f64 {
        metric_value(&self.metrics(), prefix)
    }
}

impl Drop for OracleProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The oracle's YAML config: an external broker, the epoch clock read from the chain.
fn config_text(
    settings: &OracleSettings,
    key: &std::path::Path,
    data: &std::path::Path,
    api_port: u16,
    metrics_port: u16,
) -> String {
    format!(
        "keyFile: {key}\ndataDir: {data}\n\
         chain: {{ rpcUrl: \"{rpc}\", chainId: {chain_id}, poaiManager: \"{manager}\", quorum: reference }}\n\
         broker: {{ url: \"{broker}\", topicRoot: {topic_root}{ca} }}\n\
         api: {{ listen: \"127.0.0.1:{api_port}\"{quotas} }}\n\
         metricsListen: \"127.0.0.1:{metrics_port}\"\n\
         loops: {{ periodMs: {period}, startGraceSeconds: {start_grace}, resyncSeconds: {resync} }}\n\
         nodes: {{ heartbeatIntervalSeconds: {hb}, graceMissed: {grace} }}\n",
        quotas = settings
            .object_quota
            .map_or_else(String::new, |objects| format!(
                ", quotas: {{ objects: {objects}, namespaces: 20 }}"
            )),
        key = key.display(),
        data = data.display(),
        rpc = settings.rpc_url,
        chain_id = settings.chain_id,
        manager = settings.manager.to_checksum(None),
        broker = settings.broker_url,
        ca = settings
            .ca_file
            .as_ref()
            .map(|ca| format!(", caFile: {}", ca.display()))
            .unwrap_or_default(),
        topic_root = settings.topic_root,
        period = settings.loop_period_ms,
        start_grace = settings.start_grace_seconds,
        resync = settings.resync_seconds,
        hb = settings.heartbeat_seconds,
        grace = settings.grace_missed,
    )
}
