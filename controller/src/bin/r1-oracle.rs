//! `r1-oracle`: one member of the decentralized control plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use r1_controller::config::OracleConfig;

/// r1 oracle controller: reconciles Deeploy jobs through the ChainDist loops.
#[derive(Parser)]
#[command(name = "r1-oracle", version, about, long_about = None)]
struct Cli {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "R1_ORACLE_CONFIG",
        default_value = "/etc/r1/oracle.yaml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration and key file, print the oracle's identity and settings.
    CheckConfig,
    /// Run the oracle.
    Run,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("r1-oracle: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = OracleConfig::load(&cli.config)?;
    let identity = r1_protocol::keyfile::load(&config.key_file)?;
    match cli.command {
        Command::CheckConfig => {
            println!("config {} is valid", cli.config.display());
            println!("oracle address: {}", identity.address().to_checksum(None));
            print!("{}", serde_yaml::to_string(&config)?);
            Ok(())
        }
        Command::Run => {
            // The workspace links rustls with both ring and aws-lc (the node's QUIC), so clients
            // that build their TLS config from the process default (kube's) need one chosen.
            // An error only says a provider is installed already.
            let _installed = rustls::crypto::ring::default_provider().install_default();
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(r1_controller::oracle::runtime::run(config, identity))?;
            Ok(())
        }
    }
}
