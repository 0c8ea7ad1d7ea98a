//! `/api/v1` for users, organizations, teams, robots, prototypes and OAuth applications, over
//! HTTP, with Quay's status codes and JSON shapes — starting with the calls the Quay Bridge
//! Operator makes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app_test;
use crate::harness::{As, TESTER_PASSWORD, TestApp, api, create_user};

/// An API call as `user` (Basic credentials) or anonymously.
pub async fn call(
    app: &TestApp,
    user: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api(
        app,
        user.map_or(As::Anonymous, As::User),
        method,
        path,
        body,
    )
    .await
}

/// An API call with an OAuth bearer token.
pub async fn call_bearer(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api(app, As::Bearer(token), method, path, body).await
}

/// Creates an OAuth application in `org` and grants `tester` a token with `scope` through
/// Quay's form post, as a script would.
pub async fn oauth_token(app: &TestApp, org: &str, scope: &str) -> String {
    let (status, created) = call(
        app,
        Some("tester"),
        Method::POST,
        &format!("/organization/{org}/applications"),
        Some(json!({"name": "automation"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["client_secret"].as_str().unwrap().len(), 40);
    let client_id = created["client_id"].as_str().unwrap();
    let redirect = format!("{}/oauth/localapp", app.base);
    let r = app
        .client
        .post(format!("{}/oauth/authorizeapp", app.base))
        .basic_auth("tester", Some(TESTER_PASSWORD))
        .header("x-requested-with", "XMLHttpRequest")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "client_id={client_id}&redirect_uri={}&scope={}",
            form_encode(&redirect),
            form_encode(scope)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&redirect), "{location}");
    let fragment = location.split_once('#').unwrap().1;
    assert!(fragment.contains("token_type=Bearer"));
    fragment
        .split('&')
        .find_map(|kv| kv.strip_prefix("access_token="))
        .unwrap()
        .to_string()
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b if b.is_ascii_alphanumeric() || b"-._".contains(&b) => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

app_test!(bridge_operator_calls, |app: TestApp| async move {
    // The operator's setup: an organization and an application token with every scope.
    let (status, body) = call(
        &app,
        Some("tester"),
        Method::POST,
        "/organization/",
        Some(json!({"name": "openshift-admin", "email": "admin@example.com"})),
    )
    .await;
    assert_eq!((status, body), (StatusCode::CREATED, json!("Created")));
    let token = oauth_token(
        &app,
        "openshift-admin",
        "org:admin repo:admin repo:create repo:read repo:write user:admin user:read",
    )
    .await;
    let (status, user) = call_bearer(&app, &token, Method::GET, "/user", None).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["username"], "tester");
    assert_eq!(user["organizations"][0]["name"], "openshift-admin");

    // Namespace controller: missing org → 404 → create → 201.
    let org = "openshift-myproject";
    let (status, _) = call_bearer(
        &app,
        &token,
        Method::GET,
        &format!("/organization/{org}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call_bearer(
        &app,
        &token,
        Method::POST,
        "/organization/",
        Some(json!({"name": org, "email": format!("{org}@redhat.com")})),
    )
    .await;
    assert_eq!((status, body), (StatusCode::CREATED, json!("Created")));
    let (status, view) = call_bearer(
        &app,
        &token,
        Method::GET,
        &format!("/organization/{org}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["name"], org);
    assert_eq!(view["is_admin"], true);
    assert_eq!(view["ordered_teams"], json!(["owners"]));

    // Robots: a missing one is a 400, creating is a 201 with name and token.
    let robot_path = format!("/organization/{org}/robots/builder");
    let (status, body) = call_bearer(&app, &token, Method::GET, &robot_path, None).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"message": "Could not find robot with specified username"})
    );
    let (status, robot) = call_bearer(&app, &token, Method::PUT, &robot_path, None).await;
    assert_eq!(status, 201, "{robot}");
    assert_eq!(robot["name"], format!("{org}+builder"));
    let robot_token = robot["token"].as_str().unwrap().to_string();
    assert_eq!(robot_token.len(), 64);
    assert!(
        robot_token
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(robot["unstructured_metadata"], json!({}));
    let (status, again) = call_bearer(&app, &token, Method::GET, &robot_path, None).await;
    assert_eq!(status, 200);
    assert_eq!(again["token"], robot_token.as_str());
    let (status, body) = call_bearer(&app, &token, Method::PUT, &robot_path, None).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        format!("Existing robot with name: {org}+builder")
    );

    // Default permissions: the robot gets write on every new repository.
    let (status, list) = call_bearer(
        &app,
        &token,
        Method::GET,
        &format!("/organization/{org}/prototypes"),
        None,
    )
    .await;
    assert_eq!((status, list), (StatusCode::OK, json!({"prototypes": []})));
    let (status, prototype) = call_bearer(
        &app,
        &token,
        Method::POST,
        &format!("/organization/{org}/prototypes"),
        Some(json!({
            "role": "write",
            "delegate": {"kind": "user", "name": format!("{org}+builder"), "is_robot": true, "is_org_member": true},
        })),
    )
    .await;
    assert_eq!(status, 200, "{prototype}");
    assert_eq!(prototype["role"], "write");
    assert_eq!(prototype["delegate"]["name"], format!("{org}+builder"));
    assert_eq!(prototype["delegate"]["is_robot"], true);
    assert_eq!(prototype["activating_user"], Value::Null);
    let (_, list) = call_bearer(
        &app,
        &token,
        Method::GET,
        &format!("/organization/{org}/prototypes"),
        None,
    )
    .await;
    assert_eq!(list["prototypes"][0]["id"], prototype["id"]);

    // The robot can push to a repository created by push in the organization? No: robots
    // create only through creator teams. The operator creates repositories by API; here the
    // prototype applies to a repository tester creates by push, and the robot pushes after.
    app.push_image(&format!("{org}/app"), "v1", &[b"layer"])
        .await;
    let scope = format!("repository:{org}/app:pull,push");
    let robot_token_jwt = app
        .fetch_token(Some((&format!("{org}+builder"), &robot_token)), &scope)
        .await;
    let payload = robot_token_jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap(),
    )
    .unwrap();
    let mut actions: Vec<String> = claims["access"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    actions.sort();
    assert_eq!(actions, ["pull", "push"]);

    // Regenerating changes the token; deleting makes it 400 again.
    let (status, regenerated) = call_bearer(
        &app,
        &token,
        Method::POST,
        &format!("{robot_path}/regenerate"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(regenerated["token"], robot_token.as_str());
    let (status, permissions) = call_bearer(
        &app,
        &token,
        Method::GET,
        &format!("{robot_path}/permissions"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        permissions["permissions"],
        json!([{"repository": {"name": "app", "is_public": false}, "role": "write"}])
    );
    let (status, _) = call_bearer(&app, &token, Method::DELETE, &robot_path, None).await;
    assert_eq!(status, 204);
    let (status, _) = call_bearer(&app, &token, Method::GET, &robot_path, None).await;
    assert_eq!(status, 400);

    // Deleting the organization frees the name at once.
    let (status, _) = call_bearer(
        &app,
        &token,
        Method::DELETE,
        &format!("/organization/{org}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call_bearer(
        &app,
        &token,
        Method::GET,
        &format!("/organization/{org}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
});

app_test!(organization_refusals, |app: TestApp| async move {
    let (status, _) = call(
        &app,
        Some("tester"),
        Method::POST,
        "/organization/",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = call(
        &app,
        Some("tester"),
        Method::POST,
        "/organization/",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error_message"],
        "A user or organization with this name already exists"
    );
    assert_eq!(body["error_type"], "invalid_request");
    let (status, _) = call(
        &app,
        Some("tester"),
        Method::POST,
        "/organization/",
        Some(json!({"name": "tester"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = call(
        &app,
        Some("tester"),
        Method::POST,
        "/organization/",
        Some(json!({"name": "Bad Name"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Namespace must match")
    );
    // Anonymous: 401; another user: 403; both the same for a missing organization.
    let (status, body) = call(
        &app,
        None,
        Method::POST,
        "/organization/",
        Some(json!({"name": "x1"})),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error_type"], "invalid_token");
    create_user(&app.db.db, "mallory").await;
    for org in ["acme", "absent"] {
        let (status, body) = call(
            &app,
            Some("mallory"),
            Method::GET,
            &format!("/organization/{org}/robots/x"),
            None,
        )
        .await;
        assert_eq!(status, 403, "{org}");
        assert_eq!(body["error_type"], "insufficient_scope");
        let (status, _) = call(
            &app,
            None,
            Method::GET,
            &format!("/organization/{org}/prototypes"),
            None,
        )
        .await;
        assert_eq!(status, 401, "{org}");
    }
    // The public view hides the e-mail and teams from non-members.
    let (status, view) = call(
        &app,
        Some("mallory"),
        Method::GET,
        "/organization/acme",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["is_member"], false);
    assert!(view.get("teams").is_none());
    // A token without org:admin cannot manage robots.
    let token = oauth_token(&app, "acme", "repo:read user:read").await;
    let (status, _) = call_bearer(
        &app,
        &token,
        Method::PUT,
        "/organization/acme/robots/bot",
        None,
    )
    .await;
    assert_eq!(status, 403);
    // An unusable bearer token is anonymous.
    let (status, _) = call_bearer(&app, "x".repeat(40).as_str(), Method::GET, "/user/", None).await;
    assert_eq!(status, 401);
});

app_test!(teams_and_members, |app: TestApp| async move {
    call(
        &app,
        Some("tester"),
        Method::POST,
        "/organization/",
        Some(json!({"name": "acme"})),
    )
    .await;
    create_user(&app.db.db, "dev").await;
    let (status, team) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/organization/acme/team/builders",
        Some(json!({"role": "creator", "description": "CI"})),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["new_team"], true);
    assert_eq!(team["role"], "creator");
    let (status, body) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/organization/acme/team/builders",
        Some(json!({"role": "boss"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, member) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/organization/acme/team/builders/members/dev",
        None,
    )
    .await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["name"], "dev");
    let (status, body) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/organization/acme/team/builders/members/dev",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "User dev is already a member of team builders"
    );
    let (status, body) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/organization/acme/team/builders/members/ghost",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error_message"], "Unknown user");
    let (_, members) = call(
        &app,
        Some("tester"),
        Method::GET,
        "/organization/acme/team/builders/members",
        None,
    )
    .await;
    assert_eq!(members["members"][0]["name"], "dev");
    let (_, org_members) = call(
        &app,
        Some("tester"),
        Method::GET,
        "/organization/acme/members",
        None,
    )
    .await;
    let names: Vec<&str> = org_members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dev", "tester"]);

    // A creator-team member may push new repositories into the organization.
    let token = app
        .fetch_token(
            Some(("dev", TESTER_PASSWORD)),
            "repository:acme/tool:pull,push",
        )
        .await;
    let claims: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(token.split('.').nth(1).unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["access"][0]["actions"].as_array().unwrap().len(), 2);

    let (status, _) = call(
        &app,
        Some("tester"),
        Method::DELETE,
        "/organization/acme/team/builders/members/dev",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &app,
        Some("tester"),
        Method::DELETE,
        "/organization/acme/team/nope",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Team 'nope' is not a team in org 'acme'");
    let (status, _) = call(
        &app,
        Some("tester"),
        Method::DELETE,
        "/organization/acme/team/builders",
        None,
    )
    .await;
    assert_eq!(status, 204);
});

app_test!(user_robots_and_user_view, |app: TestApp| async move {
    let (status, robot) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/user/robots/deployer",
        Some(json!({"description": "deploys"})),
    )
    .await;
    assert_eq!(status, 201, "{robot}");
    assert_eq!(robot["name"], "tester+deployer");
    assert_eq!(robot["description"], "deploys");
    let (status, list) = call(&app, Some("tester"), Method::GET, "/user/robots", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["robots"][0]["name"], "tester+deployer");
    assert!(list["robots"][0]["token"].is_string());
    let (_, list) = call(
        &app,
        Some("tester"),
        Method::GET,
        "/user/robots?token=false",
        None,
    )
    .await;
    assert!(list["robots"][0].get("token").is_none());
    let (status, body) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/user/robots/Bad.Name!",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Robots cannot manage robots, nor see the user endpoint as a user.
    let robot_password = robot["token"].as_str().unwrap();
    let r = app
        .client
        .get(format!("{}/api/v1/user/robots", app.base))
        .basic_auth("tester+deployer", Some(robot_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let (status, user) = call(&app, Some("tester"), Method::GET, "/user/", None).await;
    assert_eq!(status, 200);
    assert_eq!(user["username"], "tester");
    assert_eq!(user["anonymous"], false);
    assert_eq!(user["email"], "tester@example.com");
    assert_eq!(user["avatar"]["kind"], "user");
    let (status, _) = call(&app, None, Method::GET, "/user/", None).await;
    assert_eq!(status, 401);
    let (status, user) = call(
        &app,
        Some("tester"),
        Method::PUT,
        "/user/",
        Some(json!({"given_name": "Tess", "company": "Acme"})),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["given_name"], "Tess");
    assert_eq!(user["company"], "Acme");
    assert_eq!(user["prompts"], json!([]));
    let (status, public) = call(&app, None, Method::GET, "/users/tester", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        public,
        json!({"anonymous": false, "username": "tester", "avatar": public["avatar"]})
    );
    let (status, _) = call(&app, None, Method::GET, "/users/nobody", None).await;
    assert_eq!(status, 404);
});

app_test!(users_sign_up, |app: TestApp| async move {
    let (status, user) = call(
        &app,
        None,
        Method::POST,
        "/user/",
        Some(json!({"username": "newbie", "password": "long-enough", "email": "n@example.com"})),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["username"], "newbie");
    let r = app
        .token_response(
            Some(("newbie", "long-enough")),
            &["repository:newbie/x:push"],
        )
        .await;
    assert_eq!(r.status(), 200);
    for (body, message) in [
        (
            json!({"username": "newbie", "password": "long-enough", "email": "n@example.com"}),
            "The username already exists",
        ),
        (
            json!({"username": "shorty", "password": "short", "email": "s@example.com"}),
            "at least 8",
        ),
        (
            json!({"username": "nomail", "password": "long-enough"}),
            "Email address is required",
        ),
    ] {
        let (status, error) = call(&app, None, Method::POST, "/user/", Some(body)).await;
        assert_eq!(status, 400);
        assert!(
            error["error_message"].as_str().unwrap().contains(message),
            "{error}"
        );
    }
});

app_test!(discovery_documents, |app: TestApp| async move {
    let r = app
        .client
        .get(format!("{}/.well-known/app-capabilities", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["appName"], "io.quay");
    assert_eq!(
        body["capabilities"]["io.quay.manifest-security"]["rest-api-template"],
        format!(
            "{}/api/v1/repository/{{namespace}}/{{reponame}}/manifest/{{digest}}/security",
            app.base
        )
    );
    let (status, doc) = call(&app, None, Method::GET, "/discovery", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["swagger"], "2.0");
    assert!(doc["securityDefinitions"]["oauth2_implicit"]["scopes"]["repo:read"].is_string());
});

/// `POST /api/v1/user/initialize` on an empty database.
#[tokio::test]
async fn user_initialize_creates_the_first_user_with_a_token() {
    for engine in [db::testing::Engine::Sqlite, db::testing::Engine::Postgres] {
        let app = TestApp::empty(engine).await;
        let r = app
            .client
            .post(format!("{}/api/v1/user/initialize", app.base))
            .json(&json!({"username": "quayadmin", "password": "password1", "email": "a@example.com", "access_token": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["username"], "quayadmin");
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(token.len(), 40);
        let (status, user) = call_bearer(&app, token, Method::GET, "/user/", None).await;
        assert_eq!(status, 200);
        assert_eq!(user["username"], "quayadmin");
        // The token creates organizations straight away, as the installer scripts expect.
        let (status, _) = call_bearer(
            &app,
            token,
            Method::POST,
            "/organization/",
            Some(json!({"name": "team"})),
        )
        .await;
        assert_eq!(status, 201);
        // Only once.
        let r = app
            .client
            .post(format!("{}/api/v1/user/initialize", app.base))
            .json(&json!({"username": "second", "password": "password2"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["message"],
            "Cannot initialize user in a non-empty database"
        );
    }
}

app_test!(
    time_machine_windows_come_from_the_options,
    |app: TestApp| async move {
        let (status, _) = call(
            &app,
            Some("tester"),
            Method::POST,
            "/organization/",
            Some(json!({"name": "acme"})),
        )
        .await;
        assert_eq!(status, 201);
        let (_, org) = call(
            &app,
            Some("tester"),
            Method::GET,
            "/organization/acme",
            None,
        )
        .await;
        assert_eq!(org["tag_expiration_s"], 1_209_600, "DEFAULT_TAG_EXPIRATION");
        // One of TAG_EXPIRATION_OPTIONS (default 0s, 1d, 1w, 2w, 4w) is taken...
        let (status, org) = call(
            &app,
            Some("tester"),
            Method::PUT,
            "/organization/acme",
            Some(json!({"tag_expiration_s": 86_400})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(org["tag_expiration_s"], 86_400);
        // ...anything else is refused and changes nothing.
        for refused in [json!(3_600), json!(-1)] {
            let (status, body) = call(
                &app,
                Some("tester"),
                Method::PUT,
                "/organization/acme",
                Some(json!({ "tag_expiration_s": refused })),
            )
            .await;
            assert_eq!(status, 400, "{refused}");
            assert_eq!(body["message"], "Invalid tag expiration option");
        }
        let (_, org) = call(
            &app,
            Some("tester"),
            Method::GET,
            "/organization/acme",
            None,
        )
        .await;
        assert_eq!(org["tag_expiration_s"], 86_400);
        // A user's own window, through PUT /user/.
        let (status, user) = call(
            &app,
            Some("tester"),
            Method::PUT,
            "/user/",
            Some(json!({"tag_expiration_s": 0})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(user["tag_expiration_s"], 0);
        let (status, _) = call(
            &app,
            Some("tester"),
            Method::PUT,
            "/user/",
            Some(json!({"tag_expiration_s": 5})),
        )
        .await;
        assert_eq!(status, 400);
    }
);
