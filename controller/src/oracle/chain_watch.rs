//! Runs a pass as soon as the chain records something a pass acts on — a job funded, extended
//! or redeemed in an escrow the oracle reads, a node set accepted — instead of at the next loop
//! tick: a CSP's `r1ctl apply` returns once its job is funded, and the job should run then.
//! One `eth_blockNumber` a [`CHAIN_WATCH_PERIOD`], and a log query only when blocks came.
//! Beside it, the guard reads every open job whole each [`JOBS_GUARD_READ_MS`] for the next
//! pass to follow on from, so that no pass waits for a thousand jobs' reads.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;

use crate::oracle::chain::{JOBS_GUARD_READ_MS, WholeRead, within};
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

    /// Reads every open job of the watched escrows whole each [`JOBS_GUARD_READ_MS`], for as
    /// long as the oracle runs, and leaves the read for the next pass. Each oracle starts at
    /// its own offset into the period (from its address), so that oracles started together
    /// do not read at the same moments.
    pub(crate) async fn guard_jobs(self: Arc<Self>) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.me[..8]);
        let offset = u64::from_be_bytes(first) % JOBS_GUARD_READ_MS;
        let period = Duration::from_millis(JOBS_GUARD_READ_MS);
        let start = tokio::time::Instant::now() + period + Duration::from_millis(offset);
        let mut tick = tokio::time::interval_at(start, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let escrows = self.watched_escrows.get().into_iter().collect();
            match WholeRead::read(&self.suite, escrows, r1_protocol::now_ms()).await {
                Ok(read) => {
                    *self
                        .whole_read
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(read);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the open jobs whole; a pass will")
                }
            }
        }
    }
}
