//! Tunnels: the node running a replica of a job with a `Tunnel` runs the tunnel client beside
//! it (`bore`, `cloudflared` or `ngrok`), forwarding to the replica's first host port,
//! health-checked and restarted on the reference's schedule, and reports its state with the
//! replica.
//!
//! * [`schedule`]: when a failed client may start again (pure).
//! * [`plan`]: which clients should run (pure).
//! * [`client`]: one client process: command line, binary lookup, bounded output reading.
//! * [`runner`]: the loop acting on the plan.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use r1_protocol::messages::{TunnelReport, WorkloadId};

pub mod client;
pub mod plan;
pub mod runner;
pub mod schedule;

/// Each replica's tunnel state, written by the tunnel loop and read into the workload reports.
pub type TunnelTable = Arc<Mutex<BTreeMap<WorkloadId, TunnelReport>>>;
