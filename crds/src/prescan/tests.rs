use super::*;

fn refused(text: &str) -> Refusal {
    prescan(text).expect_err("should be refused")
}

#[test]
fn ordinary_block_and_flow_yaml_passes() {
    let text = "\
# a comment with & and * in it: &x *y
apiVersion: v1 # trailing & comment *z
kind: Thing
metadata: {name: a, labels: {app: \"x&y\"}}
spec:
  quoted: \"a*b\"
  single: '&x'
  plain: a&b*c
  flow: [\"*y\", '&z', {k: \"*\"}]
  block: |
    &anchor-looking text
    *alias-looking text
---
{\"json\": [1, 2, {\"nested\": \"*not-an-alias\"}]}
";
    assert_eq!(prescan(text), Ok(()));
}

#[test]
fn anchors_are_refused_at_their_path() {
    let r = refused("a: 1\nspec:\n  ports:\n  - name: x\n  - &p {name: y}\n");
    assert_eq!(r.document, 1);
    assert_eq!(r.error.path, "spec.ports[1]");
    assert!(r.error.message.contains("anchors"), "{}", r.error.message);
    assert!(r.error.message.contains("never need them"));
    assert!(!r.syntax);
}

#[test]
fn aliases_are_refused_even_to_unknown_anchors() {
    let r = refused("a: b\n---\nx: *nowhere\n");
    assert_eq!(r.document, 2);
    assert!(r.error.message.contains("aliases"), "{}", r.error.message);
    assert!(!r.syntax);
}

#[test]
fn the_billion_laughs_is_refused_at_its_first_anchor() {
    let mut text = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip("abcdefgh".chars())
    {
        let row = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{row}]\n"));
    }
    let r = refused(&text);
    assert_eq!(r.error.path, "a");
    assert!(r.error.message.contains("anchors"));
}

#[test]
fn nesting_is_bounded() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(prescan(&deep(MAX_DEPTH)), Ok(()));
    let r = refused(&deep(MAX_DEPTH + 1));
    assert!(
        r.error.message.contains("nested more than 32"),
        "{}",
        r.error.message
    );
    let r = refused(&format!("spec:\n  env: {}\n", deep(MAX_DEPTH)));
    assert_eq!(
        r.error.path,
        "spec.env[0][0]".to_owned() + &"[0]".repeat(MAX_DEPTH - 4)
    );
}

#[test]
fn documents_are_counted() {
    let docs = |n: usize| "---\na: 1\n".repeat(n);
    assert_eq!(prescan(&docs(MAX_DOCUMENTS)), Ok(()));
    let r = refused(&docs(MAX_DOCUMENTS + 1));
    assert_eq!(r.document, MAX_DOCUMENTS + 1);
    assert!(r.error.message.contains("at most 100 documents"));
}

#[test]
fn size_and_node_count_are_bounded() {
    let r = refused(&" ".repeat(MAX_MANIFEST_BYTES + 1));
    assert!(r.error.message.contains("bytes"), "{}", r.error.message);
    let many = format!("[{}]", vec!["1"; MAX_NODES].join(","));
    let r = refused(&many);
    assert!(
        r.error.message.contains("at most 50000 YAML values"),
        "{}",
        r.error.message
    );
}

#[test]
fn syntax_errors_name_their_document() {
    let r = refused("a: 1\n---\nb: [\n");
    assert!(r.syntax);
    assert_eq!(r.document, 2);
    assert!(r.error.message.starts_with("YAML syntax error: "));
}
