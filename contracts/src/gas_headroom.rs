//! Gas limits with headroom over the estimate. Escrows settle by the second, so a transaction
//! mined a second after its estimate can settle a span the estimate saw empty (node balances
//! written, a burn transferred) and run out of gas on an exact estimate. The filler here
//! estimates like alloy's own (after the wallet has named the sender, so access-checked calls
//! estimate as their signer) and adds the headroom; unused gas costs nothing.

use alloy::network::{Network, TransactionBuilder};
use alloy::providers::fillers::{FillerControlFlow, GasFillable, GasFiller, TxFiller};
use alloy::providers::{Provider, SendableTx};
use alloy::transports::TransportResult;

/// Gas added to every estimate: enough for a settled span's writes (a few cold stores and a
/// token transfer).
const SETTLEMENT_HEADROOM_GAS: u64 = 150_000;

/// A block's gas limit on the chains we run: no headroom goes past it.
const BLOCK_GAS_LIMIT: u64 = 30_000_000;

/// The gas limit for a call estimated at `estimate`: half again plus
/// [`SETTLEMENT_HEADROOM_GAS`], within a block.
pub fn with_headroom(estimate: u64) -> u64 {
    estimate
        .saturating_add(estimate / 2)
        .saturating_add(SETTLEMENT_HEADROOM_GAS)
        .min(BLOCK_GAS_LIMIT)
}

/// alloy's gas filler with [`with_headroom`] applied to the estimated limit; a limit the caller
/// set is kept as it is.
#[derive(Debug, Clone, Default)]
pub struct HeadroomGasFiller {
    inner: GasFiller,
}

impl<N: Network> TxFiller<N> for HeadroomGasFiller {
    type Fillable = GasFillable;

    fn status(&self, tx: &N::TransactionRequest) -> FillerControlFlow {
        TxFiller::<N>::status(&self.inner, tx)
    }

    fn fill_sync(&self, _tx: &mut SendableTx<N>) {}

    async fn prepare<P: Provider<N>>(
        &self,
        provider: &P,
        tx: &N::TransactionRequest,
    ) -> TransportResult<Self::Fillable> {
        let caller_set_limit = tx.gas_limit().is_some();
        let fillable = self.inner.prepare(provider, tx).await?;
        if caller_set_limit {
            return Ok(fillable);
        }
        Ok(match fillable {
            GasFillable::Legacy {
                gas_limit,
                gas_price,
            } => GasFillable::Legacy {
                gas_limit: with_headroom(gas_limit),
                gas_price,
            },
            GasFillable::Eip1559 {
                gas_limit,
                estimate,
            } => GasFillable::Eip1559 {
                gas_limit: with_headroom(gas_limit),
                estimate,
            },
        })
    }

    async fn fill(
        &self,
        fillable: Self::Fillable,
        tx: SendableTx<N>,
    ) -> TransportResult<SendableTx<N>> {
        TxFiller::<N>::fill(&self.inner, fillable, tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_covers_a_settled_span_and_stays_within_a_block() {
        assert_eq!(with_headroom(100_000), 300_000);
        assert_eq!(with_headroom(7_200_000), 10_950_000);
        assert_eq!(with_headroom(25_000_000), 30_000_000);
    }
}
