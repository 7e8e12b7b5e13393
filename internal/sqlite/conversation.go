package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/threads-server/threads"
)

// purgeBatch is how many messages one purge transaction removes: small
// enough that writers waiting for the lock are delayed by milliseconds.
const purgeBatch = 1000

// The statements whose plans plan_test.go checks (see docs/query-plans.md).
const (
	// sqlFindConversation is one lookup of the primary key.
	sqlFindConversation = `SELECT id, group_id, topic, created_at FROM conversations WHERE tenant_id = ? AND id = ?`
	// sqlListConversations is one backward range scan of
	// conversations_by_group_page, starting after the cursor.
	sqlListConversations = `SELECT id, group_id, topic, created_at FROM conversations
		WHERE tenant_id = ? AND group_id = ? AND (created_at, id) < (?, ?)
		ORDER BY created_at DESC, id DESC LIMIT ?`
	// sqlPurgeBatch removes up to ?3 messages of a deleted conversation:
	// a range of the primary key.
	sqlPurgeBatch = `DELETE FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2 AND sent_at IN (
		SELECT sent_at FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2 LIMIT ?3)`
)

// CreateConversation writes the conversation and its conversation.created
// event in one change; c is updated only once both are committed.
func (db *DB) CreateConversation(ctx context.Context, tenant string, c *threads.Conversation) error {
	created := *c
	created.CreatedAt = threads.FromMicros(db.now())
	err := db.change(ctx, tenant, func(ctx context.Context, tx *changeTx) ([]*threads.Event, error) {
		_, err := tx.Exec(ctx, `INSERT INTO conversations (tenant_id, id, group_id, topic, created_at) VALUES (?, ?, ?, ?, ?)`,
			tenant, c.ID, c.GroupID, c.Topic, threads.Micros(created.CreatedAt))
		if err != nil {
			return nil, err
		}
		return []*threads.Event{threads.NewConversationEvent(threads.EventConversationCreated, &created)}, nil
	})
	if err != nil {
		return err
	}
	c.CreatedAt = created.CreatedAt
	return nil
}

func (db *DB) FindConversation(ctx context.Context, tenant, id, groupID string) (*threads.Conversation, error) {
	c, err := scanConversation(db.queryRow(ctx, sqlFindConversation, tenant, id))
	if err != nil {
		return nil, err
	}
	if !c.InGroup(groupID) {
		return nil, threads.ErrConversationNotFound
	}
	return c, nil
}

func (db *DB) UpdateConversation(ctx context.Context, tenant, id, topic string) (*threads.Conversation, error) {
	var c *threads.Conversation
	err := db.change(ctx, tenant, func(ctx context.Context, tx *changeTx) (_ []*threads.Event, err error) {
		c, err = scanConversation(tx.QueryRow(ctx,
			`UPDATE conversations SET topic = ? WHERE tenant_id = ? AND id = ? RETURNING id, group_id, topic, created_at`,
			topic, tenant, id))
		if err != nil {
			return nil, err
		}
		return []*threads.Event{threads.NewConversationEvent(threads.EventConversationUpdated, c)}, nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DeleteConversation removes the conversation row and records a tombstone
// in one small transaction (from then on the conversation is NOT_FOUND and
// takes no messages), then removes its messages in batches. If the process
// stops half way, the tombstone makes the next start finish the job. The
// conversation.deleted event carries the conversation as it was, and is
// committed with the delete, not after the purge: the messages are gone
// for every reader from that moment. The purge runs in the background,
// owned by the store: the call waits for it only while ctx lasts, so a
// huge conversation cannot hold the request past its deadline; what is
// left goes on after the answer.
func (db *DB) DeleteConversation(ctx context.Context, tenant, id string) error {
	err := db.change(ctx, tenant, func(ctx context.Context, tx *changeTx) ([]*threads.Event, error) {
		c, err := scanConversation(tx.QueryRow(ctx,
			`DELETE FROM conversations WHERE tenant_id = ? AND id = ? RETURNING id, group_id, topic, created_at`, tenant, id))
		if err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, `INSERT OR REPLACE INTO deleted_conversations (tenant_id, id, deleted_at) VALUES (?, ?, ?)`,
			tenant, id, db.now())
		if err != nil {
			return nil, err
		}
		return []*threads.Event{threads.NewConversationEvent(threads.EventConversationDeleted, c)}, nil
	})
	if err != nil {
		return err
	}
	return db.maint.Purge(tenant, id, db.logPurge).Wait(ctx)
}

// purge removes a deleted conversation's messages, purgeBatch at a time,
// then its tombstone. The batch that finds nothing to delete removes the
// tombstone in the same transaction: with one writer, that batch's
// subquery finding no message means that none is left.
func (db *DB) purge(ctx context.Context, tenant, id string) error {
	for {
		var n int64
		err := db.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, sqlPurgeBatch, tenant, id, purgeBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			if err == nil && n == 0 {
				_, err = tx.ExecContext(ctx, `DELETE FROM deleted_conversations WHERE tenant_id = ? AND id = ?`, tenant, id)
			}
			return err
		})
		if err != nil || n == 0 {
			return err
		}
	}
}

// logPurge is purge, logging its failure (the sweep will try again).
func (db *DB) logPurge(ctx context.Context, tenant, id string) error {
	err := db.purge(ctx, tenant, id)
	if err != nil && ctx.Err() == nil {
		db.log.Error("purge deleted conversation", "tenant", tenant, "conversation", id, "err", err)
	}
	return err
}

// purgeDeleted finishes every purge recorded by a tombstone, one at a
// time.
func (db *DB) purgeDeleted(ctx context.Context) {
	rows, err := db.r.QueryContext(ctx, `SELECT tenant_id, id FROM deleted_conversations`)
	if err != nil {
		if ctx.Err() == nil {
			db.log.Error("list deleted conversations", "err", err)
		}
		return
	}
	var todo [][2]string
	for rows.Next() {
		var t, id string
		if err := rows.Scan(&t, &id); err == nil {
			todo = append(todo, [2]string{t, id})
		}
	}
	rows.Close()
	for _, d := range todo {
		select {
		case <-db.maint.Purge(d[0], d[1], db.logPurge).Done():
		case <-ctx.Done():
			return
		}
	}
}

func (db *DB) ListConversations(ctx context.Context, tenant string, f threads.ConversationFilter) ([]*threads.Conversation, threads.ConversationCursor, error) {
	after := f.ReadAfter()
	rows, err := db.query(ctx, sqlListConversations, tenant, f.GroupID, after.CreatedAt, after.ID, f.PageRows())
	if err != nil {
		return nil, threads.ConversationCursor{}, mapErr(err)
	}
	defer rows.Close()
	out := make([]*threads.Conversation, 0, min(f.Limit, 64))
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, threads.ConversationCursor{}, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, threads.ConversationCursor{}, mapErr(err)
	}
	out, next := f.Page(out)
	return out, next, nil
}

type scanner interface{ Scan(...any) error }

func scanConversation(s scanner) (*threads.Conversation, error) {
	var c threads.Conversation
	var created int64
	if err := s.Scan(&c.ID, &c.GroupID, &c.Topic, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, threads.ErrConversationNotFound
		}
		return nil, mapErr(err)
	}
	c.CreatedAt = threads.FromMicros(created)
	return &c, nil
}
