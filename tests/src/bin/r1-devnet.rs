//! `r1-devnet`: the local network `make devnet` runs (`up`) and `make devnet-down` stops (`down`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use r1_e2e::devnet::{self, DevnetSettings};
use r1_e2e::network::{EXAMPLES_REGISTRY_PORT, NetworkSettings};

/// A whole r1 network on 127.0.0.1: chain, broker, oracles and node agents, running the
/// example job.
#[derive(Parser)]
#[command(name = "r1-devnet", version, about)]
struct Cli {
    /// Directory for the devnet's pid, process list and r1ctl `env` file.
    #[arg(long, env = "R1_DEVNET_DIR", default_value_os_t = devnet::default_dir())]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the devnet, apply crds/examples and show it running until Ctrl-C or `down`.
    Up {
        /// Oracles.
        #[arg(long, default_value_t = 3)]
        oracles: usize,
        /// Node agents.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Epoch length in seconds: short, so a job's whole life fits in minutes.
        #[arg(long, default_value_t = 20)]
        epoch_seconds: u64,
        /// Seconds between two heartbeats of a node.
        #[arg(long, default_value_t = 2)]
        heartbeat_seconds: u64,
        /// Milliseconds between two passes of the oracles' loops.
        #[arg(long, default_value_t = 1000)]
        loop_period_ms: u64,
        /// Directory of the example manifests (default: `crds/examples` of the checkout the
        /// devnet is started in).
        #[arg(long)]
        examples: Option<PathBuf>,
        /// Stop everything as soon as the job answers (for tests and CI).
        #[arg(long)]
        until_running: bool,
    },
    /// Stop the devnet running from `--dir` and anything it left behind.
    Down,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            oracles,
            nodes,
            epoch_seconds,
            heartbeat_seconds,
            loop_period_ms,
            examples,
            until_running,
        } => {
            let examples = match examples.map_or_else(devnet::default_examples, Ok) {
                Ok(examples) => examples,
                Err(error) => {
                    eprintln!("r1-devnet: {error}");
                    return ExitCode::from(2);
                }
            };
            let settings = DevnetSettings {
                network: NetworkSettings {
                    oracles,
                    nodes,
                    epoch_seconds,
                    heartbeat_seconds,
                    loop_period_ms,
                    registry_port: Some(EXAMPLES_REGISTRY_PORT),
                    ..NetworkSettings::default()
                },
                dir: cli.dir,
                examples,
                until_running,
            };
            let stop = Arc::new(AtomicBool::new(false));
            if let Err(error) = watch_signals(Arc::clone(&stop)) {
                eprintln!("r1-devnet: cannot watch for Ctrl-C: {error}");
                return ExitCode::from(2);
            }
            match devnet::run(&settings, &stop) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Command::Down => match devnet::lifecycle::down(&cli.dir) {
            Ok(stopped) => {
                match stopped.devnet {
                    Some(pid) => println!("r1-devnet: stopped the devnet (pid {pid})"),
                    None => println!(
                        "r1-devnet: no devnet was running from {}",
                        cli.dir.display()
                    ),
                }
                if !stopped.killed.is_empty() {
                    println!("r1-devnet: killed leftover processes {:?}", stopped.killed);
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("r1-devnet: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Sets `stop` on SIGINT (Ctrl-C) or SIGTERM (`r1-devnet down`), from a thread of its own.
fn watch_signals(stop: Arc<AtomicBool>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("r1-devnet-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            });
            stop.store(true, Ordering::SeqCst);
        })?;
    Ok(())
}
