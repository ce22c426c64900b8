//! Running workloads on containerd: the client, images in its store, commands run inside
//! containers (for health checks, and attached for exec sessions), the OCI runtime spec with
//! its seccomp profile, image snapshots shifted into a user namespace, and cgroup readings.

pub mod attach;
pub mod cgroup;
pub mod containerd;
pub mod exec;
pub mod images;
pub mod remap;
pub mod seccomp;
pub mod spec;
