//! `r1ctl estimate`: what each job costs per epoch and in total, in USDC, from the shared price
//! catalogue.

use std::io::Write;

use r1_crds::check::{References, Source, check_sources};
use r1_crds::manifest::Manifest;
use r1_crds::pricing::{Catalogue, Estimate};
use r1_crds::usdc::Usdc;

/// Prices every job in `sources`. Invalid documents are reported instead and make the result
/// `false`; references are not required to be among the files.
pub fn run(
    sources: &[Source],
    catalogue: &Catalogue,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let report = check_sources(sources, catalogue, References::SyntaxOnly);
    if !report.is_valid() {
        for finding in &report.findings {
            writeln!(out, "error: {finding}")?;
        }
        writeln!(out, "cannot estimate: {} errors", report.findings.len())?;
        return Ok(false);
    }
    let priced: Vec<(String, Estimate)> = report
        .resources
        .iter()
        .filter_map(|(_, _, manifest)| match manifest {
            Manifest::Job(job) => catalogue
                .estimate(&job.spec)
                .ok()
                .map(|e| (manifest.display_name(), e)),
            _ => None,
        })
        .collect();
    if priced.is_empty() {
        writeln!(out, "no DeeployJob in the given files")?;
        return Ok(false);
    }
    writeln!(
        out,
        "{:<32} {:<14} {:>12} {:>8} {:>12} {:>7} {:>14}",
        "JOB", "CLASS", "NODE/EPOCH", "REPLICAS", "PER EPOCH", "EPOCHS", "TOTAL (USDC)"
    )?;
    let mut total = Some(Usdc(0));
    for (name, e) in &priced {
        writeln!(
            out,
            "{:<32} {:<14} {:>12} {:>8} {:>12} {:>7} {:>14}",
            name.trim_start_matches("DeeployJob "),
            e.class.name,
            e.class.price_per_epoch.to_string(),
            e.replicas,
            e.price_per_epoch.to_string(),
            e.epochs,
            e.total.to_string()
        )?;
        total = total.and_then(|t| t.checked_add(e.total));
    }
    let Some(total) = total else {
        writeln!(out, "the total is too large to lock in one escrow")?;
        return Ok(false);
    };
    writeln!(out, "total to lock in escrow: {total} USDC")?;
    Ok(true)
}
