//! What the oracle loops read from the chain, as typed calls on [`Suite`]: the oracle set, the
//! epoch clock and allocation progress, licences, consensus rounds, and the open jobs and totals
//! of a CSP's escrow. Nothing here sends a transaction.

use alloy::primitives::{Address, B256, U256};

use crate::bindings::CspEscrow;
use crate::client::{Suite, to_u64};
use crate::error::Result;

/// The licence a node is linked to, with what decides whether it may be validated and paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLicence {
    /// The Node Deed token id.
    pub licence_id: u64,
    /// Who holds the licence (and claims the node's rewards).
    pub owner: Address,
    /// Whether governance blacklisted the node (never validated nor paid).
    pub blacklisted: bool,
}

/// Where the USDC of one escrow went, for status display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EscrowTotals {
    /// USDC the escrow contract holds now.
    pub balance_usdc: U256,
    /// USDC paid into the escrow, ever (the owner's job payments and every `deposit`).
    pub deposited: U256,
    /// USDC held for the CSP and not committed to a job (what delegates spend).
    pub free_balance: U256,
    /// USDC withdrawn from the free balance by the owner, ever.
    pub withdrawn: U256,
    /// USDC credited to node balances, ever.
    pub credited_to_nodes: U256,
    /// USDC sent to the burn, ever.
    pub burned: U256,
    /// USDC refunded to the CSP, ever.
    pub refunded: U256,
    /// USDC paid out of node balances on claims, ever.
    pub claimed: U256,
}

impl Suite {
    /// The active oracles, as the manager lists them (the set consensus counts against).
    pub async fn oracles(&self) -> Result<Vec<Address>> {
        Ok(self.manager().getOracles().call().await?)
    }

    /// The epoch clock: `(genesis_unix_s, epoch_seconds)`; epoch `e` runs from
    /// `genesis + e × epoch_seconds` for `epoch_seconds`.
    pub async fn epoch_clock(&self) -> Result<(u64, u64)> {
        let manager = self.manager();
        let genesis = manager.genesisTimestamp().call().await?;
        let seconds = manager.epochSeconds().call().await?;
        Ok((to_u64(genesis), to_u64(seconds)))
    }

    /// Epochs before this one have had their rewards allocated; the next allocation starts here.
    pub async fn allocated_until_epoch(&self) -> Result<u64> {
        Ok(to_u64(self.manager().allocatedUntilEpoch().call().await?))
    }

    /// Whether the availability (PoA) table of `epoch` has been agreed and recorded, after which
    /// no oracle may submit it again.
    pub async fn availability_recorded(&self, epoch: u64) -> Result<bool> {
        Ok(self
            .node_deed()
            .availabilityRecorded(U256::from(epoch))
            .call()
            .await?)
    }

    /// The consensus round of `job_id` that the next node-set vote counts in (it moves on when a
    /// set is accepted, and when a round started in an earlier epoch gets a new vote).
    pub async fn job_round(&self, job_id: u64) -> Result<u64> {
        Ok(to_u64(
            self.manager().jobRound(U256::from(job_id)).call().await?,
        ))
    }

    /// The licence `node` is linked to, or `None` when it has none (then it cannot be validated).
    pub async fn node_licence(&self, node: Address) -> Result<Option<NodeLicence>> {
        let deed = self.node_deed();
        let licence_id = deed.licenceOfNode(node).call().await?;
        if licence_id.is_zero() {
            return Ok(None);
        }
        let owner = deed.ownerOf(licence_id).call().await?;
        let blacklisted = self.manager().isBlacklisted(node).call().await?;
        Ok(Some(NodeLicence {
            licence_id: to_u64(licence_id),
            owner,
            blacklisted,
        }))
    }

    /// Every job of `escrow` not yet closed, by ascending id.
    pub async fn escrow_open_jobs(&self, escrow: Address) -> Result<Vec<CspEscrow::Job>> {
        let contract = self.escrow(escrow);
        let mut ids = contract.getOpenJobIds().call().await?;
        ids.sort();
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            jobs.push(contract.getJob(id).call().await?);
        }
        Ok(jobs)
    }

    /// The open job of `escrow` whose `projectHash` is `project_hash` (see
    /// [`crate::job_link::project_hash`]); the lowest id wins if the CSP funded more than one.
    pub async fn find_open_job(
        &self,
        escrow: Address,
        project_hash: B256,
    ) -> Result<Option<CspEscrow::Job>> {
        Ok(self
            .escrow_open_jobs(escrow)
            .await?
            .into_iter()
            .find(|job| job.projectHash == project_hash))
    }

    /// The USDC held by `escrow` and its lifetime totals.
    pub async fn escrow_totals(&self, escrow: Address) -> Result<EscrowTotals> {
        let contract = self.escrow(escrow);
        Ok(EscrowTotals {
            balance_usdc: self.usdc().balanceOf(escrow).call().await?,
            deposited: contract.totalDeposited().call().await?,
            free_balance: contract.freeBalance().call().await?,
            withdrawn: contract.totalWithdrawn().call().await?,
            credited_to_nodes: contract.totalCreditedToNodes().call().await?,
            burned: contract.totalBurned().call().await?,
            refunded: contract.totalRefunded().call().await?,
            claimed: contract.totalClaimed().call().await?,
        })
    }
}
