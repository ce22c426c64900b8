//! Calls between the jobs of one project, by name (see [`r1_protocol::services`]).
//!
//! * [`book`]: the newest service table of each project, and who may call what (pure).
//! * [`plan`]: the listeners and `/etc/hosts` of each local replica (pure).
//! * [`wire`]: the head of a call forwarded to another node, and its answer.
//! * [`mesh`]: the listeners in replicas' namespaces, the forwarding, the calls peers forward.

pub mod book;
pub mod mesh;
pub mod plan;
pub mod wire;

pub use mesh::{MeshParts, ServiceMesh};
