//! `wharf-bench`: a load client for OCI registries. It runs zot `zb`-named scenarios against one
//! or more registries on loopback, repetition by repetition and alternating which registry goes
//! first, then prints medians, the ratio of the first registry to the second, latency
//! percentiles and server memory, and writes everything to a JSON file. `scripts/bench` starts
//! Wharf and Distribution and calls it. Registries that ask for authentication (Bearer tokens
//! or Basic) get it from `--username`/`--password`, the way `docker` would.

mod auth;
mod client;
mod fixtures;
mod payload;
mod report;
mod runner;
mod scenario;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

use crate::auth::Credentials;
use crate::client::Registry;
use crate::fixtures::{Data, Prepared, prepare};
use crate::payload::Size;
use crate::report::{Report, TargetInfo, auth_cost, num, summarize, table};
use crate::runner::{Context, RunResult, proc_status_kb};
use crate::scenario::{Names, Plan, Scenario, Work};

/// Upper bound of the untimed set-up before one scenario (10k repositories take ~25 s on
/// Distribution here).
const SETUP_LIMIT: Duration = Duration::from_secs(900);

#[derive(Parser)]
#[command(
    name = "wharf-bench",
    about = "Runs zb-style registry scenarios against registries on loopback and compares them"
)]
struct Cli {
    /// A registry to measure, as NAME=URL (URL on 127.0.0.1). Repeat it; the first target is
    /// the numerator of the ratio column.
    #[arg(long = "target", value_name = "NAME=URL", value_parser = named)]
    targets: Vec<(String, String)>,
    /// The server process of a target, as NAME=PID, for idle, per-scenario and peak memory.
    #[arg(long = "pid", value_name = "NAME=PID", value_parser = named)]
    pids: Vec<(String, String)>,
    /// The user a target's token requests (or Basic authentication) are made as, as
    /// NAME=USER. Used only if the target answers 401 with a challenge, and sent only to its
    /// own token realm. Without it, WHARF_BENCH_USERNAME applies to every target.
    #[arg(long = "username", value_name = "NAME=USER", value_parser = named)]
    usernames: Vec<(String, String)>,
    /// The password of a target's user, as NAME=PASSWORD [default: WHARF_BENCH_PASSWORD].
    #[arg(long = "password", value_name = "NAME=PASSWORD", value_parser = named)]
    passwords: Vec<(String, String)>,
    /// Namespace of every repository the scenarios create and read (`NS/manifest`,
    /// `NS/push-…`); on a registry with access control, one the user may push into.
    #[arg(long, value_name = "NS", default_value = "bench", value_parser = namespace)]
    namespace: String,
    /// Repetitions per scenario and target; the table shows medians.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Small counts and 1k-entry lists, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Run only the scenarios whose name matches this regular expression (case-insensitive).
    #[arg(long, value_name = "REGEX")]
    only: Option<String>,
    /// Concurrency of the blob push and pull scenarios.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Tags in the tag-list fixture and repositories in the catalog fixture
    /// [default: 10000, 1000 with --quick].
    #[arg(long)]
    list_size: Option<usize>,
    /// Upper bound of one run in seconds; no operation starts after it
    /// [default: 300, 60 with --quick].
    #[arg(long)]
    time_limit: Option<u64>,
    /// Where to write the JSON result.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Do not run `sync` before each run. By default dirty pages are flushed first, so the
    /// write-back of one server's data does not land in the next server's measurement.
    #[arg(long)]
    no_sync: bool,
    /// Print the selected scenarios and exit.
    #[arg(long)]
    list: bool,
}

fn named(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .filter(|(name, rest)| !name.is_empty() && !rest.is_empty())
        .map(|(name, rest)| (name.to_string(), rest.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {value:?}"))
}

fn namespace(value: &str) -> Result<String, String> {
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let re =
        regex::Regex::new(&format!("^{component}(?:/{component})*$")).map_err(|e| e.to_string())?;
    if re.is_match(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?} is not a repository namespace (lowercase components separated by /)"
        ))
    }
}

const USERNAME_ENV: &str = "WHARF_BENCH_USERNAME";
const PASSWORD_ENV: &str = "WHARF_BENCH_PASSWORD";

struct Target {
    name: String,
    url: String,
    pid: Option<u32>,
    registry: Arc<Registry>,
    /// The same registry without credentials, for the anonymous scenarios.
    anonymous: Arc<Registry>,
    prepared: Prepared,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let plan = Plan {
        quick: cli.quick,
        concurrency: cli.concurrency.max(1),
        list_size: cli
            .list_size
            .unwrap_or(if cli.quick { 1_000 } else { 10_000 })
            .max(1),
    };
    let scenarios = select(&plan, cli.only.as_deref())?;
    if cli.list {
        for s in &scenarios {
            println!("{:<32} {:>6} ops at c{}", s.name, s.count, s.concurrency);
        }
        return Ok(());
    }
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut targets = targets(&cli)?;

    // Warm-up: the registry answers, and the first connections and allocations are made
    // before idle memory is read.
    let mut idle_rss = Vec::new();
    for t in &targets {
        wait_ready(&t.registry, &t.name).await?;
        for _ in 0..200 {
            t.registry.ping().await?;
        }
        idle_rss.push(t.pid.and_then(|pid| proc_status_kb(pid, "VmRSS")));
    }

    let sizes: BTreeSet<Size> = scenarios
        .iter()
        .flat_map(|s| s.work.payload_sizes())
        .collect();
    let clock = Instant::now();
    let data = Arc::new(Data::generate(sizes.iter().copied()));
    eprintln!(
        "generated {:.0} MB of random payload in {:.1} s",
        data.total_bytes() as f64 / 1e6,
        clock.elapsed().as_secs_f64()
    );
    let sha256_mb_per_s = if sizes.contains(&Size::G1) {
        let layer = data.image(Size::G1)?.layer.data.clone();
        let speed = tokio::task::spawn_blocking(move || payload::sha256_mb_per_s(&layer)).await?;
        eprintln!(
            "SHA-256 on one core over 1 GiB in memory: {} MB/s",
            num(speed)
        );
        Some(speed)
    } else {
        None
    };

    let reps = cli.reps.max(1);
    let time_limit =
        Duration::from_secs(cli.time_limit.unwrap_or(if cli.quick { 60 } else { 300 }));
    let ctx = |t: &Target| Context {
        registry: Arc::clone(&t.registry),
        anonymous: Arc::clone(&t.anonymous),
        data: Arc::clone(&data),
        names: Arc::new(Names::new(&cli.namespace)),
        list_size: plan.list_size,
        time_limit,
    };
    let contexts: Vec<Context> = targets.iter().map(ctx).collect();
    let mut reports = Vec::new();
    for s in &scenarios {
        // A scenario that needs a token realm is skipped on registries that never asked for
        // a token (Distribution without auth has no token endpoint).
        let runs_on: Vec<bool> = targets
            .iter()
            .map(|t| !s.work.needs_token_realm() || t.registry.token_realm().is_some())
            .collect();
        for (i, t) in targets.iter_mut().enumerate() {
            if !runs_on[i] {
                eprintln!(
                    "[{}] {}: skipped, the registry asks for no token (no Bearer challenge)",
                    t.name, s.name
                );
                continue;
            }
            let setup = prepare(&contexts[i], &mut t.prepared, s.work);
            let done = tokio::time::timeout(SETUP_LIMIT, setup)
                .await
                .map_err(|_| anyhow::anyhow!("set-up took more than {SETUP_LIMIT:?}"))
                .flatten()
                .with_context(|| format!("{}: preparing {}", t.name, s.name))?;
            if let Some(done) = done {
                eprintln!("[{}] set-up: {done}", t.name);
            }
        }
        let mut runs: Vec<Vec<RunResult>> = vec![Vec::new(); targets.len()];
        for rep in 0..reps {
            // Alternate which registry goes first, so neither always runs on a warmer or
            // busier machine.
            let mut order: Vec<usize> = (0..targets.len()).collect();
            if rep % 2 == 1 {
                order.reverse();
            }
            for i in order.into_iter().filter(|&i| runs_on[i]) {
                let t = &targets[i];
                if !cli.no_sync && s.work.moves_data() {
                    flush_page_cache().await;
                }
                let result = runner::run(&contexts[i], s, &t.name, rep + 1, t.pid).await;
                eprintln!("{}", progress_line(&s.name, s.work, &result));
                for sample in &result.error_samples {
                    eprintln!("    error: {sample}");
                }
                runs[i].push(result);
            }
        }
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        reports.push(summarize(s, &names, runs));
    }

    let report = Report {
        tool: "wharf-bench",
        started_unix_s,
        quick: cli.quick,
        reps,
        blob_concurrency: plan.concurrency,
        list_size: plan.list_size,
        sha256_mb_per_s,
        namespace: cli.namespace.clone(),
        targets: targets
            .iter()
            .zip(idle_rss)
            .map(|(t, idle)| TargetInfo {
                name: t.name.clone(),
                url: t.url.clone(),
                auth: t.registry.auth_description(),
                pid: t.pid,
                idle_rss_kb: idle,
                peak_rss_kb: t.pid.and_then(|pid| proc_status_kb(pid, "VmHWM")),
            })
            .collect(),
        scenarios: reports,
    };
    print_summary(&report);
    if let Some(path) = &cli.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("JSON result: {}", path.display());
    }
    Ok(())
}

/// The scenarios of `plan` whose name matches `only` (case-insensitive), in run order.
fn select(plan: &Plan, only: Option<&str>) -> anyhow::Result<Vec<Scenario>> {
    let filter = only
        .map(|re| {
            regex::RegexBuilder::new(re)
                .case_insensitive(true)
                .build()
                .with_context(|| format!("--only {re:?} is not a valid regular expression"))
        })
        .transpose()?;
    let selected: Vec<_> = scenario::all(plan)
        .into_iter()
        .filter(|s| filter.as_ref().is_none_or(|re| re.is_match(&s.name)))
        .collect();
    if selected.is_empty() {
        bail!("no scenario matches --only");
    }
    Ok(selected)
}

fn targets(cli: &Cli) -> anyhow::Result<Vec<Target>> {
    if cli.targets.is_empty() {
        bail!("give at least one --target NAME=URL");
    }
    if let Some((name, _)) = cli
        .pids
        .iter()
        .find(|(name, _)| !cli.targets.iter().any(|(t, _)| t == name))
    {
        bail!("--pid {name}=...: there is no --target {name}");
    }
    for (flag, list) in [
        ("--username", &cli.usernames),
        ("--password", &cli.passwords),
    ] {
        if let Some((name, _)) = list
            .iter()
            .find(|(name, _)| !cli.targets.iter().any(|(t, _)| t == name))
        {
            bail!("{flag} {name}=...: there is no --target {name}");
        }
    }
    let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let mut targets = Vec::new();
    for (name, url) in &cli.targets {
        let pid = match cli.pids.iter().find(|(n, _)| n == name) {
            Some((_, pid)) => Some(
                pid.parse::<u32>()
                    .with_context(|| format!("--pid {name}={pid}"))?,
            ),
            None => None,
        };
        let lookup = |list: &[(String, String)]| {
            list.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        };
        let username = lookup(&cli.usernames).or_else(|| env(USERNAME_ENV));
        let password = lookup(&cli.passwords).or_else(|| env(PASSWORD_ENV));
        let credentials = match (username, password) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            (Some(username), None) => bail!(
                "target {name}: user {username} has no password (--password {name}=... or \
                 {PASSWORD_ENV})"
            ),
            (None, _) => None,
        };
        targets.push(Target {
            name: name.clone(),
            url: url.clone(),
            pid,
            registry: Arc::new(Registry::new(url, credentials.as_ref())?),
            anonymous: Arc::new(Registry::new(url, None)?),
            prepared: Prepared::default(),
        });
    }
    Ok(targets)
}

fn print_summary(report: &Report) {
    println!();
    print!("{}", table(report));
    print!("{}", auth_cost(report));
    if let Some(sha) = report.sha256_mb_per_s {
        println!("SHA-256, one core, in the client: {} MB/s", num(sha));
        if let Some(s) = report.scenarios.iter().find(|s| s.name.ends_with("1GB")) {
            for t in &s.targets {
                println!(
                    "  {} 1 GiB streamed push: {} MB/s = {:.0} % of it",
                    t.target,
                    num(t.median_mb_per_s),
                    100.0 * t.median_mb_per_s / sha
                );
            }
        }
    }
}

async fn wait_ready(registry: &Registry, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match registry.ping().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("{name} did not answer GET /v2/ within 30 s")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Runs sync(1): both servers write to the same disk, and Distribution never fsyncs, so its
/// dirty pages would otherwise be written back during whichever run comes next.
async fn flush_page_cache() {
    let status = tokio::process::Command::new("sync").status().await;
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("warning: sync failed; runs may include the other server's write-back");
    }
}

fn progress_line(scenario: &str, work: Work, r: &RunResult) -> String {
    let mut line = format!(
        "[{} rep {}] {scenario}: {} ok, {} err{} in {:.2} s: {} ops/s",
        r.target,
        r.rep,
        r.ops,
        r.errors,
        if r.truncated { " (time limit)" } else { "" },
        r.wall_s,
        num(r.ops_per_s),
    );
    if work.moves_data() {
        line.push_str(&format!(", {} MB/s", num(r.mb_per_s)));
    }
    line.push_str(&format!(
        ", p50 {} ms, p99 {} ms",
        num(r.p50_ms),
        num(r.p99_ms)
    ));
    if r.pages > 0 {
        line.push_str(&format!(", {} entries in {} page(s)", r.entries, r.pages));
    }
    if let Some(kb) = r.peak_rss_kb {
        line.push_str(&format!(", server RSS peak {:.0} MB", kb as f64 / 1024.0));
    }
    if let (Some(cpu), Some(sys)) = (r.server_cpu_s, r.server_sys_cpu_s) {
        line.push_str(&format!(", server CPU {cpu:.2} s ({sys:.2} s system)"));
    }
    if let Some(cpu) = r.client_cpu_s {
        line.push_str(&format!(", client CPU {cpu:.2} s"));
    }
    if r.tokens_fetched > 0 {
        line.push_str(&format!(", {} token(s) fetched", r.tokens_fetched));
    }
    line
}
