// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {IEscrowManager} from "./interfaces/IEscrowManager.sol";

/// @title A CSP's escrow (one per CSP, behind the protocol's beacon proxy)
/// @notice Holds the USDC that pre-pays the CSP's jobs and the virtual balances of the nodes
/// that ran them. Only `cspOwner` creates and extends jobs; only the PoAI manager records node
/// sets, allocates epochs and pays out claims.
///
/// Accounting: a job created in epoch `c` with last execution epoch `L` pays for epochs
/// `c+1 ..= L`. Settling epoch `e` pays every non-blacklisted node of the node set active at
/// the end of `e` the job's price: 85 % to its virtual balance and 15 % to the burn. Node-set
/// changes and node extensions settle the completed epochs first, so an epoch is always paid to
/// the set that was validated at its end. Invariant: `balance ≥ price × nodesRequested × epochs
/// left to settle`; whatever is not paid is refunded to the CSP when the job closes.
contract CspEscrow is Initializable {
    using SafeERC20 for IERC20;

    /// @notice Fewest epochs a job can be created for.
    uint256 public constant MIN_EPOCHS = 30;
    /// @notice Share of every paid epoch that is swapped to R1 and burned, in percent.
    uint256 public constant BURN_PERCENT = 15;

    /// @notice One job to create.
    struct JobCreationRequest {
        uint8 jobType;
        bytes32 projectHash;
        uint256 lastExecutionEpoch;
        uint256 numberOfNodesRequested;
    }

    /// @notice A job and its budget.
    struct Job {
        uint256 id;
        uint8 jobType;
        bytes32 projectHash;
        uint256 requestTimestamp;
        uint256 startTimestamp;
        uint256 lastExecutionEpoch;
        uint256 nextEpochToSettle;
        uint256 numberOfNodesRequested;
        uint256 pricePerEpoch;
        uint256 balance;
        address[] activeNodes;
        bool closed;
    }

    /// @notice The CSP that owns this escrow.
    address public cspOwner;
    /// @notice The PoAI manager.
    IEscrowManager public manager;
    /// @notice The settlement token.
    IERC20 public usdc;

    mapping(uint256 => Job) private jobs;
    uint256[] private openJobIds;
    mapping(uint256 => uint256) private openSlot;

    /// @notice Unclaimed USDC earned by each node in this escrow.
    mapping(address => uint256) public virtualWalletBalance;
    /// @notice USDC pulled from the CSP, ever.
    uint256 public totalDeposited;
    /// @notice USDC credited to node balances, ever.
    uint256 public totalCreditedToNodes;
    /// @notice USDC sent to the burn, ever.
    uint256 public totalBurned;
    /// @notice USDC refunded to the CSP, ever.
    uint256 public totalRefunded;
    /// @notice USDC paid out of node balances on claims, ever.
    uint256 public totalClaimed;

    /// @notice The caller is not the CSP owner.
    error NotCspOwner(address caller);
    /// @notice The caller is not the PoAI manager.
    error NotManager(address caller);
    /// @notice The job type has no price.
    error UnknownJobType(uint8 jobType);
    /// @notice A job must request at least one node.
    error NoNodesRequested();
    /// @notice A job must be paid for at least `MIN_EPOCHS` epochs.
    error TooFewEpochs(uint256 epochs, uint256 minimum);
    /// @notice The CSP has not approved or does not hold the USDC to pay.
    error Underfunded(uint256 required, uint256 balance, uint256 allowance);
    /// @notice The job does not exist in this escrow or is closed.
    error JobNotOpen(uint256 jobId);
    /// @notice The job's last execution epoch has passed.
    error JobEnded(uint256 jobId);
    /// @notice An extension must increase the value it extends.
    error NotAnExtension(uint256 current, uint256 requested);

    /// @notice A job was created and paid for.
    event JobCreated(uint256 indexed jobId, uint8 indexed jobType, bytes32 projectHash, uint256 lastExecutionEpoch, uint256 numberOfNodesRequested, uint256 pricePerEpoch, uint256 paid);
    /// @notice A job's last execution epoch moved later.
    event JobDurationExtended(uint256 indexed jobId, uint256 lastExecutionEpoch, uint256 paid);
    /// @notice A job's node count grew.
    event JobNodesExtended(uint256 indexed jobId, uint256 numberOfNodesRequested, uint256 paid);
    /// @notice The first validated node set started the job.
    event JobStarted(uint256 indexed jobId, uint256 timestamp);
    /// @notice The oracles' agreed node set was recorded.
    event ActiveNodesUpdated(uint256 indexed jobId, address[] nodes);
    /// @notice Epochs `[fromEpoch, toEpoch)` of a job were settled.
    event EpochsSettled(uint256 indexed jobId, uint256 fromEpoch, uint256 toEpoch, uint256 nodesPaid, uint256 toNodes, uint256 burned);
    /// @notice A job closed and its unspent budget went back to the CSP.
    event JobClosed(uint256 indexed jobId, uint256 refunded);
    /// @notice A node's balance was paid out to the manager for a claim.
    event NodeBalanceWithdrawn(address indexed node, uint256 amount);

    modifier onlyCspOwner() {
        if (msg.sender != cspOwner) revert NotCspOwner(msg.sender);
        _;
    }

    modifier onlyManager() {
        if (msg.sender != address(manager)) revert NotManager(msg.sender);
        _;
    }

    constructor() {
        _disableInitializers();
    }

    /// @notice Sets the owner and the manager of a fresh escrow proxy.
    function initialize(address cspOwner_, IEscrowManager manager_) external initializer {
        cspOwner = cspOwner_;
        manager = manager_;
        usdc = manager_.usdc();
    }

    /// @notice Implementation version; upgrades through the beacon bump it.
    function version() external pure virtual returns (uint256) {
        return 1;
    }

    /// @notice Creates jobs, pulling price × nodes × epochs USDC for all of them at once.
    function createJobs(JobCreationRequest[] calldata requests) external onlyCspOwner returns (uint256[] memory jobIds) {
        uint256 epoch = manager.currentEpoch();
        uint256 total = 0;
        jobIds = new uint256[](requests.length);
        for (uint256 i = 0; i < requests.length; i++) {
            JobCreationRequest calldata r = requests[i];
            uint256 price = manager.jobTypePrice(r.jobType);
            if (price == 0) revert UnknownJobType(r.jobType);
            if (r.numberOfNodesRequested == 0) revert NoNodesRequested();
            uint256 epochs = r.lastExecutionEpoch > epoch ? r.lastExecutionEpoch - epoch : 0;
            if (epochs < MIN_EPOCHS) revert TooFewEpochs(epochs, MIN_EPOCHS);
            uint256 cost = price * r.numberOfNodesRequested * epochs;
            uint256 jobId = manager.registerJob();
            Job storage job = jobs[jobId];
            job.id = jobId;
            job.jobType = r.jobType;
            job.projectHash = r.projectHash;
            job.requestTimestamp = block.timestamp;
            job.lastExecutionEpoch = r.lastExecutionEpoch;
            job.nextEpochToSettle = epoch + 1;
            job.numberOfNodesRequested = r.numberOfNodesRequested;
            job.pricePerEpoch = price;
            job.balance = cost;
            openJobIds.push(jobId);
            openSlot[jobId] = openJobIds.length;
            jobIds[i] = jobId;
            total += cost;
            emit JobCreated(jobId, r.jobType, r.projectHash, r.lastExecutionEpoch, r.numberOfNodesRequested, price, cost);
        }
        _pull(total);
    }

    /// @notice Moves a running job's last execution epoch to `newLastExecutionEpoch`, paying the
    /// added epochs for every requested node.
    function extendJobDuration(uint256 jobId, uint256 newLastExecutionEpoch) external onlyCspOwner {
        Job storage job = _openJob(jobId);
        if (manager.currentEpoch() > job.lastExecutionEpoch) revert JobEnded(jobId);
        if (newLastExecutionEpoch <= job.lastExecutionEpoch) {
            revert NotAnExtension(job.lastExecutionEpoch, newLastExecutionEpoch);
        }
        uint256 cost = job.pricePerEpoch * job.numberOfNodesRequested * (newLastExecutionEpoch - job.lastExecutionEpoch);
        job.lastExecutionEpoch = newLastExecutionEpoch;
        job.balance += cost;
        _pull(cost);
        emit JobDurationExtended(jobId, newLastExecutionEpoch, cost);
    }

    /// @notice Raises a running job's node count to `newNumberOfNodes`, paying the added nodes
    /// for every epoch not yet settled (completed epochs are settled first).
    function extendJobNodes(uint256 jobId, uint256 newNumberOfNodes) external onlyCspOwner {
        Job storage job = _openJob(jobId);
        uint256 epoch = manager.currentEpoch();
        if (epoch > job.lastExecutionEpoch) revert JobEnded(jobId);
        if (newNumberOfNodes <= job.numberOfNodesRequested) {
            revert NotAnExtension(job.numberOfNodesRequested, newNumberOfNodes);
        }
        uint256 burn = _settle(job, epoch);
        uint256 epochsLeft = job.lastExecutionEpoch + 1 - job.nextEpochToSettle;
        uint256 cost = job.pricePerEpoch * (newNumberOfNodes - job.numberOfNodesRequested) * epochsLeft;
        job.numberOfNodesRequested = newNumberOfNodes;
        job.balance += cost;
        _pull(cost);
        emit JobNodesExtended(jobId, newNumberOfNodes, cost);
        if (burn > 0) {
            usdc.safeTransfer(address(manager), burn);
            manager.burnUsdc(burn);
        }
    }

    /// @notice Records the oracles' agreed node set, settling completed epochs with the previous
    /// set; an empty set closes the job and refunds its unspent budget. Returns the USDC sent to
    /// the manager for burning.
    function updateActiveNodes(uint256 jobId, address[] calldata nodes) external onlyManager returns (uint256 burn) {
        Job storage job = _openJob(jobId);
        burn = _settle(job, manager.currentEpoch());
        if (nodes.length == 0) {
            uint256 refund = job.balance;
            job.balance = 0;
            job.closed = true;
            delete job.activeNodes;
            _removeOpen(jobId);
            totalRefunded += refund;
            usdc.safeTransfer(cspOwner, refund);
            emit JobClosed(jobId, refund);
        } else {
            if (job.startTimestamp == 0) {
                job.startTimestamp = block.timestamp;
                emit JobStarted(jobId, block.timestamp);
            }
            job.activeNodes = nodes;
            emit ActiveNodesUpdated(jobId, nodes);
        }
        if (burn > 0) usdc.safeTransfer(address(manager), burn);
    }

    /// @notice Settles every open job up to (excluding) `untilEpoch`. Returns the USDC sent to
    /// the manager for burning.
    function allocateRewards(uint256 untilEpoch) external onlyManager returns (uint256 burn) {
        for (uint256 i = 0; i < openJobIds.length; i++) {
            burn += _settle(jobs[openJobIds[i]], untilEpoch);
        }
        if (burn > 0) usdc.safeTransfer(address(manager), burn);
    }

    /// @notice Pays a node's whole balance to the manager, which swaps it for the licence owner.
    function withdrawNodeBalance(address node) external onlyManager returns (uint256 amount) {
        amount = virtualWalletBalance[node];
        if (amount == 0) return 0;
        virtualWalletBalance[node] = 0;
        totalClaimed += amount;
        usdc.safeTransfer(address(manager), amount);
        emit NodeBalanceWithdrawn(node, amount);
    }

    /// @notice A job by id.
    function getJob(uint256 jobId) external view returns (Job memory) {
        return jobs[jobId];
    }

    /// @notice Ids of the jobs not yet closed.
    function getOpenJobIds() external view returns (uint256[] memory) {
        return openJobIds;
    }

    /// @notice Whether the job has ended and every epoch of it has been settled.
    function isClosable(uint256 jobId) external view returns (bool) {
        Job storage job = jobs[jobId];
        return openSlot[jobId] != 0 && manager.currentEpoch() > job.lastExecutionEpoch
            && job.nextEpochToSettle > job.lastExecutionEpoch;
    }

    function _settle(Job storage job, uint256 untilEpoch) private returns (uint256 burn) {
        uint256 end = untilEpoch;
        if (end > job.lastExecutionEpoch + 1) end = job.lastExecutionEpoch + 1;
        uint256 from = job.nextEpochToSettle;
        if (end <= from) return 0;
        job.nextEpochToSettle = end;
        uint256 perNode = job.pricePerEpoch * (end - from);
        uint256 perNodeBurn = (perNode * BURN_PERCENT) / 100;
        uint256 perNodeReward = perNode - perNodeBurn;
        uint256 paid = 0;
        address[] storage nodes = job.activeNodes;
        for (uint256 i = 0; i < nodes.length; i++) {
            address node = nodes[i];
            if (manager.isBlacklisted(node)) continue;
            virtualWalletBalance[node] += perNodeReward;
            paid++;
        }
        if (paid == 0) return 0;
        uint256 toNodes = perNodeReward * paid;
        burn = perNodeBurn * paid;
        job.balance -= toNodes + burn;
        totalCreditedToNodes += toNodes;
        totalBurned += burn;
        emit EpochsSettled(job.id, from, end, paid, toNodes, burn);
    }

    function _openJob(uint256 jobId) private view returns (Job storage job) {
        if (openSlot[jobId] == 0) revert JobNotOpen(jobId);
        return jobs[jobId];
    }

    function _removeOpen(uint256 jobId) private {
        uint256 slot = openSlot[jobId];
        uint256 last = openJobIds[openJobIds.length - 1];
        openJobIds[slot - 1] = last;
        openSlot[last] = slot;
        openJobIds.pop();
        delete openSlot[jobId];
    }

    function _pull(uint256 amount) private {
        uint256 balance = usdc.balanceOf(msg.sender);
        uint256 allowance = usdc.allowance(msg.sender, address(this));
        if (balance < amount || allowance < amount) revert Underfunded(amount, balance, allowance);
        totalDeposited += amount;
        usdc.safeTransferFrom(msg.sender, address(this), amount);
    }
}
