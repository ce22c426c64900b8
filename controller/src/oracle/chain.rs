//! What the chain says, read once per pass into one snapshot so that every decision of the pass
//! sees the same facts. A failed read leaves the previous snapshot in place and marks the chain
//! Unknown: nothing is closed or voted on from stale facts.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use r1_contracts::Suite;
use r1_contracts::bindings::CspEscrow;
use r1_contracts::bindings::PoAIManager::PoAIManagerErrors;

/// Longest wait for one chain call; an RPC that does not answer is an outage, not a hang.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A chain call that failed or timed out.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The call failed.
    #[error(transparent)]
    Call(#[from] r1_contracts::Error),
    /// No answer within [`CALL_TIMEOUT`].
    #[error("the chain RPC did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
}

impl ChainError {
    /// Whether the PoAI manager refused the call with a revert that `expected` matches
    /// (refused during gas estimation: nothing was mined).
    pub fn refused_with(&self, expected: impl Fn(&PoAIManagerErrors) -> bool) -> bool {
        match self {
            Self::Call(e) => e
                .revert::<PoAIManagerErrors>()
                .is_some_and(|r| expected(&r)),
            Self::Timeout => false,
        }
    }

    /// Whether the PoAI manager answered the call with one of its own errors: a definite
    /// answer, unlike a timeout, a transport failure or a mined transaction that ran out of gas,
    /// after which the call may be tried again.
    pub fn is_refusal(&self) -> bool {
        self.refused_with(|_| true)
    }
}

/// Runs a chain call with [`CALL_TIMEOUT`].
pub async fn within<T>(
    call: impl Future<Output = r1_contracts::Result<T>>,
) -> Result<T, ChainError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| ChainError::Timeout)?
        .map_err(ChainError::Call)
}

/// An open on-chain job, as the loops need it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl ChainJob {
    fn of(escrow: Address, job: &CspEscrow::Job) -> Self {
        let small = |v: alloy_primitives::U256| u64::try_from(v).unwrap_or(u64::MAX);
        Self {
            id: small(job.id),
            escrow,
            project_hash: job.projectHash,
            nodes_requested: u32::try_from(small(job.numberOfNodesRequested)).unwrap_or(u32::MAX),
            last_execution_epoch: small(job.lastExecutionEpoch),
            next_epoch_to_settle: small(job.nextEpochToSettle),
            price_per_epoch: small(job.pricePerEpoch),
            balance: small(job.balance),
            active_nodes: job.activeNodes.iter().copied().collect(),
        }
    }
}

/// The chain as one pass sees it.
#[derive(Debug, Clone, Default)]
pub struct ChainSnapshot {
    /// Current epoch by the wall clock and the manager's epoch settings. Not the manager's
    /// `currentEpoch()` view: a chain that mines only on demand (a devnet) answers views with
    /// the last block's time, which stands still while nobody sends a transaction.
    pub epoch: u64,
    /// Active oracles, sorted.
    pub oracles: Vec<Address>,
    /// Epochs before this one are allocated.
    pub allocated_until: u64,
    /// Lowest closable job, if any.
    pub first_closable: Option<u64>,
    /// Escrow of each CSP the store knows (absent: none deployed).
    pub escrows: BTreeMap<Address, Address>,
    /// Open jobs of those escrows, by id.
    pub jobs: BTreeMap<u64, ChainJob>,
}

impl ChainSnapshot {
    /// Reads the snapshot for the CSPs `owners` in `epoch`.
    pub async fn read(
        suite: &Suite,
        epoch: u64,
        owners: impl IntoIterator<Item = Address>,
    ) -> Result<Self, ChainError> {
        let mut oracles = within(suite.oracles()).await?;
        oracles.sort();
        let mut snapshot = Self {
            epoch,
            oracles,
            allocated_until: within(suite.allocated_until_epoch()).await?,
            first_closable: within(suite.first_closable_job_id()).await?,
            ..Self::default()
        };
        for owner in owners {
            let escrow = within(suite.escrow_of(owner)).await?;
            if escrow == Address::ZERO {
                continue;
            }
            snapshot.escrows.insert(owner, escrow);
            for job in within(suite.escrow_open_jobs(escrow)).await? {
                let job = ChainJob::of(escrow, &job);
                snapshot.jobs.insert(job.id, job);
            }
        }
        Ok(snapshot)
    }

    /// The open job paying for the resource `project_hash` of `owner` (lowest id wins).
    pub fn job_for(&self, owner: &Address, project_hash: &B256) -> Option<&ChainJob> {
        let escrow = self.escrows.get(owner)?;
        self.jobs
            .values()
            .find(|j| j.escrow == *escrow && j.project_hash == *project_hash)
    }
}
