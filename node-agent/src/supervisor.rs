//! The supervisor: on every pass (each second, and at once when a command changed the desired
//! set) it observes containerd, asks [`reconcile::plan`] what to do, does it, and publishes
//! the resulting workload states. Everything it knows comes from observation, so a restarted
//! agent re-attaches to running containers and a restarted containerd is simply observed again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r1_protocol::Identity;
use r1_protocol::messages::{
    JobStatusReport, PortMapping, PortProtocol, WorkloadId, WorkloadReport, WorkloadSpec,
    WorkloadState,
};
use r1_protocol::now_ms;
use r1_protocol::secrets::{PullCredentials, WorkloadSecrets};
use r1_registry::{Credentials, ImageName};
use tokio::sync::mpsc;

use crate::config::{PortsConfig, SandboxConfig};
use crate::health::{self, HealthTable, ProbeTarget};
use crate::images::puller::{PullStatus, Puller};
use crate::images::stored_name;
use crate::logs::LogDir;
use crate::metrics::{Metrics, StateLabel};
use crate::network::Networks;
use crate::ports::{HostPort, PortForwarder};
use crate::reconcile::{self, Action, Backoff, Crashes, Observed, TaskState};
use crate::resources::Gpus;
use crate::runtime::cgroup;
use crate::runtime::containerd::{
    Containerd, REVISION_LABEL, ResolvedImage, RuntimeError, WORKLOAD_LABEL,
};
use crate::runtime::spec::{self, Isolation, SpecInput};
use crate::sandbox;
use crate::scratch::ScratchDisks;
use crate::services::ServiceMesh;
use crate::state::NodeState;
use crate::store::DesiredWorkload;
use crate::tunnels::TunnelTable;

/// How long a removed container gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Time between passes when nothing wakes the supervisor.
const PERIOD: Duration = Duration::from_secs(1);

/// What the supervisor needs besides the shared state.
pub struct SupervisorParts {
    /// containerd connection.
    pub containerd: Containerd,
    /// Workload log files.
    pub logs: LogDir,
    /// Directory of OCI image archives.
    pub images_dir: PathBuf,
    /// Pulls of images from registries.
    pub puller: Puller,
    /// The node's key, which opens the pull secrets sealed to it.
    pub identity: Identity,
    /// Restart delays.
    pub backoff: Backoff,
    /// Root of the cgroup hierarchies (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// The node's GPUs.
    pub gpus: Gpus,
    /// Host port forwarding.
    pub forwarder: PortForwarder,
    /// Variables the node sets in every workload (where its R1FS API is).
    pub node_env: Vec<(String, String)>,
    /// Status reports to publish.
    pub status: mpsc::Sender<JobStatusReport>,
    /// Each replica's tunnel client, as the tunnel loop publishes it.
    pub tunnels: TunnelTable,
    /// Calls between a project's jobs; gives each replica its `/etc/hosts`.
    pub services: ServiceMesh,
    /// Each replica's interface beyond loopback.
    pub networks: Networks,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// How workloads are confined.
    pub sandbox: SandboxConfig,
    /// The node's host ports (fixed host ports outside its range are refused).
    pub ports: PortsConfig,
    /// Workloads' scratch disks.
    pub scratch: ScratchDisks,
}

/// Drives containerd towards the desired workloads.
pub struct Supervisor {
    parts: SupervisorParts,
    state: Arc<NodeState>,
    crashes: BTreeMap<WorkloadId, Crashes>,
    stops_recorded: BTreeSet<String>,
    images: BTreeMap<String, ResolvedImage>,
    imported: BTreeSet<(PathBuf, std::time::SystemTime, u64)>,
    port_failures: BTreeMap<WorkloadId, String>,
    /// Workloads that cannot start yet: `pulling` or `imagePullBackOff`, or `failed` for want
    /// of their secrets, this pass.
    pulls: BTreeMap<WorkloadId, WorkloadState>,
    /// Each workload's secrets, opened once per revision with the node's key.
    opened: BTreeMap<WorkloadId, (String, WorkloadSecrets)>,
    known: BTreeSet<WorkloadId>,
    health: HealthTable,
    probers: BTreeMap<WorkloadId, (u32, tokio::task::JoinHandle<()>)>,
    removing: Arc<Mutex<BTreeSet<String>>>,
}

impl Supervisor {
    /// A supervisor over `state`.
    pub fn new(parts: SupervisorParts, state: Arc<NodeState>) -> Self {
        Self {
            parts,
            state,
            crashes: BTreeMap::new(),
            stops_recorded: BTreeSet::new(),
            images: BTreeMap::new(),
            imported: BTreeSet::new(),
            port_failures: BTreeMap::new(),
            pulls: BTreeMap::new(),
            opened: BTreeMap::new(),
            known: BTreeSet::new(),
            health: HealthTable::default(),
            probers: BTreeMap::new(),
            removing: Arc::default(),
        }
    }

    /// Runs passes forever.
    pub async fn run(mut self) {
        loop {
            let started = Instant::now();
            if let Err(e) = self.pass().await {
                self.parts.metrics.reconcile_errors.inc();
                if e.is_unavailable() {
                    tracing::warn!("containerd unavailable, workloads left as they are: {e}");
                } else {
                    tracing::error!("reconcile pass failed: {e}");
                }
            }
            self.parts
                .metrics
                .reconcile_seconds
                .observe(started.elapsed().as_secs_f64());
            tokio::select! {
                () = self.state.wake.notified() => {}
                () = tokio::time::sleep(self.next_pause()) => {}
            }
        }
    }

    /// Time until the next pass: the period, or less when a restart falls due sooner.
    fn next_pause(&self) -> Duration {
        let now = now_ms();
        self.crashes
            .values()
            .map(|c| c.next_start_ms)
            .filter(|&at| at > now)
            .min()
            .map_or(PERIOD, |at| Duration::from_millis(at - now).min(PERIOD))
    }

    /// One observe → plan → act → report pass.
    pub async fn pass(&mut self) -> Result<(), RuntimeError> {
        let desired = self.state.desired();
        let wanted: BTreeMap<WorkloadId, String> = desired
            .iter()
            .map(|(&id, w)| (id, reconcile::container_id(id, &w.spec.revision)))
            .collect();
        let observed = self.observe(&wanted).await?;
        self.crashes.retain(|id, _| desired.contains_key(id));
        self.opened.retain(|id, _| desired.contains_key(id));
        let images: BTreeSet<String> = desired
            .values()
            .map(|w| self.stored_name(&w.spec))
            .collect();
        // An image no workload needs may be removed by the collection: look it up again.
        self.images.retain(|image, _| images.contains(image));
        self.parts.puller.needed(images, now_ms());
        let actions = reconcile::plan(&wanted, &observed, &self.crashes, now_ms());
        let acted = !actions.is_empty();
        self.pulls.clear();
        for action in &actions {
            if let Action::Remove { container } = action {
                self.stop_routing(container, &observed);
            }
        }
        for action in actions {
            self.act(action, &desired, &wanted).await;
        }
        let observed = if acted {
            self.observe(&wanted).await?
        } else {
            observed
        };
        self.publish_pids(&observed);
        self.sweep_scratch(&wanted, &observed);
        self.sync_probers(&desired, &wanted);
        let ports: BTreeMap<WorkloadId, BTreeMap<HostPort, u16>> = desired
            .iter()
            .filter(|(_, w)| self.admit(w).is_ok())
            .map(|(&id, w)| {
                let exposed = [PortProtocol::Tcp, PortProtocol::Udp]
                    .into_iter()
                    .flat_map(|protocol| {
                        w.host_ports_of(protocol)
                            .iter()
                            .map(move |(&container, &host)| ((protocol, host), container))
                    })
                    .collect();
                (id, exposed)
            })
            .collect();
        self.port_failures.clear();
        for (id, error) in self.parts.forwarder.sync(&ports).await {
            self.port_failures.insert(id, error.to_string());
        }
        let now = r1_protocol::now_ms();
        for container in wanted.values() {
            if let Err(e) = self.parts.logs.rotate_if_large(container, now) {
                tracing::warn!(container, "log rotation failed: {e}");
            }
        }
        if let Err(e) = self.parts.logs.retired().collect(now) {
            tracing::warn!("retired logs not collected: {e}");
        }
        self.report(&desired, &wanted, &observed).await;
        Ok(())
    }

    async fn observe(
        &mut self,
        wanted: &BTreeMap<WorkloadId, String>,
    ) -> Result<Vec<Observed>, RuntimeError> {
        let now = now_ms();
        let removing = self.removing.lock().map(|r| r.clone()).unwrap_or_default();
        let containers: Vec<_> = self
            .parts
            .containerd
            .list()
            .await?
            .into_iter()
            .filter(|c| !removing.contains(&c.id))
            .collect();
        self.stops_recorded
            .retain(|id| containers.iter().any(|c| &c.id == id));
        let by_container: BTreeMap<&str, WorkloadId> =
            wanted.iter().map(|(&id, c)| (c.as_str(), id)).collect();
        let mut observed = Vec::with_capacity(containers.len());
        for container in containers {
            let workload = container
                .labels
                .get(WORKLOAD_LABEL)
                .and_then(|v| reconcile::parse_workload_label(v));
            if let Some(&id) = by_container.get(container.id.as_str()) {
                let history = self.crashes.entry(id).or_default();
                match container.task {
                    TaskState::Running { .. } => {
                        self.stops_recorded.remove(&container.id);
                        history.running(now, &self.parts.backoff);
                    }
                    TaskState::Stopped { exit_status } => {
                        if self.stops_recorded.insert(container.id.clone()) {
                            let path =
                                spec::cgroup_path(self.parts.containerd.namespace(), &container.id);
                            let oom = cgroup::oom_kills(&self.parts.cgroup_root, &path)
                                .is_some_and(|n| n > 0);
                            history.exited(exit_status, oom, now, &self.parts.backoff);
                            tracing::warn!(
                                container = container.id,
                                exit_status,
                                oom,
                                restarts = history.restarts,
                                "workload exited; restarting after backoff"
                            );
                        }
                    }
                    _ => {}
                }
            }
            observed.push(Observed {
                container: container.id,
                workload,
                task: container.task,
            });
        }
        Ok(observed)
    }

    async fn act(
        &mut self,
        action: Action,
        desired: &BTreeMap<WorkloadId, DesiredWorkload>,
        wanted: &BTreeMap<WorkloadId, String>,
    ) {
        match action {
            Action::Remove { container } => self.spawn_removal(container),
            Action::Create { workload }
            | Action::Start { workload }
            | Action::Restart { workload } => {
                let (Some(w), Some(container)) = (desired.get(&workload), wanted.get(&workload))
                else {
                    return;
                };
                if self.is_removing(container) {
                    return;
                }
                let started = Instant::now();
                let result = match action {
                    Action::Create { .. } => self.create(w, container).await,
                    _ => self.restart(w, container).await,
                };
                match result {
                    Ok(pid) => {
                        self.stops_recorded.remove(container);
                        self.parts
                            .metrics
                            .container_start_seconds
                            .observe(started.elapsed().as_secs_f64());
                        tracing::info!(container, pid, "workload started");
                    }
                    Err(e) if e.pull_state().is_some() => {
                        if let Some(state) = e.pull_state() {
                            self.pulls.insert(workload, state);
                        }
                    }
                    Err(e) => {
                        tracing::error!(container, "cannot start workload: {e}");
                        if e.is_missing_snapshot() {
                            if let Err(e) =
                                self.parts.containerd.remove(container, STOP_GRACE).await
                            {
                                tracing::error!(
                                    container,
                                    "cannot remove half-created container: {e}"
                                );
                            }
                        }
                        self.crashes.entry(workload).or_default().failed(
                            e.to_string(),
                            now_ms(),
                            &self.parts.backoff,
                        );
                    }
                }
            }
        }
    }

    /// Whether `container` is being removed: it is started again once it is gone.
    fn is_removing(&self, container: &str) -> bool {
        self.removing
            .lock()
            .is_ok_and(|removing| removing.contains(container))
    }

    /// Sends no more connections of a host port to `container`, which is about to be stopped:
    /// its workload leaves the pid table the port forwarders read, if the pid there is this
    /// container's (a newer revision of the same workload keeps its own). Without this, a
    /// connection made between the stop signal and the next pass reaches a dying process.
    fn stop_routing(&self, container: &str, observed: &[Observed]) {
        let running = observed
            .iter()
            .find(|o| o.container == container)
            .and_then(|o| match (o.workload, o.task) {
                (Some(id), TaskState::Running { pid }) => Some((id, pid)),
                _ => None,
            });
        let Some((id, pid)) = running else {
            return;
        };
        if let Ok(mut pids) = self.state.pids.lock()
            && pids.get(&id) == Some(&pid)
        {
            pids.remove(&id);
        }
    }

    /// Stops and removes `container` in the background, so a workload that takes its whole
    /// stop grace holds up neither other starts nor the reports; until it is gone, passes do
    /// not see it. A removal cut short (agent stopped) is simply planned again.
    fn spawn_removal(&self, container: String) {
        if let Ok(mut removing) = self.removing.lock()
            && !removing.insert(container.clone())
        {
            return;
        }
        tracing::info!(container, "removing container that is no longer wanted");
        let containerd = self.parts.containerd.clone();
        let logs = self.parts.logs.clone();
        let scratch = self.parts.scratch.clone();
        let services = self.parts.services.clone();
        let networks = self.parts.networks.clone();
        let removing = self.removing.clone();
        let state = self.state.clone();
        tokio::spawn(async move {
            match containerd.remove(&container, STOP_GRACE).await {
                Ok(()) => {
                    if let Err(e) = logs.retire(&container, r1_protocol::now_ms()) {
                        tracing::warn!(container, "cannot retire logs: {e}");
                    }
                    if let Err(e) = scratch.remove(&container) {
                        tracing::warn!(container, "cannot delete scratch disk: {e}");
                    }
                    if let Some(workload) = reconcile::container_workload(&container)
                        && state.desired_one(workload).is_none()
                    {
                        services.forget(workload);
                    }
                    let name = container.clone();
                    match tokio::task::spawn_blocking(move || networks.detach(&name)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(container, "cannot release the network: {e}"),
                        Err(e) => tracing::warn!(container, "the network was not released: {e}"),
                    }
                }
                Err(e) => tracing::error!(container, "cannot remove container: {e}"),
            }
            if let Ok(mut removing) = removing.lock() {
                removing.remove(&container);
            }
            state.wake.notify_one();
        });
    }

    /// Deletes the scratch disks of containers that are neither wanted, nor there, nor being
    /// removed (a creation that failed half-way, then the workload was stopped).
    fn sweep_scratch(&self, wanted: &BTreeMap<WorkloadId, String>, observed: &[Observed]) {
        let mut keep: BTreeSet<String> =
            self.removing.lock().map(|r| r.clone()).unwrap_or_default();
        keep.extend(wanted.values().cloned());
        keep.extend(observed.iter().map(|o| o.container.clone()));
        for container in self.parts.scratch.containers() {
            if !keep.contains(&container) {
                tracing::info!(
                    container,
                    "deleting the scratch disk of a container that is gone"
                );
                if let Err(e) = self.parts.scratch.remove(&container) {
                    tracing::warn!(container, "cannot delete scratch disk: {e}");
                }
            }
        }
    }

    /// How `w` is confined on this node, or why the node refuses to run it.
    fn admit(&self, w: &DesiredWorkload) -> Result<Isolation, RuntimeError> {
        sandbox::admit(
            &w.spec,
            w.host_ports.values().chain(w.udp_host_ports.values()),
            &self.parts.sandbox,
            &self.parts.ports,
        )
        .map_err(|reason| RuntimeError::Sandbox { reason })
    }

    /// `w`'s confinement with its scratch disk, made and mounted unless it is already.
    async fn isolation(
        &self,
        w: &DesiredWorkload,
        container: &str,
    ) -> Result<Isolation, RuntimeError> {
        let mut isolation = self.admit(w)?;
        let owner = isolation.id_map.map_or(0, |map| map.host_base);
        isolation.scratch = self
            .parts
            .scratch
            .ensure(container, owner)
            .await
            .map_err(|e| RuntimeError::Sandbox {
                reason: e.to_string(),
            })?;
        Ok(isolation)
    }

    async fn create(&mut self, w: &DesiredWorkload, container: &str) -> Result<u32, RuntimeError> {
        self.admit(w)?;
        let secrets = self.secrets(&w.spec)?;
        let image = self.image(&w.spec).await?;
        let isolation = self.isolation(w, container).await?;
        let mut devices = Vec::new();
        if w.spec.gpu > 0 {
            let count = usize::try_from(w.spec.gpu).unwrap_or(usize::MAX);
            devices.extend(self.parts.gpus.devices.iter().take(count).cloned());
            devices.extend(self.parts.gpus.control.iter().cloned());
        }
        let mut spec = spec::runtime_spec(&SpecInput {
            container_id: container,
            namespace: self.parts.containerd.namespace(),
            workload: &w.spec,
            image: &image.config.config,
            devices: &devices,
            secret_env: &secrets.env,
            node_env: &self.parts.node_env,
            isolation: &isolation,
        })?;
        let hosts = self
            .parts
            .services
            .hosts_file(w.spec.id)
            .map_err(|(path, e)| RuntimeError::HostFile {
                path,
                reason: e.to_string(),
            })?;
        spec::mount_read_only(&mut spec, &hosts, "/etc/hosts");
        let labels = BTreeMap::from([
            (
                WORKLOAD_LABEL.to_owned(),
                reconcile::workload_label(w.spec.id),
            ),
            (REVISION_LABEL.to_owned(), w.spec.revision.clone()),
        ]);
        self.parts
            .containerd
            .create_container(container, &image, &spec, labels, isolation.id_map)
            .await?;
        self.start_task(w, container, &isolation).await
    }

    /// Creates `container`'s task, gives its namespace its interface and egress rules, then
    /// runs it, so the program finds its network from its first instruction; unless `w` asks
    /// for none (a replica left without them is logged as an error and runs on loopback only).
    async fn start_task(
        &self,
        w: &DesiredWorkload,
        container: &str,
        isolation: &Isolation,
    ) -> Result<u32, RuntimeError> {
        let containerd = &self.parts.containerd;
        let pid = containerd
            .create_task(
                container,
                &self.parts.logs.path(container),
                isolation.id_map,
            )
            .await?;
        if !w.spec.security.is_some_and(|asked| asked.no_egress) {
            let networks = self.parts.networks.clone();
            let name = container.to_owned();
            match tokio::task::spawn_blocking(move || networks.attach(&name, pid)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(container, "the replica has no network beyond loopback: {e}")
                }
                Err(e) => {
                    tracing::error!(container, "the replica's network was not attached: {e}")
                }
            }
        }
        containerd.start_created_task(container).await
    }

    /// Starts `container` again; its scratch disk is mounted again first if it is not (after
    /// a reboot of the host), so the container never writes to an unmounted directory.
    async fn restart(&mut self, w: &DesiredWorkload, container: &str) -> Result<u32, RuntimeError> {
        let isolation = self.isolation(w, container).await?;
        self.parts.containerd.delete_task(container).await?;
        self.start_task(w, container, &isolation).await
    }

    /// The image `workload` runs: from the cache, from containerd, imported from the node's
    /// archives, or else pulled in the background (an error saying how far the pull is, or
    /// why it failed, until it is stored). An image pulled with credentials is stored, and
    /// found, under a name scoped to them ([`stored_name`]).
    async fn image(&mut self, workload: &WorkloadSpec) -> Result<ResolvedImage, RuntimeError> {
        let credentials = self.credentials(workload)?;
        let name = stored_name(&workload.image, credentials.as_ref());
        if let Some(image) = self.images.get(&name) {
            return Ok(image.clone());
        }
        let mut found = self.parts.containerd.resolve_image(&name).await?;
        if found.is_none() && credentials.is_none() {
            self.import_new_archives().await;
            found = self.parts.containerd.resolve_image(&name).await?;
        }
        let pulling = |percent| RuntimeError::ImagePulling {
            reference: workload.image.clone(),
            percent,
        };
        let image = match found {
            Some(image) => image,
            None => match self
                .parts
                .puller
                .status(&workload.image, credentials, now_ms())
            {
                PullStatus::Done => {
                    self.parts.puller.forget(&name);
                    let stored = self.parts.containerd.resolve_image(&name).await?;
                    stored.ok_or_else(|| pulling(0))?
                }
                PullStatus::Pulling { percent } => return Err(pulling(percent)),
                PullStatus::BackOff { reason } => return Err(RuntimeError::ImagePull { reason }),
            },
        };
        self.parts.puller.forget(&name);
        self.images.insert(name, image.clone());
        Ok(image)
    }

    /// The name `workload`'s image is stored under (see [`stored_name`]).
    fn stored_name(&mut self, workload: &WorkloadSpec) -> String {
        let credentials = self.credentials(workload).ok().flatten();
        stored_name(&workload.image, credentials.as_ref())
    }

    /// `workload`'s secrets, opened with this node's key (once per revision); none when it
    /// carries none, an error the workload reports when they do not open.
    fn secrets(&mut self, workload: &WorkloadSpec) -> Result<WorkloadSecrets, RuntimeError> {
        let Some(sealed) = &workload.secrets else {
            return Ok(WorkloadSecrets::default());
        };
        if let Some((revision, secrets)) = self.opened.get(&workload.id)
            && *revision == workload.revision
        {
            return Ok(secrets.clone());
        }
        let secrets = sealed
            .open(&self.parts.identity, workload.id.job)
            .map_err(|e| RuntimeError::Secrets {
                reason: e.to_string(),
            })?;
        self.opened
            .insert(workload.id, (workload.revision.clone(), secrets.clone()));
        Ok(secrets)
    }

    /// The registry credentials `workload` carries, opened with this node's key; an error
    /// the workload reports when they cannot be opened or are for another registry.
    fn credentials(
        &mut self,
        workload: &WorkloadSpec,
    ) -> Result<Option<Credentials>, RuntimeError> {
        let refuse = |reason: String| RuntimeError::ImagePull {
            reason: format!("image pull failed: {reason}"),
        };
        let Some(auth) = self
            .secrets(workload)
            .map_err(|e| refuse(e.to_string()))?
            .registry
        else {
            return Ok(None);
        };
        let registry = ImageName::parse(&workload.image)
            .map(|name| name.registry)
            .map_err(|e| refuse(e.to_string()))?;
        if registry != auth.registry {
            return Err(refuse(format!(
                "the pull secret is for {}, the image is on {registry}",
                auth.registry
            )));
        }
        Ok(Some(match auth.credentials {
            PullCredentials::Basic { username, password } => {
                Credentials::Basic { username, password }
            }
            PullCredentials::Token { token } => Credentials::Token(token),
        }))
    }

    async fn import_new_archives(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.parts.images_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "tar") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let stamp = (
                path.clone(),
                meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                meta.len(),
            );
            if self.imported.contains(&stamp) {
                continue;
            }
            match self.parts.containerd.import_archive(&path).await {
                Ok(names) => {
                    tracing::info!(archive = %path.display(), ?names, "imported images");
                    self.imported.insert(stamp);
                }
                Err(e) => tracing::warn!(archive = %path.display(), "cannot import: {e}"),
            }
        }
    }

    /// Keeps one prober per running workload that has a health check, restarted when its
    /// container's pid changes; forgets verdicts of workloads that stopped running.
    fn sync_probers(
        &mut self,
        desired: &BTreeMap<WorkloadId, DesiredWorkload>,
        wanted: &BTreeMap<WorkloadId, String>,
    ) {
        let pids = self
            .state
            .pids
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        self.probers.retain(|id, (pid, task)| {
            let keep = pids.get(id) == Some(pid);
            if !keep {
                task.abort();
            }
            keep
        });
        if let Ok(mut table) = self.health.lock() {
            table.retain(|id, _| self.probers.contains_key(id));
        }
        for (id, w) in desired {
            let (Some(spec), Some(&pid), Some(container)) =
                (&w.spec.health, pids.get(id), wanted.get(id))
            else {
                continue;
            };
            if !self.probers.contains_key(id) {
                let target = ProbeTarget {
                    pid,
                    container: container.clone(),
                    containerd: self.parts.containerd.clone(),
                };
                let state = self.state.clone();
                let task = health::spawn_prober(
                    *id,
                    target,
                    spec.clone(),
                    self.health.clone(),
                    Arc::new(move || state.wake.notify_one()),
                );
                self.probers.insert(*id, (pid, task));
            }
        }
    }

    fn publish_pids(&self, observed: &[Observed]) {
        let running: BTreeMap<WorkloadId, u32> = observed
            .iter()
            .filter_map(|o| match (o.workload, o.task) {
                (Some(id), TaskState::Running { pid }) => Some((id, pid)),
                _ => None,
            })
            .collect();
        if let Ok(mut pids) = self.state.pids.lock() {
            *pids = running;
        }
    }

    async fn report(
        &mut self,
        desired: &BTreeMap<WorkloadId, DesiredWorkload>,
        wanted: &BTreeMap<WorkloadId, String>,
        observed: &[Observed],
    ) {
        let tasks: BTreeMap<&str, TaskState> = observed
            .iter()
            .map(|o| (o.container.as_str(), o.task))
            .collect();
        let verdicts = self.health.lock().map(|h| h.clone()).unwrap_or_default();
        let tunnels = self
            .parts
            .tunnels
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        let mut reports = BTreeMap::new();
        let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
        for (&id, w) in desired {
            let task = wanted.get(&id).and_then(|c| tasks.get(c.as_str()).copied());
            let mut state = reconcile::workload_state(task, self.crashes.get(&id));
            if let Some(reason) = self.port_failures.get(&id) {
                state = WorkloadState::Failed {
                    reason: reason.clone(),
                };
            } else if let (None, Some(pull)) = (task, self.pulls.get(&id)) {
                state = pull.clone();
            }
            *counts.entry(state.name()).or_default() += 1;
            let image_name = self.stored_name(&w.spec);
            let image_digest = self.images.get(&image_name).map(|i| i.digest.clone());
            reports.insert(
                id,
                WorkloadReport {
                    id,
                    revision: w.spec.revision.clone(),
                    state,
                    image_digest,
                    ports: [PortProtocol::Tcp, PortProtocol::Udp]
                        .into_iter()
                        .flat_map(|protocol| {
                            w.host_ports_of(protocol)
                                .iter()
                                .map(move |(&container_port, &host)| PortMapping {
                                    container_port,
                                    host_port: Some(host),
                                    protocol,
                                })
                        })
                        .collect(),
                    healthy: verdicts.get(&id).copied(),
                    tunnel: tunnels.get(&id).cloned(),
                },
            );
        }
        let states = [
            "starting",
            "pulling",
            "imagePullBackOff",
            "running",
            "restarting",
            "exited",
            "failed",
        ];
        for state in states {
            self.parts
                .metrics
                .workloads
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(counts.get(state).copied().unwrap_or(0));
        }
        let gone: Vec<WorkloadId> = self
            .known
            .iter()
            .filter(|id| !desired.contains_key(id))
            .copied()
            .collect();
        self.known = desired.keys().copied().collect();
        let changed = self.state.replace_reports(reports);
        for report in changed {
            let message = match &report.state {
                WorkloadState::Restarting {
                    reason: Some(reason),
                    ..
                } => format!("{reason}: the workload exceeded its memory limit"),
                _ => String::new(),
            };
            self.send(JobStatusReport {
                workload: report,
                message,
            });
        }
        for id in gone {
            self.send(JobStatusReport::removed(id));
        }
    }

    fn send(&self, report: JobStatusReport) {
        if self.parts.status.try_send(report).is_err() {
            tracing::debug!("status queue full; the next heartbeat carries the state");
        }
    }
}
