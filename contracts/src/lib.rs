//! On-chain half of r1: the Solidity contracts (R1 token, Node Deed licences, CSP escrow behind
//! a beacon, PoAI manager, development USDC and swap pool), their alloy bindings generated from
//! the compiled artifacts, a typed client, the PoAI manager's epoch clock ([`epoch`]), paying for jobs ([`funding`]), a suite's
//! history of events and state for audits ([`history`]) and the
//! Hardhat EDR development chain.
//!
//! Sources are in `solidity/`, compiled by `scripts/compile.cjs` (pinned solcjs) into
//! `artifacts/`; see the crate README for the money flows.

pub mod attach;
pub mod availability;
pub mod ballots;
pub mod bindings;
pub mod client;
pub mod deploy;
pub mod devchain;
pub mod epoch;
pub mod error;
pub mod funding;
pub mod governance;
pub mod history;
pub mod job_link;
pub mod link;
pub mod oracle_view;
pub mod quorum;
pub mod tx;
pub mod units;

pub use availability::{AVAILABILITY_PAGE_ROWS, AvailabilityTable, page_gas_limit};
pub use client::{
    Allocation, ClaimTerms, JobRequest, PagesRecorded, ParsePermissionsError, Permissions, Suite,
    VoteOutcome,
};
pub use deploy::{Deployment, LicenceTier, SuiteConfig, deploy_suite};
pub use devchain::DevChain;
pub use error::{Error, Result};
pub use funding::{Extension, Funded, Funder, FundingError, JobAsk};
pub use governance::{Governed, Operation};
pub use job_link::project_hash;
pub use link::{LinkProof, LinkTerms};
pub use oracle_view::{EscrowTotals, JobChanges, NodeLicence, ServiceRecord};
pub use quorum::Quorum;
