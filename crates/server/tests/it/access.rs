//! Registry authentication and authorization over HTTP: the token endpoint, down-scoping,
//! repository creation on push, and the refusals (bad credentials, forged or misused tokens,
//! private repositories, disabled namespaces, a read-only registry).

use auth::jwt::{self, Access, RegistryClaims, SigningKey, TokenContext};
use reqwest::Method;
use serde_json::Value;

use crate::app_test;
use crate::harness::{TESTER_PASSWORD, TestApp, create_user, error_code, header, oauth_token_for};

/// The claims of a token, unverified (tests only).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn actions(token: &str) -> Vec<String> {
    claims(token)["access"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

async fn get_with(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

app_test!(base_needs_a_token, |app: TestApp| async move {
    let r = app.anonymous(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_code_of(r).await, "UNAUTHORIZED");
    let r = app.anonymous(Method::GET, "/v2/").send().await.unwrap();
    let challenge = header(&r, "www-authenticate");
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"http://{host}/v2/auth\",service=\"{host}\"",
            host = app.host()
        )
    );
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
    // An anonymous token for any scope opens the base endpoint.
    let token = app.fetch_token(None, "repository:tester/x:pull").await;
    assert_eq!(claims(&token)["sub"], "(anonymous)");
    assert_eq!(get_with(&app, &token, "/v2/").await.status(), 200);
});

async fn error_code_of(r: reqwest::Response) -> String {
    error_code(r).await
}

app_test!(token_endpoint_refusals, |app: TestApp| async move {
    let scope = "repository:tester/app:pull";
    let r = app
        .token_response(Some(("tester", "wrong-password")), &[scope])
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(body["errors"][0]["message"], "Invalid Username or Password");
    // Failed sign-ins are counted on the account until the next success.
    let account = app.db.db.find_account("tester").await.unwrap().unwrap();
    assert_eq!(account.invalid_login_attempts, 1);
    let r = app
        .token_response(Some(("nobody", TESTER_PASSWORD)), &[scope])
        .await;
    assert_eq!(r.status(), 401);
    // Anonymous without a scope.
    let r = app.token_response(None, &[]).await;
    assert_eq!(r.status(), 401);
    // Only repository scopes are understood.
    let r = app
        .token_response(Some(("tester", TESTER_PASSWORD)), &["registry:catalog:*"])
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "INVALID_REQUEST");
    let r = app
        .token_response(
            Some(("tester", TESTER_PASSWORD)),
            &["repository:Tester/App:pull"],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "NAME_INVALID");
    let account = app.db.db.find_account("tester").await.unwrap().unwrap();
    assert_eq!(account.invalid_login_attempts, 0);
    assert!(app.auth.attempts().get(auth::AttemptKind::Password, false) >= 2);
});

app_test!(
    push_creates_a_private_repository_for_its_owner,
    |app: TestApp| async move {
        let (_, digest) = app.push_image("tester/app", "v1", &[b"layer"]).await;
        let repo = app
            .db
            .db
            .find_repository("tester", "app")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(repo.visibility, "private");
        let perms = app.db.db.repository_permissions(repo.id).await.unwrap();
        assert_eq!(perms.len(), 1);
        assert_eq!(
            (perms[0].name.as_str(), perms[0].role.as_str()),
            ("tester", "admin")
        );

        // Another user gets a token, but without actions, and the registry refuses it the same
        // way for this private repository as for one that does not exist.
        create_user(&app.db.db, "mallory").await;
        for repo in ["tester/app", "tester/absent"] {
            let token = app
                .fetch_token(
                    Some(("mallory", TESTER_PASSWORD)),
                    &format!("repository:{repo}:pull,push"),
                )
                .await;
            assert!(actions(&token).is_empty(), "{repo}");
            let r = get_with(&app, &token, &format!("/v2/{repo}/manifests/v1")).await;
            assert_eq!(r.status(), 401, "{repo}");
            assert_eq!(
                header(&r, "www-authenticate"),
                format!(
                    "Bearer realm=\"http://{h}/v2/auth\",service=\"{h}\",scope=\"repository:{repo}:pull\"",
                    h = app.host()
                )
            );
            assert_eq!(error_code(r).await, "UNAUTHORIZED");
        }
        // Nor may mallory create repositories in tester's namespace.
        assert!(
            app.db
                .db
                .find_repository("tester", "absent")
                .await
                .unwrap()
                .is_none()
        );
        // Anonymous: nothing on a private repository, pull once it is public.
        let token = app.fetch_token(None, "repository:tester/app:pull").await;
        assert!(actions(&token).is_empty());
        app.db
            .db
            .set_repository_visibility(repo.id, "public")
            .await
            .unwrap();
        let token = app
            .fetch_token(None, "repository:tester/app:pull,push")
            .await;
        assert_eq!(actions(&token), ["pull"]);
        let r = get_with(&app, &token, &format!("/v2/tester/app/manifests/{digest}")).await;
        assert_eq!(r.status(), 200);
    }
);

app_test!(
    a_token_is_for_its_repository_only,
    |app: TestApp| async move {
        app.push_image("tester/a", "v1", &[b"a"]).await;
        app.push_image("tester/b", "v1", &[b"b"]).await;
        let token = app
            .fetch_token(
                Some(("tester", TESTER_PASSWORD)),
                "repository:tester/a:pull",
            )
            .await;
        assert_eq!(
            get_with(&app, &token, "/v2/tester/a/tags/list")
                .await
                .status(),
            200
        );
        assert_eq!(
            get_with(&app, &token, "/v2/tester/b/tags/list")
                .await
                .status(),
            401
        );
        // Pull only: pushing is refused.
        let r = app
            .client
            .post(format!("{}/v2/tester/a/blobs/uploads/", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(header(&r, "www-authenticate").contains("repository:tester/a:pull,push"));
    }
);

app_test!(
    forged_and_foreign_tokens_are_refused,
    |app: TestApp| async move {
        app.push_image("tester/app", "v1", &[b"x"]).await;
        let now = db::now_ms() / 1000;
        let access = vec![Access::repository("tester/app", &["pull", "push"])];
        let context = TokenContext::new(jwt::EntityKind::User, None, Some("tester".into()));
        let claims_for = |aud: &str, iat: i64, lifetime: i64| {
            RegistryClaims::new(
                "quay",
                aud,
                "tester",
                access.clone(),
                context.clone(),
                iat,
                lifetime,
            )
        };
        // Signed by a key the registry does not know.
        let stranger = SigningKey::generate().unwrap();
        let forged = jwt::mint(&stranger, &claims_for(&app.host(), now, 3600)).unwrap();
        // Genuine tokens for the wrong audience, expired, or too long-lived.
        let real = app
            .fetch_token(
                Some(("tester", TESTER_PASSWORD)),
                "repository:tester/app:pull",
            )
            .await;
        assert_eq!(
            get_with(&app, &real, "/v2/tester/app/tags/list")
                .await
                .status(),
            200
        );
        let kid = jwt::peek_kid(&real).unwrap();
        assert_ne!(kid, stranger.kid());
        for token in [
            forged,
            "not.a.token".to_string(),
            format!("{real}x"),
            real.replace('.', ""),
        ] {
            let r = get_with(&app, &token, "/v2/tester/app/tags/list").await;
            assert_eq!(r.status(), 401, "{token}");
        }
        let other_audience = app
            .client
            .get(format!(
                "{}/v2/auth?service=elsewhere.example&scope=repository:tester/app:pull",
                app.base
            ))
            .basic_auth("tester", Some(TESTER_PASSWORD))
            .send()
            .await
            .unwrap();
        let other: Value = other_audience.json().await.unwrap();
        let r = get_with(
            &app,
            other["token"].as_str().unwrap(),
            "/v2/tester/app/tags/list",
        )
        .await;
        assert_eq!(r.status(), 401);
        // The published keys verify the genuine token and nothing else.
        let keys: Value = app
            .get("/keys/services/quay/keys")
            .await
            .json()
            .await
            .unwrap();
        let keyset = jwt::KeySet::from_jwks(&keys).unwrap();
        assert!(jwt::verify(&real, &keyset, &app.host(), "quay", now, 3660).is_ok());
        assert_eq!(app.get("/keys/services/other/keys").await.status(), 404);
    }
);

app_test!(robots_push_where_they_may, |app: TestApp| async move {
    app.push_image("tester/app", "v1", &[b"x"]).await;
    let repo = app
        .db
        .db
        .find_repository("tester", "app")
        .await
        .unwrap()
        .unwrap();
    let secret = "ROBOTTOKEN0123456789";
    let created = app
        .db
        .db
        .create_robot(db::NewRobot {
            owner_id: app.tester.id,
            name: "tester+ci".into(),
            token_ciphertext: app.auth.secret_key().encrypt(secret).unwrap(),
            description: String::new(),
            unstructured_json: "{}".into(),
        })
        .await
        .unwrap();
    let db::CreateRobotOutcome::Created(robot) = created else {
        panic!("robot exists")
    };
    let scope = "repository:tester/app:pull,push";
    // Robots have no rights of their own, even in their owner's namespace.
    let token = app.fetch_token(Some(("tester+ci", secret)), scope).await;
    assert!(actions(&token).is_empty());
    app.db
        .db
        .set_repository_permission(repo.id, db::Delegate::Account(robot.account_id), "write")
        .await
        .unwrap();
    let token = app.fetch_token(Some(("tester+ci", secret)), scope).await;
    let mut granted = actions(&token);
    granted.sort();
    assert_eq!(granted, ["pull", "push"]);
    assert_eq!(claims(&token)["context"]["entity_kind"], "robot");
    assert_eq!(claims(&token)["sub"], "tester+ci");
    // A wrong robot token, and a robot that does not exist.
    let r = app
        .token_response(Some(("tester+ci", "WRONG")), &[scope])
        .await;
    assert_eq!(r.status(), 401);
    let r = app
        .token_response(Some(("tester+nope", secret)), &[scope])
        .await;
    assert_eq!(r.status(), 401);
});

app_test!(
    oauth_and_app_tokens_on_the_registry,
    |app: TestApp| async move {
        app.push_image("tester/app", "v1", &[b"x"]).await;
        let org = app
            .db
            .db
            .create_organization("acme", None, app.tester.id)
            .await
            .unwrap();
        let db::CreateUserOutcome::Created(org) = org else {
            panic!("acme exists")
        };
        let scope = "repository:tester/app:pull,push";
        let read_only = oauth_token_for(&app, org.id, "repo:read").await;
        let token = app
            .fetch_token(Some(("$oauthtoken", &read_only)), scope)
            .await;
        assert_eq!(actions(&token), ["pull"]);
        assert_eq!(claims(&token)["context"]["entity_kind"], "oauthtoken");
        let writer = oauth_token_for(&app, org.id, "repo:read repo:write").await;
        let token = app.fetch_token(Some(("$oauthtoken", &writer)), scope).await;
        let mut granted = actions(&token);
        granted.sort();
        assert_eq!(granted, ["pull", "push"]);
        let r = app
            .token_response(
                Some(("$oauthtoken", &format!("{}x", &writer[..39]))),
                &[scope],
            )
            .await;
        assert_eq!(r.status(), 401);

        let app_token = auth::crypto::APP_SPECIFIC_TOKEN.generate();
        let split = auth::crypto::APP_SPECIFIC_TOKEN.split(&app_token).unwrap();
        app.db
            .db
            .create_app_token(db::NewAppToken {
                account_id: app.tester.id,
                title: "laptop".into(),
                token_name: split.lookup,
                token_secret_hash: auth::crypto::hash_secret(&split.secret),
                expiration_ms: None,
            })
            .await
            .unwrap();
        let token = app.fetch_token(Some(("$app", &app_token)), scope).await;
        assert_eq!(actions(&token).len(), 2);
        let r = app.token_response(Some(("$app", "short")), &[scope]).await;
        assert_eq!(r.status(), 401);
        let r = app
            .token_response(Some(("$token", "anything")), &[scope])
            .await;
        assert_eq!(r.status(), 401);
    }
);

app_test!(
    catalog_shows_what_the_caller_may_read,
    |app: TestApp| async move {
        app.push_image("tester/private", "v1", &[b"x"]).await;
        app.push_image("tester/public", "v1", &[b"y"]).await;
        let public = app
            .db
            .db
            .find_repository("tester", "public")
            .await
            .unwrap()
            .unwrap();
        app.db
            .db
            .set_repository_visibility(public.id, "public")
            .await
            .unwrap();
        let body: Value = app.get("/v2/_catalog").await.json().await.unwrap();
        assert_eq!(
            body["repositories"],
            serde_json::json!(["tester/private", "tester/public"])
        );
        let anonymous = app.fetch_token(None, "repository:tester/public:pull").await;
        let body: Value = get_with(&app, &anonymous, "/v2/_catalog")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["repositories"], serde_json::json!(["tester/public"]));
    }
);

app_test!(disabled_namespaces_are_denied, |app: TestApp| async move {
    create_user(&app.db.db, "gone").await;
    let account = app.db.db.find_account("gone").await.unwrap().unwrap();
    app.db
        .db
        .mark_namespace_for_deletion(account.id)
        .await
        .unwrap();
    // The name is free again and its old token requests find nothing.
    let r = app
        .token_response(
            Some(("tester", TESTER_PASSWORD)),
            &["repository:gone/app:pull"],
        )
        .await;
    assert_eq!(r.status(), 200);
    let renamed = app
        .db
        .db
        .find_account_by_id(account.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!renamed.enabled);
    let r = app
        .token_response(
            Some(("tester", TESTER_PASSWORD)),
            &[&format!("repository:{}/app:pull", renamed.username)],
        )
        .await;
    assert_eq!(r.status(), 405);
    assert_eq!(error_code(r).await, "DENIED");
});

#[tokio::test]
async fn anonymous_access_can_be_turned_off() {
    let settings = auth::AuthSettings {
        policy: auth::permissions::Policy {
            anonymous_access: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::with_auth(db::testing::Engine::Sqlite, settings).await;
    let r = app
        .token_response(None, &["repository:tester/x:pull"])
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Anonymous access is not allowed");
}

#[tokio::test]
async fn a_read_only_registry_refuses_writes() {
    let settings = auth::AuthSettings {
        policy: auth::permissions::Policy {
            registry_read_only: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::with_auth(db::testing::Engine::Postgres, settings).await;
    let r = app
        .req(Method::POST, "/v2/tester/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert_eq!(body["errors"][0]["is_readonly"], true);
    // Nothing was created by the refused push's token request.
    assert!(
        app.db
            .db
            .find_repository("tester", "app")
            .await
            .unwrap()
            .is_none()
    );
}

app_test!(disabled_users_cannot_sign_in, |app: TestApp| async move {
    let user = create_user(&app.db.db, "leaver").await;
    let scope = "repository:leaver/app:pull,push";
    let r = app
        .token_response(Some(("leaver", TESTER_PASSWORD)), &[scope])
        .await;
    assert_eq!(r.status(), 200);
    app.db.db.set_account_enabled(user.id, false).await.unwrap();
    let r = app
        .token_response(Some(("leaver", TESTER_PASSWORD)), &[scope])
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["message"],
        "This user has been disabled. Please contact your administrator."
    );
});

app_test!(
    a_robot_acts_only_where_it_is_granted,
    |app: TestApp| async move {
        // Two organizations; acme's robot has write on an acme repository only.
        for org in ["acme", "other"] {
            app.db
                .db
                .create_organization(org, None, app.tester.id)
                .await
                .unwrap();
            app.push_image(&format!("{org}/app"), "v1", &[org.as_bytes()])
                .await;
        }
        let secret = "ACMEROBOTTOKEN";
        let acme = app.db.db.find_account("acme").await.unwrap().unwrap();
        let db::CreateRobotOutcome::Created(robot) = app
            .db
            .db
            .create_robot(db::NewRobot {
                owner_id: acme.id,
                name: "acme+ci".into(),
                token_ciphertext: app.auth.secret_key().encrypt(secret).unwrap(),
                description: String::new(),
                unstructured_json: "{}".into(),
            })
            .await
            .unwrap()
        else {
            panic!("robot exists")
        };
        let repo = app
            .db
            .db
            .find_repository("acme", "app")
            .await
            .unwrap()
            .unwrap();
        app.db
            .db
            .set_repository_permission(repo.id, db::Delegate::Account(robot.account_id), "write")
            .await
            .unwrap();
        let on = |repo: &str| format!("repository:{repo}:pull,push");
        let token = app
            .fetch_token(Some(("acme+ci", secret)), &on("acme/app"))
            .await;
        assert_eq!(actions(&token).len(), 2);
        // Nothing in the other organization, nor creating repositories anywhere.
        for repo in ["other/app", "other/new", "acme/new"] {
            let token = app.fetch_token(Some(("acme+ci", secret)), &on(repo)).await;
            assert!(actions(&token).is_empty(), "{repo}");
        }
        // The robot's token for acme/app opens acme/app only.
        let token = app
            .fetch_token(Some(("acme+ci", secret)), &on("acme/app"))
            .await;
        assert_eq!(
            get_with(&app, &token, "/v2/acme/app/tags/list")
                .await
                .status(),
            200
        );
        assert_eq!(
            get_with(&app, &token, "/v2/other/app/tags/list")
                .await
                .status(),
            401
        );
        // Disabling the owning organization disables its robots.
        app.db.db.set_account_enabled(acme.id, false).await.unwrap();
        let r = app
            .token_response(Some(("acme+ci", secret)), &[&on("acme/app")])
            .await;
        assert_eq!(r.status(), 401);
    }
);

app_test!(
    expired_and_overlong_tokens_are_refused,
    |app: TestApp| async move {
        app.push_image("tester/app", "v1", &[b"x"]).await;
        // The instance key, read back the way any node reads it.
        let rows = app.db.db.service_keys("quay").await.unwrap();
        assert_eq!(rows.len(), 1);
        let secret = auth::crypto::SecretKey::derive(crate::harness::TEST_SECRET);
        let der = secret
            .decrypt(rows[0].private_key_ciphertext.as_deref().unwrap())
            .unwrap();
        let key =
            SigningKey::from_pkcs8_der(&data_encoding::BASE64.decode(der.as_bytes()).unwrap())
                .unwrap();
        let now = db::now_ms() / 1000;
        let access = vec![Access::repository("tester/app", &["pull"])];
        let context = TokenContext::new(jwt::EntityKind::User, None, Some("tester".into()));
        let mint = |iat: i64, lifetime: i64| {
            jwt::mint(
                &key,
                &RegistryClaims::new(
                    "quay",
                    &app.host(),
                    "tester",
                    access.clone(),
                    context.clone(),
                    iat,
                    lifetime,
                ),
            )
            .unwrap()
        };
        let fresh = mint(now, 3600);
        assert_eq!(
            get_with(&app, &fresh, "/v2/tester/app/tags/list")
                .await
                .status(),
            200
        );
        // Expired beyond the 30 s leeway; valid for longer than REGISTRY_JWT_AUTH_MAX_FRESH_S.
        for token in [mint(now - 7200, 3600), mint(now, 86_400)] {
            let r = get_with(&app, &token, "/v2/tester/app/tags/list").await;
            assert_eq!(r.status(), 401);
        }
        // Another issuer.
        let other = jwt::mint(
            &key,
            &RegistryClaims::new(
                "other",
                &app.host(),
                "tester",
                access.clone(),
                context.clone(),
                now,
                3600,
            ),
        )
        .unwrap();
        assert_eq!(
            get_with(&app, &other, "/v2/tester/app/tags/list")
                .await
                .status(),
            401
        );
    }
);
