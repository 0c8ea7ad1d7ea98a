//! The `wharf` binary: command-line parsing and dispatch to the server crate. Environment
//! variables the binary reads are declared on the CLI types (`env = ...`), nowhere else.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "A Quay-compatible container registry in one binary"
)]
struct Cli {
    /// Log format on standard error: `text`, or `json` for one JSON object per line (with the
    /// request id of the span an event belongs to).
    #[arg(
        long,
        env = "WHARF_LOG_FORMAT",
        global = true,
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Where `/metrics` is served: an address, or `none`.
#[derive(Clone, Copy, Debug)]
enum MetricsListen {
    Off,
    On(SocketAddr),
}

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" | "off" => Ok(MetricsListen::Off),
            addr => addr
                .parse()
                .map(MetricsListen::On)
                .map_err(|e| format!("{addr:?} is neither an address nor `none`: {e}")),
        }
    }
}

/// Quay's metrics port, on loopback like `--listen`.
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9091";

#[derive(Subcommand)]
enum Command {
    /// Run the registry (OCI Distribution API on /v2).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(Location),
    /// Run background workers only (no HTTP): all of them, or the ones named.
    Worker(WorkerArgs),
    /// Administrative tasks on the database (safe while a server runs on it).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Storage maintenance (safe while servers run).
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Check config.yaml and the certificates beside it as Quay's config tool does: print the
    /// problems as a JSON array (empty when valid); exit 1 when there are any, 2 when
    /// config.yaml cannot be read.
    ValidateConfig(ValidateConfigArgs),
    /// Serve Quay's config tool API (/api/v1/config, /validate, /download) behind HTTP Basic
    /// authentication as user quayconfig with PASSWORD.
    Config(ConfigToolArgs),
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Queue replication for every blob that a location of DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS
    /// lacks (after adding a region); the storagereplication workers then copy them.
    BackfillReplication(Location),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user; the password is read from the first line of standard input.
    CreateUser(CreateUserArgs),
}

#[derive(Args)]
struct CreateUserArgs {
    #[command(flatten)]
    location: Location,
    /// The new user's name.
    name: String,
    /// The new user's e-mail address.
    #[arg(long)]
    email: String,
    /// Make the user a superuser (in addition to SUPER_USERS in config.yaml).
    #[arg(long)]
    superuser: bool,
}

#[derive(Args, Clone)]
struct Location {
    /// Directory holding a Quay-style config.yaml. Without it Wharf runs on the embedded
    /// default: SQLite and local storage under --data-dir.
    #[arg(long, env = "WHARF_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Directory for the embedded database and storage.
    #[arg(long, env = "WHARF_DATA_DIR", default_value = "wharf-data")]
    data_dir: PathBuf,
    /// This node's storage locations in order of preference, overriding
    /// DISTRIBUTED_STORAGE_PREFERENCE (one value per region; comma- or space-separated).
    #[arg(
        long,
        env = "QUAY_DISTRIBUTED_STORAGE_PREFERENCE",
        value_delimiter = ','
    )]
    storage_preference: Vec<String>,
}

#[derive(Args)]
struct WorkerArgs {
    #[command(flatten)]
    location: Location,
    /// Workers to run (default: all that config.yaml turns on). Known: blobuploadcleanupworker,
    /// gcworker, repositorygcworker, namespacegcworker, storagereplication.
    names: Vec<String>,
    /// Serve Prometheus metrics of these workers at http://ADDR/metrics (default: none, so
    /// that workers beside `wharf serve` on one host do not compete for its port).
    #[arg(long, env = "WHARF_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<MetricsListen>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    location: Location,
    /// Do not run background workers in this process (run `wharf worker` elsewhere).
    #[arg(long)]
    no_workers: bool,
    /// Address to listen on. The default stays on loopback because the registry does not yet
    /// authenticate anyone.
    #[arg(long, env = "WHARF_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address for HTTPS, served when the config directory holds ssl.cert and ssl.key (as
    /// Quay's 8443) and EXTERNAL_TLS_TERMINATION is not true. Default 127.0.0.1:8443, on
    /// loopback like --listen; giving it without a certificate is an error.
    #[arg(long, env = "WHARF_LISTEN_TLS")]
    listen_tls: Option<SocketAddr>,
    /// Address of the Prometheus metrics endpoint (http://ADDR/metrics), or `none`. Default
    /// 127.0.0.1:9091 (Quay's port); when that default is taken, Wharf warns and serves
    /// without metrics, while an address given here must be free.
    #[arg(long, env = "WHARF_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<MetricsListen>,
}

impl Location {
    fn paths(&self) -> server::Paths {
        server::Paths {
            config_dir: self.config_dir.clone(),
            data_dir: self.data_dir.clone(),
            storage_preference: (!self.storage_preference.is_empty()).then(|| {
                self.storage_preference
                    .iter()
                    .flat_map(|ids| ids.split_whitespace())
                    .map(str::to_string)
                    .collect()
            }),
        }
    }
}

/// How long workers may take to finish their current unit at shutdown.
const WORKER_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let debug = std::env::var("DEBUGLOG").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let filter = EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if debug { "debug" } else { "info" }));
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // The current span's fields (method, path, request_id) go with every event.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Serves `/metrics` on the metrics listener in the background until shutdown. `listen` None
/// means the default address, which may be taken (by another Wharf on this host): that is a
/// warning, not a failure.
async fn start_metrics(
    app: &server::App,
    listen: Option<MetricsListen>,
    default: Option<&str>,
) -> anyhow::Result<()> {
    let listener = match (listen, default) {
        (Some(MetricsListen::Off), _) | (None, None) => return Ok(()),
        (Some(MetricsListen::On(addr)), _) => server::bind(addr).await?,
        (None, Some(default)) => {
            let addr: SocketAddr = default.parse()?;
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(
                        %addr, error = %e,
                        "metrics are not served: the default metrics address is unavailable \
                         (choose one with --metrics-listen, or `none`)"
                    );
                    return Ok(());
                }
            }
        }
    };
    tracing::info!(addr = %listener.local_addr()?, "serving Prometheus metrics at /metrics");
    let metrics = app.metrics.clone();
    tokio::spawn(async move {
        if let Err(e) = server::metrics::serve(listener, metrics, shutdown_signal()).await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(location) => {
            let resolved = server::resolve(&location.paths())?;
            ensure_data_dir(&location)?;
            let db = resolved.connect_db().await?;
            let applied = db.migrate().await?;
            println!("applied {} migration(s): {applied:?}", applied.len());
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::CreateUser(args),
        } => create_user(args).await,
        Command::Storage {
            command: StorageCommand::BackfillReplication(location),
        } => backfill_replication(location).await,
        Command::ValidateConfig(args) => validate_config(args).await,
        Command::Config(args) => config_tool(args).await,
        Command::Worker(args) => {
            ensure_data_dir(&args.location)?;
            let resolved = server::resolve(&args.location.paths())?;
            let app = server::App::open(&resolved).await?;
            let workers = app.start_workers(&resolved, &args.names)?;
            start_metrics(&app, args.metrics_listen, None).await?;
            tracing::info!(workers = ?workers.statuses().iter().map(|(n, _)| *n).collect::<Vec<_>>(), "running workers");
            shutdown_signal().await;
            workers.shutdown(WORKER_SHUTDOWN).await;
            Ok(())
        }
    }
}

async fn create_user(args: CreateUserArgs) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    ensure_data_dir(&args.location)?;
    let resolved = server::resolve(&args.location.paths())?;
    let db = resolved.connect_db().await?;
    db.migrate().await?;
    if std::io::stdin().is_terminal() {
        eprint!("password for {}: ", args.name);
    }
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let user = auth::create_user(&db, &args.name, &args.email, password, args.superuser).await?;
    println!(
        "created user {}{}",
        user.username,
        if user.superuser { " (superuser)" } else { "" }
    );
    Ok(())
}

async fn backfill_replication(location: Location) -> anyhow::Result<()> {
    let resolved = server::resolve(&location.paths())?;
    let app = server::App::open(&resolved).await?;
    let total = app.registry.count_blobs().await?;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} blobs, {msg} ({eta})")
            .context("progress bar template")?,
    );
    let (scanned, queued) = app
        .registry
        .backfill_replication(|scanned, queued| {
            bar.set_position(scanned);
            bar.set_message(format!("{queued} queued for replication"));
        })
        .await?;
    bar.finish_and_clear();
    println!("{scanned} blobs scanned, {queued} queued for replication");
    Ok(())
}

fn ensure_data_dir(location: &Location) -> anyhow::Result<()> {
    std::fs::create_dir_all(&location.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            location.data_dir.display()
        )
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    ensure_data_dir(&args.location)?;
    let resolved = server::resolve(&args.location.paths())?;
    let tls = server::tls::plan(
        args.location.config_dir.as_deref(),
        &resolved.config,
        args.listen_tls,
    )?;
    let app = server::App::open(&resolved).await?;
    let listener = server::bind(args.listen).await?;
    start_metrics(&app, args.metrics_listen, Some(DEFAULT_METRICS_LISTEN)).await?;
    let https = match tls {
        Some((addr, tls)) => {
            let listener = server::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "serving HTTPS");
            Some((listener, tls))
        }
        None => None,
    };
    let workers = if args.no_workers {
        None
    } else {
        Some(app.start_workers(&resolved, &[])?)
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        database = %db::redact(&resolved.db_uri),
        storage = %resolved.upload_location(),
        "wharf is serving the registry and its API"
    );
    if app.registry_is_empty().await? {
        tracing::info!(
            "no users yet: create one with `wharf admin create-user NAME --email E` \
             (password on stdin) and push into NAME/…"
        );
    }
    app.serve_all(listener, https, shutdown_signal()).await?;
    if let Some(workers) = workers {
        workers.shutdown(WORKER_SHUTDOWN).await;
    }
    tracing::info!("wharf stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[derive(Args)]
struct ValidateConfigArgs {
    /// Directory holding config.yaml and its certificates (ssl.cert, ssl.key,
    /// extra_ca_certs/, ldap.crt, ...).
    #[arg(long, env = "WHARF_CONFIG_DIR", default_value = ".")]
    config_dir: PathBuf,
    /// offline: the files alone; online: also connect to the database, Redis, storage
    /// locations, LDAP, SMTP and scanner they name.
    #[arg(long, value_enum, default_value_t = ValidateMode::Offline)]
    mode: ValidateMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ValidateMode {
    Offline,
    Online,
}

#[derive(Args)]
struct ConfigToolArgs {
    /// The password of the config tool's user `quayconfig`.
    #[arg(env = "WHARF_CONFIG_TOOL_PASSWORD", hide_env_values = true)]
    password: String,
    /// Address to listen on. Loopback by default, like `serve`: the API hands out every
    /// secret of the config, so expose it deliberately (Quay's container uses 0.0.0.0:8080).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The config directory `GET /api/v1/config` shows.
    #[arg(long, env = "WHARF_CONFIG_DIR", default_value = ".")]
    config_dir: PathBuf,
}

/// `wharf validate-config`: exit 0 when valid, 1 with problems, 2 without a readable
/// config.yaml.
async fn validate_config(args: ValidateConfigArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let bundle = match configtool::Bundle::load(&args.config_dir) {
        Ok(bundle) => bundle,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mode = match args.mode {
        ValidateMode::Offline => configtool::Mode::Offline,
        ValidateMode::Online => configtool::Mode::Online,
    };
    let problems = configtool::validate(&bundle, &configtool::Options::new(mode)).await;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string_pretty(&problems)?)?;
    stdout.flush()?;
    if !problems.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// `wharf config PASSWORD`: the config tool API until SIGINT/SIGTERM.
async fn config_tool(args: ConfigToolArgs) -> anyhow::Result<()> {
    if args.password.is_empty() {
        anyhow::bail!("the config tool password must not be empty");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        config_dir = %args.config_dir.display(),
        "wharf config tool is serving /api/v1/config (HTTP Basic, user quayconfig)"
    );
    let options = configtool::ToolOptions {
        config_dir: args.config_dir,
        password: args.password,
        online_timeout: std::time::Duration::from_secs(10),
    };
    configtool::serve(listener, options, shutdown_signal()).await?;
    tracing::info!("wharf config tool stopped");
    Ok(())
}
