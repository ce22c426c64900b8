//! Hostile manifests cost little to refuse: an alias bomb, deep nesting and too many documents
//! are refused from the YAML event stream, before serde_yaml builds any value.

use std::time::{Duration, Instant};

use r1_crds::manifest::parse_documents;
use r1_crds::prescan::{MAX_DEPTH, MAX_DOCUMENTS};

/// The "billion laughs": ten levels of nine aliases each, 10^9 leaves from under 1 KB.
fn alias_bomb() -> String {
    let mut text = String::from(
        "apiVersion: v1\nkind: DeeployJob\na: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n",
    );
    let names: Vec<char> = "abcdefghij".chars().collect();
    for pair in names.windows(2) {
        let row = vec![format!("*{}", pair[0]); 9].join(",");
        text.push_str(&format!("{}: &{} [{row}]\n", pair[1], pair[1]));
    }
    text
}

/// The process's peak resident memory in KiB (Linux), to show a refusal allocated little.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn only_error(text: &str) -> (usize, String) {
    let documents = parse_documents(text);
    assert_eq!(documents.len(), 1, "{documents:?}");
    let errors = documents[0]
        .result
        .clone()
        .expect_err("the manifest should be refused");
    assert_eq!(errors.len(), 1);
    (documents[0].index, errors[0].to_string())
}

#[test]
fn hostile_manifests_are_refused_quickly_and_cheaply() {
    let bomb = alias_bomb();
    assert!(bomb.len() < 1024);
    let before = peak_rss_kib();
    let start = Instant::now();
    let (index, error) = only_error(&bomb);
    let elapsed = start.elapsed();
    assert_eq!(index, 1);
    assert!(
        error.starts_with("a: YAML anchors (&name) are not accepted"),
        "{error}"
    );
    assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        assert!(
            after - before < 16 * 1024,
            "peak grew by {} KiB",
            after - before
        );
    }

    let deep = format!("spec: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let (_, error) = only_error(&deep);
    assert!(
        error.contains(&format!("nested more than {MAX_DEPTH} levels")),
        "{error}"
    );

    let many = "---\napiVersion: v1\n".repeat(MAX_DOCUMENTS + 1);
    let (index, error) = only_error(&many);
    assert_eq!(index, MAX_DOCUMENTS + 1);
    assert!(error.contains("at most 100 documents"), "{error}");
}

#[test]
fn syntax_errors_keep_serde_yaml_wording_after_good_documents() {
    let text = "a: 1\n---\nb: [\n";
    let (index, error) = only_error(text);
    assert_eq!(index, 2);
    assert!(error.starts_with("YAML syntax error: "), "{error}");
    assert!(
        !error.contains(" at byte "),
        "serde_yaml's wording, not the pre-scan's: {error}"
    );
}
