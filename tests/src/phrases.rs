//! The log lines scenarios count, checked against the source that writes them: a test that
//! counts a phrase no binary logs any more passes whatever happens, so every count goes through
//! [`count`], which first makes sure the phrase is still in the code.

use std::path::{Path, PathBuf};

/// The source trees whose log phrases scenarios count: the oracle, r1ctl, the node agent and its
/// crates, and the devnet.
const SOURCES: [&str; 3] = ["controller", "node-agent", "tests/src/bin"];

/// Whether some Rust file of those trees contains `phrase`.
pub fn in_source(phrase: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    SOURCES
        .iter()
        .flat_map(|dir| rust_files(&root.join(dir)))
        .any(|file| std::fs::read_to_string(file).is_ok_and(|text| text.contains(phrase)))
}

/// Panics unless `phrase` is still logged by some binary.
pub fn assert_in_source(phrase: &str) {
    assert!(
        in_source(phrase),
        "no binary logs {phrase:?} any more: the test counting it could not fail; \
         adapt it to what the code logs now"
    );
}

/// How many lines of `log` contain `phrase` (which must still be in the source).
pub fn count(log: &str, phrase: &str) -> usize {
    assert_in_source(phrase);
    log.lines().filter(|line| line.contains(phrase)).count()
}

/// The lines of `log` that contain `phrase` (which must still be in the source).
pub fn lines<'a>(log: &'a str, phrase: &str) -> Vec<&'a str> {
    assert_in_source(phrase);
    log.lines().filter(|line| line.contains(phrase)).collect()
}

/// The value of structured field `name` in one log line (`name=value`, colours removed).
pub fn field(line: &str, name: &str) -> Option<String> {
    let plain = without_colours(line);
    let prefix = format!("{name}=");
    plain
        .split_whitespace()
        .find_map(|word| word.strip_prefix(prefix.as_str()).map(str::to_owned))
}

/// `line` without its ANSI colour sequences (`ESC [ … m`).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for skipped in chars.by_ref() {
                if skipped == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phrase_the_oracle_logs_is_found_and_an_invented_one_is_not() {
        assert!(in_source("stopping workload"));
        assert!(!in_source("stopping replica because the moon is full"));
    }

    #[test]
    fn fields_are_read_through_colours() {
        let line = "\u{1b}[2m2026-12-05T14:32:57Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m deploying replica \
                    \u{1b}[3mjob\u{1b}[0m\u{1b}[2m=\u{1b}[0m1 \u{1b}[3mreplica\u{1b}[0m\u{1b}[2m=\u{1b}[0m0";
        assert_eq!(field(line, "job").as_deref(), Some("1"));
        assert_eq!(field(line, "replica").as_deref(), Some("0"));
        assert_eq!(field(line, "node"), None);
        assert_eq!(field("job=7 replica=1", "job").as_deref(), Some("7"));
    }
}
