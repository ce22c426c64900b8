//! The PoAI manager's consensus rule, rechecked from the votes on chain: a round is decided
//! at the first vote after which the deployment's [`Quorum`] holds — enough of the registered
//! oracles have submitted and the most common proposal (the first to reach its count) has
//! enough votes.

use alloy_primitives::{Address, B256, keccak256};
use r1_contracts::Quorum;

/// What a round's votes add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Votes counted.
    pub submissions: usize,
    /// The leading proposal.
    pub best: B256,
    /// Its votes.
    pub best_count: usize,
}

/// Why an accepted proposal does not follow from its round's votes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// No vote was counted in the round.
    #[error("no vote in the round")]
    NoVotes,
    /// An oracle voted twice in the round.
    #[error("{0} voted twice")]
    TwiceBy(Address),
    /// The votes do not reach the quorum.
    #[error(
        "{submissions} of {oracles} oracles voted, {best_count} for the leading proposal: no quorum"
    )]
    NoQuorum {
        /// Votes counted.
        submissions: usize,
        /// Registered oracles.
        oracles: usize,
        /// Votes of the leading proposal.
        best_count: usize,
    },
    /// The quorum was already reached by an earlier vote, so the round would have been decided
    /// there: a vote is missing, or one too many is counted.
    #[error("decided already at vote {0}, not at the last one")]
    DecidedEarlier(usize),
    /// Another proposal leads.
    #[error("the votes elect {0}, not the accepted proposal")]
    OtherWinner(B256),
}

/// The tally of `votes` (oracle, proposal), in the order they were counted.
pub fn tally(votes: &[(Address, B256)]) -> Tally {
    let mut counts: Vec<(B256, usize)> = Vec::new();
    let mut best = Tally {
        submissions: 0,
        best: B256::ZERO,
        best_count: 0,
    };
    for (_, proposal) in votes {
        best.submissions += 1;
        let count = match counts.iter_mut().find(|(p, _)| p == proposal) {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                counts.push((*proposal, 1));
                1
            }
        };
        if count > best.best_count {
            best.best_count = count;
            best.best = *proposal;
        }
    }
    best
}

/// Whether `tally` decides a round among `oracles` registered oracles under `rule`.
pub fn decides(tally: &Tally, oracles: usize, rule: Quorum) -> bool {
    rule.decides(
        oracles as u64,
        tally.submissions as u64,
        tally.best_count as u64,
    )
}

/// Checks that a round whose votes are `votes` (the last one being the deciding vote, sent in
/// the acceptance's transaction) is decided exactly by that vote, for `accepted`, among
/// `oracles` registered oracles, under `rule`.
pub fn check(
    votes: &[(Address, B256)],
    oracles: usize,
    rule: Quorum,
    accepted: B256,
) -> Result<Tally, QuorumError> {
    if votes.is_empty() {
        return Err(QuorumError::NoVotes);
    }
    for (i, (voter, _)) in votes.iter().enumerate() {
        if votes[..i].iter().any(|(v, _)| v == voter) {
            return Err(QuorumError::TwiceBy(*voter));
        }
    }
    for end in 1..votes.len() {
        if decides(&tally(&votes[..end]), oracles, rule) {
            return Err(QuorumError::DecidedEarlier(end));
        }
    }
    let total = tally(votes);
    if !decides(&total, oracles, rule) {
        return Err(QuorumError::NoQuorum {
            submissions: total.submissions,
            oracles,
            best_count: total.best_count,
        });
    }
    if total.best != accepted {
        return Err(QuorumError::OtherWinner(total.best));
    }
    Ok(total)
}

/// The proposal hash of a node set: `keccak256(abi.encodePacked(nodes))`, each address padded
/// to 32 bytes as `encodePacked` does with array elements.
pub fn node_set_proposal(nodes: &[Address]) -> B256 {
    let mut packed = Vec::with_capacity(nodes.len() * 32);
    for node in nodes {
        packed.extend_from_slice(&[0u8; 12]);
        packed.extend_from_slice(node.as_slice());
    }
    keccak256(&packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle(byte: u8) -> Address {
        Address::repeat_byte(byte)
    }

    const A: B256 = B256::repeat_byte(0xaa);
    const B: B256 = B256::repeat_byte(0xbb);
    const R: Quorum = Quorum::Reference;

    #[test]
    fn two_of_three_decide() {
        let votes = [(oracle(1), A), (oracle(2), A)];
        assert_eq!(check(&votes, 3, R, A).map(|t| t.best_count), Ok(2));
    }

    #[test]
    fn a_missing_vote_leaves_no_quorum() {
        assert_eq!(
            check(&[(oracle(1), A)], 3, R, A),
            Err(QuorumError::NoQuorum {
                submissions: 1,
                oracles: 3,
                best_count: 1
            })
        );
    }

    #[test]
    fn a_round_is_decided_at_its_first_quorum() {
        let votes = [(oracle(1), A), (oracle(2), A), (oracle(3), A)];
        assert_eq!(check(&votes, 3, R, A), Err(QuorumError::DecidedEarlier(2)));
    }

    #[test]
    fn split_votes_wait_for_a_leader() {
        // Four oracles: three submissions are enough, and two votes lead.
        let votes = [(oracle(1), A), (oracle(2), B), (oracle(3), B)];
        assert_eq!(check(&votes, 4, R, B).map(|t| t.submissions), Ok(3));
        assert_eq!(check(&votes, 4, R, A), Err(QuorumError::OtherWinner(B)));
        assert_eq!(
            check(&[(oracle(1), A), (oracle(1), A)], 3, R, A),
            Err(QuorumError::TwiceBy(oracle(1)))
        );
    }

    #[test]
    fn the_byzantine_rule_waits_for_two_thirds() {
        let votes = [(oracle(1), A), (oracle(2), A), (oracle(3), B)];
        let byzantine = Quorum::Byzantine;
        assert_eq!(
            check(&votes[..2], 3, byzantine, A),
            Err(QuorumError::NoQuorum {
                submissions: 2,
                oracles: 3,
                best_count: 2
            })
        );
        let all = [(oracle(1), A), (oracle(2), A), (oracle(3), A)];
        assert_eq!(check(&all, 3, byzantine, A).map(|t| t.best_count), Ok(3));
        assert_eq!(
            check(&votes, 3, byzantine, A),
            Err(QuorumError::NoQuorum {
                submissions: 3,
                oracles: 3,
                best_count: 2
            })
        );
    }

    #[test]
    fn the_proposal_hash_pads_every_address() {
        // keccak256 of nothing, and of one address padded to a word.
        assert_eq!(node_set_proposal(&[]), keccak256([]));
        let one = oracle(0x11);
        let mut word = [0u8; 32];
        word[12..].copy_from_slice(one.as_slice());
        assert_eq!(node_set_proposal(&[one]), keccak256(word));
    }
}
