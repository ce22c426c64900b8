//! The PoAI manager's vote rule, replayed off-chain.
//!
//! Oracles use it to predict what the contract will do with the submissions they know of (skip
//! a vote that cannot change the outcome, tell "waiting" from "not reached" in conditions) and
//! to hash proposals exactly as the contract does, so a locally computed node set can be matched
//! against `NodeUpdateSubmitted` events.
//!
//! * [`proposal`]: proposal hashes and round keys, byte-for-byte as in `PoAIManager.sol`.
//! * [`tally`]: one round's vote counting (`_vote`).
//! * [`rounds`]: the node-set rounds of one job and the availability round of one epoch.

pub mod proposal;
pub mod rounds;
pub mod tally;

pub use proposal::{ProposalError, availability_proposal, node_set_proposal, sorted_node_set};
pub use rounds::{AvailabilityRound, NodeSetRounds, RoundError, RoundVote};
pub use tally::{Tally, VoteError, VoteOutcome, decision_threshold, predict, submission_quorum};
