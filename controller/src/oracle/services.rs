//! Sends each project's service table (see [`crate::decide::service_table`]) to the nodes that
//! run its replicas, every pass it is due: the jobs of each project in the store, linked to
//! the nodes' reports through each job's on-chain id (as the pass's job visits found it, so no
//! job's status is decoded again).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use alloy_primitives::Address;

use r1_crds::api::object::StoredObject;
use r1_crds::job::{DeeployJobSpec, Protocol};
use r1_crds::manifest::Kind;
use r1_protocol::services::{ServicePort, ServiceTable};

use crate::decide::service_table::{JobFacts, Settled, project_jobs, recipients};

use crate::oracle::quiet::{ReportDigests, digest};
use crate::oracle::runtime::{ChainIds, Oracle};

/// A project's jobs (each with its chain id) and the digest of what its table is made from.
#[derive(Default)]
struct Members<'a> {
    jobs: Vec<(&'a StoredObject, Option<u64>)>,
    inputs: u64,
}

/// The named TCP ports `spec` serves.
fn tcp_ports(spec: &DeeployJobSpec) -> Vec<ServicePort> {
    spec.ports
        .iter()
        .filter(|p| p.protocol == Protocol::Tcp)
        .filter_map(|p| {
            Some(ServicePort {
                name: p.name.clone()?,
                port: u16::try_from(p.container_port).ok()?,
            })
        })
        .collect()
}

impl Oracle {
    /// Sends the service table of every project of the stored `jobs` where it is due at
    /// `now_ms`, each job linked to its on-chain id by `chain_ids` (the pass's job outcomes).
    /// A project whose jobs, their reports (`digests`, the pass's) and policy are those its
    /// last table was made from is not made again: only a resend or a recipient's restart
    /// sends that table again.
    pub(crate) async fn send_service_tables(
        &self,
        jobs: &[Arc<StoredObject>],
        chain_ids: &ChainIds,
        digests: &ReportDigests,
        now_ms: u64,
    ) {
        let mut projects: BTreeMap<(String, String), Members<'_>> = BTreeMap::new();
        for object in jobs {
            let Some(spec) = object.spec.job() else {
                continue;
            };
            let key = object.key();
            let chain_job = chain_ids.get(&key).copied();
            let members = projects
                .entry((key.namespace.clone(), spec.project_ref.name.clone()))
                .or_default();
            let job_inputs = digest(&(
                &object.metadata.uid,
                object.metadata.generation,
                chain_job,
                chain_job.map(|id| digests.of(id)),
            ));
            members.inputs = digest(&(members.inputs, job_inputs));
            members.jobs.push((object, chain_job));
        }
        // Without the projects no policy is known, and a table made without its policy would
        // let every job call every other: none is sent this pass.
        let policies: HashMap<(String, String), Arc<StoredObject>> =
            match self.store.list(Kind::Project, None) {
                Ok(projects) => projects
                    .into_iter()
                    .map(|p| ((p.metadata.namespace.clone(), p.metadata.name.clone()), p))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list projects; no service table this pass");
                    return;
                }
            };
        // Tables are worked out under the registry's lock, then signed and sent without it:
        // heartbeats wait on that lock, and a project of many jobs means many messages.
        let mut schedule = self.service_tables.lock().await;
        let mut outgoing = Vec::new();
        let mut live = BTreeSet::new();
        {
            let registry = self.registry.lock().await;
            // When a recipient's agent last started: a restarted agent has lost its tables.
            let started = |node: &Address| {
                registry.get(node).map(|record| {
                    let uptime_ms = record.heartbeat.uptime_s.saturating_mul(1_000);
                    record.last_ms.saturating_sub(uptime_ms)
                })
            };
            for ((namespace, project), members) in projects {
                let name = format!("{namespace}/{project}");
                live.insert(name.clone());
                let stored = policies.get(&(namespace, project.clone()));
                let inputs = digest(&(
                    members.inputs,
                    stored.map(|p| (&p.metadata.uid, p.metadata.generation)),
                ));
                match schedule.settled(&name, inputs, now_ms, started) {
                    Some(Settled::NotDue) => continue,
                    Some(Settled::Resend(table, nodes)) => {
                        outgoing.push((name, project, table, nodes, inputs));
                        continue;
                    }
                    None => {}
                }
                let facts: Vec<JobFacts<'_>> = members
                    .jobs
                    .into_iter()
                    .map(|(object, chain_job)| JobFacts {
                        name: object.metadata.name.clone(),
                        chain_job,
                        ports: object.spec.job().map(tcp_ports).unwrap_or_default(),
                        reports: chain_job
                            .map(|id| registry.reports_of(id))
                            .unwrap_or_default(),
                    })
                    .collect();
                let policy = stored
                    .and_then(|p| p.spec.project())
                    .and_then(|p| p.network_policy.as_ref());
                let table = project_jobs(&facts, policy);
                let nodes = recipients(&table);
                if schedule.due(&name, &table, &nodes, now_ms, started) {
                    outgoing.push((name, project, table, nodes, inputs));
                } else {
                    schedule.same_table(&name, inputs);
                }
            }
        }
        for (name, project, table, nodes, inputs) in outgoing {
            for node in &nodes {
                let message = ServiceTable {
                    target: *node,
                    project: name.clone(),
                    domain: format!("{project}.internal"),
                    issued_ms: now_ms,
                    jobs: table.clone(),
                };
                self.send(*node, &message);
            }
            schedule.sent(&name, table, nodes, now_ms, inputs);
        }
        schedule.retain(&live);
    }
}
