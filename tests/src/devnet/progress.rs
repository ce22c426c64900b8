//! What the devnet prints while it comes up: numbered steps with their duration, a step that
//! failed with its error and where to look, and a live block (the status table) that is redrawn
//! in place on a terminal and printed only when it changes elsewhere.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Prints steps and the live block to standard output.
pub struct Progress {
    total: usize,
    done: usize,
    current: Option<(String, Instant)>,
    terminal: bool,
    live_lines: usize,
    live_text: String,
    /// Whether the current step's line still waits for its end (off a terminal).
    line_open: bool,
}

impl Progress {
    /// A display of `total` steps.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            current: None,
            terminal: std::io::stdout().is_terminal(),
            live_lines: 0,
            live_text: String::new(),
            line_open: false,
        }
    }

    /// Starts the next step: `[3/8] Starting 3 oracles …`.
    pub fn begin(&mut self, what: &str) {
        self.clear_live();
        let line = format!("[{}/{}] {what} …", self.done + 1, self.total);
        print!("{line}");
        let _ = std::io::stdout().flush();
        self.current = Some((line, Instant::now()));
        self.line_open = true;
    }

    /// Ends the current step well, with an optional detail line below it.
    pub fn ok(&mut self, detail: &str) {
        self.clear_live();
        if let Some((line, started)) = self.current.take() {
            let elapsed = started.elapsed().as_secs_f64();
            if std::mem::take(&mut self.line_open) {
                println!(" ok ({elapsed:.1} s)");
            } else {
                println!("{} ok ({elapsed:.1} s)", line.trim_end_matches(" …"));
            }
            self.done += 1;
        }
        for line in detail.lines() {
            println!("      {line}");
        }
    }

    /// Ends the current step as failed: which step, why, and where its logs are.
    pub fn failed(&mut self, error: &dyn std::fmt::Display, logs: &[String]) {
        self.clear_live();
        let step = self
            .current
            .take()
            .map(|(line, _)| line)
            .unwrap_or_default();
        println!(" FAILED");
        eprintln!("\nr1-devnet: step failed: {}", step.trim_end_matches(" …"));
        eprintln!("r1-devnet: {error}");
        if !logs.is_empty() {
            eprintln!("r1-devnet: logs:");
            for log in logs {
                eprintln!("  {log}");
            }
        }
    }

    /// Shows `text` below the steps, replacing what the last call showed.
    pub fn live(&mut self, text: &str) {
        if self.terminal {
            self.clear_live();
            if self.current.is_some() {
                println!();
            }
            print!("{text}");
            self.live_lines = text.lines().count() + usize::from(self.current.is_some());
        } else if text != self.live_text {
            if self.line_open {
                println!();
                self.line_open = false;
            }
            println!("{text}");
        }
        let _ = std::io::stdout().flush();
        self.live_text = text.to_owned();
    }

    /// Erases the live block from a terminal, and puts the current step's line back.
    fn clear_live(&mut self) {
        if self.terminal && self.live_lines > 0 {
            print!("\x1b[{}A\r\x1b[J", self.live_lines);
            if let Some((line, _)) = &self.current {
                print!("{line}");
            }
            self.live_lines = 0;
        }
    }
}
