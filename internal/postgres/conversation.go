package postgres

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads"
)

// purgeBatch is how many messages one purge statement removes.
const purgeBatch = 1000

// createConversation is CreateConversation's change, one statement: the
// row, and its conversation.created event (change.go: newStatement), whose
// data is Go's template with created_at filled in (see the path constants
// in event.go). $1 tenant, $2 id, $3 group, $4 topic, $5 the event's type,
// $6 its template.
var createConversation = newStatement("CreateConversation", false, statement{
	params: 6,
	writes: `c AS (
	INSERT INTO conversations (tenant_id, id, group_id, topic, created_at)
	SELECT $1, $2, $3, $4, ` + nowMicros + ` FROM l RETURNING created_at)`,
	eventAt: `c.created_at`, eventType: `$5`, eventGroup: `$3`, eventConversation: `$2`,
	eventData: `jsonb_set($6::jsonb, '` + pathCreatedAt + `', ` + jsonTime("c.created_at") + `)`,
	eventFrom: `c`,
	result:    `c.created_at FROM c`,
})

func (db *DB) CreateConversation(ctx context.Context, tenant string, c *threads.Conversation) error {
	tmpl := *c
	tmpl.CreatedAt = time.Time{}
	data, err := threads.NewConversationEvent(threads.EventConversationCreated, &tmpl).MarshalData()
	if err != nil {
		return threads.Internal(err)
	}
	var created int64
	if err := db.changeStatement(ctx, createConversation, tenant, c.ID,
		[]any{tenant, c.ID, c.GroupID, c.Topic, threads.EventConversationCreated, data}, &created); err != nil {
		return mapErr(err)
	}
	c.CreatedAt = threads.FromMicros(created)
	return nil
}

func (db *DB) FindConversation(ctx context.Context, tenant, id, groupID string) (*threads.Conversation, error) {
	c, err := scanConversation(db.pool.QueryRow(ctx,
		`SELECT id, group_id, topic, created_at FROM conversations WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if err != nil {
		return nil, err
	}
	if !c.InGroup(groupID) {
		return nil, threads.ErrConversationNotFound
	}
	return c, nil
}

// The writers of UpdateConversation and DeleteConversation: a
// transaction each (change.go: change), whose event is a second statement,
// since it needs the row as the first statement returns it. They are rare.
var (
	updateConversation = newWriter("UpdateConversation", true)
	deleteConversation = newWriter("DeleteConversation", true)
)

func (db *DB) UpdateConversation(ctx context.Context, tenant, id, topic string) (*threads.Conversation, error) {
	var c *threads.Conversation
	err := db.change(ctx, updateConversation, tenant, id, func(ctx context.Context, tx *changeTx) (_ []*threads.Event, err error) {
		c, err = scanConversation(tx.QueryRow(ctx,
			`UPDATE conversations SET topic = $3 WHERE tenant_id = $1 AND id = $2 RETURNING id, group_id, topic, created_at`,
			tenant, id, topic))
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

// DeleteConversation removes the row, writes a tombstone and the
// conversation.deleted event (the conversation as it was) in one
// transaction, then purges the messages (see the SQLite store: the same
// design, for the same reasons). The purge runs in the background, owned
// by the store: the call waits for it only while ctx lasts, so a huge
// conversation cannot hold the request past its deadline; what is left
// then goes on after the answer, and the sweep finishes it if this
// process stops first.
func (db *DB) DeleteConversation(ctx context.Context, tenant, id string) error {
	err := db.change(ctx, deleteConversation, tenant, id, func(ctx context.Context, tx *changeTx) ([]*threads.Event, error) {
		c, err := scanConversation(tx.QueryRow(ctx, `WITH d AS (
				DELETE FROM conversations WHERE tenant_id = $1 AND id = $2 RETURNING id, group_id, topic, created_at),
			t AS (
				INSERT INTO deleted_conversations (tenant_id, id, deleted_at) SELECT $1, id, `+nowMicros+` FROM d
				ON CONFLICT (tenant_id, id) DO NOTHING)
			SELECT id, group_id, topic, created_at FROM d`, tenant, id))
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

// The purge's statements, whose plans plan_test.go checks on a fresh and
// on an analyzed table. Neither joins: each reads ranges of the primary
// key (tenant_id, conversation_id, sent_at) in index order, so its cost is
// the batch's, not the conversation's.
var (
	// sqlPurgeBatch deletes the first purgeBatch messages of the
	// conversation after sent_at $3 and returns the last one's sent_at
	// (NULL: none is left after $3). The batch's keys are read in index
	// order, and the delete is the key range they span. Starting after
	// the previous batch, rather than at the conversation's first key,
	// keeps a batch from walking the index entries of the rows that the
	// batches before it deleted (dead until vacuum). The batch size is
	// written into the statement: as a parameter, a generic plan would
	// guess a tenth of the conversation for it.
	//
	// Once the statement returns, no message up to that sent_at is left,
	// even with another purge of the conversation running: a row that the
	// other one deleted but had not committed is waited for, then skipped
	// if it committed, deleted here if it rolled back. No message can be
	// added to a deleted conversation, so the next batch may start there.
	sqlPurgeBatch = `WITH b AS (
		SELECT sent_at FROM messages WHERE tenant_id = $1 AND conversation_id = $2 AND sent_at > $3
		ORDER BY sent_at LIMIT ` + strconv.Itoa(purgeBatch) + `),
	d AS (
		DELETE FROM messages WHERE tenant_id = $1 AND conversation_id = $2
		AND sent_at > $3 AND sent_at <= (SELECT max(sent_at) FROM b))
	SELECT max(sent_at) FROM b`
	// sqlPurgeDone removes the tombstone only if no message of the
	// conversation is left, and says whether one is (one whose delete by
	// another transaction had not committed when the statement began).
	// The check reads the conversation's first key in index order (an
	// EXISTS would drop the ORDER BY, and statistics from before the
	// purge, the conversation filling the table, made it a scan of the
	// whole table).
	sqlPurgeDone = `WITH f AS (
		SELECT sent_at FROM messages WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY sent_at LIMIT 1),
	t AS (
		DELETE FROM deleted_conversations WHERE tenant_id = $1 AND id = $2 AND NOT EXISTS (SELECT FROM f))
	SELECT EXISTS (SELECT FROM f)`
)

// sqlPurgePlan runs before each purge statement, in its transaction: it
// takes from the planner the plans that are not walks of the primary key
// in order, for that transaction only. ORDER BY the index with a LIMIT is
// not enough by itself: once the table is analyzed, the generic plan that
// a prepared statement gets after five runs guessed a third of the
// conversation after $3 and chose a bitmap scan of all of it and a sort,
// per batch (plan_test.go).
const sqlPurgePlan = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
	set_config('enable_sort', 'off', true)`

// purgeStep runs one purge statement after sqlPurgePlan, in one
// transaction and one round trip, and scans its row into dst.
func (db *DB) purgeStep(ctx context.Context, dst any, stmt string, args ...any) error {
	var b pgx.Batch
	b.Queue(sqlPurgePlan)
	b.Queue(stmt, args...).QueryRow(func(row pgx.Row) error { return row.Scan(dst) })
	return mapErr(db.pool.SendBatch(ctx, &b).Close())
}

// purge removes a deleted conversation's messages purgeBatch at a time,
// each batch its own short transaction, then the tombstone, which goes
// only once a statement finds no message of the conversation left: a
// batch that deletes nothing proves nothing, since another purge of the
// same conversation (the sweep of another replica, or the batch that a
// killed process left running in its backend) may have taken its rows.
// Purges of one conversation running at once, here or elsewhere, each go
// on until nothing is left.
func (db *DB) purge(ctx context.Context, tenant, id string) error {
	after := int64(math.MinInt64)
	for {
		var last *int64
		if err := db.purgeStep(ctx, &last, sqlPurgeBatch, tenant, id, after); err != nil {
			return err
		}
		if last != nil {
			after = *last
			continue
		}
		var left bool
		if err := db.purgeStep(ctx, &left, sqlPurgeDone, tenant, id); err != nil {
			return err
		}
		if !left {
			return nil
		}
		// Rows that another purge was deleting when this one passed
		// them: go round again, waiting for it.
		after = math.MinInt64
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
	rows, err := db.pool.Query(ctx, `SELECT tenant_id, id FROM deleted_conversations`)
	if err != nil {
		if ctx.Err() == nil {
			db.log.Warn("list deleted conversations", "err", err)
		}
		return
	}
	todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var d [2]string
		return d, r.Scan(&d[0], &d[1])
	})
	if err != nil {
		return
	}
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
	rows, err := db.pool.Query(ctx, `SELECT id, group_id, topic, created_at FROM conversations
		WHERE tenant_id = $1 AND group_id = $2 AND (created_at, id) < ($3, $4)
		ORDER BY created_at DESC, id DESC LIMIT $5`, tenant, f.GroupID, after.CreatedAt, after.ID, f.PageRows())
	if err != nil {
		return nil, threads.ConversationCursor{}, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*threads.Conversation, error) { return scanConversation(r) })
	if err != nil {
		return nil, threads.ConversationCursor{}, mapErr(err)
	}
	out, next := f.Page(out)
	return out, next, nil
}

func scanConversation(row pgx.Row) (*threads.Conversation, error) {
	var c threads.Conversation
	var created int64
	if err := row.Scan(&c.ID, &c.GroupID, &c.Topic, &created); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, threads.ErrConversationNotFound
		}
		return nil, mapErr(err)
	}
	c.CreatedAt = threads.FromMicros(created)
	return &c, nil
}
