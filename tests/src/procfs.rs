//! Reading `/proc`: which processes exist, who their parents are, what they were started with,
//! and what is mounted where. Used to find everything a test left behind.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// One process as seen in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Single-letter state from `/proc/<pid>/stat` (`Z` for zombies).
    pub state: char,
    /// Command line arguments (empty for kernel threads and zombies).
    pub cmdline: Vec<String>,
}

impl ProcessInfo {
    /// Whether the process has exited and only waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z' || self.state == 'X'
    }

    /// Whether any argument contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.cmdline.iter().any(|arg| arg.contains(needle))
    }

    /// The value following flag `flag` (e.g. `-id`) on the command line.
    pub fn flag_value(&self, flag: &str) -> Option<&str> {
        let position = self.cmdline.iter().position(|arg| arg == flag)?;
        self.cmdline.get(position + 1).map(String::as_str)
    }
}

/// Every process currently visible; processes vanishing while being read are skipped.
pub fn processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
        .collect()
}

/// One process, or `None` when it is gone.
pub fn process(pid: u32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces and parentheses itself.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = raw
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    Some(ProcessInfo {
        pid,
        ppid,
        state,
        cmdline,
    })
}

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times (`CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds process `pid` has used (user + system), or `None` when it is gone: sampled
/// twice, the difference over the wall time between is its CPU share.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // After the name: state is field 3, utime and stime are fields 14 and 15.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Resident memory of process `pid` in bytes (`VmRSS`), or `None` when it is gone.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether process `pid` exists and has not exited.
pub fn is_alive(pid: u32) -> bool {
    process(pid).is_some_and(|info| !info.is_zombie())
}

/// Every live descendant of the given processes (not the processes themselves), deepest last.
pub fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for info in processes().into_iter().filter(|info| !info.is_zombie()) {
        children.entry(info.ppid).or_default().push(info.pid);
    }
    let mut seen: HashSet<u32> = roots.iter().copied().collect();
    let mut found = Vec::new();
    let mut frontier = roots.to_vec();
    while let Some(pid) = frontier.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if seen.insert(*child) {
                found.push(*child);
                frontier.push(*child);
            }
        }
    }
    found
}

/// Mount points (in this process's mount namespace) at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_path(field)))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    found.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
    found.dedup();
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes.get(index + 1..index + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match (bytes[index], escaped) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_visible_with_its_parent() {
        let me = process(std::process::id()).expect("self");
        assert!(!me.cmdline.is_empty());
        assert!(is_alive(me.ppid));
    }

    #[test]
    fn cpu_time_grows_while_this_process_works_and_its_memory_is_counted() {
        let me = std::process::id();
        let before = cpu_seconds(me).expect("own stat");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = cpu_seconds(me).expect("own stat") - before;
        assert!(used >= 0.1, "300 ms of spinning counted as {used} s");
        let ballast = vec![1u8; 64 << 20];
        assert!(resident_bytes(me).expect("own status") >= 64 << 20);
        drop(std::hint::black_box(ballast));
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn root_is_mounted() {
        assert!(!mounts_under(Path::new("/")).is_empty());
    }
}
