//! Running workloads on containerd: the client, images in its store, commands run inside
//! containers, the OCI runtime spec, and cgroup readings.

pub mod cgroup;
pub mod containerd;
pub mod exec;
pub mod images;
pub mod spec;
