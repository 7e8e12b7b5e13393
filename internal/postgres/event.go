package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads"
)

// Positions are (txid, id), see migrations/0002_events.sql and final.go.
// EventCursor carries them as Hi = txid and Lo = id; xid8 travels through
// SQL as text because it has no cast to or from bigint.
const txidOut = `txid::text::bigint`

// insertEventSQL writes one event in the caller's transaction, stamped now
// by the database's clock; txid defaults to the transaction's id. It takes
// the tenant's event lock first, so it may be a transaction's first write.
var insertEventSQL = `WITH ` + lockCTE("$6", "") + `
INSERT INTO events (tenant_id, at, type, group_id, conversation_id, data)
SELECT $1, ` + nowMicros + `, $2, $3, $4, $5::jsonb FROM l RETURNING ` + txidOut

// insertEvent writes e in tx and returns the transaction's id, which the
// notifier needs to tell when the event has become readable. A transaction
// that wrote before calling it must have taken the event lock then.
func (db *DB) insertEvent(ctx context.Context, tx pgx.Tx, tenant string, e *threads.Event) (txid int64, err error) {
	data, err := e.MarshalData()
	if err != nil {
		return 0, err
	}
	err = tx.QueryRow(ctx, insertEventSQL, tenant, e.Type, e.GroupID, e.ConversationID, data, db.eventLockKey(tenant)).Scan(&txid)
	return txid, err
}

// The creates write their event in the same statement as their row (one
// round trip, and for messages no extra time under the conversation's
// lock). Go marshals the object with the fields the database assigns left
// empty, and the statement fills them in at these paths of
// Event.MarshalData's output; TestEventDataPaths guards that they still match.
const (
	pathCreatedAt = `{conversation,CreatedAt}`
	pathSentAt    = `{message,SentAt}`
	pathSeq       = `{message,Seq}`
)

// jsonTime renders unix microseconds (an SQL expression) as time.Time's
// JSON form: RFC 3339, UTC. It uses integer arithmetic only, so the
// microseconds survive exactly; six fractional digits parse back to the
// same instant as Go's own trimmed form.
func jsonTime(us string) string {
	return `to_jsonb(to_char(to_timestamp(` + us + ` / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '.' || lpad((` + us + ` % 1000000)::text, 6, '0') || 'Z')`
}

// ReadEvents reads only final positions (final.go): what it returns never
// has a later-committing event slipped in before it. Two round trips: the
// lock check must end before the read's snapshot is taken.
func (db *DB) ReadEvents(ctx context.Context, tenant string, after threads.EventCursor, f threads.EventFilter, limit int) ([]*threads.Event, error) {
	out := []*threads.Event{}
	if limit <= 0 {
		return out, nil
	}
	final, _, err := db.final(ctx, tenant)
	if err != nil {
		return nil, err
	}
	q, args := readEventsSQL(f), []any{tenant, after.Hi, after.Lo, limit, final}
	if f.GroupID != "" {
		args = append(args, f.GroupID)
	}
	if len(f.ConversationIDs) > 0 {
		args = append(args, f.ConversationIDs)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var e threads.Event
		var data []byte
		if err := rows.Scan(&e.Cursor.Hi, &e.Cursor.Lo, &e.Cursor.At, &e.Type, &e.GroupID, &e.ConversationID, &data); err != nil {
			return nil, mapErr(err)
		}
		if err := e.UnmarshalData(data); err != nil {
			return nil, threads.Internal(err)
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

// The parts of ReadEvents' statement: $1 tenant, $2 and $3 the cursor,
// $4 the limit, $5 the F that final returned (the statement's own xmin may
// be better), then the group and the conversation ids when filtered.
const (
	readEventsCols   = `e.txid::text::bigint AS hi, e.id, e.at, e.type, e.group_id, e.conversation_id, e.data`
	readEventsWindow = `(txid, id) > ($2::bigint::text::xid8, $3)
		AND txid < GREATEST($5::bigint::text::xid8, (SELECT pg_snapshot_xmin(pg_current_snapshot())))`
)

// readEventsSQL reads the whole log with one range scan of the primary
// key. Filtered, it takes the first $4 positions of each part (the group,
// each conversation: one bounded range scan of its index each), keeps the
// first $4 of their union, then fetches those rows: work bounded by the
// page size, however far back the cursor is. (A plain "group_id = $6 OR
// conversation_id = ANY($7)" would sort everything after the cursor.)
func readEventsSQL(f threads.EventFilter) string {
	if f.All() {
		return `SELECT ` + readEventsCols + ` FROM events e WHERE tenant_id = $1 AND ` + readEventsWindow + `
			ORDER BY txid, id LIMIT $4`
	}
	var parts []string
	next := 6
	if f.GroupID != "" {
		parts = append(parts, `(SELECT txid, id FROM events WHERE tenant_id = $1 AND group_id = $6 AND `+readEventsWindow+`
			ORDER BY txid, id LIMIT $4)`)
		next++
	}
	if len(f.ConversationIDs) > 0 {
		parts = append(parts, `(SELECT p.txid, p.id FROM (SELECT DISTINCT cid FROM unnest($`+strconv.Itoa(next)+`::text[]) AS u(cid)) c CROSS JOIN LATERAL (
			SELECT txid, id FROM events WHERE tenant_id = $1 AND conversation_id = c.cid AND `+readEventsWindow+`
			ORDER BY txid, id LIMIT $4) p)`)
	}
	return `WITH k AS (` + strings.Join(parts, " UNION ") + `)
		SELECT ` + readEventsCols + ` FROM (SELECT txid, id FROM k ORDER BY txid, id LIMIT $4) k
		JOIN events e ON e.tenant_id = $1 AND e.txid = k.txid AND e.id = k.id
		ORDER BY e.txid, e.id`
}

// EventHead is (F, 0) for the best F known (final.go): every position
// before it is final and readable; every event at or after it is in flight
// or future. One round trip.
func (db *DB) EventHead(ctx context.Context, tenant string) (threads.EventCursor, error) {
	final, now, err := db.final(ctx, tenant)
	return threads.EventCursor{At: now, Hi: final}, err
}

// PurgeEvents deletes purgeBatch events per statement, oldest first, each
// batch its own short transaction: a range of events_by_at, then one
// primary-key probe per row (written as a join: "(…) IN (subquery)" gets a
// hash join over the whole table). Each batch resumes from the previous
// one's newest at, so that none rescans what the others deleted.
func (db *DB) PurgeEvents(ctx context.Context, before time.Time) error {
	cutoff := threads.Micros(before)
	var from int64
	for {
		var n, last int64
		err := db.pool.QueryRow(ctx, `WITH d AS (
			DELETE FROM events e USING (
				SELECT tenant_id, txid, id FROM events WHERE at >= $1 AND at < $2 ORDER BY at LIMIT $3) old
			WHERE e.tenant_id = old.tenant_id AND e.txid = old.txid AND e.id = old.id
			RETURNING e.at)
		SELECT count(*), COALESCE(max(at), 0) FROM d`, from, cutoff, purgeBatch).Scan(&n, &last)
		if err != nil {
			return mapErr(err)
		}
		if n < purgeBatch {
			return nil
		}
		from = last
	}
}
