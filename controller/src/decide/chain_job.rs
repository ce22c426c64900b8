//! An open on-chain job as every decision about it sees it: read from the escrow by the
//! oracle's chain module, handed to the job, status and economy decisions as plain data.

use std::collections::BTreeSet;

use alloy_primitives::{Address, B256};

/// An open on-chain job, as the decisions need it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainJob {
    /// Job id.
    pub id: u64,
    /// The escrow holding it.
    pub escrow: Address,
    /// The CSP resource it pays for (see [`r1_contracts::project_hash`]).
    pub project_hash: B256,
    /// Replicas paid for.
    pub nodes_requested: u32,
    /// Last epoch paid for.
    pub last_execution_epoch: u64,
    /// Next epoch to settle.
    pub next_epoch_to_settle: u64,
    /// USDC (6 decimals) per node per epoch.
    pub price_per_epoch: u64,
    /// USDC still held for the job.
    pub balance: u64,
    /// The validated node set (empty before the first validation).
    pub active_nodes: BTreeSet<Address>,
}
