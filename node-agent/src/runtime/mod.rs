//! Running workloads on containerd: the client, images in its store, commands run inside
//! containers (for health checks, and attached for exec sessions), the OCI runtime spec with
//! its seccomp profile, image snapshots shifted into a user namespace, cgroup readings, and
//! the leases that keep an import's parts from containerd's garbage collector.

pub mod attach;
pub mod cgroup;
pub mod containerd;
pub mod exec;
pub mod images;
mod lease;
pub mod remap;
pub mod seccomp;
pub mod spec;
