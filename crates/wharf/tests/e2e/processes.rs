//! Long-running processes under test: Wharf itself, CNCF Distribution and dockerd. Each is
//! stopped when its handle drops, and its log is printed then (libtest shows it only for a
//! failing test).
//!
//! A TCP server in another process cannot be handed a bound listener, so a port is chosen by
//! binding 127.0.0.1:0 and dropping it, and the server is started on it. Another process may
//! take the port in between; the server then exits saying so and is started again on a fresh
//! port. Readiness is the server's own "listening" log line, which it writes only after it has
//! bound, so a foreign server that grabbed the port can never pass for ours.
//!
//! Wharf needs a registry token on every `/v2` request; [`Wharf::create_user`] makes users with
//! `wharf admin create-user`, as an operator does, whose credentials the clients then get.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use reqwest::StatusCode;

use crate::registry::{Registry, header};
use crate::tools::{Stdin, Tool, require};

/// How long a registry may take to start listening.
const REGISTRY_START: Duration = Duration::from_secs(20);
/// How long dockerd may take to answer (it usually needs 2–5 s, more on a busy machine).
const DOCKERD_START: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 8;
const POLL: Duration = Duration::from_millis(50);

/// A child process that is stopped (SIGTERM, then SIGKILL after `grace`) on drop.
pub struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
    grace: Duration,
}

impl Daemon {
    fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        grace: Duration,
    ) -> anyhow::Result<Daemon> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Daemon {
            name,
            child,
            log: log.to_owned(),
            grace,
        })
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // dockerd must get SIGTERM to take its containerd down with it; the registries shut
        // down cleanly on it too. std only offers SIGKILL, hence the `kill` command.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        eprintln!("--- last lines of the {} log", self.name);
        for line in tail.into_iter().rev() {
            eprintln!("{line}");
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts a TCP server on a free port, retrying on a lost port race. `command` builds the
/// invocation for a port; `ready` is the log text written once it listens; `in_use` is what it
/// logs when the port was taken.
async fn start_on_free_port(
    name: &'static str,
    log: &Path,
    command: impl Fn(u16) -> anyhow::Result<Command>,
    ready: &str,
    in_use: &[&str],
) -> anyhow::Result<(Daemon, u16)> {
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port()?;
        let mut daemon = Daemon::spawn(name, command(port)?, log, Duration::from_secs(5))?;
        let deadline = Instant::now() + REGISTRY_START;
        loop {
            let text = daemon.log();
            if text.contains(ready) {
                return Ok((daemon, port));
            }
            if let Some(status) = daemon.exited() {
                if in_use.iter().any(|m| text.contains(m)) {
                    break; // lost the race for the port: try another
                }
                bail!("{name} exited with {status} before listening:\n{text}");
            }
            if Instant::now() > deadline {
                bail!("{name} did not listen within {REGISTRY_START:?}:\n{text}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
    bail!("{name} lost the race for a free port {PORT_ATTEMPTS} times")
}

/// Waits until `GET http://host/v2/` without credentials answers `expected`: 200 from an
/// anonymous registry, 401 with a `Bearer` challenge from one that wants tokens.
async fn wait_for_v2(name: &str, host: &str, expected: StatusCode) -> anyhow::Result<()> {
    let url = format!("http://{host}/v2/");
    let deadline = Instant::now() + REGISTRY_START;
    loop {
        let answer = reqwest::get(&url)
            .await
            .with_context(|| format!("GET {url}"))
            .map(|r| (r.status(), header(r.headers(), "www-authenticate")));
        match answer {
            Ok((status, challenge))
                if status == expected
                    && (status != StatusCode::UNAUTHORIZED
                        || challenge
                            .as_deref()
                            .is_some_and(|c| c.starts_with("Bearer realm="))) =>
            {
                return Ok(());
            }
            Ok((status, challenge)) if Instant::now() > deadline => {
                bail!("{name} answers GET /v2/ with {status} (challenge {challenge:?})")
            }
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("{name} GET /v2/")));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// The `wharf` binary under test, serving on its own data directory or a config directory.
pub struct Wharf {
    daemon: Daemon,
    /// `--data-dir DIR` or `--config-dir DIR`: where this Wharf's state is.
    location: [String; 2],
    /// `127.0.0.1:PORT`, as image references spell a registry.
    pub host: String,
    /// `127.0.0.1:PORT` of the HTTPS listener, when [`WharfOptions::https`] asked for one.
    pub tls_host: Option<String>,
}

/// How to start a Wharf other than on the embedded default.
#[derive(Clone, Debug, Default)]
pub struct WharfOptions {
    /// A directory holding `config.yaml`.
    pub config_dir: Option<PathBuf>,
    /// Extra environment, e.g. `QUAY_DISTRIBUTED_STORAGE_PREFERENCE`.
    pub env: Vec<(String, String)>,
    /// Extra `serve` arguments, e.g. `--no-workers`.
    pub args: Vec<String>,
    /// Distinguishes the logs of several Wharfs in one directory.
    pub name: String,
    /// Also serve HTTPS (`--listen-tls` on a second free port); the config directory must
    /// hold `ssl.cert` and `ssl.key`.
    pub https: bool,
}

/// A Wharf user: what clients are given to log in with.
pub struct User {
    pub name: String,
    pub password: String,
}

impl User {
    /// `name:password`, as skopeo's and podman's `--creds` take it.
    pub fn creds(&self) -> String {
        format!("{}:{}", self.name, self.password)
    }
}

impl Wharf {
    pub async fn start(dir: &Path) -> anyhow::Result<Wharf> {
        Self::start_with(dir, WharfOptions::default()).await
    }

    pub async fn start_with(dir: &Path, options: WharfOptions) -> anyhow::Result<Wharf> {
        let location = match &options.config_dir {
            Some(config) => [
                "--config-dir".to_string(),
                crate::tools::path(config).to_string(),
            ],
            None => [
                "--data-dir".to_string(),
                crate::tools::path(&dir.join("wharf-data")).to_string(),
            ],
        };
        let tls_port = std::cell::Cell::new(None);
        let command = |port: u16| {
            let mut c = wharf_command();
            c.arg("serve")
                .args(&location)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(&options.args)
                // The readiness line is logged at info: a caller's WHARF_LOG must not hide it.
                .env("WHARF_LOG", "info");
            c.envs(options.env.iter().map(|(k, v)| (k, v)));
            if options.https {
                // A lost race for this port ends in "cannot listen on" too, and a retry.
                let port = free_port()?;
                c.arg("--listen-tls").arg(format!("127.0.0.1:{port}"));
                tls_port.set(Some(port));
            }
            Ok(c)
        };
        let log = format!("wharf{}.log", options.name);
        let (daemon, port) = start_on_free_port(
            "wharf",
            &dir.join(log),
            command,
            "wharf is serving the registry",
            &["cannot listen on"],
        )
        .await?;
        let host = format!("127.0.0.1:{port}");
        wait_for_v2("wharf", &host, StatusCode::UNAUTHORIZED).await?;
        Ok(Wharf {
            daemon,
            location,
            host,
            tls_host: tls_port.get().map(|port| format!("127.0.0.1:{port}")),
        })
    }

    /// The process id of the server, e.g. to signal it.
    pub fn pid(&self) -> u32 {
        self.daemon.child.id()
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Starts `wharf worker NAMES…` on the same data or config directory, with `env`.
    pub fn worker(
        &self,
        dir: &Path,
        names: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Daemon> {
        let mut c = wharf_command();
        c.arg("worker").args(&self.location).args(names);
        c.env("WHARF_LOG", "info");
        c.envs(env.iter().copied());
        let log = dir.join(format!("worker-{}.log", names.join("-")));
        Daemon::spawn("wharf worker", c, &log, Duration::from_secs(10))
    }

    /// Runs `wharf ARGS… <location>` to completion and returns its standard output.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(self.location.iter().map(String::as_str));
        Ok(wharf_tool().run(all).await?.stdout)
    }

    /// Creates user `name` (password `<name>-e2e-password`) with `wharf admin create-user`
    /// on the running server's data directory.
    pub async fn create_user(&self, name: &str) -> anyhow::Result<User> {
        let password = format!("{name}-e2e-password");
        let email = format!("{name}@example.com");
        let out = wharf_tool()
            .run_with_stdin(
                [
                    "admin",
                    "create-user",
                    name,
                    "--email",
                    &email,
                    &self.location[0],
                    &self.location[1],
                ],
                Stdin::Bytes(format!("{password}\n").as_bytes()),
            )
            .await?;
        anyhow::ensure!(
            out.stdout.trim() == format!("created user {name}"),
            "wharf admin create-user printed {:?}",
            out.stdout
        );
        Ok(User {
            name: name.to_string(),
            password,
        })
    }

    /// HTTP access to what Wharf serves, as `user`.
    pub fn registry(&self, user: &User) -> Registry {
        Registry::with_credentials(&self.host, &user.name, &user.password)
    }

    /// HTTP access without credentials.
    pub fn anonymous(&self) -> Registry {
        Registry::new(&self.host)
    }

    /// Fails if Wharf logged an error or a panic: every request in these tests is one a
    /// correct registry serves without either.
    pub fn assert_clean_log(&self) -> anyhow::Result<()> {
        let log = self.daemon.log();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains("panicked"))
            .collect();
        anyhow::ensure!(bad.is_empty(), "wharf logged errors:\n{}", bad.join("\n"));
        Ok(())
    }
}

/// The `wharf` binary with an environment that only the test decides.
fn wharf_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wharf"));
    c.env("NO_COLOR", "1")
        .env_remove("WHARF_CONFIG_DIR")
        .env_remove("WHARF_DATA_DIR")
        .env_remove("WHARF_LISTEN")
        .env_remove("WHARF_LISTEN_TLS")
        .env_remove("QUAY_DISTRIBUTED_STORAGE_PREFERENCE");
    c
}

/// The `wharf` binary as a one-shot tool (admin commands).
fn wharf_tool() -> Tool {
    Tool::at(env!("CARGO_BIN_EXE_wharf").into())
        .with_env("WHARF_LOG", "warn")
        .with_env("NO_COLOR", "1")
        .without_env("WHARF_CONFIG_DIR")
        .without_env("WHARF_DATA_DIR")
        .without_env("QUAY_DISTRIBUTED_STORAGE_PREFERENCE")
}

/// CNCF Distribution 2.8 (Debian's `docker-registry`) on a filesystem root in `dir`.
pub struct Distribution {
    /// Held so that the server stops when the handle drops.
    _daemon: Daemon,
    pub host: String,
}

impl Distribution {
    pub async fn start(dir: &Path) -> anyhow::Result<Distribution> {
        let binary = require("docker-registry", "docker-registry")?;
        let root = dir.join("distribution-data");
        let config = dir.join("distribution.yml");
        let command = |port: u16| {
            // Info level, because "listening on" is the readiness line.
            let yaml = format!(
                "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {}
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:{port}
",
                root.display()
            );
            std::fs::write(&config, yaml)?;
            let mut c = Command::new(&binary);
            c.arg("serve").arg(&config);
            Ok(c)
        };
        let (daemon, port) = start_on_free_port(
            "distribution",
            &dir.join("distribution.log"),
            command,
            "listening on",
            &["address already in use"],
        )
        .await?;
        let host = format!("127.0.0.1:{port}");
        wait_for_v2("distribution", &host, StatusCode::OK).await?;
        Ok(Distribution {
            _daemon: daemon,
            host,
        })
    }
}

/// A private dockerd: its own socket, data root, exec root and empty config file; vfs storage
/// and no network set-up, so it needs neither iptables nor a bridge. 127.0.0.0/8 is an
/// insecure registry by default, so it pushes to Wharf over plain HTTP.
pub struct Dockerd {
    /// Held so that the daemon stops when the handle drops.
    _daemon: Daemon,
    /// The docker CLI talking to this daemon, with its own client config directory.
    pub docker: Tool,
}

impl Dockerd {
    pub async fn start(dir: &Path) -> anyhow::Result<Dockerd> {
        let dockerd = require("dockerd", "docker.io")?;
        let docker = Tool::new("docker", "docker.io")?;
        // Short paths: the daemon's unix sockets must fit in 108 bytes.
        let root = dir.join("dk");
        for sub in ["data", "exec", "client"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        let socket = root.join("docker.sock");
        let config = root.join("daemon.json");
        std::fs::write(&config, "{}")?;
        let mut command = Command::new(dockerd);
        command
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .arg("--config-file")
            .arg(&config)
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ]);
        let mut daemon = Daemon::spawn(
            "dockerd",
            command,
            &dir.join("dockerd.log"),
            Duration::from_secs(20),
        )?;
        let docker = docker
            .with_env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .with_env("DOCKER_CONFIG", root.join("client"));
        let deadline = Instant::now() + DOCKERD_START;
        loop {
            if let Some(status) = daemon.exited() {
                bail!(
                    "dockerd exited with {status} during start-up:\n{}",
                    daemon.log()
                );
            }
            match docker
                .run(["version", "--format", "{{.Server.Version}}"])
                .await
            {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!(
                        "dockerd did not answer within {DOCKERD_START:?}; its log:\n{}",
                        daemon.log()
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        Ok(Dockerd {
            _daemon: daemon,
            docker,
        })
    }
}
