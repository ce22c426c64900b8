//! What the PoAI manager's consensus recorded, read back from its events: every node-set and
//! availability vote (who voted what, in which round) and every decision. Scenarios use it to
//! prove on chain that no oracle voted twice and that a lying oracle lost.
//!
//! Every read here goes through [`read`], which tries twice: see there why.
//!
//! Votes that would revert (an oracle voting twice in a round, for instance) fail during gas
//! estimation and leave no trace here: the oracle's own log is where such an attempt shows.

use std::collections::BTreeMap;
use std::future::Future;

use alloy::contract::Event;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolEvent;

use crate::chain::{ChainError, TestChain};

/// One node-set vote the manager counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSetVote {
    /// The consensus round it counted in.
    pub round: u64,
    /// The oracle that voted.
    pub oracle: Address,
    /// Hash of the proposed (sorted) node set.
    pub proposal: B256,
}

/// A node set the manager accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedNodeSet {
    /// The round that decided it.
    pub round: u64,
    /// Hash of the winning proposal.
    pub proposal: B256,
    /// The nodes (empty closes the job).
    pub nodes: Vec<Address>,
}

/// One availability vote the manager counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailabilityVote {
    /// The oracle that voted.
    pub oracle: Address,
    /// Hash of its table.
    pub proposal: B256,
}

/// Runs `call` on the chain's runtime with [`crate::scenario::read_chain`]'s retries, for the
/// async reads the event queries here are made of.
pub fn read<T, E, F: Future<Output = Result<T, E>>>(
    chain: &TestChain,
    call: impl Fn() -> F,
) -> Result<T, E> {
    crate::scenario::read_chain(|| chain.block_on(call()))
}

/// Every event `filter` matches since the first block, oldest first.
fn all_events<P: Provider, E: SolEvent>(
    chain: &TestChain,
    filter: Event<P, E>,
) -> Result<Vec<E>, ChainError> {
    let filter = filter.from_block(0);
    let logs = read(chain, || filter.query()).map_err(r1_contracts::Error::from)?;
    Ok(logs.into_iter().map(|(event, _)| event).collect())
}

/// Every node-set vote counted for `job`, oldest first.
pub fn node_set_votes(chain: &TestChain, job: u64) -> Result<Vec<NodeSetVote>, ChainError> {
    let events = all_events(chain, chain.gov().manager().NodeUpdateSubmitted_filter())?;
    Ok(events
        .into_iter()
        .filter(|event| event.jobId == U256::from(job))
        .map(|event| NodeSetVote {
            round: to_u64(event.round),
            oracle: event.oracle,
            proposal: event.proposal,
        })
        .collect())
}

/// Every node set accepted for `job`, oldest first.
pub fn accepted_node_sets(chain: &TestChain, job: u64) -> Result<Vec<AcceptedNodeSet>, ChainError> {
    let events = all_events(chain, chain.gov().manager().NodeUpdateAccepted_filter())?;
    Ok(events
        .into_iter()
        .filter(|event| event.jobId == U256::from(job))
        .map(|event| AcceptedNodeSet {
            round: to_u64(event.round),
            proposal: event.proposal,
            nodes: event.nodes,
        })
        .collect())
}

/// Every availability vote counted for `epoch`, oldest first.
pub fn availability_votes(
    chain: &TestChain,
    epoch: u64,
) -> Result<Vec<AvailabilityVote>, ChainError> {
    let events = all_events(chain, chain.gov().manager().AvailabilitySubmitted_filter())?;
    Ok(events
        .into_iter()
        .filter(|event| event.epoch == U256::from(epoch))
        .map(|event| AvailabilityVote {
            oracle: event.oracle,
            proposal: event.proposal,
        })
        .collect())
}

/// The winning availability proposal of `epoch`, once one was accepted.
pub fn accepted_availability(chain: &TestChain, epoch: u64) -> Result<Option<B256>, ChainError> {
    let events = all_events(chain, chain.gov().manager().AvailabilityAccepted_filter())?;
    Ok(events
        .into_iter()
        .find(|event| event.epoch == U256::from(epoch))
        .map(|event| event.proposal))
}

/// The availability byte the Node Deed recorded (and paid PoA for) per node in `epoch`.
pub fn recorded_availability(
    chain: &TestChain,
    epoch: u64,
) -> Result<BTreeMap<Address, u8>, ChainError> {
    let events = all_events(chain, chain.gov().node_deed().PoaMinted_filter())?;
    Ok(events
        .into_iter()
        .filter(|event| event.epoch == U256::from(epoch))
        .map(|event| (event.node, event.availability))
        .collect())
}

fn to_u64(value: U256) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}
