//! The loops that move money: closure (close the first closable job after a random backoff,
//! decided in the pass), and, in the money task beside the passes, rewards (allocate finished
//! epochs, the scheduled oracle first), burning the queued fees, Proof of Availability
//! (exchange availability tables, vote on the median's root, record the agreed table page by
//! page), and escrow and project status.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::Address;
use r1_contracts::bindings::PoAIManager::PoAIManagerErrors;
use r1_contracts::{AvailabilityTable, EscrowTotals, PagesRecorded};
use r1_crds::api::object::{StoredObject, timestamp_now};
use r1_crds::common::{Condition, ConditionStatus};
use r1_crds::escrow::{EscrowPhase, EscrowStatus};
use r1_crds::manifest::Kind;
use r1_crds::project::DeeployProjectStatus;
use r1_crds::usdc::Usdc;
use r1_protocol::messages::OracleObservation;
use r1_protocol::now_ms;

use crate::decide::closure::{
    CLOSURE_BACKOFF_MS, REWARDS_BACKOFF_MS, backoff_ms, backoff_seed, rewards_due,
};
use crate::decide::liveness::{
    availability_byte, expected_heartbeats, may_vote_on_availability, received_heartbeats,
};
use crate::decide::median::median_table;
use crate::intake::apply::refers_to;
use crate::oracle::chain::{ChainSnapshot, within};
use crate::oracle::runtime::{Oracle, Pass};

/// Least time between two tries of one oracle to burn the queued fees.
const BURN_RETRY_MS: u64 = 30_000;

/// Least time after a failed availability submission (out of gas, no answer) before the next:
/// a table the chain cannot take is not sent again on every pass (at most a tenth of an epoch).
const AVAILABILITY_RETRY_MS: u64 = 60_000;

/// Least time between two availability pages of all oracles together: each oracle waits this
/// times the number of oracles between its own pages (the whole table within half an epoch
/// at most). A page of first-time mints is ≈ 9–11 M gas; the 79 pages of 10,000 nodes sent at
/// once at an epoch's end held the chain node from the allocation, the votes and every read
/// for minutes, and one page a second among three oracles still saturated it for two.
const AVAILABILITY_PAGE_SPACING_MS: u64 = 4_000;

/// How long one of `oracles` oracles waits between its availability pages when `pages` pages
/// are to be recorded in an epoch of `epoch_ms`: [`AVAILABILITY_PAGE_SPACING_MS`] among all
/// oracles, shorter when that would not record them all within half an epoch.
fn page_spacing_ms(oracles: u64, pages: u64, epoch_ms: u64) -> u64 {
    let network = AVAILABILITY_PAGE_SPACING_MS.min(epoch_ms / 2 / pages.max(1));
    network * oracles.max(1)
}

/// How old an escrow's totals in its status may grow before they are read again while its
/// jobs stand still (a deposit or a withdrawal changes no job). The money task runs for every
/// pass (several a second in a burst), and each read is eight calls on the chain node every
/// vote and apply also waits for.
const ESCROW_TOTALS_REFRESH_MS: u64 = 5_000;

/// What the snapshot shows of one escrow's open jobs: how many, and the USDC they hold. A job
/// created, extended, settled or closed changes it, and the escrow's totals with it.
type EscrowJobs = (usize, u64);

/// One escrow's totals as the money task read them: when (unix ms), its jobs then, the figures.
#[derive(Debug)]
struct TotalsRead {
    at: u64,
    jobs: EscrowJobs,
    totals: EscrowTotals,
}

/// Each escrow's totals as the money task last read them. A failed read keeps the last
/// figures, which are read again on the next pass.
#[derive(Debug, Default)]
struct EscrowTotalsRead {
    read: HashMap<Address, TotalsRead>,
}

impl EscrowTotalsRead {
    /// Whether `escrow`'s totals are to be read at `now`, its open jobs being `jobs`: never
    /// read, its jobs changed since, or read long enough ago.
    fn due(&self, escrow: Address, jobs: EscrowJobs, now: u64) -> bool {
        self.read.get(&escrow).is_none_or(|last| {
            last.jobs != jobs || now.saturating_sub(last.at) >= ESCROW_TOTALS_REFRESH_MS
        })
    }
}

/// A backoff range scaled to the epoch: at most half an epoch, so short development epochs
/// still close and allocate within the epoch.
fn scaled(range: (u64, u64), epoch_ms: u64) -> (u64, u64) {
    let high = range.1.min(epoch_ms / 2);
    (range.0.min(high), high)
}

impl Oracle {
    /// Closure for this pass: the first closable job, after this oracle's backoff, is stopped
    /// and voted closed with the pass's other votes.
    pub(crate) async fn closure_pass(&self, pass: &Pass) {
        let Some(chain) = &pass.chain else { return };
        let Some(job) = chain.first_closable else {
            return;
        };
        let epoch_ms = self.clock.length_s() * 1000;
        let since = *self
            .closable_since
            .lock()
            .await
            .entry(job)
            .or_insert(pass.now_ms);
        let wait = backoff_ms(
            backoff_seed(&self.me, job, chain.epoch),
            scaled(CLOSURE_BACKOFF_MS, epoch_ms),
        );
        if pass.now_ms.saturating_sub(since) >= wait {
            tracing::info!(job, "closing a job whose budget is spent");
            self.stop_everywhere(job, "budget spent", pass);
            pass.ballots.cast(job, &[], "close");
        }
    }

    /// The money task: for every chain snapshot a pass hands over ([`Oracle::hand_to_money`];
    /// only the newest when it falls behind), allocates rewards, burns the queued fees,
    /// submits availability and writes the escrow and project statuses. These wait for chain
    /// receipts and reads, so they run beside the passes, never inside one.
    pub(crate) async fn money_forever(self: Arc<Self>) {
        let mut inbox = self.money.subscribe();
        let mut totals = EscrowTotalsRead::default();
        while inbox.changed().await.is_ok() {
            let Some(chain) = inbox.borrow_and_update().clone() else {
                continue;
            };
            let started = Instant::now();
            self.move_money(&chain, now_ms()).await;
            self.resource_statuses(&chain, &mut totals).await;
            self.metrics.pass("money", started.elapsed().as_secs_f64());
        }
    }

    /// Hands a fresh chain snapshot to the money task.
    pub(crate) fn hand_to_money(&self, chain: &ChainSnapshot) {
        self.money.send_replace(Some(chain.clone()));
    }

    /// Rewards, burning and availability as of `chain`, at `now`.
    async fn move_money(&self, chain: &ChainSnapshot, now: u64) {
        let epoch_ms = self.clock.length_s() * 1000;
        let epoch_start = self.clock.start_ms(chain.epoch);
        // Rewards: the scheduled oracle allocates at once, the others after a backoff.
        if rewards_due(chain.epoch, chain.allocated_until) && !chain.oracles.is_empty() {
            let scheduled = chain.oracles[(chain.epoch % chain.oracles.len() as u64) as usize];
            let wait = if scheduled == self.me {
                0
            } else {
                backoff_ms(
                    backoff_seed(&self.me, 0, chain.epoch),
                    scaled(REWARDS_BACKOFF_MS, epoch_ms),
                )
            };
            if now.saturating_sub(epoch_start) >= wait {
                match within(self.suite.allocate_rewards()).await {
                    Ok(a) => {
                        tracing::info!(from = a.from_epoch, until = a.until_epoch, burned = %a.usdc_burned, "allocated epoch rewards");
                        self.metrics.vote("allocate", "accepted");
                    }
                    Err(e)
                        if e.refused_with(|r| {
                            matches!(r, PoAIManagerErrors::EpochAlreadyAllocated(_))
                        }) =>
                    {
                        // Another oracle allocated, or the chain's clock has not left the epoch
                        // yet (block times lag the wall clock): nothing was sent.
                        tracing::debug!("nothing to allocate by the chain's clock yet");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "allocation failed");
                        self.metrics.vote("allocate", "error");
                    }
                }
            }
        }

        if !chain.pending_burn.is_zero() && !chain.oracles.is_empty() {
            self.burn_fees(chain.epoch, &chain.oracles, epoch_start, epoch_ms, now)
                .await;
        }

        if chain.epoch > 0 {
            // The pages wait for the finished epoch's allocation (for at most a fifth of the
            // epoch), which pays every job's nodes and is the more urgent.
            let allocating = rewards_due(chain.epoch, chain.allocated_until)
                && now.saturating_sub(epoch_start) < epoch_ms / 5;
            self.availability(chain.epoch - 1, &chain.oracles, now, allocating)
                .await;
        }
    }

    /// Swaps the queued 15 % share to R1 and burns it, with the venue's quote less the default
    /// slippage as the least output: the epoch's scheduled oracle at once, the others after a
    /// backoff (whoever comes second finds the queue empty), each at most once per
    /// [`BURN_RETRY_MS`] while the swap fails; the USDC stays queued meanwhile.
    async fn burn_fees(
        &self,
        epoch: u64,
        oracles: &[Address],
        epoch_start: u64,
        epoch_ms: u64,
        now: u64,
    ) {
        use std::sync::atomic::Ordering;
        let scheduled = oracles[(epoch % oracles.len() as u64) as usize];
        let wait = if scheduled == self.me {
            0
        } else {
            backoff_ms(
                backoff_seed(&self.me, 1, epoch),
                scaled(REWARDS_BACKOFF_MS, epoch_ms),
            )
        };
        let tried = self.burn_tried_ms.load(Ordering::Relaxed);
        if now.saturating_sub(epoch_start) < wait || now.saturating_sub(tried) < BURN_RETRY_MS {
            return;
        }
        self.burn_tried_ms.store(now, Ordering::Relaxed);
        match within(
            self.suite
                .burn_pending_fees(r1_contracts::client::DEFAULT_SLIPPAGE_BPS),
        )
        .await
        {
            Ok(Some((usdc, r1))) => {
                tracing::info!(%usdc, %r1, "burned the queued 15 % share");
                self.metrics.vote("burn", "accepted");
            }
            Ok(None) => {}
            Err(e) if e.refused_with(|r| matches!(r, PoAIManagerErrors::NothingToBurn(_))) => {}
            Err(e) => {
                tracing::warn!(error = %e, "burning the queued fees failed; the USDC stays queued");
                self.metrics.vote("burn", "error");
            }
        }
    }

    /// Proof of Availability for the finished `epoch`: publish this oracle's table once, then
    /// vote for the root of the median of every oracle's table once all arrived or a third of
    /// the next epoch has passed (and again on later passes while the chain's clock has not
    /// left `epoch`), then record the agreed table's pages. An oracle that was not connected to
    /// the broker for 98 % of the epoch heard too little to judge anyone (silence it could not
    /// hear is Unknown, not absence): it neither publishes nor votes a table for that epoch.
    /// No page is sent while the epoch's rewards are `allocating`.
    async fn availability(&self, epoch: u64, oracles: &[Address], now: u64, allocating: bool) {
        let key = format!("availability/{epoch}");
        if !self.state.voted(&key).unwrap_or(true) {
            self.vote_availability(epoch, oracles, now, &key).await;
        }
        if !allocating {
            self.record_availability_page(epoch, oracles, now).await;
        }
    }

    /// This oracle's vote on the availability of `epoch` (see [`Oracle::availability`]); the
    /// table voted is kept for recording its pages once agreed.
    async fn vote_availability(&self, epoch: u64, oracles: &[Address], now: u64, key: &str) {
        let start = self.clock.start_ms(epoch);
        let end = self.clock.end_ms(epoch);
        let connected = self.mesh.connected_ms(start, end);
        if !may_vote_on_availability(connected, end.saturating_sub(start)) {
            tracing::info!(
                epoch,
                connected_ms = connected,
                "not judging availability: this oracle was not connected to the broker for 98 % of the epoch"
            );
            if let Err(e) = self.state.record_vote(key, "unwatched") {
                tracing::warn!(error = %e, "cannot record the skipped availability vote");
            }
            return;
        }
        let mine: BTreeMap<Address, u8> = {
            let registry = self.registry.lock().await;
            let expected = expected_heartbeats(self.clock.length_s(), &self.liveness);
            registry
                .nodes()
                .filter(|(_, r)| r.standing.is_some_and(|s| s.licensed))
                .map(|(node, r)| {
                    let arrivals: Vec<u64> = r.arrivals.iter().copied().collect();
                    let received = received_heartbeats(&arrivals, start, end, &self.liveness);
                    (*node, availability_byte(received, expected))
                })
                .collect()
        };
        if mine.is_empty() {
            return;
        }
        let tables = {
            let mut tables = self.availability_tables.lock().await;
            if tables.record_own(self.me, epoch, mine.clone()) {
                self.publish_observation(&OracleObservation {
                    epoch,
                    availability: mine,
                    job_nodes: BTreeMap::new(),
                });
            }
            tables.of(epoch)
        };
        let from_oracles: Vec<&BTreeMap<Address, u8>> = tables
            .iter()
            .filter(|(oracle, _)| oracles.contains(oracle))
            .map(|(_, t)| t)
            .collect();
        let waited = now.saturating_sub(end) >= self.clock.length_s() * 1000 / 3;
        if from_oracles.len() < oracles.len() && !waited {
            return;
        }
        if self.availability_paused(now) {
            return;
        }
        let rows: Vec<(Address, u8)> = median_table(&from_oracles).into_iter().collect();
        let table = Arc::new(AvailabilityTable::new(epoch, rows.iter().copied()));
        {
            // Kept once per table: a vote tried again after a timeout holds the same one.
            let mut pages = self.availability_pages.lock().await;
            if pages.get(&epoch).map(|t| t.root()) != Some(table.root()) {
                if let Err(e) = self.state.record_availability_table(epoch, &rows) {
                    tracing::warn!(epoch, error = %e, "cannot keep the availability table voted for");
                }
                pages.insert(epoch, table);
            }
        }
        match within(self.suite.availability_agreed(epoch)).await {
            Ok(false) => {}
            Ok(true) => {
                if let Err(e) = self
                    .state
                    .record_vote(key, "agreed before this oracle voted")
                {
                    tracing::warn!(error = %e, "cannot record the availability vote");
                }
                return;
            }
            Err(_) => return,
        }
        let submitted = within(self.suite.submit_availability(epoch, &rows)).await;
        if let Err(e) = &submitted
            && e.refused_with(|r| matches!(r, PoAIManagerErrors::EpochNotEnded(_)))
        {
            // The chain's clock is still in the epoch (block times lag the wall clock):
            // nothing was sent, and the next pass tries again.
            tracing::debug!(epoch, "the epoch has not ended by the chain's clock yet");
            return;
        }
        // Recorded once the chain answered (counted, or refused with the manager's own error);
        // a submission lost to a timeout, a dropped transaction or a crash is sent again, and
        // the chain refuses it as a second vote if the first was counted after all.
        let answered = submitted.as_ref().map_or_else(|e| e.is_refusal(), |_| true);
        if answered && let Err(e) = self.state.record_vote(key, "") {
            tracing::warn!(error = %e, "cannot record the availability vote");
        }
        match submitted {
            Ok(_) => {
                tracing::info!(epoch, nodes = rows.len(), "submitted availability");
                self.metrics.vote("availability", "pending");
            }
            Err(e)
                if e.refused_with(|r| {
                    matches!(r, PoAIManagerErrors::AvailabilityAlreadyAgreed(_))
                }) =>
            {
                tracing::debug!(
                    epoch,
                    "the other oracles agreed on the epoch's availability first"
                );
            }
            Err(e) => {
                tracing::warn!(epoch, error = %e, answered, "availability not submitted");
                self.metrics.vote("availability", "error");
                self.availability_failed_ms
                    .store(now, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Whether a failed availability vote or page is still too recent to try again at `now`
    /// ([`AVAILABILITY_RETRY_MS`], at most a tenth of an epoch).
    fn availability_paused(&self, now: u64) -> bool {
        let failed = self
            .availability_failed_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let retry_ms = AVAILABILITY_RETRY_MS.min(self.clock.length_s() * 100);
        now.saturating_sub(failed) < retry_ms
    }

    /// Records one page of an agreed availability table this oracle voted for that the chain
    /// still misses, at most one every [`AVAILABILITY_PAGE_SPACING_MS`], each oracle starting
    /// at its own share of the pages; a table done, not the agreed one, or older than the epoch
    /// before `latest` (the last finished epoch) is forgotten.
    async fn record_availability_page(&self, latest: u64, oracles: &[Address], now: u64) {
        use std::sync::atomic::Ordering;
        let tables: Vec<Arc<AvailabilityTable>> = {
            let mut pages = self.availability_pages.lock().await;
            let stale: Vec<u64> = pages
                .range(..latest.saturating_sub(1))
                .map(|(e, _)| *e)
                .collect();
            for epoch in stale {
                pages.remove(&epoch);
                self.forget_availability_table(epoch);
            }
            pages.values().cloned().collect()
        };
        let pages: u64 = tables.iter().map(|t| t.pages() as u64).sum();
        let spacing = page_spacing_ms(oracles.len() as u64, pages, self.clock.length_s() * 1000);
        let last = self.availability_page_ms.load(Ordering::Relaxed);
        if self.availability_paused(now) || now.saturating_sub(last) < spacing {
            return;
        }
        let share = oracles.iter().position(|o| *o == self.me).unwrap_or(0);
        for table in tables {
            let epoch = table.epoch();
            let from = share * table.pages() / oracles.len().max(1);
            let (sent, done) =
                match within(self.suite.record_availability_pages(&table, from, 1)).await {
                    Ok(PagesRecorded::NotAgreed) => (0, false),
                    Ok(PagesRecorded::OtherTable) => {
                        tracing::info!(
                            epoch,
                            "the oracles agreed on another availability table; its voters record it"
                        );
                        (0, true)
                    }
                    Ok(PagesRecorded::Recorded { sent, left }) => (sent, left == 0),
                    Err(e) => {
                        tracing::warn!(epoch, error = %e, "availability page not recorded");
                        self.metrics.vote("availability_page", "error");
                        self.availability_failed_ms.store(now, Ordering::Relaxed);
                        return;
                    }
                };
            if done {
                self.availability_pages.lock().await.remove(&epoch);
                self.forget_availability_table(epoch);
            }
            if sent > 0 {
                tracing::info!(epoch, done, "recorded an availability page");
                self.metrics.vote("availability_page", "accepted");
                self.availability_page_ms.store(now, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Drops the kept availability table of `epoch` (see
    /// [`crate::oracle::state::OracleState::record_availability_table`]).
    fn forget_availability_table(&self, epoch: u64) {
        if let Err(e) = self.state.forget_availability_table(epoch) {
            tracing::warn!(epoch, error = %e, "cannot forget a kept availability table");
        }
    }

    /// Escrow and project statuses from the chain snapshot, with each escrow's totals as
    /// `totals` last read them (read again when its open jobs change, or once
    /// [`ESCROW_TOTALS_REFRESH_MS`] old).
    async fn resource_statuses(&self, chain: &ChainSnapshot, totals: &mut EscrowTotalsRead) {
        let now = now_ms();
        let mut shown = HashSet::new();
        for object in self.store.list(Kind::Escrow, None).unwrap_or_default() {
            let key = object.key();
            let previous: EscrowStatus = object.status_as().ok().flatten().unwrap_or_default();
            let mut status = EscrowStatus {
                conditions: previous.conditions.clone(),
                ..EscrowStatus::default()
            };
            match chain.escrows.get(&object.metadata.owner) {
                Some(&escrow) => {
                    status.phase = Some(EscrowPhase::Ready);
                    status.address = Some(escrow.to_checksum(None));
                    let jobs: EscrowJobs = chain
                        .jobs
                        .values()
                        .filter(|j| j.escrow == escrow)
                        .fold((0, 0), |(n, sum), j| (n + 1, sum.saturating_add(j.balance)));
                    if shown.insert(escrow) && totals.due(escrow, jobs, now) {
                        match within(self.suite.escrow_totals(escrow)).await {
                            Ok(read) => {
                                let read = TotalsRead {
                                    at: now,
                                    jobs,
                                    totals: read,
                                };
                                totals.read.insert(escrow, read);
                            }
                            Err(e) => {
                                tracing::debug!(escrow = %escrow, error = %e, "cannot read the escrow's totals; showing the last ones");
                            }
                        }
                    }
                    if let Some(TotalsRead { totals, .. }) = totals.read.get(&escrow) {
                        let usdc = |v: alloy_primitives::U256| {
                            Usdc(u64::try_from(v).unwrap_or(u64::MAX)).to_string()
                        };
                        status.balance = Some(usdc(totals.balance_usdc));
                        status.paid = Some(usdc(totals.credited_to_nodes));
                        status.burned = Some(usdc(totals.burned));
                        status.refunded = Some(usdc(totals.refunded));
                    }
                    status.locked = Some(Usdc(jobs.1).to_string());
                    status.conditions = vec![ready_condition(
                        &previous,
                        true,
                        "EscrowFound",
                        format!("escrow {escrow:#x} is owned by the CSP"),
                    )];
                }
                None => {
                    status.phase = Some(EscrowPhase::Pending);
                    status.conditions = vec![ready_condition(
                        &previous,
                        false,
                        "NoEscrow",
                        format!(
                            "governance has not deployed an escrow for {}",
                            object.metadata.owner.to_checksum(None)
                        ),
                    )];
                }
            }
            if previous != status
                && let Err(e) = self.store.update_status(&key, None, &status)
            {
                tracing::warn!(object = %key, error = %e, "cannot write status");
            }
        }
        totals.read.retain(|escrow, _| shown.contains(escrow));
        let mut jobs_in: HashMap<(String, String), usize> = HashMap::new();
        for job in self.store.list(Kind::Job, None).unwrap_or_default() {
            if let Some(spec) = job.spec.job() {
                let project = (
                    job.metadata.namespace.clone(),
                    spec.project_ref.name.clone(),
                );
                *jobs_in.entry(project).or_default() += 1;
            }
        }
        for object in self.store.list(Kind::Project, None).unwrap_or_default() {
            let key = object.key();
            let count = jobs_in
                .get(&(key.namespace.clone(), key.name.clone()))
                .copied()
                .unwrap_or(0);
            let previous: DeeployProjectStatus =
                object.status_as().ok().flatten().unwrap_or_default();
            let status = DeeployProjectStatus {
                job_count: u32::try_from(count).unwrap_or(u32::MAX),
                observed_generation: Some(object.metadata.generation),
                ..previous.clone()
            };
            if previous != status
                && let Err(e) = self.store.update_status(&key, None, &status)
            {
                tracing::warn!(object = %key, error = %e, "cannot write status");
            }
        }
    }
}

impl Oracle {
    /// Removes projects, escrows and tunnels whose deletion was requested once no job — not
    /// even one being deleted — refers to them any more. Nothing on chain belongs to them (an
    /// escrow resource only names the CSP's escrow contract), so that is all their deletion
    /// waits for. The jobs are read only when something waits.
    pub(crate) fn finalize_unused(&self) {
        let deleting: Vec<Arc<StoredObject>> = [Kind::Project, Kind::Escrow, Kind::Tunnel]
            .into_iter()
            .flat_map(|kind| self.store.list(kind, None).unwrap_or_default())
            .filter(|object| object.metadata.deletion_requested)
            .collect();
        if deleting.is_empty() {
            return;
        }
        // Read now, not earlier in the pass: a job applied meanwhile may refer to them.
        let jobs = self.store.list(Kind::Job, None).unwrap_or_default();
        for object in deleting {
            let key = object.key();
            if jobs.iter().any(|job| refers_to(job, &key)) {
                continue;
            }
            match self.store.finalize_delete(&key, None) {
                Ok(()) => tracing::info!(object = %key, "deletion finalized"),
                Err(e) => tracing::warn!(object = %key, error = %e, "cannot finalize deletion"),
            }
        }
    }
}

fn ready_condition(
    previous: &EscrowStatus,
    ready: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if ready {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status)
        .map_or_else(timestamp_now, |c| c.last_transition_time.clone());
    Condition {
        type_: "Ready".into(),
        status,
        reason: reason.into(),
        message,
        last_transition_time,
        observed_generation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoffs_fit_in_half_an_epoch() {
        assert_eq!(scaled((1_000, 250_000), 20_000), (1_000, 10_000));
        assert_eq!(scaled((1_000, 250_000), 1_000), (500, 500));
        assert_eq!(scaled((1_000, 250_000), 86_400_000), (1_000, 250_000));
    }

    #[test]
    fn pages_are_paced_among_all_oracles_and_fit_in_half_an_epoch() {
        // 79 pages of 10,000 nodes, three oracles, a day: one page every 4 s among them.
        assert_eq!(page_spacing_ms(3, 79, 86_400_000), 12_000);
        // The bench's 600 s epochs: 79 pages within 300 s.
        let spacing = page_spacing_ms(3, 79, 600_000);
        assert!(spacing / 3 * 79 <= 300_000, "{spacing}");
        // A 4 s test epoch with one page: at most 2 s.
        assert!(page_spacing_ms(1, 1, 4_000) <= 2_000);
        assert_eq!(page_spacing_ms(0, 0, 4_000), 2_000);
    }

    #[test]
    fn an_escrows_totals_are_read_when_never_read_its_jobs_changed_or_old_enough() {
        let (one, other) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let jobs = (2, 500);
        let mut totals = EscrowTotalsRead::default();
        assert!(totals.due(one, jobs, 10_000));
        let at = 10_000;
        let read = TotalsRead {
            at,
            jobs,
            totals: EscrowTotals::default(),
        };
        totals.read.insert(one, read);
        assert!(!totals.due(one, jobs, at));
        assert!(!totals.due(one, jobs, at + ESCROW_TOTALS_REFRESH_MS - 1));
        assert!(totals.due(one, jobs, at + ESCROW_TOTALS_REFRESH_MS));
        assert!(totals.due(other, jobs, at));
        // A job created, settled or closed: read again at once.
        assert!(totals.due(one, (3, 600), at + 1));
        assert!(totals.due(one, (2, 400), at + 1));
        assert!(totals.due(one, (1, 500), at + 1));
        // A wall clock that stepped back is taken as no time having passed.
        assert!(!totals.due(one, jobs, at - 1_000));
    }
}
