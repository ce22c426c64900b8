//! `r1ctl`: the r1 command-line tool for CSPs and operators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};
use r1_crds::api::kinds;
use r1_crds::api::object::ObjectKey;
use r1_crds::check::References;
use r1_crds::manifest::{DEFAULT_NAMESPACE, Kind};
use r1_crds::pricing::Catalogue;
use r1_ctl::remote::{Client, OutputFormat, Scope};

/// Validate and price r1 manifests, manage keys, and apply, inspect and delete resources on an
/// oracle's Deeploy API.
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
    /// Apply manifests to an oracle: every document of every file as one all-or-nothing set;
    /// then fund each DeeployJob on chain from the signer's escrow (see `fund`).
    Apply {
        #[command(flatten)]
        inputs: Inputs,
        /// Only apply; fund the jobs later with `r1ctl fund`.
        #[arg(long)]
        no_fund: bool,
        /// Keep image tags as written; by default each job's tag is pinned to the digest its
        /// registry serves now, so every replica runs the same bytes.
        #[arg(long)]
        no_pin: bool,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        chain: Chain,
    },
    /// Pay for DeeployJobs on chain from the signer's escrow: a job applied earlier by name, or
    /// every job in manifest files. The oracle tells the chain; a job already funded is left
    /// alone.
    Fund {
        /// Kind: deeployjobs (djob).
        #[arg(value_parser = parse_kind, required_unless_present = "files", conflicts_with = "files")]
        kind: Option<Kind>,
        /// The job.
        #[arg(required_unless_present = "files")]
        name: Option<String>,
        /// Manifest file, directory, or `-` for stdin (repeatable).
        #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
        files: Vec<PathBuf>,
        /// Also read subdirectories.
        #[arg(short = 'R', long)]
        recursive: bool,
        #[command(flatten)]
        namespace: NamespaceArgs,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        chain: Chain,
    },
    /// List resources of a kind, or show one.
    Get {
        /// Kind: deeployjobs (djob), deeployprojects (dproj), tunnels (tun), escrows (esc).
        #[arg(value_parser = parse_kind)]
        kind: Kind,
        /// Show only this resource.
        name: Option<String>,
        /// List only resources whose labels match (`app=web,tier!=db,canary,!legacy`).
        #[arg(short = 'l', long, conflicts_with = "name")]
        selector: Option<String>,
        #[command(flatten)]
        namespace: NamespaceArgs,
        /// List across every namespace the key owns.
        #[arg(short = 'A', long, conflicts_with = "namespace")]
        all_namespaces: bool,
        /// Output: yaml, json or wide (a table by default).
        #[arg(short, long, value_name = "FORMAT")]
        output: Option<OutputFormat>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one resource in detail: bookkeeping, spec, status and conditions.
    Describe {
        /// Kind: deeployjobs (djob), deeployprojects (dproj), tunnels (tun), escrows (esc).
        #[arg(value_parser = parse_kind)]
        kind: Kind,
        /// The resource.
        name: String,
        #[command(flatten)]
        namespace: NamespaceArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// Request deletion of a resource, or of every resource in manifest files; the oracle
    /// finishes it once the job is closed and its workloads are gone.
    Delete {
        /// Kind: deeployjobs (djob), deeployprojects (dproj), tunnels (tun), escrows (esc).
        #[arg(value_parser = parse_kind, required_unless_present = "files", conflicts_with = "files")]
        kind: Option<Kind>,
        /// The resource.
        #[arg(required_unless_present = "files")]
        name: Option<String>,
        /// Manifest file, directory, or `-` for stdin (repeatable).
        #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
        files: Vec<PathBuf>,
        /// Also read subdirectories.
        #[arg(short = 'R', long)]
        recursive: bool,
        #[command(flatten)]
        namespace: NamespaceArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a job's logs, from the nodes that run it (the job's owner only). With several
    /// replicas each line names its replica.
    Logs {
        /// The job: `djob/NAME` or `NAME`.
        #[arg(value_parser = parse_job)]
        job: String,
        /// Only this replica (by index).
        #[arg(long)]
        replica: Option<u32>,
        /// Keep printing what the replicas write.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Lines from the end of each log (0: all that the node keeps).
        #[arg(long, default_value_t = 0)]
        tail: u32,
        /// Only what was written in the last DURATION (`30s`, `5m`, `2h`), to within the
        /// node's log pass (about a second).
        #[arg(long, value_name = "DURATION", value_parser = r1_ctl::sessions::parse_seconds)]
        since: Option<u64>,
        /// The logs of replicas that no longer run (a rollout's old generation, a replica that
        /// moved, a job that ended), as their nodes keep them for a while; without, they are
        /// shown only when no replica runs.
        #[arg(short = 'p', long)]
        previous: bool,
        #[command(flatten)]
        namespace: NamespaceArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a command in a replica of a job (the job's owner only; the node logs who asked);
    /// exits with the command's status.
    Exec {
        /// The job: `djob/NAME` or `NAME`.
        #[arg(value_parser = parse_job)]
        job: String,
        /// The replica (by index); the lowest running one by default.
        #[arg(long)]
        replica: Option<u32>,
        /// Send this terminal's input to the command.
        #[arg(short = 'i', long)]
        stdin: bool,
        /// Run the command on a terminal.
        #[arg(short = 't', long)]
        tty: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
        #[command(flatten)]
        namespace: NamespaceArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// The epoch, every job (phase, replicas, nodes, budget left) and every escrow (balance,
    /// locked, paid to node operators, burned), across the signer's namespaces.
    Status {
        #[command(flatten)]
        watch: Watch,
        #[command(flatten)]
        remote: Remote,
    },
    /// Rebuild a job's money story from chain events and the oracles' signed votes alone —
    /// funding, node sets and their votes, settlements (85 % to nodes, 15 % burned), refund, PoA
    /// mints — and check every figure against the contracts to the unit; exits 1 on a mismatch.
    Audit {
        /// The job, as djob/NAME.
        #[arg(required_unless_present = "escrow", conflicts_with = "escrow")]
        job: Option<String>,
        /// Audit every job of the escrow instead.
        #[arg(long)]
        escrow: bool,
        #[command(flatten)]
        namespace: NamespaceArgs,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        chain: Chain,
    },
    /// The signer's escrow: delegate keys, their permissions, and the free balance they pay from.
    Escrow {
        #[command(subcommand)]
        command: EscrowCommand,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        chain: Chain,
    },
    /// Node licences on chain, as their operator: buy, link a node, unlink, show, claim.
    Licence {
        #[command(subcommand)]
        command: LicenceCommand,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        chain: Chain,
    },
    /// Governance of the PoAI manager, as its owner: oracles, prices, blacklist, suspensions;
    /// `show` for anyone.
    Oracle {
        #[command(subcommand)]
        command: OracleCommand,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        chain: Chain,
    },
    /// Seal secrets to every oracle, for DeeployJob manifests.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Broker set-up for operators.
    Broker {
        #[command(subcommand)]
        command: BrokerCommand,
    },
    /// The local devnet that `make devnet` runs.
    Devnet {
        #[command(subcommand)]
        command: DevnetCommand,
    },
    /// Create or inspect key files.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Ask a node agent on this host what it runs.
    Node {
        /// The agent's API socket.
        #[arg(long, env = "R1_NODE_API_SOCKET", default_value = "/run/r1/node.sock")]
        socket: PathBuf,
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// The R1FS store of a node agent on this host.
    Fs {
        /// The agent's API socket.
        #[arg(long, env = "R1_NODE_API_SOCKET", default_value = "/run/r1/node.sock")]
        socket: PathBuf,
        #[command(subcommand)]
        command: FsCommand,
    },
    /// The CSTORE replica of a node agent on this host, in any namespace: whoever reaches the
    /// socket is the node's operator.
    Cstore {
        /// The agent's API socket.
        #[arg(long, env = "R1_NODE_API_SOCKET", default_value = "/run/r1/node.sock")]
        socket: PathBuf,
        #[command(subcommand)]
        command: CstoreCommand,
    },
}

#[derive(Subcommand)]
enum EscrowCommand {
    /// Let a key act for you (e.g. a Kubernetes-mode oracle or a pipeline): apply and delete
    /// your resources with `--owner`, and pay jobs from the escrow's free balance.
    Delegate {
        /// The delegate's address.
        delegate: alloy_primitives::Address,
        /// Comma list of create, extend-duration, extend-nodes, redeem (or all).
        #[arg(long, default_value = r1_ctl::escrow::DEFAULT_PERMISSIONS)]
        permissions: r1_contracts::Permissions,
    },
    /// Take every permission back from a delegate; every oracle refuses its requests within 10 s.
    Revoke {
        /// The delegate's address.
        delegate: alloy_primitives::Address,
    },
    /// Show the escrow, its free balance and its delegates.
    Show,
    /// Add USDC from your wallet to the escrow's free balance.
    Deposit {
        /// Amount in USDC, e.g. 25 or 12.5.
        amount: r1_crds::usdc::Usdc,
    },
    /// Take USDC of the free balance back to your wallet.
    Withdraw {
        /// Amount in USDC.
        amount: r1_crds::usdc::Usdc,
    },
    /// Refund a job no node ever started, an hour (the manager's redeem delay) after it was
    /// paid for.
    Redeem {
        /// The job id on chain.
        job: u64,
    },
    /// Take a job back while the protocol is stalled (no allocation for the manager's exit
    /// delay): its completed epochs are paid to its nodes, the rest refunded.
    Exit {
        /// The job id on chain.
        job: u64,
    },
}

#[derive(Subcommand)]
enum LicenceCommand {
    /// Buy the next licence at the current price (approving the R1 first).
    Buy {
        /// Refuse a price above this many R1 wei.
        #[arg(long)]
        max_price: Option<alloy_primitives::U256>,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Link a node to your licence: the node's consent (what `r1-node sign-link` printed, a
    /// file or `-`) co-signed by the oracle at --server.
    Link {
        /// The node's proof.
        #[arg(long)]
        node_proof: PathBuf,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Unlink the node of your licence (claim what it earned first).
    Unlink {
        /// The licence.
        licence: u64,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show a licence: owner, node, relink time, PoA minted, unclaimed earnings.
    Show {
        /// The licence.
        licence: u64,
    },
    /// Claim what your nodes earned, paid in R1.
    Claim {
        /// The nodes.
        #[arg(required = true)]
        nodes: Vec<alloy_primitives::Address>,
        /// The most the swap may pay below its quote now, in basis points (100 = 1 %).
        #[arg(long, default_value_t = r1_contracts::client::DEFAULT_SLIPPAGE_BPS)]
        max_slippage_bps: u64,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum OracleCommand {
    /// The manager's settings (quorum rule, cooldown, redeem delay), oracles and prices.
    Show,
    /// Add an oracle to the set consensus counts.
    Add {
        /// The oracle's address.
        oracle: alloy_primitives::Address,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove an oracle.
    Remove {
        /// The oracle's address.
        oracle: alloy_primitives::Address,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Blacklist a node: never validated, never paid (--clear takes it back).
    Blacklist {
        /// The node's address.
        node: alloy_primitives::Address,
        /// Clear the node instead.
        #[arg(long)]
        clear: bool,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Suspend a node for a number of epochs from now: no new work, no PoA (--epochs 0 lifts it).
    Suspend {
        /// The node's address.
        node: alloy_primitives::Address,
        /// Epochs from the current one.
        #[arg(long)]
        epochs: u64,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Mint the next Master Node Deed (500 at most) or, with --genesis, the Genesis Node Deed,
    /// to an address: the Node Deed's owner only (behind the timelock).
    MintReserved {
        /// Who receives it.
        to: alloy_primitives::Address,
        /// The Genesis Node Deed instead of a Master Node Deed.
        #[arg(long)]
        genesis: bool,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Execute an owner-only change the timelock scheduled, once its delay has passed (what
    /// `add` or `remove` printed).
    Execute {
        /// The contract called.
        #[arg(long)]
        target: alloy_primitives::Address,
        /// The ABI-encoded call.
        #[arg(long)]
        data: alloy_primitives::Bytes,
        /// The operation's salt.
        #[arg(long)]
        salt: alloy_primitives::B256,
    },
    /// Price a class of the catalogue per node per epoch (0 withdraws it).
    Price {
        /// The class name, e.g. entry.
        class: String,
        /// USDC per node per epoch, e.g. 0.375.
        price: r1_crds::usdc::Usdc,
        /// Print the transaction and its gas instead of sending it.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Seal a secret read from stdin to every oracle for one namespace; print the YAML to paste.
    ///
    /// The oracles' public keys are fetched from the oracle at --server, each checked against
    /// its oracle's address. The output is a `sealed:` block to paste under a DeeployJob's
    /// `env[].valueFrom` or `imagePullSecret`. One trailing newline of the value is stripped
    /// unless --keep-newline. With --docker-server, registry credentials are sealed instead,
    /// as a Docker config (`{"auths": …}`): the password (--docker-username) or the token
    /// (--docker-token) is stdin's first line.
    Seal {
        /// Namespace of the job the value is for: the value is bound to it, and a job in any
        /// other namespace cannot use it.
        #[arg(short = 'n', long, value_name = "NS")]
        namespace: String,
        /// Seal stdin byte for byte (by default one trailing newline is stripped).
        #[arg(long, conflicts_with = "docker_server")]
        keep_newline: bool,
        /// Registry to seal pull credentials for (e.g. ghcr.io, docker.io), as an
        /// imagePullSecret; needs --docker-username or --docker-token.
        #[arg(
            long,
            value_name = "SERVER",
            requires = "docker_auth",
            value_parser = NonEmptyStringValueParser::new()
        )]
        docker_server: Option<String>,
        /// User name at the registry; the password is stdin's first line.
        #[arg(
            long,
            value_name = "USER",
            group = "docker_auth",
            requires = "docker_server",
            value_parser = NonEmptyStringValueParser::new()
        )]
        docker_username: Option<String>,
        /// Seal a registry token (stdin's first line) instead of a user name and password.
        #[arg(long, group = "docker_auth", requires = "docker_server")]
        docker_token: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum CstoreCommand {
    /// Print a key's value.
    Get {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
    /// Set a key's value.
    Set {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
        /// The value (may start with `-`).
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Expire the key after this many seconds.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        ex: Option<u64>,
    },
    /// Delete keys (strings or whole hashes) and print how many there were.
    Del {
        /// The namespace.
        namespace: String,
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Set a field of a hash.
    Hset {
        /// The namespace.
        namespace: String,
        /// The hash's key.
        key: String,
        /// The field.
        field: String,
        /// The value (may start with `-`).
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Print a field of a hash.
    Hget {
        /// The namespace.
        namespace: String,
        /// The hash's key.
        key: String,
        /// The field.
        field: String,
    },
    /// Print every field of a hash and its value.
    Hgetall {
        /// The namespace.
        namespace: String,
        /// The hash's key.
        key: String,
    },
    /// List the keys of a namespace that match a glob pattern.
    Keys {
        /// The namespace.
        namespace: String,
        /// The pattern (`*`, `?`, `[abc]`, as Redis's KEYS).
        #[arg(default_value = "*")]
        pattern: String,
    },
    /// Entries held, writes not replicated yet, and entries per namespace.
    Stat,
}

impl CstoreCommand {
    /// The namespace and the Redis command (name, then arguments) to run; `None` for `stat`.
    fn redis(&self) -> Option<(&str, Vec<String>)> {
        let words = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect();
        Some(match self {
            Self::Stat => return None,
            Self::Get { namespace, key } => (namespace, words(&["GET", key])),
            Self::Set {
                namespace,
                key,
                value,
                ex,
            } => {
                let mut args: Vec<String> = words(&["SET", key, value]);
                if let Some(seconds) = ex {
                    args.extend(["EX".to_owned(), seconds.to_string()]);
                }
                (namespace, args)
            }
            Self::Del { namespace, keys } => (
                namespace,
                std::iter::once("DEL".to_owned())
                    .chain(keys.iter().cloned())
                    .collect(),
            ),
            Self::Hset {
                namespace,
                key,
                field,
                value,
            } => (namespace, words(&["HSET", key, field, value])),
            Self::Hget {
                namespace,
                key,
                field,
            } => (namespace, words(&["HGET", key, field])),
            Self::Hgetall { namespace, key } => (namespace, words(&["HGETALL", key])),
            Self::Keys { namespace, pattern } => (namespace, words(&["KEYS", pattern])),
        })
    }
}

#[derive(Subcommand)]
enum FsCommand {
    /// Add a file or directory on the node (below its r1fs.addDirs) and print its CID.
    Add {
        /// The file or directory.
        path: PathBuf,
        /// 0 as `ipfs add`, 1 as `ipfs add --cid-version=1` (raw leaves).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1))]
        cid_version: u32,
        /// Encrypt the file's content under a fresh AES-256-GCM key, printed after the CID.
        #[arg(long)]
        encrypt: bool,
    },
    /// Write a file to stdout.
    Cat {
        /// The file's CID.
        cid: String,
        /// The key of an encrypted file (64 hex digits).
        #[arg(long, env = "R1FS_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Write a file or directory to a new path.
    Get {
        /// The CID.
        cid: String,
        /// Where to write it (must not exist).
        #[arg(short, long)]
        output: PathBuf,
        /// The key of an encrypted file (64 hex digits).
        #[arg(long, env = "R1FS_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// List a directory.
    Ls {
        /// The directory's CID.
        cid: String,
    },
    /// Fetch a root from the peers that have it and pin it on the node.
    Pin {
        /// The CID.
        cid: String,
    },
    /// Unpin a root; its blocks are deleted unless another pin holds them.
    Unpin {
        /// The CID.
        cid: String,
    },
    /// What a root is and how full the node's store is.
    Stat {
        /// The CID.
        cid: String,
    },
}

#[derive(Subcommand)]
enum DevnetCommand {
    /// `r1ctl status` as the devnet's CSP, found through the `env` file in the devnet's
    /// directory (`R1_DEVNET_DIR`, default /tmp/r1-devnet).
    Status {
        #[command(flatten)]
        watch: Watch,
    },
}

/// `-w`: keep showing.
#[derive(Args)]
struct Watch {
    /// Show again every `--interval` seconds until interrupted.
    #[arg(short, long)]
    watch: bool,
    /// Seconds between two screens with `--watch`.
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    interval: u64,
}

impl Watch {
    fn show(&self, client: &Client, out: &mut dyn std::io::Write) -> anyhow::Result<bool> {
        use std::io::IsTerminal;
        let every = self
            .watch
            .then(|| std::time::Duration::from_secs(self.interval.max(1)));
        let clear = std::io::stdout().is_terminal();
        block_on(r1_ctl::overview::show(client, every, clear, out))??;
        Ok(true)
    }
}

#[derive(Subcommand)]
enum NodeCommand {
    /// The node's identity, capacity and broker connection.
    Info,
    /// The workloads the node runs, with their states and ports.
    Ps,
    /// A workload's output.
    Logs {
        /// The workload, as `<job>/<replica>`.
        workload: String,
        /// Lines of existing output to show first (0 for all).
        #[arg(long, default_value_t = 100)]
        tail: u32,
        /// Keep printing new output.
        #[arg(short, long)]
        follow: bool,
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

/// Which oracle to talk to and which key signs.
#[derive(Args)]
struct Remote {
    /// Deeploy API of an oracle.
    #[arg(long, env = "R1_SERVER", default_value = r1_ctl::remote::DEFAULT_SERVER)]
    server: String,
    /// CSP key file (as written by `r1ctl keys new`) that signs every request.
    #[arg(long, env = "R1_KEY", value_name = "FILE")]
    key: PathBuf,
    /// Act for this escrow owner as its delegate (`r1ctl escrow delegate`): the key signs, the
    /// owner's namespaces and escrow are used, jobs are paid from the escrow's free balance.
    #[arg(long, env = "R1_OWNER", value_name = "ADDRESS")]
    owner: Option<alloy_primitives::Address>,
}

impl Remote {
    fn client(&self) -> anyhow::Result<Client> {
        let identity = r1_protocol::keyfile::load(&self.key)?;
        let client = Client::new(&self.server, identity)?;
        Ok(match self.owner {
            Some(owner) => client.acting_for(owner),
            None => client,
        })
    }
}

/// Where jobs are funded.
#[derive(Args)]
struct Chain {
    /// JSON-RPC endpoint of the oracle's chain (checked against the chain id the oracle reports).
    #[arg(long, env = "R1_RPC_URL", default_value = r1_ctl::fund::DEFAULT_RPC_URL)]
    rpc_url: String,
}

/// The namespace a command works in.
#[derive(Args)]
struct NamespaceArgs {
    /// Namespace.
    #[arg(short = 'n', long = "namespace", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    kinds::parse(text).ok_or_else(|| {
        format!(
            "{text:?} is not an r1 resource kind (one of {})",
            kinds::known()
        )
    })
}

/// A job named `djob/NAME` (any of the job kind's names) or just `NAME`.
fn parse_job(text: &str) -> Result<String, String> {
    match text.split_once('/') {
        Some((kind, name)) if kinds::parse(kind) == Some(Kind::Job) && !name.is_empty() => {
            Ok(name.to_owned())
        }
        Some(_) => Err(format!("{text:?} is not a job: use djob/NAME or NAME")),
        None => Ok(text.to_owned()),
    }
}

/// Runs one remote command to completion.
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

#[derive(Subcommand)]
enum BrokerCommand {
    /// Write r1.conf and r1.acl for Debian's mosquitto into a directory: no anonymous clients,
    /// per-identity topic ACLs, no retained messages, r1's packet size limit, optionally TLS.
    /// Add each node's and oracle's password to <dir>/r1.passwd with `mosquitto_passwd`
    /// (username: its lowercase 0x address) and include r1.conf from mosquitto.conf.
    MosquittoConfig {
        /// Root of every topic of the network.
        #[arg(long)]
        topic_root: String,
        /// An oracle's address (repeatable).
        #[arg(long = "oracle", value_name = "ADDRESS")]
        oracles: Vec<alloy_primitives::Address>,
        /// mosquitto's listener.
        #[arg(long, default_value = "0.0.0.0:8883")]
        listen: std::net::SocketAddr,
        /// TLS certificate (PEM) of the listener; plain MQTT without it.
        #[arg(long, requires = "key_file")]
        cert_file: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, requires = "cert_file")]
        key_file: Option<PathBuf>,
        /// Where to write the files.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
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
            let sources = r1_ctl::sources::read_sources(&inputs.files, inputs.recursive)?;
            let references = if *skip_refs {
                References::SyntaxOnly
            } else {
                References::WithinSet
            };
            Ok(r1_ctl::validate::run(
                &sources,
                &catalogue()?,
                references,
                &mut out,
            )?)
        }
        Command::Estimate { inputs } => {
            let sources = r1_ctl::sources::read_sources(&inputs.files, inputs.recursive)?;
            Ok(r1_ctl::estimate::run(&sources, &catalogue()?, &mut out)?)
        }
        Command::Apply {
            inputs,
            no_fund,
            no_pin,
            remote,
            chain,
        } => {
            let mut sources = r1_ctl::sources::read_sources(&inputs.files, inputs.recursive)?;
            if !no_pin {
                sources = block_on(r1_ctl::pin::pin_sources(sources, &mut out))??;
            }
            let client = remote.client()?;
            let catalogue = catalogue()?;
            let rpc_url = (!no_fund).then_some(chain.rpc_url.as_str());
            Ok(block_on(r1_ctl::fund::apply(
                &client, &sources, &catalogue, rpc_url, &mut out,
            ))??)
        }
        Command::Fund {
            kind,
            name,
            files,
            recursive,
            namespace,
            remote,
            chain,
        } => {
            let client = remote.client()?;
            let catalogue = catalogue()?;
            match (kind, name) {
                (Some(kind), Some(name)) => {
                    let key = ObjectKey::new(*kind, namespace.namespace.clone(), name.clone());
                    Ok(block_on(r1_ctl::fund::fund_named(
                        &client,
                        &key,
                        &catalogue,
                        &chain.rpc_url,
                        &mut out,
                    ))??)
                }
                _ => {
                    let sources = r1_ctl::sources::read_sources(files, *recursive)?;
                    Ok(block_on(r1_ctl::fund::fund_sources(
                        &client,
                        &sources,
                        &catalogue,
                        &chain.rpc_url,
                        &mut out,
                    ))??)
                }
            }
        }
        Command::Get {
            kind,
            name,
            selector,
            namespace,
            all_namespaces,
            output,
            remote,
        } => {
            let client = remote.client()?;
            let scope = if *all_namespaces {
                Scope::All
            } else {
                Scope::Namespace(namespace.namespace.clone())
            };
            let format = output.unwrap_or(OutputFormat::Table);
            Ok(block_on(r1_ctl::remote::get(
                &client,
                *kind,
                name.as_deref(),
                selector.as_deref(),
                &scope,
                format,
                &mut out,
            ))??)
        }
        Command::Audit {
            job,
            escrow: _,
            namespace,
            remote,
            chain,
        } => {
            let target = match job {
                Some(job) => r1_ctl::audit::Target::parse(job, &namespace.namespace)?,
                None => r1_ctl::audit::Target::Escrow,
            };
            let client = remote.client()?;
            Ok(block_on(r1_ctl::audit::run(
                &client,
                &chain.rpc_url,
                &target,
                &mut out,
            ))??)
        }
        Command::Status { watch, remote } => watch.show(&remote.client()?, &mut out),
        Command::Devnet {
            command: DevnetCommand::Status { watch },
        } => {
            let env = r1_ctl::devnet::DevnetEnv::read(&r1_ctl::devnet::dir_from_env())?;
            let identity = r1_protocol::keyfile::load(&env.key)?;
            watch.show(&Client::new(&env.server, identity)?, &mut out)
        }
        Command::Describe {
            kind,
            name,
            namespace,
            remote,
        } => {
            let client = remote.client()?;
            let key = ObjectKey::new(*kind, namespace.namespace.clone(), name.clone());
            Ok(block_on(r1_ctl::remote::describe(
                &client, &key, &mut out,
            ))??)
        }
        Command::Logs {
            job,
            replica,
            follow,
            tail,
            since,
            previous,
            namespace,
            remote,
        } => {
            let client = remote.client()?;
            let key = ObjectKey::new(Kind::Job, namespace.namespace.clone(), job.clone());
            let options = r1_ctl::sessions::LogsOptions {
                replica: *replica,
                follow: *follow,
                tail: *tail,
                since: *since,
                previous: *previous,
            };
            Ok(block_on(r1_ctl::sessions::logs(
                &client, &key, options, &mut out,
            ))??)
        }
        Command::Exec {
            job,
            replica,
            stdin,
            tty,
            command,
            namespace,
            remote,
        } => {
            let client = remote.client()?;
            let key = ObjectKey::new(Kind::Job, namespace.namespace.clone(), job.clone());
            let options = r1_ctl::sessions::ExecOptions {
                replica: *replica,
                stdin: *stdin,
                tty: *tty,
                argv: command.clone(),
            };
            let mut err = std::io::stderr();
            let ended = block_on(r1_ctl::sessions::exec(
                &client, &key, options, &mut out, &mut err,
            ))??;
            for failure in &ended.failures {
                eprintln!("r1ctl: {failure}");
            }
            match ended.exit {
                Some(code) => {
                    std::io::Write::flush(&mut out)?;
                    std::process::exit(i32::try_from(code).unwrap_or(255))
                }
                None => Ok(false),
            }
        }
        Command::Delete {
            kind,
            name,
            files,
            recursive,
            namespace,
            remote,
        } => {
            let client = remote.client()?;
            match (kind, name) {
                (Some(kind), Some(name)) => {
                    let key = ObjectKey::new(*kind, namespace.namespace.clone(), name.clone());
                    Ok(block_on(r1_ctl::remote::delete(&client, &key, &mut out))??)
                }
                _ => {
                    let sources = r1_ctl::sources::read_sources(files, *recursive)?;
                    let catalogue = catalogue()?;
                    Ok(block_on(r1_ctl::remote::delete_sources(
                        &client, &sources, &catalogue, &mut out,
                    ))??)
                }
            }
        }
        Command::Licence {
            command,
            remote,
            chain,
        } => {
            let client = remote.client()?;
            let proof = match command {
                LicenceCommand::Link { node_proof, .. } => {
                    let text = if node_proof.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin())?
                    } else {
                        std::fs::read_to_string(node_proof)?
                    };
                    Some(serde_json::from_str::<r1_protocol::links::LinkAttestRequest>(&text)?)
                }
                _ => None,
            };
            let done = block_on(async {
                use r1_ctl::licence;
                let suite = r1_ctl::onchain::connect(&client, &chain.rpc_url).await?;
                match (command, &proof) {
                    (LicenceCommand::Buy { max_price, dry_run }, _) => {
                        licence::buy(&suite, *max_price, *dry_run, &mut out).await
                    }
                    (LicenceCommand::Link { dry_run, .. }, Some(proof)) => {
                        licence::link(&suite, &client, proof, *dry_run, &mut out).await
                    }
                    (LicenceCommand::Unlink { licence, dry_run }, _) => {
                        licence::unlink(&suite, *licence, *dry_run, &mut out).await
                    }
                    (LicenceCommand::Show { licence }, _) => {
                        licence::show(&suite, *licence, &mut out).await
                    }
                    (
                        LicenceCommand::Claim {
                            nodes,
                            max_slippage_bps,
                            dry_run,
                        },
                        _,
                    ) => licence::claim(&suite, nodes, *max_slippage_bps, *dry_run, &mut out).await,
                    (LicenceCommand::Link { .. }, None) => Ok(()),
                }
            })?;
            done?;
            Ok(true)
        }
        Command::Oracle {
            command,
            remote,
            chain,
        } => {
            let client = remote.client()?;
            let catalogue = catalogue()?;
            let done = block_on(async {
                use r1_ctl::governance::{self, Change};
                let suite = r1_ctl::onchain::connect(&client, &chain.rpc_url).await?;
                let (change, dry_run) = match command {
                    OracleCommand::Show => {
                        return governance::show(&suite, &catalogue, &mut out).await;
                    }
                    OracleCommand::Execute { target, data, salt } => {
                        let operation = r1_contracts::Operation {
                            target: *target,
                            data: data.clone(),
                            salt: *salt,
                        };
                        return governance::execute(&suite, &operation, &mut out).await;
                    }
                    OracleCommand::Add { oracle, dry_run } => (Change::AddOracle(*oracle), dry_run),
                    OracleCommand::Remove { oracle, dry_run } => {
                        (Change::RemoveOracle(*oracle), dry_run)
                    }
                    OracleCommand::MintReserved {
                        to,
                        genesis,
                        dry_run,
                    } => {
                        let change = if *genesis {
                            Change::MintGenesis(*to)
                        } else {
                            Change::MintMaster(*to)
                        };
                        (change, dry_run)
                    }
                    OracleCommand::Blacklist {
                        node,
                        clear,
                        dry_run,
                    } => (
                        Change::Blacklist {
                            node: *node,
                            blacklisted: !clear,
                        },
                        dry_run,
                    ),
                    OracleCommand::Suspend {
                        node,
                        epochs,
                        dry_run,
                    } => {
                        let until_epoch = if *epochs == 0 {
                            0
                        } else {
                            governance::suspension_end(&suite, *epochs).await?
                        };
                        (
                            Change::Suspend {
                                node: *node,
                                until_epoch,
                            },
                            dry_run,
                        )
                    }
                    OracleCommand::Price {
                        class,
                        price,
                        dry_run,
                    } => {
                        let Some(found) = catalogue.classes.iter().find(|c| &c.name == class)
                        else {
                            return Err(r1_ctl::onchain::ChainCommandError::UnknownClass(
                                class.clone(),
                            ));
                        };
                        (
                            Change::Price {
                                job_type: found.id,
                                price: *price,
                            },
                            dry_run,
                        )
                    }
                };
                governance::apply(&suite, &change, *dry_run, &mut out).await
            })?;
            done?;
            Ok(true)
        }
        Command::Escrow {
            command,
            remote,
            chain,
        } => {
            let client = remote.client()?;
            let done = block_on(async {
                let funder = r1_ctl::fund::Funder::connect(&client, &chain.rpc_url).await?;
                match command {
                    EscrowCommand::Delegate {
                        delegate,
                        permissions,
                    } => r1_ctl::escrow::delegate(&funder, *delegate, *permissions, &mut out).await,
                    EscrowCommand::Revoke { delegate } => {
                        r1_ctl::escrow::delegate(
                            &funder,
                            *delegate,
                            r1_contracts::Permissions::NONE,
                            &mut out,
                        )
                        .await
                    }
                    EscrowCommand::Show => r1_ctl::escrow::show(&funder, &mut out).await,
                    EscrowCommand::Deposit { amount } => {
                        r1_ctl::escrow::deposit(&funder, *amount, &mut out).await
                    }
                    EscrowCommand::Withdraw { amount } => {
                        r1_ctl::escrow::withdraw(&funder, *amount, &mut out).await
                    }
                    EscrowCommand::Redeem { job } => {
                        r1_ctl::escrow::redeem(&funder, *job, &mut out).await
                    }
                    EscrowCommand::Exit { job } => {
                        r1_ctl::escrow::exit(&funder, *job, &mut out).await
                    }
                }
            })?;
            done?;
            Ok(true)
        }
        Command::Secret {
            command:
                SecretCommand::Seal {
                    namespace,
                    keep_newline,
                    docker_server,
                    docker_username,
                    docker_token: _,
                    remote,
                },
        } => {
            use r1_ctl::secret::Input;
            use std::io::IsTerminal;
            let input = match (docker_server, docker_username) {
                (None, _) => Input::Value {
                    keep_newline: *keep_newline,
                },
                (Some(server), Some(username)) => Input::DockerPassword {
                    server: server.clone(),
                    username: username.clone(),
                },
                (Some(server), None) => Input::DockerToken {
                    server: server.clone(),
                },
            };
            let client = remote.client()?;
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("r1ctl: reading the secret from stdin; end it with Ctrl-D");
            }
            block_on(r1_ctl::secret::seal(
                &client,
                namespace,
                &input,
                &mut stdin.lock(),
                &mut out,
            ))??;
            Ok(true)
        }
        Command::Broker {
            command:
                BrokerCommand::MosquittoConfig {
                    topic_root,
                    oracles,
                    listen,
                    cert_file,
                    key_file,
                    out_dir,
                },
        } => {
            let tls = cert_file
                .clone()
                .zip(key_file.clone())
                .map(|(cert_file, key_file)| r1_protocol::broker_tls::TlsFiles {
                    cert_file,
                    key_file,
                });
            let files = r1_ctl::broker::MosquittoFiles {
                topic_root: topic_root.clone(),
                oracles: oracles.clone(),
                listen: *listen,
                tls,
            };
            for path in r1_ctl::broker::write_mosquitto(out_dir, &files)? {
                println!("{}", path.display());
            }
            Ok(true)
        }
        Command::Keys { command } => {
            let address = match command {
                KeysCommand::New { out: path } => r1_ctl::keys::new(path)?,
                KeysCommand::Show { file } => r1_ctl::keys::show(file)?,
            };
            println!("{address}");
            Ok(true)
        }
        Command::Node { socket, command } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                match command {
                    NodeCommand::Info => r1_ctl::node::info(socket, &mut out).await,
                    NodeCommand::Ps => r1_ctl::node::ps(socket, &mut out).await,
                    NodeCommand::Logs {
                        workload,
                        tail,
                        follow,
                    } => r1_ctl::node::logs(socket, workload, *tail, *follow, &mut out).await,
                }
            })?;
            Ok(true)
        }
        Command::Fs { socket, command } => {
            use r1_ctl::fs;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                match command {
                    FsCommand::Add {
                        path,
                        cid_version,
                        encrypt,
                    } => fs::add(socket, path, *cid_version, *encrypt, &mut out).await,
                    FsCommand::Cat { cid, key } => {
                        fs::cat(socket, cid, key.as_deref(), &mut out).await
                    }
                    FsCommand::Get { cid, output, key } => {
                        fs::get(socket, cid, output, key.as_deref()).await
                    }
                    FsCommand::Ls { cid } => fs::ls(socket, cid, &mut out).await,
                    FsCommand::Pin { cid } => fs::pin(socket, cid, &mut out).await,
                    FsCommand::Unpin { cid } => fs::unpin(socket, cid, &mut out).await,
                    FsCommand::Stat { cid } => fs::stat(socket, cid, &mut out).await,
                }
            })?;
            Ok(true)
        }
        Command::Cstore { socket, command } => {
            use r1_ctl::cstore;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                match command.redis() {
                    None => cstore::stat(socket, &mut out).await,
                    Some((namespace, args)) => {
                        cstore::command(socket, namespace, &args, &mut out).await
                    }
                }
            })?;
            Ok(true)
        }
    }
}
