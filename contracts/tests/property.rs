//! Property test: random sequences of create / extend (by the owner from its wallet, or by a
//! delegate from the escrow's free balance) / deposit / withdraw / change the delegate's
//! permissions / vote / move the clock (whole epochs to a boundary, or to a random second
//! mid-epoch) / allocate (one page of random size at a time, passes interleaved with everything
//! else, closes among them) / burn the queued 15 % share / claim / close (the oracles agree on
//! an empty set: before the job started, mid-epoch, at a boundary, after its budget ran out) /
//! redeem a job never started / exit a job while the protocol is stalled / blacklist against a
//! fresh suite, checking after every step against an exact model that settles by the second of
//! the chain's clock (the blocks' times are read back), to the unit: every node's balance is
//! what the seconds it served pay, `⌊price × seconds / epoch⌋` per settled span; every job's
//! budget and settled-until time match, so no second is paid twice when an allocation and a
//! close race; the CSP gets back exactly the remainder; the USDC deposited equals what nodes
//! claimed, burned (queued at the manager or swapped), locked, refunded and withdrawn together;
//! the escrow holds exactly its free balance, the job budgets and the node balances; a delegate
//! is refused exactly when it lacks the permission bit or the free balance; a job past its last
//! epoch refuses extensions; and the R1 supply never exceeds the cap.
//!
//! Every job is created at its own price (the guardian reprices the job type just before), drawn
//! mostly from prices whose 15 % leaves a remainder (the catalogue's `lite`, 0.166666 USDC, and
//! odd prices), so the model checks who gets the rounding remainder; long advances let jobs run
//! to their end. Failing cases are kept in `property.proptest-regressions` next to this file
//! and replayed first.

mod common;

use alloy::primitives::{Address, B256, U256};
use common::{EPOCH, World, actor, revert_of, run};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use r1_contracts::bindings::CspEscrow::CspEscrowErrors as EscrowError;
use r1_contracts::bindings::PoAIManager;
use r1_contracts::bindings::PoAIManager::PoAIManagerErrors as E;
use r1_contracts::tx::confirm;
use r1_contracts::units::usdc_units;
use r1_contracts::{JobRequest, Permissions, Suite, VoteOutcome};

const NODES: usize = 3;
/// The job type every job is created with; the guardian sets its price before each create.
const JOB_TYPE: u8 = 9;
/// Seconds within which a transaction is mined after the latest block: a delegate's payment
/// whose refusal depends on where in this window it lands is not sent.
const SLACK: u64 = 30;
/// Epochs without an allocation after which the protocol counts as stalled (the deployment's
/// `exitAfterEpochs`).
const EXIT_AFTER_EPOCHS: u64 = 3;

#[derive(Debug, Clone)]
enum Op {
    Create {
        nodes: u64,
        epochs: u64,
        /// USDC units per node per epoch.
        price: u64,
        delegated: bool,
    },
    ExtendDuration {
        job: usize,
        add: u64,
        delegated: bool,
    },
    ExtendNodes {
        job: usize,
        add: u64,
        delegated: bool,
    },
    /// The CSP (or a third party) tops up the free balance.
    Deposit {
        amount: u64,
        by_csp: bool,
    },
    /// The owner withdraws `permille` ‰ of the free balance (at least one unit; more than 1000 ‰
    /// must be refused).
    Withdraw {
        permille: u64,
    },
    /// The owner replaces the delegate's permission bits.
    Permit {
        bits: u8,
    },
    Vote {
        job: usize,
        mask: u8,
        byzantine: bool,
    },
    /// Moves the clock to `offset` seconds into the epoch `epochs` after the current one (0: on
    /// its boundary; never within a minute of the next one).
    Advance {
        epochs: u64,
        offset: u64,
    },
    /// One allocation page settling at most `jobs` jobs.
    Allocate {
        jobs: u64,
    },
    /// An oracle swaps and burns the queued 15 % share.
    Burn,
    Claim,
    Close {
        job: usize,
    },
    /// The owner (or the delegate) redeems a job, which only a job never started allows.
    Redeem {
        job: usize,
        delegated: bool,
    },
    /// The owner takes a job back, which only a stalled protocol allows.
    Exit {
        job: usize,
    },
    Blacklist {
        node: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..=3, 30u64..=34, price(), delegated()).prop_map(|(nodes, epochs, price, delegated)| Op::Create { nodes, epochs, price, delegated }),
        2 => (0usize..8, 1u64..=4, delegated()).prop_map(|(job, add, delegated)| Op::ExtendDuration { job, add, delegated }),
        2 => (0usize..8, 1u64..=2, delegated()).prop_map(|(job, add, delegated)| Op::ExtendNodes { job, add, delegated }),
        2 => (1u64..=20_000_000, any::<bool>()).prop_map(|(amount, by_csp)| Op::Deposit { amount, by_csp }),
        1 => (0u64..=1_200).prop_map(|permille| Op::Withdraw { permille }),
        1 => (0u8..16).prop_map(|bits| Op::Permit { bits }),
        4 => (0usize..8, 1u8..8, any::<bool>()).prop_map(|(job, mask, byzantine)| Op::Vote { job, mask, byzantine }),
        6 => advance().prop_map(|(epochs, offset)| Op::Advance { epochs, offset }),
        3 => (1u64..=4).prop_map(|jobs| Op::Allocate { jobs }),
        2 => Just(Op::Claim),
        2 => Just(Op::Burn),
        2 => (0usize..8).prop_map(|job| Op::Close { job }),
        1 => (0usize..8).prop_map(|job| Op::Exit { job }),
        1 => (0usize..8, delegated()).prop_map(|(job, delegated)| Op::Redeem { job, delegated }),
        1 => (0usize..NODES).prop_map(|node| Op::Blacklist { node }),
    ]
}

/// A job's price per node per epoch: mostly one whose 15 % leaves a remainder (the catalogue's
/// `lite` class, 166 666 units, or an odd price), sometimes a round one (`micro`, `entry`).
fn price() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(166_666u64),
        3 => (0u64..200_000).prop_map(|n| 2 * n + 1),
        1 => Just(100_000u64),
        1 => Just(375_000u64),
    ]
}

/// Where to move the clock: a few epochs on to a boundary, a few seconds to a few epochs on to
/// a random second mid-epoch, or far enough (jobs run 30 to 34 epochs) that jobs reach their end.
fn advance() -> impl Strategy<Value = (u64, u64)> {
    let mid = 60..EPOCH - 60;
    prop_oneof![
        2 => (1u64..=3, Just(0)),
        3 => (0u64..=2, mid.clone()),
        1 => (12u64..=40, prop_oneof![Just(0), mid]),
    ]
}

/// Whether a create or extend is sent by the delegate (paid from the free balance).
fn delegated() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.4)
}

/// The suite's actors beyond the [`World`]: the CSP's delegate and a third-party funder.
struct Extra {
    delegate: Suite,
    funder: Suite,
}

#[derive(Debug, Clone)]
struct Job {
    id: u64,
    /// USDC units per node per epoch, fixed when it was created.
    price: u64,
    requested: u64,
    last: u64,
    /// The time up to which it is settled.
    settled_until: u64,
    active: Vec<usize>,
    balance: u128,
    closed: bool,
    /// The block time of its request.
    created_at: u64,
    /// Whether a node set was ever agreed for it.
    started: bool,
}

/// An allocation pass in progress: its end epoch and where its walk down the escrow's open
/// jobs stands (`usize::MAX` before the first page).
#[derive(Debug, Clone, Copy)]
struct Pass {
    until: u64,
    cursor: usize,
}

#[derive(Debug, Default)]
struct Model {
    /// The start of epoch 0.
    genesis: u64,
    jobs: Vec<Job>,
    node_balance: [u128; NODES],
    blacklisted: [bool; NODES],
    deposited: u128,
    /// USDC the CSP's wallet paid in (its jobs and its deposits).
    csp_paid: u128,
    /// USDC the third-party funder deposited.
    funder_paid: u128,
    free: u128,
    withdrawn: u128,
    delegate_bits: u8,
    claimed: u128,
    /// USDC credited to node balances, ever.
    credited: u128,
    /// USDC of the 15 % share taken from the jobs (queued at the manager until swapped).
    burned: u128,
    /// Of that, USDC swapped to R1 and burned.
    swapped: u128,
    refunded: u128,
    allocated_until: u64,
    /// The escrow's open job set, in its storage order (indexes into `jobs`).
    open: Vec<usize>,
    pass: Option<Pass>,
}

impl Model {
    /// The first second after epoch `last`: the end of a job's paid span.
    fn end(&self, last: u64) -> u64 {
        self.genesis + (last + 1) * EPOCH
    }

    /// Settles `job` up to `until` (never beyond the end of its last epoch) by the escrow's
    /// stated rule: each non-blacklisted node of its set is paid `⌊price × seconds / epoch⌋`
    /// for the seconds since it was last settled, split by [`split`]. Returns the burn.
    fn settle(&mut self, job: usize, until: u64) -> u128 {
        let end = until.min(self.end(self.jobs[job].last));
        let j = &mut self.jobs[job];
        if end <= j.settled_until {
            return 0;
        }
        let per_node = u128::from(j.price) * u128::from(end - j.settled_until) / u128::from(EPOCH);
        j.settled_until = end;
        let (reward, per_burn) = split(per_node);
        let mut burn = 0;
        for &node in &j.active {
            if self.blacklisted[node] {
                continue;
            }
            self.node_balance[node] += reward;
            self.credited += reward;
            j.balance -= per_node;
            burn += per_burn;
        }
        self.burned += burn;
        burn
    }

    /// Settles `job` up to `at` and closes it, the remainder refunded to the CSP.
    fn close(&mut self, job: usize, at: u64) {
        self.settle(job, at);
        self.refunded += self.jobs[job].balance;
        self.jobs[job].balance = 0;
        self.jobs[job].active.clear();
        self.jobs[job].closed = true;
        self.remove_open(job);
    }

    /// Pays `cost` the way the escrow does: from the owner's wallet, or (delegated) from the
    /// free balance. Returns the refusal a delegate gets (lacking `permission`, or the free
    /// balance) and then changes nothing.
    fn pay(
        &mut self,
        cost: u128,
        delegated: bool,
        permission: Permissions,
    ) -> Option<&'static str> {
        if let Some(refused) = self.refusal(cost, cost, delegated, permission) {
            return Some(refused);
        }
        self.charge(cost, delegated);
        None
    }

    /// Whether a payment costing from `least` (mined late) to `most` (mined at once) is refused:
    /// the refusal a delegate lacking `permission` or the free balance gets, "unsure" when it
    /// depends on when it is mined, `None` when it goes through.
    fn refusal(
        &self,
        least: u128,
        most: u128,
        delegated: bool,
        permission: Permissions,
    ) -> Option<&'static str> {
        if !delegated {
            return None;
        }
        if self.delegate_bits & permission.bits() == 0 {
            return Some("NotPermitted");
        }
        if least > self.free {
            return Some("InsufficientFreeBalance");
        }
        (most > self.free).then_some("unsure")
    }

    /// Takes `cost` from the owner's wallet, or (delegated) from the free balance.
    fn charge(&mut self, cost: u128, delegated: bool) {
        if delegated {
            self.free -= cost;
        } else {
            self.deposited += cost;
            self.csp_paid += cost;
        }
    }

    /// The refusal an extension of job `j` in `epoch` gets once the job has ended: a delegate
    /// lacking `permission` is refused for that first, anyone else because the job ended.
    fn ended(
        &self,
        j: usize,
        epoch: u64,
        delegated: bool,
        permission: Permissions,
    ) -> Option<&'static str> {
        if epoch <= self.jobs[j].last {
            return None;
        }
        let permitted = !delegated || self.delegate_bits & permission.bits() != 0;
        Some(if permitted {
            "JobEnded"
        } else {
            "NotPermitted"
        })
    }

    /// Takes job `j` out of the open set as the escrow does: the last one moves into its place.
    fn remove_open(&mut self, j: usize) {
        let at = self.open.iter().position(|&o| o == j).expect("open");
        self.open.swap_remove(at);
    }

    /// One page of at most `max` jobs, as the manager and the escrow walk them: returns the
    /// burn of the page and whether it finished the pass.
    fn page(&mut self, pass: Pass, max: u64) -> (u128, bool) {
        let mut cursor = pass.cursor.min(self.open.len());
        let mut budget = max;
        let mut burn = 0;
        while cursor > 0 && budget > 0 {
            cursor -= 1;
            budget -= 1;
            // Every job visited is settled up to the start of the pass's epoch.
            let until = self.genesis + pass.until * EPOCH;
            burn += self.settle(self.open[cursor], until);
        }
        let finished = cursor == 0;
        self.pass = (!finished).then_some(Pass { cursor, ..pass });
        if finished {
            self.allocated_until = pass.until;
        }
        (burn, finished)
    }

    fn open_job(&self, index: usize) -> Option<usize> {
        let open: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| !self.jobs[i].closed)
            .collect();
        (!open.is_empty()).then(|| open[index % open.len()])
    }
}

/// What `nodes` nodes cost for the `seconds` at `price` per node per epoch, rounded down.
fn cost(price: u64, nodes: u64, seconds: u64) -> u128 {
    u128::from(price) * u128::from(nodes) * u128::from(seconds) / u128::from(EPOCH)
}

/// What one node's `amount` (its pay for the seconds settled together) splits into, by the
/// escrow's stated rule rather than its code: the burn is 15 % rounded down and the node gets
/// 85 % rounded up, so a rounding remainder goes to the node and nothing is lost or created.
fn split(amount: u128) -> (u128, u128) {
    let reward = (amount * 85).div_ceil(100);
    let burn = amount * 15 / 100;
    (reward, burn)
}

fn u(value: U256) -> u128 {
    u128::try_from(value).expect("fits u128")
}

/// The name of the escrow error `result` reverted with, if it did.
fn refusal<T>(result: r1_contracts::Result<T>) -> &'static str {
    match revert_of::<_, EscrowError>(result) {
        EscrowError::NotPermitted(_) => "NotPermitted",
        EscrowError::InsufficientFreeBalance(_) => "InsufficientFreeBalance",
        EscrowError::JobEnded(_) => "JobEnded",
        other => panic!("unexpected revert {other:?}"),
    }
}

async fn step(w: &World, x: &Extra, m: &mut Model, op: &Op) {
    let epoch = w.epoch().await;
    // The latest block's time: the next transaction is mined at it or (by SLACK) later.
    let t0 = w.now().await;
    match *op {
        Op::Create {
            nodes,
            epochs,
            price,
            delegated,
        } => {
            w.gov
                .set_job_type_price(JOB_TYPE, U256::from(price))
                .await
                .expect("set price");
            let last = epoch + epochs;
            let end = m.end(last);
            let request = JobRequest {
                job_type: JOB_TYPE,
                project_hash: B256::repeat_byte(0xab),
                last_execution_epoch: last,
                nodes,
            };
            let sender = if delegated { &x.delegate } else { &w.csp };
            // The rest of the creation epoch and the whole epochs after it, by the second.
            let most = cost(price, nodes, end - w.now().await);
            let least = cost(price, nodes, end - (w.now().await + SLACK));
            match m.refusal(least, most, delegated, Permissions::CREATE) {
                Some("unsure") => return,
                Some(expected) => {
                    assert_eq!(
                        refusal(sender.create_job(w.escrow, &request).await),
                        expected
                    );
                    return;
                }
                None => {}
            }
            let id = sender
                .create_job(w.escrow, &request)
                .await
                .expect("create job");
            let created_at = w.now().await;
            let balance = cost(price, nodes, end - created_at);
            m.charge(balance, delegated);
            m.jobs.push(Job {
                id,
                price,
                requested: nodes,
                last,
                settled_until: created_at,
                active: vec![],
                balance,
                closed: false,
                created_at,
                started: false,
            });
            m.open.push(m.jobs.len() - 1);
        }
        Op::ExtendDuration {
            job,
            add,
            delegated,
        } => {
            let Some(j) = m.open_job(job) else { return };
            let new_last = m.jobs[j].last + add;
            let cost = u128::from(m.jobs[j].price * m.jobs[j].requested * add);
            let sender = if delegated { &x.delegate } else { &w.csp };
            let sent = sender
                .extend_job_duration(w.escrow, m.jobs[j].id, new_last)
                .await;
            if let Some(expected) = m.ended(j, epoch, delegated, Permissions::EXTEND_DURATION) {
                assert_eq!(refusal(sent), expected);
                return;
            }
            if let Some(expected) = m.pay(cost, delegated, Permissions::EXTEND_DURATION) {
                assert_eq!(refusal(sent), expected);
                return;
            }
            sent.expect("extend duration");
            m.jobs[j].last = new_last;
            m.jobs[j].balance += cost;
        }
        Op::ExtendNodes {
            job,
            add,
            delegated,
        } => {
            let Some(j) = m.open_job(job) else { return };
            let id = m.jobs[j].id;
            let price = m.jobs[j].price;
            let requested = m.jobs[j].requested + add;
            let sender = if delegated { &x.delegate } else { &w.csp };
            if let Some(expected) = m.ended(j, epoch, delegated, Permissions::EXTEND_NODES) {
                let sent = sender.extend_job_nodes(w.escrow, id, requested).await;
                assert_eq!(refusal(sent), expected);
                return;
            }
            // Settled up to the extension first, then the added nodes pay the seconds left.
            let end = m.end(m.jobs[j].last);
            let most = cost(price, add, end - t0);
            let least = cost(price, add, end.saturating_sub(t0 + SLACK));
            match m.refusal(least, most, delegated, Permissions::EXTEND_NODES) {
                Some("unsure") => return,
                Some(expected) => {
                    let sent = sender.extend_job_nodes(w.escrow, id, requested).await;
                    assert_eq!(refusal(sent), expected);
                    return;
                }
                None => {}
            }
            sender
                .extend_job_nodes(w.escrow, id, requested)
                .await
                .expect("extend nodes");
            let at = w.now().await;
            m.settle(j, at);
            assert_eq!(m.jobs[j].settled_until, at);
            let cost = cost(price, add, end - at);
            m.charge(cost, delegated);
            m.jobs[j].requested = requested;
            m.jobs[j].balance += cost;
        }
        Op::Deposit { amount, by_csp } => {
            let sender = if by_csp { &w.csp } else { &x.funder };
            sender
                .deposit(w.escrow, U256::from(amount))
                .await
                .expect("deposit");
            let amount = u128::from(amount);
            m.deposited += amount;
            m.free += amount;
            if by_csp {
                m.csp_paid += amount;
            } else {
                m.funder_paid += amount;
            }
        }
        Op::Withdraw { permille } => {
            let amount = (m.free * u128::from(permille) / 1_000).max(1);
            let sent = w.csp.withdraw(w.escrow, U256::from(amount)).await;
            if amount > m.free {
                assert_eq!(refusal(sent), "InsufficientFreeBalance");
                return;
            }
            sent.expect("withdraw");
            m.free -= amount;
            m.withdrawn += amount;
        }
        Op::Permit { bits } => {
            let permissions = Permissions::from_bits(bits).expect("known bits");
            w.csp
                .set_delegate(w.escrow, x.delegate.address(), permissions)
                .await
                .expect("set delegate");
            m.delegate_bits = bits;
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
            // The outgoing set is paid up to the decision, the new one from it.
            m.settle(j, w.now().await);
            m.jobs[j].active = chosen;
            m.jobs[j].started = true;
        }
        Op::Advance { epochs, offset } => {
            let target = m.genesis + (epoch + epochs) * EPOCH + offset;
            if target > t0 {
                w.advance_to(target).await;
                assert_eq!(w.now().await, target);
            }
        }
        Op::Allocate { jobs } => {
            let manager = w.oracles[1].manager();
            let page = manager.allocateRewardsToNodes(U256::from(jobs));
            let pass = match m.pass {
                Some(pass) => pass,
                None if epoch <= m.allocated_until => {
                    assert!(matches!(
                        revert_of::<_, E>(confirm(page).await),
                        E::EpochAlreadyAllocated(_)
                    ));
                    return;
                }
                None => Pass {
                    until: epoch,
                    cursor: usize::MAX,
                },
            };
            let receipt = confirm(page).await.expect("allocate");
            let (burn, finished) = m.page(pass, jobs);
            let logged = receipt
                .decoded_log::<PoAIManager::AllocationPage>()
                .expect("page");
            assert_eq!(u(logged.data.usdcBurned), burn);
            assert_eq!(
                receipt
                    .decoded_log::<PoAIManager::RewardsAllocated>()
                    .is_some(),
                finished
            );
        }
        Op::Burn => {
            let burned = w.oracles[2].burn_pending_fees(100).await.expect("burn");
            let queued = m.burned - m.swapped;
            assert_eq!(
                burned.map(|(usdc, _)| u(usdc)),
                (queued > 0).then_some(queued)
            );
            m.swapped = m.burned;
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
                    revert_of::<_, E>(w.owner.claim_rewards(&nodes, 100).await),
                    E::NothingToClaim(_)
                ));
                return;
            }
            let (usdc, _) = w.owner.claim_rewards(&nodes, 100).await.expect("claim");
            assert_eq!(u(usdc), total);
            for n in claimable {
                m.node_balance[n] = 0;
            }
            m.claimed += total;
        }
        Op::Close { job } => {
            let Some(j) = m.open_job(job) else { return };
            assert_eq!(w.agree(m.jobs[j].id, &[]).await, Vec::<Address>::new());
            m.close(j, w.now().await);
        }
        Op::Redeem { job, delegated } => {
            let Some(j) = m.open_job(job) else { return };
            // The redeem delay is an epoch from the request.
            let ready_at = m.jobs[j].created_at + EPOCH;
            let early = t0 < ready_at;
            if early && t0 + SLACK >= ready_at {
                return;
            }
            let sender = if delegated { &x.delegate } else { &w.csp };
            let sent = sender.redeem_unstarted_job(w.escrow, m.jobs[j].id).await;
            let expected = if delegated && m.delegate_bits & Permissions::REDEEM.bits() == 0 {
                Some("NotPermitted")
            } else if m.jobs[j].started {
                Some("JobAlreadyStarted")
            } else if early {
                Some("RedeemTooEarly")
            } else {
                None
            };
            if let Some(expected) = expected {
                let got = match revert_of::<_, EscrowError>(sent) {
                    EscrowError::NotPermitted(_) => "NotPermitted",
                    EscrowError::JobAlreadyStarted(_) => "JobAlreadyStarted",
                    EscrowError::RedeemTooEarly(_) => "RedeemTooEarly",
                    other => panic!("unexpected revert {other:?}"),
                };
                assert_eq!(got, expected);
                return;
            }
            let refunded = u(sent.expect("redeem"));
            assert_eq!(
                refunded, m.jobs[j].balance,
                "a job never started is refunded whole"
            );
            m.close(j, w.now().await);
        }
        Op::Exit { job } => {
            let Some(j) = m.open_job(job) else { return };
            let sent = w.csp.exit_stalled_job(w.escrow, m.jobs[j].id).await;
            if epoch < m.allocated_until + EXIT_AFTER_EPOCHS {
                assert!(matches!(revert_of::<_, E>(sent), E::NotStalled(_)));
                return;
            }
            let refunded = u(sent.expect("exit"));
            let before = m.refunded;
            m.close(j, w.now().await);
            assert_eq!(
                refunded,
                m.refunded - before,
                "the CSP gets back the remainder"
            );
        }
        Op::Blacklist { node } => {
            confirm(w.gov.manager().setBlacklisted(w.nodes[node], true))
                .await
                .expect("blacklist");
            m.blacklisted[node] = true;
        }
    }
}

const FUNDER_USDC: u64 = 1_000;

async fn check(w: &World, x: &Extra, m: &Model, csp_start: u128, pool_start: u128) {
    let escrow_usdc = u(w.usdc_balance(w.escrow).await);
    let manager = w.gov.manager();
    let escrow = w.gov.escrow(w.escrow);
    // Conservation, to the unit, on real token balances.
    assert_eq!(
        m.deposited,
        m.claimed + m.burned + escrow_usdc + m.refunded + m.withdrawn,
        "deposited = paid + burned + locked + refunded + withdrawn"
    );
    assert_eq!(
        u(w.usdc_balance(w.csp.address()).await),
        csp_start - m.csp_paid + m.refunded + m.withdrawn
    );
    assert_eq!(
        u(w.usdc_balance(x.funder.address()).await),
        u(usdc_units(FUNDER_USDC)) - m.funder_paid
    );
    assert_eq!(
        u(w.usdc_balance(x.delegate.address()).await),
        0,
        "a delegate never pays"
    );
    assert_eq!(u(escrow.freeBalance().call().await.expect("free")), m.free);
    assert_eq!(
        u(escrow.totalDeposited().call().await.expect("deposited")),
        m.deposited
    );
    assert_eq!(
        u(escrow.totalWithdrawn().call().await.expect("withdrawn")),
        m.withdrawn
    );
    assert_eq!(
        u(w.usdc_balance(w.gov.deployment().pool).await),
        pool_start + m.claimed + m.swapped
    );
    assert_eq!(
        u(w.usdc_balance(w.gov.deployment().manager).await),
        m.burned - m.swapped,
        "the manager holds exactly the queued share"
    );
    assert_eq!(
        u(manager.pendingBurnUsdc().call().await.expect("pending")),
        m.burned - m.swapped
    );
    assert_eq!(
        u(manager.totalUsdcBurned().call().await.expect("burned")),
        m.swapped
    );
    assert_eq!(
        u(escrow.totalClaimed().call().await.expect("claimed")),
        m.claimed
    );
    assert_eq!(
        u(escrow.totalRefunded().call().await.expect("refunded")),
        m.refunded
    );
    assert_eq!(
        u(escrow
            .totalCreditedToNodes()
            .call()
            .await
            .expect("credited")),
        m.credited
    );
    assert_eq!(
        u(escrow.totalBurned().call().await.expect("burned")),
        m.burned
    );
    let locked: u128 = m.free
        + m.jobs.iter().map(|j| j.balance).sum::<u128>()
        + m.node_balance.iter().sum::<u128>();
    assert_eq!(
        escrow_usdc, locked,
        "escrow holds free balance + job budgets + node balances"
    );
    // Per job and per node.
    for job in &m.jobs {
        let state = w.csp.job(job.id).await.expect("job");
        assert_eq!(u(state.balance), job.balance, "job {} budget", job.id);
        assert_eq!(
            u(state.settledUntil),
            u128::from(job.settled_until),
            "job {} settled once up to the model's time",
            job.id
        );
        assert_eq!(state.closed, job.closed);
        let active: Vec<Address> = job.active.iter().map(|&n| w.nodes[n]).collect();
        assert_eq!(state.activeNodes, active);
    }
    for (n, node) in w.nodes.iter().enumerate() {
        assert_eq!(
            u(w.node_balance(*node).await),
            m.node_balance[n],
            "node {n} is paid exactly the seconds it served"
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
    #![proptest_config(ProptestConfig {
        cases: 20,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_second_served_is_paid_once_and_the_csp_gets_the_rest(ops in proptest::collection::vec(op(), 40)) {
        run(|chain| async move {
            let w = World::new(chain, 3, NODES).await;
            let x = Extra { delegate: actor(&w).await, funder: actor(&w).await };
            w.gov.mint_usdc(x.funder.address(), usdc_units(FUNDER_USDC)).await.expect("mint");
            w.csp
                .set_delegate(w.escrow, x.delegate.address(), Permissions::ALL)
                .await
                .expect("grant");
            let mut m = Model {
                genesis: w.genesis().await,
                allocated_until: w.epoch().await,
                delegate_bits: Permissions::ALL.bits(),
                ..Model::default()
            };
            let csp_start = u(w.usdc_balance(w.csp.address()).await);
            let pool_start = u(w.usdc_balance(w.gov.deployment().pool).await);
            for op in &ops {
                step(&w, &x, &mut m, op).await;
                check(&w, &x, &m, csp_start, pool_start).await;
            }
        });
    }
}
