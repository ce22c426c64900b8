//! `r1ctl` as a user runs it: exit codes and output of validate, estimate and keys.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions, where the usual exemption does not reach

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/examples")
}

fn r1ctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_r1ctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn validate_accepts_the_examples() {
    let dir = examples();
    let out = r1ctl(&["validate", "-f", dir.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("15 resources in 6 files are valid"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_reports_each_error_with_its_path_and_fails() {
    let dir = examples();
    let bad = dir.join("invalid/memory-not-a-quantity.yaml");
    let out = r1ctl(
        &[
            "validate",
            "-f",
            dir.to_str().unwrap(),
            "-f",
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(
            "DeeployJob default/broken: spec.resources.memory: \"12XB\" is not a quantity"
        ),
        "{text}"
    );
    assert!(text.contains("1 errors in 7 files"), "{text}");
}

#[test]
fn validate_reads_multi_document_stdin() {
    let project = std::fs::read_to_string(examples().join("project.yaml")).unwrap();
    let broken = "apiVersion: deeploy.ratio1.ai/v1alpha1\nkind: Tunnel\nmetadata: { name: t }\nspec:\n  provider: ngrok\n  hostname: x\n  tokenSecretRef: { name: s, key: k }\n";
    let out = r1ctl(
        &["validate", "-f", "-"],
        Some(&format!("{project}---\n{broken}")),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(
            "-: Tunnel default/t: spec.hostname: \"x\" is not a fully qualified hostname"
        ),
        "{text}"
    );
    let out = r1ctl(&["validate", "-f", "-"], Some(&project));
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn validate_can_skip_references_to_objects_elsewhere() {
    let job = examples().join("job-http.yaml");
    let out = r1ctl(&["validate", "-f", job.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("spec.projectRef.name: DeeployProject \"hello\" not found"));
    let out = r1ctl(
        &["validate", "--skip-refs", "-f", job.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn estimate_prints_price_per_epoch_and_total() {
    let job = examples().join("job-http.yaml");
    let out = r1ctl(&["estimate", "-f", job.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with("default/hello-web"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "default/hello-web",
            "micro",
            "0.10",
            "2",
            "0.20",
            "30",
            "6.00"
        ]
    );
    assert!(
        text.contains("total to lock in escrow: 6.00 USDC"),
        "{text}"
    );

    let shop = examples().join("shop-project.yaml");
    let out = r1ctl(&["estimate", "-f", shop.to_str().unwrap()], None);
    assert!(
        stdout(&out).contains("total to lock in escrow: 876.45 USDC"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn estimate_uses_a_catalogue_file() {
    let dir = tempfile::tempdir().unwrap();
    let catalogue = dir.path().join("prices.yaml");
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/pricing/catalogue.yaml"),
    )
    .unwrap();
    std::fs::write(&catalogue, builtin.replace("\"0.10\"", "\"0.12\"")).unwrap();
    let job = examples().join("job-http.yaml");
    let out = r1ctl(
        &[
            "--catalogue",
            catalogue.to_str().unwrap(),
            "estimate",
            "-f",
            job.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        stdout(&out).contains("total to lock in escrow: 7.20 USDC"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn estimate_refuses_invalid_jobs() {
    let bad = examples().join("invalid/too-few-epochs.yaml");
    let out = r1ctl(&["estimate", "-f", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("spec.durationEpochs: 10 is below the minimum of 30 epochs"));
}

#[test]
fn keys_new_writes_an_owner_only_file_and_show_refuses_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("csp.key");
    let out = r1ctl(&["keys", "new", "--out", key.to_str().unwrap()], None);
    assert!(out.status.success());
    let address = stdout(&out).trim().to_owned();
    assert!(
        address.starts_with("0x") && address.len() == 42,
        "{address}"
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let shown = r1ctl(&["keys", "show", key.to_str().unwrap()], None);
    assert_eq!(stdout(&shown).trim(), address);

    let again = r1ctl(&["keys", "new", "--out", key.to_str().unwrap()], None);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = r1ctl(&["keys", "show", key.to_str().unwrap()], None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("chmod 600"));
}
