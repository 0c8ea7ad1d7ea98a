//! `/api/v1/repository/<repo>/permissions/…`: users, robots and teams.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{As, TESTER, api, assert_exception, organization};
use crate::app_test;
use crate::harness::{TestApp, create_user};

app_test!(permissions_round_trip, |app: TestApp| async move {
    let acme = organization(&app, "acme").await;
    let bob = create_user(&app.db.db, "bob").await;
    let new = json!({"namespace": "acme", "repository": "app", "visibility": "private", "description": "d"});
    let (status, _) = api(&app, TESTER, Method::POST, "/repository", Some(new)).await;
    assert_eq!(status, 201);
    let base = "/repository/acme/app/permissions";
    let robot_token = app.auth.secret_key().encrypt("robot-token").unwrap();
    for (owner, name) in [(acme.id, "acme+ci"), (app.tester.id, "tester+bot")] {
        app.db
            .db
            .create_robot(db::NewRobot {
                owner_id: owner,
                name: name.into(),
                token_ciphertext: robot_token.clone(),
                description: String::new(),
                unstructured_json: "{}".into(),
            })
            .await
            .unwrap();
    }
    let devs = app
        .db
        .db
        .upsert_team(acme.id, "devs", "member", None)
        .await
        .unwrap()
        .0;

    // Users and robots.
    let put = |who: &'static str, role: &'static str| {
        let app = &app;
        async move {
            api(
                app,
                TESTER,
                Method::PUT,
                &format!("{base}/user/{who}"),
                Some(json!({ "role": role })),
            )
            .await
        }
    };
    let (status, view) = put("bob", "write").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (
            &view["role"],
            &view["name"],
            &view["is_robot"],
            &view["is_org_member"]
        ),
        (&json!("write"), &json!("bob"), &json!(false), &json!(false))
    );
    assert_eq!(view["avatar"]["kind"], "user");
    let (status, view) = put("acme+ci", "read").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (
            &view["is_robot"],
            &view["is_org_member"],
            &view["avatar"]["kind"]
        ),
        (&json!(true), &json!(true), &json!("robot"))
    );
    let (status, body) = put("bob", "owner").await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "'owner' is not one of ['read', 'write', 'admin']",
    );
    let (status, body) = put("acme", "read").await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "Namespace owner must always be admin.",
    );
    let (status, body) = put("nobody", "read").await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "Invalid username: nobody",
    );
    let (status, body) = put("tester+bot", "read").await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "Cannot add robot tester+bot under namespace acme",
    );

    let (status, body) = api(&app, TESTER, Method::GET, &format!("{base}/user/"), None).await;
    assert_eq!(status, 200, "{body}");
    let mut listed: Vec<(String, String)> = body["permissions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["role"].as_str().unwrap().to_string()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("acme+ci".to_string(), "read".to_string()),
            ("bob".to_string(), "write".to_string()),
            ("tester".to_string(), "admin".to_string()),
        ]
    );
    let (status, view) = api(&app, TESTER, Method::GET, &format!("{base}/user/bob"), None).await;
    assert_eq!((status, &view["role"]), (StatusCode::OK, &json!("write")));

    // Bob can now write, but not administer.
    let (status, view) = api(
        &app,
        As::User("bob"),
        Method::GET,
        "/repository/acme/app",
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (&view["can_write"], &view["can_admin"]),
        (&json!(true), &json!(false))
    );
    let (status, _) = api(
        &app,
        As::User("bob"),
        Method::GET,
        &format!("{base}/user/"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = api(
        &app,
        As::Anonymous,
        Method::GET,
        &format!("{base}/user/"),
        None,
    )
    .await;
    assert_eq!(status, 401);

    let (status, body) = api(
        &app,
        TESTER,
        Method::DELETE,
        &format!("{base}/user/bob"),
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = api(&app, TESTER, Method::GET, &format!("{base}/user/bob"), None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"message": "User does not have permission for repo."})
        )
    );
    let (status, body) = api(
        &app,
        TESTER,
        Method::DELETE,
        &format!("{base}/user/bob"),
        None,
    )
    .await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "User does not have permission for repo.",
    );
    let (status, _) = api(
        &app,
        As::User("bob"),
        Method::GET,
        "/repository/acme/app",
        None,
    )
    .await;
    assert_eq!(status, 403);

    // Teams.
    app.db.db.add_team_member(devs.id, bob.id).await.unwrap();
    let (status, view) = api(
        &app,
        TESTER,
        Method::PUT,
        &format!("{base}/team/devs"),
        Some(json!({"role": "read"})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (&view["role"], &view["name"]),
        (&json!("read"), &json!("devs"))
    );
    assert_eq!(view["avatar"]["kind"], "team");
    let (status, view) = api(
        &app,
        As::User("bob"),
        Method::GET,
        "/repository/acme/app",
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["can_write"], false);
    let (_, body) = api(&app, TESTER, Method::GET, &format!("{base}/team/"), None).await;
    assert_eq!(body["permissions"]["devs"]["role"], "read");
    assert_eq!(body["permissions"].as_object().unwrap().len(), 1);
    let (_, body) = api(
        &app,
        TESTER,
        Method::GET,
        &format!("{base}/team/devs"),
        None,
    )
    .await;
    assert_eq!(body, json!({"role": "read"}));
    let (status, body) = api(
        &app,
        TESTER,
        Method::PUT,
        &format!("{base}/team/nope"),
        Some(json!({"role": "read"})),
    )
    .await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "No team nope in organization acme",
    );
    let (status, _) = api(
        &app,
        TESTER,
        Method::DELETE,
        &format!("{base}/team/devs"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = api(
        &app,
        TESTER,
        Method::GET,
        &format!("{base}/team/devs"),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"message": "Team does not have permission for repo."})
        )
    );
    let (status, body) = api(
        &app,
        TESTER,
        Method::DELETE,
        &format!("{base}/team/devs"),
        None,
    )
    .await;
    assert_exception(
        status,
        &body,
        400,
        "invalid_request",
        "Team does not have permission for repo.",
    );
});
