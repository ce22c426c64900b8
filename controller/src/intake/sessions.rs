//! The Deeploy API's door to a job's replicas: its logs and commands run inside it, for the
//! job's owner only. The API finds the job as the owner's `GET` would (another CSP's job is
//! `404 not_found`, exactly as a missing one), and a [`SessionDoor`] (the oracle runtime) finds
//! the replicas and opens a session on each node through the broker.
//!
//! * `GET /v1/{kind}/{namespace}/{name}/logs?replica=&follow=&tail=&since=&previous=` — the
//!   replicas' logs (one replica's with `replica`), as [`SessionLine`]s, one JSON object per
//!   line: the running replicas', or with `previous` (or when none runs) those of replicas that
//!   no longer run, which their nodes keep for a while.
//! * `POST /v1/{kind}/{namespace}/{name}/exec?replica=` — body an [`ExecBody`]; the command's
//!   output and exit as [`SessionLine`]s, the first naming the session.
//! * `POST /v1/sessions/{id}/input` — body an [`InputBody`]: stdin, end of input, a terminal
//!   size, or closing; only from the CSP that opened the session.

use std::sync::Arc;

use alloy_primitives::Address;
use futures_util::future::BoxFuture;
use r1_crds::api::kinds;
use r1_crds::api::object::ObjectKey;
pub use r1_crds::api::sessions::{ExecBody, InputBody, SessionLine};
use r1_crds::manifest::Kind;
use r1_protocol::messages::{WorkloadId, WorkloadState};
use r1_protocol::sessions::{MAX_CHUNK_BYTES, SessionId, SessionOutput, SessionRequest};
use serde::Deserialize;
use tokio::sync::mpsc;

/// Lines held for a slow reader of one session before the session is ended.
pub const OUTPUT_QUEUE: usize = 256;

/// How often a session stream carries an empty line, so that a reader gone away is noticed.
pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(2);

/// A replica a node reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaAt {
    /// Its index in the job.
    pub index: u32,
    /// The node running it.
    pub node: Address,
    /// Its id on the node.
    pub workload: WorkloadId,
    /// What the node last said of it; `None` for a replica that no longer runs there, whose
    /// log the node keeps.
    pub state: Option<WorkloadState>,
}

/// Why a session could not be opened or fed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefused {
    /// No session with this id is open for this CSP.
    #[error("no session {0} of yours is open")]
    NoSession(String),
    /// The oracle cannot reach the broker.
    #[error("the oracle cannot reach the nodes now")]
    Unreachable,
    /// This oracle holds as many sessions as it may.
    #[error("the oracle has {0} sessions open, the most it holds")]
    Full(usize),
    /// The request is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// What opens sessions on replicas: the oracle runtime, over the broker.
pub trait SessionDoor: std::fmt::Debug + Send + Sync {
    /// The replicas of chain job `job` that nodes report now.
    fn replicas(&self, job: u64) -> BoxFuture<'_, Vec<ReplicaAt>>;
    /// Opens `request` on `replica` for `requester`; its output arrives on the receiver, the
    /// last one with [`SessionOutput::end`] set.
    fn open(
        &self,
        replica: &ReplicaAt,
        requester: Address,
        request: SessionRequest,
    ) -> Result<(SessionId, mpsc::Receiver<SessionOutput>), SessionRefused>;
    /// Sends `input` to `session`, which `requester` must have opened.
    fn input(
        &self,
        session: &SessionId,
        requester: Address,
        input: InputBody,
    ) -> Result<(), SessionRefused>;
}

/// Query of a logs request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// One replica's logs (by index); all replicas' without.
    pub replica: Option<u32>,
    /// Keep streaming new output.
    #[serde(default)]
    pub follow: bool,
    /// Lines from the end of each log to send first (0 or absent: all that is kept).
    #[serde(default)]
    pub tail: u32,
    /// Only what was written in the last this many seconds.
    pub since: Option<u64>,
    /// The logs of replicas that no longer run (the newest of each index) instead.
    #[serde(default)]
    pub previous: bool,
    /// A delegate's `?owner=` (checked by the authentication layer).
    pub owner: Option<String>,
}

/// Query of an exec request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecQuery {
    /// The replica (by index); the lowest running one without.
    pub replica: Option<u32>,
    /// A delegate's `?owner=` (checked by the authentication layer).
    pub owner: Option<String>,
}

/// The kinds whose objects have replicas to open sessions on.
pub fn has_replicas(kind: &str) -> Option<Kind> {
    kinds::parse(kind).filter(|k| *k == Kind::Job)
}

/// The replicas a session request goes to: `wanted`'s index, or every one; per index the
/// newest generation a node reports (a rollout's new replica over its old one).
pub fn pick(replicas: &[ReplicaAt], wanted: Option<u32>) -> Vec<ReplicaAt> {
    let mut chosen: Vec<ReplicaAt> = Vec::new();
    for replica in replicas {
        if wanted.is_some_and(|w| w != replica.index) {
            continue;
        }
        match chosen.iter_mut().find(|c| c.index == replica.index) {
            Some(held) if held.workload.tag() < replica.workload.tag() => *held = replica.clone(),
            Some(_) => {}
            None => chosen.push(replica.clone()),
        }
    }
    chosen.sort_by_key(|r| r.index);
    chosen
}

/// The replicas a logs request reads: the running ones (`wanted`'s index, or every one, see
/// [`pick`]), or, when `previous` is asked or none runs, those that no longer run.
pub fn pick_logs(replicas: &[ReplicaAt], wanted: Option<u32>, previous: bool) -> Vec<ReplicaAt> {
    let (live, retired): (Vec<ReplicaAt>, Vec<ReplicaAt>) =
        replicas.iter().cloned().partition(|r| r.state.is_some());
    let running = if previous {
        Vec::new()
    } else {
        pick(&live, wanted)
    };
    if running.is_empty() {
        pick(&retired, wanted)
    } else {
        running
    }
}

/// The line carrying `output` of `replica`.
pub fn line(replica: &ReplicaAt, output: SessionOutput) -> SessionLine {
    SessionLine {
        node: Some(replica.node),
        replica: Some(replica.index),
        retired: replica.state.is_none(),
        stream: (!output.data.is_empty()).then_some(output.stream),
        data: output.data,
        end: output.end,
        ..SessionLine::default()
    }
}

/// Checks an input body's sizes.
pub fn check_input(input: &InputBody) -> Result<(), SessionRefused> {
    if input.data.len() > MAX_CHUNK_BYTES.div_ceil(3) * 4 {
        return Err(SessionRefused::Invalid(format!(
            "input over {MAX_CHUNK_BYTES} bytes; send it in pieces"
        )));
    }
    Ok(())
}

/// A shared door.
pub type Door = Arc<dyn SessionDoor>;

/// The object key of a job request.
pub fn job_key(namespace: String, name: String) -> ObjectKey {
    ObjectKey::new(Kind::Job, namespace, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: u32, tag: u32, node: u8) -> ReplicaAt {
        ReplicaAt {
            index,
            node: Address::repeat_byte(node),
            workload: WorkloadId::of(9, tag, index),
            state: Some(WorkloadState::Running),
        }
    }

    fn retired(index: u32, tag: u32, node: u8) -> ReplicaAt {
        ReplicaAt {
            state: None,
            ..at(index, tag, node)
        }
    }

    #[test]
    fn logs_are_the_running_replicas_else_those_that_ran() {
        let replicas = [
            at(0, 2, 1),
            retired(0, 1, 2),
            retired(1, 1, 2),
            retired(1, 0, 3),
        ];
        assert_eq!(pick_logs(&replicas, None, false), vec![at(0, 2, 1)]);
        assert_eq!(
            pick_logs(&replicas, None, true),
            vec![retired(0, 1, 2), retired(1, 1, 2)]
        );
        assert_eq!(pick_logs(&replicas, Some(1), false), vec![retired(1, 1, 2)]);
        assert_eq!(pick_logs(&replicas, Some(2), false), vec![]);
    }

    #[test]
    fn each_index_goes_to_its_newest_generation() {
        let replicas = [at(1, 1, 1), at(0, 1, 2), at(1, 2, 3), at(0, 1, 2)];
        assert_eq!(pick(&replicas, None), vec![at(0, 1, 2), at(1, 2, 3)]);
        assert_eq!(pick(&replicas, Some(1)), vec![at(1, 2, 3)]);
        assert_eq!(pick(&replicas, Some(5)), vec![]);
    }

    #[test]
    fn oversized_input_is_refused() {
        let ok = InputBody {
            data: r1_protocol::sessions::encode_data(&[1; MAX_CHUNK_BYTES]),
            ..InputBody::default()
        };
        assert_eq!(check_input(&ok), Ok(()));
        let big = InputBody {
            data: r1_protocol::sessions::encode_data(&[1; MAX_CHUNK_BYTES + 3]),
            ..InputBody::default()
        };
        assert!(check_input(&big).is_err());
    }
}
