//! Node-set votes cast in batches: one `submitNodeUpdates` transaction carries every vote an
//! oracle's pass decided, instead of one transaction (and one wait) per job. Votes made moot by
//! timing are skipped by the contract and reported here per job.

use alloy::primitives::{Address, U256};
use alloy::rpc::types::TransactionReceipt;

use crate::bindings::PoAIManager;
use crate::client::{Suite, VoteOutcome, vote_gas_headroom};
use crate::error::Result;
use crate::tx::confirm;

/// The most gas one batch may reserve: half a 30 M block, so a batch is always minable beside
/// other transactions. A pass with more votes sends several batches.
pub const BATCH_GAS_BUDGET: u64 = 15_000_000;

/// A vote's own gas before its headroom, assumed when splitting votes into batches (a counting
/// vote of a two-node set measures about 60 000 on the Hardhat EDR node).
const VOTE_GAS_ESTIMATE: u64 = 90_000;

/// One node-set vote to cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ballot {
    /// The chain job.
    pub job: u64,
    /// The node set this oracle sees running it (empty closes the job); sorted when sent.
    pub nodes: Vec<Address>,
    /// How many nodes the chain holds active for the job now (a deciding vote settles them).
    pub active: usize,
}

impl Ballot {
    /// Gas this vote may take beyond its estimate should it decide (see [`vote_gas_headroom`]).
    fn headroom(&self) -> u64 {
        vote_gas_headroom(self.nodes.len().max(self.active))
    }
}

/// Why the contract skipped a vote of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The job is closed.
    Closed,
    /// The job's last decision is too recent; a vote counts from `ready_at` (unix seconds).
    Cooldown {
        /// When the cooldown ends.
        ready_at: u64,
    },
    /// This oracle's vote of the job's current round is already counted.
    AlreadyVoted,
}

/// What became of one vote of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BallotOutcome {
    /// Counted (and perhaps deciding).
    Counted(VoteOutcome),
    /// Skipped by the contract.
    Skipped(Skip),
}

/// What one batch transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    /// Each ballot's outcome, by job.
    pub outcomes: Vec<(u64, BallotOutcome)>,
    /// The gas the transaction used.
    pub gas_used: u64,
}

/// Splits `ballots` into batches whose reserved gas stays within [`BATCH_GAS_BUDGET`]; every
/// batch holds at least one ballot.
pub fn batches(ballots: &[Ballot]) -> Vec<&[Ballot]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut reserved = 0u64;
    for (i, ballot) in ballots.iter().enumerate() {
        let gas = VOTE_GAS_ESTIMATE.saturating_add(ballot.headroom());
        if i > start && reserved.saturating_add(gas) > BATCH_GAS_BUDGET {
            out.push(&ballots[start..i]);
            start = i;
            reserved = 0;
        }
        reserved = reserved.saturating_add(gas);
    }
    if start < ballots.len() {
        out.push(&ballots[start..]);
    }
    out
}

/// Each ballot's outcome as the batch's receipt records it, for `oracle`'s votes; a ballot the
/// receipt says nothing of (which the contract never does) is left out.
pub fn outcomes(
    receipt: &TransactionReceipt,
    oracle: Address,
    ballots: &[Ballot],
) -> Vec<(u64, BallotOutcome)> {
    let mut found = Vec::with_capacity(ballots.len());
    for log in receipt.logs() {
        if let Ok(skipped) = log.log_decode::<PoAIManager::NodeUpdateSkipped>() {
            let event = &skipped.inner.data;
            if event.oracle != oracle {
                continue;
            }
            let skip = match event.reason {
                1 => Skip::Closed,
                2 => Skip::Cooldown {
                    ready_at: u64::try_from(event.readyAt).unwrap_or(u64::MAX),
                },
                _ => Skip::AlreadyVoted,
            };
            found.push((job_id(event.jobId), BallotOutcome::Skipped(skip)));
        } else if let Ok(submitted) = log.log_decode::<PoAIManager::NodeUpdateSubmitted>() {
            let event = &submitted.inner.data;
            if event.oracle == oracle {
                found.push((
                    job_id(event.jobId),
                    BallotOutcome::Counted(VoteOutcome::Pending),
                ));
            }
        } else if let Ok(accepted) = log.log_decode::<PoAIManager::NodeUpdateAccepted>() {
            let event = &accepted.inner.data;
            let job = job_id(event.jobId);
            if let Some((_, outcome)) = found.iter_mut().rev().find(|(j, _)| *j == job) {
                *outcome = BallotOutcome::Counted(VoteOutcome::Accepted(event.nodes.clone()));
            }
        }
    }
    found.retain(|(job, _)| ballots.iter().any(|b| b.job == *job));
    found
}

fn job_id(id: U256) -> u64 {
    u64::try_from(id).unwrap_or(u64::MAX)
}

impl Suite {
    /// Casts `ballots` (at most one per job) in one `submitNodeUpdates` transaction, with gas
    /// for every vote that decides, and returns each vote's outcome and the gas used. A refusal other than the
    /// moot ones the contract skips fails the whole batch with the contract's error, as
    /// [`Suite::submit_node_update`] would for that vote alone.
    pub async fn submit_node_updates(&self, ballots: &[Ballot]) -> Result<Cast> {
        let (jobs, sets): (Vec<U256>, Vec<Vec<Address>>) = ballots
            .iter()
            .map(|b| {
                let mut sorted = b.nodes.clone();
                sorted.sort();
                (U256::from(b.job), sorted)
            })
            .unzip();
        let manager = self.manager();
        let call = manager.submitNodeUpdates(jobs, sets);
        let estimate = call.estimate_gas().await?;
        let headroom = ballots
            .iter()
            .map(Ballot::headroom)
            .fold(0u64, u64::saturating_add);
        let receipt = confirm(call.gas(estimate.saturating_add(headroom))).await?;
        Ok(Cast {
            outcomes: outcomes(&receipt, self.address(), ballots),
            gas_used: receipt.gas_used,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot(job: u64, nodes: usize) -> Ballot {
        Ballot {
            job,
            nodes: vec![Address::ZERO; nodes],
            active: 0,
        }
    }

    #[test]
    fn batches_stay_within_the_gas_budget_and_keep_every_ballot_once() {
        let ballots: Vec<Ballot> = (0..200).map(|j| ballot(j, (j % 5) as usize)).collect();
        let split = batches(&ballots);
        assert!(split.len() > 1);
        let mut seen = Vec::new();
        for batch in &split {
            let reserved: u64 = batch.iter().map(|b| VOTE_GAS_ESTIMATE + b.headroom()).sum();
            assert!(reserved <= BATCH_GAS_BUDGET, "{reserved}");
            seen.extend(batch.iter().map(|b| b.job));
        }
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_ballot_over_the_budget_goes_alone() {
        let ballots = vec![ballot(1, 1), ballot(2, 200), ballot(3, 1)];
        let split = batches(&ballots);
        assert_eq!(split.iter().map(|b| b.len()).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(batches(&[]).is_empty());
    }
}
