//! A raw HTTP/1.1 client for the Deeploy API: one request per connection, signed with
//! [`r1_protocol::api_auth::sign`] like `r1ctl` signs, or not at all. A signed request is
//! kept as sent so the very same bytes can be replayed to another oracle.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use r1_protocol::Identity;
use r1_protocol::api_auth;
use serde_json::Value;

/// How long a request may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: the status code and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The API's error code (`error` of the JSON body), or `-` when there is none.
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or("-").to_owned()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `413 too_large`: status and error code, for tables and messages.
    pub fn summary(&self) -> String {
        format!("{} {}", self.status, self.code())
    }
}

/// Sends one request to 127.0.0.1:`port` and reads the whole answer. When the server answers
/// (and closes) before the body is written, that answer is still read.
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/yaml\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    // Written beside the reading, so an answer sent before the body is whole (413) is read
    // before the server's close can reset the connection.
    let mut writer = stream.try_clone()?;
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let writing = std::thread::spawn(move || writer.write_all(&request));
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    let written = writing
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the writer panicked")));
    if raw.is_empty() {
        written?;
        read.map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {REQUEST_TIMEOUT:?}"),
            ),
            _ => e,
        })?;
    }
    parse_reply(&raw)
}

/// The status and body of a raw HTTP/1.1 answer (chunked bodies are joined).
fn parse_reply(raw: &[u8]) -> io::Result<Reply> {
    let text = String::from_utf8_lossy(raw);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("not HTTP: {text:.200}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_owned()
    };
    Ok(Reply { status, body })
}

/// Joins the chunks of a chunked body.
fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// A request signed as one identity at one time, kept to be sent (and replayed) as is.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// Path and query, exactly as signed.
    pub path: String,
    /// The body.
    pub body: Vec<u8>,
    /// The three authentication headers.
    pub headers: api_auth::SignedHeaders,
}

impl SignedRequest {
    /// Signs `method path` with `body` as `identity`, now.
    pub fn new(identity: &Identity, method: &str, path: &str, body: &[u8]) -> Self {
        let headers = api_auth::sign(identity, method, path, r1_protocol::now_ms(), body)
            .unwrap_or_else(|e| panic!("signing {method} {path}: {e}"));
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            body: body.to_vec(),
            headers,
        }
    }

    /// Sends it to the API on 127.0.0.1:`port` (the same bytes every time).
    pub fn send_to(&self, port: u16) -> io::Result<Reply> {
        let headers = [
            (api_auth::ADDRESS_HEADER, self.headers.address.clone()),
            (api_auth::TIMESTAMP_HEADER, self.headers.timestamp.clone()),
            (api_auth::SIGNATURE_HEADER, self.headers.signature.clone()),
        ];
        send(port, &self.method, &self.path, &headers, &self.body)
    }
}

/// Signs `method path` with `body` as `identity` now and sends it to 127.0.0.1:`port`.
pub fn signed(
    port: u16,
    identity: &Identity,
    method: &str,
    path: &str,
    body: &[u8],
) -> io::Result<Reply> {
    SignedRequest::new(identity, method, path, body).send_to(port)
}

/// `POST /v1/apply` of `documents`, signed as `identity`.
pub fn apply(port: u16, identity: &Identity, documents: &str) -> io::Result<Reply> {
    signed(port, identity, "POST", "/v1/apply", documents.as_bytes())
}

/// `GET /v1/<plural>/<namespace>/<name>`, signed as `identity`.
pub fn get(
    port: u16,
    identity: &Identity,
    plural: &str,
    namespace: &str,
    name: &str,
) -> io::Result<Reply> {
    let path = format!("/v1/{plural}/{namespace}/{name}");
    signed(port, identity, "GET", &path, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_plain_and_chunked() {
        let plain = parse_reply(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\n{}")
            .expect("plain");
        assert_eq!((plain.status, plain.body.as_str()), (413, "{}"));
        let chunked = parse_reply(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"err\r\n9\r\nor\":\"x\"}\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!(chunked.code(), "x");
    }
}
