//! The committed ABI + bytecode artifacts (the input of the alloy bindings) must be exactly what
//! the pinned solcjs produces from `solidity/` now.

use std::process::Command;

#[test]
fn artifacts_match_a_fresh_compile() {
    let dir = r1_contracts::devchain::contracts_dir().expect("the contracts directory");
    let output = Command::new("node")
        .arg("scripts/compile.cjs")
        .arg("--check")
        .current_dir(&dir)
        .output()
        .expect("run node (install it and `npm ci` in contracts/)");
    assert!(
        output.status.success(),
        "artifacts drifted from solidity/:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
