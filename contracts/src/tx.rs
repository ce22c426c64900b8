//! Sending a contract call as a transaction and waiting for its successful receipt.

use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::eips::BlockId;
use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;

use crate::error::{Error, Result};

/// Held while a transaction is filled and handed to the node: providers read the sender's
/// nonce from the chain for every transaction, so two tasks of one process sending with one key
/// at once (an oracle's voter and its money task) would otherwise take the same nonce and one
/// would be refused ("nonce too low"). Waiting for the receipt happens outside it.
static SENDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The pause after the first look for a receipt finds none; each further pause doubles.
const FIRST_RECEIPT_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between two looks for a receipt: a chain with 2 s blocks answers within a
/// quarter of a block of mining the transaction.
const LONGEST_RECEIPT_PAUSE: Duration = Duration::from_millis(500);

/// Waits for `tx`'s receipt, asking for it at once (a chain that mines on arrival has it) and
/// then ever less often. Not alloy's `get_receipt`: that one learns of new blocks by polling
/// every 250 ms on a local node and every 7 s on a remote one, so each vote or funding waited
/// for the next poll. Waits until mined: callers bound it.
async fn mined<P: Provider>(provider: &P, tx: B256) -> Result<TransactionReceipt> {
    let mut pause = FIRST_RECEIPT_PAUSE;
    loop {
        if let Some(receipt) = provider.get_transaction_receipt(tx).await? {
            return Ok(receipt);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_RECEIPT_PAUSE);
    }
}

/// Sends `call`, waits for it to be mined and fails unless it succeeded. A call that would
/// revert fails during gas estimation with the contract's revert data ([`Error::Contract`]);
/// one that passed its estimate and reverted when mined (the chain moved in between: an epoch
/// ended, another oracle came first) fails with [`Error::Reverted`], carrying the refusal the
/// call meets when run again on its block's state.
pub async fn confirm<P: Provider, D: CallDecoder>(
    call: CallBuilder<P, D>,
) -> Result<TransactionReceipt> {
    let tx = {
        let _turn = SENDING.lock().await;
        *call.send().await?.tx_hash()
    };
    let receipt = mined(&call.provider, tx).await?;
    if receipt.status() {
        return Ok(receipt);
    }
    let replayed = match receipt.block_number {
        Some(block) => match call.call().block(BlockId::number(block)).await {
            Err(e) if e.as_revert_data().is_some() => Some(Box::new(e)),
            _ => None,
        },
        None => None,
    };
    Err(Error::Reverted {
        tx: receipt.transaction_hash,
        replayed,
    })
}

/// Sends `call` as [`confirm`] does, with `headroom` gas above its estimate: for a call whose
/// work depends on the second it is mined in (an escrow settling a job up to now), which may
/// have had nothing to do when estimated.
pub async fn confirm_with_headroom<P: Provider, D: CallDecoder>(
    call: CallBuilder<P, D>,
    headroom: u64,
) -> Result<TransactionReceipt> {
    let gas = call.estimate_gas().await?.saturating_add(headroom);
    confirm(call.gas(gas)).await
}

/// A transaction as it would be sent, for a dry run: where to, what calldata, what gas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The contract called.
    pub to: alloy::primitives::Address,
    /// The sender.
    pub from: alloy::primitives::Address,
    /// The ABI-encoded call.
    pub calldata: alloy::primitives::Bytes,
    /// The gas the chain estimates for it now (a call that would revert fails here instead,
    /// with the contract's revert data).
    pub gas: u64,
}

impl std::fmt::Display for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "from     {}", self.from)?;
        writeln!(f, "to       {}", self.to)?;
        writeln!(f, "calldata {}", self.calldata)?;
        write!(f, "gas      {} (estimated; not sent)", self.gas)
    }
}

/// What sending `call` as `from` would send, and its gas, without sending it.
pub async fn plan<P: Provider, D: CallDecoder>(
    call: CallBuilder<P, D>,
    from: alloy::primitives::Address,
) -> Result<Planned> {
    let gas = call.estimate_gas().await?;
    let (to, calldata) = destination(call);
    Ok(Planned {
        to,
        from,
        calldata,
        gas,
    })
}

/// The contract `call` goes to and its ABI-encoded calldata.
pub fn destination<P: Provider, D: CallDecoder>(
    call: CallBuilder<P, D>,
) -> (alloy::primitives::Address, alloy::primitives::Bytes) {
    let request = call.into_transaction_request();
    let to = request
        .to
        .and_then(|kind| kind.to().copied())
        .unwrap_or_default();
    (to, request.input.input().cloned().unwrap_or_default())
}

/// What [`send_or_plan`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent and mined: the transaction and the gas it used.
    Mined {
        /// The transaction.
        tx: alloy::primitives::TxHash,
        /// Gas used.
        gas: u64,
    },
    /// Not sent: what would have been.
    Planned(Planned),
}

/// Sends `call` as `from` and waits for it ([`confirm`]), or with `dry_run` only plans it
/// ([`plan`]).
pub async fn send_or_plan<P: Provider, D: CallDecoder>(
    call: CallBuilder<P, D>,
    from: alloy::primitives::Address,
    dry_run: bool,
) -> Result<Outcome> {
    if dry_run {
        return Ok(Outcome::Planned(plan(call, from).await?));
    }
    let receipt = confirm(call).await?;
    Ok(Outcome::Mined {
        tx: receipt.transaction_hash,
        gas: receipt.gas_used,
    })
}
