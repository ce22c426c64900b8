//! A CSP deletes a running job mid-epoch, as on the devnet (10-second epochs): three oracles,
//! three nodes, a real chain, broker and containerd. The job is validated partway through an
//! epoch, runs into a later one (allocated meanwhile), and `r1ctl delete djob hello-web` closes
//! it a few seconds into an epoch. Read from the chain's events alone, its nodes are paid every
//! second they served and nothing twice: the spans settled join into one, from its validation
//! to its close; each pays both nodes `⌊price × seconds / epoch⌋` (85 % to them, 15 % burned,
//! to the unit), the first and the last pro rata; one close refunds the deposit less what was
//! paid; and `r1ctl status` shows the escrow's paid, burned and refunded totals as the chain
//! holds them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::U256;
use r1_crds::usdc::Usdc;
use r1_e2e::job_story::{self, JobStory, node_pay};
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::scenario::{self, ScenarioError, chain_job, read_chain};
use r1_e2e::wait::{until, until_every};

/// The devnet's epoch length, where the issue was seen.
const EPOCH_SECONDS: u64 = 10;

/// Seconds into an epoch at which the CSP deletes the job: its close lands mid-epoch.
const DELETE_AT: u64 = 4;

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sleeps until `DELETE_AT` seconds into the next epoch of the network's chain clock.
fn sleep_into_next_epoch(network: &Network) {
    let genesis = network.chain().genesis_unix();
    let now = now_s();
    let next = genesis + ((now - genesis) / EPOCH_SECONDS + 1) * EPOCH_SECONDS + DELETE_AT;
    std::thread::sleep(Duration::from_secs(next - now));
}

/// A chain figure as the escrow's status prints it.
fn usdc(value: U256) -> String {
    Usdc(u64::try_from(value).unwrap_or(u64::MAX)).to_string()
}

#[test]
fn a_job_deleted_mid_epoch_pays_its_nodes_every_second_they_served() -> Result<(), ScenarioError> {
    let settings = NetworkSettings {
        epoch_seconds: EPOCH_SECONDS,
        ..NetworkSettings::default()
    };
    let network = scenario::start_network(&settings)?;
    let chain = network.chain();
    let csp = network.csp().address();
    let usdc_before = read_chain(|| chain.usdc_balance(csp))?;
    let from_block = job_story::block_number(&network)?;
    scenario::apply_examples(&network, &scenario::HELLO_WEB)?;
    let job_id = scenario::wait_running(&network, "hello-web", 2, Duration::from_secs(60))?;
    let job = chain_job(&network, job_id)?;
    let genesis = chain.genesis_unix();
    let started = u64::try_from(job.startTimestamp).unwrap_or(u64::MAX);
    let validated_epoch = (started - genesis) / EPOCH_SECONDS;

    // It runs through the epoch after its validation's, which the oracles allocate.
    let timeout = Duration::from_secs(4 * EPOCH_SECONDS);
    let allocated = until(timeout, || {
        read_chain(|| chain.block_on(chain.gov().allocated_until_epoch()))
            .is_ok_and(|until| until > validated_epoch + 1)
    });
    if !allocated {
        return Err(ScenarioError::timeout(
            &network,
            "no allocation after the job's validation",
            timeout,
        ));
    }
    sleep_into_next_epoch(&network);
    let deleted = network.r1ctl(&["delete", "djob", "hello-web"])?;
    assert!(deleted.status.success(), "{}", scenario::printed(&deleted));
    let timeout = Duration::from_secs(EPOCH_SECONDS * 3);
    if !until(timeout, || {
        chain_job(&network, job_id).is_ok_and(|j| j.closed)
    }) {
        return Err(ScenarioError::timeout(
            &network,
            "the deleted job was not closed on chain",
            timeout,
        ));
    }

    let story = JobStory::read(&network, job_id, from_block)?;
    let (Some(created_at), Some(validated_at), Some(closed_at)) =
        (story.created_at, story.validated_at, story.closed_at)
    else {
        panic!("the job's creation, validation and close are on chain: {story:#?}");
    };
    let into_close = (closed_at - genesis) % EPOCH_SECONDS;
    assert!(
        into_close > 0,
        "the close landed mid-epoch ({into_close} s in): {story:#?}"
    );
    assert!(
        (closed_at - genesis) / EPOCH_SECONDS > validated_epoch + 1,
        "the job ran into a later epoch than its validation's"
    );
    // At the example's price (0.10 USDC per 10 s) a second pays a whole number of units, so
    // the nodes' pay does not depend on how allocations split the time: both nodes, every
    // second from the validation to the close.
    let price = job.pricePerEpoch;
    assert!(
        (price % U256::from(EPOCH_SECONDS)).is_zero(),
        "a whole number of units per second"
    );
    let totals = read_chain(|| chain.block_on(chain.gov().escrow_totals(network.escrow())))
        .map_err(|e| ScenarioError::Chain(e.into()))?;
    let (to_node, burned) = node_pay(price, closed_at - validated_at, EPOCH_SECONDS);
    assert_eq!(
        (totals.credited_to_nodes, totals.burned),
        (to_node * U256::from(2u64), burned * U256::from(2u64)),
        "both nodes paid (85 %) and burned (15 %) for the {} s from validation to close",
        closed_at - validated_at
    );
    // Every second from the validation to the close is settled, once.
    assert_eq!(
        story.settled_spans(),
        vec![(validated_at, closed_at)],
        "settled from its validation to its close, each second once: {:#?}",
        story.settlements
    );
    for settled in &story.settlements {
        let (to_node, burned) = node_pay(price, settled.to - settled.from, EPOCH_SECONDS);
        assert_eq!(settled.nodes_paid, 2, "both nodes paid: {settled:?}");
        assert_eq!(settled.to_nodes, to_node * U256::from(2u64), "{settled:?}");
        assert_eq!(settled.burned, burned * U256::from(2u64), "{settled:?}");
    }
    // The close paid the seconds of its epoch served before it, pro rata.
    let last = story.settlements.last().map(|s| (s.from, s.to));
    assert_eq!(
        last,
        Some((closed_at - into_close, closed_at)),
        "the close's own settlement covers its epoch up to it"
    );
    let end = genesis + (u64::try_from(job.lastExecutionEpoch).unwrap_or(0) + 1) * EPOCH_SECONDS;
    let deposited = job_story::cost(price, 2, end - created_at, EPOCH_SECONDS);
    let paid = story.paid();
    assert_eq!(
        totals.deposited, deposited,
        "the escrow took the seconds bought"
    );
    assert_eq!(totals.credited_to_nodes + totals.burned, paid);
    assert_eq!(
        story.refunds,
        vec![deposited - paid],
        "one close refunds the deposit less what the nodes served"
    );
    assert_eq!(totals.refunded, deposited - paid);
    assert_eq!(
        read_chain(|| chain.usdc_balance(csp))?,
        usdc_before - paid,
        "the CSP paid exactly the seconds served"
    );

    // The CSP sees where every unit went.
    let figures = [
        usdc(totals.credited_to_nodes),
        usdc(totals.burned),
        usdc(totals.refunded),
    ];
    let mut status = String::new();
    // Once a second: each `r1ctl status` makes several signed calls, and the API allows a
    // signer 10 a second.
    let shown = until_every(Duration::from_secs(20), Duration::from_secs(1), || {
        status = network
            .r1ctl(&["status"])
            .map(|o| scenario::printed(&o))
            .unwrap_or_default();
        status.contains("REFUNDED") && figures.iter().all(|f| status.contains(f.as_str()))
    });
    assert!(shown, "r1ctl status shows {figures:?}:\n{status}");
    eprintln!(
        "validated at {validated_at} ({} s into epoch {validated_epoch}), closed at {closed_at} \
         ({into_close} s into its epoch); deposited {}, settled {} to nodes + {} burned in {} \
         spans {:?}, refunded {}",
        (validated_at - genesis) % EPOCH_SECONDS,
        usdc(deposited),
        usdc(totals.credited_to_nodes),
        usdc(totals.burned),
        story.settlements.len(),
        story
            .settlements
            .iter()
            .map(|s| (s.to - s.from, usdc(s.to_nodes), usdc(s.burned)))
            .collect::<Vec<_>>(),
        usdc(totals.refunded)
    );
    Ok(())
}
