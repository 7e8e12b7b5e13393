-- The event log (docs/postgres.md, "Live events across replicas"). Each
-- row is written by the transaction that made the change it describes, so
-- it exists exactly when the change does.
--
-- A position is (txid, id): the writing transaction's 64-bit id, then the
-- row's serial. Readers only return rows whose txid is below the oldest
-- transaction still in flight, so a transaction that commits late can
-- never land before a position a reader has already passed. A plain
-- serial would not do: serials are taken at insert time, not at commit,
-- so id 7 may become visible after id 8 has been read.

CREATE TABLE events (
    tenant_id       text COLLATE "C" NOT NULL,
    txid            xid8   NOT NULL DEFAULT pg_current_xact_id(),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    -- When the event happened, unix microseconds on the database's clock:
    -- what retention and purging go by.
    at              bigint NOT NULL,
    type            text   NOT NULL,
    group_id        text COLLATE "C" NOT NULL,
    conversation_id text COLLATE "C" NOT NULL,
    -- Event.MarshalData's output: new event types need no schema change.
    data            jsonb  NOT NULL,
    PRIMARY KEY (tenant_id, txid, id)
);

-- A stream filtered by group or by conversations reads one of these, in
-- position order.
CREATE INDEX events_by_group ON events (tenant_id, group_id, txid, id);
CREATE INDEX events_by_conversation ON events (tenant_id, conversation_id, txid, id);

-- PurgeEvents removes old events of every tenant at once, oldest first.
-- It is the one index that does not start with tenant_id: it is not a key
-- (nothing unique), so a tenant-sharded deployment keeps it per shard.
CREATE INDEX events_by_at ON events (at);
