//! Deploying the whole suite: tokens, pool, licences, escrow beacon and PoAI manager, wired
//! together (manager on the licences, licences as R1 minter, pool liquidity, price table).

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use serde::{Deserialize, Serialize};

use crate::bindings::{
    CspEscrow, NodeDeed, PoAIManager, R1, R1UsdcPool, TestUSDC, TimelockController,
    UpgradeableBeacon,
};
use crate::error::Result;
use crate::quorum::Quorum;
use crate::tx::confirm;
use crate::units::{r1_units, usdc_units};

/// One licence price tier: `price` R1 each until `cap` licences have been sold in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceTier {
    /// Price in R1 wei.
    pub price: U256,
    /// Cumulative number of licences at which the tier ends.
    pub cap: u64,
}

/// What the deployment is parameterised by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteConfig {
    /// Start of epoch 0 (unix seconds, not in the future).
    pub genesis_timestamp: u64,
    /// Epoch length in seconds (mainnet 86,400; devnet a few seconds).
    pub epoch_seconds: u64,
    /// Receives 50 % of licence sales.
    pub liquidity_wallet: Address,
    /// Receives 30 % of licence sales.
    pub operations_wallet: Address,
    /// Seconds after a licence's link before it may be linked again (mainnet 86,400).
    pub relink_delay_seconds: u64,
    /// Seconds after a job's node-set decision before the next one (mainnet 300).
    #[serde(default)]
    pub decision_cooldown_seconds: u64,
    /// Seconds after its request before a job never started may be redeemed (mainnet 3,600).
    #[serde(default)]
    pub redeem_delay_seconds: u64,
    /// The rule consensus rounds decide by (see [`crate::quorum`]).
    #[serde(default)]
    pub quorum: Quorum,
    /// Epochs without an allocation after which CSPs may take their jobs back (mainnet 7).
    #[serde(default = "default_exit_after_epochs")]
    pub exit_after_epochs: u64,
    /// Seconds a timelock holds every owner-only change (oracle set, swap venue, guardian,
    /// escrow upgrades, R1 minters, Master and Genesis Node Deeds) before it may be executed; `None` deploys no timelock and
    /// leaves the deployer the direct owner. The deployer stays the guardian (prices,
    /// blacklist, suspensions, escrows) either way.
    #[serde(default)]
    pub governance_delay_seconds: Option<u64>,
    /// Licence price tiers.
    pub licence_tiers: Vec<LicenceTier>,
    /// Price per node per epoch (USDC units) by job type / resource class id.
    pub job_prices: Vec<(u8, U256)>,
    /// USDC seeded into the development pool.
    pub pool_usdc: U256,
    /// R1 seeded into the development pool.
    pub pool_r1: U256,
}

impl SuiteConfig {
    /// A development configuration: two licence tiers (100 R1, then 200 R1), the container price
    /// classes micro/lite/entry (ids 1–3: 0.10, 0.166666, 0.375 USDC), a pool priced at
    /// 1 R1 = 0.50 USDC, the mainnet's relink and redeem delays as one epoch (their 24 h and
    /// 1 h would outlast a devnet's tests), no
    /// decision cooldown (the mainnet's 300 s would outlast a devnet's epochs and its tests),
    /// and the reference quorum rule (three oracles that keep deciding with one down).
    pub fn devnet(
        genesis_timestamp: u64,
        epoch_seconds: u64,
        liquidity_wallet: Address,
        operations_wallet: Address,
    ) -> Self {
        SuiteConfig {
            genesis_timestamp,
            epoch_seconds,
            liquidity_wallet,
            operations_wallet,
            relink_delay_seconds: epoch_seconds,
            decision_cooldown_seconds: 0,
            redeem_delay_seconds: epoch_seconds,
            exit_after_epochs: default_exit_after_epochs(),
            governance_delay_seconds: Some(0),
            quorum: Quorum::Reference,
            licence_tiers: vec![
                LicenceTier {
                    price: r1_units(100),
                    cap: 1_000,
                },
                LicenceTier {
                    price: r1_units(200),
                    cap: 46_224,
                },
            ],
            job_prices: vec![
                (1, U256::from(100_000u64)),
                (2, U256::from(166_666u64)),
                (3, U256::from(375_000u64)),
            ],
            pool_usdc: usdc_units(500_000),
            pool_r1: r1_units(1_000_000),
        }
    }
}

/// Addresses of a deployed suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The R1 token.
    pub r1: Address,
    /// The (test) USDC token.
    pub usdc: Address,
    /// The USDC→R1 swap venue.
    pub pool: Address,
    /// The Node Deed licences.
    pub node_deed: Address,
    /// The escrow implementation behind the beacon.
    pub escrow_implementation: Address,
    /// The beacon every escrow proxy follows.
    pub beacon: Address,
    /// The PoAI manager.
    pub manager: Address,
    /// The timelock owning the manager, the beacon and R1 (zero: none; the deployer owns them).
    #[serde(default)]
    pub timelock: Address,
}

fn default_exit_after_epochs() -> u64 {
    3
}

/// Gas added to the PoAI manager deployment's estimate (see where it is used).
const MANAGER_DEPLOY_GAS_HEADROOM: u64 = 50_000;

/// Deploys and wires the suite; `owner`, the address `provider` signs as, becomes the
/// governance owner of every contract.
pub async fn deploy_suite(
    provider: &DynProvider,
    owner: Address,
    config: &SuiteConfig,
) -> Result<Deployment> {
    let p = provider.clone();
    let r1 = R1::deploy_builder(p.clone(), owner).deploy().await?;
    let usdc = TestUSDC::deploy_builder(p.clone(), owner).deploy().await?;
    let pool = R1UsdcPool::deploy_builder(p.clone(), usdc, r1, owner)
        .deploy()
        .await?;
    let prices = config.licence_tiers.iter().map(|t| t.price).collect();
    let caps = config
        .licence_tiers
        .iter()
        .map(|t| U256::from(t.cap))
        .collect();
    let node_deed = NodeDeed::deploy_builder(
        p.clone(),
        r1,
        config.liquidity_wallet,
        config.operations_wallet,
        owner,
        prices,
        caps,
        U256::from(config.relink_delay_seconds),
    )
    .deploy()
    .await?;
    let escrow_implementation = CspEscrow::deploy_builder(p.clone()).deploy().await?;
    let beacon = UpgradeableBeacon::deploy_builder(p.clone(), escrow_implementation, owner)
        .deploy()
        .await?;
    let manager_builder = PoAIManager::deploy_builder(
        p.clone(),
        owner,
        usdc,
        r1,
        node_deed,
        pool,
        beacon,
        PoAIManager::Settings {
            genesisTimestamp: U256::from(config.genesis_timestamp),
            epochSeconds: U256::from(config.epoch_seconds),
            decisionCooldown: U256::from(config.decision_cooldown_seconds),
            redeemDelay: U256::from(config.redeem_delay_seconds),
            quorum: config.quorum.as_u8(),
            exitAfterEpochs: U256::from(config.exit_after_epochs),
        },
    );
    // The constructor stores the current epoch: 20 000 gas more from epoch 1 on than in epoch
    // 0, so with short epochs an estimate taken in epoch 0 could fall short once mined.
    let manager_gas = manager_builder
        .estimate_gas()
        .await?
        .saturating_add(MANAGER_DEPLOY_GAS_HEADROOM);
    let manager = manager_builder.gas(manager_gas).deploy().await?;

    let deed = NodeDeed::new(node_deed, p.clone());
    confirm(deed.setManager(manager)).await?;
    let r1_token = R1::new(r1, p.clone());
    confirm(r1_token.setMinter(node_deed, true)).await?;

    let usdc_token = TestUSDC::new(usdc, p.clone());
    let pool_contract = R1UsdcPool::new(pool, p.clone());
    confirm(r1_token.setMinter(owner, true)).await?;
    confirm(r1_token.mint(owner, config.pool_r1)).await?;
    confirm(r1_token.setMinter(owner, false)).await?;
    confirm(usdc_token.mint(owner, config.pool_usdc)).await?;
    confirm(r1_token.approve(pool, config.pool_r1)).await?;
    confirm(usdc_token.approve(pool, config.pool_usdc)).await?;
    confirm(pool_contract.addLiquidity(config.pool_usdc, config.pool_r1)).await?;

    let manager_contract = PoAIManager::new(manager, p.clone());
    for (job_type, price) in &config.job_prices {
        confirm(manager_contract.setJobTypePrice(*job_type, *price)).await?;
    }
    let timelock = match config.governance_delay_seconds {
        None => Address::ZERO,
        Some(delay) => {
            let timelock = TimelockController::deploy_builder(
                p.clone(),
                U256::from(delay),
                vec![owner],
                vec![owner],
                Address::ZERO,
            )
            .deploy()
            .await?;
            confirm(manager_contract.transferOwnership(timelock)).await?;
            let beacon_contract = UpgradeableBeacon::new(beacon, p.clone());
            confirm(beacon_contract.transferOwnership(timelock)).await?;
            confirm(r1_token.transferOwnership(timelock)).await?;
            confirm(deed.transferOwnership(timelock)).await?;
            timelock
        }
    };
    Ok(Deployment {
        r1,
        usdc,
        pool,
        node_deed,
        escrow_implementation,
        beacon,
        manager,
        timelock,
    })
}
