//! `make devnet` as a newcomer runs it: `r1-devnet up` brings the network up, applies the
//! examples and shows hello-web and the shop (web → api → stock, by name) answering; `r1ctl devnet status` shows the same table from
//! another terminal; `r1-devnet down` stops it and nothing it started is left running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use r1_e2e::process::{ChildGuard, bin_path};
use r1_e2e::procfs;
use r1_e2e::wait::until;

#[test]
fn the_devnet_comes_up_answers_and_goes_down_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let mut up = Command::new(bin_path("r1-devnet").unwrap());
    up.arg("--dir")
        .arg(dir.path())
        .args(["up", "--epoch-seconds", "30", "--heartbeat-seconds", "1"])
        .args(["--loop-period-ms", "500"]);
    let mut devnet = ChildGuard::spawn_logged(&mut up, "r1-devnet", log_dir.path()).unwrap();
    let output =
        || std::fs::read_to_string(log_dir.path().join("r1-devnet.log")).unwrap_or_default();

    let up_and_running = until(Duration::from_secs(150), || {
        output().contains("The devnet runs") || !devnet.is_running()
    });
    let shown = output();
    assert!(
        up_and_running && shown.contains("The devnet runs"),
        "{shown}"
    );
    for step in 1..=6 {
        assert!(
            shown.contains(&format!("[{step}/6]")),
            "step {step} missing:\n{shown}"
        );
    }
    assert!(!shown.contains("FAILED"), "{shown}");
    // Ask every node agent the devnet started what it runs (`r1ctl node ps` on its socket) and
    // every published port over HTTP: the test's own view, not the devnet's printed answers.
    let tree = procfs::descendants(&[devnet.id()]);
    let answered = answers_of_running_nodes(&tree);
    assert_eq!(
        answered
            .iter()
            .filter(|body| body.contains("hello from r1"))
            .count(),
        2,
        "both replicas of hello-web answer over HTTP: {answered:?}\n{shown}"
    );
    // The shop's front end lists what its api read from stock: two calls by name, each to a
    // job of the project on whatever node it runs.
    assert!(
        answered
            .iter()
            .any(|body| body.contains("catalogue (api on")
                && body.contains("tea  3.50 USDC  12 in stock")),
        "the shop's web does not answer with the catalogue: {answered:?}\n{shown}"
    );
    let started = everything_started_under(&tree);

    let status = Command::new(bin_path("r1ctl").unwrap())
        .args(["devnet", "status"])
        .env("R1_DEVNET_DIR", dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let job = table
        .lines()
        .find(|l| l.contains("hello-web"))
        .unwrap_or_default();
    assert!(job.contains("Running") && job.contains("2/2"), "{table}");
    assert!(
        table.contains("acme-escrow") && table.contains("BURNED"),
        "{table}"
    );

    // The hint the devnet prints works as printed in a fresh shell, whose PATH has no r1ctl.
    let hinted = Command::new("sh")
        .arg("-c")
        .arg(format!(". '{}/env' && r1ctl status", dir.path().display()))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let hinted_table = String::from_utf8_lossy(&hinted.stdout);
    assert!(
        hinted.status.success() && hinted_table.contains("hello-web"),
        "{hinted_table}{}",
        String::from_utf8_lossy(&hinted.stderr)
    );

    let recorded = std::fs::read_to_string(dir.path().join("processes")).unwrap();
    let pids: Vec<u32> = recorded
        .lines()
        .filter_map(|l| l.split('\t').next()?.parse().ok())
        .collect();
    assert!(
        pids.len() >= 9,
        "chain, broker, containerd, 3 oracles, 4 nodes: {recorded}"
    );

    let down = Command::new(bin_path("r1-devnet").unwrap())
        .arg("--dir")
        .arg(dir.path())
        .arg("down")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(
        down.status.success() && said.contains("stopped the devnet"),
        "{said}"
    );
    assert!(
        said.lines().all(|l| !l.contains("killed leftover")),
        "{said}"
    );
    let exit = devnet.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}\n{}", output());
    assert!(
        output().contains("nothing it started is left running"),
        "{}",
        output()
    );
    assert!(
        pids.iter().all(|pid| started.contains(pid)),
        "the devnet recorded processes this test did not find: {pids:?} vs {started:?}"
    );
    let alive: Vec<u32> = started
        .into_iter()
        .filter(|p| procfs::process(*p).is_some_and(|p| !p.is_zombie()))
        .collect();
    assert!(
        alive.is_empty(),
        "still running after down: {alive:?}\n{recorded}"
    );
    for file in ["devnet.pid", "processes", "env"] {
        assert!(!dir.path().join(file).exists(), "{file} left behind");
    }
}

/// The bodies of `GET /` on every host port of every running workload of the node agents in
/// `tree`, each agent asked with `r1ctl node ps` on its socket.
fn answers_of_running_nodes(tree: &[u32]) -> Vec<String> {
    let sockets: Vec<PathBuf> = tree
        .iter()
        .filter_map(|pid| procfs::process(*pid))
        .filter(|p| {
            p.cmdline
                .first()
                .is_some_and(|bin| bin.ends_with("r1-node"))
        })
        .filter_map(|p| Some(Path::new(p.flag_value("--config")?).with_file_name("api.sock")))
        .collect();
    assert_eq!(sockets.len(), 4, "four node agents run: {tree:?}");
    sockets
        .iter()
        .flat_map(|socket| r1_e2e::node::published_ports(socket))
        .map(|(_, port)| r1_e2e::node::http_get(port, "/").unwrap_or_default())
        .collect()
}

/// Every process the devnet in `tree` started: the tree itself, whatever runs from the
/// temporary directories its processes were given (containerd's shims leave the tree), and
/// their children (the containers).
fn everything_started_under(tree: &[u32]) -> Vec<u32> {
    let mut roots = std::collections::BTreeSet::new();
    for process in tree.iter().filter_map(|pid| procfs::process(*pid)) {
        for arg in &process.cmdline {
            let mut parts = Path::new(arg).components().skip(1);
            if let (Some(tmp), Some(dir)) = (parts.next(), parts.next())
                && tmp.as_os_str() == "tmp"
            {
                roots.insert(Path::new("/tmp").join(dir).display().to_string());
            }
        }
    }
    let mut started: Vec<u32> = procfs::processes()
        .into_iter()
        .filter(|p| roots.iter().any(|root| p.mentions(root)))
        .map(|p| p.pid)
        .chain(tree.iter().copied())
        .collect();
    started.extend(procfs::descendants(&started));
    started.sort_unstable();
    started.dedup();
    started
}

#[test]
fn down_without_a_devnet_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let down = Command::new(bin_path("r1-devnet").unwrap())
        .arg("--dir")
        .arg(dir.path())
        .arg("down")
        .output()
        .unwrap();
    assert!(down.status.success());
    assert!(String::from_utf8_lossy(&down.stdout).contains("no devnet was running"));
}
