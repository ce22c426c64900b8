//! What `r1ctl` does, as plain functions over readers and writers so that the binary stays a
//! thin argument parser and the tests drive the same code.
//!
//! The crate talks to an oracle only through the Deeploy API's shared vocabulary
//! ([`r1_crds::api`], [`r1_protocol::api_auth`]) and to the chain through `r1-contracts`; it
//! never links the oracle itself.
//!
//! * [`validate`], [`estimate`]: check and price manifests locally, from the shared catalogue.
//! * [`sources`]: manifest files from `-f` arguments, as kubectl reads them; [`pin`]: their jobs'
//!   image tags pinned to digests before they are applied.
//! * [`remote`]: the Deeploy API client and `apply`, `get`, `describe`, `delete`;
//!   [`sessions`]: `logs` and `exec` in a job's replicas.
//! * [`fund`]: paying for jobs on chain from the CSP's escrow; [`escrow`]: its delegates and free
//!   balance.
//! * [`secret`]: sealing secret values and registry credentials to every oracle.
//! * [`overview`]: the `status` screen (epoch, jobs, escrows).
//! * [`audit`]: a job's money story rebuilt from chain events and votes, checked to the unit.
//! * [`keys`]: key files; [`node`]: a node agent's local API; [`fs`]: its R1FS store;
//!   [`cstore`]: its CSTORE replica.
//! * [`licence`]: a node operator's licences; [`governance`]: the oracle set, prices, blacklist
//!   and suspensions, as the manager's owner; [`onchain`]: what the on-chain commands share.
//! * [`broker`]: mosquitto's configuration for operators; [`devnet`]: finding a local devnet.

pub mod audit;
pub mod broker;
pub mod cstore;
pub mod devnet;
pub mod escrow;
pub mod estimate;
pub mod fs;
pub mod fund;
pub mod governance;
pub mod keys;
pub mod licence;
pub mod node;
pub mod onchain;
pub mod overview;
pub mod pin;
pub mod remote;
pub mod secret;
pub mod sessions;
pub mod sources;
pub mod validate;
