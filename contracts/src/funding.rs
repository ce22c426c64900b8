//! Paying for a `DeeployJob` on chain: create its escrow job, or extend the open one to what its
//! spec asks now. Shared by `r1ctl fund` (a CSP or a pipeline's delegate key) and by a
//! Kubernetes-mode oracle funding what it mirrors with the key a CSP delegated to it.
//!
//! Oracles find a resource's chain job by its `projectHash` ([`crate::project_hash`] of the
//! escrow's owner, namespace and name), so funding is idempotent: an escrow already holding an
//! open job with that hash is extended when the spec asks more and otherwise left alone. The
//! owner pays from its wallet; a delegate pays from the escrow's free balance and needs the
//! permission of each operation ([`Permissions`]).
//!
//! Epochs are counted as the oracles count them: by the wall clock and the PoAI manager's
//! genesis and epoch length ([`EpochClock`]), not by its `currentEpoch()` view, which a devnet
//! that mines only on demand answers with its last block's time (standing still between
//! transactions, so a job asked for 30 epochs would get fewer, or none).

use alloy::primitives::{Address, B256, U256};

use crate::bindings::CspEscrow::{self, CspEscrowErrors};
use crate::epoch::{EpochClock, EpochError};
use crate::units::usdc_text;
use crate::{JobRequest, Permissions, Suite, project_hash};

/// How often job creation is retried when an epoch boundary passes between reading the epoch
/// and mining the transaction (the contract then sees one epoch fewer than asked for).
const CREATE_ATTEMPTS: usize = 3;

/// Jobs created by one `createJobs` transaction in [`Funder::fund_many`]: about 250 k gas each,
/// so a batch stays well inside a block.
const CREATE_BATCH: usize = 40;

/// What a job's spec asks the chain for, priced by the caller's catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAsk {
    /// The price class's name, for messages.
    pub class: String,
    /// The price class's id: the on-chain job type.
    pub job_type: u8,
    /// Replicas: the node count paid for.
    pub nodes: u64,
    /// Epochs paid for, counted from the job's creation.
    pub epochs: u64,
}

/// Why one job could not be funded.
#[derive(Debug, thiserror::Error)]
pub enum FundingError {
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
    /// The owner, paying from its wallet, holds too little USDC.
    #[error(
        "not enough USDC: it needs {} USDC and {csp} holds {} USDC",
        usdc_text(*needed),
        usdc_text(*held)
    )]
    NotEnoughUsdc {
        /// What the job costs, in USDC units.
        needed: U256,
        /// What the owner holds.
        held: U256,
        /// The owner.
        csp: Address,
    },
    /// A delegate funds from the escrow's free balance, which holds too little.
    #[error(
        "not enough USDC in {owner}'s escrow: it needs {} USDC and {} USDC are free (the owner adds more with `r1ctl escrow deposit`)",
        usdc_text(*needed),
        usdc_text(*free)
    )]
    NotEnoughInEscrow {
        /// What the job costs, in USDC units.
        needed: U256,
        /// The escrow's free balance.
        free: U256,
        /// The escrow's owner.
        owner: Address,
    },
    /// A delegate lacks the permission the operation needs.
    #[error(
        "{delegate} may not {operation} in {owner}'s escrow: it needs the {needed} permission and holds {held} (r1ctl escrow delegate {delegate} --permissions …)"
    )]
    NotPermitted {
        /// What was to be done.
        operation: &'static str,
        /// The permission it needs.
        needed: Permissions,
        /// What the delegate holds.
        held: Permissions,
        /// The delegate.
        delegate: Address,
        /// The escrow's owner.
        owner: Address,
    },
    /// The owner has no escrow to fund from.
    #[error("{owner} has no escrow: ask governance to deploy one")]
    NoEscrow {
        /// The owner.
        owner: Address,
    },
    /// The chain did not finish the funding in time (its caller's limit, in seconds).
    #[error("the chain did not finish funding within {0} s")]
    TimedOut(u64),
    /// This machine's clock is before the chain's epoch 0.
    #[error("no epoch yet: {0}")]
    Clock(#[from] EpochError),
    /// Talking to the chain failed.
    #[error("chain: {0}")]
    Chain(#[from] crate::Error),
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
        /// USDC units locked in the escrow.
        paid: U256,
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

/// A funding session: a suite signing as the owner of `escrow` or as one of its delegates,
/// with the PoAI manager's epoch clock.
#[derive(Debug, Clone)]
pub struct Funder {
    suite: Suite,
    escrow: Address,
    owner: Address,
    chain_id: u64,
    clock: EpochClock,
}

impl Funder {
    /// Funds jobs of `owner`'s `escrow` on chain `chain_id`, signing with `suite`'s key (the
    /// owner's or a delegate's).
    pub fn new(
        suite: Suite,
        escrow: Address,
        owner: Address,
        chain_id: u64,
        clock: EpochClock,
    ) -> Self {
        Self {
            suite,
            escrow,
            owner,
            chain_id,
            clock,
        }
    }

    /// The escrow jobs are funded from.
    pub fn escrow(&self) -> Address {
        self.escrow
    }

    /// The chain client, signing as the key that funds.
    pub fn suite(&self) -> &Suite {
        &self.suite
    }

    /// Whether the signing key is a delegate rather than the owner.
    fn is_delegate(&self) -> bool {
        self.owner != self.suite.address()
    }

    /// Refuses `operation` early when a delegate lacks `needed`, rather than sending a
    /// transaction the escrow reverts.
    async fn check_permission(
        &self,
        operation: &'static str,
        needed: Permissions,
    ) -> Result<(), FundingError> {
        if !self.is_delegate() {
            return Ok(());
        }
        let delegate = self.suite.address();
        let bits = self
            .suite
            .delegate_permissions(self.escrow, delegate)
            .await?;
        let held = Permissions::from_bits(bits).unwrap_or(Permissions::ALL);
        if held.contains(needed) {
            return Ok(());
        }
        Err(FundingError::NotPermitted {
            operation,
            needed,
            held,
            delegate,
            owner: self.owner,
        })
    }

    /// Funds the job `namespace/name` as `ask` says, unless its escrow already holds an open
    /// job for it, which is extended when `ask` asks more.
    pub async fn fund(
        &self,
        namespace: &str,
        name: &str,
        ask: &JobAsk,
    ) -> Result<Funded, FundingError> {
        if let Some(extended) = self.extend_open(namespace, name, ask).await? {
            return Ok(extended);
        }
        let hash = project_hash(self.owner, namespace, name);
        self.check_permission("create jobs", Permissions::CREATE)
            .await?;
        let price = self.suite.job_type_price(ask.job_type).await?;
        if price.is_zero() {
            return Err(FundingError::NotPricedOnChain {
                class: ask.class.clone(),
                id: ask.job_type,
                chain_id: self.chain_id,
            });
        }
        let cost = cost_now(&self.clock, now_ms(), price, ask.nodes, ask.epochs)?;
        if self.is_delegate() {
            let free = self.suite.free_balance(self.escrow).await?;
            if free < cost {
                return Err(FundingError::NotEnoughInEscrow {
                    needed: cost,
                    free,
                    owner: self.owner,
                });
            }
        } else {
            let held = self.suite.usdc_balance(self.owner).await?;
            if held < cost {
                return Err(FundingError::NotEnoughUsdc {
                    needed: cost,
                    held,
                    csp: self.owner,
                });
            }
        }
        let job = self
            .create(&[NewJob {
                job_type: ask.job_type,
                project_hash: hash,
                nodes: ask.nodes,
                epochs: ask.epochs,
            }])
            .await?
            .into_iter()
            .next()
            .ok_or(crate::Error::MissingEvent {
                tx: B256::ZERO,
                event: "JobCreated",
            })?;
        self.created(&job, ask.nodes)
    }

    /// What funding created as `job`, for `nodes` nodes.
    fn created(&self, job: &CspEscrow::Job, nodes: u64) -> Result<Funded, FundingError> {
        Ok(Funded::Created {
            job_id: to_u64(job.id),
            epochs: paid_epochs(to_u64(job.lastExecutionEpoch), self.first_whole_epoch(job)?),
            nodes,
            paid: job.balance,
        })
    }

    /// Funds every job of `jobs` (namespace, name, ask) as [`Funder::fund`] would, in far fewer
    /// chain calls: their open jobs are found in one call a page, and the jobs to create go
    /// [`CREATE_BATCH`] to a `createJobs` transaction (with one approval of their summed cost).
    /// Whatever a batch cannot settle at once (the price missing, the balance or a delegate's
    /// permission short, a failed transaction, a name given twice) is funded job by job, so
    /// each job gets [`Funder::fund`]'s own result. Results come in the order of `jobs`.
    pub async fn fund_many(
        &self,
        jobs: &[(&str, &str, &JobAsk)],
    ) -> Vec<Result<Funded, FundingError>> {
        let mut results: Vec<Option<Result<Funded, FundingError>>> =
            jobs.iter().map(|_| None).collect();
        let asked: Vec<B256> = jobs
            .iter()
            .map(|(namespace, name, _)| project_hash(self.owner, namespace, name))
            .collect();
        let open: std::collections::HashMap<B256, CspEscrow::Job> =
            match self.suite.find_open_jobs(self.escrow, &asked).await {
                Ok(found) => found
                    .into_iter()
                    .flatten()
                    .map(|job| (job.projectHash, job))
                    .collect(),
                Err(_) => std::collections::HashMap::new(),
            };
        let mut hashes = std::collections::HashSet::new();
        let mut new = Vec::new();
        for (i, (namespace, name, ask)) in jobs.iter().enumerate() {
            let hash = project_hash(self.owner, namespace, name);
            if let Some(job) = open.get(&hash) {
                results[i] = Some(self.extend(job, ask).await);
            } else if hashes.insert(hash) {
                new.push((i, hash));
            }
        }
        if new.len() > 1 {
            for chunk in self.batchable(new, jobs).await.chunks(CREATE_BATCH) {
                let batch: Vec<NewJob> = chunk
                    .iter()
                    .map(|&(i, project_hash)| NewJob {
                        job_type: jobs[i].2.job_type,
                        project_hash,
                        nodes: jobs[i].2.nodes,
                        epochs: jobs[i].2.epochs,
                    })
                    .collect();
                match self.create(&batch).await {
                    Ok(created) => {
                        for (&(i, _), job) in chunk.iter().zip(&created) {
                            results[i] = Some(self.created(job, jobs[i].2.nodes));
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "a batch of jobs was not created; funding them one by one")
                    }
                }
            }
        }
        let mut done = Vec::with_capacity(jobs.len());
        for (result, (namespace, name, ask)) in results.into_iter().zip(jobs) {
            done.push(match result {
                Some(result) => result,
                None => self.fund(namespace, name, ask).await,
            });
        }
        done
    }

    /// The jobs of `new` (indices into `jobs`) to create together: those whose job type has a
    /// price, when the signer may create jobs and the payer holds their summed cost; none
    /// otherwise.
    async fn batchable(
        &self,
        new: Vec<(usize, B256)>,
        jobs: &[(&str, &str, &JobAsk)],
    ) -> Vec<(usize, B256)> {
        if self
            .check_permission("create jobs", Permissions::CREATE)
            .await
            .is_err()
        {
            return Vec::new();
        }
        let mut prices = std::collections::BTreeMap::new();
        let mut total = U256::ZERO;
        let mut priced = Vec::with_capacity(new.len());
        for (i, hash) in new {
            let ask = jobs[i].2;
            let price = match prices.get(&ask.job_type) {
                Some(price) => *price,
                None => match self.suite.job_type_price(ask.job_type).await {
                    Ok(price) => *prices.entry(ask.job_type).or_insert(price),
                    Err(_) => return Vec::new(),
                },
            };
            if price.is_zero() {
                continue;
            }
            match cost_now(&self.clock, now_ms(), price, ask.nodes, ask.epochs) {
                Ok(cost) => total += cost,
                Err(_) => return Vec::new(),
            }
            priced.push((i, hash));
        }
        let held = if self.is_delegate() {
            self.suite.free_balance(self.escrow).await
        } else {
            self.suite.usdc_balance(self.owner).await
        };
        if held.is_ok_and(|held| held >= total) {
            priced
        } else {
            Vec::new()
        }
    }

    /// Extends the open job of `namespace/name` to what `ask` asks now; `None` when the escrow
    /// holds no open job for it (never funded, or closed: a closed job is not created again).
    pub async fn extend_open(
        &self,
        namespace: &str,
        name: &str,
        ask: &JobAsk,
    ) -> Result<Option<Funded>, FundingError> {
        let hash = project_hash(self.owner, namespace, name);
        match self.suite.find_open_job(self.escrow, hash).await? {
            Some(job) => Ok(Some(self.extend(&job, ask).await?)),
            None => Ok(None),
        }
    }

    /// Extends the open `job` to what `ask` asks now: more nodes, then a later last epoch, each
    /// paid by the escrow's extend operations.
    async fn extend(&self, job: &CspEscrow::Job, ask: &JobAsk) -> Result<Funded, FundingError> {
        let job_id = to_u64(job.id);
        let nodes = to_u64(job.numberOfNodesRequested);
        let last = to_u64(job.lastExecutionEpoch);
        let created = self.clock.epoch_at(to_u64(job.requestTimestamp))?;
        let extension = Extension::of(nodes, last, created, ask.nodes, ask.epochs);
        if extension.is_empty() {
            return Ok(Funded::Already { job_id });
        }
        if let Some(more) = extension.nodes {
            self.check_permission("add nodes to a job", Permissions::EXTEND_NODES)
                .await?;
            self.suite
                .extend_job_nodes(self.escrow, job_id, more)
                .await?;
        }
        if let Some(later) = extension.last_epoch {
            self.check_permission("extend a job", Permissions::EXTEND_DURATION)
                .await?;
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

    /// Creates the jobs of `batch` (in one transaction), each paid for its `epochs` epochs after
    /// the current one (by [`EpochClock`]), and returns them as the chain holds them.
    ///
    /// The escrow pays from the epoch after the one of the block the creation runs in (its gas
    /// estimate runs it too). That epoch may be later than ours: an epoch boundary passed
    /// meanwhile, and each job is paid one epoch fewer, so it is extended by the missing epoch
    /// (or, refused below the escrow's minimum, created again). It may be earlier: the chain's
    /// clock runs behind ours (a Hardhat EDR devnet's by about a second) across an epoch
    /// boundary, and the job is paid from the chain's epoch, one more. The approval counts
    /// from the earliest epoch the chain can run the creation in (see [`costed_from`]).
    async fn create(&self, batch: &[NewJob]) -> Result<Vec<CspEscrow::Job>, FundingError> {
        let mut attempt = 1;
        let ids = loop {
            let now = now_ms();
            let mut requests = Vec::with_capacity(batch.len());
            let mut epoch = 0;
            for new in batch {
                let (asked_at, last_execution_epoch) = asked_epochs(&self.clock, now, new.epochs)?;
                epoch = asked_at;
                requests.push(JobRequest {
                    job_type: new.job_type,
                    project_hash: new.project_hash,
                    last_execution_epoch,
                    nodes: new.nodes,
                });
            }
            let costed_from = costed_from(self.suite.current_epoch().await?, epoch);
            match self
                .suite
                .create_jobs_in(self.escrow, &requests, costed_from)
                .await
            {
                Ok(ids) => break ids,
                Err(e)
                    if attempt < CREATE_ATTEMPTS
                        && matches!(
                            e.revert::<CspEscrowErrors>(),
                            Some(CspEscrowErrors::TooFewEpochs(_))
                        ) =>
                {
                    tracing::debug!(attempt, "an epoch passed while creating jobs; retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut created = Vec::with_capacity(ids.len());
        for (job_id, new) in ids.into_iter().zip(batch) {
            let job = self.suite.job(job_id).await?;
            let Some(last) = made_up_last_epoch(
                to_u64(job.lastExecutionEpoch),
                self.first_whole_epoch(&job)?,
                new.epochs,
            ) else {
                created.push(job);
                continue;
            };
            tracing::debug!(
                job_id,
                last,
                "an epoch passed while creating the job; extending it"
            );
            self.suite
                .extend_job_duration(self.escrow, job_id, last)
                .await?;
            created.push(self.suite.job(job_id).await?);
        }
        Ok(created)
    }
}

/// A job to create: its type, project hash, nodes and paid epochs.
struct NewJob {
    job_type: u8,
    project_hash: B256,
    nodes: u64,
    epochs: u64,
}

impl Funder {
    /// The first whole epoch `job` is paid for: the one after the epoch of its request.
    fn first_whole_epoch(&self, job: &CspEscrow::Job) -> Result<u64, FundingError> {
        let created = self.clock.epoch_at(to_u64(job.requestTimestamp))?;
        Ok(created.saturating_add(1))
    }
}

/// Milliseconds since the Unix epoch by this machine's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The current epoch at `now_ms` and the last execution epoch that pays the `epochs` epochs
/// after it.
fn asked_epochs(clock: &EpochClock, now_ms: u64, epochs: u64) -> Result<(u64, u64), EpochError> {
    let epoch = clock.epoch_at_ms(now_ms)?;
    Ok((epoch, epoch.saturating_add(epochs)))
}

/// What a job of `nodes` nodes paid for the `epochs` epochs after the current one costs if
/// created at `now_ms`: those whole epochs and, by the second, the rest of the current one, as
/// the escrow charges it (a little less when it is mined later).
fn cost_now(
    clock: &EpochClock,
    now_ms: u64,
    price: U256,
    nodes: u64,
    epochs: u64,
) -> Result<U256, EpochError> {
    let (epoch, last) = asked_epochs(clock, now_ms, epochs)?;
    let now = (now_ms / 1000).max(clock.start_s(epoch));
    let seconds = clock.end_s(last).saturating_sub(now);
    Ok(price * U256::from(nodes) * U256::from(seconds) / U256::from(clock.length_s()))
}

/// The epoch a job's approval is counted from: the earlier of the wall clock's `epoch` and the
/// latest block's `view_epoch` (block times never go back, so the chain runs the creation and
/// its gas estimate no earlier). The escrow pulls the most in the earliest epoch.
fn costed_from(view_epoch: u64, epoch: u64) -> u64 {
    view_epoch.min(epoch)
}

/// Whole epochs a job is paid for: every epoch from `first_whole_epoch` (the one after its
/// creation's; the escrow also charges the rest of the creation epoch, by the second) through
/// `last_execution_epoch`.
fn paid_epochs(last_execution_epoch: u64, first_whole_epoch: u64) -> u64 {
    last_execution_epoch
        .saturating_add(1)
        .saturating_sub(first_whole_epoch)
}

/// The last execution epoch that makes a job paid through `last_execution_epoch` from
/// `first_whole_epoch` on hold `epochs` whole epochs, when it holds fewer.
fn made_up_last_epoch(
    last_execution_epoch: u64,
    first_whole_epoch: u64,
    epochs: u64,
) -> Option<u64> {
    let paid = paid_epochs(last_execution_epoch, first_whole_epoch);
    (paid < epochs).then(|| last_execution_epoch.saturating_add(epochs - paid))
}

/// Ids and epochs fit in 64 bits; saturate rather than wrap if a contract ever says otherwise.
fn to_u64(value: U256) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
