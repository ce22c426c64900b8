//! Scale benchmark (`make bench-scale`): three real oracles, the real chain and the real
//! broker, against thousands of simulated nodes ([`r1_e2e::simnodes`]: one process holding
//! every node's key, each node with its own MQTT session, signed heartbeats at the production
//! 10 s interval, deploy and stop commands obeyed by reporting the replica running). For each
//! broker in `R1_SCALE_BROKERS` (default `rumqttd,mosquitto`) and size in `R1_SCALE_NODES`
//! (default `1000,5000`) it prints, per oracle:
//!
//! * time until every oracle counts every node alive;
//! * a standing load of `R1_SCALE_LOAD` (default 900) two-replica jobs, 10 a project, applied 50
//!   manifests per `r1ctl apply`: time until all run, and the node-set votes it took (transactions, gas);
//! * at steady state with that load (a 30 s window, like the burst inside an epoch, after the
//!   last epoch's availability pages: see [`wait_for_a_quiet_stretch`]): CPU share, resident memory, the mean time
//!   of a reconcile pass, heartbeats verified per second (against what the fleet sent: none may
//!   be dropped);
//! * a burst of `R1_SCALE_JOBS` (default 100) more jobs, one `r1ctl apply` each: apply returned
//!   → Running 2/2 on every oracle, p50/p99, CPU, pass time and votes during the burst;
//! * node loss: a node holding a replica goes silent (its session drops) → the oracles run the
//!   replacement on another node.
//!
//! Needs root (the network's containerd); takes minutes per size, mostly licensing the nodes
//! on chain in bulk and applying the jobs. With rumqttd, 10,000 nodes need more than this
//! machine's hard limit of 20,000 open files: the embedded broker's gate holds two sockets per
//! client in the broker's process beside rumqttd's own (mosquitto holds one).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use r1_crds::manifest::Kind;
use r1_e2e::network::{BrokerKind, Network, NetworkSettings};
use r1_e2e::procfs;
use r1_e2e::simnodes::licences::license_in_bulk;
use r1_e2e::simnodes::{Fleet, FleetSettings};
use r1_e2e::wait::until;
use r1_protocol::Identity;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/examples");

/// The production heartbeat interval.
const HEARTBEAT_SECONDS: u64 = 10;
/// Jobs per project (each project's service table goes to every replica of its jobs).
const JOBS_PER_PROJECT: usize = 10;

/// The label telling the standing load's jobs (`load`) from the burst's (`burst`), so the
/// burst's watcher lists its 100 jobs, not every job of the load with them.
const BENCH_LABEL: &str = "r1-bench";

/// The burst's watcher's pause between two rounds of listings: it measures the oracles, so it
/// must not keep a core busy on the 2-core machine they share.
const WATCH_PAUSE: Duration = Duration::from_millis(100);

/// Job manifests per `r1ctl apply` while loading.
const LOAD_PAGE: usize = 50;

/// The steady-state window: three heartbeat intervals.
const STEADY_WINDOW: Duration = Duration::from_secs(30);

/// The time the steady window and the burst need between two epoch ends.
const QUIET_STRETCH: Duration = Duration::from_secs(270);

/// How long the burst's last job may take to run on every oracle after the last apply.
const BURST_WAIT: Duration = Duration::from_secs(180);

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A job's conditions in the order a new job meets them: where the burst's time goes.
const STEPS: [&str; 4] = ["Funded", "Scheduled", "Validated", "Running"];

/// For each oracle, the seconds from each burst job's apply returning (`applied`, wall clock) to
/// each of [`STEPS`] turning `True`, p50 and p99 over the jobs (whole seconds, both times cut to
/// the second: the status keeps no finer time).
fn print_steps(lister: &Lister, applied: &BTreeMap<String, SystemTime>) {
    for (oracle, steps) in lister.steps("burst").into_iter().enumerate() {
        let line: Vec<String> = STEPS
            .iter()
            .map(|step| {
                let mut since: Vec<f64> = applied
                    .iter()
                    .filter_map(|(name, at)| {
                        let turned = *steps.get(name)?.get(*step)?;
                        let at = at.duration_since(UNIX_EPOCH).ok()?.as_secs() as f64;
                        Some((turned - at).max(0.0))
                    })
                    .collect();
                since.sort_by(f64::total_cmp);
                let rank = |p: f64| since[((since.len() as f64 - 1.0) * p).round() as usize];
                if since.is_empty() {
                    format!("{step} —")
                } else {
                    format!("{step} {:.0} / {:.0} s", rank(0.5), rank(0.99))
                }
            })
            .collect();
        println!(
            "    oracle {oracle}: apply returned → condition True, p50 / p99: {}",
            line.join(", ")
        );
    }
}

/// The phases of a pass the oracle times (`r1_oracle_loop_seconds{name="pass_<phase>"}`);
/// "chain" reads the snapshot and the nodes' standings together.
const PHASES: [&str; 5] = ["chain", "registry", "jobs", "tables", "closure"];

/// One oracle's counters at an instant.
#[derive(Debug, Clone)]
struct Reading {
    at: Instant,
    cpu_s: f64,
    rss: u64,
    pass_sum_s: f64,
    passes: f64,
    heartbeats: f64,
    /// Messages refused so far, by reason.
    refused: BTreeMap<String, f64>,
    vote_transactions: f64,
    votes: f64,
    vote_gas: f64,
    /// Seconds spent in each of [`PHASES`], summed over passes.
    phase_sums: [f64; PHASES.len()],
    /// Seconds the voter spent casting votes (beside the passes).
    voter_s: f64,
    /// Seconds the money task spent (beside the passes).
    money_s: f64,
}

fn read(network: &Network, oracle: usize) -> Reading {
    let process = &network.oracles()[oracle];
    let pid = process.pid().expect("oracle runs");
    let text = process.metrics();
    let metric = |prefix: &str| r1_e2e::node::metric_value(&text, prefix);
    let refused = text
        .lines()
        .filter_map(|l| l.strip_prefix("r1_oracle_refused_total{name=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once('"')?;
            Some((
                reason.to_string(),
                rest.rsplit(' ').next()?.parse::<f64>().ok()?,
            ))
        })
        .collect();
    Reading {
        at: Instant::now(),
        cpu_s: procfs::cpu_seconds(pid).expect("oracle stat"),
        rss: procfs::resident_bytes(pid).expect("oracle status"),
        pass_sum_s: metric("r1_oracle_loop_seconds_sum{name=\"reconcile\"}"),
        passes: metric("r1_oracle_loop_seconds_count{name=\"reconcile\"}"),
        heartbeats: metric("r1_oracle_accepted_total{name=\"heartbeat\"}"),
        refused,
        vote_transactions: metric("r1_oracle_vote_transactions_total"),
        votes: metric("r1_oracle_votes_batched_total"),
        vote_gas: metric("r1_oracle_vote_gas_total"),
        voter_s: metric("r1_oracle_loop_seconds_sum{name=\"votes\"}"),
        money_s: metric("r1_oracle_loop_seconds_sum{name=\"money\"}"),
        phase_sums: PHASES.map(|phase| {
            metric(&format!(
                "r1_oracle_loop_seconds_sum{{name=\"pass_{phase}\"}}"
            ))
        }),
    }
}

/// The messages refused between two readings, by reason ("none" when none was).
fn refusals(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let counted: Vec<String> = after
        .iter()
        .map(|(reason, n)| (reason, n - before.get(reason).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .map(|(reason, n)| format!("{n:.0} {reason}"))
        .collect();
    if counted.is_empty() {
        "none".to_string()
    } else {
        counted.join(", ")
    }
}

/// Prints what each oracle did between `before` and `after`.
fn report(label: &str, before: &[Reading], after: &[Reading]) {
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        let wall = a.at.duration_since(b.at).as_secs_f64();
        let passes = a.passes - b.passes;
        println!(
            "  {label} oracle {i}: CPU {:>5.1} % of a core, RSS {:>6.1} MiB, {:>4.0} passes of \
             {:>6.1} ms mean, {:>7.1} heartbeats verified/s, refused: {}",
            (a.cpu_s - b.cpu_s) / wall * 100.0,
            a.rss as f64 / (1 << 20) as f64,
            passes,
            if passes > 0.0 {
                (a.pass_sum_s - b.pass_sum_s) / passes * 1e3
            } else {
                f64::NAN
            },
            (a.heartbeats - b.heartbeats) / wall,
            refusals(&b.refused, &a.refused),
        );
        if passes > 0.0 {
            let phases: Vec<String> = PHASES
                .iter()
                .enumerate()
                .map(|(p, phase)| {
                    format!(
                        "{phase} {:.0}",
                        (a.phase_sums[p] - b.phase_sums[p]) / passes * 1e3
                    )
                })
                .collect();
            println!(
                "  {label} oracle {i}: a pass's phases, ms: {}; busy beside the passes: the voter {:.0} %, the money task {:.0} % of the time",
                phases.join(", "),
                (a.voter_s - b.voter_s) / wall * 100.0,
                (a.money_s - b.money_s) / wall * 100.0,
            );
        }
        let votes = a.votes - b.votes;
        if votes > 0.0 {
            println!(
                "  {label} oracle {i}: {votes:.0} node-set votes in {:.0} transactions, {:.0} gas \
                 ({:.0} a vote)",
                a.vote_transactions - b.vote_transactions,
                a.vote_gas - b.vote_gas,
                (a.vote_gas - b.vote_gas) / votes,
            );
        }
    }
}

fn readings(network: &Network) -> Vec<Reading> {
    (0..network.oracles().len())
        .map(|o| read(network, o))
        .collect()
}

/// Raises its flag when dropped, also while a panic unwinds.
struct RaiseOnDrop<'a>(&'a AtomicBool);

impl Drop for RaiseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What listing the oracles' jobs takes, apart from the network, so a thread beside the one
/// holding the network can list them: an API client per oracle, in this process (spawning an
/// `r1ctl get` per oracle made each round of listings late by a few hundred milliseconds more
/// on a busy machine, and took CPU from the oracles it measures).
struct Lister {
    runtime: tokio::runtime::Runtime,
    clients: Vec<r1_ctl::remote::Client>,
}

impl Lister {
    fn of(network: &Network) -> Self {
        Self {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("lister runtime"),
            clients: network
                .oracles()
                .iter()
                .map(|o| {
                    r1_ctl::remote::Client::new(&o.api_url(), network.csp().clone())
                        .expect("API client")
                })
                .collect(),
        }
    }

    /// The jobs labelled `r1-bench=<part>` as each oracle lists them, asked of all at once;
    /// none from an oracle whose listing fails.
    fn listed_everywhere(&self, part: &str) -> Vec<Vec<Value>> {
        let selector = format!("{BENCH_LABEL}={part}");
        self.runtime
            .block_on(futures_util::future::join_all(self.clients.iter().map(
                |client| async {
                    client
                        .list_selected(Kind::Job, None, Some(&selector))
                        .await
                        .map(|objects| {
                            objects
                                .iter()
                                .filter_map(|o| serde_json::to_value(o).ok())
                                .collect()
                        })
                        .unwrap_or_default()
                },
            )))
    }

    /// For each oracle, `read` of each job labelled `r1-bench=<part>` it lists, by name (a job
    /// `read` finds nothing in is left out).
    fn per_job<T>(
        &self,
        part: &str,
        read: impl Fn(&Value) -> Option<T>,
    ) -> Vec<BTreeMap<String, T>> {
        self.listed_everywhere(part)
            .iter()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let name = item["metadata"]["name"].as_str()?.to_owned();
                        Some((name, read(item)?))
                    })
                    .collect()
            })
            .collect()
    }

    /// When each condition of [`STEPS`] last turned `True` on each oracle, in seconds since
    /// the Unix epoch (the status keeps whole seconds), for each job labelled `r1-bench=<part>`.
    fn steps(&self, part: &str) -> Vec<BTreeMap<String, BTreeMap<String, f64>>> {
        self.per_job(part, |item| {
            let conditions = item["status"]["conditions"].as_array()?;
            Some(
                conditions
                    .iter()
                    .filter(|c| c["status"] == "True")
                    .filter_map(|c| {
                        let at: k8s_openapi::jiff::Timestamp =
                            c["lastTransitionTime"].as_str()?.parse().ok()?;
                        Some((c["type"].as_str()?.to_owned(), at.as_second() as f64))
                    })
                    .collect(),
            )
        })
    }

    /// Every oracle's listing of the jobs labelled `r1-bench=<part>`: each job's (phase,
    /// ready replicas).
    fn views(&self, part: &str) -> Vec<BTreeMap<String, (String, u64)>> {
        self.per_job(part, |item| {
            let phase = item["status"]["phase"].as_str().unwrap_or("").to_owned();
            let ready = item["status"]["readyReplicas"].as_u64().unwrap_or(0);
            Some((phase, ready))
        })
    }
}

fn running_everywhere(name: &str, views: &[BTreeMap<String, (String, u64)>]) -> bool {
    views.iter().all(|v| {
        v.get(name)
            .is_some_and(|(phase, ready)| phase == "Running" && *ready == 2)
    })
}

/// Waits until the steady window and the burst can run between two epoch ends: the last
/// finished epoch's availability is recorded (its 79 pages at 10,000 nodes keep the chain node
/// busy for minutes) and [`QUIET_STRETCH`] is left before the next end. Production epochs
/// last a day, so a burst rarely meets an epoch's end; the bench's epochs of 10–15 minutes would make it
/// meet one every other run. Gives up after two epochs (and says so).
fn wait_for_a_quiet_stretch(network: &Network) {
    let chain = network.chain();
    let length = chain.epoch_seconds();
    let waiting = Instant::now();
    loop {
        // The chain's clock, as the oracles' allocation and votes see it: mining more than a
        // block a second (licensing, the load's votes) puts it minutes ahead of the wall.
        let now = chain
            .block_on(chain.devchain().timestamp())
            .unwrap_or_else(|_| r1_protocol::now_ms() / 1000);
        let elapsed = now.saturating_sub(chain.genesis_unix());
        let epoch = elapsed / length;
        let left = length - elapsed % length;
        let recorded = epoch == 0
            || chain
                .block_on(chain.gov().availability_recorded(epoch - 1))
                .unwrap_or(false);
        if recorded && left >= QUIET_STRETCH.as_secs() {
            println!(
                "  waited {:.0} s for a quiet stretch of epoch {epoch} ({left} s left, the \
                 previous epoch's availability recorded: {recorded})",
                waiting.elapsed().as_secs_f64()
            );
            return;
        }
        if waiting.elapsed() > Duration::from_secs(2 * length) {
            println!(
                "  no quiet stretch after {:.0} s (epoch {epoch}, {left} s left, the previous \
                 epoch's availability recorded: {recorded}); measuring anyway",
                waiting.elapsed().as_secs_f64()
            );
            return;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// The bench's epoch for a fleet of `nodes`: long enough that the last epoch's availability
/// (the allocation, waiting up to a fifth of the epoch, then a page of 128 nodes every 4 s)
/// is recorded with [`QUIET_STRETCH`] and a minute to spare; 600 s at least, in whole 5 minutes.
/// At 10,000 nodes, 79 pages: 900 s (600 s left only 180 s after the pages, so the steady
/// window and the burst always met an epoch's end).
fn epoch_seconds(nodes: usize) -> u64 {
    let pages = nodes.div_ceil(128) as u64;
    let needed = (pages * 4 + QUIET_STRETCH.as_secs() + 60) * 5 / 4;
    needed.div_ceil(300).max(2) * 300
}

fn r1ctl_ok(network: &Network, args: &[&str]) {
    let output = network.r1ctl(args).expect("r1ctl");
    assert!(
        output.status.success(),
        "r1ctl {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run(broker: BrokerKind, nodes: usize, load: usize, jobs: usize) {
    println!(
        "== {nodes} simulated nodes, {load} jobs running, a burst of {jobs}, broker {broker:?} =="
    );
    let started = Instant::now();
    let settings = NetworkSettings {
        nodes: 0,
        heartbeat_seconds: HEARTBEAT_SECONDS,
        loop_period_ms: 2_000,
        epoch_seconds: epoch_seconds(nodes),
        broker,
        // One CSP owns every job here; the default quota (500 objects) is for strangers.
        object_quota: Some(load + jobs + (load + jobs).div_ceil(JOBS_PER_PROJECT) + 10),
        ..NetworkSettings::default()
    };
    let network = Network::start(&settings).expect("network");
    let identities: Vec<Identity> = (0..nodes).map(|_| Identity::generate()).collect();
    let signers: Vec<_> = identities.iter().map(|i| i.signer().clone()).collect();
    let licensing = Instant::now();
    license_in_bulk(
        network.chain(),
        &signers,
        network.oracles()[0].identity().signer(),
    )
    .expect("licences");
    network
        .chain()
        .fund_csp(network.csp().address(), 10 * (load + jobs) as u64)
        .expect("fund the CSP");
    println!(
        "  network up in {:.1} s; {nodes} nodes licensed on chain in {:.1} s",
        licensing.duration_since(started).as_secs_f64(),
        licensing.elapsed().as_secs_f64()
    );
    let admitting = Instant::now();
    let addresses: Vec<_> = identities.iter().map(Identity::address).collect();
    let urls = network
        .broker()
        .admit_nodes(&addresses)
        .expect("admit the nodes");
    let members: Vec<(Identity, String)> = identities.into_iter().zip(urls).collect();
    let fleet = Fleet::start(
        members,
        &FleetSettings {
            ca_file: network.broker().ca_file(),
            oracles: network.oracle_addresses(),
            heartbeat_interval: Duration::from_secs(HEARTBEAT_SECONDS),
        },
    )
    .expect("fleet");
    let alive = |network: &Network| {
        (0..network.oracles().len())
            .all(|o| network.oracles()[o].metric("r1_oracle_nodes{name=\"alive\"}") >= nodes as f64)
    };
    let oracles = network.oracles().len();
    let lister = Lister::of(&network);
    let all_alive = until(Duration::from_secs(300), || alive(&network));
    println!(
        "  every oracle counts {nodes} nodes alive after {:.1} s ({} sessions open): {all_alive}",
        admitting.elapsed().as_secs_f64(),
        fleet.connected()
    );
    assert!(all_alive, "not every node became alive on every oracle");

    // Projects of JOBS_PER_PROJECT jobs each, as CSPs group a service's jobs.
    let project =
        std::fs::read_to_string(format!("{EXAMPLES}/project.yaml")).expect("project.yaml");
    let projects: Vec<String> = (0..(load + jobs).div_ceil(JOBS_PER_PROJECT))
        .map(|k| project.replace("name: hello\n", &format!("name: hello-{k}\n")))
        .collect();
    r1ctl_ok(
        &network,
        &["apply", "-f", &format!("{EXAMPLES}/escrow.yaml")],
    );
    for (page, chunk) in projects.chunks(LOAD_PAGE).enumerate() {
        let path = network.scratch_dir().join(format!("projects-{page}.yaml"));
        std::fs::write(&path, chunk.join("\n---\n")).expect("projects");
        r1ctl_ok(&network, &["apply", "-f", &path.display().to_string()]);
    }
    let manifest =
        std::fs::read_to_string(format!("{EXAMPLES}/job-http.yaml")).expect("job-http.yaml");
    let job_numbered = |name: &str, number: usize, part: &str| {
        manifest
            .replace(
                "name: hello-web\n",
                &format!("name: {name}\n  labels:\n    {BENCH_LABEL}: {part}\n"),
            )
            .replace(
                "projectRef:\n    name: hello\n",
                &format!(
                    "projectRef:\n    name: hello-{}\n",
                    number / JOBS_PER_PROJECT
                ),
            )
    };

    // The standing load: jobs applied a page of manifests per `r1ctl apply`, all running
    // before the steady state is measured.
    if load > 0 {
        let before = readings(&network);
        let loading = Instant::now();
        let names: Vec<String> = (0..load).map(|i| format!("load-{i}")).collect();
        for (page, chunk) in names.chunks(LOAD_PAGE).enumerate() {
            let path = network.scratch_dir().join(format!("load-{page}.yaml"));
            let text: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, n)| job_numbered(n, page * LOAD_PAGE + i, "load"))
                .collect();
            std::fs::write(&path, text.join("\n---\n")).expect("load manifests");
            r1ctl_ok(&network, &["apply", "-f", &path.display().to_string()]);
        }
        let applied = loading.elapsed();
        let all_running = until(Duration::from_secs(600), || {
            let views = lister.views("load");
            names.iter().all(|n| running_everywhere(n, &views))
        });
        println!(
            "  load: {load} jobs applied ({LOAD_PAGE} a call) in {:.1} s, Running 2/2 on every \
             oracle after {:.1} s: {all_running}",
            applied.as_secs_f64(),
            loading.elapsed().as_secs_f64()
        );
        report("load", &before, &readings(&network));
        assert!(all_running, "not every job of the load ran");
    }

    wait_for_a_quiet_stretch(&network);

    // Steady state.
    let sent_before = fleet.counters().heartbeats_sent.load(Ordering::Relaxed);
    let before = readings(&network);
    std::thread::sleep(STEADY_WINDOW);
    let after = readings(&network);
    let sent = fleet.counters().heartbeats_sent.load(Ordering::Relaxed) - sent_before;
    println!(
        "  steady state with {load} jobs, {:.0} s: the fleet sent {:.1} heartbeats/s",
        STEADY_WINDOW.as_secs_f64(),
        sent as f64 / STEADY_WINDOW.as_secs_f64()
    );
    report("steady", &before, &after);

    // A burst of jobs.
    let before = readings(&network);
    let burst = Instant::now();
    let applied: Mutex<BTreeMap<String, Instant>> = Mutex::new(BTreeMap::new());
    let mut ran: BTreeMap<String, Duration> = BTreeMap::new();
    let mut applied_wall: BTreeMap<String, SystemTime> = BTreeMap::new();
    let mut applying = None;
    // Jobs applied early run while later ones are applied: one thread applies, another lists
    // the oracles' burst jobs over and over, so a job's figure is late by at most one round of
    // listings and a pause, never by the applies after it.
    let stopped = AtomicBool::new(false);
    let rounds: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let done = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut ran = BTreeMap::new();
            let mut deadline = None;
            loop {
                let applied = applied.lock().expect("applied").clone();
                let listing = Instant::now();
                let views = lister.views("burst");
                rounds.lock().expect("rounds").push(listing.elapsed());
                for (name, at) in &applied {
                    if !ran.contains_key(name) && running_everywhere(name, &views) {
                        ran.insert(name.clone(), at.elapsed());
                    }
                }
                if ran.len() == jobs {
                    return (ran, true);
                }
                if stopped.load(Ordering::Relaxed) && applied.len() < jobs {
                    return (ran, false);
                }
                if applied.len() == jobs {
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + BURST_WAIT);
                    if Instant::now() > deadline {
                        return (ran, false);
                    }
                }
                std::thread::sleep(WATCH_PAUSE);
            }
        });
        // A failed apply panics here; the watcher must stop too, or the scope would wait on it.
        let _stop = RaiseOnDrop(&stopped);
        for index in 0..jobs {
            let name = format!("scale-{index}");
            let path = network.scratch_dir().join(format!("{name}.yaml"));
            std::fs::write(&path, job_numbered(&name, load + index, "burst")).expect("manifest");
            r1ctl_ok(&network, &["apply", "-f", &path.display().to_string()]);
            applied_wall.insert(name.clone(), SystemTime::now());
            applied
                .lock()
                .expect("applied")
                .insert(name, Instant::now());
        }
        applying = Some(burst.elapsed());
        let (seen, done) = watcher.join().expect("watcher");
        ran = seen;
        done
    });
    let applying = applying.unwrap_or_default();
    let after = readings(&network);
    let mut latencies: Vec<Duration> = ran.values().copied().collect();
    latencies.sort();
    let mut rounds = rounds.into_inner().expect("rounds");
    rounds.sort();
    println!(
        "  burst: {jobs} jobs applied in {:.1} s; {} Running 2/2 on every oracle; apply → Running \
         p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (each figure is late by up to one round of \
         listings of the burst's jobs on the {oracles} oracles at once, p50 {:.0} ms, max {:.0} ms, \
         and a {WATCH_PAUSE:?} pause, beside the applies)",
        applying.as_secs_f64(),
        ran.len(),
        latencies
            .first()
            .map_or(f64::NAN, |_| ms(percentile(&latencies, 0.5))),
        latencies
            .first()
            .map_or(f64::NAN, |_| ms(percentile(&latencies, 0.99))),
        latencies.last().map_or(f64::NAN, |d| ms(*d)),
        rounds
            .first()
            .map_or(f64::NAN, |_| ms(percentile(&rounds, 0.5))),
        rounds.last().map_or(f64::NAN, |d| ms(*d)),
    );
    print_steps(&lister, &applied_wall);
    report("burst", &before, &after);
    assert!(done, "not every job of the burst ran");

    // Node loss.
    let job_nodes = |fleet: &Fleet| -> BTreeMap<u64, BTreeSet<r1_protocol::Address>> {
        let mut by_job: BTreeMap<u64, BTreeSet<_>> = BTreeMap::new();
        for (node, id) in fleet.running() {
            by_job.entry(id.job).or_default().insert(node);
        }
        by_job
    };
    let placed = job_nodes(&fleet);
    let (&job, holders) = placed.iter().next().expect("a job runs");
    let victim = *holders.iter().next().expect("a holder");
    fleet.silence(victim);
    let silenced = Instant::now();
    let replaced = until(Duration::from_secs(120), || {
        job_nodes(&fleet)
            .get(&job)
            .is_some_and(|nodes| nodes.len() >= 2 && !nodes.contains(&victim))
    });
    println!(
        "  node loss: a node holding a replica of chain job {job} silenced → the replacement \
         runs on another node after {:.1} s (heartbeats every {HEARTBEAT_SECONDS} s): {replaced}",
        silenced.elapsed().as_secs_f64()
    );
    println!(
        "  fleet: {} sessions opened, {} commands obeyed, {} refused; total {:.0} s",
        fleet.counters().connections.load(Ordering::Relaxed),
        fleet.counters().commands_obeyed.load(Ordering::Relaxed),
        fleet.counters().commands_refused.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let sizes: Vec<usize> = env_list("R1_SCALE_NODES", "1000,5000")
        .iter()
        .map(|s| s.parse().expect("R1_SCALE_NODES: numbers"))
        .collect();
    let number = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
            .unwrap_or(default)
    };
    let jobs = number("R1_SCALE_JOBS", 100);
    let load = number("R1_SCALE_LOAD", 900);
    let brokers: Vec<BrokerKind> = env_list("R1_SCALE_BROKERS", "rumqttd,mosquitto")
        .iter()
        .map(|b| match b.as_str() {
            "rumqttd" => BrokerKind::Rumqttd,
            "mosquitto" => BrokerKind::Mosquitto,
            other => panic!("R1_SCALE_BROKERS: {other} is not rumqttd or mosquitto"),
        })
        .collect();
    for broker in brokers {
        for &size in &sizes {
            run(broker, size, load, jobs);
        }
    }
}
