//! Which job the closure loop closes next, whether the rewards loop has work, and the random
//! backoff before either acts.
//!
//! Closability mirrors `CspEscrow.isClosable`: the job is open, the current epoch is past its
//! last execution epoch, and its rewards are settled up to and including that epoch
//! (`nextEpochToSettle > lastExecutionEpoch`). Oracles agree on the lowest such job id, as
//! each pass's chain snapshot finds it among the open jobs it holds ([`first_closable`]; the
//! manager's scan of every open job, `PoAIManager.getClosableJobIds`, runs only at a whole read,
//! for escrows the snapshot does not hold), then wait a random backoff so that usually one
//! oracle acts and the contract's guards absorb the rest.

use alloy_primitives::{Address, keccak256};

/// The closure loop's backoff range, ms (the reference waits 1–250 s).
pub const CLOSURE_BACKOFF_MS: (u64, u64) = (1_000, 250_000);

/// The rewards loop's backoff range after an epoch change, ms (the reference waits 1–100 s).
pub const REWARDS_BACKOFF_MS: (u64, u64) = (1_000, 100_000);

/// A job's settlement state, as the escrow stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLedger {
    /// On-chain job id.
    pub job_id: u64,
    /// Not closed yet.
    pub open: bool,
    /// Last epoch the job is paid for.
    pub last_execution_epoch: u64,
    /// First epoch not yet settled.
    pub next_epoch_to_settle: u64,
}

impl JobLedger {
    /// Whether the job may be closed during `current_epoch` (`isClosable`).
    pub const fn is_closable(&self, current_epoch: u64) -> bool {
        self.open
            && current_epoch > self.last_execution_epoch
            && self.next_epoch_to_settle > self.last_execution_epoch
    }
}

impl From<&crate::decide::chain_job::ChainJob> for JobLedger {
    /// An open job's ledger as the chain snapshot holds it.
    fn from(job: &crate::decide::chain_job::ChainJob) -> Self {
        Self {
            job_id: job.id,
            open: true,
            last_execution_epoch: job.last_execution_epoch,
            next_epoch_to_settle: job.next_epoch_to_settle,
        }
    }
}

/// The lowest-id closable job, whatever the order of `jobs`.
pub fn first_closable(jobs: &[JobLedger], current_epoch: u64) -> Option<u64> {
    jobs.iter()
        .filter(|job| job.is_closable(current_epoch))
        .map(|job| job.job_id)
        .min()
}

/// Whether an allocation is due (`allocateRewardsToNodes` would not revert): some finished
/// epoch is not allocated yet.
pub const fn rewards_due(current_epoch: u64, allocated_until_epoch: u64) -> bool {
    current_epoch > allocated_until_epoch
}

/// A per-oracle, per-job, per-epoch seed, so oracles draw different backoffs and the same oracle
/// draws the same one after a restart.
pub fn backoff_seed(oracle: &Address, job_id: u64, epoch: u64) -> u64 {
    let mut input = [0u8; 20 + 8 + 8];
    input[..20].copy_from_slice(oracle.as_slice());
    input[20..28].copy_from_slice(&job_id.to_be_bytes());
    input[28..].copy_from_slice(&epoch.to_be_bytes());
    let hash = keccak256(input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// One splitmix64 output: a well-mixed 64-bit value from any seed.
const fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A backoff in `min_ms..=max_ms` drawn from `seed` (bounds swapped if reversed); the same seed
/// always gives the same wait.
pub fn backoff_ms(seed: u64, range_ms: (u64, u64)) -> u64 {
    let (low, high) = if range_ms.0 <= range_ms.1 {
        range_ms
    } else {
        (range_ms.1, range_ms.0)
    };
    let span = u128::from(high - low) + 1;
    let offset = (u128::from(splitmix64(seed)) * span) >> 64;
    low + u64::try_from(offset).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(job_id: u64, open: bool, last: u64, next: u64) -> JobLedger {
        JobLedger {
            job_id,
            open,
            last_execution_epoch: last,
            next_epoch_to_settle: next,
        }
    }

    #[test]
    fn closability_branches() {
        // Ended and settled through epoch 10.
        assert!(job(1, true, 10, 11).is_closable(11));
        // Still running in its last epoch.
        assert!(!job(1, true, 10, 11).is_closable(10));
        // Ended but epoch 10 not settled.
        assert!(!job(1, true, 10, 10).is_closable(12));
        // Already closed.
        assert!(!job(1, false, 10, 11).is_closable(12));
    }

    #[test]
    fn the_lowest_closable_id_wins_in_any_order() {
        let jobs = [
            job(9, true, 1, 2),
            job(3, true, 10, 11),
            job(5, true, 1, 2),
            job(2, false, 1, 2),
        ];
        assert_eq!(first_closable(&jobs, 5), Some(5));
        let mut reversed = jobs;
        reversed.reverse();
        assert_eq!(first_closable(&reversed, 5), Some(5));
        assert_eq!(first_closable(&jobs, 20), Some(3));
        assert_eq!(first_closable(&[], 20), None);
    }

    #[test]
    fn rewards_are_due_once_an_epoch_ends() {
        assert!(!rewards_due(4, 4));
        assert!(rewards_due(5, 4));
        assert!(!rewards_due(3, 4));
    }

    #[test]
    fn backoffs_are_reproducible_and_spread() {
        let oracle = Address::with_last_byte(1);
        let seed = backoff_seed(&oracle, 7, 100);
        assert_eq!(seed, backoff_seed(&oracle, 7, 100));
        assert_ne!(seed, backoff_seed(&Address::with_last_byte(2), 7, 100));
        assert_ne!(seed, backoff_seed(&oracle, 8, 100));
        assert_ne!(seed, backoff_seed(&oracle, 7, 101));
        assert_eq!(
            backoff_ms(seed, CLOSURE_BACKOFF_MS),
            backoff_ms(seed, CLOSURE_BACKOFF_MS)
        );
        assert_eq!(backoff_ms(seed, (5, 5)), 5);
        assert_eq!(backoff_ms(0, (0, u64::MAX)), splitmix64(0));
        // 1000 seeds over 10 buckets of the closure range: every bucket gets a fair share.
        let mut buckets = [0u32; 10];
        for s in 0..1000u64 {
            let wait = backoff_ms(s, CLOSURE_BACKOFF_MS) - CLOSURE_BACKOFF_MS.0;
            let bucket =
                usize::try_from(wait * 10 / (CLOSURE_BACKOFF_MS.1 - CLOSURE_BACKOFF_MS.0 + 1))
                    .expect("small");
            buckets[bucket] += 1;
        }
        assert!(
            buckets.iter().all(|&count| (60..=140).contains(&count)),
            "{buckets:?}"
        );
    }

    proptest! {
        #[test]
        fn backoffs_stay_in_range(seed in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
            let wait = backoff_ms(seed, (a, b));
            prop_assert!(a.min(b) <= wait && wait <= a.max(b));
        }

        #[test]
        fn first_closable_is_closable_and_minimal(
            jobs in proptest::collection::vec((0u64..50, any::<bool>(), 0u64..10, 0u64..12), 0..12),
            current in 0u64..12,
        ) {
            let jobs: Vec<JobLedger> = jobs.into_iter().map(|(id, open, last, next)| job(id, open, last, next)).collect();
            match first_closable(&jobs, current) {
                Some(id) => {
                    prop_assert!(jobs.iter().any(|j| j.job_id == id && j.is_closable(current)));
                    prop_assert!(jobs.iter().all(|j| !j.is_closable(current) || j.job_id >= id));
                }
                None => prop_assert!(jobs.iter().all(|j| !j.is_closable(current))),
            }
        }
    }
}
