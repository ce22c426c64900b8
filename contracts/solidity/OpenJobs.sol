// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title The set of open job ids, shared by the manager and every escrow
/// @notice An unordered set with O(1) add, remove and membership, and a cursor walk that stays
/// correct while jobs close between pages. Storage: the id array, then the 1-based slot of each
/// id (0 = absent); the layout of the two variables each contract kept before, so a beacon
/// upgrade of an escrow reads its old set unchanged.
library OpenJobs {
    /// @notice The ids, and where each one sits in `ids` (index + 1; 0 = not in the set).
    struct Set {
        uint256[] ids;
        mapping(uint256 => uint256) slot;
    }

    /// @notice Adds `id` (the caller makes sure it is new).
    function add(Set storage set, uint256 id) internal {
        set.ids.push(id);
        set.slot[id] = set.ids.length;
    }

    /// @notice Removes `id` if present: the last id takes its place.
    function remove(Set storage set, uint256 id) internal {
        uint256 slot = set.slot[id];
        if (slot == 0) return;
        uint256 last = set.ids[set.ids.length - 1];
        set.ids[slot - 1] = last;
        set.slot[last] = slot;
        set.ids.pop();
        delete set.slot[id];
    }

    /// @notice Whether `id` is in the set.
    function contains(Set storage set, uint256 id) internal view returns (bool) {
        return set.slot[id] != 0;
    }

    /// @notice How many ids the set holds.
    function length(Set storage set) internal view returns (uint256) {
        return set.ids.length;
    }

    /// @notice Every id, in storage order.
    function values(Set storage set) internal view returns (uint256[] memory) {
        return set.ids;
    }

    /// @notice Where a downward walk goes on: walks start at `type(uint256).max` and visit index
    /// `cursor - 1` next; the cursor is clamped to the set's size, since removals (which move the
    /// last, already visited id down) may have shrunk it. A walk ends at 0 and visits every id that
    /// stays in the set from its start to its end at least once (one moved down by a removal may
    /// be visited twice); ids added meanwhile go on top and are not visited.
    function clampCursor(Set storage set, uint256 cursor) internal view returns (uint256) {
        uint256 size = set.ids.length;
        return cursor > size ? size : cursor;
    }
}
