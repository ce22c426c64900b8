//! `r1-oracle` as an operator runs it: version and configuration checks. `run` is exercised
//! against a real network in `tests/tests/oracle_network.rs`.

use std::process::{Command, Output};

fn oracle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_r1-oracle"))
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
    let out = oracle(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out).trim(),
        format!("r1-oracle {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_loads_config_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("oracle.key");
    let identity = r1_protocol::keyfile::create(&key).unwrap();
    let config = dir.path().join("oracle.yaml");
    std::fs::write(
        &config,
        format!(
            "keyFile: {}\ndataDir: {}\nchain: {{ rpcUrl: \"http://127.0.0.1:8545\", chainId: 31337, poaiManager: \"0x5FbDB2315678afecb367f032d93F642f64180aa3\" }}\nbroker: {{ topicRoot: r1/devnet }}\napi: {{ listen: \"127.0.0.1:8080\" }}\nepoch: {{ genesisUnix: 1790000000, lengthSeconds: 20 }}\n",
            key.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = oracle(&["--config", config.to_str().unwrap(), "check-config"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&identity.address().to_checksum(None)));
}

#[test]
fn missing_config_is_a_clear_error() {
    let out = oracle(&["--config", "/nonexistent/oracle.yaml", "check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("cannot read config file /nonexistent/oracle.yaml"),
        "{}",
        text(&out)
    );
}
