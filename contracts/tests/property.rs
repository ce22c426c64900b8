//! Property test: random sequences of create / extend / vote / advance / allocate / claim /
//! close / blacklist against a fresh suite, checking after every step against an exact model:
//! USDC deposited = claimed by nodes + burned + locked + refunded (to the unit), every job's
//! budget and every node's balance match the model (so no node is paid for an epoch it was not
//! validated for), and the R1 supply never exceeds the cap.

mod common;

use alloy::primitives::{Address, U256};
use common::{World, revert_of, run};
use proptest::prelude::*;
use r1_contracts::VoteOutcome;
use r1_contracts::bindings::PoAIManager::PoAIManagerErrors as E;
use r1_contracts::tx::confirm;

const PRICE: u64 = 100_000;
const NODES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Create {
        nodes: u64,
        epochs: u64,
    },
    ExtendDuration {
        job: usize,
        add: u64,
    },
    ExtendNodes {
        job: usize,
        add: u64,
    },
    Vote {
        job: usize,
        mask: u8,
        byzantine: bool,
    },
    Advance {
        epochs: u64,
    },
    Allocate,
    Claim,
    Close {
        job: usize,
    },
    Blacklist {
        node: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..=3, 30u64..=34).prop_map(|(nodes, epochs)| Op::Create { nodes, epochs }),
        1 => (0usize..8, 1u64..=4).prop_map(|(job, add)| Op::ExtendDuration { job, add }),
        1 => (0usize..8, 1u64..=2).prop_map(|(job, add)| Op::ExtendNodes { job, add }),
        4 => (0usize..8, 1u8..8, any::<bool>()).prop_map(|(job, mask, byzantine)| Op::Vote { job, mask, byzantine }),
        3 => (1u64..=12).prop_map(|epochs| Op::Advance { epochs }),
        3 => Just(Op::Allocate),
        2 => Just(Op::Claim),
        1 => (0usize..8).prop_map(|job| Op::Close { job }),
        1 => (0usize..NODES).prop_map(|node| Op::Blacklist { node }),
    ]
}

#[derive(Debug, Clone)]
struct Job {
    id: u64,
    requested: u64,
    last: u64,
    next: u64,
    active: Vec<usize>,
    balance: u128,
    closed: bool,
}

#[derive(Debug, Default)]
struct Model {
    jobs: Vec<Job>,
    node_balance: [u128; NODES],
    blacklisted: [bool; NODES],
    deposited: u128,
    claimed: u128,
    burned: u128,
    refunded: u128,
    allocated_until: u64,
}

impl Model {
    /// Settles `job` up to (excluding) `until` exactly as the escrow does; returns the burn.
    fn settle(&mut self, job: usize, until: u64) -> u128 {
        let j = &mut self.jobs[job];
        let end = until.min(j.last + 1);
        if end <= j.next {
            return 0;
        }
        let per_node = u128::from(PRICE) * u128::from(end - j.next);
        j.next = end;
        let per_burn = per_node * 15 / 100;
        let mut burn = 0;
        for &node in &j.active {
            if self.blacklisted[node] {
                continue;
            }
            self.node_balance[node] += per_node - per_burn;
            j.balance -= per_node;
            burn += per_burn;
        }
        self.burned += burn;
        burn
    }

    fn open_job(&self, index: usize) -> Option<usize> {
        let open: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| !self.jobs[i].closed)
            .collect();
        (!open.is_empty()).then(|| open[index % open.len()])
    }
}

fn u(value: U256) -> u128 {
    u128::try_from(value).expect("fits u128")
}

async fn step(w: &World, m: &mut Model, op: &Op) {
    let epoch = w.epoch().await;
    match *op {
        Op::Create { nodes, epochs } => {
            let id = w.create_job(nodes, epochs).await;
            let balance = u128::from(PRICE * nodes * epochs);
            m.deposited += balance;
            m.jobs.push(Job {
                id,
                requested: nodes,
                last: epoch + epochs,
                next: epoch + 1,
                active: vec![],
                balance,
                closed: false,
            });
        }
        Op::ExtendDuration { job, add } => {
            let Some(j) = m.open_job(job) else { return };
            if epoch > m.jobs[j].last {
                return;
            }
            let new_last = m.jobs[j].last + add;
            w.csp
                .extend_job_duration(w.escrow, m.jobs[j].id, new_last)
                .await
                .expect("extend duration");
            let cost = u128::from(PRICE * m.jobs[j].requested * add);
            m.jobs[j].last = new_last;
            m.jobs[j].balance += cost;
            m.deposited += cost;
        }
        Op::ExtendNodes { job, add } => {
            let Some(j) = m.open_job(job) else { return };
            if epoch > m.jobs[j].last {
                return;
            }
            let id = m.jobs[j].id;
            let requested = m.jobs[j].requested + add;
            w.csp
                .extend_job_nodes(w.escrow, id, requested)
                .await
                .expect("extend nodes");
            m.settle(j, epoch);
            let left = m.jobs[j].last + 1 - m.jobs[j].next;
            let cost = u128::from(PRICE * add * left);
            m.jobs[j].requested = requested;
            m.jobs[j].balance += cost;
            m.deposited += cost;
        }
        Op::Vote {
            job,
            mask,
            byzantine,
        } => {
            let Some(j) = m.open_job(job) else { return };
            let chosen: Vec<usize> = (0..NODES)
                .filter(|&n| mask & (1 << n) != 0 && !m.blacklisted[n])
                .take(usize::try_from(m.jobs[j].requested).expect("small"))
                .collect();
            if chosen.is_empty() {
                return;
            }
            let honest: Vec<Address> = chosen.iter().map(|&n| w.nodes[n]).collect();
            let wrong: Vec<Address> = (0..NODES)
                .filter(|&n| !m.blacklisted[n])
                .take(1)
                .map(|n| w.nodes[n])
                .collect();
            let mut accepted = None;
            for (i, oracle) in w.oracles.iter().enumerate() {
                let view = if byzantine && i == 0 { &wrong } else { &honest };
                if let VoteOutcome::Accepted(set) = oracle
                    .submit_node_update(m.jobs[j].id, view)
                    .await
                    .expect("vote")
                {
                    accepted = Some(set);
                    break;
                }
            }
            assert_eq!(accepted, Some(honest), "the honest majority decides");
            m.settle(j, epoch);
            m.jobs[j].active = chosen;
        }
        Op::Advance { epochs } => w.advance_epochs(epochs).await,
        Op::Allocate => {
            if epoch <= m.allocated_until {
                assert!(matches!(
                    revert_of::<_, E>(w.oracles[1].allocate_rewards().await),
                    E::EpochAlreadyAllocated(_)
                ));
                return;
            }
            let allocation = w.oracles[1].allocate_rewards().await.expect("allocate");
            let mut burn = 0;
            for j in 0..m.jobs.len() {
                if !m.jobs[j].closed {
                    burn += m.settle(j, epoch);
                }
            }
            assert_eq!(u(allocation.usdc_burned), burn);
            m.allocated_until = epoch;
        }
        Op::Claim => {
            let claimable: Vec<usize> = (0..NODES).filter(|&n| !m.blacklisted[n]).collect();
            if claimable.is_empty() {
                return;
            }
            let nodes: Vec<Address> = claimable.iter().map(|&n| w.nodes[n]).collect();
            let total: u128 = claimable.iter().map(|&n| m.node_balance[n]).sum();
            if total == 0 {
                assert!(matches!(
                    revert_of::<_, E>(w.owner.claim_rewards(&nodes).await),
                    E::NothingToClaim(_)
                ));
                return;
            }
            let (usdc, _) = w.owner.claim_rewards(&nodes).await.expect("claim");
            assert_eq!(u(usdc), total);
            for n in claimable {
                m.node_balance[n] = 0;
            }
            m.claimed += total;
        }
        Op::Close { job } => {
            let Some(j) = m.open_job(job) else { return };
            assert_eq!(w.agree(m.jobs[j].id, &[]).await, Vec::<Address>::new());
            m.settle(j, epoch);
            m.refunded += m.jobs[j].balance;
            m.jobs[j].balance = 0;
            m.jobs[j].active.clear();
            m.jobs[j].closed = true;
        }
        Op::Blacklist { node } => {
            confirm(w.gov.manager().setBlacklisted(w.nodes[node], true))
                .await
                .expect("blacklist");
            m.blacklisted[node] = true;
        }
    }
}

async fn check(w: &World, m: &Model, csp_start: u128, pool_start: u128) {
    let escrow_usdc = u(w.usdc_balance(w.escrow).await);
    let manager = w.gov.manager();
    let escrow = w.gov.escrow(w.escrow);
    // Conservation, to the unit, on real token balances.
    assert_eq!(
        m.deposited,
        m.claimed + m.burned + escrow_usdc + m.refunded,
        "deposited = paid + burned + locked + refunded"
    );
    assert_eq!(
        u(w.usdc_balance(w.csp.address()).await),
        csp_start - m.deposited + m.refunded
    );
    assert_eq!(
        u(w.usdc_balance(w.gov.deployment().pool).await),
        pool_start + m.claimed + m.burned
    );
    assert_eq!(u(w.usdc_balance(w.gov.deployment().manager).await), 0);
    assert_eq!(
        u(manager.totalUsdcBurned().call().await.expect("burned")),
        m.burned
    );
    assert_eq!(
        u(escrow.totalClaimed().call().await.expect("claimed")),
        m.claimed
    );
    assert_eq!(
        u(escrow.totalRefunded().call().await.expect("refunded")),
        m.refunded
    );
    let locked: u128 =
        m.jobs.iter().map(|j| j.balance).sum::<u128>() + m.node_balance.iter().sum::<u128>();
    assert_eq!(
        escrow_usdc, locked,
        "escrow holds job budgets + node balances"
    );
    // Per job and per node.
    for job in &m.jobs {
        let state = w.csp.job(job.id).await.expect("job");
        assert_eq!(u(state.balance), job.balance, "job {} budget", job.id);
        assert_eq!(state.closed, job.closed);
        let active: Vec<Address> = job.active.iter().map(|&n| w.nodes[n]).collect();
        assert_eq!(state.activeNodes, active);
    }
    for (n, node) in w.nodes.iter().enumerate() {
        assert_eq!(
            u(w.node_balance(*node).await),
            m.node_balance[n],
            "node {n} is paid exactly its validated epochs"
        );
    }
    // R1 never beyond the cap.
    let r1 = w.gov.r1();
    assert!(
        r1.totalSupply().call().await.expect("supply")
            <= r1.MAX_SUPPLY().call().await.expect("cap")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn money_is_conserved_and_only_validated_nodes_are_paid(ops in proptest::collection::vec(op(), 20)) {
        run(|chain| async move {
            let w = World::new(chain, 3, NODES).await;
            let mut m = Model { allocated_until: w.epoch().await, ..Model::default() };
            let csp_start = u(w.usdc_balance(w.csp.address()).await);
            let pool_start = u(w.usdc_balance(w.gov.deployment().pool).await);
            for op in &ops {
                step(&w, &mut m, op).await;
                check(&w, &m, csp_start, pool_start).await;
            }
        });
    }
}
