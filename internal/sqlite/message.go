package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/threads-server/threads"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The statements whose plans plan_test.go checks (see docs/query-plans.md).
const (
	// sqlMessageByID is the idempotency lookup: one probe of messages_by_id.
	sqlMessageByID = `SELECT conversation_id, id, author_id, text, sent_at, seq FROM messages WHERE tenant_id = ? AND id = ?`
	// sqlAdvanceCounter takes the conversation's next seq and sent_at: one
	// primary-key lookup, under the write lock. It also returns the group,
	// which the message.created event carries.
	sqlAdvanceCounter = `UPDATE conversations SET last_seq = last_seq + 1, last_sent_at = max(last_sent_at + 1, ?)
		WHERE tenant_id = ? AND id = ? RETURNING last_seq, last_sent_at, group_id`
	// sqlListMessages is one backward range scan of the messages primary key.
	sqlListMessages = `SELECT id, author_id, text, sent_at, seq FROM messages
		WHERE tenant_id = ?1 AND conversation_id = ?2 AND sent_at < ?3
		AND EXISTS (SELECT 1 FROM conversations WHERE tenant_id = ?1 AND id = ?2)
		ORDER BY sent_at DESC LIMIT ?4`
)

// createMessage is CreateMessage's change, inside a batch (change.go:
// changeBatch; see batch.go), in the savepoint that the batch opened for
// it and that it may roll back to (tx.undo). SQLite serializes the
// writer's transactions: the counter, the insert and the id check cannot
// interleave with another writer's. It returns the message to answer
// with: the new one, or the stored one for a retry.
//
// It is optimistic: a new id is the common case, so it advances the
// counter and inserts at once, and the unique index messages_by_id finds
// a taken id (a retry or a conflict) instead of a lookup before every
// insert, which the profile of group commit showed at a tenth of the
// writer goroutine. A taken id, or a conversation that is not there,
// undoes the change so far (the counter), and answers from
// existingMessage.
//
// created reports a new message, whose event it has put in *ev (the
// caller's, so that it costs no allocation).
func (db *DB) createMessage(ctx context.Context, tx *changeTx, tenant string, m *threads.Message, ev *threads.Event) (_ *threads.Message, created bool, err error) {
	out := *m
	var sentAt int64
	var groupID string
	err = tx.queryRow(ctx, stAdvanceCounter, db.now(), tenant, m.ConversationID).Scan(&out.Seq, &sentAt, &groupID)
	if errors.Is(err, sql.ErrNoRows) {
		stored, err := db.existingMessage(ctx, tx, tenant, m)
		return stored, false, err
	}
	if err != nil {
		return nil, false, err
	}
	if _, err := tx.exec(ctx, stInsertMessage, tenant, m.ConversationID, sentAt, out.Seq, m.ID, m.AuthorID, m.Text); err != nil {
		if !idTaken(err) {
			return nil, false, err
		}
		if err := tx.undo(ctx); err != nil {
			return nil, false, err
		}
		stored, err := db.existingMessage(ctx, tx, tenant, m)
		return stored, false, err
	}
	out.SentAt = threads.FromMicros(sentAt)
	*ev = *threads.NewMessageEvent(groupID, &out)
	return &out, true, nil
}

// existingMessage answers a CreateMessage that stored nothing, by the
// rule of threads.ResolveMessageRetry: the stored message under m.ID (a
// retry), CONFLICT, or NOT_FOUND.
func (db *DB) existingMessage(ctx context.Context, tx *changeTx, tenant string, m *threads.Message) (*threads.Message, error) {
	stored, err := scanMessage(tx.queryRow(ctx, stMessageByID, tenant, m.ID))
	if errors.Is(err, sql.ErrNoRows) {
		stored, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return threads.ResolveMessageRetry(m, stored, func() (bool, error) {
		var one int
		err := tx.queryRow(ctx, stConversationExists, tenant, m.ConversationID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
}

// idTaken reports whether err is the unique index messages_by_id refusing
// an insert: the messages table has no other unique index, and its
// primary key (whose violation has its own code) cannot collide, since
// sent_at increases within a conversation.
func idTaken(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// ListMessages reads one page in one query. The EXISTS clause hides the
// messages of a deleted conversation that are still being purged; only an
// empty page costs a second lookup, to tell "no messages" from NOT_FOUND.
func (db *DB) ListMessages(ctx context.Context, tenant string, f threads.MessageFilter) ([]*threads.Message, error) {
	rows, err := db.query(ctx, sqlListMessages, tenant, f.ConversationID, f.ReadBefore(), f.Limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := make([]*threads.Message, 0, f.Limit)
	alloc := newMessages(f.Limit)
	var budget threads.AnswerBudget
	for rows.Next() {
		m := alloc()
		if err := scanFields(rows, m, nil); err != nil {
			return nil, mapErr(err)
		}
		m.ConversationID = f.ConversationID
		if !budget.Take(m.JSONSize()) {
			break // a shorter page: the client pages on from its last message
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil || len(out) > 0 {
		return out, mapErr(err)
	}
	if _, err := db.FindConversation(ctx, tenant, f.ConversationID, ""); err != nil {
		return nil, err
	}
	return out, nil
}

// RecentMessages is one statement of fixed text, prepared once: for each
// id of the JSON array ?2, in request order, the conversation's newest ?3
// messages. Each id costs two bounded probes of the messages primary key,
// whatever its history: the subquery finds the ?3-th newest sent_at
// (OFFSET over ?3 entries of the index), and the join reads the range
// from there. (One UNION ALL part per id, the first version, cost more
// to parse than to run: 37 % of a 100-id call's CPU.)
func (db *DB) RecentMessages(ctx context.Context, tenant string, f threads.RecentFilter) ([]*threads.Message, error) {
	ids, per := f.ConversationIDs, f.PerConversation
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, threads.Internal(err)
	}
	rows, err := db.query(ctx, sqlRecentMessages, tenant, string(list), per)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	// Each row says which id it belongs to (r.key, its index in ids); the
	// parts are put in request order, each newest first, here rather than
	// with ORDER BY, which would spare SQLite nothing but cost it a
	// temporary B-tree of every row. Each part is at most 200 rows,
	// already ordered one way or the other.
	parts := make([][]*threads.Message, len(ids))
	alloc := newMessages(len(ids) * per)
	n := 0
	var budget threads.AnswerBudget
	for rows.Next() {
		var key int64
		m := alloc()
		if err := scanFields(rows, m, &key); err != nil {
			return nil, mapErr(err)
		}
		if key < 0 || key >= int64(len(ids)) {
			return nil, threads.Internal(fmt.Errorf("sqlite: RecentMessages row for id #%d of %d", key, len(ids)))
		}
		m.ConversationID = ids[key]
		if !budget.Take(m.JSONSize()) {
			return nil, threads.ErrAnswerTooLarge
		}
		parts[key] = append(parts[key], m)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	out := make([]*threads.Message, 0, n)
	for _, part := range parts {
		slices.SortFunc(part, func(a, b *threads.Message) int { return cmp.Compare(b.Seq, a.Seq) })
		out = append(out, part...)
	}
	return out, nil
}

// sqlRecentMessages: ids are distinct (threads.RecentFilter). A
// conversation with fewer than ?3 messages has no ?3-th newest, and the
// range starts at 0: every sent_at is at least 1 (CreateMessage takes
// max(last_sent_at + 1, now)). CROSS JOIN fixes the join order (SQLite's
// rule for it): the ids drive the loop. Left to itself, without an ORDER
// BY to steer it, the planner chose to scan the tenant's messages
// (TestQueryPlans).
const sqlRecentMessages = `SELECT r.key, m.id, m.author_id, m.text, m.sent_at, m.seq
	FROM json_each(?2) AS r
	CROSS JOIN conversations AS c ON c.tenant_id = ?1 AND c.id = r.value
	CROSS JOIN messages AS m ON m.tenant_id = ?1 AND m.conversation_id = r.value
		AND m.sent_at >= ifnull((SELECT sent_at FROM messages
			WHERE tenant_id = ?1 AND conversation_id = r.value
			ORDER BY sent_at DESC LIMIT 1 OFFSET ?3 - 1), 0)`

// newMessages returns a function that hands out zeroed Messages from
// chunks, so that a page costs an allocation per chunk rather than one
// per message.
func newMessages(expect int) func() *threads.Message {
	var chunk []threads.Message
	return func() *threads.Message {
		if len(chunk) == cap(chunk) {
			chunk = make([]threads.Message, 0, min(max(expect, 1), 256))
		}
		chunk = chunk[:len(chunk)+1]
		return &chunk[len(chunk)-1]
	}
}

// scanFields reads a page's row: its id index into key, when key is not
// nil (RecentMessages), then id, author_id, text, sent_at and seq. The
// conversation is the caller's to fill in: it is the one asked for, not a
// column to read again per row.
func scanFields(rows *sql.Rows, m *threads.Message, key *int64) error {
	var sent int64
	var err error
	if key != nil {
		err = rows.Scan(key, &m.ID, &m.AuthorID, &m.Text, &sent, &m.Seq)
	} else {
		err = rows.Scan(&m.ID, &m.AuthorID, &m.Text, &sent, &m.Seq)
	}
	m.SentAt = threads.FromMicros(sent)
	return err
}

func scanMessage(s scanner) (*threads.Message, error) {
	var m threads.Message
	var sent int64
	if err := s.Scan(&m.ConversationID, &m.ID, &m.AuthorID, &m.Text, &sent, &m.Seq); err != nil {
		return nil, err
	}
	m.SentAt = threads.FromMicros(sent)
	return &m, nil
}
