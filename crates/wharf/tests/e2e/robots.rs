//! An organization set up through `/api/v1` the way the Quay Bridge Operator does it (an
//! organization, a robot, a default permission giving the robot write), then real clients
//! acting as that robot: `docker login` and push with the robot's token, skopeo pulling with
//! it, and an anonymous pull once the repository is made public.

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use crate::digest::sha256;
use crate::images::{self, File};
use crate::processes::{Dockerd, User, Wharf};
use crate::tools::{Stdin, Tool, bounded};

#[tokio::test]
async fn a_robot_pushes_with_docker_and_anyone_pulls_a_public_repository() -> anyhow::Result<()> {
    bounded(robot_flow()).await
}

/// Calls `/api/v1{path}` as `user` and returns the status and JSON body.
async fn api(
    wharf: &Wharf,
    user: &User,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{}/api/v1{path}", wharf.host))
        .basic_auth(&user.name, Some(&user.password));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn robot_flow() -> anyhow::Result<()> {
    use reqwest::Method;
    let skopeo = Tool::new("skopeo", "skopeo")?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let wharf = Wharf::start(work).await?;
    let alice = wharf.create_user("alice").await?;

    let (status, body) = api(
        &wharf,
        &alice,
        Method::POST,
        "/organization/",
        Some(json!({"name": "acme"})),
    )
    .await?;
    ensure!(status == 201, "create organization: {status} {body}");
    let (status, robot) = api(
        &wharf,
        &alice,
        Method::PUT,
        "/organization/acme/robots/ci",
        None,
    )
    .await?;
    ensure!(status == 201, "create robot: {status} {robot}");
    let robot_name = robot["name"].as_str().context("robot name")?.to_string();
    let robot_token = robot["token"].as_str().context("robot token")?.to_string();
    let (status, body) = api(
        &wharf,
        &alice,
        Method::POST,
        "/organization/acme/prototypes",
        Some(json!({"role": "write", "delegate": {"kind": "user", "name": robot_name}})),
    )
    .await?;
    ensure!(status == 200, "create prototype: {status} {body}");
    let (status, body) = api(
        &wharf,
        &alice,
        Method::POST,
        "/repository",
        Some(json!({"namespace": "acme", "repository": "app", "visibility": "private", "description": "", "repo_kind": "image"})),
    )
    .await?;
    ensure!(status == 201, "create repository: {status} {body}");

    // The robot logs in with docker and pushes; the organization's default permission let it.
    let image = images::build(
        work,
        "app",
        "v1",
        vec![vec![File::text("app/hello", "built by the robot\n")]],
    )
    .await?;
    let dockerd = Dockerd::start(work).await?;
    let docker = &dockerd.docker;
    docker
        .run_with_stdin(
            [
                "login",
                "--username",
                &robot_name,
                "--password-stdin",
                &wharf.host,
            ],
            Stdin::Bytes(robot_token.as_bytes()),
        )
        .await?;
    let archive = work.join("image.tar");
    skopeo
        .run([
            "copy",
            &image.reference("v1"),
            &format!(
                "docker-archive:{}:local/robot:1",
                crate::tools::path(&archive)
            ),
        ])
        .await?;
    docker
        .run(["load", "--input", crate::tools::path(&archive)])
        .await?;
    let remote = format!("{}/acme/app:v1", wharf.host);
    docker.run(["tag", "local/robot:1", &remote]).await?;
    docker.run(["push", &remote]).await?;

    // The robot reads it back with skopeo; it may not push outside its grant.
    let robot_creds = format!("{robot_name}:{robot_token}");
    let docker_ref = format!("docker://{remote}");
    let raw = skopeo
        .run([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &robot_creds,
            &docker_ref,
        ])
        .await?
        .stdout;
    let pushed = sha256(raw.as_bytes());
    let said = skopeo
        .run_failing(
            [
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                &robot_creds,
                &image.reference("v1"),
                &format!("docker://{}/alice/robot-was-here:v1", wharf.host),
            ],
            Stdin::Null,
        )
        .await?;
    ensure!(
        said.to_lowercase().contains("unauthorized") || said.to_lowercase().contains("denied"),
        "a push outside the robot's grant failed for another reason:\n{said}"
    );

    // Private: anonymous pulls fail; public: they work and give the same manifest.
    let said = skopeo
        .run_failing(
            ["inspect", "--raw", "--tls-verify=false", &docker_ref],
            Stdin::Null,
        )
        .await?;
    ensure!(
        said.to_lowercase().contains("unauthorized") || said.contains("authentication required"),
        "{said}"
    );
    let (status, body) = api(
        &wharf,
        &alice,
        Method::POST,
        "/repository/acme/app/changevisibility",
        Some(json!({"visibility": "public"})),
    )
    .await?;
    ensure!(status == 200, "change visibility: {status} {body}");
    let anonymous = skopeo
        .run(["inspect", "--raw", "--tls-verify=false", &docker_ref])
        .await?
        .stdout;
    assert_eq!(sha256(anonymous.as_bytes()), pushed);
    wharf.assert_clean_log()
}
