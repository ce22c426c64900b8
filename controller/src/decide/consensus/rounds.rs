//! The rounds around [`Tally`], as `submitNodeUpdate` and `submitAvailability` keep them.
//!
//! Node sets: each job has a current round. A round that already has submissions from an earlier
//! epoch is abandoned for a fresh one (so stale votes never mix with new ones), and a decision
//! moves the job to the next round. An accepted empty set closes the job.
//!
//! Availability: one round per finished epoch; once decided the epoch is recorded and further
//! submissions are refused.

use alloy_primitives::{Address, B256};

use super::proposal::{ProposalError, availability_proposal, node_set_proposal};
use super::tally::{Tally, VoteError, VoteOutcome};

/// A submission the contract would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoundError {
    /// The node list or table is malformed.
    #[error(transparent)]
    Proposal(#[from] ProposalError),
    /// The oracle already voted in this round.
    #[error(transparent)]
    Vote(#[from] VoteError),
    /// More nodes than the job pays for (`TooManyNodes`).
    #[error("{proposed} nodes proposed but the job pays for {requested}")]
    TooManyNodes {
        /// Nodes in the proposal.
        proposed: usize,
        /// Nodes the job requested.
        requested: usize,
    },
    /// The job was closed by an accepted empty set (`JobClosed`).
    #[error("the job is closed")]
    JobClosed,
    /// Availability of an epoch that has not ended (`EpochNotEnded`).
    #[error("epoch {epoch} has not ended (current epoch {current})")]
    EpochNotEnded {
        /// Epoch of the table.
        epoch: u64,
        /// Current epoch.
        current: u64,
    },
    /// The epoch's availability is already recorded (`AvailabilityAlreadyRecorded`).
    #[error("availability of epoch {0} is already recorded")]
    AlreadyRecorded(u64),
}

/// One accepted submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundVote {
    /// Round the vote landed in (always 0 for availability).
    pub round: u64,
    /// Hash of what was proposed.
    pub proposal: B256,
    /// The round's outcome after this vote.
    pub outcome: VoteOutcome,
}

/// The node-set consensus of one job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSetRounds {
    round: u64,
    tally: Tally,
    closed: bool,
    accepted: Option<Vec<Address>>,
}

impl NodeSetRounds {
    /// A job nobody has voted on.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current round number (`jobRound`).
    pub const fn round(&self) -> u64 {
        self.round
    }

    /// Whether an empty set was accepted.
    pub const fn is_closed(&self) -> bool {
        self.closed
    }

    /// The last accepted node set (`activeNodes`), if any.
    pub fn accepted(&self) -> Option<&[Address]> {
        self.accepted.as_deref()
    }

    /// `oracle` submits `nodes` (sorted) for a job paying for `requested` nodes, in `epoch`,
    /// with `oracles` active oracles.
    pub fn submit(
        &mut self,
        oracle: Address,
        nodes: &[Address],
        requested: usize,
        epoch: u64,
        oracles: usize,
    ) -> Result<RoundVote, RoundError> {
        if self.closed {
            return Err(RoundError::JobClosed);
        }
        let proposal = node_set_proposal(nodes)?;
        if nodes.len() > requested {
            return Err(RoundError::TooManyNodes {
                proposed: nodes.len(),
                requested,
            });
        }
        if self.tally.submissions() > 0 && self.tally.epoch() != epoch {
            self.round += 1;
            self.tally = Tally::new();
        }
        let round = self.round;
        let outcome = self.tally.vote(oracle, proposal, epoch, oracles)?;
        if matches!(outcome, VoteOutcome::Decided(_)) {
            self.round += 1;
            self.tally = Tally::new();
        }
        Ok(RoundVote {
            round,
            proposal,
            outcome,
        })
    }

    /// Records the node list of a decided proposal (the caller knows the list behind each hash,
    /// as the contract does): an empty list closes the job.
    pub fn apply(&mut self, nodes: &[Address]) {
        self.closed = nodes.is_empty();
        self.accepted = Some(nodes.to_vec());
    }
}

/// The availability consensus of one epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityRound {
    epoch: u64,
    tally: Tally,
    recorded: Option<B256>,
}

impl AvailabilityRound {
    /// The round of `epoch`.
    pub fn new(epoch: u64) -> Self {
        Self {
            epoch,
            tally: Tally::new(),
            recorded: None,
        }
    }

    /// The recorded table's proposal hash, once decided.
    pub const fn recorded(&self) -> Option<B256> {
        self.recorded
    }

    /// `oracle` submits its table (`nodes` sorted, one byte each) during `current_epoch`.
    pub fn submit(
        &mut self,
        oracle: Address,
        nodes: &[Address],
        availability: &[u8],
        current_epoch: u64,
        oracles: usize,
    ) -> Result<RoundVote, RoundError> {
        if self.epoch >= current_epoch {
            return Err(RoundError::EpochNotEnded {
                epoch: self.epoch,
                current: current_epoch,
            });
        }
        if self.recorded.is_some() {
            return Err(RoundError::AlreadyRecorded(self.epoch));
        }
        let proposal = availability_proposal(nodes, availability)?;
        let outcome = self.tally.vote(oracle, proposal, current_epoch, oracles)?;
        if let VoteOutcome::Decided(winner) = outcome {
            self.recorded = Some(winner);
        }
        Ok(RoundVote {
            round: 0,
            proposal,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Address {
        Address::with_last_byte(i)
    }

    #[test]
    fn a_decision_opens_the_next_round() {
        let mut job = NodeSetRounds::new();
        let set = [addr(10), addr(11)];
        // n = 3: quorum 2, threshold 2.
        let first = job.submit(addr(1), &set, 2, 5, 3).expect("accepted");
        assert_eq!(first.round, 0);
        assert!(matches!(
            first.outcome,
            VoteOutcome::Waiting {
                submissions: 1,
                quorum: 2
            }
        ));
        let second = job.submit(addr(2), &set, 2, 5, 3).expect("accepted");
        assert_eq!(second.outcome, VoteOutcome::Decided(first.proposal));
        assert_eq!(job.round(), 1);
        job.apply(&set);
        assert_eq!(job.accepted(), Some(&set[..]));
        // The third oracle's vote lands in round 1.
        let third = job.submit(addr(3), &set, 2, 5, 3).expect("accepted");
        assert_eq!(third.round, 1);
    }

    #[test]
    fn a_stale_round_is_abandoned_in_a_new_epoch() {
        let mut job = NodeSetRounds::new();
        let set = [addr(10)];
        job.submit(addr(1), &set, 1, 5, 3).expect("accepted");
        // Same oracle, next epoch: a fresh round, so no AlreadyVoted.
        let vote = job.submit(addr(1), &set, 1, 6, 3).expect("accepted");
        assert_eq!(vote.round, 1);
        assert!(matches!(
            vote.outcome,
            VoteOutcome::Waiting { submissions: 1, .. }
        ));
        // Same epoch again: refused.
        assert_eq!(
            job.submit(addr(1), &set, 1, 6, 3),
            Err(RoundError::Vote(VoteError::AlreadyVoted(addr(1))))
        );
    }

    #[test]
    fn malformed_submissions_are_refused() {
        let mut job = NodeSetRounds::new();
        assert_eq!(
            job.submit(addr(1), &[addr(10), addr(11)], 1, 0, 3),
            Err(RoundError::TooManyNodes {
                proposed: 2,
                requested: 1
            })
        );
        assert!(matches!(
            job.submit(addr(1), &[addr(11), addr(10)], 2, 0, 3),
            Err(RoundError::Proposal(_))
        ));
    }

    #[test]
    fn an_accepted_empty_set_closes_the_job() {
        let mut job = NodeSetRounds::new();
        let vote = job.submit(addr(1), &[], 1, 0, 1).expect("accepted");
        assert!(matches!(vote.outcome, VoteOutcome::Decided(_)));
        job.apply(&[]);
        assert!(job.is_closed());
        assert_eq!(
            job.submit(addr(2), &[], 1, 0, 1),
            Err(RoundError::JobClosed)
        );
    }

    #[test]
    fn availability_rounds() {
        let mut round = AvailabilityRound::new(4);
        let nodes = [addr(10), addr(11)];
        assert_eq!(
            round.submit(addr(1), &nodes, &[255, 200], 4, 3),
            Err(RoundError::EpochNotEnded {
                epoch: 4,
                current: 4
            })
        );
        round
            .submit(addr(1), &nodes, &[255, 200], 5, 3)
            .expect("accepted");
        let vote = round
            .submit(addr(2), &nodes, &[255, 200], 5, 3)
            .expect("accepted");
        assert_eq!(vote.outcome, VoteOutcome::Decided(vote.proposal));
        assert_eq!(round.recorded(), Some(vote.proposal));
        assert_eq!(
            round.submit(addr(3), &nodes, &[255, 200], 5, 3),
            Err(RoundError::AlreadyRecorded(4))
        );
        let mut other = AvailabilityRound::new(1);
        assert!(matches!(
            other.submit(addr(1), &nodes, &[1], 5, 3),
            Err(RoundError::Proposal(_))
        ));
    }
}
