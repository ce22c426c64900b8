//! The events an audit reads, decoded from the contracts' logs into plain values: ids and
//! epochs as `u64`, amounts as `U256`, and for escrow events the escrow that emitted them.

use alloy::primitives::{Address, B256, Log, U256};
use alloy::sol_types::SolEventInterface;

use crate::bindings::{CspEscrow, NodeDeed, PoAIManager};
use crate::client::to_u64;

/// One event of the PoAI manager, an escrow or the Node Deed that bears on a job's money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// Governance added an oracle.
    OracleAdded {
        /// The oracle.
        oracle: Address,
    },
    /// Governance removed an oracle.
    OracleRemoved {
        /// The oracle.
        oracle: Address,
    },
    /// Governance blacklisted or cleared a node.
    BlacklistSet {
        /// The node.
        node: Address,
        /// Whether it is blacklisted now.
        blacklisted: bool,
    },
    /// Governance priced a job type.
    JobTypePriceSet {
        /// The job type.
        job_type: u8,
        /// USDC units per node per epoch.
        price: U256,
    },
    /// An oracle voted for a job's node set.
    NodeUpdateSubmitted {
        /// The job.
        job: u64,
        /// The consensus round.
        round: u64,
        /// The oracle that sent the vote.
        oracle: Address,
        /// `keccak256(abi.encodePacked(nodes))` of the set voted for.
        proposal: B256,
    },
    /// The oracles agreed on a job's node set (empty closes the job).
    NodeUpdateAccepted {
        /// The job.
        job: u64,
        /// The consensus round.
        round: u64,
        /// The winning proposal.
        proposal: B256,
        /// The agreed set.
        nodes: Vec<Address>,
    },
    /// An oracle voted for an epoch's availability table.
    AvailabilitySubmitted {
        /// The epoch.
        epoch: u64,
        /// The oracle that sent the vote.
        oracle: Address,
        /// The table's hash.
        proposal: B256,
    },
    /// The oracles agreed on an epoch's availability table.
    AvailabilityAccepted {
        /// The epoch.
        epoch: u64,
        /// The winning table's hash.
        proposal: B256,
    },
    /// An oracle recorded one page of an epoch's agreed availability table; the Node Deed's
    /// mints for it follow in the same transaction.
    AvailabilityPageRecorded {
        /// The epoch.
        epoch: u64,
        /// The page.
        page: u64,
    },
    /// Epochs `[from, until)` were allocated across every escrow.
    RewardsAllocated {
        /// First epoch allocated.
        from: u64,
        /// First epoch not allocated.
        until: u64,
        /// The oracle that allocated.
        oracle: Address,
        /// USDC burned for it, over every escrow.
        usdc_burned: U256,
    },
    /// One page of an allocation pass (the last one also emits `RewardsAllocated`).
    AllocationPage {
        /// The first epoch the pass does not allocate.
        until: u64,
        /// The oracle that sent the page.
        oracle: Address,
        /// USDC burned in this page's transaction.
        usdc_burned: U256,
    },
    /// A job that never started was redeemed by its escrow's owner or a delegate (its
    /// `JobClosed` follows in the same transaction).
    JobRedeemed {
        /// The escrow.
        escrow: Address,
        /// The job.
        job: u64,
    },
    /// A CSP took a job back from the stalled protocol (its escrow settles the job's completed
    /// epochs and closes it in the same transaction).
    StalledJobReleased {
        /// The job.
        job: u64,
    },
    /// A settlement's 15 % share was queued at the manager for burning.
    BurnQueued {
        /// The USDC queued.
        usdc: U256,
    },
    /// USDC was swapped to R1 and burned.
    FeesBurned {
        /// The USDC swapped.
        usdc: U256,
        /// The R1 burned.
        r1: U256,
    },
    /// A job was created and paid for.
    JobCreated {
        /// The escrow.
        escrow: Address,
        /// The job.
        job: u64,
        /// Its type.
        job_type: u8,
        /// The project it pays for.
        project_hash: B256,
        /// Its last paid epoch.
        last_epoch: u64,
        /// Nodes requested.
        nodes: u64,
        /// USDC units per node per epoch.
        price: U256,
        /// USDC units paid.
        paid: U256,
    },
    /// A job's last epoch moved later.
    JobDurationExtended {
        /// The escrow.
        escrow: Address,
        /// The job.
        job: u64,
        /// The new last epoch.
        last_epoch: u64,
        /// USDC units paid.
        paid: U256,
    },
    /// A job's node count grew.
    JobNodesExtended {
        /// The escrow.
        escrow: Address,
        /// The job.
        job: u64,
        /// The new node count.
        nodes: u64,
        /// USDC units paid.
        paid: U256,
    },
    /// The first agreed node set started a job.
    JobStarted {
        /// The escrow.
        escrow: Address,
        /// The job.
        job: u64,
        /// Block time, unix seconds.
        timestamp: u64,
    },
    /// The escrow recorded a job's agreed node set.
    ActiveNodesUpdated {
        /// The escrow.
        escrow: Address,
        /// The job.
        job: u64,
        /// The set.
        nodes: Vec<Address>,
    },
    /// The seconds `[from, to)` of a job were paid.
    Settled {
        /// The escrow.
        escrow: Address,
        /// The job.
        job: u64,
        /// First second paid (unix time).
        from: u64,
        /// First second not paid (unix time).
        to: u64,
        /// Nodes paid.
        nodes_paid: u64,
        /// USDC units credited to the nodes.
        to_nodes: U256,
        /// USDC units sent to the burn.
        burned: U256,
    },
    /// A job closed and its unspent budget went back to the CSP.
    JobClosed {
        /// The escrow.
        escrow: Address,
        /// The job.
        job: u64,
        /// USDC units refunded.
        refunded: U256,
    },
    /// A node's balance was paid out for a claim.
    NodeBalanceWithdrawn {
        /// The escrow.
        escrow: Address,
        /// The node.
        node: Address,
        /// USDC units.
        amount: U256,
    },
    /// USDC was added to an escrow's free balance.
    Deposited {
        /// The escrow.
        escrow: Address,
        /// Who paid.
        from: Address,
        /// USDC units.
        amount: U256,
    },
    /// The owner took USDC out of an escrow's free balance.
    Withdrawn {
        /// The escrow.
        escrow: Address,
        /// USDC units.
        amount: U256,
    },
    /// PoA R1 was minted for a licence for one epoch.
    PoaMinted {
        /// The epoch.
        epoch: u64,
        /// The licence.
        licence: u64,
        /// Its node.
        node: Address,
        /// The agreed availability byte.
        availability: u8,
        /// R1 units minted.
        amount: U256,
    },
}

impl Fact {
    /// Whether the audit needs the time of the block this fact is in: the escrow costs a job
    /// and settles it by the time of the block its call runs in.
    pub fn needs_time(&self) -> bool {
        matches!(
            self,
            Fact::JobCreated { .. }
                | Fact::JobNodesExtended { .. }
                | Fact::NodeUpdateAccepted { .. }
                | Fact::StalledJobReleased { .. }
        )
    }

    /// Whether the audit needs who signed the transaction this fact is in: a vote's signer, and
    /// whether the escrow's owner (its wallet) or a delegate (the free balance) paid a job.
    pub fn needs_sender(&self) -> bool {
        matches!(
            self,
            Fact::NodeUpdateSubmitted { .. }
                | Fact::AvailabilitySubmitted { .. }
                | Fact::JobCreated { .. }
                | Fact::JobDurationExtended { .. }
                | Fact::JobNodesExtended { .. }
        )
    }

    /// The fact a log of the manager at `manager`, the Node Deed at `node_deed` or an escrow
    /// carries; `None` for logs of other contracts and events the audit does not read.
    pub fn decode(log: &Log, manager: Address, node_deed: Address) -> Option<Fact> {
        if log.address == manager {
            manager_fact(log)
        } else if log.address == node_deed {
            deed_fact(log)
        } else {
            escrow_fact(log)
        }
    }
}

fn manager_fact(log: &Log) -> Option<Fact> {
    use PoAIManager::PoAIManagerEvents as E;
    Some(
        match PoAIManager::PoAIManagerEvents::decode_log(log).ok()?.data {
            E::OracleAdded(e) => Fact::OracleAdded { oracle: e.oracle },
            E::OracleRemoved(e) => Fact::OracleRemoved { oracle: e.oracle },
            E::BlacklistSet(e) => Fact::BlacklistSet {
                node: e.node,
                blacklisted: e.blacklisted,
            },
            E::JobTypePriceSet(e) => Fact::JobTypePriceSet {
                job_type: e.jobType,
                price: e.pricePerEpoch,
            },
            E::NodeUpdateSubmitted(e) => Fact::NodeUpdateSubmitted {
                job: to_u64(e.jobId),
                round: to_u64(e.round),
                oracle: e.oracle,
                proposal: e.proposal,
            },
            E::NodeUpdateAccepted(e) => Fact::NodeUpdateAccepted {
                job: to_u64(e.jobId),
                round: to_u64(e.round),
                proposal: e.proposal,
                nodes: e.nodes,
            },
            E::AvailabilitySubmitted(e) => Fact::AvailabilitySubmitted {
                epoch: to_u64(e.epoch),
                oracle: e.oracle,
                proposal: e.proposal,
            },
            E::AvailabilityAccepted(e) => Fact::AvailabilityAccepted {
                epoch: to_u64(e.epoch),
                proposal: e.proposal,
            },
            E::AvailabilityPageRecorded(e) => Fact::AvailabilityPageRecorded {
                epoch: to_u64(e.epoch),
                page: to_u64(e.page),
            },
            E::RewardsAllocated(e) => Fact::RewardsAllocated {
                from: to_u64(e.fromEpoch),
                until: to_u64(e.untilEpoch),
                oracle: e.oracle,
                usdc_burned: e.usdcBurned,
            },
            E::AllocationPage(e) => Fact::AllocationPage {
                until: to_u64(e.untilEpoch),
                oracle: e.oracle,
                usdc_burned: e.usdcBurned,
            },
            E::StalledJobReleased(e) => Fact::StalledJobReleased {
                job: to_u64(e.jobId),
            },
            E::BurnQueued(e) => Fact::BurnQueued { usdc: e.usdcAmount },
            E::FeesBurned(e) => Fact::FeesBurned {
                usdc: e.usdcAmount,
                r1: e.r1Amount,
            },
            _ => return None,
        },
    )
}

fn deed_fact(log: &Log) -> Option<Fact> {
    match NodeDeed::NodeDeedEvents::decode_log(log).ok()?.data {
        NodeDeed::NodeDeedEvents::PoaMinted(e) => Some(Fact::PoaMinted {
            epoch: to_u64(e.epoch),
            licence: to_u64(e.licenceId),
            node: e.node,
            availability: e.availability,
            amount: e.amount,
        }),
        _ => None,
    }
}

fn escrow_fact(log: &Log) -> Option<Fact> {
    use CspEscrow::CspEscrowEvents as E;
    let escrow = log.address;
    Some(
        match CspEscrow::CspEscrowEvents::decode_log(log).ok()?.data {
            E::JobCreated(e) => Fact::JobCreated {
                escrow,
                job: to_u64(e.jobId),
                job_type: e.jobType,
                project_hash: e.projectHash,
                last_epoch: to_u64(e.lastExecutionEpoch),
                nodes: to_u64(e.numberOfNodesRequested),
                price: e.pricePerEpoch,
                paid: e.paid,
            },
            E::JobDurationExtended(e) => Fact::JobDurationExtended {
                escrow,
                job: to_u64(e.jobId),
                last_epoch: to_u64(e.lastExecutionEpoch),
                paid: e.paid,
            },
            E::JobNodesExtended(e) => Fact::JobNodesExtended {
                escrow,
                job: to_u64(e.jobId),
                nodes: to_u64(e.numberOfNodesRequested),
                paid: e.paid,
            },
            E::JobStarted(e) => Fact::JobStarted {
                escrow,
                job: to_u64(e.jobId),
                timestamp: to_u64(e.timestamp),
            },
            E::ActiveNodesUpdated(e) => Fact::ActiveNodesUpdated {
                escrow,
                job: to_u64(e.jobId),
                nodes: e.nodes,
            },
            E::Settled(e) => Fact::Settled {
                escrow,
                job: to_u64(e.jobId),
                from: to_u64(e.fromTime),
                to: to_u64(e.toTime),
                nodes_paid: to_u64(e.nodesPaid),
                to_nodes: e.toNodes,
                burned: e.burned,
            },
            E::JobRedeemed(e) => Fact::JobRedeemed {
                escrow,
                job: to_u64(e.jobId),
            },
            E::JobClosed(e) => Fact::JobClosed {
                escrow,
                job: to_u64(e.jobId),
                refunded: e.refunded,
            },
            E::NodeBalanceWithdrawn(e) => Fact::NodeBalanceWithdrawn {
                escrow,
                node: e.node,
                amount: e.amount,
            },
            E::Deposited(e) => Fact::Deposited {
                escrow,
                from: e.from,
                amount: e.amount,
            },
            E::Withdrawn(e) => Fact::Withdrawn {
                escrow,
                amount: e.amount,
            },
            _ => return None,
        },
    )
}
