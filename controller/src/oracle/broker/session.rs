//! One client through the gate: its CONNECT, read within a deadline, must carry credentials
//! proving a key; the gate then logs in to rumqttd on the client's behalf and relays, checking
//! every packet the client sends (topic ACL, no retained messages, size limit) and passing
//! rumqttd's answers back untouched.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self, PacketType};
use rumqttc::{ConnAck, Connect, ConnectReturnCode, Login, Publish, Subscribe};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use r1_protocol::Address;
use r1_protocol::broker_acl::{self, Action, Role};
use r1_protocol::broker_auth::CredentialError;
use r1_protocol::mqtt::MAX_PACKET_BYTES;

use super::gate::Gate;

/// Why a client was refused or disconnected.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No CONNECT arrived within the deadline.
    #[error("no CONNECT within {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// A packet a client may not send there: anything but a CONNECT first, a second CONNECT,
    /// or a packet only a broker sends.
    #[error("unexpected {0:?} packet")]
    Unexpected(PacketType),
    /// The bytes are not MQTT 3.1.1.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// A packet larger than the limit.
    #[error("packet of {0} bytes is over the {MAX_PACKET_BYTES} byte limit")]
    Oversized(usize),
    /// A CONNECT without username or password.
    #[error("anonymous CONNECT")]
    Anonymous,
    /// Credentials that prove no key.
    #[error("bad credentials: {0}")]
    Credentials(CredentialError),
    /// A retained PUBLISH (or will).
    #[error("retained message on {0}")]
    Retain(String),
    /// A PUBLISH (or will) where this client may not publish.
    #[error("publish on {0} is not allowed")]
    Publish(String),
    /// A SUBSCRIBE to a filter this client may not use.
    #[error("subscription to {0} is not allowed")]
    Subscribe(String),
    /// The TLS handshake failed.
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    /// The embedded broker cannot be reached.
    #[error("embedded broker unreachable: {0}")]
    Upstream(std::io::Error),
}

impl Refusal {
    /// A short stable name for logs, to search or count refusals by.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ConnectTimeout(_) => "connect_timeout",
            Self::Unexpected(_) => "unexpected_packet",
            Self::Malformed(_) => "malformed",
            Self::Oversized(_) => "oversized",
            Self::Anonymous => "anonymous",
            Self::Credentials(_) => "credentials",
            Self::Retain(_) => "retain",
            Self::Publish(_) => "publish_acl",
            Self::Subscribe(_) => "subscribe_acl",
            Self::Tls(_) => "tls",
            Self::Upstream(_) => "upstream",
        }
    }
}

/// Who a session belongs to, once its CONNECT was read.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The key its credentials prove.
    pub address: Address,
    /// What it is to the broker.
    pub role: Role,
}

/// How a session ended.
pub struct Ended {
    /// The client, when its CONNECT was accepted.
    pub client: Option<Client>,
    /// Why it was cut off, if it was.
    pub refusal: Option<Refusal>,
}

/// Serves one client on `stream` until either side closes or the client breaks a rule.
pub async fn run<S>(stream: S, gate: &Gate) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buffer = BytesMut::with_capacity(4096);
    let connect =
        tokio::time::timeout(gate.connect_deadline, read_packet(&mut reader, &mut buffer)).await;
    let (header, frame) = match connect {
        Err(_) => return refused(None, Refusal::ConnectTimeout(gate.connect_deadline)),
        Ok(Err(refusal)) => return refused(None, refusal),
        Ok(Ok(None)) => {
            return Ended {
                client: None,
                refusal: None,
            };
        }
        Ok(Ok(Some(packet))) => packet,
    };
    let connect = match admit(gate, header, frame) {
        Ok(connect) => connect,
        Err((code, refusal)) => {
            let mut ack = BytesMut::new();
            if ConnAck::new(code, false).write(&mut ack).is_ok() {
                let _ = writer.write_all(&ack).await;
                let _ = writer.shutdown().await;
            }
            return refused(None, refusal);
        }
    };
    let client = connect.0;
    let upstream = match TcpStream::connect(gate.upstream.addr).await {
        Ok(upstream) => upstream,
        Err(error) => return refused(Some(client), Refusal::Upstream(error)),
    };
    let (mut up_reader, mut up_writer) = upstream.into_split();
    let mut login = BytesMut::new();
    if let Err(e) = connect.1.write(&mut login) {
        return refused(Some(client), Refusal::Malformed(e.to_string()));
    }
    if let Err(error) = up_writer.write_all(&login).await {
        return refused(Some(client), Refusal::Upstream(error));
    }
    let downstream = async {
        let _ = tokio::io::copy(&mut up_reader, &mut writer).await;
        let _ = writer.shutdown().await;
    };
    let upstream = async {
        loop {
            let (header, frame) = match read_packet(&mut reader, &mut buffer).await {
                Ok(Some(packet)) => packet,
                Ok(None) => return None,
                Err(refusal) => return Some(refusal),
            };
            if let Err(refusal) = check(gate, &client, header, &frame) {
                return Some(refusal);
            }
            if up_writer.write_all(&frame).await.is_err() {
                return None;
            }
        }
    };
    let refusal = tokio::select! {
        () = downstream => None,
        refusal = upstream => refusal,
    };
    Ended {
        client: Some(client),
        refusal,
    }
}

fn refused(client: Option<Client>, refusal: Refusal) -> Ended {
    Ended {
        client,
        refusal: Some(refusal),
    }
}

/// Reads the next whole packet: its fixed header and all its bytes; `None` at a clean end.
async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
) -> Result<Option<(mqttbytes::FixedHeader, Bytes)>, Refusal> {
    loop {
        match mqttbytes::check(buffer.iter(), MAX_PACKET_BYTES) {
            Ok(header) => {
                let frame = buffer.split_to(header.frame_length()).freeze();
                return Ok(Some((header, frame)));
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
                return Err(Refusal::Oversized(size));
            }
            Err(e) => return Err(Refusal::Malformed(e.to_string())),
        }
        match reader.read_buf(buffer).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// The client a CONNECT proves and the CONNECT to send rumqttd in its name, or the CONNACK
/// code and reason to refuse it with.
fn admit(
    gate: &Gate,
    header: mqttbytes::FixedHeader,
    frame: Bytes,
) -> Result<(Client, Connect), (ConnectReturnCode, Refusal)> {
    let malformed = |e: mqttbytes::Error| {
        (
            ConnectReturnCode::RefusedProtocolVersion,
            Refusal::Malformed(e.to_string()),
        )
    };
    let kind = header.packet_type().map_err(malformed)?;
    if kind != PacketType::Connect {
        return Err((ConnectReturnCode::NotAuthorized, Refusal::Unexpected(kind)));
    }
    let mut connect = Connect::read(header, frame).map_err(malformed)?;
    if connect.protocol != rumqttc::mqttbytes::Protocol::V4 {
        return Err(malformed(mqttbytes::Error::InvalidProtocolLevel(5)));
    }
    let Some(login) = &connect.login else {
        return Err((ConnectReturnCode::NotAuthorized, Refusal::Anonymous));
    };
    let address = r1_protocol::broker_auth::verify(
        &connect.client_id,
        &login.username,
        &login.password,
        r1_protocol::now_ms(),
    )
    .map_err(|e| {
        (
            ConnectReturnCode::BadUserNamePassword,
            Refusal::Credentials(e),
        )
    })?;
    let client = Client {
        address,
        role: gate.role(&address),
    };
    if let Some(will) = &connect.last_will {
        check_publish(gate, &client, &will.topic, will.retain)
            .map_err(|refusal| (ConnectReturnCode::NotAuthorized, refusal))?;
    }
    // Each key has its own client-id space, so nobody can take over another's session.
    connect.client_id = format!("{}:{}", login.username, connect.client_id);
    connect.login = Some(Login::new(
        gate.upstream.username.clone(),
        gate.upstream.password.clone(),
    ));
    Ok((client, connect))
}

/// Whether `client` may send this packet on.
fn check(
    gate: &Gate,
    client: &Client,
    header: mqttbytes::FixedHeader,
    frame: &Bytes,
) -> Result<(), Refusal> {
    let malformed = |e: mqttbytes::Error| Refusal::Malformed(e.to_string());
    match header.packet_type().map_err(malformed)? {
        PacketType::Publish => {
            let publish = Publish::read(header, frame.clone()).map_err(malformed)?;
            check_publish(gate, client, &publish.topic, publish.retain)
        }
        PacketType::Subscribe => {
            let subscribe = Subscribe::read(header, frame.clone()).map_err(malformed)?;
            match subscribe.filters.iter().find(|f| {
                !broker_acl::allowed(
                    &gate.topics,
                    &client.address,
                    client.role,
                    Action::Subscribe,
                    &f.path,
                )
            }) {
                Some(refused) => Err(Refusal::Subscribe(refused.path.clone())),
                None => Ok(()),
            }
        }
        PacketType::PubAck
        | PacketType::PubRec
        | PacketType::PubRel
        | PacketType::PubComp
        | PacketType::Unsubscribe
        | PacketType::PingReq
        | PacketType::Disconnect => Ok(()),
        other => Err(Refusal::Unexpected(other)),
    }
}

fn check_publish(gate: &Gate, client: &Client, topic: &str, retain: bool) -> Result<(), Refusal> {
    if retain {
        return Err(Refusal::Retain(topic.to_owned()));
    }
    if !broker_acl::allowed(
        &gate.topics,
        &client.address,
        client.role,
        Action::Publish,
        topic,
    ) {
        return Err(Refusal::Publish(topic.to_owned()));
    }
    Ok(())
}
