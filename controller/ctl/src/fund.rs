//! `r1ctl fund` (and the funding step of `r1ctl apply`): the CSP, or a delegate of its escrow,
//! pays for its `DeeployJob`s on chain.
//!
//! Escrow `createJobs` is callable only by the escrow's owner and its delegates, and oracles
//! never hold CSP keys, so the CSP creates the on-chain job itself and the oracles find it by
//! its `projectHash`. The arithmetic and the transactions are [`r1_contracts::funding`]'s,
//! shared with a Kubernetes-mode oracle; this module finds the chain through the oracle's
//! `GET /v1/info`, prices the specs with the catalogue and prints what was done.

use std::io::Write;

use alloy_primitives::{Address, U256};
use r1_contracts::attach::chain_id_at;
use r1_contracts::epoch::{EpochClock, EpochError};
use r1_contracts::{Funded, FundingError, JobAsk, Suite};
use r1_crds::DeeployJobSpec;
use r1_crds::api::object::ObjectKey;
use r1_crds::api::outcome::count;
use r1_crds::api::wire::{ApiInfo, NO_CHAIN};
use r1_crds::check::{References, Source, check_sources};
use r1_crds::manifest::{Kind, Manifest};
use r1_crds::pricing::{Catalogue, EstimateError};
use r1_crds::usdc::Usdc;
use url::Url;

use crate::remote::{Client, RemoteError};

/// Chain RPC used when neither `--rpc-url` nor `R1_RPC_URL` names one.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8545";

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
    /// The chain refused or could not fund it.
    #[error(transparent)]
    Funding(#[from] FundingError),
    /// The oracle answered with an object of another kind.
    #[error("the oracle answered with a {0}, not a DeeployJob")]
    NotAJob(Kind),
    /// The oracle does not have the job.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// A CSP's funding session: the suite the oracle named, over an RPC checked to be its chain,
/// signing as the CSP or its delegate, with the escrow's owner's escrow and the manager's epoch
/// clock.
#[derive(Debug)]
pub struct Funder {
    chain: r1_contracts::Funder,
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
        let clock = EpochClock::new(genesis, length)?;
        Ok(Self {
            chain: r1_contracts::Funder::new(suite, escrow, csp, info.chain_id, clock),
        })
    }

    /// The escrow jobs are funded from.
    pub fn escrow(&self) -> Address {
        self.chain.escrow()
    }

    /// The chain client, signing as the key that funds.
    pub fn suite(&self) -> &Suite {
        self.chain.suite()
    }

    /// Funds the job `key` as `spec` asks (see [`r1_contracts::Funder::fund`]).
    pub async fn fund(
        &self,
        key: &ObjectKey,
        spec: &DeeployJobSpec,
        catalogue: &Catalogue,
    ) -> Result<Funded, JobFundError> {
        let ask = job_ask(catalogue, spec)?;
        Ok(self.chain.fund(&key.namespace, &key.name, &ask).await?)
    }
}

/// What `spec` asks the chain for, priced by `catalogue`.
pub fn job_ask(catalogue: &Catalogue, spec: &DeeployJobSpec) -> Result<JobAsk, EstimateError> {
    let estimate = catalogue.estimate(spec)?;
    Ok(JobAsk {
        class: estimate.class.name.clone(),
        job_type: estimate.class.id,
        nodes: u64::from(estimate.replicas),
        epochs: u64::from(estimate.epochs),
    })
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

/// Funds `jobs` together (see [`r1_contracts::Funder::fund_many`]) and prints a line for each.
async fn fund_all(
    funder: &Funder,
    jobs: &[(ObjectKey, DeeployJobSpec)],
    catalogue: &Catalogue,
    out: &mut dyn Write,
) -> Result<bool, FundError> {
    let asks: Vec<Result<JobAsk, EstimateError>> = jobs
        .iter()
        .map(|(_, spec)| job_ask(catalogue, spec))
        .collect();
    let priced: Vec<(&str, &str, &JobAsk)> = jobs
        .iter()
        .zip(&asks)
        .filter_map(|((key, _), ask)| {
            Some((
                key.namespace.as_str(),
                key.name.as_str(),
                ask.as_ref().ok()?,
            ))
        })
        .collect();
    let mut funded = funder.chain.fund_many(&priced).await.into_iter();
    let mut all = true;
    for ((key, _), ask) in jobs.iter().zip(asks) {
        let result = match ask {
            Ok(_) => match funded.next() {
                Some(result) => result.map_err(JobFundError::from),
                None => continue,
            },
            Err(e) => Err(e.into()),
        };
        all &= report(key, result, out)?;
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
                "{key} funded: chain job {job_id}, {epochs} epochs × {nodes}, {} USDC",
                usdc(paid)
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
