//! Sends each project's service table (see [`crate::decide::service_table`]) to the nodes that
//! run its replicas, every pass it is due: the jobs of each project in the store, linked to
//! the nodes' reports through each job's on-chain id (as the pass's job visits found it, so no
//! job's status is decoded again).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy_primitives::Address;

use r1_crds::api::object::{ObjectKey, StoredObject};
use r1_crds::job::Protocol;
use r1_crds::manifest::Kind;
use r1_protocol::services::{ServicePort, ServiceTable};

use crate::decide::service_table::{JobFacts, project_jobs, recipients};

use crate::oracle::runtime::{ChainIds, Oracle};

/// A job of a project as the store holds it: name, chain id, named TCP ports.
type StoredJob = (String, Option<u64>, Vec<ServicePort>);

impl Oracle {
    /// Sends the service table of every project of the stored `jobs` where it is due at
    /// `now_ms`, each job linked to its on-chain id by `chain_ids` (the pass's job outcomes).
    pub(crate) async fn send_service_tables(
        &self,
        jobs: &[Arc<StoredObject>],
        chain_ids: &ChainIds,
        now_ms: u64,
    ) {
        let mut projects: BTreeMap<(String, String), Vec<StoredJob>> = BTreeMap::new();
        for object in jobs {
            let Some(spec) = object.spec.job() else {
                continue;
            };
            let key = object.key();
            let chain_job = chain_ids.get(&key).copied();
            let ports = spec
                .ports
                .iter()
                .filter(|p| p.protocol == Protocol::Tcp)
                .filter_map(|p| {
                    Some(ServicePort {
                        name: p.name.clone()?,
                        port: u16::try_from(p.container_port).ok()?,
                    })
                })
                .collect();
            projects
                .entry((key.namespace.clone(), spec.project_ref.name.clone()))
                .or_default()
                .push((key.name, chain_job, ports));
        }
        // Tables are worked out under the registry's lock, then signed and sent without it:
        // heartbeats wait on that lock, and a project of many jobs means many messages.
        let mut tables = Vec::with_capacity(projects.len());
        // When each recipient's agent last started: a restarted agent has lost its tables.
        let mut started: BTreeMap<Address, u64> = BTreeMap::new();
        {
            let registry = self.registry.lock().await;
            for ((namespace, project), members) in projects {
                let facts: Vec<JobFacts<'_>> = members
                    .into_iter()
                    .map(|(job, chain_job, ports)| JobFacts {
                        name: job,
                        chain_job,
                        ports,
                        reports: chain_job
                            .map(|id| registry.reports_of(id))
                            .unwrap_or_default(),
                    })
                    .collect();
                let key = ObjectKey::new(Kind::Project, namespace.clone(), project.clone());
                let policy = match self.store.get(&key) {
                    Ok(Some(stored)) => {
                        stored.spec.project().and_then(|p| p.network_policy.clone())
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(project = %key, error = %e, "cannot read the project");
                        continue;
                    }
                };
                let table = project_jobs(&facts, policy.as_ref());
                let nodes = recipients(&table);
                for node in &nodes {
                    if let Some(record) = registry.get(node) {
                        let uptime_ms = record.heartbeat.uptime_s.saturating_mul(1_000);
                        started.insert(*node, record.last_ms.saturating_sub(uptime_ms));
                    }
                }
                tables.push((namespace, project, table, nodes));
            }
        }
        let mut schedule = self.service_tables.lock().await;
        let mut live = BTreeSet::new();
        for (namespace, project, table, nodes) in tables {
            let name = format!("{namespace}/{project}");
            live.insert(name.clone());
            if !schedule.due(&name, &table, &nodes, now_ms, |n| started.get(n).copied()) {
                continue;
            }
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
            schedule.sent(&name, table, nodes, now_ms);
        }
        schedule.retain(&live);
    }
}
