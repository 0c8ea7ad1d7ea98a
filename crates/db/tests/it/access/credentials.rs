//! Robots, OAuth applications and access tokens, app-specific tokens and service keys.

use db::{CreateRobotOutcome, Db, Delegate, NewRobot, db_test, now_ms};

use super::{grants, org, repo, robot, team, user};

db_test!(robots_are_accounts_with_tokens, |db: Db| async move {
    let alice = user(&db, "alice").await;
    let acme = org(&db, "acme", &alice).await;
    let ci = robot(&db, &acme, "ci").await;
    assert_eq!(
        (ci.name.as_str(), ci.owner_id, ci.enabled),
        ("acme+ci", acme.id, true)
    );
    assert_eq!(ci.token_ciphertext, "token-ci");
    let again = NewRobot {
        owner_id: acme.id,
        name: "acme+ci".into(),
        token_ciphertext: "x".into(),
        description: String::new(),
        unstructured_json: "{}".into(),
    };
    assert_eq!(
        db.create_robot(again).await.unwrap(),
        CreateRobotOutcome::NameTaken
    );
    let account = db.find_account("acme+ci").await.unwrap().unwrap();
    assert!(account.robot && !account.organization && account.id == ci.account_id);
    assert_eq!(db.find_robot("acme+ci").await.unwrap(), Some(ci.clone()));
    assert!(
        db.find_robot("alice").await.unwrap().is_none(),
        "users are not robots"
    );
    robot(&db, &acme, "b").await;
    robot(&db, &acme, "a").await;
    robot(&db, &alice, "mine").await;
    let names: Vec<_> = db
        .list_robots(acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["acme+a", "acme+b", "acme+ci"]);

    db.set_robot_token(ci.account_id, "rotated").await.unwrap();
    db.update_robot_metadata(ci.account_id, "builds", r#"{"k":1}"#)
        .await
        .unwrap();
    let found = db.find_robot("acme+ci").await.unwrap().unwrap();
    assert_eq!(
        (
            found.token_ciphertext.as_str(),
            found.description.as_str(),
            found.unstructured_json.as_str()
        ),
        ("rotated", "builds", r#"{"k":1}"#)
    );

    // Grants: a direct permission, a team membership and prototypes naming it.
    let app = repo(&db, &acme, "app", Some(&alice)).await;
    let builders = team(&db, &acme, "builders", "member").await;
    db.set_repository_permission(app.id, Delegate::Account(ci.account_id), "write")
        .await
        .unwrap();
    db.add_team_member(builders.id, ci.account_id)
        .await
        .unwrap();
    db.add_team_member(builders.id, alice.id).await.unwrap();
    db.create_prototype(acme.id, None, Delegate::Account(ci.account_id), "read")
        .await
        .unwrap();
    db.create_prototype(
        acme.id,
        Some(ci.account_id),
        Delegate::Account(alice.id),
        "read",
    )
    .await
    .unwrap();
    let held = db.account_grants(ci.account_id).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (
            held[0].namespace.as_str(),
            held[0].repository.as_str(),
            held[0].role.as_str()
        ),
        ("acme", "app", "write")
    );
    // Deleting a non-robot changes nothing.
    assert!(!db.delete_robot(alice.id).await.unwrap());
    assert!(db.find_account("alice").await.unwrap().is_some());
    assert_eq!(db.team_members(builders.id).await.unwrap().len(), 2);
    assert_eq!(grants(&db, app.id).await, ["acme+ci:write", "alice:admin"]);

    assert!(db.delete_robot(ci.account_id).await.unwrap());
    assert!(!db.delete_robot(ci.account_id).await.unwrap());
    assert!(db.find_robot("acme+ci").await.unwrap().is_none());
    assert!(db.find_account("acme+ci").await.unwrap().is_none());
    assert_eq!(grants(&db, app.id).await, ["alice:admin"]);
    let members = db.team_members(builders.id).await.unwrap();
    assert_eq!(members.iter().map(|m| m.id).collect::<Vec<_>>(), [alice.id]);
    assert!(db.list_prototypes(acme.id).await.unwrap().is_empty());
    // The name is free again.
    robot(&db, &acme, "ci").await;
});

db_test!(oauth_applications_and_access_tokens, |db: Db| async move {
    let alice = user(&db, "alice").await;
    let acme = org(&db, "acme", &alice).await;
    let new_app = |client_id: &str, name: &str| db::NewApplication {
        organization_id: acme.id,
        client_id: client_id.into(),
        client_secret_ciphertext: "secret".into(),
        name: name.into(),
        description: String::new(),
        redirect_uri: "https://example.com/cb".into(),
        application_uri: String::new(),
        avatar_email: None,
    };
    let app = db
        .create_application(new_app("CLIENT1", "zeta"))
        .await
        .unwrap();
    db.create_application(new_app("CLIENT2", "alpha"))
        .await
        .unwrap();
    assert_eq!(
        db.find_application("CLIENT1").await.unwrap(),
        Some(app.clone())
    );
    assert!(db.find_application("nope").await.unwrap().is_none());
    let names: Vec<_> = db
        .list_applications(acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
    let mut edited = app.clone();
    edited.name = "renamed".into();
    edited.avatar_email = Some("a@example.com".into());
    db.update_application(&edited).await.unwrap();
    db.set_client_secret(app.id, "rotated").await.unwrap();
    let stored = db.find_application("CLIENT1").await.unwrap().unwrap();
    assert_eq!(
        (
            stored.name.as_str(),
            stored.avatar_email.as_deref(),
            stored.client_secret_ciphertext.as_str()
        ),
        ("renamed", Some("a@example.com"), "rotated")
    );

    let expires = now_ms() + 9_000_000;
    let uuid = db
        .create_access_token(db::NewAccessToken {
            application_id: app.id,
            account_id: alice.id,
            scope: "repo:read user:admin".into(),
            token_name: "t".repeat(20),
            token_code_hash: "hash".into(),
            expires_ms: Some(expires),
        })
        .await
        .unwrap();
    let found = db
        .find_access_token(&"t".repeat(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.token.uuid, found.token.expires_ms),
        (uuid, Some(expires))
    );
    assert_eq!(
        (found.account.id, found.client_id.as_str()),
        (alice.id, "CLIENT1")
    );
    assert_eq!(found.token.scope, "repo:read user:admin");
    assert!(
        db.find_access_token(&"u".repeat(20))
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.delete_application(app.id).await.unwrap());
    assert!(!db.delete_application(app.id).await.unwrap());
    assert!(
        db.find_access_token(&"t".repeat(20))
            .await
            .unwrap()
            .is_none()
    );
});

db_test!(
    app_specific_tokens_belong_to_their_user,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let new = |account_id: i64, title: &str, name: &str| db::NewAppToken {
            account_id,
            title: title.into(),
            token_name: name.into(),
            token_secret_hash: "hash".into(),
            expiration_ms: None,
        };
        let first = db
            .create_app_token(new(alice.id, "laptop", "a1"))
            .await
            .unwrap();
        let second = db
            .create_app_token(new(alice.id, "ci", "a2"))
            .await
            .unwrap();
        db.create_app_token(new(bob.id, "bob", "b1")).await.unwrap();
        let (token, account) = db.find_app_token("a1").await.unwrap().unwrap();
        assert_eq!((token, account.id), (first.clone(), alice.id));
        assert!(db.find_app_token("zz").await.unwrap().is_none());
        assert_eq!(
            db.list_app_tokens(alice.id).await.unwrap(),
            [first.clone(), second.clone()]
        );
        assert!(
            !db.delete_app_token(bob.id, &first.uuid).await.unwrap(),
            "not bob's"
        );
        assert!(db.delete_app_token(alice.id, &first.uuid).await.unwrap());
        assert_eq!(db.list_app_tokens(alice.id).await.unwrap(), [second]);
    }
);

db_test!(service_keys_filter_out_expired_ones, |db: Db| async move {
    let key = |kid: &str, service: &str, expiration_ms: Option<i64>| db::NewServiceKey {
        kid: kid.into(),
        service: service.into(),
        jwk: format!(r#"{{"kid":"{kid}"}}"#),
        private_key_ciphertext: None,
        expiration_ms,
    };
    db.insert_service_key(key("forever", "quay", None))
        .await
        .unwrap();
    db.insert_service_key(key("expired", "quay", Some(now_ms() - 1000)))
        .await
        .unwrap();
    db.insert_service_key(key("later", "quay", Some(now_ms() + 3_600_000)))
        .await
        .unwrap();
    db.insert_service_key(key("other", "builder", None))
        .await
        .unwrap();
    let kids: Vec<_> = db
        .service_keys("quay")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["later", "forever"], "newest first, expired left out");
    let expired = db.find_service_key("expired").await.unwrap().unwrap();
    assert_eq!(expired.service, "quay");
    assert!(db.find_service_key("none").await.unwrap().is_none());
});
