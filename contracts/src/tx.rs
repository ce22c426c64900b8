//! Sending a contract call as a transaction and waiting for its successful receipt.

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;

use crate::error::{Error, Result};

/// Sends `call`, waits for it to be mined and fails unless it succeeded. A call that would
/// revert fails during gas estimation with the contract's revert data ([`Error::Contract`]).
pub async fn confirm<P: Provider, D: CallDecoder>(
    call: CallBuilder<P, D>,
) -> Result<TransactionReceipt> {
    let receipt = call.send().await?.get_receipt().await?;
    if receipt.status() {
        Ok(receipt)
    } else {
        Err(Error::Reverted(receipt.transaction_hash))
    }
}
