//! `r1ctl logs` and `r1ctl exec`: a job's logs and commands run in its replicas, through an
//! oracle's Deeploy API (see the oracle's `intake::sessions`), for the job's owner only. The
//! answer is a stream of JSON lines; each carries a replica's output, the last one how it ended.

use std::io::{Read, Write};

use r1_crds::api::object::ObjectKey;
use r1_crds::api::sessions::{ExecBody, InputBody, SessionLine};
use r1_protocol::sessions::{MAX_CHUNK_BYTES, SessionEnd, Stream, decode_data, encode_data};
use reqwest::Method;

use crate::remote::{Client, RawResponse, RemoteError, decode};

/// Longest line of the answer stream accepted: a chunk of output in base64 and its fields.
const MAX_LINE_BYTES: usize = MAX_CHUNK_BYTES * 2 + 4096;

/// What `r1ctl logs` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogsOptions {
    /// One replica (by index); every replica without.
    pub replica: Option<u32>,
    /// Keep streaming.
    pub follow: bool,
    /// Lines from the end of each log (0: all that is kept).
    pub tail: u32,
    /// Only what was written in the last this many seconds.
    pub since: Option<u64>,
    /// The logs of replicas that no longer run, as their nodes kept them.
    pub previous: bool,
}

/// Seconds of a duration written `45`, `30s`, `5m` or `2h`.
pub fn parse_seconds(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => {
            return Err(format!(
                "{text:?}: use a number of seconds, or one ending in s, m or h"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("{text:?} is not a duration like 30s, 5m or 2h"))
}

/// What `r1ctl exec` runs.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The replica (by index); the lowest running one without.
    pub replica: Option<u32>,
    /// Send this process's stdin to the command.
    pub stdin: bool,
    /// On a terminal.
    pub tty: bool,
    /// The command.
    pub argv: Vec<String>,
}

/// How a stream of session lines ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    /// Sessions that failed, with the reason and the replica.
    pub failures: Vec<String>,
    /// The exec's exit status, when it exited.
    pub exit: Option<u32>,
    /// Replicas whose log came from a node that no longer runs them.
    pub retired: Vec<u32>,
}

/// `r1ctl logs`: prints the job's logs (each line prefixed with its replica when there are
/// several); returns whether every replica's log was read to its end.
pub async fn logs(
    client: &Client,
    job: &ObjectKey,
    options: LogsOptions,
    out: &mut dyn Write,
) -> Result<bool, RemoteError> {
    let mut query: Vec<(&str, String)> = vec![("tail", options.tail.to_string())];
    if options.follow {
        query.push(("follow", "true".into()));
    }
    if let Some(replica) = options.replica {
        query.push(("replica", replica.to_string()));
    }
    if let Some(since) = options.since {
        query.push(("since", since.to_string()));
    }
    if options.previous {
        query.push(("previous", "true".into()));
    }
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = client.url(&job_segments(job, "logs"), &pairs)?;
    let response = client.send_streaming(Method::GET, url, Vec::new()).await?;
    let prefix = options.replica.is_none();
    let mut err = std::io::stderr();
    let ended = read_lines_with(response, out, &mut err, prefix, &mut |_| {}).await?;
    for failure in &ended.failures {
        eprintln!("r1ctl: {failure}");
    }
    Ok(ended.failures.is_empty())
}

/// `r1ctl exec`: runs the command in a replica with its output on this process's stdout and
/// stderr (and this process's stdin sent to it when asked); the command's exit status.
pub async fn exec(
    client: &Client,
    job: &ObjectKey,
    options: ExecOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Ended, RemoteError> {
    let pairs: Vec<(&str, String)> = options
        .replica
        .map(|r| ("replica", r.to_string()))
        .into_iter()
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = client.url(&job_segments(job, "exec"), &pairs)?;
    let body = ExecBody {
        argv: options.argv,
        tty: options.tty,
        size: options.tty.then(|| window_size().unwrap_or((80, 24))),
        stdin: options.stdin,
    };
    let body = serde_json::to_vec(&body).map_err(|e| RemoteError::Unexpected {
        status: 0,
        text: e.to_string(),
    })?;
    // Raw while the command runs (keys go to it as typed), restored when this returns.
    let _raw = options.tty.then(RawTerminal::enter).flatten();
    let response = client.send_streaming(Method::POST, url, body).await?;
    let stdin = options.stdin;
    let tty = options.tty;
    let sender = client.clone();
    let mut feeding = None;
    let mut resizing = None;
    let mut on_session = |session: &str| {
        if stdin {
            feeding = Some(tokio::spawn(feed_stdin(sender.clone(), session.to_owned())));
        }
        if tty {
            resizing = Some(tokio::spawn(follow_size(
                sender.clone(),
                session.to_owned(),
            )));
        }
    };
    let ended = read_lines_with(response, out, err, false, &mut on_session).await?;
    for task in [feeding, resizing].into_iter().flatten() {
        task.abort();
    }
    Ok(ended)
}

/// The local terminal's size (columns, rows), when stdout is one.
fn window_size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Sends the local terminal's new size to `session` each time it changes (SIGWINCH).
async fn follow_size(client: Client, session: String) -> Result<(), RemoteError> {
    let Ok(mut changes) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return Ok(());
    };
    while changes.recv().await.is_some() {
        if let Some(size) = window_size() {
            let input = InputBody {
                resize: Some(size),
                ..InputBody::default()
            };
            send_input(&client, &session, &input).await?;
        }
    }
    Ok(())
}

/// The local terminal in raw mode while an exec on a terminal runs (keys, ^C included, go to
/// the command as typed), put back as it was when dropped. Nothing when stdin is no terminal.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(&stdin) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Sends this process's stdin to `session`, then its end. Stdin is read on a thread of its
/// own (a terminal or pipe read blocks).
async fn feed_stdin(client: Client, session: String) -> Result<(), RemoteError> {
    let (chunks, mut read) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; MAX_CHUNK_BYTES];
        loop {
            let n = stdin.read(&mut buffer).unwrap_or(0);
            if chunks.blocking_send(buffer[..n].to_vec()).is_err() || n == 0 {
                return;
            }
        }
    });
    while let Some(chunk) = read.recv().await {
        let input = if chunk.is_empty() {
            InputBody {
                eof: true,
                ..InputBody::default()
            }
        } else {
            InputBody {
                data: encode_data(&chunk),
                ..InputBody::default()
            }
        };
        send_input(&client, &session, &input).await?;
        if chunk.is_empty() {
            break;
        }
    }
    Ok(())
}

/// `POST /v1/sessions/{id}/input`.
pub async fn send_input(
    client: &Client,
    session: &str,
    input: &InputBody,
) -> Result<(), RemoteError> {
    let url = client.url(&["v1", "sessions", session, "input"], &[])?;
    let body = serde_json::to_vec(input).map_err(|e| RemoteError::Unexpected {
        status: 0,
        text: e.to_string(),
    })?;
    let response = client.send(Method::POST, url, body).await?;
    if response.status == 204 {
        return Ok(());
    }
    decode::<serde_json::Value>(response).map(|_| ())
}

fn job_segments<'a>(job: &'a ObjectKey, route: &'a str) -> [&'a str; 5] {
    [
        "v1",
        r1_crds::api::kinds::plural(job.kind),
        &job.namespace,
        &job.name,
        route,
    ]
}

/// Reads the answer's lines as they arrive, writing output to `out` (stdout, log) and `err`
/// (stderr); `on_session` is told the session's id when a line names it.
async fn read_lines_with(
    mut response: reqwest::Response,
    out: &mut dyn Write,
    err: &mut dyn Write,
    prefix: bool,
    on_session: &mut dyn FnMut(&str),
) -> Result<Ended, RemoteError> {
    let status = response.status().as_u16();
    let transport = |source| RemoteError::Transport {
        server: String::from("the oracle"),
        source,
    };
    if !(200..300).contains(&status) {
        let body = response.bytes().await.map_err(transport)?.to_vec();
        return decode::<serde_json::Value>(RawResponse { status, body }).map(|_| Ended::default());
    }
    let mut ended = Ended::default();
    let mut pending: Vec<u8> = Vec::new();
    let unexpected = |text: String| RemoteError::Unexpected { status, text };
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: SessionLine = serde_json::from_slice(&pending[..end])
                .map_err(|e| unexpected(format!("a line of the answer: {e}")))?;
            pending.drain(..=end);
            show(&line, out, err, prefix, &mut ended, on_session)?;
        }
        if pending.len() > MAX_LINE_BYTES {
            return Err(unexpected(format!(
                "a line of the answer over {MAX_LINE_BYTES} bytes"
            )));
        }
    }
    Ok(ended)
}

fn show(
    line: &SessionLine,
    out: &mut dyn Write,
    err: &mut dyn Write,
    prefix: bool,
    ended: &mut Ended,
    on_session: &mut dyn FnMut(&str),
) -> Result<(), RemoteError> {
    if let Some(session) = &line.session {
        on_session(session);
    }
    let replica = line.replica.map_or(String::from("?"), |r| r.to_string());
    let label = if line.retired {
        format!("{replica}, ended")
    } else {
        replica.clone()
    };
    if let Some(index) = line
        .replica
        .filter(|i| line.retired && !ended.retired.contains(i))
    {
        ended.retired.push(index);
        if !prefix {
            writeln!(
                err,
                "r1ctl: replica {index} no longer runs; this is the log its node kept"
            )?;
        }
    }
    if !line.data.is_empty() {
        let bytes = decode_data(&line.data).ok_or_else(|| RemoteError::Unexpected {
            status: 200,
            text: "output that is not base64".into(),
        })?;
        let target: &mut dyn Write = match line.stream {
            Some(Stream::Stderr) => err,
            _ => out,
        };
        if prefix {
            for text in bytes.split_inclusive(|b| *b == b'\n') {
                write!(target, "[replica {label}] ")?;
                target.write_all(text)?;
            }
        } else {
            target.write_all(&bytes)?;
        }
        target.flush()?;
    }
    match &line.end {
        Some(SessionEnd::Exited { code }) => ended.exit = Some(*code),
        Some(SessionEnd::Failed { reason }) => {
            ended.failures.push(format!("replica {replica}: {reason}"))
        }
        Some(SessionEnd::Done) | None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_seconds_minutes_or_hours() {
        assert_eq!(parse_seconds("45"), Ok(45));
        assert_eq!(parse_seconds("30s"), Ok(30));
        assert_eq!(parse_seconds("5m"), Ok(300));
        assert_eq!(parse_seconds("2h"), Ok(7200));
        assert!(parse_seconds("5d").is_err());
        assert!(parse_seconds("m").is_err());
        assert!(parse_seconds("-1s").is_err());
    }

    #[test]
    fn lines_go_to_their_stream_prefixed_when_asked_and_endings_are_kept() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut ended = Ended::default();
        let mut sessions = Vec::new();
        let mut note = |s: &str| sessions.push(s.to_owned());
        let line = |stream, data: &[u8], end| SessionLine {
            replica: Some(1),
            stream: Some(stream),
            data: encode_data(data),
            end,
            ..SessionLine::default()
        };
        let first = SessionLine {
            session: Some("ab".into()),
            ..SessionLine::default()
        };
        show(&first, &mut out, &mut err, false, &mut ended, &mut note).unwrap();
        show(
            &line(Stream::Stdout, b"a\nb\n", None),
            &mut out,
            &mut err,
            true,
            &mut ended,
            &mut note,
        )
        .unwrap();
        show(
            &line(Stream::Stderr, b"oops", None),
            &mut out,
            &mut err,
            false,
            &mut ended,
            &mut note,
        )
        .unwrap();
        let exit = line(Stream::Stdout, b"", Some(SessionEnd::Exited { code: 3 }));
        show(&exit, &mut out, &mut err, false, &mut ended, &mut note).unwrap();
        let failed = SessionLine {
            replica: Some(0),
            end: Some(SessionEnd::Failed {
                reason: "gone".into(),
            }),
            ..SessionLine::default()
        };
        show(&failed, &mut out, &mut err, false, &mut ended, &mut note).unwrap();
        assert_eq!(out, b"[replica 1] a\n[replica 1] b\n");
        assert_eq!(err, b"oops");
        assert_eq!(ended.exit, Some(3));
        assert_eq!(ended.failures, vec!["replica 0: gone".to_owned()]);
        assert_eq!(sessions, vec!["ab".to_owned()]);
    }

    #[test]
    fn a_retired_replica_s_log_is_marked() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut ended = Ended::default();
        let line = SessionLine {
            replica: Some(2),
            retired: true,
            stream: Some(Stream::Log),
            data: encode_data(b"bye\n"),
            ..SessionLine::default()
        };
        for prefix in [true, true, false] {
            show(&line, &mut out, &mut err, prefix, &mut ended, &mut |_| {}).unwrap();
        }
        assert_eq!(
            out,
            b"[replica 2, ended] bye\n[replica 2, ended] bye\nbye\n"
        );
        assert_eq!(ended.retired, vec![2]);
        assert!(err.is_empty(), "noted once, with the prefix: {err:?}");
        let mut single = Ended::default();
        show(&line, &mut out, &mut err, false, &mut single, &mut |_| {}).unwrap();
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "r1ctl: replica 2 no longer runs; this is the log its node kept\n"
        );
    }
}
