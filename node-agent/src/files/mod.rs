//! R1FS on this node: the block store under `<dataDir>/r1fs`, served to roster peers and read
//! through two APIs.
//!
//! * [`service`]: [`Files`], adds, pins, fetches from peers, reads back; every API calls it.
//! * [`net`]: the `r1fs` protocol on the peer-to-peer layer: requests, provider discovery,
//!   answers to peers.
//! * [`grpc`]: the `R1fs` service of the local gRPC API, for `r1ctl fs`.
//! * [`workload_api`]: the HTTP API inside every running container, for workloads.
//! * [`metrics`]: the store's fill, adds, fetches and block requests, for Prometheus.

pub mod grpc;
pub mod metrics;
pub mod net;
pub mod service;
pub mod workload_api;

pub use net::Net;
pub use service::{AddedFile, Files, FilesError, LOCAL_OWNER, parse_cid, parse_key};
