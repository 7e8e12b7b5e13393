\set n random(1, 100)
INSERT INTO bench_insert (tenant_id, conversation_id, sent_at, id, author_id, text) VALUES ('bench', 'conv-' || :n, (extract(epoch from clock_timestamp()) * 1000000)::bigint, gen_random_uuid()::text, 'bench', 'message: the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs');
