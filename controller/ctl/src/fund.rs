//! `r1ctl fund` (and the funding step of `r1ctl apply`): the CSP pays for its `DeeployJob`s on
//! chain with its own key.
//!
//! Escrow `createJobs` is callable only by the escrow's CSP, and oracles never hold CSP keys, so
//! the CSP creates the on-chain job itself and the oracles find it by its `projectHash`
//! ([`r1_contracts::job_link::project_hash`] of the signer, namespace and name). The oracle's
//! `GET /v1/info` says which chain and contracts to use. Funding is idempotent: a job whose
//! escrow already holds an open job with that hash is reported and left alone.
//!
//! Epochs are counted as the oracles count them: by the wall clock and the PoAI manager's
//! genesis and epoch length ([`EpochClock`]), not by its `currentEpoch()` view, which a devnet
//! that mines only on demand answers with its last block's time (standing still between
//! transactions, so a job asked for 30 epochs would get fewer, or none).

use std::io::Write;

use alloy_primitives::{Address, B256, U256};
use r1_contracts::attach::chain_id_at;
use r1_contracts::bindings::CspEscrow::{self, CspEscrowErrors};
use r1_contracts::epoch::{EpochClock, EpochError};
use r1_contracts::{JobRequest, Suite, project_hash};
use r1_crds::DeeployJobSpec;
use r1_crds::api::object::ObjectKey;
use r1_crds::api::outcome::count;
use r1_crds::api::wire::{ApiInfo, NO_CHAIN};
use r1_crds::check::{References, Source, check_sources};
use r1_crds::manifest::{Kind, Manifest};
use r1_crds::pricing::{Catalogue, EstimateError};
use r1_crds::usdc::Usdc;
use r1_protocol::now_ms;
use url::Url;

use crate::remote::{Client, RemoteError};

/// Chain RPC used when neither `--rpc-url` nor `R1_RPC_URL` names one.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8545";

/// How often job creation is retried when an epoch boundary passes between reading the epoch
/// and mining the transaction (the contract then sees one epoch fewer than asked for).
const CREATE_ATTEMPTS: usize = 3;

/// Why funding could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum FundError {
    /// The oracle could not tell where to fund.
    #[error("cannot ask the oracle which chain it uses: {0}")]
    Remote(#[from] RemoteError),
    /// The RPC URL is unusable.
    #[error("RPC URL {url:?}: {reason}")]
    BadRpc {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The RPC serves another chain than the oracle's.
    #[error("the RPC at {url} serves chain {rpc}, but the oracle settles on chain {oracle}")]
    ChainMismatch {
        /// The RPC endpoint.
        url: String,
        /// Its chain id.
        rpc: u64,
        /// The oracle's chain id.
        oracle: u64,
    },
    /// The signer has no escrow to fund from.
    #[error("{csp} has no escrow on chain {chain_id}: ask governance to deploy one")]
    NoEscrow {
        /// The signer.
        csp: Address,
        /// The chain looked at.
        chain_id: u64,
    },
    /// The PoAI manager's epoch settings are unusable (a zero epoch length).
    #[error("the PoAI manager's epoch clock: {0}")]
    Clock(#[from] EpochError),
    /// Talking to the chain failed.
    #[error("chain: {0}")]
    Chain(#[from] r1_contracts::Error),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Why one job could not be funded (the others may still be).
#[derive(Debug, thiserror::Error)]
pub enum JobFundError {
    /// The catalogue cannot price the job.
    #[error("cannot price it: {0}")]
    Price(#[from] EstimateError),
    /// Governance has not priced the job's class on chain.
    #[error(
        "price class {class} (id {id}) has no price on chain {chain_id}: ask governance to set it"
    )]
    NotPricedOnChain {
        /// The class name.
        class: String,
        /// Its id, the on-chain job type.
        id: u8,
        /// The chain looked at.
        chain_id: u64,
    },
    /// The signer holds too little USDC.
    #[error("not enough USDC: it needs {needed} USDC and {csp} holds {held} USDC")]
    NotEnoughUsdc {
        /// What the job costs.
        needed: Usdc,
        /// What the signer holds.
        held: Usdc,
        /// The signer.
        csp: Address,
    },
    /// A delegate funds from the escrow's free balance, which holds too little.
    #[error(
        "not enough USDC in {owner}'s escrow: it needs {needed} USDC and {free} USDC are free (the owner adds more with `r1ctl escrow deposit`)"
    )]
    NotEnoughInEscrow {
        /// What the job costs.
        needed: Usdc,
        /// The escrow's free balance.
        free: Usdc,
        /// The escrow's owner.
        owner: Address,
    },
    /// The oracle answered with an object of another kind.
    #[error("the oracle answered with a {0}, not a DeeployJob")]
    NotAJob(Kind),
    /// The oracle does not have the job.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// This machine's clock is before the chain's epoch 0.
    #[error("no epoch yet: {0}")]
    Clock(#[from] EpochError),
    /// Creating the job on chain failed.
    #[error("chain: {0}")]
    Chain(#[from] r1_contracts::Error),
}

/// What funding one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funded {
    /// A new on-chain job was created and paid for.
    Created {
        /// Its id.
        job_id: u64,
        /// Epochs paid.
        epochs: u64,
        /// Nodes paid.
        nodes: u64,
        /// USDC locked in the escrow.
        paid: Usdc,
    },
    /// The escrow already had an open job for this resource, holding what the spec asks.
    Already {
        /// Its id.
        job_id: u64,
    },
    /// The open job was extended to what the spec asks now.
    Extended {
        /// Its id.
        job_id: u64,
        /// Nodes before and after, when they grew.
        nodes: Option<(u64, u64)>,
        /// Last execution epoch before and after, when it moved.
        last_epoch: Option<(u64, u64)>,
    },
}

/// What an applied spec asks of its open chain job beyond what the job holds. The chain only
/// grows a job: a spec asking fewer replicas runs fewer (the rest of the budget comes back when
/// the job closes) and a shorter duration changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension {
    /// The node count to raise the job to.
    pub nodes: Option<u64>,
    /// The last execution epoch to extend the job to.
    pub last_epoch: Option<u64>,
}

impl Extension {
    /// For a job holding `job_nodes` through `job_last`, created in epoch `created`, whose spec
    /// now asks `replicas` replicas for `duration` epochs counted from its creation.
    pub fn of(job_nodes: u64, job_last: u64, created: u64, replicas: u64, duration: u64) -> Self {
        let asked_last = created.saturating_add(duration);
        Self {
            nodes: (replicas > job_nodes).then_some(replicas),
            last_epoch: (asked_last > job_last).then_some(asked_last),
        }
    }

    /// Whether nothing is to be extended.
    pub const fn is_empty(&self) -> bool {
        self.nodes.is_none() && self.last_epoch.is_none()
    }
}

/// A CSP's funding session: the suite the oracle named, over an RPC checked to be its chain,
/// signing as the CSP, with the CSP's escrow and the manager's epoch clock.
#[derive(Debug)]
pub struct Funder {
    suite: Suite,
    escrow: Address,
    /// The escrow's owner: the signer, or the owner a delegate acts for.
    owner: Address,
    chain_id: u64,
    clock: EpochClock,
}

impl Funder {
    /// Asks the oracle behind `client` for its chain, checks that `rpc_url` serves it, and
    /// finds the escrow of the client's signer.
    pub async fn connect(client: &Client, rpc_url: &str) -> Result<Self, FundError> {
        let info = client.info().await?;
        Self::connect_to(client, &info, rpc_url).await
    }

    async fn connect_to(client: &Client, info: &ApiInfo, rpc_url: &str) -> Result<Self, FundError> {
        let bad = |reason: String| FundError::BadRpc {
            url: rpc_url.to_owned(),
            reason,
        };
        let url = Url::parse(rpc_url).map_err(|e| bad(e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("the scheme must be http or https".into()));
        }
        let rpc = chain_id_at(&url).await?;
        if rpc != info.chain_id {
            return Err(FundError::ChainMismatch {
                url: rpc_url.to_owned(),
                rpc,
                oracle: info.chain_id,
            });
        }
        let signer = client.identity().signer().clone();
        let suite = Suite::attach(&url, signer, info.poai_manager).await?;
        let csp = client.owner();
        let escrow = suite.escrow_of(csp).await?;
        if escrow == Address::ZERO {
            return Err(FundError::NoEscrow {
                csp,
                chain_id: info.chain_id,
            });
        }
        let (genesis, length) = suite.epoch_clock().await?;
        Ok(Self {
            suite,
            escrow,
            owner: csp,
            chain_id: info.chain_id,
            clock: EpochClock::new(genesis, length)?,
        })
    }

    /// The escrow jobs are funded from.
    pub fn escrow(&self) -> Address {
        self.escrow
    }

    /// The chain client, signing as the key that funds.
    pub fn suite(&self) -> &Suite {
        &self.suite
    }

    /// Funds the job `key` (owned by the signer) as `spec` asks, unless its escrow already holds
    /// an open job for it.
    pub async fn fund(
        &self,
        key: &ObjectKey,
        spec: &DeeployJobSpec,
        catalogue: &Catalogue,
    ) -> Result<Funded, JobFundError> {
        let estimate = catalogue.estimate(spec)?;
        let hash = project_hash(self.owner, &key.namespace, &key.name);
        if let Some(job) = self.suite.find_open_job(self.escrow, hash).await? {
            return self.extend(&job, &estimate).await;
        }
        let class = &estimate.class;
        let price = self.suite.job_type_price(class.id).await?;
        if price.is_zero() {
            return Err(JobFundError::NotPricedOnChain {
                class: class.name.clone(),
                id: class.id,
                chain_id: self.chain_id,
            });
        }
        let nodes = u64::from(estimate.replicas);
        let epochs = u64::from(estimate.epochs);
        let cost = price * U256::from(nodes) * U256::from(epochs);
        if self.owner == self.suite.address() {
            let held = self.suite.usdc_balance(self.owner).await?;
            if held < cost {
                return Err(JobFundError::NotEnoughUsdc {
                    needed: usdc(cost),
                    held: usdc(held),
                    csp: self.owner,
                });
            }
        } else {
            let free = self.suite.free_balance(self.escrow).await?;
            if free < cost {
                return Err(JobFundError::NotEnoughInEscrow {
                    needed: usdc(cost),
                    free: usdc(free),
                    owner: self.owner,
                });
            }
        }
        let job = self.create(class.id, hash, nodes, epochs).await?;
        Ok(Funded::Created {
            job_id: to_u64(job.id),
            epochs: paid_epochs(
                to_u64(job.lastExecutionEpoch),
                to_u64(job.nextEpochToSettle),
            ),
            nodes,
            paid: usdc(job.balance),
        })
    }

    /// Extends the open `job` to what `estimate` (its spec now) asks: more nodes, then a later
    /// last epoch, each paid from the signer's wallet by the escrow's extend operations.
    async fn extend(
        &self,
        job: &CspEscrow::Job,
        estimate: &r1_crds::pricing::Estimate,
    ) -> Result<Funded, JobFundError> {
        let job_id = to_u64(job.id);
        let nodes = to_u64(job.numberOfNodesRequested);
        let last = to_u64(job.lastExecutionEpoch);
        let created = self.clock.epoch_at(to_u64(job.requestTimestamp))?;
        let extension = Extension::of(
            nodes,
            last,
            created,
            u64::from(estimate.replicas),
            u64::from(estimate.epochs),
        );
        if extension.is_empty() {
            return Ok(Funded::Already { job_id });
        }
        if let Some(more) = extension.nodes {
            self.suite
                .extend_job_nodes(self.escrow, job_id, more)
                .await?;
        }
        if let Some(later) = extension.last_epoch {
            self.suite
                .extend_job_duration(self.escrow, job_id, later)
                .await?;
        }
        Ok(Funded::Extended {
            job_id,
            nodes: extension.nodes.map(|more| (nodes, more)),
            last_epoch: extension.last_epoch.map(|later| (last, later)),
        })
    }

    /// Creates the job paid for the `epochs` epochs after the current one (by [`EpochClock`])
    /// and returns it as the chain holds it.
    ///
    /// The escrow pays from the epoch after the one of the block the creation runs in (its gas
    /// estimate runs it too). That epoch may be later than ours: an epoch boundary passed
    /// meanwhile, and the job is paid one epoch fewer, so it is extended by the missing epoch
    /// (or, refused below the escrow's minimum, created again). It may be earlier: the chain's
    /// clock runs behind ours (a Hardhat EDR devnet's by about a second) across an epoch
    /// boundary, and the job is paid from the chain's epoch, one more. The approval counts
    /// from the earliest epoch the chain can run the creation in (see [`costed_from`]).
    async fn create(
        &self,
        job_type: u8,
        project_hash: B256,
        nodes: u64,
        epochs: u64,
    ) -> Result<CspEscrow::Job, JobFundError> {
        let mut attempt = 1;
        let job_id = loop {
            let (epoch, last_execution_epoch) = asked_epochs(&self.clock, now_ms(), epochs)?;
            let request = JobRequest {
                job_type,
                project_hash,
                last_execution_epoch,
                nodes,
            };
            let costed_from = costed_from(self.suite.current_epoch().await?, epoch);
            match self
                .suite
                .create_job_in(self.escrow, &request, costed_from)
                .await
            {
                Ok(job_id) => break job_id,
                Err(e)
                    if attempt < CREATE_ATTEMPTS
                        && matches!(
                            e.revert::<CspEscrowErrors>(),
                            Some(CspEscrowErrors::TooFewEpochs(_))
                        ) =>
                {
                    tracing::debug!(attempt, "an epoch passed while creating the job; retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let job = self.suite.job(job_id).await?;
        let Some(last) = made_up_last_epoch(
            to_u64(job.lastExecutionEpoch),
            to_u64(job.nextEpochToSettle),
            epochs,
        ) else {
            return Ok(job);
        };
        tracing::debug!(
            job_id,
            last,
            "an epoch passed while creating the job; extending it"
        );
        self.suite
            .extend_job_duration(self.escrow, job_id, last)
            .await?;
        Ok(self.suite.job(job_id).await?)
    }
}

/// The current epoch at `now_ms` and the last execution epoch that pays the `epochs` epochs
/// after it.
fn asked_epochs(clock: &EpochClock, now_ms: u64, epochs: u64) -> Result<(u64, u64), EpochError> {
    let epoch = clock.epoch_at_ms(now_ms)?;
    Ok((epoch, epoch.saturating_add(epochs)))
}

/// The epoch a job's approval is counted from: the earlier of the wall clock's `epoch` and the
/// latest block's `view_epoch` (block times never go back, so the chain runs the creation and
/// its gas estimate no earlier). The escrow pulls the most in the earliest epoch.
fn costed_from(view_epoch: u64, epoch: u64) -> u64 {
    view_epoch.min(epoch)
}

/// Epochs a job is paid for: every epoch from `next_epoch_to_settle` through
/// `last_execution_epoch` (the escrow pays from the epoch after the one it was created in).
fn paid_epochs(last_execution_epoch: u64, next_epoch_to_settle: u64) -> u64 {
    last_execution_epoch
        .saturating_add(1)
        .saturating_sub(next_epoch_to_settle)
}

/// The last execution epoch that makes a job paid through `last_execution_epoch` from
/// `next_epoch_to_settle` on hold `epochs` epochs, when it holds fewer.
fn made_up_last_epoch(
    last_execution_epoch: u64,
    next_epoch_to_settle: u64,
    epochs: u64,
) -> Option<u64> {
    let paid = paid_epochs(last_execution_epoch, next_epoch_to_settle);
    (paid < epochs).then(|| last_execution_epoch.saturating_add(epochs - paid))
}

/// `r1ctl apply`: applies `sources` as one set, then funds their jobs unless `rpc_url` is
/// `None` (`--no-fund`). A failed funding leaves the apply in place; it is printed and makes the
/// result `false`.
pub async fn apply(
    client: &Client,
    sources: &[Source],
    catalogue: &Catalogue,
    rpc_url: Option<&str>,
    out: &mut dyn Write,
) -> Result<bool, RemoteError> {
    let applied = crate::remote::apply(client, sources, catalogue, out).await?;
    let Some(rpc_url) = rpc_url.filter(|_| applied) else {
        return Ok(applied);
    };
    match fund_applied(client, sources, catalogue, rpc_url, out).await {
        Ok(funded) => Ok(funded),
        Err(FundError::Output(e)) => Err(RemoteError::Output(e)),
        Err(e) => {
            writeln!(out, "error: the jobs were applied but not funded: {e}")?;
            Ok(false)
        }
    }
}

/// `r1ctl fund KIND NAME`: funds one job as the oracle has it.
pub async fn fund_named(
    client: &Client,
    key: &ObjectKey,
    catalogue: &Catalogue,
    rpc_url: &str,
    out: &mut dyn Write,
) -> Result<bool, FundError> {
    if key.kind != Kind::Job {
        writeln!(
            out,
            "error: only DeeployJobs are funded, not {}s",
            key.kind.as_str()
        )?;
        return Ok(false);
    }
    let funder = Funder::connect(client, rpc_url).await?;
    let result = match client.get(key).await {
        Ok(object) => match object.spec.job() {
            Some(spec) => funder.fund(key, spec, catalogue).await,
            None => Err(JobFundError::NotAJob(object.kind())),
        },
        Err(e) => Err(e.into()),
    };
    report(key, result, out)
}

/// `r1ctl fund -f`: funds every `DeeployJob` in `sources` (other kinds are skipped).
pub async fn fund_sources(
    client: &Client,
    sources: &[Source],
    catalogue: &Catalogue,
    rpc_url: &str,
    out: &mut dyn Write,
) -> Result<bool, FundError> {
    let report = check_sources(sources, catalogue, References::SyntaxOnly);
    if !report.is_valid() {
        for finding in &report.findings {
            writeln!(out, "error: {finding}")?;
        }
        let errors = count(report.findings.len(), "error");
        writeln!(out, "{errors}; nothing was funded")?;
        return Ok(false);
    }
    let jobs = jobs_in(sources, catalogue);
    if jobs.is_empty() {
        writeln!(out, "error: no DeeployJob in the given files")?;
        return Ok(false);
    }
    let funder = Funder::connect(client, rpc_url).await?;
    fund_all(&funder, &jobs, catalogue, out).await
}

/// The funding step of `r1ctl apply`, after `sources` were applied: funds every `DeeployJob`
/// among them. An oracle without a chain cannot tell where to fund, so each job is reported
/// as not funded and that is not a failure (`r1ctl fund` can follow once the oracle has one).
pub async fn fund_applied(
    client: &Client,
    sources: &[Source],
    catalogue: &Catalogue,
    rpc_url: &str,
    out: &mut dyn Write,
) -> Result<bool, FundError> {
    let jobs = jobs_in(sources, catalogue);
    if jobs.is_empty() {
        return Ok(true);
    }
    let funder = match client.info().await {
        Ok(info) => Funder::connect_to(client, &info, rpc_url).await?,
        Err(RemoteError::Refused { status: 503, body }) if body.error == NO_CHAIN => {
            for (key, _) in &jobs {
                writeln!(out, "{key} not funded: {}", body.reason)?;
            }
            return Ok(true);
        }
        Err(e) => return Err(e.into()),
    };
    fund_all(&funder, &jobs, catalogue, out).await
}

/// The jobs of `sources`, by key; assumes they were checked.
fn jobs_in(sources: &[Source], catalogue: &Catalogue) -> Vec<(ObjectKey, DeeployJobSpec)> {
    check_sources(sources, catalogue, References::SyntaxOnly)
        .resources
        .into_iter()
        .filter_map(|(_, _, manifest)| match &manifest {
            Manifest::Job(job) => Some((ObjectKey::of(&manifest), job.spec.clone())),
            _ => None,
        })
        .collect()
}

async fn fund_all(
    funder: &Funder,
    jobs: &[(ObjectKey, DeeployJobSpec)],
    catalogue: &Catalogue,
    out: &mut dyn Write,
) -> Result<bool, FundError> {
    let mut all = true;
    for (key, spec) in jobs {
        all &= report(key, funder.fund(key, spec, catalogue).await, out)?;
    }
    Ok(all)
}

/// Prints one line for one job; returns whether it is funded.
fn report(
    key: &ObjectKey,
    result: Result<Funded, JobFundError>,
    out: &mut dyn Write,
) -> Result<bool, FundError> {
    match result {
        Ok(Funded::Created {
            job_id,
            epochs,
            nodes,
            paid,
        }) => {
            let nodes = count(usize::try_from(nodes).unwrap_or(usize::MAX), "node");
            writeln!(
                out,
                "{key} funded: chain job {job_id}, {epochs} epochs × {nodes}, {paid} USDC"
            )?;
            Ok(true)
        }
        Ok(Funded::Already { job_id }) => {
            writeln!(out, "{key} already funded: job id {job_id}")?;
            Ok(true)
        }
        Ok(Funded::Extended {
            job_id,
            nodes,
            last_epoch,
        }) => {
            let mut changes = Vec::new();
            if let Some((from, to)) = nodes {
                changes.push(format!("nodes {from} → {to}"));
            }
            if let Some((from, to)) = last_epoch {
                changes.push(format!("last epoch {from} → {to}"));
            }
            writeln!(
                out,
                "{key} extended: chain job {job_id}, {}",
                changes.join(", ")
            )?;
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "error: {key} not funded: {e}")?;
            Ok(false)
        }
    }
}

/// USDC units (6 decimals) as an amount; saturates beyond what any escrow could hold.
fn usdc(units: U256) -> Usdc {
    Usdc(u64::try_from(units).unwrap_or(u64::MAX))
}

/// Ids and epochs fit in 64 bits; saturate rather than wrap if a contract ever says otherwise.
fn to_u64(value: U256) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the escrow records for a job asked to end in `last` and run in `epoch`:
    #[test]
    fn a_spec_asking_more_extends_and_asking_less_changes_nothing() {
        // Created in epoch 100 for 30 epochs on 2 nodes: paid through epoch 130.
        assert!(Extension::of(2, 130, 100, 2, 30).is_empty());
        assert_eq!(
            Extension::of(2, 130, 100, 3, 30),
            Extension {
                nodes: Some(3),
                last_epoch: None
            }
        );
        assert_eq!(
            Extension::of(2, 130, 100, 2, 60),
            Extension {
                nodes: None,
                last_epoch: Some(160)
            }
        );
        assert!(
            Extension::of(2, 131, 100, 1, 30).is_empty(),
            "fewer replicas, a shorter duration, or a job extended to make up an epoch"
        );
    }

    /// `(lastExecutionEpoch, nextEpochToSettle)`, or `None` when it refuses too few epochs.
    fn escrow_creates(last: u64, epoch: u64) -> Option<(u64, u64)> {
        (last.saturating_sub(epoch) >= 30).then_some((last, epoch + 1))
    }

    /// Whether the escrow can pull what a job ending in `last` costs in `epoch` when the
    /// approval was counted from `costed_from` (prices and nodes cancel out).
    fn approval_covers(last: u64, epoch: u64, costed_from: u64) -> bool {
        last.saturating_sub(epoch) <= last.saturating_sub(costed_from)
    }

    #[test]
    fn the_epoch_is_the_wall_clocks_not_the_last_blocks() {
        // 2 s epochs from t = 1000 s; the devnet's last block is at genesis, and a view would
        // say epoch 0 for as long as nobody sends a transaction.
        let clock = EpochClock::new(1_000, 2).expect("non-zero length");
        let now_ms = 1_100_500;
        let (epoch, last) = asked_epochs(&clock, now_ms, 30).expect("after genesis");
        assert_eq!((epoch, last), (50, 80));
        let (last, next) = escrow_creates(last, epoch).expect("30 epochs");
        assert_eq!(paid_epochs(last, next), 30);
        // Asked from the stale view (epoch 0), the job would end before it began.
        assert_eq!(escrow_creates(30, 50), None);
    }

    #[test]
    fn asked_epochs_follow_epoch_boundaries() {
        let clock = EpochClock::new(1_000, 2).expect("non-zero length");
        assert_eq!(asked_epochs(&clock, 1_000_000, 30), Ok((0, 30)));
        assert_eq!(asked_epochs(&clock, 1_001_999, 30), Ok((0, 30)));
        assert_eq!(asked_epochs(&clock, 1_002_000, 30), Ok((1, 31)));
        assert_eq!(
            asked_epochs(&clock, 999_999, 30),
            Err(EpochError::BeforeGenesis {
                at_unix_s: 999,
                genesis_unix_s: 1_000
            })
        );
        assert_eq!(
            asked_epochs(&clock, u64::MAX, 30).map(|(_, l)| l >= 30),
            Ok(true)
        );
    }

    #[test]
    fn paid_epochs_run_from_the_next_to_settle_through_the_last() {
        assert_eq!(paid_epochs(80, 51), 30);
        assert_eq!(paid_epochs(80, 80), 1);
        assert_eq!(paid_epochs(80, 81), 0);
        assert_eq!(paid_epochs(80, 90), 0);
    }

    #[test]
    fn a_job_mined_an_epoch_late_is_extended_by_the_missing_epoch() {
        // Asked in epoch 50 to end in 80, mined in 51: paid 52..=80, 29 epochs.
        assert_eq!(made_up_last_epoch(80, 52, 30), Some(81));
        assert_eq!(paid_epochs(81, 52), 30);
        // Mined in time, or paid more than asked: nothing to make up.
        assert_eq!(made_up_last_epoch(80, 51, 30), None);
        assert_eq!(made_up_last_epoch(80, 50, 30), None);
    }

    #[test]
    fn the_approval_covers_a_chain_clock_behind_ours() {
        // Wall clock just into epoch 50, the chain's clock a second behind, in epoch 49: the
        // creation runs in epoch 49 and pays 31 epochs (50..=80).
        assert_eq!(costed_from(49, 50), 49);
        assert!(approval_covers(80, 49, costed_from(49, 50)));
        assert_eq!(
            escrow_creates(80, 49).map(|(l, n)| paid_epochs(l, n)),
            Some(31)
        );
        assert!(
            !approval_covers(80, 49, 50),
            "costed by the wall clock alone"
        );
        // A devnet idle since epoch 10: the chain runs the creation at its own time, somewhere
        // from epoch 10 to 50; the approval covers the dearest.
        assert_eq!(costed_from(10, 50), 10);
        assert!(approval_covers(80, 10, costed_from(10, 50)));
        assert!(approval_covers(80, 50, costed_from(10, 50)));
    }

    proptest! {
        /// However far behind ours the chain's clock and however old its latest block, the gas
        /// estimate passes, the approval covers what the escrow pulls, and the job ends up
        /// paid for the epochs asked: exactly when the chain runs the creation in our epoch or
        /// later (a later one is made up), plus one per epoch the chain's clock is behind ours.
        /// Mined within half an epoch of reading the clock, it is always created.
        #[test]
        fn every_created_job_holds_the_epochs_asked(
            genesis in 0u64..2_000_000_000,
            length in 1u64..100_000,
            offset_ms in 0u64..10_000_000_000,
            delay_ms in 0u64..200_000,
            lag_ms in 0u64..3_000,
            block_age_ms in 0u64..10_000_000_000,
            epochs in 30u64..400,
        ) {
            let clock = EpochClock::new(genesis, length).expect("non-zero length");
            let chain_epoch = |wall_ms: u64| {
                clock
                    .epoch_at_ms(wall_ms.saturating_sub(lag_ms).max(genesis * 1000))
                    .expect("after genesis")
            };
            let mut now = genesis * 1000 + offset_ms;
            let delay_ms = delay_ms % (length * 1000);
            let mut created = None;
            for _ in 0..CREATE_ATTEMPTS {
                let (epoch, last) = asked_epochs(&clock, now, epochs).expect("after genesis");
                let view = chain_epoch(now.saturating_sub(block_age_ms));
                let costed_from = costed_from(view, epoch);
                let estimated = chain_epoch(now);
                prop_assert!(escrow_creates(last, estimated).is_some(), "the estimate passes");
                prop_assert!(approval_covers(last, estimated, costed_from));
                now += delay_ms;
                let mined = chain_epoch(now);
                prop_assert!(approval_covers(last, mined, costed_from));
                created = escrow_creates(last, mined).map(|job| (job, epoch, mined));
                if created.is_some() {
                    break;
                }
            }
            prop_assert!(created.is_some() || delay_ms >= length * 1000 / 2);
            if let Some(((last, next), epoch, mined)) = created {
                let last = made_up_last_epoch(last, next, epochs).unwrap_or(last);
                prop_assert_eq!(paid_epochs(last, next), epochs + epoch.saturating_sub(mined));
            }
        }
    }
}
