//! The tunnel loop: each second it works out the wanted clients from the replicas this node
//! runs, checks the clients it started (exited, no URL in time, public endpoint unreachable),
//! lets [`plan`] decide what to stop and start, does it, and publishes each replica's tunnel
//! state in the table the supervisor's reports read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use r1_protocol::Identity;
use r1_protocol::messages::{TunnelClient, TunnelReport, WorkloadId};
use r1_protocol::now_ms;

use super::TunnelTable;
use super::client::{Binaries, Running, launch};
use super::plan::{Step, Wanted, plan};
use super::schedule::{Schedule, Tries};
use crate::metrics::{Metrics, StateLabel};
use crate::state::NodeState;
use crate::store::DesiredWorkload;

/// Time between passes.
const PERIOD: Duration = Duration::from_secs(1);
/// How long a client has to announce its URL.
const CONNECT_WITHIN_MS: u64 = 30_000;
/// Time between checks of a client's public endpoint.
const PROBE_EVERY_MS: u64 = 10_000;
/// How long one check may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Failed checks in a row after which the client is restarted.
const PROBE_FAILURES: u32 = 3;

/// What the tunnel loop needs.
pub struct TunnelParts {
    /// The node's key, which opens the tokens sealed to it.
    pub identity: Identity,
    /// Where the clients' binaries are.
    pub binaries: Binaries,
    /// The address the node's host ports listen on, which clients forward to.
    pub local_host: String,
    /// Restart schedule.
    pub schedule: Schedule,
    /// Where each replica's tunnel state is published.
    pub table: TunnelTable,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// A started client and what it was started for.
struct Client {
    wanted: Wanted,
    running: Running,
    next_probe_ms: u64,
    probe_failures: u32,
}

/// Runs the tunnel clients of the replicas in `state`.
pub struct TunnelLoop {
    parts: TunnelParts,
    state: Arc<NodeState>,
    clients: BTreeMap<WorkloadId, Client>,
    tries: BTreeMap<WorkloadId, Tries>,
    errors: BTreeMap<WorkloadId, String>,
}

impl TunnelLoop {
    /// A loop over `state`.
    pub fn new(parts: TunnelParts, state: Arc<NodeState>) -> Self {
        Self {
            parts,
            state,
            clients: BTreeMap::new(),
            tries: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// Runs passes until the task is dropped, which kills every client.
    pub async fn run(mut self) {
        loop {
            self.pass().await;
            tokio::time::sleep(PERIOD).await;
        }
    }

    /// One check → plan → act → publish pass.
    pub async fn pass(&mut self) {
        let desired = self.state.desired();
        let wanted = self.wanted(&desired);
        self.check(now_ms()).await;
        let running: BTreeMap<WorkloadId, Wanted> = self
            .clients
            .iter()
            .map(|(id, c)| (*id, c.wanted.clone()))
            .collect();
        let now = now_ms();
        self.errors.retain(|id, _| wanted.contains_key(id));
        for step in plan(
            &wanted,
            &running,
            &mut self.tries,
            now,
            &self.parts.schedule,
        ) {
            match step {
                Step::Stop(id) => {
                    if self.clients.remove(&id).is_some() {
                        tracing::info!(job = id.job, replica = id.replica, "tunnel client stopped");
                    }
                }
                Step::Start(id) => {
                    if let (Some(want), Some(workload)) = (wanted.get(&id), desired.get(&id)) {
                        self.start(id, want, workload, now);
                    }
                }
            }
        }
        self.publish(&wanted);
    }

    /// The clients the running replicas want: those whose job has a tunnel and whose first
    /// port has a host port.
    fn wanted(
        &self,
        desired: &BTreeMap<WorkloadId, DesiredWorkload>,
    ) -> BTreeMap<WorkloadId, Wanted> {
        let pids = self
            .state
            .pids
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        desired
            .iter()
            .filter(|(id, _)| pids.contains_key(id))
            .filter_map(|(id, w)| {
                let tunnel = w.spec.tunnel.clone()?;
                let first = w.spec.ports.first()?;
                let local_port = *w.host_ports.get(&first.container_port)?;
                Some((
                    *id,
                    Wanted {
                        tunnel,
                        local_port,
                        revision: w.spec.revision.clone(),
                    },
                ))
            })
            .collect()
    }

    /// Starts the client of `id`; a failure is recorded for the schedule and the status.
    fn start(&mut self, id: WorkloadId, want: &Wanted, workload: &DesiredWorkload, now: u64) {
        let token = match &workload.spec.secrets {
            Some(sealed) => match sealed.open(&self.parts.identity, id.job) {
                Ok(secrets) => secrets.tunnel_token,
                Err(e) => {
                    self.fail(id, e.to_string(), now);
                    return;
                }
            },
            None => None,
        };
        let path = std::env::var("PATH").ok();
        let started = launch(
            &want.tunnel.provider,
            &self.parts.local_host,
            want.local_port,
            token.as_deref(),
            &self.parts.binaries,
            path.as_deref(),
        )
        .and_then(|line| Running::spawn(&line, &want.tunnel.provider, now));
        match started {
            Ok(running) => {
                self.parts.metrics.tunnel_starts.inc();
                tracing::info!(
                    job = id.job,
                    replica = id.replica,
                    tunnel = want.tunnel.name,
                    local_port = want.local_port,
                    pid = running.child.id(),
                    "tunnel client started"
                );
                self.clients.insert(
                    id,
                    Client {
                        wanted: want.clone(),
                        running,
                        next_probe_ms: now,
                        probe_failures: 0,
                    },
                );
            }
            Err(e) => self.fail(id, e.to_string(), now),
        }
    }

    /// Records a failure of `id`'s client.
    fn fail(&mut self, id: WorkloadId, reason: String, now: u64) {
        let tries = self.tries.entry(id).or_default();
        tries.failed(now, &self.parts.schedule);
        self.parts.metrics.tunnel_failures.inc();
        let mut reason: String = reason.chars().take(TunnelReport::MAX_ERROR_LEN).collect();
        if tries.spent(&self.parts.schedule) {
            reason.push_str(&format!(
                " (gave up after {} tries; trying again in {} s)",
                self.parts.schedule.max_tries,
                self.parts.schedule.backoff.reset_after_ms / 1000
            ));
        }
        tracing::warn!(
            job = id.job,
            replica = id.replica,
            failures = tries.failures,
            reason,
            "tunnel client failed; restarting after backoff"
        );
        self.errors.insert(id, reason);
    }

    /// Finds clients that exited, never announced a URL, or whose public endpoint stopped
    /// answering; they are dropped (killed) and their failure recorded.
    async fn check(&mut self, now: u64) {
        let mut failed = Vec::new();
        let mut probes = Vec::new();
        for (id, client) in &mut self.clients {
            let output = client.running.output();
            match client.running.child.try_wait() {
                Ok(Some(status)) => {
                    let said = output
                        .last_line
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default();
                    failed.push((*id, format!("the client exited ({status}){said}")));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    failed.push((*id, format!("cannot watch the client: {e}")));
                    continue;
                }
            }
            match (&output.url, &client.wanted.tunnel.provider) {
                (None, _) if now.saturating_sub(client.running.started_ms) > CONNECT_WITHIN_MS => {
                    let said = output
                        .last_line
                        .map(|l| format!("; last said: {l}"))
                        .unwrap_or_default();
                    failed.push((
                        *id,
                        format!("no public URL within {} s{said}", CONNECT_WITHIN_MS / 1000),
                    ));
                }
                (Some(url), TunnelClient::Bore { .. }) if now >= client.next_probe_ms => {
                    client.next_probe_ms = now + PROBE_EVERY_MS;
                    probes.push((*id, url.clone()));
                }
                _ => {}
            }
        }
        let results =
            futures_util::future::join_all(probes.into_iter().map(|(id, url)| async move {
                let reached =
                    tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(&url))
                        .await
                        .is_ok_and(|c| c.is_ok());
                (id, url, reached)
            }))
            .await;
        for (id, url, reached) in results {
            let Some(client) = self.clients.get_mut(&id) else {
                continue;
            };
            if reached {
                client.probe_failures = 0;
                continue;
            }
            client.probe_failures += 1;
            if client.probe_failures >= PROBE_FAILURES {
                failed.push((
                    id,
                    format!("{url} did not answer {PROBE_FAILURES} checks in a row"),
                ));
            }
        }
        for (id, reason) in failed {
            self.clients.remove(&id);
            self.fail(id, reason, now);
        }
        for (id, client) in &self.clients {
            if client.running.output().url.is_some() && client.probe_failures == 0 {
                if let Some(tries) = self.tries.get_mut(id) {
                    tries.healthy(now, &self.parts.schedule);
                }
                self.errors.remove(id);
            }
        }
    }

    /// Publishes each wanted client's state, and the metrics.
    fn publish(&self, wanted: &BTreeMap<WorkloadId, Wanted>) {
        let mut up = 0;
        let reports: BTreeMap<WorkloadId, TunnelReport> = wanted
            .keys()
            .map(|id| {
                let client = self.clients.get(id);
                let url = client.and_then(|c| c.running.output().url);
                let is_up = url.is_some() && client.is_some_and(|c| c.probe_failures == 0);
                up += i64::from(is_up);
                let report = TunnelReport {
                    url,
                    up: is_up,
                    restarts: self.tries.get(id).map_or(0, |t| t.failures),
                    error: self.errors.get(id).cloned(),
                };
                (*id, report)
            })
            .collect();
        let total = i64::try_from(reports.len()).unwrap_or(i64::MAX);
        for (state, count) in [("up", up), ("down", total - up)] {
            self.parts
                .metrics
                .tunnel_clients
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(count);
        }
        if let Ok(mut table) = self.parts.table.lock() {
            *table = reports;
        }
    }
}
