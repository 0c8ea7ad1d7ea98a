-- Namespaces: users, organizations and robots share one table and one set of names (Quay's User).
CREATE TABLE account (
    id {id},
    username TEXT NOT NULL UNIQUE,
    email TEXT,
    organization BOOLEAN NOT NULL DEFAULT FALSE,
    robot BOOLEAN NOT NULL DEFAULT FALSE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    uuid TEXT NOT NULL UNIQUE,
    removed_tag_expiration_s BIGINT NOT NULL DEFAULT 1209600,
    creation_ms BIGINT NOT NULL
);

CREATE TABLE repository (
    id {id},
    namespace_id BIGINT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    visibility TEXT NOT NULL DEFAULT 'private',
    state INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'image',
    description TEXT,
    creation_ms BIGINT NOT NULL,
    UNIQUE (namespace_id, name)
);

CREATE TABLE storage_location (
    id {id},
    name TEXT NOT NULL UNIQUE
);

-- One row per digest. The object key is chosen when the upload starts, so committing an upload
-- never copies bytes; the digest is only known (and checked) at the end.
CREATE TABLE blob (
    id {id},
    digest TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    storage_key TEXT NOT NULL,
    creation_ms BIGINT NOT NULL
);

CREATE TABLE blob_placement (
    id {id},
    blob_id BIGINT NOT NULL REFERENCES blob (id),
    location_id BIGINT NOT NULL REFERENCES storage_location (id),
    UNIQUE (blob_id, location_id)
);
CREATE INDEX blob_placement_location ON blob_placement (location_id);

-- A pushed or mounted blob not yet referenced by a manifest stays alive until expires_ms.
CREATE TABLE uploaded_blob (
    id {id},
    repository_id BIGINT NOT NULL REFERENCES repository (id),
    blob_id BIGINT NOT NULL REFERENCES blob (id),
    uploaded_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX uploaded_blob_repository_blob ON uploaded_blob (repository_id, blob_id);
CREATE INDEX uploaded_blob_blob ON uploaded_blob (blob_id);
CREATE INDEX uploaded_blob_expires ON uploaded_blob (expires_ms);

CREATE TABLE blob_upload (
    id {id},
    uuid TEXT NOT NULL UNIQUE,
    repository_id BIGINT NOT NULL REFERENCES repository (id),
    location_id BIGINT NOT NULL REFERENCES storage_location (id),
    byte_count BIGINT NOT NULL DEFAULT 0,
    hash_state {bytes} NOT NULL,
    storage_state TEXT NOT NULL,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    creation_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX blob_upload_updated ON blob_upload (updated_ms);

CREATE TABLE manifest (
    id {id},
    repository_id BIGINT NOT NULL REFERENCES repository (id),
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    manifest_bytes {bytes} NOT NULL,
    config_media_type TEXT,
    artifact_type TEXT,
    subject TEXT,
    layers_size BIGINT NOT NULL DEFAULT 0,
    creation_ms BIGINT NOT NULL,
    UNIQUE (repository_id, digest)
);
CREATE INDEX manifest_subject ON manifest (repository_id, subject);

CREATE TABLE manifest_blob (
    id {id},
    repository_id BIGINT NOT NULL REFERENCES repository (id),
    manifest_id BIGINT NOT NULL REFERENCES manifest (id),
    blob_id BIGINT NOT NULL REFERENCES blob (id),
    UNIQUE (manifest_id, blob_id)
);
CREATE INDEX manifest_blob_blob ON manifest_blob (blob_id);
CREATE INDEX manifest_blob_repository_blob ON manifest_blob (repository_id, blob_id);

CREATE TABLE manifest_child (
    id {id},
    repository_id BIGINT NOT NULL REFERENCES repository (id),
    manifest_id BIGINT NOT NULL REFERENCES manifest (id),
    child_manifest_id BIGINT NOT NULL REFERENCES manifest (id),
    UNIQUE (manifest_id, child_manifest_id)
);
CREATE INDEX manifest_child_child ON manifest_child (child_manifest_id);

-- Tag history. A row is alive while lifetime_end_ms is NULL or in the future.
CREATE TABLE tag (
    id {id},
    repository_id BIGINT NOT NULL REFERENCES repository (id),
    name TEXT NOT NULL,
    manifest_id BIGINT NOT NULL REFERENCES manifest (id),
    lifetime_start_ms BIGINT NOT NULL,
    lifetime_end_ms BIGINT,
    hidden BOOLEAN NOT NULL DEFAULT FALSE,
    reversion BOOLEAN NOT NULL DEFAULT FALSE,
    immutable BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (repository_id, name, lifetime_end_ms)
);
-- At most one open-ended row per name: the NULL end escapes the unique constraint above.
CREATE UNIQUE INDEX tag_open_name ON tag (repository_id, name) WHERE lifetime_end_ms IS NULL;
CREATE INDEX tag_manifest ON tag (manifest_id);
CREATE INDEX tag_end ON tag (lifetime_end_ms);

CREATE TABLE queue_item (
    id {id},
    queue_name TEXT NOT NULL,
    body TEXT NOT NULL,
    available_after_ms BIGINT NOT NULL,
    available BOOLEAN NOT NULL DEFAULT TRUE,
    processing_expires_ms BIGINT,
    retries_remaining INTEGER NOT NULL DEFAULT 5,
    state_id TEXT NOT NULL UNIQUE
);
CREATE INDEX queue_item_claim ON queue_item (queue_name, available, available_after_ms, retries_remaining);
CREATE INDEX queue_item_expires ON queue_item (processing_expires_ms, available);
