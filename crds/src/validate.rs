//! Checks beyond the schema, shared by every way a resource enters r1: `r1ctl validate`, the
//! Deeploy API and the Kubernetes reconciler all call [`validate`].

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::common::SealedValue;
use crate::field::{Errors, FieldError};
use crate::job::{
    DeeployJobSpec, EnvVar, HealthCheck, ImagePullSecret, JobType, MAX_REPLICAS, Port,
};
use crate::manifest::{Kind, Manifest};
use crate::names;
use crate::pricing::{Catalogue, EstimateError, PricingError};
use crate::{DeeployProjectSpec, EscrowSpec, TunnelSpec};
use r1_protocol::image_ref::ImageRef;
use r1_protocol::oracle_sealed::{MAX_COPY_HEX, MAX_ORACLES, MIN_COPY_HEX};

/// Longest port name (an IANA service name).
const PORT_NAME_MAX: usize = 15;
/// Longest free-text description kept in a project.
const DESCRIPTION_MAX: usize = 1024;

/// Where validation looks up the objects a resource refers to.
pub trait ResourceIndex {
    /// The resource of `kind` named `name` in `namespace`, if it is known.
    fn lookup(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Manifest>;
}

/// An index over a set of manifests read together (the files given to `r1ctl validate`).
#[derive(Debug, Default)]
pub struct ManifestSet {
    by_key: HashMap<(Kind, String, String), Manifest>,
}

impl ManifestSet {
    /// Adds `manifest`; returns the one already present under the same kind, namespace and name.
    pub fn insert(&mut self, manifest: Manifest) -> Option<Manifest> {
        let key = (
            manifest.kind(),
            manifest.namespace().to_owned(),
            manifest.name().to_owned(),
        );
        self.by_key.insert(key, manifest)
    }
}

impl ResourceIndex for ManifestSet {
    fn lookup(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Manifest> {
        self.by_key
            .get(&(kind, namespace.to_owned(), name.to_owned()))
    }
}

/// Every problem with `manifest`. References are checked against `index` when one is given;
/// without one (a lone file validated offline) only their syntax is checked.
pub fn validate(
    manifest: &Manifest,
    catalogue: &Catalogue,
    index: Option<&dyn ResourceIndex>,
) -> Vec<FieldError> {
    let mut errors = Errors::default();
    validate_metadata(manifest, &mut errors);
    let refs = RefChecker {
        index,
        namespace: manifest.namespace(),
    };
    match manifest {
        Manifest::Project(p) => validate_project(&p.spec, &mut errors),
        Manifest::Job(j) => validate_job(&j.spec, catalogue, &refs, &mut errors),
        Manifest::Tunnel(t) => validate_tunnel(&t.spec, &mut errors),
        Manifest::Escrow(e) => validate_escrow(&e.spec, &mut errors),
    }
    errors.into_vec()
}

fn validate_metadata(manifest: &Manifest, errors: &mut Errors) {
    let meta = manifest.metadata();
    match meta.name.as_deref() {
        None | Some("") => errors.add("metadata.name", "is required"),
        Some(name) => {
            errors.check("metadata.name", names::dns_label(name));
        }
    }
    if let Some(namespace) = meta.namespace.as_deref() {
        errors.check("metadata.namespace", names::dns_label(namespace));
    }
}

/// Most projects one project grants CSTORE reads to.
const CSTORE_READERS_MAX: usize = 64;
/// Most rules of a project's network policy, and most jobs one rule names on each side.
const CALL_RULES_MAX: usize = 64;

fn validate_project(spec: &DeeployProjectSpec, errors: &mut Errors) {
    errors.check("spec.owner", names::evm_address(&spec.owner));
    if spec.cstore_readers.len() > CSTORE_READERS_MAX {
        errors.add(
            "spec.cstoreReaders",
            format!("lists more than {CSTORE_READERS_MAX} projects"),
        );
    }
    for (i, reader) in spec.cstore_readers.iter().enumerate() {
        errors.check(format!("spec.cstoreReaders[{i}]"), names::dns_label(reader));
    }
    if let Some(policy) = &spec.network_policy {
        if policy.allow.len() > CALL_RULES_MAX {
            errors.add(
                "spec.networkPolicy.allow",
                format!("has more than {CALL_RULES_MAX} rules"),
            );
        }
        for (i, rule) in policy.allow.iter().enumerate() {
            for (side, names_) in [("from", &rule.from), ("to", &rule.to)] {
                if names_.is_empty() || names_.len() > CALL_RULES_MAX {
                    errors.add(
                        format!("spec.networkPolicy.allow[{i}].{side}"),
                        format!("must name 1 to {CALL_RULES_MAX} jobs"),
                    );
                }
                for (j, name) in names_.iter().enumerate() {
                    errors.check(
                        format!("spec.networkPolicy.allow[{i}].{side}[{j}]"),
                        names::dns_label(name),
                    );
                }
            }
        }
    }
    if let Some(description) = &spec.description {
        if description.chars().count() > DESCRIPTION_MAX {
            errors.add(
                "spec.description",
                format!("is longer than {DESCRIPTION_MAX} characters"),
            );
        }
    }
}

fn validate_tunnel(spec: &TunnelSpec, errors: &mut Errors) {
    use crate::tunnel::TunnelProvider;
    match (&spec.token_secret_ref, &spec.sealed_token) {
        (Some(secret), None) => validate_secret_ref(secret, "spec.tokenSecretRef", errors),
        (None, Some(sealed)) => validate_sealed(sealed, "spec.sealedToken", errors),
        (Some(_), Some(_)) => errors.add(
            "spec.tokenSecretRef",
            "set at most one of tokenSecretRef and sealedToken",
        ),
        (None, None) if spec.provider != TunnelProvider::Bore => errors.add(
            "spec.tokenSecretRef",
            format!(
                "a {} tunnel needs its token: set tokenSecretRef or sealedToken",
                spec.provider.as_str()
            ),
        ),
        (None, None) => {}
    }
    match (spec.provider, &spec.hostname, &spec.bore) {
        (TunnelProvider::Bore, None, Some(bore)) => {
            if names::hostname(&bore.server).is_err()
                && bore.server.parse::<std::net::IpAddr>().is_err()
                && bore.server != "localhost"
            {
                errors.add(
                    "spec.bore.server",
                    format!("{:?} is neither a hostname nor an IP address", bore.server),
                );
            }
            if bore.port.is_some_and(|port| port < 1024) {
                errors.add("spec.bore.port", "must be 1024-65535");
            }
        }
        (TunnelProvider::Bore, _, None) => errors.add(
            "spec.bore",
            "a bore tunnel names its server: spec.bore.server",
        ),
        (TunnelProvider::Bore, Some(_), _) => errors.add(
            "spec.hostname",
            "a bore tunnel's URL is its server and port; set no hostname",
        ),
        (_, hostname, bore) => {
            match hostname {
                Some(hostname) => {
                    errors.check("spec.hostname", names::hostname(hostname));
                }
                None => errors.add(
                    "spec.hostname",
                    format!("a {} tunnel needs a hostname", spec.provider.as_str()),
                ),
            }
            if bore.is_some() {
                errors.add("spec.bore", "only a bore tunnel names a bore server");
            }
        }
    }
}

fn validate_escrow(spec: &EscrowSpec, errors: &mut Errors) {
    if spec.chain_id == 0 {
        errors.add("spec.chainId", "must be a positive EVM chain id");
    }
    errors.check("spec.owner", names::evm_address(&spec.owner));
    if let Some(address) = &spec.address {
        errors.check("spec.address", names::evm_address(address));
    }
}

fn validate_pull_secret(secret: &ImagePullSecret, errors: &mut Errors) {
    let path = "spec.imagePullSecret";
    match (&secret.name, &secret.sealed) {
        (Some(name), None) => {
            errors.check(format!("{path}.name"), names::dns_subdomain(name));
        }
        (None, Some(sealed)) => validate_sealed(sealed, &format!("{path}.sealed"), errors),
        _ => errors.add(path, "set exactly one of name and sealed"),
    }
}

/// A sealed value: one well-formed copy per oracle, within the limits an oracle opens.
fn validate_sealed(value: &SealedValue, path: &str, errors: &mut Errors) {
    if value.0.is_empty() || value.0.len() > MAX_ORACLES {
        errors.add(
            path,
            format!(
                "{} copies; a sealed value has one per oracle, 1 to {MAX_ORACLES} (make it with `r1ctl secret seal`)",
                value.0.len()
            ),
        );
        return;
    }
    for (oracle, copy) in &value.0 {
        let copy_path = format!("{path}[{oracle:?}]");
        if errors
            .check(copy_path.clone(), names::evm_address(oracle))
            .is_none()
        {
            continue;
        }
        let hex_ok = copy
            .strip_prefix("0x")
            .is_some_and(|hex| hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !hex_ok || copy.len() < MIN_COPY_HEX || copy.len() > MAX_COPY_HEX {
            errors.add(
                copy_path,
                format!(
                    "not a sealed copy: expected 0x and {MIN_COPY_HEX}-{MAX_COPY_HEX} hex digits as `r1ctl secret seal` writes"
                ),
            );
        }
    }
}

fn validate_secret_ref(secret: &crate::common::SecretKeyRef, path: &str, errors: &mut Errors) {
    errors.check(format!("{path}.name"), names::dns_subdomain(&secret.name));
    let key_ok = !secret.key.is_empty()
        && secret.key.len() <= 253
        && secret
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !key_ok {
        errors.add(
            format!("{path}.key"),
            format!("{:?} is not a valid Secret key", secret.key),
        );
    }
}

/// Checks that references name existing objects of the right kind.
struct RefChecker<'a> {
    index: Option<&'a dyn ResourceIndex>,
    namespace: &'a str,
}

impl RefChecker<'_> {
    /// Checks the syntax of the reference and, with an index, that the object exists.
    fn check<'m>(
        &'m self,
        kind: Kind,
        name: &str,
        path: &str,
        errors: &mut Errors,
    ) -> Option<&'m Manifest> {
        errors.check(format!("{path}.name"), names::dns_label(name))?;
        let index = self.index?;
        let found = index.lookup(kind, self.namespace, name);
        if found.is_none() {
            errors.add(
                format!("{path}.name"),
                format!(
                    "{kind} {:?} not found in namespace {:?}",
                    name, self.namespace
                ),
            );
        }
        found
    }
}

fn validate_job(
    spec: &DeeployJobSpec,
    catalogue: &Catalogue,
    refs: &RefChecker<'_>,
    errors: &mut Errors,
) {
    let mut found = BTreeMap::new();
    for (kind, path, name) in spec.references() {
        if let Some(manifest) = refs.check(kind, name, path, errors) {
            found.insert(kind, manifest);
        }
    }
    let (project, escrow) = (found.get(&Kind::Project), found.get(&Kind::Escrow));
    if let (Some(Manifest::Project(project)), Some(Manifest::Escrow(escrow))) = (project, escrow) {
        if !project.spec.owner.eq_ignore_ascii_case(&escrow.spec.owner) {
            errors.add(
                "spec.escrowRef.name",
                format!(
                    "Escrow {:?} belongs to {}, but project {:?} is owned by {}",
                    spec.escrow_ref.name,
                    escrow.spec.owner,
                    spec.project_ref.name,
                    project.spec.owner
                ),
            );
        }
    }
    if spec.tunnel_ref.is_some() && spec.ports.is_empty() {
        errors.add(
            "spec.tunnelRef",
            "a tunnel forwards to the job's first port, but spec.ports is empty",
        );
    }
    validate_payload(spec, errors);
    validate_args("spec.command", &spec.command, errors);
    if spec.command.first().is_some_and(String::is_empty) {
        errors.add("spec.command[0]", "the program to run must not be empty");
    }
    validate_args("spec.args", &spec.args, errors);
    validate_env(&spec.env, errors);
    if let Some(secret) = &spec.image_pull_secret {
        validate_pull_secret(secret, errors);
    }
    validate_ports(&spec.ports, errors);
    for (key, value) in &spec.node_selector {
        errors.check(format!("spec.nodeSelector.{key}"), names::label_key(key));
        errors.check(
            format!("spec.nodeSelector.{key}"),
            names::label_value(value),
        );
    }
    if spec.replicas < 1 {
        errors.add(
            "spec.replicas",
            format!("{} is below the minimum of 1", spec.replicas),
        );
    }
    if spec.replicas > MAX_REPLICAS {
        errors.add(
            "spec.replicas",
            format!("{} is above the maximum of {MAX_REPLICAS}", spec.replicas),
        );
    }
    if let Some(check) = &spec.health_check {
        validate_health_check(check, &spec.ports, errors);
    }
    validate_pricing(spec, catalogue, errors);
}

/// What runs: an image for containers and services, a plugin for native jobs.
fn validate_payload(spec: &DeeployJobSpec, errors: &mut Errors) {
    let kind = spec.job_type.as_str();
    match spec.job_type {
        JobType::Container | JobType::Service => {
            match &spec.image {
                None => errors.add("spec.image", format!("is required for {kind} jobs")),
                Some(image) => {
                    errors.check(
                        "spec.image",
                        ImageRef::parse(image).map_err(|e| e.to_string()),
                    );
                }
            }
            if spec.plugin.is_some() {
                errors.add(
                    "spec.plugin",
                    format!("only native jobs run a plugin; this is a {kind} job"),
                );
            }
        }
        JobType::Native => {
            match &spec.plugin {
                None => errors.add("spec.plugin", "is required for native jobs"),
                Some(plugin) => {
                    errors.check("spec.plugin", names::dns_label(plugin));
                }
            }
            if spec.image.is_some() {
                errors.add("spec.image", "native jobs run a plugin, not an image");
            }
        }
    }
}

fn validate_args(path: &str, args: &[String], errors: &mut Errors) {
    for (i, arg) in args.iter().enumerate() {
        if arg.contains('\0') {
            errors.add(format!("{path}[{i}]"), "must not contain a NUL byte");
        }
    }
}

/// Records `key` as seen at `index`; when it was seen before, returns where.
fn seen_before<K: Eq + Hash>(seen: &mut HashMap<K, usize>, key: K, index: usize) -> Option<usize> {
    let first = *seen.entry(key).or_insert(index);
    (first != index).then_some(first)
}

fn validate_env(env: &[EnvVar], errors: &mut Errors) {
    let mut seen = HashMap::new();
    for (i, var) in env.iter().enumerate() {
        let path = format!("spec.env[{i}]");
        if errors
            .check(format!("{path}.name"), names::env_name(&var.name))
            .is_some()
        {
            if let Some(first) = seen_before(&mut seen, var.name.as_str(), i) {
                errors.add(
                    format!("{path}.name"),
                    format!(
                        "{:?} is defined twice (first at spec.env[{first}])",
                        var.name
                    ),
                );
            }
        }
        match (&var.value, &var.value_from) {
            (Some(_), Some(_)) => errors.add(path, "set either value or valueFrom, not both"),
            (None, None) => errors.add(path, "set value or valueFrom"),
            (None, Some(source)) => match (&source.secret_key_ref, &source.sealed) {
                (Some(secret), None) => {
                    validate_secret_ref(secret, &format!("{path}.valueFrom.secretKeyRef"), errors);
                }
                (None, Some(sealed)) => {
                    validate_sealed(sealed, &format!("{path}.valueFrom.sealed"), errors);
                }
                _ => errors.add(
                    format!("{path}.valueFrom"),
                    "set exactly one of secretKeyRef and sealed",
                ),
            },
            (Some(_), None) => {}
        }
    }
}

fn port_in_range(port: u32) -> Result<u16, String> {
    u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{port} is out of range 1-65535"))
}

fn validate_ports(ports: &[Port], errors: &mut Errors) {
    let mut container_ports = HashMap::new();
    let mut host_ports = HashMap::new();
    let mut port_names = HashMap::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if let Some(name) = &port.name {
            let name_ok = names::dns_label(name).and_then(|()| {
                if name.len() > PORT_NAME_MAX {
                    Err(format!(
                        "{name:?} is longer than {PORT_NAME_MAX} characters"
                    ))
                } else {
                    Ok(())
                }
            });
            if errors.check(format!("{path}.name"), name_ok).is_some() {
                if let Some(first) = seen_before(&mut port_names, name.as_str(), i) {
                    errors.add(
                        format!("{path}.name"),
                        format!("{name:?} is used twice (first at spec.ports[{first}])"),
                    );
                }
            }
        }
        if let Some(p) = errors.check(
            format!("{path}.containerPort"),
            port_in_range(port.container_port),
        ) {
            if let Some(first) = seen_before(&mut container_ports, (p, port.protocol), i) {
                errors.add(
                    format!("{path}.containerPort"),
                    format!("{p} is used twice (first at spec.ports[{first}])"),
                );
            }
        }
        if let Some(host) = port.host_port {
            if let Some(p) = errors.check(format!("{path}.hostPort"), port_in_range(host)) {
                if let Some(first) = seen_before(&mut host_ports, (p, port.protocol), i) {
                    errors.add(
                        format!("{path}.hostPort"),
                        format!("{p} is used twice (first at spec.ports[{first}])"),
                    );
                }
            }
        }
    }
}

fn validate_health_check(check: &HealthCheck, ports: &[Port], errors: &mut Errors) {
    let path = "spec.healthCheck";
    let probes = [
        check.http.is_some(),
        check.tcp.is_some(),
        check.exec.is_some(),
    ];
    if probes.iter().filter(|&&set| set).count() != 1 {
        errors.add(path, "set exactly one of http, tcp and exec");
    }
    let declared = |port: u32| ports.iter().any(|p| p.container_port == port);
    let mut check_port = |field: String, port: u32| {
        if errors.check(field.clone(), port_in_range(port)).is_some() && !declared(port) {
            errors.add(field, format!("{port} is not one of spec.ports"));
        }
    };
    if let Some(http) = &check.http {
        check_port(format!("{path}.http.port"), http.port);
    }
    if let Some(tcp) = &check.tcp {
        check_port(format!("{path}.tcp.port"), tcp.port);
    }
    if let Some(http) = &check.http {
        if !http.path.starts_with('/') {
            errors.add(
                format!("{path}.http.path"),
                format!("{:?} must start with '/'", http.path),
            );
        }
    }
    if let Some(exec) = &check.exec {
        if exec.command.first().is_none_or(String::is_empty) {
            errors.add(format!("{path}.exec.command"), "must name a program to run");
        }
    }
    if check.period_seconds == Some(0) {
        errors.add(format!("{path}.periodSeconds"), "must be at least 1");
    }
    if check.failure_threshold == Some(0) {
        errors.add(format!("{path}.failureThreshold"), "must be at least 1");
    }
}

/// The duration meets the minimum, quantities parse and are positive, and a catalogue class
/// fits; each problem is reported on its own field.
fn validate_pricing(spec: &DeeployJobSpec, catalogue: &Catalogue, errors: &mut Errors) {
    if spec.duration_epochs < catalogue.min_epochs {
        errors.add(
            "spec.durationEpochs",
            format!(
                "{} is below the minimum of {} epochs",
                spec.duration_epochs, catalogue.min_epochs
            ),
        );
    }
    let resources = &spec.resources;
    let amounts = match resources.amounts() {
        Ok(amounts) => amounts,
        Err(fields) => {
            for field in fields {
                errors.add(
                    format!("spec.resources.{}", field.field),
                    field.source.to_string(),
                );
            }
            return;
        }
    };
    if amounts.cpu_millis == 0 {
        errors.add("spec.resources.cpu", "must be above zero");
    }
    if amounts.memory_bytes == 0 {
        errors.add("spec.resources.memory", "must be above zero");
    }
    if let Err(e) = catalogue.select(spec.job_type, resources.class.as_deref(), &amounts) {
        let path = match &e {
            PricingError::UnknownClass(_) | PricingError::WrongType { .. } => {
                "spec.resources.class".to_owned()
            }
            PricingError::DoesNotFit { field, .. } => format!("spec.resources.{field}"),
            PricingError::NoClassFits { .. } => "spec.resources".to_owned(),
        };
        errors.add(path, e.to_string());
    } else if let Err(EstimateError::Overflow) = catalogue.estimate(spec) {
        errors.add("spec", "the total price is too large");
    }
}
