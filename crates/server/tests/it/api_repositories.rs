//! `/api/v1/repository…` over HTTP, with Quay's status codes and JSON shapes: here the Quay
//! Bridge Operator's repository calls, creation, visibility, listings and the refusals; the
//! submodules cover settings and deletion, permissions, and tags and manifests.

mod permissions;
mod settings;
mod tags;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app_test;
use crate::harness::{
    As, OCI_MANIFEST, TESTER_PASSWORD, TestApp, api, create_user, error_code,
    oauth_token_for as oauth_token,
};

const TESTER: As<'static> = As::User("tester");

async fn organization(app: &TestApp, name: &str) -> db::AccountRow {
    match app
        .db
        .db
        .create_organization(name, None, app.tester.id)
        .await
        .unwrap()
    {
        db::CreateUserOutcome::Created(org) => *org,
        db::CreateUserOutcome::NameTaken => panic!("{name} exists"),
    }
}

/// Asserts Quay's `ApiException` body: status, `error_type` and message.
fn assert_exception(status: StatusCode, body: &Value, expected: u16, kind: &str, message: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected, "{body}");
    assert_eq!(body["error_type"], kind, "{body}");
    assert_eq!(body["title"], kind, "{body}");
    assert_eq!(body["error_message"], message, "{body}");
    assert_eq!(body["detail"], message, "{body}");
}

/// The digest a `/v2` manifest request for `reference` serves, pulled as `tester`.
async fn served_digest(app: &TestApp, repo: &str, reference: &str) -> Option<String> {
    let r = app
        .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => Some(
            r.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_string(),
        ),
        404 => None,
        other => panic!("unexpected status {other}"),
    }
}

app_test!(
    bridge_operator_creates_repositories,
    |app: TestApp| async move {
        let org = organization(&app, "openshift-demo").await;
        let scope = "org:admin repo:admin repo:create repo:read repo:write user:admin user:read";
        let token = oauth_token(&app, org.id, scope).await;
        let bridge = As::Bearer(&token);
        create_user(&app.db.db, "bob").await;

        // The operator looks the repository up first: an org admin learns it is missing, an
        // outsider and an anonymous caller cannot tell.
        let path = "/repository/openshift-demo/app";
        let (status, body) = api(&app, bridge, Method::GET, path, None).await;
        assert_exception(status, &body, 404, "not_found", "Not Found");
        let (status, body) = api(&app, As::User("bob"), Method::GET, path, None).await;
        assert_exception(status, &body, 403, "insufficient_scope", "Unauthorized");
        let (status, body) = api(&app, As::Anonymous, Method::GET, path, None).await;
        assert_exception(
            status,
            &body,
            401,
            "invalid_token",
            "Requires authentication",
        );

        let new = json!({
            "namespace": "openshift-demo",
            "repository": "app",
            "visibility": "private",
            "description": "",
            "repo_kind": "image",
        });
        let (status, body) =
            api(&app, bridge, Method::POST, "/repository", Some(new.clone())).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            body,
            json!({"namespace": "openshift-demo", "name": "app", "kind": "image"})
        );
        let (status, body) = api(&app, bridge, Method::POST, "/repository", Some(new)).await;
        assert_exception(
            status,
            &body,
            400,
            "invalid_request",
            "Repository already exists",
        );

        let (status, view) = api(&app, bridge, Method::GET, path, None).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(
            view,
            json!({
                "namespace": "openshift-demo",
                "name": "app",
                "kind": "image",
                "description": "",
                "is_public": false,
                "is_organization": true,
                "is_starred": false,
                "status_token": "",
                "trust_enabled": false,
                "tag_expiration_s": 1_209_600,
                "is_free_account": true,
                "state": "NORMAL",
                "can_write": true,
                "can_admin": true,
                "tags": {},
            })
        );
        // The creator holds an explicit admin permission, as in Quay.
        let (status, body) = api(
            &app,
            bridge,
            Method::GET,
            "/repository/openshift-demo/app/permissions/user/",
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let tester = &body["permissions"]["tester"];
        assert_eq!(
            (
                &tester["role"],
                &tester["is_robot"],
                &tester["is_org_member"]
            ),
            (&json!("admin"), &json!(false), &json!(true))
        );
        assert_eq!(tester["avatar"]["kind"], "user");
        // Still private to outsiders.
        let (status, _) = api(&app, As::User("bob"), Method::GET, path, None).await;
        assert_eq!(status, 403);

        // Creating needs repo:create (or org:admin) on the token.
        let reader = oauth_token(&app, org.id, "repo:read repo:write repo:admin").await;
        let new = json!({
            "namespace": "openshift-demo",
            "repository": "other",
            "visibility": "public",
            "description": "x",
        });
        let (status, body) = api(
            &app,
            As::Bearer(&reader),
            Method::POST,
            "/repository",
            Some(new),
        )
        .await;
        assert_exception(status, &body, 403, "insufficient_scope", "Unauthorized");
        // A token without repo scopes cannot read the private repository either.
        let user_only = oauth_token(&app, org.id, "user:read").await;
        let (status, _) = api(&app, As::Bearer(&user_only), Method::GET, path, None).await;
        assert_eq!(status, 403);
    }
);

app_test!(creating_repositories_validates, |app: TestApp| async move {
    create_user(&app.db.db, "bob").await;
    let post = |who: As<'static>, body: Value| {
        let app = &app;
        async move { api(app, who, Method::POST, "/repository", Some(body)).await }
    };
    let (status, body) = post(
        As::Anonymous,
        json!({"repository": "x", "visibility": "private", "description": ""}),
    )
    .await;
    assert_exception(
        status,
        &body,
        401,
        "invalid_token",
        "Requires authentication",
    );
    // Another user's namespace.
    let (status, body) = post(
        As::User("bob"),
        json!({"namespace": "tester", "repository": "x", "visibility": "private", "description": ""}),
    )
    .await;
    assert_exception(status, &body, 403, "insufficient_scope", "Unauthorized");
    let (status, body) = post(TESTER, json!({"repository": "x", "description": ""})).await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "'visibility' is a required property",
    );
    let (status, body) = post(
        TESTER,
        json!({"repository": "x", "visibility": "secret", "description": ""}),
    )
    .await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "'secret' is not one of ['public', 'private']",
    );
    let (status, body) = post(
        TESTER,
        json!({"repository": "Bad Name", "visibility": "private", "description": ""}),
    )
    .await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "Invalid repository name",
    );
    let r = app
        .client
        .post(format!("{}/api/v1/repository", app.base))
        .basic_auth("tester", Some(TESTER_PASSWORD))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_exception(status, &body, 400, "invalid_request", "Missing JSON body");

    // The namespace defaults to the caller's; nested names are allowed, as on push.
    let (status, body) = post(
        TESTER,
        json!({"repository": "team/app", "visibility": "public", "description": "nested"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["namespace"], "tester");
    let (status, view) = api(
        &app,
        As::Anonymous,
        Method::GET,
        "/repository/tester/team/app",
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (&view["is_public"], &view["can_write"], &view["description"]),
        (&json!(true), &json!(false), &json!("nested"))
    );
});

app_test!(
    visibility_change_lets_anonymous_pull,
    |app: TestApp| async move {
        let (_, digest) = app.push_image("tester/app", "v1", &[b"layer"]).await;
        create_user(&app.db.db, "bob").await;
        let pull_anonymously = || {
            let (app, digest) = (&app, &digest);
            async move {
                let token = app.fetch_token(None, "repository:tester/app:pull").await;
                app.client
                    .get(format!("{}/v2/tester/app/manifests/{digest}", app.base))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let r = pull_anonymously().await;
        assert_eq!(r.status(), 401);
        assert_eq!(error_code(r).await, "UNAUTHORIZED");

        let path = "/repository/tester/app/changevisibility";
        let public = json!({"visibility": "public"});
        let (status, _) = api(
            &app,
            As::User("bob"),
            Method::POST,
            path,
            Some(public.clone()),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = api(
            &app,
            As::Anonymous,
            Method::POST,
            path,
            Some(public.clone()),
        )
        .await;
        assert_eq!(status, 401);
        let (status, body) = api(
            &app,
            TESTER,
            Method::POST,
            path,
            Some(json!({"visibility": "open"})),
        )
        .await;
        assert_exception(
            status,
            &body,
            400,
            "invalid_request",
            "'open' is not one of ['public', 'private']",
        );
        let (status, body) = api(&app, TESTER, Method::POST, path, Some(public)).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));

        assert_eq!(pull_anonymously().await.status(), 200);
        let (status, view) = api(
            &app,
            As::Anonymous,
            Method::GET,
            "/repository/tester/app",
            None,
        )
        .await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(
            (&view["is_public"], &view["can_write"], &view["can_admin"]),
            (&json!(true), &json!(false), &json!(false))
        );

        // Listings: who sees what.
        let (status, body) = api(&app, As::Anonymous, Method::GET, "/repository", None).await;
        assert_exception(
            status,
            &body,
            400,
            "invalid_request",
            "namespace, starred or public are required for this API call",
        );
        app.push_image("tester/private", "v1", &[b"p"]).await;
        let names = |body: &Value| -> Vec<String> {
            body["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["namespace"].as_str().unwrap(),
                        r["name"].as_str().unwrap()
                    )
                })
                .collect()
        };
        let (_, body) = api(
            &app,
            As::Anonymous,
            Method::GET,
            "/repository?public=true",
            None,
        )
        .await;
        assert_eq!(names(&body), ["tester/app"]);
        assert!(body.get("next_page").is_none());
        let item = &body["repositories"][0];
        assert_eq!(
            *item,
            json!({
                "namespace": "tester",
                "name": "app",
                "description": null,
                "is_public": true,
                "kind": "image",
                "state": "NORMAL",
            })
        );
        let (_, body) = api(
            &app,
            TESTER,
            Method::GET,
            "/repository?namespace=tester&last_modified=true",
            None,
        )
        .await;
        assert_eq!(names(&body), ["tester/app", "tester/private"]);
        assert!(body["repositories"][0]["last_modified"].as_i64().unwrap() > 1_600_000_000);
        assert_eq!(body["repositories"][0]["is_starred"], false);
        let (_, body) = api(
            &app,
            As::User("bob"),
            Method::GET,
            "/repository?namespace=tester",
            None,
        )
        .await;
        assert!(names(&body).is_empty());
        let (_, body) = api(
            &app,
            As::User("bob"),
            Method::GET,
            "/repository?namespace=tester&public=true",
            None,
        )
        .await;
        assert_eq!(names(&body), ["tester/app"]);
        let (_, body) = api(
            &app,
            As::User("bob"),
            Method::GET,
            "/repository?starred=true",
            None,
        )
        .await;
        assert!(names(&body).is_empty());
    }
);

app_test!(refusals_come_before_existence, |app: TestApp| async move {
    app.push_image("tester/app", "v1", &[b"x"]).await;
    create_user(&app.db.db, "bob").await;
    for path in [
        "/repository/tester/app",
        "/repository/tester/app/tag/",
        "/repository/tester/app/permissions/user/",
    ] {
        let (status, _) = api(&app, As::Anonymous, Method::GET, path, None).await;
        assert_eq!(status, 401, "{path}");
        let (status, _) = api(&app, As::User("bob"), Method::GET, path, None).await;
        assert_eq!(status, 403, "{path}");
    }
    // A missing repository: 403 for outsiders, 404 for the namespace's admin.
    let (status, _) = api(
        &app,
        As::User("bob"),
        Method::GET,
        "/repository/tester/missing",
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = api(
        &app,
        As::User("bob"),
        Method::GET,
        "/repository/nowhere/missing",
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = api(
        &app,
        TESTER,
        Method::GET,
        "/repository/tester/missing",
        None,
    )
    .await;
    assert_exception(status, &body, 404, "not_found", "Not Found");
    // Writes need write, administration needs admin.
    let (status, _) = api(
        &app,
        As::User("bob"),
        Method::PUT,
        "/repository/tester/app",
        Some(json!({"description": "mine"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = api(
        &app,
        As::User("bob"),
        Method::DELETE,
        "/repository/tester/app",
        None,
    )
    .await;
    assert_eq!(status, 403);
    // Paths that name no endpoint.
    let (status, _) = api(&app, TESTER, Method::GET, "/repository/tester", None).await;
    assert_eq!(status, 404);
    let (status, _) = api(
        &app,
        TESTER,
        Method::POST,
        "/repository/tester/app/tag/",
        None,
    )
    .await;
    assert_eq!(status, 405);
});
