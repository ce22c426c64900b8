//! The Hardhat EDR node as a child process, for tests, benchmarks and the devnet.
//!
//! `scripts/chain.cjs` serves the node on 127.0.0.1 and exits when its standard input closes;
//! [`DevChain`] holds that pipe, so the chain stops when the handle is dropped and also when the
//! owning process dies without running destructors.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;

use crate::error::{Error, Result};

/// How long the node may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Hardhat EDR node on a free 127.0.0.1 port.
pub struct DevChain {
    child: Child,
    stdin: Option<ChildStdin>,
    url: Url,
    rpc: DynProvider,
}

impl DevChain {
    /// Starts the node from the contracts directory of the checkout this process runs in
    /// (see [`checkout_dir`]).
    pub async fn start() -> Result<Self> {
        Self::start_in(&contracts_dir()?).await
    }

    /// Starts the node from `dir` (a directory holding `scripts/chain.cjs` and `node_modules`).
    pub async fn start_in(dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let mut child = Command::new("node")
            .arg(dir.join("scripts/chain.cjs"))
            .arg("--port")
            .arg(port.to_string())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let url: Url = format!("http://127.0.0.1:{port}")
            .parse()
            .map_err(|e| Error::Chain(format!("bad url: {e}")))?;
        let rpc = ProviderBuilder::new().connect_http(url.clone()).erased();
        let mut chain = DevChain {
            child,
            stdin,
            url,
            rpc,
        };
        chain.wait_ready().await?;
        Ok(chain)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.rpc.get_chain_id().await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(Error::Chain(format!("hardhat node exited early: {status}")));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(Error::Chain("hardhat node did not answer in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The JSON-RPC endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// An unsigned provider, for reads and the node's `hardhat_*` / `evm_*` methods.
    pub fn rpc(&self) -> &DynProvider {
        &self.rpc
    }

    /// A provider that signs with `signer`.
    pub fn connect(&self, signer: PrivateKeySigner) -> DynProvider {
        connect(&self.url, signer)
    }

    /// A fresh random account holding `ether` ETH, and a provider signing as it.
    pub async fn funded_account(&self, ether: u64) -> Result<(Address, DynProvider)> {
        let (signer, provider) = self.funded_signer(ether).await?;
        Ok((signer.address(), provider))
    }

    /// Like [`DevChain::funded_account`], with the new account's key (to sign off-chain
    /// records such as a link's, [`crate::LinkTerms`]).
    pub async fn funded_signer(&self, ether: u64) -> Result<(PrivateKeySigner, DynProvider)> {
        let signer = PrivateKeySigner::random();
        let wei = U256::from(ether) * U256::from(10u64).pow(U256::from(18u64));
        self.rpc
            .raw_request::<_, bool>("hardhat_setBalance".into(), (signer.address(), wei))
            .await?;
        Ok((signer.clone(), self.connect(signer)))
    }

    /// Moves the chain clock forward by `seconds` and mines a block at the new time.
    pub async fn advance_time(&self, seconds: u64) -> Result<()> {
        self.rpc
            .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (seconds,))
            .await?;
        self.rpc
            .raw_request::<_, serde_json::Value>("evm_mine".into(), Vec::<u64>::new())
            .await?;
        Ok(())
    }

    /// The timestamp of the latest block.
    pub async fn timestamp(&self) -> Result<u64> {
        let block = self
            .rpc
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| Error::Chain("no latest block".into()))?;
        Ok(block.header.timestamp)
    }
}

impl Drop for DevChain {
    fn drop(&mut self) {
        self.stdin.take();
        // The node may already have exited after its stdin closed; both results are fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A provider for `url` that signs with `signer`. Nonces are read from the chain for every
/// transaction, so a call refused during estimation does not leave a gap.
pub fn connect(url: &Url, signer: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .with_simple_nonce_management()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url.clone())
        .erased()
}

/// The r1 checkout this process works in, found at run time: `R1_CHECKOUT` when set, else the
/// nearest directory from the working directory up that holds `contracts/scripts/chain.cjs`.
/// Never the directory a binary was built in: with a target directory shared between clones,
/// that may be another clone, whose files would then be run.
pub fn checkout_dir() -> Result<PathBuf> {
    let is_checkout = |dir: &Path| dir.join("contracts/scripts/chain.cjs").is_file();
    if let Some(dir) = std::env::var_os("R1_CHECKOUT") {
        let dir = PathBuf::from(dir);
        return if is_checkout(&dir) {
            Ok(dir)
        } else {
            Err(Error::Chain(format!(
                "R1_CHECKOUT={} is not an r1 checkout (no contracts/scripts/chain.cjs)",
                dir.display()
            )))
        };
    }
    let here = std::env::current_dir()?;
    here.ancestors()
        .find(|dir| is_checkout(dir))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::Chain(format!(
                "{} is not inside an r1 checkout (no contracts/scripts/chain.cjs above it); \
                 run from the checkout or set R1_CHECKOUT",
                here.display()
            ))
        })
}

/// The checkout's `contracts/`: Solidity sources, artifacts, scripts and `node_modules`.
pub fn contracts_dir() -> Result<PathBuf> {
    Ok(checkout_dir()?.join("contracts"))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
