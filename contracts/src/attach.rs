//! Attaching to a suite deployed earlier when only its PoAI manager's address is known (what an
//! oracle publishes and what `r1ctl` is told): every other address is read from the chain.

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;

use crate::bindings::{PoAIManager, UpgradeableBeacon};
use crate::client::Suite;
use crate::deploy::Deployment;
use crate::devchain::connect;
use crate::error::Result;

impl Deployment {
    /// The addresses of the suite whose PoAI manager is at `manager`, read through `provider`.
    /// The swap venue the manager uses now is reported as `pool`.
    pub async fn from_manager(provider: &DynProvider, manager: Address) -> Result<Self> {
        let contract = PoAIManager::new(manager, provider.clone());
        let beacon = contract.beacon().call().await?;
        let escrow_implementation = UpgradeableBeacon::new(beacon, provider.clone())
            .implementation()
            .call()
            .await?;
        // An owner with code is the deployment's timelock (see `crate::governance`).
        let owner = contract.owner().call().await?;
        let timelock = if provider.get_code_at(owner).await?.is_empty() {
            Address::ZERO
        } else {
            owner
        };
        Ok(Deployment {
            r1: contract.r1().call().await?,
            usdc: contract.usdc().call().await?,
            pool: contract.swap().call().await?,
            node_deed: contract.nodeDeed().call().await?,
            escrow_implementation,
            beacon,
            manager,
            timelock,
        })
    }
}

impl Suite {
    /// Acts as `signer` on the suite whose PoAI manager is at `manager`, over the JSON-RPC
    /// endpoint `rpc_url`.
    pub async fn attach(rpc_url: &Url, signer: PrivateKeySigner, manager: Address) -> Result<Self> {
        let address = signer.address();
        let provider = connect(rpc_url, signer);
        let deployment = Deployment::from_manager(&provider, manager).await?;
        Ok(Suite::new(provider, address, deployment))
    }

    /// The id of the chain this client talks to (to check it is the one expected before
    /// signing anything).
    pub async fn chain_id(&self) -> Result<u64> {
        Ok(self.provider().get_chain_id().await?)
    }
}

/// The id of the chain served at `rpc_url`, asked before attaching so that a wrong endpoint is
/// reported as such rather than as failing contract calls.
pub async fn chain_id_at(rpc_url: &Url) -> Result<u64> {
    let provider = ProviderBuilder::new().connect_http(rpc_url.clone());
    Ok(provider.get_chain_id().await?)
}
