//! Runs a pass as soon as the chain records something a pass acts on — a job funded, extended
//! or redeemed in an escrow the oracle reads, a node set accepted — instead of at the next loop
//! tick: a CSP's `r1ctl apply` returns once its job is funded, and the job should run then.
//! One `eth_blockNumber` a [`CHAIN_WATCH_PERIOD`], and a log query only when blocks came.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;

use crate::oracle::chain::within;
use crate::oracle::runtime::Oracle;

/// How often the chain's head is looked at.
pub const CHAIN_WATCH_PERIOD: Duration = Duration::from_millis(250);

/// The escrows the last chain snapshot read, whose events wake a pass.
#[derive(Debug, Default)]
pub(crate) struct WatchedEscrows {
    escrows: std::sync::Mutex<Vec<Address>>,
}

impl WatchedEscrows {
    /// Replaces the watched escrows with `escrows`.
    pub(crate) fn set(&self, escrows: impl IntoIterator<Item = Address>) {
        *self.lock() = escrows.into_iter().collect();
    }

    fn get(&self) -> Vec<Address> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Address>> {
        self.escrows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Oracle {
    /// Watches the chain's new blocks for as long as the oracle runs, waking a pass when they
    /// hold a change it acts on.
    pub(crate) async fn watch_chain(self: Arc<Self>) {
        let mut after = None;
        let mut tick = tokio::time::interval(CHAIN_WATCH_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let escrows = self.watched_escrows.get();
            match within(self.suite.jobs_changed(&escrows, after)).await {
                Ok((changed, last)) => {
                    after = Some(last);
                    if changed {
                        self.wake_pass("chain");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot read the chain's new blocks"),
            }
        }
    }
}
