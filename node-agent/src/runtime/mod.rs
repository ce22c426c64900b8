//! Running workloads on containerd: the client, the OCI runtime spec, and cgroup readings.

pub mod cgroup;
pub mod containerd;
pub mod spec;
