//! How `r1ctl get` and `describe` show objects: kubectl-like tables, YAML or JSON documents, and
//! a prose description.

use std::io::{self, Write};

use k8s_openapi::jiff::Timestamp;
use r1_crds::api::object::StoredObject;
use r1_crds::api::spec::Spec;
use r1_crds::manifest::Kind;
use serde_json::Value;

/// `-o` of `r1ctl get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The default table.
    Table,
    /// The table with more columns.
    Wide,
    /// YAML documents.
    Yaml,
    /// JSON.
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "wide" => Ok(Self::Wide),
            "yaml" => Ok(Self::Yaml),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is not one of yaml, json, wide")),
        }
    }
}

/// The text at `path` of `value` (a string or a number), empty when absent.
fn text(value: &Value, path: &[&str]) -> String {
    let mut current = value;
    for key in path {
        match current.get(key) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `0x7099…79c8` for a node list that fits a terminal.
fn short_address(address: &str) -> String {
    if address.len() > 12
        && address.is_char_boundary(6)
        && address.is_char_boundary(address.len() - 4)
    {
        format!("{}…{}", &address[..6], &address[address.len() - 4..])
    } else {
        address.to_owned()
    }
}

/// How long ago `timestamp` was, as kubectl writes ages: `45s`, `12m`, `5h`, `3d`.
pub fn age(timestamp: &str, now: Timestamp) -> String {
    let Ok(then) = timestamp.parse::<Timestamp>() else {
        return "<unknown>".into();
    };
    let seconds = (now.as_second() - then.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The phase shown for an object: `Deleting` once deletion is requested.
fn phase(object: &StoredObject) -> String {
    if object.metadata.deletion_requested {
        "Deleting".into()
    } else {
        text(&object.status, &["phase"])
    }
}

fn columns(kind: Kind, wide: bool) -> Vec<&'static str> {
    let mut columns = match kind {
        Kind::Job => vec![
            "NAME",
            "PHASE",
            "READY",
            "NODES",
            "EPOCH",
            "BUDGET LEFT",
            "AGE",
        ],
        Kind::Project => vec!["NAME", "OWNER", "JOBS", "SPEND", "AGE"],
        Kind::Tunnel => vec!["NAME", "PROVIDER", "URL", "PHASE", "AGE"],
        Kind::Escrow => vec!["NAME", "CHAIN", "ADDRESS", "LOCKED", "PHASE", "AGE"],
    };
    if wide {
        columns.extend(match kind {
            Kind::Job => vec!["IMAGE", "REPLICAS", "PROJECT", "ESCROW", "GENERATION"],
            Kind::Project => vec!["DISPLAY NAME"],
            Kind::Tunnel => vec!["URL"],
            Kind::Escrow => vec!["OWNER", "BALANCE"],
        });
    }
    columns
}

fn row(object: &StoredObject, wide: bool, now: Timestamp) -> Vec<String> {
    let status = &object.status;
    let age = age(&object.metadata.creation_timestamp, now);
    let name = object.metadata.name.clone();
    let mut row = match &object.spec {
        Spec::Job(_) => {
            let nodes: Vec<String> = status
                .get("assignments")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|n| text(n, &["node"]))
                        .map(|n| if wide { n } else { short_address(&n) })
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                phase(object),
                text(status, &["ready"]),
                nodes.join(","),
                text(status, &["currentEpoch"]),
                text(status, &["budgetLeft"]),
                age,
            ]
        }
        Spec::Project(spec) => vec![
            name,
            spec.owner.clone(),
            text(status, &["jobCount"]),
            text(status, &["spend"]),
            age,
        ],
        Spec::Tunnel(spec) => vec![
            name,
            spec.provider.as_str().to_owned(),
            text(status, &["url"]),
            phase(object),
            age,
        ],
        Spec::Escrow(spec) => {
            let address = match text(status, &["address"]) {
                a if a.is_empty() => spec.address.clone().unwrap_or_default(),
                a => a,
            };
            vec![
                name,
                spec.chain_id.to_string(),
                address,
                text(status, &["locked"]),
                phase(object),
                age,
            ]
        }
    };
    if wide {
        row.extend(match &object.spec {
            Spec::Job(spec) => vec![
                spec.image.clone().unwrap_or_default(),
                spec.replicas.to_string(),
                spec.project_ref.name.clone(),
                spec.escrow_ref.name.clone(),
                object.metadata.generation.to_string(),
            ],
            Spec::Project(spec) => vec![spec.display_name.clone().unwrap_or_default()],
            Spec::Tunnel(_) => vec![text(status, &["url"])],
            Spec::Escrow(spec) => vec![spec.owner.clone(), text(status, &["balance"])],
        });
    }
    row
}

/// Prints `objects` of `kind` as an aligned table, with a NAMESPACE column across namespaces.
pub fn table(
    kind: Kind,
    objects: &[StoredObject],
    wide: bool,
    all_namespaces: bool,
    now: Timestamp,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut header: Vec<String> = columns(kind, wide).into_iter().map(String::from).collect();
    let mut rows: Vec<Vec<String>> = objects.iter().map(|o| row(o, wide, now)).collect();
    if all_namespaces {
        header.insert(0, "NAMESPACE".into());
        for (row, object) in rows.iter_mut().zip(objects) {
            row.insert(0, object.metadata.namespace.clone());
        }
    }
    print_rows(&header, &rows, out)
}

/// Prints escrows with their money: address, balance, locked for running jobs, paid to node
/// operators and burned (the overview's second table).
pub fn escrow_money_table(escrows: &[StoredObject], out: &mut dyn Write) -> io::Result<()> {
    let header: Vec<String> = [
        "NAMESPACE",
        "ESCROW",
        "ADDRESS",
        "BALANCE",
        "LOCKED",
        "PAID",
        "BURNED",
        "REFUNDED",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let rows: Vec<Vec<String>> = escrows
        .iter()
        .map(|escrow| {
            let status = &escrow.status;
            let mut row = vec![
                escrow.metadata.namespace.clone(),
                escrow.metadata.name.clone(),
            ];
            row.extend(
                ["address", "balance", "locked", "paid", "burned", "refunded"]
                    .iter()
                    .map(|field| text(status, &[field])),
            );
            row
        })
        .collect();
    print_rows(&header, &rows, out)
}

fn print_rows(header: &[String], rows: &[Vec<String>], out: &mut dyn Write) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[String]| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = width.saturating_sub(cell.chars().count()) + 3;
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(header)?;
    for row in rows {
        line(row)?;
    }
    Ok(())
}

/// Prints one object, or a list as a kubectl `List`, in YAML or JSON.
pub fn document(
    objects: &[StoredObject],
    single: bool,
    format: OutputFormat,
    out: &mut dyn Write,
) -> io::Result<()> {
    let value = match (single, objects) {
        (true, [object]) => serde_json::to_value(object),
        _ => serde_json::to_value(objects)
            .map(|items| serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})),
    }
    .map_err(io::Error::other)?;
    match format {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&value).map_err(io::Error::other)?;
            writeln!(out, "{text}")
        }
        _ => {
            let text = serde_yaml::to_string(&value).map_err(io::Error::other)?;
            write!(out, "{text}")
        }
    }
}

/// Prints `object` as `r1ctl describe` does.
pub fn describe(object: &StoredObject, now: Timestamp, out: &mut dyn Write) -> io::Result<()> {
    let meta = &object.metadata;
    let pairs = |map: &std::collections::BTreeMap<String, String>| {
        if map.is_empty() {
            "<none>".to_owned()
        } else {
            map.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let field = |out: &mut dyn Write, name: &str, value: &str| {
        writeln!(out, "{:<20}{value}", format!("{name}:"))
    };
    field(out, "Name", &meta.name)?;
    field(out, "Namespace", &meta.namespace)?;
    field(out, "Kind", object.kind().as_str())?;
    field(out, "API Version", &object.api_version)?;
    field(out, "Owner", &meta.owner.to_checksum(None))?;
    field(out, "UID", &meta.uid)?;
    field(out, "Generation", &meta.generation.to_string())?;
    field(out, "Resource Version", &meta.resource_version.to_string())?;
    field(
        out,
        "Created",
        &format!(
            "{} ({} ago)",
            meta.creation_timestamp,
            age(&meta.creation_timestamp, now)
        ),
    )?;
    field(out, "Labels", &pairs(&meta.labels))?;
    field(out, "Annotations", &pairs(&meta.annotations))?;
    let deletion = match (&meta.deletion_requested, &meta.deletion_timestamp) {
        (false, _) => "not requested".to_owned(),
        (true, Some(at)) => format!("requested at {at}; the oracle finishes it after cleaning up"),
        (true, None) => "requested; the oracle finishes it after cleaning up".to_owned(),
    };
    field(out, "Deletion", &deletion)?;
    writeln!(out, "Spec:")?;
    indented(&object.spec.to_json(), out)?;
    let mut status = object.status.clone();
    let conditions = status
        .as_object_mut()
        .and_then(|s| s.remove("conditions"))
        .and_then(|c| c.as_array().cloned())
        .unwrap_or_default();
    writeln!(out, "Status:")?;
    match &status {
        Value::Null => writeln!(out, "  <none yet: the oracle has not reported on it>")?,
        Value::Object(map) if map.is_empty() => writeln!(out, "  <none>")?,
        status => indented(status, out)?,
    }
    if !conditions.is_empty() {
        writeln!(out, "Conditions:")?;
        let header: Vec<String> = ["  TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]
            .into_iter()
            .map(String::from)
            .collect();
        let rows: Vec<Vec<String>> = conditions
            .iter()
            .map(|c| {
                vec![
                    format!("  {}", text(c, &["type"])),
                    text(c, &["status"]),
                    text(c, &["reason"]),
                    age(&text(c, &["lastTransitionTime"]), now),
                    text(c, &["message"]),
                ]
            })
            .collect();
        print_rows(&header, &rows, out)?;
    }
    Ok(())
}

fn indented(value: &Value, out: &mut dyn Write) -> io::Result<()> {
    let text = serde_yaml::to_string(value).map_err(io::Error::other)?;
    for line in text.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_crds::api::object::{Desired, ObjectKey};
    use serde_json::json;

    fn job(status: Value) -> StoredObject {
        let mut object = StoredObject::create(
            &ObjectKey::new(Kind::Job, "shop", "web"),
            Desired {
                spec: Spec::from_json(
                    Kind::Job,
                    json!({"image": "ghcr.io/acme/web:1", "replicas": 2, "projectRef": {"name": "shop"}, "escrowRef": {"name": "pay"}, "resources": {"cpu": "1", "memory": "1Gi"}, "durationEpochs": 30}),
                )
                .unwrap(),
                labels: [("tier".to_owned(), "web".to_owned())].into(),
                annotations: Default::default(),
            },
            alloy_primitives::Address::repeat_byte(0x11),
            "uid-1".into(),
            5,
            "2026-01-01T00:00:00Z".into(),
        );
        object.status = status;
        object
    }

    fn now() -> Timestamp {
        "2026-01-01T00:05:00Z".parse().unwrap()
    }

    fn render(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ages_read_like_kubectl() {
        let at = |s: i64| {
            age(
                "2026-01-01T00:00:00Z",
                Timestamp::from_second(1_767_225_600 + s).unwrap(),
            )
        };
        assert_eq!(at(5), "5s");
        assert_eq!(at(119), "119s");
        assert_eq!(at(300), "5m");
        assert_eq!(at(3 * 3600), "3h");
        assert_eq!(at(3 * 86400), "3d");
        assert_eq!(at(-10), "0s");
        assert_eq!(age("yesterday", now()), "<unknown>");
    }

    #[test]
    fn job_table_is_empty_until_the_status_is_filled() {
        let text = render(|out| table(Kind::Job, &[job(Value::Null)], false, false, now(), out));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME   PHASE   READY   NODES   EPOCH   BUDGET LEFT   AGE"
        );
        // Empty cells keep their columns: four status columns, the budget, then the age.
        assert_eq!(lines[1], format!("web    {}5m", " ".repeat(4 * 8 + 14)));

        let status = json!({
            "phase": "Running", "ready": "2/2", "currentEpoch": 17, "budgetLeft": "42.5",
            "assignments": [
                {"replica": 0, "node": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "state": "running"},
                {"replica": 1, "node": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "state": "running"}
            ]
        });
        let text = render(|out| table(Kind::Job, &[job(status.clone())], false, true, now(), out));
        assert!(text.starts_with("NAMESPACE   NAME   PHASE"), "{text}");
        assert!(
            text.contains("shop        web    Running   2/2     0x7099…79C8,0x3C44…93BC   17      42.5          5m"),
            "{text}"
        );
        let wide = render(|out| table(Kind::Job, &[job(status)], true, false, now(), out));
        assert!(
            wide.contains("0x70997970C51812dc3A010C7d01b50e0d17dc79C8,0x3C44"),
            "{wide}"
        );
        assert!(wide.contains("ghcr.io/acme/web:1"), "{wide}");
        let mut deleting = job(json!({"phase": "Running"}));
        deleting.metadata.deletion_requested = true;
        assert!(
            render(|out| table(Kind::Job, &[deleting], false, false, now(), out))
                .contains("Deleting")
        );
    }

    #[test]
    fn other_kinds_have_their_columns() {
        for kind in [Kind::Project, Kind::Tunnel, Kind::Escrow] {
            let mut object = job(Value::Null);
            object.spec = Spec::from_json(
                kind,
                json!({"owner": "0xabc", "provider": "cloudflare", "hostname": "a.example", "chainId": 31337, "tokenSecretRef": {"name": "t", "key": "k"}}),
            )
            .unwrap();
            let text = render(|out| table(kind, &[object], false, false, now(), out));
            let expected = match kind {
                Kind::Project => "0xabc",
                Kind::Tunnel => "cloudflare",
                _ => "31337",
            };
            assert!(text.contains(expected), "{kind}: {text}");
        }
    }

    #[test]
    fn documents_and_descriptions() {
        let one = render(|out| document(&[job(Value::Null)], true, OutputFormat::Yaml, out));
        assert!(
            one.starts_with("apiVersion: deeploy.ratio1.ai/v1alpha1\nkind: DeeployJob\n"),
            "{one}"
        );
        let list = render(|out| document(&[job(Value::Null)], false, OutputFormat::Json, out));
        let parsed: Value = serde_json::from_str(&list).unwrap();
        assert_eq!(parsed["kind"], "List");
        assert_eq!(parsed["items"][0]["metadata"]["generation"], 1);

        let status = json!({"phase": "Running", "conditions": [
            {"type": "Funded", "status": "True", "reason": "Locked", "message": "budget locked", "lastTransitionTime": "2026-01-01T00:01:00Z"}
        ]});
        let text = render(|out| describe(&job(status), now(), out));
        assert!(text.contains("Name:               web\n"), "{text}");
        assert!(text.contains("Labels:             tier=web\n"), "{text}");
        assert!(
            text.contains("Created:            2026-01-01T00:00:00Z (5m ago)"),
            "{text}"
        );
        assert!(text.contains("Spec:\n  "), "{text}");
        assert!(text.contains("\n  escrowRef:\n    name: pay\n"), "{text}");
        assert!(text.contains("Status:\n  phase: Running\n"), "{text}");
        assert!(
            text.contains("  Funded   True     Locked   4m      budget locked"),
            "{text}"
        );
        let bare = render(|out| describe(&job(Value::Null), now(), out));
        assert!(bare.contains("<none yet"), "{bare}");
        assert!(bare.contains("Deletion:           not requested"), "{bare}");
    }

    #[test]
    fn output_formats_parse() {
        assert_eq!("wide".parse::<OutputFormat>(), Ok(OutputFormat::Wide));
        assert!("xml".parse::<OutputFormat>().is_err());
    }
}
