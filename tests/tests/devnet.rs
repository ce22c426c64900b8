//! `make devnet` as a newcomer runs it: `r1-devnet up` brings the network up, applies the
//! examples and shows hello-web and the shop (web → api → stock, by name) answering; `r1ctl devnet status` shows the same table from
//! another terminal; `r1-devnet down` stops it and nothing it started is left running.

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
    // Every URL the devnet printed answers this test too, as the devnet said it would.
    let mut answered = Vec::new();
    for line in shown.lines().filter(|l| l.contains(" answers: ")) {
        let mut words = line.split_whitespace();
        let (job, url) = (words.next().unwrap(), words.next().unwrap());
        let port: u16 = url
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|_| panic!("{line}"));
        let body = r1_e2e::node::http_get(port, "/").unwrap_or_default();
        answered.push((job.to_owned(), body));
    }
    let hello = answered.iter().filter(|(job, _)| job == "hello-web");
    assert_eq!(
        hello
            .clone()
            .filter(|(_, body)| body.contains("hello from r1"))
            .count(),
        2,
        "both replicas of hello-web answer over HTTP: {answered:?}\n{shown}"
    );
    // The shop's front end lists what its api read from stock: two calls by name, each to a
    // job of the project on whatever node it runs.
    let shop = answered
        .iter()
        .find(|(job, _)| job == "web")
        .map(|(_, body)| body.clone())
        .unwrap_or_default();
    assert!(
        shop.contains("catalogue (api on") && shop.contains("tea  3.50 USDC  12 in stock"),
        "the shop's web answered {shop:?}\n{shown}"
    );

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
    let alive: Vec<u32> = pids.into_iter().filter(|p| procfs::is_alive(*p)).collect();
    assert!(
        alive.is_empty(),
        "still running after down: {alive:?}\n{recorded}"
    );
    for file in ["devnet.pid", "processes", "env"] {
        assert!(!dir.path().join(file).exists(), "{file} left behind");
    }
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
