// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {BeaconProxy} from "@openzeppelin/contracts/proxy/beacon/BeaconProxy.sol";
import {IR1} from "./interfaces/IR1.sol";
import {IUsdcToR1Swap} from "./interfaces/IUsdcToR1Swap.sol";
import {IEscrowManager} from "./interfaces/IEscrowManager.sol";
import {ILicenceManager} from "./interfaces/ILicenceManager.sol";
import {CspEscrow} from "./CspEscrow.sol";
import {NodeDeed} from "./NodeDeed.sol";
import {OpenJobs} from "./OpenJobs.sol";

/// @title The Proof-of-AI manager
/// @notice Governance is split in two: the owner (a timelock on public networks) changes the
/// oracle set, the swap venue and the guardian, each change visible for the timelock's delay
/// before it takes effect; the guardian acts at once where waiting would hurt — the price
/// table, the blacklist, suspensions, deploying one escrow per CSP behind the shared beacon.
/// Oracles agree on each job's node set and on each epoch's availability table under the
/// quorum rule fixed at deployment (`Quorum`); a job's node set changes at most once per `decisionCooldown` (closing
/// excepted). Any oracle allocates a finished epoch across all escrows (once per epoch, in
/// pages of bounded size). The 15 % burn share is queued (`pendingBurnUsdc`) and swapped to R1
/// and burned by an oracle in its own transaction with a minimum output it read from the venue
/// (`burnPendingFees`), so a failing or manipulated swap never blocks node updates, closures or
/// allocation. Node owners claim their nodes' balances as R1, with their own minimum output.
contract PoAIManager is Ownable, IEscrowManager, ILicenceManager {
    using SafeERC20 for IERC20;
    using OpenJobs for OpenJobs.Set;

    /// @notice Rows of an availability table recorded in one transaction (a page mints and
    /// updates service records for this many nodes, well inside a block's gas).
    uint256 public constant AVAILABILITY_PAGE_ROWS = 128;

    /// @notice When a round decides. `Reference`: once more than half of the n oracles have
    /// submitted, if the most common proposal has ⌊n/3⌋+1 votes (Ratio1's rule: live while
    /// ⌈n/2⌉−1 oracles are down, but ⌊n/3⌋+1 colluding oracles decide alone). `Byzantine`: when
    /// one proposal has ⌊2n/3⌋+1 votes (no coalition of ⌊2n/3⌋ decides alone, and with fewer
    /// than n/3 liars a decision is what most honest oracles saw; live only while ⌈n/3⌉−1 are
    /// down). The property test of `r1_contracts::quorum` states both for n = 3…10.
    enum Quorum {
        Reference,
        Byzantine
    }

    /// @notice What a deployment is parameterised by besides its contracts.
    struct Settings {
        /// @dev Start of epoch 0, unix seconds (not in the future).
        uint256 genesisTimestamp;
        /// @dev Epoch length, seconds (mainnet 86,400).
        uint256 epochSeconds;
        /// @dev Seconds after a job's node-set decision before the next one (mainnet 300).
        uint256 decisionCooldown;
        /// @dev Seconds after its request before a job never started may be redeemed (mainnet 3,600).
        uint256 redeemDelay;
        /// @dev The decision rule of every round.
        Quorum quorum;
        /// @dev Epochs without an allocation after which a CSP may take its jobs back (mainnet 7).
        uint256 exitAfterEpochs;
    }

    /// @notice A finished epoch's allocation in progress (`untilEpoch` 0 = none): which escrow
    /// it is in, where in that escrow's open jobs, and what it has burned so far.
    struct AllocationPass {
        uint64 untilEpoch;
        uint64 escrowIndex;
        uint128 burned;
        uint256 jobCursor;
    }

    /// @notice A node's standing as an oracle reads it before admitting the node (licenceId 0:
    /// not linked, every other field zero).
    struct NodeStanding {
        uint256 licenceId;
        address owner;
        bool blacklisted;
        uint256 suspendedUntilEpoch;
        bool forHire;
    }

    /// @notice An availability table by its Merkle root, and how many of its pages are still
    /// to be recorded (counted once the table is agreed).
    struct AvailabilityTable {
        bytes32 root;
        uint32 rows;
        uint32 pagesLeft;
    }

    /// @notice One consensus round.
    struct Round {
        uint64 epoch;
        uint32 submissions;
        uint32 bestCount;
        bytes32 bestHash;
    }

    IERC20 private immutable usdcToken;
    /// @notice The R1 token.
    IR1 public immutable r1;
    /// @notice The Node Deed licences.
    NodeDeed public immutable nodeDeed;
    /// @notice The beacon every escrow proxy follows.
    address public immutable beacon;
    /// @notice Start of epoch 0, unix seconds.
    uint256 public immutable genesisTimestamp;
    /// @notice Epoch length, seconds.
    uint256 public immutable epochSeconds;
    /// @notice Seconds after a job's node-set decision before the next one may be submitted.
    uint256 public immutable decisionCooldown;
    /// @notice The rule every consensus round decides by.
    Quorum public immutable quorum;
    /// @inheritdoc IEscrowManager
    uint256 public immutable redeemDelay;
    /// @notice Epochs without an allocation after which the protocol counts as stalled and CSPs
    /// may take their jobs back (`isStalled`).
    uint256 public immutable exitAfterEpochs;
    /// @notice Where USDC is swapped to R1.
    IUsdcToR1Swap public swap;

    address[] private oracles;
    /// @notice Whether an address is an active oracle.
    mapping(address => bool) public isOracle;
    /// @inheritdoc IEscrowManager
    mapping(uint8 => uint256) public jobTypePrice;
    /// @notice Nodes governance has blacklisted.
    mapping(address => bool) public isBlacklisted;

    address[] private escrows;
    /// @notice The escrow of each CSP (zero = none).
    mapping(address => address) public escrowOfCsp;
    /// @notice Whether an address is an escrow deployed here.
    mapping(address => bool) public isEscrow;
    /// @notice The escrow that holds each job.
    mapping(uint256 => address) public escrowOfJob;
    /// @notice Jobs created so far (ids are 1..jobCount).
    uint256 public jobCount;
    OpenJobs.Set private openJobs;
    /// @notice Whether a job has had a validated node set.
    mapping(uint256 => bool) public jobStarted;
    /// @notice Epochs before this one have been allocated.
    uint256 public allocatedUntilEpoch;
    /// @notice USDC swapped to R1 and burned, ever (queued USDC counts once it is burned).
    uint256 public totalUsdcBurned;
    /// @notice R1 burned from PoAI fees, ever.
    uint256 public totalR1Burned;

    mapping(bytes32 => Round) private rounds;
    mapping(bytes32 => mapping(address => bool)) private voted;
    mapping(bytes32 => mapping(bytes32 => uint256)) private votesFor;
    /// @notice The current round number of each job's node-set consensus.
    mapping(uint256 => uint256) public jobRound;
    mapping(bytes32 => bool) private proposalKnown;
    mapping(bytes32 => address[]) private proposalNodes;
    mapping(bytes32 => AvailabilityTable) private proposalTable;
    mapping(address => address[]) private nodeEscrows;
    mapping(address => mapping(address => bool)) private nodeInEscrow;
    /// @notice When each job's node set was last decided (unix seconds; 0 = never).
    mapping(uint256 => uint256) public lastDecisionAt;
    /// @notice The first epoch each node may work again (suspended while `currentEpoch()` is lower).
    mapping(address => uint256) public suspendedUntilEpoch;
    /// @notice The allocation pass in progress, if any.
    AllocationPass public allocationPass;
    /// @notice USDC of the 15 % share queued for the next `burnPendingFees`.
    uint256 public pendingBurnUsdc;
    /// @notice Who acts for governance at once: prices, blacklist, suspensions, escrows.
    address public guardian;
    /// @notice Each epoch's agreed availability table (root zero = none agreed yet).
    mapping(uint256 => AvailabilityTable) public agreedAvailability;
    mapping(uint256 => mapping(uint256 => uint256)) private availabilityPageBits;

    /// @notice The caller is not an active oracle.
    error NotOracle(address caller);
    /// @notice The caller is not an escrow deployed by this manager.
    error NotEscrow(address caller);
    /// @notice The address is already an oracle.
    error AlreadyOracle(address oracle);
    /// @notice The CSP already has an escrow.
    error EscrowExists(address csp, address escrow);
    /// @notice The genesis is in the future or the epoch length is zero.
    error InvalidEpochConfig();
    /// @notice The job does not exist.
    error UnknownJob(uint256 jobId);
    /// @notice The job is closed.
    error JobClosed(uint256 jobId);
    /// @notice Node lists must be sorted ascending without duplicates.
    error NodesNotSorted();
    /// @notice The node has no licence.
    error NodeNotLicensed(address node);
    /// @notice The node is blacklisted.
    error NodeIsBlacklisted(address node);
    /// @notice The proposal names more nodes than the job pays for.
    error TooManyNodes(uint256 proposed, uint256 requested);
    /// @notice The oracle already submitted in this round.
    error AlreadyVoted(bytes32 round, address oracle);
    /// @notice This epoch has already been allocated (or has not ended).
    error EpochAlreadyAllocated(uint256 epoch);
    /// @notice The epoch has not ended yet.
    error EpochNotEnded(uint256 epoch);
    /// @notice The oracles already agreed on this epoch's availability.
    error AvailabilityAlreadyAgreed(uint256 epoch);
    /// @notice No availability table of this epoch is agreed yet.
    error AvailabilityNotAgreed(uint256 epoch);
    /// @notice The agreed table of this epoch has only `pages` pages.
    error NoSuchPage(uint256 epoch, uint256 page, uint256 pages);
    /// @notice This page of the epoch's availability is already recorded.
    error PageAlreadyRecorded(uint256 epoch, uint256 page);
    /// @notice The page and proof do not lead to the agreed table's root.
    error PageNotInTable(uint256 epoch, uint256 page);
    /// @notice The node and availability arrays differ in length.
    error LengthMismatch();
    /// @notice The caller does not own the licence of the node.
    error NotNodeOwner(address node, address caller);
    /// @notice There is nothing to claim.
    error NothingToClaim();
    /// @notice The job's last decision was under `decisionCooldown` ago: submit again at `readyAt`.
    error DecisionCooldown(uint256 jobId, uint256 readyAt);
    /// @notice The node's licence is a Master or Genesis Node Deed: it mines, it takes no jobs.
    error NodeNotForHire(address node);
    /// @notice The node is suspended until `untilEpoch` starts.
    error NodeIsSuspended(address node, uint256 untilEpoch);
    /// @notice A page must hold at least one item.
    error EmptyPage();
    /// @notice The job is not the calling escrow's open, unstarted job.
    error NotUnstarted(uint256 jobId);
    /// @notice No USDC is queued for burning.
    error NothingToBurn();
    /// @notice Only the guardian (or the owner) may do this.
    error NotGuardian(address caller);
    /// @notice The protocol is not stalled: allocation ran within `exitAfterEpochs` epochs.
    error NotStalled(uint256 allocatedUntilEpoch, uint256 exitFromEpoch);
    /// @notice A burn must name the least R1 it accepts (a zero bound invites a sandwich).
    error NoSlippageBound();

    /// @notice Governance added an oracle.
    event OracleAdded(address indexed oracle);
    /// @notice Governance removed an oracle.
    event OracleRemoved(address indexed oracle);
    /// @notice Governance set a job type's price per node per epoch.
    event JobTypePriceSet(uint8 indexed jobType, uint256 pricePerEpoch);
    /// @notice Governance blacklisted or cleared a node.
    event BlacklistSet(address indexed node, bool blacklisted);
    /// @notice Governance changed the swap venue.
    event SwapSet(address swap);
    /// @notice The owner appointed a new guardian.
    event GuardianSet(address indexed guardian);
    /// @notice A CSP took back a job of the stalled protocol (`JobClosed` follows in its escrow).
    event StalledJobReleased(uint256 indexed jobId, address indexed escrow);
    /// @notice Governance suspended `node` until epoch `untilEpoch` starts (a past one lifts it).
    event NodeSuspended(address indexed node, uint256 untilEpoch);
    /// @notice A job's escrow redeemed it unstarted; it left the open set.
    event UnstartedJobReleased(uint256 indexed jobId, address indexed escrow);
    /// @notice An escrow was deployed for a CSP.
    event EscrowDeployed(address indexed csp, address escrow);
    /// @notice An oracle submitted a node set for a job.
    event NodeUpdateSubmitted(uint256 indexed jobId, uint256 indexed round, address indexed oracle, bytes32 proposal);
    /// @notice The oracles agreed on a job's node set (empty = closed).
    /// @notice A vote of a batch (`submitNodeUpdates`) the chain's timing made moot, skipped
    /// instead of failing the batch: `reason` is 1 = the job is closed, 2 = its decision
    /// cooldown runs (until `readyAt`), 3 = this oracle's vote of the round is already counted.
    event NodeUpdateSkipped(uint256 indexed jobId, address indexed oracle, uint8 reason, uint256 readyAt);
    event NodeUpdateAccepted(uint256 indexed jobId, uint256 indexed round, bytes32 proposal, address[] nodes);
    /// @notice Enough oracles submitted but no proposal has enough votes yet.
    event ConsensusNotReached(bytes32 indexed round, uint256 submissions, uint256 bestCount);
    /// @notice An oracle submitted an availability table.
    event AvailabilitySubmitted(uint256 indexed epoch, address indexed oracle, bytes32 proposal);
    /// @notice The oracles agreed on an epoch's availability table.
    event AvailabilityAccepted(uint256 indexed epoch, bytes32 proposal);
    /// @notice An oracle recorded one page (`rows` nodes) of an epoch's agreed availability.
    event AvailabilityPageRecorded(uint256 indexed epoch, uint256 page, address indexed oracle, uint256 rows);
    /// @notice Epochs `[fromEpoch, untilEpoch)` were allocated across all escrows; `usdcBurned`
    /// sums the share every page of the pass queued for burning.
    event RewardsAllocated(uint256 fromEpoch, uint256 untilEpoch, address indexed oracle, uint256 usdcBurned);
    /// @notice One page of the allocation up to `untilEpoch`: `jobsVisited` jobs settled and
    /// `usdcBurned` of their 15 % share queued for burning in this transaction.
    event AllocationPage(uint256 untilEpoch, address indexed oracle, uint256 jobsVisited, uint256 usdcBurned);
    /// @notice USDC of the 15 % share was queued for burning.
    event BurnQueued(uint256 usdcAmount);
    /// @notice USDC was swapped to R1 and the R1 burned.
    event FeesBurned(uint256 usdcAmount, uint256 r1Amount);
    /// @notice A node owner claimed a node's rewards.
    event RewardsClaimed(address indexed node, address indexed owner, uint256 usdcAmount);
    /// @notice The claimed USDC was swapped to R1 for the owner.
    event ClaimPaid(address indexed owner, uint256 usdcAmount, uint256 r1Amount);

    modifier onlyOracle() {
        if (!isOracle[msg.sender]) revert NotOracle(msg.sender);
        _;
    }

    modifier onlyGuardian() {
        if (msg.sender != guardian && msg.sender != owner()) revert NotGuardian(msg.sender);
        _;
    }

    modifier onlyEscrow() {
        if (!isEscrow[msg.sender]) revert NotEscrow(msg.sender);
        _;
    }

    constructor(
        address initialOwner,
        IERC20 usdc_,
        IR1 r1_,
        NodeDeed nodeDeed_,
        IUsdcToR1Swap swap_,
        address beacon_,
        Settings memory settings
    ) Ownable(initialOwner) {
        if (settings.epochSeconds == 0 || settings.genesisTimestamp > block.timestamp) revert InvalidEpochConfig();
        usdcToken = usdc_;
        r1 = r1_;
        nodeDeed = nodeDeed_;
        swap = swap_;
        beacon = beacon_;
        genesisTimestamp = settings.genesisTimestamp;
        epochSeconds = settings.epochSeconds;
        decisionCooldown = settings.decisionCooldown;
        quorum = settings.quorum;
        redeemDelay = settings.redeemDelay;
        exitAfterEpochs = settings.exitAfterEpochs;
        guardian = initialOwner;
        allocatedUntilEpoch = (block.timestamp - settings.genesisTimestamp) / settings.epochSeconds;
    }

    // ----- governance -----

    /// @notice Adds an oracle.
    function addOracle(address oracle) external onlyOwner {
        if (isOracle[oracle]) revert AlreadyOracle(oracle);
        isOracle[oracle] = true;
        oracles.push(oracle);
        emit OracleAdded(oracle);
    }

    /// @notice Removes an oracle.
    function removeOracle(address oracle) external onlyOwner {
        if (!isOracle[oracle]) revert NotOracle(oracle);
        isOracle[oracle] = false;
        for (uint256 i = 0; i < oracles.length; i++) {
            if (oracles[i] == oracle) {
                oracles[i] = oracles[oracles.length - 1];
                oracles.pop();
                break;
            }
        }
        emit OracleRemoved(oracle);
    }

    /// @notice Appoints the guardian (the zero address leaves only the owner).
    function setGuardian(address guardian_) external onlyOwner {
        guardian = guardian_;
        emit GuardianSet(guardian_);
    }

    /// @notice Sets the price per node per epoch of a job type (0 withdraws it).
    function setJobTypePrice(uint8 jobType, uint256 pricePerEpoch) external onlyGuardian {
        jobTypePrice[jobType] = pricePerEpoch;
        emit JobTypePriceSet(jobType, pricePerEpoch);
    }

    /// @notice Blacklists (or clears) a node: blacklisted nodes are never validated nor paid.
    function setBlacklisted(address node, bool blacklisted) external onlyGuardian {
        isBlacklisted[node] = blacklisted;
        emit BlacklistSet(node, blacklisted);
    }

    /// @notice Suspends `node` until epoch `untilEpoch` starts: meanwhile no node set may name it
    /// and it mints no PoA. A past or current epoch lifts a suspension.
    function suspend(address node, uint256 untilEpoch) external onlyGuardian {
        suspendedUntilEpoch[node] = untilEpoch;
        emit NodeSuspended(node, untilEpoch);
    }

    /// @notice Replaces the swap venue.
    function setSwap(IUsdcToR1Swap swap_) external onlyOwner {
        swap = swap_;
        emit SwapSet(address(swap_));
    }

    /// @notice Deploys the escrow proxy of `csp`, owned by `csp`.
    function deployEscrow(address csp) external onlyGuardian returns (address escrow) {
        address existing = escrowOfCsp[csp];
        if (existing != address(0)) revert EscrowExists(csp, existing);
        escrow = address(new BeaconProxy(beacon, abi.encodeCall(CspEscrow.initialize, (csp, IEscrowManager(this)))));
        escrowOfCsp[csp] = escrow;
        isEscrow[escrow] = true;
        escrows.push(escrow);
        emit EscrowDeployed(csp, escrow);
    }

    // ----- views -----

    /// @inheritdoc IEscrowManager
    function usdc() external view returns (IERC20) {
        return usdcToken;
    }

    /// @inheritdoc IEscrowManager
    function currentEpoch() public view returns (uint256) {
        return (block.timestamp - genesisTimestamp) / epochSeconds;
    }

    /// @notice The active oracles.
    function getOracles() external view returns (address[] memory) {
        return oracles;
    }

    /// @notice Every escrow deployed.
    function getEscrows() external view returns (address[] memory) {
        return escrows;
    }

    /// @notice How many jobs are open.
    function openJobCount() external view returns (uint256) {
        return openJobs.length();
    }

    /// @notice Up to `limit` open job ids from index `start` of the open set, and the index of
    /// the next page (0 = none). Jobs closing between pages may shift one id past a reader.
    function getOpenJobIds(uint256 start, uint256 limit) external view returns (uint256[] memory ids, uint256 next) {
        uint256 end;
        (end, next) = _page(start, limit);
        ids = new uint256[](end - start);
        for (uint256 i = start; i < end; i++) {
            ids[i - start] = openJobs.ids[i];
        }
    }

    /// @notice Of the open jobs at indexes `[start, start + limit)`, those never validated on
    /// which `oracle` has not voted in the current round; and the index of the next page (0 = none).
    function getUnvalidatedJobIds(address oracle, uint256 start, uint256 limit)
        external
        view
        returns (uint256[] memory ids, uint256 next)
    {
        uint256 end;
        (end, next) = _page(start, limit);
        uint256 epoch = currentEpoch();
        uint256[] memory found = new uint256[](end - start);
        uint256 count = 0;
        for (uint256 i = start; i < end; i++) {
            uint256 jobId = openJobs.ids[i];
            if (jobStarted[jobId]) continue;
            bytes32 key = _roundKey(jobId, jobRound[jobId]);
            Round storage round = rounds[key];
            bool votedNow = round.submissions > 0 && round.epoch == epoch && voted[key][oracle];
            if (!votedNow) found[count++] = jobId;
        }
        ids = _prefix(found, count);
    }

    /// @notice Of the open jobs at indexes `[start, start + limit)`, those that have ended and
    /// been allocated to their last epoch; and the index of the next page (0 = none).
    function getClosableJobIds(uint256 start, uint256 limit) external view returns (uint256[] memory ids, uint256 next) {
        uint256 end;
        (end, next) = _page(start, limit);
        uint256[] memory found = new uint256[](end - start);
        uint256 count = 0;
        for (uint256 i = start; i < end; i++) {
            uint256 jobId = openJobs.ids[i];
            if (CspEscrow(escrowOfJob[jobId]).isClosable(jobId)) found[count++] = jobId;
        }
        ids = _prefix(found, count);
    }

    /// @notice Whether no allocation ran for `exitAfterEpochs` epochs: the oracles are gone or
    /// stuck, and each CSP may take its open jobs back (`CspEscrow.exitStalledJob`).
    function isStalled() public view returns (bool) {
        return currentEpoch() >= allocatedUntilEpoch + exitAfterEpochs;
    }

    /// @notice Whether `node` is suspended in the epoch in progress.
    function isSuspended(address node) public view returns (bool) {
        return currentEpoch() < suspendedUntilEpoch[node];
    }

    /// @notice The earliest time a new node set of `jobId` may be submitted (0 = now).
    function decisionReadyAt(uint256 jobId) public view returns (uint256) {
        uint256 last = lastDecisionAt[jobId];
        return last == 0 ? 0 : last + decisionCooldown;
    }

    /// @notice Submissions a round needs before it may decide, with `n` oracles.
    function submissionsNeeded(uint256 n) public view returns (uint256) {
        return quorum == Quorum.Reference ? n / 2 + 1 : (2 * n) / 3 + 1;
    }

    /// @notice Votes the most common proposal needs for a round to decide, with `n` oracles.
    function agreementNeeded(uint256 n) public view returns (uint256) {
        return quorum == Quorum.Reference ? n / 3 + 1 : (2 * n) / 3 + 1;
    }

    /// @notice The escrows where `node` has ever been validated.
    function getNodeEscrows(address node) external view returns (address[] memory) {
        return nodeEscrows[node];
    }

    /// @notice The standing of each of `nodes`, in one call: an oracle tracking thousands of
    /// nodes reads them in pages instead of five calls a node.
    function nodeStandings(address[] calldata nodes) external view returns (NodeStanding[] memory standings) {
        standings = new NodeStanding[](nodes.length);
        for (uint256 i = 0; i < nodes.length; i++) {
            address node = nodes[i];
            uint256 licenceId = nodeDeed.licenceOfNode(node);
            if (licenceId == 0) continue;
            standings[i] = NodeStanding({
                licenceId: licenceId,
                owner: nodeDeed.ownerOf(licenceId),
                blacklisted: isBlacklisted[node],
                suspendedUntilEpoch: suspendedUntilEpoch[node],
                forHire: nodeDeed.forHire(node)
            });
        }
    }

    // ----- escrow hooks -----

    /// @inheritdoc IEscrowManager
    function registerJob() external onlyEscrow returns (uint256 jobId) {
        jobId = ++jobCount;
        escrowOfJob[jobId] = msg.sender;
        openJobs.add(jobId);
    }

    /// @inheritdoc IEscrowManager
    function releaseUnstartedJob(uint256 jobId) external onlyEscrow {
        if (escrowOfJob[jobId] != msg.sender || !openJobs.contains(jobId) || jobStarted[jobId]) {
            revert NotUnstarted(jobId);
        }
        openJobs.remove(jobId);
        emit UnstartedJobReleased(jobId, msg.sender);
    }

    /// @inheritdoc IEscrowManager
    function releaseStalledJob(uint256 jobId) external onlyEscrow {
        if (escrowOfJob[jobId] != msg.sender || !openJobs.contains(jobId)) revert JobClosed(jobId);
        if (!isStalled()) revert NotStalled(allocatedUntilEpoch, allocatedUntilEpoch + exitAfterEpochs);
        openJobs.remove(jobId);
        emit StalledJobReleased(jobId, msg.sender);
    }

    /// @inheritdoc IEscrowManager
    function burnUsdc(uint256 amount) external onlyEscrow {
        _queueBurn(amount);
    }

    // ----- oracle consensus -----

    /// @notice Submits the node set this oracle sees running `jobId` (sorted ascending; empty
    /// closes the job). A non-empty set is refused within `decisionCooldown` of the job's last
    /// decision; closing is never delayed.
    function submitNodeUpdate(uint256 jobId, address[] calldata nodes) external onlyOracle {
        _submitNodeUpdate(jobId, nodes);
    }

    /// @notice Submits several node-set votes in one transaction, each as `submitNodeUpdate`
    /// would. A vote made moot by timing (the job closed, its cooldown running, this oracle's
    /// vote of the round counted) is skipped with `NodeUpdateSkipped`; any other refusal fails
    /// the whole batch.
    function submitNodeUpdates(uint256[] calldata jobIds, address[][] calldata nodeSets) external onlyOracle {
        if (jobIds.length != nodeSets.length) revert LengthMismatch();
        for (uint256 i = 0; i < jobIds.length; i++) {
            (uint8 reason, uint256 readyAt) = _momentarySkip(jobIds[i], nodeSets[i].length);
            if (reason != 0) {
                emit NodeUpdateSkipped(jobIds[i], msg.sender, reason, readyAt);
            } else {
                _submitNodeUpdate(jobIds[i], nodeSets[i]);
            }
        }
    }

    /// Why a vote on `jobId` for `nodeCount` nodes would be moot now (0: it is not):
    /// 1 the job is closed, 2 its decision cooldown runs until `readyAt`, 3 this oracle's vote of
    /// the round is already counted.
    function _momentarySkip(uint256 jobId, uint256 nodeCount) private view returns (uint8 reason, uint256 readyAt) {
        if (escrowOfJob[jobId] == address(0)) return (0, 0);
        if (!openJobs.contains(jobId)) return (1, 0);
        if (nodeCount != 0) {
            readyAt = decisionReadyAt(jobId);
            if (block.timestamp < readyAt) return (2, readyAt);
        }
        (, bytes32 key) = _openRound(jobId);
        if (voted[key][msg.sender]) return (3, 0);
        return (0, 0);
    }

    /// The round a vote on `jobId` counts in now: the job's current round, or the next
    /// one when the current round has votes from an earlier epoch.
    function _openRound(uint256 jobId) private view returns (uint256 roundId, bytes32 key) {
        roundId = jobRound[jobId];
        key = _roundKey(jobId, roundId);
        if (rounds[key].submissions > 0 && rounds[key].epoch != currentEpoch()) {
            roundId += 1;
            key = _roundKey(jobId, roundId);
        }
    }

    function _submitNodeUpdate(uint256 jobId, address[] calldata nodes) private {
        address escrow = escrowOfJob[jobId];
        if (escrow == address(0)) revert UnknownJob(jobId);
        if (!openJobs.contains(jobId)) revert JobClosed(jobId);
        if (nodes.length != 0) {
            uint256 readyAt = decisionReadyAt(jobId);
            if (block.timestamp < readyAt) revert DecisionCooldown(jobId, readyAt);
        }
        _checkNodes(nodes);
        uint256 requested = CspEscrow(escrow).getJob(jobId).numberOfNodesRequested;
        if (nodes.length > requested) revert TooManyNodes(nodes.length, requested);

        uint256 epoch = currentEpoch();
        (uint256 roundId, bytes32 key) = _openRound(jobId);
        if (roundId != jobRound[jobId]) jobRound[jobId] = roundId;
        bytes32 proposal = keccak256(abi.encodePacked(nodes));
        if (!proposalKnown[proposal]) {
            proposalKnown[proposal] = true;
            proposalNodes[proposal] = nodes;
        }
        emit NodeUpdateSubmitted(jobId, roundId, msg.sender, proposal);
        (bool decided, bytes32 winner) = _vote(key, epoch, proposal);
        if (!decided) return;
        jobRound[jobId] = roundId + 1;
        lastDecisionAt[jobId] = block.timestamp;
        _applyNodeUpdate(jobId, roundId, escrow, winner);
    }

    /// @notice Submits this oracle's availability table of a finished epoch by its root: the
    /// table (nodes sorted ascending, one byte 0..255 per node, `rows` in all) is cut into pages
    /// of `AVAILABILITY_PAGE_ROWS` rows, and `root` is the Merkle root of their hashes
    /// (`availabilityPageHash`, `availabilityRoot`). A vote costs the same at 10 or 10,000
    /// nodes; once a root is agreed, oracles record its pages (`recordAvailabilityPage`).
    function submitAvailability(uint256 epoch, bytes32 root, uint256 rows) external onlyOracle {
        if (epoch >= currentEpoch()) revert EpochNotEnded(epoch);
        if (agreedAvailability[epoch].root != bytes32(0)) revert AvailabilityAlreadyAgreed(epoch);
        if (rows == 0 || rows > type(uint32).max || root == bytes32(0)) revert EmptyPage();
        bytes32 key = keccak256(abi.encode("availability", epoch));
        bytes32 proposal = keccak256(abi.encode("availability", root, rows));
        if (!proposalKnown[proposal]) {
            proposalKnown[proposal] = true;
            proposalTable[proposal] = AvailabilityTable(root, uint32(rows), 0);
        }
        emit AvailabilitySubmitted(epoch, msg.sender, proposal);
        (bool decided, bytes32 winner) = _vote(key, epoch, proposal);
        if (!decided) return;
        AvailabilityTable memory table = proposalTable[winner];
        table.pagesLeft = uint32(_availabilityPages(table.rows));
        agreedAvailability[epoch] = table;
        emit AvailabilityAccepted(epoch, winner);
    }

    /// @notice Records page `page` of the epoch's agreed availability table, proven against its
    /// root by `proof` (the sibling hashes from the page up; a level where the page's branch has
    /// no sibling takes none): mints the page's PoA rewards and service records. Each page is
    /// recorded once; any oracle may send any page, in any order.
    function recordAvailabilityPage(
        uint256 epoch,
        uint256 page,
        address[] calldata nodes,
        uint8[] calldata availability,
        bytes32[] calldata proof
    ) external onlyOracle {
        if (availability.length != nodes.length) revert LengthMismatch();
        for (uint256 i = 1; i < nodes.length; i++) {
            if (nodes[i] <= nodes[i - 1]) revert NodesNotSorted();
        }
        (bytes32 root, uint256 pages) = _claimAvailabilityPage(epoch, page, nodes.length);
        bytes32 leaf = availabilityPageHash(epoch, page, nodes, availability);
        if (_merkleRoot(leaf, page, pages, proof) != root) revert PageNotInTable(epoch, page);
        nodeDeed.recordAvailability(epoch, nodes, availability);
    }

    /// @dev Marks page `page` of the epoch's agreed table recorded, checking that it exists, is
    /// not recorded yet and holds `rows` rows; returns the table's root and page count.
    function _claimAvailabilityPage(uint256 epoch, uint256 page, uint256 rows)
        private
        returns (bytes32 root, uint256 pages)
    {
        AvailabilityTable memory table = agreedAvailability[epoch];
        if (table.root == bytes32(0)) revert AvailabilityNotAgreed(epoch);
        pages = _availabilityPages(table.rows);
        if (page >= pages) revert NoSuchPage(epoch, page, pages);
        uint256 bit = 1 << (page % 256);
        uint256 word = availabilityPageBits[epoch][page / 256];
        if (word & bit != 0) revert PageAlreadyRecorded(epoch, page);
        uint256 expected = page + 1 < pages ? AVAILABILITY_PAGE_ROWS : table.rows - page * AVAILABILITY_PAGE_ROWS;
        if (rows != expected) revert LengthMismatch();
        availabilityPageBits[epoch][page / 256] = word | bit;
        agreedAvailability[epoch].pagesLeft = table.pagesLeft - 1;
        emit AvailabilityPageRecorded(epoch, page, msg.sender, rows);
        root = table.root;
    }

    /// @dev The pages of a table of `rows` rows, the last one possibly short.
    function _availabilityPages(uint256 rows) private pure returns (uint256) {
        return (rows + AVAILABILITY_PAGE_ROWS - 1) / AVAILABILITY_PAGE_ROWS;
    }

    /// @notice Whether the availability of `epoch` is agreed and every page of it recorded.
    function availabilityRecorded(uint256 epoch) external view returns (bool) {
        AvailabilityTable memory table = agreedAvailability[epoch];
        return table.root != bytes32(0) && table.pagesLeft == 0;
    }

    /// @notice Which pages of the epoch's agreed table are recorded: bit `p % 256` of word
    /// `p / 256` for page `p` (empty while no table is agreed).
    function availabilityPagesRecorded(uint256 epoch) external view returns (uint256[] memory words) {
        uint256 pages = _availabilityPages(agreedAvailability[epoch].rows);
        words = new uint256[]((pages + 255) / 256);
        for (uint256 i = 0; i < words.length; i++) {
            words[i] = availabilityPageBits[epoch][i];
        }
    }

    /// @notice The leaf of page `page` of an epoch's availability table.
    function availabilityPageHash(uint256 epoch, uint256 page, address[] calldata nodes, uint8[] calldata availability)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(epoch, page, nodes, availability));
    }

    /// @dev The root `proof` leads to from `leaf` at `index` of `width` leaves: pairs hash
    /// left to right, a last node without a partner goes up unchanged; `proof` must be used up.
    function _merkleRoot(bytes32 leaf, uint256 index, uint256 width, bytes32[] calldata proof)
        private
        pure
        returns (bytes32 node)
    {
        node = leaf;
        uint256 used = 0;
        while (width > 1) {
            if (index % 2 == 1 || index + 1 < width) {
                if (used == proof.length) return bytes32(0);
                bytes32 sibling = proof[used++];
                node = index % 2 == 1
                    ? keccak256(abi.encodePacked(sibling, node))
                    : keccak256(abi.encodePacked(node, sibling));
            }
            index /= 2;
            width = (width + 1) / 2;
        }
        if (used != proof.length) return bytes32(0);
    }

    // ----- rewards -----

    /// @notice Allocates every finished, unallocated epoch across all escrows: 85 % to the
    /// validated nodes' balances, 15 % swapped to R1 and burned. One call settles at most
    /// `maxJobs` jobs (an escrow counts as one more), so thousands of jobs never push a call past
    /// the block gas limit: a pass starts at the first call after an epoch ends, fixes its end
    /// epoch, and goes on where the last call stopped until every escrow is done (`finished`).
    /// Any oracle may call it; an epoch is never allocated twice, and a job settled twice in a
    /// pass (settling is idempotent) is not paid twice.
    function allocateRewardsToNodes(uint256 maxJobs) external onlyOracle returns (bool finished) {
        if (maxJobs == 0) revert EmptyPage();
        AllocationPass memory pass = allocationPass;
        uint256 from = allocatedUntilEpoch;
        if (pass.untilEpoch == 0) {
            uint256 epoch = currentEpoch();
            if (epoch <= from) revert EpochAlreadyAllocated(from == 0 ? 0 : from - 1);
            pass.untilEpoch = uint64(epoch);
            pass.jobCursor = type(uint256).max;
        }
        uint256 budget = maxJobs;
        uint256 burn = 0;
        uint256 visitedTotal = 0;
        while (pass.escrowIndex < escrows.length && budget > 0) {
            (uint256 escrowBurn, uint256 cursor, uint256 visited) =
                CspEscrow(escrows[pass.escrowIndex]).allocateRewards(pass.untilEpoch, pass.jobCursor, budget);
            burn += escrowBurn;
            visitedTotal += visited;
            budget -= visited;
            if (cursor != 0) {
                pass.jobCursor = cursor;
                continue;
            }
            pass.escrowIndex++;
            pass.jobCursor = type(uint256).max;
            if (budget > 0) budget--;
        }
        pass.burned += uint128(burn);
        emit AllocationPage(pass.untilEpoch, msg.sender, visitedTotal, burn);
        finished = pass.escrowIndex >= escrows.length;
        if (finished) {
            allocatedUntilEpoch = pass.untilEpoch;
            delete allocationPass;
            emit RewardsAllocated(from, pass.untilEpoch, msg.sender, pass.burned);
        } else {
            allocationPass = pass;
        }
        _queueBurn(burn);
    }

    /// @notice Swaps every queued USDC of the 15 % share to R1 and burns it, refusing less than
    /// `minR1Out` R1 (the oracle reads the venue's quote and allows its slippage bound). A swap
    /// that fails or would pay too little reverts this call alone; the USDC stays queued.
    function burnPendingFees(uint256 minR1Out) external onlyOracle returns (uint256 usdcAmount, uint256 r1Amount) {
        usdcAmount = pendingBurnUsdc;
        if (usdcAmount == 0) revert NothingToBurn();
        if (minR1Out == 0) revert NoSlippageBound();
        pendingBurnUsdc = 0;
        usdcToken.forceApprove(address(swap), usdcAmount);
        r1Amount = swap.swapUsdcForR1(usdcAmount, minR1Out, address(this));
        r1.burn(r1Amount);
        totalUsdcBurned += usdcAmount;
        totalR1Burned += r1Amount;
        emit FeesBurned(usdcAmount, r1Amount);
    }

    /// @notice USDC credited to `node` in every escrow and not claimed yet.
    function pendingRewards(address node) external view returns (uint256 amount) {
        address[] storage list = nodeEscrows[node];
        for (uint256 i = 0; i < list.length; i++) {
            amount += CspEscrow(list[i]).virtualWalletBalance(node);
        }
    }

    /// @notice Claims the balances of the caller's `nodes` in every escrow, paid as R1 bought
    /// with the USDC through the swap venue, at least `minR1Out` of it (the claimant's own
    /// slippage bound; the swap reverts below it).
    function claimRewards(address[] calldata nodes, uint256 minR1Out)
        external
        returns (uint256 usdcAmount, uint256 r1Amount)
    {
        for (uint256 i = 0; i < nodes.length; i++) {
            address node = nodes[i];
            if (nodeDeed.ownerOfNode(node) != msg.sender) revert NotNodeOwner(node, msg.sender);
            if (isBlacklisted[node]) revert NodeIsBlacklisted(node);
            address[] storage list = nodeEscrows[node];
            uint256 nodeAmount = 0;
            for (uint256 j = 0; j < list.length; j++) {
                nodeAmount += CspEscrow(list[j]).withdrawNodeBalance(node);
            }
            if (nodeAmount > 0) emit RewardsClaimed(node, msg.sender, nodeAmount);
            usdcAmount += nodeAmount;
        }
        if (usdcAmount == 0) revert NothingToClaim();
        usdcToken.forceApprove(address(swap), usdcAmount);
        r1Amount = swap.swapUsdcForR1(usdcAmount, minR1Out, msg.sender);
        emit ClaimPaid(msg.sender, usdcAmount, r1Amount);
    }

    // ----- internals -----

    function _vote(bytes32 key, uint256 epoch, bytes32 proposal) private returns (bool decided, bytes32 winner) {
        if (voted[key][msg.sender]) revert AlreadyVoted(key, msg.sender);
        voted[key][msg.sender] = true;
        Round storage round = rounds[key];
        if (round.submissions == 0) round.epoch = uint64(epoch);
        round.submissions += 1;
        uint256 count = ++votesFor[key][proposal];
        if (count > round.bestCount) {
            round.bestCount = uint32(count);
            round.bestHash = proposal;
        }
        uint256 n = oracles.length;
        if (round.submissions < submissionsNeeded(n)) return (false, bytes32(0));
        if (round.bestCount < agreementNeeded(n)) {
            emit ConsensusNotReached(key, round.submissions, round.bestCount);
            return (false, bytes32(0));
        }
        return (true, round.bestHash);
    }

    function _applyNodeUpdate(uint256 jobId, uint256 roundId, address escrow, bytes32 proposal) private {
        address[] memory nodes = proposalNodes[proposal];
        for (uint256 i = 0; i < nodes.length; i++) {
            if (!nodeInEscrow[nodes[i]][escrow]) {
                nodeInEscrow[nodes[i]][escrow] = true;
                nodeEscrows[nodes[i]].push(escrow);
            }
        }
        if (nodes.length == 0) {
            openJobs.remove(jobId);
        } else {
            jobStarted[jobId] = true;
        }
        emit NodeUpdateAccepted(jobId, roundId, proposal, nodes);
        _queueBurn(CspEscrow(escrow).updateActiveNodes(jobId, nodes));
    }

    function _checkNodes(address[] calldata nodes) private view {
        for (uint256 i = 0; i < nodes.length; i++) {
            address node = nodes[i];
            if (i > 0 && node <= nodes[i - 1]) revert NodesNotSorted();
            if (nodeDeed.licenceOfNode(node) == 0) revert NodeNotLicensed(node);
            if (!nodeDeed.forHire(node)) revert NodeNotForHire(node);
            if (isBlacklisted[node]) revert NodeIsBlacklisted(node);
            if (isSuspended(node)) revert NodeIsSuspended(node, suspendedUntilEpoch[node]);
        }
    }

    function _queueBurn(uint256 amount) private {
        if (amount == 0) return;
        pendingBurnUsdc += amount;
        emit BurnQueued(amount);
    }

    /// @dev The end of the page `[start, start + limit)` of the open set, and the next page's
    /// start (0 = this is the last page).
    function _page(uint256 start, uint256 limit) private view returns (uint256 end, uint256 next) {
        if (limit == 0) revert EmptyPage();
        uint256 size = openJobs.length();
        if (start >= size) return (start, 0);
        end = size - start > limit ? start + limit : size;
        next = end < size ? end : 0;
    }

    function _prefix(uint256[] memory found, uint256 count) private pure returns (uint256[] memory ids) {
        ids = new uint256[](count);
        for (uint256 i = 0; i < count; i++) {
            ids[i] = found[i];
        }
    }

    function _roundKey(uint256 jobId, uint256 roundId) private pure returns (bytes32) {
        return keccak256(abi.encode(jobId, roundId));
    }
}
