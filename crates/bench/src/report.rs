//! Medians over repetitions, the comparison table and the JSON result file.

use std::fmt::Write as _;

use serde::Serialize;

use crate::runner::RunResult;
use crate::scenario::Scenario;

#[derive(Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub started_unix_s: u64,
    pub quick: bool,
    pub reps: usize,
    pub blob_concurrency: usize,
    pub list_size: usize,
    /// Single-core SHA-256 over 1 GiB in memory, measured in the client process.
    pub sha256_mb_per_s: Option<f64>,
    /// The namespace of every repository the scenarios used.
    pub namespace: String,
    pub targets: Vec<TargetInfo>,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Serialize)]
pub struct TargetInfo {
    pub name: String,
    pub url: String,
    /// How the client authenticated: `anonymous (no challenge)`, `bearer token as USER`, …
    pub auth: String,
    pub pid: Option<u32>,
    /// VmRSS after start-up and warm-up.
    pub idle_rss_kb: Option<u64>,
    /// VmHWM (peak resident set) at the end of the whole benchmark.
    pub peak_rss_kb: Option<u64>,
}

#[derive(Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub count: usize,
    pub concurrency: usize,
    /// `MB/s` for scenarios that move blobs, `ops/s` otherwise.
    pub metric: &'static str,
    /// The targets the scenario ran on (a token scenario skips registries without tokens).
    pub targets: Vec<TargetSummary>,
    /// First target's headline median divided by the second's (higher is better for the
    /// first); None unless both ran.
    pub ratio: Option<f64>,
}

#[derive(Serialize)]
pub struct TargetSummary {
    pub target: String,
    pub median_ops_per_s: f64,
    pub median_mb_per_s: f64,
    pub median_p50_ms: f64,
    pub median_p99_ms: f64,
    pub errors: usize,
    pub truncated_runs: usize,
    /// Highest VmRSS sampled during any run of the scenario.
    pub peak_rss_kb: Option<u64>,
    pub runs: Vec<RunResult>,
}

impl TargetSummary {
    pub fn headline(&self, moves_data: bool) -> f64 {
        if moves_data {
            self.median_mb_per_s
        } else {
            self.median_ops_per_s
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Summarises the runs of one scenario; `runs_by_target` is in target order (`names`), empty
/// for a target the scenario skipped.
pub fn summarize(
    scenario: &Scenario,
    names: &[String],
    runs_by_target: Vec<Vec<RunResult>>,
) -> ScenarioReport {
    let moves_data = scenario.work.moves_data();
    let targets: Vec<Option<TargetSummary>> = runs_by_target
        .into_iter()
        .zip(names)
        .map(|(runs, target)| {
            if runs.is_empty() {
                return None;
            }
            let pick = |f: fn(&RunResult) -> f64| median(runs.iter().map(f).collect());
            Some(TargetSummary {
                target: target.clone(),
                median_ops_per_s: pick(|r| r.ops_per_s),
                median_mb_per_s: pick(|r| r.mb_per_s),
                median_p50_ms: pick(|r| r.p50_ms),
                median_p99_ms: pick(|r| r.p99_ms),
                errors: runs.iter().map(|r| r.errors).sum(),
                truncated_runs: runs.iter().filter(|r| r.truncated).count(),
                peak_rss_kb: runs.iter().filter_map(|r| r.peak_rss_kb).max(),
                runs,
            })
        })
        .collect();
    let ratio = match targets.as_slice() {
        [Some(a), Some(b), ..] if b.headline(moves_data) > 0.0 => {
            Some(a.headline(moves_data) / b.headline(moves_data))
        }
        _ => None,
    };
    ScenarioReport {
        name: scenario.name.clone(),
        count: scenario.count,
        concurrency: scenario.concurrency,
        metric: if moves_data { "MB/s" } else { "ops/s" },
        targets: targets.into_iter().flatten().collect(),
        ratio,
    }
}

/// Three significant-ish digits without noise: 1234, 123, 12.3, 1.23.
pub fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(|| "-".into(), |kb| format!("{:.0}", kb as f64 / 1024.0))
}

/// One value per target name, `-` for a target the scenario skipped, joined by ` / `.
fn pair(names: &[&str], s: &ScenarioReport, f: impl Fn(&TargetSummary) -> String) -> String {
    names
        .iter()
        .map(|name| s.target(name).map_or_else(|| "-".into(), &f))
        .collect::<Vec<_>>()
        .join(" / ")
}

impl ScenarioReport {
    fn target(&self, name: &str) -> Option<&TargetSummary> {
        self.targets.iter().find(|t| t.target == name)
    }
}

/// The comparison table: one line per scenario, headline medians per target and their ratio,
/// then latency, errors and memory per target (`first / second`).
pub fn table(report: &Report) -> String {
    let names: Vec<&str> = report.targets.iter().map(|t| t.name.as_str()).collect();
    let width = report
        .scenarios
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = String::new();
    let mut header = format!("{:<width$}  {:>5}  {:>6}", "scenario", "c", "metric");
    for name in &names {
        let _ = write!(header, "  {name:>12}");
    }
    let _ = write!(
        header,
        "  {:>6}  {:>17}  {:>17}  {:>7}  {:>11}",
        "ratio", "p50 ms", "p99 ms", "errors", "peak RSS MB"
    );
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.len()));
    for s in &report.scenarios {
        let moves = s.metric == "MB/s";
        let _ = write!(
            out,
            "{:<width$}  {:>5}  {:>6}",
            s.name, s.concurrency, s.metric
        );
        for name in &names {
            let value = match s.target(name) {
                Some(t) if t.errors > 0 || t.truncated_runs > 0 => {
                    format!("{}!", num(t.headline(moves)))
                }
                Some(t) => num(t.headline(moves)),
                None => "-".into(),
            };
            let _ = write!(out, "  {value:>12}");
        }
        let ratio = s.ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}x"));
        let _ = writeln!(
            out,
            "  {:>6}  {:>17}  {:>17}  {:>7}  {:>11}",
            ratio,
            pair(&names, s, |t| num(t.median_p50_ms)),
            pair(&names, s, |t| num(t.median_p99_ms)),
            pair(&names, s, |t| t.errors.to_string()),
            pair(&names, s, |t| mb(t.peak_rss_kb)),
        );
    }
    let _ = writeln!(
        out,
        "\nvalues are medians over {} repetition(s); ratio = {} / {} (higher favours {}); \
         `!` marks errors or a run cut by the time limit; peak RSS is the highest VmRSS sampled \
         during the scenario; latency columns and errors are `{}`; `-`: not run on that \
         registry.",
        report.reps,
        names.first().unwrap_or(&"-"),
        names.get(1).unwrap_or(&"-"),
        names.first().unwrap_or(&"-"),
        names.join(" / "),
    );
    for t in &report.targets {
        let _ = writeln!(
            out,
            "{:<12} idle RSS {:>5} MB, peak RSS (VmHWM) {:>5} MB  ({}, {})",
            t.name,
            mb(t.idle_rss_kb),
            mb(t.peak_rss_kb),
            t.url,
            t.auth
        );
    }
    out
}

/// The cost of authentication on each target: manifest HEAD by tag with the target's
/// credentials against the same HEAD on a public repository by a client without credentials
/// (on a token registry: an anonymous token), at each concurrency both ran. Empty when the
/// pair was not run.
pub fn auth_cost(report: &Report) -> String {
    let mut out = String::new();
    for t in &report.targets {
        let mut parts = Vec::new();
        for s in &report.scenarios {
            let Some(c) = s.name.strip_prefix("Manifest HEAD by tag c") else {
                continue;
            };
            let public = format!("Manifest HEAD by tag public anonymous c{c}");
            let Some(p) = report.scenarios.iter().find(|p| p.name == public) else {
                continue;
            };
            let (Some(auth), Some(anon)) = (s.target(&t.name), p.target(&t.name)) else {
                continue;
            };
            let (auth, anon) = (auth.median_ops_per_s, anon.median_ops_per_s);
            if anon > 0.0 {
                parts.push(format!(
                    "c{c} {} vs {} ops/s ({:+.1} %)",
                    num(auth),
                    num(anon),
                    100.0 * (auth / anon - 1.0)
                ));
            }
        }
        if !parts.is_empty() {
            let _ = writeln!(out, "  {:<12} {}", t.name, parts.join(", "));
        }
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "Manifest HEAD by tag with the target's credentials vs public repository without \
         credentials (same target, same run; negative = authentication costs that much):\n{out}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn numbers_keep_three_digits() {
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1.2345), "1.23");
    }
}
