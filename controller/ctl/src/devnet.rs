//! Where a running devnet is, for `r1ctl devnet status` and for a shell: the devnet writes an
//! `env` file of `export NAME=value` lines (`R1_SERVER`, `R1_KEY`, `R1_RPC_URL`, and `PATH`
//! with the directory of the devnet's own `r1ctl` first) into its directory, which `source`
//! reads as well as this module does: the hint the devnet prints works in a fresh shell.

use std::path::{Path, PathBuf};

/// What follows the devnet's bin directory in the `PATH` line: the shell's own `PATH`.
const PATH_TAIL: &str = ":\"$PATH\"";

/// The devnet's directory when `R1_DEVNET_DIR` does not say otherwise.
pub const DEFAULT_DIR: &str = "/tmp/r1-devnet";

/// The file in the devnet directory that holds the environment.
pub const ENV_FILE: &str = "env";

/// Why the devnet's environment cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DevnetEnvError {
    /// No devnet wrote its file there (none runs, or it runs with another directory).
    #[error("no devnet found: cannot read {path} ({source}); start one with `make devnet`")]
    Missing {
        /// The env file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A variable the devnet always writes is absent.
    #[error("{path} does not set {name}")]
    Incomplete {
        /// The env file.
        path: PathBuf,
        /// The missing variable.
        name: &'static str,
    },
}

/// How to reach a devnet as its CSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevnetEnv {
    /// Deeploy API of the first oracle (`R1_SERVER`).
    pub server: String,
    /// The CSP's key file (`R1_KEY`).
    pub key: PathBuf,
    /// The chain's JSON-RPC endpoint (`R1_RPC_URL`).
    pub rpc_url: String,
    /// The directory of the devnet's `r1ctl`, put first on a sourcing shell's `PATH`.
    pub bin_dir: Option<PathBuf>,
}

impl DevnetEnv {
    /// The file's text: one `export` line per variable, values single-quoted for the shell.
    pub fn render(&self) -> String {
        let mut text = format!(
            "export R1_SERVER={}\nexport R1_KEY={}\nexport R1_RPC_URL={}\n",
            quoted(&self.server),
            quoted(&self.key.to_string_lossy()),
            quoted(&self.rpc_url)
        );
        if let Some(dir) = &self.bin_dir {
            text.push_str(&format!(
                "export PATH={}{PATH_TAIL}\n",
                quoted(&dir.to_string_lossy())
            ));
        }
        text
    }

    /// Writes the file into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join(ENV_FILE), self.render())
    }

    /// Reads the file from `dir`.
    pub fn read(dir: &Path) -> Result<Self, DevnetEnvError> {
        let path = dir.join(ENV_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| DevnetEnvError::Missing {
            path: path.clone(),
            source,
        })?;
        let value = |name: &'static str| {
            text.lines()
                .filter_map(|line| line.trim().strip_prefix("export "))
                .filter_map(|assignment| assignment.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| unquoted(value))
                .ok_or(DevnetEnvError::Incomplete {
                    path: path.clone(),
                    name,
                })
        };
        let bin_dir = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("export PATH="))
            .find_map(|value| value.strip_suffix(PATH_TAIL))
            .map(|dir| PathBuf::from(unquoted(dir)));
        Ok(Self {
            server: value("R1_SERVER")?,
            key: PathBuf::from(value("R1_KEY")?),
            rpc_url: value("R1_RPC_URL")?,
            bin_dir,
        })
    }
}

/// The devnet directory: `R1_DEVNET_DIR`, else [`DEFAULT_DIR`].
pub fn dir_from_env() -> PathBuf {
    std::env::var_os("R1_DEVNET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn unquoted(value: &str) -> String {
    let value = value.trim();
    match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace(r"'\''", "'"),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> DevnetEnv {
        DevnetEnv {
            server: "http://127.0.0.1:41000".into(),
            key: PathBuf::from("/tmp/r1w it's/csp.key"),
            rpc_url: "http://127.0.0.1:8545".into(),
            bin_dir: Some(PathBuf::from("/tmp/r1w it's/bin")),
        }
    }

    #[test]
    fn the_file_reads_back_what_was_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        env().write(dir.path()).expect("written");
        assert_eq!(DevnetEnv::read(dir.path()).expect("read"), env());
    }

    #[test]
    fn a_shell_reads_the_same_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        env().write(dir.path()).expect("written");
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                ". {}/env && printf '%s|%s|%s' \"$R1_SERVER\" \"$R1_KEY\" \"$R1_RPC_URL\"",
                dir.path().display()
            ))
            .output()
            .expect("sh runs");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "http://127.0.0.1:41000|/tmp/r1w it's/csp.key|http://127.0.0.1:8545"
        );
    }

    #[test]
    fn a_fresh_shell_finds_the_devnets_r1ctl() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let tool = bin.join("r1ctl");
        std::fs::write(&tool, "#!/bin/sh\necho devnet r1ctl\n").expect("script");
        let mut permissions = std::fs::metadata(&tool).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&tool, permissions).expect("chmod");
        DevnetEnv {
            bin_dir: Some(bin),
            ..env()
        }
        .write(dir.path())
        .expect("written");
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". '{}/env' && r1ctl", dir.path().display()))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "devnet r1ctl\n");
    }

    #[test]
    fn no_devnet_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = DevnetEnv::read(dir.path()).expect_err("nothing there");
        assert!(error.to_string().contains("make devnet"), "{error}");
        std::fs::write(dir.path().join(ENV_FILE), "export R1_SERVER=x\n").expect("written");
        let error = DevnetEnv::read(dir.path()).expect_err("incomplete");
        assert!(error.to_string().contains("R1_KEY"), "{error}");
    }
}
