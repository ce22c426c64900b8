//! `r1-node`: the agent that runs on every edge node.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use r1_node::config::{NodeConfig, Overrides};

/// r1 node agent: runs workloads on containerd, heartbeats, obeys signed oracle commands.
#[derive(Parser)]
#[command(name = "r1-node", version, about, long_about = None)]
struct Cli {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "R1_NODE_CONFIG",
        default_value = "/etc/r1/node.yaml"
    )]
    config: PathBuf,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration and key file, print the node's identity and settings.
    CheckConfig,
    /// Run the agent.
    Run,
    /// Sign this node's consent to be linked to an operator's licence; prints the JSON the
    /// operator hands `r1ctl licence link --node-proof` (it asks an oracle to co-sign).
    SignLink {
        /// JSON-RPC endpoint of the chain the licence lives on.
        #[arg(long, env = "R1_RPC_URL")]
        rpc_url: String,
        /// The PoAI manager contract (the Node Deed is found from it).
        #[arg(long)]
        manager: r1_protocol::Address,
        /// The licence.
        #[arg(long)]
        licence: u64,
        /// The licence's owner, who will send the link.
        #[arg(long)]
        owner: r1_protocol::Address,
        /// Minutes the signature stays good (an oracle co-signs at most a day ahead).
        #[arg(long, default_value_t = 60)]
        valid_minutes: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("r1-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = NodeConfig::load_with(&cli.config, &cli.overrides)?;
    let identity = r1_protocol::keyfile::load(&config.key_file)?;
    match &cli.command {
        Command::CheckConfig => {
            println!("config {} is valid", cli.config.display());
            println!("node address: {}", identity.address().to_checksum(None));
            print!("{}", serde_yaml::to_string(&config)?);
            Ok(())
        }
        Command::SignLink {
            rpc_url,
            manager,
            licence,
            owner,
            valid_minutes,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            let proof = runtime.block_on(r1_node::licence::sign_link(
                &identity,
                rpc_url.as_str(),
                *manager,
                *licence,
                *owner,
                valid_minutes.saturating_mul(60),
            ))?;
            println!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(())
        }
        Command::Run => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("R1_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(r1_node::agent::run(config, identity))?;
            Ok(())
        }
    }
}
