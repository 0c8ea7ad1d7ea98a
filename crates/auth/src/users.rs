//! Creating user accounts with Quay's rules for names, e-mail addresses and passwords.

use db::{AccountRow, CreateUserOutcome, Db, NewUser};

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "invalid username {0:?}: use 2 to 255 lowercase letters, digits and single . _ - between them"
    )]
    InvalidUsername(String),
    #[error("invalid e-mail address {0:?}")]
    InvalidEmail(String),
    #[error("the password must be at least 8 characters long")]
    WeakPassword,
    #[error("the username {0:?} is already taken")]
    NameTaken(String),
    #[error(transparent)]
    Hash(#[from] crate::password::HashError),
    #[error(transparent)]
    Db(#[from] db::DbError),
}

/// Creates a user after checking the name, e-mail and password.
pub async fn create_user(
    db: &Db,
    username: &str,
    email: &str,
    password: &str,
    superuser: bool,
) -> Result<AccountRow, UserError> {
    // The namespace rule also keeps `+` out, which robot names (`owner+name`) rely on.
    if !types::name::valid_namespace(username) {
        return Err(UserError::InvalidUsername(username.to_string()));
    }
    if !plausible_email(email) {
        return Err(UserError::InvalidEmail(email.to_string()));
    }
    if password.chars().count() < 8 {
        return Err(UserError::WeakPassword);
    }
    let password_hash = crate::password::hash(password).await?;
    let new = NewUser {
        username: username.to_string(),
        email: email.to_string(),
        password_hash,
        verified: true,
        superuser,
    };
    match db.create_user(new).await? {
        CreateUserOutcome::Created(row) => Ok(*row),
        CreateUserOutcome::NameTaken => Err(UserError::NameTaken(username.to_string())),
    }
}

/// One `@`, something on both sides, a dot in the domain, no spaces: enough to catch typos
/// without refusing real addresses.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use db::testing::{Engine, TestDb};

    #[test]
    fn email_check() {
        for ok in ["a@b.io", "first.last+tag@example.co.uk"] {
            assert!(plausible_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.io", "a@@b.io", "a b@c.io", "a@.io", "a@io.",
        ] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn creates_users_on_both_engines() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let t = TestDb::new(engine).await;
            let row = create_user(&t.db, "alice", "alice@example.com", "s3cret-pw", true)
                .await
                .unwrap();
            assert!(row.superuser);
            let stored = t.db.find_account("alice").await.unwrap().unwrap();
            let hash = stored.password_hash.unwrap();
            assert!(crate::password::verify("s3cret-pw", &hash).await);
            assert!(matches!(
                create_user(&t.db, "alice", "a2@example.com", "s3cret-pw", false).await,
                Err(UserError::NameTaken(_))
            ));
            assert!(matches!(
                create_user(&t.db, "Alice", "a@example.com", "s3cret-pw", false).await,
                Err(UserError::InvalidUsername(_))
            ));
            assert!(matches!(
                create_user(&t.db, "ns+robot", "a@example.com", "s3cret-pw", false).await,
                Err(UserError::InvalidUsername(_))
            ));
            assert!(matches!(
                create_user(&t.db, "bob", "bob", "s3cret-pw", false).await,
                Err(UserError::InvalidEmail(_))
            ));
            assert!(matches!(
                create_user(&t.db, "bob", "bob@example.com", "short", false).await,
                Err(UserError::WeakPassword)
            ));
        }
    }
}
