-- Who may do what (Quay's Team, TeamMember, RepositoryPermission, PermissionPrototype), robot
-- accounts, OAuth applications and tokens, app-specific tokens and the keys that sign registry
-- tokens. Roles are stored by name: repository roles `read`/`write`/`admin`, team roles
-- `member`/`creator`/`admin`.

CREATE TABLE team (
    id {id},
    organization_id BIGINT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    UNIQUE (organization_id, name)
);

CREATE TABLE team_member (
    id {id},
    team_id BIGINT NOT NULL REFERENCES team (id),
    account_id BIGINT NOT NULL REFERENCES account (id),
    UNIQUE (team_id, account_id)
);
CREATE INDEX team_member_account ON team_member (account_id);

-- Exactly one of account_id (a user or robot) and team_id is set.
CREATE TABLE repository_permission (
    id {id},
    repository_id BIGINT NOT NULL REFERENCES repository (id),
    account_id BIGINT REFERENCES account (id),
    team_id BIGINT REFERENCES team (id),
    role TEXT NOT NULL,
    CHECK ((account_id IS NULL) <> (team_id IS NULL))
);
CREATE UNIQUE INDEX repository_permission_repo_account
    ON repository_permission (repository_id, account_id) WHERE account_id IS NOT NULL;
CREATE UNIQUE INDEX repository_permission_repo_team
    ON repository_permission (repository_id, team_id) WHERE team_id IS NOT NULL;
CREATE INDEX repository_permission_account ON repository_permission (account_id);
CREATE INDEX repository_permission_team ON repository_permission (team_id);

-- Default permissions of an organization, applied to every repository created in it. A null
-- activating account applies to repositories created by anyone.
CREATE TABLE permission_prototype (
    id {id},
    uuid TEXT NOT NULL UNIQUE,
    organization_id BIGINT NOT NULL REFERENCES account (id),
    activating_account_id BIGINT REFERENCES account (id),
    delegate_account_id BIGINT REFERENCES account (id),
    delegate_team_id BIGINT REFERENCES team (id),
    role TEXT NOT NULL,
    CHECK ((delegate_account_id IS NULL) <> (delegate_team_id IS NULL))
);
CREATE INDEX permission_prototype_organization ON permission_prototype (organization_id);

-- A robot is an account row (robot = TRUE, username `owner+name`) plus this row. The token is
-- encrypted with DATABASE_SECRET_KEY because Quay shows it again on request.
CREATE TABLE robot (
    id {id},
    account_id BIGINT NOT NULL UNIQUE REFERENCES account (id),
    owner_id BIGINT NOT NULL REFERENCES account (id),
    token_ciphertext TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    unstructured_json TEXT NOT NULL DEFAULT '{}',
    last_accessed_ms BIGINT
);
CREATE INDEX robot_owner ON robot (owner_id);

CREATE TABLE oauth_application (
    id {id},
    organization_id BIGINT NOT NULL REFERENCES account (id),
    client_id TEXT NOT NULL UNIQUE,
    client_secret_ciphertext TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    redirect_uri TEXT NOT NULL DEFAULT '',
    application_uri TEXT NOT NULL DEFAULT '',
    avatar_email TEXT,
    creation_ms BIGINT NOT NULL
);
CREATE INDEX oauth_application_organization ON oauth_application (organization_id);

-- The presented token is token_name (20 characters, the lookup half) followed by a secret whose
-- SHA-256 is stored: the database never holds a usable bearer token.
CREATE TABLE oauth_access_token (
    id {id},
    uuid TEXT NOT NULL UNIQUE,
    application_id BIGINT NOT NULL REFERENCES oauth_application (id),
    account_id BIGINT NOT NULL REFERENCES account (id),
    scope TEXT NOT NULL,
    token_name TEXT NOT NULL UNIQUE,
    token_code_hash TEXT NOT NULL,
    expires_ms BIGINT,
    creation_ms BIGINT NOT NULL,
    last_accessed_ms BIGINT
);
CREATE INDEX oauth_access_token_account ON oauth_access_token (account_id);
CREATE INDEX oauth_access_token_application ON oauth_access_token (application_id);

-- Per-user CLI passwords (`$app`), split like OAuth tokens: a 60-character lookup half and a
-- hashed secret half.
CREATE TABLE app_specific_token (
    id {id},
    uuid TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL REFERENCES account (id),
    title TEXT NOT NULL,
    token_name TEXT NOT NULL UNIQUE,
    token_secret_hash TEXT NOT NULL,
    expiration_ms BIGINT,
    creation_ms BIGINT NOT NULL,
    last_accessed_ms BIGINT
);
CREATE INDEX app_specific_token_account ON app_specific_token (account_id);

-- Keys that sign registry bearer tokens (Quay's ServiceKey). Every node reads the public JWKs to
-- verify any node's tokens; the private key of a key this installation signs with is kept
-- encrypted with DATABASE_SECRET_KEY so every node can sign with it.
CREATE TABLE service_key (
    id {id},
    kid TEXT NOT NULL UNIQUE,
    service TEXT NOT NULL,
    jwk TEXT NOT NULL,
    private_key_ciphertext TEXT,
    creation_ms BIGINT NOT NULL,
    expiration_ms BIGINT
);
CREATE INDEX service_key_service ON service_key (service);

-- Questions asked at the next sign-in (FEATURE_USER_METADATA): enter_name, enter_company, ….
CREATE TABLE user_prompt (
    id {id},
    account_id BIGINT NOT NULL REFERENCES account (id),
    kind TEXT NOT NULL,
    UNIQUE (account_id, kind)
);

ALTER TABLE account ADD COLUMN last_accessed_ms BIGINT;
