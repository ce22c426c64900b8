//! `r1ctl oracle`: governance of the PoAI manager — the oracle set (its owner, behind the
//! deployment's timelock: scheduled, then executed once the delay has passed, at once when it
//! is zero) and the price table, the blacklist and suspensions (its guardian, at once) — and
//! `show` for anyone: the settings a deployment fixed (quorum rule, decision cooldown, redeem
//! delay, exit delay, epoch length), the owner, the guardian, the oracles and the prices. Each
//! sending command has `--dry-run`, which checks the call and prints the transaction and its
//! gas. The contracts refuse anyone else by name (`OwnableUnauthorizedAccount`, `NotGuardian`,
//! the timelock's `AccessControlUnauthorizedAccount`).

use std::io::Write;

use alloy_primitives::{Address, U256};
use r1_contracts::tx::{Outcome, send_or_plan};
use r1_contracts::{Governed, Operation, Quorum, Suite};
use r1_crds::pricing::Catalogue;
use r1_crds::usdc::Usdc;

use crate::onchain::{ChainCommandError, explained, report};

/// A change governance makes: the oracle set through the owner (the timelock), the rest
/// through the guardian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add an oracle to the set consensus counts.
    AddOracle(Address),
    /// Remove an oracle.
    RemoveOracle(Address),
    /// Blacklist a node (never validated, never paid), or clear it.
    Blacklist {
        /// The node.
        node: Address,
        /// Whether it is blacklisted afterwards.
        blacklisted: bool,
    },
    /// Suspend a node until an epoch starts (0 lifts a suspension).
    Suspend {
        /// The node.
        node: Address,
        /// The first epoch it may work again.
        until_epoch: u64,
    },
    /// Mint the next Master Node Deed to an address (the Node Deed's owner, the timelock).
    MintMaster(Address),
    /// Mint the one Genesis Node Deed to an address (the Node Deed's owner, the timelock).
    MintGenesis(Address),
    /// Price a job type per node per epoch (0 withdraws it).
    Price {
        /// The class id.
        job_type: u8,
        /// The new price.
        price: Usdc,
    },
}

/// Sends `change` as the signer (the manager's owner), or with `dry_run` prints it and its gas.
pub async fn apply(
    suite: &Suite,
    change: &Change,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    let manager = suite.manager();
    let me = suite.address();
    let (outcome, what) = match change {
        Change::AddOracle(oracle) => {
            let governed = suite.govern(manager.addOracle(*oracle), dry_run).await;
            return governed_report(governed, &format!("addOracle({oracle})"), out);
        }
        Change::RemoveOracle(oracle) => {
            let governed = suite.govern(manager.removeOracle(*oracle), dry_run).await;
            return governed_report(governed, &format!("removeOracle({oracle})"), out);
        }
        Change::MintMaster(to) => {
            let governed = suite
                .govern(suite.node_deed().mintMaster(*to), dry_run)
                .await;
            return governed_report(governed, &format!("mintMaster({to})"), out);
        }
        Change::MintGenesis(to) => {
            let governed = suite
                .govern(suite.node_deed().mintGenesis(*to), dry_run)
                .await;
            return governed_report(governed, &format!("mintGenesis({to})"), out);
        }
        Change::Blacklist { node, blacklisted } => (
            send_or_plan(manager.setBlacklisted(*node, *blacklisted), me, dry_run).await,
            format!("setBlacklisted({node}, {blacklisted})"),
        ),
        Change::Suspend { node, until_epoch } => (
            send_or_plan(
                manager.suspend(*node, U256::from(*until_epoch)),
                me,
                dry_run,
            )
            .await,
            format!("suspend({node}, until epoch {until_epoch})"),
        ),
        Change::Price { job_type, price } => (
            send_or_plan(
                manager.setJobTypePrice(*job_type, U256::from(price.units())),
                me,
                dry_run,
            )
            .await,
            format!("setJobTypePrice({job_type}, {price} USDC)"),
        ),
    };
    report(outcome.map_err(explained)?, &what, out)
}

/// Executes an owner-only `operation` the timelock scheduled, once its delay has passed.
pub async fn execute(
    suite: &Suite,
    operation: &Operation,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    let outcome = suite.execute_governed(operation).await.map_err(explained)?;
    report(outcome, "execute", out)
}

/// Says what [`Suite::govern`] did with `what`.
fn governed_report(
    governed: r1_contracts::Result<Governed>,
    what: &str,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    match governed.map_err(explained)? {
        Governed::Done(outcome) => report(outcome, what, out),
        Governed::Planned(planned) => report(Outcome::Planned(planned), what, out),
        Governed::Scheduled {
            operation,
            ready_at,
        } => {
            writeln!(
                out,
                "{what}: scheduled on the timelock; it takes effect once executed, from unix \
                 second {ready_at}:\n  r1ctl oracle execute --target {} --data {} --salt {}",
                operation.target, operation.data, operation.salt
            )?;
            Ok(())
        }
    }
}

/// The epoch a suspension of `epochs` epochs from now ends at.
pub async fn suspension_end(suite: &Suite, epochs: u64) -> Result<u64, ChainCommandError> {
    Ok(suite.current_epoch().await?.saturating_add(epochs))
}

/// Prints the manager's fixed settings, the oracle set and the price of every class of
/// `catalogue` on chain.
pub async fn show(
    suite: &Suite,
    catalogue: &Catalogue,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    let manager = suite.manager();
    let rule = manager
        .quorum()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let rule = Quorum::from_u8(rule).map_or_else(|| format!("unknown ({rule})"), |q| q.to_string());
    let cooldown = manager
        .decisionCooldown()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let redeem = manager
        .redeemDelay()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let exit = manager
        .exitAfterEpochs()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let guardian = manager
        .guardian()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let (_, epoch_seconds) = suite.epoch_clock().await?;
    let owner = manager
        .owner()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let oracles = suite.oracles().await?;
    writeln!(out, "manager          {}", suite.deployment().manager)?;
    match suite.timelock() {
        Some(timelock) => writeln!(out, "owner            {owner} (timelock {timelock})")?,
        None => writeln!(out, "owner            {owner}")?,
    }
    writeln!(out, "guardian         {guardian}")?;
    writeln!(
        out,
        "epoch            {} ({epoch_seconds} s)",
        suite.current_epoch().await?
    )?;
    writeln!(out, "quorum rule      {rule}")?;
    writeln!(out, "decision cooldown {cooldown} s")?;
    writeln!(out, "redeem delay     {redeem} s")?;
    writeln!(out, "exit after       {exit} epochs without an allocation")?;
    writeln!(out, "oracles          {}", oracles.len())?;
    for oracle in &oracles {
        writeln!(out, "  {oracle}")?;
    }
    writeln!(out, "prices (USDC per node per epoch)")?;
    for class in &catalogue.classes {
        let price = suite.job_type_price(class.id).await?;
        let price =
            u64::try_from(price).map_or_else(|_| price.to_string(), |u| Usdc(u).to_string());
        writeln!(out, "  {:>3} {:<24} {price}", class.id, class.name)?;
    }
    Ok(())
}
