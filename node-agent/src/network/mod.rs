//! Replicas' network beyond loopback.
//!
//! * [`egress`]: what a replica may reach outside its node, as iptables rules (pure).
//! * [`cni`]: the replica's namespace, its CNI bridge interface with NAT, and those rules.
//! * [`namespace`]: sockets opened inside a replica's network namespace.

pub mod cni;
pub mod egress;
pub mod namespace;

pub use cni::{NetworkConfig, NetworkError, Networks};
