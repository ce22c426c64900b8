//! The r1 node agent: turns a host with containerd into a Ratio1 edge node.
//!
//! * [`config`]: the agent's configuration file, environment and flags.
//! * [`store`]: durable desired state and accepted nonces, in RocksDB.
//! * [`commands`]: accepting only signed, fresh, unseen oracle commands addressed to this node.
//! * [`reconcile`]: the pure decision of what to create, start, restart or remove.
//! * [`supervisor`]: observing containerd and carrying the decisions out.
//! * [`runtime`]: containerd (images, containers, tasks) and the OCI runtime spec.
//! * [`sandbox`]: how confined each workload is, and what the node refuses to run;
//!   [`scratch`]: each workload's size-limited scratch disk.
//! * [`oci`]: reading OCI images (index, manifest, config, chain ids).
//! * [`images`]: pulling images from registries in the background, with backoff.
//! * [`ports`]: host ports forwarded into each container's network namespace.
//! * [`health`]: the job's HTTP/TCP health checks, run from inside the container's namespace.
//! * [`logs`]: workload log files, rotation and reading; [`sessions`]: a CSP's logs and exec
//!   sessions on a replica, ordered by an oracle.
//! * [`resources`]: capacity, GPUs and free resources.
//! * [`link`], [`heartbeat`]: the MQTT link, heartbeats and status reports.
//! * [`peers`]: the peer-to-peer layer (`r1-p2p`) the oracles' rosters open to this node.
//! * [`files`]: R1FS on this node: its block store, served to peers and to `r1ctl fs`.
//! * [`kv`]: CSTORE on this node: its replica, replicated to peers, and the Redis port.
//! * [`in_container`]: services on each running container's own loopback (R1FS, CSTORE).
//! * [`tunnels`]: the tunnel clients (bore, cloudflared, ngrok) beside the replicas.
//! * [`services`]: the jobs of a project calling each other by name, across nodes.
//! * [`network`]: each replica's interface beyond loopback (CNI bridge, NAT) and its egress.
//! * [`api`]: the local gRPC API; [`metrics`]: Prometheus metrics.
//! * [`licence`]: the node's signed consent to be linked to its operator's licence.
//! * [`state`]: what the agent's tasks share; [`agent`]: the wiring.

pub mod agent;
pub mod api;
pub mod commands;
pub mod config;
pub mod files;
pub mod health;
pub mod heartbeat;
pub mod images;
pub mod in_container;
pub mod kv;
pub mod licence;
pub mod link;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod oci;
pub mod peers;
pub mod ports;
pub mod reconcile;
pub mod resources;
pub mod runtime;
pub mod sandbox;
pub mod scratch;
pub mod services;
pub mod sessions;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod tunnels;
