//! The audit itself, as a pure function of a suite's history and one escrow's state: replays
//! every event in chain order through the escrow's arithmetic ([`Ledger`]) and the manager's
//! consensus rule ([`quorum`]), so that each funding, node set, settlement, burn, refund and
//! PoA mint is recomputed from what came before it (the votes, the price table, the epochs of
//! the blocks) and compared with what the chain emitted; then compares the result with the
//! contracts' state. Nothing is trusted because the chain said it: a settlement on chain is
//! only matched against the one the replay expected.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256, U256};
use r1_contracts::history::{Entry, EscrowSnapshot, Fact, History, JobView};
use r1_contracts::units::usdc_text;

use super::ledger::{Ledger, Settlement};
use super::quorum;
use super::report::{Report, Row, short, short_list};

/// PoA cap per licence, R1 units (`NodeDeed.MAX_POA_PER_LICENCE`, 1,575.19 R1).
const MAX_POA_PER_LICENCE: u128 = 1_575_190_000_000_000_000_000;
/// Epoch credits per licence (`NodeDeed.POA_EPOCH_CREDITS`).
const POA_EPOCH_CREDITS: u128 = 1_080;

/// The PoA reward for one epoch at availability `a` (`NodeDeed.poaRewardFor`).
fn poa_reward(a: u8) -> U256 {
    U256::from(MAX_POA_PER_LICENCE) * U256::from(a) / U256::from(POA_EPOCH_CREDITS * 255)
}

/// Which jobs a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These jobs of the escrow, and the nodes that ran them.
    Jobs(Vec<u64>),
    /// Every job and node of the escrow.
    Escrow,
}

/// A row about one job, or about the escrow or the network (`None`).
type Tagged = (Option<u64>, Row);

/// The replayed state of one escrow and of what the manager and the Node Deed decided.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    escrow: Address,
    owner: Address,
    oracles: BTreeSet<Address>,
    blacklist: BTreeSet<Address>,
    prices: BTreeMap<u8, U256>,
    jobs: BTreeMap<u64, Ledger>,
    projects: BTreeMap<u64, B256>,
    job_nodes: BTreeMap<u64, BTreeSet<Address>>,
    node_balances: BTreeMap<Address, U256>,
    free: U256,
    deposited: U256,
    withdrawn: U256,
    claimed: U256,
    rounds: BTreeMap<(u64, u64), Vec<(Address, B256)>>,
    availability: BTreeMap<u64, Vec<(Address, B256)>>,
    availability_accepted: usize,
    availability_agreed: usize,
    /// Epochs whose availability table a quorum agreed on: their pages may mint.
    agreed_epochs: BTreeSet<u64>,
    burn_txs: usize,
    burn_expected: U256,
    burn_actual: U256,
    pass_burned: U256,
    poa_expected: BTreeMap<u64, U256>,
    poa_mints: BTreeMap<u64, usize>,
    licence_nodes: BTreeMap<u64, BTreeSet<Address>>,
    poa_rows: Vec<(Address, Row)>,
    rows: Vec<Tagged>,
}

impl Replay {
    /// Replays `history` for the escrow at `escrow` owned by `owner`.
    pub fn new(history: &History, escrow: Address, owner: Address) -> Replay {
        let mut replay = Replay {
            escrow,
            owner,
            ..Replay::default()
        };
        for group in history.entries.chunk_by(|a, b| a.tx == b.tx) {
            replay.transaction(history, group);
        }
        replay
    }

    /// The escrow's jobs, by id.
    pub fn jobs(&self) -> Vec<u64> {
        self.jobs.keys().copied().collect()
    }

    /// The escrow's jobs that pay for `project_hash`.
    pub fn jobs_of_project(&self, project_hash: B256) -> Vec<u64> {
        self.projects
            .iter()
            .filter(|(_, hash)| **hash == project_hash)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every node that ever had a balance in the escrow or was agreed for one of its jobs.
    pub fn nodes(&self) -> Vec<Address> {
        let agreed = self.job_nodes.values().flatten();
        let nodes: BTreeSet<Address> = self.node_balances.keys().chain(agreed).copied().collect();
        nodes.into_iter().collect()
    }

    /// The licences PoA was minted for through any of `nodes`.
    pub fn licences_of(&self, nodes: &BTreeSet<Address>) -> Vec<u64> {
        self.licence_nodes
            .iter()
            .filter(|(_, minted)| !minted.is_disjoint(nodes))
            .map(|(licence, _)| *licence)
            .collect()
    }

    /// The nodes that ran `selection`'s jobs.
    pub fn involved(&self, selection: &Selection) -> BTreeSet<Address> {
        match selection {
            Selection::Escrow => self.job_nodes.values().flatten().copied().collect(),
            Selection::Jobs(ids) => ids
                .iter()
                .filter_map(|id| self.job_nodes.get(id))
                .flatten()
                .copied()
                .collect(),
        }
    }

    fn mine(&self, job: u64) -> bool {
        self.jobs.contains_key(&job)
    }

    fn row(&mut self, job: Option<u64>, row: Row) {
        self.rows.push((job, row));
    }

    /// One transaction's events: first the settlements its call makes before anything else
    /// (an allocation settles every open job, a node-set decision and a node extension their
    /// job), then the events in order.
    fn transaction(&mut self, history: &History, group: &[Entry]) {
        let due = self.settlements_due(history, group);
        self.match_settlements(group, due);
        self.check_burns(group);
        for entry in group {
            self.event(history, group, entry);
        }
    }

    /// The settlements the call of `group` must make, with what caused each.
    fn settlements_due(
        &mut self,
        history: &History,
        group: &[Entry],
    ) -> Vec<(u64, Settlement, String)> {
        let mut due = Vec::new();
        let page = group.iter().find_map(|e| match &e.fact {
            Fact::AllocationPage { until, oracle, .. } => Some((*until, *oracle)),
            _ => None,
        });
        if let Some((until, oracle)) = page {
            let Some(until) = history.clock.map(|c| c.start_s(until)) else {
                self.row(
                    None,
                    Row::check("allocation", "the epoch clock", "not read", false),
                );
                return due;
            };
            // A page settles the jobs it visits; the pass's last page (the one that reports
            // `RewardsAllocated`) leaves every open job settled up to `until`.
            let last_page = group
                .iter()
                .any(|e| matches!(e.fact, Fact::RewardsAllocated { .. }));
            let escrow = self.escrow;
            let settled_here: BTreeSet<u64> = group
                .iter()
                .filter_map(|e| match &e.fact {
                    Fact::Settled {
                        escrow: at, job, ..
                    } if *at == escrow => Some(*job),
                    _ => None,
                })
                .collect();
            for (id, ledger) in self.jobs.iter_mut().filter(|(_, l)| !l.closed) {
                if !last_page && !settled_here.contains(id) {
                    continue;
                }
                if let Some(paid) = ledger.settle(until, &self.blacklist) {
                    due.push((*id, paid, format!("allocated by {}", short(&oracle))));
                }
            }
            return due;
        }
        for entry in group {
            let (job, cause) = match &entry.fact {
                Fact::NodeUpdateAccepted { job, .. } => (*job, "node set changed"),
                Fact::StalledJobReleased { job } => (*job, "taken back from a stalled protocol"),
                Fact::JobNodesExtended { escrow, job, .. } if *escrow == self.escrow => {
                    (*job, "nodes extended")
                }
                _ => continue,
            };
            let open = self.jobs.get(&job).is_some_and(|l| !l.closed);
            if !open {
                continue;
            }
            let Some(at) = history.time_of(entry) else {
                self.row(
                    Some(job),
                    Row::check(
                        format!("job {job} {cause}"),
                        "the block's time",
                        "not read",
                        false,
                    ),
                );
                continue;
            };
            let blacklist = self.blacklist.clone();
            if let Some(paid) = self
                .jobs
                .get_mut(&job)
                .and_then(|l| l.settle(at, &blacklist))
            {
                due.push((job, paid, cause.to_string()));
            }
        }
        due
    }

    /// Compares the settlements due with the ones `group` emitted, and credits the nodes.
    fn match_settlements(&mut self, group: &[Entry], due: Vec<(u64, Settlement, String)>) {
        let mut emitted: Vec<(u64, String)> = group
            .iter()
            .filter_map(|e| match &e.fact {
                Fact::Settled {
                    escrow,
                    job,
                    from,
                    to,
                    nodes_paid,
                    to_nodes,
                    burned,
                } if *escrow == self.escrow => Some((
                    *job,
                    settled_text(*from, *to, *nodes_paid, *to_nodes, *burned),
                )),
                _ => None,
            })
            .collect();
        for (job, paid, cause) in due {
            for node in &paid.nodes {
                *self.node_balances.entry(*node).or_default() += paid.per_node;
            }
            let expected = settled_text(
                paid.from,
                paid.to,
                paid.nodes.len() as u64,
                paid.to_nodes,
                paid.burned,
            );
            let actual = match emitted.iter().position(|(j, _)| *j == job) {
                Some(i) => emitted.remove(i).1,
                None => "none".to_string(),
            };
            self.row(
                Some(job),
                Row::compare(format!("job {job} settled ({cause})"), expected, actual),
            );
        }
        for (job, actual) in emitted {
            self.row(
                Some(job),
                Row::check(format!("job {job} settled"), "nothing due", actual, false),
            );
        }
    }

    /// Every settlement's 15 % share is queued for burning in the same transaction
    /// (`BurnQueued`; an oracle swaps and burns the queue later), and an allocation page reports
    /// the sum it settled for burning.
    fn check_burns(&mut self, group: &[Entry]) {
        let mine = group
            .iter()
            .any(|e| matches!(&e.fact, Fact::Settled { escrow, .. } if *escrow == self.escrow));
        if !mine {
            return;
        }
        let mut settled = U256::ZERO;
        let mut swapped = U256::ZERO;
        let mut reported = None;
        for entry in group {
            match &entry.fact {
                Fact::Settled { burned, .. } => settled += *burned,
                Fact::BurnQueued { usdc } => swapped += *usdc,
                Fact::AllocationPage { usdc_burned, .. } => reported = Some(*usdc_burned),
                _ => {}
            }
        }
        self.burn_txs += 1;
        self.burn_expected += settled;
        self.burn_actual += swapped;
        if swapped != settled {
            self.row(
                None,
                Row::usdc(
                    format!("burned in transaction {}", entry_tx(group)),
                    settled,
                    swapped,
                ),
            );
        }
        if let Some(reported) = reported.filter(|r| *r != settled) {
            self.row(
                None,
                Row::usdc(
                    format!("allocation's burn in transaction {}", entry_tx(group)),
                    settled,
                    reported,
                ),
            );
        }
    }

    fn event(&mut self, history: &History, group: &[Entry], entry: &Entry) {
        match &entry.fact {
            Fact::OracleAdded { oracle } => {
                self.oracles.insert(*oracle);
            }
            Fact::OracleRemoved { oracle } => {
                self.oracles.remove(oracle);
            }
            Fact::BlacklistSet { node, blacklisted } => {
                if *blacklisted {
                    self.blacklist.insert(*node);
                } else {
                    self.blacklist.remove(node);
                }
            }
            Fact::JobTypePriceSet { job_type, price } => {
                self.prices.insert(*job_type, *price);
            }
            Fact::NodeUpdateSubmitted {
                job,
                round,
                oracle,
                proposal,
            } if self.mine(*job) => {
                self.check_voter(
                    history,
                    entry,
                    *oracle,
                    Some(*job),
                    format!("job {job} vote, round {round}"),
                );
                self.rounds
                    .entry((*job, *round))
                    .or_default()
                    .push((*oracle, *proposal));
            }
            Fact::NodeUpdateAccepted {
                job,
                round,
                proposal,
                nodes,
            } if self.mine(*job) => {
                self.accept_nodes(history, entry, *job, *round, *proposal, nodes);
            }
            Fact::AvailabilitySubmitted {
                epoch,
                oracle,
                proposal,
            } => {
                self.check_voter(
                    history,
                    entry,
                    *oracle,
                    None,
                    format!("availability vote, epoch {epoch}"),
                );
                self.availability
                    .entry(*epoch)
                    .or_default()
                    .push((*oracle, *proposal));
            }
            Fact::AvailabilityAccepted { epoch, proposal } => {
                let votes = self.availability.remove(epoch).unwrap_or_default();
                self.availability_accepted += 1;
                match quorum::check(&votes, self.oracles.len(), history.quorum, *proposal) {
                    Ok(_) => {
                        self.availability_agreed += 1;
                        self.agreed_epochs.insert(*epoch);
                    }
                    Err(e) => self.row(
                        None,
                        Row::check(
                            format!("availability of epoch {epoch}"),
                            "agreed by quorum",
                            e.to_string(),
                            false,
                        ),
                    ),
                }
            }
            Fact::PoaMinted {
                epoch,
                licence,
                node,
                availability,
                amount,
            } => {
                self.mint(group, *epoch, *licence, *node, *availability, *amount);
            }
            Fact::JobCreated { escrow, .. } if *escrow == self.escrow => {
                self.create(history, entry)
            }
            Fact::JobDurationExtended {
                escrow,
                job,
                last_epoch,
                paid,
            } if *escrow == self.escrow => {
                if let Some(ledger) = self.jobs.get_mut(job) {
                    let cost = ledger.extend_duration(*last_epoch);
                    self.pay(
                        history,
                        entry,
                        *job,
                        format!("job {job} extended to epoch {last_epoch}"),
                        cost,
                        *paid,
                    );
                }
            }
            Fact::JobNodesExtended {
                escrow,
                job,
                nodes,
                paid,
            } if *escrow == self.escrow => {
                if let Some(ledger) = self.jobs.get_mut(job) {
                    let cost = ledger.extend_nodes(*nodes);
                    self.pay(
                        history,
                        entry,
                        *job,
                        format!("job {job} extended to {nodes} nodes"),
                        cost,
                        *paid,
                    );
                }
            }
            Fact::JobStarted {
                escrow,
                job,
                timestamp,
            } if *escrow == self.escrow => {
                if let Some(ledger) = self.jobs.get_mut(job) {
                    ledger.started.get_or_insert(*timestamp);
                }
            }
            Fact::ActiveNodesUpdated { escrow, job, nodes } if *escrow == self.escrow => {
                let agreed = self
                    .jobs
                    .get(job)
                    .map(|l| l.active.clone())
                    .unwrap_or_default();
                if &agreed != nodes {
                    self.row(
                        Some(*job),
                        Row::compare(
                            format!("job {job} node set recorded"),
                            short_list(&agreed),
                            short_list(nodes),
                        ),
                    );
                }
            }
            Fact::AllocationPage { usdc_burned, .. } => self.pass_burned += *usdc_burned,
            Fact::RewardsAllocated {
                from,
                until,
                usdc_burned,
                ..
            } => {
                let pages = std::mem::take(&mut self.pass_burned);
                if pages != *usdc_burned {
                    self.row(
                        None,
                        Row::usdc(
                            format!("allocation of epochs {from}..{until}: burned over its pages"),
                            pages,
                            *usdc_burned,
                        ),
                    );
                }
            }
            Fact::StalledJobReleased { job } => {
                if let Some(ledger) = self.jobs.get_mut(job) {
                    ledger.close();
                }
            }
            Fact::JobRedeemed { escrow, job } if *escrow == self.escrow => {
                let unstarted = self
                    .jobs
                    .get(job)
                    .is_some_and(|l| !l.closed && l.started.is_none());
                self.row(
                    Some(*job),
                    Row::check(
                        format!("job {job} redeemed"),
                        "never started",
                        if unstarted {
                            "never started"
                        } else {
                            "started"
                        },
                        unstarted,
                    ),
                );
                if let Some(ledger) = self.jobs.get_mut(job) {
                    ledger.close();
                }
            }
            Fact::JobClosed {
                escrow,
                job,
                refunded,
            } if *escrow == self.escrow => {
                let expected = match self.jobs.get(job) {
                    Some(l) if l.closed => l.refunded,
                    _ => U256::ZERO,
                };
                let closed = self.jobs.get(job).is_some_and(|l| l.closed);
                let what = if closed {
                    format!("job {job} refunded to the CSP")
                } else {
                    format!("job {job} closed without an agreed empty set")
                };
                let mut row = Row::usdc(what, expected, *refunded);
                row.ok &= closed;
                self.row(Some(*job), row);
            }
            Fact::NodeBalanceWithdrawn {
                escrow,
                node,
                amount,
            } if *escrow == self.escrow => {
                let balance = self.node_balances.entry(*node).or_default();
                let expected = *balance;
                *balance = U256::ZERO;
                self.claimed += *amount;
                if expected != *amount {
                    self.row(
                        None,
                        Row::usdc(format!("node {} claimed", short(node)), expected, *amount),
                    );
                }
            }
            Fact::Deposited { escrow, amount, .. } if *escrow == self.escrow => {
                self.free += *amount;
                self.deposited += *amount;
            }
            Fact::Withdrawn { escrow, amount } if *escrow == self.escrow => {
                self.free = self.free.saturating_sub(*amount);
                self.withdrawn += *amount;
            }
            _ => {}
        }
    }

    /// A vote counts only if the oracle it names signed its transaction and is registered.
    fn check_voter(
        &mut self,
        history: &History,
        entry: &Entry,
        oracle: Address,
        job: Option<u64>,
        what: String,
    ) {
        let signer = history.sender_of(entry);
        if signer != Some(oracle) || !self.oracles.contains(&oracle) {
            let actual = match signer {
                Some(s) if self.oracles.contains(&oracle) => format!("signed by {}", short(&s)),
                Some(s) => format!("signed by {}, not a registered oracle", short(&s)),
                None => "signer not read".into(),
            };
            self.row(
                job,
                Row::check(
                    what,
                    format!("signed by oracle {}", short(&oracle)),
                    actual,
                    false,
                ),
            );
        }
    }

    fn accept_nodes(
        &mut self,
        history: &History,
        entry: &Entry,
        job: u64,
        round: u64,
        proposal: B256,
        nodes: &[Address],
    ) {
        let votes = self.rounds.remove(&(job, round)).unwrap_or_default();
        let oracles = self.oracles.len();
        let epoch = history
            .epoch_of(entry)
            .map_or("?".into(), |e| e.to_string());
        let what = if nodes.is_empty() {
            format!("job {job} close agreed (round {round}, epoch {epoch})")
        } else {
            format!(
                "job {job} nodes {} (round {round}, epoch {epoch})",
                short_list(nodes)
            )
        };
        let voters: Vec<Address> = votes
            .iter()
            .filter(|(_, p)| *p == proposal)
            .map(|(o, _)| *o)
            .collect();
        let mut actual = format!(
            "{} of {} votes: {}",
            voters.len(),
            votes.len(),
            short_list(&voters)
        );
        let mut ok = true;
        if let Err(e) = quorum::check(&votes, oracles, history.quorum, proposal) {
            ok = false;
            actual = format!("{actual} ({e})");
        }
        if quorum::node_set_proposal(nodes) != proposal {
            ok = false;
            actual = format!("{actual} (the set does not hash to its proposal)");
        }
        self.row(
            Some(job),
            Row::check(what, format!("quorum of {oracles} oracles"), actual, ok),
        );
        let Some(ledger) = self.jobs.get_mut(&job) else {
            return;
        };
        if nodes.is_empty() {
            ledger.close();
        } else {
            ledger.active = nodes.to_vec();
            self.job_nodes
                .entry(job)
                .or_default()
                .extend(nodes.iter().copied());
        }
    }

    fn create(&mut self, history: &History, entry: &Entry) {
        let Fact::JobCreated {
            job,
            job_type,
            project_hash,
            last_epoch,
            nodes,
            price,
            paid,
            ..
        } = &entry.fact
        else {
            return;
        };
        let listed = self.prices.get(job_type).copied().unwrap_or_default();
        if listed != *price {
            self.row(
                Some(*job),
                Row::usdc(
                    format!("job {job} price of type {job_type}"),
                    listed,
                    *price,
                ),
            );
        }
        let (Some(at), Some(clock)) = (history.time_of(entry), history.clock) else {
            self.row(
                Some(*job),
                Row::check(
                    format!("job {job} funded"),
                    "the block's time and the epoch clock",
                    "not read",
                    false,
                ),
            );
            return;
        };
        let (ledger, cost) = Ledger::create(clock, listed, *nodes, *last_epoch, at);
        self.jobs.insert(*job, ledger);
        self.projects.insert(*job, *project_hash);
        let span = clock.end_s(*last_epoch).saturating_sub(at);
        let what = format!(
            "job {job} funded: {span} s to the end of epoch {last_epoch} × {nodes} nodes × {} per epoch of {} s",
            usdc_text(listed),
            clock.length_s()
        );
        self.pay(history, entry, *job, what, cost, *paid);
    }

    /// A payment into a job: it must cost `cost`; the owner pays from its wallet, a delegate
    /// from the free balance.
    fn pay(
        &mut self,
        history: &History,
        entry: &Entry,
        job: u64,
        what: String,
        cost: U256,
        paid: U256,
    ) {
        match history.sender_of(entry) {
            Some(sender) if sender == self.owner => self.deposited += cost,
            Some(_) => self.free = self.free.saturating_sub(cost),
            None => self.row(
                Some(job),
                Row::check(what.clone(), "its payer", "not read", false),
            ),
        }
        self.row(Some(job), Row::usdc(what, cost, paid));
    }

    fn mint(
        &mut self,
        group: &[Entry],
        epoch: u64,
        licence: u64,
        node: Address,
        availability: u8,
        amount: U256,
    ) {
        let minted = self.poa_expected.entry(licence).or_default();
        let left = U256::from(MAX_POA_PER_LICENCE).saturating_sub(*minted);
        let expected = poa_reward(availability).min(left);
        *minted += expected;
        *self.poa_mints.entry(licence).or_default() += 1;
        self.licence_nodes.entry(licence).or_default().insert(node);
        let agreed = self.agreed_epochs.contains(&epoch)
            && group.iter().any(
                |e| matches!(e.fact, Fact::AvailabilityPageRecorded { epoch: e2, .. } if e2 == epoch),
            );
        if expected != amount || !agreed {
            let what =
                format!("PoA of licence {licence} in epoch {epoch} (availability {availability})");
            let actual = if agreed {
                amount.to_string()
            } else {
                format!("{amount} without an agreed table")
            };
            self.poa_rows
                .push((node, Row::check(what, expected.to_string(), actual, false)));
        }
    }

    /// The report for `selection`, comparing the replay with `snapshot`.
    pub fn report(&self, snapshot: &EscrowSnapshot, selection: &Selection) -> Report {
        let selected: Vec<u64> = match selection {
            Selection::Escrow => self.jobs(),
            Selection::Jobs(ids) => ids.clone(),
        };
        let mut rows: Vec<Row> = self
            .rows
            .iter()
            .filter(|(job, _)| job.is_none_or(|j| selected.contains(&j)))
            .map(|(_, row)| row.clone())
            .collect();
        for id in &selected {
            if let Some(ledger) = self.jobs.get(id) {
                job_rows(*id, ledger, snapshot.jobs.get(id), &mut rows);
            }
        }
        let involved = self.involved(selection);
        for node in &involved {
            let expected = self.node_balances.get(node).copied().unwrap_or_default();
            rows.push(match snapshot.node_balances.get(node) {
                Some(actual) => Row::usdc(
                    format!("node {} balance in the escrow", short(node)),
                    expected,
                    *actual,
                ),
                None => Row::check(
                    format!("node {} balance in the escrow", short(node)),
                    usdc_text(expected),
                    "not read",
                    false,
                ),
            });
        }
        self.escrow_rows(snapshot, &mut rows);
        self.poa_report(snapshot, &involved, &mut rows);
        Report { rows }
    }

    fn escrow_rows(&self, snapshot: &EscrowSnapshot, rows: &mut Vec<Row>) {
        let totals = &snapshot.totals;
        let sum =
            |pick: fn(&Ledger) -> U256| self.jobs.values().map(pick).fold(U256::ZERO, |a, b| a + b);
        let credited = sum(|l| l.to_nodes);
        let burned = sum(|l| l.burned);
        let open = sum(|l| l.balance);
        let nodes = self.node_balances.values().fold(U256::ZERO, |a, b| a + *b);
        let escrow = short(&self.escrow);
        rows.push(Row::usdc(
            format!("escrow {escrow} credited to nodes, ever"),
            credited,
            totals.credited_to_nodes,
        ));
        rows.push(Row::usdc(
            format!("escrow {escrow} burned, ever"),
            burned,
            totals.burned,
        ));
        rows.push(Row::usdc(
            format!(
                "burns swapped to R1 in {} settlement transactions",
                self.burn_txs
            ),
            self.burn_expected,
            self.burn_actual,
        ));
        rows.push(Row::usdc(
            format!("escrow {escrow} refunded, ever"),
            sum(|l| l.refunded),
            totals.refunded,
        ));
        rows.push(Row::usdc(
            format!("escrow {escrow} claimed by nodes, ever"),
            self.claimed,
            totals.claimed,
        ));
        rows.push(Row::usdc(
            format!("escrow {escrow} paid in, ever"),
            self.deposited,
            totals.deposited,
        ));
        rows.push(Row::usdc(
            format!("escrow {escrow} withdrawn, ever"),
            self.withdrawn,
            totals.withdrawn,
        ));
        rows.push(Row::usdc(
            format!("escrow {escrow} free balance"),
            self.free,
            totals.free_balance,
        ));
        rows.push(Row::usdc(
            format!("escrow {escrow} USDC held: free + open jobs + node balances"),
            self.free + open + nodes,
            totals.balance_usdc,
        ));
    }

    fn poa_report(
        &self,
        snapshot: &EscrowSnapshot,
        involved: &BTreeSet<Address>,
        rows: &mut Vec<Row>,
    ) {
        rows.push(Row::compare(
            "availability tables agreed by quorum",
            self.availability_accepted,
            self.availability_agreed,
        ));
        for licence in self.licences_of(involved) {
            let nodes: Vec<Address> = self
                .licence_nodes
                .get(&licence)
                .map(|n| n.iter().copied().collect())
                .unwrap_or_default();
            let mints = self.poa_mints.get(&licence).copied().unwrap_or_default();
            let what = format!(
                "PoA R1 minted for licence {licence} ({}), {mints} epochs",
                short_list(&nodes)
            );
            let expected = self.poa_expected.get(&licence).copied().unwrap_or_default();
            rows.push(match snapshot.poa_minted.get(&licence) {
                Some(actual) => Row::compare(what, expected, actual),
                None => Row::check(what, expected.to_string(), "not read", false),
            });
        }
        rows.extend(
            self.poa_rows
                .iter()
                .filter(|(node, _)| involved.contains(node))
                .map(|(_, row)| row.clone()),
        );
    }
}

/// A job's replayed figures against `getJob`.
fn job_rows(id: u64, ledger: &Ledger, view: Option<&JobView>, rows: &mut Vec<Row>) {
    let Some(view) = view else {
        rows.push(Row::check(
            format!("job {id}"),
            "read from its escrow",
            "not read",
            false,
        ));
        return;
    };
    let what = format!(
        "job {id} left: {} funded − {} to nodes − {} burned − {} refunded",
        usdc_text(ledger.funded),
        usdc_text(ledger.to_nodes),
        usdc_text(ledger.burned),
        usdc_text(ledger.refunded)
    );
    rows.push(Row::usdc(what, ledger.balance, view.balance));
    rows.push(Row::compare(
        format!("job {id} settled until"),
        ledger.settled_until,
        view.settled_until,
    ));
    rows.push(Row::compare(
        format!("job {id} next epoch to settle"),
        ledger.next_to_settle(),
        view.next_epoch_to_settle,
    ));
    rows.push(Row::compare(
        format!("job {id} last epoch"),
        ledger.last_epoch,
        view.last_epoch,
    ));
    rows.push(Row::compare(
        format!("job {id} nodes requested"),
        ledger.nodes,
        view.nodes,
    ));
    rows.push(Row::usdc(
        format!("job {id} price per node-epoch"),
        ledger.price,
        view.price,
    ));
    rows.push(Row::compare(
        format!("job {id} node set"),
        short_list(&ledger.active),
        short_list(&view.active_nodes),
    ));
    rows.push(Row::compare(
        format!("job {id} closed"),
        ledger.closed,
        view.closed,
    ));
    rows.push(Row::compare(
        format!("job {id} started at"),
        ledger.started.unwrap_or(0),
        view.start_timestamp,
    ));
}

/// A settlement as one table cell: the seconds, nodes paid, the 85 % and the 15 %.
fn settled_text(from: u64, to: u64, nodes: u64, to_nodes: U256, burned: U256) -> String {
    format!(
        "{} s from t={from} × {nodes} nodes: {} + {} burned",
        to.saturating_sub(from),
        usdc_text(to_nodes),
        usdc_text(burned)
    )
}

/// The transaction of `group`, shortened.
fn entry_tx(group: &[Entry]) -> String {
    group
        .first()
        .map_or_else(String::new, |e| format!("{:.10}", e.tx.to_string()))
}

#[cfg(test)]
mod tests;
