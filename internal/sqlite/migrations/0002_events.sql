-- Live events (DESIGN.md §4). Every change is also written here, in the
-- same transaction as the change, so the log holds exactly the changes
-- that committed, and a subscriber that resumes from a cursor replays them
-- in order. Keys start with tenant_id, like every other table.

-- The per-tenant position counter. A new event takes last_pos + 1 from
-- here, not max(pos) + 1 from events, so positions never go back, even
-- after PurgeEvents removed a tenant's newest events: a cursor a client
-- holds can never come to name a different event. last_at is the newest
-- event's time; an event's time is never before it, so within a tenant
-- time grows with pos even if the clock steps back, and purging by time
-- removes a prefix of the log, never a hole in the middle.
CREATE TABLE event_heads (
    tenant_id TEXT    NOT NULL PRIMARY KEY,
    last_pos  INTEGER NOT NULL,
    last_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per event. The primary key is the tenant's log in order: a
-- replay of everything after a cursor is one range of it. data is the
-- event's object as JSON (threads.Event.MarshalData), so new event types
-- need no schema change.
CREATE TABLE events (
    tenant_id       TEXT    NOT NULL,
    pos             INTEGER NOT NULL,
    at              INTEGER NOT NULL, -- unix microseconds
    type            TEXT    NOT NULL,
    group_id        TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, pos)
) WITHOUT ROWID;

-- A replay filtered by group or by conversation reads only matching
-- events, in pos order, from one of these.
CREATE INDEX events_by_group ON events (tenant_id, group_id, pos);
CREATE INDEX events_by_conversation ON events (tenant_id, conversation_id, pos);

-- PurgeEvents removes the oldest events of every tenant at once.
CREATE INDEX events_by_at ON events (at);
