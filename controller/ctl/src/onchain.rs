//! What every on-chain `r1ctl` command shares: the chain client for the oracle's chain, signing
//! as the caller's key; contract refusals explained by name; and the line a sent (or, with
//! `--dry-run`, planned) transaction prints.

use std::io::Write;

use alloy_primitives::U256;
use r1_contracts::Suite;
use r1_contracts::bindings::{CspEscrow, NodeDeed, PoAIManager};
use r1_contracts::tx::Outcome;

use crate::remote::{Client, RemoteError};

/// Why an on-chain command failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainCommandError {
    /// The chain could not be read, or refused in a way no contract names.
    #[error(transparent)]
    Chain(#[from] r1_contracts::Error),
    /// A contract refused, with its reason.
    #[error("the {contract} refused: {reason}")]
    Refused {
        /// Which contract.
        contract: &'static str,
        /// Its custom error, decoded.
        reason: String,
    },
    /// The oracle refused to co-sign, or could not be asked.
    #[error("the oracle did not co-sign the link: {0}")]
    Oracle(#[from] RemoteError),
    /// The node's proof is not for this owner, or not a signature.
    #[error("the node's proof: {0}")]
    Proof(String),
    /// The licence costs more than the buyer's limit.
    #[error("a licence costs {price} R1 wei now, above your limit of {limit}")]
    PriceAboveLimit {
        /// The current price.
        price: U256,
        /// The limit given.
        limit: U256,
    },
    /// No class of the price catalogue has this name.
    #[error("no class {0:?} in the price catalogue")]
    UnknownClass(String),
    /// The RPC endpoint is unusable or serves another chain.
    #[error("RPC: {0}")]
    Rpc(String),
    /// Writing the answer failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The chain client signing as `client`'s key, on the oracle's chain, read at `rpc_url` (which
/// must serve the chain the oracle names).
pub async fn connect(client: &Client, rpc_url: &str) -> Result<Suite, ChainCommandError> {
    let info = client.info().await?;
    let url =
        url::Url::parse(rpc_url).map_err(|e| ChainCommandError::Rpc(format!("{rpc_url}: {e}")))?;
    let served = r1_contracts::attach::chain_id_at(&url).await?;
    if served != info.chain_id {
        return Err(ChainCommandError::Rpc(format!(
            "{rpc_url} serves chain {served}, but the oracle settles on chain {}",
            info.chain_id
        )));
    }
    let signer = client.identity().signer().clone();
    Ok(Suite::attach(&url, signer, info.poai_manager).await?)
}

/// `error` with the contract's reason when it is a revert the Node Deed, the PoAI manager or an
/// escrow names.
pub fn explained(error: r1_contracts::Error) -> ChainCommandError {
    if let Some(reason) = error.revert::<NodeDeed::NodeDeedErrors>() {
        return ChainCommandError::Refused {
            contract: "Node Deed",
            reason: format!("{reason:?}"),
        };
    }
    if let Some(reason) = error.revert::<PoAIManager::PoAIManagerErrors>() {
        return ChainCommandError::Refused {
            contract: "PoAI manager",
            reason: format!("{reason:?}"),
        };
    }
    if let Some(reason) = error.revert::<CspEscrow::CspEscrowErrors>() {
        return ChainCommandError::Refused {
            contract: "escrow",
            reason: format!("{reason:?}"),
        };
    }
    ChainCommandError::Chain(error)
}

/// Says what [`r1_contracts::tx::send_or_plan`] did with the transaction `what`.
pub fn report(outcome: Outcome, what: &str, out: &mut dyn Write) -> Result<(), ChainCommandError> {
    match outcome {
        Outcome::Mined { tx, gas } => writeln!(out, "{what}: transaction {tx} (gas {gas})")?,
        Outcome::Planned(planned) => writeln!(out, "{what}: dry run\n{planned}")?,
    }
    Ok(())
}
