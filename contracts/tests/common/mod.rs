//! Shared test harness: one Hardhat EDR node per test binary (started on first use, stopped when
//! the binary exits because its stdin closes), one tokio runtime, tests run one at a time (they
//! move the chain clock), and a `World` fixture with a fresh deployment per test.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{LazyLock, Mutex};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolInterface;
use r1_contracts::units::{r1_units, usdc_units};
use r1_contracts::{
    AvailabilityTable, DevChain, Error, JobRequest, LinkProof, PagesRecorded, Suite, SuiteConfig,
    VoteOutcome, deploy_suite,
};

/// Epoch length used by the tests (seconds).
pub const EPOCH: u64 = 3_600;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
});

static CHAIN: LazyLock<DevChain> = LazyLock::new(|| {
    RUNTIME
        .block_on(DevChain::start())
        .expect("start the hardhat node (run `npm ci` in contracts/)")
});

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs one test body against the shared chain, never two at once.
pub fn run<F: Future<Output = ()>>(body: impl FnOnce(&'static DevChain) -> F) {
    let _guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let chain: &'static DevChain = &CHAIN;
    RUNTIME.block_on(body(chain));
}

/// What `nodes` nodes cost, or are paid, for `seconds` at `price` per node per epoch: the
/// escrow's per-second rule, rounded down.
pub fn by_the_second(price: u64, nodes: u64, seconds: u64) -> U256 {
    U256::from(price) * U256::from(nodes) * U256::from(seconds) / U256::from(EPOCH)
}

/// One node's pay for `seconds` at `price`, split as the escrow splits it: (to the node, burned).
pub fn node_pay(price: u64, seconds: u64) -> (U256, U256) {
    let total = by_the_second(price, 1, seconds);
    let burn = total * U256::from(15u64) / U256::from(100u64);
    (total - burn, burn)
}

/// A fresh suite with governance, oracles, a CSP with an escrow, and one node owner holding a
/// licence for each of `nodes` (sorted ascending).
pub struct World {
    pub chain: &'static DevChain,
    pub gov: Suite,
    pub oracles: Vec<Suite>,
    /// The oracles' keys, in the order of `oracles`.
    pub oracle_keys: Vec<PrivateKeySigner>,
    pub csp: Suite,
    pub escrow: Address,
    pub owner: Suite,
    pub nodes: Vec<Address>,
    /// The nodes' keys, in the order of `nodes`.
    pub node_keys: Vec<PrivateKeySigner>,
    pub licences: Vec<u64>,
}

/// The node's (`node`) and an oracle's (`oracle`) signatures for `suite`'s signer to link
/// `node` to its licence `licence`, good for an hour of chain time.
pub async fn link_proof(
    chain: &DevChain,
    suite: &Suite,
    licence: u64,
    node: &PrivateKeySigner,
    oracle: &PrivateKeySigner,
) -> LinkProof {
    let deadline = chain.timestamp().await.expect("timestamp") + 3_600;
    let terms = suite
        .link_terms(licence, node.address(), deadline)
        .await
        .expect("link terms");
    LinkProof {
        deadline,
        node_signature: terms.sign(node).expect("node signs"),
        oracle_signature: terms.sign(oracle).expect("oracle signs"),
    }
}

/// An extra actor on the same deployment.
pub async fn actor(world: &World) -> Suite {
    let (address, provider) = world.chain.funded_account(1_000).await.expect("fund");
    Suite::new(provider, address, *world.gov.deployment())
}

impl World {
    pub async fn new(chain: &'static DevChain, oracles: usize, nodes: usize) -> World {
        World::with(chain, oracles, nodes, |_| {}).await
    }

    /// A world whose deployment's development configuration `tweak` changed first.
    pub async fn with(
        chain: &'static DevChain,
        oracles: usize,
        nodes: usize,
        tweak: impl FnOnce(&mut SuiteConfig),
    ) -> World {
        let (gov_address, gov_provider) = chain
            .funded_account(1_000_000)
            .await
            .expect("fund governance");
        let genesis = chain.timestamp().await.expect("timestamp");
        let mut config = SuiteConfig::devnet(
            genesis,
            EPOCH,
            Address::repeat_byte(0x11),
            Address::repeat_byte(0x22),
        );
        // The contract tests call every owner-only function directly; `job_rules.rs` deploys
        // with a timelock.
        config.governance_delay_seconds = None;
        tweak(&mut config);
        let deployment = deploy_suite(&gov_provider, gov_address, &config)
            .await
            .expect("deploy suite");
        let gov = Suite::new(gov_provider, gov_address, deployment);

        let mut oracle_clients = Vec::new();
        let mut oracle_keys = Vec::new();
        for _ in 0..oracles {
            let (key, provider) = chain.funded_signer(1_000).await.expect("fund oracle");
            gov.add_oracle(key.address()).await.expect("add oracle");
            oracle_clients.push(Suite::new(provider, key.address(), deployment));
            oracle_keys.push(key);
        }

        let (csp_address, csp_provider) = chain.funded_account(1_000).await.expect("fund csp");
        let escrow = gov.deploy_escrow(csp_address).await.expect("deploy escrow");
        gov.mint_usdc(csp_address, usdc_units(1_000_000))
            .await
            .expect("mint usdc");
        let csp = Suite::new(csp_provider, csp_address, deployment);

        let (owner_address, owner_provider) =
            chain.funded_account(1_000).await.expect("fund owner");
        gov.mint_r1(owner_address, r1_units(100_000))
            .await
            .expect("mint r1");
        let owner = Suite::new(owner_provider, owner_address, deployment);
        let mut node_keys: Vec<PrivateKeySigner> =
            (0..nodes).map(|_| PrivateKeySigner::random()).collect();
        node_keys.sort_by_key(PrivateKeySigner::address);
        let node_addresses: Vec<Address> = node_keys.iter().map(|k| k.address()).collect();
        let mut licences = Vec::new();
        for key in &node_keys {
            let licence = owner.buy_licence().await.expect("buy licence");
            let proof = link_proof(chain, &owner, licence, key, &oracle_keys[0]).await;
            owner
                .link_node(licence, key.address(), &proof)
                .await
                .expect("link node");
            licences.push(licence);
        }
        World {
            chain,
            gov,
            oracles: oracle_clients,
            oracle_keys,
            csp,
            escrow,
            owner,
            nodes: node_addresses,
            node_keys,
            licences,
        }
    }

    /// Moves the clock to the start of the next epoch.
    pub async fn next_epoch(&self) {
        self.advance_epochs(1).await;
    }

    /// Moves the clock to the start of the `epochs`-th epoch from now, in one jump (a long
    /// advance costs no more than a short one).
    pub async fn advance_epochs(&self, epochs: u64) {
        if epochs == 0 {
            return;
        }
        let now = self.chain.timestamp().await.expect("timestamp");
        let genesis: u64 = self
            .gov
            .manager()
            .genesisTimestamp()
            .call()
            .await
            .expect("genesis")
            .to();
        let into = (now - genesis) % EPOCH;
        self.chain
            .advance_time(EPOCH * epochs - into)
            .await
            .expect("advance");
    }

    /// The start of epoch 0.
    pub async fn genesis(&self) -> u64 {
        self.gov
            .manager()
            .genesisTimestamp()
            .call()
            .await
            .expect("genesis")
            .to()
    }

    /// The first second of `epoch`.
    pub async fn start_of(&self, epoch: u64) -> u64 {
        self.genesis().await + epoch * EPOCH
    }

    /// The time of the latest block: the last transaction's.
    pub async fn now(&self) -> u64 {
        self.chain.timestamp().await.expect("timestamp")
    }

    /// What job `job` cost when it was created for `nodes` nodes, by the escrow's per-second
    /// rule from its request time (as the chain recorded it) to the end of its last epoch.
    pub async fn creation_cost(&self, job: u64, nodes: u64) -> U256 {
        let state = self.csp.job(job).await.expect("job");
        let last: u64 = state.lastExecutionEpoch.to();
        let requested: u64 = state.requestTimestamp.to();
        let price: u64 = state.pricePerEpoch.to();
        by_the_second(price, nodes, self.start_of(last + 1).await - requested)
    }

    /// Mines a block at exactly `time` (later than the latest block's); the clock runs on from it.
    pub async fn advance_to(&self, time: u64) {
        self.chain
            .rpc()
            .raw_request::<_, serde_json::Value>("evm_setNextBlockTimestamp".into(), (time,))
            .await
            .expect("set the next block's time");
        self.chain
            .rpc()
            .raw_request::<_, serde_json::Value>("evm_mine".into(), Vec::<u64>::new())
            .await
            .expect("mine");
    }

    pub async fn epoch(&self) -> u64 {
        self.gov.current_epoch().await.expect("epoch")
    }

    /// Creates a job of type 1 (0.10 USDC per node per epoch) for `epochs` paid epochs.
    pub async fn create_job(&self, nodes: u64, epochs: u64) -> u64 {
        let request = JobRequest {
            job_type: 1,
            project_hash: B256::repeat_byte(0xab),
            last_execution_epoch: self.epoch().await + epochs,
            nodes,
        };
        self.csp
            .create_job(self.escrow, &request)
            .await
            .expect("create job")
    }

    /// Every oracle votes `nodes` for `job` until consensus; returns the accepted set.
    pub async fn agree(&self, job: u64, nodes: &[Address]) -> Vec<Address> {
        for oracle in &self.oracles {
            if let VoteOutcome::Accepted(set) =
                oracle.submit_node_update(job, nodes).await.expect("vote")
            {
                return set;
            }
        }
        panic!("no consensus on job {job}");
    }

    /// Every oracle votes `table` for `epoch` until it is agreed, then oracle 0 records every
    /// page of it.
    pub async fn agree_availability(&self, epoch: u64, table: &[(Address, u8)]) {
        for oracle in &self.oracles {
            oracle
                .submit_availability(epoch, table)
                .await
                .expect("vote");
            if self.gov.availability_agreed(epoch).await.expect("read") {
                let table = AvailabilityTable::new(epoch, table.iter().copied());
                let recorded = self.oracles[0]
                    .record_availability_pages(&table, 0, usize::MAX)
                    .await
                    .expect("record pages");
                assert!(matches!(recorded, PagesRecorded::Recorded { left: 0, .. }));
                assert!(self.gov.availability_recorded(epoch).await.expect("read"));
                return;
            }
        }
        panic!("no agreement on the availability of epoch {epoch}");
    }

    pub async fn usdc_balance(&self, who: Address) -> U256 {
        self.gov
            .usdc()
            .balanceOf(who)
            .call()
            .await
            .expect("balance")
    }

    pub async fn r1_balance(&self, who: Address) -> U256 {
        self.gov.r1().balanceOf(who).call().await.expect("balance")
    }

    pub async fn node_balance(&self, node: Address) -> U256 {
        self.gov
            .escrow(self.escrow)
            .virtualWalletBalance(node)
            .call()
            .await
            .expect("balance")
    }
}

/// Unwraps the revert of `result` as one of `E`'s errors.
pub fn revert_of<T, E: SolInterface + std::fmt::Debug>(result: Result<T, Error>) -> E {
    let Err(err) = result else {
        panic!("call should revert")
    };
    err.revert::<E>()
        .unwrap_or_else(|| panic!("unexpected error: {err}"))
}

/// Unwraps the revert of a raw contract call as one of `E`'s errors.
pub fn raw_revert_of<T, E: SolInterface + std::fmt::Debug>(
    result: Result<T, alloy::contract::Error>,
) -> E {
    revert_of(result.map_err(Error::from))
}

/// A fresh node address (from a random key, as a real node's would be).
pub fn random_address() -> Address {
    alloy::signers::local::PrivateKeySigner::random().address()
}
