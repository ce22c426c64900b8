//! Who may claim a namespace nobody owns yet. Namespaces are first-come, so without a bar any
//! throwaway key could squat `prod` before its owner; the oracle lets only keys that hold an
//! escrow on chain claim one (keys that will pay for what they deploy).

use std::fmt;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use futures_util::future::BoxFuture;
use r1_contracts::Suite;

use crate::intake::chain_answers::ChainAnswers;

/// The policy the HTTP API asks before an apply would claim a namespace.
pub trait NamespaceClaims: Send + Sync + fmt::Debug {
    /// Whether `signer` may claim unclaimed namespaces; `Err` when that cannot be told now.
    fn may_claim(&self, signer: Address) -> BoxFuture<'_, Result<bool, String>>;
}

/// Everybody may claim: tests and oracles without a chain.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl NamespaceClaims for AllowAll {
    fn may_claim(&self, _signer: Address) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async { Ok(true) })
    }
}

/// How long the chain may take to answer.
pub const ESCROW_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a "has an escrow" answer is reused (escrows are not taken away).
pub const HOLDER_TTL: Duration = Duration::from_secs(600);
/// How long a "has no escrow" answer is reused (the CSP may be creating one right now).
pub const NON_HOLDER_TTL: Duration = Duration::from_secs(15);
/// Only signers with an escrow on chain (`escrowOfCsp(signer) != 0`) may claim, with the
/// answers cached briefly so a burst of applies costs one chain call.
pub struct EscrowHolders {
    suite: Suite,
    answers: ChainAnswers<Address>,
}

impl fmt::Debug for EscrowHolders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EscrowHolders").finish_non_exhaustive()
    }
}

impl EscrowHolders {
    /// Asks `suite`'s PoAI manager.
    pub fn new(suite: Suite) -> Self {
        Self {
            suite,
            answers: ChainAnswers::new(HOLDER_TTL, NON_HOLDER_TTL),
        }
    }
}

impl NamespaceClaims for EscrowHolders {
    fn may_claim(&self, signer: Address) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            if let Some(holds) = self.answers.cached(&signer, Instant::now()) {
                return Ok(holds);
            }
            let escrow = tokio::time::timeout(ESCROW_TIMEOUT, self.suite.escrow_of(signer))
                .await
                .map_err(|_| format!("the chain did not answer within {ESCROW_TIMEOUT:?}"))?
                .map_err(|e| e.to_string())?;
            let holds = escrow != Address::ZERO;
            self.answers.remember(signer, holds, Instant::now());
            Ok(holds)
        })
    }
}
