package postgres

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads"
)

// purgeBatch is how many messages one purge statement removes.
const purgeBatch = 1000

// insertConversation inserts the row and its conversation.created event
// in one statement; see the path constants in event.go.
var insertConversation = `WITH ` + lockCTE("$7", "") + `,
c AS (
	INSERT INTO conversations (tenant_id, id, group_id, topic, created_at)
	SELECT $1, $2, $3, $4, ` + nowMicros + ` FROM l RETURNING created_at)
INSERT INTO events (tenant_id, at, type, group_id, conversation_id, data)
SELECT $1, c.created_at, $5, $3, $2, jsonb_set($6::jsonb, '` + pathCreatedAt + `', ` + jsonTime("c.created_at") + `) FROM c
RETURNING at, ` + txidOut

func (db *DB) CreateConversation(ctx context.Context, tenant string, c *threads.Conversation) error {
	tmpl := *c
	tmpl.CreatedAt = time.Time{}
	data, err := threads.NewConversationEvent(threads.EventConversationCreated, &tmpl).MarshalData()
	if err != nil {
		return threads.Internal(err)
	}
	var created, txid int64
	err = db.pool.QueryRow(ctx, insertConversation, tenant, c.ID, c.GroupID, c.Topic,
		threads.EventConversationCreated, data, db.eventLockKey(tenant)).Scan(&created, &txid)
	if err != nil {
		return mapErr(err)
	}
	c.CreatedAt = threads.FromMicros(created)
	db.published(tenant, txid)
	return nil
}

func (db *DB) FindConversation(ctx context.Context, tenant, id, groupID string) (*threads.Conversation, error) {
	c, err := scanConversation(db.pool.QueryRow(ctx,
		`SELECT id, group_id, topic, created_at FROM conversations WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if err != nil {
		return nil, err
	}
	if groupID != "" && c.GroupID != groupID {
		return nil, threads.ErrConversationNotFound
	}
	return c, nil
}

// UpdateConversation and DeleteConversation write their event with a
// second statement in the transaction: they are rare, and the event needs
// the row as the first statement returns it.
func (db *DB) UpdateConversation(ctx context.Context, tenant, id, topic string) (*threads.Conversation, error) {
	var c *threads.Conversation
	var txid int64
	err := db.tx(ctx, func(tx pgx.Tx) (err error) {
		c, err = scanConversation(tx.QueryRow(ctx, `WITH `+lockCTE("$4", "$5")+`
			UPDATE conversations SET topic = $3 FROM l WHERE tenant_id = $1 AND id = $2 RETURNING id, group_id, topic, created_at`,
			tenant, id, topic, db.eventLockKey(tenant), db.conversationLockKey(tenant, id)))
		if err != nil {
			return err
		}
		txid, err = db.insertEvent(ctx, tx, tenant, threads.NewConversationEvent(threads.EventConversationUpdated, c))
		return err
	})
	if err != nil {
		return nil, err
	}
	db.published(tenant, txid)
	return c, nil
}

// DeleteConversation removes the row, writes a tombstone and the
// conversation.deleted event (the conversation as it was) in one
// transaction, then purges the messages in batches (see the SQLite store:
// the same design, for the same reasons).
func (db *DB) DeleteConversation(ctx context.Context, tenant, id string) error {
	var txid int64
	err := db.tx(ctx, func(tx pgx.Tx) error {
		c, err := scanConversation(tx.QueryRow(ctx, `WITH `+lockCTE("$3", "$4")+`,
			d AS (
				DELETE FROM conversations USING l WHERE tenant_id = $1 AND id = $2 RETURNING id, group_id, topic, created_at),
			t AS (
				INSERT INTO deleted_conversations (tenant_id, id, deleted_at) SELECT $1, id, `+nowMicros+` FROM d
				ON CONFLICT (tenant_id, id) DO NOTHING)
			SELECT id, group_id, topic, created_at FROM d`, tenant, id, db.eventLockKey(tenant), db.conversationLockKey(tenant, id)))
		if err != nil {
			return err
		}
		txid, err = db.insertEvent(ctx, tx, tenant, threads.NewConversationEvent(threads.EventConversationDeleted, c))
		return err
	})
	if err != nil {
		return err
	}
	db.published(tenant, txid)
	return db.purge(context.WithoutCancel(ctx), tenant, id)
}

// purge removes a deleted conversation's messages purgeBatch at a time,
// each batch its own short statement, then the tombstone. Two replicas
// purging one conversation at once only repeat each other's work.
func (db *DB) purge(ctx context.Context, tenant, id string) error {
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM messages WHERE tenant_id = $1 AND conversation_id = $2 AND sent_at IN (
			SELECT sent_at FROM messages WHERE tenant_id = $1 AND conversation_id = $2 LIMIT $3)`, tenant, id, purgeBatch)
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() == 0 {
			_, err := db.pool.Exec(ctx, `DELETE FROM deleted_conversations WHERE tenant_id = $1 AND id = $2`, tenant, id)
			return mapErr(err)
		}
	}
}

const sweepEvery = time.Minute

// sweep finishes purges at start and then every sweepEvery.
func (db *DB) sweep(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		db.purgeDeleted(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

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
		if err := db.purge(ctx, d[0], d[1]); err != nil && ctx.Err() == nil {
			db.log.Error("purge deleted conversation", "tenant", d[0], "conversation", d[1], "err", err)
		}
	}
}

func (db *DB) ListConversations(ctx context.Context, tenant string, f threads.ConversationFilter) ([]*threads.Conversation, threads.ConversationCursor, error) {
	var next threads.ConversationCursor
	after := f.After
	if after.IsZero() {
		after.CreatedAt = math.MaxInt64
	}
	rows, err := db.pool.Query(ctx, `SELECT id, group_id, topic, created_at FROM conversations
		WHERE tenant_id = $1 AND group_id = $2 AND (created_at, id) < ($3, $4)
		ORDER BY created_at DESC, id DESC LIMIT $5`, tenant, f.GroupID, after.CreatedAt, after.ID, f.Limit+1)
	if err != nil {
		return nil, next, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*threads.Conversation, error) { return scanConversation(r) })
	if err != nil {
		return nil, next, mapErr(err)
	}
	if len(out) > f.Limit {
		out = out[:f.Limit]
		last := out[len(out)-1]
		next = threads.ConversationCursor{CreatedAt: threads.Micros(last.CreatedAt), ID: last.ID}
	}
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
