//! Steps that whole-network scenarios share: apply the examples with `r1ctl`, read a job's
//! status from an oracle, wait until every oracle sees it Running (validated on chain), read
//! the chain between steps, and gather the oracles' logs for failure messages.

use std::process::Output;
use std::time::Duration;

use alloy::primitives::Address;
use r1_contracts::bindings::CspEscrow;
use serde_json::Value;

use crate::chain::ChainError;
use crate::network::{Network, NetworkError, NetworkSettings};
use crate::wait::until;

/// The example manifests (`crds/examples`).
pub const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/examples");

/// The files `r1ctl apply` gets to run the example job `hello-web`: its escrow, project and
/// the job itself (two replicas of httpd for 30 epochs).
pub const HELLO_WEB: [&str; 3] = ["escrow.yaml", "project.yaml", "job-http.yaml"];

/// How often a chain read is tried before its error counts.
const CHAIN_READ_ATTEMPTS: usize = 3;

/// Why a scenario step failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The network could not run a command.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// `r1ctl` exited with an error.
    #[error("r1ctl {args} failed:\n{output}")]
    R1ctl {
        /// Its arguments.
        args: String,
        /// What it printed.
        output: String,
    },
    /// Something did not happen in time.
    #[error("{what} within {timeout:?}\n{logs}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        timeout: Duration,
        /// Every oracle's and node's log.
        logs: String,
    },
}

impl ScenarioError {
    /// A timeout waiting for `what`, with every oracle's and node's log.
    pub fn timeout(network: &Network, what: impl Into<String>, timeout: Duration) -> Self {
        Self::Timeout {
            what: what.into(),
            timeout,
            logs: network_logs(network),
        }
    }
}

/// Starts a network as [`Network::start`] does, and once more when setting up its chain
/// failed. With epochs of a second or two the suite's deployment can run out of gas: the PoAI
/// manager's constructor records the current epoch, a storage write that costs 20 000 gas more
/// from epoch 1 on, and `deploy_suite` sends it with the gas estimated a moment earlier, which
/// may still have been in epoch 0.
pub fn start_network(settings: &NetworkSettings) -> Result<Network, ScenarioError> {
    match Network::start(settings) {
        Err(NetworkError::Chain(first)) => {
            tracing::warn!(error = %first, "setting up the chain failed; once more");
            Ok(Network::start(settings)?)
        }
        started => Ok(started?),
    }
}

/// Every oracle's log, headed by its address.
pub fn oracle_logs(network: &Network) -> String {
    network
        .oracles()
        .iter()
        .map(|o| format!("--- oracle {}\n{}", o.address, o.log()))
        .collect()
}

/// Every oracle's and node agent's log, each headed by its address.
pub fn network_logs(network: &Network) -> String {
    let nodes: String = network
        .nodes()
        .iter()
        .map(|n| format!("--- node {}\n{}", n.address, n.log()))
        .collect();
    oracle_logs(network) + &nodes
}

/// What `output` printed, standard output then standard error.
pub fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `r1ctl apply -f` on the example `files` as the CSP (which also funds their jobs).
pub fn apply_examples(network: &Network, files: &[&str]) -> Result<Output, ScenarioError> {
    let mut args = vec!["apply".to_owned()];
    for file in files {
        args.push("-f".into());
        args.push(format!("{EXAMPLES}/{file}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = network.r1ctl(&args)?;
    if !output.status.success() {
        return Err(ScenarioError::R1ctl {
            args: args.join(" "),
            output: printed(&output),
        });
    }
    Ok(output)
}

/// The status of the DeeployJob `name` as oracle `oracle` serves it (`r1ctl get -o json`).
pub fn job_status(network: &Network, oracle: usize, name: &str) -> Option<Value> {
    let output = network
        .r1ctl_command()
        .ok()?
        .env("R1_SERVER", network.oracles().get(oracle)?.api_url())
        .args(["get", "djob", name, "-o", "json"])
        .output()
        .ok()?;
    let value: Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(value["status"].clone())
}

/// The DeeployJob `name` (namespace `default`) as oracle `oracle` stores it: `Ok(None)` only
/// when r1ctl says the oracle has none; an error when it cannot be asked, so "could not ask"
/// never reads as "nothing there".
pub fn stored_job(network: &Network, oracle: usize, name: &str) -> Result<Option<Value>, String> {
    let api = network
        .oracles()
        .get(oracle)
        .ok_or_else(|| format!("no oracle {oracle}"))?
        .api_url();
    let output = network
        .r1ctl_command()
        .map_err(|e| e.to_string())?
        .env("R1_SERVER", api)
        .args(["get", "djob", name, "-o", "json"])
        .output()
        .map_err(|e| format!("r1ctl: {e}"))?;
    if output.status.success() {
        return serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|e| format!("r1ctl printed no JSON: {e}"));
    }
    let said = printed(&output);
    if said.contains(&format!("DeeployJob default/{name} not found")) {
        Ok(None)
    } else {
        Err(format!("r1ctl get djob {name} failed: {said}"))
    }
}

/// Waits until every oracle serves the job `name` linked to the same chain job, Running (so
/// validated on chain) with `replicas` ready replicas; returns the chain job id.
pub fn wait_running(
    network: &Network,
    name: &str,
    replicas: u64,
    timeout: Duration,
) -> Result<u64, ScenarioError> {
    let mut job_id = None;
    let mut last = Vec::new();
    let running = until(timeout, || {
        let statuses: Vec<Option<Value>> = (0..network.oracles().len())
            .map(|o| job_status(network, o, name))
            .collect();
        last.clone_from(&statuses);
        let ids: Vec<Option<u64>> = statuses
            .iter()
            .map(|s| s.as_ref()?["chainJobId"].as_str()?.parse().ok())
            .collect();
        job_id = ids.first().copied().flatten();
        job_id.is_some()
            && ids.iter().all(|id| *id == job_id)
            && statuses.iter().all(|s| {
                s.as_ref()
                    .is_some_and(|s| s["phase"] == "Running" && s["readyReplicas"] == replicas)
            })
    });
    match job_id {
        Some(id) if running => Ok(id),
        _ => {
            let last: Vec<String> = last
                .iter()
                .map(|s| s.as_ref().map_or_else(|| "none".into(), Value::to_string))
                .collect();
            Err(ScenarioError::timeout(
                network,
                format!(
                    "DeeployJob {name} did not reach Running on every oracle (last statuses: {})",
                    last.join(" | ")
                ),
                timeout,
            ))
        }
    }
}

/// Applies the `hello-web` example (funded by `r1ctl apply`) and waits until every oracle sees
/// it Running on two nodes, validated on chain; returns the chain job id.
pub fn run_hello_web(network: &Network) -> Result<u64, ScenarioError> {
    apply_examples(network, &HELLO_WEB)?;
    wait_running(network, "hello-web", 2, Duration::from_secs(90))
}

/// Runs a chain read, trying again when it fails: the harness drives its chain client only
/// while blocked on a call, so a pooled connection the chain closed while the test was busy
/// elsewhere is found closed only by the next request.
pub fn read_chain<T, E>(mut read: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        match read() {
            Err(_) if attempt < CHAIN_READ_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// The on-chain job `job_id`, as its escrow holds it.
pub fn chain_job(network: &Network, job_id: u64) -> Result<CspEscrow::Job, ScenarioError> {
    let chain = network.chain();
    read_chain(|| chain.block_on(chain.gov().job(job_id)))
        .map_err(|e| ScenarioError::Chain(e.into()))
}

/// The validated node set of the on-chain job `job_id`.
pub fn active_nodes(network: &Network, job_id: u64) -> Result<Vec<Address>, ScenarioError> {
    Ok(chain_job(network, job_id)?.activeNodes)
}

/// Waits until every oracle shows the job `name` `Closed` (or no longer has it); whether it did
/// within `timeout`.
pub fn wait_closed(network: &Network, name: &str, timeout: Duration) -> bool {
    until(timeout, || {
        (0..network.oracles().len())
            .all(|o| job_status(network, o, name).is_none_or(|s| s["phase"] == "Closed"))
    })
}

/// Every file under `dir`, recursively, as (path, bytes): the places a test searches for a
/// value that must not be there in clear.
pub fn files_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

/// Whether `haystack` holds the bytes of `needle`.
pub fn bytes_contain(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
