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
use r1_contracts::bindings::CspEscrow;
use r1_contracts::bindings::PoAIManager::PoAIManagerErrors;
use r1_contracts::{JobChanges, Suite};

use crate::decide::chain_job::ChainJob;
use crate::decide::closure::{JobLedger, first_closable};
use crate::oracle::answers::{Answers, Recheck};

/// Longest wait for one chain call; an RPC that does not answer is an outage, not a hang.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Owners whose escrow is looked up in one pass.
pub const ESCROW_LOOKUPS_PER_PASS: usize = 16;

/// How long "this owner has no escrow" is believed before asking again.
pub const NO_ESCROW_RECHECK_MS: u64 = 60_000;

/// How often every open job is read again beside the passes ([`WholeRead`]): a guard against a
/// log an RPC endpoint dropped, a reorganised block or an escrow upgrade. Read within a pass,
/// 1,100 jobs held that pass for a second or more each minute, and the jobs waiting on it.
pub const JOBS_GUARD_READ_MS: u64 = 60_000;

/// The guard's pause before each page of jobs it reads: the chain node answers the passes'
/// and the votes' calls in between (three oracles' guard reads of 1,100 jobs at once had held
/// every call for seconds).
pub const GUARD_PAGE_PAUSE: Duration = Duration::from_millis(100);

/// How long a pass follows the open jobs through their events without a whole read before it
/// reads them whole itself (when the guard's reads fail or lag).
pub const JOBS_FULL_READ_MS: u64 = 3 * JOBS_GUARD_READ_MS;

/// Most blocks whose job events are read to bring a snapshot up to date; a snapshot further
/// behind is read again whole.
pub const JOB_EVENTS_LOOKBACK_BLOCKS: u64 = 10_000;

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

/// Every open job of `escrows`, by id.
async fn open_jobs(
    suite: &Suite,
    escrows: BTreeSet<Address>,
) -> Result<BTreeMap<u64, ChainJob>, ChainError> {
    let reads: Vec<(Address, Result<Vec<CspEscrow::Job>, ChainError>)> =
        futures_util::stream::iter(escrows)
            .map(|escrow| async move { (escrow, within(suite.escrow_open_jobs(escrow)).await) })
            .buffer_unordered(CONCURRENT_CALLS)
            .collect()
            .await;
    let mut jobs = BTreeMap::new();
    for (escrow, read) in reads {
        for job in read? {
            let job = chain_job(escrow, &job);
            jobs.insert(job.id, job);
        }
    }
    Ok(jobs)
}

/// The jobs the manager's scan of every open job finds closable (`getClosableJobIds`, O(open
/// jobs) on the chain), but for those of `jobs`, whose closability is judged from their
/// settlement.
async fn closable_elsewhere(
    suite: &Suite,
    jobs: &BTreeMap<u64, ChainJob>,
) -> Result<BTreeSet<u64>, ChainError> {
    Ok(within(suite.closable_job_ids())
        .await?
        .into_iter()
        .filter(|id| !jobs.contains_key(id))
        .collect())
}

/// Every open job of some escrows, read whole beside the passes every [`JOBS_GUARD_READ_MS`];
/// the next pass follows the jobs' events on from it instead of reading them whole itself.
#[derive(Debug, Clone)]
pub struct WholeRead {
    /// The chain's head before the read began: every change the read may have missed is in
    /// an event of a later block, which the pass reads.
    head: u64,
    /// When the read began (unix ms).
    read_ms: u64,
    /// The escrows read.
    escrows: BTreeSet<Address>,
    /// Their open jobs.
    jobs: BTreeMap<u64, ChainJob>,
    /// The manager's closable jobs not among them.
    closable_elsewhere: BTreeSet<u64>,
}

impl WholeRead {
    /// Reads every open job of `escrows` and the manager's closable jobs, at `now_ms`, a page
    /// of jobs at a time with [`GUARD_PAGE_PAUSE`] between pages.
    pub async fn read(
        suite: &Suite,
        escrows: BTreeSet<Address>,
        now_ms: u64,
    ) -> Result<Self, ChainError> {
        let head = within(suite.head()).await?;
        let mut jobs = BTreeMap::new();
        for escrow in &escrows {
            let ids = within(suite.escrow_open_job_ids(*escrow)).await?;
            for page in ids.chunks(r1_contracts::oracle_view::JOBS_PER_CALL) {
                tokio::time::sleep(GUARD_PAGE_PAUSE).await;
                for job in within(suite.escrow_jobs(*escrow, page)).await? {
                    let job = chain_job(*escrow, &job);
                    jobs.insert(job.id, job);
                }
            }
        }
        let closable_elsewhere = closable_elsewhere(suite, &jobs).await?;
        Ok(Self {
            head,
            read_ms: now_ms,
            escrows,
            jobs,
            closable_elsewhere,
        })
    }

    /// Whether this read began after `snapshot`'s jobs were last read whole.
    pub fn newer_than(&self, snapshot: &ChainSnapshot) -> bool {
        self.read_ms > snapshot.jobs_read_ms
    }

    /// A snapshot of this read's jobs as of its head, for [`ChainSnapshot::read`] to follow on
    /// from; `escrows` are the CSPs' escrows as the last snapshot knew them (those this read
    /// did not cover are read whole by the pass).
    pub fn base(&self, escrows: &BTreeMap<Address, Address>) -> ChainSnapshot {
        ChainSnapshot {
            escrows: escrows
                .iter()
                .filter(|(_, escrow)| self.escrows.contains(*escrow))
                .map(|(owner, escrow)| (*owner, *escrow))
                .collect(),
            jobs: self.jobs.clone(),
            closable_elsewhere: self.closable_elsewhere.clone(),
            head: Some(self.head),
            jobs_read_ms: self.read_ms,
            ..ChainSnapshot::default()
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
    /// Lowest closable job, if any: of the open jobs held here, judged from their settlement
    /// (`decide::closure`), or of [`ChainSnapshot::closable_elsewhere`].
    pub first_closable: Option<u64>,
    /// Closable jobs of escrows this snapshot does not hold, as the manager's scan of every
    /// open job (`getClosableJobIds`, O(open jobs) on the chain) found them at the last whole
    /// read; carried over while jobs are followed through events.
    closable_elsewhere: BTreeSet<u64>,
    /// USDC of the 15 % share queued for burning.
    pub pending_burn: alloy_primitives::U256,
    /// Escrow of each CSP the store knows (absent: none deployed).
    pub escrows: BTreeMap<Address, Address>,
    /// Open jobs of those escrows, by id.
    pub jobs: BTreeMap<u64, ChainJob>,
    /// The lowest open job id of each escrow and project hash: how each resource finds the
    /// job paying for it without going through every job.
    by_project: HashMap<(Address, B256), u64>,
    /// The block whose changes `jobs` hold (`None`: not known, so the next read is whole).
    head: Option<u64>,
    /// When every open job was last read (unix ms), not only the changed ones.
    jobs_read_ms: u64,
}

impl ChainSnapshot {
    /// Reads the snapshot for the CSPs `owners` in `epoch` at block `head`, looking up the
    /// escrows `book` says are due and recording the answers in it. The jobs of `previous`
    /// are carried over and only those its blocks since changed are read again (a steady
    /// pass reads no job), unless [`JOBS_FULL_READ_MS`] went by, it is too far behind, or an
    /// allocation settled every job.
    pub async fn read(
        suite: &Suite,
        epoch: u64,
        owners: &BTreeSet<Address>,
        book: &mut EscrowBook,
        now_ms: u64,
        head: Option<u64>,
        previous: Option<&ChainSnapshot>,
    ) -> Result<Self, ChainError> {
        // The manager's figures and the jobs are read side by side: neither waits for the
        // other's round trips to a busy chain node.
        let ((mut oracles, allocated_until, pending_burn), mut snapshot) = tokio::try_join!(
            async {
                tokio::try_join!(
                    within(suite.oracles()),
                    within(suite.allocated_until_epoch()),
                    within(suite.pending_burn()),
                )
            },
            Self::read_jobs(suite, epoch, owners, book, now_ms, head, previous),
        )?;
        oracles.sort();
        snapshot.oracles = oracles;
        snapshot.allocated_until = allocated_until;
        snapshot.pending_burn = pending_burn;
        Ok(snapshot)
    }

    /// The snapshot's escrows and open jobs, as [`ChainSnapshot::read`] says, without the
    /// manager's figures.
    async fn read_jobs(
        suite: &Suite,
        epoch: u64,
        owners: &BTreeSet<Address>,
        book: &mut EscrowBook,
        now_ms: u64,
        head: Option<u64>,
        previous: Option<&ChainSnapshot>,
    ) -> Result<Self, ChainError> {
        let mut snapshot = Self {
            epoch,
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
        snapshot.head = head;
        snapshot.jobs_read_ms = now_ms;
        let mut unread = escrows.clone();
        let mut whole = true;
        let follow =
            previous.and_then(|p| p.follows_to(head, now_ms).map(|(from, to)| (p, from, to)));
        if let Some((previous, from, to)) = follow {
            let followed: BTreeSet<Address> = previous
                .escrows
                .values()
                .filter(|escrow| escrows.contains(*escrow))
                .copied()
                .collect();
            if let Some(jobs) = previous.follow(suite, &followed, from, to).await? {
                snapshot.jobs = jobs;
                snapshot.jobs_read_ms = previous.jobs_read_ms;
                snapshot.closable_elsewhere = previous.closable_elsewhere.clone();
                unread.retain(|escrow| !followed.contains(escrow));
                whole = false;
            }
        }
        snapshot.jobs.extend(open_jobs(suite, unread).await?);
        for job in snapshot.jobs.values() {
            snapshot
                .by_project
                .entry((job.escrow, job.project_hash))
                .or_insert(job.id);
        }
        if whole {
            snapshot.closable_elsewhere = closable_elsewhere(suite, &snapshot.jobs).await?;
        }
        let ledgers: Vec<JobLedger> = snapshot.jobs.values().map(JobLedger::from).collect();
        snapshot.first_closable = first_closable(&ledgers, epoch)
            .into_iter()
            .chain(snapshot.closable_elsewhere.first().copied())
            .min();
        Ok(snapshot)
    }

    /// This snapshot's open jobs of `escrows` brought up to block `to` by reading again the
    /// jobs an event of blocks `from..=to` names; `None` when an allocation in them settled
    /// every job, which a whole read answers.
    async fn follow(
        &self,
        suite: &Suite,
        escrows: &BTreeSet<Address>,
        from: u64,
        to: u64,
    ) -> Result<Option<BTreeMap<u64, ChainJob>>, ChainError> {
        let watched: Vec<Address> = escrows.iter().copied().collect();
        let JobChanges::Jobs(changed) = within(suite.job_changes(&watched, from, to)).await? else {
            return Ok(None);
        };
        let mut jobs: BTreeMap<u64, ChainJob> = self
            .jobs
            .iter()
            .filter(|(_, job)| escrows.contains(&job.escrow))
            .map(|(id, job)| (*id, job.clone()))
            .collect();
        let mut by_escrow: BTreeMap<Address, Vec<alloy_primitives::U256>> = BTreeMap::new();
        for (escrow, id) in changed {
            by_escrow.entry(escrow).or_default().push(id);
        }
        let reads: Vec<(Address, Result<Vec<CspEscrow::Job>, ChainError>)> =
            futures_util::stream::iter(by_escrow)
                .map(|(escrow, ids)| async move {
                    (escrow, within(suite.escrow_jobs(escrow, &ids)).await)
                })
                .buffer_unordered(CONCURRENT_CALLS)
                .collect()
                .await;
        for (escrow, read) in reads {
            for job in read? {
                let closed = job.closed;
                let job = chain_job(escrow, &job);
                if closed {
                    jobs.remove(&job.id);
                } else {
                    jobs.insert(job.id, job);
                }
            }
        }
        Ok(Some(jobs))
    }

    /// The blocks (first, last) whose job events bring this snapshot's jobs up to `head`, or
    /// `None` when they must be read whole: a head not known, [`JOBS_FULL_READ_MS`] gone by
    /// since they were, or more than [`JOB_EVENTS_LOOKBACK_BLOCKS`] behind.
    fn follows_to(&self, head: Option<u64>, now_ms: u64) -> Option<(u64, u64)> {
        let (read, head) = (self.head?, head?);
        let fresh = now_ms.saturating_sub(self.jobs_read_ms) < JOBS_FULL_READ_MS;
        (fresh && head >= read && head - read <= JOB_EVENTS_LOOKBACK_BLOCKS)
            .then_some((read + 1, head))
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
    fn jobs_are_followed_through_events_until_a_whole_read_is_due() {
        let snapshot = ChainSnapshot {
            head: Some(100),
            jobs_read_ms: 1_000,
            ..ChainSnapshot::default()
        };
        assert_eq!(snapshot.follows_to(Some(100), 2_000), Some((101, 100)));
        assert_eq!(snapshot.follows_to(Some(105), 2_000), Some((101, 105)));
        let far = 100 + JOB_EVENTS_LOOKBACK_BLOCKS;
        assert_eq!(snapshot.follows_to(Some(far), 2_000), Some((101, far)));
        assert_eq!(snapshot.follows_to(Some(far + 1), 2_000), None);
        assert_eq!(snapshot.follows_to(None, 2_000), None);
        assert_eq!(
            snapshot.follows_to(Some(99), 2_000),
            None,
            "a chain gone back"
        );
        assert_eq!(
            snapshot.follows_to(Some(105), 1_000 + JOBS_FULL_READ_MS),
            None
        );
        let unknown = ChainSnapshot {
            head: None,
            ..snapshot
        };
        assert_eq!(unknown.follows_to(Some(105), 2_000), None);
    }

    #[test]
    fn a_pass_follows_on_from_the_guards_whole_read() {
        let escrow = Address::with_last_byte(9);
        let job = ChainJob {
            id: 4,
            escrow,
            project_hash: B256::ZERO,
            nodes_requested: 2,
            last_execution_epoch: 10,
            next_epoch_to_settle: 1,
            price_per_epoch: 1,
            balance: 10,
            active_nodes: BTreeSet::new(),
        };
        let read = WholeRead {
            head: 200,
            read_ms: 5_000,
            escrows: BTreeSet::from([escrow]),
            jobs: BTreeMap::from([(4, job)]),
            closable_elsewhere: BTreeSet::from([2]),
        };
        let last = ChainSnapshot {
            escrows: BTreeMap::from([(owner(1), escrow), (owner(2), Address::with_last_byte(8))]),
            head: Some(150),
            jobs_read_ms: 1_000,
            ..ChainSnapshot::default()
        };
        assert!(read.newer_than(&last));
        let base = read.base(&last.escrows);
        assert_eq!(
            base.escrows,
            BTreeMap::from([(owner(1), escrow)]),
            "an escrow the guard did not read is read whole by the pass"
        );
        assert_eq!(base.jobs.keys().copied().collect::<Vec<_>>(), [4]);
        assert_eq!(base.closable_elsewhere, BTreeSet::from([2]));
        assert_eq!(
            base.follows_to(Some(210), 6_000),
            Some((201, 210)),
            "the events after the read's head, which it may have missed"
        );
        let fresher = ChainSnapshot {
            jobs_read_ms: 5_000,
            ..last
        };
        assert!(!read.newer_than(&fresher));
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
