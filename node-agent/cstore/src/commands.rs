//! Redis commands over a replica, as pure decisions: a command reads the replica and returns
//! its reply and the writes it makes, which the caller stamps, signs, applies, stores and
//! replicates. Every command works inside one namespace (the caller's), so keys of two
//! projects never meet. Replies and errors are Redis's own.

use crate::entry::{Key, MAX_KEY, MAX_VALUE};
use crate::replica::Replica;
use crate::resp::Reply;

/// A write a command makes: the key, the value (`None` deletes) and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Where.
    pub key: Key,
    /// What; `None` deletes.
    pub value: Option<Vec<u8>>,
    /// When it expires, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The reply to send.
    pub reply: Reply,
    /// The writes to make, in order, before the reply is sent.
    pub writes: Vec<Write>,
}

impl Outcome {
    fn reply(reply: Reply) -> Self {
        Self {
            reply,
            writes: Vec::new(),
        }
    }
}

/// The commands this server answers (upper case), for `COMMAND`-less clients and the docs.
pub const COMMANDS: &[&str] = &[
    "PING",
    "ECHO",
    "GET",
    "SET",
    "DEL",
    "EXISTS",
    "MGET",
    "MSET",
    "HSET",
    "HGET",
    "HDEL",
    "HGETALL",
    "HKEYS",
    "HLEN",
    "KEYS",
    "SCAN",
    "EXPIRE",
    "PEXPIRE",
    "TTL",
    "PTTL",
    "DBSIZE",
    "CONFIG",
    "SELECT",
    "NAMESPACE",
    "WAIT",
];

/// Where the command named `name` (any case) is in [`COMMANDS`]; `None` for one this server
/// does not know.
pub fn command_index(name: &[u8]) -> Option<usize> {
    COMMANDS
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// One command in one namespace at one instant.
pub struct Session<'a> {
    /// The replica read.
    pub replica: &'a Replica,
    /// The caller's namespace.
    pub namespace: &'a str,
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
}

enum Kind {
    Missing,
    String,
    Hash,
}

impl Session<'_> {
    fn key(&self, key: &[u8], field: Option<&[u8]>) -> Result<Key, Reply> {
        if key.len() > MAX_KEY || field.is_some_and(|f| f.len() > MAX_KEY) {
            return Err(Reply::err(format!("key or field over {MAX_KEY} bytes")));
        }
        Ok(Key {
            namespace: self.namespace.to_owned(),
            key: key.to_vec(),
            field: field.map(<[u8]>::to_vec),
        })
    }

    fn kind(&self, key: &[u8]) -> Kind {
        let plain = Key {
            namespace: self.namespace.to_owned(),
            key: key.to_vec(),
            field: None,
        };
        if self.replica.get(&plain, self.now_ms).is_some() {
            Kind::String
        } else if self.hash(key).is_empty() {
            Kind::Missing
        } else {
            Kind::Hash
        }
    }

    fn hash(&self, key: &[u8]) -> Vec<(&[u8], &[u8])> {
        self.replica.hash(self.namespace, key, self.now_ms)
    }

    fn string(&self, key: &[u8]) -> Result<Option<&[u8]>, Reply> {
        // One lookup when the key holds a string (the common case), as `kind` would decide.
        if let Some(value) = self.replica.get(&self.key(key, None)?, self.now_ms) {
            return Ok(Some(value));
        }
        if self.hash(key).is_empty() {
            Ok(None)
        } else {
            Err(Reply::Error(WRONGTYPE.into()))
        }
    }

    /// The writes that delete `key` whatever it holds, and whether it held anything.
    fn delete(&self, key: &[u8]) -> Result<(bool, Vec<Write>), Reply> {
        let mut writes = Vec::new();
        let held = match self.kind(key) {
            Kind::Missing => false,
            Kind::String => {
                writes.push(self.write(key, None, None, None)?);
                true
            }
            Kind::Hash => {
                for (field, _) in self.hash(key) {
                    writes.push(self.write(key, Some(field), None, None)?);
                }
                true
            }
        };
        Ok((held, writes))
    }

    fn write(
        &self,
        key: &[u8],
        field: Option<&[u8]>,
        value: Option<&[u8]>,
        expires_ms: Option<u64>,
    ) -> Result<Write, Reply> {
        if value.is_some_and(|v| v.len() > MAX_VALUE) {
            return Err(Reply::err(format!("value over {MAX_VALUE} bytes")));
        }
        Ok(Write {
            key: self.key(key, field)?,
            value: value.map(<[u8]>::to_vec),
            expires_ms,
        })
    }

    /// Runs one command.
    pub fn run(&self, args: &mut [Vec<u8>]) -> Outcome {
        match self.dispatch(args) {
            Ok(outcome) => outcome,
            Err(reply) => Outcome::reply(reply),
        }
    }

    fn dispatch(&self, args: &mut [Vec<u8>]) -> Result<Outcome, Reply> {
        let Some((raw, rest)) = args.split_first_mut() else {
            return Err(Reply::err("empty command"));
        };
        // The known name, upper case, found without allocating; "" for an unknown command.
        let name: &str = command_index(raw).map_or("", |i| COMMANDS[i]);
        let arity = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(Reply::err(format!(
                    "wrong number of arguments for '{}' command",
                    name.to_ascii_lowercase()
                )))
            }
        };
        let reply = |r| Ok(Outcome::reply(r));
        match name {
            "PING" => {
                arity(rest.len() <= 1)?;
                match rest.first() {
                    None => reply(Reply::Simple("PONG")),
                    Some(text) => reply(Reply::Bulk(Some(text.clone()))),
                }
            }
            "ECHO" => {
                arity(rest.len() == 1)?;
                reply(Reply::Bulk(Some(rest[0].clone())))
            }
            "SELECT" => {
                arity(rest.len() == 1)?;
                if rest[0] == b"0" {
                    reply(Reply::Simple("OK"))
                } else {
                    Err(Reply::err("DB index is out of range"))
                }
            }
            "CONFIG" => reply(Reply::Array(Vec::new())),
            "GET" => {
                arity(rest.len() == 1)?;
                reply(Reply::Bulk(self.string(&rest[0])?.map(<[u8]>::to_vec)))
            }
            "MGET" => {
                arity(!rest.is_empty())?;
                let values = rest
                    .iter()
                    .map(|k| Reply::Bulk(self.string(k).ok().flatten().map(<[u8]>::to_vec)))
                    .collect();
                reply(Reply::Array(values))
            }
            "SET" => self.set(rest),
            "MSET" => {
                arity(!rest.is_empty() && rest.len() % 2 == 0)?;
                let mut writes = Vec::new();
                for pair in rest.chunks(2) {
                    if matches!(self.kind(&pair[0]), Kind::Hash) {
                        writes.extend(self.delete(&pair[0])?.1);
                    }
                    writes.push(self.write(&pair[0], None, Some(&pair[1]), None)?);
                }
                Ok(Outcome {
                    reply: Reply::Simple("OK"),
                    writes,
                })
            }
            "DEL" => {
                arity(!rest.is_empty())?;
                let mut removed = 0;
                let mut writes = Vec::new();
                for key in rest {
                    let (held, deletes) = self.delete(key)?;
                    removed += i64::from(held);
                    writes.extend(deletes);
                }
                Ok(Outcome {
                    reply: Reply::Integer(removed),
                    writes,
                })
            }
            "EXISTS" => {
                arity(!rest.is_empty())?;
                let found = rest
                    .iter()
                    .filter(|k| !matches!(self.kind(k), Kind::Missing))
                    .count();
                reply(Reply::Integer(found as i64))
            }
            "HSET" => {
                arity(rest.len() >= 3 && rest.len() % 2 == 1)?;
                let key = &rest[0];
                if matches!(self.kind(key), Kind::String) {
                    return Err(Reply::Error(WRONGTYPE.into()));
                }
                let held = self.hash(key);
                let mut added = 0;
                let mut writes = Vec::new();
                for pair in rest[1..].chunks(2) {
                    if !held.iter().any(|(f, _)| *f == pair[0].as_slice())
                        && !writes
                            .iter()
                            .any(|w: &Write| w.key.field.as_deref() == Some(&pair[0][..]))
                    {
                        added += 1;
                    }
                    writes.push(self.write(key, Some(&pair[0]), Some(&pair[1]), None)?);
                }
                Ok(Outcome {
                    reply: Reply::Integer(added),
                    writes,
                })
            }
            "HGET" => {
                arity(rest.len() == 2)?;
                if matches!(self.kind(&rest[0]), Kind::String) {
                    return Err(Reply::Error(WRONGTYPE.into()));
                }
                let value = self
                    .replica
                    .get(&self.key(&rest[0], Some(&rest[1]))?, self.now_ms)
                    .map(<[u8]>::to_vec);
                reply(Reply::Bulk(value))
            }
            "HDEL" => {
                arity(rest.len() >= 2)?;
                if matches!(self.kind(&rest[0]), Kind::String) {
                    return Err(Reply::Error(WRONGTYPE.into()));
                }
                let held = self.hash(&rest[0]);
                let mut writes = Vec::new();
                for field in &rest[1..] {
                    if held.iter().any(|(f, _)| *f == field.as_slice())
                        && !writes
                            .iter()
                            .any(|w: &Write| w.key.field.as_deref() == Some(&field[..]))
                    {
                        writes.push(self.write(&rest[0], Some(field), None, None)?);
                    }
                }
                Ok(Outcome {
                    reply: Reply::Integer(writes.len() as i64),
                    writes,
                })
            }
            "HGETALL" | "HKEYS" | "HLEN" => {
                arity(rest.len() == 1)?;
                if matches!(self.kind(&rest[0]), Kind::String) {
                    return Err(Reply::Error(WRONGTYPE.into()));
                }
                let fields = self.hash(&rest[0]);
                let bulk = |b: &[u8]| Reply::Bulk(Some(b.to_vec()));
                reply(match name {
                    "HLEN" => Reply::Integer(fields.len() as i64),
                    "HKEYS" => Reply::Array(fields.iter().map(|(f, _)| bulk(f)).collect()),
                    _ => Reply::Array(
                        fields
                            .iter()
                            .flat_map(|(f, v)| [bulk(f), bulk(v)])
                            .collect(),
                    ),
                })
            }
            "KEYS" => {
                arity(rest.len() == 1)?;
                reply(Reply::Array(self.keys(Some(&rest[0]))))
            }
            "SCAN" => {
                arity(!rest.is_empty())?;
                let pattern = rest
                    .windows(2)
                    .skip(1)
                    .step_by(2)
                    .find(|w| w[0].eq_ignore_ascii_case(b"MATCH"))
                    .map(|w| w[1].as_slice());
                reply(Reply::Array(vec![
                    Reply::Bulk(Some(b"0".to_vec())),
                    Reply::Array(self.keys(pattern)),
                ]))
            }
            "DBSIZE" => reply(Reply::Integer(self.keys(None).len() as i64)),
            "EXPIRE" | "PEXPIRE" => {
                arity(rest.len() == 2)?;
                let amount: i64 = std::str::from_utf8(&rest[1])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| Reply::err("value is not an integer or out of range"))?;
                let ms = if name == "EXPIRE" {
                    amount.saturating_mul(1000)
                } else {
                    amount
                };
                let at = (self.now_ms as i64).saturating_add(ms).max(0) as u64;
                self.expire(&rest[0], at)
            }
            "TTL" | "PTTL" => {
                arity(rest.len() == 1)?;
                let left = self.ttl_ms(&rest[0]);
                reply(Reply::Integer(match left {
                    Some(ms) if ms >= 0 && name == "TTL" => (ms + 999) / 1000,
                    Some(ms) => ms,
                    None => -2,
                }))
            }
            _ => {
                let first: Vec<String> = rest
                    .iter()
                    .take(3)
                    .map(|a| format!("'{}'", String::from_utf8_lossy(a)))
                    .collect();
                Err(Reply::err(format!(
                    "unknown command '{}', with args beginning with: {}",
                    String::from_utf8_lossy(raw),
                    first.join(" ")
                )))
            }
        }
    }

    fn set(&self, rest: &mut [Vec<u8>]) -> Result<Outcome, Reply> {
        if rest.len() < 2 {
            return Err(Reply::err("wrong number of arguments for 'set' command"));
        }
        let mut expires_ms = None;
        let mut options = rest[2..].iter();
        while let Some(option) = options.next() {
            let upper = option.to_ascii_uppercase();
            let factor = match upper.as_slice() {
                b"EX" => 1000,
                b"PX" => 1,
                _ => return Err(Reply::err("syntax error")),
            };
            let amount: u64 = options
                .next()
                .and_then(|a| std::str::from_utf8(a).ok()?.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| Reply::err("invalid expire time in 'set' command"))?;
            expires_ms = Some(self.now_ms.saturating_add(amount.saturating_mul(factor)));
        }
        if rest[1].len() > MAX_VALUE {
            return Err(Reply::err(format!("value over {MAX_VALUE} bytes")));
        }
        // The key is built once: looked up (a string is simply replaced), then written.
        let plain = self.key(&rest[0], None)?;
        let mut writes = Vec::new();
        if self.replica.get(&plain, self.now_ms).is_none() && !self.hash(&rest[0]).is_empty() {
            writes.extend(self.delete(&rest[0])?.1);
        }
        // The value moves from the parsed command into the write.
        writes.push(Write {
            key: plain,
            value: Some(std::mem::take(&mut rest[1])),
            expires_ms,
        });
        Ok(Outcome {
            reply: Reply::Simple("OK"),
            writes,
        })
    }

    fn expire(&self, key: &[u8], at: u64) -> Result<Outcome, Reply> {
        let mut writes = Vec::new();
        match self.kind(key) {
            Kind::Missing => {}
            Kind::String => {
                let value = self.string(key)?.map(<[u8]>::to_vec);
                writes.push(self.write(key, None, value.as_deref(), Some(at))?);
            }
            Kind::Hash => {
                for (field, value) in self.hash(key) {
                    writes.push(self.write(key, Some(field), Some(value), Some(at))?);
                }
            }
        }
        Ok(Outcome {
            reply: Reply::Integer(i64::from(!writes.is_empty())),
            writes,
        })
    }

    /// Ms left before `key` expires: `Some(-1)` without expiry, `None` when missing.
    fn ttl_ms(&self, key: &[u8]) -> Option<i64> {
        let expiry = |k: &Key| {
            self.replica
                .entry(k)
                .filter(|e| e.is_live(self.now_ms))
                .map(|e| e.expires_ms)
        };
        let expires = match self.kind(key) {
            Kind::Missing => return None,
            Kind::String => expiry(&self.key(key, None).ok()?)?,
            Kind::Hash => {
                let (field, _) = *self.hash(key).first()?;
                expiry(&self.key(key, Some(field)).ok()?)?
            }
        };
        Some(expires.map_or(-1, |at| at.saturating_sub(self.now_ms) as i64))
    }

    fn keys(&self, pattern: Option<&[u8]>) -> Vec<Reply> {
        let mut keys: Vec<&[u8]> = self
            .replica
            .namespace(self.namespace)
            .filter(|e| e.is_live(self.now_ms))
            .map(|e| e.key.key.as_slice())
            .filter(|k| pattern.is_none_or(|p| glob(p, k)))
            .collect();
        keys.dedup();
        keys.into_iter()
            .map(|k| Reply::Bulk(Some(k.to_vec())))
            .collect()
    }
}

/// Redis-style glob: `*` any run, `?` any byte, `\` escapes; everything else literal.
/// Greedy with one backtrack point, so it takes O(pattern × text) at worst.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
                continue;
            }
            Some(b'\\') if p + 1 < pattern.len() && pattern[p + 1] == text[t] => {
                p += 2;
                t += 1;
                continue;
            }
            Some(&c) if c != b'\\' && c == text[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((after, from)) => {
                p = after;
                t = from + 1;
                star = Some((after, from + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests;
