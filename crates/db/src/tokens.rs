//! Credentials other than passwords: OAuth applications and their access tokens, app-specific
//! tokens, and the service keys that sign registry tokens. Bearer secrets arrive here already
//! split and hashed; encrypted secrets arrive encrypted. This crate never sees a usable secret.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::{
    account, app_specific_token, oauth_access_token, oauth_application, service_key,
};
use crate::{AccountRow, Db, DbError, now_ms};

/// An OAuth application as stored.
pub type ApplicationRow = oauth_application::Model;

/// An application to register.
#[derive(Clone, Debug)]
pub struct NewApplication {
    pub organization_id: i64,
    pub client_id: String,
    pub client_secret_ciphertext: String,
    pub name: String,
    pub description: String,
    pub redirect_uri: String,
    pub application_uri: String,
    pub avatar_email: Option<String>,
}

/// An access token to store: the lookup half and the hash of the secret half.
#[derive(Clone, Debug)]
pub struct NewAccessToken {
    pub application_id: i64,
    pub account_id: i64,
    pub scope: String,
    pub token_name: String,
    pub token_code_hash: String,
    pub expires_ms: Option<i64>,
}

/// An access token with the account it acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenRow {
    pub token: oauth_access_token::Model,
    pub account: AccountRow,
    pub client_id: String,
}

/// An app-specific token to store.
#[derive(Clone, Debug)]
pub struct NewAppToken {
    pub account_id: i64,
    pub title: String,
    pub token_name: String,
    pub token_secret_hash: String,
    pub expiration_ms: Option<i64>,
}

/// An app-specific token as stored.
pub type AppTokenRow = app_specific_token::Model;

/// A service key as stored.
pub type ServiceKeyRow = service_key::Model;

/// A service key to store.
#[derive(Clone, Debug)]
pub struct NewServiceKey {
    pub kid: String,
    pub service: String,
    pub jwk: String,
    pub private_key_ciphertext: Option<String>,
    pub expiration_ms: Option<i64>,
}

impl Db {
    /// Registers an OAuth application.
    pub async fn create_application(&self, new: NewApplication) -> Result<ApplicationRow, DbError> {
        Ok(
            oauth_application::Entity::insert(oauth_application::ActiveModel {
                organization_id: Set(new.organization_id),
                client_id: Set(new.client_id),
                client_secret_ciphertext: Set(new.client_secret_ciphertext),
                name: Set(new.name),
                description: Set(new.description),
                redirect_uri: Set(new.redirect_uri),
                application_uri: Set(new.application_uri),
                avatar_email: Set(new.avatar_email),
                creation_ms: Set(now_ms()),
                ..Default::default()
            })
            .exec_with_returning(&self.write)
            .await?,
        )
    }

    /// The application with `client_id`.
    pub async fn find_application(
        &self,
        client_id: &str,
    ) -> Result<Option<ApplicationRow>, DbError> {
        Ok(oauth_application::Entity::find()
            .filter(oauth_application::Column::ClientId.eq(client_id))
            .one(&self.read)
            .await?)
    }

    /// The applications of an organization, by name.
    pub async fn list_applications(
        &self,
        organization_id: i64,
    ) -> Result<Vec<ApplicationRow>, DbError> {
        Ok(oauth_application::Entity::find()
            .filter(oauth_application::Column::OrganizationId.eq(organization_id))
            .order_by_asc(oauth_application::Column::Name)
            .all(&self.read)
            .await?)
    }

    /// Saves the editable fields of an application (everything but ids and the secret).
    pub async fn update_application(&self, app: &ApplicationRow) -> Result<(), DbError> {
        oauth_application::Entity::update_many()
            .col_expr(
                oauth_application::Column::Name,
                Expr::value(app.name.clone()),
            )
            .col_expr(
                oauth_application::Column::Description,
                Expr::value(app.description.clone()),
            )
            .col_expr(
                oauth_application::Column::RedirectUri,
                Expr::value(app.redirect_uri.clone()),
            )
            .col_expr(
                oauth_application::Column::ApplicationUri,
                Expr::value(app.application_uri.clone()),
            )
            .col_expr(
                oauth_application::Column::AvatarEmail,
                Expr::value(app.avatar_email.clone()),
            )
            .filter(oauth_application::Column::Id.eq(app.id))
            .exec(&self.write)
            .await?;
        Ok(())
    }

    /// Replaces an application's client secret.
    pub async fn set_client_secret(
        &self,
        application_id: i64,
        ciphertext: &str,
    ) -> Result<(), DbError> {
        oauth_application::Entity::update_many()
            .col_expr(
                oauth_application::Column::ClientSecretCiphertext,
                Expr::value(ciphertext),
            )
            .filter(oauth_application::Column::Id.eq(application_id))
            .exec(&self.write)
            .await?;
        Ok(())
    }

    /// Deletes an application and every token issued for it.
    pub async fn delete_application(&self, application_id: i64) -> Result<bool, DbError> {
        let tx = self.begin_write().await?;
        oauth_access_token::Entity::delete_many()
            .filter(oauth_access_token::Column::ApplicationId.eq(application_id))
            .exec(&tx)
            .await?;
        let removed = oauth_application::Entity::delete_by_id(application_id)
            .exec(&tx)
            .await?
            .rows_affected;
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Stores an access token; returns its uuid.
    pub async fn create_access_token(&self, new: NewAccessToken) -> Result<String, DbError> {
        let uuid = uuid::Uuid::new_v4().to_string();
        oauth_access_token::Entity::insert(oauth_access_token::ActiveModel {
            uuid: Set(uuid.clone()),
            application_id: Set(new.application_id),
            account_id: Set(new.account_id),
            scope: Set(new.scope),
            token_name: Set(new.token_name),
            token_code_hash: Set(new.token_code_hash),
            expires_ms: Set(new.expires_ms),
            creation_ms: Set(now_ms()),
            last_accessed_ms: Set(None),
            ..Default::default()
        })
        .exec(&self.write)
        .await?;
        Ok(uuid)
    }

    /// The access token whose lookup half is `token_name`, with its account and client id.
    pub async fn find_access_token(
        &self,
        token_name: &str,
    ) -> Result<Option<AccessTokenRow>, DbError> {
        let Some(token) = oauth_access_token::Entity::find()
            .filter(oauth_access_token::Column::TokenName.eq(token_name))
            .one(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let account = account::Entity::find_by_id(token.account_id)
            .one(&self.read)
            .await?;
        let app = oauth_application::Entity::find_by_id(token.application_id)
            .one(&self.read)
            .await?;
        Ok(match (account, app) {
            (Some(account), Some(app)) => Some(AccessTokenRow {
                token,
                account: account.into(),
                client_id: app.client_id,
            }),
            _ => None,
        })
    }

    /// Stores an app-specific token.
    pub async fn create_app_token(&self, new: NewAppToken) -> Result<AppTokenRow, DbError> {
        Ok(
            app_specific_token::Entity::insert(app_specific_token::ActiveModel {
                uuid: Set(uuid::Uuid::new_v4().to_string()),
                account_id: Set(new.account_id),
                title: Set(new.title),
                token_name: Set(new.token_name),
                token_secret_hash: Set(new.token_secret_hash),
                expiration_ms: Set(new.expiration_ms),
                creation_ms: Set(now_ms()),
                last_accessed_ms: Set(None),
                ..Default::default()
            })
            .exec_with_returning(&self.write)
            .await?,
        )
    }

    /// The app-specific token whose lookup half is `token_name`, with its account.
    pub async fn find_app_token(
        &self,
        token_name: &str,
    ) -> Result<Option<(AppTokenRow, AccountRow)>, DbError> {
        let Some(token) = app_specific_token::Entity::find()
            .filter(app_specific_token::Column::TokenName.eq(token_name))
            .one(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let account = account::Entity::find_by_id(token.account_id)
            .one(&self.read)
            .await?;
        Ok(account.map(|a| (token, a.into())))
    }

    /// A user's app-specific tokens, oldest first.
    pub async fn list_app_tokens(&self, account_id: i64) -> Result<Vec<AppTokenRow>, DbError> {
        Ok(app_specific_token::Entity::find()
            .filter(app_specific_token::Column::AccountId.eq(account_id))
            .order_by_asc(app_specific_token::Column::Id)
            .all(&self.read)
            .await?)
    }

    /// Revokes one of a user's app-specific tokens; false when there was no such token.
    pub async fn delete_app_token(&self, account_id: i64, uuid: &str) -> Result<bool, DbError> {
        Ok(app_specific_token::Entity::delete_many()
            .filter(app_specific_token::Column::AccountId.eq(account_id))
            .filter(app_specific_token::Column::Uuid.eq(uuid))
            .exec(&self.write)
            .await?
            .rows_affected
            > 0)
    }

    /// Stores a service key.
    pub async fn insert_service_key(&self, new: NewServiceKey) -> Result<ServiceKeyRow, DbError> {
        Ok(service_key::Entity::insert(service_key::ActiveModel {
            kid: Set(new.kid),
            service: Set(new.service),
            jwk: Set(new.jwk),
            private_key_ciphertext: Set(new.private_key_ciphertext),
            creation_ms: Set(now_ms()),
            expiration_ms: Set(new.expiration_ms),
            ..Default::default()
        })
        .exec_with_returning(&self.write)
        .await?)
    }

    /// The unexpired keys of a service, newest first.
    pub async fn service_keys(&self, service: &str) -> Result<Vec<ServiceKeyRow>, DbError> {
        Ok(service_key::Entity::find()
            .filter(service_key::Column::Service.eq(service))
            .filter(
                Condition::any()
                    .add(service_key::Column::ExpirationMs.is_null())
                    .add(service_key::Column::ExpirationMs.gt(now_ms())),
            )
            .order_by_desc(service_key::Column::Id)
            .all(&self.read)
            .await?)
    }

    /// The key with id `kid`, expired or not (the caller checks expiry).
    pub async fn find_service_key(&self, kid: &str) -> Result<Option<ServiceKeyRow>, DbError> {
        Ok(service_key::Entity::find()
            .filter(service_key::Column::Kid.eq(kid))
            .one(&self.read)
            .await?)
    }
}
