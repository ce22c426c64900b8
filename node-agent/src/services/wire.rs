//! The head of a service call forwarded to another node, over a peer-to-peer stream: the
//! caller's workload, the target workload and the port, one JSON line; the answer `ok` or
//! `refused: WHY`, one line. Then the call's bytes, both ways. Each line is bounded in size and
//! in time.

use std::time::Duration;

use r1_protocol::messages::WorkloadId;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The stream protocol of service calls.
pub const PROTOCOL: &str = "svc/1";

/// Longest head or answer line.
pub const MAX_LINE: usize = 1024;

/// Longest wait for a head or an answer.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a call asks for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallHead {
    /// The replica calling.
    pub caller: WorkloadId,
    /// The replica called.
    pub target: WorkloadId,
    /// The port called.
    pub port: u16,
}

/// Why a head or answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Nothing complete within [`LINE_TIMEOUT`].
    #[error("no complete line within {LINE_TIMEOUT:?}")]
    Timeout,
    /// A line over [`MAX_LINE`] bytes, or the stream ended first.
    #[error("a line over {MAX_LINE} bytes or cut short")]
    BadLine,
    /// The head is not JSON of a [`CallHead`].
    #[error("bad call head: {0}")]
    BadHead(#[from] serde_json::Error),
    /// The other node refused the call.
    #[error("refused: {0}")]
    Refused(String),
}

/// Reads one line (without its newline), byte by byte so that nothing after it is taken.
pub async fn read_line<R: AsyncRead + Unpin>(reader: &mut R) -> Result<String, WireError> {
    let read = async {
        let mut line = Vec::new();
        loop {
            let byte = reader.read_u8().await.map_err(|_| WireError::BadLine)?;
            if byte == b'\n' {
                return String::from_utf8(line).map_err(|_| WireError::BadLine);
            }
            if line.len() == MAX_LINE {
                return Err(WireError::BadLine);
            }
            line.push(byte);
        }
    };
    tokio::time::timeout(LINE_TIMEOUT, read)
        .await
        .map_err(|_| WireError::Timeout)?
}

/// Writes `head` as the call's first line.
pub async fn write_head<W: AsyncWrite + Unpin>(
    writer: &mut W,
    head: &CallHead,
) -> Result<(), WireError> {
    let mut line = serde_json::to_vec(head)?;
    line.push(b'\n');
    writer.write_all(&line).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads the call's head.
pub async fn read_head<R: AsyncRead + Unpin>(reader: &mut R) -> Result<CallHead, WireError> {
    Ok(serde_json::from_str(&read_line(reader).await?)?)
}

/// Writes the answer: `ok`, or the refusal.
pub async fn write_answer<W: AsyncWrite + Unpin>(
    writer: &mut W,
    refusal: Option<&str>,
) -> Result<(), WireError> {
    let mut line = match refusal {
        None => "ok".to_owned(),
        Some(why) => format!("refused: {}", why.replace('\n', " ")),
    };
    line.truncate(MAX_LINE);
    line.push('\n');
    writer.write_all(line.as_bytes()).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads the answer: `Ok` for `ok`, the refusal otherwise.
pub async fn read_answer<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(), WireError> {
    let line = read_line(reader).await?;
    match line.strip_prefix("refused: ") {
        _ if line == "ok" => Ok(()),
        Some(why) => Err(WireError::Refused(why.to_owned())),
        None => Err(WireError::BadLine),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_head_and_its_answer_travel_and_what_follows_is_left_unread() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let head = CallHead {
            caller: WorkloadId::of(8, 1, 0),
            target: WorkloadId::of(7, 1, 1),
            port: 9000,
        };
        write_head(&mut a, &head).await.unwrap();
        a.write_all(b"GET / HTTP/1.0\r\n").await.unwrap();
        assert_eq!(read_head(&mut b).await.unwrap(), head);
        let mut rest = [0u8; 5];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"GET /");
        write_answer(&mut b, Some("no\nway")).await.unwrap();
        match read_answer(&mut a).await {
            Err(WireError::Refused(why)) => assert_eq!(why, "no way"),
            other => panic!("{other:?}"),
        }
        write_answer(&mut b, None).await.unwrap();
        read_answer(&mut a).await.unwrap();
    }

    #[tokio::test]
    async fn long_or_silent_lines_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(8192);
        a.write_all(&[b'x'; MAX_LINE + 1]).await.unwrap();
        assert!(matches!(read_line(&mut b).await, Err(WireError::BadLine)));
        let (_quiet, mut b) = tokio::io::duplex(64);
        tokio::time::pause();
        assert!(matches!(read_line(&mut b).await, Err(WireError::Timeout)));
    }
}
