//! One screen that says how a CSP's deployments stand: the epoch, every job (phase, replicas,
//! nodes, budget left) and what each escrow holds, locked, paid to node operators, burned and
//! refunded to the CSP.
//! `r1ctl status` prints it once or every few seconds, and the devnet prints it while it runs.

use std::io::{self, Write};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use r1_contracts::epoch::EpochClock;
use r1_crds::api::object::StoredObject;
use r1_crds::api::wire::ApiInfo;
use r1_crds::manifest::Kind;

use super::remote::print;
use super::remote::{Client, RemoteError};

/// Everything the overview shows, read from one oracle.
#[derive(Debug, Clone)]
pub struct Overview {
    /// The oracle and the chain's epoch clock.
    pub info: ApiInfo,
    /// The signer's jobs, across its namespaces.
    pub jobs: Vec<StoredObject>,
    /// The signer's escrows, across its namespaces.
    pub escrows: Vec<StoredObject>,
}

impl Overview {
    /// Reads the oracle's info, jobs and escrows.
    pub async fn fetch(client: &Client) -> Result<Self, RemoteError> {
        let info = client.info().await?;
        let jobs = client.list(Kind::Job, None).await?;
        let escrows = client.list(Kind::Escrow, None).await?;
        Ok(Self {
            info,
            jobs,
            escrows,
        })
    }

    /// The epoch at `now` (unix seconds) and the seconds until the next one starts, by the
    /// oracle's epoch clock; before genesis, epoch 0 and a whole epoch.
    pub fn epoch_at(&self, now_unix: u64) -> (u64, u64) {
        let length = self.info.epoch_seconds.max(1);
        let clock = EpochClock::new(self.info.genesis_unix, length);
        match clock.and_then(|clock| Ok((clock, clock.epoch_at(now_unix)?))) {
            Ok((clock, epoch)) => (epoch, clock.end_s(epoch).saturating_sub(now_unix)),
            Err(_) => (0, length),
        }
    }

    /// Prints the epoch line, the jobs table and the escrows table.
    pub fn render(&self, now: Timestamp, out: &mut dyn Write) -> io::Result<()> {
        let (epoch, left) = self.epoch_at(u64::try_from(now.as_second()).unwrap_or(0));
        writeln!(
            out,
            "epoch {epoch} ({left}s to the next, {}s each) · chain {} · oracle {}",
            self.info.epoch_seconds,
            self.info.chain_id,
            self.info.oracle.to_checksum(None)
        )?;
        writeln!(out)?;
        if self.jobs.is_empty() {
            writeln!(out, "No jobs.")?;
        } else {
            print::table(Kind::Job, &self.jobs, false, true, now, out)?;
        }
        writeln!(out)?;
        if self.escrows.is_empty() {
            writeln!(out, "No escrows.")?;
        } else {
            print::escrow_money_table(&self.escrows, out)?;
        }
        Ok(())
    }
}

/// Why the overview could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum OverviewError {
    /// The oracle could not be asked, or refused.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The output could not be written.
    #[error("writing the overview: {0}")]
    Io(#[from] io::Error),
}

/// `r1ctl status`: the overview once; with `every`, again at that interval until the process is
/// interrupted, clearing the screen first when `clear` (a terminal). While watching, an oracle
/// that does not answer is shown as such and asked again, as a restart is no reason to stop.
pub async fn show(
    client: &Client,
    every: Option<Duration>,
    clear: bool,
    out: &mut dyn Write,
) -> Result<(), OverviewError> {
    let Some(interval) = every else {
        return Ok(Overview::fetch(client)
            .await?
            .render(Timestamp::now(), out)?);
    };
    loop {
        let overview = Overview::fetch(client).await;
        if clear {
            write!(out, "\x1b[H\x1b[2J")?;
        } else {
            writeln!(out)?;
        }
        match overview {
            Ok(overview) => overview.render(Timestamp::now(), out)?,
            Err(error) => writeln!(out, "{}: {error}", Timestamp::now())?,
        }
        out.flush()?;
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;
    use serde_json::json;

    fn stored(
        kind: &str,
        name: &str,
        spec: serde_json::Value,
        status: serde_json::Value,
    ) -> StoredObject {
        serde_json::from_value(json!({
            "apiVersion": "deeploy.ratio1.ai/v1alpha1",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": "u-1",
                "generation": 1,
                "resourceVersion": 1,
                "owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "creationTimestamp": "2026-11-23T10:00:00Z",
            },
            "spec": spec,
            "status": status,
        }))
        .expect("a stored object")
    }

    fn overview() -> Overview {
        Overview {
            info: ApiInfo {
                oracle: Address::repeat_byte(0xab),
                chain_id: 31337,
                poai_manager: Address::repeat_byte(0x01),
                epoch_seconds: 20,
                genesis_unix: 1_000,
            },
            jobs: vec![stored(
                "DeeployJob",
                "hello-web",
                json!({"image": "httpd", "replicas": 2, "projectRef": {"name": "p"}, "escrowRef": {"name": "e"}, "resources": {"cpu": "1", "memory": "1Gi"}, "durationEpochs": 30}),
                json!({
                    "phase": "Running",
                    "ready": "2/2",
                    "budgetLeft": "12.5",
                    "assignments": [{"replica": 0, "node": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "state": "running"}],
                }),
            )],
            escrows: vec![stored(
                "Escrow",
                "acme-escrow",
                json!({"owner": "0x01", "chainId": 31337}),
                json!({"address": "0xE5", "balance": "900", "locked": "75", "paid": "21.25", "burned": "3.75", "refunded": "6.00"}),
            )],
        }
    }

    #[test]
    fn the_epoch_counts_from_genesis() {
        let overview = overview();
        assert_eq!(overview.epoch_at(1_000), (0, 20));
        assert_eq!(overview.epoch_at(1_019), (0, 1));
        assert_eq!(overview.epoch_at(1_045), (2, 15));
        assert_eq!(overview.epoch_at(10), (0, 20));
    }

    #[test]
    fn the_overview_shows_epoch_jobs_and_money() {
        let mut out = Vec::new();
        let now: Timestamp = "2026-11-23T10:01:00Z".parse().expect("a time");
        overview().render(now, &mut out).expect("rendered");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("epoch "), "{text}");
        assert!(text.contains("chain 31337"), "{text}");
        let job = text
            .lines()
            .find(|l| l.contains("hello-web"))
            .expect("job row");
        assert!(
            job.contains("Running") && job.contains("2/2") && job.contains("12.5"),
            "{job}"
        );
        let escrow = text
            .lines()
            .find(|l| l.contains("acme-escrow"))
            .expect("escrow row");
        for figure in ["900", "75", "21.25", "3.75", "6.00"] {
            assert!(escrow.contains(figure), "{figure} missing in {escrow}");
        }
        assert!(
            text.contains("PAID") && text.contains("BURNED") && text.contains("REFUNDED"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_account_says_so() {
        let mut overview = overview();
        overview.jobs.clear();
        overview.escrows.clear();
        let mut out = Vec::new();
        overview
            .render(Timestamp::UNIX_EPOCH, &mut out)
            .expect("rendered");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains("No jobs.") && text.contains("No escrows."),
            "{text}"
        );
    }
}
