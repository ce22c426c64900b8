//! `r1-node` as an operator runs it: version, configuration and key checks.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn node(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_r1-node"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn prints_version() {
    let out = node(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out).trim(),
        format!("r1-node {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_loads_config_and_refuses_an_open_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    let identity = r1_protocol::keyfile::create(&key).unwrap();
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!(
            "keyFile: {}\ndataDir: {}\nalias: edge-1\noracles: [\"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"]\nbroker: {{ url: \"mqtt://127.0.0.1:1883\", topicRoot: r1/devnet }}\napiSocket: {}/api.sock\n",
            key.display(),
            dir.path().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = node(&["--config", config.to_str().unwrap(), "check-config"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&identity.address().to_checksum(None)));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = node(&["--config", config.to_str().unwrap(), "check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("accessible by group or others"),
        "{}",
        text(&out)
    );
}
