//! The r1 node agent: turns a host with containerd into a Ratio1 edge node.
//!
//! * [`config`]: the agent's configuration file.

pub mod config;
