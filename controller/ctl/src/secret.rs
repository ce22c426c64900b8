//! `r1ctl secret seal`: a secret value (an environment variable's value, or registry
//! credentials in Docker's config format) sealed to every oracle's public key and bound to the
//! namespace of the job it is for, printed as the `sealed:` block of a manifest.
//!
//! The keys come from `GET /v1/oracle-keys` of any oracle, which is not trusted: each key must
//! hash to the address it is listed under, so a lying oracle can leave oracles out but cannot
//! slip in a key of its own. Everything but [`read_input`] and [`seal`] is pure, so the tests
//! drive the same code.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use alloy_primitives::Address;
use r1_crds::api::outcome::count;
use r1_crds::api::wire::OracleKeys;
use r1_crds::common::SealedValue;
use r1_protocol::oracle_sealed::{MAX_VALUE, OracleSealedError, seal_for_oracles};
use r1_protocol::sealed::{PUBLIC_KEY_LEN, address_of};
use r1_protocol::secrets::PullCredentials;

use crate::remote::{Client, RemoteError};

/// Bytes read from standard input at most: [`MAX_VALUE`] and room for a trailing `\r\n`.
const MAX_INPUT: usize = MAX_VALUE + 2;
/// Characters of a malformed key quoted back in an error.
const QUOTED_KEY: usize = 80;

/// Why a secret could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The namespace is not a valid namespace name.
    #[error("namespace {namespace:?}: {reason}")]
    Namespace {
        /// What was given.
        namespace: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--docker-*` value is empty.
    #[error("{0} must not be empty")]
    EmptyArgument(&'static str),
    /// The `--docker-server` value cannot name a registry.
    #[error("--docker-server {0:?}: a registry has no spaces or control characters")]
    BadServer(String),
    /// The oracle's keys could not be fetched.
    #[error("cannot fetch the oracles' keys")]
    Remote(#[source] RemoteError),
    /// The oracle lists no keys.
    #[error("no oracle keys yet: the oracles announce them within 30 s of starting")]
    NoKeys,
    /// A listed key is not a compressed secp256k1 public key in `0x` hex.
    #[error("the key listed for oracle {oracle} is malformed: {reason}")]
    MalformedKey {
        /// The oracle it is listed for.
        oracle: Address,
        /// What is wrong with it.
        reason: String,
    },
    /// A listed key belongs to another address than the one it is listed for.
    #[error(
        "the key listed for oracle {oracle} is the key of {actual}: the oracle answering is not \
         to be trusted; nothing was sealed"
    )]
    WrongKey {
        /// The oracle it is listed for.
        oracle: Address,
        /// The address the key hashes to.
        actual: Address,
    },
    /// Standard input could not be read.
    #[error("cannot read the secret from stdin: {0}")]
    Input(std::io::Error),
    /// Nothing to seal.
    #[error(
        "the secret is empty: pipe it on stdin, e.g. `printf %s \"$VALUE\" | r1ctl secret seal \
         --namespace NS`"
    )]
    Empty,
    /// More on standard input than can be sealed.
    #[error("the secret is over {MAX_VALUE} bytes; at most {MAX_VALUE} are sealed")]
    TooLarge,
    /// A registry password or token is not UTF-8 text.
    #[error("the registry password or token on stdin is not UTF-8 text")]
    NotText,
    /// Sealing refused the value or the keys.
    #[error("cannot seal: {0}")]
    Seal(OracleSealedError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

/// What `r1ctl secret seal` makes of standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The value itself (an environment variable's value, or a whole Docker config); one
    /// trailing newline (`\n` or `\r\n`) is stripped unless `keep_newline`.
    Value {
        /// Seal the input byte for byte.
        keep_newline: bool,
    },
    /// A Docker config for registry `server` with `username`; the password is stdin's first
    /// line.
    DockerPassword {
        /// The registry, e.g. `ghcr.io` or `docker.io`.
        server: String,
        /// The user name.
        username: String,
    },
    /// A Docker config for registry `server` with a registry token, stdin's first line.
    DockerToken {
        /// The registry, e.g. `ghcr.io` or `docker.io`.
        server: String,
    },
}

impl Input {
    /// The registry a Docker config is made for, if any.
    fn docker_server(&self) -> Option<&str> {
        match self {
            Self::Value { .. } => None,
            Self::DockerPassword { server, .. } | Self::DockerToken { server } => Some(server),
        }
    }
}

/// The keys of a `GET /v1/oracle-keys` answer, each checked against the address it is listed
/// under (`0x` and 66 lowercase hex digits of a compressed key that hashes to the address).
pub fn oracle_keys(
    answer: &OracleKeys,
) -> Result<Vec<(Address, [u8; PUBLIC_KEY_LEN])>, SecretError> {
    if answer.oracles.is_empty() {
        return Err(SecretError::NoKeys);
    }
    answer
        .oracles
        .iter()
        .map(|listed| {
            let oracle = listed.address;
            let malformed = |reason: String| SecretError::MalformedKey { oracle, reason };
            let key = r1_protocol::hex::decode::<PUBLIC_KEY_LEN>(&listed.public_key).ok_or_else(
                || {
                    let quoted: String = listed.public_key.chars().take(QUOTED_KEY).collect();
                    malformed(format!(
                        "expected 0x and {} lowercase hex digits, got {quoted:?}",
                        2 * PUBLIC_KEY_LEN
                    ))
                },
            )?;
            let actual = address_of(&key)
                .map_err(|_| malformed("not a compressed secp256k1 public key".into()))?;
            if actual != oracle {
                return Err(SecretError::WrongKey { oracle, actual });
            }
            Ok((oracle, key))
        })
        .collect()
}

/// Reads standard input from `reader`, refusing more than can be sealed (plus a trailing
/// `\r\n`).
pub fn read_input(reader: &mut dyn Read) -> Result<Vec<u8>, SecretError> {
    let mut input = Vec::new();
    let limit = u64::try_from(MAX_INPUT + 1).unwrap_or(u64::MAX);
    reader
        .take(limit)
        .read_to_end(&mut input)
        .map_err(SecretError::Input)?;
    if input.len() > MAX_INPUT {
        return Err(SecretError::TooLarge);
    }
    Ok(input)
}

/// `bytes` without one trailing newline (`\n` or `\r\n`).
fn strip_newline(bytes: &[u8]) -> &[u8] {
    match bytes.strip_suffix(b"\n") {
        Some(rest) => rest.strip_suffix(b"\r").unwrap_or(rest),
        None => bytes,
    }
}

/// The first line of `bytes` as text, without its line end.
fn first_line(bytes: &[u8]) -> Result<String, SecretError> {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| SecretError::NotText)?;
    if text.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(text.to_owned())
}

/// Refuses a `--docker-server` that cannot name a registry.
fn check_server(server: &str) -> Result<(), SecretError> {
    if server.is_empty() {
        return Err(SecretError::EmptyArgument("--docker-server"));
    }
    if server.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SecretError::BadServer(server.to_owned()));
    }
    Ok(())
}

/// The value to seal, made of standard input as `input` says.
pub fn value_from(input: &Input, stdin: &[u8]) -> Result<Vec<u8>, SecretError> {
    let value = match input {
        Input::Value { keep_newline } => {
            let value = if *keep_newline {
                stdin
            } else {
                strip_newline(stdin)
            };
            value.to_vec()
        }
        Input::DockerPassword { server, username } => {
            check_server(server)?;
            if username.is_empty() {
                return Err(SecretError::EmptyArgument("--docker-username"));
            }
            let credentials = PullCredentials::Basic {
                username: username.clone(),
                password: first_line(stdin)?,
            };
            r1_protocol::docker_config::config_for(server, &credentials).into_bytes()
        }
        Input::DockerToken { server } => {
            check_server(server)?;
            let credentials = PullCredentials::Token {
                token: first_line(stdin)?,
            };
            r1_protocol::docker_config::config_for(server, &credentials).into_bytes()
        }
    };
    if value.is_empty() {
        return Err(SecretError::Empty);
    }
    if value.len() > MAX_VALUE {
        return Err(SecretError::TooLarge);
    }
    Ok(value)
}

/// `text` as a YAML double-quoted scalar (a JSON string is one), so that no YAML reader takes
/// `0x…` for a hexadecimal number.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// The YAML to paste into a manifest: a comment saying what was sealed and where it goes, then
/// `sealed:` with one copy per oracle under its checksummed address, both quoted.
pub fn render(namespace: &str, input: &Input, copies: &BTreeMap<Address, String>) -> String {
    let sealed = SealedValue(
        copies
            .iter()
            .map(|(oracle, copy)| (oracle.to_checksum(None), copy.clone()))
            .collect(),
    );
    let oracles = count(copies.len(), "oracle");
    let comment = match input.docker_server() {
        None => format!(
            "# sealed for namespace {namespace} to {oracles}; paste under env[].valueFrom or \
             imagePullSecret"
        ),
        Some(server) => format!(
            "# credentials for {server} sealed for namespace {namespace} to {oracles}; paste \
             under imagePullSecret"
        ),
    };
    // serde_yaml writes `0x…` plain, which YAML 1.1 and 1.2 readers other than serde_yaml
    // (yq, PyYAML) would read as a number: quote both sides.
    let mut yaml = format!("{comment}\nsealed:\n");
    for (oracle, copy) in &sealed.0 {
        yaml.push_str(&format!("  {}: {}\n", quoted(oracle), quoted(copy)));
    }
    yaml
}

/// `r1ctl secret seal`: fetches the oracles' keys from `client`'s oracle, reads the secret from
/// `stdin` as `input` says, seals it to every oracle for `namespace` and writes the YAML to
/// paste to `out`.
pub async fn seal(
    client: &Client,
    namespace: &str,
    input: &Input,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), SecretError> {
    r1_crds::names::dns_label(namespace).map_err(|reason| SecretError::Namespace {
        namespace: namespace.to_owned(),
        reason,
    })?;
    // Keys first, so nobody types a secret only to learn that the oracle is unreachable.
    let answer = client.oracle_keys().await.map_err(SecretError::Remote)?;
    let keys = oracle_keys(&answer)?;
    let value = value_from(input, &read_input(stdin)?)?;
    let copies = seal_for_oracles(&value, &keys, namespace).map_err(SecretError::Seal)?;
    let yaml = render(namespace, input, &copies);
    out.write_all(yaml.as_bytes())
        .map_err(SecretError::Output)?;
    out.flush().map_err(SecretError::Output)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use r1_crds::api::wire::OracleKey;
    use r1_protocol::Identity;
    use r1_protocol::docker_config::credentials_for;
    use r1_protocol::oracle_sealed::open_as_oracle;
    use r1_protocol::sealed::public_key;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn listed(identity: &Identity) -> OracleKey {
        OracleKey {
            address: identity.address(),
            public_key: r1_protocol::hex::encode(&public_key(identity)),
        }
    }

    fn oracles(n: usize) -> (Vec<Identity>, OracleKeys) {
        let identities: Vec<Identity> = (0..n).map(|_| Identity::generate()).collect();
        let answer = OracleKeys {
            oracles: identities.iter().map(listed).collect(),
        };
        (identities, answer)
    }

    /// The copies in the printed YAML, read back by serde_yaml.
    fn pasted(yaml: &str) -> BTreeMap<Address, String> {
        #[derive(serde::Deserialize)]
        struct Pasted {
            sealed: SealedValue,
        }
        let pasted: Pasted = serde_yaml::from_str(yaml).expect("the YAML parses");
        pasted.sealed.copies().expect("the keys are addresses")
    }

    /// Where a user pastes the printed YAML in a DeeployJob.
    #[derive(Clone, Copy)]
    enum Under {
        EnvValueFrom,
        ImagePullSecret,
    }

    /// The copies after pasting `yaml` into a DeeployJob of namespace acme, read and checked
    /// as the oracle reads manifests.
    fn pasted_into_job(yaml: &str, under: Under) -> BTreeMap<Address, String> {
        let indent = |width: usize| {
            yaml.lines()
                .map(|line| format!("{:width$}{line}\n", ""))
                .collect::<String>()
        };
        let tail = match under {
            Under::EnvValueFrom => format!(
                "  env:\n    - name: PASSWORD\n      valueFrom:\n{}",
                indent(8)
            ),
            Under::ImagePullSecret => format!("  imagePullSecret:\n{}", indent(4)),
        };
        let text = format!(
            "apiVersion: deeploy.ratio1.ai/v1alpha1\n\
             kind: DeeployJob\n\
             metadata:\n  name: web\n  namespace: acme\n\
             spec:\n  projectRef: {{ name: shop }}\n  escrowRef: {{ name: pay }}\n\
             \x20 image: ghcr.io/acme/web:1\n\
             \x20 resources: {{ cpu: 250m, memory: 128Mi }}\n\
             \x20 replicas: 1\n  durationEpochs: 30\n{tail}"
        );
        let source = r1_crds::check::Source {
            name: "job.yaml".into(),
            text,
        };
        let report = r1_crds::check::check_sources(
            std::slice::from_ref(&source),
            &r1_crds::pricing::Catalogue::builtin().expect("catalogue"),
            r1_crds::check::References::SyntaxOnly,
        );
        assert!(report.is_valid(), "{:#?}\n{}", report.findings, source.text);
        let Some((_, _, r1_crds::manifest::Manifest::Job(job))) = report.resources.first() else {
            panic!("no job in {}", source.text);
        };
        let sealed = match under {
            Under::EnvValueFrom => job.spec.env[0]
                .value_from
                .as_ref()
                .and_then(|from| from.sealed.clone()),
            Under::ImagePullSecret => job
                .spec
                .image_pull_secret
                .as_ref()
                .and_then(|secret| secret.sealed.clone()),
        };
        sealed
            .expect("a sealed value")
            .copies()
            .expect("the keys are addresses")
    }

    #[test]
    fn secret_keys_parse_and_each_is_checked_against_its_address() {
        let (identities, answer) = oracles(3);
        let keys = oracle_keys(&answer).unwrap();
        assert_eq!(keys.len(), 3);
        for (identity, (address, key)) in identities.iter().zip(&keys) {
            assert_eq!(*address, identity.address());
            assert_eq!(*key, public_key(identity));
        }

        // A lying oracle lists its own key for another oracle.
        let mallory = Identity::generate();
        let mut lying = answer.clone();
        lying.oracles[1].public_key = listed(&mallory).public_key;
        match oracle_keys(&lying) {
            Err(SecretError::WrongKey { oracle, actual }) => {
                assert_eq!(oracle, identities[1].address());
                assert_eq!(actual, mallory.address());
            }
            other => panic!("expected WrongKey, got {other:?}"),
        }

        for bad in [
            "",
            "02abcd",
            &listed(&mallory).public_key.to_uppercase(),
            &listed(&mallory).public_key[2..],
            &format!("0x04{}", "00".repeat(32)),
        ] {
            let mut malformed = answer.clone();
            malformed.oracles[0].public_key = bad.to_owned();
            assert!(
                matches!(
                    oracle_keys(&malformed),
                    Err(SecretError::MalformedKey { oracle, .. }) if oracle == identities[0].address()
                ),
                "{bad:?} must be refused"
            );
        }
        let huge = OracleKeys {
            oracles: vec![OracleKey {
                address: identities[0].address(),
                public_key: "z".repeat(10_000),
            }],
        };
        let message = oracle_keys(&huge).unwrap_err().to_string();
        assert!(message.len() < 300, "the key is quoted short: {message}");

        let none = OracleKeys { oracles: vec![] };
        assert!(matches!(oracle_keys(&none), Err(SecretError::NoKeys)));
    }

    #[test]
    fn secret_yaml_parses_back_and_every_oracle_opens_its_copy() {
        let (identities, answer) = oracles(3);
        let keys = oracle_keys(&answer).unwrap();
        let input = Input::Value {
            keep_newline: false,
        };
        let value = value_from(&input, b"hunter2\n").unwrap();
        let copies = seal_for_oracles(&value, &keys, "acme").unwrap();
        let yaml = render("acme", &input, &copies);
        assert!(
            yaml.starts_with(
                "# sealed for namespace acme to 3 oracles; paste under env[].valueFrom or \
                 imagePullSecret\nsealed:\n"
            ),
            "{yaml}"
        );
        assert!(!yaml.contains("hunter2"));
        for identity in &identities {
            let checksummed = identity.address().to_checksum(None);
            assert!(yaml.contains(&checksummed), "{checksummed} in {yaml}");
        }
        // Both sides quoted, so that no YAML reader takes `0x…` for a number.
        let lines: Vec<&str> = yaml.lines().skip(2).collect();
        assert_eq!(lines.len(), 3, "{yaml}");
        for line in &lines {
            let (oracle, copy) = line.split_once(": ").unwrap();
            assert!(
                oracle.starts_with("  \"0x") && oracle.ends_with('"'),
                "{line}"
            );
            assert!(copy.starts_with("\"0x") && copy.ends_with('"'), "{line}");
        }
        assert_eq!(pasted(&yaml), copies);
        let copies = pasted_into_job(&yaml, Under::EnvValueFrom);
        assert_eq!(copies.len(), 3);
        for identity in &identities {
            assert_eq!(
                open_as_oracle(&copies, identity, "acme").unwrap(),
                b"hunter2"
            );
            assert!(open_as_oracle(&copies, identity, "other").is_err());
        }

        let one = render("acme", &input, &copies.into_iter().take(1).collect());
        assert!(
            one.starts_with("# sealed for namespace acme to 1 oracle;"),
            "{one}"
        );
    }

    #[test]
    fn secret_docker_server_seals_a_config_the_oracle_reads_back() {
        let password = Input::DockerPassword {
            server: "ghcr.io".into(),
            username: "octo".into(),
        };
        let config = value_from(&password, b"s3cret\r\nignored\n").unwrap();
        assert_eq!(
            credentials_for(&config, "ghcr.io").unwrap(),
            Some(PullCredentials::Basic {
                username: "octo".into(),
                password: "s3cret".into(),
            })
        );
        let token = Input::DockerToken {
            server: "localhost:5000".into(),
        };
        let config = value_from(&token, b"tok").unwrap();
        assert_eq!(
            credentials_for(&config, "localhost:5000").unwrap(),
            Some(PullCredentials::Token {
                token: "tok".into()
            })
        );

        let (identities, answer) = oracles(2);
        let copies = seal_for_oracles(&config, &oracle_keys(&answer).unwrap(), "acme").unwrap();
        let yaml = render("acme", &token, &copies);
        assert!(
            yaml.starts_with("# credentials for localhost:5000 sealed for namespace acme to 2 oracles; paste under imagePullSecret\n"),
            "{yaml}"
        );
        let copies = pasted_into_job(&yaml, Under::ImagePullSecret);
        for identity in &identities {
            assert_eq!(open_as_oracle(&copies, identity, "acme").unwrap(), config);
        }
        assert!(matches!(
            value_from(
                &Input::DockerToken {
                    server: "ghcr.io\n# injected".into()
                },
                b"tok"
            ),
            Err(SecretError::BadServer(_))
        ));

        assert!(matches!(
            value_from(&password, b"\nsecond line"),
            Err(SecretError::Empty)
        ));
        assert!(matches!(
            value_from(&token, b"\xff\xfe"),
            Err(SecretError::NotText)
        ));
        assert!(matches!(
            value_from(
                &Input::DockerToken {
                    server: String::new()
                },
                b"tok"
            ),
            Err(SecretError::EmptyArgument("--docker-server"))
        ));
    }

    #[test]
    fn secret_one_trailing_newline_is_stripped_unless_kept() {
        let strip = Input::Value {
            keep_newline: false,
        };
        let keep = Input::Value { keep_newline: true };
        assert_eq!(value_from(&strip, b"abc\n").unwrap(), b"abc");
        assert_eq!(value_from(&strip, b"abc\r\n").unwrap(), b"abc");
        assert_eq!(value_from(&strip, b"abc\n\n").unwrap(), b"abc\n");
        assert_eq!(value_from(&strip, b"abc").unwrap(), b"abc");
        assert_eq!(value_from(&strip, b"a\nb").unwrap(), b"a\nb");
        assert_eq!(value_from(&keep, b"abc\n").unwrap(), b"abc\n");
        assert!(matches!(value_from(&strip, b""), Err(SecretError::Empty)));
        assert!(matches!(value_from(&strip, b"\n"), Err(SecretError::Empty)));
        assert_eq!(value_from(&keep, b"\n").unwrap(), b"\n");
    }

    #[test]
    fn secret_input_is_limited_to_what_can_be_sealed() {
        let strip = Input::Value {
            keep_newline: false,
        };
        let mut largest = vec![b'x'; MAX_VALUE];
        largest.extend_from_slice(b"\r\n");
        let input = read_input(&mut largest.as_slice()).unwrap();
        assert_eq!(value_from(&strip, &input).unwrap().len(), MAX_VALUE);
        let keep = Input::Value { keep_newline: true };
        assert!(matches!(
            value_from(&keep, &input),
            Err(SecretError::TooLarge)
        ));
        let over = vec![b'x'; MAX_VALUE + 3];
        assert!(matches!(
            read_input(&mut over.as_slice()),
            Err(SecretError::TooLarge)
        ));
    }

    /// Serves one HTTP answer with `status` and `body` to one request; the server's URL.
    async fn serve_once(status: u16, body: String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            assert!(
                request.starts_with(b"GET /v1/oracle-keys "),
                "{}",
                String::from_utf8_lossy(&request)
            );
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.expect("write");
        });
        url
    }

    #[tokio::test]
    async fn secret_seal_fetches_the_keys_and_writes_the_yaml() {
        let (identities, answer) = oracles(2);
        let url = serve_once(200, serde_json::to_string(&answer).unwrap()).await;
        let client = Client::new(&url, Identity::generate()).unwrap();
        let mut out = Vec::new();
        let input = Input::Value {
            keep_newline: false,
        };
        seal(&client, "acme", &input, &mut &b"hunter2\n"[..], &mut out)
            .await
            .unwrap();
        let copies = pasted(std::str::from_utf8(&out).unwrap());
        for identity in &identities {
            assert_eq!(
                open_as_oracle(&copies, identity, "acme").unwrap(),
                b"hunter2"
            );
        }

        let url = serve_once(200, r#"{"oracles": []}"#.into()).await;
        let client = Client::new(&url, Identity::generate()).unwrap();
        let err = seal(&client, "acme", &input, &mut &b"x"[..], &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no oracle keys yet: the oracles announce them within 30 s of starting"
        );

        let refusal = r#"{"error": "no_chain", "reason": "no oracle here"}"#;
        let url = serve_once(503, refusal.into()).await;
        let client = Client::new(&url, Identity::generate()).unwrap();
        let err = seal(&client, "acme", &input, &mut &b"x"[..], &mut Vec::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                SecretError::Remote(RemoteError::Refused { status: 503, .. })
            ),
            "{err}"
        );

        let err = seal(
            &client,
            "Not_A_Namespace",
            &input,
            &mut &b"x"[..],
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SecretError::Namespace { .. }), "{err}");
    }
}
