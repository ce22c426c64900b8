//! `r1ctl`: the r1 command-line tool for CSPs and operators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use r1_controller::ctl;
use r1_crds::check::References;
use r1_crds::pricing::Catalogue;

/// Validate and price r1 manifests, and manage keys.
#[derive(Parser)]
#[command(name = "r1ctl", version, about, long_about = None)]
struct Cli {
    /// Price catalogue to use instead of the built-in one.
    #[arg(long, global = true, env = "R1_CATALOGUE", value_name = "FILE")]
    catalogue: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check manifests: schema, values, references; prints every error with its field path.
    Validate {
        #[command(flatten)]
        inputs: Inputs,
        /// Do not require referenced projects, escrows and tunnels to be among the files.
        #[arg(long)]
        skip_refs: bool,
    },
    /// Print what each job costs per epoch and the USDC to lock in escrow.
    Estimate {
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Create or inspect key files.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// Where manifests are read from, as with `kubectl -f`.
#[derive(Args)]
struct Inputs {
    /// Manifest file, directory, or `-` for stdin (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR"
    )]
    files: Vec<PathBuf>,
    /// Also read subdirectories.
    #[arg(short = 'R', long)]
    recursive: bool,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new key file (mode 0600) and print its EVM address.
    New {
        /// Where to write the key; never overwrites.
        #[arg(short, long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the EVM address of a key file.
    Show {
        /// The key file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("r1ctl: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let catalogue = || match &cli.catalogue {
        Some(path) => Catalogue::from_file(path),
        None => Catalogue::builtin(),
    };
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Validate { inputs, skip_refs } => {
            let sources = ctl::sources::read_sources(&inputs.files, inputs.recursive)?;
            let references = if *skip_refs {
                References::SyntaxOnly
            } else {
                References::WithinSet
            };
            Ok(ctl::validate::run(
                &sources,
                &catalogue()?,
                references,
                &mut out,
            )?)
        }
        Command::Estimate { inputs } => {
            let sources = ctl::sources::read_sources(&inputs.files, inputs.recursive)?;
            Ok(ctl::estimate::run(&sources, &catalogue()?, &mut out)?)
        }
        Command::Keys { command } => {
            let address = match command {
                KeysCommand::New { out: path } => ctl::keys::new(path)?,
                KeysCommand::Show { file } => ctl::keys::show(file)?,
            };
            println!("{address}");
            Ok(true)
        }
    }
}
