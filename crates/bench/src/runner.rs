//! Runs one scenario against one registry: `concurrency` workers take operation numbers from a
//! shared counter until `count` is reached or the time limit passes, while a sampler follows
//! the server's resident memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Registry;
use crate::fixtures::Data;
use crate::scenario::{Names, Scenario, Work, run_op};

/// Distinct error messages kept per run.
const ERROR_SAMPLES: usize = 3;
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The figures of one run of one scenario against one registry.
#[derive(Serialize, Clone)]
pub struct RunResult {
    pub target: String,
    pub rep: usize,
    /// Operations that succeeded.
    pub ops: usize,
    pub errors: usize,
    /// True when the time limit stopped the run before `count` operations.
    pub truncated: bool,
    pub wall_s: f64,
    pub ops_per_s: f64,
    /// Blob bytes moved by successful operations, per second, in 10^6 bytes.
    pub mb_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Entries and pages per list operation (tag list, catalog), from the last one.
    pub entries: u64,
    pub pages: u32,
    /// Highest VmRSS of the server seen while the scenario ran.
    pub peak_rss_kb: Option<u64>,
    /// CPU time (user + system) the server and this client spent during the run: tells a
    /// saturated server from a saturated client, since both share the machine.
    pub server_cpu_s: Option<f64>,
    /// The kernel's share of `server_cpu_s` (socket and page-cache copies, fsync).
    pub server_sys_cpu_s: Option<f64>,
    pub client_cpu_s: Option<f64>,
    /// Tokens the client fetched from the registry's realm during the run (0 once the
    /// tokens of the scenario's scopes are cached; the token scenario's own requests are not
    /// counted).
    pub tokens_fetched: u64,
    pub error_samples: Vec<String>,
}

/// Everything a run needs besides the scenario: one target's clients and names.
#[derive(Clone)]
pub struct Context {
    /// The client with the target's credentials (if any).
    pub registry: Arc<Registry>,
    /// A client without credentials, for the public-repository scenarios.
    pub anonymous: Arc<Registry>,
    pub data: Arc<Data>,
    pub names: Arc<Names>,
    pub list_size: usize,
    pub time_limit: Duration,
}

impl Context {
    fn tokens_fetched(&self) -> u64 {
        self.registry.tokens_fetched() + self.anonymous.tokens_fetched()
    }
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u64>,
    bytes: u64,
    errors: usize,
    entries: u64,
    pages: u32,
    samples: Vec<String>,
}

pub async fn run(
    ctx: &Context,
    scenario: &Scenario,
    target: &str,
    rep: usize,
    pid: Option<u32>,
) -> RunResult {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + ctx.time_limit;

    let sampler = pid.map(RssSampler::start);
    let server_cpu_before = pid.and_then(cpu_times);
    let client_cpu_before = cpu_times(std::process::id());
    let tokens_before = ctx.tokens_fetched();
    let mut workers = Vec::with_capacity(scenario.concurrency);
    for _ in 0..scenario.concurrency.max(1) {
        let next = Arc::clone(&next);
        let ctx = ctx.clone();
        let (work, count) = (scenario.work, scenario.count);
        workers.push(tokio::spawn(async move {
            worker(&ctx, work, count, &next, deadline).await
        }));
    }
    let mut all = WorkerStats::default();
    for handle in workers {
        match handle.await {
            Ok(stats) => {
                all.latencies_us.extend(stats.latencies_us);
                all.bytes += stats.bytes;
                all.errors += stats.errors;
                all.entries = all.entries.max(stats.entries);
                all.pages = all.pages.max(stats.pages);
                for sample in stats.samples {
                    if all.samples.len() < ERROR_SAMPLES && !all.samples.contains(&sample) {
                        all.samples.push(sample);
                    }
                }
            }
            Err(e) => {
                all.errors += 1;
                all.samples.push(format!("worker failed: {e}"));
            }
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    let server_cpu = CpuTimes::since(server_cpu_before, pid.and_then(cpu_times));
    let client_cpu = CpuTimes::since(client_cpu_before, cpu_times(std::process::id()));
    let tokens_fetched = ctx.tokens_fetched() - tokens_before;
    let peak_rss_kb = match sampler {
        Some(sampler) => sampler.stop().await,
        None => None,
    };

    let mut latencies = all.latencies_us;
    latencies.sort_unstable();
    let ops = latencies.len();
    RunResult {
        target: target.to_string(),
        rep,
        ops,
        errors: all.errors,
        truncated: ops + all.errors < scenario.count,
        wall_s,
        ops_per_s: ops as f64 / wall_s.max(1e-9),
        mb_per_s: all.bytes as f64 / 1e6 / wall_s.max(1e-9),
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        max_ms: latencies.last().map_or(0.0, |&us| us as f64 / 1e3),
        entries: all.entries,
        pages: all.pages,
        peak_rss_kb,
        server_cpu_s: server_cpu.map(CpuTimes::total_s),
        server_sys_cpu_s: server_cpu.map(|c| c.system_s),
        client_cpu_s: client_cpu.map(CpuTimes::total_s),
        tokens_fetched,
        error_samples: all.samples,
    }
}

async fn worker(
    ctx: &Context,
    work: Work,
    count: usize,
    next: &AtomicUsize,
    deadline: Instant,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    loop {
        if Instant::now() >= deadline {
            break;
        }
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= count {
            break;
        }
        let started = Instant::now();
        match run_op(ctx, work, index).await {
            Ok(outcome) => {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                stats.latencies_us.push(us);
                stats.bytes += outcome.bytes;
                stats.entries = stats.entries.max(outcome.entries);
                stats.pages = stats.pages.max(outcome.pages);
            }
            Err(e) => {
                stats.errors += 1;
                let message = format!("{e:#}");
                if stats.samples.len() < ERROR_SAMPLES && !stats.samples.contains(&message) {
                    stats.samples.push(message);
                }
            }
        }
    }
    stats
}

/// Nearest-rank percentile of sorted microsecond latencies, in milliseconds.
fn percentile_ms(sorted_us: &[u64], pct: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (pct / 100.0 * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us[index] as f64 / 1e3
}

/// A field (`VmRSS`, `VmHWM`) of `/proc/<pid>/status`, in kB.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// CPU time a process has used.
#[derive(Clone, Copy)]
pub struct CpuTimes {
    pub user_s: f64,
    pub system_s: f64,
}

impl CpuTimes {
    fn since(before: Option<Self>, after: Option<Self>) -> Option<Self> {
        let (before, after) = before.zip(after)?;
        // Whole ticks, so the JSON shows 0.25 rather than 0.24999999999999.
        let ticks = |s: f64| (s * 100.0).round() / 100.0;
        Some(CpuTimes {
            user_s: ticks(after.user_s - before.user_s),
            system_s: ticks(after.system_s - before.system_s),
        })
    }

    pub fn total_s(self) -> f64 {
        ((self.user_s + self.system_s) * 100.0).round() / 100.0
    }
}

/// User and system CPU time of a process, from `/proc/<pid>/stat`. The kernel reports them in
/// USER_HZ ticks, which are 1/100 s on every architecture Linux exports to user space.
pub fn cpu_times(pid: u32) -> Option<CpuTimes> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it are fixed: state is field 3,
    // utime field 14 and stime field 15, so they are items 11 and 12 after the name.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(CpuTimes {
        user_s: utime as f64 / USER_HZ,
        system_s: stime as f64 / USER_HZ,
    })
}

/// Samples a process's VmRSS in the background and keeps the highest value.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kb) = proc_status_kb(pid, "VmRSS") {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                    tokio::time::sleep(RSS_SAMPLE_EVERY).await;
                }
            }
        });
        RssSampler { stop, peak, task }
    }

    async fn stop(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        Some(self.peak.load(Ordering::Relaxed)).filter(|&kb| kb > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let us: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&us, 50.0), 50.0);
        assert_eq!(percentile_ms(&us, 99.0), 99.0);
        assert_eq!(percentile_ms(&[7000], 99.0), 7.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }

    #[test]
    fn reads_own_memory_from_proc() {
        let kb = proc_status_kb(std::process::id(), "VmRSS").unwrap();
        assert!(kb > 0);
        assert!(proc_status_kb(std::process::id(), "NoSuchField").is_none());
        let busy = std::time::Instant::now();
        while busy.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(busy.elapsed());
        }
        assert!(cpu_times(std::process::id()).unwrap().total_s() > 0.0);
    }
}
