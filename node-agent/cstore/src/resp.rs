//! The Redis protocol (RESP2) as CSTORE speaks it: commands in (arrays of bulk strings, or
//! inline lines as `redis-cli` and telnet send), replies out. Every length is checked against
//! limits before anything is allocated, so a client cannot make the server hold more than a
//! command's worth of bytes.

use thiserror::Error;

use crate::entry::{MAX_KEY, MAX_VALUE};

/// Most arguments one command may carry (an `MSET` of 512 pairs).
pub const MAX_ARGS: usize = 1025;
/// Largest argument: a value, with room for the longest key.
pub const MAX_ARG: usize = MAX_VALUE + MAX_KEY;
/// Longest inline command line.
pub const MAX_INLINE: usize = 64 << 10;

/// Why bytes from a client are not a command; the connection is answered with the error and
/// closed, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RespError {
    /// A malformed frame.
    #[error("Protocol error: {0}")]
    Protocol(&'static str),
    /// A command over the limits.
    #[error("Protocol error: {0} over the limit")]
    TooLarge(&'static str),
}

/// One parsed command's arguments and how many bytes of the buffer it took.
pub type Parsed = (Vec<Vec<u8>>, usize);

/// Parses one command from the start of `buf`: its arguments and how many bytes it took, or
/// `None` when `buf` does not hold a whole command yet.
pub fn parse(buf: &[u8]) -> Result<Option<Parsed>, RespError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_array(buf),
        Some(_) => parse_inline(buf),
    }
}

fn line(buf: &[u8], from: usize, max: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let window = &buf[from..buf.len().min(from + max + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&buf[from..from + end], from + end + 2))),
        None if window.len() >= max + 2 => Err(RespError::TooLarge("line")),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(RespError::Protocol("invalid length"))
}

fn parse_array(buf: &[u8]) -> Result<Option<Parsed>, RespError> {
    let Some((head, mut at)) = line(buf, 1, 20)? else {
        return Ok(None);
    };
    let count = number(head)?;
    if count <= 0 {
        return Ok(Some((Vec::new(), at)));
    }
    let count = usize::try_from(count).map_err(|_| RespError::Protocol("invalid length"))?;
    if count > MAX_ARGS {
        return Err(RespError::TooLarge("argument count"));
    }
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(_) => return Err(RespError::Protocol("expected '$'")),
        }
        let Some((len, start)) = line(buf, at + 1, 20)? else {
            return Ok(None);
        };
        let len = usize::try_from(number(len)?)
            .map_err(|_| RespError::Protocol("invalid bulk length"))?;
        if len > MAX_ARG {
            return Err(RespError::TooLarge("argument"));
        }
        let end = start + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(RespError::Protocol("bulk string without CRLF"));
        }
        args.push(buf[start..end].to_vec());
        at = end + 2;
    }
    Ok(Some((args, at)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<Parsed>, RespError> {
    let end = match buf.iter().take(MAX_INLINE + 1).position(|&b| b == b'\n') {
        Some(end) => end,
        None if buf.len() > MAX_INLINE => return Err(RespError::TooLarge("inline command")),
        None => return Ok(None),
    };
    let text = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let args = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Ok(Some((args, end + 1)))
}

/// A reply, as Redis writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Simple(&'static str),
    /// `-ERR …`, `-WRONGTYPE …`: the text after the dash.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$n` bytes, or `$-1` (nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` replies.
    Array(Vec<Reply>),
}

impl Reply {
    /// `-ERR <text>`.
    pub fn err(text: impl Into<String>) -> Self {
        Self::Error(format!("ERR {}", text.into()))
    }

    /// Appends the reply's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => {
                out.push(b'+');
                out.extend_from_slice(text.as_bytes());
            }
            Reply::Error(text) => {
                out.push(b'-');
                out.extend(
                    text.bytes()
                        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
                );
            }
            Reply::Integer(n) => out.extend_from_slice(format!(":{n}").as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1"),
            Reply::Bulk(Some(bytes)) => {
                out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
                out.extend_from_slice(bytes);
            }
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.write(out);
                }
                return;
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn commands_parse_whole_or_wait_for_more() {
        let bytes = encode(&[b"SET", b"k", b"v\r\nwith crlf"]);
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (args, used) = parse(&bytes).unwrap().unwrap();
        assert_eq!(
            args,
            [b"SET".to_vec(), b"k".to_vec(), b"v\r\nwith crlf".to_vec()]
        );
        assert_eq!(used, bytes.len());
        assert_eq!(
            parse(b"PING\r\nGET x").unwrap(),
            Some((vec![b"PING".to_vec()], 6)),
            "inline, as redis-cli's first command or telnet"
        );
    }

    #[test]
    fn oversized_or_malformed_commands_are_refused() {
        assert_eq!(
            parse(b"*99999\r\n"),
            Err(RespError::TooLarge("argument count"))
        );
        assert_eq!(
            parse(format!("*1\r\n${}\r\n", MAX_ARG + 1).as_bytes()),
            Err(RespError::TooLarge("argument"))
        );
        assert!(parse(b"*1\r\n+x\r\n").is_err());
        assert!(parse(b"*1\r\n$1\r\nab\r\n").is_err());
        assert!(parse(b"*x\r\n").is_err());
        assert_eq!(
            parse(&vec![b'a'; MAX_INLINE + 1]),
            Err(RespError::TooLarge("inline command"))
        );
    }

    #[test]
    fn replies_are_written_as_redis_writes_them() {
        let mut out = Vec::new();
        for reply in [
            Reply::Simple("OK"),
            Reply::err("unknown command"),
            Reply::Integer(-3),
            Reply::Bulk(None),
            Reply::Array(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Integer(1)]),
        ] {
            reply.write(&mut out);
        }
        assert_eq!(
            out,
            b"+OK\r\n-ERR unknown command\r\n:-3\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n".to_vec()
        );
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn encoded_commands_parse_back(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6)) {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let bytes = encode(&refs);
            let (parsed, used) = parse(&bytes).unwrap().unwrap();
            prop_assert_eq!(parsed, args);
            prop_assert_eq!(used, bytes.len());
        }
    }
}
