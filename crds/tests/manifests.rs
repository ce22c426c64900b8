//! The example manifests validate, every manifest of the invalid corpus yields exactly the errors
//! written at its top, and the checked-in CRDs match the Rust types.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use r1_crds::check::{References, Source, check_sources};
use r1_crds::manifest::{Kind, Manifest};
use r1_crds::pricing::Catalogue;
use r1_crds::usdc::Usdc;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The YAML files directly in `dir`, sorted, named relative to the crate.
fn yaml_sources(dir: &Path) -> Vec<Source> {
    let mut paths: Vec<_> = std::fs::read_dir(crate_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| Source {
            name: path
                .strip_prefix(crate_dir())
                .unwrap()
                .display()
                .to_string(),
            text: std::fs::read_to_string(&path).unwrap(),
        })
        .collect()
}

#[test]
fn examples_are_valid_and_cover_every_kind() {
    let report = check_sources(
        &yaml_sources(Path::new("examples")),
        &Catalogue::builtin().unwrap(),
        References::WithinSet,
    );
    let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert!(
        findings.is_empty(),
        "examples have errors:\n{}",
        findings.join("\n")
    );
    for kind in Kind::ALL {
        assert!(
            report.resources.iter().any(|(_, _, m)| m.kind() == kind),
            "no {kind} example"
        );
    }
    let jobs_in_shop = report
        .resources
        .iter()
        .filter(|(_, _, m)| m.kind() == Kind::Job && m.namespace() == "shop")
        .count();
    assert!(
        jobs_in_shop >= 3,
        "the multi-job project has {jobs_in_shop} jobs"
    );
}

#[test]
fn invalid_corpus_reports_expected_field_errors() {
    let catalogue = Catalogue::builtin().unwrap();
    let examples = yaml_sources(Path::new("examples"));
    let corpus = yaml_sources(Path::new("examples/invalid"));
    assert!(
        corpus.len() >= 20,
        "the invalid corpus has only {} files",
        corpus.len()
    );
    let mut failures = Vec::new();
    for bad in &corpus {
        let expected: Vec<String> = bad
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_owned)
            .collect();
        assert!(!expected.is_empty(), "{} has no `# expect:` line", bad.name);
        let mut sources = examples.clone();
        sources.push(bad.clone());
        let report = check_sources(&sources, &catalogue, References::WithinSet);
        let other: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.source != bad.name)
            .collect();
        assert!(
            other.is_empty(),
            "{} broke other files: {other:?}",
            bad.name
        );
        let mut got: Vec<String> = report
            .findings
            .iter()
            .map(|f| f.error.to_string())
            .collect();
        let mut want = expected.clone();
        got.sort();
        want.sort();
        if got != want {
            failures.push(format!(
                "{}:\n  expected {want:#?}\n  got      {got:#?}",
                bad.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shop_example_prices_exactly() {
    let catalogue = Catalogue::builtin().unwrap();
    let report = check_sources(
        &yaml_sources(Path::new("examples")),
        &catalogue,
        References::WithinSet,
    );
    let estimate = |name: &str| {
        let job = report
            .resources
            .iter()
            .find_map(|(_, _, m)| match m {
                Manifest::Job(job) if m.name() == name && m.namespace() == "shop" => Some(job),
                _ => None,
            })
            .unwrap();
        catalogue.estimate(&job.spec).unwrap()
    };
    let web = estimate("web");
    assert_eq!(web.class.name, "entry");
    assert_eq!(web.price_per_epoch, Usdc(1_125_000));
    assert_eq!(web.total, Usdc(101_250_000));
    let db = estimate("db");
    assert_eq!(
        (db.class.name.as_str(), db.total),
        ("service-medium", Usdc(207_000_000))
    );
    let gpu = estimate("recommender");
    assert_eq!(
        (gpu.class.name.as_str(), gpu.total),
        ("gpu-small", Usdc(433_200_000))
    );
}

#[test]
fn checked_in_crds_match_the_types() {
    for (name, yaml) in r1_crds::crdgen::rendered().unwrap() {
        let on_disk = std::fs::read_to_string(crate_dir().join(&name)).unwrap_or_default();
        assert!(
            on_disk == yaml,
            "crds/{name} differs from the Rust types: run `cargo run -p r1-crds --bin crdgen` and commit the result"
        );
    }
}

#[test]
fn generated_crds_load_back_and_are_structural() {
    let definitions = r1_crds::crdgen::definitions();
    assert_eq!(definitions.len(), 4);
    for (crd, (name, yaml)) in definitions.iter().zip(r1_crds::crdgen::rendered().unwrap()) {
        let loaded: CustomResourceDefinition = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(&loaded, crd, "{name} does not round-trip");
        let version = &loaded.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{name}: no status subresource"
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(columns.contains(&"Age"), "{name}: no Age column");
        assert!(
            !loaded.spec.names.short_names.as_ref().unwrap().is_empty(),
            "{name}: no short name"
        );
        let schema = version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap();
        let violations = r1_crds::structural::violations(schema, &[]);
        assert!(
            violations.is_empty(),
            "{name} is not structural: {violations:#?}"
        );
        assert_described(schema, &name, "");
    }
}

/// Every property carries a description, so `kubectl explain` is useful everywhere.
fn assert_described(
    schema: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    crd: &str,
    path: &str,
) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray;
    for (name, child) in schema.properties.iter().flatten() {
        let child_path = format!("{path}.{name}");
        assert!(
            child.description.is_some(),
            "{crd}: {child_path} has no description"
        );
        assert_described(child, crd, &child_path);
        if let Some(JSONSchemaPropsOrArray::Schema(item)) = &child.items {
            assert_described(item, crd, &child_path);
        }
    }
}

#[test]
fn job_columns_show_phase_ready_and_budget() {
    let crd = r1_crds::crdgen::definitions()
        .into_iter()
        .find(|c| c.spec.names.kind == "DeeployJob")
        .unwrap();
    let version = &crd.spec.versions[0];
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    for expected in [
        ("Phase", ".status.phase"),
        ("Ready", ".status.ready"),
        ("Budget Left", ".status.budgetLeft"),
        ("Age", ".metadata.creationTimestamp"),
    ] {
        assert!(
            columns.contains(&expected),
            "missing column {expected:?} in {columns:?}"
        );
    }
    assert_eq!(crd.spec.names.short_names, Some(vec!["djob".to_owned()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["r1".to_owned()]));
}
