//! The devnet behind `make devnet`: a whole r1 network on 127.0.0.1 (chain with the suite, a
//! broker, oracles, node agents on a private containerd), the example manifests applied and
//! funded by the CSP (hello-web, and the shop whose jobs call each other by name), a live
//! status table until every job runs validated on chain, and the URLs that answer from them. It keeps running, showing the table, until it is interrupted or
//! `r1-devnet down` stops it; then everything it started is stopped and removed.

pub mod lifecycle;
pub mod progress;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use r1_ctl::devnet::DevnetEnv;
pub use r1_ctl::devnet::ENV_FILE;
use r1_ctl::overview::Overview;
use r1_ctl::remote::Client;
use r1_protocol::node_api::ListWorkloadsRequest;

use crate::network::{HTTPD_IMAGE, Network, NetworkError, NetworkSettings, SHOP_IMAGE};
use lifecycle::{Claim, LifecycleError};
use progress::Progress;

/// How long every job gets to run validated on chain after being applied.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(180);

/// The example manifests the devnet applies, in order.
pub const APPLIED: [&str; 4] = [
    "escrow.yaml",
    "project.yaml",
    "job-http.yaml",
    "shop-devnet.yaml",
];

/// The jobs the devnet asks over HTTP once they run, with what each one's answer shows when it
/// works: hello-web's page, and the shop's front end listing the stock it got from `stock`
/// through `api`.
pub const ASKED: [(&str, &str); 2] = [("hello-web", "hello from r1"), ("web", "in stock")];

/// How long the jobs get to answer as [`ASKED`] once they run validated (a project's service
/// table reaches its nodes on the oracles' next pass).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the status table is refreshed.
const REFRESH: Duration = Duration::from_secs(2);

/// The shape of the devnet and where it keeps its files.
#[derive(Debug, Clone)]
pub struct DevnetSettings {
    /// The network: oracle and node counts, epoch length, heartbeat and loop timing.
    pub network: NetworkSettings,
    /// The directory holding the pid, process and `env` files.
    pub dir: PathBuf,
    /// The directory holding [`APPLIED`].
    pub examples: PathBuf,
    /// Stop as soon as the job answers, instead of running until interrupted.
    pub until_running: bool,
}

/// Why the devnet failed; the progress display has already said which step.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The devnet directory could not be claimed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// A part of the network failed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// `r1ctl apply` refused the examples or could not fund them.
    #[error("r1ctl apply failed:\n{0}")]
    Apply(String),
    /// The oracle's API could not be used.
    #[error("oracle API: {0}")]
    Api(String),
    /// The jobs did not all run validated in time.
    #[error("not every job was Running with all replicas ready and validated within {0:?}")]
    NotRunning(Duration),
    /// A job of [`ASKED`] did not answer as it should.
    #[error("{job} did not answer HTTP with \"{wanted}\" within {within:?}; it answered: {got:?}")]
    NoAnswer {
        /// The job.
        job: String,
        /// What its answer should have contained.
        wanted: String,
        /// How long it was asked.
        within: Duration,
        /// Its replicas' answers.
        got: Vec<String>,
    },
    /// The devnet was interrupted before it was up.
    #[error("interrupted")]
    Interrupted,
    /// A runtime for the API clients could not be built.
    #[error("tokio runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the devnet until `stop` is set (or, with `until_running`, until the job answers).
pub fn run(settings: &DevnetSettings, stop: &AtomicBool) -> Result<(), DevnetError> {
    let claim = Claim::take(&settings.dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DevnetError::Runtime)?;
    let mut progress = Progress::new(6);
    let mut logs = Vec::new();
    let result = bring_up(settings, stop, &claim, &runtime, &mut progress, &mut logs);
    let network = match result {
        Ok(network) => network,
        Err(error) => {
            progress.failed(&error, &logs);
            return Err(error);
        }
    };
    if !settings.until_running {
        println!(
            "\nThe devnet runs. In another terminal:\n  \
             source {dir}/{ENV_FILE} && r1ctl status -w     (or: r1ctl devnet status -w)\n\
             Ctrl-C here, or `make devnet-down`, stops it.\n",
            dir = settings.dir.display()
        );
        let client = csp_client(&network)?;
        while !stop.load(Ordering::SeqCst) {
            progress.live(&overview_text(&runtime, &client));
            sleep_unless(stop, REFRESH);
        }
    }
    println!("\nStopping the devnet …");
    drop(network);
    drop(claim);
    let left = crate::procfs::descendants(&[std::process::id()]);
    if left.is_empty() {
        println!("Stopped; nothing it started is left running.");
    } else {
        println!("Stopped; still running: {left:?}");
    }
    Ok(())
}

/// Every step up to the job answering; `logs` collects where each part logs, for a failure.
fn bring_up(
    settings: &DevnetSettings,
    stop: &AtomicBool,
    claim: &Claim,
    runtime: &tokio::runtime::Runtime,
    progress: &mut Progress,
    logs: &mut Vec<String>,
) -> Result<Network, DevnetError> {
    let shape = &settings.network;
    progress.begin(&format!(
        "Starting the chain (Hardhat EDR) with the contracts, a broker, containerd and an image \
         registry; registering {} oracles, licensing {} nodes, funding the CSP",
        shape.oracles, shape.nodes
    ));
    let mut network = Network::prepare(shape)?;
    logs.push(format!(
        "containerd: {}",
        network.containerd().log_path().display()
    ));
    logs.extend(
        network
            .oracles()
            .iter()
            .map(|o| format!("oracle {}: {}", o.address, o.log_path().display())),
    );
    logs.extend(
        network
            .nodes()
            .iter()
            .map(|n| format!("node {}: {}", n.address, n.log_path().display())),
    );
    claim.record_processes(&[std::process::id()], &marker_paths(&network))?;
    let registry = network
        .registry()
        .map(|r| {
            format!(
                "\nregistry {} serving {HTTPD_IMAGE} and {SHOP_IMAGE}",
                r.host()
            )
        })
        .unwrap_or_default();
    progress.ok(&format!(
        "chain {} (chain id {}, PoAI manager {})\nbroker {}\nCSP {} with escrow {}{registry}",
        network.chain().url(),
        network.chain().chain_id(),
        network.chain().manager(),
        network.broker().url(),
        network.csp().address(),
        network.escrow(),
    ));
    interrupted(stop)?;

    progress.begin(&format!("Starting {} oracles", shape.oracles));
    network.start_oracles()?;
    progress.ok(&network
        .oracles()
        .iter()
        .map(|o| format!("oracle {} API {}", o.address, o.api_url()))
        .collect::<Vec<_>>()
        .join("\n"));
    interrupted(stop)?;

    progress.begin(&format!("Starting {} node agents", shape.nodes));
    network.start_nodes()?;
    claim.record_processes(&[std::process::id()], &marker_paths(&network))?;
    let env = DevnetEnv {
        server: network
            .oracles()
            .first()
            .map(|o| o.api_url())
            .unwrap_or_default(),
        key: network.csp_key_file(),
        rpc_url: network.chain().url(),
        bin_dir: crate::process::bin_path("r1ctl")
            .ok()
            .and_then(|path| path.parent().map(std::path::Path::to_path_buf)),
    };
    env.write(&settings.dir)
        .map_err(|source| LifecycleError::File {
            path: settings.dir.join(ENV_FILE),
            source,
        })?;
    progress.ok(&format!(
        "{} nodes, each in its own containerd namespace\nr1ctl environment: {}/{ENV_FILE}",
        shape.nodes,
        settings.dir.display()
    ));
    interrupted(stop)?;

    progress.begin(
        "Applying crds/examples (escrow, hello-web, and the shop: web → api → stock) and funding \
         the jobs",
    );
    let mut args = vec!["apply".to_owned()];
    for file in APPLIED {
        args.push("-f".into());
        args.push(settings.examples.join(file).display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let applied = network.r1ctl(&args)?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&applied.stdout),
        String::from_utf8_lossy(&applied.stderr)
    );
    if !applied.status.success() {
        return Err(DevnetError::Apply(said));
    }
    progress.ok(said.trim_end());

    progress.begin("Waiting until every job is Running, all replicas ready, validated on chain");
    let client = csp_client(&network)?;
    let started = Instant::now();
    loop {
        interrupted(stop)?;
        let overview = runtime.block_on(Overview::fetch(&client));
        if let Ok(overview) = &overview {
            progress.live(&rendered(overview));
            if !overview.jobs.is_empty() && overview.jobs.iter().all(runs_validated) {
                break;
            }
        }
        if started.elapsed() > RUNNING_TIMEOUT {
            return Err(DevnetError::NotRunning(RUNNING_TIMEOUT));
        }
        sleep_unless(stop, REFRESH);
    }
    progress.ok("");

    progress.begin("Asking the jobs over HTTP: hello-web, and the shop's front end");
    let answers = runtime.block_on(asked_answers(&network, &client, stop))?;
    progress.ok(&answers
        .iter()
        .map(|answer| answer.to_string())
        .collect::<Vec<_>>()
        .join("\n"));
    Ok(network)
}

/// One replica's answer to `GET /` on its host port.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The job the replica belongs to.
    pub job: String,
    /// `http://127.0.0.1:<host port>/`.
    pub url: String,
    /// The body it answered.
    pub body: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut lines = self.body.lines();
        write!(
            f,
            "{:<10} {} answers: {}",
            self.job,
            self.url,
            lines.next().unwrap_or("")
        )?;
        for line in lines {
            write!(f, "\n{:<10} {line}", "")?;
        }
        Ok(())
    }
}

/// The answers of the replicas of every job in [`ASKED`], once each job has one replica whose
/// answer shows what it should, asked again until [`ANSWER_TIMEOUT`] or until `stop` is set.
async fn asked_answers(
    network: &Network,
    client: &Client,
    stop: &AtomicBool,
) -> Result<Vec<Answer>, DevnetError> {
    let started = Instant::now();
    loop {
        interrupted(stop)?;
        let names = Overview::fetch(client)
            .await
            .map(|overview| job_names(&overview))
            .unwrap_or_default();
        let answers = answering(network, &names).await;
        let missing = ASKED.iter().find(|(job, wanted)| {
            !answers
                .iter()
                .any(|answer| answer.job == *job && answer.body.contains(wanted))
        });
        match missing {
            None => return Ok(answers),
            Some((job, wanted)) if started.elapsed() > ANSWER_TIMEOUT => {
                return Err(DevnetError::NoAnswer {
                    job: (*job).to_owned(),
                    wanted: (*wanted).to_owned(),
                    within: ANSWER_TIMEOUT,
                    got: answers
                        .iter()
                        .filter(|answer| answer.job == *job)
                        .map(|answer| answer.body.clone())
                        .collect(),
                });
            }
            Some(_) => tokio::time::sleep(REFRESH).await,
        }
    }
}

/// Each job's name by its id on chain, as the oracle shows them.
fn job_names(overview: &Overview) -> BTreeMap<u64, String> {
    overview
        .jobs
        .iter()
        .filter_map(|job| {
            let id = job.status["chainJobId"].as_str()?.parse().ok()?;
            Some((id, job.metadata.name.clone()))
        })
        .collect()
}

/// Text that the command lines of processes the devnet started (shims included) contain.
fn marker_paths(network: &Network) -> Vec<String> {
    vec![network.containerd().root_dir().display().to_string()]
}

fn csp_client(network: &Network) -> Result<Client, DevnetError> {
    let oracle = network.oracles().first().ok_or(NetworkError::NoOracle)?;
    Client::new(&oracle.api_url(), network.csp().clone())
        .map_err(|e| DevnetError::Api(e.to_string()))
}

fn overview_text(runtime: &tokio::runtime::Runtime, client: &Client) -> String {
    match runtime.block_on(Overview::fetch(client)) {
        Ok(overview) => rendered(&overview),
        Err(error) => format!("the oracle does not answer: {error}\n"),
    }
}

fn rendered(overview: &Overview) -> String {
    let mut out = Vec::new();
    let _ = overview.render(k8s_openapi::jiff::Timestamp::now(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a job runs as asked: phase Running, every replica ready, node set validated on chain.
fn runs_validated(job: &r1_crds::api::object::StoredObject) -> bool {
    let status = &job.status;
    let wanted = job.spec.job().map_or(1, |spec| u64::from(spec.replicas));
    let validated = status["conditions"].as_array().is_some_and(|conditions| {
        conditions
            .iter()
            .any(|c| c["type"] == "Validated" && c["status"] == "True")
    });
    status["phase"] == "Running" && status["readyReplicas"].as_u64() == Some(wanted) && validated
}

/// The answers of the running replicas of the jobs in [`ASKED`] (named by `names`) that
/// answer on a host port.
async fn answering(network: &Network, names: &BTreeMap<u64, String>) -> Vec<Answer> {
    let mut answers = Vec::new();
    for node in network.nodes() {
        let Ok(mut api) = r1_protocol::node_api::connect(&node.api_socket()).await else {
            continue;
        };
        let Ok(listed) = api.list_workloads(ListWorkloadsRequest {}).await else {
            continue;
        };
        for workload in listed.into_inner().workloads {
            let Some(job) = names.get(&workload.job) else {
                continue;
            };
            if workload.state != "running" || !ASKED.iter().any(|(asked, _)| asked == job) {
                continue;
            }
            for port in &workload.ports {
                let Ok(host_port) = u16::try_from(port.host_port) else {
                    continue;
                };
                if let Some(body) = crate::node::http_get(host_port, "/") {
                    answers.push(Answer {
                        job: job.clone(),
                        url: format!("http://127.0.0.1:{host_port}/"),
                        body,
                    });
                }
            }
        }
    }
    answers
}

fn interrupted(stop: &AtomicBool) -> Result<(), DevnetError> {
    if stop.load(Ordering::SeqCst) {
        Err(DevnetError::Interrupted)
    } else {
        Ok(())
    }
}

/// Sleeps `duration`, waking early when `stop` is set.
fn sleep_unless(stop: &AtomicBool, duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The devnet directory `r1-devnet` uses when not told otherwise (`R1_DEVNET_DIR`, else
/// `/tmp/r1-devnet`).
pub fn default_dir() -> PathBuf {
    r1_ctl::devnet::dir_from_env()
}

/// `crds/examples` of the checkout the devnet is started in (see
/// [`r1_contracts::devchain::checkout_dir`]), never of the one it was built in.
pub fn default_examples() -> Result<PathBuf, r1_contracts::Error> {
    Ok(r1_contracts::devchain::checkout_dir()?.join("crds/examples"))
}
