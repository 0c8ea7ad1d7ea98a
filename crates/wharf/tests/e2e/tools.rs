//! Finding the external tools and running them with a time limit.
//!
//! Every environment variable these tests read is declared here.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

/// Where the Python virtualenv with the `oras` package lives; by default
/// `$HOME/.cache/wharf/venv`, where scripts/e2e-setup.sh creates it.
const VENV_ENV: &str = "WHARF_E2E_VENV";

/// The longest any single client command may take. The biggest transfer in these tests is a few
/// megabytes over loopback, so anything near this limit is a hang, not a slow machine.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest a whole test may take, daemons' start-up included.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a test body with an overall deadline. Dropping the body on timeout drops its daemons
/// and child processes, which stops them.
pub async fn bounded(test: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    match tokio::time::timeout(TEST_TIMEOUT, test).await {
        Ok(result) => result,
        Err(_) => bail!("the test did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// Looks `name` up on PATH, or explains which Debian package provides it.
pub fn require(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .with_context(|| {
            format!(
                "`{name}` is not on PATH: install the Debian package `{package}` \
                 (scripts/e2e-setup.sh installs every tool the end-to-end tests use)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Python interpreter of the oras virtualenv, checked to import `oras`.
pub async fn oras_python() -> anyhow::Result<Tool> {
    let venv = match std::env::var_os(VENV_ENV) {
        Some(venv) => PathBuf::from(venv),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/wharf/venv"),
    };
    let python = venv.join("bin/python");
    let advice = format!(
        "create it with `python3 -m venv {0} && {0}/bin/pip install oras` \
         (scripts/e2e-setup.sh does), or point {VENV_ENV} at a virtualenv that has oras",
        venv.display()
    );
    if !is_executable(&python) {
        bail!("no Python virtualenv at {}: {advice}", venv.display());
    }
    let tool = Tool::at(python);
    tool.run(["-c", "import oras.client"])
        .await
        .with_context(|| format!("the virtualenv cannot import oras: {advice}"))?;
    Ok(tool)
}

/// A temporary path as a command-line argument (tempfile's paths are always UTF-8).
pub fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The captured output of a command that exited successfully.
pub struct Output {
    pub stdout: String,
}

/// What a command reads on its standard input.
pub enum Stdin<'a> {
    Null,
    /// These bytes, then end of file (passwords for `--password-stdin`).
    Bytes(&'a [u8]),
}

/// How a command ended, with both output streams.
struct Finished {
    line: String,
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// A program with the arguments and environment every invocation of it shares.
#[derive(Clone)]
pub struct Tool {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    removed: Vec<OsString>,
}

impl Tool {
    /// The tool `name` from PATH; fails naming `package` when it is missing.
    pub fn new(name: &str, package: &str) -> anyhow::Result<Tool> {
        Ok(Tool::at(require(name, package)?))
    }

    /// The program at `program`, which is not looked up on PATH.
    pub fn at(program: PathBuf) -> Tool {
        Tool {
            program,
            args: Vec::new(),
            envs: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// Adds arguments that come before those of every `run`.
    pub fn with_args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for every `run`.
    pub fn with_env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Tool {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Clears an environment variable for every `run`.
    pub fn without_env(mut self, key: impl AsRef<OsStr>) -> Tool {
        self.removed.push(key.as_ref().to_owned());
        self
    }

    /// Runs the tool and fails unless it exits 0 within the step timeout. Errors carry the
    /// command line and both output streams.
    pub async fn run<I, S>(&self, args: I) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_stdin(args, Stdin::Null).await
    }

    /// Like `run`, with something on standard input.
    pub async fn run_with_stdin<I, S>(&self, args: I, stdin: Stdin<'_>) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let done = self.exec(args, stdin).await?;
        if !done.status.success() {
            bail!(
                "`{}` exited with {}\n--- stdout\n{}\n--- stderr\n{}",
                done.line,
                done.status,
                done.stdout,
                done.stderr
            );
        }
        Ok(Output {
            stdout: done.stdout,
        })
    }

    /// Runs the tool expecting it to fail: errors if it exits 0, returns its stdout and
    /// stderr together (tools differ in where they report) otherwise.
    pub async fn run_failing<I, S>(&self, args: I, stdin: Stdin<'_>) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let done = self.exec(args, stdin).await?;
        if done.status.success() {
            bail!(
                "`{}` succeeded but must fail\n--- stdout\n{}\n--- stderr\n{}",
                done.line,
                done.stdout,
                done.stderr
            );
        }
        Ok(format!("{}{}", done.stdout, done.stderr))
    }

    /// Runs the tool within the step timeout, whatever its exit status.
    async fn exec<I, S>(&self, args: I, stdin: Stdin<'_>) -> anyhow::Result<Finished>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use tokio::io::AsyncWriteExt;

        let args: Vec<OsString> = self
            .args
            .iter()
            .cloned()
            .chain(args.into_iter().map(|a| a.as_ref().to_owned()))
            .collect();
        let line = std::iter::once(self.program.as_os_str())
            .chain(args.iter().map(OsString::as_os_str))
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let (stdio, input) = match stdin {
            Stdin::Null => (Stdio::null(), None),
            Stdin::Bytes(bytes) => (Stdio::piped(), Some(bytes.to_vec())),
        };
        let mut command = tokio::process::Command::new(&self.program);
        for key in &self.removed {
            command.env_remove(key);
        }
        let mut child = command
            .args(&args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(stdio)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        if let Some(input) = input {
            let mut pipe = child.stdin.take().context("no stdin pipe")?;
            pipe.write_all(&input)
                .await
                .with_context(|| format!("cannot write to the stdin of `{line}`"))?;
            // Dropping the pipe closes it: the tool sees end of file.
            drop(pipe);
        }
        let output = tokio::time::timeout(STEP_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| anyhow::anyhow!("`{line}` did not finish within {STEP_TIMEOUT:?}"))?
            .with_context(|| format!("`{line}` failed to run"))?;
        Ok(Finished {
            line,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
