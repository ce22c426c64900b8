//! The request-response byte codec: one stream per request, length-prefixed frames, sizes
//! checked against the limits before anything is allocated.
//!
//! ```text
//! request:  u8 protocol length | protocol (ASCII) | u32 BE length | payload
//! response: u8 status          | u32 BE length    | payload (status 0 only)
//! ```
//!
//! The protocol inside the request names the application protocol (`r1fs`, `cstore`, …): the
//! swarm negotiates a single libp2p protocol (`{prefix}req/1`) and the application protocols
//! ride in the frame, so one behaviour serves every storage feature.

use std::io;

use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response::Codec;

/// Longest application protocol name, in bytes.
pub const MAX_PROTOCOL_LEN: usize = 64;

/// A request as it travels: the application protocol and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRequest {
    /// Application protocol (`r1fs`, `cstore`, …).
    pub protocol: String,
    /// Payload.
    pub bytes: Vec<u8>,
}

/// A response as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireResponse {
    /// The answer.
    Ok(Vec<u8>),
    /// The answer was this many bytes, over the responder's limit, and was not sent.
    TooLarge(u64),
    /// The responder does not serve the application protocol.
    UnknownProtocol,
    /// The responder's application dropped the request without answering.
    NoAnswer,
}

/// A frame over the reader's limit; carried inside the [`io::Error`] the codec returns, so the
/// requester can say exactly what was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} of {size} bytes is over the {limit}-byte limit")]
pub struct FrameTooLarge {
    /// `request` or `response`.
    pub what: &'static str,
    /// Announced size.
    pub size: u64,
    /// The limit.
    pub limit: u64,
}

impl FrameTooLarge {
    /// The `FrameTooLarge` inside `error`, when that is what it carries.
    pub fn within(error: &io::Error) -> Option<Self> {
        error.get_ref()?.downcast_ref::<Self>().copied()
    }
}

/// The codec, with the limits of this node.
#[derive(Debug, Clone, Copy)]
pub struct ByteCodec {
    /// Largest request payload read or written.
    pub max_request_bytes: usize,
    /// Largest response payload read or written.
    pub max_response_bytes: usize,
}

const STATUS_OK: u8 = 0;
const STATUS_TOO_LARGE: u8 = 1;
const STATUS_UNKNOWN_PROTOCOL: u8 = 2;
const STATUS_NO_ANSWER: u8 = 3;

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

async fn read_u32<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<u32> {
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await?;
    Ok(u32::from_be_bytes(buf))
}

async fn read_u8<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<u8> {
    let mut buf = [0u8; 1];
    io.read_exact(&mut buf).await?;
    Ok(buf[0])
}

/// Reads a length-prefixed payload of at most `limit` bytes.
async fn read_payload<T: AsyncRead + Unpin>(
    io: &mut T,
    what: &'static str,
    limit: usize,
) -> io::Result<Vec<u8>> {
    let size = read_u32(io).await?;
    if size as usize > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            FrameTooLarge {
                what,
                size: u64::from(size),
                limit: limit as u64,
            },
        ));
    }
    let mut payload = vec![0u8; size as usize];
    io.read_exact(&mut payload).await?;
    Ok(payload)
}

fn length(what: &'static str, bytes: &[u8], limit: usize) -> io::Result<[u8; 4]> {
    match u32::try_from(bytes.len()) {
        Ok(n) if bytes.len() <= limit => Ok(n.to_be_bytes()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            FrameTooLarge {
                what,
                size: bytes.len() as u64,
                limit: limit as u64,
            },
        )),
    }
}

impl Codec for ByteCodec {
    type Protocol = StreamProtocol;
    type Request = WireRequest;
    type Response = WireResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<WireRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let len = read_u8(io).await? as usize;
        if len == 0 || len > MAX_PROTOCOL_LEN {
            return Err(invalid("application protocol name of bad length"));
        }
        let mut name = vec![0u8; len];
        io.read_exact(&mut name).await?;
        let protocol = String::from_utf8(name)
            .ok()
            .filter(|p| p.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| invalid("application protocol name is not printable ASCII"))?;
        let bytes = read_payload(io, "request", self.max_request_bytes).await?;
        Ok(WireRequest { protocol, bytes })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<WireResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_u8(io).await? {
            STATUS_OK => Ok(WireResponse::Ok(
                read_payload(io, "response", self.max_response_bytes).await?,
            )),
            STATUS_TOO_LARGE => Ok(WireResponse::TooLarge(u64::from(read_u32(io).await?))),
            STATUS_UNKNOWN_PROTOCOL => Ok(WireResponse::UnknownProtocol),
            STATUS_NO_ANSWER => Ok(WireResponse::NoAnswer),
            _ => Err(invalid("unknown response status")),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: WireRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let name = request.protocol.as_bytes();
        let name_len = u8::try_from(name.len())
            .ok()
            .filter(|n| *n as usize <= MAX_PROTOCOL_LEN && *n > 0)
            .ok_or_else(|| invalid("application protocol name of bad length"))?;
        let len = length("request", &request.bytes, self.max_request_bytes)?;
        io.write_all(&[name_len]).await?;
        io.write_all(name).await?;
        io.write_all(&len).await?;
        io.write_all(&request.bytes).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: WireResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match response {
            WireResponse::Ok(bytes) => {
                let len = length("response", &bytes, self.max_response_bytes)?;
                io.write_all(&[STATUS_OK]).await?;
                io.write_all(&len).await?;
                io.write_all(&bytes).await?;
            }
            WireResponse::TooLarge(size) => {
                let size = u32::try_from(size).unwrap_or(u32::MAX);
                io.write_all(&[STATUS_TOO_LARGE]).await?;
                io.write_all(&size.to_be_bytes()).await?;
            }
            WireResponse::UnknownProtocol => io.write_all(&[STATUS_UNKNOWN_PROTOCOL]).await?,
            WireResponse::NoAnswer => io.write_all(&[STATUS_NO_ANSWER]).await?,
        }
        io.close().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::Cursor;

    use super::*;

    const PROTOCOL: StreamProtocol = StreamProtocol::new("/r1/test/req/1");

    fn codec() -> ByteCodec {
        ByteCodec {
            max_request_bytes: 16,
            max_response_bytes: 32,
        }
    }

    #[test]
    fn frames_round_trip() {
        block_on(async {
            let request = WireRequest {
                protocol: "r1fs".into(),
                bytes: b"get abc".to_vec(),
            };
            let mut buf = Cursor::new(Vec::new());
            codec()
                .write_request(&PROTOCOL, &mut buf, request.clone())
                .await
                .unwrap();
            let mut read = Cursor::new(buf.into_inner());
            let back = codec().read_request(&PROTOCOL, &mut read).await.unwrap();
            assert_eq!(back, request);

            for response in [
                WireResponse::Ok(vec![7; 32]),
                WireResponse::TooLarge(1 << 20),
                WireResponse::UnknownProtocol,
                WireResponse::NoAnswer,
            ] {
                let mut buf = Cursor::new(Vec::new());
                codec()
                    .write_response(&PROTOCOL, &mut buf, response.clone())
                    .await
                    .unwrap();
                let mut read = Cursor::new(buf.into_inner());
                let back = codec().read_response(&PROTOCOL, &mut read).await.unwrap();
                assert_eq!(back, response);
            }
        });
    }

    #[test]
    fn oversize_frames_are_refused_before_reading_them() {
        block_on(async {
            let big = ByteCodec {
                max_request_bytes: 1 << 20,
                max_response_bytes: 1 << 20,
            };
            let mut buf = Cursor::new(Vec::new());
            big.clone()
                .write_response(&PROTOCOL, &mut buf, WireResponse::Ok(vec![0; 33]))
                .await
                .unwrap();
            let mut read = Cursor::new(buf.into_inner());
            let error = codec()
                .read_response(&PROTOCOL, &mut read)
                .await
                .unwrap_err();
            assert_eq!(
                FrameTooLarge::within(&error),
                Some(FrameTooLarge {
                    what: "response",
                    size: 33,
                    limit: 32
                })
            );

            let request = WireRequest {
                protocol: "r1fs".into(),
                bytes: vec![0; 17],
            };
            let mut buf = Cursor::new(Vec::new());
            let error = codec()
                .write_request(&PROTOCOL, &mut buf, request.clone())
                .await
                .unwrap_err();
            assert!(FrameTooLarge::within(&error).is_some());
            let mut buf = Cursor::new(Vec::new());
            big.clone()
                .write_request(&PROTOCOL, &mut buf, request)
                .await
                .unwrap();
            let mut read = Cursor::new(buf.into_inner());
            let error = codec()
                .read_request(&PROTOCOL, &mut read)
                .await
                .unwrap_err();
            assert_eq!(FrameTooLarge::within(&error).map(|e| e.size), Some(17));
        });
    }

    #[test]
    fn bad_protocol_names_are_refused() {
        block_on(async {
            for name in [
                String::new(),
                "a b".into(),
                "x".repeat(MAX_PROTOCOL_LEN + 1),
            ] {
                let mut frame = vec![name.len() as u8];
                frame.extend_from_slice(name.as_bytes());
                frame.extend_from_slice(&0u32.to_be_bytes());
                let mut read = Cursor::new(frame);
                assert!(codec().read_request(&PROTOCOL, &mut read).await.is_err());
            }
        });
    }
}
