//! Gas used per external function of the suite, allocation over 1, 10 and 100 jobs, and the
//! batched node-set votes and paged allocation of 1,000 jobs, measured
//! on the Hardhat EDR node: `cargo run -p r1-contracts --example gas_report`.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::DynProvider;
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use r1_contracts::ballots::{Ballot, batches};
use r1_contracts::bindings::{CspEscrow, PoAIManager};
use r1_contracts::tx::confirm;
use r1_contracts::units::{r1_units, usdc_units};
use r1_contracts::{
    AvailabilityTable, DevChain, LinkProof, Permissions, Result, Suite, SuiteConfig, deploy_suite,
};

const EPOCH: u64 = 3_600;

/// Jobs created per `createJobs` call.
const CREATE_CHUNK: usize = 100;

struct Setup {
    gov: Suite,
    oracles: Vec<Suite>,
    /// The first oracle's key, attesting node links.
    attestor: PrivateKeySigner,
    csp: Suite,
    escrow: Address,
    owner: Suite,
}

async fn account(
    chain: &DevChain,
    deployment: Option<r1_contracts::Deployment>,
) -> Result<(Address, DynProvider, Option<Suite>)> {
    let (address, provider) = chain.funded_account(1_000_000).await?;
    let suite = deployment.map(|d| Suite::new(provider.clone(), address, d));
    Ok((address, provider, suite))
}

async fn setup(chain: &DevChain, report: &mut Vec<(String, u64)>) -> Result<Setup> {
    let (gov_address, gov_provider, _) = account(chain, None).await?;
    // Ten epochs past genesis, as on a live chain: in epoch 0 the escrow's epoch fields would
    // be first writes of zero slots and skew the figures.
    let genesis = chain.timestamp().await? - 10 * EPOCH;
    let config = SuiteConfig {
        // Every owner-only call measured directly (a timelock adds its schedule and execute).
        governance_delay_seconds: None,
        ..SuiteConfig::devnet(
            genesis,
            EPOCH,
            Address::repeat_byte(1),
            Address::repeat_byte(2),
        )
    };
    let deployment = deploy_suite(&gov_provider, gov_address, &config).await?;
    let gov = Suite::new(gov_provider, gov_address, deployment);
    let mut oracles = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let (key, provider) = chain.funded_signer(1_000_000).await?;
        let receipt = confirm(gov.manager().addOracle(key.address())).await?;
        record(report, "addOracle", &receipt);
        oracles.push(Suite::new(provider, key.address(), deployment));
        keys.push(key);
    }
    let attestor = keys.swap_remove(0);
    let (csp_address, _, csp) = account(chain, Some(deployment)).await?;
    let receipt = confirm(gov.manager().deployEscrow(csp_address)).await?;
    record(report, "deployEscrow (beacon proxy)", &receipt);
    let escrow = gov.escrow_of(csp_address).await?;
    gov.mint_usdc(csp_address, usdc_units(10_000_000)).await?;
    let (owner_address, _, owner) = account(chain, Some(deployment)).await?;
    gov.mint_r1(owner_address, r1_units(100_000)).await?;
    let csp = csp.ok_or_else(|| r1_contracts::Error::Chain("no csp".into()))?;
    let owner = owner.ok_or_else(|| r1_contracts::Error::Chain("no owner".into()))?;
    Ok(Setup {
        gov,
        oracles,
        attestor,
        csp,
        escrow,
        owner,
    })
}

fn record(report: &mut Vec<(String, u64)>, name: &str, receipt: &TransactionReceipt) {
    report.push((name.to_string(), receipt.gas_used));
}

fn job_requests(count: usize, last: u64) -> Vec<CspEscrow::JobCreationRequest> {
    (0..count)
        .map(|_| CspEscrow::JobCreationRequest {
            jobType: 1,
            projectHash: B256::repeat_byte(7),
            lastExecutionEpoch: U256::from(last),
            numberOfNodesRequested: U256::from(1u64),
        })
        .collect()
}

async fn licensed_node(s: &Setup, report: &mut Vec<(String, u64)>) -> Result<Address> {
    let key = PrivateKeySigner::random();
    let node = key.address();
    let deed = s.owner.node_deed();
    let price = deed.currentPrice().call().await?;
    confirm(s.owner.r1().approve(s.gov.deployment().node_deed, price)).await?;
    let receipt = confirm(deed.buyLicence(price)).await?;
    record(report, "buyLicence", &receipt);
    let licence = u64::try_from(deed.totalSold().call().await?)
        .map_err(|_| r1_contracts::Error::Chain("licence id out of range".into()))?;
    let terms = s.owner.link_terms(licence, node, u64::MAX).await?;
    let proof = LinkProof {
        deadline: terms.deadline,
        node_signature: terms.sign(&key)?,
        oracle_signature: terms.sign(&s.attestor)?,
    };
    record(
        report,
        "linkNode (node and oracle signatures)",
        &s.owner.link_node(licence, node, &proof).await?,
    );
    Ok(node)
}

/// Creates `count` one-node jobs on `node`, validates them (one vote a transaction, or
/// `batched` through `submitNodeUpdates`), lets two epochs pass and allocates in pages.
async fn allocation_over(
    chain: &DevChain,
    count: usize,
    batched: bool,
    report: &mut Vec<(String, u64)>,
) -> Result<()> {
    let mut scratch = Vec::new();
    let s = setup(chain, &mut scratch).await?;
    let node = licensed_node(&s, &mut scratch).await?;
    let epoch = s.gov.current_epoch().await?;
    confirm(s.csp.usdc().approve(s.escrow, U256::MAX)).await?;
    let mut created = 0;
    for chunk in job_requests(count, epoch + 30).chunks(CREATE_CHUNK) {
        let receipt = confirm(s.csp.escrow(s.escrow).createJobs(chunk.to_vec())).await?;
        created += receipt.gas_used;
    }
    report.push((
        format!("createJobs ({count} jobs, {CREATE_CHUNK} a call)"),
        created,
    ));
    let (mut vote_gas, mut vote_txs) = (0, 0);
    for oracle in &s.oracles[..2] {
        if batched {
            let ballots: Vec<Ballot> = (1..=count as u64)
                .map(|job| Ballot {
                    job,
                    nodes: vec![node],
                    active: 0,
                })
                .collect();
            for batch in batches(&ballots) {
                vote_gas += oracle.submit_node_updates(batch).await?.gas_used;
                vote_txs += 1;
            }
        } else {
            for job in 1..=count as u64 {
                oracle.submit_node_update(job, &[node]).await?;
            }
        }
    }
    if batched {
        report.push((
            format!(
                "node-set votes starting {count} jobs, 2 oracles, batched ({vote_txs} transactions)"
            ),
            vote_gas,
        ));
    }
    chain.advance_time(2 * EPOCH).await?;
    let (mut allocation_gas, mut pages) = (0, 0);
    loop {
        let receipt = confirm(s.oracles[0].manager().allocateRewardsToNodes(page())).await?;
        allocation_gas += receipt.gas_used;
        pages += 1;
        if receipt
            .decoded_log::<PoAIManager::RewardsAllocated>()
            .is_some()
        {
            break;
        }
    }
    report.push((
        format!("allocateRewardsToNodes ({count} jobs, 1 node each, {pages} pages)"),
        allocation_gas,
    ));
    Ok(())
}

async fn functions(chain: &DevChain, report: &mut Vec<(String, u64)>) -> Result<()> {
    let s = setup(chain, report).await?;
    let nodes = [
        licensed_node(&s, report).await?,
        licensed_node(&s, report).await?,
    ];
    let mut sorted = nodes.to_vec();
    sorted.sort();
    let manager = s.gov.manager();
    record(
        report,
        "setJobTypePrice",
        &s.gov.set_job_type_price(4, U256::from(750_000u64)).await?,
    );

    let epoch = s.gov.current_epoch().await?;
    confirm(s.csp.usdc().approve(s.escrow, U256::MAX)).await?;
    let escrow = s.csp.escrow(s.escrow);
    let mut requests = job_requests(1, epoch + 30);
    requests[0].numberOfNodesRequested = U256::from(2u64);
    record(
        report,
        "createJobs (1 job)",
        &confirm(escrow.createJobs(requests)).await?,
    );
    let job = U256::from(1u64);
    record(
        report,
        "extendJobDuration",
        &confirm(escrow.extendJobDuration(job, U256::from(epoch + 40))).await?,
    );

    let unstarted = confirm(escrow.createJobs(job_requests(1, epoch + 30))).await?;
    let unstarted = unstarted
        .decoded_log::<r1_contracts::bindings::CspEscrow::JobCreated>()
        .map(|log| log.data.jobId)
        .ok_or_else(|| r1_contracts::Error::Chain("no JobCreated".into()))?;

    let first = confirm(s.oracles[0].manager().submitNodeUpdate(job, sorted.clone())).await?;
    record(report, "submitNodeUpdate (counted, no decision)", &first);
    let second = confirm(s.oracles[1].manager().submitNodeUpdate(job, sorted.clone())).await?;
    record(report, "submitNodeUpdate (decides, starts job)", &second);

    chain.advance_time(2 * EPOCH).await?;
    record(
        report,
        "extendJobNodes (settles 1 epoch first)",
        &confirm(escrow.extendJobNodes(job, U256::from(3u64))).await?,
    );
    chain.advance_time(EPOCH).await?;
    record(
        report,
        "allocateRewardsToNodes (1 job, 2 nodes)",
        &confirm(s.oracles[2].manager().allocateRewardsToNodes(page())).await?,
    );
    record(
        report,
        "burnPendingFees (the queued 15 % share: swap and burn)",
        &confirm(s.oracles[2].manager().burnPendingFees(U256::from(1u64))).await?,
    );
    record(
        report,
        "claimRewards (2 nodes)",
        &confirm(
            s.owner
                .manager()
                .claimRewards(sorted.clone(), U256::from(1u64)),
        )
        .await?,
    );

    let epoch_done = s.gov.current_epoch().await? - 1;
    let rows: Vec<(Address, u8)> = sorted.iter().map(|n| (*n, 255u8)).collect();
    let table = AvailabilityTable::new(epoch_done, rows.iter().copied());
    let a = s.oracles[0].submit_availability(epoch_done, &rows).await?;
    record(report, "submitAvailability (counted; any table size)", &a);
    let b = s.oracles[1].submit_availability(epoch_done, &rows).await?;
    record(report, "submitAvailability (decides; any table size)", &b);
    let (nodes, bytes) = table.page(0);
    let page = confirm(s.oracles[2].manager().recordAvailabilityPage(
        U256::from(epoch_done),
        U256::ZERO,
        nodes.to_vec(),
        bytes.to_vec(),
        table.proof(0),
    ))
    .await?;
    record(
        report,
        "recordAvailabilityPage (one page of 2 nodes, mints their PoA)",
        &page,
    );

    record(
        report,
        "redeemUnstartedJob (refunds a job never started)",
        &confirm(escrow.redeemUnstartedJob(unstarted)).await?,
    );
    record(
        report,
        "suspend",
        &confirm(manager.suspend(Address::repeat_byte(8), U256::from(epoch + 10))).await?,
    );
    record(
        report,
        "setBlacklisted",
        &confirm(manager.setBlacklisted(Address::repeat_byte(9), true)).await?,
    );
    chain.advance_time(EPOCH / 2).await?;
    let close_a = confirm(s.oracles[0].manager().submitNodeUpdate(job, vec![])).await?;
    record(report, "submitNodeUpdate (empty set, counted)", &close_a);
    let close_b = confirm(s.oracles[1].manager().submitNodeUpdate(job, vec![])).await?;
    record(
        report,
        "submitNodeUpdate (empty set, closes mid-epoch + refunds)",
        &close_b,
    );
    // The close paid the nodes the seconds of the epoch they served: claimed, so that a node can
    // be unlinked.
    confirm(
        s.owner
            .manager()
            .claimRewards(sorted.clone(), U256::from(1u64)),
    )
    .await?;
    let deed = s.owner.node_deed();
    record(
        report,
        "unlinkNode",
        &confirm(deed.unlinkNode(U256::from(1u64))).await?,
    );
    record(
        report,
        "removeOracle",
        &confirm(manager.removeOracle(s.oracles[2].address())).await?,
    );
    Ok(())
}

/// Delegates and the free balance: the same job created and extended by the owner (paid from its
/// wallet) and by a delegate (paid from the free balance), after a first job so that neither
/// pays the escrow's first-time storage writes.
async fn delegation(chain: &DevChain, report: &mut Vec<(String, u64)>) -> Result<()> {
    let mut scratch = Vec::new();
    let s = setup(chain, &mut scratch).await?;
    let (delegate_address, _, delegate) = account(chain, Some(*s.gov.deployment())).await?;
    let delegate = delegate.ok_or_else(|| r1_contracts::Error::Chain("no delegate".into()))?;
    let epoch = s.gov.current_epoch().await?;
    confirm(s.csp.usdc().approve(s.escrow, U256::MAX)).await?;
    let escrow = s.csp.escrow(s.escrow);
    let two_nodes = || {
        let mut requests = job_requests(1, epoch + 30);
        requests[0].numberOfNodesRequested = U256::from(2u64);
        requests
    };
    confirm(escrow.createJobs(two_nodes())).await?;
    record(
        report,
        "setDelegate (grant)",
        &confirm(escrow.setDelegate(delegate_address, Permissions::ALL.bits())).await?,
    );
    record(
        report,
        "deposit",
        &confirm(escrow.deposit(usdc_units(1_000))).await?,
    );
    record(
        report,
        "createJobs (1 job, owner: wallet, not the first job)",
        &confirm(escrow.createJobs(two_nodes())).await?,
    );
    let as_delegate = delegate.escrow(s.escrow);
    record(
        report,
        "createJobs (1 job, delegate: free balance, not the first job)",
        &confirm(as_delegate.createJobs(two_nodes())).await?,
    );
    record(
        report,
        "extendJobDuration (owner, wallet)",
        &confirm(escrow.extendJobDuration(U256::from(2u64), U256::from(epoch + 40))).await?,
    );
    record(
        report,
        "extendJobDuration (delegate, free balance)",
        &confirm(as_delegate.extendJobDuration(U256::from(3u64), U256::from(epoch + 40))).await?,
    );
    record(
        report,
        "extendJobNodes (owner, wallet, nothing to settle)",
        &confirm(escrow.extendJobNodes(U256::from(2u64), U256::from(3u64))).await?,
    );
    record(
        report,
        "extendJobNodes (delegate, free balance, nothing to settle)",
        &confirm(as_delegate.extendJobNodes(U256::from(3u64), U256::from(3u64))).await?,
    );
    record(
        report,
        "withdraw",
        &confirm(escrow.withdraw(usdc_units(100))).await?,
    );
    record(
        report,
        "setDelegate (revoke)",
        &confirm(escrow.setDelegate(delegate_address, 0)).await?,
    );
    Ok(())
}

/// Jobs per allocation page, as the oracles send them.
fn page() -> U256 {
    U256::from(r1_contracts::client::ALLOCATION_PAGE_JOBS)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let chain = DevChain::start().await?;
        let mut report = Vec::new();
        functions(&chain, &mut report).await?;
        delegation(&chain, &mut report).await?;
        for count in [1, 10, 100] {
            allocation_over(&chain, count, false, &mut report).await?;
        }
        allocation_over(&chain, 1_000, true, &mut report).await?;
        let mut seen = std::collections::BTreeSet::new();
        println!("| function | gas used |\n|---|---:|");
        for (name, gas) in report {
            if seen.insert(name.clone()) {
                println!("| {name} | {gas} |");
            }
        }
        Ok::<(), r1_contracts::Error>(())
    })?;
    Ok(())
}
