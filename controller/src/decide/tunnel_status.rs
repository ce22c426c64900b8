//! A `Tunnel`'s status from what the nodes report about the tunnel clients they run beside the
//! replicas of the jobs using it: one connection per reported client, the phase, the public URL
//! and a `Ready` condition (keeping its `lastTransitionTime` while its status stays the same).

use alloy_primitives::Address;
use r1_crds::common::{Condition, ConditionStatus};
use r1_crds::tunnel::{TunnelConnection, TunnelPhase, TunnelStatus};
use r1_protocol::messages::WorkloadReport;

/// One job using the tunnel and its replicas as the nodes report them.
#[derive(Debug, Clone)]
pub struct TunnelUser<'a> {
    /// The job's name.
    pub job: &'a str,
    /// Its replicas' reports, with the node reporting each.
    pub reports: Vec<(Address, &'a WorkloadReport)>,
}

/// The status of a tunnel whose users are `users`, at `now` (RFC 3339), keeping transition times
/// from `previous`.
pub fn tunnel_status(previous: &TunnelStatus, users: &[TunnelUser<'_>], now: &str) -> TunnelStatus {
    let mut connections: Vec<TunnelConnection> = users
        .iter()
        .flat_map(|user| {
            user.reports.iter().filter_map(move |(node, report)| {
                let tunnel = report.tunnel.as_ref()?;
                Some(TunnelConnection {
                    job: user.job.to_owned(),
                    replica: format!("{}/{}", report.id.job, report.id.replica),
                    node: node.to_checksum(None),
                    up: tunnel.up,
                    url: tunnel.url.clone(),
                    restarts: tunnel.restarts,
                    error: tunnel.error.clone(),
                })
            })
        })
        .collect();
    connections.sort_by(|a, b| (&a.job, &a.replica, &a.node).cmp(&(&b.job, &b.replica, &b.node)));
    let up: Vec<&TunnelConnection> = connections.iter().filter(|c| c.up).collect();
    let url = up.iter().find_map(|c| c.url.clone());
    let (phase, status, reason, message) = if connections.is_empty() {
        (
            TunnelPhase::Pending,
            ConditionStatus::False,
            "NoClient",
            "no running replica of a job using the tunnel reports a client yet".to_owned(),
        )
    } else if !up.is_empty() {
        (
            TunnelPhase::Ready,
            ConditionStatus::True,
            "Connected",
            format!("{} of {} clients connected", up.len(), connections.len()),
        )
    } else if let Some(failed) = connections.iter().find(|c| c.error.is_some()) {
        (
            TunnelPhase::Failed,
            ConditionStatus::False,
            "ClientFailing",
            format!(
                "no client is connected; on node {}: {}",
                failed.node,
                failed.error.as_deref().unwrap_or_default()
            ),
        )
    } else {
        (
            TunnelPhase::Pending,
            ConditionStatus::False,
            "Connecting",
            format!("{} clients starting", connections.len()),
        )
    };
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status)
        .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
    TunnelStatus {
        phase: Some(phase),
        url,
        connections,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status,
            reason: reason.into(),
            message,
            last_transition_time,
            observed_generation: None,
        }],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use r1_protocol::messages::{TunnelReport, WorkloadId, WorkloadState};

    use super::*;

    fn report(replica: u32, tunnel: Option<TunnelReport>) -> WorkloadReport {
        WorkloadReport {
            id: WorkloadId { job: 3, replica },
            revision: "r".into(),
            state: WorkloadState::Running,
            image_digest: None,
            ports: Vec::new(),
            healthy: Some(true),
            tunnel,
        }
    }

    fn up(url: &str) -> TunnelReport {
        TunnelReport {
            url: Some(url.into()),
            up: true,
            restarts: 1,
            error: None,
        }
    }

    #[test]
    fn phases_follow_the_clients() {
        let node = Address::repeat_byte(1);
        let none = tunnel_status(&TunnelStatus::default(), &[], "t0");
        assert_eq!(none.phase, Some(TunnelPhase::Pending));
        assert_eq!(none.conditions[0].reason, "NoClient");

        let plain = report(0, None);
        let down = report(
            1,
            Some(TunnelReport {
                error: Some("bore not found on the node".into()),
                ..TunnelReport::default()
            }),
        );
        let failing = tunnel_status(
            &none,
            &[TunnelUser {
                job: "web",
                reports: vec![(node, &plain), (node, &down)],
            }],
            "t1",
        );
        assert_eq!(failing.phase, Some(TunnelPhase::Failed));
        assert_eq!(failing.connections.len(), 1);
        assert!(failing.conditions[0].message.contains("bore not found"));
        assert_eq!(failing.conditions[0].last_transition_time, "t0");

        let serving = report(2, Some(up("127.0.0.1:4000")));
        let ready = tunnel_status(
            &failing,
            &[TunnelUser {
                job: "web",
                reports: vec![(node, &down), (node, &serving)],
            }],
            "t2",
        );
        assert_eq!(ready.phase, Some(TunnelPhase::Ready));
        assert_eq!(ready.url.as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(ready.conditions[0].status, ConditionStatus::True);
        assert_eq!(ready.conditions[0].last_transition_time, "t2");
        assert_eq!(ready.conditions[0].message, "1 of 2 clients connected");
        assert_eq!(ready.connections[1].replica, "3/2");
        assert_eq!(ready.connections[1].node, node.to_checksum(None));
    }
}
