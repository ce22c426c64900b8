// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {IEscrowManager} from "./interfaces/IEscrowManager.sol";
import {OpenJobs} from "./OpenJobs.sol";

/// @title A CSP's escrow (one per CSP, behind the protocol's beacon proxy)
/// @notice Holds the USDC that pre-pays the CSP's jobs, the CSP's free balance and the virtual
/// balances of the nodes that ran them. `cspOwner` creates and extends jobs paying from its
/// wallet; delegates it grants permission bits to (`setDelegate`) do the same paying from the
/// free balance (`deposit`, `withdraw`); only the PoAI manager records node sets, allocates
/// epochs and pays out claims.
///
/// Accounting, by the second of the chain's clock: a job buys node time from its request to
/// `end(L) = genesis + (L + 1) × epochSeconds`, the end of its last execution epoch `L`, at its
/// price per node per epoch spread over the epoch's seconds. Creating it costs
/// `⌊price × nodes × (end(L) − request) / epochSeconds⌋`: the whole epochs after the creation
/// epoch and the rest of that one. Settling a span of `s` seconds pays every non-blacklisted
/// node of the node set active during it `⌊price × s / epochSeconds⌋`: 15 % of that (rounded
/// down) to the burn, the rest to its virtual balance. A job is settled up to `settledUntil`:
/// an allocation settles every open job up to the start of the epoch it allocates to, a
/// node-set change settles up to the block's time with the outgoing set (so each set is paid for
/// the seconds it served), a node extension settles up to the block's time before pricing the
/// added nodes for the seconds left, and every close (the oracles agree on an empty set: the
/// CSP deleted it or its budget is spent; the owner or a redeem delegate redeems a job no node
/// set ever started, the manager's `redeemDelay` after its request; or the owner takes a job
/// back from a stalled protocol) settles up to the block's time and then refunds what is left
/// to the CSP's wallet, whoever funded it. Seconds before the first node set (the job waiting
/// for validation) pay nobody and are refunded; the epoch of validation and the epoch of a close
/// are paid pro rata by the seconds served. This departs from the reference's whole-epoch
/// accounting, under which a close refunds the epoch in progress and the epoch of validation is
/// paid in full or not at all. Invariant: `balance ≥ nodesRequested × ⌊price × (end(L) −
/// settledUntil) / epochSeconds⌋` (a sum of floors is at most the floor of the sum), so the
/// budget always covers what the rest of the span can pay. Money: the escrow's USDC balance is
/// always `freeBalance` + the open jobs' balances + the nodes' virtual balances, and
/// `totalDeposited` = that balance + `totalClaimed` + `totalBurned` + `totalRefunded` +
/// `totalWithdrawn` (USDC transferred to the escrow directly, bypassing `deposit`, is held on
/// top and never accounted).
///
/// Storage: this is a beacon implementation; new variables go after the existing ones only.
contract CspEscrow is Initializable {
    using SafeERC20 for IERC20;
    using OpenJobs for OpenJobs.Set;

    /// @notice Fewest epochs a job can be created for.
    uint256 public constant MIN_EPOCHS = 30;
    /// @notice Share of every paid epoch that is swapped to R1 and burned, in percent.
    uint256 public constant BURN_PERCENT = 15;

    /// @notice Delegate permission: create jobs, paid from the free balance.
    uint8 public constant PERMISSION_CREATE = 1;
    /// @notice Delegate permission: extend a job's duration, paid from the free balance.
    uint8 public constant PERMISSION_EXTEND_DURATION = 2;
    /// @notice Delegate permission: extend a job's node count, paid from the free balance.
    uint8 public constant PERMISSION_EXTEND_NODES = 4;
    /// @notice Delegate permission: redeem jobs never started (`redeemUnstartedJob`).
    uint8 public constant PERMISSION_REDEEM = 8;
    /// @notice Every permission bit defined; `setDelegate` refuses any other.
    uint8 public constant ALL_PERMISSIONS = 15;

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
        /// @dev Appended: the time up to which the job's span is settled (paid or, before the
        /// first node set, passed unpaid). `nextEpochToSettle` is the epoch containing it.
        uint256 settledUntil;
    }

    /// @dev The manager's clock, read once per call: `_settle` converts seconds to epochs by it.
    struct Clock {
        uint256 genesis;
        uint256 epochSeconds;
    }

    /// @notice The CSP that owns this escrow.
    address public cspOwner;
    /// @notice The PoAI manager.
    IEscrowManager public manager;
    /// @notice The settlement token.
    IERC20 public usdc;

    mapping(uint256 => Job) private jobs;
    OpenJobs.Set private openJobs;

    /// @notice Unclaimed USDC earned by each node in this escrow.
    mapping(address => uint256) public virtualWalletBalance;
    /// @notice USDC paid into the escrow, ever: by the owner for its jobs and by anyone's
    /// `deposit` (delegate-funded jobs move free balance and pay nothing in).
    uint256 public totalDeposited;
    /// @notice USDC credited to node balances, ever.
    uint256 public totalCreditedToNodes;
    /// @notice USDC sent to the burn, ever.
    uint256 public totalBurned;
    /// @notice USDC refunded to the CSP, ever.
    uint256 public totalRefunded;
    /// @notice USDC paid out of node balances on claims, ever.
    uint256 public totalClaimed;

    // ----- appended for delegates and the free balance: new variables go below, never above -----

    /// @notice USDC held for the CSP and not yet committed to a job: what delegates spend.
    uint256 public freeBalance;
    /// @notice USDC withdrawn from the free balance by the owner, ever.
    uint256 public totalWithdrawn;
    /// @notice Permission bits of each delegate (0 = not a delegate).
    mapping(address => uint8) public delegatePermissions;
    address[] private delegates;
    mapping(address => uint256) private delegateSlot;

    // ----- appended for finding a project's job -----

    /// @dev Ids of every job created for each project hash, ascending: how the CSP's tools
    /// find the job paying for a project without reading every open job.
    mapping(bytes32 => uint256[]) private projectJobIds;

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
    /// @notice The payer (the owner, or a depositor) has not approved or does not hold the USDC.
    error Underfunded(uint256 required, uint256 balance, uint256 allowance);
    /// @notice The job does not exist in this escrow or is closed.
    error JobNotOpen(uint256 jobId);
    /// @notice The job's last execution epoch has passed.
    error JobEnded(uint256 jobId);
    /// @notice An extension must increase the value it extends.
    error NotAnExtension(uint256 current, uint256 requested);
    /// @notice The caller is neither the owner nor a delegate holding `permission`.
    error NotPermitted(address caller, uint8 permission);
    /// @notice The free balance does not cover the amount.
    error InsufficientFreeBalance(uint256 required, uint256 free);
    /// @notice A delegate cannot be the zero address or the owner.
    error InvalidDelegate(address delegate);
    /// @notice Only the bits of `ALL_PERMISSIONS` exist.
    error UnknownPermissions(uint8 permissions);
    /// @notice Deposits and withdrawals move a positive amount.
    error ZeroAmount();
    /// @notice Only a job no node set has started can be redeemed.
    error JobAlreadyStarted(uint256 jobId);
    /// @notice A job can be redeemed the manager's `redeemDelay` after its request, at `readyAt`.
    error RedeemTooEarly(uint256 jobId, uint256 readyAt);

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
    /// @notice The seconds `[fromTime, toTime)` of a job were paid to `nodesPaid` nodes.
    event Settled(uint256 indexed jobId, uint256 fromTime, uint256 toTime, uint256 nodesPaid, uint256 toNodes, uint256 burned);
    /// @notice A job closed and its unspent budget went back to the CSP.
    event JobClosed(uint256 indexed jobId, uint256 refunded);
    /// @notice The owner or a delegate redeemed a job that never started (`JobClosed` follows).
    event JobRedeemed(uint256 indexed jobId, address indexed by);
    /// @notice A node's balance was paid out to the manager for a claim.
    event NodeBalanceWithdrawn(address indexed node, uint256 amount);
    /// @notice The owner granted `permissions` to `delegate` (0 = removed).
    event DelegateSet(address indexed delegate, uint8 permissions);
    /// @notice `from` added `amount` USDC to the free balance.
    event Deposited(address indexed from, uint256 amount);
    /// @notice The owner took `amount` USDC out of the free balance.
    event Withdrawn(address indexed to, uint256 amount);

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

    /// @notice Creates jobs costing `⌊price × nodes × (end(L) − now) / epochSeconds⌋` USDC each
    /// (the epochs after this one and the rest of this one), paid at once: pulled from the
    /// owner's wallet, or from the free balance when a delegate with `PERMISSION_CREATE` calls.
    function createJobs(JobCreationRequest[] calldata requests) external returns (uint256[] memory jobIds) {
        bool delegated = _authorize(PERMISSION_CREATE);
        Clock memory clock = _clock();
        uint256 epoch = (block.timestamp - clock.genesis) / clock.epochSeconds;
        uint256 total = 0;
        jobIds = new uint256[](requests.length);
        for (uint256 i = 0; i < requests.length; i++) {
            JobCreationRequest calldata r = requests[i];
            uint8 jobType = r.jobType;
            uint256 price = manager.jobTypePrice(jobType);
            if (price == 0) revert UnknownJobType(jobType);
            if (r.numberOfNodesRequested == 0) revert NoNodesRequested();
            uint256 epochs = r.lastExecutionEpoch > epoch ? r.lastExecutionEpoch - epoch : 0;
            if (epochs < MIN_EPOCHS) revert TooFewEpochs(epochs, MIN_EPOCHS);
            uint256 cost = _cost(price, r.numberOfNodesRequested, _end(clock, r.lastExecutionEpoch) - block.timestamp, clock);
            uint256 jobId = manager.registerJob();
            Job storage job = jobs[jobId];
            job.id = jobId;
            job.jobType = jobType;
            job.projectHash = r.projectHash;
            job.requestTimestamp = block.timestamp;
            job.lastExecutionEpoch = r.lastExecutionEpoch;
            job.nextEpochToSettle = epoch;
            job.settledUntil = block.timestamp;
            job.numberOfNodesRequested = r.numberOfNodesRequested;
            job.pricePerEpoch = price;
            job.balance = cost;
            openJobs.add(jobId);
            projectJobIds[r.projectHash].push(jobId);
            jobIds[i] = jobId;
            total += cost;
            emit JobCreated(jobId, jobType, r.projectHash, r.lastExecutionEpoch, r.numberOfNodesRequested, price, cost);
        }
        _pay(total, delegated);
    }

    /// @notice Moves a running job's last execution epoch to `newLastExecutionEpoch`, paying the
    /// added epochs for every requested node (from the owner's wallet, or from the free balance
    /// when a delegate with `PERMISSION_EXTEND_DURATION` calls).
    function extendJobDuration(uint256 jobId, uint256 newLastExecutionEpoch) external {
        bool delegated = _authorize(PERMISSION_EXTEND_DURATION);
        Job storage job = _openJob(jobId);
        if (manager.currentEpoch() > job.lastExecutionEpoch) revert JobEnded(jobId);
        if (newLastExecutionEpoch <= job.lastExecutionEpoch) {
            revert NotAnExtension(job.lastExecutionEpoch, newLastExecutionEpoch);
        }
        uint256 cost = job.pricePerEpoch * job.numberOfNodesRequested * (newLastExecutionEpoch - job.lastExecutionEpoch);
        job.lastExecutionEpoch = newLastExecutionEpoch;
        job.balance += cost;
        _pay(cost, delegated);
        emit JobDurationExtended(jobId, newLastExecutionEpoch, cost);
    }

    /// @notice Raises a running job's node count to `newNumberOfNodes`, paying the added nodes
    /// `⌊price × added × (end(L) − now) / epochSeconds⌋` (the job is settled up to now first),
    /// from the owner's wallet, or from the free balance when a delegate with
    /// `PERMISSION_EXTEND_NODES` calls.
    function extendJobNodes(uint256 jobId, uint256 newNumberOfNodes) external {
        bool delegated = _authorize(PERMISSION_EXTEND_NODES);
        Job storage job = _openJob(jobId);
        Clock memory clock = _clock();
        if (block.timestamp >= _end(clock, job.lastExecutionEpoch)) revert JobEnded(jobId);
        if (newNumberOfNodes <= job.numberOfNodesRequested) {
            revert NotAnExtension(job.numberOfNodesRequested, newNumberOfNodes);
        }
        uint256 burn = _settle(job, block.timestamp, clock);
        uint256 from = _settledUntil(job, clock);
        if (from < block.timestamp) from = block.timestamp;
        uint256 secondsLeft = _end(clock, job.lastExecutionEpoch) - from;
        uint256 cost = _cost(job.pricePerEpoch, newNumberOfNodes - job.numberOfNodesRequested, secondsLeft, clock);
        job.numberOfNodesRequested = newNumberOfNodes;
        job.balance += cost;
        _pay(cost, delegated);
        emit JobNodesExtended(jobId, newNumberOfNodes, cost);
        _burn(burn);
    }

    /// @notice Closes a job no node set has started, the manager's `redeemDelay` after its
    /// request (an hour on mainnet), and refunds its whole budget to the owner's wallet (the
    /// owner, or a delegate holding `PERMISSION_REDEEM`): a CSP whose job no oracle validated
    /// gets its money back without them.
    function redeemUnstartedJob(uint256 jobId) external {
        _authorize(PERMISSION_REDEEM);
        Job storage job = _openJob(jobId);
        if (job.startTimestamp != 0) revert JobAlreadyStarted(jobId);
        uint256 readyAt = job.requestTimestamp + manager.redeemDelay();
        if (block.timestamp < readyAt) revert RedeemTooEarly(jobId, readyAt);
        manager.releaseUnstartedJob(jobId);
        emit JobRedeemed(jobId, msg.sender);
        _burn(_settleAndClose(job));
    }

    /// @notice Closes job `jobId` while the protocol is stalled (no allocation for the manager's
    /// `exitAfterEpochs` epochs: its oracles are gone or stuck): settles it up to now with its
    /// validated node set as every close does, and refunds the rest to the owner's wallet. The
    /// CSP's way out when nobody runs the protocol any more; the owner alone may take it.
    function exitStalledJob(uint256 jobId) external onlyCspOwner {
        Job storage job = _openJob(jobId);
        manager.releaseStalledJob(jobId);
        _burn(_settleAndClose(job));
    }

    /// @notice Grants `delegate` the `permissions` bits (replacing what it had); 0 removes it.
    function setDelegate(address delegate, uint8 permissions) external onlyCspOwner {
        if (delegate == address(0) || delegate == cspOwner) revert InvalidDelegate(delegate);
        if (permissions & ~ALL_PERMISSIONS != 0) revert UnknownPermissions(permissions);
        uint256 slot = delegateSlot[delegate];
        if (permissions == 0) {
            if (slot != 0) {
                address last = delegates[delegates.length - 1];
                delegates[slot - 1] = last;
                delegateSlot[last] = slot;
                delegates.pop();
                delete delegateSlot[delegate];
            }
        } else if (slot == 0) {
            delegates.push(delegate);
            delegateSlot[delegate] = delegates.length;
        }
        delegatePermissions[delegate] = permissions;
        emit DelegateSet(delegate, permissions);
    }

    /// @notice Adds `amount` USDC, pulled from the caller (anyone), to the free balance.
    function deposit(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        _pull(amount);
        freeBalance += amount;
        emit Deposited(msg.sender, amount);
    }

    /// @notice Sends `amount` USDC of the free balance to the owner.
    function withdraw(uint256 amount) external onlyCspOwner {
        if (amount == 0) revert ZeroAmount();
        uint256 free = freeBalance;
        if (amount > free) revert InsufficientFreeBalance(amount, free);
        freeBalance = free - amount;
        totalWithdrawn += amount;
        usdc.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    /// @notice Records the oracles' agreed node set, settling the job up to now with the previous
    /// set; an empty set closes the job and refunds its unspent budget. Returns the USDC sent to
    /// the manager for burning.
    function updateActiveNodes(uint256 jobId, address[] calldata nodes) external onlyManager returns (uint256 burn) {
        Job storage job = _openJob(jobId);
        if (nodes.length == 0) {
            burn = _settleAndClose(job);
        } else {
            burn = _settle(job, block.timestamp, _clock());
            if (job.startTimestamp == 0) {
                job.startTimestamp = block.timestamp;
                emit JobStarted(jobId, block.timestamp);
            }
            job.activeNodes = nodes;
            emit ActiveNodesUpdated(jobId, nodes);
        }
        if (burn > 0) usdc.safeTransfer(address(manager), burn);
    }

    /// @notice Settles open jobs up to the start of `untilEpoch`, at most `maxJobs` of them, walking
    /// the open set down from `cursor` (`type(uint256).max` starts a walk; see `OpenJobs`).
    /// Returns the USDC sent to the manager for burning, where the walk goes on (0 = done) and
    /// how many jobs it visited, so one epoch's allocation can span several transactions.
    function allocateRewards(uint256 untilEpoch, uint256 cursor, uint256 maxJobs)
        external
        onlyManager
        returns (uint256 burn, uint256 nextCursor, uint256 visited)
    {
        Clock memory clock = _clock();
        uint256 untilTime = clock.genesis + untilEpoch * clock.epochSeconds;
        nextCursor = openJobs.clampCursor(cursor);
        while (nextCursor > 0 && visited < maxJobs) {
            nextCursor--;
            visited++;
            burn += _settle(jobs[openJobs.ids[nextCursor]], untilTime, clock);
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

    /// @notice The jobs `jobIds`, in order, in one call: an oracle reads every open job of an
    /// escrow each pass, and one call a job made that the chain's heaviest load.
    function getJobs(uint256[] calldata jobIds) external view returns (Job[] memory found) {
        found = new Job[](jobIds.length);
        for (uint256 i = 0; i < jobIds.length; i++) {
            found[i] = jobs[jobIds[i]];
        }
    }

    /// @notice For each of `projectHashes`, in order, its open job with the lowest id, or an
    /// empty job (id 0) when it has none: one call where finding a project's job took reading
    /// every open job. Jobs created before this implementation are not found here.
    function findOpenJobs(bytes32[] calldata projectHashes) external view returns (Job[] memory found) {
        found = new Job[](projectHashes.length);
        for (uint256 i = 0; i < projectHashes.length; i++) {
            uint256[] storage ids = projectJobIds[projectHashes[i]];
            for (uint256 j = 0; j < ids.length; j++) {
                if (openJobs.contains(ids[j])) {
                    found[i] = jobs[ids[j]];
                    break;
                }
            }
        }
    }

    /// @notice The delegates, in no particular order.
    function getDelegates() external view returns (address[] memory) {
        return delegates;
    }

    /// @notice Ids of the jobs not yet closed.
    function getOpenJobIds() external view returns (uint256[] memory) {
        return openJobs.values();
    }

    /// @notice Whether the job has ended and every second of it has been settled.
    function isClosable(uint256 jobId) external view returns (bool) {
        Job storage job = jobs[jobId];
        return openJobs.contains(jobId) && manager.currentEpoch() > job.lastExecutionEpoch
            && job.nextEpochToSettle > job.lastExecutionEpoch;
    }

    /// @dev Settles `job` up to `untilTime` (at most the end of its last epoch): every
    /// non-blacklisted node of its current set is paid `⌊price × seconds / epochSeconds⌋` for the
    /// seconds since `settledUntil`, 15 % of it (rounded down) burned. Without a node set the
    /// seconds pass unpaid. Returns the USDC to burn.
    function _settle(Job storage job, uint256 untilTime, Clock memory clock) private returns (uint256 burn) {
        uint256 end = _end(clock, job.lastExecutionEpoch);
        if (untilTime < end) end = untilTime;
        uint256 from = _settledUntil(job, clock);
        if (end <= from) return 0;
        job.settledUntil = end;
        job.nextEpochToSettle = (end - clock.genesis) / clock.epochSeconds;
        uint256 perNode = (job.pricePerEpoch * (end - from)) / clock.epochSeconds;
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
        emit Settled(job.id, from, end, paid, toNodes, burn);
    }

    /// @dev The time up to which `job` is settled. A job created before this implementation
    /// (its `settledUntil` slot never written) is settled up to the start of its
    /// `nextEpochToSettle`, the first whole epoch it had not been paid for.
    function _settledUntil(Job storage job, Clock memory clock) private view returns (uint256) {
        uint256 until = job.settledUntil;
        if (until != 0) return until;
        return clock.genesis + job.nextEpochToSettle * clock.epochSeconds;
    }

    /// @dev The manager's genesis and epoch length.
    function _clock() private view returns (Clock memory) {
        return Clock(manager.genesisTimestamp(), manager.epochSeconds());
    }

    /// @dev The end of epoch `epoch`: the first second after it.
    function _end(Clock memory clock, uint256 epoch) private pure returns (uint256) {
        return clock.genesis + (epoch + 1) * clock.epochSeconds;
    }

    /// @dev What `nodes` nodes cost for `span` seconds at `price` per node per epoch.
    function _cost(uint256 price, uint256 nodes, uint256 span, Clock memory clock) private pure returns (uint256) {
        return (price * nodes * span) / clock.epochSeconds;
    }

    function _openJob(uint256 jobId) private view returns (Job storage job) {
        if (!openJobs.contains(jobId)) revert JobNotOpen(jobId);
        return jobs[jobId];
    }

    /// @dev Closes `job` the one way every close takes: settles it up to now with its node set,
    /// then refunds the rest of its budget to the owner's wallet. Returns the USDC to burn.
    function _settleAndClose(Job storage job) private returns (uint256 burn) {
        burn = _settle(job, block.timestamp, _clock());
        uint256 refund = job.balance;
        job.balance = 0;
        job.closed = true;
        delete job.activeNodes;
        openJobs.remove(job.id);
        totalRefunded += refund;
        usdc.safeTransfer(cspOwner, refund);
        emit JobClosed(job.id, refund);
    }

    /// @dev Sends `amount` of settled USDC to the manager and queues it for the burn.
    function _burn(uint256 amount) private {
        if (amount == 0) return;
        usdc.safeTransfer(address(manager), amount);
        manager.burnUsdc(amount);
    }

    /// @dev The owner acts for itself (returns false: it pays from its wallet); anyone else must
    /// be a delegate holding `permission` (returns true: it pays from the free balance).
    function _authorize(uint8 permission) private view returns (bool delegated) {
        if (msg.sender == cspOwner) return false;
        if (delegatePermissions[msg.sender] & permission == 0) revert NotPermitted(msg.sender, permission);
        return true;
    }

    function _pay(uint256 amount, bool delegated) private {
        if (!delegated) {
            _pull(amount);
        } else {
            uint256 free = freeBalance;
            if (amount > free) revert InsufficientFreeBalance(amount, free);
            freeBalance = free - amount;
        }
    }

    function _pull(uint256 amount) private {
        uint256 balance = usdc.balanceOf(msg.sender);
        uint256 allowance = usdc.allowance(msg.sender, address(this));
        if (balance < amount || allowance < amount) revert Underfunded(amount, balance, allowance);
        totalDeposited += amount;
        usdc.safeTransferFrom(msg.sender, address(this), amount);
    }
}
