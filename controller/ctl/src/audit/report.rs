//! What an audit found: one row per figure, with what the history says it must be, what the
//! chain says it is and whether they agree, printed as a table.

use std::io::{self, Write};

use alloy_primitives::{Address, U256};
use r1_contracts::units::usdc_text;

/// One checked figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The figure.
    pub what: String,
    /// What the events and votes say it must be.
    pub expected: String,
    /// What the chain says.
    pub actual: String,
    /// Whether they agree.
    pub ok: bool,
}

impl Row {
    /// A row that agrees when `expected == actual`.
    pub fn compare(what: impl Into<String>, expected: impl ToString, actual: impl ToString) -> Row {
        let (expected, actual) = (expected.to_string(), actual.to_string());
        Row {
            what: what.into(),
            ok: expected == actual,
            expected,
            actual,
        }
    }

    /// A row of USDC amounts, shown with every unit.
    pub fn usdc(what: impl Into<String>, expected: U256, actual: U256) -> Row {
        Row {
            what: what.into(),
            expected: usdc_text(expected),
            actual: usdc_text(actual),
            ok: expected == actual,
        }
    }

    /// A check that holds or not, described by its two sides.
    pub fn check(
        what: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
        ok: bool,
    ) -> Row {
        Row {
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
            ok,
        }
    }
}

/// Every row of an audit, in the order of the story.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The rows.
    pub rows: Vec<Row>,
}

impl Report {
    /// The rows that disagree.
    pub fn mismatches(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| !r.ok)
    }

    /// Whether every row agrees.
    pub fn ok(&self) -> bool {
        self.mismatches().next().is_none()
    }

    /// Prints the table and a last line counting the rows and mismatches.
    pub fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        let header = ["WHAT", "EXPECTED", "ON CHAIN", "OK"];
        let width = |pick: fn(&Row) -> &str, title: &str| {
            self.rows
                .iter()
                .map(|r| pick(r).chars().count())
                .chain([title.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let what = width(|r| &r.what, header[0]);
        let expected = width(|r| &r.expected, header[1]);
        let actual = width(|r| &r.actual, header[2]);
        writeln!(
            out,
            "{:what$}   {:expected$}   {:actual$}   {}",
            header[0], header[1], header[2], header[3]
        )?;
        for row in &self.rows {
            let ok = if row.ok { "ok" } else { "MISMATCH" };
            writeln!(
                out,
                "{:what$}   {:expected$}   {:actual$}   {ok}",
                row.what, row.expected, row.actual
            )?;
        }
        let bad = self.mismatches().count();
        if bad == 0 {
            writeln!(
                out,
                "{} figures checked, all match to the unit",
                self.rows.len()
            )
        } else {
            writeln!(out, "{} figures checked, {bad} MISMATCH", self.rows.len())
        }
    }
}

/// An address shortened for a table cell: `0xAbCd…1234`.
pub fn short(address: &Address) -> String {
    let text = address.to_checksum(None);
    format!("{}…{}", &text[..6], &text[text.len() - 4..])
}

/// Addresses shortened and joined with commas (`none` when empty).
pub fn short_list(addresses: &[Address]) -> String {
    if addresses.is_empty() {
        return "none".into();
    }
    addresses.iter().map(short).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_and_counts_mismatches() {
        let report = Report {
            rows: vec![
                Row::usdc(
                    "job 1 funded",
                    U256::from(6_000_000u64),
                    U256::from(6_000_000u64),
                ),
                Row::compare("job 1 closed", true, false),
            ],
        };
        let mut out = Vec::new();
        report.render(&mut out).expect("rendered");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("WHAT") && lines[0].contains("ON CHAIN"),
            "{text}"
        );
        assert!(
            lines[1].contains("6.00") && lines[1].ends_with("ok"),
            "{text}"
        );
        assert!(lines[2].ends_with("MISMATCH"), "{text}");
        assert_eq!(lines[1].find("6.00"), lines[2].find("true"), "{text}");
        assert!(lines[3].contains("1 MISMATCH"), "{text}");
        assert!(!report.ok());
    }

    #[test]
    fn addresses_are_shortened() {
        let address = Address::repeat_byte(0xab);
        assert_eq!(short(&address), "0xABaB…ABaB");
        assert_eq!(short_list(&[]), "none");
    }
}
