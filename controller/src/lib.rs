//! The r1 oracle controller (`r1-oracle`). The `r1ctl` command-line tool is the crate `r1-ctl`
//! in `ctl/`, which shares only the API's vocabulary with the oracle (`r1_crds::api`,
//! `r1_protocol::api_auth`) and never links this crate.
//!
//! * [`config`]: the oracle's configuration file.
//! * [`decide`]: the oracle's pure decisions (liveness, medians, placement, vote counting,
//!   availability, rollout, closure), free of I/O so every caller decides alike; the epoch clock
//!   they count in is `r1_contracts::epoch`, shared with `r1ctl`.
//! * [`intake`]: the Deeploy API door — the durable resource store, apply/delete as a library
//!   call and the HTTP API, which checks every request's signature — where CSPs' resources
//!   enter the oracle.
//! * [`kube`]: the Kubernetes door — a thin adapter mirroring r1 custom resources into the
//!   resource store and the store's status and deletions back to the cluster.
//! * [`oracle`]: the running oracle — chain, broker, node registry and the ChainDist loops.

pub mod config;
pub mod decide;
pub mod intake;
pub mod kube;
pub mod oracle;
