//! The bodies of the Deeploy API's session routes — a job's logs and commands run in its
//! replicas — shared by the oracle and `r1ctl`.

use alloy_primitives::Address;
use r1_protocol::sessions::{SessionEnd, Stream};
use serde::{Deserialize, Serialize};

/// Body of an exec request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecBody {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// On a terminal.
    #[serde(default)]
    pub tty: bool,
    /// The terminal's size, columns and rows.
    #[serde(default)]
    pub size: Option<(u16, u16)>,
    /// Input will follow (`POST /v1/sessions/{id}/input`).
    #[serde(default)]
    pub stdin: bool,
}

/// Body of an input request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputBody {
    /// Bytes for stdin, base64 (at most [`r1_protocol::sessions::MAX_CHUNK_BYTES`] decoded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// No more input.
    #[serde(default)]
    pub eof: bool,
    /// A new terminal size, columns and rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<(u16, u16)>,
    /// End the session.
    #[serde(default)]
    pub close: bool,
}

/// One line of a session's response stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionLine {
    /// The session (on its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The node the output comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Address>,
    /// The replica's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
    /// The replica no longer runs: this is the log its node kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// Which stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// The bytes, base64.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// How the session ended (its last line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<SessionEnd>,
}
