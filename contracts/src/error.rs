//! The one error type of the crate.

use alloy::primitives::TxHash;
use alloy::sol_types::SolInterface;

/// Everything that can go wrong talking to the contracts or running the development chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call or transaction was refused (a revert during gas estimation lands here).
    #[error("contract call failed: {0}")]
    Contract(#[from] alloy::contract::Error),
    /// A sent transaction could not be followed to its receipt.
    #[error("transaction not confirmed: {0}")]
    Pending(#[from] alloy::providers::PendingTransactionError),
    /// The JSON-RPC transport failed.
    #[error("rpc: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// A mined transaction reverted (its estimate passed: the chain changed before it was
    /// mined, or it ran out of gas).
    #[error("transaction {tx} reverted{}", replayed_reason(.replayed))]
    Reverted {
        /// The transaction.
        tx: TxHash,
        /// The refusal the same call met when run again on the state of the block it was mined
        /// in, which names the contract's reason (receipts carry none); `None` when the replay
        /// passed (out of gas) or could not be run.
        replayed: Option<Box<alloy::contract::Error>>,
    },
    /// A receipt lacked the event the operation must emit.
    #[error("transaction {tx} emitted no {event} event")]
    MissingEvent {
        /// The transaction.
        tx: TxHash,
        /// The event looked for.
        event: &'static str,
    },
    /// The development chain could not be started.
    #[error("development chain: {0}")]
    Chain(String),
    /// A key could not sign.
    #[error("signing: {0}")]
    Signing(String),
    /// Spawning or talking to a child process failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The contract's custom error, when this is a revert that decodes as one of `E`.
    pub fn revert<E: SolInterface>(&self) -> Option<E> {
        match self {
            Error::Contract(err) => err.as_decoded_interface_error::<E>(),
            Error::Reverted {
                replayed: Some(err),
                ..
            } => err.as_decoded_interface_error::<E>(),
            _ => None,
        }
    }
}

/// How [`Error::Reverted`] names its replayed refusal.
fn replayed_reason(replayed: &Option<Box<alloy::contract::Error>>) -> String {
    replayed
        .as_ref()
        .map(|e| format!(" (run again on its block: {e})"))
        .unwrap_or_default()
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
