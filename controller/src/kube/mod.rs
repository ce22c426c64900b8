//! The Kubernetes door: a thin adapter between a cluster's r1 custom resources and the oracle's
//! resource store, so resources applied with `kubectl` or a GitOps tool reach the same reconcile
//! loops as those applied through the Deeploy API.
//!
//! The adapter only mirrors: desired state from the cluster into the store ([`mirror`]), status
//! from the store onto the resources ([`status`]), and deletion in both directions through a
//! finalizer ([`finalizer`]). The oracle's loops read the store and write status there, and
//! finalize deletions once their on-chain cleanup is done. Along the way the adapter tells each
//! job's story as events ([`story`]) and ties jobs and tunnels to their project by owner
//! references ([`cascade`]).
//!
//! * [`controller`]: [`run`], the controllers of the four kinds and their triggers.
//! * [`reconcile`]: one reconcile of one resource.
//! * [`mirror`]: cluster → store, on behalf of the namespace's owner ([`owner`]).
//! * [`signed`]: how mirrored changes reach every oracle, signed with a key the CSP delegated
//!   to this oracle; [`funding`]: paying for mirrored jobs with that key; [`secrets`]: the
//!   Kubernetes Secrets a job names, sealed to the oracles before it is mirrored; [`pinning`]:
//!   image tags pinned to digests once per rollout.
//! * [`status`]: store → cluster, by server-side apply on the status subresource.
//! * [`finalizer`]: the on-chain cleanup finalizer.
//! * [`events`]: Kubernetes events: Warnings for refused resources, the story of jobs.
//! * [`story`]: a job's life as events, from consecutive statuses; the Argo CD health check.
//! * [`cascade`]: owner references from jobs and tunnels to their projects.
//! * [`metrics`], [`settings`], [`resource`], [`error`]: counters, configuration, kind names,
//!   errors.

pub mod cascade;
pub mod controller;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod funding;
pub mod metrics;
pub mod mirror;
pub mod owner;
pub mod pinning;
pub mod reconcile;
pub mod resource;
pub mod secrets;
pub mod settings;
pub mod signed;
pub mod status;
pub mod story;

pub use controller::{run, run_with_metrics};
pub use error::KubeError;
pub use metrics::KubeMetrics;
pub use owner::ClusterView;
pub use reconcile::Reconciler;
pub use settings::KubeSettings;
