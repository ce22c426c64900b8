//! Funding from the cluster: a `DeeployJob` applied with kubectl or a GitOps pipeline is paid
//! for by the delegate key this oracle holds for its owner (see [`crate::kube::signed`]), from
//! the escrow's free balance, so the pipeline needs no CSP key. A spec asking more replicas or
//! epochs extends the open chain job the same way ([`r1_contracts::funding`]); asking fewer
//! changes nothing on chain (the unused budget comes back when the job closes).
//!
//! What funding came to is the resource's `ClusterFunded` condition: `True` once the chain
//! holds what the spec asks, `False` with the reason when the delegate lacks a permission, the
//! escrow lacks free balance or the chain cannot be reached (then tried again). A job whose
//! chain job the oracles recorded is only ever extended, never created again, so a job that ran
//! its course is not paid twice.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use r1_contracts::epoch::EpochClock;
use r1_contracts::{Funded, Funder, FundingError, JobAsk, Suite};
use r1_crds::DeeployJobSpec;
use r1_crds::api::object::ObjectKey;
use r1_crds::common::{Condition, ConditionStatus};
use r1_crds::job::{DeeployJobStatus, JobPhase};
use r1_crds::pricing::Catalogue;

/// Type of the condition that says what funding from the cluster came to.
pub const CLUSTER_FUNDED: &str = "ClusterFunded";

/// How soon a refused or failed funding is tried again.
const RETRY: Duration = Duration::from_secs(10);
/// Longest one funding may take (reads, up to three transactions mined): a chain that stops
/// answering fails the attempt instead of holding the job's reconcile.
const FUNDING_TIMEOUT: Duration = Duration::from_secs(120);

/// What the adapter last did to fund one job.
#[derive(Debug, Clone)]
struct Attempt {
    uid: Option<String>,
    ask: Option<JobAsk>,
    funded: bool,
    at: Instant,
    condition: Condition,
}

/// Funds mirrored jobs with the delegate key.
#[derive(Debug)]
pub struct ClusterFunding {
    suite: Suite,
    chain_id: u64,
    clock: EpochClock,
    escrows: Mutex<HashMap<Address, Address>>,
    attempts: Mutex<HashMap<ObjectKey, Attempt>>,
}

impl ClusterFunding {
    /// Funds with `suite`'s key (the delegate's) on chain `chain_id`, counting epochs by `clock`.
    pub fn new(suite: Suite, chain_id: u64, clock: EpochClock) -> Self {
        Self {
            suite,
            chain_id,
            clock,
            escrows: Mutex::default(),
            attempts: Mutex::default(),
        }
    }

    /// The `ClusterFunded` condition to show on the job `key`, if funding was attempted.
    pub fn condition(&self, key: &ObjectKey, uid: Option<&str>) -> Option<Condition> {
        let attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        attempts
            .get(key)
            .filter(|a| a.uid.as_deref() == uid)
            .map(|a| a.condition.clone())
    }

    /// Forgets the job `key` (its resource is gone).
    pub fn forget(&self, key: &ObjectKey) {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Makes the chain hold what `spec` asks for the job `key` of `owner`, unless that was done
    /// for this very ask, or a refusal is younger than the retry delay. `status` is the store's
    /// status of the job; `now` the condition's transition time. Returns whether the attempt
    /// is to be repeated later.
    pub async fn fund(
        &self,
        owner: Address,
        key: &ObjectKey,
        uid: Option<&str>,
        spec: &DeeployJobSpec,
        status: &DeeployJobStatus,
        catalogue: &Catalogue,
        now: &str,
    ) -> bool {
        if matches!(status.phase, Some(JobPhase::Closing | JobPhase::Closed)) {
            return false;
        }
        let ask = match job_ask(catalogue, spec) {
            Ok(ask) => ask,
            Err(message) => {
                self.record(key, uid, None, false, refused("Unpriced", message, now));
                return false;
            }
        };
        if self.up_to_date(key, uid, &ask) {
            return false;
        }
        let recorded = status.chain_job_id.is_some();
        let result = tokio::time::timeout(FUNDING_TIMEOUT, self.run(owner, key, &ask, recorded))
            .await
            .unwrap_or(Err(FundingError::TimedOut(FUNDING_TIMEOUT.as_secs())));
        let (funded, condition) = match result {
            Ok(Some(funded)) => (true, granted(&funded, self.suite.address(), now)),
            Ok(None) => (
                true,
                condition(
                    ConditionStatus::False,
                    "ClosedOnChain",
                    "the chain job the oracles recorded is no longer open; it is not created again"
                        .to_owned(),
                    now,
                ),
            ),
            Err(error) => {
                tracing::warn!(object = %key, %owner, %error, "cannot fund from the cluster");
                (false, refused(reason_of(&error), error.to_string(), now))
            }
        };
        self.record(key, uid, Some(ask), funded, condition);
        !funded
    }

    /// Funds, extending only when the oracles already recorded a chain job for it.
    async fn run(
        &self,
        owner: Address,
        key: &ObjectKey,
        ask: &JobAsk,
        recorded: bool,
    ) -> Result<Option<Funded>, FundingError> {
        let funder = self.funder(owner).await?;
        if recorded {
            funder.extend_open(&key.namespace, &key.name, ask).await
        } else {
            funder.fund(&key.namespace, &key.name, ask).await.map(Some)
        }
    }

    /// A funder for `owner`'s escrow, which must exist.
    async fn funder(&self, owner: Address) -> Result<Funder, FundingError> {
        let known = self
            .escrows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&owner)
            .copied();
        let escrow = match known {
            Some(escrow) => escrow,
            None => {
                let escrow = self.suite.escrow_of(owner).await?;
                if escrow == Address::ZERO {
                    return Err(FundingError::NoEscrow { owner });
                }
                self.escrows
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(owner, escrow);
                escrow
            }
        };
        Ok(Funder::new(
            self.suite.clone(),
            escrow,
            owner,
            self.chain_id,
            self.clock,
        ))
    }

    /// Whether the last attempt for `key` funded this very ask, or failed too recently to try
    /// again.
    fn up_to_date(&self, key: &ObjectKey, uid: Option<&str>, ask: &JobAsk) -> bool {
        let attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(last) = attempts.get(key).filter(|a| a.uid.as_deref() == uid) else {
            return false;
        };
        last.ask.as_ref() == Some(ask) && (last.funded || last.at.elapsed() < RETRY)
    }

    fn record(
        &self,
        key: &ObjectKey,
        uid: Option<&str>,
        ask: Option<JobAsk>,
        funded: bool,
        condition: Condition,
    ) {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = attempts.get(key);
        let condition = keep_transition_time(previous.map(|a| &a.condition), condition);
        attempts.insert(
            key.clone(),
            Attempt {
                uid: uid.map(str::to_owned),
                ask,
                funded,
                at: Instant::now(),
                condition,
            },
        );
    }
}

/// What `spec` asks the chain for, priced by `catalogue`.
fn job_ask(catalogue: &Catalogue, spec: &DeeployJobSpec) -> Result<JobAsk, String> {
    let estimate = catalogue.estimate(spec).map_err(|e| e.to_string())?;
    Ok(JobAsk {
        class: estimate.class.name.clone(),
        job_type: estimate.class.id,
        nodes: u64::from(estimate.replicas),
        epochs: u64::from(estimate.epochs),
    })
}

/// The condition's reason for a refusal.
fn reason_of(error: &FundingError) -> &'static str {
    match error {
        FundingError::NotPermitted { .. } => "NotPermitted",
        FundingError::NotEnoughInEscrow { .. } | FundingError::NotEnoughUsdc { .. } => {
            "NotEnoughInEscrow"
        }
        FundingError::NoEscrow { .. } => "NoEscrow",
        FundingError::NotPricedOnChain { .. } => "Unpriced",
        FundingError::Clock(_) | FundingError::Chain(_) | FundingError::TimedOut(_) => {
            "ChainUnavailable"
        }
    }
}

/// The condition once the chain holds what the spec asks.
fn granted(funded: &Funded, delegate: Address, now: &str) -> Condition {
    let (reason, message) = match funded {
        Funded::Created {
            job_id,
            epochs,
            nodes,
            paid,
        } => (
            "Created",
            format!(
                "chain job {job_id} created by delegate {delegate}: {epochs} epochs × {nodes} nodes, {} USDC",
                r1_contracts::units::usdc_text(*paid)
            ),
        ),
        Funded::Already { job_id } => ("Funded", format!("chain job {job_id} holds the budget")),
        Funded::Extended {
            job_id,
            nodes,
            last_epoch,
        } => {
            let mut changes = Vec::new();
            if let Some((from, to)) = nodes {
                changes.push(format!("nodes {from} → {to}"));
            }
            if let Some((from, to)) = last_epoch {
                changes.push(format!("last epoch {from} → {to}"));
            }
            (
                "Extended",
                format!(
                    "chain job {job_id} extended by delegate {delegate}: {}",
                    changes.join(", ")
                ),
            )
        }
    };
    condition(ConditionStatus::True, reason, message, now)
}

fn refused(reason: &str, message: String, now: &str) -> Condition {
    condition(ConditionStatus::False, reason, message, now)
}

fn condition(status: ConditionStatus, reason: &str, message: String, now: &str) -> Condition {
    Condition {
        type_: CLUSTER_FUNDED.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time: now.to_owned(),
        observed_generation: None,
    }
}

/// `next` with the transition time of `previous` when its status did not change.
fn keep_transition_time(previous: Option<&Condition>, mut next: Condition) -> Condition {
    if let Some(previous) = previous
        && previous.status == next.status
    {
        next.last_transition_time = previous.last_transition_time.clone();
    }
    next
}
