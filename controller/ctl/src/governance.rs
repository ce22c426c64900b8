//! `r1ctl oracle`: governance of the PoAI manager, as its owner — the oracle set, the price
//! table, the blacklist and suspensions — and `show` for anyone: the settings a deployment
//! fixed (quorum rule, decision cooldown, redeem delay, epoch length), the oracles and the
//! prices. Each sending command has `--dry-run`, which prints the transaction and its gas.
//! The contract refuses anyone but its owner (`OwnableUnauthorizedAccount`), by name.

use std::io::Write;

use alloy_primitives::{Address, U256};
use r1_contracts::tx::send_or_plan;
use r1_contracts::{Quorum, Suite};
use r1_crds::pricing::Catalogue;
use r1_crds::usdc::Usdc;

use crate::onchain::{ChainCommandError, explained, report};

/// A change governance makes.
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
        Change::AddOracle(oracle) => (
            send_or_plan(manager.addOracle(*oracle), me, dry_run).await,
            format!("addOracle({oracle})"),
        ),
        Change::RemoveOracle(oracle) => (
            send_or_plan(manager.removeOracle(*oracle), me, dry_run).await,
            format!("removeOracle({oracle})"),
        ),
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
    let (_, epoch_seconds) = suite.epoch_clock().await?;
    let owner = manager
        .owner()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let oracles = suite.oracles().await?;
    writeln!(out, "manager          {}", suite.deployment().manager)?;
    writeln!(out, "governance       {owner}")?;
    writeln!(
        out,
        "epoch            {} ({epoch_seconds} s)",
        suite.current_epoch().await?
    )?;
    writeln!(out, "quorum rule      {rule}")?;
    writeln!(out, "decision cooldown {cooldown} s")?;
    writeln!(out, "redeem delay     {redeem} s")?;
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
