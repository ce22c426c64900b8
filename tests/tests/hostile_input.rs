//! Hostile input against a whole network (real chain, broker, containerd, three oracles): what
//! an outsider with a fresh key and no licence tried on a running devnet, each attack
//! reproduced, and the network required to survive it. For every attack the figures are printed
//! (run with `--nocapture`): the answer (status and error code), every oracle's resident memory
//! before and after with the peak in between, the bytes it wrote, and its reconcile passes in a
//! window after the attack. Every test then requires:
//!
//! * the request refused with a 4xx that says why, or absorbed (2xx) where absorbing is
//!   harmless; never a 5xx, never 2xx for what must be refused, never 401 for an oversized body;
//! * every oracle within [`PEAK_GROWTH_MIB`], [`RSS_GROWTH_MIB`], [`WRITTEN_MIB`], and its
//!   passes within [`PASS_P50_S`] and [`PASS_MAX_S`] (histogram bucket bounds), with at least
//!   one pass completed in the window;
//! * the honest example job still Running on every oracle, validated on chain, its nodes alive;
//! * nothing closed, deleted or rolled back that its owner did not ask for.
//!
//! A test runs every attack of its network and then fails with the list of every requirement
//! that did not hold, so one run shows all that is wrong. Tests hold [`SERIAL`] so that their
//! figures are not another test's load.

#![allow(clippy::unwrap_used)] // test fixtures

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use r1_controller::decide::workload::WorkloadTemplate;
use r1_crds::manifest::{Manifest, parse_documents};
use r1_e2e::hostile::http::{self, Reply, SignedRequest};
use r1_e2e::hostile::measure::{self, Cost};
use r1_e2e::hostile::mqtt::Attacker;
use r1_e2e::hostile::payload;
use r1_e2e::network::{Network, NetworkSettings};
use r1_e2e::scenario::{self, EXAMPLES};
use r1_e2e::wait::until;
use r1_protocol::envelope::Sealer;
use r1_protocol::topics::Channel;
use r1_protocol::{Address, Identity};

/// Most an oracle's resident memory may peak above what it was before an attack.
const PEAK_GROWTH_MIB: f64 = 96.0;
/// Most an oracle's resident memory may stay above what it was before an attack.
const RSS_GROWTH_MIB: f64 = 64.0;
/// Most an oracle may write (store, log, sockets) from an attack to the end of its window.
const WRITTEN_MIB: f64 = 64.0;
/// Bound (a bucket of the pass histogram) under which half the passes after an attack must take.
const PASS_P50_S: f64 = 0.5;
/// Bound (a bucket of the pass histogram) under which every pass after an attack must take.
const PASS_MAX_S: f64 = 2.5;
/// Time left to an attack's effects before the window opens.
const SETTLE: Duration = Duration::from_secs(1);
/// How long passes are watched after an attack (about ten 500 ms loop periods).
const WINDOW: Duration = Duration::from_secs(5);
/// How long the honest job gets to be Running everywhere again after an attack.
const HONEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Statuses that refuse something for a reason the client can act on (too big, invalid, not
/// allowed, too many).
const REFUSALS: [u16; 7] = [400, 402, 403, 404, 413, 422, 429];

/// One test at a time in this file: each one's figures must be its own attack's.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Figures and broken requirements of one test's attacks.
struct Report {
    test: &'static str,
    rows: Vec<String>,
    violations: Vec<String>,
}

impl Report {
    fn new(test: &'static str) -> Self {
        println!("\n=== {test}");
        Self {
            test,
            rows: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Records `line` as a figure.
    fn note(&mut self, line: String) {
        println!("{line}");
        self.rows.push(line);
    }

    /// Requires `ok`; `what` says what was required and what was seen.
    fn check(&mut self, ok: bool, what: String) {
        if !ok {
            println!("  VIOLATED: {what}");
            self.violations.push(what);
        }
    }

    /// Requires a reply with a status in `allowed`, and never a 5xx.
    fn reply(&mut self, attack: &str, reply: &std::io::Result<Reply>, allowed: &[u16]) {
        match reply {
            Ok(r) => self.check(
                allowed.contains(&r.status),
                format!(
                    "{attack}: answered {} (allowed {allowed:?}): {:.300}",
                    r.summary(),
                    r.body
                ),
            ),
            Err(e) => self.check(false, format!("{attack}: no answer: {e}")),
        }
    }

    /// Prints what `attack` cost each oracle and requires the limits.
    fn costs(&mut self, attack: &str, outcome: &str, costs: &[Cost]) {
        self.note(format!("{attack}: {outcome}"));
        for (i, c) in costs.iter().enumerate() {
            self.note(format!(
                "  oracle {i}: RSS {:.0} -> {:.0} MiB (peak {:.0}, +{:.0}), wrote {:.1} MiB, {}",
                c.rss_before_mib,
                c.rss_after_mib,
                c.peak_mib,
                c.peak_growth_mib(),
                c.written_mib,
                c.passes
            ));
            let who = format!("{attack}: oracle {i}");
            self.check(c.survived, format!("{who} died or restarted"));
            self.check(
                c.peak_growth_mib() < PEAK_GROWTH_MIB,
                format!(
                    "{who} peaked {:.0} MiB above its {:.0} MiB (limit {PEAK_GROWTH_MIB})",
                    c.peak_growth_mib(),
                    c.rss_before_mib
                ),
            );
            self.check(
                c.rss_growth_mib() < RSS_GROWTH_MIB,
                format!(
                    "{who} kept {:.0} MiB more than its {:.0} MiB (limit {RSS_GROWTH_MIB})",
                    c.rss_growth_mib(),
                    c.rss_before_mib
                ),
            );
            self.check(
                c.written_mib < WRITTEN_MIB,
                format!("{who} wrote {:.1} MiB (limit {WRITTEN_MIB})", c.written_mib),
            );
            self.check(
                c.passes.passes > 0,
                format!("{who} completed no reconcile pass in {WINDOW:?}"),
            );
            self.check(
                c.passes.passes == 0
                    || (c.passes.p50_le_s <= PASS_P50_S && c.passes.max_le_s <= PASS_MAX_S),
                format!(
                    "{who} passes too slow: {} (limits p50 {PASS_P50_S} s, max {PASS_MAX_S} s)",
                    c.passes
                ),
            );
        }
    }

    /// Prints the figures again and fails with every broken requirement.
    fn finish(self) {
        println!("\n--- {}: figures", self.test);
        for row in &self.rows {
            println!("{row}");
        }
        assert!(
            self.violations.is_empty(),
            "{}: {} requirement(s) broken:\n- {}",
            self.test,
            self.violations.len(),
            self.violations.join("\n- ")
        );
    }
}

/// A network of three oracles and `nodes` nodes (1 s heartbeats, 500 ms loops).
fn network(nodes: usize) -> Network {
    scenario::start_network(&NetworkSettings {
        nodes,
        ..NetworkSettings::default()
    })
    .unwrap()
}

/// Runs `attack` against the network's oracles and returns its outcome with its cost.
fn measured<T>(network: &Network, attack: impl FnOnce() -> T) -> (T, Vec<Cost>) {
    let before = measure::before_attack(network.oracles());
    let outcome = attack();
    let costs = measure::after_attack(network.oracles(), &before, SETTLE, WINDOW);
    (outcome, costs)
}

/// Requires the honest job to be Running with both replicas on every oracle, linked to chain
/// job `job`, open and validated on chain, and every oracle to count at least `nodes` nodes
/// alive.
fn honest_job(network: &Network, report: &mut Report, after: &str, job: u64, nodes: usize) {
    match scenario::wait_running(network, "hello-web", 2, HONEST_TIMEOUT) {
        Ok(id) => report.check(
            id == job,
            format!("after {after}: hello-web is linked to chain job {id}, not {job}"),
        ),
        Err(e) => report.check(
            false,
            format!(
                "after {after}: hello-web not Running everywhere: {:.600}",
                e.to_string()
            ),
        ),
    }
    match scenario::chain_job(network, job) {
        Ok(on_chain) => {
            report.check(
                !on_chain.closed,
                format!("after {after}: chain job {job} was closed"),
            );
            report.check(
                on_chain.activeNodes.len() == 2,
                format!(
                    "after {after}: chain job {job} validated on {:?}",
                    on_chain.activeNodes
                ),
            );
        }
        Err(e) => report.check(false, format!("after {after}: chain unreadable: {e}")),
    }
    for (i, oracle) in network.oracles().iter().enumerate() {
        let alive = oracle.metric("r1_oracle_nodes{name=\"alive\"}");
        report.check(
            alive >= nodes as f64,
            format!("after {after}: oracle {i} counts {alive} nodes alive, not {nodes}"),
        );
    }
}

/// The CSP's signed `GET` of one object from oracle `oracle`.
fn csp_get(network: &Network, oracle: usize, plural: &str, name: &str) -> Option<Reply> {
    let port = network.oracles()[oracle].api_port;
    http::get(port, network.csp(), plural, "default", name).ok()
}

/// Whether every oracle answers 404 for the CSP's `plural/default/name`.
fn gone_everywhere(network: &Network, plural: &str, name: &str) -> bool {
    (0..network.oracles().len())
        .all(|o| csp_get(network, o, plural, name).is_some_and(|r| r.status == 404))
}

/// `text` of an example manifest.
fn example(file: &str) -> String {
    std::fs::read_to_string(format!("{EXAMPLES}/{file}")).unwrap()
}

/// 8 (bodies over 1 MiB got 401 instead of 413; 350 half-sent requests all stayed open) and 3
/// (a 15 KB alias bomb took an oracle from 48 MB to 934 MB).
#[test]
fn oversized_bodies_alias_bombs_and_slow_requests_are_cut_short() {
    let _serial = serial();
    let mut report = Report::new("oversized bodies, alias bombs, slow requests");
    let network = network(2);
    let job = scenario::run_hello_web(&network).unwrap();
    let outsider = Identity::generate();
    let api = network.oracles()[0].api_port;

    // Bodies just over the limit and four times it, signed and unsigned: 413, never 401.
    let (replies, costs) = measured(&network, || {
        let over = vec![b'#'; (1 << 20) + 1];
        let huge = vec![b'#'; 4 << 20];
        vec![
            (
                "1 MiB + 1 signed",
                http::apply(api, &outsider, &String::from_utf8_lossy(&over)),
            ),
            (
                "4 MiB signed",
                http::apply(api, &outsider, &String::from_utf8_lossy(&huge)),
            ),
            (
                "1 MiB + 1 unsigned",
                http::send(api, "POST", "/v1/apply", &[], &over),
            ),
        ]
    });
    let mut outcome = Vec::new();
    for (what, reply) in &replies {
        report.reply(&format!("body {what}"), reply, &[413]);
        outcome.push(format!(
            "{what}: {}",
            reply
                .as_ref()
                .map_or_else(|e| e.to_string(), Reply::summary)
        ));
    }
    report.costs("oversized bodies", &outcome.join(", "), &costs);

    // A 15 KB document whose aliases expand some 40 000 times, and the classic 1 KB one.
    let wide = payload::wide_laughs(outsider.address(), 15_000, 5);
    let (reply, costs) = measured(&network, || http::apply(api, &outsider, &wide));
    report.reply("15 KB alias bomb", &reply, &[400, 413, 422]);
    let summary = reply
        .as_ref()
        .map_or_else(|e| e.to_string(), Reply::summary);
    report.costs(
        &format!("15 KB alias bomb ({} bytes)", wide.len()),
        &summary,
        &costs,
    );
    let classic = payload::classic_laughs(outsider.address());
    let api1 = network.oracles()[1].api_port;
    let (reply, costs) = measured(&network, || http::apply(api1, &outsider, &classic));
    report.reply("classic alias bomb", &reply, &[400, 413, 422]);
    let summary = reply
        .as_ref()
        .map_or_else(|e| e.to_string(), Reply::summary);
    report.costs(
        &format!("classic alias bomb ({} bytes, to oracle 1)", classic.len()),
        &summary,
        &costs,
    );

    // 350 connections that never finish their headers, a byte now and then.
    slow_requests(&network, &mut report, 350);
    honest_job(&network, &mut report, "the API attacks", job, 2);
    report.finish();
}

/// How long half-sent requests may hold a connection (hyper's own header timeout is 30 s).
const SLOW_REQUEST_LIMIT: Duration = Duration::from_secs(35);

/// Opens `count` connections to oracle 0's API that send a request line and part of a header,
/// then one more byte every two seconds; requires the honest CSP to be served meanwhile and
/// every slow connection to be closed by the oracle within [`SLOW_REQUEST_LIMIT`].
fn slow_requests(network: &Network, report: &mut Report, count: usize) {
    let oracle = &network.oracles()[0];
    let pid = measure::oracle_pid(oracle);
    let fds_before = pid.and_then(measure::open_fds).unwrap_or(0);
    let address = SocketAddr::from(([127, 0, 0, 1], oracle.api_port));
    let started = Instant::now();
    let mut open: Vec<TcpStream> = (0..count)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
            s.write_all(b"POST /v1/apply HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        })
        .collect();
    let opened = open.len();
    std::thread::sleep(Duration::from_secs(1));
    let fds_during = pid.and_then(measure::open_fds).unwrap_or(0);
    let asked = Instant::now();
    let honest = http::get(
        oracle.api_port,
        network.csp(),
        "deeployjobs",
        "default",
        "hello-web",
    );
    let honest_took = asked.elapsed();
    report.check(
        honest.as_ref().is_ok_and(|r| r.status == 200) && honest_took < Duration::from_secs(5),
        format!(
            "slow requests: the CSP's GET beside them answered {} in {honest_took:?}",
            honest
                .as_ref()
                .map_or_else(|e| e.to_string(), Reply::summary)
        ),
    );
    let mut last_trickle = Instant::now();
    until(SLOW_REQUEST_LIMIT, || {
        let trickle = last_trickle.elapsed() >= Duration::from_secs(2);
        if trickle {
            last_trickle = Instant::now();
        }
        open.retain_mut(|s| still_open(s, trickle));
        if !open.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
        open.is_empty()
    });
    let closed_after = started.elapsed();
    report.note(format!(
        "{count} slow requests: {opened} opened, oracle fds {fds_before} -> {fds_during}, \
         CSP GET beside them {} in {honest_took:?}, {} still open after {closed_after:.1?}",
        honest
            .as_ref()
            .map_or_else(|e| e.to_string(), Reply::summary),
        open.len()
    ));
    report.check(
        open.is_empty(),
        format!(
            "slow requests: {} of {opened} connections still open after {closed_after:.1?}",
            open.len()
        ),
    );
}

/// Whether the server still holds `stream` open (it neither answered nor closed it); sends one
/// more header byte first when `trickle`.
fn still_open(stream: &mut TcpStream, trickle: bool) -> bool {
    if trickle && stream.write(b"a").is_err() {
        return false;
    }
    let mut buffer = [0_u8; 256];
    match stream.read(&mut buffer) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
        _ => false,
    }
}

/// 1: one signed apply of 1 000 small projects (163 KB) made every oracle write some 300 MB,
/// lose every node and degrade every job for good. Sent as one request and as ten of 100 from
/// the same key: refused (4xx) or absorbed, within the limits either way.
#[test]
fn a_flood_of_projects_is_refused_or_absorbed() {
    let _serial = serial();
    let mut report = Report::new("flood of projects");
    let network = network(2);
    let job = scenario::run_hello_web(&network).unwrap();
    let outsider = Identity::generate();
    let api = network.oracles()[0].api_port;

    let flood = payload::projects(outsider.address(), "flood-one", "p", 1000);
    let (reply, costs) = measured(&network, || http::apply(api, &outsider, &flood));
    report.reply(
        "1 000 projects in one request",
        &reply,
        &[200, 201, 400, 403, 413, 422, 429],
    );
    let summary = reply
        .as_ref()
        .map_or_else(|e| e.to_string(), Reply::summary);
    report.costs(
        &format!("1 000 projects in one request ({} KB)", flood.len() / 1000),
        &summary,
        &costs,
    );
    honest_job(
        &network,
        &mut report,
        "1 000 projects in one request",
        job,
        2,
    );

    let (replies, costs) = measured(&network, || {
        (0..10)
            .map(|batch| {
                let body =
                    payload::projects(outsider.address(), "flood-many", &format!("b{batch}-"), 100);
                http::apply(api, &outsider, &body)
            })
            .collect::<Vec<_>>()
    });
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for (batch, reply) in replies.iter().enumerate() {
        report.reply(
            &format!("batch {batch} of 100 projects"),
            reply,
            &[200, 201, 403, 413, 422, 429],
        );
        let key = reply
            .as_ref()
            .map_or_else(|e| e.to_string(), Reply::summary);
        *tally.entry(key).or_default() += 1;
    }
    report.costs(
        "10 requests of 100 projects from one key",
        &format!("{tally:?}"),
        &costs,
    );
    honest_job(&network, &mut report, "10 requests of 100 projects", job, 2);
    report.finish();
}

/// 5: 300 namespaces from 300 throwaway keys made passes 44 times slower; a stranger could
/// squat `prod` before its owner; 403 against 404 told who owns a namespace.
#[test]
fn namespaces_cannot_be_mass_claimed_squatted_or_probed() {
    let _serial = serial();
    let mut report = Report::new("namespaces");
    let network = network(2);
    let job = scenario::run_hello_web(&network).unwrap();
    let ports: Vec<u16> = network.oracles().iter().map(|o| o.api_port).collect();

    for keys in [30, 300] {
        let (replies, costs) = measured(&network, || {
            (0..keys)
                .map(|i| {
                    let key = Identity::generate();
                    let body =
                        payload::project(key.address(), &format!("t{keys}-{i}"), "squat", "x");
                    http::apply(ports[i % ports.len()], &key, &body)
                })
                .collect::<Vec<_>>()
        });
        let mut tally = std::collections::BTreeMap::<String, usize>::new();
        for reply in &replies {
            let key = reply
                .as_ref()
                .map_or_else(|e| e.to_string(), Reply::summary);
            *tally.entry(key).or_default() += 1;
        }
        let bad: Vec<String> = replies
            .iter()
            .filter_map(|r| match r {
                Ok(r) if r.is_success() || REFUSALS.contains(&r.status) => None,
                Ok(r) => Some(r.summary()),
                Err(e) => Some(e.to_string()),
            })
            .collect();
        report.check(
            bad.is_empty(),
            format!("{keys} throwaway namespaces: unexpected answers {bad:?}"),
        );
        report.costs(
            &format!("{keys} namespaces from {keys} throwaway keys"),
            &format!("{tally:?}"),
            &costs,
        );
    }

    // A stranger claims `prod` first; its owner must still be able to use it.
    let stranger = Identity::generate();
    let squat = http::apply(
        ports[0],
        &stranger,
        &payload::project(stranger.address(), "prod", "mine", "squatted"),
    );
    let owner_apply = http::apply(
        ports[0],
        network.csp(),
        &payload::project(network.csp().address(), "prod", "shop", "the owner's"),
    );
    let owner_get = http::get(ports[0], network.csp(), "deeployprojects", "prod", "shop");
    let show =
        |r: &std::io::Result<Reply>| r.as_ref().map_or_else(|e| e.to_string(), Reply::summary);
    report.note(format!(
        "squatting prod: stranger's claim {}, owner's apply {}, owner's get {}",
        show(&squat),
        show(&owner_apply),
        show(&owner_get)
    ));
    report.check(
        squat
            .as_ref()
            .is_ok_and(|r| r.is_success() || REFUSALS.contains(&r.status)),
        format!(
            "squatting prod: the stranger's claim answered {}",
            show(&squat)
        ),
    );
    report.check(
        owner_apply.as_ref().is_ok_and(Reply::is_success)
            && owner_get.as_ref().is_ok_and(|r| r.status == 200),
        format!(
            "squatting prod: the owner cannot use prod after a stranger claimed it: apply {}, get {}",
            show(&owner_apply),
            show(&owner_get)
        ),
    );

    // A stranger probes: the CSP's job, an absent name in the CSP's namespace, and a namespace
    // nobody owns must look alike, and no listing may show the CSP's objects.
    let nobody = format!("nobody-{}", rand_suffix());
    let unclaimed_get = format!("/v1/deeployjobs/{nobody}/absent");
    let unclaimed_list = format!("/v1/deeployjobs?namespace={nobody}");
    let probes: [(&str, &str); 5] = [
        (
            "deeployjobs/default/hello-web",
            "/v1/deeployjobs/default/hello-web",
        ),
        (
            "deeployjobs/default/absent",
            "/v1/deeployjobs/default/absent",
        ),
        ("deeployjobs/<unclaimed>/absent", &unclaimed_get),
        (
            "list ?namespace=default",
            "/v1/deeployjobs?namespace=default",
        ),
        ("list ?namespace=<unclaimed>", &unclaimed_list),
    ];
    let answers: Vec<(String, Reply)> = probes
        .iter()
        .map(|(what, path)| {
            let reply = http::signed(ports[1], &stranger, "GET", path, b"").unwrap();
            ((*what).to_owned(), reply)
        })
        .collect();
    report.note(format!(
        "probing as a stranger: {}",
        answers
            .iter()
            .map(|(w, r)| format!("{w} -> {}", r.summary()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let gets: Vec<(u16, String)> = answers[..3]
        .iter()
        .map(|(_, r)| (r.status, r.code()))
        .collect();
    report.check(
        gets.iter().all(|g| *g == gets[0]),
        format!("probing: the stranger's GETs tell owned, absent and unclaimed apart: {gets:?}"),
    );
    let lists: Vec<(u16, String)> = answers[3..]
        .iter()
        .map(|(_, r)| (r.status, r.code()))
        .collect();
    report.check(
        lists[0] == lists[1],
        format!("probing: the stranger's lists tell the CSP's namespace from an unclaimed one: {lists:?}"),
    );
    report.check(
        answers
            .iter()
            .all(|(_, r)| !r.body.contains("hello-web") || !r.is_success()),
        "probing: a stranger's read shows the CSP's job".to_owned(),
    );
    honest_job(&network, &mut report, "the namespace attacks", job, 2);
    report.finish();
}

/// The chain job `r1ctl apply` says it funded (`… funded: chain job 7, …`).
fn funded_job(printed: &str) -> Option<u64> {
    let rest = printed.split("chain job ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Eight hex digits to make names unique.
fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Publishes, every `period` until dropped, a heartbeat from each of `fakes` (fresh keys no
/// chain licensed); the first fake also claims `claims`.
struct FakeNodes {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl FakeNodes {
    fn start(
        attacker: Arc<Attacker>,
        fakes: usize,
        claims: Vec<r1_protocol::messages::WorkloadReport>,
        period: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::spawn(move || {
            let sealers: Vec<Sealer> = (0..fakes)
                .map(|_| Sealer::new(Identity::generate()))
                .collect();
            let mut sent = 0;
            while !thread_stop.load(Ordering::Relaxed) {
                let round = Instant::now();
                for (i, sealer) in sealers.iter().enumerate() {
                    let workloads = if i == 0 { claims.clone() } else { Vec::new() };
                    let beat = payload::heartbeat(&format!("fake-{i}"), workloads);
                    sent += usize::from(attacker.publish_as(sealer, Channel::Heartbeat, &beat));
                }
                std::thread::sleep(period.saturating_sub(round.elapsed()));
            }
            sent
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops publishing; returns how many heartbeats were sent.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for FakeNodes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The revision the oracles give the example job's replicas, as anyone reading the public
/// manifest can compute it.
fn hello_web_revision() -> String {
    let job = parse_documents(&example("job-http.yaml"))
        .into_iter()
        .find_map(|d| match d.result {
            Ok(Manifest::Job(job)) => Some(job),
            _ => None,
        })
        .unwrap();
    WorkloadTemplate::of(&job.spec, None)
        .unwrap()
        .revision()
        .to_owned()
}

/// 2: one forged heartbeat from an unlicensed key claiming a replica of the next job kept it at
/// 0/1 for ever. Here the outsider claims both replicas of the next three jobs, at the revision
/// the example will run, every second from before the CSP applies it.
#[test]
fn a_forged_claim_to_the_next_job_does_not_hold_it() {
    let _serial = serial();
    let mut report = Report::new("forged claim to the next job");
    let network = network(2);
    let attacker =
        Arc::new(Attacker::connect(&network.broker().url(), &Identity::generate(), &[]).unwrap());
    report.note(format!("outsider on the broker: {:?}", attacker.verdict()));
    let revision = hello_web_revision();
    let claims: Vec<_> = (1..=3)
        .flat_map(|job| (0..2).map(move |r| (job, r)))
        .map(|(job, replica)| payload::running(job, replica, &revision))
        .collect();
    let claimer = FakeNodes::start(attacker, 1, claims, Duration::from_secs(1));
    std::thread::sleep(Duration::from_secs(2));
    scenario::apply_examples(&network, &scenario::HELLO_WEB).unwrap();
    let started = Instant::now();
    let running = scenario::wait_running(&network, "hello-web", 2, Duration::from_secs(45));
    report.note(format!(
        "forged claim of jobs 1-3: hello-web {} after {:.1?}",
        if running.is_ok() {
            "Running"
        } else {
            "NOT Running"
        },
        started.elapsed()
    ));
    let licensed: Vec<String> = network
        .node_addresses()
        .iter()
        .map(|a| a.to_checksum(None))
        .collect();
    for oracle in 0..network.oracles().len() {
        let status = scenario::job_status(&network, oracle, "hello-web").unwrap_or_default();
        let nodes: Vec<String> = status["assignments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| format!("{}:{}", a["node"].as_str().unwrap_or("-"), a["state"]))
            .collect();
        report.note(format!(
            "  oracle {oracle}: {} {} on {nodes:?}",
            status["phase"], status["ready"]
        ));
        report.check(
            nodes
                .iter()
                .all(|n| licensed.iter().any(|l| n.starts_with(l.as_str()))),
            format!(
                "forged claim: oracle {oracle} assigns hello-web to unlicensed nodes: {nodes:?}"
            ),
        );
    }
    match running {
        Ok(job) => {
            let active = scenario::active_nodes(&network, job).unwrap_or_default();
            report.check(
                active.iter().all(|n| network.node_addresses().contains(n)),
                format!(
                    "forged claim: chain job {job} validated on an unlicensed node: {active:?}"
                ),
            );
            honest_job(&network, &mut report, "the forged claim", job, 2);
        }
        Err(e) => report.check(
            false,
            format!("forged claim: hello-web never ran: {:.300}", e.to_string()),
        ),
    }
    let sent = claimer.stop();
    report.note(format!("  {sent} forged heartbeats sent"));
    report.finish();
}

/// 4: 200 fake nodes and one heartbeat listing 2 000 job ids made every pass take 22–25 s, for
/// good; here also 20 fake nodes and 200 job ids. The fakes heartbeat every second through the
/// window.
#[test]
fn fake_nodes_and_claimed_jobs_do_not_slow_the_oracles() {
    let _serial = serial();
    let mut report = Report::new("fake nodes");
    let network = network(2);
    let job = scenario::run_hello_web(&network).unwrap();
    let attacker =
        Arc::new(Attacker::connect(&network.broker().url(), &Identity::generate(), &[]).unwrap());
    report.note(format!("outsider on the broker: {:?}", attacker.verdict()));
    for (fakes, jobs) in [(20, 200), (200, 2000)] {
        let claims: Vec<_> = (0..jobs)
            .map(|i| payload::running(10_000 + i, 0, "ffff"))
            .collect();
        let (publishing, costs) = measured(&network, || {
            let fake = FakeNodes::start(attacker.clone(), fakes, claims, Duration::from_secs(1));
            std::thread::sleep(Duration::from_secs(2));
            fake
        });
        let sent = publishing.stop();
        report.costs(
            &format!("{fakes} fake nodes, one claiming {jobs} jobs"),
            &format!("{sent} heartbeats published"),
            &costs,
        );
        honest_job(
            &network,
            &mut report,
            &format!("{fakes} fake nodes"),
            job,
            2,
        );
    }
    report.finish();
}

/// 6: a DELETE replayed to another oracle within 60 s closed a re-created, funded job on chain
/// and the oracles diverged; an older apply replayed rolled an object back. 9: deleted projects,
/// escrows and tunnels stayed Terminating for ever, so re-applying them was refused. 7: a
/// stranger subscribed to `#` read every relayed manifest and command.
#[test]
fn replays_change_nothing_and_deletions_finish() {
    let _serial = serial();
    let mut report = Report::new("replays and deletions");
    let network = network(2);
    let spy = Attacker::connect(&network.broker().url(), &Identity::generate(), &["#"]).unwrap();
    report.note(format!("stranger subscribed to #: {:?}", spy.verdict()));
    let job = scenario::run_hello_web(&network).unwrap();
    let ports: Vec<u16> = network.oracles().iter().map(|o| o.api_port).collect();
    let csp = network.csp();
    let tunnel = http::apply(ports[0], csp, &example("tunnel.yaml"));
    report.reply("applying the example tunnel", &tunnel, &[200]);

    // An older apply replayed to another oracle must not roll the project back.
    let project = example("project.yaml");
    let first = SignedRequest::new(
        csp,
        "POST",
        "/v1/apply",
        project
            .replace("description: ", "description: first ")
            .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(20));
    let second = SignedRequest::new(
        csp,
        "POST",
        "/v1/apply",
        project
            .replace("description: ", "description: second ")
            .as_bytes(),
    );
    let sent = [first.send_to(ports[0]), second.send_to(ports[0])];
    report.check(
        sent.iter().all(|r| r.as_ref().is_ok_and(Reply::is_success)),
        format!("the CSP's two applies of the project: {sent:?}"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let replays: Vec<String> = ports[1..]
        .iter()
        .map(|p| {
            first
                .send_to(*p)
                .map_or_else(|e| e.to_string(), |r| r.summary())
        })
        .collect();
    // Watched for a resync period and more: even a passing rollback would roll a job out.
    let descriptions = || -> Vec<String> {
        (0..ports.len())
            .map(|o| {
                csp_get(&network, o, "deeployprojects", "hello").map_or_else(
                    || "-".into(),
                    |r| {
                        let description = &r.json()["spec"]["description"];
                        description
                            .as_str()
                            .unwrap_or("-")
                            .chars()
                            .take(6)
                            .collect()
                    },
                )
            })
            .collect()
    };
    let watched = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    while watched.elapsed() < Duration::from_secs(7) {
        seen.insert(descriptions());
        std::thread::sleep(Duration::from_millis(200));
    }
    let now = descriptions();
    report.note(format!(
        "older apply replayed to oracles 1, 2: {replays:?}; descriptions seen since {seen:?}, now {now:?}"
    ));
    report.check(
        seen.iter().flatten().all(|d| d.starts_with("second")),
        format!("an older apply replayed rolled the project back: seen {seen:?}"),
    );

    // The CSP deletes the job; once it is gone and re-created (and funded again), the same
    // DELETE replayed to the other oracles must not touch the new one.
    let delete = SignedRequest::new(csp, "DELETE", "/v1/deeployjobs/default/hello-web", b"");
    let deleted = delete.send_to(ports[0]);
    report.check(
        deleted.as_ref().is_ok_and(Reply::is_success),
        format!("the CSP's delete: {deleted:?}"),
    );
    let gone = until(Duration::from_secs(40), || {
        let done = gone_everywhere(&network, "deeployjobs", "hello-web");
        if !done {
            std::thread::sleep(Duration::from_millis(250));
        }
        done
    });
    let closed = scenario::chain_job(&network, job).is_ok_and(|j| j.closed);
    report.note(format!(
        "the CSP's delete: gone everywhere {gone}, chain job {job} closed {closed}, after {:.1?}",
        Duration::from_millis(
            r1_protocol::now_ms() - delete.headers.timestamp.parse::<u64>().unwrap()
        )
    ));
    report.check(
        gone && closed,
        format!("the CSP's delete of hello-web: gone {gone}, closed {closed}"),
    );
    let recreated = scenario::apply_examples(&network, &scenario::HELLO_WEB).unwrap();
    let age_ms = r1_protocol::now_ms() - delete.headers.timestamp.parse::<u64>().unwrap();
    let replayed: Vec<String> = ports[1..]
        .iter()
        .map(|p| {
            delete
                .send_to(*p)
                .map_or_else(|e| e.to_string(), |r| r.summary())
        })
        .collect();
    report.note(format!(
        "the delete replayed {:.1} s after signing to oracles 1, 2: {replayed:?}",
        age_ms as f64 / 1000.0
    ));
    report.check(
        age_ms < 55_000,
        format!("the delete could only be replayed {age_ms} ms after it was signed"),
    );
    match funded_job(&scenario::printed(&recreated)) {
        Some(new_job) => {
            let running = scenario::wait_running(&network, "hello-web", 2, Duration::from_secs(30));
            let deleting: Vec<bool> = (0..ports.len())
                .map(|o| {
                    csp_get(&network, o, "deeployjobs", "hello-web")
                        .is_none_or(|r| r.json()["metadata"]["deletionRequested"] != false)
                })
                .collect();
            let closed = scenario::chain_job(&network, new_job).is_ok_and(|j| j.closed);
            report.note(format!(
                "re-created hello-web: chain job {new_job}, closed {closed}, deleting on oracles \
                 {deleting:?}, Running everywhere {}",
                running.is_ok()
            ));
            report.check(
                !closed && deleting.iter().all(|d| !d),
                format!(
                    "the replayed delete closed the re-created job {new_job} ({closed}) or marked \
                     it deleted on oracles ({deleting:?})"
                ),
            );
            if running.is_ok() {
                honest_job(&network, &mut report, "the replayed delete", new_job, 2);
            }
        }
        None => report.check(
            false,
            format!(
                "r1ctl did not fund the re-created hello-web: {}",
                scenario::printed(&recreated)
            ),
        ),
    }

    // The CSP deletes the job, then the tunnel, project and escrow: each must be gone from every
    // oracle, and applying them again must work.
    let _ = http::signed(
        ports[0],
        csp,
        "DELETE",
        "/v1/deeployjobs/default/hello-web",
        b"",
    );
    let job_gone = until(Duration::from_secs(40), || {
        std::thread::sleep(Duration::from_millis(250));
        gone_everywhere(&network, "deeployjobs", "hello-web")
    });
    report.check(
        job_gone,
        "the re-created hello-web was not finalized after its delete".into(),
    );
    for (plural, name) in [
        ("tunnels", "hello-web"),
        ("deeployprojects", "hello"),
        ("escrows", "acme-escrow"),
    ] {
        let asked = Instant::now();
        let reply = http::signed(
            ports[0],
            csp,
            "DELETE",
            &format!("/v1/{plural}/default/{name}"),
            b"",
        );
        let gone = until(Duration::from_secs(15), || {
            std::thread::sleep(Duration::from_millis(250));
            gone_everywhere(&network, plural, name)
        });
        report.note(format!(
            "deleting {plural}/{name}: {} then gone everywhere {gone} after {:.1?}",
            reply
                .as_ref()
                .map_or_else(|e| e.to_string(), Reply::summary),
            asked.elapsed()
        ));
        report.check(
            gone,
            format!("{plural}/{name} stays Terminating after its delete"),
        );
    }
    let again = http::apply(
        ports[0],
        csp,
        &[
            example("escrow.yaml"),
            example("project.yaml"),
            example("tunnel.yaml"),
        ]
        .join("\n---\n"),
    );
    report.note(format!(
        "applying escrow, project and tunnel again: {}",
        again
            .as_ref()
            .map_or_else(|e| e.to_string(), Reply::summary)
    ));
    report.check(
        again.as_ref().is_ok_and(Reply::is_success),
        format!("re-applying deleted escrow, project and tunnel: {again:?}"),
    );

    let requests = spy.heard_on(Channel::Requests).len();
    let commands = spy.heard_on(Channel::Commands).len();
    report.note(format!(
        "stranger on #: {:?}, heard {} messages: {requests} relayed requests, {commands} commands",
        spy.verdict(),
        spy.heard().len()
    ));
    report.check(
        requests == 0 && commands == 0,
        format!(
            "a stranger subscribed to # heard {requests} relayed requests and {commands} commands"
        ),
    );
    report.finish();
}

/// 10: after a SIGKILL of one oracle and of a node running a replica, the first oracle kept a
/// phantom third assignment (the dead node, `unknown`) for minutes.
#[test]
fn a_killed_oracle_and_node_leave_no_phantom_assignment() {
    let _serial = serial();
    let mut report = Report::new("killed oracle and node");
    let mut network = network(3);
    let job = scenario::run_hello_web(&network).unwrap();
    let active = scenario::active_nodes(&network, job).unwrap();
    let victim = active[0];
    let index = network
        .node_addresses()
        .iter()
        .position(|a| *a == victim)
        .unwrap();
    network.oracles_mut()[1].kill();
    network.nodes_mut()[index].kill();
    let killed = Instant::now();

    let clean = |network: &Network, oracle: usize| -> Option<Vec<(u64, String, String)>> {
        let status = scenario::job_status(network, oracle, "hello-web")?;
        let assignments: Vec<(u64, String, String)> = status["assignments"]
            .as_array()?
            .iter()
            .map(|a| {
                (
                    a["replica"].as_u64().unwrap_or(u64::MAX),
                    a["node"].as_str().unwrap_or("").to_owned(),
                    a["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        Some(assignments)
    };
    let is_clean = |a: &[(u64, String, String)]| {
        let nodes: std::collections::BTreeSet<&str> = a.iter().map(|x| x.1.as_str()).collect();
        let replicas: std::collections::BTreeSet<u64> = a.iter().map(|x| x.0).collect();
        a.len() == 2
            && nodes.len() == 2
            && replicas.len() == 2
            && a.iter()
                .all(|x| x.2 == "running" && x.1.parse::<Address>().is_ok_and(|n| n != victim))
    };
    let mut last = Vec::new();
    let settled = until(Duration::from_secs(45), || {
        let all: Vec<Vec<(u64, String, String)>> = [0, 2]
            .iter()
            .map(|&o| clean(&network, o).unwrap_or_default())
            .collect();
        let done = all.iter().all(|a| is_clean(a));
        last = all;
        if !done {
            std::thread::sleep(Duration::from_millis(250));
        }
        done
    });
    report.note(format!(
        "oracle 1 and node {victim} killed: assignments on oracles 0, 2 {} after {:.1?}: {last:?}",
        if settled { "clean" } else { "NOT clean" },
        killed.elapsed()
    ));
    report.check(
        settled,
        format!("a phantom or missing assignment remained after 45 s: {last:?}"),
    );
    if settled {
        std::thread::sleep(Duration::from_secs(3));
        let later: Vec<_> = [0, 2]
            .iter()
            .map(|&o| clean(&network, o).unwrap_or_default())
            .collect();
        report.check(
            later.iter().all(|a| is_clean(a)),
            format!("assignments changed again 3 s later: {later:?}"),
        );
    }
    let output = network.r1ctl(&["get", "djob", "hello-web"]).unwrap();
    let text = scenario::printed(&output);
    report.note(format!("r1ctl get djob hello-web:\n{text}"));
    let victim_text = victim.to_checksum(None);
    report.check(
        !text.contains(&victim_text[..6]) || !text.contains(&victim_text[victim_text.len() - 4..]),
        format!("r1ctl get still lists the dead node {victim}"),
    );
    report.finish();
}
