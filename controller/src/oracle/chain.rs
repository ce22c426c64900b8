//! What the chain says, read once per pass into one snapshot so that every decision of the pass
//! sees the same facts. A failed read leaves the previous snapshot in place and marks the chain
//! Unknown: nothing is closed or voted on from stale facts.
//!
//! The chain work of a pass is bounded whatever strangers do: which CSP owns which escrow is
//! kept in an [`EscrowBook`] (an escrow, once deployed, never changes; "no escrow" is asked
//! again only after [`NO_ESCROW_RECHECK_MS`]), at most [`ESCROW_LOOKUPS_PER_PASS`] owners are
//! looked up per pass, concurrently, and a failed lookup only delays that owner. Only escrows
//! are read for their jobs, and escrows are deployed by governance.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;

use alloy_primitives::{Address, B256};
use r1_contracts::Suite;
use r1_contracts::bindings::CspEscrow;
use r1_contracts::bindings::PoAIManager::PoAIManagerErrors;

use crate::decide::chain_job::ChainJob;
use crate::oracle::answers::{Answers, Recheck};

/// Longest wait for one chain call; an RPC that does not answer is an outage, not a hang.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Owners whose escrow is looked up in one pass.
pub const ESCROW_LOOKUPS_PER_PASS: usize = 16;

/// How long "this owner has no escrow" is believed before asking again.
pub const NO_ESCROW_RECHECK_MS: u64 = 60_000;

/// Chain calls of one pass in flight at once.
const CONCURRENT_CALLS: usize = 8;

/// Which CSP owns which escrow: settled once found (an escrow never changes), "none" asked
/// again after [`NO_ESCROW_RECHECK_MS`], [`ESCROW_LOOKUPS_PER_PASS`] lookups a pass.
pub type EscrowBook = Answers<Address, Address>;

/// An empty [`EscrowBook`].
pub fn escrow_book() -> EscrowBook {
    Answers::new(Recheck {
        after_ms: NO_ESCROW_RECHECK_MS,
        per_pass: ESCROW_LOOKUPS_PER_PASS,
        max_remembered: usize::MAX,
    })
}

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

/// The decisions' view of `job`, held by `escrow`.
fn chain_job(escrow: Address, job: &CspEscrow::Job) -> ChainJob {
    let small = |v: alloy_primitives::U256| u64::try_from(v).unwrap_or(u64::MAX);
    ChainJob {
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
    /// USDC of the 15 % share queued for burning.
    pub pending_burn: alloy_primitives::U256,
    /// Escrow of each CSP the store knows (absent: none deployed).
    pub escrows: BTreeMap<Address, Address>,
    /// Open jobs of those escrows, by id.
    pub jobs: BTreeMap<u64, ChainJob>,
    /// The lowest open job id of each escrow and project hash: how each resource finds the
    /// job paying for it without going through every job.
    by_project: HashMap<(Address, B256), u64>,
}

impl ChainSnapshot {
    /// Reads the snapshot for the CSPs `owners` in `epoch`, looking up the escrows `book`
    /// says are due and recording the answers in it.
    pub async fn read(
        suite: &Suite,
        epoch: u64,
        owners: &BTreeSet<Address>,
        book: &mut EscrowBook,
        now_ms: u64,
    ) -> Result<Self, ChainError> {
        let mut oracles = within(suite.oracles()).await?;
        oracles.sort();
        let mut snapshot = Self {
            epoch,
            oracles,
            allocated_until: within(suite.allocated_until_epoch()).await?,
            first_closable: within(suite.first_closable_job_id()).await?,
            pending_burn: within(suite.pending_burn()).await?,
            ..Self::default()
        };
        book.retain(|owner| owners.contains(owner));
        let lookups: Vec<(Address, Result<Address, ChainError>)> =
            futures_util::stream::iter(book.due(owners, now_ms))
                .map(|owner| async move { (owner, within(suite.escrow_of(owner)).await) })
                .buffer_unordered(CONCURRENT_CALLS)
                .collect()
                .await;
        for (owner, answer) in lookups {
            match answer {
                Ok(escrow) => {
                    book.record(owner, (escrow != Address::ZERO).then_some(escrow), now_ms)
                }
                Err(e) => tracing::debug!(%owner, error = %e, "cannot look up the escrow; later"),
            }
        }
        snapshot.escrows = owners
            .iter()
            .filter_map(|owner| Some((*owner, *book.settled(owner)?)))
            .collect();
        let escrows: BTreeSet<Address> = snapshot.escrows.values().copied().collect();
        let reads: Vec<(Address, Result<Vec<CspEscrow::Job>, ChainError>)> =
            futures_util::stream::iter(escrows)
                .map(|escrow| async move { (escrow, within(suite.escrow_open_jobs(escrow)).await) })
                .buffer_unordered(CONCURRENT_CALLS)
                .collect()
                .await;
        for (escrow, jobs) in reads {
            for job in jobs? {
                let job = chain_job(escrow, &job);
                snapshot.jobs.insert(job.id, job);
            }
        }
        for job in snapshot.jobs.values() {
            snapshot
                .by_project
                .entry((job.escrow, job.project_hash))
                .or_insert(job.id);
        }
        Ok(snapshot)
    }

    /// The open job paying for the resource `project_hash` of `owner` (lowest id wins).
    pub fn job_for(&self, owner: &Address, project_hash: &B256) -> Option<&ChainJob> {
        let escrow = self.escrows.get(owner)?;
        self.jobs
            .get(self.by_project.get(&(*escrow, *project_hash))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(i: u8) -> Address {
        Address::with_last_byte(i)
    }

    fn found(escrow: Address) -> Option<Address> {
        (escrow != Address::ZERO).then_some(escrow)
    }

    #[test]
    fn the_book_bounds_lookups_and_remembers_answers() {
        let owners: BTreeSet<Address> = (1..=40).map(owner).collect();
        let mut book = escrow_book();
        let first = book.due(&owners, 0);
        assert_eq!(first.len(), ESCROW_LOOKUPS_PER_PASS);
        for o in &first {
            let escrow = if *o == owner(1) {
                owner(200)
            } else {
                Address::ZERO
            };
            book.record(*o, found(escrow), 1_000);
        }
        // The answered owners are not due again; the others are, up to the bound.
        let second = book.due(&owners, 2_000);
        assert_eq!(second.len(), ESCROW_LOOKUPS_PER_PASS);
        assert!(second.iter().all(|o| !first.contains(o)));
        for o in &second {
            book.record(*o, None, 2_000);
        }
        let third = book.due(&owners, 3_000);
        assert_eq!(third.len(), 40 - 2 * ESCROW_LOOKUPS_PER_PASS);
        for o in &third {
            book.record(*o, None, 3_000);
        }
        assert!(book.due(&owners, 3_000).is_empty());
        // "No escrow" is asked again after the recheck period; an escrow never.
        let again = book.due(&owners, 1_000 + NO_ESCROW_RECHECK_MS);
        assert_eq!(again.len(), ESCROW_LOOKUPS_PER_PASS - 1);
        assert!(!again.contains(&owner(1)));
        let escrows: Vec<(Address, Address)> = owners
            .iter()
            .filter_map(|o| Some((*o, *book.settled(o)?)))
            .collect();
        assert_eq!(escrows, vec![(owner(1), owner(200))]);
        // Owners that left the store are forgotten.
        book.retain(|o| *o == owner(1));
        assert_eq!(book.len(), 1);
    }
}
