//! The access stores on both engines: organizations and teams, access facts, repository creation
//! with default permissions, explicit permissions and default permissions (prototypes). Robots
//! and tokens are in `credentials`, repository and account administration in `admin`.

mod admin;
mod credentials;

use db::{
    AccountRow, AddTeamMemberOutcome, CreateRepositoryOutcome, CreateRobotOutcome,
    CreateUserOutcome, Db, Delegate, NewRepository, NewRobot, PrototypeDelegate,
    RemoveOrgMemberOutcome, RepositoryRow, RobotRow, db_test,
};

const HASH: &str = "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01";

async fn user(db: &Db, name: &str) -> AccountRow {
    let new = db::NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash: HASH.into(),
        verified: true,
        superuser: false,
    };
    match db.create_user(new).await.unwrap() {
        CreateUserOutcome::Created(row) => *row,
        other => panic!("{other:?}"),
    }
}

async fn org(db: &Db, name: &str, creator: &AccountRow) -> AccountRow {
    match db
        .create_organization(name, Some(&format!("{name}@example.com")), creator.id)
        .await
        .unwrap()
    {
        CreateUserOutcome::Created(row) => *row,
        other => panic!("{other:?}"),
    }
}

fn new_repo(ns: &AccountRow, name: &str, creator: Option<&AccountRow>) -> NewRepository {
    NewRepository {
        namespace_id: ns.id,
        name: name.into(),
        visibility: "private".into(),
        description: None,
        creator: creator.map(|c| c.id),
    }
}

async fn repo(db: &Db, ns: &AccountRow, name: &str, creator: Option<&AccountRow>) -> RepositoryRow {
    match db
        .create_repository(new_repo(ns, name, creator))
        .await
        .unwrap()
    {
        CreateRepositoryOutcome::Created(row) => row,
        other => panic!("{other:?}"),
    }
}

async fn robot(db: &Db, owner: &AccountRow, short: &str) -> RobotRow {
    let new = NewRobot {
        owner_id: owner.id,
        name: format!("{}+{short}", owner.username),
        token_ciphertext: format!("token-{short}"),
        description: String::new(),
        unstructured_json: "{}".into(),
    };
    match db.create_robot(new).await.unwrap() {
        CreateRobotOutcome::Created(row) => row,
        other => panic!("{other:?}"),
    }
}

async fn team(db: &Db, org: &AccountRow, name: &str, role: &str) -> db::TeamRow {
    db.upsert_team(org.id, name, role, None).await.unwrap().0
}

/// `name:role` for every explicit permission on a repository, users first, then teams.
async fn grants(db: &Db, repository_id: i64) -> Vec<String> {
    db.repository_permissions(repository_id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("{}:{}", p.name, p.role))
        .collect()
}

db_test!(
    organizations_start_with_an_owners_team,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let acme = org(&db, "acme", &alice).await;
        assert!(acme.organization && !acme.robot && acme.enabled);
        let teams = db.list_teams(acme.id).await.unwrap();
        assert_eq!(teams.len(), 1);
        let owners = &teams[0];
        assert_eq!(
            (owners.team.name.as_str(), owners.team.role.as_str()),
            ("owners", "admin")
        );
        assert_eq!((owners.member_count, owners.repo_count), (1, 0));
        let members = db.team_members(owners.team.id).await.unwrap();
        assert_eq!(members.iter().map(|m| m.id).collect::<Vec<_>>(), [alice.id]);
        assert_eq!(db.org_admin_ids(acme.id).await.unwrap(), [alice.id]);
        let orgs = db.organizations_of(alice.id).await.unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(
            (orgs[0].0.id, orgs[0].1.clone()),
            (acme.id, vec!["admin".to_string()])
        );
        // Names are shared with users; a failed creation leaves nothing behind.
        for taken in ["acme", "alice"] {
            assert_eq!(
                db.create_organization(taken, None, alice.id).await.unwrap(),
                CreateUserOutcome::NameTaken
            );
        }
        assert_eq!(db.organizations_of(alice.id).await.unwrap().len(), 1);
    }
);

db_test!(
    access_facts_collect_team_and_repository_roles,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let carol = user(&db, "carol").await;
        let dave = user(&db, "dave").await;
        let acme = org(&db, "acme", &alice).await;
        let app = repo(&db, &acme, "app", Some(&alice)).await;
        let devs = team(&db, &acme, "devs", "member").await;
        let ops = team(&db, &acme, "ops", "creator").await;
        db.add_team_member(devs.id, bob.id).await.unwrap();
        db.add_team_member(ops.id, bob.id).await.unwrap();
        db.set_repository_permission(app.id, Delegate::Team(devs.id), "write")
            .await
            .unwrap();
        db.set_repository_permission(app.id, Delegate::Account(carol.id), "read")
            .await
            .unwrap();

        let facts = |caller: Option<i64>, repo: Option<&'static str>| {
            let db = db.clone();
            async move {
                db.access_facts(caller, "acme", repo)
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let bob_facts = facts(Some(bob.id), Some("app")).await;
        assert_eq!(bob_facts.namespace.id, acme.id);
        assert_eq!(bob_facts.repository.as_ref().map(|r| r.id), Some(app.id));
        let mut roles = bob_facts.team_roles.clone();
        roles.sort();
        assert_eq!(roles, ["creator", "member"]);
        assert_eq!(bob_facts.repository_roles, ["write"]);
        let carol_facts = facts(Some(carol.id), Some("app")).await;
        assert!(carol_facts.team_roles.is_empty());
        assert_eq!(carol_facts.repository_roles, ["read"]);
        let alice_facts = facts(Some(alice.id), Some("app")).await;
        assert_eq!(
            (alice_facts.team_roles, alice_facts.repository_roles),
            (vec!["admin".into()], vec!["admin".into()])
        );
        let dave_facts = facts(Some(dave.id), Some("app")).await;
        assert!(dave_facts.team_roles.is_empty() && dave_facts.repository_roles.is_empty());
        let anonymous = facts(None, Some("app")).await;
        assert!(anonymous.team_roles.is_empty() && anonymous.repository_roles.is_empty());
        assert!(anonymous.repository.is_some());
        let missing = facts(Some(bob.id), Some("nope")).await;
        assert!(missing.repository.is_none() && missing.repository_roles.is_empty());
        assert_eq!(missing.team_roles.len(), 2);
        assert!(
            db.access_facts(Some(bob.id), "nobody", Some("app"))
                .await
                .unwrap()
                .is_none()
        );
        // A user namespace has no teams.
        let own = db
            .access_facts(Some(bob.id), "bob", None)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !own.namespace.organization && own.team_roles.is_empty() && own.repository.is_none()
        );
    }
);

db_test!(
    creating_a_repository_applies_default_permissions,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let carol = user(&db, "carol").await;
        let dave = user(&db, "dave").await;
        let acme = org(&db, "acme", &alice).await;
        let ci = robot(&db, &acme, "ci").await;
        let readers = team(&db, &acme, "readers", "member").await;
        // The activating-user-specific prototype wins over the generic one for the same delegate,
        // whichever was created first.
        db.create_prototype(acme.id, Some(bob.id), Delegate::Account(carol.id), "write")
            .await
            .unwrap();
        db.create_prototype(acme.id, None, Delegate::Account(carol.id), "read")
            .await
            .unwrap();
        db.create_prototype(acme.id, None, Delegate::Team(readers.id), "read")
            .await
            .unwrap();
        db.create_prototype(acme.id, None, Delegate::Account(bob.id), "write")
            .await
            .unwrap();
        db.create_prototype(
            acme.id,
            Some(dave.id),
            Delegate::Account(ci.account_id),
            "write",
        )
        .await
        .unwrap();

        let by_bob = repo(&db, &acme, "by-bob", Some(&bob)).await;
        // Bob is skipped as a delegate: the creator gets admin and nothing else.
        assert_eq!(
            grants(&db, by_bob.id).await,
            ["bob:admin", "carol:write", "readers:read"]
        );
        let by_alice = repo(&db, &acme, "by-alice", Some(&alice)).await;
        assert_eq!(
            grants(&db, by_alice.id).await,
            ["alice:admin", "bob:write", "carol:read", "readers:read"]
        );
        let by_dave = repo(&db, &acme, "by-dave", Some(&dave)).await;
        assert_eq!(
            grants(&db, by_dave.id).await,
            [
                "acme+ci:write",
                "bob:write",
                "carol:read",
                "dave:admin",
                "readers:read"
            ]
        );
        let by_robot = repo(
            &db,
            &acme,
            "by-robot",
            Some(&db.find_account("acme+ci").await.unwrap().unwrap()),
        )
        .await;
        assert_eq!(
            grants(&db, by_robot.id).await,
            ["acme+ci:admin", "bob:write", "carol:read", "readers:read"]
        );
        let anonymous = repo(&db, &acme, "by-nobody", None).await;
        assert!(grants(&db, anonymous.id).await.is_empty());
        // In a user namespace the creator is admin as well (Quay lists it) and no prototype applies.
        let mine = repo(&db, &bob, "mine", Some(&bob)).await;
        assert_eq!(grants(&db, mine.id).await, ["bob:admin"]);
        assert_eq!((mine.namespace.as_str(), mine.state), ("bob", 0));

        // A second creation changes nothing.
        match db
            .create_repository(new_repo(&acme, "by-bob", Some(&alice)))
            .await
            .unwrap()
        {
            CreateRepositoryOutcome::Exists(row) => assert_eq!(row, by_bob),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            grants(&db, by_bob.id).await,
            ["bob:admin", "carol:write", "readers:read"]
        );
    }
);

db_test!(
    concurrent_creation_yields_one_repository,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let acme = org(&db, "acme", &alice).await;
        for n in 0..5 {
            let name = format!("race-{n}");
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let (db, new) = (db.clone(), new_repo(&acme, &name, Some(&alice)));
                    tokio::spawn(async move { db.create_repository(new).await.unwrap() })
                })
                .collect();
            let mut created = Vec::new();
            let mut exists = Vec::new();
            for task in tasks {
                match task.await.unwrap() {
                    CreateRepositoryOutcome::Created(row) => created.push(row),
                    CreateRepositoryOutcome::Exists(row) => exists.push(row),
                }
            }
            assert_eq!((created.len(), exists.len()), (1, 1), "{name}");
            assert_eq!(created[0], exists[0]);
            assert_eq!(grants(&db, created[0].id).await, ["alice:admin"]);
        }
    }
);

db_test!(
    repository_permissions_are_replaced_not_duplicated,
    |db: Db| async move {
        let alice = user(&db, "alice").await;
        let carol = user(&db, "carol").await;
        let acme = org(&db, "acme", &alice).await;
        let devs = team(&db, &acme, "devs", "member").await;
        let app = repo(&db, &acme, "app", Some(&alice)).await;
        let carol_id = Delegate::Account(carol.id);
        db.set_repository_permission(app.id, carol_id, "read")
            .await
            .unwrap();
        db.set_repository_permission(app.id, carol_id, "write")
            .await
            .unwrap();
        db.set_repository_permission(app.id, Delegate::Team(devs.id), "read")
            .await
            .unwrap();
        db.set_repository_permission(app.id, Delegate::Team(devs.id), "admin")
            .await
            .unwrap();
        assert_eq!(
            grants(&db, app.id).await,
            ["alice:admin", "carol:write", "devs:admin"]
        );
        let rows = db.repository_permissions(app.id).await.unwrap();
        assert_eq!(rows[1].delegate, carol_id);
        assert_eq!(rows[2].delegate, Delegate::Team(devs.id));
        assert!(!rows[1].is_robot);
        assert!(
            db.delete_repository_permission(app.id, carol_id)
                .await
                .unwrap()
        );
        assert!(
            !db.delete_repository_permission(app.id, carol_id)
                .await
                .unwrap()
        );
        assert!(
            db.delete_repository_permission(app.id, Delegate::Team(devs.id))
                .await
                .unwrap()
        );
        assert_eq!(grants(&db, app.id).await, ["alice:admin"]);
    }
);

db_test!(teams_and_their_members, |db: Db| async move {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let carol = user(&db, "carol").await;
    let acme = org(&db, "acme", &alice).await;
    let other = org(&db, "other", &bob).await;
    let ci = robot(&db, &acme, "ci").await;

    let (devs, created) = db
        .upsert_team(acme.id, "devs", "member", Some("Developers"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (devs.role.as_str(), devs.description.as_str()),
        ("member", "Developers")
    );
    let (same, created) = db
        .upsert_team(acme.id, "devs", "creator", None)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        (same.id, same.role.as_str(), same.description.as_str()),
        (devs.id, "creator", "Developers")
    );
    let (same, _) = db
        .upsert_team(acme.id, "devs", "creator", Some(""))
        .await
        .unwrap();
    assert_eq!(same.description, "");
    assert_eq!(
        db.find_team(acme.id, "devs").await.unwrap(),
        Some(same.clone())
    );
    assert!(db.find_team(other.id, "devs").await.unwrap().is_none());

    assert_eq!(
        db.add_team_member(devs.id, carol.id).await.unwrap(),
        AddTeamMemberOutcome::Added
    );
    assert_eq!(
        db.add_team_member(devs.id, carol.id).await.unwrap(),
        AddTeamMemberOutcome::AlreadyMember
    );
    db.add_team_member(devs.id, ci.account_id).await.unwrap();
    db.add_team_member(devs.id, bob.id).await.unwrap();
    let members = db.team_members(devs.id).await.unwrap();
    let shown: Vec<_> = members
        .iter()
        .map(|m| (m.username.as_str(), m.robot))
        .collect();
    assert_eq!(shown, [("acme+ci", true), ("bob", false), ("carol", false)]);
    assert_eq!(members[2].email.as_deref(), Some("carol@example.com"));

    let app = repo(&db, &acme, "app", Some(&alice)).await;
    let lib = repo(&db, &acme, "lib", Some(&alice)).await;
    let elsewhere = repo(&db, &other, "x", Some(&bob)).await;
    db.set_repository_permission(app.id, Delegate::Team(devs.id), "write")
        .await
        .unwrap();
    db.set_repository_permission(lib.id, Delegate::Team(devs.id), "read")
        .await
        .unwrap();
    db.set_repository_permission(lib.id, Delegate::Account(carol.id), "admin")
        .await
        .unwrap();
    db.set_repository_permission(elsewhere.id, Delegate::Account(carol.id), "read")
        .await
        .unwrap();
    let outsider = user(&db, "outsider").await;
    db.set_repository_permission(app.id, Delegate::Account(outsider.id), "read")
        .await
        .unwrap();

    let teams = db.list_teams(acme.id).await.unwrap();
    let counts: Vec<_> = teams
        .iter()
        .map(|t| (t.team.name.as_str(), t.member_count, t.repo_count))
        .collect();
    assert_eq!(counts, [("owners", 1, 0), ("devs", 3, 2)]);
    let perms = db.team_repository_permissions(devs.id).await.unwrap();
    let shown: Vec<_> = perms
        .iter()
        .map(|p| {
            (
                p.repository.as_str(),
                p.visibility.as_str(),
                p.role.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [("app", "private", "write"), ("lib", "private", "read")]
    );

    let of_bob: Vec<_> = db
        .teams_of_member(acme.id, bob.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(of_bob, ["devs"]);
    let of_bob_other: Vec<_> = db
        .teams_of_member(other.id, bob.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(of_bob_other, ["owners"]);

    let members = db.org_members(acme.id).await.unwrap();
    let shown: Vec<_> = members
        .iter()
        .map(|m| {
            (
                m.account.username.as_str(),
                m.teams.clone(),
                m.repositories.clone(),
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shown,
        [
            ("acme+ci", s(&["devs"]), s(&[])),
            ("alice", s(&["owners"]), s(&["app", "lib"])),
            ("bob", s(&["devs"]), s(&[])),
            ("carol", s(&["devs"]), s(&["lib"])),
        ]
    );
    let outside = db.org_collaborators(acme.id).await.unwrap();
    assert_eq!(outside.len(), 1);
    assert_eq!(
        (outside[0].account.id, outside[0].repositories.clone()),
        (outsider.id, s(&["app"]))
    );

    assert!(db.remove_team_member(devs.id, bob.id).await.unwrap());
    assert!(!db.remove_team_member(devs.id, bob.id).await.unwrap());
    assert!(
        db.teams_of_member(acme.id, bob.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Deleting a team takes its memberships, permissions and prototypes with it.
    db.create_prototype(acme.id, None, Delegate::Team(devs.id), "read")
        .await
        .unwrap();
    assert!(db.delete_team(devs.id).await.unwrap());
    assert!(!db.delete_team(devs.id).await.unwrap());
    assert!(db.find_team(acme.id, "devs").await.unwrap().is_none());
    assert!(db.list_prototypes(acme.id).await.unwrap().is_empty());
    assert_eq!(grants(&db, app.id).await, ["alice:admin", "outsider:read"]);
    assert!(
        db.teams_of_member(acme.id, carol.id)
            .await
            .unwrap()
            .is_empty()
    );
});

db_test!(removing_an_org_member_keeps_an_admin, |db: Db| async move {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let acme = org(&db, "acme", &alice).await;
    let bobs = org(&db, "bobs", &bob).await;
    let owners = db.find_team(acme.id, "owners").await.unwrap().unwrap();
    assert_eq!(
        db.remove_org_member(acme.id, alice.id).await.unwrap(),
        RemoveOrgMemberOutcome::OnlyAdmin
    );
    assert_eq!(db.org_admin_ids(acme.id).await.unwrap(), [alice.id]);

    let admins = team(&db, &acme, "admins", "admin").await;
    let devs = team(&db, &acme, "devs", "member").await;
    db.add_team_member(admins.id, bob.id).await.unwrap();
    db.add_team_member(owners.id, bob.id).await.unwrap();
    db.add_team_member(devs.id, bob.id).await.unwrap();
    assert_eq!(
        db.org_admin_ids(acme.id).await.unwrap(),
        [alice.id, bob.id],
        "distinct"
    );
    let app = repo(&db, &acme, "app", Some(&bob)).await;
    let own = repo(&db, &bobs, "own", Some(&bob)).await;

    assert_eq!(
        db.remove_org_member(acme.id, bob.id).await.unwrap(),
        RemoveOrgMemberOutcome::Removed
    );
    assert!(
        db.teams_of_member(acme.id, bob.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        grants(&db, app.id).await.is_empty(),
        "the direct permission in the org is gone"
    );
    assert_eq!(
        grants(&db, own.id).await,
        ["bob:admin"],
        "other namespaces are untouched"
    );
    assert_eq!(db.teams_of_member(bobs.id, bob.id).await.unwrap().len(), 1);
    assert_eq!(db.org_admin_ids(acme.id).await.unwrap(), [alice.id]);
});

db_test!(prototypes_are_listed_with_names, |db: Db| async move {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let acme = org(&db, "acme", &alice).await;
    let other = org(&db, "other", &alice).await;
    let ci = robot(&db, &acme, "ci").await;
    let readers = team(&db, &acme, "readers", "member").await;

    let to_robot = db
        .create_prototype(
            acme.id,
            Some(bob.id),
            Delegate::Account(ci.account_id),
            "write",
        )
        .await
        .unwrap();
    assert_eq!(to_robot.uuid.len(), 36);
    assert_eq!(
        (to_robot.organization_id, to_robot.role.as_str()),
        (acme.id, "write")
    );
    let activating = to_robot.activating.clone().unwrap();
    assert_eq!(
        (
            activating.id,
            activating.username.as_str(),
            activating.robot
        ),
        (bob.id, "bob", false)
    );
    assert_eq!(activating.email.as_deref(), Some("bob@example.com"));
    match &to_robot.delegate {
        PrototypeDelegate::Account(a) => {
            assert_eq!((a.username.as_str(), a.robot), ("acme+ci", true))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        to_robot.delegate.delegate(),
        Delegate::Account(ci.account_id)
    );
    let to_team = db
        .create_prototype(acme.id, None, Delegate::Team(readers.id), "read")
        .await
        .unwrap();
    assert!(to_team.activating.is_none());
    assert_eq!(
        to_team.delegate,
        PrototypeDelegate::Team {
            id: readers.id,
            name: "readers".into()
        }
    );
    db.create_prototype(other.id, None, Delegate::Account(bob.id), "read")
        .await
        .unwrap();

    assert_eq!(
        db.list_prototypes(acme.id).await.unwrap(),
        [to_robot.clone(), to_team.clone()]
    );
    assert_eq!(
        db.find_prototype(acme.id, &to_team.uuid).await.unwrap(),
        Some(to_team.clone())
    );
    assert!(
        db.find_prototype(other.id, &to_team.uuid)
            .await
            .unwrap()
            .is_none(),
        "scoped to its org"
    );
    assert!(
        !db.update_prototype_role(other.id, &to_team.uuid, "admin")
            .await
            .unwrap()
    );
    assert!(
        db.update_prototype_role(acme.id, &to_team.uuid, "admin")
            .await
            .unwrap()
    );
    assert_eq!(
        db.find_prototype(acme.id, &to_team.uuid)
            .await
            .unwrap()
            .unwrap()
            .role,
        "admin"
    );
    assert!(!db.delete_prototype(other.id, &to_team.uuid).await.unwrap());
    assert!(db.delete_prototype(acme.id, &to_team.uuid).await.unwrap());
    assert!(!db.delete_prototype(acme.id, &to_team.uuid).await.unwrap());
    assert_eq!(db.list_prototypes(acme.id).await.unwrap(), [to_robot]);
    assert_eq!(db.list_prototypes(other.id).await.unwrap().len(), 1);
});
