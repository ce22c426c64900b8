//! What `r1ctl` does, as plain functions over readers and writers so that the binary stays a
//! thin argument parser and the tests drive the same code.

pub mod broker;
pub mod devnet;
pub mod estimate;
pub mod fund;
pub mod keys;
pub mod node;
pub mod overview;
pub mod remote;
pub mod sources;
pub mod validate;
