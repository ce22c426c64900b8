//! The contracts' state an audit checks its replay against, read at the block its history ends
//! in so that both describe the same moment even while oracles keep settling.

use std::collections::BTreeMap;

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, U256};

use super::fetch::FetchError;
use crate::bindings::CspEscrow;
use crate::client::{Suite, to_u64};

/// A job as its escrow's `getJob` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobView {
    /// The job's type.
    pub job_type: u8,
    /// The project it pays for.
    pub project_hash: B256,
    /// When the first node set started it (0 = never).
    pub start_timestamp: u64,
    /// Its last paid epoch.
    pub last_epoch: u64,
    /// The epoch holding `settled_until` (the first epoch not wholly settled).
    pub next_epoch_to_settle: u64,
    /// The time up to which the job is settled.
    pub settled_until: u64,
    /// Nodes requested.
    pub nodes: u64,
    /// USDC units per node per epoch.
    pub price: U256,
    /// USDC units left in its budget.
    pub balance: U256,
    /// The node set recorded last.
    pub active_nodes: Vec<Address>,
    /// Whether it is closed.
    pub closed: bool,
}

impl From<CspEscrow::Job> for JobView {
    fn from(job: CspEscrow::Job) -> Self {
        JobView {
            job_type: job.jobType,
            project_hash: job.projectHash,
            start_timestamp: to_u64(job.startTimestamp),
            last_epoch: to_u64(job.lastExecutionEpoch),
            next_epoch_to_settle: to_u64(job.nextEpochToSettle),
            settled_until: to_u64(job.settledUntil),
            nodes: to_u64(job.numberOfNodesRequested),
            price: job.pricePerEpoch,
            balance: job.balance,
            active_nodes: job.activeNodes,
            closed: job.closed,
        }
    }
}

/// One escrow's state: its owner, the jobs and nodes asked about, its lifetime totals and the
/// USDC it holds, and the PoA minted so far for the licences asked about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EscrowSnapshot {
    /// The CSP that owns it.
    pub owner: Address,
    /// The jobs asked about, by id.
    pub jobs: BTreeMap<u64, JobView>,
    /// `virtualWalletBalance` of the nodes asked about.
    pub node_balances: BTreeMap<Address, U256>,
    /// The escrow's totals and USDC balance.
    pub totals: crate::EscrowTotals,
    /// `poaMinted` of the licences asked about.
    pub poa_minted: BTreeMap<u64, U256>,
}

impl Suite {
    /// The state of `escrow` at block `block`: the jobs `jobs`, the balances of `nodes` and the
    /// PoA minted for `licences`.
    pub async fn escrow_snapshot(
        &self,
        escrow: Address,
        block: u64,
        jobs: &[u64],
        nodes: &[Address],
        licences: &[u64],
    ) -> Result<EscrowSnapshot, FetchError> {
        let at = BlockId::number(block);
        let contract = self.escrow(escrow);
        let deed = self.node_deed();
        let mut snapshot = EscrowSnapshot {
            owner: contract.cspOwner().block(at).call().await?,
            totals: crate::EscrowTotals {
                balance_usdc: self.usdc().balanceOf(escrow).block(at).call().await?,
                deposited: contract.totalDeposited().block(at).call().await?,
                free_balance: contract.freeBalance().block(at).call().await?,
                withdrawn: contract.totalWithdrawn().block(at).call().await?,
                credited_to_nodes: contract.totalCreditedToNodes().block(at).call().await?,
                burned: contract.totalBurned().block(at).call().await?,
                refunded: contract.totalRefunded().block(at).call().await?,
                claimed: contract.totalClaimed().block(at).call().await?,
            },
            ..EscrowSnapshot::default()
        };
        for &job in jobs {
            let view = contract.getJob(U256::from(job)).block(at).call().await?;
            snapshot.jobs.insert(job, view.into());
        }
        for &node in nodes {
            let balance = contract.virtualWalletBalance(node).block(at).call().await?;
            snapshot.node_balances.insert(node, balance);
        }
        for &licence in licences {
            let minted = deed.poaMinted(U256::from(licence)).block(at).call().await?;
            snapshot.poa_minted.insert(licence, minted);
        }
        Ok(snapshot)
    }
}
