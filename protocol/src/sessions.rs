//! Sessions: a CSP's view into one running replica, through an oracle — its logs, or a command
//! run inside it (exec) with input, a terminal and an exit code.
//!
//! The CSP asks an oracle over the Deeploy API; the oracle checks that the CSP owns the job and
//! sends the node a [`SessionOpen`] on the node's command topic, naming the CSP. The node
//! checks it like any command (a trusted oracle, fresh, never seen, addressed to it), logs who
//! asked for what, and streams [`SessionOutput`] on its own sessions topic until the session
//! ends. Input travels as [`SessionInput`], numbered within the session so that none is
//! replayed, lost or reordered unnoticed. Every piece has a size limit; a session has a time
//! limit on the node.

use serde::{Deserialize, Serialize};

use crate::Address;
use crate::envelope::{Message, MessageKind};
use crate::messages::WorkloadId;

/// Most bytes of output or input one message carries (before base64).
pub const MAX_CHUNK_BYTES: usize = 32 << 10;

/// Most arguments of an exec command, and most bytes of all of them together.
pub const MAX_EXEC_ARGS: usize = 256;
/// See [`MAX_EXEC_ARGS`].
pub const MAX_EXEC_ARG_BYTES: usize = 16 << 10;

/// Bytes of a session id.
pub const SESSION_ID_BYTES: usize = 16;

/// A session's id: random, chosen by the oracle, lowercase hex of [`SESSION_ID_BYTES`] bytes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        let bytes: [u8; SESSION_ID_BYTES] = rand::random();
        Self(crate::hex::encode_bare(&bytes))
    }

    /// The id as text, when `text` is one (lowercase hex of the right length).
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == 2 * SESSION_ID_BYTES
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a session is for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    tag = "kind"
)]
pub enum SessionRequest {
    /// The replica's log: its last `tail_lines` lines (0: all that is kept), then, with
    /// `follow`, what it writes next until the session is closed or the replica goes.
    Logs {
        /// Keep streaming new output.
        follow: bool,
        /// Lines of the end of the log to send first (0: the whole log kept).
        tail_lines: u32,
        /// Only what was written since this moment (ms since the Unix epoch), to within the
        /// node's log pass.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_ms: Option<u64>,
    },
    /// A command run inside the replica's container, as one more process of its task.
    Exec {
        /// The command and its arguments.
        argv: Vec<String>,
        /// Run it on a terminal (stdout and stderr become one stream).
        tty: bool,
        /// The terminal's first size, columns and rows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<(u16, u16)>,
        /// Whether input will follow; without it the command's stdin is empty.
        stdin: bool,
    },
}

impl SessionRequest {
    /// Why the request is not acceptable as it stands, if it is not.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Logs { .. } => None,
            Self::Exec { argv, .. } => {
                let bytes: usize = argv.iter().map(String::len).sum();
                if argv.is_empty() || argv[0].is_empty() {
                    Some("exec needs a command".into())
                } else if argv.len() > MAX_EXEC_ARGS || bytes > MAX_EXEC_ARG_BYTES {
                    Some(format!(
                        "exec command over {MAX_EXEC_ARGS} arguments or {MAX_EXEC_ARG_BYTES} bytes"
                    ))
                } else {
                    None
                }
            }
        }
    }
}

/// An oracle's order to a node to open a session on one of its replicas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionOpen {
    /// The node the order is for.
    pub target: Address,
    /// The session's id, the oracle's choice.
    pub session: SessionId,
    /// The replica.
    pub workload: WorkloadId,
    /// The CSP who asked (the job's owner, checked by the oracle), for the node's log.
    pub requester: Address,
    /// What to do.
    pub request: SessionRequest,
}

impl Message for SessionOpen {
    const KIND: MessageKind = MessageKind::SessionOpen;
}

/// Input for an open session, from the oracle that opened it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionInput {
    /// The node the input is for.
    pub target: Address,
    /// The session.
    pub session: SessionId,
    /// 0 for the first input of the session, then one more each time.
    pub seq: u64,
    /// Bytes for the command's stdin, base64 (at most [`MAX_CHUNK_BYTES`] decoded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// No more input: the command's stdin is closed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eof: bool,
    /// The terminal's new size, columns and rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<(u16, u16)>,
    /// The CSP went away: end the session (an exec's process is killed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub close: bool,
}

impl Message for SessionInput {
    const KIND: MessageKind = MessageKind::SessionInput;
}

/// Which stream output came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The replica's log (its stdout and stderr as the runtime kept them).
    Log,
    /// An exec's standard output (or its terminal).
    Stdout,
    /// An exec's standard error.
    Stderr,
}

/// How a session ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    tag = "kind"
)]
pub enum SessionEnd {
    /// The exec's command exited with this status (128 + signal when a signal ended it).
    Exited {
        /// The status.
        code: u32,
    },
    /// A log session reached the end of what was asked.
    Done,
    /// The node could not go on, with the reason.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Output of a session, from the node that runs it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionOutput {
    /// The session.
    pub session: SessionId,
    /// 0 for the first output of the session, then one more each time.
    pub seq: u64,
    /// Which stream.
    pub stream: Stream,
    /// The bytes, base64 (at most [`MAX_CHUNK_BYTES`] decoded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// Set on the session's last output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<SessionEnd>,
}

impl Message for SessionOutput {
    const KIND: MessageKind = MessageKind::SessionOutput;
}

/// Encodes bytes for [`SessionInput::data`] and [`SessionOutput::data`].
pub fn encode_data(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes [`SessionInput::data`] or [`SessionOutput::data`]; `None` when it is not base64 or
/// longer than [`MAX_CHUNK_BYTES`].
pub fn decode_data(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if text.len() > MAX_CHUNK_BYTES.div_ceil(3) * 4 {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_hex_and_parse_back() {
        let a = SessionId::random();
        assert_ne!(a, SessionId::random());
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
        assert_eq!(SessionId::parse("ABCD"), None);
        assert_eq!(SessionId::parse(&"g".repeat(32)), None);
        assert_eq!(SessionId::parse(&"a".repeat(31)), None);
    }

    #[test]
    fn exec_requests_need_a_bounded_command() {
        let exec = |argv: Vec<String>| SessionRequest::Exec {
            argv,
            tty: false,
            size: None,
            stdin: false,
        };
        assert_eq!(exec(vec!["ls".into()]).problem(), None);
        assert!(exec(vec![]).problem().is_some());
        assert!(exec(vec![String::new()]).problem().is_some());
        assert!(
            exec(vec!["x".into(); MAX_EXEC_ARGS + 1])
                .problem()
                .is_some()
        );
        assert!(
            exec(vec!["x".repeat(MAX_EXEC_ARG_BYTES + 1)])
                .problem()
                .is_some()
        );
    }

    #[test]
    fn data_round_trips_and_oversized_data_is_refused() {
        let bytes = vec![7u8; MAX_CHUNK_BYTES];
        assert_eq!(decode_data(&encode_data(&bytes)), Some(bytes));
        assert_eq!(
            decode_data(&encode_data(&vec![1u8; MAX_CHUNK_BYTES + 3])),
            None
        );
        assert_eq!(decode_data("not base64!"), None);
    }

    #[test]
    fn messages_have_one_json_form() {
        let open = SessionOpen {
            target: Address::repeat_byte(1),
            session: SessionId::random(),
            workload: WorkloadId { job: 3, replica: 1 },
            requester: Address::repeat_byte(2),
            request: SessionRequest::Logs {
                follow: true,
                tail_lines: 10,
                since_ms: None,
            },
        };
        let json = serde_json::to_string(&open).unwrap();
        assert!(json.contains(r#""request":{"kind":"logs","follow":true,"tailLines":10}"#));
        assert_eq!(serde_json::from_str::<SessionOpen>(&json).unwrap(), open);
        let odd = json.replace(r#""follow""#, r#""extra":1,"follow""#);
        assert!(serde_json::from_str::<SessionOpen>(&odd).is_err());
    }
}
