//! What the oracle loops read from the chain, as typed calls on [`Suite`]: the oracle set, the
//! epoch clock and allocation progress, licences, consensus rounds, and the open jobs and totals
//! of a CSP's escrow. Nothing here sends a transaction.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use crate::bindings::{CspEscrow, NodeDeed, PoAIManager};
use crate::client::{Suite, to_u64};
use crate::error::Result;

/// The licence a node is linked to, with what decides whether it may be validated and paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLicence {
    /// The Node Deed token id.
    pub licence_id: u64,
    /// Who holds the licence (and claims the node's rewards).
    pub owner: Address,
    /// Whether governance blacklisted the node (never validated nor paid).
    pub blacklisted: bool,
    /// The first epoch a suspended node may work again (0 or past: not suspended).
    pub suspended_until_epoch: u64,
    /// Whether the licence is a Node Deed: a Master or Genesis Node Deed mines PoA but its
    /// node takes no jobs.
    pub for_hire: bool,
}

impl NodeLicence {
    /// Whether the node may be given work and named in a node set in `epoch`: licensed by a
    /// Node Deed, not blacklisted, not suspended.
    pub fn may_work(&self, epoch: u64) -> bool {
        self.for_hire && !self.blacklisted && epoch >= self.suspended_until_epoch
    }
}

/// A node's availability history as the Node Deed keeps it (the whitepaper's 98 % flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceRecord {
    /// Epochs with an agreed availability while the node was linked.
    pub epochs_measured: u64,
    /// Of those, epochs at 98 % or more (availability byte ≥ 250).
    pub epochs_at_sla: u64,
    /// The last epoch measured.
    pub last_epoch: u64,
    /// Whether the last epoch measured was at 98 % or more.
    pub last_at_sla: bool,
}

/// Most blocks one [`Suite::standing_changes`] call looks back over: further back, every
/// standing has been read again anyway.
pub const STANDING_LOOKBACK_BLOCKS: u64 = 10_000;

/// Jobs read per `getJobs` call: a page stays well within a node's gas cap for calls.
pub const JOBS_PER_CALL: usize = 100;

/// Whether `e` is the empty revert of a contract without the function called (an older
/// implementation behind a proxy), rather than a failure of the call itself.
fn is_missing_function(e: &alloy::contract::Error) -> bool {
    e.as_revert_data().is_some_and(|data| data.is_empty())
}

/// What a span of blocks changed in the jobs of some escrows ([`Suite::job_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobChanges {
    /// These jobs (escrow, job id), each once, and no others.
    Jobs(Vec<(Address, U256)>),
    /// Any open job may have changed: read them all.
    Everything,
}

/// Where the USDC of one escrow went, for status display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EscrowTotals {
    /// USDC the escrow contract holds now.
    pub balance_usdc: U256,
    /// USDC paid into the escrow, ever (the owner's job payments and every `deposit`).
    pub deposited: U256,
    /// USDC held for the CSP and not committed to a job (what delegates spend).
    pub free_balance: U256,
    /// USDC withdrawn from the free balance by the owner, ever.
    pub withdrawn: U256,
    /// USDC credited to node balances, ever.
    pub credited_to_nodes: U256,
    /// USDC sent to the burn, ever.
    pub burned: U256,
    /// USDC refunded to the CSP, ever.
    pub refunded: U256,
    /// USDC paid out of node balances on claims, ever.
    pub claimed: U256,
}

impl Suite {
    /// The active oracles, as the manager lists them (the set consensus counts against).
    pub async fn oracles(&self) -> Result<Vec<Address>> {
        Ok(self.manager().getOracles().call().await?)
    }

    /// The rule the manager's rounds decide by (`None`: a rule this client does not know).
    pub async fn quorum_rule(&self) -> Result<Option<crate::Quorum>> {
        Ok(crate::Quorum::from_u8(
            self.manager().quorum().call().await?,
        ))
    }

    /// The epoch clock: `(genesis_unix_s, epoch_seconds)`; epoch `e` runs from
    /// `genesis + e × epoch_seconds` for `epoch_seconds`.
    pub async fn epoch_clock(&self) -> Result<(u64, u64)> {
        let manager = self.manager();
        let genesis = manager.genesisTimestamp().call().await?;
        let seconds = manager.epochSeconds().call().await?;
        Ok((to_u64(genesis), to_u64(seconds)))
    }

    /// Epochs before this one have had their rewards allocated; the next allocation starts here.
    pub async fn allocated_until_epoch(&self) -> Result<u64> {
        Ok(to_u64(self.manager().allocatedUntilEpoch().call().await?))
    }

    /// Whether the availability (PoA) table of `epoch` has been agreed and every page of it
    /// recorded.
    pub async fn availability_recorded(&self, epoch: u64) -> Result<bool> {
        Ok(self
            .manager()
            .availabilityRecorded(U256::from(epoch))
            .call()
            .await?)
    }

    /// Whether the oracles agreed on the availability table of `epoch` (no oracle may vote on
    /// it again; its pages may still be unrecorded).
    pub async fn availability_agreed(&self, epoch: u64) -> Result<bool> {
        let agreed = self
            .manager()
            .agreedAvailability(U256::from(epoch))
            .call()
            .await?;
        Ok(!agreed.root.is_zero())
    }

    /// The consensus round of `job_id` that the next node-set vote counts in (it moves on when a
    /// set is accepted, and when a round started in an earlier epoch gets a new vote).
    pub async fn job_round(&self, job_id: u64) -> Result<u64> {
        Ok(to_u64(
            self.manager().jobRound(U256::from(job_id)).call().await?,
        ))
    }

    /// The licence `node` is linked to, or `None` when it has none (then it cannot be validated).
    pub async fn node_licence(&self, node: Address) -> Result<Option<NodeLicence>> {
        Ok(self.node_licences(&[node]).await?.pop().flatten())
    }

    /// The licence of each of `nodes`, in order, in one call (`nodeStandings`); keep `nodes`
    /// to a few hundred so the call stays within the node's gas cap for calls.
    pub async fn node_licences(&self, nodes: &[Address]) -> Result<Vec<Option<NodeLicence>>> {
        let standings = self.manager().nodeStandings(nodes.to_vec()).call().await?;
        Ok(standings
            .into_iter()
            .map(|s| {
                (!s.licenceId.is_zero()).then(|| NodeLicence {
                    licence_id: to_u64(s.licenceId),
                    owner: s.owner,
                    blacklisted: s.blacklisted,
                    suspended_until_epoch: to_u64(s.suspendedUntilEpoch),
                    for_hire: s.forHire,
                })
            })
            .collect())
    }

    /// The chain's latest block number: what an oracle keys its chain snapshot by (nothing it
    /// reads changes until a block comes).
    pub async fn head(&self) -> Result<u64> {
        Ok(self.provider().get_block_number().await?)
    }

    /// Whether any of `escrows` or the manager recorded, in the blocks after `after_block`, a
    /// change an oracle's pass acts on (a job created, extended or redeemed; a node set
    /// accepted), and the last block read. `None` starts at the latest block. What lets an
    /// oracle run a freshly funded job at once instead of at its next loop tick.
    pub async fn jobs_changed(
        &self,
        escrows: &[Address],
        after_block: Option<u64>,
    ) -> Result<(bool, u64)> {
        let latest = self.provider().get_block_number().await?;
        let Some(after) = after_block else {
            return Ok((false, latest));
        };
        if latest <= after {
            return Ok((false, after));
        }
        let from = (after + 1).max(latest.saturating_sub(STANDING_LOOKBACK_BLOCKS));
        let events = vec![
            CspEscrow::JobCreated::SIGNATURE_HASH,
            CspEscrow::JobNodesExtended::SIGNATURE_HASH,
            CspEscrow::JobDurationExtended::SIGNATURE_HASH,
            CspEscrow::JobRedeemed::SIGNATURE_HASH,
            PoAIManager::NodeUpdateAccepted::SIGNATURE_HASH,
        ];
        let logs = self
            .escrow_and_manager_logs(escrows, events, from, latest)
            .await?;
        Ok((!logs.is_empty(), latest))
    }

    /// What blocks `from..=to` changed in the jobs of `escrows`: the jobs an event of theirs
    /// names (created, extended, started, given a node set, settled, closed, redeemed), or
    /// [`JobChanges::Everything`] when the manager allocated rewards in them (an allocation
    /// settles jobs without a node set silently). What lets an oracle read again only the jobs
    /// that changed since its last snapshot.
    pub async fn job_changes(&self, escrows: &[Address], from: u64, to: u64) -> Result<JobChanges> {
        if escrows.is_empty() || from > to {
            return Ok(JobChanges::Jobs(Vec::new()));
        }
        let manager = self.deployment().manager;
        let events = vec![
            CspEscrow::JobCreated::SIGNATURE_HASH,
            CspEscrow::JobDurationExtended::SIGNATURE_HASH,
            CspEscrow::JobNodesExtended::SIGNATURE_HASH,
            CspEscrow::JobStarted::SIGNATURE_HASH,
            CspEscrow::ActiveNodesUpdated::SIGNATURE_HASH,
            CspEscrow::Settled::SIGNATURE_HASH,
            CspEscrow::JobClosed::SIGNATURE_HASH,
            CspEscrow::JobRedeemed::SIGNATURE_HASH,
            PoAIManager::AllocationPage::SIGNATURE_HASH,
            PoAIManager::RewardsAllocated::SIGNATURE_HASH,
        ];
        let mut jobs = Vec::new();
        for log in self
            .escrow_and_manager_logs(escrows, events, from, to)
            .await?
        {
            if log.address() == manager {
                return Ok(JobChanges::Everything);
            }
            if let Some(id) = log.topics().get(1) {
                jobs.push((log.address(), U256::from_be_bytes(id.0)));
            }
        }
        jobs.sort();
        jobs.dedup();
        Ok(JobChanges::Jobs(jobs))
    }

    /// The logs of `events` that `escrows` or the manager emitted in blocks `from..=to`.
    async fn escrow_and_manager_logs(
        &self,
        escrows: &[Address],
        events: Vec<B256>,
        from: u64,
        to: u64,
    ) -> Result<Vec<alloy::rpc::types::Log>> {
        let mut addresses = escrows.to_vec();
        addresses.push(self.deployment().manager);
        let filter = Filter::new()
            .address(addresses)
            .event_signature(events)
            .from_block(from)
            .to_block(to);
        Ok(self.provider().get_logs(&filter).await?)
    }

    /// The nodes whose standing changed in the blocks after `after_block` (linked, unlinked,
    /// blacklisted or cleared, suspended), and the last block read: what lets an oracle read a
    /// freshly linked node's licence at once instead of at its next scheduled recheck. `None`
    /// starts at the latest block.
    pub async fn standing_changes(&self, after_block: Option<u64>) -> Result<(Vec<Address>, u64)> {
        let latest = self.provider().get_block_number().await?;
        let Some(after) = after_block else {
            return Ok((Vec::new(), latest));
        };
        if latest <= after {
            return Ok((Vec::new(), after));
        }
        let from = (after + 1).max(latest.saturating_sub(STANDING_LOOKBACK_BLOCKS));
        let filter = Filter::new()
            .address(vec![self.deployment().node_deed, self.deployment().manager])
            .event_signature(vec![
                NodeDeed::NodeLinked::SIGNATURE_HASH,
                NodeDeed::NodeUnlinked::SIGNATURE_HASH,
                PoAIManager::BlacklistSet::SIGNATURE_HASH,
                PoAIManager::NodeSuspended::SIGNATURE_HASH,
            ])
            .from_block(from)
            .to_block(latest);
        let mut nodes = Vec::new();
        for log in self.provider().get_logs(&filter).await? {
            let inner = &log.inner;
            let node = if let Ok(e) = NodeDeed::NodeLinked::decode_log(inner) {
                e.data.node
            } else if let Ok(e) = NodeDeed::NodeUnlinked::decode_log(inner) {
                e.data.node
            } else if let Ok(e) = PoAIManager::BlacklistSet::decode_log(inner) {
                e.data.node
            } else if let Ok(e) = PoAIManager::NodeSuspended::decode_log(inner) {
                e.data.node
            } else {
                continue;
            };
            nodes.push(node);
        }
        nodes.sort();
        nodes.dedup();
        Ok((nodes, latest))
    }

    /// The availability history of `node` (zeros when it was never measured while linked).
    pub async fn service_record(&self, node: Address) -> Result<ServiceRecord> {
        let record = self.node_deed().serviceRecord(node).call().await?;
        Ok(ServiceRecord {
            epochs_measured: record.epochsMeasured,
            epochs_at_sla: record.epochsAtSla,
            last_epoch: record.lastEpoch,
            last_at_sla: record.lastAtSla,
        })
    }

    /// Every job of `escrow` not yet closed, by ascending id.
    pub async fn escrow_open_jobs(&self, escrow: Address) -> Result<Vec<CspEscrow::Job>> {
        let ids = self.escrow_open_job_ids(escrow).await?;
        self.escrow_jobs(escrow, &ids).await
    }

    /// The ids of every job of `escrow` not yet closed, ascending.
    pub async fn escrow_open_job_ids(&self, escrow: Address) -> Result<Vec<U256>> {
        let mut ids = self.escrow(escrow).getOpenJobIds().call().await?;
        ids.sort();
        Ok(ids)
    }

    /// The jobs `ids` of `escrow` as it holds them now, closed or not, in the order of `ids`.
    pub async fn escrow_jobs(&self, escrow: Address, ids: &[U256]) -> Result<Vec<CspEscrow::Job>> {
        let contract = self.escrow(escrow);
        let mut jobs = Vec::with_capacity(ids.len());
        for page in ids.chunks(JOBS_PER_CALL) {
            match contract.getJobs(page.to_vec()).call().await {
                Ok(found) => jobs.extend(found),
                // An escrow whose implementation predates `getJobs`: one call a job.
                Err(_) => {
                    for id in page {
                        jobs.push(contract.getJob(*id).call().await?);
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// The open job of `escrow` whose `projectHash` is `project_hash` (see
    /// [`crate::job_link::project_hash`]); the lowest id wins if the CSP funded more than one.
    pub async fn find_open_job(
        &self,
        escrow: Address,
        project_hash: B256,
    ) -> Result<Option<CspEscrow::Job>> {
        Ok(self
            .find_open_jobs(escrow, &[project_hash])
            .await?
            .pop()
            .flatten())
    }

    /// For each of `project_hashes`, in order, the open job of `escrow` paying for it (lowest id
    /// wins): `findOpenJobs` a page of hashes at a time, as many calls as pages whatever the
    /// escrow holds; an escrow whose implementation predates it has all its open jobs read.
    pub async fn find_open_jobs(
        &self,
        escrow: Address,
        project_hashes: &[B256],
    ) -> Result<Vec<Option<CspEscrow::Job>>> {
        let contract = self.escrow(escrow);
        let mut found = Vec::with_capacity(project_hashes.len());
        for page in project_hashes.chunks(JOBS_PER_CALL) {
            match contract.findOpenJobs(page.to_vec()).call().await {
                Ok(jobs) => found.extend(
                    jobs.into_iter()
                        .map(|job| (!job.id.is_zero()).then_some(job)),
                ),
                Err(e) if found.is_empty() && is_missing_function(&e) => {
                    return self.scan_open_jobs(escrow, project_hashes).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(found)
    }

    /// [`Suite::find_open_jobs`] by reading every open job of `escrow`.
    async fn scan_open_jobs(
        &self,
        escrow: Address,
        project_hashes: &[B256],
    ) -> Result<Vec<Option<CspEscrow::Job>>> {
        let mut by_hash: std::collections::HashMap<B256, CspEscrow::Job> =
            std::collections::HashMap::new();
        for job in self.escrow_open_jobs(escrow).await? {
            by_hash.entry(job.projectHash).or_insert(job);
        }
        Ok(project_hashes
            .iter()
            .map(|hash| by_hash.get(hash).cloned())
            .collect())
    }

    /// The USDC held by `escrow` and its lifetime totals.
    pub async fn escrow_totals(&self, escrow: Address) -> Result<EscrowTotals> {
        let contract = self.escrow(escrow);
        let usdc = self.usdc();
        // Eight views of one escrow, asked at once rather than one after another.
        let views = (
            usdc.balanceOf(escrow),
            contract.totalDeposited(),
            contract.freeBalance(),
            contract.totalWithdrawn(),
            contract.totalCreditedToNodes(),
            contract.totalBurned(),
            contract.totalRefunded(),
            contract.totalClaimed(),
        );
        let read = tokio::try_join!(
            views.0.call(),
            views.1.call(),
            views.2.call(),
            views.3.call(),
            views.4.call(),
            views.5.call(),
            views.6.call(),
            views.7.call(),
        )?;
        Ok(EscrowTotals {
            balance_usdc: read.0,
            deposited: read.1,
            free_balance: read.2,
            withdrawn: read.3,
            credited_to_nodes: read.4,
            burned: read.5,
            refunded: read.6,
            claimed: read.7,
        })
    }
}
