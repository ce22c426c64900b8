//! A typed client over a deployed suite, acting as the provider's signer: governance, CSP,
//! node owner or oracle, depending on who that is.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::SolEvent;

use crate::availability::{AvailabilityTable, page_gas_limit};
use crate::bindings::{CspEscrow, NodeDeed, PoAIManager, R1, R1UsdcPool, TestUSDC};
use crate::deploy::Deployment;
use crate::error::{Error, Result};
use crate::link::{LinkProof, LinkTerms};
use crate::tx::{confirm, confirm_with_headroom};

/// A job to create in a CSP's escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRequest {
    /// Job type / resource class id from the price table.
    pub job_type: u8,
    /// Hash identifying the CSP's project.
    pub project_hash: B256,
    /// Last epoch the job is paid for (at least 30 after the current one).
    pub last_execution_epoch: u64,
    /// Nodes (replicas) the job runs on.
    pub nodes: u64,
}

/// Permission bits a CSP grants a delegate on its escrow (`CspEscrow.setDelegate`). Only the
/// bits the contract defines can be held; text form is a comma list such as
/// `create,extend-duration` (`none` for no bit, `all` accepted for every bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// No permission (setting it removes the delegate).
    pub const NONE: Permissions = Permissions(0);
    /// Create jobs, paid from the escrow's free balance (`PERMISSION_CREATE`).
    pub const CREATE: Permissions = Permissions(1);
    /// Extend a job's duration, paid from the free balance (`PERMISSION_EXTEND_DURATION`).
    pub const EXTEND_DURATION: Permissions = Permissions(2);
    /// Extend a job's node count, paid from the free balance (`PERMISSION_EXTEND_NODES`).
    pub const EXTEND_NODES: Permissions = Permissions(4);
    /// Redeem jobs never started, an hour after their request (`PERMISSION_REDEEM`).
    pub const REDEEM: Permissions = Permissions(8);
    /// Every bit the escrow defines (`ALL_PERMISSIONS`).
    pub const ALL: Permissions = Permissions(15);

    const NAMES: [(Permissions, &'static str); 4] = [
        (Permissions::CREATE, "create"),
        (Permissions::EXTEND_DURATION, "extend-duration"),
        (Permissions::EXTEND_NODES, "extend-nodes"),
        (Permissions::REDEEM, "redeem"),
    ];

    /// The raw bits, as the contract takes and returns them.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The permissions of `bits`, or `None` when a bit the escrow does not define is set.
    pub const fn from_bits(bits: u8) -> Option<Permissions> {
        if bits & !Permissions::ALL.0 == 0 {
            Some(Permissions(bits))
        } else {
            None
        }
    }

    /// Whether every bit of `other` is held.
    pub const fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is held.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Permissions {
    type Output = Permissions;

    fn bitor(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }
}

impl BitOrAssign for Permissions {
    fn bitor_assign(&mut self, other: Permissions) {
        self.0 |= other.0;
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (bit, name) in Permissions::NAMES {
            if self.contains(bit) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A permission list that names something other than `create`, `extend-duration`,
/// `extend-nodes`, `redeem`, `none` or `all`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission `{0}`: expected a comma list of create, extend-duration, extend-nodes, \
     redeem (or `none`, or `all`)"
)]
pub struct ParsePermissionsError(pub String);

impl FromStr for Permissions {
    type Err = ParsePermissionsError;

    fn from_str(text: &str) -> std::result::Result<Permissions, ParsePermissionsError> {
        match text.trim() {
            "none" => return Ok(Permissions::NONE),
            "all" => return Ok(Permissions::ALL),
            _ => {}
        }
        let mut permissions = Permissions::NONE;
        for item in text.split(',').map(str::trim) {
            let (bit, _) = Permissions::NAMES
                .iter()
                .find(|(_, name)| *name == item)
                .ok_or_else(|| ParsePermissionsError(item.to_string()))?;
            permissions |= *bit;
        }
        Ok(permissions)
    }
}

/// Gas a deciding node-set vote may need beyond one that only counts, whatever the node count:
/// round bookkeeping, and swapping and burning the fees of the epochs it settles.
pub const VOTE_GAS_BASE: u64 = 150_000;

/// Gas a deciding node-set vote may need beyond one that only counts, per node of the proposed
/// or the validated set: the node's escrow links, the recorded set, its settlement.
pub const VOTE_GAS_PER_NODE: u64 = 100_000;

/// Gas added to a node-set vote's estimate, for sets of up to `nodes` nodes. The estimate runs
/// against the chain as it is before the vote; whether the vote only counts or decides (records
/// the set, settles the epochs since the last one, swaps and burns) depends on the other
/// oracles' votes mined before it. Oracles vote at about the same moment, so the deciding vote
/// was often estimated as one that counts, and ran out of gas. Measured on the Hardhat EDR node, deciding costs at most 94 000 + 77 400 per node more than counting
/// (moving a set and settling), 70 500 per node more for a first set, and 112 000 + 22 600
/// per validated node more for a close.
pub const fn vote_gas_headroom(nodes: usize) -> u64 {
    VOTE_GAS_BASE.saturating_add(VOTE_GAS_PER_NODE.saturating_mul(nodes as u64))
}

/// Gas an escrow call that settles a job may need beyond its estimate, whatever the node count:
/// the settlement's bookkeeping and event, and sending its fee to the manager to be burned.
pub const SETTLE_GAS_BASE: u64 = 100_000;

/// Gas such a call may need beyond its estimate per node of the job's validated set: the
/// blacklist check and the node's balance credited.
pub const SETTLE_GAS_PER_NODE: u64 = 40_000;

/// Gas added to the estimate of an escrow call that settles a job with `nodes` validated nodes
/// up to the second it is mined (`extendJobNodes`, `exitStalledJob`). The estimate runs against
/// the chain as it is before the call: when the job was settled in that very second (an
/// allocation, a vote, an earlier extension) the estimate settles nothing, and the call, mined
/// a second later, ran out of gas settling every node.
pub const fn settle_gas_headroom(nodes: usize) -> u64 {
    SETTLE_GAS_BASE.saturating_add(SETTLE_GAS_PER_NODE.saturating_mul(nodes as u64))
}

/// What a node-set submission achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteOutcome {
    /// The vote was counted; no decision yet.
    Pending,
    /// This vote completed consensus and the node set was recorded (empty = job closed).
    Accepted(Vec<Address>),
}

/// What [`Suite::record_availability_pages`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagesRecorded {
    /// No table of the epoch is agreed yet.
    NotAgreed,
    /// The oracles agreed on a different table: this one's pages would not prove.
    OtherTable,
    /// `sent` pages recorded now; `left` more the chain still missed and were not tried.
    Recorded {
        /// Pages this call recorded.
        sent: usize,
        /// Missing pages beyond the call's limit.
        left: usize,
    },
}

/// What one allocation call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// First epoch allocated.
    pub from_epoch: u64,
    /// Epochs before this one are now allocated.
    pub until_epoch: u64,
    /// USDC swapped to R1 and burned.
    pub usdc_burned: U256,
}

/// The suite seen by one signer.
#[derive(Debug, Clone)]
pub struct Suite {
    provider: DynProvider,
    address: Address,
    deployment: Deployment,
}

impl Suite {
    /// Acts on `deployment` as `address`, the account `provider` signs for.
    pub fn new(provider: DynProvider, address: Address, deployment: Deployment) -> Self {
        Suite {
            provider,
            address,
            deployment,
        }
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The provider this client sends with.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The deployed addresses.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The PoAI manager.
    pub fn manager(&self) -> PoAIManager::PoAIManagerInstance<DynProvider> {
        PoAIManager::new(self.deployment.manager, self.provider.clone())
    }

    /// The R1 token.
    pub fn r1(&self) -> R1::R1Instance<DynProvider> {
        R1::new(self.deployment.r1, self.provider.clone())
    }

    /// The USDC token.
    pub fn usdc(&self) -> TestUSDC::TestUSDCInstance<DynProvider> {
        TestUSDC::new(self.deployment.usdc, self.provider.clone())
    }

    /// The swap pool.
    pub fn pool(&self) -> R1UsdcPool::R1UsdcPoolInstance<DynProvider> {
        R1UsdcPool::new(self.deployment.pool, self.provider.clone())
    }

    /// The Node Deed licences.
    pub fn node_deed(&self) -> NodeDeed::NodeDeedInstance<DynProvider> {
        NodeDeed::new(self.deployment.node_deed, self.provider.clone())
    }

    /// An escrow by address.
    pub fn escrow(&self, escrow: Address) -> CspEscrow::CspEscrowInstance<DynProvider> {
        CspEscrow::new(escrow, self.provider.clone())
    }

    /// The current epoch.
    pub async fn current_epoch(&self) -> Result<u64> {
        Ok(to_u64(self.manager().currentEpoch().call().await?))
    }

    // ----- governance -----

    /// Adds an oracle (governance).
    pub async fn add_oracle(&self, oracle: Address) -> Result<crate::governance::Governed> {
        self.govern(self.manager().addOracle(oracle), false).await
    }

    /// Sets a job type's price per node per epoch (governance).
    pub async fn set_job_type_price(
        &self,
        job_type: u8,
        price: U256,
    ) -> Result<TransactionReceipt> {
        confirm(self.manager().setJobTypePrice(job_type, price)).await
    }

    /// Suspends `node` until epoch `until_epoch` starts (governance): no node set may name it and
    /// it mints no PoA meanwhile; a past epoch lifts the suspension.
    pub async fn suspend(&self, node: Address, until_epoch: u64) -> Result<TransactionReceipt> {
        confirm(self.manager().suspend(node, U256::from(until_epoch))).await
    }

    /// Deploys the escrow of `csp` behind the beacon (governance) and returns its address.
    pub async fn deploy_escrow(&self, csp: Address) -> Result<Address> {
        let receipt = confirm(self.manager().deployEscrow(csp)).await?;
        emitted::<PoAIManager::EscrowDeployed>(&receipt, "EscrowDeployed").map(|event| event.escrow)
    }

    /// Mints test USDC (governance, development only).
    pub async fn mint_usdc(&self, to: Address, amount: U256) -> Result<TransactionReceipt> {
        confirm(self.usdc().mint(to, amount)).await
    }

    /// Mints R1 to `to` by granting and revoking this signer's minter role (governance,
    /// development only: genesis allocations and test balances).
    pub async fn mint_r1(&self, to: Address, amount: U256) -> Result<()> {
        let r1 = self.r1();
        let me = self.address();
        self.govern(r1.setMinter(me, true), false).await?;
        confirm(r1.mint(to, amount)).await?;
        self.govern(r1.setMinter(me, false), false).await?;
        Ok(())
    }

    // ----- CSP -----

    /// The escrow of `csp` (zero when it has none).
    pub async fn escrow_of(&self, csp: Address) -> Result<Address> {
        Ok(self.manager().escrowOfCsp(csp).call().await?)
    }

    /// The price per node per epoch of `job_type` (zero when governance has not priced it).
    pub async fn job_type_price(&self, job_type: u8) -> Result<U256> {
        Ok(self.manager().jobTypePrice(job_type).call().await?)
    }

    /// The USDC `who` holds.
    pub async fn usdc_balance(&self, who: Address) -> Result<U256> {
        Ok(self.usdc().balanceOf(who).call().await?)
    }

    /// The most `request` costs if it is created in `epoch` or later: price × nodes × the epochs
    /// from `epoch` through its last. The escrow charges the seconds from the creation to the end
    /// of the last epoch, which is less the later in `epoch` it runs (and less again in any later
    /// epoch), so an approval of this covers the creation whenever it is mined.
    pub async fn job_cost(&self, request: &JobRequest, epoch: u64) -> Result<U256> {
        let price = self.manager().jobTypePrice(request.job_type).call().await?;
        let epochs = (request.last_execution_epoch + 1).saturating_sub(epoch);
        Ok(price * U256::from(request.nodes) * U256::from(epochs))
    }

    /// Creates the job in `escrow`, costed in the epoch of the chain's latest block, and returns
    /// its id: the owner approves the cost and pays from its wallet, a delegate holding
    /// [`Permissions::CREATE`] pays from the escrow's free balance (see [`Suite::create_job_in`]). Right when that block is
    /// recent (a chain that mines continuously, or a test that moved the clock and mined); a
    /// devnet that mines on demand answers with a stale epoch: see [`Suite::create_job_in`].
    pub async fn create_job(&self, escrow: Address, request: &JobRequest) -> Result<u64> {
        let epoch = self.current_epoch().await?;
        self.create_job_in(escrow, request, epoch).await
    }

    /// Creates a job in `escrow` and returns its id. When the signer owns the escrow it first
    /// approves what the job costs if created in `epoch`: the escrow pulls from the owner's
    /// wallet what it costs in the epoch of the block it runs in, less in a later epoch (which
    /// also pays fewer epochs), more than approved in an earlier one, which fails. Gas
    /// estimation runs it too, in the epoch of the chain's latest block, so `epoch` must not be
    /// later than that one either. Any other signer acts as a delegate: nothing is approved, the
    /// escrow pays from its free balance and refuses with `NotPermitted` (no
    /// [`Permissions::CREATE`]) or `InsufficientFreeBalance`.
    pub async fn create_job_in(
        &self,
        escrow: Address,
        request: &JobRequest,
        epoch: u64,
    ) -> Result<u64> {
        let ids = self
            .create_jobs_in(escrow, std::slice::from_ref(request), epoch)
            .await?;
        ids.first().copied().ok_or(Error::MissingEvent {
            tx: B256::ZERO,
            event: "JobCreated",
        })
    }

    /// Creates the jobs of `requests` in `escrow` in one transaction (one `createJobs`, plus the
    /// owner's one approval of their summed cost) and returns their ids in order; as
    /// [`Suite::create_job_in`] otherwise. The escrow creates all or none.
    pub async fn create_jobs_in(
        &self,
        escrow: Address,
        requests: &[JobRequest],
        epoch: u64,
    ) -> Result<Vec<u64>> {
        if self.owns_escrow(escrow).await? {
            let mut cost = U256::ZERO;
            for request in requests {
                cost += self.job_cost(request, epoch).await?;
            }
            confirm(self.usdc().approve(escrow, cost)).await?;
        }
        let escrow_contract = self.escrow(escrow);
        let call = escrow_contract.createJobs(
            requests
                .iter()
                .map(|request| CspEscrow::JobCreationRequest {
                    jobType: request.job_type,
                    projectHash: request.project_hash,
                    lastExecutionEpoch: U256::from(request.last_execution_epoch),
                    numberOfNodesRequested: U256::from(request.nodes),
                })
                .collect(),
        );
        let receipt = confirm(call).await?;
        let ids: Vec<u64> = receipt
            .logs()
            .iter()
            .filter(|log| log.address() == escrow)
            .filter_map(|log| CspEscrow::JobCreated::decode_log(log.as_ref()).ok())
            .map(|log| to_u64(log.data.jobId))
            .collect();
        if ids.len() != requests.len() {
            return Err(Error::MissingEvent {
                tx: receipt.transaction_hash,
                event: "JobCreated",
            });
        }
        Ok(ids)
    }

    /// A job by id, from whichever escrow holds it.
    pub async fn job(&self, job_id: u64) -> Result<CspEscrow::Job> {
        let escrow = self
            .manager()
            .escrowOfJob(U256::from(job_id))
            .call()
            .await?;
        Ok(self
            .escrow(escrow)
            .getJob(U256::from(job_id))
            .call()
            .await?)
    }

    /// Moves the job's last execution epoch to `last_execution_epoch`. The escrow's owner
    /// approves the cost and pays from its wallet; a delegate holding
    /// [`Permissions::EXTEND_DURATION`] approves nothing and pays from the free balance.
    pub async fn extend_job_duration(
        &self,
        escrow: Address,
        job_id: u64,
        last_execution_epoch: u64,
    ) -> Result<TransactionReceipt> {
        if self.owns_escrow(escrow).await? {
            let job = self.job(job_id).await?;
            let added = U256::from(last_execution_epoch).saturating_sub(job.lastExecutionEpoch);
            let cost = job.pricePerEpoch * job.numberOfNodesRequested * added;
            confirm(self.usdc().approve(escrow, cost)).await?;
        }
        confirm(
            self.escrow(escrow)
                .extendJobDuration(U256::from(job_id), U256::from(last_execution_epoch)),
        )
        .await
    }

    /// Raises the job's node count to `nodes`. The escrow's owner approves the cost and pays
    /// from its wallet; a delegate holding [`Permissions::EXTEND_NODES`] approves nothing and
    /// pays from the free balance. The escrow settles the job first, which the call carries gas
    /// for ([`settle_gas_headroom`]).
    pub async fn extend_job_nodes(
        &self,
        escrow: Address,
        job_id: u64,
        nodes: u64,
    ) -> Result<TransactionReceipt> {
        let job = self.job(job_id).await?;
        if self.owns_escrow(escrow).await? {
            // The added nodes pay the seconds from the extension to the end of the last epoch:
            // at most the epochs from the current one through the last.
            let epoch = U256::from(self.current_epoch().await?);
            let epochs_left = (job.lastExecutionEpoch + U256::from(1u64)).saturating_sub(epoch);
            let added = U256::from(nodes).saturating_sub(job.numberOfNodesRequested);
            let cost = job.pricePerEpoch * added * epochs_left;
            confirm(self.usdc().approve(escrow, cost)).await?;
        }
        confirm_with_headroom(
            self.escrow(escrow)
                .extendJobNodes(U256::from(job_id), U256::from(nodes)),
            settle_gas_headroom(job.activeNodes.len()),
        )
        .await
    }

    /// Closes a job of `escrow` that no node set ever started and refunds its budget to the
    /// escrow owner's wallet, an hour after its request (the owner, or a delegate holding
    /// [`Permissions::REDEEM`]); returns the USDC refunded.
    pub async fn redeem_unstarted_job(&self, escrow: Address, job_id: u64) -> Result<U256> {
        let receipt = confirm(self.escrow(escrow).redeemUnstartedJob(U256::from(job_id))).await?;
        emitted::<CspEscrow::JobClosed>(&receipt, "JobClosed").map(|event| event.refunded)
    }

    /// Takes job `job_id` of `escrow` back while the protocol is stalled (no allocation for the
    /// manager's `exitAfterEpochs`): its completed epochs are paid to its node set as a closure
    /// would, the rest refunded to the owner's wallet; returns the USDC refunded. Owner only.
    pub async fn exit_stalled_job(&self, escrow: Address, job_id: u64) -> Result<U256> {
        let nodes = self.job(job_id).await?.activeNodes.len();
        let receipt = confirm_with_headroom(
            self.escrow(escrow).exitStalledJob(U256::from(job_id)),
            settle_gas_headroom(nodes),
        )
        .await?;
        emitted::<CspEscrow::JobClosed>(&receipt, "JobClosed").map(|event| event.refunded)
    }

    // ----- escrow delegates and free balance -----

    /// Whether the signer is the owner of `escrow` (it pays from its wallet; anyone else acts
    /// as a delegate, paying from the escrow's free balance).
    pub async fn owns_escrow(&self, escrow: Address) -> Result<bool> {
        Ok(self.escrow(escrow).cspOwner().call().await? == self.address)
    }

    /// Grants `delegate` exactly `permissions` on `escrow` (the signer must own it);
    /// [`Permissions::NONE`] removes the delegate.
    pub async fn set_delegate(
        &self,
        escrow: Address,
        delegate: Address,
        permissions: Permissions,
    ) -> Result<TransactionReceipt> {
        confirm(
            self.escrow(escrow)
                .setDelegate(delegate, permissions.bits()),
        )
        .await
    }

    /// The permission bits `who` holds on `escrow` (0 when it is not a delegate; see
    /// [`Permissions::from_bits`]). What an oracle checks before accepting a change signed by a
    /// delegate key.
    pub async fn delegate_permissions(&self, escrow: Address, who: Address) -> Result<u8> {
        Ok(self.escrow(escrow).delegatePermissions(who).call().await?)
    }

    /// The delegates of `escrow`, in no particular order.
    pub async fn delegates(&self, escrow: Address) -> Result<Vec<Address>> {
        Ok(self.escrow(escrow).getDelegates().call().await?)
    }

    /// Approves `amount` USDC and adds it to the free balance of `escrow` (anyone may).
    pub async fn deposit(&self, escrow: Address, amount: U256) -> Result<TransactionReceipt> {
        confirm(self.usdc().approve(escrow, amount)).await?;
        confirm(self.escrow(escrow).deposit(amount)).await
    }

    /// Sends `amount` USDC of the free balance of `escrow` to the signer, its owner.
    pub async fn withdraw(&self, escrow: Address, amount: U256) -> Result<TransactionReceipt> {
        confirm(self.escrow(escrow).withdraw(amount)).await
    }

    /// The USDC of `escrow` not committed to a job: what its delegates can spend.
    pub async fn free_balance(&self, escrow: Address) -> Result<U256> {
        Ok(self.escrow(escrow).freeBalance().call().await?)
    }

    // ----- node owner -----

    /// Approves the current price and buys a licence; returns its id.
    pub async fn buy_licence(&self) -> Result<u64> {
        let deed = self.node_deed();
        let price = deed.currentPrice().call().await?;
        confirm(self.r1().approve(self.deployment.node_deed, price)).await?;
        let receipt = confirm(deed.buyLicence(price)).await?;
        emitted::<NodeDeed::LicenceBought>(&receipt, "LicenceBought")
            .map(|event| to_u64(event.licenceId))
    }

    /// What linking `node` to the signer's licence `licence_id` asks the node and an oracle
    /// to sign, good until `deadline` (unix seconds): with the chain's id and the node's nonce.
    pub async fn link_terms(
        &self,
        licence_id: u64,
        node: Address,
        deadline: u64,
    ) -> Result<LinkTerms> {
        self.link_terms_for(licence_id, self.address, node, deadline)
            .await
    }

    /// The same for licence `licence_id` of `owner` (what a node signs for its operator).
    pub async fn link_terms_for(
        &self,
        licence_id: u64,
        owner: Address,
        node: Address,
        deadline: u64,
    ) -> Result<LinkTerms> {
        let chain_id = self.provider.get_chain_id().await?;
        let nonce = self.node_deed().linkNonce(node).call().await?;
        Ok(LinkTerms {
            chain_id,
            node_deed: self.deployment.node_deed,
            licence_id,
            owner,
            node,
            nonce: to_u64(nonce),
            deadline,
        })
    }

    /// Links `node` to the signer's licence with the node's and an oracle's signatures.
    pub async fn link_node(
        &self,
        licence_id: u64,
        node: Address,
        proof: &LinkProof,
    ) -> Result<TransactionReceipt> {
        confirm(self.node_deed().linkNode(
            U256::from(licence_id),
            node,
            U256::from(proof.deadline),
            proof.node_signature.clone(),
            proof.oracle_signature.clone(),
        ))
        .await
    }

    /// Unlinks the node of the signer's licence (its earnings must be claimed first).
    pub async fn unlink_node(&self, licence_id: u64) -> Result<TransactionReceipt> {
        confirm(self.node_deed().unlinkNode(U256::from(licence_id))).await
    }

    /// USDC credited to `node` in every escrow and not claimed yet.
    pub async fn pending_rewards(&self, node: Address) -> Result<U256> {
        Ok(self.manager().pendingRewards(node).call().await?)
    }

    /// The R1 that `usdc` USDC would buy at the manager's swap venue now.
    pub async fn quote_usdc_to_r1(&self, usdc: U256) -> Result<U256> {
        let venue = self.manager().swap().call().await?;
        Ok(R1UsdcPool::new(venue, self.provider.clone())
            .quoteUsdcToR1(usdc)
            .call()
            .await?)
    }

    /// What claiming `nodes` would pay now: the USDC they are owed, the R1 the venue quotes for
    /// it, and the least R1 to accept, `slippage_bps` basis points below the quote (all zero
    /// when nothing is owed).
    pub async fn claim_terms(&self, nodes: &[Address], slippage_bps: u64) -> Result<ClaimTerms> {
        let mut owed = U256::ZERO;
        for node in nodes {
            owed += self.pending_rewards(*node).await?;
        }
        if owed.is_zero() {
            return Ok(ClaimTerms::default());
        }
        let quote = self.quote_usdc_to_r1(owed).await?;
        Ok(ClaimTerms {
            owed,
            quote,
            least: min_out(quote, slippage_bps),
        })
    }

    /// Claims the balances of the signer's `nodes`, accepting no less R1 than the venue's quote
    /// for their whole balance less `slippage_bps` basis points; returns (USDC claimed, R1
    /// received).
    pub async fn claim_rewards(
        &self,
        nodes: &[Address],
        slippage_bps: u64,
    ) -> Result<(U256, U256)> {
        let terms = self.claim_terms(nodes, slippage_bps).await?;
        let receipt = confirm(self.manager().claimRewards(nodes.to_vec(), terms.least)).await?;
        emitted::<PoAIManager::ClaimPaid>(&receipt, "ClaimPaid")
            .map(|event| (event.usdcAmount, event.r1Amount))
    }

    // ----- oracle -----

    /// Submits the node set this oracle sees running `job_id` (sorted here), with gas for the
    /// vote that decides even when its estimate only counts it (see [`vote_gas_headroom`]).
    pub async fn submit_node_update(&self, job_id: u64, nodes: &[Address]) -> Result<VoteOutcome> {
        let mut sorted = nodes.to_vec();
        sorted.sort();
        let involved = sorted.len();
        let manager = self.manager();
        let call = manager.submitNodeUpdate(U256::from(job_id), sorted);
        let estimate = call.estimate_gas().await?;
        let validated = self.job(job_id).await?.activeNodes.len();
        let gas = estimate.saturating_add(vote_gas_headroom(involved.max(validated)));
        let receipt = confirm(call.gas(gas)).await?;
        Ok(
            match receipt.decoded_log::<PoAIManager::NodeUpdateAccepted>() {
                Some(log) => VoteOutcome::Accepted(log.data.nodes.clone()),
                None => VoteOutcome::Pending,
            },
        )
    }

    /// Votes for this oracle's availability table of a finished epoch by its root
    /// ([`AvailabilityTable`]); the agreed table is recorded with
    /// [`Suite::record_availability_pages`].
    pub async fn submit_availability(
        &self,
        epoch: u64,
        availability: &[(Address, u8)],
    ) -> Result<TransactionReceipt> {
        let table = AvailabilityTable::new(epoch, availability.iter().copied());
        confirm(self.manager().submitAvailability(
            U256::from(epoch),
            table.root(),
            U256::from(table.rows()),
        ))
        .await
    }

    /// Records up to `limit` of the pages of `table` that the chain still misses, starting at
    /// page `from` and wrapping (oracles start apart so they rarely race for a page), each sent
    /// with [`page_gas_limit`] instead of an estimate. A page another oracle recorded meanwhile
    /// is skipped (its transaction reverts cheaply at the page's bit); a table other than the
    /// agreed one records nothing.
    pub async fn record_availability_pages(
        &self,
        table: &AvailabilityTable,
        from: usize,
        limit: usize,
    ) -> Result<PagesRecorded> {
        let manager = self.manager();
        let epoch = U256::from(table.epoch());
        let agreed = manager.agreedAvailability(epoch).call().await?;
        if agreed.root.is_zero() {
            return Ok(PagesRecorded::NotAgreed);
        }
        if agreed.root != table.root() {
            return Ok(PagesRecorded::OtherTable);
        }
        let words = manager.availabilityPagesRecorded(epoch).call().await?;
        let recorded = |page: usize| {
            words
                .get(page / 256)
                .is_some_and(|word| word.bit(page % 256))
        };
        let pages = table.pages();
        let missing: Vec<usize> = (0..pages)
            .map(|i| (from + i) % pages)
            .filter(|page| !recorded(*page))
            .collect();
        let mut sent = 0;
        for &page in missing.iter().take(limit) {
            let (nodes, bytes) = table.page(page);
            let call = manager
                .recordAvailabilityPage(
                    epoch,
                    U256::from(page),
                    nodes.to_vec(),
                    bytes.to_vec(),
                    table.proof(page),
                )
                .gas(page_gas_limit(nodes.len()));
            match confirm(call).await {
                Ok(_) => sent += 1,
                Err(e)
                    if e.revert::<PoAIManager::PoAIManagerErrors>()
                        .is_some_and(|r| {
                            matches!(r, PoAIManager::PoAIManagerErrors::PageAlreadyRecorded(_))
                        }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(PagesRecorded::Recorded {
            sent,
            left: missing.len().saturating_sub(limit),
        })
    }

    /// Swaps the queued 15 % share to R1 and burns it, accepting no less than the venue's quote
    /// less `slippage_bps` basis points; `None` when nothing is queued. Returns (USDC, R1) burned.
    pub async fn burn_pending_fees(&self, slippage_bps: u64) -> Result<Option<(U256, U256)>> {
        let manager = self.manager();
        let pending = manager.pendingBurnUsdc().call().await?;
        if pending.is_zero() {
            return Ok(None);
        }
        let least = min_out(self.quote_usdc_to_r1(pending).await?, slippage_bps);
        let receipt = confirm(manager.burnPendingFees(least)).await?;
        emitted::<PoAIManager::FeesBurned>(&receipt, "FeesBurned")
            .map(|event| Some((event.usdcAmount, event.r1Amount)))
    }

    /// USDC of the 15 % share queued for the next burn.
    pub async fn pending_burn(&self) -> Result<U256> {
        Ok(self.manager().pendingBurnUsdc().call().await?)
    }

    /// Allocates every finished, unallocated epoch across all escrows, one page of at most
    /// [`ALLOCATION_PAGE_JOBS`] jobs per transaction until the pass is finished (by this signer:
    /// when another oracle finishes it first, the next page is refused `EpochAlreadyAllocated`).
    pub async fn allocate_rewards(&self) -> Result<Allocation> {
        let manager = self.manager();
        loop {
            let page = manager.allocateRewardsToNodes(U256::from(ALLOCATION_PAGE_JOBS));
            let receipt = confirm(page).await?;
            if let Some(log) = receipt.decoded_log::<PoAIManager::RewardsAllocated>() {
                return Ok(Allocation {
                    from_epoch: to_u64(log.data.fromEpoch),
                    until_epoch: to_u64(log.data.untilEpoch),
                    usdc_burned: log.data.usdcBurned,
                });
            }
        }
    }

    /// Open jobs never validated on which `oracle` has not voted in the current round.
    pub async fn unvalidated_job_ids(&self, oracle: Address) -> Result<Vec<u64>> {
        let manager = self.manager();
        let mut ids = Vec::new();
        let mut start = U256::ZERO;
        loop {
            let page = manager
                .getUnvalidatedJobIds(oracle, start, U256::from(VIEW_PAGE_JOBS))
                .call()
                .await?;
            ids.extend(page.ids.into_iter().map(to_u64));
            if page.next.is_zero() {
                return Ok(ids);
            }
            start = page.next;
        }
    }

    /// Every open job that has ended and been allocated to its last epoch, by ascending id.
    pub async fn closable_job_ids(&self) -> Result<Vec<u64>> {
        let manager = self.manager();
        let mut ids = Vec::new();
        let mut start = U256::ZERO;
        loop {
            let page = manager
                .getClosableJobIds(start, U256::from(VIEW_PAGE_JOBS))
                .call()
                .await?;
            ids.extend(page.ids.into_iter().map(to_u64));
            if page.next.is_zero() {
                ids.sort_unstable();
                ids.dedup();
                return Ok(ids);
            }
            start = page.next;
        }
    }

    /// The lowest-id job that can be closed, if any.
    pub async fn first_closable_job_id(&self) -> Result<Option<u64>> {
        Ok(self.closable_job_ids().await?.first().copied())
    }

    /// The earliest unix second a new node set of `job_id` may be submitted (0: now), after the
    /// manager's decision cooldown.
    pub async fn decision_ready_at(&self, job_id: u64) -> Result<u64> {
        Ok(to_u64(
            self.manager()
                .decisionReadyAt(U256::from(job_id))
                .call()
                .await?,
        ))
    }
}

/// What a claim would pay now ([`Suite::claim_terms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClaimTerms {
    /// USDC the nodes are owed.
    pub owed: U256,
    /// R1 the swap venue quotes for it.
    pub quote: U256,
    /// The least R1 the claim accepts.
    pub least: U256,
}

/// The slippage the oracles and `r1ctl licence claim` allow a swap by default: 1 %.
pub const DEFAULT_SLIPPAGE_BPS: u64 = 100;

/// The least output to accept for a swap quoted at `quote`, `slippage_bps` basis points below
/// it (never zero: a zero bound accepts any sandwich).
pub fn min_out(quote: U256, slippage_bps: u64) -> U256 {
    let kept = U256::from(10_000u64.saturating_sub(slippage_bps));
    (quote * kept / U256::from(10_000u64)).max(U256::from(1u64))
}

/// Jobs one allocation transaction settles: about 35k gas each, so a page stays near 7.2M gas,
/// under a quarter of a 30M block, however many jobs are open.
pub const ALLOCATION_PAGE_JOBS: u64 = 200;

/// Open jobs one view call scans: ids and a round lookup (or an escrow call) each, well inside
/// a node's default `eth_call` gas cap.
pub const VIEW_PAGE_JOBS: u64 = 500;

/// The event `E` (named `name` for the error) that `receipt`'s transaction must have emitted.
pub(crate) fn emitted<E: alloy::sol_types::SolEvent>(
    receipt: &TransactionReceipt,
    name: &'static str,
) -> Result<E> {
    receipt
        .decoded_log::<E>()
        .map(|log| log.data)
        .ok_or(Error::MissingEvent {
            tx: receipt.transaction_hash,
            event: name,
        })
}

/// Epochs, ids and counts fit in 64 bits; saturate rather than wrap if a contract ever says otherwise.
pub(crate) fn to_u64(value: U256) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::{ParsePermissionsError, Permissions, U256, min_out};

    #[test]
    fn the_least_output_is_the_quote_less_the_slippage_and_never_zero() {
        assert_eq!(min_out(U256::from(10_000u64), 100), U256::from(9_900u64));
        assert_eq!(min_out(U256::from(10_000u64), 0), U256::from(10_000u64));
        assert_eq!(min_out(U256::from(10u64), 10_000), U256::from(1u64));
        assert_eq!(min_out(U256::ZERO, 100), U256::from(1u64));
    }

    #[test]
    fn permissions_match_the_escrow_bits() {
        assert_eq!(Permissions::CREATE.bits(), 1);
        assert_eq!(Permissions::EXTEND_DURATION.bits(), 2);
        assert_eq!(Permissions::EXTEND_NODES.bits(), 4);
        assert_eq!(Permissions::REDEEM.bits(), 8);
        assert_eq!(
            Permissions::CREATE
                | Permissions::EXTEND_DURATION
                | Permissions::EXTEND_NODES
                | Permissions::REDEEM,
            Permissions::ALL
        );
        assert_eq!(Permissions::from_bits(5).map(Permissions::bits), Some(5));
        assert_eq!(Permissions::from_bits(16), None);
        assert_eq!(Permissions::from_bits(0), Some(Permissions::NONE));
    }

    #[test]
    fn permissions_contain_subsets_only() {
        let granted = Permissions::CREATE | Permissions::EXTEND_NODES;
        assert!(granted.contains(Permissions::CREATE));
        assert!(granted.contains(Permissions::EXTEND_NODES));
        assert!(granted.contains(granted));
        assert!(granted.contains(Permissions::NONE));
        assert!(!granted.contains(Permissions::EXTEND_DURATION));
        assert!(!granted.contains(Permissions::CREATE | Permissions::REDEEM));
        assert!(Permissions::NONE.is_empty() && !granted.is_empty());
    }

    #[test]
    fn permissions_display_as_a_comma_list_in_bit_order() {
        assert_eq!(
            (Permissions::EXTEND_DURATION | Permissions::CREATE).to_string(),
            "create,extend-duration"
        );
        assert_eq!(
            Permissions::ALL.to_string(),
            "create,extend-duration,extend-nodes,redeem"
        );
        assert_eq!(Permissions::NONE.to_string(), "none");
    }

    #[test]
    fn permissions_parse_what_they_display() {
        for bits in 0..=15 {
            let permissions = Permissions::from_bits(bits).unwrap_or_default();
            assert_eq!(permissions.to_string().parse(), Ok(permissions));
        }
        assert_eq!(
            " extend-nodes , create,create".parse(),
            Ok(Permissions::CREATE | Permissions::EXTEND_NODES)
        );
        assert_eq!("all".parse(), Ok(Permissions::ALL));
        assert_eq!(" none ".parse(), Ok(Permissions::NONE));
    }

    #[test]
    fn permissions_refuse_unknown_names() {
        for bad in ["", "create,", "Create", "extend", "create,withdraw", "1"] {
            let Err(err) = bad.parse::<Permissions>() else {
                panic!("{bad:?} parsed");
            };
            assert!(
                err.to_string().contains("unknown permission"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            "create,withdraw".parse::<Permissions>(),
            Err(ParsePermissionsError("withdraw".to_string()))
        );
    }
}
