//! Reading a container's cgroup: whether the kernel's OOM killer fired in it. The counter is
//! read from observed state before the task is deleted, so an OOM kill is reported even when
//! it happened while the agent was down.

use std::path::Path;

/// OOM kills recorded in the memory cgroup at `path` (relative to the hierarchy roots), from
/// cgroup v2's `memory.events` or cgroup v1's `memory.oom_control`; `None` when neither can be
/// read.
pub fn oom_kills(cgroup_root: &Path, path: &str) -> Option<u64> {
    let relative = path.trim_start_matches('/');
    let v2 = cgroup_root.join(relative).join("memory.events");
    let v1 = cgroup_root
        .join("memory")
        .join(relative)
        .join("memory.oom_control");
    [v2, v1]
        .iter()
        .find_map(|file| std::fs::read_to_string(file).ok())
        .and_then(|text| counter(&text, "oom_kill"))
}

fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v1_and_v2_counters() {
        let root = tempfile::tempdir().unwrap();
        let v1 = root.path().join("memory/r1/c1");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(oom_kills(root.path(), "/r1/c1"), Some(2));
        let v2 = root.path().join("r1/c2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(
            v2.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(oom_kills(root.path(), "/r1/c2"), Some(1));
        assert_eq!(oom_kills(root.path(), "/r1/none"), None);
    }
}
