//! `r1ctl fund` (and the funding step of `r1ctl apply`): the CSP pays for its `DeeployJob`s on
//! chain with its own key.
//!
//! Escrow `createJobs` is callable only by the escrow's CSP, and oracles never hold CSP keys, so
//! the CSP creates the on-chain job itself and the oracles find it by its `projectHash`
//! ([`r1_contracts::job_link::project_hash`] of the signer, namespace and name). The oracle's
//! `GET /v1/info` says which chain and contracts to use. Funding is idempotent: a job whose
//! escrow already holds an open job with that hash is reported and left alone.

use std::io::Write;

use alloy_primitives::{Address, U256};
use r1_contracts::attach::chain_id_at;
use r1_contracts::bindings::CspEscrow::CspEscrowErrors;
use r1_contracts::{JobRequest, Suite, project_hash};
use r1_crds::DeeployJobSpec;
use r1_crds::check::{References, Source, check_sources};
use r1_crds::manifest::{Kind, Manifest};
use r1_crds::pricing::{Catalogue, EstimateError};
use r1_crds::usdc::Usdc;
use url::Url;

use crate::ctl::remote::{Client, RemoteError};
use crate::intake::apply::count;
use crate::intake::http::NO_CHAIN;
use crate::intake::object::ObjectKey;
use crate::intake::wire::ApiInfo;

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
    /// The oracle's copy of the job does not read as a job spec.
    #[error("the oracle's copy of the job is not a DeeployJob spec: {0}")]
    Spec(#[from] serde_json::Error),
    /// The oracle does not have the job.
    #[error(transparent)]
    Remote(#[from] RemoteError),
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
    /// The escrow already had an open job for this resource.
    Already {
        /// Its id.
        job_id: u64,
    },
}

/// A CSP's funding session: the suite the oracle named, over an RPC checked to be its chain,
/// signing as the CSP, with the CSP's escrow.
#[derive(Debug)]
pub struct Funder {
    suite: Suite,
    escrow: Address,
    chain_id: u64,
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
        let csp = suite.address();
        let escrow = suite.escrow_of(csp).await?;
        if escrow == Address::ZERO {
            return Err(FundError::NoEscrow {
                csp,
                chain_id: info.chain_id,
            });
        }
        Ok(Self {
            suite,
            escrow,
            chain_id: info.chain_id,
        })
    }

    /// The escrow jobs are funded from.
    pub fn escrow(&self) -> Address {
        self.escrow
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
        let hash = project_hash(self.suite.address(), &key.namespace, &key.name);
        if let Some(job) = self.suite.find_open_job(self.escrow, hash).await? {
            return Ok(Funded::Already {
                job_id: to_u64(job.id),
            });
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
        let held = self.suite.usdc_balance(self.suite.address()).await?;
        if held < cost {
            return Err(JobFundError::NotEnoughUsdc {
                needed: usdc(cost),
                held: usdc(held),
                csp: self.suite.address(),
            });
        }
        let job_id = self.create(class.id, hash, nodes, epochs).await?;
        Ok(Funded::Created {
            job_id,
            epochs,
            nodes,
            paid: usdc(cost),
        })
    }

    /// Creates the job paid from the next epoch for `epochs` epochs, retrying when an epoch
    /// boundary passes in between and the contract would count one epoch fewer.
    async fn create(
        &self,
        job_type: u8,
        project_hash: alloy_primitives::B256,
        nodes: u64,
        epochs: u64,
    ) -> Result<u64, r1_contracts::Error> {
        let mut attempt = 1;
        loop {
            let request = JobRequest {
                job_type,
                project_hash,
                last_execution_epoch: self.suite.current_epoch().await? + epochs,
                nodes,
            };
            match self.suite.create_job(self.escrow, &request).await {
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
                result => return result,
            }
        }
    }
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
    let applied = crate::ctl::remote::apply(client, sources, catalogue, out).await?;
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
        Ok(object) => match serde_json::from_value::<DeeployJobSpec>(object.spec) {
            Ok(spec) => funder.fund(key, &spec, catalogue).await,
            Err(e) => Err(e.into()),
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
