//! The r1 oracle controller and the `r1ctl` command-line tool.
//!
//! * [`config`]: the oracle's configuration file.
//! * [`ctl`]: what `r1ctl` does (validate and price manifests, manage keys, use an oracle's
//!   Deeploy API), as functions the binary and the tests call alike.
//! * [`decide`]: the oracle's pure decisions (epochs, liveness, medians, placement, vote counting,
//!   availability, rollout, closure), free of I/O so every caller decides alike.
//! * [`intake`]: the Deeploy API door — the durable resource store, apply/delete as a library
//!   call, request signing and the HTTP API — where CSPs' resources enter the oracle.
//! * [`kube`]: the Kubernetes door — a thin adapter mirroring r1 custom resources into the
//!   resource store and the store's status and deletions back to the cluster.
//! * [`oracle`]: the running oracle — chain, broker, node registry and the ChainDist loops.

pub mod config;
pub mod ctl;
pub mod decide;
pub mod intake;
pub mod kube;
pub mod oracle;
