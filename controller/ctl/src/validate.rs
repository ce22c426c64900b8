//! `r1ctl validate`: every error of every document, each with its file, resource and field path.

use std::io::Write;

use r1_crds::check::{References, Source, check_sources};
use r1_crds::pricing::Catalogue;

/// Validates `sources` as one set, writes one line per problem (or a one-line summary when all
/// is well) and returns whether everything is valid.
pub fn run(
    sources: &[Source],
    catalogue: &Catalogue,
    references: References,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let report = check_sources(sources, catalogue, references);
    for finding in &report.findings {
        writeln!(out, "error: {finding}")?;
    }
    let resources = report.resources.len();
    let files = sources.len();
    if report.is_valid() {
        writeln!(out, "{resources} resources in {files} files are valid")?;
    } else {
        writeln!(out, "{} errors in {files} files", report.findings.len())?;
    }
    Ok(report.is_valid())
}
