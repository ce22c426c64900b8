//! A replica's interface beyond loopback: once its task is created, before its program runs,
//! its network namespace (made by the runtime, owned by the replica's user namespace) is
//! pinned under `/run/netns`, the
//! standard CNI plugins' `bridge` (with `host-local` addresses and NAT to the node's uplink)
//! gives it an `eth0`, and the egress rules are set inside it (`nsenter … iptables`). When the
//! container is removed, the address and NAT rules are released and the namespace unpinned.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::egress::{Cidr, Egress, EgressMode, rules};

/// The node's container network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkConfig {
    /// What replicas may reach outside the node.
    #[serde(default)]
    pub egress: Egress,
    /// The bridge replicas' interfaces are attached to (at most 15 characters).
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// The replicas' addresses; the bridge takes the first.
    #[serde(default = "default_subnet")]
    pub subnet: Cidr,
    /// Where the CNI plugins are (Debian's `containernetworking-plugins`).
    #[serde(default = "default_cni_path")]
    pub cni_path: PathBuf,
}

fn default_bridge() -> String {
    "r1br0".into()
}

fn default_subnet() -> Cidr {
    Cidr {
        addr: std::net::Ipv4Addr::new(10, 88, 0, 0),
        prefix: 16,
    }
}

fn default_cni_path() -> PathBuf {
    PathBuf::from("/usr/lib/cni")
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            egress: Egress::default(),
            bridge: default_bridge(),
            subnet: default_subnet(),
            cni_path: default_cni_path(),
        }
    }
}

/// Why a replica's network cannot be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A tool could not be run.
    #[error("cannot run {tool}: {source}")]
    Spawn {
        /// The tool.
        tool: String,
        /// Why.
        source: std::io::Error,
    },
    /// A tool failed.
    #[error("{tool} failed: {output}")]
    Failed {
        /// The tool and what it did.
        tool: String,
        /// What it printed.
        output: String,
    },
    /// What the config needs is missing on this host.
    #[error("{0}")]
    Missing(String),
}

/// The CNI network configuration of `config`, with addresses kept under `ipam_dir`.
pub fn cni_config(config: &NetworkConfig, ipam_dir: &Path) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": format!("r1-{}", config.bridge),
        "type": "bridge",
        "bridge": config.bridge,
        "isGateway": true,
        "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "subnet": config.subnet.text(),
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": ipam_dir,
        }
    })
}

/// The name a replica's network namespace is pinned under (`ip netns`).
pub fn netns_name(container: &str) -> String {
    format!("r1-{container}")
}

/// Where a replica's network namespace is pinned.
pub fn netns_path(container: &str) -> PathBuf {
    Path::new("/run/netns").join(netns_name(container))
}

/// The node's container networks.
#[derive(Debug, Clone)]
pub struct Networks {
    config: NetworkConfig,
    ipam_dir: PathBuf,
}

impl Networks {
    /// Networks as `config` says, with addresses kept under `ipam_dir`.
    pub fn new(config: NetworkConfig, ipam_dir: PathBuf) -> Self {
        Self { config, ipam_dir }
    }

    /// Whether replicas get an interface at all.
    pub fn enabled(&self) -> bool {
        self.config.egress.mode != EgressMode::None
    }

    /// Checks that this host has what the config needs: the plugins and `iptables`.
    pub fn check(&self) -> Result<(), NetworkError> {
        if !self.enabled() {
            return Ok(());
        }
        for plugin in ["bridge", "host-local"] {
            let path = self.config.cni_path.join(plugin);
            if !path.exists() {
                return Err(NetworkError::Missing(format!(
                    "network.egress needs the CNI plugin {} (Debian: containernetworking-plugins), or set network.egress.mode: none",
                    path.display()
                )));
            }
        }
        run("iptables", &["--version"]).map_err(|_| {
            NetworkError::Missing(
                "network.egress needs iptables on the node, or set network.egress.mode: none"
                    .into(),
            )
        })
    }

    /// Gives the namespace of `container`'s task `pid` its interface and egress rules. The
    /// namespace is pinned as `/run/netns/r1-<container>` until [`Networks::detach`], so the
    /// address and NAT rules can be released whole after the task is gone; a namespace pinned
    /// for an earlier task of the container is released first.
    pub fn attach(&self, container: &str, pid: u32) -> Result<(), NetworkError> {
        if !self.enabled() {
            return Ok(());
        }
        self.detach(container)?;
        let name = netns_name(container);
        run("ip", &["netns", "attach", &name, &pid.to_string()])?;
        let path = netns_path(container);
        let path = path.to_string_lossy();
        self.cni("ADD", container, &path)?;
        let nsenter = format!("--net={path}");
        for rule in rules(&self.config.egress, self.config.subnet) {
            let mut args = vec![nsenter.as_str(), "iptables", "-w"];
            args.extend(rule.iter().map(String::as_str));
            run("nsenter", &args)?;
        }
        Ok(())
    }

    /// Releases `container`'s address and NAT rules and unpins its namespace.
    pub fn detach(&self, container: &str) -> Result<(), NetworkError> {
        let path = netns_path(container);
        if !self.enabled() || !path.exists() {
            return Ok(());
        }
        self.cni("DEL", container, &path.to_string_lossy())?;
        run("ip", &["netns", "delete", &netns_name(container)])
    }

    fn cni(&self, command: &str, container: &str, netns: &str) -> Result<(), NetworkError> {
        let plugin = self.config.cni_path.join("bridge");
        let stdin = cni_config(&self.config, &self.ipam_dir).to_string();
        let spawn = |source| NetworkError::Spawn {
            tool: plugin.display().to_string(),
            source,
        };
        let mut child = Command::new(&plugin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.config.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn)?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).map_err(spawn)?;
        }
        let output = child.wait_with_output().map_err(spawn)?;
        if !output.status.success() {
            return Err(NetworkError::Failed {
                tool: format!("CNI bridge {command}"),
                output: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            });
        }
        Ok(())
    }
}

/// Runs `tool` with `args`; what it printed on stderr when it fails.
fn run(tool: &str, args: &[&str]) -> Result<(), NetworkError> {
    let output = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| NetworkError::Spawn {
            tool: tool.into(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetworkError::Failed {
            tool: format!("{tool} {}", args.join(" ")),
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cni_config_is_a_bridge_with_nat_and_host_local_addresses() {
        let config = NetworkConfig::default();
        let cni = cni_config(&config, Path::new("/var/lib/r1/cni"));
        assert_eq!(cni["type"], "bridge");
        assert_eq!(cni["bridge"], "r1br0");
        assert_eq!(cni["ipMasq"], true);
        assert_eq!(cni["ipam"]["subnet"], "10.88.0.0/16");
        assert_eq!(cni["ipam"]["dataDir"], "/var/lib/r1/cni");
    }

    #[test]
    fn missing_plugins_are_named() {
        let config = NetworkConfig {
            cni_path: PathBuf::from("/nonexistent/cni"),
            ..NetworkConfig::default()
        };
        let error = Networks::new(config, PathBuf::from("/tmp"))
            .check()
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/cni/bridge"),
            "{error}"
        );
        let off = NetworkConfig {
            egress: Egress {
                mode: EgressMode::None,
                ..Egress::default()
            },
            cni_path: PathBuf::from("/nonexistent/cni"),
            ..NetworkConfig::default()
        };
        assert!(Networks::new(off, PathBuf::from("/tmp")).check().is_ok());
    }
}
