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

/// @title The Proof-of-AI manager
/// @notice Governance (the owner) keeps the oracle set, the price table and the blacklist, and
/// deploys one escrow per CSP behind the shared beacon. Oracles agree on each job's node set and
/// on each epoch's availability table; a decision is attempted once more than half of the
/// oracles have submitted in the round and succeeds when the most common proposal has at least
/// ⌊n/3⌋+1 votes. Any oracle allocates a finished epoch across all escrows (once per epoch),
/// burning 15 % through the swap venue. Node owners claim their nodes' balances as R1.
contract PoAIManager is Ownable, IEscrowManager, ILicenceManager {
    using SafeERC20 for IERC20;

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
    uint256[] private openJobIds;
    mapping(uint256 => uint256) private openSlot;
    /// @notice Whether a job has had a validated node set.
    mapping(uint256 => bool) public jobStarted;
    /// @notice Epochs before this one have been allocated.
    uint256 public allocatedUntilEpoch;
    /// @notice USDC swapped to R1 and burned, ever.
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
    mapping(bytes32 => uint8[]) private proposalAvailability;
    mapping(address => address[]) private nodeEscrows;
    mapping(address => mapping(address => bool)) private nodeInEscrow;

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
    /// @notice Availability of this epoch is already recorded.
    error AvailabilityAlreadyRecorded(uint256 epoch);
    /// @notice The node and availability arrays differ in length.
    error LengthMismatch();
    /// @notice The caller does not own the licence of the node.
    error NotNodeOwner(address node, address caller);
    /// @notice There is nothing to claim.
    error NothingToClaim();

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
    /// @notice An escrow was deployed for a CSP.
    event EscrowDeployed(address indexed csp, address escrow);
    /// @notice An oracle submitted a node set for a job.
    event NodeUpdateSubmitted(uint256 indexed jobId, uint256 indexed round, address indexed oracle, bytes32 proposal);
    /// @notice The oracles agreed on a job's node set (empty = closed).
    event NodeUpdateAccepted(uint256 indexed jobId, uint256 indexed round, bytes32 proposal, address[] nodes);
    /// @notice Enough oracles submitted but no proposal has enough votes yet.
    event ConsensusNotReached(bytes32 indexed round, uint256 submissions, uint256 bestCount);
    /// @notice An oracle submitted an availability table.
    event AvailabilitySubmitted(uint256 indexed epoch, address indexed oracle, bytes32 proposal);
    /// @notice The oracles agreed on an epoch's availability table.
    event AvailabilityAccepted(uint256 indexed epoch, bytes32 proposal);
    /// @notice Epochs `[fromEpoch, untilEpoch)` were allocated across all escrows.
    event RewardsAllocated(uint256 fromEpoch, uint256 untilEpoch, address indexed oracle, uint256 usdcBurned);
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
        uint256 genesisTimestamp_,
        uint256 epochSeconds_
    ) Ownable(initialOwner) {
        if (epochSeconds_ == 0 || genesisTimestamp_ > block.timestamp) revert InvalidEpochConfig();
        usdcToken = usdc_;
        r1 = r1_;
        nodeDeed = nodeDeed_;
        swap = swap_;
        beacon = beacon_;
        genesisTimestamp = genesisTimestamp_;
        epochSeconds = epochSeconds_;
        allocatedUntilEpoch = currentEpoch();
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

    /// @notice Sets the price per node per epoch of a job type (0 withdraws it).
    function setJobTypePrice(uint8 jobType, uint256 pricePerEpoch) external onlyOwner {
        jobTypePrice[jobType] = pricePerEpoch;
        emit JobTypePriceSet(jobType, pricePerEpoch);
    }

    /// @notice Blacklists (or clears) a node: blacklisted nodes are never validated nor paid.
    function setBlacklisted(address node, bool blacklisted) external onlyOwner {
        isBlacklisted[node] = blacklisted;
        emit BlacklistSet(node, blacklisted);
    }

    /// @notice Replaces the swap venue.
    function setSwap(IUsdcToR1Swap swap_) external onlyOwner {
        swap = swap_;
        emit SwapSet(address(swap_));
    }

    /// @notice Deploys the escrow proxy of `csp`, owned by `csp`.
    function deployEscrow(address csp) external onlyOwner returns (address escrow) {
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

    /// @notice Ids of the jobs not yet closed.
    function getOpenJobIds() external view returns (uint256[] memory) {
        return openJobIds;
    }

    /// @notice Open jobs that have never been validated and on which `oracle` has not voted in
    /// the current round.
    function getUnvalidatedJobIds(address oracle) external view returns (uint256[] memory ids) {
        uint256 epoch = currentEpoch();
        uint256[] memory found = new uint256[](openJobIds.length);
        uint256 count = 0;
        for (uint256 i = 0; i < openJobIds.length; i++) {
            uint256 jobId = openJobIds[i];
            if (jobStarted[jobId]) continue;
            bytes32 key = _roundKey(jobId, jobRound[jobId]);
            Round storage round = rounds[key];
            bool votedNow = round.submissions > 0 && round.epoch == epoch && voted[key][oracle];
            if (!votedNow) found[count++] = jobId;
        }
        ids = new uint256[](count);
        for (uint256 i = 0; i < count; i++) {
            ids[i] = found[i];
        }
    }

    /// @notice The lowest-id open job that has ended and been allocated to its last epoch (0 = none).
    function getFirstClosableJobId() external view returns (uint256 first) {
        for (uint256 i = 0; i < openJobIds.length; i++) {
            uint256 jobId = openJobIds[i];
            if ((first == 0 || jobId < first) && CspEscrow(escrowOfJob[jobId]).isClosable(jobId)) first = jobId;
        }
    }

    /// @notice The escrows where `node` has ever been validated.
    function getNodeEscrows(address node) external view returns (address[] memory) {
        return nodeEscrows[node];
    }

    // ----- escrow hooks -----

    /// @inheritdoc IEscrowManager
    function registerJob() external onlyEscrow returns (uint256 jobId) {
        jobId = ++jobCount;
        escrowOfJob[jobId] = msg.sender;
        openJobIds.push(jobId);
        openSlot[jobId] = openJobIds.length;
    }

    /// @inheritdoc IEscrowManager
    function burnUsdc(uint256 amount) external onlyEscrow {
        _swapAndBurn(amount);
    }

    // ----- oracle consensus -----

    /// @notice Submits the node set this oracle sees running `jobId` (sorted ascending; empty
    /// closes the job).
    function submitNodeUpdate(uint256 jobId, address[] calldata nodes) external onlyOracle {
        address escrow = escrowOfJob[jobId];
        if (escrow == address(0)) revert UnknownJob(jobId);
        if (openSlot[jobId] == 0) revert JobClosed(jobId);
        _checkNodes(nodes);
        uint256 requested = CspEscrow(escrow).getJob(jobId).numberOfNodesRequested;
        if (nodes.length > requested) revert TooManyNodes(nodes.length, requested);

        uint256 epoch = currentEpoch();
        uint256 roundId = jobRound[jobId];
        bytes32 key = _roundKey(jobId, roundId);
        if (rounds[key].submissions > 0 && rounds[key].epoch != epoch) {
            roundId = ++jobRound[jobId];
            key = _roundKey(jobId, roundId);
        }
        bytes32 proposal = keccak256(abi.encodePacked(nodes));
        if (!proposalKnown[proposal]) {
            proposalKnown[proposal] = true;
            proposalNodes[proposal] = nodes;
        }
        emit NodeUpdateSubmitted(jobId, roundId, msg.sender, proposal);
        (bool decided, bytes32 winner) = _vote(key, epoch, proposal);
        if (!decided) return;
        jobRound[jobId] = roundId + 1;
        _applyNodeUpdate(jobId, roundId, escrow, winner);
    }

    /// @notice Submits this oracle's availability table of a finished epoch (nodes sorted
    /// ascending, one byte 0..255 per node). The agreed table mints PoA rewards.
    function submitAvailability(uint256 epoch, address[] calldata nodes, uint8[] calldata availability)
        external
        onlyOracle
    {
        if (epoch >= currentEpoch()) revert EpochNotEnded(epoch);
        if (nodeDeed.availabilityRecorded(epoch)) revert AvailabilityAlreadyRecorded(epoch);
        if (nodes.length != availability.length) revert LengthMismatch();
        for (uint256 i = 1; i < nodes.length; i++) {
            if (nodes[i] <= nodes[i - 1]) revert NodesNotSorted();
        }
        bytes32 key = keccak256(abi.encode("availability", epoch));
        bytes32 proposal = keccak256(abi.encode("availability", nodes, availability));
        if (!proposalKnown[proposal]) {
            proposalKnown[proposal] = true;
            proposalNodes[proposal] = nodes;
            proposalAvailability[proposal] = availability;
        }
        emit AvailabilitySubmitted(epoch, msg.sender, proposal);
        (bool decided, bytes32 winner) = _vote(key, epoch, proposal);
        if (!decided) return;
        emit AvailabilityAccepted(epoch, winner);
        nodeDeed.recordAvailability(epoch, proposalNodes[winner], proposalAvailability[winner]);
    }

    // ----- rewards -----

    /// @notice Allocates every finished, unallocated epoch across all escrows: 85 % to the
    /// validated nodes' balances, 15 % swapped to R1 and burned. Any oracle may call it; an
    /// epoch is never allocated twice.
    function allocateRewardsToNodes() external onlyOracle {
        uint256 epoch = currentEpoch();
        uint256 from = allocatedUntilEpoch;
        if (epoch <= from) revert EpochAlreadyAllocated(from == 0 ? 0 : from - 1);
        allocatedUntilEpoch = epoch;
        uint256 burn = 0;
        for (uint256 i = 0; i < escrows.length; i++) {
            burn += CspEscrow(escrows[i]).allocateRewards(epoch);
        }
        emit RewardsAllocated(from, epoch, msg.sender, burn);
        _swapAndBurn(burn);
    }

    /// @notice USDC credited to `node` in every escrow and not claimed yet.
    function pendingRewards(address node) external view returns (uint256 amount) {
        address[] storage list = nodeEscrows[node];
        for (uint256 i = 0; i < list.length; i++) {
            amount += CspEscrow(list[i]).virtualWalletBalance(node);
        }
    }

    /// @notice Claims the balances of the caller's `nodes` in every escrow, paid as R1 bought
    /// with the USDC through the swap venue.
    function claimRewards(address[] calldata nodes) external returns (uint256 usdcAmount, uint256 r1Amount) {
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
        r1Amount = swap.swapUsdcForR1(usdcAmount, 0, msg.sender);
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
        if (round.submissions < n / 2 + 1) return (false, bytes32(0));
        if (round.bestCount < n / 3 + 1) {
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
            _removeOpen(jobId);
        } else {
            jobStarted[jobId] = true;
        }
        emit NodeUpdateAccepted(jobId, roundId, proposal, nodes);
        _swapAndBurn(CspEscrow(escrow).updateActiveNodes(jobId, nodes));
    }

    function _checkNodes(address[] calldata nodes) private view {
        for (uint256 i = 0; i < nodes.length; i++) {
            address node = nodes[i];
            if (i > 0 && node <= nodes[i - 1]) revert NodesNotSorted();
            if (nodeDeed.licenceOfNode(node) == 0) revert NodeNotLicensed(node);
            if (isBlacklisted[node]) revert NodeIsBlacklisted(node);
        }
    }

    function _swapAndBurn(uint256 amount) private {
        if (amount == 0) return;
        usdcToken.forceApprove(address(swap), amount);
        uint256 r1Out = swap.swapUsdcForR1(amount, 0, address(this));
        r1.burn(r1Out);
        totalUsdcBurned += amount;
        totalR1Burned += r1Out;
        emit FeesBurned(amount, r1Out);
    }

    function _removeOpen(uint256 jobId) private {
        uint256 slot = openSlot[jobId];
        uint256 last = openJobIds[openJobIds.length - 1];
        openJobIds[slot - 1] = last;
        openSlot[last] = slot;
        openJobIds.pop();
        delete openSlot[jobId];
    }

    function _roundKey(uint256 jobId, uint256 roundId) private pure returns (bytes32) {
        return keccak256(abi.encode(jobId, roundId));
    }
}
