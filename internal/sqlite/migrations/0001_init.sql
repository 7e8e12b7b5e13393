-- Every table's key starts with tenant_id, except keys, which is looked up
-- by hash before the tenant is known. Timestamps are unix microseconds.

CREATE TABLE conversations (
    tenant_id    TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    group_id     TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    -- The newest message's seq and sent_at: the per-conversation counter
    -- that CreateMessage advances under the write lock.
    last_seq     INTEGER NOT NULL DEFAULT 0,
    last_sent_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;

-- ListConversations: newest first within a group.
CREATE INDEX conversations_by_group ON conversations (tenant_id, group_id, created_at, id);

-- Messages are clustered by conversation and time, so a page of history
-- (newest first, before a sent_at) is one range scan of the primary key.
CREATE TABLE messages (
    tenant_id       TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    sent_at         INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    id              TEXT    NOT NULL,
    author_id       TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, sent_at)
) WITHOUT ROWID;

-- Idempotent CreateMessage: one message per client id in a tenant.
CREATE UNIQUE INDEX messages_by_id ON messages (tenant_id, id);

-- Conversations whose messages are still being removed in batches. A row
-- here survives a crash, so the purge resumes at the next start.
CREATE TABLE deleted_conversations (
    tenant_id  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;

CREATE TABLE keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    hash       BLOB    NOT NULL,
    admin      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE UNIQUE INDEX keys_by_hash ON keys (hash);
