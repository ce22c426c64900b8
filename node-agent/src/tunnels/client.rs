//! One tunnel client process: its command line per provider, the binary found on the node, and
//! what it prints — read with a size limit, each line cut, the public URL taken from the first
//! line that announces it and the last line kept for the status when the client fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use r1_protocol::messages::{TunnelClient, TunnelReport};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Most bytes of a client's output that are read for its URL and errors; the rest is drained.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Longest output line kept.
const MAX_LINE: usize = 1024;

/// Where the node finds the clients' binaries: a configured path, or else the name on `PATH`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binaries {
    /// `bore`.
    pub bore: Option<PathBuf>,
    /// `cloudflared`.
    pub cloudflared: Option<PathBuf>,
    /// `ngrok`.
    pub ngrok: Option<PathBuf>,
}

/// Why a client cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The provider's binary is not on the node.
    #[error(
        "{name} is not installed on this node (looked for {looked}); install it or set tunnels.{name}Path in the node's config"
    )]
    NoBinary {
        /// The binary's name.
        name: &'static str,
        /// Where it was looked for.
        looked: String,
    },
    /// The provider needs a token and the tunnel has none.
    #[error("a {0} tunnel needs a token, and the tunnel has none")]
    NoToken(&'static str),
    /// Spawning failed.
    #[error("cannot start {name}: {source}")]
    Spawn {
        /// The binary's name.
        name: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// A command line to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The binary's name, for logs.
    pub name: &'static str,
    /// The binary.
    pub program: PathBuf,
    /// Its arguments (never a secret: those go in `env`, out of `/proc/PID/cmdline`).
    pub args: Vec<String>,
    /// Environment variables it reads its token from.
    pub env: Vec<(String, String)>,
}

impl Binaries {
    /// The path of `name`: the configured one when it exists, else the first on `PATH`.
    fn find(
        &self,
        name: &'static str,
        configured: Option<&Path>,
        path_var: Option<&str>,
    ) -> Result<PathBuf, ClientError> {
        if let Some(path) = configured {
            return if path.is_file() {
                Ok(path.to_owned())
            } else {
                Err(ClientError::NoBinary {
                    name,
                    looked: path.display().to_string(),
                })
            };
        }
        path_var
            .into_iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| ClientError::NoBinary {
                name,
                looked: "PATH".into(),
            })
    }
}

/// The command line of `client` forwarding to `local_host:local_port`, with `token`; binaries
/// looked up in `binaries` and the `PATH` `path_var`.
pub fn launch(
    client: &TunnelClient,
    local_host: &str,
    local_port: u16,
    token: Option<&str>,
    binaries: &Binaries,
    path_var: Option<&str>,
) -> Result<Launch, ClientError> {
    let local = format!("{local_host}:{local_port}");
    match client {
        TunnelClient::Bore { server, port } => {
            let program = binaries.find("bore", binaries.bore.as_deref(), path_var)?;
            let mut args = vec![
                "local".to_owned(),
                local_port.to_string(),
                "--local-host".into(),
                local_host.into(),
                "--to".into(),
                server.clone(),
            ];
            if let Some(port) = port {
                args.extend(["--port".to_owned(), port.to_string()]);
            }
            let mut env = vec![("NO_COLOR".to_owned(), "1".to_owned())];
            env.extend(token.map(|t| ("BORE_SECRET".to_owned(), t.to_owned())));
            Ok(Launch {
                name: "bore",
                program,
                args,
                env,
            })
        }
        TunnelClient::Cloudflare { .. } => {
            let token = token.ok_or(ClientError::NoToken("cloudflare"))?;
            let program =
                binaries.find("cloudflared", binaries.cloudflared.as_deref(), path_var)?;
            Ok(Launch {
                name: "cloudflared",
                program,
                args: vec![
                    "tunnel".into(),
                    "--no-autoupdate".into(),
                    "run".into(),
                    "--url".into(),
                    format!("http://{local}"),
                ],
                env: vec![("TUNNEL_TOKEN".into(), token.into())],
            })
        }
        TunnelClient::Ngrok { hostname } => {
            let token = token.ok_or(ClientError::NoToken("ngrok"))?;
            let program = binaries.find("ngrok", binaries.ngrok.as_deref(), path_var)?;
            Ok(Launch {
                name: "ngrok",
                program,
                args: vec![
                    "http".into(),
                    local,
                    "--domain".into(),
                    hostname.clone(),
                    "--log".into(),
                    "stdout".into(),
                    "--log-format".into(),
                    "logfmt".into(),
                ],
                env: vec![("NGROK_AUTHTOKEN".into(), token.into())],
            })
        }
    }
}

/// The public URL `line` of `client`'s output announces, if it does.
pub fn announced_url(client: &TunnelClient, line: &str) -> Option<String> {
    match client {
        TunnelClient::Bore { .. } => {
            let at = line.split("listening at ").nth(1)?;
            let address = at.split_whitespace().next()?;
            let (_, port) = address.rsplit_once(':')?;
            port.parse::<u16>().ok()?;
            Some(address.to_owned())
        }
        TunnelClient::Cloudflare { hostname } => line
            .contains("Registered tunnel connection")
            .then(|| format!("https://{hostname}")),
        TunnelClient::Ngrok { .. } => {
            let url = line.split("url=").nth(1)?.split_whitespace().next()?;
            url.starts_with("https://").then(|| url.to_owned())
        }
    }
}

/// What a running client printed that matters.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The URL it announced.
    pub url: Option<String>,
    /// Its last line, cut to [`TunnelReport::MAX_ERROR_LEN`].
    pub last_line: Option<String>,
}

/// A started client.
pub struct Running {
    /// The process (killed when dropped).
    pub child: Child,
    /// What it printed.
    pub output: Arc<Mutex<Output>>,
    /// When it started (ms).
    pub started_ms: u64,
}

impl Running {
    /// Starts `launch` for `client`; its output is read in the background.
    pub fn spawn(launch: &Launch, client: &TunnelClient, now_ms: u64) -> Result<Self, ClientError> {
        let mut child = Command::new(&launch.program)
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ClientError::Spawn {
                name: launch.name,
                source,
            })?;
        let output = Arc::new(Mutex::new(Output::default()));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_output(stdout, client.clone(), output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(read_output(stderr, client.clone(), output.clone()));
        }
        Ok(Self {
            child,
            output,
            started_ms: now_ms,
        })
    }

    /// What the client printed so far.
    pub fn output(&self) -> Output {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

/// Reads one of a client's streams: at most [`MAX_OUTPUT_BYTES`] are looked at, each line cut
/// to [`MAX_LINE`]; the rest is drained so the client never blocks on a full pipe.
async fn read_output(
    stream: impl AsyncRead + Unpin,
    client: TunnelClient,
    output: Arc<Mutex<Output>>,
) {
    let mut reader = BufReader::new(stream);
    let mut seen = 0usize;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = match (&mut reader)
            .take(u64::try_from(MAX_LINE).unwrap_or(u64::MAX))
            .read_until(b'\n', &mut buffer)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        seen = seen.saturating_add(read);
        if seen > MAX_OUTPUT_BYTES {
            continue;
        }
        let line = strip_ansi(&String::from_utf8_lossy(&buffer));
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Ok(mut output) = output.lock() {
            if output.url.is_none() {
                output.url = announced_url(&client, line)
                    .filter(|url| url.len() <= TunnelReport::MAX_URL_LEN);
            }
            output.last_line = Some(line.chars().take(TunnelReport::MAX_ERROR_LEN).collect());
        }
    }
}

/// `text` without ANSI escape sequences (colours a client prints despite `NO_COLOR`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;

    fn bore() -> TunnelClient {
        TunnelClient::Bore {
            server: "bore.example.com".into(),
            port: Some(4000),
        }
    }

    #[test]
    fn command_lines_keep_tokens_out_of_the_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("bore");
        std::fs::write(&binary, "").unwrap();
        let path = dir.path().display().to_string();
        let line = launch(
            &bore(),
            "127.0.0.1",
            8080,
            Some("s3"),
            &Binaries::default(),
            Some(&path),
        )
        .unwrap();
        assert_eq!(line.program, binary);
        assert_eq!(
            line.args.join(" "),
            "local 8080 --local-host 127.0.0.1 --to bore.example.com --port 4000"
        );
        assert!(line.env.contains(&("BORE_SECRET".into(), "s3".into())));
        let cloudflare = TunnelClient::Cloudflare {
            hostname: "shop.example.com".into(),
        };
        let missing = launch(
            &cloudflare,
            "127.0.0.1",
            80,
            Some("t"),
            &Binaries::default(),
            Some(&path),
        )
        .unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("cloudflared is not installed"),
            "{missing}"
        );
        assert!(matches!(
            launch(
                &cloudflare,
                "127.0.0.1",
                80,
                None,
                &Binaries::default(),
                None
            ),
            Err(ClientError::NoToken("cloudflare"))
        ));
        let configured = Binaries {
            ngrok: Some(dir.path().join("absent")),
            ..Binaries::default()
        };
        let ngrok = TunnelClient::Ngrok {
            hostname: "shop.ngrok.app".into(),
        };
        let err = launch(&ngrok, "127.0.0.1", 80, Some("t"), &configured, Some(&path)).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn urls_are_read_from_each_clients_output() {
        let line = strip_ansi(
            "\u{1b}[2m2024-01-01T00:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m bore_cli::client: listening at 127.0.0.1:4000",
        );
        assert_eq!(
            announced_url(&bore(), &line).as_deref(),
            Some("127.0.0.1:4000")
        );
        assert_eq!(announced_url(&bore(), "connected to server"), None);
        let cloudflare = TunnelClient::Cloudflare {
            hostname: "shop.example.com".into(),
        };
        assert_eq!(
            announced_url(&cloudflare, "INF Registered tunnel connection connIndex=0").as_deref(),
            Some("https://shop.example.com")
        );
        let ngrok = TunnelClient::Ngrok {
            hostname: "shop.ngrok.app".into(),
        };
        assert_eq!(
            announced_url(
                &ngrok,
                "t=1 lvl=info msg=\"started tunnel\" url=https://shop.ngrok.app"
            )
            .as_deref(),
            Some("https://shop.ngrok.app")
        );
    }
}
