//! The permission matrix, end to end: every kind of caller × public and private repositories
//! × registry pull, push and `*` (through `/v2/auth`) and API read, write and admin, with the
//! expected outcome written out per cell. Runs on SQLite and PostgreSQL.

use reqwest::Method;
use serde_json::{Value, json};

use crate::api_orgs::{call, oauth_token};
use crate::app_test;
use crate::harness::{TESTER_PASSWORD, TestApp, create_user};

/// How a caller presents itself.
enum Credential {
    Anonymous,
    Password(&'static str),
    Robot(String),
    OAuth(String),
}

/// Outcomes per column: pull, push, `*`, API read, API write, API admin.
type Row = [bool; 6];

async fn outcomes(app: &TestApp, credential: &Credential, repo: &str) -> Row {
    let basic: Option<(String, String)> = match credential {
        Credential::Anonymous | Credential::OAuth(_) => None,
        Credential::Password(user) => Some((user.to_string(), TESTER_PASSWORD.to_string())),
        Credential::Robot(token) => Some(("acme+bot".to_string(), token.clone())),
    };
    let registry_credentials = match credential {
        Credential::OAuth(token) => Some(("$oauthtoken".to_string(), token.clone())),
        _ => basic.clone(),
    };
    let mut row = [false; 6];
    for (i, action) in ["pull", "push", "*"].iter().enumerate() {
        let scope = format!("repository:{repo}:{action}");
        let creds = registry_credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()));
        let r = app.token_response(creds, &[&scope]).await;
        assert_eq!(r.status(), 200, "{scope}");
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &data_encoding::BASE64URL_NOPAD
                .decode(payload.as_bytes())
                .unwrap(),
        )
        .unwrap();
        row[i] = claims["access"][0]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == action);
    }
    let api = [
        (Method::GET, format!("/repository/{repo}"), None),
        (
            Method::PUT,
            format!("/repository/{repo}"),
            Some(json!({"description": "changed"})),
        ),
        (
            Method::GET,
            format!("/repository/{repo}/permissions/user/"),
            None,
        ),
    ];
    for (i, (method, path, body)) in api.into_iter().enumerate() {
        let mut request = app
            .client
            .request(method, format!("{}/api/v1{path}", app.base));
        match (credential, &basic) {
            (Credential::OAuth(token), _) => request = request.bearer_auth(token),
            (_, Some((user, password))) => request = request.basic_auth(user, Some(password)),
            _ => {}
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let status = request.send().await.unwrap().status();
        assert!(
            status.is_success() || [401, 403].contains(&status.as_u16()),
            "{path}: {status}"
        );
        row[3 + i] = status.is_success();
    }
    row
}

app_test!(permission_matrix, |app: TestApp| async move {
    // acme, administered by tester; one public and one private repository.
    call(
        &app,
        Some("tester"),
        Method::POST,
        "/organization/",
        Some(json!({"name": "acme"})),
    )
    .await;
    app.push_image("acme/public", "v1", &[b"public"]).await;
    app.push_image("acme/private", "v1", &[b"private"]).await;
    let (status, _) = call(
        &app,
        Some("tester"),
        Method::POST,
        "/repository/acme/public/changevisibility",
        Some(json!({"visibility": "public"})),
    )
    .await;
    assert_eq!(status, 200);
    // outsider: no relation. member: in a member-role team with read on both repositories.
    create_user(&app.db.db, "outsider").await;
    create_user(&app.db.db, "member").await;
    call(
        &app,
        Some("tester"),
        Method::PUT,
        "/organization/acme/team/readers",
        Some(json!({"role": "member"})),
    )
    .await;
    call(
        &app,
        Some("tester"),
        Method::PUT,
        "/organization/acme/team/readers/members/member",
        None,
    )
    .await;
    // bot: an organization robot with write on both repositories.
    let (_, robot) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/organization/acme/robots/bot",
        None,
    )
    .await;
    let robot_token = robot["token"].as_str().unwrap().to_string();
    for repo in ["public", "private"] {
        let (status, _) = call(
            &app,
            Some("tester"),
            Method::PUT,
            &format!("/repository/acme/{repo}/permissions/team/readers"),
            Some(json!({"role": "read"})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = call(
            &app,
            Some("tester"),
            Method::PUT,
            &format!("/repository/acme/{repo}/permissions/user/acme+bot"),
            Some(json!({"role": "write"})),
        )
        .await;
        assert_eq!(status, 200);
    }

    let mut callers: Vec<(&str, Credential)> = vec![
        ("anonymous", Credential::Anonymous),
        ("outsider", Credential::Password("outsider")),
        ("robot with write", Credential::Robot(robot_token)),
        ("team member with read", Credential::Password("member")),
        ("org admin", Credential::Password("tester")),
    ];
    for scope in [
        "repo:read",
        "repo:write",
        "repo:admin",
        "repo:create",
        "user:read",
    ] {
        let token = oauth_token(&app, "acme", scope).await;
        callers.push((scope, Credential::OAuth(token)));
    }

    const T: bool = true;
    const F: bool = false;
    //                                pull push  *   read write admin
    let expected: Vec<(&str, Row, Row)> = vec![
        ("anonymous", [T, F, F, T, F, F], [F, F, F, F, F, F]),
        ("outsider", [T, F, F, T, F, F], [F, F, F, F, F, F]),
        ("robot with write", [T, T, F, T, T, F], [T, T, F, T, T, F]),
        (
            "team member with read",
            [T, F, F, T, F, F],
            [T, F, F, T, F, F],
        ),
        ("org admin", [T, T, T, T, T, T], [T, T, T, T, T, T]),
        ("repo:read", [T, F, F, T, F, F], [T, F, F, T, F, F]),
        ("repo:write", [T, T, F, T, T, F], [T, T, F, T, T, F]),
        ("repo:admin", [T, T, T, T, T, T], [T, T, T, T, T, T]),
        ("repo:create", [T, F, F, T, F, F], [F, F, F, F, F, F]),
        ("user:read", [T, F, F, T, F, F], [F, F, F, F, F, F]),
    ];
    let mut failures = Vec::new();
    for ((name, credential), (expected_name, public, private)) in callers.iter().zip(&expected) {
        assert_eq!(name, expected_name);
        for (repo, want) in [("acme/public", public), ("acme/private", private)] {
            let got = outcomes(&app, credential, repo).await;
            if got != *want {
                failures.push(format!("{name} on {repo}: got {got:?}, want {want:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
});

#[tokio::test]
async fn superusers_with_and_without_full_access() {
    for full_access in [false, true] {
        let settings = auth::AuthSettings {
            superusers: ["root".to_string()].into_iter().collect(),
            policy: auth::permissions::Policy {
                superusers_full_access: full_access,
                ..Default::default()
            },
            ..Default::default()
        };
        let app = TestApp::with_auth(db::testing::Engine::Sqlite, settings).await;
        app.push_image("tester/private", "v1", &[b"x"]).await;
        create_user(&app.db.db, "root").await;
        let got = outcomes(&app, &Credential::Password("root"), "tester/private").await;
        let want = if full_access {
            [true, true, true, true, true, true]
        } else {
            [false; 6]
        };
        assert_eq!(got, want, "full access {full_access}");
    }
}
