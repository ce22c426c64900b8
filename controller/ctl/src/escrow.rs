//! `r1ctl escrow`: the CSP's escrow beyond single jobs — delegate keys and their permission
//! bits (what lets a Kubernetes-mode oracle or a pipeline apply, fund and extend jobs with no
//! CSP key), and the free balance delegates pay from.

use std::io::Write;

use alloy_primitives::{Address, U256};
use r1_contracts::Permissions;
use r1_crds::usdc::Usdc;

use crate::fund::{FundError, Funder};

/// What `r1ctl escrow delegate` grants unless told otherwise: everything a pipeline needs to
/// apply, fund and grow jobs.
pub const DEFAULT_PERMISSIONS: &str = "create,extend-duration,extend-nodes";

/// USDC as the escrow counts it (6 decimals).
fn units(amount: Usdc) -> U256 {
    U256::from(amount.0)
}

/// USDC units as an amount; saturates beyond what any escrow could hold.
fn amount(units: U256) -> Usdc {
    Usdc(u64::try_from(units).unwrap_or(u64::MAX))
}

/// Grants `delegate` exactly `permissions` on the signer's escrow (none removes it).
pub async fn delegate(
    funder: &Funder,
    delegate: Address,
    permissions: Permissions,
    out: &mut dyn Write,
) -> Result<(), FundError> {
    funder
        .suite()
        .set_delegate(funder.escrow(), delegate, permissions)
        .await?;
    if permissions.is_empty() {
        writeln!(
            out,
            "{delegate} is no delegate of escrow {} any more",
            funder.escrow()
        )?;
    } else {
        writeln!(
            out,
            "{delegate} may {permissions} on escrow {} (paid from its free balance)",
            funder.escrow()
        )?;
    }
    Ok(())
}

/// Prints the escrow, its free balance and its delegates with their permissions.
pub async fn show(funder: &Funder, out: &mut dyn Write) -> Result<(), FundError> {
    let suite = funder.suite();
    let escrow = funder.escrow();
    let free = suite.free_balance(escrow).await?;
    writeln!(out, "escrow {escrow}")?;
    writeln!(out, "free balance {} USDC", amount(free))?;
    let delegates = suite.delegates(escrow).await?;
    if delegates.is_empty() {
        writeln!(out, "no delegates")?;
    }
    for delegate in delegates {
        let bits = suite.delegate_permissions(escrow, delegate).await?;
        match Permissions::from_bits(bits) {
            Some(permissions) => writeln!(out, "delegate {delegate}: {permissions}")?,
            None => writeln!(out, "delegate {delegate}: bits {bits:#04x}")?,
        }
    }
    Ok(())
}

/// Adds `usdc` from the signer's wallet to the escrow's free balance.
pub async fn deposit(funder: &Funder, usdc: Usdc, out: &mut dyn Write) -> Result<(), FundError> {
    funder.suite().deposit(funder.escrow(), units(usdc)).await?;
    let free = funder.suite().free_balance(funder.escrow()).await?;
    writeln!(
        out,
        "deposited {usdc} USDC into escrow {}; free balance {} USDC",
        funder.escrow(),
        amount(free)
    )?;
    Ok(())
}

/// Takes `usdc` of the escrow's free balance back to the signer, its owner.
pub async fn withdraw(funder: &Funder, usdc: Usdc, out: &mut dyn Write) -> Result<(), FundError> {
    funder
        .suite()
        .withdraw(funder.escrow(), units(usdc))
        .await?;
    let free = funder.suite().free_balance(funder.escrow()).await?;
    writeln!(
        out,
        "withdrew {usdc} USDC from escrow {}; free balance {} USDC",
        funder.escrow(),
        amount(free)
    )?;
    Ok(())
}

/// Closes job `job` of the escrow, which no node set ever started, and refunds its budget to the
/// owner's wallet (allowed the manager's redeem delay after the job's request: an hour on
/// mainnet).
pub async fn redeem(funder: &Funder, job: u64, out: &mut dyn Write) -> Result<(), FundError> {
    let refunded = funder
        .suite()
        .redeem_unstarted_job(funder.escrow(), job)
        .await?;
    writeln!(
        out,
        "redeemed job {job} of escrow {}: {} USDC back to the owner's wallet",
        funder.escrow(),
        amount(refunded)
    )?;
    Ok(())
}

/// Takes job `job` of the escrow back while the protocol is stalled: its completed epochs are
/// paid to its node set as a closure would, and the rest refunded to the owner's wallet.
pub async fn exit(funder: &Funder, job: u64, out: &mut dyn Write) -> Result<(), FundError> {
    let refunded = funder
        .suite()
        .exit_stalled_job(funder.escrow(), job)
        .await?;
    writeln!(
        out,
        "took job {job} of escrow {} back from a stalled protocol: {} USDC to the owner's wallet",
        funder.escrow(),
        amount(refunded)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delegate_gets_what_a_pipeline_needs_by_default() {
        let default: Permissions = DEFAULT_PERMISSIONS.parse().expect("permissions");
        assert!(default.contains(Permissions::CREATE));
        assert!(default.contains(Permissions::EXTEND_NODES));
        assert!(!default.contains(Permissions::REDEEM));
        assert_eq!(default.to_string(), DEFAULT_PERMISSIONS);
        assert_eq!(amount(units(Usdc(1_500_000))), Usdc(1_500_000));
    }
}
