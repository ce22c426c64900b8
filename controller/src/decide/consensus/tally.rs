//! One consensus round, counted exactly like `PoAIManager._vote`.
//!
//! After every vote: if fewer than `⌊n/2⌋+1` oracles have submitted, nothing happens; otherwise
//! the round is decided when the best proposal has at least `⌊n/3⌋+1` votes, and not reached
//! (`ConsensusNotReached`) when it has fewer. The best proposal is the first one to reach the
//! highest count (a later proposal replaces it only with strictly more votes), so the winner
//! depends on the order of the votes, as on chain. `n` is the number of active oracles when the
//! vote lands.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256};

/// Submissions needed before the contract evaluates a round: `⌊n/2⌋+1`.
pub const fn submission_quorum(oracles: usize) -> usize {
    oracles / 2 + 1
}

/// Votes the best proposal needs to win: `⌊n/3⌋+1`.
pub const fn decision_threshold(oracles: usize) -> usize {
    oracles / 3 + 1
}

/// What the contract concludes right after a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Fewer than `⌊n/2⌋+1` submissions: not evaluated yet.
    Waiting {
        /// Submissions so far.
        submissions: usize,
        /// Submissions needed.
        quorum: usize,
    },
    /// Evaluated, but no proposal has `⌊n/3⌋+1` votes (`ConsensusNotReached`).
    NotReached {
        /// Submissions so far.
        submissions: usize,
        /// Votes of the best proposal.
        best_count: usize,
    },
    /// The proposal that won.
    Decided(B256),
}

/// A vote the contract would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// One vote per oracle per round (`AlreadyVoted`).
    #[error("oracle {0} already voted in this round")]
    AlreadyVoted(Address),
}

/// The state of one round: who voted, for what, and the running best.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    epoch: u64,
    submissions: usize,
    best_count: usize,
    best: B256,
    votes: BTreeMap<B256, usize>,
    voted: BTreeSet<Address>,
}

impl Tally {
    /// An empty round.
    pub fn new() -> Self {
        Self::default()
    }

    /// Epoch of the round's first submission (0 while empty).
    pub const fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Submissions so far.
    pub const fn submissions(&self) -> usize {
        self.submissions
    }

    /// Whether `oracle` already voted in this round.
    pub fn has_voted(&self, oracle: &Address) -> bool {
        self.voted.contains(oracle)
    }

    /// Votes for `proposal` so far.
    pub fn votes_for(&self, proposal: &B256) -> usize {
        self.votes.get(proposal).copied().unwrap_or(0)
    }

    /// The running best proposal and its votes (`None` while empty).
    pub fn best(&self) -> Option<(B256, usize)> {
        (self.best_count > 0).then_some((self.best, self.best_count))
    }

    /// Records `oracle`'s vote for `proposal` in `epoch` with `oracles` active oracles.
    pub fn vote(
        &mut self,
        oracle: Address,
        proposal: B256,
        epoch: u64,
        oracles: usize,
    ) -> Result<VoteOutcome, VoteError> {
        if !self.voted.insert(oracle) {
            return Err(VoteError::AlreadyVoted(oracle));
        }
        if self.submissions == 0 {
            self.epoch = epoch;
        }
        self.submissions += 1;
        let count = self.votes.entry(proposal).or_insert(0);
        *count += 1;
        if *count > self.best_count {
            self.best_count = *count;
            self.best = proposal;
        }
        Ok(self.outcome(oracles))
    }

    /// What the contract would conclude now with `oracles` active oracles.
    pub const fn outcome(&self, oracles: usize) -> VoteOutcome {
        let quorum = submission_quorum(oracles);
        if self.submissions < quorum {
            return VoteOutcome::Waiting {
                submissions: self.submissions,
                quorum,
            };
        }
        if self.best_count < decision_threshold(oracles) {
            return VoteOutcome::NotReached {
                submissions: self.submissions,
                best_count: self.best_count,
            };
        }
        VoteOutcome::Decided(self.best)
    }
}

/// Replays `votes` in order into a fresh round with `oracles` active oracles and returns the
/// outcome: the first decision if one happens (later votes would land in the next round), else
/// the outcome after the last vote.
pub fn predict(
    oracles: usize,
    epoch: u64,
    votes: &[(Address, B256)],
) -> Result<VoteOutcome, VoteError> {
    let mut tally = Tally::new();
    let mut outcome = tally.outcome(oracles);
    for &(oracle, proposal) in votes {
        outcome = tally.vote(oracle, proposal, epoch, oracles)?;
        if matches!(outcome, VoteOutcome::Decided(_)) {
            break;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn oracle(i: usize) -> Address {
        Address::with_last_byte(u8::try_from(i + 1).expect("small"))
    }

    fn proposal(p: u8) -> B256 {
        B256::with_last_byte(p + 1)
    }

    /// The rule restated independently: after the k-th vote, decided iff k ≥ ⌊n/2⌋+1 and some
    /// proposal has ≥ ⌊n/3⌋+1 votes; the winner is the proposal that first reached the highest
    /// count among the first k votes. Written with the contract's `+ 1` on purpose.
    #[allow(clippy::int_plus_one)]
    fn reference(n: usize, votes: &[u8]) -> VoteOutcome {
        for k in 1..=votes.len() {
            let prefix = &votes[..k];
            let mut counts = BTreeMap::new();
            let mut reached_at: BTreeMap<(u8, usize), usize> = BTreeMap::new();
            for (i, &p) in prefix.iter().enumerate() {
                let c = counts.entry(p).or_insert(0usize);
                *c += 1;
                reached_at.insert((p, *c), i);
            }
            let max = counts.values().copied().max().unwrap_or(0);
            let winner = counts
                .iter()
                .filter(|&(_, &c)| c == max)
                .min_by_key(|&(&p, _)| reached_at[&(p, max)])
                .map(|(&p, _)| p);
            let last = k == votes.len();
            if k >= n / 2 + 1 {
                if max >= n / 3 + 1 {
                    return VoteOutcome::Decided(proposal(winner.expect("non-empty")));
                }
                if last {
                    return VoteOutcome::NotReached {
                        submissions: k,
                        best_count: max,
                    };
                }
            } else if last {
                return VoteOutcome::Waiting {
                    submissions: k,
                    quorum: n / 2 + 1,
                };
            }
        }
        VoteOutcome::Waiting {
            submissions: 0,
            quorum: n / 2 + 1,
        }
    }

    #[test]
    fn thresholds() {
        let table = [
            (1, 1, 1),
            (2, 2, 1),
            (3, 2, 2),
            (4, 3, 2),
            (5, 3, 2),
            (6, 4, 3),
            (7, 4, 3),
            (10, 6, 4),
        ];
        for (n, quorum, threshold) in table {
            assert_eq!(
                (submission_quorum(n), decision_threshold(n)),
                (quorum, threshold),
                "n = {n}"
            );
        }
    }

    #[test]
    fn double_votes_are_refused() {
        let mut tally = Tally::new();
        assert!(tally.vote(oracle(0), proposal(0), 5, 4).is_ok());
        assert_eq!(
            tally.vote(oracle(0), proposal(1), 5, 4),
            Err(VoteError::AlreadyVoted(oracle(0)))
        );
        assert_eq!(tally.submissions(), 1);
        assert_eq!(tally.epoch(), 5);
        assert!(tally.has_voted(&oracle(0)));
        assert_eq!(tally.votes_for(&proposal(0)), 1);
    }

    #[test]
    fn four_oracles_split_two_two_decides_for_the_first_to_two() {
        // n = 4: quorum 3, threshold 2. Votes A, B, B: after the third, B has 2 → decided B.
        let votes = [
            (oracle(0), proposal(0)),
            (oracle(1), proposal(1)),
            (oracle(2), proposal(1)),
        ];
        assert_eq!(predict(4, 0, &votes), Ok(VoteOutcome::Decided(proposal(1))));
        // A, B, C: quorum met, best has 1 < 2 → not reached; a fourth vote for B decides B.
        let mut votes = vec![
            (oracle(0), proposal(0)),
            (oracle(1), proposal(1)),
            (oracle(2), proposal(2)),
        ];
        assert_eq!(
            predict(4, 0, &votes),
            Ok(VoteOutcome::NotReached {
                submissions: 3,
                best_count: 1
            })
        );
        votes.push((oracle(3), proposal(1)));
        assert_eq!(predict(4, 0, &votes), Ok(VoteOutcome::Decided(proposal(1))));
    }

    #[test]
    fn ties_go_to_the_first_proposal_to_reach_the_count() {
        // n = 6: quorum 4, threshold 3. A A B B B A: after the 5th vote B has 3 → B, although A
        // ends with 3 too.
        let order = [0u8, 0, 1, 1, 1, 0];
        let votes: Vec<_> = order
            .iter()
            .enumerate()
            .map(|(i, &p)| (oracle(i), proposal(p)))
            .collect();
        assert_eq!(predict(6, 0, &votes), Ok(VoteOutcome::Decided(proposal(1))));
        // n = 9: quorum 5, threshold 4. A A A B B B B A: best is A until B reaches 4 with the 7th
        // vote, so B wins.
        let order = [0u8, 0, 0, 1, 1, 1, 1, 0];
        let votes: Vec<_> = order
            .iter()
            .enumerate()
            .map(|(i, &p)| (oracle(i), proposal(p)))
            .collect();
        assert_eq!(predict(9, 0, &votes), Ok(VoteOutcome::Decided(proposal(1))));
    }

    #[test]
    fn exhaustive_small_rounds_match_the_restated_rule() {
        // Every sequence of votes over 3 proposals by up to n oracles, for n = 1..=6.
        for n in 1usize..=6 {
            for len in 0..=n {
                for code in 0..3usize.pow(len as u32) {
                    let mut c = code;
                    let order: Vec<u8> = (0..len)
                        .map(|_| {
                            let p = u8::try_from(c % 3).expect("small");
                            c /= 3;
                            p
                        })
                        .collect();
                    let votes: Vec<_> = order
                        .iter()
                        .enumerate()
                        .map(|(i, &p)| (oracle(i), proposal(p)))
                        .collect();
                    assert_eq!(
                        predict(n, 0, &votes),
                        Ok(reference(n, &order)),
                        "n = {n}, votes {order:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn exhaustive_small_rounds_with_fewer_than_a_third_byzantine_never_elect_a_byzantine_set() {
        // Honest oracles all propose 0; byzantine ones (f ≤ ⌊n/3⌋, i.e. f < threshold) propose 1
        // or 2; every order of arrival. A decision, whenever taken, is the honest proposal, and
        // once everyone voted a decision has been taken.
        for n in 1usize..=7 {
            for f in 0..=n / 3 {
                for code in 0..(3usize * n).pow(2) {
                    // A cheap family of orders: rotate honest/byzantine positions.
                    let shift = code % n;
                    let colours = code / n;
                    let order: Vec<u8> = (0..n)
                        .map(|i| {
                            let slot = (i + shift) % n;
                            if slot < f {
                                1 + u8::try_from((colours >> slot) & 1).expect("bit")
                            } else {
                                0
                            }
                        })
                        .collect();
                    let votes: Vec<_> = order
                        .iter()
                        .enumerate()
                        .map(|(i, &p)| (oracle(i), proposal(p)))
                        .collect();
                    let outcome = predict(n, 0, &votes).expect("distinct oracles");
                    assert_eq!(
                        outcome,
                        VoteOutcome::Decided(proposal(0)),
                        "n = {n}, votes {order:?}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn byzantine_minority_cannot_win(
            n in 1usize..30,
            byzantine_fraction in 0.0f64..0.34,
            honest_split in proptest::collection::vec(0u8..3, 30),
            byzantine_choice in proptest::collection::vec(3u8..6, 30),
            seed in any::<u64>(),
        ) {
            // Byzantine oracles vote only for proposals 3..6; honest ones split over 0..3.
            let f = ((n as f64) * byzantine_fraction) as usize;
            prop_assume!(f < decision_threshold(n));
            let mut order: Vec<u8> = (0..n).map(|i| if i < f { byzantine_choice[i] } else { honest_split[i] }).collect();
            // Deterministic shuffle from the seed.
            let mut s = seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            let votes: Vec<_> = order.iter().enumerate().map(|(i, &p)| (oracle(i), proposal(p))).collect();
            if let VoteOutcome::Decided(winner) = predict(n, 0, &votes).expect("distinct oracles") {
                prop_assert!((0..3).any(|p| winner == proposal(p)));
            }
        }
    }
}
