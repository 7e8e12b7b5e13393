DROP TABLE IF EXISTS bench_insert;
CREATE TABLE bench_insert (
  serial bigserial PRIMARY KEY,
  tenant_id text NOT NULL, conversation_id text NOT NULL, sent_at bigint NOT NULL,
  id text NOT NULL, author_id text NOT NULL, text text NOT NULL);
