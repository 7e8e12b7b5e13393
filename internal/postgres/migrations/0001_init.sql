-- The same model as SQLite's 0001_init.sql. Every primary key and index
-- starts with tenant_id, so a tenant-sharded deployment (Citus, with
-- tenant_id as distribution column) can take this schema unchanged; keys
-- is looked up by hash before the tenant is known, so it would be a
-- reference table there. Timestamps are unix microseconds (bigint), the
-- precision the API shows. Key columns use the "C" collation: byte order,
-- the same as SQLite's, and cheaper comparisons.

CREATE TABLE conversations (
    tenant_id    text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    group_id     text COLLATE "C" NOT NULL,
    topic        text   NOT NULL,
    created_at   bigint NOT NULL,
    -- The newest message's seq and sent_at: the per-conversation counter
    -- that CreateMessage advances under this row's lock.
    last_seq     bigint NOT NULL DEFAULT 0,
    last_sent_at bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX conversations_by_group ON conversations (tenant_id, group_id, created_at, id);

CREATE TABLE messages (
    tenant_id       text COLLATE "C" NOT NULL,
    conversation_id text COLLATE "C" NOT NULL,
    sent_at         bigint NOT NULL,
    seq             bigint NOT NULL,
    id              text COLLATE "C" NOT NULL,
    author_id       text   NOT NULL,
    text            text   NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, sent_at)
);

-- Idempotent CreateMessage: two replicas racing with one client id store
-- one message, because this index lets only one insert through.
CREATE UNIQUE INDEX messages_by_id ON messages (tenant_id, id);

CREATE TABLE deleted_conversations (
    tenant_id  text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    deleted_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE keys (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id  text    NOT NULL,
    hash       bytea   NOT NULL,
    admin      boolean NOT NULL,
    created_at bigint  NOT NULL,
    revoked_at bigint  NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX keys_by_hash ON keys (hash);
