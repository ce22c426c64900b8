//! A development chain for whole-network tests: a Hardhat EDR node with the r1 contract suite
//! deployed by governance (Hardhat account #0), and the chain-side chores a network needs before
//! it can run jobs: oracles registered, prices set, nodes licensed, CSPs funded with escrows.
//!
//! The API is blocking, like the rest of the harness: the chain owns a small tokio runtime and
//! every call waits for its transactions to be mined.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use r1_contracts::units::{r1_units, usdc_units};
use r1_contracts::{Deployment, DevChain, LinkProof, Suite, SuiteConfig, deploy_suite};
use r1_crds::pricing::Catalogue;

/// Hardhat account #0, governance owner of every contract.
pub const GOVERNANCE_KEY: &str =
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Hardhat account #1, the CSP of the examples (`crds/examples`).
pub const CSP_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// Ether every account the harness funds gets, enough gas for any test.
pub const FUNDING_ETHER: u64 = 1_000;

/// R1 minted to a node operator: one licence costs 100 R1 (then 200 R1) on the devnet.
const OPERATOR_R1: u64 = 1_000;

/// How long the harness's link signatures stay good (chain seconds).
const LINK_VALID_SECONDS: u64 = 3_600;

/// Why the chain could not be started or did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The runtime that drives the chain client could not be built.
    #[error("cannot build a tokio runtime for the chain client: {0}")]
    Runtime(std::io::Error),
    /// The chain, a call or a transaction failed.
    #[error(transparent)]
    Contracts(#[from] r1_contracts::Error),
    /// A key is not `0x` + 64 hex digits of a valid secp256k1 secret.
    #[error("not a valid private key (0x followed by 64 lowercase hex digits)")]
    Key,
    /// The licence's owner is not an operator the harness created.
    #[error("{0} is not an operator this harness created")]
    NotHarnessOperator(Address),
    /// A number on chain does not fit where the harness keeps it.
    #[error("{what} is out of range: {value}")]
    Range {
        /// What was read.
        what: &'static str,
        /// The value.
        value: U256,
    },
}

/// A Hardhat EDR node with the r1 suite deployed; stopped on drop.
pub struct TestChain {
    gov: Suite,
    epoch_seconds: u64,
    genesis_unix: u64,
    chain_id: u64,
    operators: Mutex<BTreeMap<Address, PrivateKeySigner>>,
    devchain: DevChain,
    runtime: tokio::runtime::Runtime,
}

impl TestChain {
    /// Starts the node and deploys the suite with epochs of `epoch_seconds`, epoch 0 starting
    /// at the chain's current time.
    pub fn start(epoch_seconds: u64) -> Result<Self, ChainError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ChainError::Runtime)?;
        let governance = signer(GOVERNANCE_KEY)?;
        let (devchain, gov, genesis_unix, chain_id) = runtime.block_on(async {
            let devchain = DevChain::start().await?;
            let genesis = devchain.timestamp().await?;
            let chain_id = devchain
                .rpc()
                .get_chain_id()
                .await
                .map_err(r1_contracts::Error::from)?;
            let config = SuiteConfig::devnet(
                genesis,
                epoch_seconds,
                Address::repeat_byte(0x11),
                Address::repeat_byte(0x22),
            );
            let address = governance.address();
            let provider = devchain.connect(governance);
            let deployment = deploy_suite(&provider, address, &config).await?;
            let gov = Suite::new(provider, address, deployment);
            Ok::<_, ChainError>((devchain, gov, genesis, chain_id))
        })?;
        Ok(Self {
            gov,
            epoch_seconds,
            genesis_unix,
            chain_id,
            operators: Mutex::new(BTreeMap::new()),
            devchain,
            runtime,
        })
    }

    /// The JSON-RPC endpoint, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.devchain
            .url()
            .to_string()
            .trim_end_matches('/')
            .to_owned()
    }

    /// The chain id the node reports (31337).
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The PoAI manager, the contract oracles are configured with.
    pub fn manager(&self) -> Address {
        self.gov.deployment().manager
    }

    /// Every deployed address.
    pub fn deployment(&self) -> Deployment {
        *self.gov.deployment()
    }

    /// Start of epoch 0, in unix seconds.
    pub fn genesis_unix(&self) -> u64 {
        self.genesis_unix
    }

    /// Epoch length in seconds.
    pub fn epoch_seconds(&self) -> u64 {
        self.epoch_seconds
    }

    /// The suite as governance, for calls this type has no shortcut for.
    pub fn gov(&self) -> &Suite {
        &self.gov
    }

    /// The underlying node, for `evm_*` / `hardhat_*` methods and raw reads.
    pub fn devchain(&self) -> &DevChain {
        &self.devchain
    }

    /// The suite as `key` (which needs ether for transactions; see [`TestChain::give_ether`]).
    pub fn suite_as(&self, key: &PrivateKeySigner) -> Suite {
        Suite::new(
            self.devchain.connect(key.clone()),
            key.address(),
            self.deployment(),
        )
    }

    /// Runs a chain call to completion on the chain's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Sets the ether balance of `address` to `ether` ETH (oracles and operators pay gas).
    pub fn give_ether(&self, address: Address, ether: u64) -> Result<(), ChainError> {
        let wei = U256::from(ether) * U256::from(10u64).pow(U256::from(18u64));
        self.block_on(
            self.devchain
                .rpc()
                .raw_request::<_, bool>("hardhat_setBalance".into(), (address, wei)),
        )
        .map_err(r1_contracts::Error::from)?;
        Ok(())
    }

    /// Registers `oracle` with the PoAI manager.
    pub fn add_oracle(&self, oracle: Address) -> Result<(), ChainError> {
        self.block_on(self.gov.add_oracle(oracle))?;
        Ok(())
    }

    /// Sets the on-chain price of every class of `catalogue` (USDC, 6 decimals, per node per
    /// epoch), so what r1ctl estimates is what the escrow charges.
    pub fn set_catalogue_prices(&self, catalogue: &Catalogue) -> Result<(), ChainError> {
        self.block_on(async {
            for class in &catalogue.classes {
                let price = U256::from(class.price_per_epoch.units());
                self.gov.set_job_type_price(class.id, price).await?;
            }
            Ok(())
        })
    }

    /// Licenses the node whose key is `node`: a fresh operator account gets ether and R1, buys a
    /// licence and links the node to it, with the node's signature and `oracle`'s (a registered
    /// oracle's key). Returns the licence id and the operator's address (see
    /// [`TestChain::operator`] to act as it).
    pub fn license_node(
        &self,
        node: &PrivateKeySigner,
        oracle: &PrivateKeySigner,
    ) -> Result<(u64, Address), ChainError> {
        let operator = PrivateKeySigner::random();
        let address = operator.address();
        self.give_ether(address, FUNDING_ETHER)?;
        let suite = self.suite_as(&operator);
        let licence = self.block_on(async {
            self.gov.mint_r1(address, r1_units(OPERATOR_R1)).await?;
            let licence = suite.buy_licence().await?;
            let deadline = self.devchain.timestamp().await? + LINK_VALID_SECONDS;
            let terms = suite.link_terms(licence, node.address(), deadline).await?;
            let proof = LinkProof {
                deadline,
                node_signature: terms.sign(node)?,
                oracle_signature: terms.sign(oracle)?,
            };
            suite.link_node(licence, node.address(), &proof).await?;
            Ok::<_, ChainError>(licence)
        })?;
        self.operators
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(address, operator);
        Ok((licence, address))
    }

    /// The key of an operator created by [`TestChain::license_node`].
    pub fn operator(&self, operator: Address) -> Option<PrivateKeySigner> {
        self.operators
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&operator)
            .cloned()
    }

    /// Has the harness's operator of `node` unlink it, so that it stands as a freshly installed
    /// node does, on no licence. Fails when the node is on no licence the harness made.
    pub fn unlink_harness_node(&self, node: Address) -> Result<(), ChainError> {
        let licence = self.licence_of_node(node)?;
        let owner = self.block_on(async {
            self.gov
                .node_deed()
                .ownerOf(U256::from(licence))
                .call()
                .await
                .map_err(r1_contracts::Error::from)
        })?;
        let operator = self
            .operator(owner)
            .ok_or(ChainError::NotHarnessOperator(owner))?;
        self.block_on(self.suite_as(&operator).unlink_node(licence))?;
        Ok(())
    }

    /// The licence `node` is linked to (0 when none).
    pub fn licence_of_node(&self, node: Address) -> Result<u64, ChainError> {
        let id = self
            .block_on(async { self.gov.node_deed().licenceOfNode(node).call().await })
            .map_err(r1_contracts::Error::from)?;
        u64::try_from(id).map_err(|_| ChainError::Range {
            what: "licence id",
            value: id,
        })
    }

    /// Mints `usdc` whole USDC to `csp`.
    pub fn fund_csp(&self, csp: Address, usdc: u64) -> Result<(), ChainError> {
        self.block_on(self.gov.mint_usdc(csp, usdc_units(usdc)))?;
        Ok(())
    }

    /// The USDC balance of `who`, in token units (6 decimals).
    pub fn usdc_balance(&self, who: Address) -> Result<U256, ChainError> {
        let balance = self
            .block_on(async { self.gov.usdc().balanceOf(who).call().await })
            .map_err(r1_contracts::Error::from)?;
        Ok(balance)
    }

    /// Deploys the escrow of `csp` (as governance) and returns its address.
    pub fn deploy_escrow(&self, csp: Address) -> Result<Address, ChainError> {
        Ok(self.block_on(self.gov.deploy_escrow(csp))?)
    }

    /// The escrow of `csp` (zero when it has none).
    pub fn escrow_of(&self, csp: Address) -> Result<Address, ChainError> {
        Ok(self.block_on(self.gov.escrow_of(csp))?)
    }

    /// The current epoch by the chain's clock.
    pub fn current_epoch(&self) -> Result<u64, ChainError> {
        Ok(self.block_on(self.gov.current_epoch())?)
    }
}

/// The signer of a `0x` + 64 hex digit key.
pub fn signer(key: &str) -> Result<PrivateKeySigner, ChainError> {
    let bytes = r1_protocol::hex::decode::<32>(key).ok_or(ChainError::Key)?;
    PrivateKeySigner::from_bytes(&B256::from(bytes)).map_err(|_| ChainError::Key)
}
