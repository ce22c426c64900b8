//! What an attack costs an oracle, read from outside: its resident memory and peak (from
//! `/proc/<pid>/status`, the peak reset before the attack through `/proc/<pid>/clear_refs`), the
//! bytes it wrote (`wchar` of `/proc/<pid>/io`: files, log and sockets), and how long its
//! reconcile passes take (the `r1_oracle_loop_seconds` histogram of its `/metrics`, compared
//! between two scrapes so only the passes in between count).

use std::time::Duration;

use crate::oracle::OracleProcess;

/// The histogram of pass durations the oracle exports.
pub const LOOP_HISTOGRAM: &str = "r1_oracle_loop_seconds";

/// The loop whose passes are measured.
pub const RECONCILE_LOOP: &str = "reconcile";

/// The pid of the running `r1-oracle` process of `oracle` (found by its config file).
pub fn oracle_pid(oracle: &OracleProcess) -> Option<u32> {
    let config = oracle.config_path().display().to_string();
    crate::procfs::processes()
        .into_iter()
        .find(|p| !p.is_zombie() && p.mentions("r1-oracle") && p.cmdline.contains(&config))
        .map(|p| p.pid)
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most resident since start or since [`reset_peak`].
    pub peak_kib: u64,
}

/// The memory of process `pid`, or `None` when it is gone.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// Resets the peak (`VmHWM`) of process `pid` to its current resident memory; false when the
/// kernel refused (not root, or too old).
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Bytes process `pid` has passed to `write` and its kin since it started (`wchar`).
pub fn written_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Open file descriptors of process `pid` (sockets included).
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// One scrape of a loop's duration histogram.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Upper bounds (seconds, the last one infinite) with their cumulative counts.
    pub buckets: Vec<(f64, u64)>,
    /// Passes observed.
    pub count: u64,
    /// Seconds observed in all.
    pub sum: f64,
}

impl Histogram {
    /// The histogram of `loop_name` in a Prometheus text exposition (empty when absent).
    pub fn parse(metrics: &str, loop_name: &str) -> Self {
        let label = format!("name=\"{loop_name}\"");
        let mut histogram = Self::default();
        for line in metrics.lines().filter(|l| l.contains(&label)) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if series.starts_with(&format!("{LOOP_HISTOGRAM}_bucket{{")) {
                let le = series
                    .split("le=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .map(|le| {
                        if le == "+Inf" {
                            Some(f64::INFINITY)
                        } else {
                            le.parse().ok()
                        }
                    });
                if let (Some(Some(le)), Ok(count)) = (le, value.parse::<f64>()) {
                    histogram.buckets.push((le, count as u64));
                }
            } else if series.starts_with(&format!("{LOOP_HISTOGRAM}_count{{")) {
                histogram.count = value.parse::<f64>().map_or(0, |v| v as u64);
            } else if series.starts_with(&format!("{LOOP_HISTOGRAM}_sum{{")) {
                histogram.sum = value.parse().unwrap_or(0.0);
            }
        }
        histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        histogram
    }

    /// The passes observed since `earlier` (a scrape of the same histogram).
    pub fn since(&self, earlier: &Self) -> PassTimes {
        let passes = self.count.saturating_sub(earlier.count);
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0, |(_, c)| *c)
        };
        let cumulative: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .map(|(le, c)| (*le, c.saturating_sub(before(*le))))
            .collect();
        let p50 = cumulative
            .iter()
            .find(|(_, c)| passes > 0 && *c * 2 >= passes)
            .map_or(f64::NAN, |(le, _)| *le);
        let max = cumulative
            .iter()
            .find(|(_, c)| passes > 0 && *c >= passes)
            .map_or(f64::NAN, |(le, _)| *le);
        let mean = if passes > 0 {
            (self.sum - earlier.sum) / passes as f64
        } else {
            f64::NAN
        };
        PassTimes {
            passes,
            mean_s: mean,
            p50_le_s: p50,
            max_le_s: max,
        }
    }
}

/// Reconcile passes completed within a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassTimes {
    /// How many completed.
    pub passes: u64,
    /// Their mean duration in seconds (NaN without passes).
    pub mean_s: f64,
    /// The histogram bucket bound at or under which half of them took (NaN without passes).
    pub p50_le_s: f64,
    /// The bound under which all of them took (infinite when one took over 30 s).
    pub max_le_s: f64,
}

impl std::fmt::Display for PassTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.passes == 0 {
            return f.write_str("no pass completed");
        }
        write!(
            f,
            "{} passes, mean {:.3} s, p50 <= {} s, max <= {} s",
            self.passes, self.mean_s, self.p50_le_s, self.max_le_s
        )
    }
}

/// One oracle at one moment, as the gauges see it.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// Its pid, when it runs.
    pub pid: Option<u32>,
    /// Its memory.
    pub memory: Memory,
    /// Bytes written so far.
    pub written: u64,
    /// Its reconcile pass histogram.
    pub passes: Histogram,
}

impl Reading {
    /// Reads `oracle` now.
    pub fn of(oracle: &OracleProcess) -> Self {
        let pid = oracle_pid(oracle);
        Self {
            pid,
            memory: pid.and_then(memory).unwrap_or_default(),
            written: pid.and_then(written_bytes).unwrap_or(0),
            passes: Histogram::parse(&oracle.metrics(), RECONCILE_LOOP),
        }
    }
}

/// What one attack cost one oracle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// Resident memory before the attack, MiB.
    pub rss_before_mib: f64,
    /// Peak resident memory from the attack to the end of the window, MiB.
    pub peak_mib: f64,
    /// Resident memory at the end of the window, MiB.
    pub rss_after_mib: f64,
    /// MiB written from the attack to the end of the window.
    pub written_mib: f64,
    /// Passes in the window after the attack.
    pub passes: PassTimes,
    /// Whether the same process ran throughout.
    pub survived: bool,
}

impl Cost {
    /// The cost between `before` (taken just before the attack, peak reset) and the readings
    /// `window_start` and `after` that bound the observation window.
    pub fn between(before: &Reading, window_start: &Reading, after: &Reading) -> Self {
        const MIB: f64 = 1024.0 * 1024.0;
        let kib = |k: u64| k as f64 / 1024.0;
        Self {
            rss_before_mib: kib(before.memory.rss_kib),
            peak_mib: kib(after.memory.peak_kib.max(window_start.memory.peak_kib)),
            rss_after_mib: kib(after.memory.rss_kib),
            written_mib: after.written.saturating_sub(before.written) as f64 / MIB,
            passes: after.passes.since(&window_start.passes),
            survived: before.pid.is_some() && before.pid == after.pid,
        }
    }

    /// Peak growth over the memory before, MiB.
    pub fn peak_growth_mib(&self) -> f64 {
        self.peak_mib - self.rss_before_mib
    }

    /// Lasting growth over the memory before, MiB.
    pub fn rss_growth_mib(&self) -> f64 {
        self.rss_after_mib - self.rss_before_mib
    }
}

/// Reads every oracle of `oracles` after resetting each one's peak memory.
pub fn before_attack(oracles: &[OracleProcess]) -> Vec<Reading> {
    oracles
        .iter()
        .map(|o| {
            if let Some(pid) = oracle_pid(o) {
                reset_peak(pid);
            }
            Reading::of(o)
        })
        .collect()
}

/// Waits `settle`, then watches every oracle for `window`; returns each one's cost since
/// `before` ([`before_attack`]).
pub fn after_attack(
    oracles: &[OracleProcess],
    before: &[Reading],
    settle: Duration,
    window: Duration,
) -> Vec<Cost> {
    std::thread::sleep(settle);
    let start: Vec<Reading> = oracles.iter().map(Reading::of).collect();
    std::thread::sleep(window);
    oracles
        .iter()
        .zip(before.iter().zip(&start))
        .map(|(o, (b, s))| Cost::between(b, s, &Reading::of(o)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP r1_oracle_loop_seconds Seconds per pass of each loop.\n\
        r1_oracle_loop_seconds_sum{name=\"reconcile\"} 1.5\n\
        r1_oracle_loop_seconds_count{name=\"reconcile\"} 10\n\
        r1_oracle_loop_seconds_bucket{le=\"0.1\",name=\"reconcile\"} 8\n\
        r1_oracle_loop_seconds_bucket{le=\"1.0\",name=\"reconcile\"} 9\n\
        r1_oracle_loop_seconds_bucket{le=\"+Inf\",name=\"reconcile\"} 10\n";

    #[test]
    fn passes_between_two_scrapes() {
        let earlier = Histogram::parse(SCRAPE, RECONCILE_LOOP);
        assert_eq!(earlier.count, 10);
        let later = Histogram::parse(
            &SCRAPE
                .replace("} 10\n", "} 14\n")
                .replace("} 1.5\n", "} 2.3\n")
                .replace("} 9\n", "} 13\n")
                .replace("} 8\n", "} 10\n"),
            RECONCILE_LOOP,
        );
        let window = later.since(&earlier);
        assert_eq!(window.passes, 4);
        assert!((window.mean_s - 0.2).abs() < 1e-9);
        assert_eq!(window.p50_le_s, 0.1);
        assert_eq!(window.max_le_s, 1.0);
        assert_eq!(later.since(&later).passes, 0);
    }

    #[test]
    fn this_process_has_memory() {
        let me = memory(std::process::id()).expect("own status");
        assert!(me.rss_kib > 0 && me.peak_kib >= me.rss_kib);
        assert!(written_bytes(std::process::id()).is_some());
    }
}
