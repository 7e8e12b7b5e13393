-- ListConversations reads its page from the index alone: with the topic
-- in it, each row of a page no longer costs a lookup in the table.
CREATE INDEX conversations_by_group_page ON conversations (tenant_id, group_id, created_at, id, topic);
DROP INDEX conversations_by_group;
