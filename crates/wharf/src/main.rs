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
    #[command(subcommand)]
    command: Command,
}

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
}

#[derive(Args)]
struct WorkerArgs {
    #[command(flatten)]
    location: Location,
    /// Workers to run (default: all). Known: blobuploadcleanupworker.
    names: Vec<String>,
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
}

impl Location {
    fn paths(&self) -> server::Paths {
        server::Paths {
            config_dir: self.config_dir.clone(),
            data_dir: self.data_dir.clone(),
        }
    }
}

/// How long workers may take to finish their current unit at shutdown.
const WORKER_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let debug = std::env::var("DEBUGLOG").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let filter = EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if debug { "debug" } else { "info" }));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(location) => {
            let resolved = server::resolve(&location.paths())?;
            ensure_data_dir(&location)?;
            let db = db::Db::connect(&resolved.db_uri).await?;
            let applied = db.migrate().await?;
            println!("applied {} migration(s): {applied:?}", applied.len());
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::CreateUser(args),
        } => create_user(args).await,
        Command::Worker(args) => {
            ensure_data_dir(&args.location)?;
            let resolved = server::resolve(&args.location.paths())?;
            let app = server::App::open(&resolved).await?;
            let workers = app.start_workers(&resolved, &args.names)?;
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
    let db = db::Db::connect(&resolved.db_uri).await?;
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
    let app = server::App::open(&resolved).await?;
    let listener = server::bind(args.listen).await?;
    let workers = if args.no_workers {
        None
    } else {
        Some(app.start_workers(&resolved, &[])?)
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        database = %db::redact(&resolved.db_uri),
        storage = %resolved.storage_path.display(),
        "wharf is serving the registry and its API"
    );
    if app.registry_is_empty().await? {
        tracing::info!(
            "no users yet: create one with `wharf admin create-user NAME --email E` \
             (password on stdin) and push into NAME/…"
        );
    }
    app.serve(listener, shutdown_signal()).await?;
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
