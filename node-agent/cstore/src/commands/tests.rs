use std::sync::LazyLock;

use r1_protocol::Identity;

use super::*;
use crate::clock::Stamp;
use crate::entry::Entry;

static NODE: LazyLock<Identity> = LazyLock::new(Identity::generate);

/// A namespace's view of one replica, applying each command's writes as a node would.
struct Db {
    replica: Replica,
    namespace: &'static str,
    now_ms: u64,
    tick: u64,
}

impl Db {
    fn new(namespace: &'static str) -> Self {
        Self {
            replica: Replica::new(),
            namespace,
            now_ms: 1_000_000,
            tick: 0,
        }
    }

    fn run(&mut self, line: &str) -> Reply {
        let mut args: Vec<Vec<u8>> = line.split(' ').map(|a| a.as_bytes().to_vec()).collect();
        let outcome = Session {
            replica: &self.replica,
            namespace: self.namespace,
            now_ms: self.now_ms,
        }
        .run(&mut args);
        for write in outcome.writes {
            self.tick += 1;
            let stamp = Stamp {
                wall_ms: self.now_ms,
                logical: self.tick as u32,
            };
            let entry =
                Entry::signed(write.key, write.value, write.expires_ms, stamp, &NODE).unwrap();
            self.replica.apply(entry);
        }
        outcome.reply
    }
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

#[test]
fn strings_set_get_delete_and_count_as_redis_does() {
    let mut db = Db::new("app");
    assert_eq!(db.run("PING"), Reply::Simple("PONG"));
    assert_eq!(db.run("GET k"), Reply::Bulk(None));
    assert_eq!(db.run("SET k v1"), Reply::Simple("OK"));
    assert_eq!(db.run("SET k v2"), Reply::Simple("OK"));
    assert_eq!(db.run("GET k"), bulk("v2"));
    assert_eq!(db.run("MSET a 1 b 2"), Reply::Simple("OK"));
    assert_eq!(
        db.run("MGET a nope b"),
        Reply::Array(vec![bulk("1"), Reply::Bulk(None), bulk("2")])
    );
    assert_eq!(db.run("EXISTS a b nope"), Reply::Integer(2));
    assert_eq!(db.run("DEL a nope"), Reply::Integer(1));
    assert_eq!(db.run("GET a"), Reply::Bulk(None));
    assert_eq!(db.run("DBSIZE"), Reply::Integer(2));
}

#[test]
fn hashes_and_the_wrong_type() {
    let mut db = Db::new("app");
    assert_eq!(db.run("HSET h f1 a f2 b"), Reply::Integer(2));
    assert_eq!(db.run("HSET h f1 c f3 d"), Reply::Integer(1));
    assert_eq!(db.run("HGET h f1"), bulk("c"));
    assert_eq!(
        db.run("HGETALL h"),
        Reply::Array(vec![
            bulk("f1"),
            bulk("c"),
            bulk("f2"),
            bulk("b"),
            bulk("f3"),
            bulk("d")
        ])
    );
    assert_eq!(
        db.run("HKEYS h"),
        Reply::Array(vec![bulk("f1"), bulk("f2"), bulk("f3")])
    );
    assert_eq!(db.run("HDEL h f2 f9"), Reply::Integer(1));
    assert_eq!(db.run("HLEN h"), Reply::Integer(2));
    let wrong = Reply::Error(WRONGTYPE.into());
    assert_eq!(db.run("GET h"), wrong);
    db.run("SET s v");
    assert_eq!(db.run("HSET s f v"), wrong);
    assert_eq!(db.run("HGET s f"), wrong);
    assert_eq!(
        db.run("SET h plain"),
        Reply::Simple("OK"),
        "SET replaces a hash"
    );
    assert_eq!(db.run("GET h"), bulk("plain"));
    assert_eq!(db.run("HLEN h"), Reply::Error(WRONGTYPE.into()));
    assert_eq!(db.run("DEL h s"), Reply::Integer(2));
    assert_eq!(db.run("EXISTS h s"), Reply::Integer(0));
}

#[test]
fn expiry_and_ttl() {
    let mut db = Db::new("app");
    assert_eq!(db.run("TTL nope"), Reply::Integer(-2));
    db.run("SET k v");
    assert_eq!(db.run("TTL k"), Reply::Integer(-1));
    assert_eq!(db.run("EXPIRE k 10"), Reply::Integer(1));
    assert_eq!(db.run("TTL k"), Reply::Integer(10));
    db.run("SET t v PX 1500");
    assert_eq!(db.run("PTTL t"), Reply::Integer(1500));
    db.now_ms += 10_000;
    assert_eq!(db.run("GET k"), Reply::Bulk(None), "expired");
    assert_eq!(db.run("TTL k"), Reply::Integer(-2));
    assert_eq!(db.run("EXPIRE nope 10"), Reply::Integer(0));
    assert_eq!(
        db.run("SET k v EX 0"),
        Reply::err("invalid expire time in 'set' command")
    );
    assert_eq!(db.run("SET k v NX"), Reply::err("syntax error"));
}

#[test]
fn keys_and_scan_see_only_the_callers_namespace() {
    let mut mine = Db::new("app");
    for key in ["user:1", "user:2", "order:1"] {
        mine.run(&format!("SET {key} x"));
    }
    mine.run("HSET user:3 name x");
    let mut theirs = Db::new("other");
    theirs.replica = mine.replica.clone();
    theirs.run("SET user:9 x");
    assert_eq!(
        mine.run("KEYS user:*"),
        Reply::Array(vec![bulk("user:1"), bulk("user:2"), bulk("user:3")])
    );
    assert_eq!(theirs.run("KEYS *"), Reply::Array(vec![bulk("user:9")]));
    assert_eq!(theirs.run("GET user:1"), Reply::Bulk(None));
    assert_eq!(
        mine.run("SCAN 0 MATCH order:?"),
        Reply::Array(vec![bulk("0"), Reply::Array(vec![bulk("order:1")])])
    );
}

#[test]
fn wrong_arity_and_unknown_commands_are_redis_errors() {
    let mut db = Db::new("app");
    assert_eq!(
        db.run("GET"),
        Reply::err("wrong number of arguments for 'get' command")
    );
    assert_eq!(
        db.run("HSET h f"),
        Reply::err("wrong number of arguments for 'hset' command")
    );
    assert_eq!(
        db.run("FLUSHALL now"),
        Reply::err("unknown command 'FLUSHALL', with args beginning with: 'now'")
    );
}

#[test]
fn globs_match_as_redis_matches_and_stay_linear() {
    for (pattern, text, expected) in [
        ("*", "anything", true),
        ("user:*", "user:1", true),
        ("user:?", "user:12", false),
        ("*:1", "order:1", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "axb", false),
        ("", "", true),
        ("a*b*c", "abxbxc", true),
        ("a*b*c", "abxbx", false),
    ] {
        assert_eq!(
            glob(pattern.as_bytes(), text.as_bytes()),
            expected,
            "{pattern} {text}"
        );
    }
    let text = vec![b'a'; 4000];
    let pattern = b"*a*a*a*a*a*a*a*a*a*a*b";
    assert!(!glob(pattern, &text), "a pathological pattern ends quickly");
}
