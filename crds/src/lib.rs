//! Resource types of r1 — `DeeployProject`, `DeeployJob`, `Tunnel`, `Escrow` in API group
//! `deeploy.ratio1.ai/v1alpha1` — with the validation and pricing every entry path shares.
//!
//! The types derive kube's `CustomResource`, so the CRD YAML in `crds/` is generated from them
//! (`cargo run -p r1-crds --bin crdgen`) and a test fails when the two drift apart. [`api`] is
//! the Deeploy API's vocabulary over these types (kind names, object keys, stored objects, wire
//! bodies), shared by the oracle and `r1ctl`.

pub mod api;
pub mod check;
pub mod common;
pub mod crdgen;
pub mod escrow;
pub mod field;
pub mod job;
pub mod manifest;
pub mod names;
pub mod prescan;
pub mod pricing;
pub mod project;
pub mod quantity;
pub mod structural;
pub mod tunnel;
pub mod usdc;
pub mod validate;

pub use escrow::{Escrow, EscrowSpec, EscrowStatus};
pub use job::{DeeployJob, DeeployJobSpec, DeeployJobStatus};
pub use project::{DeeployProject, DeeployProjectSpec, DeeployProjectStatus};
pub use tunnel::{Tunnel, TunnelSpec, TunnelStatus};
