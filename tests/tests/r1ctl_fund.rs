//! `r1ctl fund` and the funding step of `r1ctl apply`, as a CSP uses them: the real `r1ctl`
//! binary, the Deeploy API served in-process on 127.0.0.1 telling a real Hardhat EDR chain
//! with the suite deployed, prices set for the catalogue's classes, and an escrow for the
//! Hardhat account #1 CSP holding test USDC.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions, where the usual exemption does not reach

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use alloy_primitives::{Address, U256};
use r1_contracts::units::usdc_units;
use r1_contracts::{DevChain, Suite, SuiteConfig, deploy_suite, project_hash};
use r1_controller::intake::http::{ApiState, serve};
use r1_controller::intake::store::ResourceStore;
use r1_crds::api::wire::ApiInfo;
use r1_crds::pricing::Catalogue;
use r1_crds::usdc::Usdc;
use r1_e2e::process::bin_path;
use r1_protocol::Identity;

/// Hardhat account #1, the owner in `crds/examples/`.
const CSP_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const CSP_ADDRESS: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
/// Hardhat account #2, a CSP without an escrow.
const OTHER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const OTHER_ADDRESS: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
/// Long epochs, so that no epoch boundary passes during a test.
const EPOCH_SECONDS: u64 = 3_600;
/// A class of the catalogue left unpriced on chain.
const UNPRICED: &str = "basic";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/examples")
}

fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

fn example_text(name: &str) -> String {
    std::fs::read_to_string(examples().join(name)).unwrap()
}

fn identity(secret: &str) -> Identity {
    Identity::from_secret(&r1_protocol::hex::decode(secret).unwrap()).unwrap()
}

/// What a job of `nodes` nodes at `price` per node per epoch, paid through epoch `last` and
/// requested at `requested` (unix seconds), cost: the escrow charges by the second from the
/// request to the end of the last epoch, rounded down once.
fn cost(price: U256, nodes: u64, requested: U256, last: U256, genesis: u64) -> U256 {
    let end = U256::from(genesis) + (last + U256::from(1u64)) * U256::from(EPOCH_SECONDS);
    price * U256::from(nodes) * (end - requested) / U256::from(EPOCH_SECONDS)
}

/// A USDC amount as r1ctl prints it.
fn usdc(units: U256) -> String {
    Usdc(u64::try_from(units).unwrap()).to_string()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `job-http.yaml` renamed, with other replicas and epochs, and optionally a named class.
fn job_yaml(name: &str, replicas: u32, epochs: u32, class: Option<&str>) -> String {
    let mut yaml = example_text("job-http.yaml")
        .replace("name: hello-web", &format!("name: {name}"))
        .replace("replicas: 2", &format!("replicas: {replicas}"))
        .replace("durationEpochs: 30", &format!("durationEpochs: {epochs}"));
    if let Some(class) = class {
        yaml = yaml.replace(
            "    memory: 128Mi\n",
            &format!("    memory: 128Mi\n    class: {class}\n"),
        );
    }
    yaml
}

/// A chain with the suite, an escrow for the CSP holding 100 USDC, and Deeploy API servers.
struct World {
    runtime: tokio::runtime::Runtime,
    chain: DevChain,
    gov: Suite,
    escrow: Address,
    csp: Address,
    dir: tempfile::TempDir,
    info: ApiInfo,
    /// The suite's genesis (unix seconds).
    genesis: u64,
}

impl World {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (chain, gov, escrow, csp, genesis) = runtime.block_on(async {
            let chain = DevChain::start().await.unwrap();
            let (gov_address, gov_provider) = chain.funded_account(1_000).await.unwrap();
            let genesis = chain.timestamp().await.unwrap();
            let config = SuiteConfig {
                job_prices: Catalogue::builtin()
                    .unwrap()
                    .classes
                    .iter()
                    .filter(|c| c.name != UNPRICED)
                    .map(|c| (c.id, U256::from(c.price_per_epoch.units())))
                    .collect(),
                ..SuiteConfig::devnet(
                    genesis,
                    EPOCH_SECONDS,
                    Address::repeat_byte(0x11),
                    Address::repeat_byte(0x22),
                )
            };
            let deployment = deploy_suite(&gov_provider, gov_address, &config)
                .await
                .unwrap();
            let gov = Suite::new(gov_provider, gov_address, deployment);
            let csp: Address = CSP_ADDRESS.parse().unwrap();
            let escrow = gov.deploy_escrow(csp).await.unwrap();
            gov.mint_usdc(csp, usdc_units(100)).await.unwrap();
            (chain, gov, escrow, csp, genesis)
        });
        let dir = tempfile::tempdir().unwrap();
        for (name, secret) in [("csp.key", CSP_KEY), ("other.key", OTHER_KEY)] {
            r1_protocol::keyfile::write(&dir.path().join(name), &identity(secret)).unwrap();
        }
        let info = ApiInfo {
            oracle: Address::repeat_byte(0x0a),
            chain_id: 31_337,
            poai_manager: gov.deployment().manager,
            epoch_seconds: EPOCH_SECONDS,
            genesis_unix: 0,
        };
        Self {
            runtime,
            chain,
            gov,
            escrow,
            csp,
            dir,
            info,
            genesis,
        }
    }

    /// Serves a fresh store telling `info` (none: an oracle without a chain); returns its URL.
    fn serve(&self, name: &str, info: Option<ApiInfo>) -> String {
        let store = Arc::new(ResourceStore::open(&self.dir.path().join(name)).unwrap());
        let mut state = ApiState::new(store, Catalogue::builtin().unwrap());
        if let Some(info) = info {
            state = state.with_info(info);
        }
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        self.runtime.spawn(serve(listener, state));
        url
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Runs `r1ctl` against `server` and the chain, signing with key file `key`.
    fn r1ctl(&self, server: &str, key: &str, args: &[&str]) -> Output {
        Command::new(bin_path("r1ctl").unwrap())
            .args(args)
            .env("R1_SERVER", server)
            .env("R1_KEY", self.dir.path().join(key))
            .env("R1_RPC_URL", self.chain.url().as_str())
            .output()
            .unwrap()
    }

    fn usdc(&self, who: Address) -> U256 {
        self.runtime.block_on(self.gov.usdc_balance(who)).unwrap()
    }

    fn open_jobs(&self) -> usize {
        self.runtime
            .block_on(self.gov.escrow_open_jobs(self.escrow))
            .unwrap()
            .len()
    }
}

#[test]
fn apply_funds_jobs_once_and_fund_is_idempotent() {
    let w = World::start();
    let server = w.serve("store", Some(w.info));
    let apply_examples = || {
        w.r1ctl(
            &server,
            "csp.key",
            &[
                "apply",
                "-f",
                &example("escrow.yaml"),
                "-f",
                &example("project.yaml"),
                "-f",
                &example("tunnel.yaml"),
                "-f",
                &example("job-http.yaml"),
            ],
        )
    };

    // micro class: 0.10 USDC × 2 nodes × 30 epochs and the rest of the current one.
    let out = apply_examples();
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("DeeployJob default/hello-web created"),
        "{printed}"
    );
    let hash = project_hash(w.csp, "default", "hello-web");
    let epoch = w.runtime.block_on(w.gov.current_epoch()).unwrap();
    let job = w
        .runtime
        .block_on(w.gov.find_open_job(w.escrow, hash))
        .unwrap()
        .expect("an open job with the resource's project hash");
    assert_eq!(job.id, U256::from(1));
    assert_eq!(job.jobType, 1, "the micro class id");
    assert_eq!(job.numberOfNodesRequested, U256::from(2));
    assert_eq!(job.lastExecutionEpoch, U256::from(epoch + 30));
    let paid = cost(
        U256::from(100_000u64),
        2,
        job.requestTimestamp,
        job.lastExecutionEpoch,
        w.genesis,
    );
    assert_eq!(job.balance, paid);
    assert!(paid > usdc_units(6) && paid <= U256::from(6_200_000u64));
    assert!(
        printed.contains(&format!(
            "DeeployJob default/hello-web funded: chain job 1, 30 epochs × 2 nodes, {} USDC",
            usdc(paid)
        )),
        "{printed}"
    );
    assert_eq!(w.usdc(w.csp), usdc_units(100) - paid);
    assert_eq!(w.usdc(w.escrow), paid);

    // Funding again, by name or by applying again, sends nothing.
    let out = w.r1ctl(&server, "csp.key", &["fund", "djob", "hello-web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("DeeployJob default/hello-web already funded: job id 1"),
        "{}",
        text(&out)
    );
    let out = apply_examples();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("DeeployJob default/hello-web already funded: job id 1"),
        "{}",
        text(&out)
    );
    assert_eq!(w.open_jobs(), 1);
    assert_eq!(w.usdc(w.csp), usdc_units(100) - paid);

    // --no-fund only applies; fund by file pays later (lite class: 0.166666 × 1 × 40 and the
    // rest of the current epoch).
    let api = w.write("api.yaml", &job_yaml("hello-api", 1, 40, Some("lite")));
    let out = w.r1ctl(&server, "csp.key", &["apply", "--no-fund", "-f", &api]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("funded"), "{}", text(&out));
    assert_eq!(w.open_jobs(), 1);
    let out = w.r1ctl(&server, "csp.key", &["fund", "-f", &api]);
    assert!(out.status.success(), "{}", text(&out));
    let job = w
        .runtime
        .block_on(
            w.gov
                .find_open_job(w.escrow, project_hash(w.csp, "default", "hello-api")),
        )
        .unwrap()
        .unwrap();
    assert_eq!((job.jobType, job.id), (2, U256::from(2)));
    let api_paid = cost(
        U256::from(166_666u64),
        1,
        job.requestTimestamp,
        job.lastExecutionEpoch,
        w.genesis,
    );
    assert!(
        text(&out).contains(&format!(
            "DeeployJob default/hello-api funded: chain job 2, 40 epochs × 1 node, {} USDC",
            usdc(api_paid)
        )),
        "{}",
        text(&out)
    );
    let after_api = usdc_units(100) - paid - api_paid;
    assert_eq!(w.usdc(w.csp), after_api);

    // More replicas and a longer duration extend the job on chain; fewer change nothing there.
    let first_last = job.lastExecutionEpoch;
    let wider = w.write(
        "api-wider.yaml",
        &job_yaml("hello-api", 2, 60, Some("lite")),
    );
    let out = w.r1ctl(&server, "csp.key", &["apply", "-f", &wider]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = format!(
        "DeeployJob default/hello-api extended: chain job 2, nodes 1 → 2, last epoch {first_last} → {}",
        first_last + U256::from(20)
    );
    assert!(text(&out).contains(&expected), "{}", text(&out));
    let extended = |w: &World| {
        w.runtime
            .block_on(
                w.gov
                    .find_open_job(w.escrow, project_hash(w.csp, "default", "hello-api")),
            )
            .unwrap()
            .unwrap()
    };
    let job = extended(&w);
    assert_eq!(job.numberOfNodesRequested, U256::from(2));
    assert_eq!(job.lastExecutionEpoch, first_last + U256::from(20));
    assert!(w.usdc(w.csp) < after_api);
    let held = w.usdc(w.csp);
    let narrower = w.write(
        "api-narrower.yaml",
        &job_yaml("hello-api", 1, 60, Some("lite")),
    );
    let out = w.r1ctl(&server, "csp.key", &["apply", "-f", &narrower]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("DeeployJob default/hello-api already funded: job id 2"),
        "{}",
        text(&out)
    );
    assert_eq!(extended(&w).numberOfNodesRequested, U256::from(2));
    assert_eq!(w.usdc(w.csp), held, "nothing paid for fewer replicas");
}

#[test]
fn jobs_applied_together_are_created_in_one_transaction() {
    use alloy::providers::Provider;
    use std::future::IntoFuture;
    let w = World::start();
    let server = w.serve("store", Some(w.info));
    let names = ["batch-a", "batch-b", "batch-c", "batch-d"];
    let mut documents: Vec<String> = names
        .iter()
        .map(|name| job_yaml(name, 1, 30, None))
        .collect();
    documents.push(job_yaml("batch-unpriced", 1, 30, Some(UNPRICED)));
    let jobs = w.write("jobs.yaml", &documents.join("---\n"));
    let sent = || {
        w.runtime
            .block_on(w.gov.provider().get_transaction_count(w.csp).into_future())
            .unwrap()
    };
    let apply_jobs = || {
        w.r1ctl(
            &server,
            "csp.key",
            &[
                "apply",
                "-f",
                &example("escrow.yaml"),
                "-f",
                &example("project.yaml"),
                "-f",
                &jobs,
            ],
        )
    };
    let before = sent();
    let out = apply_jobs();
    let printed = text(&out);
    assert!(!out.status.success(), "the unpriced job fails: {printed}");
    for (id, name) in names.iter().enumerate() {
        assert!(
            printed.contains(&format!(
                "DeeployJob default/{name} funded: chain job {}, 30 epochs × 1 node",
                id + 1
            )),
            "{printed}"
        );
    }
    assert!(
        printed.contains("default/batch-unpriced") && printed.contains("has no price on chain"),
        "{printed}"
    );
    assert_eq!(
        sent() - before,
        2,
        "one approval and one createJobs for the four priced jobs"
    );
    assert_eq!(w.open_jobs(), 4);
    // Applying the same set again finds every job open and sends nothing.
    let out = apply_jobs();
    let printed = text(&out);
    for (id, name) in names.iter().enumerate() {
        assert!(
            printed.contains(&format!(
                "DeeployJob default/{name} already funded: job id {}",
                id + 1
            )),
            "{printed}"
        );
    }
    assert_eq!(sent() - before, 2);
}

#[test]
fn funding_refusals_are_clear() {
    let w = World::start();
    let server = w.serve("store", Some(w.info));

    // Per job: a class with no price on chain, and more than the CSP holds (12.50 × 10 × 30 and
    // the rest of the current epoch).
    let jobs = w.write(
        "jobs.yaml",
        &format!(
            "{}\n---\n{}",
            job_yaml("unpriced", 1, 30, Some(UNPRICED)),
            job_yaml("costly", 10, 30, Some("enterprise-xl"))
        ),
    );
    let out = w.r1ctl(&server, "csp.key", &["fund", "-f", &jobs]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("error: DeeployJob default/unpriced not funded: price class basic (id 4) has no price on chain 31337: ask governance to set it"),
        "{printed}"
    );
    let needed = printed
        .split("error: DeeployJob default/costly not funded: not enough USDC: it needs ")
        .nth(1)
        .and_then(|rest| rest.split_once(&format!(" USDC and {CSP_ADDRESS} holds 100.00 USDC")))
        .map(|(amount, _)| amount.to_string());
    let needed: f64 = needed
        .as_deref()
        .and_then(|amount| amount.parse().ok())
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(needed > 3750.0 && needed <= 3875.0, "{printed}");
    assert_eq!(w.open_jobs(), 0);
    assert_eq!(w.usdc(w.csp), usdc_units(100));

    // A CSP without an escrow: refused before anything is sent, and an apply still stands.
    let no_escrow =
        format!("{OTHER_ADDRESS} has no escrow on chain 31337: ask governance to deploy one");
    let out = w.r1ctl(
        &server,
        "other.key",
        &["fund", "-f", &example("job-http.yaml")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&no_escrow), "{}", text(&out));
    let in_other = |file: &str| {
        example_text(file)
            .replace(CSP_ADDRESS, OTHER_ADDRESS)
            .replace("metadata:\n", "metadata:\n  namespace: other\n")
    };
    let theirs = w.write(
        "theirs.yaml",
        &[
            in_other("escrow.yaml"),
            in_other("project.yaml"),
            in_other("job-http.yaml"),
        ]
        .join("\n---\n"),
    );
    let out = w.r1ctl(&server, "other.key", &["apply", "-f", &theirs]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("DeeployJob other/hello-web created"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "error: the jobs were applied but not funded: {no_escrow}"
        )),
        "{printed}"
    );

    // An RPC on another chain than the oracle's.
    let elsewhere = w.serve(
        "elsewhere",
        Some(ApiInfo {
            chain_id: 8453,
            ..w.info
        }),
    );
    let out = w.r1ctl(
        &elsewhere,
        "csp.key",
        &["fund", "-f", &example("job-http.yaml")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("serves chain 31337, but the oracle settles on chain 8453"),
        "{}",
        text(&out)
    );

    // An oracle without a chain: fund says why; apply applies and says the jobs wait.
    let chainless = w.serve("chainless", None);
    let out = w.r1ctl(
        &chainless,
        "csp.key",
        &["fund", "-f", &example("job-http.yaml")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no chain configured"), "{}", text(&out));
    let out = w.r1ctl(
        &chainless,
        "csp.key",
        &[
            "apply",
            "-f",
            &example("escrow.yaml"),
            "-f",
            &example("project.yaml"),
            "-f",
            &example("job-http.yaml"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(
            "DeeployJob default/hello-web not funded: this oracle has no chain configured"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(w.open_jobs(), 0);
}
