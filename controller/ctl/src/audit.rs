//! `r1ctl audit`: a job's whole money story rebuilt from the chain alone — its funding, each
//! node set and the oracles' signed votes that agreed it, every settlement with its 85/15
//! split and burn, the refund, the PoA minted to the licences of its nodes — and every figure
//! checked to the unit against the contracts' state. The history is read in [`r1_contracts::history`];
//! the judging is [`replay`], a pure function of it, so that it is tested without a chain.
//!
//! * [`ledger`]: a job's budget as the escrow keeps it; [`quorum`]: the manager's vote rule.
//! * [`replay`]: the replay and its comparison with the state; [`report`]: the table.

pub mod ledger;
pub mod quorum;
pub mod replay;
pub mod report;

use std::io::Write;
use std::time::Duration;

use alloy_primitives::Address;
use r1_contracts::history::{FetchError, Limits};
use r1_contracts::project_hash;
use r1_crds::api::kinds;
use r1_crds::manifest::Kind;

use crate::fund::{FundError, Funder};
use crate::remote::Client;
use replay::{Replay, Selection};

/// Time limit of reading the contracts' state once the history is read.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(120);

/// What to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The chain jobs that pay for one `DeeployJob` of the signer (or of the owner it acts for).
    Job {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Every job of the escrow.
    Escrow,
}

impl Target {
    /// `djob/NAME` (any spelling of the DeeployJob kind) in `namespace`.
    pub fn parse(text: &str, namespace: &str) -> Result<Target, AuditError> {
        let bad = || AuditError::BadTarget(text.to_owned());
        let (kind, name) = text.split_once('/').ok_or_else(bad)?;
        if kinds::parse(kind) != Some(Kind::Job) || name.is_empty() {
            return Err(bad());
        }
        Ok(Target::Job {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Why the audit could not be made (a mismatch is not an error: it is reported).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The target is not `djob/NAME`.
    #[error("{0:?}: expected djob/NAME")]
    BadTarget(String),
    /// The oracle or the chain could not be reached.
    #[error(transparent)]
    Connect(#[from] FundError),
    /// The history or the state could not be read.
    #[error(transparent)]
    Chain(#[from] FetchError),
    /// The state took too long to read.
    #[error("reading the contracts' state took longer than {0:?}")]
    Timeout(Duration),
    /// No job of the escrow pays for the DeeployJob.
    #[error("no job of escrow {escrow} was ever funded for DeeployJob {namespace}/{name}")]
    NoJob {
        /// The escrow.
        escrow: Address,
        /// The job's namespace.
        namespace: String,
        /// The job's name.
        name: String,
    },
    /// The output could not be written.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// `r1ctl audit`: reads the chain the oracle behind `client` settles on, from `rpc_url`,
/// replays the escrow of the client's owner, prints the table for `target` and returns
/// whether every figure matches.
pub async fn run(
    client: &Client,
    rpc_url: &str,
    target: &Target,
    out: &mut dyn Write,
) -> Result<bool, AuditError> {
    let funder = Funder::connect(client, rpc_url).await?;
    let suite = funder.suite();
    let escrow = funder.escrow();
    let owner = client.owner();
    let history = suite.history(0, &Limits::default()).await?;
    let replay = Replay::new(&history, escrow, owner);
    let (selection, jobs) = match target {
        Target::Job { namespace, name } => {
            let jobs = replay.jobs_of_project(project_hash(owner, namespace, name));
            if jobs.is_empty() {
                return Err(AuditError::NoJob {
                    escrow,
                    namespace: namespace.clone(),
                    name: name.clone(),
                });
            }
            writeln!(
                out,
                "DeeployJob {namespace}/{name}: chain job {}",
                list(&jobs)
            )?;
            (Selection::Jobs(jobs.clone()), jobs)
        }
        Target::Escrow => (Selection::Escrow, replay.jobs()),
    };
    let licences = replay.licences_of(&replay.involved(&selection));
    let nodes = replay.nodes();
    let read = suite.escrow_snapshot(escrow, history.until_block, &jobs, &nodes, &licences);
    let snapshot = tokio::time::timeout(SNAPSHOT_DEADLINE, read)
        .await
        .map_err(|_| AuditError::Timeout(SNAPSHOT_DEADLINE))??;
    writeln!(
        out,
        "escrow {escrow}: {} events up to block {}, state at that block",
        history.entries.len(),
        history.until_block
    )?;
    writeln!(out)?;
    let report = replay.report(&snapshot, &selection);
    report.render(out)?;
    Ok(report.ok())
}

fn list(ids: &[u64]) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_a_job_kind_and_a_name() {
        assert_eq!(
            Target::parse("djob/hello-web", "default").ok(),
            Some(Target::Job {
                namespace: "default".into(),
                name: "hello-web".into()
            })
        );
        assert!(Target::parse("deeployjobs/x", "ns").is_ok());
        for bad in ["hello-web", "dproj/p", "djob/", "esc/e"] {
            assert!(Target::parse(bad, "default").is_err(), "{bad}");
        }
    }
}
