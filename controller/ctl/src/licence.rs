//! `r1ctl licence`: a node operator's licences on chain — buy one, link a node to it (with the
//! node's signed consent from `r1-node sign-link` and an oracle's co-signature), unlink it,
//! show it, claim what its node earned. Each sending command has `--dry-run`, which prints the
//! transaction and its estimated gas instead of sending it.

use std::io::Write;

use alloy_primitives::{Address, U256};
use r1_contracts::tx::send_or_plan;
use r1_contracts::{LinkProof, Suite};
use r1_protocol::links::LinkAttestRequest;

use crate::onchain::{ChainCommandError, explained, report};
use crate::remote::Client;

/// Buys the next licence at the current price, at most `max_price` R1 wei (default: the
/// current price), approving the R1 first.
pub async fn buy(
    suite: &Suite,
    max_price: Option<U256>,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    let deed = suite.node_deed();
    let price = deed
        .currentPrice()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let limit = max_price.unwrap_or(price);
    if price > limit {
        return Err(ChainCommandError::PriceAboveLimit { price, limit });
    }
    writeln!(out, "licence price now: {price} R1 wei")?;
    let r1 = suite.r1();
    let approve = r1.approve(suite.deployment().node_deed, price);
    let approved = send_or_plan(approve, suite.address(), dry_run)
        .await
        .map_err(explained)?;
    report(approved, "approve R1 to the Node Deed", out)?;
    if dry_run {
        writeln!(
            out,
            "then buyLicence({price}) on {} (its gas is estimated once the approval is mined)",
            suite.deployment().node_deed
        )?;
        return Ok(());
    }
    let id = suite.buy_licence().await.map_err(explained)?;
    writeln!(out, "bought licence {id}")?;
    Ok(())
}

/// Links the node of `proof` (from `r1-node sign-link`) to the signer's licence, with an
/// oracle's co-signature asked through `client`.
pub async fn link(
    suite: &Suite,
    client: &Client,
    proof: &LinkAttestRequest,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    if proof.owner != suite.address() {
        return Err(ChainCommandError::Proof(format!(
            "the node signed for owner {}, but you are {}",
            proof.owner,
            suite.address()
        )));
    }
    let terms = suite
        .link_terms(proof.licence_id, proof.node, proof.deadline)
        .await?;
    let node_signature = decode_signature(&proof.node_signature)?;
    if terms.signer_of(&node_signature) != Some(proof.node) {
        return Err(ChainCommandError::Proof(format!(
            "not {}'s signature of licence {}'s current terms (was the node linked since?)",
            proof.node, proof.licence_id
        )));
    }
    let attestation = client.attest_link(proof).await?;
    let oracle_signature = decode_signature(&attestation.oracle_signature)?;
    writeln!(
        out,
        "oracle {} co-signed linking node {} to licence {}",
        attestation.oracle, proof.node, proof.licence_id
    )?;
    let signed = LinkProof {
        deadline: proof.deadline,
        node_signature: node_signature.into(),
        oracle_signature: oracle_signature.into(),
    };
    let deed = suite.node_deed();
    let call = deed.linkNode(
        U256::from(proof.licence_id),
        proof.node,
        U256::from(signed.deadline),
        signed.node_signature,
        signed.oracle_signature,
    );
    report(
        send_or_plan(call, suite.address(), dry_run)
            .await
            .map_err(explained)?,
        "linkNode",
        out,
    )
}

/// Unlinks the node of the signer's licence `licence_id`.
pub async fn unlink(
    suite: &Suite,
    licence_id: u64,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    let deed = suite.node_deed();
    let call = deed.unlinkNode(U256::from(licence_id));
    report(
        send_or_plan(call, suite.address(), dry_run)
            .await
            .map_err(explained)?,
        "unlinkNode",
        out,
    )
}

/// Claims what `nodes` earned, paid to the signer in R1: no less than the swap venue's quote
/// for it now, less `slippage_bps` basis points (the swap reverts below that, so nobody can
/// sandwich the claim for more).
pub async fn claim(
    suite: &Suite,
    nodes: &[Address],
    slippage_bps: u64,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    let terms = suite.claim_terms(nodes, slippage_bps).await?;
    if !terms.owed.is_zero() {
        writeln!(
            out,
            "{} USDC units to claim, quoted {} R1 wei; accepting no less than {}",
            terms.owed, terms.quote, terms.least
        )?;
    }
    let manager = suite.manager();
    let call = manager.claimRewards(nodes.to_vec(), terms.least);
    report(
        send_or_plan(call, suite.address(), dry_run)
            .await
            .map_err(explained)?,
        "claimRewards",
        out,
    )
}

/// Prints licence `licence_id`: its owner, its node, when it may be linked again, PoA minted,
/// what its node has earned and not claimed, its service record (the 98 % flag) and whether
/// governance blacklisted or suspended it.
pub async fn show(
    suite: &Suite,
    licence_id: u64,
    out: &mut dyn Write,
) -> Result<(), ChainCommandError> {
    let deed = suite.node_deed();
    let id = U256::from(licence_id);
    let owner = deed
        .ownerOf(id)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let node = deed
        .nodeOfLicence(id)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let linked_at = deed
        .linkedAt(id)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let delay = deed
        .relinkDelay()
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let minted = deed
        .poaMinted(id)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let kind = deed
        .kindOf(id)
        .call()
        .await
        .map_err(r1_contracts::Error::from)?;
    let kind = match kind {
        1 => "Master Node Deed: mines PoA on its schedule, takes no jobs",
        2 => "Genesis Node Deed: mines PoA on its schedule, takes no jobs",
        _ => "Node Deed",
    };
    writeln!(out, "licence {licence_id}")?;
    writeln!(out, "class      {kind}")?;
    writeln!(out, "owner      {owner}")?;
    if node == Address::ZERO {
        writeln!(out, "node       none")?;
    } else {
        let pending = suite.pending_rewards(node).await?;
        writeln!(out, "node       {node}")?;
        writeln!(out, "earned     {pending} USDC units not claimed")?;
        let record = suite.service_record(node).await?;
        writeln!(
            out,
            "served     {} epochs measured, {} at 98 % or more{}",
            record.epochs_measured,
            record.epochs_at_sla,
            if record.epochs_measured == 0 {
                String::new()
            } else {
                format!(
                    " (last: epoch {}, {})",
                    record.last_epoch,
                    if record.last_at_sla {
                        "at 98 %"
                    } else {
                        "below 98 %"
                    }
                )
            }
        )?;
        if let Some(standing) = suite.node_licence(node).await? {
            let epoch = suite.current_epoch().await?;
            if standing.blacklisted {
                writeln!(out, "standing   blacklisted: no work, no pay")?;
            } else if !standing.may_work(epoch) {
                writeln!(
                    out,
                    "standing   suspended until epoch {}: no new work, no PoA",
                    standing.suspended_until_epoch
                )?;
            }
        }
    }
    if linked_at != U256::ZERO {
        writeln!(
            out,
            "linked at  {linked_at} (unix); next link from {}",
            linked_at + delay
        )?;
    }
    writeln!(out, "PoA minted {minted} R1 wei")?;
    Ok(())
}

fn decode_signature(text: &str) -> Result<Vec<u8>, ChainCommandError> {
    text.strip_prefix("0x")
        .and_then(|hex| alloy_primitives::hex::decode(hex).ok())
        .filter(|bytes| bytes.len() == 65)
        .ok_or_else(|| ChainCommandError::Proof(format!("{text:?} is not a 65-byte signature")))
}
