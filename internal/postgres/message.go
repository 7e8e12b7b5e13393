package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/threads-server/threads"
)

// createMessage is CreateMessage's change, one statement (change.go:
// newStatement adds the locks before it and the event after it): it
// advances the conversation's counter and inserts the message, and the
// message.created event follows, all in one statement run on its own
// (autocommit): one round trip, where BEGIN, the statement and COMMIT took
// three. The conversation's lock, held until commit, makes writers of one
// conversation take turns, on every replica, so seq and sent_at are
// assigned one writer at a time and each writer's txid (taken by the
// UPDATE, after the lock) is greater than the previous one's; GREATEST
// keeps sent_at strictly increasing even if the database clock steps
// back. A taken client id fails the statement with a unique violation
// (only once the row that holds the id is committed: PostgreSQL waits for
// its transaction), which undoes the counter too, so it keeps no gap. The
// event adds no time under the lock. The event's group comes from the
// counter's row, and its data is Go's template with seq and sent_at
// filled in (see event.go). $1 tenant, $2 conversation, $3 id, $4 author,
// $5 text, $6 the event's type, $7 its template.
var createMessage = newStatement("CreateMessage", true, statement{
	params: 7,
	writes: `c AS (
	UPDATE conversations SET last_seq = last_seq + 1, last_sent_at = GREATEST(last_sent_at + 1, ` + nowMicros + `)
	FROM l WHERE tenant_id = $1 AND id = $2 RETURNING group_id, last_seq, last_sent_at),
m AS (
	INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text)
	SELECT $1, $2, c.last_sent_at, c.last_seq, $3, $4, $5 FROM c
	RETURNING seq, sent_at)`,
	eventAt: `m.sent_at`, eventType: `$6`, eventGroup: `c.group_id`, eventConversation: `$2`,
	eventData: `jsonb_set(jsonb_set($7::jsonb, '` + pathSeq + `', to_jsonb(m.seq)), '` + pathSentAt + `', ` + jsonTime("m.sent_at") + `)`,
	eventFrom: `m, c`,
	result:    `m.seq, m.sent_at FROM m`,
})

func (db *DB) CreateMessage(ctx context.Context, tenant string, m *threads.Message) (*threads.Message, error) {
	out := *m
	out.SentAt, out.Seq = time.Time{}, 0
	data, err := threads.NewMessageEvent("", &out).MarshalData()
	if err != nil {
		return nil, threads.Internal(err)
	}
	var sentAt int64
	err = db.changeStatement(ctx, createMessage, tenant, m.ConversationID,
		[]any{tenant, m.ConversationID, m.ID, m.AuthorID, m.Text, threads.EventMessageCreated, data}, &out.Seq, &sentAt)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		out.SentAt = threads.FromMicros(sentAt)
		return &out, nil
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "messages_by_id":
	default:
		return nil, mapErr(err)
	}
	// Nothing inserted: the id is taken (a retry, or a conflict), or the
	// conversation does not exist. The statement changed nothing, so the
	// counter did not move. The answer is threads.ResolveMessageRetry's.
	stored, err := scanMessage(db.pool.QueryRow(ctx,
		`SELECT conversation_id, id, author_id, text, sent_at, seq FROM messages WHERE tenant_id = $1 AND id = $2`, tenant, m.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		stored, err = nil, nil
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return threads.ResolveMessageRetry(m, stored, func() (bool, error) {
		_, err := db.FindConversation(ctx, tenant, m.ConversationID, "")
		if errors.Is(err, threads.ErrConversationNotFound) {
			return false, nil
		}
		return err == nil, err
	})
}

// ListMessages reads one page in one query; see the SQLite store for why
// the EXISTS clause is there.
func (db *DB) ListMessages(ctx context.Context, tenant string, f threads.MessageFilter) ([]*threads.Message, error) {
	rows, err := db.pool.Query(ctx, `SELECT conversation_id, id, author_id, text, sent_at, seq FROM messages
		WHERE tenant_id = $1 AND conversation_id = $2 AND sent_at < $3
		AND EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND id = $2)
		ORDER BY sent_at DESC LIMIT $4`, tenant, f.ConversationID, f.ReadBefore(), f.Limit)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := collectMessages(rows, nil)
	if err != nil || len(out) > 0 {
		return out, err
	}
	if _, err := db.FindConversation(ctx, tenant, f.ConversationID, ""); err != nil {
		return nil, err
	}
	return out, nil
}

// RecentMessages is one statement of fixed shape: a LATERAL join that runs
// one bounded range scan per requested id, in request order.
func (db *DB) RecentMessages(ctx context.Context, tenant string, f threads.RecentFilter) ([]*threads.Message, error) {
	// An answer past threads.MaxAnswerBytes is refused, and the statement
	// with it: pgx drains what a statement selected even when the reader
	// stops, and a 100 × 200 call of 64 KiB messages would move 1.3 GB to
	// be thrown away. Cancelling costs the connection (pgx closes it), but
	// only on that refusal; a bound written into the statement cost every
	// call a window aggregate (+30 % of its time in the database).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT m.conversation_id, m.id, m.author_id, m.text, m.sent_at, m.seq
		FROM unnest($2::text[]) WITH ORDINALITY AS r(id, ord)
		CROSS JOIN LATERAL (
			SELECT * FROM messages
			WHERE tenant_id = $1 AND conversation_id = r.id
			AND EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND id = r.id)
			ORDER BY sent_at DESC LIMIT $3) m
		ORDER BY r.ord, m.sent_at DESC`, tenant, f.ConversationIDs, f.PerConversation)
	if err != nil {
		return nil, mapErr(err)
	}
	return collectMessages(rows, cancel)
}

// collectMessages reads rows within threads.MaxAnswerBytes. Past it, a
// page (refuse nil) ends early, and an answer that cannot be cut is
// TOO_LARGE: refuse is called first, to cancel the statement rather than
// receive the rest of its rows.
func collectMessages(rows pgx.Rows, refuse context.CancelFunc) ([]*threads.Message, error) {
	defer rows.Close()
	out := []*threads.Message{}
	var budget threads.AnswerBudget
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, mapErr(err)
		}
		if !budget.Take(m.JSONSize()) {
			if refuse != nil {
				refuse()
				return nil, threads.ErrAnswerTooLarge
			}
			break
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

func scanMessage(row pgx.Row) (*threads.Message, error) {
	var m threads.Message
	var sent int64
	if err := row.Scan(&m.ConversationID, &m.ID, &m.AuthorID, &m.Text, &sent, &m.Seq); err != nil {
		return nil, err
	}
	m.SentAt = threads.FromMicros(sent)
	return &m, nil
}
