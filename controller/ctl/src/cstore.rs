//! `r1ctl cstore`: the node's CSTORE replica over its local API socket: read and write keys and
//! hashes, list keys, and how much the replica holds. Whoever reaches the socket is the node's
//! operator, so every namespace is open to them, a job's included (only the oracles' system
//! namespace is read-only). Replies are shown as `redis-cli` shows them; an error reply is an
//! error (non-zero exit).

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use r1_protocol::node_api::cstore_reply::Value;
use r1_protocol::node_api::{
    self, CstoreCommand, CstoreReply, CstoreStatRequest, cstore_client::CstoreClient,
};
use tonic::transport::Channel;

use crate::node::{NodeError, rpc, unreachable_socket};

async fn client(socket: &Path) -> Result<CstoreClient<Channel>, NodeError> {
    node_api::connect_cstore(socket)
        .await
        .map_err(|e| unreachable_socket(socket, e))
}

/// Runs one Redis command (`args`: its name, then its arguments) in `namespace` and prints the
/// reply; an error reply is returned as [`NodeError::Reply`].
pub async fn command(
    socket: &Path,
    namespace: &str,
    args: &[impl AsRef<[u8]>],
    out: &mut impl Write,
) -> Result<(), NodeError> {
    let reply = client(socket)
        .await?
        .command(CstoreCommand {
            namespace: namespace.into(),
            args: args.iter().map(|a| a.as_ref().to_vec()).collect(),
        })
        .await
        .map_err(rpc)?
        .into_inner();
    if let Some(Value::Error(text)) = reply.value {
        return Err(NodeError::Reply(text));
    }
    writeln!(out, "{}", render(&reply))?;
    Ok(())
}

/// Prints the replica's figures: entries, writes not replicated yet, and entries per namespace.
pub async fn stat(socket: &Path, out: &mut impl Write) -> Result<(), NodeError> {
    let stat = client(socket)
        .await?
        .stat(CstoreStatRequest {})
        .await
        .map_err(rpc)?
        .into_inner();
    writeln!(out, "entries:    {}", stat.entries)?;
    writeln!(out, "pending:    {}", stat.pending)?;
    writeln!(out, "namespaces: {}", stat.namespaces_total)?;
    if stat.namespaces.is_empty() {
        return Ok(());
    }
    let width = stat
        .namespaces
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or_default()
        .max("NAMESPACE".len());
    writeln!(out)?;
    writeln!(out, "{:<width$}  ENTRIES", "NAMESPACE")?;
    for namespace in &stat.namespaces {
        writeln!(out, "{:<width$}  {}", namespace.name, namespace.entries)?;
    }
    let listed = stat.namespaces.len() as u64;
    if stat.namespaces_total > listed {
        writeln!(
            out,
            "(the first {listed} of {} namespaces)",
            stat.namespaces_total
        )?;
    }
    Ok(())
}

/// A reply as `redis-cli` shows it on a terminal: `OK`, `"text"`, `(nil)`, `(integer) 1`,
/// `(error) ERR ...`, numbered (and nested) lists, `(empty array)`.
pub fn render(reply: &CstoreReply) -> String {
    let mut text = String::new();
    render_into(reply, 0, &mut text);
    text
}

/// Appends `reply` to `text`; the lines after the first of a list are indented by `indent`.
fn render_into(reply: &CstoreReply, indent: usize, text: &mut String) {
    match &reply.value {
        None => text.push_str("(unknown reply)"),
        Some(Value::Simple(simple)) => text.push_str(simple),
        Some(Value::Error(error)) => {
            text.push_str("(error) ");
            text.push_str(error);
        }
        Some(Value::Integer(n)) => {
            let _ = write!(text, "(integer) {n}");
        }
        Some(Value::Bulk(bytes)) => quote(bytes, text),
        Some(Value::Nil(_)) => text.push_str("(nil)"),
        Some(Value::Array(array)) if array.items.is_empty() => text.push_str("(empty array)"),
        Some(Value::Array(array)) => {
            let width = array.items.len().to_string().len();
            for (i, item) in array.items.iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                    text.push_str(&" ".repeat(indent));
                }
                let label = format!("{:>width$}) ", i + 1);
                text.push_str(&label);
                render_into(item, indent + label.len(), text);
            }
        }
    }
}

/// `bytes` in double quotes with `redis-cli`'s escapes: `\\`, `\"`, `\n`, `\r`, `\t`, `\a`,
/// `\b`, and `\xHH` for any other byte that is not printable ASCII.
fn quote(bytes: &[u8], text: &mut String) {
    text.push('"');
    for &b in bytes {
        match b {
            b'\\' => text.push_str("\\\\"),
            b'"' => text.push_str("\\\""),
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            0x07 => text.push_str("\\a"),
            0x08 => text.push_str("\\b"),
            b' '..=b'~' => text.push(char::from(b)),
            _ => {
                let _ = write!(text, "\\x{b:02x}");
            }
        }
    }
    text.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_protocol::node_api::CstoreArray;

    fn reply(value: Value) -> CstoreReply {
        CstoreReply { value: Some(value) }
    }

    fn array(items: Vec<CstoreReply>) -> CstoreReply {
        reply(Value::Array(CstoreArray { items }))
    }

    fn bulk(text: &str) -> CstoreReply {
        reply(Value::Bulk(text.as_bytes().to_vec()))
    }

    #[test]
    fn scalars_render_as_redis_cli_shows_them() {
        assert_eq!(render(&reply(Value::Simple("OK".into()))), "OK");
        assert_eq!(render(&bulk("hello")), "\"hello\"");
        assert_eq!(render(&bulk("")), "\"\"");
        assert_eq!(render(&reply(Value::Nil(true))), "(nil)");
        assert_eq!(render(&reply(Value::Integer(-2))), "(integer) -2");
        assert_eq!(
            render(&reply(Value::Error("ERR syntax error".into()))),
            "(error) ERR syntax error"
        );
        assert_eq!(render(&CstoreReply { value: None }), "(unknown reply)");
    }

    #[test]
    fn bulk_bytes_are_escaped() {
        assert_eq!(
            render(&reply(Value::Bulk(
                b"a \"q\" \\ \n\r\t\x07\x08\x00\xff~".to_vec()
            ))),
            r#""a \"q\" \\ \n\r\t\a\b\x00\xff~""#
        );
        assert_eq!(render(&bulk("é")), r#""\xc3\xa9""#);
    }

    #[test]
    fn lists_are_numbered_aligned_and_nested() {
        assert_eq!(render(&array(Vec::new())), "(empty array)");
        assert_eq!(
            render(&array(vec![
                bulk("f1"),
                bulk("v1"),
                reply(Value::Nil(true))
            ])),
            "1) \"f1\"\n2) \"v1\"\n3) (nil)"
        );
        let ten: Vec<CstoreReply> = (1..=10).map(|n| bulk(&n.to_string())).collect();
        let text = render(&array(ten));
        assert!(text.starts_with(" 1) \"1\"\n 2) \"2\"\n"), "{text}");
        assert!(text.ends_with("\n10) \"10\""), "{text}");
        assert_eq!(
            render(&array(vec![
                array(vec![bulk("a"), array(vec![bulk("b"), bulk("c")])]),
                reply(Value::Integer(3)),
                array(Vec::new()),
            ])),
            "1) 1) \"a\"\n   2) 1) \"b\"\n      2) \"c\"\n2) (integer) 3\n3) (empty array)"
        );
    }
}
