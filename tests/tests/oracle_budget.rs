//! A job's budget runs out: three oracles, three nodes, a real chain, broker and containerd,
//! and one-second epochs so that the 30 epochs the example job pays for pass in half a minute.
//! `r1ctl apply` funds the job by the wall clock's epoch; the job is validated on chain, paid
//! by the second from its validation to the end of its last epoch (85 % to its nodes, 15 %
//! burned), closed by consensus once its last epoch is allocated, the rest refunded to the CSP,
//! its containers stopped and its phase Closed; and
//! `r1ctl audit` rebuilds that whole story from the chain and finds every figure to the unit.

use std::time::{Duration, Instant};

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;

use alloy::eips::BlockId;
use alloy::primitives::U256;
use r1_e2e::job_story::{self, JobStory, node_pay};
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::phrases;
use r1_e2e::scenario::{self, ScenarioError, chain_job, read_chain};
use r1_e2e::wait::until;

/// Epochs the example job pays for (`durationEpochs` in `job-http.yaml`).
const JOB_EPOCHS: u64 = 30;

/// Epochs the devnet's clock may run behind the wall clock's: a job created just after an
/// epoch boundary is paid from the chain's epoch, up to this many more than asked.
const CHAIN_CLOCK_LAG_EPOCHS: u64 = 2;

/// The epochs `r1ctl apply` says it funded (`... funded: chain job N, E epochs × ...`).
fn funded_epochs(printed: &str) -> Option<u64> {
    let line = printed
        .lines()
        .find(|l| l.contains(" funded: chain job "))?;
    let (_, after) = line.split_once(", ")?;
    after.split_once(" epochs")?.0.parse().ok()
}

/// The epoch of the wall clock on the network's chain.
fn wall_epoch(network: &Network) -> u64 {
    let chain = network.chain();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_sub(chain.genesis_unix()) / chain.epoch_seconds()
}

/// The R1 token's total supply once block `block` ran.
fn r1_supply(network: &Network, block: u64) -> U256 {
    let chain = network.chain();
    read_chain(|| {
        chain.block_on(
            chain
                .gov()
                .r1()
                .totalSupply()
                .call()
                .block(BlockId::number(block))
                .into_future(),
        )
    })
    .expect("R1 supply")
}

#[test]
fn a_job_whose_budget_ends_is_closed_paid_and_stopped() -> Result<(), ScenarioError> {
    let started = Instant::now();
    // A third node takes a replica whose node fails it (e.g. its host port was taken).
    let settings = NetworkSettings {
        epoch_seconds: 1,
        ..NetworkSettings::default()
    };
    let network = scenario::start_network(&settings)?;
    let csp = network.csp().address();
    let chain = network.chain();
    let usdc_before = read_chain(|| chain.usdc_balance(csp))?;
    let from_block = job_story::block_number(&network)?;
    let r1_before = r1_supply(&network, from_block);
    let before = wall_epoch(&network);
    let applied = scenario::apply_examples(&network, &scenario::HELLO_WEB)?;
    let after = wall_epoch(&network);
    let printed = scenario::printed(&applied);
    let funded_epochs = funded_epochs(&printed).unwrap_or_default();
    assert!(
        (JOB_EPOCHS..=JOB_EPOCHS + CHAIN_CLOCK_LAG_EPOCHS).contains(&funded_epochs),
        "r1ctl funds the epochs asked: {printed}"
    );
    let job_id = scenario::wait_running(&network, "hello-web", 2, Duration::from_secs(20))?;
    let running_after = started.elapsed();
    // The oracles told every node which CSTORE namespace the job's workloads own.
    let rule = format!("job:{job_id}");
    for node in network.nodes() {
        let assigned = || {
            let out = node.r1ctl_cstore(&["get", "r1.system", &rule]);
            String::from_utf8_lossy(&out.stdout).trim() == "\"p.default.hello\""
        };
        assert!(
            until(Duration::from_secs(15), assigned),
            "no CSTORE rule for job {job_id} on {}",
            node.address
        );
    }
    let job = chain_job(&network, job_id)?;
    assert_eq!(job.activeNodes.len(), 2, "validated node set on chain");
    let last = u64::try_from(job.lastExecutionEpoch).unwrap_or(u64::MAX);
    assert!(
        (before + JOB_EPOCHS..=after + JOB_EPOCHS).contains(&last),
        "the job ends {JOB_EPOCHS} epochs after the wall clock's epoch at funding \
         ({before}..={after}), not the chain's last block's: it ends in {last}"
    );

    // The job ends, is allocated to its last epoch, and closed by consensus.
    let timeout = Duration::from_secs(settings.epoch_seconds * (JOB_EPOCHS + 15));
    let closed = until(timeout, || {
        chain_job(&network, job_id).is_ok_and(|j| j.closed)
    });
    if !closed {
        return Err(ScenarioError::timeout(
            &network,
            "the job was not closed",
            timeout,
        ));
    }
    let closed_after = started.elapsed();
    let timeout = Duration::from_secs(20);
    let stopped = until(timeout, || {
        (0..network.nodes().len()).all(|i| {
            network
                .node_ctr(i, &["containers", "ls", "-q"])
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).trim().is_empty()
                })
        })
    });
    if !stopped {
        return Err(ScenarioError::timeout(
            &network,
            "containers were left running after closure",
            timeout,
        ));
    }
    let timeout = Duration::from_secs(10);
    let phase_closed = until(timeout, || {
        (0..network.oracles().len()).all(|o| {
            scenario::job_status(&network, o, "hello-web").is_some_and(|s| s["phase"] == "Closed")
        })
    });
    if !phase_closed {
        return Err(ScenarioError::timeout(
            &network,
            "the status does not say Closed on every oracle",
            timeout,
        ));
    }

    // Every paid second: 85 % to the node, 15 % burned; the rest refunded to the CSP. The
    // seconds paid are exactly those of the job's validated set: from its validation to the
    // end of its last epoch, each once.
    let story = JobStory::read(&network, job_id, from_block)?;
    let (Some(created_at), Some(validated_at)) = (story.created_at, story.validated_at) else {
        panic!("the job's creation and validation are on chain: {story:#?}");
    };
    let epoch_seconds = chain.epoch_seconds();
    let end = chain.genesis_unix() + (last + 1) * epoch_seconds;
    assert_eq!(
        story.settled_spans(),
        vec![(validated_at, end)],
        "the seconds from its validation to the end of epoch {last} are settled once each, none \
         before validation (created at {created_at}): {:#?}",
        story.settlements
    );
    let price = job.pricePerEpoch;
    for settled in &story.settlements {
        let (to_node, burned) = node_pay(price, settled.to - settled.from, epoch_seconds);
        assert_eq!(settled.nodes_paid, 2, "both nodes paid: {settled:?}");
        assert_eq!(settled.burned, burned * U256::from(2u64), "{settled:?}");
        assert_eq!(settled.to_nodes, to_node * U256::from(2u64), "{settled:?}");
    }
    let deposited = job_story::cost(price, 2, end - created_at, epoch_seconds);
    let paid = story.paid();
    let node_seconds = 2 * (end - validated_at);
    let totals = read_chain(|| chain.block_on(chain.gov().escrow_totals(network.escrow())))
        .map_err(|e| ScenarioError::Chain(e.into()))?;
    assert_eq!(
        totals.credited_to_nodes,
        story.settlements.iter().map(|s| s.to_nodes).sum::<U256>()
    );
    assert_eq!(
        totals.burned,
        story.settlements.iter().map(|s| s.burned).sum::<U256>()
    );
    assert_eq!(totals.credited_to_nodes + totals.burned, paid);
    assert_eq!(
        totals.refunded,
        deposited - paid,
        "the CSP is refunded what was not paid"
    );
    assert_eq!(
        story.refunds,
        vec![totals.refunded],
        "one closure refunds it"
    );
    assert_eq!(
        totals.deposited, deposited,
        "the escrow took what r1ctl said"
    );
    assert_eq!(
        totals.balance_usdc,
        totals.credited_to_nodes - totals.claimed,
        "the escrow holds only what its nodes have not claimed"
    );
    assert_eq!(
        read_chain(|| chain.usdc_balance(csp))?,
        usdc_before - paid,
        "the CSP got the rest back"
    );
    // The burned share reached the manager: queued there, or swapped to R1 and burned, which
    // the R1 supply shows beside what PoA mined meanwhile.
    // Read at the block the story ends in: the oracles go on burning and mining meanwhile.
    let at = BlockId::number(story.until_block);
    let pending = read_chain(|| {
        chain.block_on(
            chain
                .gov()
                .manager()
                .pendingBurnUsdc()
                .call()
                .block(at)
                .into_future(),
        )
    })
    .expect("the manager's burn queue");
    assert_eq!(
        pending + story.swapped_usdc,
        totals.burned,
        "the manager queued or swapped exactly the burned share"
    );
    let r1_after = r1_supply(&network, story.until_block);
    assert_eq!(
        r1_after,
        r1_before + story.r1_mined - story.r1_burned,
        "R1 supply: {r1_before} + {} mined − {} burned",
        story.r1_mined,
        story.r1_burned
    );
    let job = chain_job(&network, job_id)?;
    assert!(job.activeNodes.is_empty() && job.balance.is_zero());
    // No node failed, so any second placement of a replica is churn: replicas the closure
    // stopped, say, taken for failures by the other oracles and started again elsewhere just
    // before the job closed.
    let logs = scenario::oracle_logs(&network);
    let mut placed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in phrases::lines(&logs, "deploying replica") {
        if phrases::field(line, "job") == Some(job_id.to_string()) {
            let replica = phrases::field(line, "replica").unwrap_or_default();
            let node = phrases::field(line, "node").unwrap_or_default();
            placed.entry(replica).or_default().insert(node);
        }
    }
    assert_eq!(placed.len(), 2, "both replicas were placed: {placed:?}");
    assert!(
        placed.values().all(|nodes| nodes.len() == 1),
        "replicas moved although no node failed: {placed:?}"
    );
    // The audit rebuilds the story from events and votes alone and matches the state.
    let audit = network.r1ctl(&["audit", "djob/hello-web"])?;
    let table = scenario::printed(&audit);
    eprintln!("{table}");
    assert!(
        audit.status.success(),
        "r1ctl audit found a mismatch:\n{table}"
    );
    assert!(
        table.contains("all match to the unit") && table.contains("refunded to the CSP"),
        "{table}"
    );
    // The same for the whole escrow: its balance is every job's story added up.
    let escrow = network.r1ctl(&["audit", "--escrow"])?;
    let escrow_table = scenario::printed(&escrow);
    assert!(
        escrow.status.success() && escrow_table.contains("all match to the unit"),
        "r1ctl audit --escrow found a mismatch:\n{escrow_table}"
    );
    eprintln!(
        "running and validated after {running_after:?}, closed after {closed_after:?}, \
         {node_seconds} node-seconds paid, all done after {:?}",
        started.elapsed()
    );
    Ok(())
}
