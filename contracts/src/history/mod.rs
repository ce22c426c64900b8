//! A suite's record on chain, as an audit reads it: the PoAI manager's, the Node Deed's and
//! every escrow's events in chain order ([`fact`]), fetched in bounded pieces ([`fetch`]), and
//! the contracts' state at the block the record ends in ([`snapshot`]). Nothing here judges
//! them; `r1ctl audit` does.

pub mod fact;
pub mod fetch;
pub mod snapshot;

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256};

use crate::epoch::EpochClock;

pub use fact::Fact;
pub use fetch::{FetchError, Limits};
pub use snapshot::{EscrowSnapshot, JobView};

/// Where a log sits in the chain: its block and its index in that block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The block number.
    pub block: u64,
    /// The log's index in the block.
    pub log_index: u64,
}

/// One fact and where it was emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the chain.
    pub at: Position,
    /// The transaction that emitted it.
    pub tx: B256,
    /// What happened.
    pub fact: Fact,
}

/// Every fact of a suite up to one block, with what the audit needs besides: the time of the
/// blocks whose facts are costed or settled by block time ([`Fact::needs_time`]), the
/// manager's epoch clock, and the signer of the transactions whose sender matters
/// ([`Fact::needs_sender`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The facts, in chain order.
    pub entries: Vec<Entry>,
    /// The timestamp of each block that needs one.
    pub block_times: BTreeMap<u64, u64>,
    /// The manager's epoch clock (`None` until read).
    pub clock: Option<EpochClock>,
    /// The signer of each transaction that needs one.
    pub senders: BTreeMap<B256, Address>,
    /// The last block read.
    pub until_block: u64,
    /// The rule the manager's rounds decide by.
    pub quorum: crate::quorum::Quorum,
}

impl History {
    /// The timestamp of `entry`'s block, when it was read.
    pub fn time_of(&self, entry: &Entry) -> Option<u64> {
        self.block_times.get(&entry.at.block).copied()
    }

    /// The epoch `entry`'s block ran in, when its time and the clock were read.
    pub fn epoch_of(&self, entry: &Entry) -> Option<u64> {
        self.clock?.epoch_at(self.time_of(entry)?).ok()
    }

    /// Who signed `entry`'s transaction, when it was read.
    pub fn sender_of(&self, entry: &Entry) -> Option<Address> {
        self.senders.get(&entry.tx).copied()
    }
}
