//! Repository listings and settings, asynchronous deletion of repositories and namespaces,
//! account settings and sign-in prompts.

use db::{Db, Delegate, db_test, now_ms};

use super::{grants, org, repo, robot, team, user};

db_test!(repository_listings_and_settings, |db: Db| async move {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let carol = user(&db, "carol").await;
    let acme = org(&db, "acme", &alice).await;
    let app = repo(&db, &acme, "app", Some(&alice)).await;
    let lib = repo(&db, &acme, "lib", Some(&alice)).await;
    let tools = repo(&db, &acme, "tools", Some(&alice)).await;
    let mine = repo(&db, &bob, "mine", Some(&bob)).await;
    let carols = repo(&db, &carol, "carols", Some(&carol)).await;

    assert!(
        db.set_repository_description(app.id, Some("The app"))
            .await
            .unwrap()
    );
    assert!(
        db.set_repository_visibility(lib.id, "public")
            .await
            .unwrap()
    );
    assert!(
        db.set_repository_visibility(carols.id, "public")
            .await
            .unwrap()
    );
    assert!(db.set_repository_state(tools.id, 1).await.unwrap());
    assert!(!db.set_repository_description(9999, None).await.unwrap());

    // Tags: the newest alive, visible tag counts.
    crate::blob(&db, app.id, 1).await;
    db.put_manifest(crate::image(app.id, 10, &[1]), &crate::visible("v1"))
        .await
        .unwrap();
    let hidden = [db::TagTarget::Hidden {
        name: "h".into(),
        expires_ms: None,
    }];
    db.put_manifest(crate::image(app.id, 11, &[1]), &hidden)
        .await
        .unwrap();
    let start = db.list_tags(app.id, None, 10).await.unwrap();
    assert!(!start.is_empty());

    let listed = db.list_namespace_repositories(acme.id).await.unwrap();
    let shown: Vec<_> = listed
        .iter()
        .map(|l| {
            (
                l.repository.name.as_str(),
                l.repository.visibility.as_str(),
                l.repository.state,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("app", "private", 0),
            ("lib", "public", 0),
            ("tools", "private", 1)
        ]
    );
    assert_eq!(listed[0].description.as_deref(), Some("The app"));
    assert_eq!(
        (
            listed[0].kind.as_str(),
            listed[0].repository.namespace.as_str()
        ),
        ("image", "acme")
    );
    assert!(listed[0].creation_ms > 0 && listed[0].creation_ms <= now_ms());
    let modified = listed[0].last_modified_ms.unwrap();
    assert!(modified > 0 && modified <= now_ms());
    assert!(listed[1].last_modified_ms.is_none());
    // A deleted tag no longer counts.
    db.delete_tag(app.id, "v1").await.unwrap();
    assert!(
        db.list_namespace_repositories(acme.id).await.unwrap()[0]
            .last_modified_ms
            .is_none()
    );

    let names = |l: Vec<db::RepositoryListing>| {
        l.into_iter()
            .map(|l| format!("{}/{}", l.repository.namespace, l.repository.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(db.list_public_repositories(None, 10).await.unwrap()),
        ["acme/lib", "carol/carols"]
    );
    assert_eq!(
        names(db.list_public_repositories(None, 1).await.unwrap()),
        ["acme/lib"]
    );
    assert_eq!(
        names(db.list_public_repositories(Some(lib.id), 10).await.unwrap()),
        ["carol/carols"]
    );
    assert!(
        db.list_public_repositories(Some(carols.id), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Visibility: own namespace, direct, through a team, and org admin.
    assert_eq!(
        names(db.repositories_visible_to(bob.id).await.unwrap()),
        ["bob/mine"]
    );
    assert_eq!(
        names(db.repositories_visible_to(alice.id).await.unwrap()),
        ["acme/app", "acme/lib", "acme/tools"]
    );
    let devs = team(&db, &acme, "devs", "creator").await;
    db.add_team_member(devs.id, bob.id).await.unwrap();
    assert_eq!(
        names(db.repositories_visible_to(bob.id).await.unwrap()),
        ["bob/mine"],
        "creator is no org-wide role"
    );
    db.set_repository_permission(tools.id, Delegate::Team(devs.id), "read")
        .await
        .unwrap();
    db.set_repository_permission(app.id, Delegate::Account(bob.id), "read")
        .await
        .unwrap();
    assert_eq!(
        names(db.repositories_visible_to(bob.id).await.unwrap()),
        ["acme/app", "acme/tools", "bob/mine"]
    );
    assert_eq!(
        names(
            db.list_visible_repositories(bob.id, None, 10)
                .await
                .unwrap()
        ),
        [
            "acme/app",
            "acme/lib",
            "acme/tools",
            "bob/mine",
            "carol/carols"
        ]
    );
    assert_eq!(
        names(
            db.list_visible_repositories(bob.id, Some(tools.id), 2)
                .await
                .unwrap()
        ),
        ["bob/mine", "carol/carols"]
    );
    let admins = team(&db, &acme, "admins", "admin").await;
    db.add_team_member(admins.id, carol.id).await.unwrap();
    assert_eq!(
        names(db.repositories_visible_to(carol.id).await.unwrap()),
        ["acme/app", "acme/lib", "acme/tools", "carol/carols"]
    );
    assert_eq!(mine.namespace, "bob");
});

db_test!(
    marking_a_repository_for_deletion_frees_its_name,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let acme = org(&db, "acme", &alice).await;
        let app = repo(&db, &acme, "app", Some(&alice)).await;
        db.set_repository_visibility(app.id, "public")
            .await
            .unwrap();
        db.set_repository_permission(app.id, Delegate::Account(bob.id), "write")
            .await
            .unwrap();

        assert!(db.mark_repository_for_deletion(app.id).await.unwrap());
        assert!(
            !db.mark_repository_for_deletion(app.id).await.unwrap(),
            "already marked"
        );
        assert!(!db.mark_repository_for_deletion(9999).await.unwrap());
        assert!(db.find_repository("acme", "app").await.unwrap().is_none());
        assert!(grants(&db, app.id).await.is_empty());
        assert!(db.account_grants(bob.id).await.unwrap().is_empty());
        assert!(
            db.list_namespace_repositories(acme.id)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            db.list_public_repositories(None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            db.repositories_visible_to(alice.id)
                .await
                .unwrap()
                .is_empty()
        );
        // A marked repository stays marked.
        assert!(!db.set_repository_state(app.id, 0).await.unwrap());
        assert!(
            !db.set_repository_visibility(app.id, "private")
                .await
                .unwrap()
        );

        let item = db
            .queue_claim("repositorygc", 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item.name, format!("repositorygc/acme/{}/", app.id));
        assert_eq!(
            item.body,
            format!(r#"{{"marker_id":{},"original_name":"app"}}"#, app.id)
        );
        assert!(
            db.queue_claim("repositorygc", 60_000)
                .await
                .unwrap()
                .is_none(),
            "one item"
        );

        let again = repo(&db, &acme, "app", Some(&alice)).await;
        assert_ne!(again.id, app.id);
        assert_eq!(again.state, 0);
    }
);

db_test!(account_settings_and_prompts, |db: Db| async move {
    let alice = user(&db, "alice").await;
    assert!(
        db.set_account_email(alice.id, Some("new@example.com"))
            .await
            .unwrap()
    );
    assert!(db.set_tag_expiration_s(alice.id, 86_400).await.unwrap());
    assert!(
        db.update_user_metadata(
            alice.id,
            Some("Alice"),
            Some("Liddell"),
            None,
            Some("Oxford")
        )
        .await
        .unwrap()
    );
    assert!(!db.set_account_email(9999, None).await.unwrap());
    let found = db.find_account_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(found.email.as_deref(), Some("new@example.com"));
    assert_eq!(found.removed_tag_expiration_s, 86_400);
    assert_eq!(
        (
            found.given_name.as_deref(),
            found.family_name.as_deref(),
            found.company.as_deref(),
            found.location.as_deref()
        ),
        (Some("Alice"), Some("Liddell"), None, Some("Oxford"))
    );
    db.set_account_email(alice.id, None).await.unwrap();
    assert!(
        db.find_account_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .email
            .is_none()
    );

    assert!(db.user_prompts(alice.id).await.unwrap().is_empty());
    db.add_user_prompts(alice.id, &["enter_name", "enter_company"])
        .await
        .unwrap();
    db.add_user_prompts(alice.id, &["enter_name"])
        .await
        .unwrap();
    assert_eq!(
        db.user_prompts(alice.id).await.unwrap(),
        ["enter_name", "enter_company"]
    );
    assert!(db.remove_user_prompt(alice.id, "enter_name").await.unwrap());
    assert!(!db.remove_user_prompt(alice.id, "enter_name").await.unwrap());
    assert_eq!(db.user_prompts(alice.id).await.unwrap(), ["enter_company"]);
});

db_test!(
    marking_a_namespace_for_deletion_frees_its_names,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let acme = org(&db, "acme", &alice).await;
        let ci = robot(&db, &acme, "ci").await;
        assert!(
            !db.mark_namespace_for_deletion(ci.account_id).await.unwrap(),
            "robots are no namespaces"
        );
        assert!(db.mark_namespace_for_deletion(acme.id).await.unwrap());
        assert!(
            !db.mark_namespace_for_deletion(acme.id).await.unwrap(),
            "already marked"
        );
        assert!(!db.mark_namespace_for_deletion(9999).await.unwrap());

        let renamed = db.find_account_by_id(acme.id).await.unwrap().unwrap();
        assert!(
            renamed.username.starts_with("deleted-") && !renamed.enabled && renamed.email.is_none()
        );
        let old_robot = db.find_account_by_id(ci.account_id).await.unwrap().unwrap();
        assert_eq!(old_robot.username, format!("{}+ci", renamed.username));
        assert!(!old_robot.enabled);
        assert!(db.find_account("acme").await.unwrap().is_none());
        assert!(
            db.access_facts(Some(alice.id), "acme", None)
                .await
                .unwrap()
                .is_none()
        );

        let item = db
            .queue_claim("namespacegc", 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item.name, format!("namespacegc/{}/", acme.id));
        assert_eq!(
            item.body,
            format!(r#"{{"marker_id":{},"original_username":"acme"}}"#, acme.id)
        );

        // The names are free again, robots included.
        let again = org(&db, "acme", &alice).await;
        assert_ne!(again.id, acme.id);
        robot(&db, &again, "ci").await;
        // Users too.
        assert!(db.mark_namespace_for_deletion(alice.id).await.unwrap());
        user(&db, "alice").await;
    }
);
