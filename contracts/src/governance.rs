//! Owner-only calls behind the deployment's timelock. A suite deployed with a governance delay
//! ([`crate::SuiteConfig::governance_delay_seconds`]) has an OpenZeppelin `TimelockController`
//! owning the PoAI manager (oracle set, swap venue, guardian), the escrow beacon (upgrades) and
//! the R1 token (minters): a change is scheduled, visible on chain for the delay, then executed.
//! Without a timelock the owner calls the contract directly. [`Suite::govern`] does whichever the
//! deployment has, executing at once when the delay is zero.

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::Provider;

use crate::bindings::TimelockController;
use crate::client::Suite;
use crate::error::Result;
use crate::tx::{Outcome, Planned, confirm, destination, send_or_plan};

/// What [`Suite::govern`] did with an owner-only call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Governed {
    /// The call took effect (sent directly, or scheduled and executed at once).
    Done(Outcome),
    /// The call is scheduled on the timelock and takes effect once executed after `ready_at`
    /// ([`Suite::execute_governed`] with the same operation).
    Scheduled {
        /// The operation to execute later.
        operation: Operation,
        /// Unix second from which it may be executed.
        ready_at: u64,
    },
    /// A dry run: the transaction that would be sent (the schedule, behind a timelock).
    Planned(Planned),
}

/// One call the timelock schedules and executes: it is identified by all of its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The contract called.
    pub target: Address,
    /// The ABI-encoded call.
    pub data: Bytes,
    /// Distinguishes two identical calls.
    pub salt: B256,
}

impl Suite {
    /// The timelock owning the governed contracts, if the deployment has one.
    pub fn timelock(&self) -> Option<Address> {
        let timelock = self.deployment().timelock;
        (timelock != Address::ZERO).then_some(timelock)
    }

    /// Sends the owner-only `call`: directly without a timelock; behind one, schedules it and,
    /// when the delay is zero, executes it at once. With `dry_run` nothing is sent: the call is
    /// first simulated as its owner would make it (so a call the contract would refuse fails
    /// here, with its reason), then the transaction is planned.
    pub async fn govern<P: Provider, D: CallDecoder>(
        &self,
        call: CallBuilder<P, D>,
        dry_run: bool,
    ) -> Result<Governed> {
        let Some(timelock) = self.timelock() else {
            return Ok(match send_or_plan(call, self.address(), dry_run).await? {
                Outcome::Planned(planned) => Governed::Planned(planned),
                mined => Governed::Done(mined),
            });
        };
        let (target, data) = destination(call);
        let lock = TimelockController::new(timelock, self.provider().clone());
        let delay = lock.getMinDelay().call().await?;
        // A fresh salt, so the same call can be scheduled again later.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let salt = keccak256([data.as_ref(), &nanos.to_be_bytes()].concat());
        let operation = Operation { target, data, salt };
        let schedule = lock.schedule(
            operation.target,
            U256::ZERO,
            operation.data.clone(),
            B256::ZERO,
            operation.salt,
            delay,
        );
        if dry_run {
            self.provider()
                .call(
                    alloy::rpc::types::TransactionRequest::default()
                        .from(timelock)
                        .to(operation.target)
                        .input(operation.data.clone().into()),
                )
                .await
                .map_err(alloy::contract::Error::from)?;
            return Ok(Governed::Planned(
                crate::tx::plan(schedule, self.address()).await?,
            ));
        }
        confirm(schedule).await?;
        if delay.is_zero() {
            return Ok(Governed::Done(self.execute_governed(&operation).await?));
        }
        let now = self.provider().get_block_number().await?;
        let block = self
            .provider()
            .get_block_by_number(now.into())
            .await?
            .map_or(0, |b| b.header.timestamp);
        Ok(Governed::Scheduled {
            operation,
            ready_at: block.saturating_add(u64::try_from(delay).unwrap_or(u64::MAX)),
        })
    }

    /// Executes a scheduled `operation` whose delay has passed.
    pub async fn execute_governed(&self, operation: &Operation) -> Result<Outcome> {
        let timelock = self.timelock().unwrap_or_default();
        let lock = TimelockController::new(timelock, self.provider().clone());
        let receipt = confirm(lock.execute(
            operation.target,
            U256::ZERO,
            operation.data.clone(),
            B256::ZERO,
            operation.salt,
        ))
        .await?;
        Ok(Outcome::Mined {
            tx: receipt.transaction_hash,
            gas: receipt.gas_used,
        })
    }
}
