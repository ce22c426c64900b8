//! A chain job's money as the chain's events tell it: when it was requested, validated and
//! closed (block times), every span of seconds settled and what it paid, the refund, and the
//! manager's burns and PoA mints alongside. Scenarios check these figures against the escrow's
//! rule, computed here from the same block times: a job buys node time by the second, each
//! node paid `⌊price × seconds / epoch⌋` per settled span, 15 % of it (rounded down) burned.

use alloy::primitives::U256;
use alloy::providers::Provider;
use r1_contracts::history::{self, Fact};

use crate::network::Network;
use crate::scenario::{ScenarioError, read_chain};

/// One settlement of a job: the seconds `[from, to)` paid to `nodes_paid` nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// First second paid (unix time).
    pub from: u64,
    /// First second not paid.
    pub to: u64,
    /// Nodes paid.
    pub nodes_paid: u64,
    /// USDC units credited to them in all.
    pub to_nodes: U256,
    /// USDC units burned.
    pub burned: U256,
}

/// One job's story, read from the block after the scenario's first through `until_block`.
#[derive(Debug, Clone)]
pub struct JobStory {
    /// The last block read.
    pub until_block: u64,
    /// Block time of its creation.
    pub created_at: Option<u64>,
    /// Block time of its first agreed node set.
    pub validated_at: Option<u64>,
    /// Block time of the agreed empty set that closed it.
    pub closed_at: Option<u64>,
    /// Its settlements, in chain order.
    pub settlements: Vec<Settlement>,
    /// The refund of every `JobClosed` it emitted (one, when it closed once).
    pub refunds: Vec<U256>,
    /// USDC the manager swapped and burned meanwhile (all jobs).
    pub swapped_usdc: U256,
    /// R1 burned by those swaps.
    pub r1_burned: U256,
    /// R1 minted as PoA meanwhile.
    pub r1_mined: U256,
}

impl JobStory {
    /// Reads job `job`'s story from the network's chain, from the block after `from_block`.
    pub fn read(network: &Network, job: u64, from_block: u64) -> Result<Self, ScenarioError> {
        let chain = network.chain();
        let history = read_chain(|| {
            chain.block_on(
                chain
                    .gov()
                    .history(from_block + 1, &history::Limits::default()),
            )
        })
        .map_err(chain_error)?;
        let mut story = JobStory {
            until_block: history.until_block,
            created_at: None,
            validated_at: None,
            closed_at: None,
            settlements: Vec::new(),
            refunds: Vec::new(),
            swapped_usdc: U256::ZERO,
            r1_burned: U256::ZERO,
            r1_mined: U256::ZERO,
        };
        for entry in &history.entries {
            let at = history.time_of(entry);
            match &entry.fact {
                Fact::JobCreated { job: j, .. } if *j == job => story.created_at = at,
                Fact::NodeUpdateAccepted { job: j, nodes, .. } if *j == job => {
                    if nodes.is_empty() {
                        story.closed_at = at;
                    } else if story.validated_at.is_none() {
                        story.validated_at = at;
                    }
                }
                Fact::Settled {
                    job: j,
                    from,
                    to,
                    nodes_paid,
                    to_nodes,
                    burned,
                    ..
                } if *j == job => story.settlements.push(Settlement {
                    from: *from,
                    to: *to,
                    nodes_paid: *nodes_paid,
                    to_nodes: *to_nodes,
                    burned: *burned,
                }),
                Fact::JobClosed {
                    job: j, refunded, ..
                } if *j == job => story.refunds.push(*refunded),
                Fact::FeesBurned { usdc, r1 } => {
                    story.swapped_usdc += *usdc;
                    story.r1_burned += *r1;
                }
                Fact::PoaMinted { amount, .. } => story.r1_mined += *amount,
                _ => {}
            }
        }
        Ok(story)
    }

    /// The settled spans of seconds, adjacent ones joined.
    pub fn settled_spans(&self) -> Vec<(u64, u64)> {
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for s in &self.settlements {
            match spans.last_mut() {
                Some(last) if last.1 == s.from => last.1 = s.to,
                _ => spans.push((s.from, s.to)),
            }
        }
        spans
    }

    /// USDC units its settlements took from its budget: to the nodes and to the burn.
    pub fn paid(&self) -> U256 {
        self.settlements.iter().map(|s| s.to_nodes + s.burned).sum()
    }
}

/// What one node is paid for `seconds` at `price` per node per epoch of `epoch_seconds`, split
/// as the escrow splits it: (to the node, burned).
pub fn node_pay(price: U256, seconds: u64, epoch_seconds: u64) -> (U256, U256) {
    let total = price * U256::from(seconds) / U256::from(epoch_seconds);
    let burned = total * U256::from(15u64) / U256::from(100u64);
    (total - burned, burned)
}

/// What `nodes` nodes cost for `seconds` at `price` per node per epoch of `epoch_seconds`, as
/// the escrow charges a creation: rounded down once.
pub fn cost(price: U256, nodes: u64, seconds: u64, epoch_seconds: u64) -> U256 {
    price * U256::from(nodes) * U256::from(seconds) / U256::from(epoch_seconds)
}

/// The chain's latest block number, where a scenario's story starts.
pub fn block_number(network: &Network) -> Result<u64, ScenarioError> {
    let chain = network.chain();
    read_chain(|| chain.block_on(chain.gov().provider().get_block_number())).map_err(chain_error)
}

/// A failed chain read, as a scenario reports it.
fn chain_error(error: impl std::fmt::Display) -> ScenarioError {
    ScenarioError::Chain(r1_contracts::Error::Chain(error.to_string()).into())
}
