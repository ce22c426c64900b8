// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IR1} from "./interfaces/IR1.sol";
import {ILicenceManager} from "./interfaces/ILicenceManager.sol";

/// @title Node Deed licences
/// @notice An ERC-721 bought with R1 at a tiered price. Each purchase burns 20 % of the price,
/// sends 50 % to the liquidity wallet and 30 % to the operations wallet. The holder links one
/// node address to the licence; a node belongs to at most one licence. A link carries two
/// EIP-712 signatures of the same `LinkNode` record: the node's own key (it agrees to serve
/// this licence and owner; a per-node nonce makes each signature good for one link) and an
/// oracle's (it has seen the node run). A licence takes a new node only `relinkDelay` after
/// its last link, and gives up its node only once the node's earnings are claimed, so nobody
/// links another operator's node or collects what it earned for someone else. Proof-of-Availability
/// mints `N/T × A/255` R1 per epoch to the holder for the oracle-agreed availability byte `A`
/// of the linked node, until `N` has been minted for the licence; blacklisted and suspended
/// nodes mint nothing. Each linked node's service record counts its measured epochs and those
/// at the whitepaper's 98 % level (`A ≥ 250`): a flag for reputation, not for payouts.
///
/// Besides the Node Deeds sold (ids 1…46,224), the owner mints the whitepaper's two other
/// classes: up to 500 Master Node Deeds (ids from `MASTER_ID_BASE`), together 26.1 % of the R1
/// cap, mining nothing for their first 223 epochs and then their share over 900 epochs; and one
/// Genesis Node Deed (`GENESIS_ID`), 28.9 % of the cap over the first 365 epochs. Both mine in
/// proportion to availability like a Node Deed, and neither earns PoAI: a node linked to one is
/// named in no job's node set.
contract NodeDeed is ERC721, Ownable, EIP712 {
    /// @notice Most licences that can ever exist.
    uint256 public constant MAX_LICENCES = 46_224;
    /// @notice PoA cap per licence, `N` = 1,575.19 R1.
    uint256 public constant MAX_POA_PER_LICENCE = 1_575.19 ether;
    /// @notice Epoch credits per licence, `T`.
    uint256 public constant POA_EPOCH_CREDITS = 1_080;
    /// @notice Share of a sale that is burned, in percent.
    uint256 public constant BURN_PERCENT = 20;
    /// @notice Share of a sale that goes to the liquidity wallet, in percent.
    uint256 public constant LIQUIDITY_PERCENT = 50;
    /// @notice The record a node and an oracle sign to link the node to a licence.
    bytes32 public constant LINK_TYPEHASH =
        keccak256("LinkNode(uint256 licenceId,address owner,address node,uint256 nonce,uint256 deadline)");
    /// @notice The availability byte from which an epoch counts as served at 98 % (250/255).
    uint8 public constant SLA_AVAILABILITY = 250;
    /// @notice Master Node Deeds that can ever exist.
    uint256 public constant MAX_MASTER_LICENCES = 500;
    /// @notice Master Node Deed ids are `MASTER_ID_BASE + 1 …`.
    uint256 public constant MASTER_ID_BASE = 1_000_000;
    /// @notice The one Genesis Node Deed's id.
    uint256 public constant GENESIS_ID = 2_000_000;
    /// @notice What every Master Node Deed together mines: 26.1 % of the R1 cap.
    uint256 public constant MASTER_POOL = (161_803_398 ether * 261) / 1000;
    /// @notice PoA cap of one Master Node Deed.
    uint256 public constant MAX_POA_PER_MASTER = MASTER_POOL / MAX_MASTER_LICENCES;
    /// @notice Epochs (from the manager's genesis) before a Master Node Deed mines.
    uint256 public constant MASTER_CLIFF_EPOCHS = 223;
    /// @notice Epochs over which a Master Node Deed mines its cap, after the cliff.
    uint256 public constant MASTER_MINING_EPOCHS = 900;
    /// @notice PoA cap of the Genesis Node Deed: 28.9 % of the R1 cap.
    uint256 public constant MAX_POA_GENESIS = (161_803_398 ether * 289) / 1000;
    /// @notice Epochs (from the manager's genesis) over which the Genesis Node Deed mines.
    uint256 public constant GENESIS_MINING_EPOCHS = 365;

    /// @notice The three classes of licence.
    enum Kind {
        Node,
        Master,
        Genesis
    }

    /// @notice A node's availability history, one storage slot.
    struct ServiceRecord {
        /// @dev Epochs with an agreed availability while the node was linked.
        uint64 epochsMeasured;
        /// @dev Of those, epochs at `SLA_AVAILABILITY` or above.
        uint64 epochsAtSla;
        /// @dev The last epoch measured.
        uint64 lastEpoch;
        /// @dev Whether the last epoch measured was at the 98 % level.
        bool lastAtSla;
    }

    /// @notice The R1 token (the price currency and the PoA reward).
    IR1 public immutable r1;
    /// @notice Receives 50 % of every sale.
    address public immutable liquidityWallet;
    /// @notice Receives 30 % of every sale.
    address public immutable operationsWallet;
    /// @notice Seconds after a link before the licence may be linked again (24 h on mainnet).
    uint256 public immutable relinkDelay;
    /// @notice The PoAI manager, the only contract that may record availability.
    address public manager;

    /// @notice Price in R1 of every licence sold while `totalSold < tierCap[i]`.
    uint256[] public tierPrice;
    /// @notice Cumulative licence count at which each tier ends.
    uint256[] public tierCap;
    /// @notice Licences sold so far (token ids are 1..totalSold).
    uint256 public totalSold;

    /// @notice Licence linked to each node address (0 = none).
    mapping(address => uint256) public licenceOfNode;
    /// @notice Node address linked to each licence (zero = none).
    mapping(uint256 => address) public nodeOfLicence;
    /// @notice PoA R1 already minted for each licence.
    mapping(uint256 => uint256) public poaMinted;
    /// @notice Links each node has signed so far: the nonce its next link signature must carry.
    mapping(address => uint256) public linkNonce;
    /// @notice When each licence was last linked (unix seconds; 0 = never).
    mapping(uint256 => uint256) public linkedAt;
    /// @notice Each node's availability history (the 98 % flag).
    mapping(address => ServiceRecord) public serviceRecord;
    /// @notice Master Node Deeds minted so far.
    uint256 public mastersMinted;

    /// @notice The tier table is malformed.
    error InvalidTiers();
    /// @notice Every licence of every tier has been sold.
    error SoldOut();
    /// @notice The current price exceeds the buyer's limit.
    error PriceAboveLimit(uint256 price, uint256 maxPrice);
    /// @notice The caller does not own the licence.
    error NotLicenceOwner(uint256 licenceId, address caller);
    /// @notice The node is already linked to a licence.
    error NodeAlreadyLinked(address node, uint256 licenceId);
    /// @notice The licence already has a node.
    error LicenceAlreadyLinked(uint256 licenceId, address node);
    /// @notice The licence has no node to unlink.
    error LicenceNotLinked(uint256 licenceId);
    /// @notice The zero address cannot be a node.
    error ZeroNode();
    /// @notice Only the PoAI manager may call this.
    error NotManager(address caller);
    /// @notice The manager has already been set.
    error ManagerAlreadySet();
    /// @notice The node and availability arrays differ in length.
    error LengthMismatch();
    /// @notice The link's signatures were good until `deadline`.
    error LinkExpired(uint256 deadline);
    /// @notice The node's signature is not the node's.
    error BadNodeSignature(address node, address signer);
    /// @notice The attesting signature is not an oracle's.
    error NotOracleSignature(address signer);
    /// @notice The licence was linked too recently to be linked again before `allowedAt`.
    error RelinkTooSoon(uint256 licenceId, uint256 allowedAt);
    /// @notice The node has earnings to claim before it can be unlinked.
    error UnclaimedRewards(address node, uint256 amount);
    /// @notice All 500 Master Node Deeds exist.
    error MastersExhausted();
    /// @notice The Genesis Node Deed exists.
    error GenesisExists();

    /// @notice A licence was sold, with the split of its price.
    event LicenceBought(address indexed buyer, uint256 indexed licenceId, uint256 price, uint256 burned, uint256 toLiquidity, uint256 toOperations);
    /// @notice A node was linked to a licence.
    event NodeLinked(uint256 indexed licenceId, address indexed node, address indexed oracle);
    /// @notice A node was unlinked from a licence.
    event NodeUnlinked(uint256 indexed licenceId, address indexed node);
    /// @notice The owner minted a Master Node Deed or the Genesis Node Deed.
    event ReservedLicenceMinted(address indexed to, uint256 indexed licenceId, Kind kind);
    /// @notice PoA R1 was minted for a licence for one epoch.
    event PoaMinted(uint256 indexed epoch, uint256 indexed licenceId, address indexed node, uint8 availability, uint256 amount);

    constructor(
        IR1 r1_,
        address liquidityWallet_,
        address operationsWallet_,
        address initialOwner,
        uint256[] memory prices,
        uint256[] memory caps,
        uint256 relinkDelay_
    ) ERC721("Ratio1 Node Deed", "ND") Ownable(initialOwner) EIP712("Ratio1 Node Deed", "1") {
        if (prices.length == 0 || prices.length != caps.length) revert InvalidTiers();
        uint256 previous = 0;
        for (uint256 i = 0; i < caps.length; i++) {
            if (caps[i] <= previous || caps[i] > MAX_LICENCES || prices[i] == 0) revert InvalidTiers();
            previous = caps[i];
        }
        r1 = r1_;
        liquidityWallet = liquidityWallet_;
        operationsWallet = operationsWallet_;
        relinkDelay = relinkDelay_;
        tierPrice = prices;
        tierCap = caps;
    }

    /// @notice Sets the PoAI manager once.
    function setManager(address manager_) external onlyOwner {
        if (manager != address(0)) revert ManagerAlreadySet();
        manager = manager_;
    }

    /// @notice Mints the next Master Node Deed to `to` (owner only; 500 at most).
    function mintMaster(address to) external onlyOwner returns (uint256 licenceId) {
        if (mastersMinted >= MAX_MASTER_LICENCES) revert MastersExhausted();
        licenceId = MASTER_ID_BASE + ++mastersMinted;
        _safeMint(to, licenceId);
        emit ReservedLicenceMinted(to, licenceId, Kind.Master);
    }

    /// @notice Mints the one Genesis Node Deed to `to` (owner only).
    function mintGenesis(address to) external onlyOwner {
        if (_ownerOf(GENESIS_ID) != address(0)) revert GenesisExists();
        _safeMint(to, GENESIS_ID);
        emit ReservedLicenceMinted(to, GENESIS_ID, Kind.Genesis);
    }

    /// @notice The class of licence `licenceId`, by its id range.
    function kindOf(uint256 licenceId) public pure returns (Kind) {
        if (licenceId >= GENESIS_ID) return Kind.Genesis;
        if (licenceId > MASTER_ID_BASE) return Kind.Master;
        return Kind.Node;
    }

    /// @notice Whether `node` is linked to a Node Deed, the only class that may be given jobs.
    function forHire(address node) external view returns (bool) {
        uint256 licenceId = licenceOfNode[node];
        return licenceId != 0 && kindOf(licenceId) == Kind.Node;
    }

    /// @notice The most PoA licence `licenceId` mines in all.
    function poaCap(uint256 licenceId) public pure returns (uint256) {
        Kind kind = kindOf(licenceId);
        if (kind == Kind.Genesis) return MAX_POA_GENESIS;
        if (kind == Kind.Master) return MAX_POA_PER_MASTER;
        return MAX_POA_PER_LICENCE;
    }

    /// @notice The PoA licence `licenceId` mines for epoch `epoch` at availability `a`, before
    /// its cap: a Node Deed `N/T × a/255` (see `poaRewardFor`); a Master Node Deed its cap over
    /// 900 epochs after a 223-epoch cliff; the Genesis Node Deed its cap over epochs 0…364.
    function poaRewardOf(uint256 licenceId, uint256 epoch, uint8 a) public pure returns (uint256) {
        Kind kind = kindOf(licenceId);
        if (kind == Kind.Node) return poaRewardFor(a);
        if (kind == Kind.Master) {
            if (epoch < MASTER_CLIFF_EPOCHS || epoch >= MASTER_CLIFF_EPOCHS + MASTER_MINING_EPOCHS) return 0;
            return (MAX_POA_PER_MASTER * a) / (MASTER_MINING_EPOCHS * 255);
        }
        if (epoch >= GENESIS_MINING_EPOCHS) return 0;
        return (MAX_POA_GENESIS * a) / (GENESIS_MINING_EPOCHS * 255);
    }

    /// @notice The price of the next licence, in R1.
    function currentPrice() public view returns (uint256) {
        for (uint256 i = 0; i < tierCap.length; i++) {
            if (totalSold < tierCap[i]) return tierPrice[i];
        }
        revert SoldOut();
    }

    /// @notice Buys the next licence at the current tier price (at most `maxPrice`), pulling R1
    /// from the caller, who must have approved it.
    function buyLicence(uint256 maxPrice) external returns (uint256 licenceId) {
        uint256 price = currentPrice();
        if (price > maxPrice) revert PriceAboveLimit(price, maxPrice);
        uint256 burned = (price * BURN_PERCENT) / 100;
        uint256 toLiquidity = (price * LIQUIDITY_PERCENT) / 100;
        uint256 toOperations = price - burned - toLiquidity;
        licenceId = ++totalSold;
        r1.transferFrom(msg.sender, address(this), burned);
        r1.burn(burned);
        r1.transferFrom(msg.sender, liquidityWallet, toLiquidity);
        r1.transferFrom(msg.sender, operationsWallet, toOperations);
        _safeMint(msg.sender, licenceId);
        emit LicenceBought(msg.sender, licenceId, price, burned, toLiquidity, toOperations);
    }

    /// @notice The EIP-712 digest a node and an oracle sign to link `node` to licence
    /// `licenceId` of `owner` with the node's current nonce, good until `deadline`.
    function linkDigest(uint256 licenceId, address owner, address node, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(LINK_TYPEHASH, licenceId, owner, node, linkNonce[node], deadline))
        );
    }

    /// @notice Links `node` to the caller's licence, with the node's and an oracle's signatures
    /// of [`linkDigest`] (65 bytes each).
    function linkNode(
        uint256 licenceId,
        address node,
        uint256 deadline,
        bytes calldata nodeSignature,
        bytes calldata oracleSignature
    ) external {
        _requireLicenceOwner(licenceId);
        if (node == address(0)) revert ZeroNode();
        if (block.timestamp > deadline) revert LinkExpired(deadline);
        uint256 existing = licenceOfNode[node];
        if (existing != 0) revert NodeAlreadyLinked(node, existing);
        address linked = nodeOfLicence[licenceId];
        if (linked != address(0)) revert LicenceAlreadyLinked(licenceId, linked);
        uint256 last = linkedAt[licenceId];
        if (last != 0 && block.timestamp < last + relinkDelay) {
            revert RelinkTooSoon(licenceId, last + relinkDelay);
        }
        bytes32 digest = linkDigest(licenceId, msg.sender, node, deadline);
        address signer = ECDSA.recover(digest, nodeSignature);
        if (signer != node) revert BadNodeSignature(node, signer);
        address oracle = ECDSA.recover(digest, oracleSignature);
        if (!ILicenceManager(manager).isOracle(oracle)) revert NotOracleSignature(oracle);
        linkNonce[node] += 1;
        linkedAt[licenceId] = block.timestamp;
        licenceOfNode[node] = licenceId;
        nodeOfLicence[licenceId] = node;
        emit NodeLinked(licenceId, node, oracle);
    }

    /// @notice Unlinks the node of the caller's licence, once its earnings are claimed (a
    /// blacklisted node's cannot be, and do not hold it).
    function unlinkNode(uint256 licenceId) external {
        _requireLicenceOwner(licenceId);
        address node = nodeOfLicence[licenceId];
        if (node == address(0)) revert LicenceNotLinked(licenceId);
        ILicenceManager rewards = ILicenceManager(manager);
        if (!rewards.isBlacklisted(node)) {
            uint256 pending = rewards.pendingRewards(node);
            if (pending != 0) revert UnclaimedRewards(node, pending);
        }
        delete licenceOfNode[node];
        delete nodeOfLicence[licenceId];
        emit NodeUnlinked(licenceId, node);
    }

    /// @notice The owner of the licence `node` is linked to (zero when unlinked).
    function ownerOfNode(address node) external view returns (address) {
        uint256 licenceId = licenceOfNode[node];
        return licenceId == 0 ? address(0) : ownerOf(licenceId);
    }

    /// @notice The PoA reward for one epoch at availability `a`: `N/T × a/255`.
    function poaRewardFor(uint8 a) public pure returns (uint256) {
        return (MAX_POA_PER_LICENCE * a) / (POA_EPOCH_CREDITS * 255);
    }

    /// @notice Mints the PoA rewards of `epoch` for the oracle-agreed availability of `nodes`
    /// (one page of the epoch's table; the manager records each page once), and adds the epoch
    /// to each linked node's service record. Unlinked, blacklisted and suspended nodes earn
    /// nothing, a node already measured in `epoch` earns nothing again, and a licence never
    /// mints beyond `N`.
    function recordAvailability(uint256 epoch, address[] calldata nodes, uint8[] calldata availability) external {
        if (msg.sender != manager) revert NotManager(msg.sender);
        if (nodes.length != availability.length) revert LengthMismatch();
        ILicenceManager trust = ILicenceManager(manager);
        for (uint256 i = 0; i < nodes.length; i++) {
            uint256 licenceId = licenceOfNode[nodes[i]];
            if (licenceId == 0) continue;
            if (!_recordService(nodes[i], epoch, availability[i])) continue;
            if (trust.isBlacklisted(nodes[i]) || trust.isSuspended(nodes[i])) continue;
            uint256 amount = poaRewardOf(licenceId, epoch, availability[i]);
            uint256 left = poaCap(licenceId) - poaMinted[licenceId];
            if (amount > left) amount = left;
            if (amount == 0) continue;
            poaMinted[licenceId] += amount;
            r1.mint(ownerOf(licenceId), amount);
            emit PoaMinted(epoch, licenceId, nodes[i], availability[i], amount);
        }
    }

    /// @dev False, recording nothing, when the node's record already holds `epoch`.
    function _recordService(address node, uint256 epoch, uint8 availability) private returns (bool) {
        ServiceRecord storage record = serviceRecord[node];
        if (record.epochsMeasured > 0 && record.lastEpoch == epoch) return false;
        bool atSla = availability >= SLA_AVAILABILITY;
        record.epochsMeasured += 1;
        if (atSla) record.epochsAtSla += 1;
        record.lastEpoch = uint64(epoch);
        record.lastAtSla = atSla;
        return true;
    }

    function _requireLicenceOwner(uint256 licenceId) private view {
        if (ownerOf(licenceId) != msg.sender) revert NotLicenceOwner(licenceId, msg.sender);
    }
}
