//! The oracle controller's decisions as pure functions of plain data.
//!
//! The kube reconciler, the Deeploy API and the four ChainDist loops (validation, availability,
//! rewards, closure) all decide through these functions, so two honest oracles that see the same
//! facts reach the same decision, and every rule is tested without a broker, chain or cluster.
//! Nothing here performs I/O or reads a clock: times come in as unix milliseconds or seconds,
//! nodes as [`alloy_primitives::Address`], resources as millicores, bytes and GPU counts.
//!
//! * [`liveness`]: heartbeat history → Alive / Suspect / Lost / Unknown; availability bytes.
//! * [`median`]: the BFT median of the oracles' availability bytes.
//! * [`node_registry`]: the nodes known from their signed heartbeats and status reports, and
//!   whether the chain lets them work; bounded against strangers.
//! * [`roster`]: the roster of licensed nodes this oracle publishes, and when.
//! * [`placement`]: where each replica runs (rendezvous hashing, sticky, resource-aware).
//! * [`availability_plan`]: the availability loop's actions for one job.
//! * [`job_pass`]: one pass over one open job: holders, rollout and availability effects,
//!   status facts and the node-set vote.
//! * [`job_rollout`]: a job's rollout record (generations, tags, workload ids per generation).
//! * [`job_status`]: a job's status (phase, conditions) from the facts.
//! * [`workload`]: what a node runs for one replica, derived from the spec alone.
//! * [`tunnel_status`]: a tunnel's status from the nodes' reports of its clients.
//! * [`service_table`]: a project's service table for the nodes (who serves what, where, to
//!   whom), and when to send it.
//! * [`chain_job`]: an open on-chain job as the decisions see it.
//! * [`rollout`]: replica-by-replica rollout of a spec change, with rollback.
//! * [`closure`]: which job to close next, and the random backoff before acting.
//! * [`cstore_rules`]: which CSTORE namespace each job owns and which projects read which.
//!
//! Votes are counted and rewards paid on chain, by the PoAI manager and the escrows
//! (`contracts/solidity/`): the oracle decides what to vote ([`job_pass`], [`median`]) and
//! reads the outcome back (`crate::oracle::chain`).

pub mod availability_plan;
pub mod chain_job;
pub mod closure;
pub mod cstore_rules;
pub mod job_pass;
pub mod job_rollout;
pub mod job_status;
pub mod liveness;
pub mod median;
pub mod node_registry;
pub mod placement;
pub mod rollout;
pub mod roster;
pub mod service_table;
pub mod tunnel_status;
pub mod workload;
