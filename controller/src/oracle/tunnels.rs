//! Each `Tunnel`'s status, every pass: the jobs of its namespace whose `tunnelRef` names it,
//! the reports of their replicas (linked through each job's on-chain id, as the pass found
//! it), folded by [`tunnel_status`] and written when it changed.

use r1_crds::TunnelStatus;
use r1_crds::api::object::{StoredObject, timestamp_now};
use r1_crds::manifest::Kind;
use std::sync::Arc;

use crate::decide::tunnel_status::{TunnelUser, tunnel_status};

use crate::oracle::runtime::{ChainIds, Oracle};

impl Oracle {
    /// Writes the status of every stored tunnel, from the stored `jobs` and their `chain_ids`.
    pub(crate) async fn tunnel_statuses(&self, jobs: &[Arc<StoredObject>], chain_ids: &ChainIds) {
        let tunnels = self.store.list(Kind::Tunnel, None).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list tunnels");
            Vec::new()
        });
        if tunnels.is_empty() {
            return;
        }
        let registry = self.registry.lock().await;
        let now = timestamp_now();
        for object in tunnels {
            let key = object.key();
            let users: Vec<(String, Option<u64>)> = jobs
                .iter()
                .filter(|job| job.key().namespace == key.namespace)
                .filter(|job| {
                    job.spec
                        .job()
                        .and_then(|s| s.tunnel_ref.as_ref())
                        .is_some_and(|t| t.name == key.name)
                })
                .map(|job| {
                    let key = job.key();
                    let chain_job = chain_ids.get(&key).copied();
                    (key.name, chain_job)
                })
                .collect();
            let users: Vec<TunnelUser<'_>> = users
                .iter()
                .map(|(name, chain_job)| TunnelUser {
                    job: name,
                    reports: chain_job
                        .map(|id| registry.reports_of(id))
                        .unwrap_or_default(),
                })
                .collect();
            let previous: TunnelStatus = object.status_as().ok().flatten().unwrap_or_default();
            let status = tunnel_status(&previous, &users, &now);
            if status != previous
                && let Err(e) = self.store.update_status(&key, None, &status)
            {
                tracing::warn!(object = %key, error = %e, "cannot write status");
            }
        }
    }
}
