//! The CSTORE half of the local gRPC API (`r1.node.v1.Cstore`), which `r1ctl cstore` speaks:
//! one Redis command at a time in a namespace, and the replica's figures. Whoever reaches the
//! node's socket is the node's operator, so a command may run in any namespace, a job's
//! included; the engine runs it with the operator's rights (it refuses writes to the oracles'
//! system namespace with `NOPERM`, an error reply like any other).

use std::collections::BTreeMap;
use std::sync::Arc;

use r1_cstore::engine::{Engine, EngineError};
use r1_cstore::entry::{MAX_KEY, MAX_VALUE};
use r1_cstore::resp::Reply;
use r1_cstore::{Entry, Key};
use r1_protocol::node_api::cstore_reply::Value;
use r1_protocol::node_api::cstore_server::Cstore;
use r1_protocol::node_api::{
    CstoreArray, CstoreCommand, CstoreNamespace, CstoreReply, CstoreStat, CstoreStatRequest,
};
use r1_protocol::now_ms;
use tonic::{Request, Response, Status};

/// Most arguments a command may carry, its name included: far more than the commands
/// `r1ctl cstore` sends, few enough to bound a request.
pub const MAX_ARGS: usize = 64;
/// Most bytes a command's arguments may hold in all: the largest value the engine stores, with
/// a longest key and field and the command's name.
pub const MAX_ARG_BYTES: usize = MAX_VALUE + 2 * MAX_KEY + 64;
/// Most namespaces `Stat` lists, so that its answer stays small whatever the replica holds.
pub const MAX_LISTED_NAMESPACES: usize = 1000;

/// The CSTORE gRPC service over the node's engine.
pub struct CstoreApi(pub Arc<Engine>);

/// Refuses a command before it reaches the engine: no namespace or one the engine would not
/// store under (checked here so that reads are refused as writes are), no command, or one over
/// the bounds.
fn check(command: &CstoreCommand) -> Result<(), Status> {
    if command.namespace.is_empty() {
        return Err(Status::invalid_argument("a namespace is required"));
    }
    Key::new(&command.namespace, Vec::new(), None)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    if command.args.is_empty() {
        return Err(Status::invalid_argument(
            "no command: give its name and arguments",
        ));
    }
    if command.args.len() > MAX_ARGS {
        return Err(Status::invalid_argument(format!(
            "{} arguments; at most {MAX_ARGS}",
            command.args.len()
        )));
    }
    let bytes: usize = command.args.iter().map(Vec::len).sum();
    if bytes > MAX_ARG_BYTES {
        return Err(Status::invalid_argument(format!(
            "{bytes} bytes of arguments; at most {MAX_ARG_BYTES}"
        )));
    }
    Ok(())
}

/// The gRPC status of a command the engine could not run: an entry it refused is the caller's
/// mistake, the rest (the database, the clock) is the node's.
fn status(error: EngineError) -> Status {
    let message = error.to_string();
    match error {
        EngineError::Entry(_) => Status::invalid_argument(message),
        _ => Status::internal(message),
    }
}

/// The wire form of an engine reply.
pub fn reply(answer: Reply) -> CstoreReply {
    let value = match answer {
        Reply::Simple(text) => Value::Simple(text.to_owned()),
        Reply::Error(text) => Value::Error(text),
        Reply::Integer(n) => Value::Integer(n),
        Reply::Bulk(Some(bytes)) => Value::Bulk(bytes),
        Reply::Bulk(None) => Value::Nil(true),
        Reply::Array(items) => Value::Array(CstoreArray {
            items: items.into_iter().map(reply).collect(),
        }),
    };
    CstoreReply { value: Some(value) }
}

/// The replica's figures: entries held, and entries per namespace (the first
/// [`MAX_LISTED_NAMESPACES`] by name, with how many namespaces there are in all).
fn stat<'a>(entries: impl Iterator<Item = &'a Entry>, pending: usize) -> CstoreStat {
    let mut total = 0u64;
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for entry in entries {
        total += 1;
        *counts.entry(entry.key.namespace.as_str()).or_default() += 1;
    }
    CstoreStat {
        entries: total,
        pending: pending as u64,
        namespaces_total: counts.len() as u64,
        namespaces: counts
            .into_iter()
            .take(MAX_LISTED_NAMESPACES)
            .map(|(name, entries)| CstoreNamespace {
                name: name.to_owned(),
                entries,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl Cstore for CstoreApi {
    async fn command(
        &self,
        request: Request<CstoreCommand>,
    ) -> Result<Response<CstoreReply>, Status> {
        let command = request.into_inner();
        check(&command)?;
        let engine = self.0.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let CstoreCommand { namespace, args } = command;
            let (answer, written) = engine.execute(&namespace, &args, now_ms())?;
            if !written.is_empty() {
                let name = args
                    .first()
                    .map(|a| String::from_utf8_lossy(a).into_owned());
                tracing::info!(
                    %namespace,
                    command = name.unwrap_or_default(),
                    writes = written.len(),
                    "operator wrote to CSTORE"
                );
            }
            Ok::<_, EngineError>(answer)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)?;
        Ok(Response::new(reply(answer)))
    }

    async fn stat(&self, _: Request<CstoreStatRequest>) -> Result<Response<CstoreStat>, Status> {
        let engine = self.0.clone();
        let figures = tokio::task::spawn_blocking(move || {
            let pending = engine.pending();
            engine.read(|replica| stat(replica.entries(), pending))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(figures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_protocol::Identity;

    fn command(namespace: &str, args: &[&str]) -> CstoreCommand {
        CstoreCommand {
            namespace: namespace.into(),
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        }
    }

    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let engine = Engine::open(dir.path(), Identity::generate(), 5_000, Default::default())
            .expect("engine");
        (dir, engine)
    }

    fn refusal(command: &CstoreCommand) -> String {
        let status = check(command).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        status.message().to_owned()
    }

    #[test]
    fn replies_keep_their_shape_on_the_wire() {
        let wire = reply(Reply::Array(vec![
            Reply::Bulk(Some(b"a".to_vec())),
            Reply::Bulk(None),
            Reply::Array(vec![Reply::Integer(-3), Reply::Simple("OK")]),
            Reply::Error("WRONGTYPE no".into()),
        ]));
        let item = |value| CstoreReply { value: Some(value) };
        assert_eq!(
            wire,
            item(Value::Array(CstoreArray {
                items: vec![
                    item(Value::Bulk(b"a".to_vec())),
                    item(Value::Nil(true)),
                    item(Value::Array(CstoreArray {
                        items: vec![item(Value::Integer(-3)), item(Value::Simple("OK".into()))],
                    })),
                    item(Value::Error("WRONGTYPE no".into())),
                ],
            }))
        );
        assert_eq!(
            reply(Reply::Array(Vec::new())),
            item(Value::Array(CstoreArray::default()))
        );
    }

    #[test]
    fn commands_out_of_bounds_are_refused_with_the_reason() {
        assert!(check(&command("job-7", &["GET", "k"])).is_ok());
        assert!(refusal(&command("", &["GET", "k"])).contains("namespace is required"));
        assert!(refusal(&command("Bad NS", &["GET", "k"])).contains("\"Bad NS\""));
        assert!(refusal(&command(&"a".repeat(129), &["GET", "k"])).contains("1 to 128"));
        assert!(refusal(&command("ops", &[])).contains("no command"));
        let many = vec!["k"; MAX_ARGS + 1];
        assert!(refusal(&command("ops", &many)).contains("at most 64"));
        assert!(check(&command("ops", &vec!["k"; MAX_ARGS])).is_ok());
        let value = "v".repeat(MAX_VALUE);
        assert!(check(&command("ops", &["SET", &"k".repeat(MAX_KEY), &value])).is_ok());
        let huge = "v".repeat(MAX_ARG_BYTES);
        assert!(refusal(&command("ops", &["SET", "k", &huge])).contains("bytes of arguments"));
    }

    #[test]
    fn stat_counts_entries_per_namespace_in_order_and_bounded() {
        let (_dir, engine) = engine();
        let args = |text: &str| -> Vec<Vec<u8>> {
            text.split(' ').map(|a| a.as_bytes().to_vec()).collect()
        };
        engine
            .execute("ops", &args("SET a 1"), 1_000)
            .expect("executed");
        engine
            .execute("job-2", &args("HSET h f1 1 f2 2"), 1_000)
            .expect("executed");
        engine
            .execute("job-2", &args("SET b 1"), 1_000)
            .expect("executed");
        let figures = engine.read(|replica| stat(replica.entries(), 3));
        assert_eq!((figures.entries, figures.pending), (4, 3));
        assert_eq!(figures.namespaces_total, 2);
        let listed: Vec<(&str, u64)> = figures
            .namespaces
            .iter()
            .map(|n| (n.name.as_str(), n.entries))
            .collect();
        assert_eq!(listed, [("job-2", 3), ("ops", 1)]);

        for n in 0..=MAX_LISTED_NAMESPACES {
            engine
                .execute(&format!("n{n:04}"), &args("SET k v"), 1_000)
                .expect("executed");
        }
        let figures = engine.read(|replica| stat(replica.entries(), 0));
        assert_eq!(figures.namespaces_total, MAX_LISTED_NAMESPACES as u64 + 3);
        assert_eq!(figures.namespaces.len(), MAX_LISTED_NAMESPACES);
        assert_eq!(figures.namespaces[0].name, "job-2");
    }

    #[tokio::test]
    async fn an_error_reply_is_a_reply_and_a_bad_namespace_a_refusal() {
        let (_dir, engine) = engine();
        let api = CstoreApi(Arc::new(engine));
        let run = |c: CstoreCommand| api.command(Request::new(c));
        let answer =
            |r: Result<Response<CstoreReply>, Status>| r.expect("answered").into_inner().value;
        assert_eq!(
            answer(run(command("ops", &["SET", "k", "v"])).await),
            Some(Value::Simple("OK".into()))
        );
        assert_eq!(
            answer(run(command("ops", &["GET", "k"])).await),
            Some(Value::Bulk(b"v".to_vec()))
        );
        assert_eq!(
            answer(run(command("job-1", &["GET", "k"])).await),
            Some(Value::Nil(true))
        );
        assert!(matches!(
            answer(run(command("ops", &["HGET", "k", "f"])).await),
            Some(Value::Error(e)) if e.starts_with("WRONGTYPE")
        ));
        let refused = run(command("NOPE", &["SET", "k", "v"]))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        let figures = api
            .stat(Request::new(CstoreStatRequest {}))
            .await
            .expect("stat");
        assert_eq!(figures.into_inner().namespaces_total, 1);
    }
}
