//! Reading a suite's history from a JSON-RPC node: `eth_getLogs` over block ranges of a
//! bounded size, then the blocks and transactions the audit needs, every request under a time
//! limit and the whole read under a deadline and size limits, so that a slow or huge chain
//! ends in an error instead of a hang or an exhausted memory.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::time::Duration;

use alloy::network::TransactionResponse;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};

use super::{Entry, Fact, History, Position};
use crate::client::Suite;
use crate::epoch::{EpochClock, EpochError};
use crate::quorum::Quorum;

/// How much of the chain one audit may read, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Blocks per `eth_getLogs` request (nodes refuse large ranges).
    pub blocks_per_request: u64,
    /// Most logs read in all.
    pub max_logs: usize,
    /// Most blocks and transactions looked up (for block epochs and vote signers).
    pub max_lookups: usize,
    /// Time limit of each request.
    pub request_timeout: Duration,
    /// Time limit of the whole read.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            blocks_per_request: 10_000,
            max_logs: 200_000,
            max_lookups: 20_000,
            request_timeout: Duration::from_secs(20),
            deadline: Duration::from_secs(300),
        }
    }
}

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The node refused or failed a request.
    #[error("rpc: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// A contract read failed.
    #[error(transparent)]
    Contract(#[from] crate::Error),
    /// A contract call failed.
    #[error("contract call failed: {0}")]
    Call(#[from] alloy::contract::Error),
    /// A request, or the whole read, took too long.
    #[error("reading the chain's history: {what} took longer than {limit:?}")]
    Timeout {
        /// What was being read.
        what: &'static str,
        /// The limit.
        limit: Duration,
    },
    /// The history is larger than the limits allow.
    #[error("the history holds more than {limit} {what}; start later with --from-block")]
    TooLarge {
        /// What there is too much of.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The node answered without something it must have.
    #[error("the node did not return {0}")]
    Missing(String),
    /// A block's time lies before the manager's genesis.
    #[error(transparent)]
    Clock(#[from] EpochError),
    /// The manager names a quorum rule this client does not know.
    #[error("the manager's quorum rule {0} is unknown to this client")]
    UnknownQuorum(u8),
}

/// Runs `request` under `limit`.
async fn bounded<T, E>(
    what: &'static str,
    limit: Duration,
    request: impl IntoFuture<Output = Result<T, E>>,
) -> Result<T, FetchError>
where
    FetchError: From<E>,
{
    match tokio::time::timeout(limit, request.into_future()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(FetchError::Timeout { what, limit }),
    }
}

impl Suite {
    /// The history of the manager, the Node Deed and every escrow the manager deployed, from
    /// block `from_block` to the latest one, within `limits`.
    pub async fn history(&self, from_block: u64, limits: &Limits) -> Result<History, FetchError> {
        match tokio::time::timeout(limits.deadline, self.read_history(from_block, limits)).await {
            Ok(history) => history,
            Err(_) => Err(FetchError::Timeout {
                what: "the whole history",
                limit: limits.deadline,
            }),
        }
    }

    async fn read_history(&self, from_block: u64, limits: &Limits) -> Result<History, FetchError> {
        let wait = limits.request_timeout;
        let provider = self.provider();
        let until_block = bounded("the latest block", wait, provider.get_block_number()).await?;
        let manager = self.deployment().manager;
        let node_deed = self.deployment().node_deed;
        let escrows = bounded("the escrows", wait, self.manager().getEscrows().call()).await?;
        let mut addresses = vec![manager, node_deed];
        addresses.extend(escrows);
        let step = limits.blocks_per_request.max(1);
        let mut entries = Vec::new();
        let mut read = 0usize;
        let mut start = from_block;
        while start <= until_block {
            let end = start.saturating_add(step - 1).min(until_block);
            let filter = Filter::new()
                .address(addresses.clone())
                .from_block(start)
                .to_block(end);
            let logs = bounded("eth_getLogs", wait, provider.get_logs(&filter)).await?;
            read = read.saturating_add(logs.len());
            if read > limits.max_logs {
                return Err(FetchError::TooLarge {
                    what: "logs",
                    limit: limits.max_logs,
                });
            }
            for log in &logs {
                if let Some(entry) = entry(log, manager, node_deed)? {
                    entries.push(entry);
                }
            }
            start = end.saturating_add(1);
        }
        entries.sort_by_key(|e| e.at);
        let (genesis, length) = self.epoch_clock().await?;
        let clock = EpochClock::new(genesis, length)?;
        let rule = bounded("the quorum rule", wait, self.manager().quorum().call()).await?;
        let quorum = Quorum::from_u8(rule).ok_or(FetchError::UnknownQuorum(rule))?;
        let mut history = History {
            entries,
            until_block,
            quorum,
            ..History::default()
        };
        self.look_up(&mut history, clock, limits).await?;
        Ok(history)
    }

    /// Fills in the block times, the clock and the transaction signers `history`'s facts need.
    async fn look_up(
        &self,
        history: &mut History,
        clock: EpochClock,
        limits: &Limits,
    ) -> Result<(), FetchError> {
        let blocks: BTreeSet<u64> = history
            .entries
            .iter()
            .filter(|e| e.fact.needs_time())
            .map(|e| e.at.block)
            .collect();
        let txs: BTreeSet<B256> = history
            .entries
            .iter()
            .filter(|e| e.fact.needs_sender())
            .map(|e| e.tx)
            .collect();
        if blocks.len().saturating_add(txs.len()) > limits.max_lookups {
            return Err(FetchError::TooLarge {
                what: "blocks and transactions to look up",
                limit: limits.max_lookups,
            });
        }
        let wait = limits.request_timeout;
        let provider = self.provider();
        let mut times = BTreeMap::new();
        for number in blocks {
            let block = bounded("a block", wait, provider.get_block_by_number(number.into()))
                .await?
                .ok_or_else(|| FetchError::Missing(format!("block {number}")))?;
            clock.epoch_at(block.header.timestamp)?;
            times.insert(number, block.header.timestamp);
        }
        let mut senders: BTreeMap<B256, Address> = BTreeMap::new();
        for hash in txs {
            let tx = bounded(
                "a transaction",
                wait,
                provider.get_transaction_by_hash(hash),
            )
            .await?
            .ok_or_else(|| FetchError::Missing(format!("transaction {hash}")))?;
            senders.insert(hash, tx.from());
        }
        history.block_times = times;
        history.clock = Some(clock);
        history.senders = senders;
        Ok(())
    }
}

/// The entry of one log, `None` when it carries nothing the audit reads.
fn entry(log: &Log, manager: Address, node_deed: Address) -> Result<Option<Entry>, FetchError> {
    if log.removed {
        return Ok(None);
    }
    let Some(fact) = Fact::decode(&log.inner, manager, node_deed) else {
        return Ok(None);
    };
    let (Some(block), Some(log_index), Some(tx)) =
        (log.block_number, log.log_index, log.transaction_hash)
    else {
        return Err(FetchError::Missing(
            "the block, index and transaction of a log".into(),
        ));
    };
    Ok(Some(Entry {
        at: Position { block, log_index },
        tx,
        fact,
    }))
}
