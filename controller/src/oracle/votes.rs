//! Node-set votes: a pass's job reconciles decide them ([`Ballots::cast`]), the pass hands
//! them over once its jobs are done and again at its end ([`Oracle::queue_votes`]), and the
//! voter ([`Oracle::vote_forever`]) casts them in as few `submitNodeUpdates` transactions as
//! the gas budget allows while the next passes run: a pass never waits for a receipt. A batch
//! the chain refuses as a whole falls back to one vote per job, so one stale vote cannot hold
//! the others back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;

use alloy_primitives::Address;
use r1_contracts::VoteOutcome;
use r1_contracts::ballots::{Ballot, BallotOutcome, Skip, batches};
use r1_contracts::bindings::PoAIManager::PoAIManagerErrors;
use r1_protocol::now_ms;

use crate::oracle::chain::within;
use crate::oracle::runtime::{Oracle, Pass};

/// How soon after a vote the chain did not decide yet the next pass reads it back (the other
/// oracles' votes land within a block or two).
const VOTE_READBACK_MS: u64 = 300;

/// The node-set votes a pass decided, by job (a later decision of the same pass replaces an
/// earlier one).
#[derive(Debug, Default)]
pub(crate) struct Ballots {
    decided: Mutex<BTreeMap<u64, (Vec<Address>, &'static str)>>,
}

impl Ballots {
    /// Records that this pass votes `nodes` as the node set of `job` (`kind` labels the
    /// metrics and logs: "nodeset" or "close").
    pub(crate) fn cast(&self, job: u64, nodes: &[Address], kind: &'static str) {
        self.decided
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job, (nodes.to_vec(), kind));
    }

    fn take(&self) -> BTreeMap<u64, (Vec<Address>, &'static str)> {
        std::mem::take(
            &mut *self
                .decided
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// A vote a pass decided on one job, as the voter gets it.
#[derive(Debug)]
struct Decided {
    nodes: Vec<Address>,
    kind: &'static str,
    /// The escrow holding the job, when the pass's snapshot held it: the voter reads the job
    /// there with its neighbours in one call instead of asking the manager where it is.
    escrow: Option<Address>,
}

/// The votes passes decided and the voter has not taken yet: the newest decision per job, and
/// the epoch of the pass that made the latest.
#[derive(Debug, Default)]
pub(crate) struct VoteQueue {
    pending: Mutex<(BTreeMap<u64, Decided>, u64)>,
    wake: tokio::sync::Notify,
}

impl VoteQueue {
    fn put(&self, decided: BTreeMap<u64, Decided>, epoch: u64) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.0.extend(decided);
        pending.1 = epoch;
        drop(pending);
        self.wake.notify_one();
    }

    fn take(&self) -> (BTreeMap<u64, Decided>, u64) {
        std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Chain reads a voter has in flight at once (each vote reads its job's round, and the jobs'
/// states are read by escrow).
const CONCURRENT_READS: usize = 16;

/// The jobs' states as the voter read them, by id (an error says why one could not be read).
type JobStates = BTreeMap<u64, Result<r1_contracts::bindings::CspEscrow::Job, String>>;

/// A vote about to be sent: its ballot, its metrics label and the key it is recorded under.
struct Prepared {
    ballot: Ballot,
    kind: &'static str,
    key: String,
}

impl Oracle {
    /// Hands the votes `pass` decided since it last did to the voter, which casts each once per
    /// consensus round and epoch. A vote is recorded once the chain has answered it (counted,
    /// skipped as moot, or refused with the manager's own error): a vote lost to a timeout, a
    /// dropped or out-of-gas transaction or a crash is sent again on a later pass, and since the
    /// chain counts one vote per oracle and round, a retry never counts twice.
    pub(crate) fn queue_votes(&self, pass: &Pass) {
        let decided = pass.ballots.take();
        if let Some(chain) = &pass.chain
            && !decided.is_empty()
        {
            let decided = decided
                .into_iter()
                .map(|(job, (nodes, kind))| {
                    let escrow = chain.jobs.get(&job).map(|held| held.escrow);
                    (
                        job,
                        Decided {
                            nodes,
                            kind,
                            escrow,
                        },
                    )
                })
                .collect();
            self.votes.put(decided, chain.epoch);
        }
    }

    /// The voter: casts what passes queued, one round of votes at a time, for as long as the
    /// oracle runs.
    pub(crate) async fn vote_forever(self: Arc<Self>) {
        loop {
            self.votes.wake.notified().await;
            let (decided, epoch) = self.votes.take();
            if decided.is_empty() {
                continue;
            }
            let started = Instant::now();
            self.cast_votes(decided, epoch).await;
            self.metrics.pass("votes", started.elapsed().as_secs_f64());
        }
    }

    async fn cast_votes(&self, decided: BTreeMap<u64, Decided>, epoch: u64) {
        let jobs: Vec<u64> = decided.keys().copied().collect();
        let (rounds, mut states): (Vec<_>, _) = tokio::join!(
            futures_util::stream::iter(jobs)
                .map(|job| within(self.suite.job_round(job)))
                .buffered(CONCURRENT_READS)
                .collect(),
            self.read_jobs_for_vote(&decided),
        );
        let mut prepared = Vec::new();
        for ((job, Decided { nodes, kind, .. }), round) in decided.into_iter().zip(rounds) {
            let round = match round {
                Ok(round) => round,
                Err(e) => {
                    tracing::warn!(job, error = %e, "cannot read the consensus round");
                    continue;
                }
            };
            let key = format!("nodeset/{job}/{round}/{epoch}");
            if self.state.voted(&key).unwrap_or(true) {
                continue;
            }
            // The pass's snapshot may predate an acceptance by the other oracles: a vote for
            // the set the chain already holds would open and decide a second round for it.
            let fresh = states
                .remove(&job)
                .unwrap_or_else(|| Err("the escrow's answer lacked the job".to_owned()));
            let active: Option<BTreeSet<Address>> = match fresh {
                Ok(fresh) => Some(fresh.activeNodes.iter().copied().collect()),
                Err(e) => {
                    tracing::warn!(job, error = %e, "cannot read the job before voting");
                    None
                }
            };
            if !nodes.is_empty()
                && active.as_ref() == Some(&nodes.iter().copied().collect::<BTreeSet<_>>())
            {
                continue;
            }
            prepared.push(Prepared {
                ballot: Ballot {
                    job,
                    nodes,
                    active: active.map_or(0, |a| a.len()),
                },
                kind,
                key,
            });
        }
        let ballots: Vec<Ballot> = prepared.iter().map(|p| p.ballot.clone()).collect();
        let mut offset = 0;
        for batch in batches(&ballots) {
            let votes = &prepared[offset..offset + batch.len()];
            offset += batch.len();
            self.cast_batch(batch, votes).await;
        }
    }

    /// The jobs' states now, which each vote is checked against: those whose escrow the pass
    /// knew in one call per escrow (and page), the others one by one through the manager.
    async fn read_jobs_for_vote(&self, decided: &BTreeMap<u64, Decided>) -> JobStates {
        let mut by_escrow: BTreeMap<Address, Vec<alloy_primitives::U256>> = BTreeMap::new();
        let mut unplaced = Vec::new();
        for (&job, vote) in decided {
            match vote.escrow {
                Some(escrow) => by_escrow
                    .entry(escrow)
                    .or_default()
                    .push(alloy_primitives::U256::from(job)),
                None => unplaced.push(job),
            }
        }
        let held = futures_util::stream::iter(by_escrow)
            .map(|(escrow, ids)| async move {
                let read = within(self.suite.escrow_jobs(escrow, &ids)).await;
                (ids, read)
            })
            .buffer_unordered(CONCURRENT_READS)
            .collect::<Vec<_>>();
        let elsewhere = futures_util::stream::iter(unplaced)
            .map(|job| async move { (job, within(self.suite.job(job)).await) })
            .buffer_unordered(CONCURRENT_READS)
            .collect::<Vec<_>>();
        let (held, elsewhere) = tokio::join!(held, elsewhere);
        let mut states: JobStates = elsewhere
            .into_iter()
            .map(|(job, read)| (job, read.map_err(|e| e.to_string())))
            .collect();
        for (ids, read) in held {
            let ids = ids.iter().map(|id| id.saturating_to::<u64>());
            match read {
                Ok(jobs) => states.extend(ids.zip(jobs.into_iter().map(Ok))),
                Err(e) => {
                    let reason = e.to_string();
                    states.extend(ids.map(|id| (id, Err(reason.clone()))));
                }
            }
        }
        states
    }

    /// Sends one batch; on a refusal of the whole batch, each of its votes alone.
    async fn cast_batch(&self, batch: &[Ballot], votes: &[Prepared]) {
        match self.send_batch(batch, votes).await {
            Ok(()) => {}
            Err(e) if e.is_refusal() && batch.len() > 1 => {
                tracing::info!(votes = batch.len(), error = %e, "the chain refused a batch of votes; casting them one by one");
                for vote in votes {
                    let alone = std::slice::from_ref(&vote.ballot);
                    if let Err(e) = self.send_batch(alone, std::slice::from_ref(vote)).await {
                        self.record_error(vote, &e);
                    }
                }
            }
            Err(e) => {
                for vote in votes {
                    self.record_error(vote, &e);
                }
            }
        }
    }

    /// Sends `batch` in one transaction and records each vote's outcome from its receipt.
    async fn send_batch(
        &self,
        batch: &[Ballot],
        votes: &[Prepared],
    ) -> Result<(), crate::oracle::chain::ChainError> {
        let cast = within(self.suite.submit_node_updates(batch)).await?;
        self.metrics.vote_batch(batch.len(), cast.gas_used);
        for (job, outcome) in cast.outcomes {
            if let Some(vote) = votes.iter().find(|v| v.ballot.job == job) {
                self.record_outcome(vote, outcome);
            }
        }
        Ok(())
    }

    fn record_outcome(&self, vote: &Prepared, outcome: BallotOutcome) {
        let (job, kind, nodes) = (vote.ballot.job, vote.kind, &vote.ballot.nodes);
        let answered = match outcome {
            BallotOutcome::Counted(counted) => {
                let accepted = matches!(counted, VoteOutcome::Accepted(_));
                tracing::info!(job, kind, nodes = ?nodes, accepted, "voted the node set");
                // An accepted set is read back by the next pass at once (the job's status says
                // Validated then), not when the chain watch next looks.
                if accepted {
                    self.wake_pass("vote");
                } else {
                    self.pass_due_at(now_ms().saturating_add(VOTE_READBACK_MS));
                }
                self.metrics
                    .vote(kind, if accepted { "accepted" } else { "pending" });
                true
            }
            BallotOutcome::Skipped(Skip::Cooldown { ready_at }) => {
                tracing::debug!(
                    job,
                    kind,
                    ready_at,
                    "the job's last decision is too recent; voting again on a later pass"
                );
                false
            }
            BallotOutcome::Skipped(Skip::AlreadyVoted) => {
                tracing::info!(
                    job,
                    kind,
                    "this oracle's vote of the round was already counted"
                );
                true
            }
            BallotOutcome::Skipped(Skip::Closed) => {
                tracing::info!(job, kind, "the job is closed; nothing to vote");
                self.metrics.vote(kind, "refused");
                true
            }
        };
        self.record_vote(vote, answered);
    }

    fn record_error(&self, vote: &Prepared, error: &crate::oracle::chain::ChainError) {
        let (job, kind) = (vote.ballot.job, vote.kind);
        let answered = if error.refused_with(|r| matches!(r, PoAIManagerErrors::AlreadyVoted(..))) {
            tracing::info!(
                job,
                kind,
                "this oracle's vote of the round was already counted"
            );
            true
        } else if error.is_refusal() {
            tracing::warn!(job, kind, error = %error, "the chain refused the node-set vote");
            self.metrics.vote(kind, "refused");
            true
        } else {
            tracing::warn!(job, kind, error = %error, "node-set vote failed; trying again next pass");
            self.metrics.vote(kind, "error");
            false
        };
        self.record_vote(vote, answered);
    }

    fn record_vote(&self, vote: &Prepared, answered: bool) {
        if answered
            && let Err(e) = self
                .state
                .record_vote(&vote.key, &format!("{:?}", vote.ballot.nodes))
        {
            tracing::warn!(job = vote.ballot.job, error = %e, "cannot record the vote");
        }
    }
}
