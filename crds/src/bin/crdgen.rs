//! Writes the r1 CRDs to `crds/*.yaml`, or with `--check` exits non-zero when the checked-in
//! files differ from what the Rust types generate.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(_) => {
            eprintln!(
                "usage: crdgen [--check]\n  writes crds/*.yaml from the Rust types; --check only compares"
            );
            return ExitCode::from(2);
        }
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let files = match r1_crds::crdgen::rendered() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRDs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = Vec::new();
    for (name, yaml) in files {
        let path = dir.join(&name);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(yaml.as_str()) {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else if let Err(e) = std::fs::write(&path, yaml) {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    if stale.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "crdgen: these CRDs differ from the Rust types:\n  {}\nrun `cargo run -p r1-crds --bin crdgen` and commit the result",
        stale.join("\n  ")
    );
    ExitCode::FAILURE
}
