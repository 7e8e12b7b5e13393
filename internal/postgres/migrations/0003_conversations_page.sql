-- SQLite's 0003 makes ListConversations read its page from an index alone
-- (the topic added to the group index). PostgreSQL's page is an index
-- range scan with a heap fetch per row, which costs no more than the
-- index-only scan would once the visibility map is not all-visible: no
-- change here. The migration exists so that both engines carry the same
-- numbers (cmd/threads TestMigrationsMatch).
SELECT 1;
