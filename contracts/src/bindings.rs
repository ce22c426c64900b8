//! alloy bindings generated at compile time from `artifacts/*.json` (written by
//! `scripts/compile.cjs`; a test fails when they drift from `solidity/`). Each module carries
//! the ABI types, the revert errors, the events, a typed instance and `deploy` with the bytecode.
#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc, all_derives)]
    R1,
    "artifacts/R1.json"
);

sol!(
    #[sol(rpc, all_derives)]
    TestUSDC,
    "artifacts/TestUSDC.json"
);

sol!(
    #[sol(rpc, all_derives)]
    R1UsdcPool,
    "artifacts/R1UsdcPool.json"
);

sol!(
    #[sol(rpc, all_derives)]
    NodeDeed,
    "artifacts/NodeDeed.json"
);

sol!(
    #[sol(rpc, all_derives)]
    CspEscrow,
    "artifacts/CspEscrow.json"
);

/// The test-only second escrow implementation, in its own module because its ABI names the
/// `CspEscrow` structs again.
pub mod v2 {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        CspEscrowV2,
        "artifacts/CspEscrowV2.json"
    );
}

sol!(
    #[sol(rpc, all_derives)]
    BulkLicences,
    "artifacts/BulkLicences.json"
);

sol!(
    #[sol(rpc, all_derives)]
    PoAIManager,
    "artifacts/PoAIManager.json"
);

sol!(
    #[sol(rpc, all_derives)]
    UpgradeableBeacon,
    "artifacts/UpgradeableBeacon.json"
);

sol!(
    #[sol(rpc, all_derives)]
    TimelockController,
    "artifacts/TimelockController.json"
);
