-- Sign-in data of user accounts (Quay's User columns). Superusers normally come from the
-- configuration (SUPER_USERS); the flag records ones made with `wharf admin create-user
-- --superuser` for installations without a config file.
ALTER TABLE account ADD COLUMN password_hash TEXT;
ALTER TABLE account ADD COLUMN verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE account ADD COLUMN superuser BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE account ADD COLUMN invalid_login_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE account ADD COLUMN last_invalid_login_ms BIGINT;
ALTER TABLE account ADD COLUMN given_name TEXT;
ALTER TABLE account ADD COLUMN family_name TEXT;
ALTER TABLE account ADD COLUMN company TEXT;
ALTER TABLE account ADD COLUMN location TEXT;
CREATE INDEX account_email ON account (email);
