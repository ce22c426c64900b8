// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";
import {NodeDeed} from "../NodeDeed.sol";

/// @title Licences in bulk, for benchmarks with thousands of simulated nodes (development chains)
/// @notice Buys Node Deed licences with the R1 it holds and links nodes to them, many per
/// transaction, so a test chain licenses 10,000 nodes in about a hundred transactions instead
/// of 40,000. It buys and links through the Node Deed's public functions like any operator: it
/// owns the licences, pays their tier price, and every link carries the node's and an oracle's
/// signature over this contract as the owner. Only its deployer may use it.
contract BulkLicences is IERC721Receiver {
    /// @notice The Node Deed licences are bought from.
    NodeDeed public immutable deed;
    /// @notice Who deployed this contract and alone may use it.
    address public immutable operator;

    /// @notice The caller is not the deployer.
    error NotOperator(address caller);
    /// @notice The arrays of a batch differ in length.
    error LengthMismatch();

    /// @notice Links and buys to `deed`, paying with `r1`, which it approves once for good.
    constructor(NodeDeed deed_, IERC20 r1) {
        deed = deed_;
        operator = msg.sender;
        r1.approve(address(deed_), type(uint256).max);
    }

    /// @notice Buys `count` licences at no more than `maxPrice` R1 each; returns the first id.
    function buy(uint256 count, uint256 maxPrice) external returns (uint256 firstId) {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        for (uint256 i = 0; i < count; i++) {
            uint256 id = deed.buyLicence(maxPrice);
            if (i == 0) firstId = id;
        }
    }

    /// @notice Links `nodes[i]` to licence `licenceIds[i]`, with signatures good until `deadline`.
    function link(
        uint256[] calldata licenceIds,
        address[] calldata nodes,
        uint256 deadline,
        bytes[] calldata nodeSignatures,
        bytes[] calldata oracleSignatures
    ) external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        uint256 n = licenceIds.length;
        if (nodes.length != n || nodeSignatures.length != n || oracleSignatures.length != n) {
            revert LengthMismatch();
        }
        for (uint256 i = 0; i < n; i++) {
            deed.linkNode(licenceIds[i], nodes[i], deadline, nodeSignatures[i], oracleSignatures[i]);
        }
    }

    /// @notice Accepts the licences the Node Deed mints to it.
    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return IERC721Receiver.onERC721Received.selector;
    }
}
