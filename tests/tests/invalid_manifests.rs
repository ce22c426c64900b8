//! Every manifest in `crds/examples/invalid/`, applied to a running oracle with the valid escrow
//! and project beside it, is refused with the field path and reason its `# expect:` lines name:
//! by `r1ctl` before sending, and by the oracle itself when a client sends it anyway. The set is
//! all-or-nothing, so nothing is stored and nothing changes on chain: no job is funded, no USDC
//! leaves the CSP.

use std::path::{Path, PathBuf};

use alloy::primitives::U256;
use r1_ctl::remote::{Client, RemoteError};
use r1_e2e::network::{CSP_USDC, Network, NetworkSettings};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/examples");

fn invalid_examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(EXAMPLES).join("invalid"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn expectations(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(|line| match line.split_once(" (first in ") {
            Some((reason, _)) => reason.to_owned(),
            None => line.to_owned(),
        })
        .collect()
}

#[test]
fn invalid_manifests_are_refused_with_their_field_and_change_nothing() {
    let mut network = Network::prepare(&NetworkSettings {
        oracles: 1,
        nodes: 0,
        ..NetworkSettings::default()
    })
    .unwrap();
    network.start_oracles().unwrap();
    let chain = network.chain();
    let csp_before = chain.usdc_balance(network.csp().address()).unwrap();
    assert_eq!(csp_before, U256::from(CSP_USDC) * U256::from(1_000_000u64));

    let mut problems = Vec::new();
    let files = invalid_examples();
    assert!(files.len() >= 30, "{files:?}");
    for file in &files {
        let expected = expectations(file);
        assert!(
            !expected.is_empty(),
            "{} names no expectation",
            file.display()
        );
        let output = network
            .r1ctl(&[
                "apply",
                "-f",
                &format!("{EXAMPLES}/escrow.yaml"),
                "-f",
                &format!("{EXAMPLES}/project.yaml"),
                "-f",
                &file.display().to_string(),
            ])
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            problems.push(format!("{}: accepted\n{said}", file.display()));
        }
        for line in &expected {
            if !said.contains(line.as_str()) {
                problems.push(format!("{}: missing {line:?} in\n{said}", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));

    let client = Client::new(&network.oracles()[0].api_url(), network.csp().clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let valid = format!(
        "{}\n---\n{}",
        std::fs::read_to_string(format!("{EXAMPLES}/escrow.yaml")).unwrap(),
        std::fs::read_to_string(format!("{EXAMPLES}/project.yaml")).unwrap()
    );
    for file in &files {
        let documents = format!("{}\n---\n{valid}", std::fs::read_to_string(file).unwrap());
        match runtime.block_on(client.apply(&documents)) {
            Err(RemoteError::Refused { status: 422, body }) => {
                let said: Vec<String> = body
                    .errors
                    .iter()
                    .map(|r| format!("{}: {}", r.path, r.message))
                    .collect();
                for line in expectations(file) {
                    if !said.iter().any(|s| s.contains(line.as_str())) {
                        problems.push(format!(
                            "{}: the oracle did not say {line:?}: {said:?}",
                            file.display()
                        ));
                    }
                }
            }
            other => problems.push(format!("{}: the oracle answered {other:?}", file.display())),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));

    for kind in ["djob", "dproj", "esc"] {
        let listed = network.r1ctl(&["get", kind, "-A", "-o", "json"]).unwrap();
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.status.success(),
            "r1ctl get {kind} failed: {text}{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        let list: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("r1ctl get {kind} printed no JSON ({e}): {text}"));
        assert_eq!(
            list["items"].as_array().map(Vec::len),
            Some(0),
            "nothing was stored, but {kind} lists:\n{text}"
        );
    }
    let open = chain
        .block_on(chain.gov().escrow_open_jobs(network.escrow()))
        .unwrap();
    assert!(open.is_empty(), "no job was funded: {open:?}");
    let totals = chain
        .block_on(chain.gov().escrow_totals(network.escrow()))
        .unwrap();
    assert_eq!(totals.deposited, U256::ZERO);
    assert_eq!(
        chain.usdc_balance(network.csp().address()).unwrap(),
        csp_before
    );
}
